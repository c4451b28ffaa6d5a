//! The process layer: what slitter does at the process's events.
//!
//! Owns: the start-up check of the C shim (`shim_check`), the constructor
//! and destructor (`hooks`), the `fork()` handlers (`fork`), and the entry
//! every personality goes through before its first object (`entry`).
//!
//! May call: `sys`, `layout`, `heap`, `cache`, `stats`. Files, bottom up:
//! shim_check, hooks, fork, entry.

pub(crate) mod entry;
pub(crate) mod fork;
pub(crate) mod hooks;
pub(crate) mod shim_check;
