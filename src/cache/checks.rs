//! Checks on addresses handed back to slitter.
//!
//! Owns: the validation of every released address, from out-of-band state
//! only (`object_states.rs`), and the one-line `slitter:` report of each
//! misuse found.
//!
//! Invariants: the metadata of any address is readable (the chunk registry
//! maps foreign addresses to an all-zero stand-in), so a foreign pointer
//! never makes slitter fault; an address passes only if it is the start of
//! a live object of the named class (handed out and not released since),
//! and its release marks it free (`mark_released`, called by
//! `cache::release` once the object is in a magazine, and by the hardened
//! `free` before its quarantine), so a second release of it fails; every
//! failure ends in `fatal::die`.

use crate::cache::class_table;
use crate::heap::large::blocks::{self, Known};
use crate::layout::magazine::Slot;
use crate::layout::object_states::{self, Seen, State};
use crate::layout::span::record_for;

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

/// Writes `class <name>, id <id>` for a class id, without allocating.
pub struct ClassLabel(pub u32);

impl core::fmt::Display for ClassLabel {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match class_table::info(self.0) {
            Some(info) => write!(f, "class {}, id {}", info.name(), self.0),
            None => write!(f, "unknown class id {}", self.0),
        }
    }
}

/// What is wrong with an address handed back to slitter.
enum Misuse {
    /// Not in any span: slitter did not allocate it.
    Foreign,
    /// Inside a span of this class, but not the start of an object.
    Interior(u32),
    /// The start of an object of this class that is already free.
    DoubleFree(u32),
    /// The start of a live object of this class.
    Live(u32),
}

fn diagnose(addr: usize) -> Misuse {
    match object_states::seen(addr) {
        Seen::Live(class_id) => Misuse::Live(class_id),
        Seen::Free(class_id) => Misuse::DoubleFree(class_id),
        // Inside an object, in a span's slack, or past the objects handed
        // out so far.
        Seen::NoObject => match record_for(addr).class_id() {
            0 => Misuse::Foreign,
            class_id => Misuse::Interior(class_id),
        },
    }
}

/// Turns away the release of `addr` into class `class_id`, which does not
/// exist: a no-op for NULL, else a report of the misuse.
#[cold]
pub fn reject_release(class_id: u32, addr: usize) {
    if addr != 0 {
        report_bad_release(class_id, addr)
    }
}

/// Reports why releasing `addr` into class `class_id` is wrong, and aborts.
#[cold]
#[inline(never)]
pub fn report_bad_release(class_id: u32, addr: usize) -> ! {
    let expected = ClassLabel(class_id);
    match blocks::known(addr) {
        Known::Inside(start) if start == addr => crate::sys::fatal::die(format_args!(
            "class mismatch: release of {addr:#x} into ({expected}), but it is a large \
             allocation of the malloc API"
        )),
        Known::Inside(start) => crate::sys::fatal::die(format_args!(
            "release of {addr:#x}, which is not the start of an allocated object, into \
             ({expected}) (inside the large allocation at {start:#x} of the malloc API)"
        )),
        Known::Freed => crate::sys::fatal::die(format_args!(
            "release of {addr:#x}, a freed large allocation of the malloc API, into ({expected})"
        )),
        Known::Unknown => {}
    }
    match diagnose(addr) {
        Misuse::Foreign => crate::sys::fatal::die(format_args!(
            "release of {addr:#x}, which slitter did not allocate, into ({expected})"
        )),
        Misuse::Interior(owner) | Misuse::DoubleFree(owner) | Misuse::Live(owner)
            if owner != class_id =>
        {
            crate::sys::fatal::die(format_args!(
                "class mismatch: release of {addr:#x} into ({expected}), but it belongs to ({})",
                ClassLabel(owner)
            ))
        }
        Misuse::DoubleFree(_) => {
            crate::sys::fatal::die(format_args!("double release of {addr:#x} ({expected})"))
        }
        _ => crate::sys::fatal::die(format_args!(
            "release of {addr:#x}, which is not the start of an allocated object, into ({expected})"
        )),
    }
}

/// An entry point of the malloc API that takes an address back, as its
/// reports name it.
#[derive(Clone, Copy)]
pub struct Operation {
    /// The name in reports (`free`, `realloc`, ...).
    pub name: &'static str,
    /// Whether it frees the address (a second free is a "double free").
    pub frees: bool,
}

/// Reports why `operation` (free, realloc, ...) of `addr` is wrong, where
/// `is_malloc_class` tells the malloc size classes from class-API classes;
/// aborts.
#[cold]
#[inline(never)]
pub fn report_bad_free(
    operation: Operation,
    addr: usize,
    is_malloc_class: impl Fn(u32) -> bool,
) -> ! {
    let Operation {
        name: operation,
        frees,
    } = operation;
    match blocks::known(addr) {
        Known::Inside(start) => crate::sys::fatal::die(format_args!(
            "{operation} of {addr:#x}, which is not the start of an allocated object \
             (inside the large allocation at {start:#x})"
        )),
        Known::Freed if frees => {
            crate::sys::fatal::die(format_args!("double free of {addr:#x} (large allocation)"))
        }
        Known::Freed => crate::sys::fatal::die(format_args!(
            "{operation} of {addr:#x}, which was already freed (large allocation)"
        )),
        Known::Unknown => {}
    }
    match diagnose(addr) {
        Misuse::Foreign => crate::sys::fatal::die(format_args!(
            "{operation} of {addr:#x}, which slitter did not allocate"
        )),
        Misuse::Interior(owner) | Misuse::DoubleFree(owner) | Misuse::Live(owner)
            if !is_malloc_class(owner) =>
        {
            crate::sys::fatal::die(format_args!(
                "class mismatch: {operation} of {addr:#x}, which belongs to the class API ({})",
                ClassLabel(owner)
            ))
        }
        Misuse::DoubleFree(owner) if frees => crate::sys::fatal::die(format_args!(
            "double free of {addr:#x} ({})",
            ClassLabel(owner)
        )),
        Misuse::DoubleFree(owner) => crate::sys::fatal::die(format_args!(
            "{operation} of {addr:#x}, which was already freed ({})",
            ClassLabel(owner)
        )),
        Misuse::Interior(owner) | Misuse::Live(owner) => crate::sys::fatal::die(format_args!(
            "{operation} of {addr:#x}, which is not the start of an allocated object ({})",
            ClassLabel(owner)
        )),
    }
}
