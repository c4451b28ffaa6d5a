//! Large allocations: requests above the largest size class, or aligned
//! beyond what a class can serve.
//!
//! Owns: the choice of each large allocation's memory: a block of a size
//! class (`heap/large/reuse.rs`: a cached block of the class, an extent of
//! the large arena, or a slot of a group) for requests up to
//! [`MAX_EXTENT`] aligned to at most a page, else a mapping of its own
//! (`heap/large/mapping.rs`), unmapped on free and grown by `mremap`,
//! which moves pages instead of copying bytes; and the life of an
//! allocation: placed at the end of its memory, entered in its shard of
//! the live table (`heap/large/table.rs`), resized, freed. A block that
//! `realloc` resizes keeps its address and grows towards a guard page
//! moved further up. The slack around an allocation is checked when it is
//! freed or resized; the history of each shard's freed addresses tells a
//! double free of a large allocation (cached for reuse or not) from a free
//! of a pointer slitter never handed out.
//!
//! Invariants: the live table holds exactly the live large allocations
//! (but one being resized, out of it while its memory changes), keyed by
//! the address returned to the caller (a cached block is not in it);
//! nothing about an allocation is stored next to its data; the pages just
//! below and above every live extent's and mapping's data, and around every
//! group, are inaccessible. No lock is held across a system call here: a
//! shard's lock is taken only to enter, find or remove an allocation, and
//! never with another lock held. Lock order (for the fork handlers): the
//! quarantine's, the class caches', the shards', the arena's.

use core::ffi::c_void;
use core::ptr::NonNull;

use crate::heap::large::arena::MAX_EXTENT;
use crate::heap::large::mapping::{map, unmap, Kind, Mapping};
pub use crate::heap::large::mapping::{page_round, PAGE_SIZE};
use crate::heap::large::quarantine;
use crate::heap::large::records;
use crate::heap::large::reuse;
use crate::heap::large::table::{self, each_shard, shard};
use crate::sys::lock::Forkable;

/// Calls `f` with every lock of the large path, in the lock order (the
/// quarantine's, the class caches', the shards', the arena's), for the
/// fork handlers.
pub fn each_lock(f: &mut dyn FnMut(&dyn Forkable)) {
    quarantine::each_lock(f);
    reuse::each_cache_lock(f);
    table::each_lock(f);
    f(reuse::arena_lock());
}

