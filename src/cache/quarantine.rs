//! Quarantines: where released objects wait, per thread, before the
//! thread cache may hand them out again, and in which order they leave.
//!
//! Owns: the [`Quarantine`] of one thread (the thread cache keeps it with
//! the thread's entries, see `thread_cache::release_later`): at most
//! [`CAPACITY`] objects of at most [`BUDGET`] bytes in all, and the choice
//! of the object that leaves to make room for a new one: a uniformly
//! random one, drawn from a generator of the quarantine's own, seeded
//! from the kernel. So the delay before a released object can be reused,
//! and the order in which released objects are reused, cannot be
//! predicted from the order of the releases.
//!
//! Invariants: an object in a quarantine is already marked free in its
//! state (a second release of it is still refused) and is in no magazine;
//! a quarantine belongs to one thread at a time, which alone touches it
//! (no lock, no atomic operation); `count` and `bytes` are the number and
//! total size of the objects it holds, within `CAPACITY` and `BUDGET`
//! (one object larger than the budget is held alone).

use core::ptr::NonNull;

use crate::heap::arena;
use crate::layout::magazine::Slot;
use crate::sys::random::Generator;

/// The most objects one quarantine holds.
pub const CAPACITY: usize = 1024;
/// The most bytes of objects one quarantine holds.
pub const BUDGET: usize = 512 * 1024;

/// One released object in a quarantine.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Held {
    /// Its class.
    pub class_id: u32,
    /// Its size.
    pub bytes: u32,
    /// Its magazine slot.
    pub slot: Slot,
}

/// One thread's quarantine (see the module documentation).
#[repr(C)]
pub struct Quarantine {
    count: usize,
    bytes: usize,
    /// The generator that picks who leaves.
    random: Generator,
    held: [Held; CAPACITY],
}

impl Quarantine {
    /// A new, empty quarantine, in memory from the arena; `None` when out
    /// of memory.
    pub fn create() -> Option<NonNull<Quarantine>> {
        let quarantine = arena::allocate(
            core::mem::size_of::<Quarantine>(),
            core::mem::align_of::<Quarantine>(),
        )?
        .cast::<Quarantine>();
        // Fresh, zero-filled memory of the right size and alignment: zero
        // counts are an empty quarantine, the entries are only read below
        // `count`, and the generator seeds itself.
        Some(quarantine)
    }

    /// Takes `held` in, first letting random objects leave, through
    /// `leave`, until there is room for it.
    pub fn admit(&mut self, held: Held, mut leave: impl FnMut(Held)) {
        let bytes = held.bytes as usize;
        while self.count == CAPACITY || (self.count > 0 && self.bytes + bytes > BUDGET) {
            let index = self.random.below(self.count);
            leave(self.remove(index));
        }
        self.held[self.count] = held;
        self.count += 1;
        self.bytes += bytes;
    }

    /// Lets every object leave, through `leave`, in random order.
    pub fn drain(&mut self, mut leave: impl FnMut(Held)) {
        while self.count > 0 {
            let index = self.random.below(self.count);
            leave(self.remove(index));
        }
    }

    /// Removes the object at `index` (below `count`), moving the last one
    /// into its place.
    fn remove(&mut self, index: usize) -> Held {
        let held = self.held[index];
        self.count -= 1;
        self.held[index] = self.held[self.count];
        self.bytes -= held.bytes as usize;
        held
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(n: usize, bytes: u32) -> Held {
        Held {
            class_id: 1,
            bytes,
            slot: Slot {
                object: (n * 16) as *mut u8,
                state: core::ptr::null(),
            },
        }
    }

    fn number(held: Held) -> usize {
        held.slot.object as usize / 16
    }

    #[test]
    fn holds_capacity_objects_then_lets_random_ones_leave() {
        // SAFETY: a fresh quarantine, owned by this test.
        let quarantine = unsafe { Quarantine::create().unwrap().as_mut() };
        let mut left = Vec::new();
        for n in 0..3 * CAPACITY {
            quarantine.admit(held(n, 16), |h| left.push(number(h)));
            assert_eq!(left.len(), (n + 1).saturating_sub(CAPACITY));
        }
        quarantine.drain(|h| left.push(number(h)));
        let mut sorted = left.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..3 * CAPACITY).collect::<Vec<_>>());
        // Neither first in, first out nor last in, first out.
        let steps = left.windows(2).filter(|w| w[0].abs_diff(w[1]) == 1);
        assert!(steps.count() < left.len() / 10);
    }

    #[test]
    fn keeps_within_its_byte_budget() {
        // SAFETY: as above.
        let quarantine = unsafe { Quarantine::create().unwrap().as_mut() };
        let mut left = 0;
        let size = (BUDGET / 8) as u32;
        for n in 0..20 {
            quarantine.admit(held(n, size), |_| left += 1);
        }
        assert_eq!(left, 12);
        quarantine.admit(held(20, 2 * BUDGET as u32), |_| left += 1);
        assert_eq!(left, 20);
        quarantine.drain(|h| assert_eq!(number(h), 20));
    }
}
