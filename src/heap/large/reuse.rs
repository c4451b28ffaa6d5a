//! Reuse of large blocks: page-granular size classes, the freed blocks of
//! each class kept as they are for the next request of that class, groups
//! of small blocks, and the decay of the kept memory.
//!
//! Owns: the large arena and its lock (every call into
//! `heap/large/arena.rs` is made here), per size class [`SHELVES`] caches
//! (LIFO stacks of freed blocks, in memory mapped here, each under a lock
//! of its own), the count of the kept bytes that may hold memory, and the
//! clock of their decay.
//!
//! Size classes: four per doubling of the length in pages (1, 2, ..., 8,
//! 10, 12, 14, 16, 20, 24, 28, 32, ... pages), up to [`MAX_EXTENT`]. A
//! request takes the class of its length rounded up; a freed block goes to
//! the largest class whose length it holds. A class's block is either an
//! *extent* of the arena (`| data | guard page |`, the page below it
//! inaccessible too) or, for classes under [`GROUPED_BELOW`] unless
//! `SLITTER_HARDEN` is on or guard pages come from `MADV_GUARD_INSTALL`
//! (which costs no mapping: see `heap/large/page_states.rs`), a *slot* of
//! a group: one extent of at most
//! [`GROUP_PAGES`] pages (its guard included) cut into slots of the class
//! length side by side, so that the guards are at the ends of the group
//! (one mapping per group instead of two per block). A slot never goes back
//! to the arena; a cached extent does when its class cannot keep it or
//! when the arena runs out of reservations.
//!
//! Taking a cached block and keeping a freed one make no system call: the
//! block keeps its protection and its pages. Beyond [`DECAY_BUDGET`] bytes
//! of kept blocks that may hold memory, those kept longer than
//! [`DECAY_AGE_MS`] are given back with `MADV_DONTNEED` (they stay cached,
//! reading as zero), oldest first, at most [`DECAY_WORK`] bytes per call
//! and one call per [`DECAY_EVERY_MS`]; [`trim`] gives all of them back.
//! Either takes the old blocks out of their cache a batch at a time, gives
//! back their memory with no lock held, and puts them back, so no thread
//! taking or keeping a block waits on a system call.
//!
//! Invariants: a cached block is not live (`heap/large/blocks.rs`'s table
//! does not hold it), lies in the arena, and has the protection it had when
//! live (data read/write, the pages just outside its extent or group
//! inaccessible); each cache's entries are in the order they were pushed,
//! and those below its `settled` index read as zero; a cache's `dirty` is
//! the sum of the lengths of its blocks not known to read as zero, and its
//! class's copy of it is updated before its lock is released. Lock
//! order: a class's lock, then the arena's.

use core::ffi::c_void;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use crate::heap::large::arena::{Arena, MAX_EXTENT, PAGE_SIZE};
use crate::heap::large::page_states::change_access;
use crate::sys::lock::{Forkable, Lock};
use crate::sys::os_memory::grow_mapped_array;

/// Blocks of classes this long or longer are extents with guards of their
/// own; shorter ones are slots of groups (unless hardened).
pub const GROUPED_BELOW: usize = 1 << 20;
/// The pages of a group's extent, its guard page included (2 MiB).
pub const GROUP_PAGES: usize = 512;
/// Bytes of cached blocks that may hold memory kept whatever their age.
pub const DECAY_BUDGET: usize = 16 << 20;
/// How long a cached block keeps its memory beyond the budget.
pub const DECAY_AGE_MS: u64 = 100;
/// The least time between two rounds of decay.
pub const DECAY_EVERY_MS: u64 = 10;
/// The most bytes given back by one round of decay.
pub const DECAY_WORK: usize = 64 << 20;

/// A freed or live block: `length` data bytes at `data` (whole pages).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Block {
    pub data: usize,
    pub length: usize,
    /// A slot of a group, rather than an extent of its own.
    pub slot: bool,
}

