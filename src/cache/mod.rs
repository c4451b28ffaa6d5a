//! The cache layer: classes and their free objects between the heap and
//! the callers.
//!
//! Owns: the rack of empty magazines (`rack`), the per-class tallies
//! (`tally`), the class table and registration (`class_table`), the checks
//! that accept a release (`checks`), the reports of the misuse they
//! refuse (`misuse_report`), the per-thread quarantines where released
//! objects may wait before reuse (`quarantine`), the ticks that purge
//! wholly free spans and `malloc_trim`'s purge (`purge`), and the
//! per-thread magazine caches with the fast paths (`thread_cache`).
//!
//! May call: `sys`, `layout`, `heap`. Files, bottom up: rack, tally,
//! class_table, checks, misuse_report, quarantine, purge, thread_cache.

pub(crate) mod checks;
pub(crate) mod class_table;
pub(crate) mod misuse_report;
pub(crate) mod purge;
pub(crate) mod quarantine;
pub(crate) mod rack;
pub(crate) mod tally;
pub(crate) mod thread_cache;
