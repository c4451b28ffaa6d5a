//! Span records: out-of-band metadata for each span slot of a chunk.
//!
//! Owns: the layout of a span record and the arithmetic from any address in
//! a chunk's data region to its record:
//! `record = (addr rounded down to DATA_ALIGNMENT) - METADATA_OFFSET
//!           + ((addr % DATA_ALIGNMENT) / SPAN_ALIGNMENT) * SPAN_METADATA_SIZE`.
//!
//! Invariants: an all-zero record is a valid "unused" record (class id 0);
//! every record of a multi-slot span carries the span's class id, first
//! address and object size, so any address inside the span finds them; the
//! first record alone carries the bump state (object count, bump index);
//! the class id of a record changes at most once, from 0 to its class.

use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

use static_assertions::const_assert_eq;

use crate::chunk_registry;
use crate::constants::{DATA_ALIGNMENT, METADATA_OFFSET, SPAN_ALIGNMENT, SPAN_METADATA_SIZE};

/// Metadata for one `SPAN_ALIGNMENT` slot of chunk data. The same layout is
/// declared in C as `struct slitter_span_record` (`c/layout.h`).
#[repr(C)]
pub struct SpanRecord {
    /// Owning class, or 0 when the slot is not part of a span.
    pub class_id: AtomicU32,
    /// Number of objects in the span (first record only).
    pub object_count: AtomicU32,
    /// Index of the next object the press hands out (first record only).
    pub bump_index: AtomicU64,
    /// Address of the span's first object.
    pub begin: AtomicUsize,
    /// Size of the span's objects.
    pub object_size: AtomicUsize,
}

const_assert_eq!(core::mem::size_of::<SpanRecord>(), SPAN_METADATA_SIZE);

/// Where the record for the slot containing `addr` lives (pure arithmetic).
#[inline(always)]
pub fn record_address(addr: usize) -> usize {
    let chunk_base = addr & !(DATA_ALIGNMENT - 1);
    let slot = (addr & (DATA_ALIGNMENT - 1)) / SPAN_ALIGNMENT;
    chunk_base - METADATA_OFFSET + slot * SPAN_METADATA_SIZE
}

/// The record for the slot containing `addr`, which must lie in the data
/// region of a registered chunk.
#[contracts::debug_requires(chunk_registry::contains(addr))]
#[inline(always)]
pub fn record_for(addr: usize) -> &'static SpanRecord {
    let record = record_address(addr);
    // SAFETY: the chunk is registered, so its metadata region (starting
    // METADATA_OFFSET below the data) is mapped, readable and zero-filled or
    // initialised, and records are immortal.
    unsafe { &*(record as *const SpanRecord) }
}

/// The record for `addr` if it lies in a slitter chunk, without reading any
/// memory otherwise.
#[inline(always)]
pub fn find_record(addr: usize) -> Option<&'static SpanRecord> {
    if chunk_registry::contains(addr) {
        Some(record_for(addr))
    } else {
        None
    }
}

impl SpanRecord {
    /// The span's class id (0: not part of any span).
    #[inline(always)]
    pub fn class_id(&self) -> u32 {
        self.class_id.load(Ordering::Relaxed)
    }

    /// Whether `addr`, inside this record's span, is the start of an
    /// object that the press has handed out at some point.
    #[inline(always)]
    pub fn is_object_start(&self, addr: usize) -> bool {
        let begin = self.begin.load(Ordering::Relaxed);
        let size = self.object_size.load(Ordering::Relaxed);
        if addr < begin || size == 0 {
            return false;
        }
        let offset = addr - begin;
        if !offset.is_multiple_of(size) {
            return false;
        }
        let first = record_for(begin);
        let handed_out = first
            .bump_index
            .load(Ordering::Relaxed)
            .min(u64::from(first.object_count.load(Ordering::Relaxed)));
        ((offset / size) as u64) < handed_out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_arithmetic_matches_the_layout() {
        let chunk = 7 * DATA_ALIGNMENT;
        let meta = chunk - METADATA_OFFSET;
        assert_eq!(record_address(chunk), meta);
        assert_eq!(record_address(chunk + SPAN_ALIGNMENT - 1), meta);
        assert_eq!(
            record_address(chunk + SPAN_ALIGNMENT),
            meta + SPAN_METADATA_SIZE
        );
        let last = meta + (DATA_ALIGNMENT / SPAN_ALIGNMENT - 1) * SPAN_METADATA_SIZE;
        assert_eq!(record_address(chunk + DATA_ALIGNMENT - 1), last);
        assert!(last + SPAN_METADATA_SIZE <= meta + crate::constants::METADATA_PAGE_SIZE);
    }
}
