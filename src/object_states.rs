//! Object states: one byte per granule of chunk data, and the tag table
//! that says which class a state belongs to.
//!
//! Owns: the state byte of every `GRANULE` of a chunk's data region, at
//! `STATES_OFFSET + (addr % DATA_ALIGNMENT) / GRANULE` in the chunk's
//! metadata region, and the chunk's tag table at `TAG_TABLE_OFFSET`: one
//! class id (16 bits) for each of the 256 possible state bytes.
//!
//! A state byte is 0 where no object that was ever handed out starts:
//! inside objects, in a span's slack, outside spans, and at objects the
//! press has not handed out yet. At the start of an object handed out at
//! least once it holds the tag of the object's class in this chunk (bits
//! 2 to 7, from 1 to [`MAX_TAG`], given by the mill) and two flags:
//! [`LIVE`] while the object is handed out, [`ROOM`] while it is live and
//! `realloc` gave it room (see [`ROOM`]). The tag table maps
//! `tag << 2 | LIVE` and `tag << 2 | LIVE | ROOM` to the class id and every
//! other byte to 0, so that one load of the state and one of the table
//! tell whether an address is the start of a live object of a class, with
//! no division and no span record (`take_back` in `checks.rs`).
//!
//! Objects start on granule boundaries (every class's object size is a
//! multiple of `GRANULE`, and spans are aligned), so each state byte
//! belongs to at most one object, and an address that is not a multiple
//! of `GRANULE` is never the start of an object.
//!
//! Invariants: a tag's two table entries are written once, by the mill,
//! before any span carrying the tag is published, and never change; a
//! state byte changes from 0 to its object's tag when the press first
//! hands the object out, and keeps that tag forever after (type
//! stability); from then on only its two flags change: [`LIVE`] is set
//! exactly while the object is handed out, [`ROOM`] only while it is live.

use core::arch::asm;
use core::sync::atomic::{AtomicU16, AtomicU8, Ordering};

use crate::chunk_registry;
use crate::constants::{GRANULE, STATES_OFFSET, STATES_SIZE, TAG_TABLE_OFFSET};

/// State flag: the object is handed out and not yet released.
pub const LIVE: u8 = 1;

/// State flag of a live malloc object that `realloc` placed in a larger
/// size class than its size selects (to give it room to grow): a sized
/// free of it may name any size up to its class.
pub const ROOM: u8 = 2;

/// Tags sit above the two flags.
const TAG_SHIFT: u32 = 2;

/// The largest tag: a chunk holds spans of at most this many classes.
pub const MAX_TAG: u8 = u8::MAX >> TAG_SHIFT;

/// The index of the state of granule number `granule` (an address divided
/// by `GRANULE`) in its chunk's states.
#[inline(always)]
fn index_of(granule: usize) -> usize {
    granule & (STATES_SIZE - 1)
}

/// The state byte of the granule holding `addr`, in `metadata`, the
/// region the chunk registry gives for `addr`.
#[inline(always)]
fn state_in(metadata: usize, addr: usize) -> &'static AtomicU8 {
    // SAFETY: the registry gives a mapped, immortal region of
    // METADATA_SIZE bytes, whose last STATES_SIZE = DATA_ALIGNMENT /
    // GRANULE bytes, from STATES_OFFSET, are the states; the index is
    // below STATES_SIZE.
    unsafe { &*((metadata + STATES_OFFSET + index_of(addr / GRANULE)) as *const AtomicU8) }
}

/// The tag table entry of state byte `state` in `metadata`.
fn table_entry(metadata: usize, state: u8) -> &'static AtomicU16 {
    let entry = metadata + TAG_TABLE_OFFSET + 2 * usize::from(state);
    // SAFETY: the table (256 two-byte entries) lies inside the mapped,
    // immortal metadata region (TAG_TABLE_SIZE >= 512), 2-byte aligned.
    unsafe { &*(entry as *const AtomicU16) }
}

/// The tag table entry of state byte `state` in `metadata`: the class id
/// of a live object whose state it is, else 0.
fn live_class_in(metadata: usize, state: u8) -> u32 {
    u32::from(table_entry(metadata, state).load(Ordering::Relaxed))
}

/// [`state_in`] and [`live_class_in`] of its state, for the fast paths,
/// from granule number `granule` of `metadata`: three instructions (the
/// compiler spends two more on widening atomic loads, and one on an
/// address it could have folded).
#[inline(always)]
fn state_and_live_class(metadata: usize, granule: usize) -> (&'static AtomicU8, u32) {
    let (state, class_id): (usize, u64);
    // SAFETY: reads the state byte that `state_in` gives and the tag table
    // entry that `live_class_in` gives (see their safety comments), both
    // plain loads of bytes other threads only change by single-byte
    // stores and read-modify-writes; writes no memory.
    unsafe {
        asm!(
            "lea {state}, [{metadata} + {index} + {states}]",
            "movzx {class:e}, byte ptr [{state}]",
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
        // spares the callers a null test of their `Option<&AtomicU8>`).
        core::hint::assert_unchecked(state != 0);
        // A zero-extended 16-bit entry (which lets the compiler use it as
        // an index with no further widening).
        core::hint::assert_unchecked(class_id <= u64::from(u16::MAX));
        (&*(state as *const AtomicU8), class_id as u32)
    }
}

/// Gives the state of the object at `addr`, which the press hands out for
/// the first time, its class's `tag` (the object is free until it is
/// popped from a magazine), and returns the state; `metadata` is the
/// region the chunk registry gives for `addr`.
pub fn hand_out_fresh(metadata: usize, addr: usize, tag: u8) -> &'static AtomicU8 {
    let state = state_in(metadata, addr);
    state.store(tag << TAG_SHIFT, Ordering::Relaxed);
    state
}

