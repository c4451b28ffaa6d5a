//! Statistics about slitter's own records.
//!
//! Owns: read-only snapshots of counters kept by the other modules. The
//! counters only grow, and reading them takes no lock.

use crate::{arena, cache, large, rack};

/// How much internal memory slitter has created so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InternalCounts {
    /// Bytes of address space mapped for internal records.
    pub arena_bytes: usize,
    /// Magazines created (they are recycled, never freed).
    pub magazines: usize,
    /// Per-thread entry arrays created (recycled when threads exit).
    pub thread_caches: usize,
    /// Live large allocations (above the largest malloc size class).
    pub large_live: usize,
    /// Bytes of data in live large allocations.
    pub large_bytes: usize,
    /// Freed large mappings kept for reuse.
    pub large_cached: usize,
}

/// A snapshot of the internal counters.
///
/// ```
/// let counts = slitter::internal_counts();
/// assert!(counts.magazines <= counts.arena_bytes / 512);
/// ```
pub fn internal_counts() -> InternalCounts {
    let (large_live, large_bytes, large_cached) = large::counts();
    InternalCounts {
        large_live,
        large_bytes,
        large_cached,
        arena_bytes: arena::bytes_mapped(),
        magazines: rack::magazines_created(),
        thread_caches: cache::entry_arrays_created(),
    }
}
