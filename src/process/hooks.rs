//! What slitter does when the process starts and when it exits.
//!
//! Owns: slitter's constructor, in `.init_array` (run before `main`, or
//! when the library is loaded), and its destructor, in `.fini_array` (run
//! by `exit`, after the program's own exit handlers). The constructor
//! settles the configuration from the environment that the C library
//! passes it and prints the `SLITTER_VERBOSE` line; the destructor prints
//! the statistics table to stderr when `SLITTER_STATS` is on.
//!
//! Invariants: neither allocates; the destructor writes with `write(2)`
//! only, so it works whatever state the program's stdio is in.

use core::ffi::{c_char, c_int};

use crate::stats::report;
use crate::sys::config;

/// The signature glibc calls `.init_array` functions with.
type Constructor = extern "C" fn(c_int, *const *const c_char, *const *const c_char);

#[used]
#[link_section = ".init_array"]
static ON_START: Constructor = on_start;

#[used]
#[link_section = ".fini_array"]
static ON_EXIT: extern "C" fn() = on_exit;

/// Keeps the hooks in every program that uses slitter. A linker takes an
/// object file out of a static archive (`libslitter.a`) only if something
/// references it, and nothing references the hooks, so in a build with
/// several codegen units they could be left out; slitter calls this when
/// a class is registered, which every use of slitter starts with.
pub fn keep() {
    core::hint::black_box((&raw const ON_START, &raw const ON_EXIT));
}

extern "C" fn on_start(_argc: c_int, _argv: *const *const c_char, envp: *const *const c_char) {
    // SAFETY: the C library passes the process's environment array.
    let config = unsafe { config::settle_at_start(envp) };
    if config.verbose() {
        config::print_effective(config);
    }
}

extern "C" fn on_exit() {
    if config::current().stats() {
        // Nothing can report a failure to write at exit.
        let _ = report::print_stats(libc::STDERR_FILENO);
    }
}
