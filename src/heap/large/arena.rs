//! The large arena: reusable address space for large allocations.
//!
//! Owns: reservations of [`RESERVATION_SIZE`] bytes of inaccessible
//! address space (never unmapped), the free ranges inside them, best-fit
//! placement of extents, and the
//! budget of freed memory kept resident for reuse.
//!
//! An extent is `| data (whole pages, read/write) | guard page |`. Each
//! reservation begins with a guard page that is never handed out. A freed
//! extent keeps its pages, so reusing it costs no page fault, until the
//! bytes of the free ranges that hold memory (an upper bound kept by
//! `heap/large/page_states.rs`, made exact with `mincore` when it exceeds the budget,
//! [`Arena::budget`]) still exceed the budget; then the least recently
//! freed ranges are given back with `MADV_DONTNEED`, which frees them at
//! once (so the resident set really shrinks, unlike with `MADV_FREE`) and
//! makes them read as zero.
//!
//! Invariants:
//! - free ranges are sorted by address, disjoint, never adjacent (they are
//!   coalesced on every free), and each lies inside one reservation, after
//!   its first page;
//! - every free range ends with an inaccessible page, and extents (new or
//!   grown) only ever take a *prefix* of a free range, ending with their
//!   own guard page, so that last page never becomes data. Hence the page
//!   below an extent (the reservation's guard, or the last page of the
//!   extent or free range below) and the page above it stay inaccessible
//!   for as long as the extent lives;
//! - a range's `dirty` is the bytes of its pages counted as holding memory
//!   (freed or resident bits set), and the arena's `dirty` is their sum; a
//!   range reads as zero from its `zero_from` to its end;
//! - there are at most as many free ranges as extents plus reservations
//!   (ranges of one reservation are separated by extents), and the range
//!   array always has room for that many, so freeing never needs memory.
//!
//! The caller (`heap/large/reuse.rs`) serialises every call under its lock.

use core::ffi::c_void;

pub use crate::heap::large::page_states::PAGE_SIZE;
use crate::heap::large::page_states::{Change, PageStates};
use crate::sys::os_memory::grow_mapped_array;

#[cfg(not(feature = "test_only_small_constants"))]
mod values {
    /// Address space reserved at a time.
    pub const RESERVATION_SIZE: usize = 1 << 30;
    /// Freed bytes kept resident whatever the live size.
    pub const RETAIN_MIN: usize = 64 << 20;
}

#[cfg(feature = "test_only_small_constants")]
mod values {
    pub const RESERVATION_SIZE: usize = 64 << 20;
    pub const RETAIN_MIN: usize = 4 << 20;
}

pub use values::RESERVATION_SIZE;
use values::RETAIN_MIN;

/// The largest extent (data bytes) placed in the arena; larger ones get
/// mappings of their own.
pub const MAX_EXTENT: usize = RESERVATION_SIZE / 16;

/// An extent just placed, and the changes of protection it needs.
pub struct Placed {
    pub data: usize,
    pub length: usize,
    /// Its memory is known to read as zero.
    pub zero: bool,
    pub changes: [Option<Change>; 2],
}

/// A run of free pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FreeRange {
    start: usize,
    length: usize,
    /// Bytes of its pages that may hold memory.
    dirty: usize,
    /// Its pages from this address (at least `start`) to its end read as
    /// zero (never used, or given back); `end()` when none is known to.
    zero_from: usize,
    /// When it was last freed into (a count of frees), for oldest-first
    /// decommit.
    freed: u64,
}

impl FreeRange {
    fn end(&self) -> usize {
        self.start + self.length
    }
}

/// The arena's state: the free ranges, in memory mapped here.
pub struct Arena {
    ranges: *mut FreeRange,
    count: usize,
    capacity: usize,
    /// Sum of the ranges' `dirty`.
    dirty: usize,
    /// Frees so far (the clock of `FreeRange::freed`).
    frees: u64,
    extents: usize,
    /// Data bytes of the live extents.
    live: usize,
    reservations: usize,
    pages: PageStates,
    /// Freed bytes kept resident whatever the live size.
    retain_min: usize,
}

// SAFETY: the range array is owned by the arena and only touched through
// it, under its lock (`heap/large/reuse.rs`).
unsafe impl Send for Arena {}

impl Arena {
    pub const fn new() -> Arena {
        Arena::retaining(RETAIN_MIN)
    }

