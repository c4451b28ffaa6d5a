//! The purge suite: the memory of small objects really goes back to the
//! kernel once their spans are wholly free, and nothing breaks when it does.
//!
//! `tests/c/purge.c` (linked against libslitter.so, so malloc, `malloc_trim`
//! and the class API are slitter's) runs one case per test, with the
//! `SLITTER_PURGE_DELAY` the case needs; it reads with `mincore(2)` which of
//! the pages that held the objects it freed are still resident, or the
//! resident set from `/proc/self/statm`. Delays of 0 and `off` keep every
//! check independent of time (only `freed_spans_wait_out_the_delay` sleeps).
//! The suite shows that:
//!
//! - with a delay of 0, the spans freed objects leave wholly free are purged
//!   on the next slow paths of any class, with no waiting; with `off`, they
//!   stay until `malloc_trim(0)`, which purges them, returns 1, and 0 when
//!   called again with nothing freed in between; with a delay, they stay
//!   until it has passed;
//! - purged spans are reused: new objects of their class come from them,
//!   distinct and usable, and `calloc` hands out zeroes;
//! - a thread caches at most two magazines of a class, so at most a few
//!   spans stay resident for it;
//! - class-API classes purge only when their config sets `purge`, and a
//!   default class's released objects keep their bytes;
//! - 2,000 threads exiting give back everything: resident memory, live
//!   objects, spans and magazines come back down;
//! - `fork` while a thread purges spans leaves the child a working heap.
//!
//! Tests marked "can fail" run a case in a configuration where its check
//! must fail, to show the check measures something. Double frees into
//! purged spans are in the misuse suite (`tests/misuse.rs`).

mod common;

use std::path::PathBuf;
use std::process::Output;

use common::{compile_c, Link};

const GROUP: &str = "purge";

fn binary() -> PathBuf {
    compile_c(GROUP, "tests/c/purge.c", Link::Dynamic)
}

/// Runs `case` (with `args`) under `SLITTER_PURGE_DELAY=delay`.
fn run(case: &str, args: &[&str], delay: &str) -> Output {
    common::output(
        common::command(&binary())
            .arg(case)
            .args(args)
            .env("SLITTER_PURGE_DELAY", delay),
    )
}

/// Runs `case` and checks that it passed.
fn assert_passes(case: &str, args: &[&str], delay: &str) {
    let output = run(case, args, delay);
    common::assert_success_ending_with(&output, &format!("{case}: ok"));
}

/// Runs `case` and checks that its check failed (exit status 1) saying
/// `message`.
fn assert_fails(case: &str, args: &[&str], delay: &str, message: &str) {
    let output = run(case, args, delay);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.code() == Some(1) && stderr.contains(message),
        "case {case} with SLITTER_PURGE_DELAY={delay}: expected its check to fail \
         with {message:?}\n{}",
        common::describe(&output)
    );
}

/// 64 MiB of 64-byte objects freed: at least 90% of their pages are gone
/// after a few slow paths, with no waiting.
#[test]
fn freed_spans_are_purged_at_once_with_a_delay_of_0() {
    assert_passes("purge-at-once", &[], "0");
}

/// Can fail: the same check with purging off finds the pages resident.
#[test]
fn the_purge_check_fails_when_nothing_purges() {
    assert_fails(
        "purge-at-once",
        &[],
        "off",
        "of the freed objects' pages were given back",
    );
}

/// With `SLITTER_PURGE_DELAY=off` the pages stay until `malloc_trim(0)`,
/// which returns 1 and gives them back; a second call returns 0.
#[test]
fn malloc_trim_purges_what_the_decay_keeps() {
    assert_passes("trim", &[], "off");
}

/// Can fail: with a delay of 0 nothing is left for `malloc_trim`.
#[test]
fn the_trim_check_fails_when_the_decay_purged_first() {
    assert_fails("trim", &[], "0", "given back without malloc_trim");
}

/// With a delay of 300 ms, the pages stay while the spans wait, and go
/// once they waited.
#[test]
fn freed_spans_wait_out_the_delay() {
    assert_passes("purge-after-delay", &[], "300");
}

