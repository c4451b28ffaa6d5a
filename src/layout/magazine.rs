//! Magazines and lock-free magazine stacks.
//!
//! Owns: the [`Magazine`], a fixed array of `MAGAZINE_SIZE` slots, each a
//! free object with the address of its state, that a thread pops from
//! and pushes into without synchronisation; the "top" representation a
//! thread cache keeps of a magazine it holds (the address of its first
//! unused slot, from which the magazine and its count follow by alignment);
//! the bound of a magazine that may hold fewer objects than it has
//! slots (its `base`: the slots below are unused, so that the fullness
//! test of the release fast path, a top at the magazine's end, holds for
//! it unchanged); and the [`MagazineStack`], a Treiber stack through which
//! empty magazines move between threads and the rack
//! (`sys/tagged_stack.rs`).
//!
//! Invariants: a magazine is `MAGAZINE_ALIGNMENT` bytes, aligned to its
//! size, so a top `t` belongs to the magazine at `(t - 1)` rounded down and
//! the low bits of `t` tell whether it is full (0) or empty (the offset of
//! the first slot); `count` is exact whenever the magazine is not held by a
//! thread cache (the cache's top is authoritative while it is), and never
//! below `base`; a magazine with a non-zero `base` is only ever a release
//! magazine (it is compacted before it becomes an allocation magazine,
//! whose pops stop at the first slot). Magazines
//! are immortal (they come from the internal arena and are never freed), so
//! a stale pointer read during a racing pop always points to a magazine;
//! the stack's head pairs the top magazine's address with a 64-bit
//! generation, compared and swapped as one 16-byte word, so that ABA cannot
//! happen. A magazine is in at most one place at a time: one stack, or one
//! thread cache entry.

use core::ptr::NonNull;
use core::sync::atomic::AtomicU64;

use static_assertions::const_assert_eq;

use crate::layout::constants::{MAGAZINE_ALIGNMENT, MAGAZINE_SIZE};
use crate::layout::object_states::State;
use crate::sys::tagged_stack::{self, DoubleWordHead};

/// A free object and its state (see `layout/object_states.rs`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    /// The object.
    pub object: *mut u8,
    /// The object's state, in its chunk's metadata.
    pub state: *const State,
}

/// A batch of up to `MAGAZINE_SIZE` free objects of one class. The same
/// layout is declared in C as `struct slitter_magazine` (`c/layout.h`).
#[repr(C, align(512))]
pub struct Magazine {
    /// Number of slots in use, `slots[..count]` (see the module
    /// invariants), counting the `base` unused ones.
    pub count: u32,
    /// Slots below this one are never used: a magazine that takes
    /// releases of a class with large objects starts higher, so that it
    /// is full after fewer objects (thread caches are bounded in bytes);
    /// its objects are `slots[base..count]`.
    pub base: u32,
    /// Next magazine in a stack (a plain address; 0 at the bottom).
    link: AtomicU64,
    /// The objects.
    pub slots: [Slot; MAGAZINE_SIZE],
}

const_assert_eq!(core::mem::size_of::<Magazine>(), MAGAZINE_ALIGNMENT);
const_assert_eq!(core::mem::align_of::<Magazine>(), MAGAZINE_ALIGNMENT);
const_assert_eq!(core::mem::offset_of!(Magazine, slots), FIRST_SLOT_OFFSET);

/// Offset of `slots[0]` in a magazine: the low bits of an empty top.
pub const FIRST_SLOT_OFFSET: usize = 16;

// SAFETY: a magazine is owned by one thread (or stack) at a time; its slots
// are addresses of free objects, not references, and the immutable sentinel
// magazines are never written.
unsafe impl Sync for Magazine {}
// SAFETY: as above; moving a magazine moves ownership of its objects.
unsafe impl Send for Magazine {}

impl Slot {
    /// A slot holding no object.
    pub const EMPTY: Slot = Slot {
        object: core::ptr::null_mut(),
        state: core::ptr::null(),
    };
}

impl Magazine {
    /// An empty magazine.
    pub const fn empty() -> Magazine {
        Magazine {
            count: 0,
            base: 0,
            link: AtomicU64::new(0),
            slots: [Slot::EMPTY; MAGAZINE_SIZE],
        }
    }

    /// Whether the magazine holds no object.
    pub fn is_empty(&self) -> bool {
        self.count == self.base
    }

    /// The number of objects the magazine holds.
    pub fn len(&self) -> usize {
        (self.count - self.base) as usize
    }