    /// An arena that keeps at least `retain_min` freed bytes resident.
    const fn retaining(retain_min: usize) -> Arena {
        Arena {
            ranges: core::ptr::null_mut(),
            count: 0,
            capacity: 0,
            dirty: 0,
            frees: 0,
            extents: 0,
            live: 0,
            reservations: 0,
            pages: PageStates::new(RESERVATION_SIZE),
            retain_min,
        }
    }

    fn slice(&self) -> &[FreeRange] {
        if self.count == 0 {
            return &[];
        }
        // SAFETY: `ranges` holds `count` initialised entries, only touched
        // through `&self`/`&mut self`.
        unsafe { core::slice::from_raw_parts(self.ranges, self.count) }
    }

    fn slice_mut(&mut self) -> &mut [FreeRange] {
        if self.count == 0 {
            return &mut [];
        }
        // SAFETY: as in `slice`, with exclusive access.
        unsafe { core::slice::from_raw_parts_mut(self.ranges, self.count) }
    }

    /// Ensures the array holds `wanted` ranges; `false` when out of memory.
    fn make_room(&mut self, wanted: usize) -> bool {
        if wanted <= self.capacity {
            return true;
        }
        let capacity = (wanted * 2).next_power_of_two().max(64);
        // SAFETY: `ranges` is this array's own mapping of `capacity`
        // entries, of which `count` are used, replaced right after.
        let Some(fresh) =
            (unsafe { grow_mapped_array(self.ranges, self.capacity, self.count, capacity) })
        else {
            return false;
        };
        self.ranges = fresh;
        self.capacity = capacity;
        true
    }

    fn insert_at(&mut self, index: usize, range: FreeRange) {
        debug_assert!(self.count < self.capacity && index <= self.count);
        // SAFETY: there is room for one more entry; the moved entries stay
        // inside the array.
        unsafe {
            let at = self.ranges.add(index);
            core::ptr::copy(at, at.add(1), self.count - index);
            at.write(range);
        }
        self.count += 1;
    }

    fn remove_at(&mut self, index: usize) {
        debug_assert!(index < self.count);
        // SAFETY: as in `insert_at`.
        unsafe {
            let at = self.ranges.add(index);
            core::ptr::copy(at.add(1), at, self.count - index - 1);
        }
        self.count -= 1;
    }

    /// The index of the first range starting at or after `addr`.
    fn position(&self, addr: usize) -> usize {
        self.slice().partition_point(|r| r.start < addr)
    }

    /// Freed bytes that may stay resident: at least `retain_min`, and as
    /// much as is live, so that a program churning through a large heap
    /// keeps its pages (giving them back and faulting them in again costs
    /// far more than the allocation) while its footprint stays within
    /// twice its live bytes plus `retain_min`.
    pub fn budget(&self) -> usize {
        self.retain_min.max(self.live)
    }

    /// Reserves a new region; returns the index of its free range, or
    /// `None` when out of memory or reservations.
    fn reserve(&mut self) -> Option<usize> {
        let start = self.pages.reserve()? + PAGE_SIZE;
        let index = self.position(start);
        self.insert_at(
            index,
            FreeRange {
                start,
                length: RESERVATION_SIZE - PAGE_SIZE,
                dirty: 0,
                zero_from: start,
                freed: 0,
            },
        );
        self.reservations += 1;
        Some(index)
    }

    /// The index of the smallest range that holds `need` bytes (the lowest
    /// such one on ties).
    fn best_fit(&self, need: usize) -> Option<usize> {
        let mut best: Option<(usize, usize)> = None;
        for (index, range) in self.slice().iter().enumerate() {
            if range.length >= need && best.is_none_or(|(_, length)| range.length < length) {
                best = Some((index, range.length));
                if range.length == need {
                    break;
                }
            }
        }
        best.map(|(index, _)| index)
    }

    /// Takes the first `taken` bytes of range `index`.
    fn take_prefix(&mut self, index: usize, taken: usize) {
        let start = self.slice()[index].start;
        let cleared = self.pages.forget(start, taken);
        self.dirty -= cleared;
        let range = &mut self.slice_mut()[index];
        debug_assert!(taken <= range.length && cleared <= range.dirty);
        range.dirty -= cleared;
        if taken == range.length {
            self.remove_at(index);
        } else {
            range.start += taken;
            range.length -= taken;
            range.zero_from = range.zero_from.max(range.start);
        }
    }

