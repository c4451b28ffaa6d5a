//! Large allocations: requests above the largest size class, or aligned
//! beyond what a class can serve.
//!
//! Owns: the out-of-band table from each large allocation's data address
//! to its memory, and the choice of that memory: an extent of the large
//! arena (`large_arena.rs`, which reuses freed pages) for requests up to
//! [`MAX_EXTENT`] aligned to at most a page, else a mapping of its own laid
//! out `| guard page | data (whole pages) | guard page |`, unmapped on
//! free and grown by `mremap`, which moves pages instead of copying bytes.
//!
//! Invariants: the table holds exactly the live large allocations, keyed by
//! the address returned to the caller (page-aligned, or aligned as asked);
//! nothing about an allocation is stored next to its data; the pages just
//! below and above every live allocation's data are inaccessible. All of
//! it is under one lock: large allocations make system calls anyway.

use core::ffi::c_void;
use core::ptr::NonNull;

pub use crate::large_arena::PAGE_SIZE;
use crate::large_arena::{Arena, MAX_EXTENT};
use crate::lock::Lock;
use crate::mapper::os_map_zeroed;

const GUARD_SIZE: usize = PAGE_SIZE;

/// One allocation's memory: `base` and `total` cover its guards (for an
/// arena extent, only the guard above: the one below belongs to what lies
/// below), `data` and `length` the accessible part.
#[derive(Clone, Copy, Default)]
struct Mapping {
    base: usize,
    total: usize,
    data: usize,
    length: usize,
    /// An extent of the arena, rather than a mapping of its own.
    in_arena: bool,
}

impl Mapping {
    fn extent(data: usize, length: usize) -> Mapping {
        Mapping {
            base: data,
            total: length + GUARD_SIZE,
            data,
            length,
            in_arena: true,
        }
    }
}

/// A table slot whose `data` is 0 is empty; `TOMBSTONE`, a removed entry.
const TOMBSTONE: usize = 1;

/// Open-addressing hash table of live allocations, in memory mapped here.
struct Table {
    entries: *mut Mapping,
    capacity: usize,
    /// Live entries.
    live: usize,
    /// Live entries plus tombstones.
    used: usize,
}

struct State {
    table: Table,
    arena: Arena,
    /// Data bytes of the live allocations, for statistics.
    live_bytes: usize,
}

// SAFETY: the table's memory is owned by the state and only touched under
// its lock.
unsafe impl Send for State {}

static STATE: Lock<State> = Lock::new(State {
    table: Table {
        entries: core::ptr::null_mut(),
        capacity: 0,
        live: 0,
        used: 0,
    },
    arena: Arena::new(),
    live_bytes: 0,
});

fn hash(data: usize, capacity: usize) -> usize {
    ((data >> 12).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 20) & (capacity - 1)
}

impl Table {
    fn get(&self, index: usize) -> Mapping {
        // SAFETY: index < capacity, inside the table's mapping, which only
        // the lock holder touches.
        unsafe { *self.entries.add(index) }
    }

    fn set(&mut self, index: usize, mapping: Mapping) {
        // SAFETY: as in `get`; `&mut self` is the lock holder's.
        unsafe { *self.entries.add(index) = mapping };
    }

    /// The index of the entry for `data`, if present.
    fn find(&self, data: usize) -> Option<usize> {
        if self.capacity == 0 {
            return None;
        }
        let mut index = hash(data, self.capacity);
        loop {
            let key = self.get(index).data;
            if key == data {
                return Some(index);
            }
            if key == 0 {
                return None;
            }
            index = (index + 1) & (self.capacity - 1);
        }
    }

    /// Ensures one more entry can be inserted; `false` if the table
    /// cannot grow.
    fn make_room(&mut self) -> bool {
        (self.used + 1) * 2 <= self.capacity || self.grow()
    }

    /// Adds `mapping`, after [`Table::make_room`].
    fn insert(&mut self, mapping: Mapping) {
        debug_assert!((self.used + 1) * 2 <= self.capacity);
        let mut index = hash(mapping.data, self.capacity);
        while self.get(index).data > TOMBSTONE {
            index = (index + 1) & (self.capacity - 1);
        }
        if self.get(index).data == 0 {
            self.used += 1;
        }
        self.set(index, mapping);
        self.live += 1;
    }

