//! The statistics layer: what the lower layers hold, counted and reported.
//!
//! Owns: the counters read from classes, mappers and the large path
//! (`counters`), and the table `SLITTER_STATS=1` prints (`report`).
//!
//! May call: `sys`, `layout`, `heap`, `cache`. Files, bottom up: counters,
//! report.

pub(crate) mod counters;
pub(crate) mod report;
