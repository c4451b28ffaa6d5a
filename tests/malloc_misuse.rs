//! Misuse of the malloc API under LD_PRELOAD: each case runs
//! `tests/c/malloc_misuse.c` in a child process, which must die of SIGABRT
//! after exactly one `slitter:` line naming the error and the address.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::sync::OnceLock;

use common::{compile_program, field, preload, slitter_lines};

/// The misuse program, compiled once for all the tests of this file.
fn binary() -> &'static PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| compile_program("malloc_misuse", "tests/c/malloc_misuse.c", None))
}

fn check(case: &str, phrase: &str) {
    let mut command = common::command(binary());
    preload(&mut command).arg(case);
    let output = common::output(&mut command);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.signal(),
        Some(libc::SIGABRT),
        "case {case}: expected SIGABRT\n{}",
        common::describe(&output)
    );
    let lines = slitter_lines(&output);
    assert_eq!(lines.len(), 1, "case {case}\n{}", common::describe(&output));
    let ptr = field(&stdout, "ptr").expect("the case prints its pointer");
    assert!(
        lines[0].contains(ptr) && lines[0].contains(phrase),
        "case {case}: expected {ptr} and {phrase:?} in {:?}",
        lines[0]
    );
}

#[test]
fn free_of_a_stack_address_aborts() {
    check("free-stack", "free of");
    check("free-stack", "which slitter did not allocate");
}

#[test]
fn realloc_of_a_stack_address_aborts() {
    check("realloc-stack", "realloc of");
}

#[test]
fn usable_size_of_a_stack_address_aborts() {
    check("usable-size-stack", "malloc_usable_size of");
}

#[test]
fn free_of_an_interior_pointer_aborts() {
    check("free-interior", "not the start of an allocated object");
}

#[test]
fn double_free_aborts() {
    check("double-free", "double free of");
}

#[test]
fn free_inside_a_large_allocation_aborts() {
    check("free-large-interior", "inside the large allocation");
}