    /// Places an extent of at least `length` data bytes (whole pages, at
    /// most [`MAX_EXTENT`]): its data address and length (the whole free
    /// range when at most an eighth of it would be left over, which would
    /// serve little else), whether its memory is known to be zero, and the
    /// changes of protection the caller must then ask of the kernel
    /// (else give it back with [`Arena::refused`]). `None` when out of
    /// memory or reservations.
    #[contracts::debug_requires(length > 0 && length.is_multiple_of(PAGE_SIZE) && length <= MAX_EXTENT)]
    #[contracts::debug_ensures(ret.as_ref().is_none_or(|p| p.length >= length))]
    pub fn place(&mut self, length: usize) -> Option<Placed> {
        // One more extent, and perhaps one more reservation.
        if !self.make_room(self.extents + self.reservations + 2) {
            return None;
        }
        let need = length + PAGE_SIZE;
        let index = match self.best_fit(need) {
            Some(index) => index,
            None => self.reserve()?,
        };
        let range = self.slice()[index];
        let need = if range.length - need <= need / 8 {
            range.length
        } else {
            need
        };
        let (data, length) = (range.start, need - PAGE_SIZE);
        // The guard first.
        let changes = [
            self.pages.plan(data + length, PAGE_SIZE, false),
            self.pages.plan(data, length, true),
        ];
        self.take_prefix(index, need);
        self.extents += 1;
        self.live += length;
        Some(Placed {
            data,
            length,
            zero: range.zero_from <= data,
            changes,
        })
    }

    /// Takes back the extent placed at `data` whose changes of protection
    /// the kernel refused: from now on, every change asks the kernel.
    pub fn refused(&mut self, data: usize, length: usize) {
        self.pages.distrust();
        self.release(data, length);
    }

    /// Adds `[start, start + length)` to the free ranges, coalesced with
    /// its neighbours; then keeps the budget.
    fn add_free(&mut self, start: usize, length: usize) {
        self.frees += 1;
        let index = self.position(start);
        self.pages.free(start, length);
        // Every freed page may hold memory.
        let dirty = length;
        let mut range = FreeRange {
            start,
            length,
            dirty,
            zero_from: start + length,
            freed: self.frees,
        };
        self.dirty += dirty;
        if index < self.count && self.slice()[index].start == range.end() {
            let next = self.slice()[index];
            range.length += next.length;
            range.dirty += next.dirty;
            // The freed pages hold data: only the next range's zero part
            // stays zero.
            range.zero_from = next.zero_from;
            self.remove_at(index);
        }
        if index > 0 && self.slice()[index - 1].end() == start {
            let previous = &mut self.slice_mut()[index - 1];
            previous.length += range.length;
            previous.dirty += range.dirty;
            // A wholly zero range extends the previous one's zero part;
            // otherwise the merged range's zero part is its own.
            if range.zero_from > range.start {
                previous.zero_from = range.zero_from;
            }
            previous.freed = range.freed;
        } else {
            // Room: one range per extent or reservation at most.
            self.insert_at(index, range);
        }
        self.keep_budget();
    }

    /// Keeps the bytes of the free ranges that hold memory within the
    /// budget: when the upper bound exceeds it, asks the kernel which
    /// freed pages really hold memory, then gives back the least recently
    /// freed ranges until the rest fits.
    fn keep_budget(&mut self) {
        if self.dirty > self.budget() {
            self.give_back_down_to(self.budget());
        }
    }

    /// Gives back every freed page that still holds memory (`malloc_trim`);
    /// returns how many bytes that was.
    #[cfg(feature = "malloc")]
    pub fn trim(&mut self) -> usize {
        let before = self.dirty;
        self.give_back_down_to(0);
        before.saturating_sub(self.dirty)
    }

