//! The malloc drop-in from C and C++: test programs built without slitter
//! and run with `LD_PRELOAD=libslitter.so`, and the C API test and the
//! symbol probe linked with `-lslitter` instead (the C API test also with
//! `libslitter.a`).
//!
//! - `tests/c/malloc_probe.c`: every function of the C allocation API (and
//!   glibc's `__libc_*` names) resolves to libslitter.so.
//! - `tests/c/malloc_api.c`: each function and edge case (zero sizes,
//!   alignment table, calloc and reallocarray overflow, huge requests,
//!   errno, usable size, realloc shrink/grow/in place, sized frees).
//! - `tests/c/malloc_stress.c`: 4 threads, random sizes up to 4 MiB,
//!   contents verified, objects freed across threads.
//! - `tests/cpp/containers.cpp`: libstdc++ containers, aligned and sized
//!   new/delete, several threads.
//! - `tests/cpp/aligned_new.cpp`: slitter's aligned `operator new`
//!   (scalar, array, nothrow) with right-sized deletes, `std::bad_alloc`
//!   and nullptr on an impossible size.
//! - `tests/c/fork_load.c`: 150 forks while 3 threads allocate.
//! - `tests/c/thread_churn.c`: 10,000 short threads with bounded RSS.
//! - `tests/c/large_blocks.c`: 20,000 and 200,000 live 64 KiB blocks
//!   (few mappings), decay and `malloc_trim` of freed large blocks,
//!   realloc across the large size classes.
//! - `tests/c/free_errno.c`: free keeps errno when munmap, madvise and
//!   mincore fail (a seccomp filter makes them).
//! - `tests/c/fork_stats.c`: a forked child's statistics count no thread
//!   of its parent's.
//!
//! Every program prints an `allocator: malloc=<object> free=<object>` line
//! (`tests/c/allocator_probe.h`); each test first checks the program's own
//! verdict, then that the line names libslitter.so. All programs except the
//! probe and `large_blocks.c` (glibc keeps the 1 GiB it freed, where
//! slitter's decay gives it back) also pass against glibc's malloc (run
//! them without `LD_PRELOAD`).

mod common;

use std::path::Path;
use std::process::Output;

use common::Link;

const GROUP: &str = "malloc";

/// Asserts a successful run whose last line is `<name>: ok`, then that
/// malloc and free came from libslitter.so.
fn assert_ok_under_slitter(output: &Output, name: &str) {
    common::assert_success_ending_with(output, &format!("{name}: ok"));
    common::assert_allocator_is_slitter(output);
}

/// Asserts that the C API test neither skipped a function (all of them
/// must exist under slitter) nor failed.
fn check_api_output(output: &Output) {
    assert_ok_under_slitter(output, "malloc_api");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let skipped: Vec<&str> = stdout.lines().filter(|l| l.contains(": skip: ")).collect();
    assert!(
        skipped.is_empty(),
        "functions missing under slitter: {skipped:?}\n{}",
        common::describe(output)
    );
}

fn run_probe(binary: &Path, output: Output) {
    assert!(
        output.status.success(),
        "{} found allocation functions outside libslitter.so\n{}",
        binary.display(),
        common::describe(&output)
    );
    assert_ok_under_slitter(&output, "malloc_probe");
}

#[test]
fn probe_resolves_the_allocation_api_to_slitter_under_preload() {
    let binary = common::compile_program(GROUP, "tests/c/malloc_probe.c", None);
    let output = common::run_preloaded(&binary, &["libslitter"]);
    run_probe(&binary, output);
}

#[test]
fn probe_resolves_the_allocation_api_to_slitter_when_linked() {
    let binary = common::compile_program(GROUP, "tests/c/malloc_probe.c", Some(Link::Dynamic));
    let output = common::output(common::command(&binary).arg("libslitter"));
    run_probe(&binary, output);
}

#[test]
fn c_api_under_preload() {
    let binary = common::compile_program(GROUP, "tests/c/malloc_api.c", None);
    check_api_output(&common::run_preloaded(&binary, &[]));
}

#[test]
fn c_api_when_linked() {
    let binary = common::compile_program(GROUP, "tests/c/malloc_api.c", Some(Link::Dynamic));
    check_api_output(&common::run(&binary));
}

/// Linked with `libslitter.a`, the executable itself defines malloc and
/// free, which then serve libc and every library too.
#[test]
fn c_api_when_linked_statically() {
    let binary = common::compile_program(GROUP, "tests/c/malloc_api.c", Some(Link::Static));
    let output = common::run(&binary);
    common::assert_success_ending_with(&output, "malloc_api: ok");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find(|line| line.starts_with("allocator: "))
        .unwrap_or_default();
    let expected = binary.to_string_lossy();
    for key in ["malloc", "free"] {
        assert_eq!(
            common::field(line, key),
            Some(&*expected),
            "{key} is not the executable's own (from libslitter.a): {line}\n{}",
            common::describe(&output)
        );
    }
}

#[test]
fn multithreaded_stress_under_preload() {
    let binary = common::compile_program(GROUP, "tests/c/malloc_stress.c", None);
    // ops per thread: about 1 s against glibc on 2 cores.
    let output = common::run_preloaded(&binary, &["150000"]);
    assert_ok_under_slitter(&output, "malloc_stress");
}

