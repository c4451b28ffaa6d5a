//! Checks on addresses handed back to slitter.
//!
//! Owns: the validation of every released address, from out-of-band state
//! only, and the one-line `slitter:` report of each misuse found.
//!
//! Invariants: the record of any address is readable (the chunk registry
//! maps foreign addresses to unused records), so a foreign pointer never
//! makes slitter fault; an address passes only if it is the start of a
//! live object of the named class (handed out and not released since), and
//! passing marks it free, so a second release of it fails; every failure
//! ends in `fatal::die`.

use core::sync::atomic::Ordering;

use crate::class;
use crate::magazine::Slot;
use crate::span::{self, record_for, FREE};

/// If `addr` is the start of a live object of class `class_id`, marks it
/// free and returns the magazine slot to release it with.
#[inline(always)]
pub fn take_back(class_id: u32, addr: usize) -> Option<Slot> {
    let state = span::live_state(class_id, addr)?;
    state.store(FREE, Ordering::Relaxed);
    Some(Slot {
        object: addr as *mut u8,
        state,
    })
}

/// Writes `class <name>, id <id>` for a class id, without allocating.
pub struct ClassLabel(pub u32);

impl core::fmt::Display for ClassLabel {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match class::info(self.0) {
            Some(info) => write!(f, "class {}, id {}", info.name(), self.0),
            None => write!(f, "unknown class id {}", self.0),
        }
    }
}

/// Reports why releasing `addr` into class `class_id` is wrong, and aborts.
#[cold]
#[inline(never)]
pub fn report_bad_release(class_id: u32, addr: usize) -> ! {
    let expected = ClassLabel(class_id);
    match record_for(addr).class_id() {
        0 => crate::fatal::die(format_args!(
            "release of {addr:#x}, which slitter did not allocate, into ({expected})"
        )),
        owner if owner != class_id => crate::fatal::die(format_args!(
            "class mismatch: release of {addr:#x} into ({expected}), but it belongs to ({})",
            ClassLabel(owner)
        )),
        _ => {
            let record = record_for(addr);
            match record.object_index(addr) {
                Some(index)
                    if (index as u64)
                        < record.state_array().bump_index.load(Ordering::Relaxed) =>
                {
                    crate::fatal::die(format_args!(
                        "double release of {addr:#x} ({expected})"
                    ))
                }
                _ => crate::fatal::die(format_args!(
                    "release of {addr:#x}, which is not the start of an allocated object, into ({expected})"
                )),
            }
        }
    }
}
