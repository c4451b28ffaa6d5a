//! Death tests: misuse that slitter must stop with one `slitter:` line on
//! stderr and SIGABRT.
//!
//! The C case runs `tests/c/class_mismatch.c`. The Rust cases re-run this
//! test binary, filtered to the `death_child` test, with `SLITTER_DEATH_CASE`
//! naming the misuse (class API releases, and `dealloc` of
//! `slitter::Slitter`); `death_child` does nothing when the variable is unset.
//! Programs report the addresses and class ids they use as `key=value`
//! words on stdout (flushed before the misuse) so the parent can check that
//! the report names them.

mod common;

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;
use std::io::Write;
use std::process::{Command, Output};
use std::ptr::NonNull;

use common::Link;
use slitter::{Class, ClassConfig, Slitter, SlitterClass};

const CASE_VAR: &str = "SLITTER_DEATH_CASE";

extern "C" {
    fn slitter_allocate(class: SlitterClass) -> *mut c_void;
    fn slitter_class_register(config: *const slitter::SlitterClassConfig) -> SlitterClass;
}

/// The value of `key=` on the child's stdout.
fn reported<'a>(output: &'a Output, key: &str) -> &'a str {
    let stdout = std::str::from_utf8(&output.stdout).expect("stdout is UTF-8");
    common::field(stdout, key).unwrap_or_else(|| {
        panic!(
            "the child printed no {key}=...\n{}",
            common::describe(output)
        )
    })
}

/// Asserts that `line` contains every one of `parts`.
fn assert_mentions(line: &str, parts: &[&str], output: &Output) {
    for part in parts {
        assert!(
            line.contains(part),
            "the report {line:?} does not mention {part:?}\n{}",
            common::describe(output)
        );
    }
}

/// Checks a class-mismatch report: `owner` allocated the object at `ptr`,
/// which was released into `wrong`; both are `(name, id)`.
fn check_mismatch_report(output: &Output, owner: (&str, &str), wrong: (&str, &str)) {
    let line = common::assert_aborted(output, "class mismatch");
    let ptr = reported(output, "ptr");
    let owner_label = format!("class {}, id {}", owner.0, owner.1);
    let wrong_label = format!("class {}, id {}", wrong.0, wrong.1);
    assert_mentions(
        &line,
        &["class mismatch", ptr, &owner_label, &wrong_label],
        output,
    );
    // The report names the class released into first, then the owner.
    assert!(
        line.find(&wrong_label) < line.find(&owner_label),
        "the report {line:?} swaps the two classes\n{}",
        common::describe(output)
    );
}

fn check_c_class_mismatch(link: Link) {
    let binary = common::compile_c("death", "tests/c/class_mismatch.c", link);
    let output = common::run(&binary);
    let apple = reported(&output, "apple");
    let banana = reported(&output, "banana");
    check_mismatch_report(
        &output,
        ("mismatch-apple", apple),
        ("mismatch-banana", banana),
    );
}

#[test]
fn c_class_mismatch_aborts_with_cdylib() {
    check_c_class_mismatch(Link::Dynamic);
}

#[test]
fn c_class_mismatch_aborts_with_staticlib() {
    check_c_class_mismatch(Link::Static);
}