/// The class index of the largest class of at most `pages` pages (at least
/// one), and that class's pages.
pub const fn floor_class(pages: usize) -> (usize, usize) {
    if pages < 8 {
        return (pages, pages);
    }
    let log = (usize::BITS - 1 - pages.leading_zeros()) as usize;
    let step = 1 << (log - 2);
    let multiple = pages / step;
    (4 * (log - 2) + multiple, multiple * step)
}

/// The class index and pages of the smallest class of at least `pages`
/// pages (at least one).
pub const fn ceil_class(pages: usize) -> (usize, usize) {
    if pages < 8 {
        return (pages, pages);
    }
    let log = (usize::BITS - 1 - pages.leading_zeros()) as usize;
    floor_class(pages.next_multiple_of(1 << (log - 2)))
}

/// The number of class indices (index 0 is unused).
pub const CLASSES: usize = floor_class(MAX_EXTENT / PAGE_SIZE).0 + 1;

#[derive(Clone, Copy, Default)]
struct Entry {
    block: Block,
    /// When it was pushed ([`now_ms`]).
    freed_ms: u64,
    /// Reads as zero.
    clean: bool,
}

/// The most blocks one round of decay takes out of a cache at a time.
const BATCH: usize = 32;

/// Blocks taken out of a cache to be given back without its lock.
struct Batch {
    entries: [Entry; BATCH],
    len: usize,
}

impl Batch {
    /// Gives back the memory of each block (those the kernel frees become
    /// clean); returns the bytes freed.
    fn give_back(&mut self) -> usize {
        let mut freed = 0;
        for entry in &mut self.entries[..self.len] {
            entry.clean = give_back(entry.block);
            if entry.clean {
                freed += entry.block.length;
            }
        }
        freed
    }
}

/// One class's cached blocks.
struct Cache {
    entries: *mut Entry,
    len: usize,
    capacity: usize,
    /// Entries below it read as zero.
    settled: usize,
    /// The sum of the lengths of the entries that may hold memory.
    dirty: usize,
}

/// One of a class's caches, under its lock, with copies of the cache's
/// `len` and `dirty` that others read without the lock; on cache lines of
/// its own, as threads churning different caches would otherwise write
/// each other's.
#[repr(align(128))]
struct Shelf {
    cache: Lock<Cache>,
    len: AtomicUsize,
    dirty: AtomicUsize,
}

/// Caches per class: a thread keeps its freed blocks in, and takes them
/// first from, the one its stack address selects ([`home`]), so that two
/// threads rarely write the same lock; it takes from the others when its
/// own is empty.
pub const SHELVES: usize = 8;

// SAFETY: the entries are owned by the cache and only touched under its
// lock.
unsafe impl Send for Cache {}

/// Class `c`'s caches are `SHELF[c * SHELVES..(c + 1) * SHELVES]`.
static SHELF: [Shelf; CLASSES * SHELVES] = [const {
    Shelf {
        cache: Lock::new(Cache {
            entries: core::ptr::null_mut(),
            len: 0,
            capacity: 0,
            settled: 0,
            dirty: 0,
        }),
        len: AtomicUsize::new(0),
        dirty: AtomicUsize::new(0),
    }
}; CLASSES * SHELVES];

static ARENA: Lock<Arena> = Lock::new(Arena::new());

/// When the last round of decay began.
static LAST_DECAY: AtomicU64 = AtomicU64::new(0);
/// The shelf the next round of decay begins with.
static NEXT_SHELF: AtomicUsize = AtomicUsize::new(0);

impl Cache {
    fn get(&self, index: usize) -> Entry {
        // SAFETY: index < len <= capacity, inside the entries' mapping,
        // which only the lock holder touches.
        unsafe { *self.entries.add(index) }
    }

    fn set(&mut self, index: usize, entry: Entry) {
        // SAFETY: as in `get`; `&mut self` is the lock holder's.
        unsafe { *self.entries.add(index) = entry };
    }

