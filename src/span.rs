//! Span records and object states: out-of-band metadata for each span
//! slot of a chunk and for each object.
//!
//! Owns: the layout of a span record and the way from any address to its
//! record: `record = metadata_for(addr) + ((addr % DATA_ALIGNMENT) /
//! SPAN_ALIGNMENT) * SPAN_METADATA_SIZE`, where the chunk registry gives
//! the metadata region (`METADATA_OFFSET` below the chunk's data, or an
//! all-zero stand-in outside chunks); and each span's state array: one
//! byte per object ([`FREE`], [`LIVE`] or [`LIVE_WITH_ROOM`]), after a header holding the
//! span's bump index, in internal memory far from any object.
//!
//! Invariants: an all-zero record is a valid "unused" record (class id 0);
//! every record of a multi-slot span carries the span's class id, object
//! count, first address, division magic and state array, so any address
//! inside the span finds them; the class id of a record changes at most
//! once, from 0 to its class, and is written last (with release ordering)
//! so that a record with a class is complete. The state array has
//! `object_count + 1` bytes: any address inside the span has an object
//! index at most `object_count`, and the last byte is never live. A state
//! has its [`LIVE`] bit set exactly while its object is handed out (between an
//! allocation and its release); objects in magazines and objects the press
//! has not handed out yet are [`FREE`].

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};

use static_assertions::const_assert_eq;

use crate::chunk_registry;
use crate::constants::{DATA_ALIGNMENT, SPAN_ALIGNMENT, SPAN_METADATA_SIZE};

/// State of an object that is not handed out.
pub const FREE: u8 = 0;
/// State of an object handed out and not yet released.
pub const LIVE: u8 = 1;
/// State of a live malloc object that `realloc` placed in a larger size
/// class than its size selects (to give it room to grow): a sized free
/// of it may name any size up to its class.
pub const LIVE_WITH_ROOM: u8 = LIVE | 2;

/// Metadata for one `SPAN_ALIGNMENT` slot of chunk data. The same layout is
/// declared in C as `struct slitter_span_record` (`c/layout.h`).
///
/// The fields after the class id are written once, by [`SpanRecord::init`],
/// before the class id is published with release ordering, and read only
/// after the class id was read as non-zero (with acquire ordering), so
/// plain reads of them never race; the fast paths can then fold them into
/// arithmetic.
#[repr(C)]
pub struct SpanRecord {
    /// Owning class, or 0 when the slot is not part of a span.
    class_id: AtomicU32,
    /// Number of objects in the span.
    object_count: UnsafeCell<u32>,
    /// Address of the span's first object.
    begin: UnsafeCell<usize>,
    /// `division_magic(object_size)`: turns a division by the object size
    /// into one multiplication (see [`SpanRecord::object_index`]).
    magic: UnsafeCell<u64>,
    /// Address of the span's state bytes (see [`StateArray`]).
    states: UnsafeCell<usize>,
}

// SAFETY: see the type's documentation: the plain fields are written before
// the class id is published and read only after it is observed.
unsafe impl Sync for SpanRecord {}

/// The header in front of a span's state bytes.
#[repr(C)]
pub struct StateArray {
    /// Index of the next object the press hands out.
    pub bump_index: AtomicU64,
    /// `object_count + 1` state bytes follow.
    states: [AtomicU8; 0],
}

impl StateArray {
    /// The number of bytes a state array for `object_count` objects needs.
    pub const fn size_for(object_count: usize) -> usize {
        core::mem::size_of::<StateArray>() + object_count + 1
    }

    /// The address of the first state byte.
    pub fn states(&self) -> usize {
        self.states.as_ptr() as usize
    }
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

/// The record for `addr` in `metadata`, the region the chunk registry gives
/// for `addr`.
#[inline(always)]
fn record_in(metadata: usize, addr: usize) -> &'static SpanRecord {
    let record = metadata + record_offset(addr);
    // SAFETY: the registry gives a mapped, immortal region of
    // METADATA_PAGE_SIZE bytes, and record_offset stays below
    // SPANS_PER_CHUNK * SPAN_METADATA_SIZE <= METADATA_PAGE_SIZE; records
    // are aligned to their 32-byte size.
    unsafe { &*(record as *const SpanRecord) }
}