/// Runs `death_child` in a new process of this test binary with `case`.
fn run_case(case: &str) -> Output {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    let mut command = Command::new(exe);
    command
        .args(["death_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CASE_VAR, case);
    common::no_core_dumps(&mut command);
    common::output(&mut command)
}

fn class(name: &str, size: usize) -> Class {
    Class::new(ClassConfig {
        name: Some(name),
        size,
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("cannot register {name}: {e}"))
}

/// Prints `key=value` words on one line of stdout and flushes it, so the
/// parent sees them even though the process then aborts.
fn tell(words: &[(&str, String)]) {
    let line: Vec<String> = words.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", line.join(" ")).unwrap();
    stdout.flush().unwrap();
}

/// The misuse of one case, run in the child. Returns only if slitter let
/// the misuse pass.
fn misuse(case: &str) {
    match case {
        "mismatch" => {
            let apple = class("death-apple", 32);
            let banana = class("death-banana", 32);
            let object = apple.allocate().expect("memory available");
            tell(&[
                ("apple", apple.id().to_string()),
                ("banana", banana.id().to_string()),
                ("ptr", format!("{:p}", object.as_ptr())),
            ]);
            banana.release(object);
        }
        "stack" => {
            let class = class("death-stack", 32);
            let mut local = [0u64; 4];
            let object = NonNull::from(&mut local).cast::<c_void>();
            tell(&[
                ("id", class.id().to_string()),
                ("ptr", format!("{:p}", object.as_ptr())),
            ]);
            class.release(object);
        }
        "interior" => {
            let class = class("death-interior", 32);
            let object = class.allocate().expect("memory available");
            // SAFETY: 8 bytes into a 32-byte object stays inside it.
            let inside = unsafe { object.cast::<u8>().add(8) }.cast::<c_void>();
            tell(&[
                ("id", class.id().to_string()),
                ("ptr", format!("{:p}", inside.as_ptr())),
            ]);
            class.release(inside);
        }
        "double" => {
            let class = class("death-double", 32);
            let object = class.allocate().expect("memory available");
            tell(&[
                ("id", class.id().to_string()),
                ("ptr", format!("{:p}", object.as_ptr())),
            ]);
            class.release(object);
            class.release(object);
        }
        "delayed" => {
            // Release a, release b, thousands of other operations (which
            // reuse a and b and release them again), then release the stale
            // pointer a once more.
            let class = class("death-delayed", 48);
            let a = class.allocate().expect("memory available");
            let b = class.allocate().expect("memory available");
            tell(&[
                ("id", class.id().to_string()),
                ("ptr", format!("{:p}", a.as_ptr())),
            ]);
            class.release(a);
            class.release(b);
            for _ in 0..10 {
                let held: Vec<_> = (0..500)
                    .map(|_| class.allocate().expect("memory available"))
                    .collect();
                assert!(held.contains(&a), "a is reused");
                for object in held {
                    class.release(object);
                }
            }
            class.release(a);
        }
        "other-thread" => {
            let class = class("death-other-thread", 64);
            let object = class.allocate().expect("memory available");
            tell(&[
                ("id", class.id().to_string()),
                ("ptr", format!("{:p}", object.as_ptr())),
            ]);
            class.release(object);
            let addr = object.as_ptr() as usize;
            std::thread::spawn(move || {
                let object = NonNull::new(addr as *mut c_void).expect("not null");
                class.release(object);
            })
            .join()
            .expect("the releasing thread aborts the process first");
        }
        "dealloc-stack" => {
            let layout = Layout::new::<[u64; 4]>();
            let mut local = [0u64; 4];
            let ptr = local.as_mut_ptr().cast::<u8>();
            tell(&[("ptr", format!("{ptr:p}"))]);
            // SAFETY: none; handing slitter a stack address is the misuse
            // under test, which it must catch before touching the memory.
            unsafe { Slitter.dealloc(ptr, layout) };
        }
        "dealloc-double" => {
            let layout = Layout::from_size_align(48, 16).expect("valid layout");
            // SAFETY: a non-zero size.
            let ptr = unsafe { Slitter.alloc(layout) };
            assert!(!ptr.is_null(), "memory available");
            tell(&[("ptr", format!("{ptr:p}"))]);
            // SAFETY: the first dealloc is valid; the second is the misuse
            // under test.
            unsafe {
                Slitter.dealloc(ptr, layout);
                Slitter.dealloc(ptr, layout);
            }
        }
        "unknown-mapper" => {
            let config = slitter::SlitterClassConfig {
                name: c"death-mapperless".as_ptr(),
                size: 32,
                zero_init: false,
                mapper_name: c"no-such-mapper".as_ptr(),
                purge: false,
            };
            // SAFETY: a valid config; the unknown mapper is the error under
            // test.
            unsafe { slitter_class_register(&config) };
        }
        _ => {
            let id: u32 = case
                .strip_prefix("unknown-id=")
                .and_then(|id| id.parse().ok())
                .unwrap_or_else(|| panic!("unknown death case {case:?}"));
            assert_eq!(Class::from_id(id), None, "class id {id} is registered");
            tell(&[("id", id.to_string())]);
            // SAFETY: slitter_allocate takes any class by value; an unknown
            // id is the misuse under test.
            let object = unsafe { slitter_allocate(SlitterClass { id }) };
            tell(&[("survived", format!("{object:p}"))]);
        }
    }
}

/// Does the misuse named by `SLITTER_DEATH_CASE`; a no-op without it.
#[test]
fn death_child() {
    let Ok(case) = std::env::var(CASE_VAR) else {
        return;
    };
    misuse(&case);
    panic!("slitter did not abort in death case {case:?}");
}

#[test]
fn registering_a_class_with_an_unknown_mapper_names_both() {
    let output = run_case("unknown-mapper");
    let line = common::assert_aborted(&output, "unknown-mapper");
    assert_mentions(
        &line,
        &[
            "cannot register class \"death-mapperless\"",
            "no mapper is registered under the name \"no-such-mapper\"",
        ],
        &output,
    );
}

#[test]
fn rust_class_mismatch_aborts() {
    let output = run_case("mismatch");
    let apple = reported(&output, "apple");
    let banana = reported(&output, "banana");
    check_mismatch_report(&output, ("death-apple", apple), ("death-banana", banana));
}

/// Runs a release-misuse case of class `death-<case>` and checks that its
/// one report names the pointer, the class and `phrase`.
fn check_bad_release(case: &str, phrase: &str) {
    let output = run_case(case);
    let line = common::assert_aborted(&output, case);
    let label = format!("class death-{case}, id {}", reported(&output, "id"));
    assert_mentions(&line, &[reported(&output, "ptr"), phrase, &label], &output);
}

#[test]
fn releasing_a_stack_address_aborts() {
    check_bad_release("stack", "which slitter did not allocate");
}

#[test]
fn releasing_an_interior_pointer_aborts() {
    check_bad_release("interior", "which is not the start of");
}

#[test]
fn double_release_aborts() {
    check_bad_release("double", "double release");
}

#[test]
fn delayed_double_release_aborts() {
    check_bad_release("delayed", "double release");
}

#[test]
fn double_release_from_another_thread_aborts() {
    check_bad_release("other-thread", "double release");
}

/// Runs a `dealloc` misuse case of the global allocator and checks that
/// its one report names the pointer and `phrase`.
fn check_bad_dealloc(case: &str, phrase: &str) {
    let output = run_case(case);
    let line = common::assert_aborted(&output, case);
    assert_mentions(&line, &[reported(&output, "ptr"), phrase], &output);
}

#[test]
fn global_allocator_dealloc_of_a_stack_address_aborts() {
    check_bad_dealloc("dealloc-stack", "which slitter did not allocate");
}

#[test]
fn global_allocator_double_dealloc_aborts() {
    check_bad_dealloc("dealloc-double", "double free");
}

fn check_unknown_id(id: u32) {
    let case = format!("unknown-id={id}");
    let output = run_case(&case);
    let line = common::assert_aborted(&output, &case);
    assert_mentions(&line, &[&format!("unknown class id {id}")], &output);
}

#[test]
fn allocating_from_class_id_zero_aborts() {
    check_unknown_id(0);
}

#[test]
fn allocating_from_an_unregistered_class_id_aborts() {
    check_unknown_id(slitter::MAX_CLASSES as u32 - 1);
}

#[test]
fn allocating_from_an_out_of_range_class_id_aborts() {
    check_unknown_id(u32::MAX);
}
