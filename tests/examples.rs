//! The C examples build against the debug cdylib and run to completion.

mod common;

use common::Link;

#[test]
fn class_demo_runs() {
    let binary = common::compile_c("examples", "examples/class_demo.c", Link::Dynamic);
    let output = common::run(&binary);
    common::assert_success_ending_with(&output, "demo finished");
}