    /// Asks the kernel which freed pages really hold memory, then gives
    /// back the least recently freed ranges until at most `limit` bytes of
    /// them do.
    fn give_back_down_to(&mut self, limit: usize) {
        let mut dirty = 0;
        for index in 0..self.count {
            let range = self.slice()[index];
            if range.dirty > 0 {
                let verified = self.pages.verify(range.start, range.length);
                self.slice_mut()[index].dirty = verified;
                dirty += verified;
            }
        }
        self.dirty = dirty;
        while self.dirty > limit {
            let Some(index) = (0..self.count)
                .filter(|&i| self.slice()[i].dirty > 0)
                .min_by_key(|&i| self.slice()[i].freed)
            else {
                return;
            };
            let range = self.slice()[index];
            // SAFETY: the range is free: no extent's data lies in it.
            let ret = unsafe {
                libc::madvise(
                    range.start as *mut c_void,
                    range.length,
                    libc::MADV_DONTNEED,
                )
            };
            if ret != 0 {
                // The pages stay; stop rather than spin.
                return;
            }
            self.dirty -= self.pages.forget(range.start, range.length);
            let range = &mut self.slice_mut()[index];
            range.dirty = 0;
            range.zero_from = range.start;
        }
    }

    /// Frees the extent of `length` data bytes at `data`.
    pub fn release(&mut self, data: usize, length: usize) {
        self.extents -= 1;
        self.live -= length;
        self.add_free(data, length + PAGE_SIZE);
    }

    /// The number of free ranges that may hold resident pages, and their
    /// dirty bytes.
    pub fn retained(&self) -> (usize, usize) {
        let ranges = self.slice().iter().filter(|r| r.dirty > 0).count();
        (ranges, self.dirty)
    }
}

