//! Reports of misuse: what is wrong with an address that a release or a
//! free refused, told in one `slitter:` line before aborting.
//!
//! Owns: the diagnosis of a refused address (foreign, interior, freed,
//! another class's, a large block's) from the large path's table and
//! history and the object states, and the wording of each report. It is
//! the cold side of `cache/checks.rs`.
//!
//! Invariants: nothing here allocates (`fatal` writes with a stack
//! buffer); every report aborts, unless `SLITTER_CONTINUE_ON_MISUSE` is
//! on, and then the caller changes nothing of the pointer's.

use core::fmt;

use crate::cache::class_table;
use crate::heap::large::blocks::{self, Known};
use crate::layout::object_states::{self, Seen};
use crate::layout::span::record_for;
use crate::sys::{config, fatal};

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

/// Reports a misuse in one `slitter:` line, then aborts, unless
/// `SLITTER_CONTINUE_ON_MISUSE` is on: then it returns, and the caller
/// leaves the pointer alone (no memory of slitter's was changed by it).
#[cold]
pub fn misuse(message: fmt::Arguments<'_>) {
    if config::current().continue_on_misuse() {
        fatal::report(message)
    } else {
        fatal::die(message)
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

/// Reports why releasing `addr` into class `class_id` is wrong (see
/// [`misuse`]).
#[cold]
#[inline(never)]
pub fn report_bad_release(class_id: u32, addr: usize) {
    let expected = ClassLabel(class_id);
    match blocks::known(addr) {
        Known::Inside(start) if start == addr => {
            return misuse(format_args!(
                "class mismatch: release of {addr:#x} into ({expected}), but it is a large \
             allocation of the malloc API"
            ))
        }
        Known::Inside(start) => {
            return misuse(format_args!(
                "release of {addr:#x}, which is not the start of an allocated object, into \
             ({expected}) (inside the large allocation at {start:#x} of the malloc API)"
            ))
        }
        Known::Freed => {
            return misuse(format_args!(
            "release of {addr:#x}, a freed large allocation of the malloc API, into ({expected})"
        ))
        }
        Known::InsideFreed => {
            return misuse(format_args!(
                "release of {addr:#x}, inside a freed large allocation of the malloc API, into \
             ({expected})"
            ))
        }
        Known::Unknown => {}
    }
    match diagnose(addr) {
        Misuse::Foreign => misuse(format_args!(
            "release of {addr:#x}, which slitter did not allocate, into ({expected})"
        )),
        Misuse::Interior(owner) | Misuse::DoubleFree(owner) | Misuse::Live(owner)
            if owner != class_id =>
        {
            misuse(format_args!(
                "class mismatch: release of {addr:#x} into ({expected}), but it belongs to ({})",
                ClassLabel(owner)
            ))
        }
        Misuse::DoubleFree(_) => misuse(format_args!("double release of {addr:#x} ({expected})")),
        _ => misuse(format_args!(
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
/// `is_malloc_class` tells the malloc size classes from class-API classes
/// (see [`misuse`]).
#[cold]
#[inline(never)]
pub fn report_bad_free(operation: Operation, addr: usize, is_malloc_class: impl Fn(u32) -> bool) {
    let Operation {
        name: operation,
        frees,
    } = operation;
    match blocks::known(addr) {
        Known::Inside(start) => {
            return misuse(format_args!(
                "{operation} of {addr:#x}, which is not the start of an allocated object \
             (inside the large allocation at {start:#x})"
            ))
        }
        Known::Freed if frees => {
            return misuse(format_args!("double free of {addr:#x} (large allocation)"))
        }
        Known::Freed => {
            return misuse(format_args!(
                "{operation} of {addr:#x}, which was already freed (large allocation)"
            ))
        }
        Known::InsideFreed => {
            return misuse(format_args!(
                "{operation} of {addr:#x}, which is inside a freed large allocation \
             kept for reuse"
            ))
        }
        Known::Unknown => {}
    }
    match diagnose(addr) {
        Misuse::Foreign => misuse(format_args!(
            "{operation} of {addr:#x}, which slitter did not allocate"
        )),
        Misuse::Interior(owner) | Misuse::DoubleFree(owner) | Misuse::Live(owner)
            if !is_malloc_class(owner) =>
        {
            misuse(format_args!(
                "class mismatch: {operation} of {addr:#x}, which belongs to the class API ({})",
                ClassLabel(owner)
            ))
        }
        Misuse::DoubleFree(owner) if frees => misuse(format_args!(
            "double free of {addr:#x} ({})",
            ClassLabel(owner)
        )),
        Misuse::DoubleFree(owner) => misuse(format_args!(
            "{operation} of {addr:#x}, which was already freed ({})",
            ClassLabel(owner)
        )),
        Misuse::Interior(owner) | Misuse::Live(owner) => misuse(format_args!(
            "{operation} of {addr:#x}, which is not the start of an allocated object ({})",
            ClassLabel(owner)
        )),
    }
}
