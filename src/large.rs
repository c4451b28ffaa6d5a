//! Large allocations: requests above the largest size class, or aligned
//! beyond what a class can serve.
//!
//! Owns: one mapping per large allocation, laid out
//! `| guard page | data (whole pages) | guard page |` with the guards
//! inaccessible, and the allocation placed at the *end* of the data (at the
//! highest address aligned as asked, 16 bytes by default), so that a write
//! just past its end faults on the guard page (a block `realloc` grows is
//! placed at the start of a mapping with room to grow in place instead);
//! the slack around it (before it in its first page, and after its size)
//! kept zero, and the `SLACK_CHECKED` bytes next to it on each side checked
//! when it is freed or resized, which catches a write just before its
//! start or just past its size when no guard page is there; the out-of-band table from
//! each allocation's address to its mapping; a small bounded cache of freed
//! mappings for reuse; and the history of the last `HISTORY` freed
//! addresses, which tells a double free of a large allocation from a free
//! of a pointer slitter never handed out.
//!
//! Invariants: the table holds exactly the live large allocations, keyed by
//! the address returned to the caller; nothing about an allocation is
//! stored next to its data; every mapping in the cache is a whole guarded
//! mapping owned by no one, and the cache never holds more than
//! `CACHE_SLOTS` mappings or `CACHE_BYTES` bytes of data; freed mappings
//! outside the cache are returned to the operating system at once. All of
//! it is under one lock: large allocations make system calls anyway.

use core::ffi::c_void;
use core::ptr::NonNull;

use crate::lock::Lock;
use crate::mapper::os_map_zeroed;

/// The page size (x86-64).
pub const PAGE_SIZE: usize = 4096;
const GUARD_SIZE: usize = PAGE_SIZE;
const CACHE_SLOTS: usize = 16;
const CACHE_BYTES: usize = 32 << 20;

/// How many freed addresses the history remembers.
const HISTORY: usize = 32 << 10;
/// The alignment of every allocation.
const MIN_ALIGN: usize = 16;
/// Bytes of slack checked on each side of an allocation: a stray write
/// just before or after it lands there.
const SLACK_CHECKED: usize = 256;

/// One mapping: `base` and `total` cover the guards, `data` and `length`
/// the accessible part, `user` is the allocation's address (0 while the
/// mapping is cached), `data <= user < data + length`, and `size` the
/// bytes asked for, `user + size <= data + length`.
#[derive(Clone, Copy, Default)]
struct Mapping {
    base: usize,
    total: usize,
    data: usize,
    length: usize,
    user: usize,
    size: usize,
}

impl Mapping {
    /// The end of the data: where the allocation ends.
    fn end(&self) -> usize {
        self.data + self.length
    }

    /// The highest address aligned to `align` (at least `MIN_ALIGN`) at
    /// which `size` bytes end by the end of the data.
    fn place(&self, size: usize, align: usize) -> usize {
        let size = size.max(1).next_multiple_of(MIN_ALIGN);
        (self.end() - size) & !(align.max(MIN_ALIGN) - 1)
    }

    /// The slack of the placed allocation: before it, and after it.
    fn slack(&self) -> [(usize, usize); 2] {
        let after = self.user + self.size;
        [
            (self.data, self.user - self.data),
            (after, self.end() - after),
        ]
    }

    /// Zeroes the slack around the placed allocation.
    fn clear_slack(&self) {
        for (start, len) in self.slack() {
            // SAFETY: the slack lies in this mapping's accessible data,
            // which the allocation's owner may not use.
            unsafe { (start as *mut u8).write_bytes(0, len) };
        }
    }

    /// Aborts if the slack next to the allocation (up to `SLACK_CHECKED`
    /// bytes on each side, so that the cost stays constant) was written
    /// to: the program wrote outside its allocation.
    fn check_slack(&self) {
        let [(head, head_len), (tail, tail_len)] = self.slack();
        let checked = head_len.min(SLACK_CHECKED);
        let windows = [
            (head + head_len - checked, checked),
            (tail, tail_len.min(SLACK_CHECKED)),
        ];
        let [before, after] = windows.map(|(start, len)| {
            // SAFETY: inside the slack, as in `clear_slack`; reads only.
            unsafe { core::slice::from_raw_parts(start as *const u8, len) }
                .iter()
                .all(|&b| b == 0)
        });
        let (user, size) = (self.user, self.size);
        if !before {
            crate::fatal::die(format_args!(
                "heap underflow: the bytes just before the large allocation at {user:#x} \
                 (size {size}) were overwritten"
            ))
        }
        if !after {
            crate::fatal::die(format_args!(
                "heap overflow: the bytes just after the large allocation at {user:#x} \
                 (size {size}) were overwritten"
            ))
        }
    }
}

/// A table slot whose `user` is 0 is empty; `TOMBSTONE`, a removed entry.
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

