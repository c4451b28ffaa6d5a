//! The examples run to completion: the C class-API demo, built against the
//! debug cdylib; the LD_PRELOAD demo script, given the debug cdylib (it
//! must not build anything: cargo holds the build lock while tests run);
//! and the Rust global-allocator example, which `cargo test` builds into
//! `target/<profile>/examples/`.

mod common;

use common::Link;

#[test]
fn class_demo_runs() {
    let binary = common::compile_c("examples", "examples/class_demo.c", Link::Dynamic);
    let output = common::run(&binary);
    common::assert_success_ending_with(&output, "demo finished");
}

#[test]
fn preload_demo_runs_python3_on_slitter_and_catches_a_double_free() {
    let library = common::preload_library()
        .canonicalize()
        .expect("the debug libslitter.so exists");
    let mut command = common::command(&common::manifest_dir().join("examples/preload_demo.sh"));
    command.arg(&library).env("PYTHON", common::python3());
    let output = common::output(&mut command);
    common::assert_success_ending_with(&output, "preload demo finished");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let has_line = |prefix: &str| stdout.lines().any(|line| line.starts_with(prefix));
    let from_slitter = format!("malloc comes from {}", library.display());
    for prefix in [
        from_slitter.as_str(),
        "slitter: total ",
        "slitter: counts are exact",
        "slitter: double free of 0x",
    ] {
        assert!(
            has_line(prefix),
            "no line starting with {prefix:?}\n{}",
            common::describe(&output)
        );
    }
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
