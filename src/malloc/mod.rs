//! The malloc personality: the C allocation API over slitter's classes.
//!
//! Owns: opt-in hardening
//! (`hardening`), the size classes' registration (`init`), the paths of
//! one allocation (`allocation`), `realloc`'s policy (`realloc`), the
//! exported C functions (`exports`), C++'s sized deletes
//! (`sized_free`), glibc's introspection functions (`glibc_extras`) and
//! the Rust `#[global_allocator]` (`global_alloc`).
//!
//! May call: every layer below (`sys`, `layout`, `heap`, `cache`, `stats`,
//! `process`). Files, bottom up: hardening, init, allocation,
//! realloc, exports, sized_free,
//! glibc_extras, global_alloc.

pub(crate) mod allocation;
pub(crate) mod exports;
pub(crate) mod glibc_extras;
pub(crate) mod global_alloc;
pub(crate) mod hardening;
pub(crate) mod init;
pub(crate) mod realloc;
pub(crate) mod sized_free;