/// Makes `tag` name class `class_id` in the tag table of the chunk whose
/// metadata region starts at `metadata`. Only the mill calls this, before
/// publishing any span with this tag.
#[contracts::debug_requires((1..=MAX_TAG).contains(&tag) && class_id != 0 && class_id <= u32::from(u16::MAX))]
pub fn set_tag(metadata: usize, tag: u8, class_id: u32) {
    for state in [tag << TAG_SHIFT | LIVE, tag << TAG_SHIFT | LIVE | ROOM] {
        table_entry(metadata, state).store(class_id as u16, Ordering::Relaxed);
    }
}

/// The class id (`class_id`) and state of `addr` if it is the start of a
/// live object of class `class_id`: the check made by every release.
///
/// Class id 0 (no class) matches the table's entry for every address that
/// is not a live object: releases into it are turned away by
/// `cache::release_slow`, where they always go, at no cost here.
#[inline(always)]
pub fn live_state(class_id: u32, addr: usize) -> Option<(u32, &'static AtomicU8)> {
    let (metadata, granule) = chunk_registry::granule_metadata_for(addr)?;
    let (state, live_class) = state_and_live_class(metadata, granule);
    // The class as read (equal to `class_id`): the compiler knows it needs
    // no widening to index the thread cache.
    (live_class == class_id).then_some((live_class, state))
}

/// The class id and state of `addr` if it is the start of a live object
/// of any class: the check made by `free`.
#[inline(always)]
pub fn live_object(addr: usize) -> Option<(u32, &'static AtomicU8)> {
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
    let state = state_in(metadata, addr).load(Ordering::Relaxed);
    match live_class_in(metadata, state | LIVE) {
        0 => Seen::NoObject,
        class_id if state & LIVE != 0 => Seen::Live(class_id),
        class_id => Seen::Free(class_id),
    }
}

/// Whether the live object whose state is `state` was given room.
pub fn has_room(state: &AtomicU8) -> bool {
    state.load(Ordering::Relaxed) & ROOM != 0
}

/// Sets `FLAGS` in the state byte at `state` with one (non-atomic)
/// read-modify-write instruction.
///
/// # Safety
/// `state` is an object's state byte. Only the thread that owns the
/// object's current transition (handing it out, or releasing it after its
/// check) writes it; a racing writer is a misuse (two threads releasing
/// the same object at once), which may go undetected but corrupts nothing
/// beyond the two flags.
#[inline(always)]
unsafe fn set_flags<const FLAGS: u8>(state: *const AtomicU8) {
    // SAFETY: guaranteed by the caller; one byte, no other memory.
    unsafe {
        asm!(
            "or byte ptr [{state}], {flags}",
            state = in(reg) state,
            flags = const FLAGS,
            options(nostack)
        );
    }
}

/// Marks the object whose state is at `state` live as it is handed out.
///
/// # Safety
/// As for [`set_flags`]: the caller hands the object out.
#[inline(always)]
pub unsafe fn mark_live(state: *const AtomicU8) {
    // SAFETY: guaranteed by the caller.
    unsafe { set_flags::<LIVE>(state) }
}

/// Marks the live object whose state is `state` as given room.
pub fn mark_room(state: &AtomicU8) {
    // SAFETY: `state` is a live object's state, which the caller (its
    // `realloc`) owns.
    unsafe { set_flags::<ROOM>(state) }
}

/// Marks the object whose state is `state`, just checked to be live, free.
#[inline(always)]
pub fn mark_free(state: &AtomicU8) {
    // SAFETY: as for `set_flags`: the caller releases the object after
    // its check; one byte, no other memory.
    unsafe {
        asm!(
            "and byte ptr [{state}], {mask}",
            state = in(reg) state as *const AtomicU8,
            mask = const !(LIVE | ROOM),
            options(nostack)
        );
    }
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
        let state = AtomicU8::new(5 << TAG_SHIFT);
        // SAFETY: a local byte standing for a state.
        unsafe { mark_live(&state) };
        assert_eq!(state.load(Ordering::Relaxed), 5 << TAG_SHIFT | LIVE);
        mark_room(&state);
        assert!(has_room(&state));
        mark_free(&state);
        assert_eq!(state.load(Ordering::Relaxed), 5 << TAG_SHIFT);
        assert!(!has_room(&state));
    }
}
