//! Object states: two bytes per granule of chunk data, and the tag table
//! that says which class a state belongs to.
//!
//! Owns: the [`State`] of every `GRANULE` of a chunk's data region, at
//! `STATES_OFFSET + (addr % DATA_ALIGNMENT) / GRANULE * STATE_SIZE` in the
//! chunk's metadata region, and the chunk's tag table at
//! `TAG_TABLE_OFFSET`: one class id (16 bits) for each of the 65,536
//! possible states.
//!
//! A state is 0 where no object that was ever handed out starts: inside
//! objects, in a span's slack, outside spans, and at objects the press has
//! not handed out yet (or not since their span was purged, which gives the
//! states' pages back with it: a zero state reads as no object, so a
//! release into a purged span is refused like any other). At the start of an object handed out at least once,
//! its tag byte holds the tag of the object's class in this chunk (from 1
//! to [`MAX_TAG`], given by the mill) and its flags byte [`LIVE`] while the
//! object is handed out, [`ROOM`] too while it is live and `realloc` gave
//! it room (see [`ROOM`]). Read as one little-endian 16-bit value,
//! `tag | flags << 8`, a state indexes the tag table, which maps
//! `tag | LIVE << 8` and `tag | (LIVE | ROOM) << 8` to the class id and
//! every other value to 0, so that one load of the state and one of the
//! table tell whether an address is the start of a live object of a
//! class, with no division and no span record (`take_back` in
//! `cache/checks.rs`). The flags have a byte of their own so that allocation and
//! release change them with a plain byte store, which does not wait for
//! the state's cache line the way a read-modify-write does (another core's
//! frees write the states of neighbouring objects); every 16-bit value
//! has a table entry, so even a state changed by a wild write reads as a
//! class id the mill wrote, or 0.
//!
//! Objects start on granule boundaries (every class's object size is a
//! multiple of `GRANULE`, and spans are aligned), so each state belongs
//! to at most one object, and an address that is not a multiple of
//! `GRANULE` is never the start of an object.
//!
//! Invariants: a tag's two table entries are written once, by the mill,
//! before any span carrying the tag is published, and never change; a
//! tag byte changes from 0 to its object's tag when the press first hands
//! the object out, and keeps that tag until its span is purged, when it
//! goes back to 0 (the span's addresses stay its class's: type stability);
//! from then on only the flags byte changes: [`LIVE`] is set exactly
//! while the object is handed out, [`ROOM`] only while it is live (or, in
//! a free state, after a release raced with its `realloc`, a misuse; that
//! state reads as free like any other).

use core::arch::asm;
use core::sync::atomic::{AtomicU16, AtomicU8, Ordering};

use static_assertions::const_assert;

use crate::layout::chunk_registry;
use crate::layout::constants::{
    GRANULE, STATES_OFFSET, STATES_SIZE, STATE_SIZE, TAG_TABLE_OFFSET, TAG_TABLE_SIZE,
};

/// Flag: the object is handed out and not yet released.
pub const LIVE: u8 = 1;

/// Flag of a live malloc object that `realloc` placed in a larger size
/// class than its size selects (to give it room to grow): a sized free of
/// it may name any size up to its class.
pub const ROOM: u8 = 2;

/// The largest tag: a chunk holds spans of at most this many classes.
pub const MAX_TAG: u8 = u8::MAX;

// Every 16-bit state indexes the tag table.
const_assert!((u16::MAX as usize + 1) * 2 <= TAG_TABLE_SIZE);

/// The state of one granule (see the module documentation).
#[repr(C, align(2))]
pub struct State {
    tag: AtomicU8,
    flags: AtomicU8,
}

const_assert!(core::mem::size_of::<State>() == STATE_SIZE);
// States are read with a 2-byte scale and 16-bit loads from the
// (page-aligned) metadata region: they are aligned.
const_assert!(core::mem::align_of::<State>() == STATE_SIZE);
const_assert!(STATES_OFFSET.is_multiple_of(STATE_SIZE));

/// The index of the state of granule number `granule` (an address divided
/// by `GRANULE`) in its chunk's states.
#[inline(always)]
fn index_of(granule: usize) -> usize {
    granule & (STATES_SIZE / STATE_SIZE - 1)
}

