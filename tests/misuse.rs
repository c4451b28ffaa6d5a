//! The misuse suite: every heap misuse slitter promises to catch, each run
//! in a child process that must die the expected way.
//!
//! - `tests/c/misuse.c` (linked against libslitter.so, so both the class API
//!   and malloc are slitter's): one misuse of the malloc API or the class
//!   API per case.
//! - `tests/cpp/sized_delete_misuse.cpp` (plain g++ build, run under
//!   LD_PRELOAD): C++ sized `operator delete` with a wrong size.
//!
//! A case that aborts must die of SIGABRT after exactly one `slitter:` line
//! on stderr, naming the address the program printed (`ptr=...`) and the
//! kind of error; a case that touches a guard page or inaccessible memory
//! must die of SIGSEGV. Correct programs never tripping a check is shown by
//! the stress, container, fork and real-program tests (`tests/malloc.rs`,
//! `tests/programs.rs`), which run with every check on.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::{compile_program, field, slitter_lines, Link};

const GROUP: &str = "misuse";

/// The C misuse program (`compile_program` builds it once per process).
fn c_binary() -> PathBuf {
    compile_program(GROUP, "tests/c/misuse.c", Some(Link::Dynamic))
}

/// The C++ sized delete program.
fn cpp_binary() -> PathBuf {
    compile_program(GROUP, "tests/cpp/sized_delete_misuse.cpp", None)
}

fn run_with(binary: &Path, case: &str, env: &[(&str, &str)]) -> Output {
    let mut command = common::command(binary);
    common::preload(&mut command)
        .arg(case)
        .envs(env.iter().copied());
    common::output(&mut command)
}

/// The address the case printed before its misuse.
fn reported_pointer(case: &str, output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout);
    field(&stdout, "ptr")
        .unwrap_or_else(|| panic!("case {case} printed no ptr=\n{}", common::describe(output)))
        .to_owned()
}

/// Runs `case` and checks that it aborted with one `slitter:` line holding
/// its pointer and each of `phrases`.
fn assert_aborts(binary: &Path, case: &str, phrases: &[&str]) {
    assert_aborts_with(binary, case, &[], phrases)
}

fn assert_aborts_with(binary: &Path, case: &str, env: &[(&str, &str)], phrases: &[&str]) {
    let output = run_with(binary, case, env);
    let line = common::assert_aborted(&output, &format!("case {case}"));
    let ptr = reported_pointer(case, &output);
    for phrase in [ptr.as_str()].iter().chain(phrases) {
        assert!(
            line.contains(phrase),
            "case {case}: expected {phrase:?} in {line:?}"
        );
    }
}

/// Runs `case` and checks that it died of SIGSEGV after printing its
/// pointer (so the fault came from the misuse, not the set-up).
fn assert_faults(case: &str) {
    assert_faults_with(case, &[]);
}

/// [`assert_faults`] with `env` set.
fn assert_faults_with(case: &str, env: &[(&str, &str)]) {
    let output = run_with(&c_binary(), case, env);
    assert_eq!(
        output.status.signal(),
        Some(libc::SIGSEGV),
        "case {case}: expected SIGSEGV\n{}",
        common::describe(&output)
    );
    reported_pointer(case, &output);
    assert!(slitter_lines(&output).is_empty(), "case {case}");
}

/// One test per case: `name: "case" => [phrases]` for an abort, or
/// `name: "case" => fault` for SIGSEGV.
macro_rules! misuse_tests {
    ($($name:ident: $case:literal => $expect:tt;)*) => {
        $(
            #[test]
            fn $name() {
                misuse_tests!(@check $case, $expect);
            }
        )*
    };
    (@check $case:literal, fault) => { assert_faults($case) };
    (@check $case:literal, [$($phrase:literal),*]) => {
        assert_aborts(&c_binary(), $case, &[$($phrase),*])
    };
}