/// The last `HISTORY` freed addresses, oldest overwritten first.
struct History {
    entries: *mut usize,
    next: usize,
}

struct State {
    table: Table,
    history: History,
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
    history: History {
        entries: core::ptr::null_mut(),
        next: 0,
    },
    cache: [Mapping {
        base: 0,
        total: 0,
        data: 0,
        length: 0,
        user: 0,
        size: 0,
    }; CACHE_SLOTS],
    cached_bytes: 0,
    live_bytes: 0,
});

fn hash(user: usize, capacity: usize) -> usize {
    ((user >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 20) & (capacity - 1)
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

    /// The index of the entry for `user`, if present.
    fn find(&self, user: usize) -> Option<usize> {
        if self.capacity == 0 || user <= TOMBSTONE {
            return None;
        }
        let mut index = hash(user, self.capacity);
        loop {
            let key = self.get(index).user;
            if key == user {
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
        let mut index = hash(mapping.user, self.capacity);
        while self.get(index).user > TOMBSTONE {
            index = (index + 1) & (self.capacity - 1);
        }
        if self.get(index).user == 0 {
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
                user: TOMBSTONE,
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
            if mapping.user > TOMBSTONE {
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

impl History {
    /// Remembers that `user` was freed (forgets nothing if the history
    /// cannot be mapped: it only sharpens reports).
    fn remember(&mut self, user: usize) {
        if self.entries.is_null() {
            match os_map_zeroed(HISTORY * core::mem::size_of::<usize>()) {
                Some(entries) => self.entries = entries.as_ptr().cast(),
                None => return,
            }
        }
        // SAFETY: `next < HISTORY`, inside the history's mapping, which
        // only the lock holder touches.
        unsafe { *self.entries.add(self.next) = user };
        self.next = (self.next + 1) % HISTORY;
    }

    /// Whether `user` is among the remembered freed addresses.
    fn contains(&self, user: usize) -> bool {
        // SAFETY: as in `remember`: HISTORY entries once mapped.
        !self.entries.is_null()
            && unsafe { core::slice::from_raw_parts(self.entries, HISTORY) }.contains(&user)
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
        user: 0,
        size: 0,
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
            *slot = Mapping { user: 0, ..mapping };
            return;
        }
    }
    unmap(mapping);
}

/// A new large allocation of at least `size` bytes aligned to `align`,
/// ending at its guard page, and whether its memory is known to be zero;
/// `None` when out of memory.
pub fn allocate(size: usize, align: usize) -> Option<(NonNull<c_void>, bool)> {
    allocate_placed(size, align, page_round(size.max(1))?, Placement::End)
}

/// A new large allocation of at least `size` bytes aligned to `align`, for
/// a block that `realloc` is growing: placed at the *start* of a mapping
/// with room for half as much again, so that the next growths happen in
/// place (a write past its size lands in checked slack, not yet on the
/// guard page).
pub fn allocate_to_grow(size: usize, align: usize) -> Option<NonNull<c_void>> {
    let length = page_round(size.max(1).checked_add(size / 2)?)?;
    allocate_placed(size, align, length, Placement::Start).map(|(p, _)| p)
}

/// Where an allocation sits in its mapping's data.
enum Placement {
    /// Ending at the guard page.
    End,
    /// At the start of the data.
    Start,
}

fn allocate_placed(
    size: usize,
    align: usize,
    length: usize,
    placement: Placement,
) -> Option<(NonNull<c_void>, bool)> {
    let mut state = STATE.lock();
    let (mut mapping, fresh) = match (align <= PAGE_SIZE)
        .then(|| take_cached(&mut state, length))
        .flatten()
    {
        Some(mapping) => (mapping, false),
        None => (map(length, align)?, true),
    };
    mapping.user = match placement {
        Placement::End => mapping.place(size, align),
        Placement::Start => mapping.data,
    };
    mapping.size = size;
    if !fresh {
        mapping.clear_slack();
    }
    if !state.table.insert(mapping) {
        retire(&mut state, mapping);
        return None;
    }
    state.live_bytes += mapping.length;
    Some((NonNull::new(mapping.user as *mut c_void)?, fresh))
}

/// Frees the large allocation at `ptr`; `false` if there is none there.
pub fn free(ptr: *mut c_void) -> bool {
    let mut state = STATE.lock();
    let Some(index) = state.table.find(ptr as usize) else {
        return false;
    };
    let mapping = state.table.get(index);
    mapping.check_slack();
    state.table.remove(index);
    state.live_bytes -= mapping.length;
    state.history.remember(mapping.user);
    retire(&mut state, mapping);
    true
}

/// The usable size of the large allocation at `ptr`, if there is one:
/// exactly the size asked for (the slack around it is checked).
pub fn usable_size(ptr: *const c_void) -> Option<usize> {
    let state = STATE.lock();
    Some(state.table.get(state.table.find(ptr as usize)?).size)
}

/// What the large path knows of an address that is not a live large
/// allocation: for reports.
pub enum Known {
    /// Inside the live large allocation at this address.
    Inside(usize),
    /// Among the last freed large allocations.
    Freed,
    /// Nothing.
    Unknown,
}

/// What the large path knows of `addr`; scans the table and the history.
pub fn known(addr: usize) -> Known {
    let state = STATE.lock();
    let inside = (0..state.table.capacity)
        .map(|index| state.table.get(index))
        .find(|m| m.user > TOMBSTONE && addr >= m.base && addr < m.base + m.total);
    match inside {
        Some(mapping) => Known::Inside(mapping.user),
        None if state.history.contains(addr) => Known::Freed,
        None => Known::Unknown,
    }
}

/// What [`resize`] did.
pub enum Resized {
    /// The allocation now holds the new size, at this address.
    Done(NonNull<c_void>),
    /// The allocation must move to a new one; it holds this many bytes.
    Move(usize),
    /// `ptr` is not a large allocation.
    NotLarge,
}

/// Resizes the large allocation at `ptr` to `size` bytes in place when
/// they fit between it and its guard page and at least half the mapping
/// stays in use; the bytes past a shrunk size become checked slack again.
/// Otherwise the caller moves it into a new allocation (with room to grow
/// when it grows: [`allocate_to_grow`]).
pub fn resize(ptr: *mut c_void, size: usize) -> Resized {
    let mut state = STATE.lock();
    let Some(index) = state.table.find(ptr as usize) else {
        return Resized::NotLarge;
    };
    let old = state.table.get(index);
    old.check_slack();
    let fits = old
        .user
        .checked_add(size)
        .is_some_and(|end| end <= old.end())
        && page_round(size.max(1)).is_some_and(|length| length >= old.length / 2);
    if !fits {
        return Resized::Move(old.size);
    }
    let resized = Mapping { size, ..old };
    state.table.set(index, resized);
    resized.clear_slack();
    Resized::Done(NonNull::new(ptr).expect("allocations are not null"))
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
    fn allocations_end_at_their_guard_and_are_tracked() {
        let (p, _) = allocate(100_000, 16).unwrap();
        let addr = p.as_ptr() as usize;
        assert_eq!(addr % 16, 0);
        assert_eq!((addr + 100_000) % PAGE_SIZE, 0, "ends at the guard page");
        assert_eq!(usable_size(p.as_ptr()), Some(100_000));
        // SAFETY: the allocation holds at least 100,000 bytes.
        unsafe { p.as_ptr().cast::<u8>().write_bytes(0xab, 100_000) };
        assert!(matches!(known(addr + 5000), Known::Inside(a) if a == addr));
        assert!(free(p.as_ptr()));
        assert!(!free(p.as_ptr()));
        assert!(matches!(known(addr), Known::Freed));
        let (q, _) = allocate(10, 1 << 20).unwrap();
        assert_eq!(q.as_ptr() as usize % (1 << 20), 0);
        assert!(free(q.as_ptr()));
        let (r, _) = allocate(40_001, 64).unwrap();
        let end = (r.as_ptr() as usize + 40_001).next_multiple_of(PAGE_SIZE);
        assert_eq!(r.as_ptr() as usize % 64, 0);
        assert_eq!(usable_size(r.as_ptr()), Some(40_001));
        // The allocation ends within the 16-byte rounding and the 64-byte
        // alignment before the guard page.
        assert!(end - (r.as_ptr() as usize + 40_001) < 16 + 64);
        assert!(free(r.as_ptr()));
    }

    #[test]
    fn resize_in_place_keeps_the_address_and_checks_the_new_slack() {
        let (p, _) = allocate(1 << 20, 16).unwrap();
        // SAFETY: 1 MiB allocation.
        unsafe { p.as_ptr().cast::<u8>().write_bytes(7, 1 << 20) };
        let Resized::Done(q) = resize(p.as_ptr(), (1 << 20) - 1000) else {
            panic!("a shrink by 1000 bytes stays in place");
        };
        assert_eq!(p, q);
        assert_eq!(usable_size(p.as_ptr()), Some((1 << 20) - 1000));
        // The 1000 bytes given up were cleared: the slack check passes.
        assert!(matches!(resize(p.as_ptr(), 1 << 20), Resized::Done(r) if r == p));
        assert!(matches!(resize(p.as_ptr(), (1 << 20) + 1), Resized::Move(n) if n == 1 << 20));
        assert!(matches!(resize(p.as_ptr(), 100), Resized::Move(_)));
        assert!(free(p.as_ptr()));
        let grown = allocate_to_grow(100_000, 16).unwrap();
        assert!(matches!(resize(grown.as_ptr(), 140_000), Resized::Done(r) if r == grown));
        assert!(free(grown.as_ptr()));
    }
}