#[test]
fn cpp_containers_under_preload() {
    let binary = common::compile_program(GROUP, "tests/cpp/containers.cpp", None);
    // libstdc++'s operator new and delete call malloc and free through
    // their own references: check those bindings in the loader's log too.
    let trace = common::fresh_dir(&common::scratch_dir(GROUP).join("containers-bindings"));
    let mut command = common::preloaded_command(&binary);
    command.arg("20");
    common::trace_bindings(&mut command, &trace);
    let output = common::output(&mut command);
    assert_ok_under_slitter(&output, "containers");
    common::assert_bound_to_slitter(&trace, "containers");
}

#[test]
fn fork_under_load_under_preload() {
    let binary = common::compile_program(GROUP, "tests/c/fork_load.c", None);
    let output = common::run_preloaded(&binary, &["150"]);
    assert_ok_under_slitter(&output, "fork_load");
}

#[test]
fn free_keeps_errno_when_its_system_calls_fail_under_preload() {
    let binary = common::compile_program(GROUP, "tests/c/free_errno.c", None);
    let output = common::run_preloaded(&binary, &[]);
    assert_ok_under_slitter(&output, "free_errno");
}

#[test]
fn a_forked_childs_statistics_count_only_its_own_threads() {
    let binary = common::compile_program(GROUP, "tests/c/fork_stats.c", None);
    let output = common::output(common::preloaded_command(&binary).env("SLITTER_STATS", "1"));
    assert_ok_under_slitter(&output, "fork_stats");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let tables = stderr.matches("slitter: statistics of pid").count();
    assert_eq!(
        tables, 2,
        "one table each from the child and the parent\n{stderr}"
    );
    assert!(
        !stderr.contains("other running threads"),
        "a table counts threads that do not exist\n{}",
        common::describe(&output)
    );
}

#[test]
fn large_blocks_many_live_decay_trim_and_realloc_under_preload() {
    let binary = common::compile_program(GROUP, "tests/c/large_blocks.c", None);
    let output = common::run_preloaded(&binary, &["20000"]);
    assert_ok_under_slitter(&output, "large_blocks");
    // The fallback where the kernel has no MADV_GUARD_INSTALL: groups.
    let output = common::output(
        common::preloaded_command(&binary)
            .arg("20000")
            .env("SLITTER_MPROTECT_GUARDS", "1"),
    );
    assert_ok_under_slitter(&output, "large_blocks");
    // Far beyond what a mapping or two per block allows (65,530); the
    // small constants' arena (64 reservations of 64 MiB) cannot hold them.
    if !cfg!(feature = "test_only_small_constants") {
        let output = common::run_preloaded(&binary, &["200000"]);
        assert_ok_under_slitter(&output, "large_blocks");
    }
}

#[test]
fn thread_churn_keeps_rss_bounded_under_preload() {
    let binary = common::compile_program(GROUP, "tests/c/thread_churn.c", None);
    let output = common::run_preloaded(&binary, &["10000"]);
    assert_ok_under_slitter(&output, "thread_churn");
}

/// Correct programs never trip a check with the opt-in hardening on either
/// (`SLITTER_HARDEN=1`: canaries, zero on free, per-thread quarantines):
/// the C API edge cases, the 4-thread stress, the C++ containers, forks
/// under load (children whose other threads vanished with their
/// quarantines) and thousands of short threads (each leaving its
/// quarantine to the next, with bounded memory).
#[test]
fn correct_programs_pass_hardened() {
    for (source, name, args) in [
        ("tests/c/malloc_api.c", "malloc_api", &[][..]),
        ("tests/c/malloc_stress.c", "malloc_stress", &["50000"][..]),
        ("tests/cpp/containers.cpp", "containers", &["10"][..]),
        ("tests/c/fork_load.c", "fork_load", &["50"][..]),
        ("tests/c/thread_churn.c", "thread_churn", &["2000"][..]),
    ] {
        let binary = common::compile_program(GROUP, source, None);
        let mut command = common::preloaded_command(&binary);
        command
            .args(args)
            .env("SLITTER_HARDEN", "1")
            .env("SLITTER_VERBOSE", "1");
        let output = common::output(&mut command);
        assert_ok_under_slitter(&output, name);
        // The only line is the start-up one, which says hardening is on.
        let lines = common::slitter_lines(&output);
        assert!(
            lines.len() == 1 && lines[0].contains("SLITTER_HARDEN=1 "),
            "{name} hardened\n{}",
            common::describe(&output)
        );
    }
}

/// slitter's aligned `operator new` serves correct programs, whose sized
/// deletes name the unrounded size, by default and hardened; on failure
/// the C++ library's throws `std::bad_alloc` through it (or returns
/// nullptr for the nothrow forms).
#[test]
fn cpp_aligned_new_under_preload() {
    let binary = common::compile_program(GROUP, "tests/cpp/aligned_new.cpp", None);
    for harden in ["0", "1"] {
        let output =
            common::output(common::preloaded_command(&binary).env("SLITTER_HARDEN", harden));
        common::assert_success_ending_with(&output, "aligned_new: ok");
    }
}

/// A C++ program with its own plain `operator new` and `delete` keeps them
/// under slitter: slitter's sized deletes forward to the program's
/// `operator delete(void *)`, as the C++ library's default ones do.
#[test]
fn cpp_program_with_its_own_operator_new_under_preload() {
    let binary = common::compile_program(GROUP, "tests/cpp/custom_new.cpp", None);
    let output = common::run_preloaded(&binary, &[]);
    common::assert_success_ending_with(&output, "custom_new: ok");
}
