//! The entry into slitter of every personality (the Rust and C class APIs,
//! malloc).
//!
//! Owns: what must hold before a personality hands out its first object:
//! the C shim agrees with Rust on the layout, the process hooks are linked
//! in, and the fork handlers are registered. Invariant: called outside
//! every slitter lock (`pthread_atfork` may call malloc); cheap after the
//! first call.

use crate::process::{fork, hooks, shim_check};

/// Makes slitter ready for a personality's first object (see above).
pub fn enter() {
    shim_check::check_against_c();
    hooks::keep();
    fork::prepare_for_fork();
}