/// The state of the granule holding `addr`, in `metadata`, the region the
/// chunk registry gives for `addr`.
#[inline(always)]
fn state_in(metadata: usize, addr: usize) -> &'static State {
    // SAFETY: the registry gives a mapped, immortal region of
    // METADATA_SIZE bytes, page-aligned (a chunk's) or 8-byte aligned (the
    // stand-in), whose last STATES_SIZE = DATA_ALIGNMENT / GRANULE *
    // STATE_SIZE bytes, from STATES_OFFSET (a multiple of STATE_SIZE), are
    // the states; the index is below STATES_SIZE / STATE_SIZE.
    unsafe {
        &*((metadata + STATES_OFFSET + STATE_SIZE * index_of(addr / GRANULE)) as *const State)
    }
}

/// The tag table entry of the state of tag `tag` and flags `flags` (read
/// as `tag | flags << 8`) in `metadata`.
fn table_entry(metadata: usize, tag: u8, flags: u8) -> &'static AtomicU16 {
    let state = u16::from(tag) | u16::from(flags) << 8;
    let entry = metadata + TAG_TABLE_OFFSET + 2 * usize::from(state);
    // SAFETY: the table has an entry for every 16-bit state (see the
    // assertion above), inside the mapped, immortal metadata region,
    // 2-byte aligned.
    unsafe { &*(entry as *const AtomicU16) }
}

/// The tag table entry of a state of tag `tag` with flags `flags` in
/// `metadata`: the class id of a live object whose state it is, else 0.
fn live_class_in(metadata: usize, tag: u8, flags: u8) -> u32 {
    u32::from(table_entry(metadata, tag, flags).load(Ordering::Relaxed))
}

/// [`state_in`] and [`live_class_in`] of its state, for the fast paths,
/// from granule number `granule` of `metadata`: three instructions (the
/// compiler spends two more on widening atomic loads, and one on an
/// address it could have folded).
#[inline(always)]
fn state_and_live_class(metadata: usize, granule: usize) -> (&'static State, u32) {
    let (state, class_id): (usize, u64);
    // SAFETY: reads the state that `state_in` gives, as one 16-bit value
    // (tag | flags << 8, `State` being 2-byte aligned and `STATE_SIZE`
    // = 2 bytes, the scale of the index), and the tag table entry of that
    // value, which `table_entry` gives for any 16-bit state (see their
    // safety comments): aligned plain loads of bytes other threads only
    // change by byte stores (an aligned 16-bit load is single-copy atomic
    // on x86-64); writes no memory.
    unsafe {
        asm!(
            "lea {state}, [{metadata} + 2*{index} + {states}]",
            "movzx {class:e}, word ptr [{state}]",
            "movzx {class:e}, word ptr [{metadata} + 2*{class} + {table}]",
            metadata = in(reg) metadata,
            index = in(reg) index_of(granule),
            state = out(reg) state,
            class = out(reg) class_id,
            states = const STATES_OFFSET,
            table = const TAG_TABLE_OFFSET,
            options(pure, readonly, nostack, preserves_flags)
        );
        // The state lies in a mapped region, never at address 0 (which
        // spares the callers a null test of their `Option<&State>`).
        core::hint::assert_unchecked(state != 0);
        // A zero-extended 16-bit entry (which lets the compiler use it as
        // an index with no further widening).
        core::hint::assert_unchecked(class_id <= u64::from(u16::MAX));
        (&*(state as *const State), class_id as u32)
    }
}

/// Gives the state of the free object at `addr`, which the press hands
/// to a thread cache, its class's `tag` (already there unless the object
/// is handed out for the first time since its span was fresh; the object
/// is free until it is popped from a magazine), and returns the state;
/// `metadata` is the region the chunk registry gives for `addr`.
pub fn hand_out(metadata: usize, addr: usize, tag: u8) -> &'static State {
    let state = state_in(metadata, addr);
    state.tag.store(tag, Ordering::Relaxed);
    state
}