    /// Ensures room for one more entry; `false` when out of memory for
    /// the array.
    fn make_room(&mut self) -> bool {
        if self.len == self.capacity {
            let capacity = (self.capacity * 2).max(64);
            // SAFETY: `entries` is this array's own mapping of `capacity`
            // entries, all used, replaced right after.
            let Some(fresh) =
                (unsafe { grow_mapped_array(self.entries, self.capacity, self.len, capacity) })
            else {
                return false;
            };
            self.entries = fresh;
            self.capacity = capacity;
        }
        true
    }

    /// Keeps `entry`; `false` when out of memory for the array.
    fn push(&mut self, entry: Entry) -> bool {
        if !self.make_room() {
            return false;
        }
        self.set(self.len, entry);
        self.len += 1;
        if !entry.clean {
            self.dirty += entry.block.length;
        }
        true
    }

    /// The most recently kept block, and whether it reads as zero.
    fn pop(&mut self) -> Option<(Block, bool)> {
        self.len = self.len.checked_sub(1)?;
        self.settled = self.settled.min(self.len);
        let entry = self.get(self.len);
        if !entry.clean {
            self.dirty -= entry.block.length;
        }
        Some((entry.block, entry.clean))
    }

    /// Takes out the blocks that may hold memory kept since before
    /// `before_ms`, oldest first, until `work` bytes or a full batch, to
    /// be given back without the lock and then [`Cache::put_back`].
    fn take_old(&mut self, before_ms: u64, work: usize) -> Batch {
        let mut batch = Batch {
            entries: [Entry::default(); BATCH],
            len: 0,
        };
        let mut bytes = 0;
        let mut done = false;
        let mut kept = self.settled;
        for index in self.settled..self.len {
            let entry = self.get(index);
            done = done || batch.len == BATCH || bytes >= work;
            done = done || (!entry.clean && entry.freed_ms > before_ms);
            if !done && !entry.clean {
                batch.entries[batch.len] = entry;
                batch.len += 1;
                bytes += entry.block.length;
                self.dirty -= entry.block.length;
            } else {
                self.set(kept, entry);
                kept += 1;
            }
        }
        self.len = kept;
        batch
    }

    /// Puts back the blocks of `batch`, those given back (clean) among the
    /// settled ones; a block there is no room for goes back to the arena
    /// (an extent) or is lost (a slot: the address space of a group).
    fn put_back(&mut self, batch: &Batch) {
        for entry in &batch.entries[..batch.len] {
            if !self.make_room() {
                forget(entry.block);
                continue;
            }
            let at = if entry.clean { self.settled } else { self.len };
            // SAFETY: moves entries `at..len` up by one, inside the
            // array, which has room for one more.
            unsafe {
                core::ptr::copy(
                    self.entries.add(at),
                    self.entries.add(at + 1),
                    self.len - at,
                )
            };
            self.set(at, *entry);
            self.len += 1;
            if entry.clean {
                self.settled += 1;
            } else {
                self.dirty += entry.block.length;
            }
        }
        while self.settled < self.len && self.get(self.settled).clean {
            self.settled += 1;
        }
    }

    /// Gives every cached extent back to the arena, keeping the slots.
    fn release_extents(&mut self, arena: &mut Arena) {
        let mut kept = 0;
        for index in 0..self.len {
            let entry = self.get(index);
            if entry.block.slot {
                self.set(kept, entry);
                kept += 1;
            } else {
                if !entry.clean {
                    self.dirty -= entry.block.length;
                }
                if unseal(entry.block) {
                    arena.release(entry.block.data, entry.block.length);
                }
            }
        }
        self.len = kept;
        self.settled = 0;
    }
}

/// Frees the memory of `block` (it then reads as zero); `false` if the
/// kernel refused.
fn give_back(block: Block) -> bool {
    // SAFETY: the block is cached: no live allocation lies in it.
    unsafe { libc::madvise(block.data as *mut c_void, block.length, libc::MADV_DONTNEED) == 0 }
}

