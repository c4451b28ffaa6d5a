//! Large allocations: requests above the largest size class, or aligned
//! beyond what a class can serve.
//!
//! Owns: the out-of-band table from each large allocation's address to its
//! memory, the history of freed addresses, and the choice of that memory:
//! a block of a size class (`heap/large/reuse.rs`: a cached block of the
//! class, an extent of the large arena, or a slot of a group) for requests
//! up to [`MAX_EXTENT`] aligned to at most a page, else a mapping of its
//! own laid out `| guard page | data (whole pages) | guard page |`,
//! unmapped on free and grown by `mremap`, which moves pages instead of
//! copying bytes. A new allocation is placed at the *end* of its data (at
//! the highest address aligned as asked, 16 bytes by default), so that a
//! write just past it faults on the guard page where there is one (every
//! extent and mapping; a slot only when it is its group's top one); a block
//! that `realloc` resizes keeps its address and grows towards a guard page
//! moved further up. The slack around an allocation (before it in its
//! data, and after its size) is checked, `SLACK_CHECKED` bytes next to it
//! on each side, when it is freed or resized: a write just before it, or
//! past its size where no guard page is there, is caught then. The history
//! of the last `HISTORY` freed addresses tells a double free of a large
//! allocation (cached for reuse or not) from a free of a pointer slitter
//! never handed out.
//!
//! Invariants: the table holds exactly the live large allocations, keyed by
//! the address returned to the caller (a cached block is not in it);
//! nothing about an allocation is stored next to its data; the pages just
//! below and above every live extent's and mapping's data, and around every
//! group, are inaccessible; the `SLACK_CHECKED` bytes of slack on each side
//! of a live allocation are zero unless the program wrote outside it. The
//! table, the history and the live byte count are under one lock, held
//! across no system call on the paths of `malloc` and `free` that reuse a
//! cached block (it maps memory only to grow the table or start the
//! history); `resize` holds it across its `mprotect`/`mremap` calls. Lock
//! order: this lock, then the arena's.

use core::ffi::c_void;
use core::ptr::NonNull;

use crate::heap::large::arena::MAX_EXTENT;
pub use crate::heap::large::arena::PAGE_SIZE;
use crate::heap::large::reuse::{self, Block};
use crate::sys::lock::{Forkable, Lock};
use crate::sys::os_memory::{os_map_zeroed, os_reserve};

const GUARD_SIZE: usize = PAGE_SIZE;
/// How many freed addresses the history remembers.
const HISTORY: usize = 32 << 10;
/// The alignment of every allocation.
const MIN_ALIGN: usize = 16;
/// Bytes of slack checked on each side of an allocation: a stray write
/// just before or after it lands there.
const SLACK_CHECKED: usize = 256;

/// What holds an allocation's memory.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
enum Kind {
    /// A mapping of its own.
    #[default]
    Own,
    /// An extent of the arena.
    Extent,
    /// A slot of a group.
    Slot,
}

/// One allocation's memory: `base` and `total` cover its guards (for an
/// arena extent, only the guard above: the one below belongs to what lies
/// below; a slot has none of its own), `data` and `length` the accessible
/// part; `user` is the address handed out and `size` the bytes asked for,
/// `data <= user` and `user + size <= data + length`.
#[derive(Clone, Copy, Default)]
struct Mapping {
    base: usize,
    total: usize,
    data: usize,
    length: usize,
    kind: Kind,
    user: usize,
    size: usize,
}

impl Mapping {
    fn block(block: Block) -> Mapping {
        let (kind, guard) = if block.slot {
            (Kind::Slot, 0)
        } else {
            (Kind::Extent, GUARD_SIZE)
        };
        Mapping {
            base: block.data,
            total: block.length + guard,
            data: block.data,
            length: block.length,
            kind,
            user: 0,
            size: 0,
        }
    }

    /// The block of an extent or slot.
    fn as_block(&self) -> Block {
        Block {
            data: self.data,
            length: self.length,
            slot: self.kind == Kind::Slot,
        }
    }

    /// The end of the data.
    fn end(&self) -> usize {
        self.data + self.length
    }

