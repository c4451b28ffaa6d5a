//! Span records: out-of-band metadata for each span slot of a chunk.
//!
//! Owns: the layout of a span record and the way from any address to its
//! record: `record = metadata_for(addr) + ((addr % DATA_ALIGNMENT) /
//! SPAN_ALIGNMENT) * SPAN_METADATA_SIZE`, where the chunk registry gives
//! the metadata region (`METADATA_OFFSET` below the chunk's data, or an
//! all-zero stand-in outside chunks). The state of each object is not
//! here but in `layout/object_states.rs`; records say which class owns a span
//! slot, where the span's objects lie and how far its press has got, and,
//! in a span's first record, how many objects the span holds free (their
//! bits are in `layout/held_bits.rs`), whether a thread owns it, and its
//! place in its press's lists.
//!
//! Invariants: an all-zero record is a valid "unused" record (class id 0);
//! every record of a multi-slot span carries the span's class id, object
//! count, first address and tag, so any address inside the
//! span finds them; the class id of a record changes at most once, from 0
//! to its class, and is written last (with release ordering) so that a
//! record with a class is complete. The bump index of a span's first
//! record only grows while the span's memory lives (the press hands each
//! object out at most once between purges), and goes back to 0 when the
//! press purges the span, which it does only while it owns the span and
//! the span holds every object it ever handed out. The held count is
//! raised before the objects' held bits are set and lowered after they
//! are cleared, so it is never below the number of bits set.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};

use static_assertions::const_assert_eq;

use crate::layout::chunk_registry;
use crate::layout::constants::{DATA_ALIGNMENT, SPAN_ALIGNMENT, SPAN_METADATA_SIZE};

/// Metadata for one `SPAN_ALIGNMENT` slot of chunk data. The same layout is
/// declared in C as `struct slitter_span_record` (`c/layout.h`).
///
/// The fields after the class id are written once, by [`SpanRecord::init`],
/// before the class id is published with release ordering, and read only
/// after the class id was read as non-zero (with acquire ordering), so
/// plain reads of them never race.
#[repr(C)]
pub struct SpanRecord {
    /// Owning class, or 0 when the slot is not part of a span.
    class_id: AtomicU32,
    /// Number of objects in the span.
    object_count: UnsafeCell<u32>,
    /// Address of the span's first object.
    begin: UnsafeCell<usize>,
    /// The class's tag in this chunk (see `layout/object_states.rs`).
    tag: UnsafeCell<u8>,
    /// Which of its press's lists holds the span (see `heap/span_list.rs`;
    /// changed under the press's lock).
    pub list: AtomicU8,
    unused: [u8; 6],
    /// Index of the next object never handed out (only the span's first
    /// record's fields from here on are used).
    pub bump_index: AtomicU64,
    /// The objects the span holds free (`HELD_MASK`), and [`OWNED`].
    pub status: AtomicU64,
    /// The word of the span's held bits where its owner looks first.
    pub cursor: AtomicU32,
    /// When the span became wholly free (`heap/decay.rs` milliseconds).
    pub emptied_at: AtomicU32,
    /// The next span in its press's list (0: none).
    pub next: AtomicUsize,
    /// The previous span in its press's list (0: none).
    pub prev: AtomicUsize,
}

/// The part of [`SpanRecord::status`] that counts the objects the span
/// holds free (returned to it and not taken since).
pub const HELD_MASK: u64 = u32::MAX as u64;

/// [`SpanRecord::status`] bit: a thread (or the press, while it purges the
/// span) owns the span: it alone takes objects from it, and the span is
/// on no list.
pub const OWNED: u64 = 1 << 32;

// SAFETY: see the type's documentation: the plain fields are written before
// the class id is published and read only after it is observed.
unsafe impl Sync for SpanRecord {}

const_assert_eq!(core::mem::size_of::<SpanRecord>(), SPAN_METADATA_SIZE);

/// The offset of the record for `addr` inside its chunk's metadata region.
#[inline(always)]
pub fn record_offset(addr: usize) -> usize {
    ((addr & (DATA_ALIGNMENT - 1)) / SPAN_ALIGNMENT) * SPAN_METADATA_SIZE
}

