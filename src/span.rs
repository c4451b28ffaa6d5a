//! Span records: out-of-band metadata for each span slot of a chunk.
//!
//! Owns: the layout of a span record and the way from any address to its
//! record: `record = metadata_for(addr) + ((addr % DATA_ALIGNMENT) /
//! SPAN_ALIGNMENT) * SPAN_METADATA_SIZE`, where the chunk registry gives
//! the metadata region (`METADATA_OFFSET` below the chunk's data, or an
//! all-zero stand-in outside chunks).
//!
//! Invariants: an all-zero record is a valid "unused" record (class id 0);
//! every record of a multi-slot span carries the span's class id, first
//! address, object count and division magic, so any address inside the span
//! finds them; the first record alone carries the bump index; the class id
//! of a record changes at most once, from 0 to its class, and is written
//! last (with release ordering) so that a record with a class is complete.

use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

use static_assertions::const_assert_eq;

use crate::chunk_registry;
use crate::constants::{DATA_ALIGNMENT, SPAN_ALIGNMENT, SPAN_METADATA_SIZE};

/// Metadata for one `SPAN_ALIGNMENT` slot of chunk data. The same layout is
/// declared in C as `struct slitter_span_record` (`c/layout.h`).
#[repr(C)]
pub struct SpanRecord {
    /// Owning class, or 0 when the slot is not part of a span.
    pub class_id: AtomicU32,
    /// Number of objects in the span.
    pub object_count: AtomicU32,
    /// Index of the next object the press hands out (first record only).
    pub bump_index: AtomicU64,
    /// Address of the span's first object.
    pub begin: AtomicUsize,
    /// `division_magic(object_size)`: turns a division by the object size
    /// into one multiplication (see [`SpanRecord::object_index`]).
    pub magic: AtomicU64,
}

/// The magic multiplier for objects of `size` bytes: `ceil(2^64 / size)`.
///
/// For any offset `x < 2^32` and `size < 2^32`, the 128-bit product
/// `x * magic` has `x / size` in its high half, and a low half below
/// `magic` exactly when `size` divides `x` (Lemire, Kaser and Kurz, "Faster
/// remainder by direct computation", 2019). Span sizes are below 2^32.
pub const fn division_magic(size: usize) -> u64 {
    u64::MAX / size as u64 + 1
}

static_assertions::const_assert!(crate::constants::MAX_SPAN_SIZE < 1 << 32);

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

/// The record for `addr` in the metadata region `metadata`, which must be
/// what `chunk_registry::metadata_for` returns for `addr`'s block.
#[inline(always)]
fn record_in(metadata: usize, addr: usize) -> &'static SpanRecord {
    let record = metadata + record_offset(addr);
    // SAFETY: metadata_for returns a mapped, immortal region of
    // METADATA_PAGE_SIZE bytes, and record_offset stays below
    // SPANS_PER_CHUNK * SPAN_METADATA_SIZE <= METADATA_PAGE_SIZE; records
    // are aligned to their 32-byte size.
    unsafe { &*(record as *const SpanRecord) }
}

/// Whether `addr` is the start of an object of class `class_id` that the
/// press has handed out: the object-start check used by every release.
#[inline(always)]
pub fn is_allocated_object(class_id: u32, addr: usize) -> bool {
    let metadata = chunk_registry::metadata_for(addr);
    let record = record_in(metadata, addr);
    if record.class_id() != class_id {
        return false;
    }
    let Some(index) = record.object_index(addr) else {
        return false;
    };
    // A span lies in one chunk, so its first record is in the same region.
    let first = record_in(metadata, record.begin.load(Ordering::Relaxed));
    u64::from(index) < first.bump_index.load(Ordering::Relaxed)
}

impl SpanRecord {
    /// The span's class id (0: not part of any span). Once non-zero, the
    /// rest of the record is initialised.
    #[inline(always)]
    pub fn class_id(&self) -> u32 {
        self.class_id.load(Ordering::Acquire)
    }

    /// The index of the object starting at `addr` in this record's span, or
    /// `None` if `addr` is not the start of one of the span's objects (an
    /// interior pointer, the slack at the end of the span, or an address
    /// outside the span).
    ///
    /// The high half of `offset * magic` is at least `offset / size` for any
    /// 64-bit offset, so an address below the span (the offset wraps) or
    /// beyond it gives an index past `object_count`; within the span it is
    /// exact. An unused (all-zero) record has no objects.
    #[inline(always)]
    pub fn object_index(&self, addr: usize) -> Option<u32> {
        let offset = addr.wrapping_sub(self.begin.load(Ordering::Relaxed)) as u64;
        let magic = self.magic.load(Ordering::Relaxed);
        let product = u128::from(offset) * u128::from(magic);
        let index = (product >> 64) as u64;
        let divides = (product as u64) < magic;
        (divides && index < u64::from(self.object_count.load(Ordering::Relaxed)))
            .then_some(index as u32)
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
        assert!(last + SPAN_METADATA_SIZE <= crate::constants::METADATA_PAGE_SIZE);
    }

    #[test]
    fn foreign_addresses_find_unused_records() {
        let local = 0u64;
        for addr in [0, 1, &local as *const u64 as usize, usize::MAX, 1 << 47] {
            let record = record_for(addr);
            assert_eq!(record.class_id(), 0);
            assert_eq!(record.object_index(addr), None);
        }
    }

    #[test]
    fn division_magic_finds_index_and_divisibility() {
        for size in [
            8usize,
            16,
            24,
            40,
            48,
            56,
            96,
            1000,
            4096,
            12_345 * 8,
            1 << 20,
        ] {
            let magic = division_magic(size);
            let samples = (0..2000u64).chain([(1 << 31) - 1, (1 << 32) - 1]);
            for x in samples
                .flat_map(|x| [x, x * size as u64])
                .filter(|&x| x < 1 << 32)
            {
                let product = u128::from(x) * u128::from(magic);
                assert_eq!((product >> 64) as u64, x / size as u64, "size {size} x {x}");
                assert_eq!(
                    (product as u64) < magic,
                    x % size as u64 == 0,
                    "size {size} x {x}"
                );
            }
        }
    }
}