/// A class handle still zero (as a `DEFINE_SLITTER_CLASS` global is before
/// its constructor runs) names no class: every release into it is turned
/// away (see the `no_class` cases below) before anything is written, but
/// releasing NULL stays a no-op.
#[test]
fn release_of_null_into_no_class_is_a_no_op() {
    let output = run_with(&c_binary(), "release-no-class-null", &[]);
    assert!(
        output.status.success() && String::from_utf8_lossy(&output.stdout).contains("survived"),
        "{}",
        common::describe(&output)
    );
}

misuse_tests! {
    // Pointers slitter never handed out.
    free_of_a_stack_address: "free-stack" => ["free of", "which slitter did not allocate"];
    free_of_a_global: "free-global" => ["free of", "which slitter did not allocate"];
    free_of_a_private_mapping: "free-private-mmap" => ["free of", "which slitter did not allocate"];
    free_of_unmapped_memory: "free-unmapped" => ["free of", "which slitter did not allocate"];
    free_of_null_plus_one: "free-null-plus-one" => ["free of 0x1,", "which slitter did not allocate"];
    // Interior and misaligned pointers.
    free_of_p_plus_1: "free-plus-1" => ["free of", "not the start of an allocated object", "malloc-64"];
    free_of_p_plus_16: "free-plus-16" => ["free of", "not the start of an allocated object", "malloc-64"];
    free_inside_a_large_allocation: "free-large-plus-4096" => ["inside the large allocation"];
    // Double frees.
    double_free: "double-free" => ["double free of", "class malloc-48, id"];
    delayed_double_free: "double-free-delayed" => ["double free of", "malloc-48"];
    double_free_after_thousands_of_operations: "double-free-after-churn" => ["double free of", "malloc-48"];
    double_free_after_a_free_in_another_thread: "double-free-other-thread" => ["double free of", "malloc-48"];
    free_inside_a_freed_large_allocation: "free-inside-freed-large" => ["free of", "inside a freed large allocation"];
    large_double_free: "double-free-large" => ["double free of", "large allocation"];
    large_double_free_of_a_block_with_its_own_guards: "double-free-large-guarded" => ["double free of", "large allocation"];
    delayed_large_double_free: "double-free-large-delayed" => ["double free of", "large allocation"];
    large_double_free_after_another_thread: "double-free-large-other-thread" => ["double free of", "large allocation"];
    free_of_the_stale_pointer_realloc_moved: "stale-after-realloc" => ["double free of", "malloc-32"];
    free_of_the_stale_pointer_large_realloc_moved: "stale-after-large-realloc" => ["double free of", "large allocation"];
    // realloc and malloc_usable_size of bad pointers.
    realloc_of_a_freed_pointer: "realloc-freed" => ["realloc of", "already freed", "malloc-48"];
    realloc_of_an_interior_pointer: "realloc-interior" => ["realloc of", "not the start of an allocated object"];
    realloc_of_a_stack_address: "realloc-stack" => ["realloc of", "which slitter did not allocate"];
    usable_size_of_a_freed_pointer: "usable-size-freed" => ["malloc_usable_size of", "already freed"];
    usable_size_of_an_interior_pointer: "usable-size-interior" => ["malloc_usable_size of", "not the start of an allocated object"];
    usable_size_of_a_stack_address: "usable-size-stack" => ["malloc_usable_size of", "which slitter did not allocate"];
    usable_size_of_a_freed_large_allocation: "usable-size-large-freed" => ["malloc_usable_size of", "already freed", "large allocation"];
    // Mixing the APIs.
    free_of_a_class_object: "free-class-object" => ["class mismatch", "free of", "misuse-apple"];
    release_of_a_malloc_pointer_into_a_class: "release-malloc-pointer" => ["class mismatch", "misuse-apple", "malloc-32"];
    release_of_a_large_malloc_pointer_into_a_class: "release-large-malloc-pointer" => ["class mismatch", "misuse-apple", "large allocation"];
    // Sized frees that disagree with the allocation.
    free_sized_with_a_larger_size: "free-sized-larger" => ["size mismatch", "free_sized of", "size 1000", "malloc-112"];
    free_sized_with_a_smaller_size: "free-sized-smaller" => ["size mismatch", "size 16", "malloc-112"];
    free_sized_of_a_large_allocation_with_a_small_size: "free-sized-large" => ["size mismatch", "size 100,", "large allocation"];
    free_sized_of_a_freed_pointer: "free-sized-freed" => ["double free of", "malloc-112"];
    free_aligned_sized_with_a_smaller_size: "free-aligned-sized" => ["size mismatch", "free_aligned_sized of", "malloc-256"];
    free_aligned_sized_with_a_wrong_alignment: "free-aligned-sized-alignment" => ["size mismatch", "free_aligned_sized of", "malloc-4096"];
    // Guard pages and inaccessible zero-size objects.
    write_just_past_a_large_allocation: "large-write-past-end" => fault;
    write_just_before_a_page_multiple_large_allocation: "large-page-write-before-start" => fault;
    write_just_before_a_large_allocation_caught_at_free: "large-write-before-start" => ["heap underflow", "large allocation", "size 100000"];
    write_past_the_size_into_the_rounding_caught_at_free: "large-write-into-rounding" => ["heap overflow", "large allocation", "size 100001"];
    read_through_malloc_0: "malloc0-read" => fault;
    write_through_malloc_0: "malloc0-write" => fault;
    // The class API.
    release_into_a_class_of_another_size: "release-other-class" => ["class mismatch", "misuse-apple", "misuse-melon"];
    release_into_another_class_of_the_same_size: "release-same-size-class" => ["class mismatch", "misuse-apple", "misuse-banana"];
    release_of_an_interior_pointer: "release-interior" => ["release of", "not the start of an allocated object", "misuse-melon"];
    release_of_a_stack_address: "release-stack" => ["release of", "which slitter did not allocate", "misuse-apple"];
    release_of_unmapped_memory: "release-unmapped" => ["release of", "which slitter did not allocate"];
    release_of_a_freed_object_into_no_class: "release-no-class-freed" => ["class mismatch", "unknown class id 0", "misuse-apple"];
    release_of_a_stack_address_into_no_class: "release-no-class-stack" => ["release of", "which slitter did not allocate", "unknown class id 0"];
    double_release: "double-release" => ["double release of", "misuse-apple"];
    delayed_double_release: "double-release-delayed" => ["double release of", "misuse-apple"];
    double_release_after_thousands_of_operations: "double-release-after-churn" => ["double release of", "misuse-apple"];
    double_release_after_a_release_in_another_thread: "double-release-other-thread" => ["double release of", "misuse-apple"];
    // Into a span purged since (malloc_trim): its object states were
    // given back with its pages, so the address reads as no object.
    double_free_into_a_purged_span: "double-free-purged" => ["free of", "not the start of an allocated object", "malloc-64"];
    double_release_into_a_purged_span: "double-release-purged" => ["release of", "not the start of an allocated object", "misuse-cherry"];
}

