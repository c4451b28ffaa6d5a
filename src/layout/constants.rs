//! Layout constants of the heap, and their cross-check against the C shim.
//!
//! Owns: every size that fixes the shape of a chunk (data alignment, guard
//! and metadata sizes, and the parts of the metadata region: span records,
//! tag table, object states, held bits), the span and object granularities, the
//! span-record size and the magazine capacity, and the size of the
//! per-thread cache header. The same
//! constants are defined again in `c/layout.h`;
//! [`check_against_c`] compares the two sets once, at initialisation, and
//! aborts with a message naming the first constant that differs.
//!
//! Invariants (checked at compile time below): every region size is a
//! multiple of the page size, and the alignments are powers of two; one
//! chunk's span records fit in their part of its metadata region, and its
//! object states (one per granule of data) in theirs.
//!
//! The `test_only_small_constants` feature shrinks the chunk to 32 MiB and
//! spans to 64 KiB so tests reach chunk and span roll-over quickly.

use static_assertions::const_assert;

#[cfg(not(feature = "test_only_small_constants"))]
mod values {
    pub const DATA_ALIGNMENT: usize = 1 << 30;
    pub const GUARD_PAGE_SIZE: usize = 2 << 20;
    pub const RECORDS_SIZE: usize = 4 << 20;
    /// Spans of a class are about this large, unless objects are larger.
    pub const SPAN_TARGET_SIZE: usize = 1 << 20;
}

#[cfg(feature = "test_only_small_constants")]
mod values {
    pub const DATA_ALIGNMENT: usize = 32 << 20;
    pub const GUARD_PAGE_SIZE: usize = 16 << 10;
    pub const RECORDS_SIZE: usize = 128 << 10;
    pub const SPAN_TARGET_SIZE: usize = 64 << 10;
}

pub use values::*;

/// Spans start and end on this alignment; each slot of this size in a
/// chunk's data region has one span record.
pub const SPAN_ALIGNMENT: usize = 16 << 10;

/// Size of one span record in the metadata region.
pub const SPAN_METADATA_SIZE: usize = 64;

/// Objects start on this alignment (every object size is a multiple of
/// it), and each granule of this size in a chunk's data region has one
/// object state.
pub const GRANULE: usize = 16;

/// Bytes of one object state: a tag byte and a flags byte (see
/// `layout/object_states.rs`).
pub const STATE_SIZE: usize = 2;

/// Offset of a chunk's tag table (which class each object state names, see
/// `layout/object_states.rs`) in its metadata region, after the span records.
pub const TAG_TABLE_OFFSET: usize = RECORDS_SIZE;

/// Bytes of the tag table: a 16-bit entry for every 16-bit state, so that
/// any state, even one a wild write changed, indexes inside it (only its
/// first page is ever written: the entries of live states).
pub const TAG_TABLE_SIZE: usize = 2 << 16;

/// Offset of a chunk's object states in its metadata region.
pub const STATES_OFFSET: usize = TAG_TABLE_OFFSET + TAG_TABLE_SIZE;

/// Bytes of a chunk's object states: one state per granule of data.
pub const STATES_SIZE: usize = DATA_ALIGNMENT / GRANULE * STATE_SIZE;

/// Offset of a chunk's held bits (which objects their spans hold free,
/// see `layout/held_bits.rs`) in its metadata region, after the states.
pub const HELD_OFFSET: usize = STATES_OFFSET + STATES_SIZE;

/// Bytes of a chunk's held bits: one bit per granule of data.
pub const HELD_SIZE: usize = DATA_ALIGNMENT / GRANULE / 8;

/// Size of a chunk's metadata region: span records, tag table, object
/// states, held bits.
pub const METADATA_SIZE: usize = HELD_OFFSET + HELD_SIZE;

/// Number of object slots in a magazine.
pub const MAGAZINE_SIZE: usize = 31;

