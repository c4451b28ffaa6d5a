//! Large allocations: requests above the largest size class, or aligned
//! beyond what a class can serve.
//!
//! Owns: one mapping per large allocation, laid out
//! `| guard page | data (whole pages) | guard page |` with the guards
//! inaccessible; the out-of-band table from each data address to its
//! mapping; a small bounded cache of freed mappings for reuse; and growth
//! by `mremap`, which moves pages instead of copying bytes.
//!
//! Invariants: the table holds exactly the live large allocations, keyed by
//! the address returned to the caller (page-aligned, or aligned as asked);
//! nothing about an allocation is stored next to its data; every mapping
//! in the cache is a whole guarded mapping owned by no one, and the cache
//! never holds more than `CACHE_SLOTS` mappings or `CACHE_BYTES` bytes of
//! data; freed mappings outside the cache are returned to the operating
//! system at once. All of it is under one lock: large allocations make
//! system calls anyway.

use core::ffi::c_void;
use core::ptr::NonNull;

use crate::lock::Lock;
use crate::mapper::os_map_zeroed;

/// The page size (x86-64).
pub const PAGE_SIZE: usize = 4096;
const GUARD_SIZE: usize = PAGE_SIZE;
const CACHE_SLOTS: usize = 16;
const CACHE_BYTES: usize = 32 << 20;

/// One mapping: `base` and `total` cover the guards, `data` and `length`
/// the accessible part.
#[derive(Clone, Copy, Default)]
struct Mapping {
    base: usize,
    total: usize,
    data: usize,
    length: usize,
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
    cache: [Mapping; CACHE_SLOTS],
    cached_bytes: usize,
    /// Live allocations and their data bytes, for statistics.
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
    cache: [Mapping {
        base: 0,
        total: 0,
        data: 0,
        length: 0,
    }; CACHE_SLOTS],
    cached_bytes: 0,
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

    /// Adds `mapping`; `false` if the table cannot grow.
    fn insert(&mut self, mapping: Mapping) -> bool {
        if (self.used + 1) * 2 > self.capacity && !self.grow() {
            return false;
        }
        let mut index = hash(mapping.data, self.capacity);
        while self.get(index).data > TOMBSTONE {
            index = (index + 1) & (self.capacity - 1);
        }
        if self.get(index).data == 0 {
            self.used += 1;
        }
        self.set(index, mapping);
        self.live += 1;
        true
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

/// Takes from the cache a mapping whose data holds `length` bytes without
/// wasting more than a quarter of it.
fn take_cached(state: &mut State, length: usize) -> Option<Mapping> {
    let index = state
        .cache
        .iter()
        .enumerate()
        .filter(|(_, m)| m.length >= length && m.length - length <= m.length / 4)
        .min_by_key(|(_, m)| m.length)
        .map(|(index, _)| index)?;
    let mapping = core::mem::take(&mut state.cache[index]);
    state.cached_bytes -= mapping.length;
    Some(mapping)
}

/// Keeps a freed mapping in the cache if it fits, else unmaps it.
fn retire(state: &mut State, mapping: Mapping) {
    if state.cached_bytes + mapping.length <= CACHE_BYTES {
        if let Some(slot) = state.cache.iter_mut().find(|m| m.total == 0) {
            state.cached_bytes += mapping.length;
            *slot = mapping;
            return;
        }
    }
    unmap(mapping);
}

/// A new large allocation of at least `size` bytes aligned to `align`, and
/// whether its memory is known to be zero; `None` when out of memory.
pub fn allocate(size: usize, align: usize) -> Option<(NonNull<c_void>, bool)> {
    let length = page_round(size.max(1))?;
    let mut state = STATE.lock();
    let (mapping, fresh) = match (align <= PAGE_SIZE)
        .then(|| take_cached(&mut state, length))
        .flatten()
    {
        Some(mapping) => (mapping, false),
        None => (map(length, align)?, true),
    };
    if !state.table.insert(mapping) {
        retire(&mut state, mapping);
        return None;
    }
    state.live_bytes += mapping.length;
    Some((NonNull::new(mapping.data as *mut c_void)?, fresh))
}

/// Frees the large allocation at `ptr`; `false` if there is none there.
pub fn free(ptr: *mut c_void) -> bool {
    let mut state = STATE.lock();
    let Some(index) = state.table.find(ptr as usize) else {
        return false;
    };
    let mapping = state.table.remove(index);
    state.live_bytes -= mapping.length;
    retire(&mut state, mapping);
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

/// What [`resize`] did.
pub enum Resized {
    /// The allocation now holds the new size, at this address.
    Done(NonNull<c_void>),
    /// Out of memory; the allocation is unchanged.
    OutOfMemory,
    /// `ptr` is not a large allocation.
    NotLarge,
}

/// Resizes the large allocation at `ptr`, aligned to `align` (a power of
/// two), to hold `size` bytes at that alignment: in place when its pages
/// suffice and at most half would be unused, else by moving its pages with
/// `mremap` into a new guarded mapping (no copy).
pub fn resize(ptr: *mut c_void, size: usize, align: usize) -> Resized {
    let Some(length) = page_round(size.max(1)) else {
        return Resized::OutOfMemory;
    };
    let mut state = STATE.lock();
    let Some(index) = state.table.find(ptr as usize) else {
        return Resized::NotLarge;
    };
    let old = state.table.get(index);
    if length <= old.length && length >= old.length / 2 {
        return Resized::Done(NonNull::new(ptr).expect("large allocations are not null"));
    }
    let Some(mapping) = map(length, align) else {
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
    // Re-insert under the new address; the table has room (one entry was
    // just removed).
    state.table.insert(mapping);
    state.live_bytes = state.live_bytes - old.length + mapping.length;
    Resized::Done(NonNull::new(mapping.data as *mut c_void).expect("mappings are not null"))
}

/// Number of live large allocations and their data bytes, and the number
/// of cached mappings.
pub fn counts() -> (usize, usize, usize) {
    let state = STATE.lock();
    let cached = state.cache.iter().filter(|m| m.total != 0).count();
    (state.table.live, state.live_bytes, cached)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn resize_grows_by_moving_pages_and_keeps_contents() {
        let (p, _) = allocate(1 << 20, 16).unwrap();
        // SAFETY: 1 MiB allocation.
        unsafe { p.as_ptr().cast::<u8>().write_bytes(7, 1 << 20) };
        let Resized::Done(q) = resize(p.as_ptr(), 8 << 20, 16) else {
            panic!("resize failed");
        };
        // SAFETY: the resized allocation holds 8 MiB; the first MiB moved.
        let bytes = unsafe { core::slice::from_raw_parts(q.as_ptr().cast::<u8>(), 8 << 20) };
        assert!(bytes[..1 << 20].iter().all(|&b| b == 7));
        assert!(bytes[1 << 20..].iter().all(|&b| b == 0));
        assert!(usable_size(p.as_ptr()).is_none() || p == q);
        assert!(free(q.as_ptr()));
    }
}
