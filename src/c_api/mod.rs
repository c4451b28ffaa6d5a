//! The C class API: what `include/slitter.h` declares, over the cache
//! layer's classes.
//!
//! Owns: classes from C (`classes`) and the C statistics API (`stats`).
//!
//! May call: every layer below (`sys`, `layout`, `heap`, `cache`, `stats`,
//! `process`). Files, bottom up: classes, stats.

pub(crate) mod classes;
pub(crate) mod stats;