/// Alignment (and size) of a magazine: a 16-byte header and
/// `MAGAZINE_SIZE` 16-byte slots.
pub const MAGAZINE_ALIGNMENT: usize = 512;

/// The largest span the mill hands out, hence the largest object size.
///
/// ```
/// use slitter::{Class, ClassConfig, ClassError, MAX_SPAN_SIZE};
///
/// let config = |size| ClassConfig {
///     size,
///     ..Default::default()
/// };
/// assert!(Class::new(config(MAX_SPAN_SIZE)).is_ok());
/// assert_eq!(
///     Class::new(config(MAX_SPAN_SIZE + 1)),
///     Err(ClassError::SizeTooLarge {
///         size: MAX_SPAN_SIZE + 1,
///         max: MAX_SPAN_SIZE
///     })
/// );
/// ```
pub const MAX_SPAN_SIZE: usize = DATA_ALIGNMENT / 16;

/// Number of span records (and span slots) per chunk.
pub const SPANS_PER_CHUNK: usize = DATA_ALIGNMENT / SPAN_ALIGNMENT;

/// The metadata region starts this many bytes below the chunk's data.
pub const METADATA_OFFSET: usize = GUARD_PAGE_SIZE + METADATA_SIZE;

/// Address space reserved per chunk: enough to find a `DATA_ALIGNMENT`-aligned
/// data region with its prefix and suffix at any page-aligned base.
pub const CHUNK_RESERVATION_SIZE: usize = 2 * DATA_ALIGNMENT + 3 * GUARD_PAGE_SIZE + METADATA_SIZE;

/// Highest user-space address (exclusive) on x86-64 with 4-level paging; mmap
/// never returns memory above it unless asked with a hint.
pub const ADDRESS_SPACE_LIMIT: usize = 1 << 47;

/// Class ids are below this bound (id 0 means "no class"); the malloc size
/// classes take some of them, so fewer user classes can be registered.
///
/// ```
/// use slitter::{Class, ClassConfig, ClassError, MAX_CLASSES};
///
/// let config = ClassConfig {
///     size: 8,
///     ..Default::default()
/// };
/// let registered = (0..MAX_CLASSES)
///     .map_while(|_| match Class::new(config) {
///         Ok(class) => Some(class.id()),
///         Err(error) => {
///             assert_eq!(error, ClassError::TooManyClasses);
///             None
///         }
///     })
///     .count();
/// assert!(registered > 0 && registered < MAX_CLASSES);
/// ```
pub const MAX_CLASSES: usize = 1024;

const_assert!(DATA_ALIGNMENT.is_power_of_two());
const_assert!(GUARD_PAGE_SIZE.is_power_of_two());
const_assert!(SPAN_ALIGNMENT.is_power_of_two());
const_assert!(GRANULE.is_power_of_two());
const_assert!(GUARD_PAGE_SIZE.is_multiple_of(4096));
const_assert!(RECORDS_SIZE.is_multiple_of(4096));
const_assert!(METADATA_SIZE.is_multiple_of(4096));
const_assert!(SPANS_PER_CHUNK * SPAN_METADATA_SIZE <= RECORDS_SIZE);
// The fast paths address the tag table and the states with 32-bit
// displacements from the metadata region's start.
const_assert!(STATES_OFFSET < 1 << 31);
const_assert!(SPAN_TARGET_SIZE.is_multiple_of(SPAN_ALIGNMENT));
const_assert!(MAX_SPAN_SIZE >= SPAN_TARGET_SIZE);
const_assert!(METADATA_OFFSET + GUARD_PAGE_SIZE <= DATA_ALIGNMENT);
const_assert!(16 * (MAGAZINE_SIZE + 1) == MAGAZINE_ALIGNMENT);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_record_size_matches_the_struct() {
        assert_eq!(
            core::mem::size_of::<crate::layout::span::SpanRecord>(),
            SPAN_METADATA_SIZE
        );
    }
}