/// The same, with the span purged by the decay (`SLITTER_PURGE_DELAY=0`)
/// rather than by `malloc_trim`.
#[test]
fn double_free_into_a_span_purged_by_the_decay() {
    assert_aborts_with(
        &c_binary(),
        "double-free-purged-decay",
        &[("SLITTER_PURGE_DELAY", "0")],
        &[
            "free of",
            "not the start of an allocated object",
            "malloc-64",
        ],
    );
}

/// C++ sized delete cases: `name: "case" => [phrases]`.
macro_rules! sized_delete_tests {
    ($($name:ident: $case:literal => [$($phrase:literal),*];)*) => {
        $(
            #[test]
            fn $name() {
                assert_aborts(&cpp_binary(), $case, &["size mismatch", $($phrase),*]);
            }
        )*
    };
}

sized_delete_tests! {
    cpp_sized_delete_with_a_larger_size: "delete-sized" => ["operator delete of", "size 1000", "malloc-112"];
    cpp_sized_array_delete_of_a_large_array: "delete-array-sized" => ["operator delete[] of", "size 24,", "malloc-3072"];
    cpp_aligned_sized_delete_with_a_smaller_size: "delete-aligned-sized" => ["operator delete of", "size 64,", "malloc-256"];
    cpp_delete_of_a_derived_object_through_its_base: "delete-through-base" => ["operator delete of", "size 8,", "malloc-208"];
    cpp_aligned_array_delete_with_an_element_size: "delete-aligned-array" => ["operator delete[] of", "size 64,", "malloc-2560"];
}

