//! The records of the live blocks of the large arena, found from their
//! address with no lock.
//!
//! Owns: one [`Record`] per page of address space where an arena block's
//! allocation may start, in arrays of one per gigabyte of address space
//! ([`GRANULE`]), mapped (without reserving memory) the first time an
//! allocation there is published, and never unmapped; the counts of live
//! records. A record is keyed by the page of the address handed out: an
//! allocation lies inside its block, and blocks do not overlap, so two live
//! allocations never share a record.
//!
//! A record's `user` is the address handed out while the allocation is
//! live, that address with its low bit set once it is freed (so a second
//! free is told from a free of a pointer slitter never handed out, until
//! another allocation starts on that page), and 0 while it is out for a
//! resize or was never used. The free that swaps a live address for the
//! freed one owns the block: of two frees at once, exactly one wins and the
//! other is reported.
//!
//! Invariants: a record's other fields are written before its `user`
//! publishes them (release) and read after a load or swap of `user` that
//! saw the address (acquire); only the owner of a live allocation (its
//! free or resize) changes its record; mappings of their own
//! (`heap/large/table.rs`) never have a record here, since they never lie
//! in the arena's reservations, which are never unmapped.

use core::sync::atomic::{AtomicIsize, AtomicPtr, AtomicUsize, Ordering};

use crate::heap::large::arena::MAX_EXTENT;
use crate::heap::large::mapping::{Kind, Mapping, PAGE_SIZE};
use crate::heap::large::reuse::{self, Block};
use crate::sys::os_memory::os_map_zeroed;

/// Address space covered by one array of records.
const GRANULE: usize = 1 << 30;
/// Gigabytes of address space covered (the 47-bit user space of x86-64).
const GRANULES: usize = 1 << 17;
/// Records per array.
const PER_GRANULE: usize = GRANULE / PAGE_SIZE;
/// `user`'s low bit: freed.
const FREED: usize = 1;
/// `length`'s low bit: a slot of a group.
const SLOT: usize = 1;

/// One live (or last freed) arena allocation.
#[derive(Default)]
pub struct Record {
    user: AtomicUsize,
    size: AtomicUsize,
    data: AtomicUsize,
    /// The block's length, with [`SLOT`] set for a slot.
    length: AtomicUsize,
}

static GRANULE_RECORDS: [AtomicPtr<Record>; GRANULES] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; GRANULES];

/// The live records and their data bytes, counted by thread (a
/// [`reuse::thread_slot`]), so that threads do not write one line; the
/// sums are exact.
#[repr(align(128))]
struct Live {
    count: AtomicIsize,
    bytes: AtomicIsize,
}

static LIVE: [Live; reuse::SHELVES] = [const {
    Live {
        count: AtomicIsize::new(0),
        bytes: AtomicIsize::new(0),
    }
}; reuse::SHELVES];

/// The record of the page holding `addr`, if its array exists.
fn find(addr: usize) -> Option<&'static Record> {
    let array = GRANULE_RECORDS.get(addr / GRANULE)?.load(Ordering::Acquire);
    // SAFETY: a published array holds PER_GRANULE records and is never
    // unmapped; the index is below PER_GRANULE.
    (!array.is_null()).then(|| unsafe { &*array.add(addr % GRANULE / PAGE_SIZE) })
}

/// The record of the page holding `addr`, its array mapped if need be;
/// `None` out of the covered address space or of memory.
fn find_or_map(addr: usize) -> Option<&'static Record> {
    if let Some(record) = find(addr) {
        return Some(record);
    }
    let slot = GRANULE_RECORDS.get(addr / GRANULE)?;
    let bytes = PER_GRANULE * core::mem::size_of::<Record>();
    let fresh = os_map_zeroed(bytes)?.as_ptr().cast::<Record>();
    if let Err(_other) = slot.compare_exchange(
        core::ptr::null_mut(),
        fresh,
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        // Another thread mapped it first.
        // SAFETY: `fresh` was just mapped and never published.
        unsafe { libc::munmap(fresh.cast(), bytes) };
    }
    find(addr)
}

fn count(mapping: &Mapping, sign: isize) {
    let live = &LIVE[reuse::thread_slot()];
    live.count.fetch_add(sign, Ordering::Relaxed);
    live.bytes
        .fetch_add(sign * mapping.length as isize, Ordering::Relaxed);
}