    fn remove(&mut self, index: usize) -> Mapping {
        let mapping = self.get(index);
        self.set(
            index,
            Mapping {
                data: TOMBSTONE,
                ..mapping
            },
        );
        self.live -= 1;
        mapping
    }

    /// Rehashes into a table with room for twice the live entries.
    fn grow(&mut self) -> bool {
        let capacity = ((self.live + 1) * 4).next_power_of_two().max(256);
        let bytes = capacity * core::mem::size_of::<Mapping>();
        let Some(entries) = os_map_zeroed(bytes) else {
            return false;
        };
        let old = core::mem::replace(
            self,
            Table {
                entries: entries.as_ptr().cast(),
                capacity,
                live: 0,
                used: 0,
            },
        );
        for index in 0..old.capacity {
            let mapping = old.get(index);
            if mapping.data > TOMBSTONE {
                // Room: the new table holds four times the live entries.
                self.insert(mapping);
            }
        }
        if old.capacity != 0 {
            // SAFETY: the old table is no longer referenced.
            unsafe {
                libc::munmap(
                    old.entries.cast(),
                    old.capacity * core::mem::size_of::<Mapping>(),
                )
            };
        }
        true
    }
}

/// Rounds `size` up to whole pages; `None` on overflow.
pub fn page_round(size: usize) -> Option<usize> {
    size.checked_add(PAGE_SIZE - 1)
        .map(|s| s & !(PAGE_SIZE - 1))
}

/// Maps a guarded region whose data holds `length` bytes at an address
/// aligned to `align` (a power of two).
fn map(length: usize, align: usize) -> Option<Mapping> {
    let align = align.max(PAGE_SIZE);
    let total = length
        .checked_add(2 * GUARD_SIZE)?
        .checked_add(align - PAGE_SIZE)?;
    // SAFETY: a fresh inaccessible reservation; no existing memory touched.
    let base = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            total,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return None;
    }
    let base = base as usize;
    let data = (base + GUARD_SIZE).next_multiple_of(align);
    // Give back the alignment slop on both sides, keeping one guard each.
    let start = data - GUARD_SIZE;
    let end = data + length + GUARD_SIZE;
    // SAFETY: both ranges lie in the reservation just made, outside the
    // part kept.
    unsafe {
        if start > base {
            libc::munmap(base as *mut c_void, start - base);
        }
        if base + total > end {
            libc::munmap(end as *mut c_void, base + total - end);
        }
    }
    let mapping = Mapping {
        base: start,
        total: end - start,
        data,
        length,
        in_arena: false,
    };
    // SAFETY: the data range lies inside the kept reservation.
    let ret = unsafe {
        libc::mprotect(
            data as *mut c_void,
            length,
            libc::PROT_READ | libc::PROT_WRITE,
        )
    };
    if ret != 0 {
        unmap(mapping);
        return None;
    }
    Some(mapping)
}

fn unmap(mapping: Mapping) {
    // SAFETY: the whole mapping is owned by the caller and no longer used.
    unsafe { libc::munmap(mapping.base as *mut c_void, mapping.total) };
}

/// A new large allocation of at least `size` bytes aligned to `align`, and
/// whether its memory is known to be zero; `None` when out of memory.
pub fn allocate(size: usize, align: usize) -> Option<(NonNull<c_void>, bool)> {
    let length = page_round(size.max(1))?;
    let mut state = STATE.lock();
    if !state.table.make_room() {
        return None;
    }
    let placed = (align <= PAGE_SIZE && length <= MAX_EXTENT)
        .then(|| state.arena.place(length))
        .flatten();
    let (mapping, zeroed) = match placed {
        Some((data, length, zeroed)) => (Mapping::extent(data, length), zeroed),
        // Too large or too aligned for the arena, or it is out of
        // reservations: a mapping of its own.
        None => (map(length, align)?, true),
    };
    state.table.insert(mapping);
    state.live_bytes += mapping.length;
    Some((NonNull::new(mapping.data as *mut c_void)?, zeroed))
}

/// Frees the large allocation at `ptr`; `false` if there is none there.
pub fn free(ptr: *mut c_void) -> bool {
    let mut state = STATE.lock();
    let Some(index) = state.table.find(ptr as usize) else {
        return false;
    };
    let mapping = state.table.remove(index);
    state.live_bytes -= mapping.length;
    if mapping.in_arena {
        state.arena.release(mapping.data, mapping.length);
    } else {
        unmap(mapping);
    }
    true
}

