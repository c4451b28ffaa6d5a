//! Span records: out-of-band metadata for each span slot of a chunk.
//!
//! Owns: the layout of a span record and the arithmetic from any address in
//! a chunk's data region to its record:
//! `record = (addr rounded down to DATA_ALIGNMENT) - METADATA_OFFSET
//!           + ((addr % DATA_ALIGNMENT) / SPAN_ALIGNMENT) * SPAN_METADATA_SIZE`.
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
use crate::constants::{DATA_ALIGNMENT, METADATA_OFFSET, SPAN_ALIGNMENT, SPAN_METADATA_SIZE};

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
    /// The span's class id (0: not part of any span). Once non-zero, the
    /// rest of the record is initialised.
    #[inline(always)]
    pub fn class_id(&self) -> u32 {
        self.class_id.load(Ordering::Acquire)
    }

    /// The index of the object starting at `addr`, which must lie in this
    /// record's slot of a span, or `None` if `addr` is not the start of one
    /// of the span's objects (an interior pointer, or the slack at the end).
    ///
    /// An unused record (all zero) has magic 0, so it finds no object.
    #[inline(always)]
    pub fn object_index(&self, addr: usize) -> Option<u32> {
        // Every record of a span holds its begin, so addr >= begin, and the
        // offset is below the span size (< 2^32).
        let offset = addr.wrapping_sub(self.begin.load(Ordering::Relaxed)) as u64;
        let magic = self.magic.load(Ordering::Relaxed);
        let product = u128::from(offset) * u128::from(magic);
        let index = (product >> 64) as u32;
        let divides = (product as u64) < magic;
        (divides && index < self.object_count.load(Ordering::Relaxed)).then_some(index)
    }

    /// Whether the press has handed out object `index` of this record's
    /// span (objects past the bump index were never allocated).
    #[inline(always)]
    pub fn was_handed_out(&self, index: u32) -> bool {
        let first = record_for(self.begin.load(Ordering::Relaxed));
        u64::from(index) < first.bump_index.load(Ordering::Relaxed)
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
