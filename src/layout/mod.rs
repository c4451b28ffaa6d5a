//! The layout layer: where things are in memory, as values and address
//! arithmetic.
//!
//! Owns: the layout constants (`constants`, cross-checked with the C shim
//! by the cache layer), the registry of chunks (`chunk_registry`), the
//! span records (`span`), the two-byte object states and their tag tables
//! (`object_states`), the held bits that say which objects their spans
//! hold free (`held_bits`), and the magazine, the 512-byte block of slots shared
//! with the C fast path (`magazine`), and the sizes of the malloc API's
//! size classes (`size_classes`: values and arithmetic, here because the
//! class table reserves their class ids).
//!
//! May call: `sys`. Files, bottom up: constants, chunk_registry, span,
//! object_states, held_bits, magazine, size_classes.

pub(crate) mod chunk_registry;
pub(crate) mod constants;
pub(crate) mod held_bits;
pub(crate) mod magazine;
pub(crate) mod object_states;
pub(crate) mod size_classes;
pub(crate) mod span;
