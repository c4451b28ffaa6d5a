//! The live large allocations, sharded by address.
//!
//! Owns: [`SHARDS`] shards, each under a lock of its own (so two threads
//! freeing or allocating large blocks rarely meet on one), each holding an
//! out-of-band table from the address handed out to its [`Mapping`], the
//! last freed addresses of that shard (to tell a double free from a free of
//! a pointer slitter never handed out), and its live data bytes. An address
//! always falls in the same shard ([`shard`]).
//!
//! Invariants: a shard's table holds exactly the live allocations whose
//! addresses fall in it (an allocation being resized is out of it while its
//! memory changes); every insertion follows a successful
//! [`Table::make_room`], so a table is at most half full but for
//! allocations put back after a resize; a shard's memory is only touched
//! under its lock, which is held across no system call but to grow its
//! table or start its history.

use crate::heap::large::mapping::Mapping;
use crate::sys::lock::{Forkable, Lock, LockGuard};
use crate::sys::os_memory::os_map_zeroed;

/// Shards of the live allocations.
pub const SHARDS: usize = 16;
/// How many freed addresses each shard's history remembers.
const HISTORY: usize = 2 << 10;

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
        // An empty entry is left: probing ends.
        debug_assert!(self.live + 1 < self.capacity);
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

/// One shard: its live allocations, freed addresses and live bytes.
pub struct Shard {
    table: Table,
    history: History,
    /// Data bytes of the live allocations, for statistics.
    live_bytes: usize,
}

// SAFETY: the table's and history's memory is owned by the shard and only
// touched under its lock.
unsafe impl Send for Shard {}

impl Shard {
    /// Adds the live `mapping`; `false` if the table cannot grow for it.
    pub fn add(&mut self, mapping: Mapping) -> bool {
        if !self.table.make_room() {
            return false;
        }
        self.table.insert(mapping);
        self.live_bytes += mapping.length;
        true
    }

    /// Puts back an allocation [`Shard::take`]n out for a resize: there is
    /// room unless the table is full and cannot grow, when the program
    /// cannot go on.
    pub fn put_back(&mut self, mapping: Mapping) {
        if !self.table.make_room() && self.table.live + 1 >= self.table.capacity {
            crate::sys::fatal::die(format_args!(
                "out of memory for the table of large allocations"
            ))
        }
        self.table.insert(mapping);
        self.live_bytes += mapping.length;
    }

    /// Removes and returns the live allocation at `user`, if there is one.
    pub fn take(&mut self, user: usize) -> Option<Mapping> {
        let index = self.table.find(user)?;
        let mapping = self.table.remove(index);
        self.live_bytes -= mapping.length;
        Some(mapping)
    }

    /// The live allocation at `user`, if there is one.
    pub fn get(&self, user: usize) -> Option<Mapping> {
        Some(self.table.get(self.table.find(user)?))
    }

    /// The live allocation whose memory (guards included) holds `addr`;
    /// scans the table (for reports).
    pub fn containing(&self, addr: usize) -> Option<Mapping> {
        (0..self.table.capacity)
            .map(|index| self.table.get(index))
            .find(|m| m.user != 0 && addr.wrapping_sub(m.base) < m.total)
    }

    /// Remembers that `user` was freed.
    pub fn remember_freed(&mut self, user: usize) {
        self.history.remember(user);
    }

    /// Whether `user` is among the shard's last freed addresses.
    pub fn was_freed(&self, user: usize) -> bool {
        self.history.contains(user)
    }

    /// The number of live allocations and their data bytes.
    pub fn counts(&self) -> (usize, usize) {
        (self.table.live, self.live_bytes)
    }
}

/// A shard's lock on a cache line of its own.
#[repr(align(128))]
struct Padded(Lock<Shard>);

static SHARD_LOCKS: [Padded; SHARDS] = [const {
    Padded(Lock::new(Shard {
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
    }))
}; SHARDS];

/// The shard of the allocation at `user`, locked.
pub fn shard(user: usize) -> LockGuard<'static, Shard> {
    let index =
        (user >> 12).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (usize::BITS - SHARDS.trailing_zeros());
    SHARD_LOCKS[index].0.lock()
}

/// Every shard, locked one at a time, in turn.
pub fn each_shard() -> impl Iterator<Item = LockGuard<'static, Shard>> {
    SHARD_LOCKS.iter().map(|padded| padded.0.lock())
}

/// Calls `f` with the lock of every shard, for the fork handlers.
pub fn each_lock(f: &mut dyn FnMut(&dyn Forkable)) {
    for padded in &SHARD_LOCKS {
        f(&padded.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