    /// This memory holding `size` bytes at its highest address aligned to
    /// `align` (at least `MIN_ALIGN`).
    fn placed_at_end(self, size: usize, align: usize) -> Mapping {
        let rounded = size.max(1).next_multiple_of(MIN_ALIGN);
        let user = (self.end() - rounded) & !(align.max(MIN_ALIGN) - 1);
        Mapping { user, size, ..self }
    }

    /// The checked slack: up to `SLACK_CHECKED` bytes just before the
    /// allocation, and just after its size.
    fn slack_windows(&self) -> [(usize, usize); 2] {
        let before = (self.user - self.data).min(SLACK_CHECKED);
        let after = self.user + self.size;
        [
            (self.user - before, before),
            (after, (self.end() - after).min(SLACK_CHECKED)),
        ]
    }

    /// Zeroes the checked slack.
    fn clear_slack(&self) {
        for (start, len) in self.slack_windows() {
            // SAFETY: the windows lie in this memory's accessible data,
            // outside the allocation.
            unsafe { (start as *mut u8).write_bytes(0, len) };
        }
    }

    /// Aborts if the checked slack was written to: the program wrote
    /// outside its allocation.
    fn check_slack(&self) {
        let [before, after] = self.slack_windows().map(|(start, len)| {
            // SAFETY: as in `clear_slack`; reads only.
            unsafe { core::slice::from_raw_parts(start as *const u8, len) }
                .iter()
                .all(|&b| b == 0)
        });
        let (user, size) = (self.user, self.size);
        if !before {
            crate::sys::fatal::die(format_args!(
                "heap underflow: the bytes just before the large allocation at {user:#x} \
                 (size {size}) were overwritten"
            ))
        }
        if !after {
            crate::sys::fatal::die(format_args!(
                "heap overflow: the bytes just after the large allocation at {user:#x} \
                 (size {size}) were overwritten"
            ))
        }
    }
}

/// Open-addressing hash table (linear probing, removal by shifting back
/// the entries that follow, so no tombstones: a program churning through
/// large blocks never makes it rehash) of live allocations, in memory
/// mapped here. A slot whose `user` is 0 is empty.
struct Table {
    entries: *mut Mapping,
    capacity: usize,
    /// Live entries.
    live: usize,
}

/// The last `HISTORY` freed addresses, oldest overwritten first.
struct History {
    entries: *mut usize,
    next: usize,
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

struct State {
    table: Table,
    history: History,
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
    },
    history: History {
        entries: core::ptr::null_mut(),
        next: 0,
    },
    live_bytes: 0,
});

