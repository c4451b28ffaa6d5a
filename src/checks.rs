//! Checks on addresses handed back to slitter.
//!
//! Owns: the validation of every released address, from out-of-band state
//! only, and the one-line `slitter:` report of each misuse found.
//!
//! Invariants: the record of any address is readable (the chunk registry
//! maps foreign addresses to unused records), so a foreign pointer never
//! makes slitter fault; an
//! address passes only if it is the start of an object that the named
//! class's press has handed out; every failure ends in `fatal::die`.

use crate::class;
use crate::span::{self, record_for};

/// Whether `addr` is the start of an object that class `class_id` has
/// handed out.
#[inline(always)]
pub fn is_valid_release(class_id: u32, addr: usize) -> bool {
    span::is_allocated_object(class_id, addr)
}

/// Aborts with a report unless `addr` is the start of an object that class
/// `class_id` has handed out.
#[inline(always)]
pub fn check_release(class_id: u32, addr: usize) {
    if !is_valid_release(class_id, addr) {
        report_bad_release(class_id, addr);
    }
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
        _ => crate::fatal::die(format_args!(
            "release of {addr:#x}, which is not the start of an allocated object, into ({expected})"
        )),
    }
}