/// Milliseconds of a coarse monotonic clock (read without a system call).
fn now_ms() -> u64 {
    let mut time = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `time` is a valid timespec to write.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut time) };
    time.tv_sec as u64 * 1000 + time.tv_nsec as u64 / 1_000_000
}

/// Whether blocks of `length` bytes (a class length) are slots of groups.
pub fn grouped(length: usize) -> bool {
    let config = crate::sys::config::current();
    length < GROUPED_BELOW && !config.harden() && !config.guard_install()
}

/// Places an extent of at least `length` bytes in the arena (when it runs
/// out of reservations, gives it the cached extents and tries again), then
/// asks the kernel for its changes of protection with no lock held; its
/// data address and length, and whether it reads as zero.
fn place(length: usize) -> Option<(usize, usize, bool)> {
    let placed = ARENA.lock().place(length).or_else(|| {
        for shelf in 0..SHELF.len() {
            with_cache(shelf, |cache| cache.release_extents(&mut ARENA.lock()));
        }
        ARENA.lock().place(length)
    })?;
    // SAFETY: the extent was just placed for this caller: its pages are
    // nobody else's.
    let applied = placed
        .changes
        .into_iter()
        .flatten()
        .all(|change| unsafe { change.apply() });
    if !applied {
        ARENA.lock().refused(placed.data, placed.length);
        return None;
    }
    Some((placed.data, placed.length, placed.zero))
}

/// Classes above a request's that it looks in before it takes new memory:
/// a block up to about twice as long, whose pages are there already, costs
/// less than fresh pages (a program whose sizes wander would otherwise
/// leave blocks of the sizes it no longer asks for cached, decaying, while
/// it faults in new ones). Not for a request of exactly a class's length,
/// whose allocation then starts just above its block's guard page.
const LARGER_CLASSES: usize = 4;

/// A cached block of class `index`: from the calling thread's shelf, else
/// from another thread's, and whether it reads as zero.
fn cached(index: usize) -> Option<(Block, bool)> {
    let home = home(index);
    with_cache(home, Cache::pop).or_else(|| {
        (1..SHELVES)
            .map(|i| index * SHELVES + (home + i) % SHELVES)
            .filter(|&shelf| SHELF[shelf].len.load(Relaxed) > 0)
            .find_map(|shelf| with_cache(shelf, Cache::pop))
    })
}

/// A block of at least `length` bytes (whole pages, at most
/// [`MAX_EXTENT`]), and whether it reads as zero: a cached block of its
/// class (no system call), else a new extent or a new group (whose other
/// slots are cached). `None` when out of memory.
pub fn take(length: usize) -> Option<(Block, bool)> {
    let (index, pages) = ceil_class(length / PAGE_SIZE);
    let home = home(index);
    let reach = if length == pages * PAGE_SIZE {
        0
    } else {
        LARGER_CLASSES
    };
    let taken = (index..CLASSES.min(index + 1 + reach)).find_map(cached);
    decay(now_ms());
    if let Some((block, zero)) = taken {
        if !unseal(block) {
            // Out of memory for the change: still cached, still sealed.
            keep(block, zero);
            return None;
        }
        // Guard markers freed its pages.
        return Some((block, zero || (sealed() && sealing_frees(block))));
    }
    let length = pages * PAGE_SIZE;
    if !grouped(length) {
        let (data, length, zero) = place(length)?;
        let block = Block {
            data,
            length,
            slot: false,
        };
        return Some((block, zero));
    }
    let slots = (GROUP_PAGES - 1) / pages;
    let (data, _, zero) = place(slots * length)?;
    let slot = |i: usize| Block {
        data: data + i * length,
        length,
        slot: true,
    };
    // The top slot is handed out; the others are cached, the highest on
    // top.
    let freed_ms = now_ms();
    with_cache(home, |cache| {
        for i in 0..slots - 1 {
            let entry = Entry {
                block: slot(i),
                freed_ms,
                clean: zero,
            };
            if !cache.push(entry) {
                forget(entry.block);
            }
        }
    });
    Some((slot(slots - 1), zero))
}