/// Purged spans of 64, 1000 and 20000-byte objects are reused: distinct,
/// usable objects, and zeroes from calloc.
#[test]
fn purged_spans_are_reused_correctly() {
    assert_passes("purge-reuse", &[], "0");
}

/// While 64 MiB of 4, 16 and 32 KiB objects are freed so that the last
/// frees fall in distinct spans, at most two magazines' worth of those
/// spans (and the span the thread owns) stay resident at any time.
#[test]
fn thread_caches_hold_at_most_two_magazines_of_a_class() {
    assert_passes("bounded-cache", &[], "0");
}

/// Can fail: with purging off, every span of the freed objects stays.
#[test]
fn the_bounded_cache_check_fails_when_nothing_purges() {
    assert_fails(
        "bounded-cache",
        &[],
        "off",
        "objects freed by the program stayed",
    );
}

/// Class-API classes: after `malloc_trim(0)`, the pages of the class with
/// `.purge = 1` are gone (its released objects read zeroes), the default
/// class's stay and hold their bytes, a `zero_init` class that purges
/// hands out zeroes from its purged spans, and a `"file"` class that asks
/// to purge keeps its bytes.
#[test]
fn class_api_classes_purge_only_when_they_opt_in_at_trim() {
    assert_passes("class-opt-in-trim", &[], "off");
}

/// The same, purged by the decay rather than `malloc_trim`.
#[test]
fn class_api_classes_purge_only_when_they_opt_in_by_decay() {
    assert_passes("class-opt-in-decay", &[], "0");
}

/// Can fail: with purging off and no `malloc_trim`, the opted-in class
/// keeps its pages too.
#[test]
fn the_class_opt_in_check_fails_when_nothing_purges() {
    assert_fails(
        "class-opt-in-decay",
        &[],
        "off",
        "of the opted-in class's pages were given back",
    );
}

/// 2,000 threads, 50 at a time, each allocating 1,000 objects of assorted
/// sizes and leaving half of them to the main thread: afterwards, and a
/// `malloc_trim(0)`, the resident set is within 16 MiB of where it was
/// before them, and the live objects, spans, magazines and thread caches
/// show that exited threads gave everything back.
#[test]
fn threads_exiting_by_the_thousand_give_everything_back() {
    assert_passes("threads-exit", &[], "0");
}

/// Can fail: with purging off and no `malloc_trim`, the resident set stays
/// near its peak.
#[test]
fn the_thread_exit_check_fails_when_nothing_purges() {
    assert_fails(
        "threads-exit",
        &["no-trim"],
        "off",
        "the resident set went from",
    );
}

/// 200 forks while a thread allocates, frees and trims 8 MiB of 64-byte
/// objects in a loop: every child checks what it inherited, allocates,
/// frees and trims, and exits 0 (a child stuck for 10 s is killed by its
/// alarm, and fails the test).
#[test]
fn fork_while_spans_are_being_purged() {
    assert_passes("fork-purging", &[], "100");
}

/// The same with a delay of 0: the background thread's frees purge too.
#[test]
fn fork_while_spans_are_being_purged_at_once() {
    assert_passes("fork-purging", &[], "0");
}

/// The span an idle thread owns, holding the objects it freed, is taken
/// from it by `malloc_trim` once the thread has been idle for a second:
/// other threads then draw those objects.
#[test]
fn malloc_trim_reclaims_the_spans_of_idle_threads() {
    assert_passes("idle-reclaim", &[], "off");
}

/// Can fail: trimmed before the thread counts as idle, its span stays its.
#[test]
fn the_idle_reclaim_check_fails_before_the_thread_is_idle() {
    assert_fails(
        "idle-reclaim",
        &["keep"],
        "off",
        "came from the idle thread's span",
    );
}

/// `malloc(0)` objects (whose mapper has no memory to give back) come back
/// from purged spans without any address handed out twice.
#[test]
fn zero_size_objects_are_distinct_after_a_purge() {
    assert_passes("zero-size-after-purge", &[], "off");
}
