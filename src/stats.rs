//! Statistics about slitter's own records.
//!
//! Owns: read-only snapshots of counters kept by the other modules. The
//! counters only grow, and reading them takes no lock.

use crate::{arena, cache, rack};

/// How much internal memory slitter has created so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InternalCounts {
    /// Bytes of address space mapped for internal records.
    pub arena_bytes: usize,
    /// Magazines created (they are recycled, never freed).
    pub magazines: usize,
    /// Per-thread entry arrays created (recycled when threads exit).
    pub thread_caches: usize,
}

/// A snapshot of the internal counters.
///
/// ```
/// let counts = slitter::internal_counts();
/// assert!(counts.magazines <= counts.arena_bytes / 256);
/// ```
pub fn internal_counts() -> InternalCounts {
    InternalCounts {
        arena_bytes: arena::bytes_mapped(),
        magazines: rack::magazines_created(),
        thread_caches: cache::entry_arrays_created(),
    }
}