/// The usable size of the large allocation at `ptr`, if there is one.
pub fn usable_size(ptr: *const c_void) -> Option<usize> {
    let state = STATE.lock();
    let index = state.table.find(ptr as usize)?;
    Some(state.table.get(index).length)
}

/// The large allocation containing `addr` (its data address), if any: for
/// diagnosing interior pointers. Scans the table.
pub fn containing(addr: usize) -> Option<usize> {
    let state = STATE.lock();
    (0..state.table.capacity)
        .map(|index| state.table.get(index))
        .find(|m| m.data > TOMBSTONE && addr >= m.base && addr < m.base + m.total)
        .map(|m| m.data)
}

/// Whether a large allocation of `usable` bytes keeps `size` bytes where
/// it is: its pages suffice and at most half of them would be unused.
pub fn fits_in_place(usable: usize, size: usize) -> bool {
    page_round(size.max(1)).is_some_and(|length| length <= usable && length >= usable / 2)
}

/// What [`resize`] did.
pub enum Resized {
    /// The allocation now holds the new size, at this address.
    Done(NonNull<c_void>),
    /// Out of memory; the allocation is unchanged.
    OutOfMemory,
    /// `ptr` is not a large allocation.
    NotLarge,
    /// The allocation (an arena extent with no free room above it) cannot
    /// grow where it is: the caller moves it; it is unchanged.
    Move,
}

/// Resizes the large allocation at `ptr` to hold `size` bytes, growing it
/// to `room` bytes (at least `size`) where that costs no copy:
/// - in place when it [`fits_in_place`];
/// - an arena extent shrinks by freeing its tail, and grows into the free
///   range above it (to `room` if that fits, else to `size`), or asks the
///   caller to move it;
/// - a mapping of its own moves its pages with `mremap` into a new guarded
///   mapping (no copy).
pub fn resize(ptr: *mut c_void, size: usize, room: usize) -> Resized {
    let (Some(length), Some(room)) = (page_round(size.max(1)), page_round(room.max(size))) else {
        return Resized::OutOfMemory;
    };
    let mut state = STATE.lock();
    let Some(index) = state.table.find(ptr as usize) else {
        return Resized::NotLarge;
    };
    let old = state.table.get(index);
    let unchanged = Resized::Done(NonNull::new(ptr).expect("large allocations are not null"));
    if fits_in_place(old.length, size) {
        return unchanged;
    }
    if old.in_arena {
        let new_length = if length < old.length {
            if !state.arena.shrink(old.data, old.length, length) {
                // The kernel refused to split the mapping: keep it whole.
                return unchanged;
            }
            length
        } else {
            match state.arena.grow(old.data, old.length, length, room) {
                Some(new_length) => new_length,
                None => return Resized::Move,
            }
        };
        state
            .table
            .set(index, Mapping::extent(old.data, new_length));
        state.live_bytes = state.live_bytes - old.length + new_length;
        return unchanged;
    }
    let length = if length > old.length { room } else { length };
    // Room to re-insert under the new address (growing rehashes the table).
    if !state.table.make_room() {
        return Resized::OutOfMemory;
    }
    let index = state.table.find(ptr as usize).expect("still live");
    let Some(mapping) = map(length, PAGE_SIZE) else {
        return Resized::OutOfMemory;
    };
    let moved = length.min(old.length);
    // SAFETY: moves the first `moved` bytes of the old data (owned by this
    // allocation) over the start of the fresh mapping's data, which the
    // kernel replaces; nothing else references either range.
    let ret = unsafe {
        libc::mremap(
            old.data as *mut c_void,
            moved,
            moved,
            libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
            mapping.data as *mut c_void,
        )
    };
    if ret == libc::MAP_FAILED {
        unmap(mapping);
        return Resized::OutOfMemory;
    }
    // Unmap what is left of the old mapping: its guards and any tail that
    // did not move.
    unmap(Mapping {
        base: old.base,
        total: old.data - old.base,
        ..old
    });
    unmap(Mapping {
        base: old.data + moved,
        total: old.base + old.total - (old.data + moved),
        ..old
    });
    state.table.remove(index);
    state.table.insert(mapping);
    state.live_bytes = state.live_bytes - old.length + mapping.length;
    Resized::Done(NonNull::new(mapping.data as *mut c_void).expect("mappings are not null"))
}

