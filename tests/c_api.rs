//! The C API as C programs see it: `tests/c/class_api.c`, compiled against
//! `include/slitter.h` and linked with the cdylib and with the staticlib;
//! `tests/c/file_fork.c`, objects of the file mapper across `fork()`;
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

/// The header build.rs generated for this build (cargo passes the build
/// script's OUT_DIR to the package's integration tests).
fn generated_header() -> PathBuf {
    Path::new(env!("OUT_DIR")).join("slitter.h")
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

/// `tests/c/file_fork.c`: after `fork()`, objects of a class of the
/// `"file"` mapper (shared mappings) are the parent's and the child's own.
#[test]
fn file_mapper_objects_are_not_shared_across_fork() {
    let binary = common::compile_c("c_api", "tests/c/file_fork.c", Link::Dynamic);
    let output = common::run(&binary);
    common::assert_success_ending_with(&output, "file_fork: ok");
}
