//! Tallies: how many objects each class has handed out and taken back.
//!
//! Owns: one pair of counters (allocations, releases) per class id. The
//! fast paths never touch them: a thread cache counts what its fast paths
//! did from its magazine tops, and adds that here on its slow paths, when
//! it exits, and when it takes a statistics snapshot (see `cache/thread_cache.rs`).
//!
//! Invariants: the counters only grow, and only by what threads really
//! did; each class's pair sits on its own cache line, so threads folding
//! into different classes do not contend.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::layout::constants::MAX_CLASSES;

#[repr(align(64))]
struct Tally {
    allocations: AtomicU64,
    releases: AtomicU64,
}

static TALLIES: [Tally; MAX_CLASSES] = [const {
    Tally {
        allocations: AtomicU64::new(0),
        releases: AtomicU64::new(0),
    }
}; MAX_CLASSES];

/// Adds `allocations` and `releases` to the counts of class `class_id`.
#[contracts::debug_requires((class_id as usize) < MAX_CLASSES)]
pub fn add(class_id: u32, allocations: u64, releases: u64) {
    let tally = &TALLIES[class_id as usize];
    if allocations != 0 {
        tally.allocations.fetch_add(allocations, Ordering::Relaxed);
    }
    if releases != 0 {
        tally.releases.fetch_add(releases, Ordering::Relaxed);
    }
}

/// The allocations and releases counted so far for class `class_id`.
pub fn counts(class_id: u32) -> (u64, u64) {
    let tally = &TALLIES[class_id as usize];
    (
        tally.allocations.load(Ordering::Relaxed),
        tally.releases.load(Ordering::Relaxed),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_per_class() {
        // Id 0 names no class, so nothing else counts into it.
        assert_eq!(counts(0), (0, 0));
        add(0, 5, 0);
        add(0, 0, 3);
        add(0, 2, 2);
        assert_eq!(counts(0), (7, 5));
    }
}