    /// Makes this empty magazine hold at most `capacity` objects (at least
    /// 1, at most `MAGAZINE_SIZE`) until it is emptied by [`Magazine::clear`]
    /// or [`Magazine::compact`].
    #[contracts::debug_requires(self.is_empty() && (1..=MAGAZINE_SIZE).contains(&capacity))]
    pub fn bound(&mut self, capacity: usize) {
        self.base = (MAGAZINE_SIZE - capacity) as u32;
        self.count = self.base;
    }

    /// Moves the objects down to the first slots, so that popping them
    /// stops at the first slot.
    #[contracts::debug_ensures(self.base == 0 && self.len() == old(self.len()))]
    pub fn compact(&mut self) {
        let (base, count) = (self.base as usize, self.count as usize);
        self.slots.copy_within(base..count, 0);
        self.count -= self.base;
        self.base = 0;
    }

    /// Forgets the objects (the caller took them) and the bound.
    pub fn clear(&mut self) {
        self.count = 0;
        self.base = 0;
    }

    /// Whether the magazine has no free slot.
    pub fn is_full(&self) -> bool {
        self.count as usize == MAGAZINE_SIZE
    }

    /// Takes the most recently pushed object.
    #[contracts::debug_requires(!self.is_empty())]
    #[inline(always)]
    pub fn pop(&mut self) -> Slot {
        self.count -= 1;
        // SAFETY: count < MAGAZINE_SIZE after the decrement.
        unsafe { *self.slots.get_unchecked(self.count as usize) }
    }

    /// Adds an object.
    #[contracts::debug_requires(!self.is_full())]
    #[inline(always)]
    pub fn push(&mut self, slot: Slot) {
        // SAFETY: count < MAGAZINE_SIZE since the magazine is not full.
        unsafe { *self.slots.get_unchecked_mut(self.count as usize) = slot };
        self.count += 1;
    }

    /// The free objects, oldest first.
    pub fn objects(&self) -> &[Slot] {
        &self.slots[self.base as usize..self.count as usize]
    }

    /// The top of this magazine: the address of its first unused slot.
    /// Forms no reference: `magazine` may be one of the read-only
    /// sentinels, which only ever gives the address.
    pub fn top(magazine: *mut Magazine) -> *mut Slot {
        // SAFETY: `magazine` is a valid magazine, whose count is read in
        // place; `count <= MAGAZINE_SIZE`, so the result is inside the
        // magazine or one past its end.
        unsafe {
            let count = (&raw const (*magazine).count).read();
            (&raw mut (*magazine).slots)
                .cast::<Slot>()
                .add(count as usize)
        }
    }
}

/// The magazine that `top` is the top of.
pub fn magazine_of(top: *mut Slot) -> *mut Magazine {
    ((top as usize - 1) & !(MAGAZINE_ALIGNMENT - 1)) as *mut Magazine
}

/// The number of objects below `top` in its magazine.
pub fn count_below(top: *mut Slot) -> u32 {
    let offset = top as usize - magazine_of(top) as usize;
    ((offset - FIRST_SLOT_OFFSET) / core::mem::size_of::<Slot>()) as u32
}

/// Whether `top` is the top of a full magazine.
#[inline(always)]
pub fn top_is_full(top: *mut Slot) -> bool {
    (top as usize) & (MAGAZINE_ALIGNMENT - 1) == 0
}

/// Whether `top` may be the top of an empty magazine: true for an empty
/// one, and also for a full one (the only two tops whose offset in the
/// magazine is below 32, modulo the alignment); a cheap test for the
/// allocation fast path, whose slow path handles the full case.
#[inline(always)]
pub fn top_may_be_empty(top: *mut Slot) -> bool {
    (top as usize) & (MAGAZINE_ALIGNMENT - 2 * FIRST_SLOT_OFFSET) == 0
}

/// A lock-free stack of magazines (see `sys/tagged_stack.rs`).
pub struct MagazineStack {
    head: DoubleWordHead,
}

impl Default for MagazineStack {
    fn default() -> Self {
        Self::new()
    }
}

impl MagazineStack {
    /// An empty stack.
    pub const fn new() -> Self {
        MagazineStack {
            head: DoubleWordHead::new(),
        }
    }

    /// Pushes a magazine that the caller owns; ownership moves to the stack.
    pub fn push(&self, magazine: NonNull<Magazine>) {
        // SAFETY: the caller owns the magazine; `link` is atomic because a
        // racing pop may read it through a stale head.
        let link = unsafe { &(*magazine.as_ptr()).link };
        tagged_stack::push(&self.head, magazine.as_ptr() as u64, link);
    }

