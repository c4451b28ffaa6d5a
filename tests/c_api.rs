//! The C API as C programs see it: `tests/c/class_api.c`, compiled against
//! `include/slitter.h` and linked with the cdylib and with the staticlib;
//! and the committed header checked against the one cbindgen generates.

mod common;

use std::path::{Path, PathBuf};

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

/// When the file was last written (the epoch if unknown).
fn modified(path: &Path) -> std::time::SystemTime {
    path.metadata()
        .and_then(|m| m.modified())
        .unwrap_or(std::time::UNIX_EPOCH)
}

/// The header build.rs generated for this build: `$OUT_DIR/slitter.h` when
/// cargo passed OUT_DIR to this test crate, else the newest
/// `target/<profile>/build/slitter-*/out/slitter.h`.
fn generated_header() -> PathBuf {
    if let Some(out_dir) = option_env!("OUT_DIR") {
        return Path::new(out_dir).join("slitter.h");
    }
    let build = common::profile_dir().join("build");
    let entries = std::fs::read_dir(&build)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", build.display()));
    entries
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("slitter-"))
        .map(|entry| entry.path())
        .filter(|dir| dir.join("out/slitter.h").is_file())
        // cbindgen leaves an unchanged header alone, so date each candidate
        // by the last run of its build script (cargo rewrites `output`).
        .max_by_key(|dir| modified(&dir.join("output")).max(modified(&dir.join("out/slitter.h"))))
        .map(|dir| dir.join("out/slitter.h"))
        .unwrap_or_else(|| panic!("no slitter-*/out/slitter.h under {}", build.display()))
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
             run `SLITTER_UPDATE_HEADER=1 cargo build` and commit include/slitter.h",
            generated_path.display(),
            first_difference + 1
        );
    }
}