impl Record {
    /// The allocation this record holds, `user` given.
    fn mapping(&self, user: usize) -> Mapping {
        let length = self.length.load(Ordering::Relaxed);
        let block = Block {
            data: self.data.load(Ordering::Relaxed),
            length: length & !SLOT,
            slot: length & SLOT != 0,
        };
        Mapping {
            user,
            size: self.size.load(Ordering::Relaxed),
            ..Mapping::block(block)
        }
    }
}

/// Publishes the live arena allocation `mapping` (an extent or a slot);
/// `false` if it cannot have a record (out of memory for the array).
pub fn publish(mapping: &Mapping) -> bool {
    debug_assert!(mapping.kind != Kind::Own);
    let Some(record) = find_or_map(mapping.user) else {
        return false;
    };
    let slot = if mapping.kind == Kind::Slot { SLOT } else { 0 };
    record.size.store(mapping.size, Ordering::Relaxed);
    record.data.store(mapping.data, Ordering::Relaxed);
    record
        .length
        .store(mapping.length | slot, Ordering::Relaxed);
    record.user.store(mapping.user, Ordering::Release);
    count(mapping, 1);
    true
}

/// Ends the live allocation at `user`: marks it freed (`freed`) or out
/// for a resize, and returns it; `None` if `user` is not a live arena
/// allocation (or another thread ended it first).
pub fn take(user: usize, freed: bool) -> Option<Mapping> {
    let record = find(user)?;
    let mark = if freed { user | FREED } else { 0 };
    record
        .user
        .compare_exchange(user, mark, Ordering::AcqRel, Ordering::Relaxed)
        .ok()?;
    let mapping = record.mapping(user);
    count(&mapping, -1);
    Some(mapping)
}

/// The live arena allocation at `user`, if there is one.
pub fn get(user: usize) -> Option<Mapping> {
    let record = find(user)?;
    (user != 0 && record.user.load(Ordering::Acquire) == user).then(|| record.mapping(user))
}

/// Whether `user` was freed and no allocation started on its page since.
pub fn was_freed(user: usize) -> bool {
    find(user)
        .is_some_and(|record| user != 0 && record.user.load(Ordering::Relaxed) == user | FREED)
}

/// The live arena allocation whose memory (its guard included) holds
/// `addr`: its address lies at most a largest extent away (for reports).
pub fn containing(addr: usize) -> Option<Mapping> {
    let page = addr & !(PAGE_SIZE - 1);
    let reach = MAX_EXTENT + PAGE_SIZE;
    let below = (0..=reach / PAGE_SIZE).map(|i| page.wrapping_sub(i * PAGE_SIZE));
    let above = (1..=reach / PAGE_SIZE).map(|i| page.wrapping_add(i * PAGE_SIZE));
    below
        .chain(above)
        .filter_map(|at| {
            let user = find(at)?.user.load(Ordering::Acquire);
            (user != 0 && user & FREED == 0).then_some(user)
        })
        .filter_map(get)
        .find(|m| addr.wrapping_sub(m.base) < m.total)
}

/// The number of live arena allocations and their data bytes.
pub fn counts() -> (usize, usize) {
    let (count, bytes) = LIVE.iter().fold((0, 0), |(c, b), live| {
        (
            c + live.count.load(Ordering::Relaxed),
            b + live.bytes.load(Ordering::Relaxed),
        )
    });
    (count.max(0) as usize, bytes.max(0) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_live_until_one_free_takes_it_then_freed_until_reused() {
        // An address in a granule no reservation uses: the records only
        // index it.
        let user = (GRANULES - 1) * GRANULE + 5 * PAGE_SIZE + 48;
        let mapping = Mapping {
            user,
            size: 100,
            ..Mapping::block(Block {
                data: user - 48,
                length: PAGE_SIZE,
                slot: true,
            })
        };
        assert!(get(user).is_none() && !was_freed(user));
        assert!(publish(&mapping));
        assert_eq!(get(user).map(|m| (m.size, m.kind)), Some((100, Kind::Slot)));
        assert_eq!(containing(user - 16).map(|m| m.user), Some(user));
        assert_eq!(take(user, true).map(|m| m.data), Some(user - 48));
        assert!(take(user, true).is_none(), "a second free loses");
        assert!(was_freed(user) && get(user).is_none());
        assert!(containing(user - 16).is_none());
        // Out for a resize, then back.
        assert!(publish(&mapping));
        assert!(take(user, false).is_some());
        assert!(!was_freed(user) && get(user).is_none());
        assert!(publish(&mapping));
        assert!(take(user, true).is_some());
    }
}
