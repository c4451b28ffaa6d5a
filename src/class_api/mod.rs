//! The Rust class API: type-stable pools of objects for Rust programs.
//!
//! Owns: [`class::Class`] and its config, and the statistics of one class
//! by handle.
//!
//! May call: every layer below (`sys`, `layout`, `heap`, `cache`, `stats`,
//! `process`). Files, bottom up: class.

pub(crate) mod class;