/// Keeps the freed `block` for reuse by its class (no system call); an
/// extent the class cannot keep goes back to the arena.
pub fn keep(block: Block, clean: bool) {
    let (index, _) = floor_class(block.length / PAGE_SIZE);
    let now = now_ms();
    let entry = Entry {
        block,
        freed_ms: now,
        clean,
    };
    let kept = index < CLASSES && with_cache(home(index), |cache| cache.push(entry));
    if !kept {
        forget(block);
    }
    decay(now);
}

/// Gives up a freed block no cache can keep: an extent goes back to the
/// arena; a slot is lost (the address space of its group), holding no
/// memory.
pub fn forget(block: Block) {
    if block.slot {
        give_back(block);
    } else if unseal(block) {
        ARENA.lock().release(block.data, block.length);
    }
}

/// Whether cached blocks are sealed (inaccessible: `SLITTER_HARDEN`, see
/// `heap/large/quarantine.rs`).
pub fn sealed() -> bool {
    crate::sys::config::current().harden()
}

/// Whether inaccessible arena pages carry guard markers (else they are
/// `PROT_NONE`), as `heap/large/page_states.rs` decides.
fn markers() -> bool {
    crate::sys::config::current().guard_install()
}

/// Blocks this long or longer are sealed by mapping fresh memory over
/// them, one call whatever their pages hold (guard markers and `mprotect`
/// write every page table entry: 84 us against 34 us for 4 MiB here).
const SEAL_BY_MAPPING: usize = 1 << 20;