/// Number of live large allocations and their data bytes, and the number
/// of freed ranges kept for reuse with their pages.
pub fn counts() -> (usize, usize, usize) {
    let state = STATE.lock();
    (state.table.live, state.live_bytes, state.arena.retained().0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::large_arena::protection;

    #[test]
    fn allocations_are_aligned_writable_and_tracked() {
        let (p, _) = allocate(100_000, 16).unwrap();
        let addr = p.as_ptr() as usize;
        assert_eq!(addr % PAGE_SIZE, 0);
        assert_eq!(usable_size(p.as_ptr()), Some(page_round(100_000).unwrap()));
        // SAFETY: the allocation holds at least 100,000 bytes.
        unsafe { p.as_ptr().cast::<u8>().write_bytes(0xab, 100_000) };
        assert_eq!(containing(addr + 5000), Some(addr));
        assert!(free(p.as_ptr()));
        assert!(!free(p.as_ptr()));
        let (q, _) = allocate(10, 1 << 20).unwrap();
        assert_eq!(q.as_ptr() as usize % (1 << 20), 0);
        assert!(free(q.as_ptr()));
    }

    #[test]
    fn every_allocation_has_inaccessible_neighbours() {
        for (size, align) in [
            (40_000, 16),
            (MAX_EXTENT, 16),
            (MAX_EXTENT + 1, 16),
            (10, 1 << 20),
        ] {
            let (p, _) = allocate(size, align).unwrap();
            let addr = p.as_ptr() as usize;
            let usable = usable_size(p.as_ptr()).unwrap();
            assert_eq!(protection(addr - PAGE_SIZE), "--", "below {size}");
            assert_eq!(protection(addr), "rw");
            assert_eq!(protection(addr + usable - 1), "rw");
            assert_eq!(protection(addr + usable), "--", "above {size}");
            assert!(free(p.as_ptr()));
        }
    }

    #[test]
    fn an_extent_shrinks_in_place_behind_a_new_guard() {
        let (p, _) = allocate(1 << 20, 16).unwrap();
        // SAFETY: 1 MiB allocation.
        unsafe { p.as_ptr().cast::<u8>().write_bytes(5, 1 << 20) };
        let Resized::Done(q) = resize(p.as_ptr(), 100_000, 100_000) else {
            panic!("shrink failed");
        };
        assert_eq!(p, q);
        let usable = page_round(100_000).unwrap();
        assert_eq!(usable_size(q.as_ptr()), Some(usable));
        assert_eq!(protection(q.as_ptr() as usize + usable), "--");
        // SAFETY: the allocation holds `usable` bytes.
        let bytes = unsafe { core::slice::from_raw_parts(q.as_ptr().cast::<u8>(), usable) };
        assert!(bytes.iter().all(|&b| b == 5));
        assert!(free(q.as_ptr()));
    }

    #[test]
    fn a_mapping_of_its_own_grows_by_moving_pages_and_keeps_contents() {
        let size = MAX_EXTENT + PAGE_SIZE;
        let (p, _) = allocate(size, 16).unwrap();
        // SAFETY: the allocation holds `size` bytes.
        unsafe { p.as_ptr().cast::<u8>().write_bytes(7, size) };
        let Resized::Done(q) = resize(p.as_ptr(), 2 * size, 3 * size) else {
            panic!("resize failed");
        };
        assert_eq!(
            usable_size(q.as_ptr()),
            Some(3 * size),
            "grown to the room asked"
        );
        // SAFETY: the resized allocation holds 3 * size bytes.
        let bytes = unsafe { core::slice::from_raw_parts(q.as_ptr().cast::<u8>(), 3 * size) };
        assert!(bytes[..size].iter().step_by(1000).all(|&b| b == 7));
        assert!(bytes[size..].iter().step_by(PAGE_SIZE).all(|&b| b == 0));
        assert_eq!(protection(q.as_ptr() as usize + 3 * size), "--");
        assert!(usable_size(p.as_ptr()).is_none() || p == q);
        assert!(free(q.as_ptr()));
    }
}