/// The state of the object at `addr` (handed out before, so its tag is
/// there); `metadata` is the region the chunk registry gives for `addr`.
pub fn state_at(metadata: usize, addr: usize) -> &'static State {
    state_in(metadata, addr)
}

/// The address range of the states of the span `[begin, begin + size)` in
/// `metadata` (for purging them with the span).
pub fn range_of(metadata: usize, begin: usize, size: usize) -> (usize, usize) {
    let start = state_in(metadata, begin) as *const State as usize;
    (start, size / GRANULE * STATE_SIZE)
}

/// Makes `tag` name class `class_id` in the tag table of the chunk whose
/// metadata region starts at `metadata`. Only the mill calls this, before
/// publishing any span with this tag.
#[contracts::debug_requires(tag != 0 && class_id != 0 && class_id <= u32::from(u16::MAX))]
pub fn set_tag(metadata: usize, tag: u8, class_id: u32) {
    for flags in [LIVE, LIVE | ROOM] {
        table_entry(metadata, tag, flags).store(class_id as u16, Ordering::Relaxed);
    }
}

/// The class id (`class_id`) and state of `addr` if it is the start of a
/// live object of class `class_id`: the check made by every release.
///
/// Class id 0 (no class) matches the table's entry for every address that
/// is not a live object: releases into it are turned away by
/// `cache::release_slow`, where they always go, at no cost here.
#[inline(always)]
pub fn live_state(class_id: u32, addr: usize) -> Option<(u32, &'static State)> {
    let (metadata, granule) = chunk_registry::granule_metadata_for(addr)?;
    let (state, live_class) = state_and_live_class(metadata, granule);
    // The class as read (equal to `class_id`): the compiler knows it needs
    // no widening to index the thread cache.
    (live_class == class_id).then_some((live_class, state))
}

/// The class id and state of `addr` if it is the start of a live object
/// of any class: the check made by `free`.
#[inline(always)]
pub fn live_object(addr: usize) -> Option<(u32, &'static State)> {
    let (metadata, granule) = chunk_registry::granule_metadata_for(addr)?;
    let (state, class_id) = state_and_live_class(metadata, granule);
    (class_id != 0).then_some((class_id, state))
}

/// What the state of an address says, for diagnosing a misuse.
pub enum Seen {
    /// No object handed out starts at the address.
    NoObject,
    /// The start of a free object of this class.
    Free(u32),
    /// The start of a live object of this class.
    Live(u32),
}

/// What the state of `addr` says (any address: foreign ones read the
/// registry's all-zero stand-in).
pub fn seen(addr: usize) -> Seen {
    let metadata = chunk_registry::metadata_for(addr);
    if !addr.is_multiple_of(GRANULE) {
        return Seen::NoObject;
    }
    let state = state_in(metadata, addr);
    let (tag, flags) = (
        state.tag.load(Ordering::Relaxed),
        state.flags.load(Ordering::Relaxed),
    );
    match live_class_in(metadata, tag, LIVE) {
        0 => Seen::NoObject,
        class_id if flags & LIVE != 0 => Seen::Live(class_id),
        class_id => Seen::Free(class_id),
    }
}

/// Whether the live object whose state is `state` was given room.
pub fn has_room(state: &State) -> bool {
    state.flags.load(Ordering::Relaxed) & ROOM != 0
}

/// Marks the object whose state is at `state` live as it is handed out:
/// its tag is read, and the whole state written with one plain 16-bit
/// store of `tag | LIVE << 8`. Not a byte store of the flags alone: the
/// release that follows reads the state as one 16-bit value, and a load
/// that spans a recent narrower store cannot take its value from the
/// store buffer, so it waits for the store to reach the cache (measured:
/// a loop of allocate/release pairs ran twice as long).
///
/// # Safety
/// `state` is an object's state, and the caller hands the object out.
#[inline(always)]
pub unsafe fn mark_live(state: *const State) {
    // SAFETY: guaranteed by the caller: `state` is a mapped, 2-byte aligned
    // state whose tag byte only changes while no thread holds the object
    // (so rewriting it with the value read changes nothing), and whose
    // flags only the thread handing the object out writes now; an aligned
    // 16-bit store is single-copy atomic on x86-64, as the 16-bit loads
    // of the checks expect.
    unsafe {
        asm!(
            "movzx {value:e}, byte ptr [{state}]",
            "or {value:e}, {live}",
            "mov word ptr [{state}], {value:x}",
            state = in(reg) state,
            value = out(reg) _,
            live = const (LIVE as u32) << 8,
            options(nostack)
        );
    }
}