/// Whether the page at `addr` can be read ("rw") or not ("--": no
/// access, or a guard marker), asked of the kernel by reading a byte of it
/// with `process_vm_readv` (which fails instead of faulting); for tests
/// of guard pages.
#[cfg(test)]
pub fn protection(addr: usize) -> String {
    let mut byte = 0u8;
    let local = libc::iovec {
        iov_base: (&raw mut byte).cast(),
        iov_len: 1,
    };
    let remote = libc::iovec {
        iov_base: addr as *mut c_void,
        iov_len: 1,
    };
    // SAFETY: writes one byte into `byte`; the remote side is only read
    // by the kernel, which checks it.
    let read = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    if read == 1 { "rw" } else { "--" }.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Places an extent and makes its changes of protection at once.
    fn place(arena: &mut Arena, length: usize) -> Option<(usize, usize, bool)> {
        let placed = arena.place(length)?;
        for change in placed.changes.into_iter().flatten() {
            // SAFETY: the extent just placed, the test's.
            assert!(unsafe { change.apply() });
        }
        Some((placed.data, placed.length, placed.zero))
    }

    fn assert_guarded(data: usize, length: usize) {
        assert_eq!(protection(data - PAGE_SIZE), "--", "page below {data:#x}");
        assert_eq!(protection(data), "rw");
        assert_eq!(protection(data + length - PAGE_SIZE), "rw");
        assert_eq!(protection(data + length), "--", "page above {data:#x}");
    }

    fn write(data: usize, length: usize, byte: u8) {
        // SAFETY: the extent's data is accessible and owned by the test.
        unsafe { (data as *mut u8).write_bytes(byte, length) };
    }

    #[test]
    fn extents_are_guarded_and_reused_without_zeroing() {
        let mut arena = Arena::new();
        let (a, _, fresh) = place(&mut arena, 4 * PAGE_SIZE).unwrap();
        assert!(fresh);
        let (b, _, _) = place(&mut arena, 2 * PAGE_SIZE).unwrap();
        assert_eq!(b, a + 5 * PAGE_SIZE, "placed just above the first guard");
        assert_guarded(a, 4 * PAGE_SIZE);
        assert_guarded(b, 2 * PAGE_SIZE);
        write(a, 4 * PAGE_SIZE, 7);
        arena.release(a, 4 * PAGE_SIZE);
        // A smaller extent reuses the freed one's pages, unzeroed, and gets
        // a guard of its own; the page below `b` stays a guard.
        let (c, length, fresh) = place(&mut arena, PAGE_SIZE).unwrap();
        assert_eq!((c, length), (a, PAGE_SIZE));
        assert!(!fresh);
        // SAFETY: `c` holds a page.
        assert_eq!(unsafe { *(c as *const u8) }, 7);
        assert_guarded(c, PAGE_SIZE);
        assert_guarded(b, 2 * PAGE_SIZE);
        assert_eq!(arena.retained().0, 1);
        // A request that would leave at most an eighth of a range takes it
        // all.
        let (f, _, _) = place(&mut arena, 16 * PAGE_SIZE).unwrap();
        let (g, _, _) = place(&mut arena, 4 * PAGE_SIZE).unwrap();
        assert_eq!(g, f + 17 * PAGE_SIZE);
        arena.release(f, 16 * PAGE_SIZE);
        let (h, length, _) = place(&mut arena, 15 * PAGE_SIZE).unwrap();
        assert_eq!((h, length), (f, 16 * PAGE_SIZE));
        assert_guarded(h, 16 * PAGE_SIZE);
        assert_guarded(g, 4 * PAGE_SIZE);
    }

    #[test]
    fn untouched_pages_stay_known_zero_when_a_free_merges_with_them() {
        let mut arena = Arena::new();
        let (a, _, fresh) = place(&mut arena, 4 * PAGE_SIZE).unwrap();
        assert!(fresh);
        write(a, 4 * PAGE_SIZE, 7);
        // The freed extent merges with the untouched rest of the
        // reservation above it.
        arena.release(a, 4 * PAGE_SIZE);
        let (b, _, fresh) = place(&mut arena, 4 * PAGE_SIZE).unwrap();
        assert_eq!(b, a);
        assert!(!fresh, "the freed pages hold data");
        // Above them (and the guard), the pages were never used.
        let (c, _, fresh) = place(&mut arena, 8 * PAGE_SIZE).unwrap();
        assert_eq!(c, a + 5 * PAGE_SIZE);
        assert!(fresh, "never-used pages are still known to be zero");
    }

    #[test]
    fn frees_coalesce() {
        let mut arena = Arena::new();
        let (a, _, _) = place(&mut arena, PAGE_SIZE).unwrap();
        let (b, _, _) = place(&mut arena, PAGE_SIZE).unwrap();
        let (c, _, _) = place(&mut arena, PAGE_SIZE).unwrap();
        let ranges = arena.count;
        arena.release(a, PAGE_SIZE);
        arena.release(c, PAGE_SIZE);
        // c's range merged with the free space above it.
        assert_eq!(arena.count, ranges + 1);
        arena.release(b, PAGE_SIZE);
        assert_eq!(arena.count, ranges, "a, b and c coalesced");
        let (d, _, _) = place(&mut arena, PAGE_SIZE).unwrap();
        assert_eq!(d, a);
        assert_guarded(d, PAGE_SIZE);
        arena.release(d, PAGE_SIZE);
        assert_eq!(arena.count, 1);
        assert_eq!(arena.extents, 0);
        assert_eq!(arena.live, 0);
    }

    #[test]
    fn freed_memory_beyond_the_budget_is_given_back_oldest_first() {
        let mut arena = Arena::retaining(64 * PAGE_SIZE);
        // Large extents to free, with small live ones between them.
        let sizes = |i: usize| {
            if i.is_multiple_of(2) {
                32 * PAGE_SIZE
            } else {
                8 * PAGE_SIZE
            }
        };
        let extents: Vec<usize> = (0..12)
            .map(|i| place(&mut arena, sizes(i)).unwrap().0)
            .collect();
        for (i, &data) in extents.iter().enumerate() {
            write(data, sizes(i), 9);
        }
        for &data in extents.iter().step_by(2) {
            arena.release(data, sizes(0));
            assert!(arena.dirty <= arena.budget());
        }
        let (ranges, dirty) = arena.retained();
        assert!(ranges > 0 && dirty > 0);
        // SAFETY: freed extents stay mapped, readable and writable.
        let first = unsafe { *(extents[0] as *const u8) };
        // SAFETY: as above.
        let last = unsafe { *(extents[10] as *const u8) };
        assert_eq!(first, 0, "the least recently freed pages were given back");
        assert_eq!(last, 9, "the most recently freed pages were kept");
    }

    #[test]
    fn reservations_roll_over_and_stay_apart() {
        let mut arena = Arena::new();
        let per_reservation = (RESERVATION_SIZE - PAGE_SIZE) / (MAX_EXTENT + PAGE_SIZE);
        let extents: Vec<usize> = (0..per_reservation + 1)
            .map(|_| place(&mut arena, MAX_EXTENT).unwrap().0)
            .collect();
        assert!(arena.reservations >= 2);
        for &data in &extents {
            assert_guarded(data, MAX_EXTENT);
        }
        for &data in &extents {
            arena.release(data, MAX_EXTENT);
        }
        assert_eq!(
            arena.count, arena.reservations,
            "no range spans two reservations"
        );
    }
}