/// The state byte of `addr` if it is the start of an object of class
/// `class_id` whose state is [`LIVE`]: the check made by every release.
#[inline(always)]
pub fn live_state(class_id: u32, addr: usize) -> Option<&'static AtomicU8> {
    let record = record_in(chunk_registry::user_metadata_for(addr)?, addr);
    if record.class_id() != class_id {
        return None;
    }
    record.live_state(addr)
}

/// The class id and state byte of `addr` if it is the start of a live
/// object of any class: the check made by `free`.
#[inline(always)]
pub fn live_object(addr: usize) -> Option<(u32, &'static AtomicU8)> {
    let record = record_in(chunk_registry::user_metadata_for(addr)?, addr);
    let class_id = record.class_id();
    if class_id == 0 {
        return None;
    }
    Some((class_id, record.live_state(addr)?))
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
    /// `object_count` objects start at `begin`, are `object_size` bytes
    /// each, and have their states at `states`. Only the mill calls this,
    /// once per record, for slots it owns.
    #[contracts::debug_requires(self.class_id.load(Ordering::Relaxed) == 0 && class_id != 0)]
    pub fn init(
        &self,
        class_id: u32,
        object_count: u32,
        begin: usize,
        object_size: usize,
        states: usize,
    ) {
        // SAFETY: the class id is still 0, so no reader looks at the other
        // fields, and only the mill writes them, under its ownership of the
        // slot.
        unsafe {
            *self.object_count.get() = object_count;
            *self.begin.get() = begin;
            *self.magic.get() = division_magic(object_size);
            *self.states.get() = states;
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

    /// The index of the object starting at `addr` in this record's span, or
    /// `None` if `addr` is not the start of an object (an interior pointer
    /// or an unused record). For an address in the span's slack, past its
    /// last object, the index is `object_count` (whose state is never
    /// [`LIVE`]).
    ///
    /// The record was found from `addr`, so `addr` lies in the span and the
    /// offset is below the span size; the chunk registry finds no record
    /// with a class for addresses beyond the user address space.
    #[inline(always)]
    pub fn object_index(&self, addr: usize) -> Option<usize> {
        // SAFETY: as in `object_count`: callers found the class id set.
        let (begin, magic) = unsafe { (*self.begin.get(), *self.magic.get()) };
        let offset = addr.wrapping_sub(begin) as u64;
        let product = u128::from(offset) * u128::from(magic);
        ((product as u64) < magic).then_some((product >> 64) as usize)
    }

    /// The state byte of the object at `addr`, found from this used
    /// record, if `addr` is the start of an object and its state is
    /// [`LIVE`].
    #[inline(always)]
    fn live_state(&self, addr: usize) -> Option<&'static AtomicU8> {
        let state = self.state(self.object_index(addr)?);
        (state.load(Ordering::Relaxed) & LIVE != 0).then_some(state)
    }

    /// The state byte of object `index` of this (used) record's span.
    #[inline(always)]
    pub fn state(&self, index: usize) -> &'static AtomicU8 {
        // SAFETY: as in `object_count`.
        let states = unsafe { *self.states.get() };
        // SAFETY: a used record's state array holds `object_count + 1`
        // bytes, and object indices found from addresses inside the span
        // are at most `object_count`; state arrays are immortal.
        unsafe { &*((states + index) as *const AtomicU8) }
    }

    /// The header of this (used) record's state array.
    pub fn state_array(&self) -> &'static StateArray {
        // SAFETY: as in `object_count`.
        let states = unsafe { *self.states.get() };
        // SAFETY: the header sits just before the state bytes of a used
        // record's immortal state array.
        unsafe { &*((states - core::mem::size_of::<StateArray>()) as *const StateArray) }
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
            assert!(live_state(0, addr).is_none());
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
