//! A Rust crate depending on slitter, as a user's crate would: written into
//! `target/<profile>/dependent-crate/`, built with cargo and run. With
//! `default-features = false` it uses `slitter::Slitter` as its global
//! allocator and a `slitter::Class`, and keeps its process's C allocator:
//! its binary defines no `malloc`, `free`, `calloc` nor `realloc`. The
//! same crate with slitter's default features (the `malloc` feature) does
//! define them, which shows that the check can fail.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The C allocation functions that the `malloc` feature exports.
const C_ALLOCATOR: &[&str] = &["malloc", "free", "calloc", "realloc"];

/// The dependent crate's program.
const MAIN: &str = r#"
#[global_allocator]
static A: slitter::Slitter = slitter::Slitter;

fn main() {
    let class = slitter::Class::new(slitter::ClassConfig {
        name: Some("dependent"),
        size: 48,
        zero_init: true,
        ..Default::default()
    })
    .expect("valid config");
    let object = class.allocate().expect("memory available");
    let bytes = object.as_ptr().cast::<u8>();
    // SAFETY: a zero_init class of size 48 hands out 48 zeroed bytes.
    unsafe {
        assert!((0..48).all(|i| *bytes.add(i) == 0));
        bytes.write_bytes(7, 48);
    }
    class.release(object);

    let numbers: Vec<u64> = (0..10_000).collect();
    assert_eq!(numbers.iter().sum::<u64>(), 49_995_000);
    let text: String = numbers.iter().map(|n| format!("{n},")).collect();
    assert!(text.starts_with("0,1,2,"));
    assert!(text.ends_with(",9999,"));
    println!("ok");
}
"#;

/// `target/<profile>/dependent-crate`.
fn crate_root() -> PathBuf {
    common::profile_dir().join("dependent-crate")
}

/// Writes the crate `name` under [`crate_root`], depending on this
/// package with its default features or without them, and returns its
/// directory. This package's `Cargo.lock` pins the versions of the
/// dependencies the crate shares with it.
fn write_crate(name: &str, default_features: bool) -> PathBuf {
    let dir = common::fresh_dir(&crate_root().join(name));
    let manifest = format!(
        "[package]\n\
         name = \"{name}\"\n\
         version = \"0.1.0\"\n\
         edition = \"2021\"\n\
         \n\
         [dependencies]\n\
         slitter = {{ path = {path:?}, default-features = {default_features} }}\n\
         \n\
         [workspace]\n",
        path = env!("CARGO_MANIFEST_DIR"),
    );
    let write = |path: &Path, contents: &str| {
        std::fs::write(path, contents)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    };
    write(&dir.join("Cargo.toml"), &manifest);
    std::fs::create_dir_all(dir.join("src")).expect("cannot create src/");
    write(&dir.join("src/main.rs"), MAIN);
    std::fs::copy(
        common::manifest_dir().join("Cargo.lock"),
        dir.join("Cargo.lock"),
    )
    .expect("cannot copy Cargo.lock");
    dir
}

/// Builds the crate `name` (see [`write_crate`]) and returns its binary.
fn build(name: &str, default_features: bool) -> PathBuf {
    let dir = write_crate(name, default_features);
    // A target directory of its own, shared by both crates: the outer one
    // is locked by the `cargo test` running this test.
    let target = crate_root().join("target");
    let mut command = Command::new(env!("CARGO"));
    command
        .current_dir(&dir)
        .args(["build", "--offline"])
        .env("CARGO_TARGET_DIR", &target);
    let output = common::output(&mut command);
    assert!(
        output.status.success(),
        "{command:?} failed\n{}",
        common::describe(&output)
    );
    target.join("debug").join(name)
}

/// The symbols of [`C_ALLOCATOR`] that `binary` defines.
fn defined_c_allocator(binary: &Path) -> Vec<String> {
    let nm = common::ensure_tool("nm", "binutils");
    let mut command = Command::new(nm);
    command.arg("--defined-only").arg(binary);
    let output = common::output(&mut command);
    assert!(
        output.status.success(),
        "{command:?} failed\n{}",
        common::describe(&output)
    );
    let mut defined: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().last())
        .filter(|symbol| C_ALLOCATOR.contains(symbol))
        .map(str::to_owned)
        .collect();
    defined.sort();
    defined.dedup();
    defined
}

#[test]
fn without_default_features_the_process_keeps_its_malloc() {
    let plain = build("dependent-plain", false);
    common::assert_success_ending_with(&common::run(&plain), "ok");
    assert_eq!(
        defined_c_allocator(&plain),
        Vec::<String>::new(),
        "{} defines C allocation functions",
        plain.display()
    );

    let exporting = build("dependent-malloc", true);
    common::assert_success_ending_with(&common::run(&exporting), "ok");
    let mut expected: Vec<String> = C_ALLOCATOR.iter().map(|&s| s.to_owned()).collect();
    expected.sort();
    assert_eq!(
        defined_c_allocator(&exporting),
        expected,
        "{} (default features) should define the C allocation functions",
        exporting.display()
    );
}