    /// Pops a magazine, whose ownership moves to the caller.
    #[contracts::debug_ensures(ret.is_none_or(|m| (m.as_ptr() as usize).is_multiple_of(MAGAZINE_ALIGNMENT)))]
    pub fn pop(&self) -> Option<NonNull<Magazine>> {
        let top = tagged_stack::pop(&self.head, |addr| {
            // SAFETY: every node of the stack is a magazine, and magazines
            // are immortal, so even a stale top is a valid magazine; its
            // link is only read atomically.
            unsafe { &(*(addr as *const Magazine)).link }
        })?;
        NonNull::new(top as *mut Magazine)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::Arc;

    fn new_magazines(n: usize) -> Vec<NonNull<Magazine>> {
        (0..n)
            .map(|_| {
                let p = crate::heap::arena::allocate(MAGAZINE_ALIGNMENT, MAGAZINE_ALIGNMENT)
                    .unwrap()
                    .cast::<Magazine>();
                // SAFETY: fresh arena memory for one magazine.
                unsafe { p.as_ptr().write(Magazine::empty()) };
                p
            })
            .collect()
    }

    fn slot(i: usize) -> Slot {
        Slot {
            object: i as *mut u8,
            state: (2 * (i + 1)) as *const State,
        }
    }

    #[test]
    fn magazine_is_lifo() {
        let mut m = Magazine::empty();
        for i in 1..=MAGAZINE_SIZE {
            m.push(slot(i));
        }
        assert!(m.is_full());
        for i in (1..=MAGAZINE_SIZE).rev() {
            assert_eq!(m.pop(), slot(i));
        }
        assert!(m.is_empty());
    }

    #[test]
    fn a_bounded_magazine_fills_up_to_its_capacity_and_compacts() {
        let mut m = Magazine::empty();
        m.bound(3);
        assert!(m.is_empty());
        assert_eq!(m.len(), 0);
        for i in 1..=3 {
            assert!(!m.is_full());
            m.push(slot(i));
        }
        // Full after 3 objects: its top is at the end, as the fast path
        // tests.
        assert!(m.is_full());
        assert!(top_is_full(Magazine::top(&mut m)));
        assert_eq!(m.objects(), &[slot(1), slot(2), slot(3)]);
        m.compact();
        assert_eq!((m.base, m.len()), (0, 3));
        assert_eq!(m.objects(), &[slot(1), slot(2), slot(3)]);
        assert_eq!(m.pop(), slot(3));
        m.clear();
        assert!(m.is_empty() && m.objects().is_empty());
    }

    #[test]
    fn tops_give_magazine_count_and_fullness() {
        let m = new_magazines(1)[0].as_ptr();
        for count in 0..=MAGAZINE_SIZE {
            // SAFETY: we own the fresh magazine.
            unsafe { (*m).count = count as u32 };
            let top = Magazine::top(m);
            assert_eq!(magazine_of(top), m);
            assert_eq!(count_below(top) as usize, count);
            assert_eq!(top_is_full(top), count == MAGAZINE_SIZE);
            assert_eq!(top_may_be_empty(top), count == 0 || count == MAGAZINE_SIZE);
        }
    }

    #[test]
    fn stack_is_lifo_and_counts_generations() {
        let stack = MagazineStack::new();
        let mags = new_magazines(3);
        assert!(stack.pop().is_none());
        for &m in &mags {
            stack.push(m);
        }
        for &m in mags.iter().rev() {
            assert_eq!(stack.pop(), Some(m));
        }
        assert!(stack.pop().is_none());
        assert_eq!(stack.head.generation(), 6);
    }

    #[test]
    fn concurrent_push_pop_never_loses_or_duplicates() {
        let stack = Arc::new(MagazineStack::new());
        let mags = new_magazines(64);
        for &m in &mags {
            stack.push(m);
        }
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let stack = Arc::clone(&stack);
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        let mut held = Vec::new();
                        for _ in 0..3 {
                            if let Some(m) = stack.pop() {
                                held.push(m);
                            }
                        }
                        for m in held {
                            stack.push(m);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let mut seen = HashSet::new();
        while let Some(m) = stack.pop() {
            assert!(seen.insert(m.as_ptr() as usize), "magazine popped twice");
        }
        assert_eq!(seen.len(), mags.len());
    }
}
