//! The C API as C programs see it: `tests/c/class_api.c`, compiled against
//! `include/slitter.h` and linked with the cdylib and with the staticlib
//! (it also checks the header's version macros against `slitter_version()`);
//! `tests/c/file_fork.c`, objects of the file mapper across `fork()`;
//! and the committed header checked against the one cbindgen generates with
//! the `regenerate-header` feature.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Link;

fn check_class_api(link: Link) {
    let binary = common::compile_c("c_api", "tests/c/class_api.c", link);
    let output = common::run(&binary);
    common::assert_success_ending_with(&output, "ok");
}

#[test]
fn class_api_with_cdylib() {
    check_class_api(Link::Dynamic);
}

#[test]
fn class_api_with_staticlib() {
    check_class_api(Link::Static);
}

/// The header that build.rs generates with the `regenerate-header` feature:
/// a `cargo check --features regenerate-header` of this package into a
/// target directory of its own, whose build-script message names the
/// OUT_DIR holding `slitter.h`.
fn generated_header() -> PathBuf {
    let mut command = Command::new(common::cargo());
    command
        .current_dir(common::manifest_dir())
        .args([
            "check",
            "--lib",
            "--features",
            "regenerate-header",
            "--message-format=json",
        ])
        .env("CARGO_TARGET_DIR", common::nested_target_dir("header"))
        .env_remove("SLITTER_UPDATE_HEADER");
    let output = common::output(&mut command);
    assert!(
        output.status.success(),
        "{command:?} failed\n{}",
        common::describe(&output)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let out_dir = stdout
        .lines()
        .filter(|line| line.contains(r#""reason":"build-script-executed""#))
        .filter(|line| line.contains("#slitter@"))
        .find_map(|line| {
            let start = line.find(r#""out_dir":""#)? + r#""out_dir":""#.len();
            let end = start + line[start..].find('"')?;
            Some(PathBuf::from(&line[start..end]))
        })
        .unwrap_or_else(|| {
            panic!(
                "{command:?} reported no build script run of slitter\n{}",
                common::describe(&output)
            )
        });
    out_dir.join("slitter.h")
}

#[test]
fn committed_header_is_up_to_date() {
    let generated_path = generated_header();
    let committed_path = common::manifest_dir().join("include/slitter.h");
    let read = |path: &Path| {
        std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
    };
    let generated = read(&generated_path);
    let committed = read(&committed_path);
    if generated != committed {
        let first_difference = generated
            .lines()
            .zip(committed.lines())
            .position(|(g, c)| g != c)
            .unwrap_or_else(|| generated.lines().count().min(committed.lines().count()));
        panic!(
            "include/slitter.h differs from the generated {} (first at line {}); \
             run `SLITTER_UPDATE_HEADER=1 cargo build --features regenerate-header` \
             and commit include/slitter.h",
            generated_path.display(),
            first_difference + 1
        );
    }
}

/// `tests/c/file_fork.c`: after `fork()`, objects of a class of the
/// `"file"` mapper (shared mappings) are the parent's and the child's own.
#[test]
fn file_mapper_objects_are_not_shared_across_fork() {
    let binary = common::compile_c("c_api", "tests/c/file_fork.c", Link::Dynamic);
    let output = common::run(&binary);
    common::assert_success_ending_with(&output, "file_fork: ok");
}
