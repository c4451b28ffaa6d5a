//! The malloc personality: the C allocation API over slitter's classes.
//!
//! Owns: opt-in hardening
//! (`hardening`), the size classes' registration (`init`), the paths of
//! one allocation (`allocation`), `realloc`'s policy (`realloc`), the
//! exported C functions (`exports`), C++'s sized deletes
//! (`sized_free`), glibc's introspection functions (`glibc_extras`) and
//! the Rust `#[global_allocator]` (`global_alloc`).
//!
//! The exported C symbols (`exports`, `sized_free`, `glibc_extras`) are
//! compiled only with the cargo feature `malloc` (on by default): without
//! it, a crate depending on slitter keeps its process's C allocator, and
//! [`Slitter`](crate::Slitter) still reaches the same paths through
//! `allocation` and `realloc`.
//!
//! May call: every layer below (`sys`, `layout`, `heap`, `cache`, `stats`,
//! `process`). Files, bottom up: hardening, init, allocation,
//! realloc, exports, sized_free,
//! glibc_extras, global_alloc.

pub(crate) mod allocation;
#[cfg(feature = "malloc")]
pub(crate) mod exports;
#[cfg(feature = "malloc")]
pub(crate) mod glibc_extras;
pub(crate) mod global_alloc;
pub(crate) mod hardening;
pub(crate) mod init;
pub(crate) mod realloc;
#[cfg(feature = "malloc")]
pub(crate) mod sized_free;
