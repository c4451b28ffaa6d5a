//! The large blocks of the malloc API: requests above the largest size
//! class, or aligned beyond a span.
//!
//! Owns: the life of a large allocation, its placement and resizing
//! (`blocks`); where live allocations are found: lock-free records for the
//! arena's blocks (`records`), a table sharded by address, with a history
//! of freed addresses, for mappings of their own (`table`); the memory of
//! one allocation and its slack checks (`mapping`); the size classes and
//! the caches of freed blocks per class, with their decay (`reuse`); the
//! quarantine of freed blocks when hardened (`quarantine`); the
//! arena of reservations blocks are carved from (`arena`), and which of
//! its pages are resident (`page_states`).
//!
//! May call: `sys`, `layout`, and the heap layer's `mapper`. Files, bottom
//! up: page_states, arena, reuse, quarantine, mapping, records, table,
//! blocks.

pub(crate) mod arena;
pub(crate) mod blocks;
pub(crate) mod mapping;
pub(crate) mod page_states;
pub(crate) mod quarantine;
pub(crate) mod records;
pub(crate) mod reuse;
pub(crate) mod table;
