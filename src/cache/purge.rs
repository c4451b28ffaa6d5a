//! Purging: the ticks that give wholly free spans back after their decay,
//! and `malloc_trim`'s purge of every one at once.
//!
//! Owns: the bound on the work of one tick ([`TICK_BUDGET`] spans), and
//! the visit of the presses whose classes have spans waiting
//! (`heap/decay.rs` says which, and when a tick is due).
//!
//! Invariants: a tick purges at most `TICK_BUDGET` spans, so no slow path
//! pays for more; the thread caches call [`tick`] on their slow paths
//! only, which costs one load while no span waits.

use crate::cache::class_table;
use crate::heap::decay;

/// The most spans one tick purges.
pub const TICK_BUDGET: usize = 8;

/// Purges up to [`TICK_BUDGET`] spans that have waited out the decay, if a
/// tick is due.
#[inline(always)]
pub fn tick() {
    if decay::due() {
        purge_expired();
    }
}

#[cold]
#[inline(never)]
fn purge_expired() {
    let Some(delay) = decay::delay_ms() else {
        return;
    };
    let now = decay::now_ms();
    let mut budget = TICK_BUDGET;
    decay::each_waiting_class(|class_id| {
        if budget == 0 {
            return;
        }
        if let Some(info) = class_table::info(class_id) {
            let bytes = info.press.purge(now, delay, budget);
            budget -= bytes.div_ceil(info.press.span_size()).min(budget);
        }
    });
}

/// Purges every wholly free span of every class that purges, whatever its
/// wait; returns the bytes purged (`malloc_trim`).
#[cfg(feature = "malloc")]
pub fn purge_all() -> usize {
    let now = decay::now_ms();
    let mut purged = 0;
    class_table::each_class(|info| purged += info.press.purge(now, 0, usize::MAX));
    purged
}
