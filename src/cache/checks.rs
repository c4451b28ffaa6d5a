//! Checks on addresses handed back to slitter.
//!
//! Owns: the validation of every released address, from out-of-band state
//! only (`layout/object_states.rs`): the accepting side, on the fast paths (what
//! is wrong with a refused address is told by `misuse_report.rs`).
//!
//! Invariants: the metadata of any address is readable (the chunk registry
//! maps foreign addresses to an all-zero stand-in), so a foreign pointer
//! never makes slitter fault; an address passes only if it is the start of
//! a live object of the named class (handed out and not released since),
//! and its release marks it free (`mark_released`, called by
//! `cache::release` once the object is in a magazine, with a plain store;
//! `claim_released`, called by the hardened `free` before its quarantine,
//! with an atomic exchange that also refuses a second release racing the
//! first), so a second release of it fails; every refusal ends in a
//! report that aborts.

use crate::layout::magazine::Slot;
use crate::layout::object_states::{self, State};

/// If `addr` is the start of a live object of class `class_id`, returns
/// `class_id` and the magazine slot to release it with (which marks it
/// free).
#[cfg(not(feature = "measure_without_checks"))]
#[inline(always)]
pub fn take_back(class_id: u32, addr: usize) -> Option<(u32, Slot)> {
    let (class_id, state) = object_states::live_state(class_id, addr)?;
    Some((class_id, slot_of(addr, state)))
}

/// If `addr` is the start of a live object of any class, returns its class
/// id and the magazine slot to release it with (which marks it free).
#[cfg(not(feature = "measure_without_checks"))]
#[inline(always)]
pub fn take_back_any(addr: usize) -> Option<(u32, Slot)> {
    let (class_id, state) = object_states::live_object(addr)?;
    Some((class_id, slot_of(addr, state)))
}

/// The class of the live object starting at `addr`, if there is one, and
/// whether it was given room (no change to its state).
#[cfg(not(feature = "measure_without_checks"))]
pub fn live_class(addr: usize) -> Option<(u32, bool)> {
    object_states::live_object(addr)
        .map(|(class_id, state)| (class_id, object_states::has_room(state)))
}

/// Without checks (for measuring their cost only): the class of the span
/// holding `addr` (taken as given room: no size is refused).
#[cfg(feature = "measure_without_checks")]
pub fn live_class(addr: usize) -> Option<(u32, bool)> {
    crate::layout::span::class_of(addr).map(|class_id| (class_id, true))
}

/// Marks the live object at `addr` as given room by `realloc` (see
/// [`object_states::ROOM`]).
pub fn mark_given_room(addr: usize) {
    if let Some((_, state)) = object_states::live_object(addr) {
        object_states::mark_room(state);
    }
}

/// The magazine slot of the live object at `addr`.
#[cfg(not(feature = "measure_without_checks"))]
#[inline(always)]
fn slot_of(addr: usize, state: &'static State) -> Slot {
    Slot {
        object: addr as *mut u8,
        state,
    }
}

/// Marks the object of `slot` free as it is released. `cache::release`
/// does it after pushing the slot into the magazine, which kept the
/// thread cache's loads ahead of the store to the state and measured a
/// little faster (a C loop of malloc/free pairs: 4.10 against 4.25 ns,
/// medians of 9); the order does not matter to other threads.
///
/// # Safety
/// `slot` was made by `take_back` or `take_back_any`.
#[inline(always)]
pub unsafe fn mark_released(slot: &Slot) {
    #[cfg(not(feature = "measure_without_checks"))]
    // SAFETY: guaranteed by the caller.
    object_states::mark_free(unsafe { &*slot.state });
    #[cfg(feature = "measure_without_checks")]
    let _ = slot;
}

/// Marks the object of `slot` free with an atomic exchange, and returns
/// whether this release is the one that freed it: `false` when another
/// release of it got there first, even one that passed its check at the
/// same instant on another thread (a double free). Without checks (for
/// measuring their cost only), always `true`.
///
/// # Safety
/// `slot` was made by `take_back` or `take_back_any`.
pub unsafe fn claim_released(slot: &Slot) -> bool {
    #[cfg(not(feature = "measure_without_checks"))]
    // SAFETY: guaranteed by the caller.
    return object_states::claim_free(unsafe { &*slot.state });
    #[cfg(feature = "measure_without_checks")]
    {
        let _ = slot;
        true
    }
}

/// Marks the object of `slot` live as it is handed out.
///
/// # Safety
/// `slot` came out of a magazine (its state pointer is an object state).
#[inline(always)]
pub unsafe fn mark_live(slot: *const Slot) {
    #[cfg(not(feature = "measure_without_checks"))]
    // SAFETY: guaranteed by the caller; the object is being handed out.
    unsafe {
        object_states::mark_live((*slot).state)
    };
    #[cfg(feature = "measure_without_checks")]
    let _ = slot;
}

/// Without checks (for measuring their cost only): takes any address back
/// into `class_id` unchecked; object states are not kept.
#[cfg(feature = "measure_without_checks")]
#[inline(always)]
pub fn take_back(class_id: u32, addr: usize) -> Option<(u32, Slot)> {
    Some((class_id, unchecked_slot(addr)))
}

/// Without checks (for measuring their cost only): the class of any
/// address inside a span, found from its record alone.
#[cfg(feature = "measure_without_checks")]
#[inline(always)]
pub fn take_back_any(addr: usize) -> Option<(u32, Slot)> {
    let class_id = crate::layout::span::class_of(addr)?;
    Some((class_id, unchecked_slot(addr)))
}

#[cfg(feature = "measure_without_checks")]
#[inline(always)]
fn unchecked_slot(addr: usize) -> Slot {
    Slot {
        object: addr as *mut u8,
        state: core::ptr::null(),
    }
}