/// Marks the live object whose state is `state` as given room (the caller,
/// its `realloc`, owns it): an atomic `or`, off the fast paths, so that a
/// release racing with it (a misuse) cannot be undone into a live state.
pub fn mark_room(state: &State) {
    state.flags.fetch_or(ROOM, Ordering::Relaxed);
}

/// Marks the object whose state is `state`, just checked to be live, free:
/// one plain byte store. Only the thread releasing the object after its
/// check writes it; a racing writer is a misuse (two threads releasing the
/// same object at once), which may go undetected but changes nothing
/// beyond the flags.
#[inline(always)]
pub fn mark_free(state: &State) {
    state.flags.store(0, Ordering::Relaxed);
}

/// Marks the object whose state is `state` free with one atomic exchange
/// of its flags, and returns whether it was live: of any number of
/// releases of one object, even at the same instant on several threads,
/// exactly one sees it live (the hardened `free`, which pays the
/// read-modify-write that [`mark_free`] avoids).
pub fn claim_free(state: &State) -> bool {
    state.flags.swap(0, Ordering::Relaxed) & LIVE != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_addresses_are_never_live() {
        let local = 0u64;
        let stack = &local as *const u64 as usize;
        for addr in [0, 16, stack, stack + 1, usize::MAX & !15, 1 << 47] {
            assert!(live_object(addr).is_none());
            assert!(live_state(1, addr).is_none());
            assert!(matches!(seen(addr), Seen::NoObject));
        }
    }

    #[test]
    fn flags_change_without_touching_the_tag() {
        let state = State {
            tag: AtomicU8::new(5),
            flags: AtomicU8::new(0),
        };
        // SAFETY: a local state, handed out here.
        unsafe { mark_live(&state) };
        assert_eq!(state.flags.load(Ordering::Relaxed), LIVE);
        mark_room(&state);
        assert!(has_room(&state));
        mark_free(&state);
        assert_eq!(state.flags.load(Ordering::Relaxed), 0);
        assert!(!has_room(&state));
        assert_eq!(state.tag.load(Ordering::Relaxed), 5);
    }

    #[test]
    fn only_the_first_claim_of_a_live_object_wins() {
        let state = State {
            tag: AtomicU8::new(5),
            flags: AtomicU8::new(0),
        };
        // SAFETY: a local state, handed out here.
        unsafe { mark_live(&state) };
        mark_room(&state);
        assert!(claim_free(&state));
        assert!(!claim_free(&state));
        assert_eq!(state.flags.load(Ordering::Relaxed), 0);
        assert_eq!(state.tag.load(Ordering::Relaxed), 5);
    }

    #[test]
    fn racing_claims_have_one_winner() {
        static STATE: State = State {
            tag: AtomicU8::new(5),
            flags: AtomicU8::new(0),
        };
        for _ in 0..1000 {
            // SAFETY: a static state, handed out here.
            unsafe { mark_live(&STATE) };
            let barrier = std::sync::Barrier::new(2);
            let wins: usize = std::thread::scope(|scope| {
                let claim = || {
                    barrier.wait();
                    usize::from(claim_free(&STATE))
                };
                let other = scope.spawn(claim);
                claim() + other.join().unwrap()
            });
            assert_eq!(wins, 1);
        }
    }

    #[test]
    fn a_state_reads_as_tag_then_flags() {
        let state = State {
            tag: AtomicU8::new(7),
            flags: AtomicU8::new(LIVE),
        };
        // SAFETY: `State` is two bytes, 2-byte aligned.
        let word = unsafe { &*(&state as *const State as *const u16) };
        assert_eq!(*word, 7 | u16::from(LIVE) << 8);
    }
}