/// The opt-in hardening of the malloc API (`SLITTER_HARDEN=1`).
const HARDENED: &[(&str, &str)] = &[("SLITTER_HARDEN", "1")];

/// slitter's own aligned `operator new` allocates the unrounded size, so
/// an aligned sized delete whose size is short by less than the alignment
/// is caught where the canary puts the two sizes in different classes.
#[test]
fn hardened_aligned_sized_delete_with_a_size_short_of_the_object_is_caught() {
    assert_aborts_with(
        &cpp_binary(),
        "delete-aligned-rounded",
        HARDENED,
        &[
            "size mismatch",
            "operator delete of",
            "size 8184,",
            "malloc-12288",
        ],
    );
}

#[test]
fn hardened_write_after_free_is_caught_at_reuse() {
    assert_aborts_with(
        &c_binary(),
        "harden-write-after-free",
        HARDENED,
        &["write after free", "byte 3 of", "malloc-48"],
    );
}

#[test]
fn hardened_overflow_into_the_canary_is_caught_at_free() {
    assert_aborts_with(
        &c_binary(),
        "harden-canary",
        HARDENED,
        &[
            "heap overflow",
            "canary after the 40 usable bytes",
            "malloc-48",
        ],
    );
}

/// Hardened, every large block has guard pages of its own, even below
/// the 1 MiB from which they always do: from `MADV_GUARD_INSTALL` where
/// the kernel has it, else from `mprotect`.
#[test]
fn hardened_write_past_a_small_large_block_faults() {
    assert_faults_with("large-small-write-past-end", HARDENED);
    assert_faults_with(
        "large-small-write-past-end",
        &[("SLITTER_HARDEN", "1"), ("SLITTER_MPROTECT_GUARDS", "1")],
    );
}

/// Hardened, a freed large block is sealed at once (guard markers, or
/// `mprotect`) and its address held back: reading it after free faults,
/// and so does writing it after a malloc of its size.
#[test]
fn hardened_use_after_free_of_large_blocks_faults() {
    for env in [
        HARDENED,
        &[("SLITTER_HARDEN", "1"), ("SLITTER_MPROTECT_GUARDS", "1")],
    ] {
        assert_faults_with("large-read-after-free", env);
        assert_faults_with("large-write-after-free-reuse", env);
    }
}

/// A freed large block's address comes back at the next malloc of its
/// class by default, and not within 32 more frees when hardened (its
/// thread's quarantine holds 64 blocks).
#[test]
fn hardened_large_addresses_wait_out_a_quarantine() {
    let default = run_with(&c_binary(), "large-reuse-delay", &[]);
    assert!(
        String::from_utf8_lossy(&default.stdout).contains("reused at 0"),
        "{}",
        common::describe(&default)
    );
    let hardened = run_with(&c_binary(), "large-reuse-delay", HARDENED);
    assert!(
        String::from_utf8_lossy(&hardened.stdout).contains("reused at -1"),
        "{}",
        common::describe(&hardened)
    );
}

/// Guard pages from `mprotect` (the fallback where the kernel has no
/// `MADV_GUARD_INSTALL`) catch the writes just past and just before
/// blocks of 1 MiB and more too.
#[test]
fn mprotect_guards_catch_writes_past_and_before_large_blocks() {
    let env = [("SLITTER_MPROTECT_GUARDS", "1")];
    assert_faults_with("large-write-past-end", &env);
    assert_faults_with("large-page-write-before-start", &env);
}