/// Calls `f` with every lock of the large path, in the lock order (the
/// class caches', this file's, the arena's), for the fork handlers.
pub fn each_lock(f: &mut dyn FnMut(&dyn Forkable)) {
    reuse::each_cache_lock(f);
    f(&STATE);
    f(reuse::arena_lock());
}

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
        if self.capacity == 0 || user == 0 {
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

    /// Ensures one more entry can be inserted; `false` if the table
    /// cannot grow.
    fn make_room(&mut self) -> bool {
        (self.live + 1) * 2 <= self.capacity || self.grow()
    }

    /// Adds `mapping`, after [`Table::make_room`].
    fn insert(&mut self, mapping: Mapping) {
        debug_assert!((self.live + 1) * 2 <= self.capacity);
        let mut index = hash(mapping.user, self.capacity);
        while self.get(index).user != 0 {
            index = (index + 1) & (self.capacity - 1);
        }
        self.set(index, mapping);
        self.live += 1;
    }

    /// Removes entry `index`, moving back into the hole each following
    /// entry of its run whose home slot does not lie between the hole and
    /// it (cyclically), so that every entry stays reachable from its home.
    fn remove(&mut self, index: usize) -> Mapping {
        let mapping = self.get(index);
        let mask = self.capacity - 1;
        let mut hole = index;
        let mut next = (index + 1) & mask;
        loop {
            let entry = self.get(next);
            if entry.user == 0 {
                break;
            }
            let home = hash(entry.user, self.capacity);
            // The distance from its home to it, and from its home to the
            // hole: it may move back only if the hole is on its path.
            if (next.wrapping_sub(home) & mask) >= (hole.wrapping_sub(home) & mask) {
                self.set(hole, entry);
                hole = next;
            }
            next = (next + 1) & mask;
        }
        self.set(hole, Mapping::default());
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
            },
        );
        for index in 0..old.capacity {
            let mapping = old.get(index);
            if mapping.user != 0 {
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
    let base = os_reserve(total).ok()?.as_ptr() as usize;
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
        kind: Kind::Own,
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

/// Gives the memory of an allocation no longer live back: to its class's
/// cache, or to the kernel for a mapping of its own.
fn release(mapping: Mapping) {
    match mapping.kind {
        Kind::Own => unmap(mapping),
        Kind::Extent | Kind::Slot => reuse::keep(mapping.as_block()),
    }
}

/// A new large allocation of `size` bytes aligned to `align`, ending as
/// close to its guard page as the alignment allows, and whether its memory
/// is known to be zero; `None` when out of memory.
pub fn allocate(size: usize, align: usize) -> Option<(NonNull<c_void>, bool)> {
    let length = page_round(size.max(1))?;
    let reused = (align <= PAGE_SIZE && length <= MAX_EXTENT)
        .then(|| reuse::take(length))
        .flatten();
    let (memory, zeroed) = match reused {
        Some((block, zeroed)) => (Mapping::block(block), zeroed),
        // Too large or too aligned for the arena, or it is out of
        // reservations: a mapping of its own.
        None => (map(length, align)?, true),
    };
    let mapping = memory.placed_at_end(size, align);
    if !zeroed {
        mapping.clear_slack();
    }
    let mut state = STATE.lock();
    if !state.table.make_room() {
        drop(state);
        release(mapping);
        return None;
    }
    state.table.insert(mapping);
    state.live_bytes += mapping.length;
    Some((NonNull::new(mapping.user as *mut c_void)?, zeroed))
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
    drop(state);
    release(mapping);
    true
}

/// The usable size of the large allocation at `ptr`, if there is one: the
/// size asked for, or the room a resize gave it (the slack beyond is
/// checked).
pub fn usable_size(ptr: *const c_void) -> Option<usize> {
    let state = STATE.lock();
    Some(state.table.get(state.table.find(ptr as usize)?).size)
}

/// What the large path knows of an address that is not a live large
/// allocation: for reports.
pub enum Known {
    /// Inside the memory of the live large allocation at this address.
    Inside(usize),
    /// Among the last freed large allocations.
    Freed,
    /// Inside a freed block kept for reuse.
    InsideFreed,
    /// Nothing.
    Unknown,
}

/// What the large path knows of `addr`; scans the table, the history and
/// the cached blocks.
pub fn known(addr: usize) -> Known {
    let (inside, freed) = {
        let state = STATE.lock();
        let inside = (0..state.table.capacity)
            .map(|index| state.table.get(index))
            .find(|m| m.user != 0 && addr >= m.base && addr < m.base + m.total);
        (inside, state.history.contains(addr))
    };
    match inside {
        Some(mapping) => Known::Inside(mapping.user),
        None if freed => Known::Freed,
        None if reuse::is_cached(addr) => Known::InsideFreed,
        None => Known::Unknown,
    }
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

/// Resizes the large allocation at `ptr` to `size` bytes at the same
/// address, giving its memory room for `room` bytes (at least `size`)
/// where that costs no copy:
/// - in place when its pages suffice and at most half would be unused;
/// - an arena extent shrinks by freeing its tail, and grows into the free
///   range above it (to `room` if that fits, else to `size`), or asks the
///   caller to move it;
/// - a mapping of its own moves its pages with `mremap` into a new guarded
///   mapping (no copy; the address changes, and the old one counts as
///   freed).
///
/// The slack is checked before, and the new slack cleared after. `align`
/// is the allocation's alignment, which a move keeps.
pub fn resize(ptr: *mut c_void, size: usize, room: usize, align: usize) -> Resized {
    let mut state = STATE.lock();
    let Some(index) = state.table.find(ptr as usize) else {
        return Resized::NotLarge;
    };
    let old = state.table.get(index);
    old.check_slack();
    // Data bytes from the start of the memory to the end of the
    // allocation, now and with room.
    let offset = old.user - old.data;
    let room = room.max(size);
    let (Some(length), Some(room_length)) = (
        page_round(offset.saturating_add(size.max(1))),
        page_round(offset.saturating_add(room)),
    ) else {
        return Resized::OutOfMemory;
    };
    // A growing allocation gets the room its memory has, up to `room`, as
    // its size: the next growths within it need no call here.
    let resized = |memory: Mapping| {
        let user = memory.data + offset;
        let size = if size > old.size {
            room.min(memory.end() - user).max(size)
        } else {
            size
        };
        Mapping {
            user,
            size,
            ..memory
        }
    };
    if length <= old.length && length >= old.length / 2 {
        let mapping = resized(old);
        state.table.set(index, mapping);
        mapping.clear_slack();
        return Resized::Done(NonNull::new(ptr).expect("large allocations are not null"));
    }
    if old.kind == Kind::Slot {
        // A slot neither grows nor shrinks: its neighbours are slots.
        return Resized::Move;
    }
    if old.kind == Kind::Extent {
        let new_length = if length < old.length {
            if reuse::arena().shrink(old.data, old.length, length) {
                length
            } else {
                // The kernel refused to split the mapping: keep it whole.
                old.length
            }
        } else {
            let grown = reuse::arena().grow(old.data, old.length, length, room_length);
            match grown {
                Some(new_length) => new_length,
                None => return Resized::Move,
            }
        };
        let mapping = resized(Mapping::block(Block {
            data: old.data,
            length: new_length,
            slot: false,
        }));
        state.table.set(index, mapping);
        mapping.clear_slack();
        state.live_bytes = state.live_bytes - old.length + new_length;
        return Resized::Done(NonNull::new(ptr).expect("large allocations are not null"));
    }
    // Room to re-insert under the new address (growing rehashes the table).
    if !state.table.make_room() {
        return Resized::OutOfMemory;
    }
    let index = state.table.find(ptr as usize).expect("still live");
    // The allocation's offset in its data is a multiple of `align` (its
    // data is aligned to at least that much), so aligned data keeps it
    // aligned. Growing, with room if there is memory for it.
    let mapped = (length > old.length)
        .then(|| map(room_length, align))
        .flatten()
        .or_else(|| map(length, align));
    let Some(memory) = mapped else {
        return Resized::OutOfMemory;
    };
    let length = memory.length;
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
            memory.data as *mut c_void,
        )
    };
    if ret == libc::MAP_FAILED {
        unmap(memory);
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
    let mapping = resized(memory);
    state.table.remove(index);
    state.table.insert(mapping);
    mapping.clear_slack();
    state.history.remember(old.user);
    state.live_bytes = state.live_bytes - old.length + mapping.length;
    Resized::Done(NonNull::new(mapping.user as *mut c_void).expect("mappings are not null"))
}

/// Bytes of freed large allocations kept resident for reuse (an upper
/// bound: pages swapped out since count); for `mallinfo`.
#[cfg(feature = "malloc")]
pub fn retained_bytes() -> usize {
    reuse::retained_bytes()
}

/// Gives the memory of freed large allocations kept for reuse back to the
/// operating system; returns how many bytes that was (`malloc_trim`).
#[cfg(feature = "malloc")]
pub fn trim() -> usize {
    reuse::trim()
}

/// Number of live large allocations and their data bytes, and the number
/// of freed blocks and ranges kept for reuse.
pub fn counts() -> (usize, usize, usize) {
    let (live, bytes) = {
        let state = STATE.lock();
        (state.table.live, state.live_bytes)
    };
    (live, bytes, reuse::retained_count())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::heap::large::arena::protection;

    /// Sizes from which a block has guard pages of its own.
    const GUARDED: usize = reuse::GROUPED_BELOW;

    #[test]
    fn allocations_end_at_their_guard_and_are_tracked() {
        let size = GUARDED + 100_000;
        let (p, _) = allocate(size, 16).unwrap();
        let addr = p.as_ptr() as usize;
        assert_eq!(addr % 16, 0);
        assert_eq!(protection(addr + size), "--", "ends at the guard page");
        assert_eq!(usable_size(p.as_ptr()), Some(size));
        // SAFETY: the allocation holds `size` bytes.
        unsafe { p.as_ptr().cast::<u8>().write_bytes(0xab, size) };
        assert!(matches!(known(addr + 5000), Known::Inside(a) if a == addr));
        assert!(free(p.as_ptr()));
        assert!(!free(p.as_ptr()));
        assert!(matches!(known(addr), Known::Freed));
        let (q, _) = allocate(10, 1 << 20).unwrap();
        assert_eq!(q.as_ptr() as usize % (1 << 20), 0);
        assert!(free(q.as_ptr()));
        let size = GUARDED + 40_001;
        let (r, _) = allocate(size, 64).unwrap();
        let r = r.as_ptr() as usize;
        assert_eq!(r % 64, 0);
        // It ends within the 16-byte rounding and the 64-byte alignment
        // before the guard page.
        let guard = (r + size).next_multiple_of(PAGE_SIZE);
        assert_eq!(protection(guard), "--");
        assert!(guard - (r + size) < 16 + 64);
        assert!(free(r as *mut c_void));
    }

    #[test]
    fn every_allocation_has_inaccessible_neighbours() {
        for (size, align) in [
            (GUARDED, 16),
            // Sizes within a page of their class's length (the page below
            // the allocation's is below its block).
            (GUARDED + GUARDED / 4 - 100, 16),
            (MAX_EXTENT, 16),
            (MAX_EXTENT + 1, 16),
            (10, 1 << 20),
        ] {
            let (p, _) = allocate(size, align).unwrap();
            let addr = p.as_ptr() as usize;
            let usable = usable_size(p.as_ptr()).unwrap();
            let first_page = addr & !(PAGE_SIZE - 1);
            assert_eq!(protection(first_page - PAGE_SIZE), "--", "below {size}");
            assert_eq!(protection(addr), "rw");
            assert_eq!(protection(addr + usable - 1), "rw");
            let end_page = (addr + usable).next_multiple_of(PAGE_SIZE);
            assert_eq!(protection(end_page), "--", "above {size}");
            assert!(free(p.as_ptr()));
        }
    }

    #[test]
    fn an_extent_shrinks_in_place_behind_a_new_guard() {
        let (p, _) = allocate(1 << 20, 16).unwrap();
        // SAFETY: 1 MiB allocation.
        unsafe { p.as_ptr().cast::<u8>().write_bytes(5, 1 << 20) };
        let Resized::Done(q) = resize(p.as_ptr(), 100_000, 100_000, 16) else {
            panic!("shrink failed");
        };
        assert_eq!(p, q);
        assert_eq!(usable_size(q.as_ptr()), Some(100_000));
        let end_page = (q.as_ptr() as usize + 100_000).next_multiple_of(PAGE_SIZE);
        assert_eq!(protection(end_page), "--");
        // SAFETY: the allocation holds 100,000 bytes.
        let bytes = unsafe { core::slice::from_raw_parts(q.as_ptr().cast::<u8>(), 100_000) };
        assert!(bytes.iter().all(|&b| b == 5));
        // The bytes given up became checked slack, cleared: this passes.
        assert!(
            matches!(resize(q.as_ptr(), 100_000 + 64, 100_064, 16), Resized::Done(r) if r == q)
        );
        assert!(free(q.as_ptr()));
    }

    #[test]
    fn a_mapping_of_its_own_grows_by_moving_pages_and_keeps_contents() {
        let size = MAX_EXTENT + PAGE_SIZE;
        let (p, _) = allocate(size, 16).unwrap();
        // SAFETY: the allocation holds `size` bytes.
        unsafe { p.as_ptr().cast::<u8>().write_bytes(7, size) };
        let Resized::Done(q) = resize(p.as_ptr(), 2 * size, 3 * size, 16) else {
            panic!("resize failed");
        };
        // Growing, it gets the room asked as its size.
        assert_eq!(usable_size(q.as_ptr()), Some(3 * size));
        // SAFETY: the resized allocation holds 2 * size bytes.
        let bytes = unsafe { core::slice::from_raw_parts(q.as_ptr().cast::<u8>(), 2 * size) };
        assert!(bytes[..size].iter().step_by(1000).all(|&b| b == 7));
        assert!(bytes[size..].iter().step_by(PAGE_SIZE).all(|&b| b == 0));
        // Grown to the room asked: more pages up to the guard.
        let data = q.as_ptr() as usize & !(PAGE_SIZE - 1);
        assert_eq!(protection(data + 3 * size - 1), "rw");
        // The old address is remembered as freed (read from the history:
        // another test running meanwhile may already reuse the address).
        assert!(p == q || STATE.lock().history.contains(p.as_ptr() as usize));
        assert!(free(q.as_ptr()));
    }

    #[test]
    fn the_table_finds_every_entry_after_removals_and_never_rehashes_for_churn() {
        let mut table = Table {
            entries: core::ptr::null_mut(),
            capacity: 0,
            live: 0,
        };
        let entry = |user| Mapping {
            user,
            ..Mapping::default()
        };
        let mut live: Vec<usize> = Vec::new();
        let mut settled = core::ptr::null_mut();
        let mut seed = 7u64;
        for step in 0..20_000usize {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            if live.len() < 100 && (seed >> 60) < 10 {
                let user = ((seed >> 20) as usize & 0xffff_fff0) | 0x10;
                if table.find(user).is_none() {
                    assert!(table.make_room());
                    table.insert(entry(user));
                    live.push(user);
                }
            } else if !live.is_empty() {
                let user = live.swap_remove((seed >> 32) as usize % live.len());
                let index = table.find(user).unwrap();
                assert_eq!(table.remove(index).user, user);
                assert!(table.find(user).is_none(), "step {step}");
            }
            if step == 1000 {
                settled = table.entries;
            }
            if step % 1000 == 0 {
                for &user in &live {
                    assert!(table.find(user).is_some(), "lost {user:#x} at step {step}");
                }
            }
        }
        assert_eq!(table.live, live.len());
        assert_eq!(
            table.entries, settled,
            "no rehash after the first 1,000 steps"
        );
    }

    #[test]
    fn a_freed_block_is_cached_not_live_and_reused_where_it_was() {
        // Half the largest extent and 3 pages: a size class no other test
        // uses.
        let size = MAX_EXTENT / 2 + 3 * PAGE_SIZE;
        let (p, _) = allocate(size, 16).unwrap();
        let addr = p.as_ptr() as usize;
        assert!(free(p.as_ptr()));
        // Cached, not live: a second free, and a free inside it, fail;
        // the history knows the first.
        assert!(!free(p.as_ptr()));
        assert!(!free((addr + PAGE_SIZE) as *mut c_void));
        assert!(matches!(known(addr), Known::Freed));
        assert!(matches!(known(addr + PAGE_SIZE), Known::InsideFreed));
        assert!(usable_size(p.as_ptr()).is_none());
        // The next request of its class gets it back, guards and all.
        let (q, _) = allocate(size - 100, 16).unwrap();
        let q = q.as_ptr() as usize;
        assert!(q >= addr && q < addr + PAGE_SIZE, "where it was");
        assert_eq!(protection(addr + size), "--");
        assert!(free(q as *mut c_void));
    }

    #[test]
    fn a_slot_resizes_in_place_or_asks_to_move() {
        if !reuse::grouped(10 * PAGE_SIZE) {
            return;
        }
        // 9 pages: a class of 10 pages, grouped, that no other test uses.
        let size = 9 * PAGE_SIZE;
        let (p, _) = allocate(size, 16).unwrap();
        let p = p.as_ptr();
        // Within its pages, using more than half: in place.
        assert!(
            matches!(resize(p, size - 1000, size - 1000, 16), Resized::Done(q) if q.as_ptr() == p)
        );
        assert_eq!(usable_size(p), Some(size - 1000));
        // Beyond them, or below half: moved by the caller.
        assert!(matches!(
            resize(p, 11 * PAGE_SIZE, 11 * PAGE_SIZE, 16),
            Resized::Move
        ));
        assert!(matches!(resize(p, PAGE_SIZE, PAGE_SIZE, 16), Resized::Move));
        assert_eq!(usable_size(p), Some(size - 1000));
        assert!(free(p));
    }
}