/// Seals (makes inaccessible) or unseals `block`; `false` if the kernel
/// refused (it may have changed part of it).
///
/// # Safety
/// The block lies in the arena and is not live.
pub unsafe fn set_sealed(block: Block, sealed: bool) -> bool {
    if block.length < SEAL_BY_MAPPING {
        // SAFETY: as the caller promises.
        return unsafe { change_access(block.data, block.length, markers(), !sealed) };
    }
    let protection = if sealed {
        libc::PROT_NONE
    } else {
        libc::PROT_READ | libc::PROT_WRITE
    };
    // SAFETY: as the caller promises: replaces only the block's pages.
    let mapped = unsafe {
        libc::mmap(
            block.data as *mut c_void,
            block.length,
            protection,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    mapped != libc::MAP_FAILED
}

/// Whether sealing `block` frees its pages (it reads as zero once
/// unsealed).
pub fn sealing_frees(block: Block) -> bool {
    markers() || block.length >= SEAL_BY_MAPPING
}

/// Makes a cached `block` accessible again if cached blocks are sealed;
/// `false` if the kernel refused (the block is then no use to the arena:
/// its bits would lie).
fn unseal(block: Block) -> bool {
    // SAFETY: a cached block lies in the arena and is not live.
    !sealed() || unsafe { set_sealed(block, false) }
}

/// The calling thread's slot among [`SHELVES`], chosen by its stack's
/// megabyte (threads' stacks lie megabytes apart).
pub fn thread_slot() -> usize {
    let marker = 0u8;
    let stack = (&raw const marker as usize) >> 20;
    let hashed = stack.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    hashed >> (usize::BITS - SHELVES.trailing_zeros())
}

/// The calling thread's shelf of class `index`.
fn home(index: usize) -> usize {
    index * SHELVES + thread_slot()
}

/// Calls `f` with the cache of shelf `shelf`, locked, and publishes its
/// length and dirty bytes.
fn with_cache<R>(shelf: usize, f: impl FnOnce(&mut Cache) -> R) -> R {
    let shelf = &SHELF[shelf];
    let mut cache = shelf.cache.lock();
    let result = f(&mut cache);
    shelf.len.store(cache.len, Relaxed);
    shelf.dirty.store(cache.dirty, Relaxed);
    result
}

/// The sum of the lengths of the cached blocks that may hold memory, as
/// last published by each shelf.
fn dirty() -> usize {
    SHELF.iter().map(|shelf| shelf.dirty.load(Relaxed)).sum()
}

/// At `now` (milliseconds, [`now_ms`]): one round of decay when the last
/// round was long enough ago and the kept memory exceeds the budget.
fn decay(now: u64) {
    let last = LAST_DECAY.load(Relaxed);
    if now < last + DECAY_EVERY_MS
        || LAST_DECAY
            .compare_exchange(last, now, Relaxed, Relaxed)
            .is_err()
    {
        return;
    }
    let before = now.saturating_sub(DECAY_AGE_MS);
    let mut work = dirty().saturating_sub(DECAY_BUDGET).min(DECAY_WORK);
    for _ in 0..SHELF.len() {
        if work == 0 {
            return;
        }
        let shelf = NEXT_SHELF.fetch_add(1, Relaxed) % SHELF.len();
        work -= clean_older(shelf, before, work).min(work);
    }
}

/// Gives back the memory of shelf `shelf`'s blocks kept since before
/// `before_ms`, oldest first, until `work` bytes were given back, with no
/// lock held across the system calls; returns how many were.
fn clean_older(shelf: usize, before_ms: u64, work: usize) -> usize {
    let mut cleaned = 0;
    while cleaned < work {
        let mut batch = with_cache(shelf, |cache| cache.take_old(before_ms, work - cleaned));
        if batch.len == 0 {
            break;
        }
        let freed = batch.give_back();
        with_cache(shelf, |cache| cache.put_back(&batch));
        if freed == 0 {
            // The kernel refused: stop rather than spin.
            break;
        }
        cleaned += freed;
    }
    cleaned
}

/// Gives back the memory of every cached block and of the arena's free
/// ranges (`malloc_trim`); returns an upper bound of the bytes that was.
#[cfg(feature = "malloc")]
pub fn trim() -> usize {
    let cleaned: usize = (0..SHELF.len())
        .map(|shelf| clean_older(shelf, u64::MAX, usize::MAX))
        .sum();
    cleaned + ARENA.lock().trim()
}

/// Bytes of cached blocks and free ranges that may hold memory.
#[cfg(feature = "malloc")]
pub fn retained_bytes() -> usize {
    dirty() + ARENA.lock().retained().1
}

/// The number of cached blocks plus the arena's free ranges that may hold
/// memory.
pub fn retained_count() -> usize {
    let cached: usize = SHELF.iter().map(|shelf| shelf.len.load(Relaxed)).sum();
    cached + ARENA.lock().retained().0
}

/// Whether `addr` lies in a cached block; scans every cache (for reports).
pub fn is_cached(addr: usize) -> bool {
    SHELF.iter().any(|shelf| {
        let cache = shelf.cache.lock();
        (0..cache.len).any(|index| {
            let block = cache.get(index).block;
            addr.wrapping_sub(block.data) < block.length
        })
    })
}

/// Calls `f` with the lock of every class cache, for the fork handlers.
pub fn each_cache_lock(f: &mut dyn FnMut(&dyn Forkable)) {
    for shelf in &SHELF {
        f(&shelf.cache);
    }
}

/// The arena's lock, for the fork handlers.
pub fn arena_lock() -> &'static dyn Forkable {
    &ARENA
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::heap::large::arena::protection;

    #[test]
    fn classes_are_four_per_doubling_and_round_both_ways() {
        let pages: Vec<usize> = (1..=64).map(|p| ceil_class(p).1).collect();
        let mut classes = pages.clone();
        classes.dedup();
        assert_eq!(
            classes,
            [1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 56, 64]
        );
        for p in 1..=(MAX_EXTENT / PAGE_SIZE) {
            let (up, up_pages) = ceil_class(p);
            let (down, down_pages) = floor_class(p);
            assert!(down_pages <= p && p <= up_pages, "{p}");
            assert!(up_pages - p <= p / 4 && p - down_pages <= p / 4, "{p}");
            assert_eq!(up == down, up_pages == p);
            assert_eq!(floor_class(up_pages), (up, up_pages));
            assert!(up < CLASSES);
        }
    }

    #[test]
    fn a_kept_extent_comes_back_as_it_was() {
        // 3 MiB + 5 pages: a class of its own in no other test.
        let length = (3 << 20) + 5 * PAGE_SIZE;
        let (block, _) = take(length).unwrap();
        assert!(!block.slot);
        assert!(block.length >= length);
        // SAFETY: the block's data is accessible and the test's.
        unsafe { (block.data as *mut u8).write(42) };
        keep(block, false);
        let (again, zero) = take(length).unwrap();
        assert_eq!(again, block, "the most recently kept block of its class");
        if !zero {
            // SAFETY: as above.
            assert_eq!(unsafe { *(again.data as *const u8) }, 42);
        }
        assert_eq!(protection(again.data - PAGE_SIZE), "--");
        assert_eq!(protection(again.data), "rw");
        assert_eq!(protection(again.data + again.length), "--");
        keep(again, false);
    }

    #[test]
    fn small_classes_share_groups_guarded_at_the_ends() {
        if !grouped(7 * PAGE_SIZE) {
            return;
        }
        // 7 pages: a class of its own in no other test.
        let length = 7 * PAGE_SIZE;
        let slots = (GROUP_PAGES - 1) / 7;
        let blocks: Vec<Block> = (0..slots).map(|_| take(length).unwrap().0).collect();
        assert!(blocks.iter().all(|b| b.slot && b.length == length));
        let low = blocks.iter().map(|b| b.data).min().unwrap();
        let high = blocks.iter().map(|b| b.data).max().unwrap();
        assert_eq!(high - low, (slots - 1) * length, "one group, side by side");
        assert_eq!(protection(low - PAGE_SIZE), "--");
        assert_eq!(protection(high + length), "--");
        assert_eq!(protection(low + length), "rw");
        for block in blocks {
            keep(block, false);
        }
    }

    #[test]
    fn decay_gives_back_old_blocks_only_and_keeps_them_cached() {
        let block = |data| Block {
            data,
            length: PAGE_SIZE,
            slot: true,
        };
        let memory = crate::sys::os_memory::os_map_zeroed(4 * PAGE_SIZE)
            .unwrap()
            .as_ptr() as usize;
        let mut cache = Cache {
            entries: core::ptr::null_mut(),
            len: 0,
            capacity: 0,
            settled: 0,
            dirty: 0,
        };
        for (i, freed_ms) in [10, 20, 30].into_iter().enumerate() {
            let data = memory + i * PAGE_SIZE;
            // SAFETY: inside the mapping made above.
            unsafe { (data as *mut u8).write(1) };
            assert!(cache.push(Entry {
                block: block(data),
                freed_ms,
                clean: false,
            }));
        }
        let read = |i: usize| {
            // SAFETY: as above.
            unsafe { *((memory + i * PAGE_SIZE) as *const u8) }
        };
        let mut batch = cache.take_old(20, usize::MAX);
        assert_eq!((batch.len, cache.len, cache.dirty), (2, 1, PAGE_SIZE));
        assert_eq!(batch.give_back(), 2 * PAGE_SIZE);
        cache.put_back(&batch);
        assert_eq!((cache.len, cache.dirty), (3, PAGE_SIZE));
        assert_eq!((read(0), read(1), read(2)), (0, 0, 1));
        assert_eq!(cache.settled, 2);
        assert_eq!(cache.pop(), Some((block(memory + 2 * PAGE_SIZE), false)));
        assert_eq!(cache.pop(), Some((block(memory + PAGE_SIZE), true)));
        assert_eq!(cache.settled, 1);
        assert_eq!(cache.pop(), Some((block(memory), true)));
        assert_eq!(cache.pop(), None);
    }
}