#[test]
fn hardened_double_free_is_caught_in_quarantine() {
    assert_aborts_with(
        &c_binary(),
        "double-free",
        HARDENED,
        &["double free of", "malloc-64"],
    );
}

/// Two threads freeing one object at the same instant: hardened, the
/// free marks the state with an atomic exchange, so one of them is
/// reported every time, however the two overlap.
#[test]
fn hardened_simultaneous_double_free_is_caught() {
    assert_aborts_with(
        &c_binary(),
        "harden-double-free-race",
        HARDENED,
        &["double free of", "malloc-64"],
    );
}

/// The same race, carried on after each report: every one of its rounds
/// (thousands, with overlaps of every kind) is reported exactly once.
#[test]
fn hardened_simultaneous_double_frees_are_each_reported_once() {
    let env = [CONTINUE[0], HARDENED[0]];
    let output = run_with(&c_binary(), "harden-double-free-race", &env);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let rounds: usize = field(&stdout, "rounds")
        .and_then(|rounds| rounds.parse().ok())
        .unwrap_or_else(|| panic!("no rounds=\n{}", common::describe(&output)));
    let lines = slitter_lines(&output);
    let reported = lines
        .iter()
        .filter(|line| line.contains("double free of"))
        .count();
    assert!(
        output.status.success() && stdout.contains("survived"),
        "{}",
        common::describe(&output)
    );
    assert_eq!(
        (reported, lines.len()),
        (rounds, rounds),
        "one double-free report per round"
    );
}

/// Hardened, a string that fills a small object's usable bytes without
/// its terminator ends in the canary, whose first byte is zero.
#[test]
fn hardened_canary_ends_unterminated_strings() {
    let output = run_with(&c_binary(), "harden-canary-ends-strings", HARDENED);
    common::assert_success_ending_with(&output, "harden-canary-ends-strings: ok");
}

/// Hardened, a small object read after its free reads zeroes.
#[test]
fn hardened_read_after_free_reads_zeroes() {
    let output = run_with(&c_binary(), "harden-read-after-free", HARDENED);
    common::assert_success_ending_with(&output, "harden-read-after-free: ok");
}

/// Hardened, freed objects are reused in random order: neither in the
/// order of their frees nor in its reverse.
#[test]
fn hardened_reuse_order_is_random() {
    let output = run_with(&c_binary(), "harden-reuse-order", HARDENED);
    common::assert_success_ending_with(&output, "harden-reuse-order: ok");
}

/// Hardened, an exiting thread releases the objects waiting in its
/// quarantine: none is lost.
#[test]
fn hardened_thread_exit_empties_its_quarantine() {
    let output = run_with(&c_binary(), "harden-thread-exit", HARDENED);
    common::assert_success_ending_with(&output, "harden-thread-exit: ok");
}

#[test]
fn hardened_correct_program_passes_and_reuse_is_delayed() {
    let output = run_with(&c_binary(), "harden-correct", HARDENED);
    common::assert_success_ending_with(&output, "harden-correct: ok");
}

/// The write-after-free program with an invalid switch value: a warning,
/// and the default, under which freed bytes are not looked at (what the
/// opt-in adds), so the program runs to its end.
#[test]
fn an_invalid_harden_value_warns_and_keeps_the_default() {
    let output = run_with(
        &c_binary(),
        "harden-write-after-free",
        &[("SLITTER_HARDEN", "maybe")],
    );
    assert!(output.status.success(), "{}", common::describe(&output));
    let lines = slitter_lines(&output);
    assert_eq!(lines.len(), 1, "{}", common::describe(&output));
    assert!(
        lines[0].contains("warning: SLITTER_HARDEN=\"maybe\""),
        "{lines:?}"
    );
}

/// `SLITTER_CONTINUE_ON_MISUSE=1`: report and carry on.
const CONTINUE: &[(&str, &str)] = &[("SLITTER_CONTINUE_ON_MISUSE", "1")];

