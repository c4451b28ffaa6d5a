//! The examples run to completion: the C class-API demo, built against the
//! debug cdylib, and the Rust global-allocator example, which `cargo test`
//! builds into `target/<profile>/examples/`.

mod common;

use common::Link;

#[test]
fn class_demo_runs() {
    let binary = common::compile_c("examples", "examples/class_demo.c", Link::Dynamic);
    let output = common::run(&binary);
    common::assert_success_ending_with(&output, "demo finished");
}

#[test]
fn global_allocator_example_prints_the_known_answers() {
    let binary = common::profile_dir()
        .join("examples")
        .join("global_allocator");
    assert!(
        binary.is_file(),
        "{} is missing: run the tests with a plain `cargo test`, which builds \
         the examples, or `cargo build --example global_allocator` first",
        binary.display()
    );
    let output = common::run(&binary);
    common::assert_success_ending_with(&output, "global allocator example finished");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let expected = [
        "primes below 2000000: 148933 (4 threads)",
        "longest Collatz chain below 100000: 77031, 350 steps",
        "digits of 1..=999999: 5888889, ending 999999",
        "over-aligned allocations: 65 of 65 aligned",
        "global allocator example finished",
    ];
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        expected,
        "{}",
        common::describe(&output)
    );
}