/// The record for the slot containing `addr`. Any address finds a readable
/// record: outside slitter's chunks, an unused (all-zero) one.
#[inline(always)]
pub fn record_for(addr: usize) -> &'static SpanRecord {
    record_in(chunk_registry::metadata_for(addr), addr)
}

/// The record for `addr` in `metadata`, the region the chunk registry gives
/// for `addr`.
#[inline(always)]
fn record_in(metadata: usize, addr: usize) -> &'static SpanRecord {
    let record = metadata + record_offset(addr);
    // SAFETY: the registry gives a mapped, immortal region of
    // METADATA_SIZE bytes, and record_offset stays below
    // SPANS_PER_CHUNK * SPAN_METADATA_SIZE <= RECORDS_SIZE; records
    // are aligned to their 64-byte size.
    unsafe { &*(record as *const SpanRecord) }
}

/// The class of the span holding `addr`, if any (no check that `addr` is
/// an object): the routing left when the checks are compiled out.
#[cfg(feature = "measure_without_checks")]
#[inline(always)]
pub fn class_of(addr: usize) -> Option<u32> {
    let class_id = record_in(chunk_registry::user_metadata_for(addr)?, addr).class_id();
    (class_id != 0).then_some(class_id)
}

impl SpanRecord {
    /// The span's class id (0: not part of any span). Once non-zero, the
    /// rest of the record is initialised and may be read.
    #[inline(always)]
    pub fn class_id(&self) -> u32 {
        self.class_id.load(Ordering::Acquire)
    }

    /// Makes this unused record part of a span of `class_id`, whose
    /// `object_count` objects start at `begin` and whose states carry
    /// `tag`. Only the mill calls this, once
    /// per record, for slots it owns.
    #[contracts::debug_requires(self.class_id.load(Ordering::Relaxed) == 0 && class_id != 0)]
    pub fn init(&self, class_id: u32, object_count: u32, begin: usize, tag: u8) {
        // SAFETY: the class id is still 0, so no reader looks at the other
        // fields, and only the mill writes them, under its ownership of the
        // slot.
        unsafe {
            *self.object_count.get() = object_count;
            *self.begin.get() = begin;
            *self.tag.get() = tag;
        }
        self.class_id.store(class_id, Ordering::Release);
    }

    /// Number of objects in this used record's span.
    #[contracts::debug_requires(self.class_id() != 0)]
    pub fn object_count(&self) -> u32 {
        // SAFETY: written before the class id was published (type docs).
        unsafe { *self.object_count.get() }
    }

    /// Address of the first object of this used record's span.
    #[contracts::debug_requires(self.class_id() != 0)]
    pub fn begin(&self) -> usize {
        // SAFETY: as in `object_count`.
        unsafe { *self.begin.get() }
    }

    /// The tag of this used record's class in its chunk.
    #[contracts::debug_requires(self.class_id() != 0)]
    pub fn tag(&self) -> u8 {
        // SAFETY: as in `object_count`.
        unsafe { *self.tag.get() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_offsets_follow_the_layout() {
        let chunk = 7 * DATA_ALIGNMENT;
        assert_eq!(record_offset(chunk), 0);
        assert_eq!(record_offset(chunk + SPAN_ALIGNMENT - 1), 0);
        assert_eq!(record_offset(chunk + SPAN_ALIGNMENT), SPAN_METADATA_SIZE);
        let last = (DATA_ALIGNMENT / SPAN_ALIGNMENT - 1) * SPAN_METADATA_SIZE;
        assert_eq!(record_offset(chunk + DATA_ALIGNMENT - 1), last);
        assert!(last + SPAN_METADATA_SIZE <= crate::layout::constants::RECORDS_SIZE);
    }

    #[test]
    fn foreign_addresses_find_unused_records() {
        let local = 0u64;
        for addr in [0, 1, &local as *const u64 as usize, usize::MAX, 1 << 47] {
            assert_eq!(record_for(addr).class_id(), 0);
        }
    }
}