/// Runs `case` with `env` and checks that it reported its misuse in one
/// `slitter:` line naming its pointer, then carried on: the allocator
/// still worked afterwards (`check_sound` in `tests/c/misuse.c`) and the
/// process exited 0.
fn assert_survives(binary: &Path, case: &str, env: &[(&str, &str)]) {
    let output = run_with(binary, case, env);
    let lines = slitter_lines(&output);
    let ptr = reported_pointer(case, &output);
    assert!(
        output.status.success()
            && String::from_utf8_lossy(&output.stdout).contains("survived")
            && lines.len() == 1
            && lines[0].contains(&ptr),
        "case {case}: expected one report naming {ptr} and a sound allocator after it\n{}",
        common::describe(&output)
    );
}

/// One test per case that can be survived: `name: "case";`.
macro_rules! survival_tests {
    ($($name:ident: $case:literal;)*) => {
        $(
            #[test]
            fn $name() {
                assert_survives(&c_binary(), $case, CONTINUE);
            }
        )*
    };
}

survival_tests! {
    continue_after_free_of_a_stack_address: "free-stack";
    continue_after_free_of_a_private_mapping: "free-private-mmap";
    continue_after_free_of_null_plus_one: "free-null-plus-one";
    continue_after_free_of_p_plus_16: "free-plus-16";
    continue_after_free_inside_a_large_allocation: "free-large-plus-4096";
    continue_after_a_double_free: "double-free";
    continue_after_a_delayed_double_free: "double-free-delayed";
    continue_after_a_double_free_in_another_thread: "double-free-other-thread";
    continue_after_a_large_double_free: "double-free-large";
    continue_after_free_of_a_stale_pointer: "stale-after-realloc";
    continue_after_realloc_of_a_freed_pointer: "realloc-freed";
    continue_after_realloc_of_an_interior_pointer: "realloc-interior";
    continue_after_usable_size_of_a_stack_address: "usable-size-stack";
    continue_after_usable_size_of_a_freed_large_allocation: "usable-size-large-freed";
    continue_after_free_of_a_class_object: "free-class-object";
    continue_after_free_sized_with_a_wrong_size: "free-sized-larger";
    continue_after_free_sized_of_a_large_allocation: "free-sized-large";
    continue_after_free_aligned_sized_with_a_wrong_alignment: "free-aligned-sized-alignment";
    continue_after_release_into_another_class: "release-same-size-class";
    continue_after_release_of_a_malloc_pointer: "release-malloc-pointer";
    continue_after_release_of_an_interior_pointer: "release-interior";
    continue_after_release_into_no_class: "release-no-class-freed";
    continue_after_a_double_release: "double-release";
    continue_after_a_double_release_in_another_thread: "double-release-other-thread";
    continue_after_a_double_free_into_a_purged_span: "double-free-purged";
    continue_after_a_double_release_into_a_purged_span: "double-release-purged";
}

#[test]
fn continue_after_a_hardened_double_free() {
    let env = [CONTINUE[0], HARDENED[0]];
    assert_survives(&c_binary(), "double-free", &env);
}

#[test]
fn continue_after_a_cpp_sized_delete_with_a_wrong_size() {
    let output = run_with(&cpp_binary(), "delete-sized", CONTINUE);
    let lines = slitter_lines(&output);
    assert!(
        output.status.success() && lines.len() == 1 && lines[0].contains("size mismatch"),
        "{}",
        common::describe(&output)
    );
}

/// What cannot be survived still aborts with the switch on: memory was
/// already written where it must not be (a large block's slack, a hardened
/// canary or a freed object).
#[test]
fn overwrites_still_abort_when_continuing() {
    assert_aborts_with(
        &c_binary(),
        "large-write-into-rounding",
        CONTINUE,
        &["heap overflow"],
    );
    let env = [CONTINUE[0], HARDENED[0]];
    assert_aborts_with(&c_binary(), "harden-canary", &env, &["heap overflow"]);
    assert_aborts_with(
        &c_binary(),
        "harden-write-after-free",
        &env,
        &["write after free"],
    );
}
