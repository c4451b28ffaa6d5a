//! The process layer: what slitter does at the process's events.
//!
//! Owns: the constructor and destructor (`hooks`) and the `fork()`
//! handlers (`fork`).
//!
//! May call: `sys`, `layout`, `heap`, `cache`, `stats`. Files, bottom up:
//! hooks, fork.

pub(crate) mod fork;
pub(crate) mod hooks;