/// Gives the memory of an allocation no longer live back: to its class's
/// cache, or to the kernel for a mapping of its own.
fn release(mapping: Mapping) {
    match mapping.kind {
        Kind::Own => unmap(mapping),
        Kind::Extent | Kind::Slot if reuse::sealed() => quarantine::keep(mapping.as_block()),
        Kind::Extent | Kind::Slot => reuse::keep(mapping.as_block(), false),
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
    if !in_records(&mapping) && !shard(mapping.user).add(mapping) {
        release(mapping);
        return None;
    }
    Some((NonNull::new(mapping.user as *mut c_void)?, zeroed))
}

/// Enters the live `mapping` in the records if it is an arena block that
/// can have one (else it goes in the table).
fn in_records(mapping: &Mapping) -> bool {
    mapping.kind != Kind::Own && records::publish(mapping)
}

/// Ends the live allocation at `user` and returns it, marked freed (else
/// out for a resize); `None` if there is none there.
fn take_out(user: usize, freed: bool) -> Option<Mapping> {
    records::take(user, freed).or_else(|| {
        let mut shard = shard(user);
        let mapping = shard.take(user)?;
        if freed {
            shard.remember_freed(user);
        }
        Some(mapping)
    })
}

/// Frees the large allocation at `ptr`; `false` if there is none there.
pub fn free(ptr: *mut c_void) -> bool {
    let Some(mapping) = take_out(ptr as usize, true) else {
        return false;
    };
    mapping.check_slack();
    release(mapping);
    true
}

/// The usable size of the large allocation at `ptr`, if there is one: the
/// size asked for, or the room a resize gave it (the slack beyond is
/// checked).
pub fn usable_size(ptr: *const c_void) -> Option<usize> {
    let user = ptr as usize;
    let mapping = records::get(user).or_else(|| shard(user).get(user))?;
    Some(mapping.size)
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
    let inside =
        records::containing(addr).or_else(|| each_shard().find_map(|shard| shard.containing(addr)));
    let freed = records::was_freed(addr) || shard(addr).was_freed(addr);
    match inside {
        Some(mapping) => Known::Inside(mapping.user),
        None if freed => Known::Freed,
        None if reuse::is_cached(addr) || quarantine::holds(addr) => Known::InsideFreed,
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
    /// The allocation (a block of a size class) cannot take the new size
    /// where it is: the caller moves it; it is unchanged.
    Move,
}

/// Resizes the large allocation at `ptr` to `size` bytes at the same
/// address, giving its memory room for `room` bytes (at least `size`)
/// where that costs no copy:
/// - in place when its pages suffice and at most half would be unused;
/// - else a block of a size class asks the caller to move it (into a
///   block of the new size's class, most often cached with its pages:
///   growing an extent into the fresh free range above it, or giving its
///   tail back to the arena, faulted in a page per page copied and more);
/// - a mapping of its own moves its pages with `mremap` into a new guarded
///   mapping (no copy; the address changes, and the old one counts as
///   freed).
///
/// The slack is checked before, and the new slack cleared after. `align`
/// is the allocation's alignment, which a move keeps. The allocation is
/// out of the live table meanwhile (a free of it from another thread at
/// the same time is reported as a free of a pointer not handed out).
pub fn resize(ptr: *mut c_void, size: usize, room: usize, align: usize) -> Resized {
    let user = ptr as usize;
    let Some(old) = take_out(user, false) else {
        return Resized::NotLarge;
    };
    old.check_slack();
    let (now, resized) = resized_memory(old, size, room, align);
    if now.user != user {
        shard(user).remember_freed(user);
    }
    now.clear_slack();
    if !in_records(&now) {
        shard(now.user).put_back(now);
    }
    resized
}

/// The memory of the allocation `old` (out of the live table) resized as
/// [`resize`] says, and what was done; the memory is `old`'s unchanged when
/// nothing was.
fn resized_memory(old: Mapping, size: usize, room: usize, align: usize) -> (Mapping, Resized) {
    let done = |now: Mapping| {
        let at = NonNull::new(now.user as *mut c_void).expect("large allocations are not null");
        (now, Resized::Done(at))
    };
    // Data bytes from the start of the memory to the end of the
    // allocation, now and with room.
    let offset = old.user - old.data;
    let room = room.max(size);
    let (Some(length), Some(room_length)) = (
        page_round(offset.saturating_add(size.max(1))),
        page_round(offset.saturating_add(room)),
    ) else {
        return (old, Resized::OutOfMemory);
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
        return done(resized(old));
    }
    match old.kind {
        Kind::Slot | Kind::Extent => (old, Resized::Move),
        Kind::Own => match moved(old, length, room_length, align) {
            Some(memory) => done(resized(memory)),
            None => (old, Resized::OutOfMemory),
        },
    }
}

/// Moves the pages of `old`, a mapping of its own, into a new guarded
/// mapping of `room_length` data bytes if there is memory for it when
/// growing, else of `length`; returns the new mapping, or `None` (`old`
/// unchanged) when out of memory.
fn moved(old: Mapping, length: usize, room_length: usize, align: usize) -> Option<Mapping> {
    // The allocation's offset in its data is a multiple of `align` (its
    // data is aligned to at least that much), so aligned data keeps it
    // aligned.
    let memory = (length > old.length)
        .then(|| map(room_length, align))
        .flatten()
        .or_else(|| map(length, align))?;
    let moved = memory.length.min(old.length);
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
        return None;
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
    Some(memory)
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
    let (live, bytes) = each_shard()
        .map(|shard| shard.counts())
        .fold(records::counts(), |(l, b), (sl, sb)| (l + sl, b + sb));
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
    fn an_extent_resizes_in_place_within_its_pages_or_asks_to_move() {
        let (p, _) = allocate(1 << 20, 16).unwrap();
        // SAFETY: 1 MiB allocation.
        unsafe { p.as_ptr().cast::<u8>().write_bytes(5, 1 << 20) };
        let Resized::Done(q) = resize(p.as_ptr(), 700_000, 700_000, 16) else {
            panic!("in place within its pages");
        };
        assert_eq!(p, q);
        assert_eq!(usable_size(q.as_ptr()), Some(700_000));
        // SAFETY: the allocation holds 700,000 bytes.
        let bytes = unsafe { core::slice::from_raw_parts(q.as_ptr().cast::<u8>(), 700_000) };
        assert!(bytes.iter().all(|&b| b == 5));
        // The bytes given up became checked slack, cleared: this passes.
        assert!(
            matches!(resize(q.as_ptr(), 700_000 + 64, 700_064, 16), Resized::Done(r) if r == q)
        );
        // Beyond its pages, or below half of them: moved by the caller.
        assert!(matches!(
            resize(q.as_ptr(), 2 << 20, 2 << 20, 16),
            Resized::Move
        ));
        assert!(matches!(
            resize(q.as_ptr(), 100_000, 100_000, 16),
            Resized::Move
        ));
        assert_eq!(usable_size(q.as_ptr()), Some(700_064));
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
        assert!(p == q || shard(p.as_ptr() as usize).was_freed(p.as_ptr() as usize));
        assert!(free(q.as_ptr()));
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
    fn of_two_frees_at_once_exactly_one_wins() {
        for _ in 0..200 {
            let (p, _) = allocate(5 * PAGE_SIZE + 8, 16).unwrap();
            let addr = p.as_ptr() as usize;
            let barrier = std::sync::Barrier::new(2);
            let wins: usize = std::thread::scope(|scope| {
                let racers: Vec<_> = (0..2)
                    .map(|_| {
                        scope.spawn(|| {
                            barrier.wait();
                            usize::from(free(addr as *mut c_void))
                        })
                    })
                    .collect();
                racers.into_iter().map(|r| r.join().unwrap()).sum()
            });
            assert_eq!(wins, 1);
            assert!(matches!(known(addr), Known::Freed));
        }
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
