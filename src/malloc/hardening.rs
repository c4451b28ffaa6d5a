//! Opt-in hardening of the malloc API (`SLITTER_HARDEN=1`), for programs
//! that will pay for more checks than the default ones.
//!
//! Owns, for the small objects of the malloc size classes (large
//! allocations already sit between guard pages with checked slack):
//! - a canary: the last `CANARY` bytes of each object's slot hold a value
//!   derived from a per-process secret and the object's address, checked
//!   when the object is freed (catches overflows past the usable size,
//!   which is the slot size minus the canary);
//! - zero on free: a freed object is zeroed, and checked to be still all
//!   zero when it is handed out again (catches writes after free);
//! - a quarantine: freed objects wait in a bounded FIFO of `QUARANTINE`
//!   entries before they can be reused (delays reuse, so a use after free
//!   meets zeroes and is caught at the next reuse check, not hidden).
//!
//! Invariants: the setting is fixed when the malloc size classes are
//! registered, before any of their objects exists, so every object of a
//! malloc class either was never handed out (fresh from a span: zero) or
//! was zeroed when freed; a quarantined object is already marked free in
//! its state, so a double free of it is still reported; the
//! zero-size class (inaccessible memory) has no canary and is never
//! touched. The class API is not affected: its objects stay type-stable
//! and readable after release.

use core::ffi::c_void;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::cache::misuse_report::ClassLabel;
use crate::cache::thread_cache;
use crate::layout::magazine::Slot;
use crate::layout::size_classes;
use crate::sys::lock::Lock;

/// Bytes of canary at the end of each hardened object's slot.
pub const CANARY: usize = 8;
/// Freed objects held back from reuse.
const QUARANTINE: usize = 4096;

static ENABLED: AtomicBool = AtomicBool::new(false);
static SECRET: AtomicU64 = AtomicU64::new(0);

/// Whether the malloc API is hardened.
#[inline(always)]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Turns hardening on; called once, before any malloc object exists.
pub fn enable() {
    let mut secret = 0u64;
    // SAFETY: getrandom writes at most 8 bytes into `secret`.
    let got = unsafe { libc::getrandom((&raw mut secret).cast(), 8, 0) };
    if got != 8 {
        // Without randomness, still a value no program writes by chance.
        secret = 0x5ca1_ab1e_c0ff_ee00 ^ (&raw const secret as u64);
    }
    SECRET.store(secret, Ordering::Relaxed);
    ENABLED.store(true, Ordering::Release);
}

/// The size class of a hardened request of `size` bytes aligned to
/// `align`: one with room for the canary too (`malloc(0)` keeps the
/// zero-size class); `None` for the large path.
pub fn index_for(size: usize, align: usize) -> Option<usize> {
    if size == 0 && align <= size_classes::MALLOC_ALIGNMENT {
        return Some(0);
    }
    size_classes::index_for_request(size.checked_add(CANARY)?, align)
}

/// The bytes a program may use in a hardened object of size class `index`.
pub fn usable_size(index: usize) -> usize {
    size_classes::size_of_class(index).saturating_sub(CANARY)
}

/// The canary of the object at `addr`.
fn canary(addr: usize) -> u64 {
    (SECRET.load(Ordering::Relaxed) ^ addr as u64).rotate_left(17)
}

/// The address of the canary of the object at `addr` of class `index`.
fn canary_slot(addr: usize, index: usize) -> *mut u64 {
    (addr + usable_size(index)) as *mut u64
}

/// Hands out the object `object` of class `class_id` (size class `index`)
/// just taken from the thread cache: checks it is still all zero (nothing
/// wrote to it while it was free) and sets its canary.
pub fn hand_out(class_id: u32, index: usize, object: NonNull<u8>) -> *mut c_void {
    let addr = object.as_ptr() as usize;
    if index != 0 {
        let size = size_classes::size_of_class(index);
        // SAFETY: the object is `size` bytes, handed to us by the cache.
        let bytes = unsafe { core::slice::from_raw_parts(object.as_ptr(), size) };
        if let Some(offset) = bytes.iter().position(|&b| b != 0) {
            crate::sys::fatal::die(format_args!(
                "write after free: byte {offset} of {addr:#x} ({}) was written after it \
                 was freed",
                ClassLabel(class_id)
            ))
        }
        // SAFETY: the canary lies in the object's slot, 8-byte aligned
        // (slots are 16-byte multiples).
        unsafe { canary_slot(addr, index).write(canary(addr)) };
    }
    object.as_ptr().cast()
}

/// Held-back freed objects, oldest first out.
struct Quarantine {
    entries: [(u32, Slot); QUARANTINE],
    next: usize,
}

// SAFETY: the slots' pointers are only used by the lock holder, and
// objects are not tied to a thread.
unsafe impl Send for Quarantine {}

static HELD: Lock<Quarantine> = Lock::new(Quarantine {
    entries: [(0, Slot::EMPTY); QUARANTINE],
    next: 0,
});

/// The quarantine's lock, for the fork handlers.
pub fn lock() -> &'static dyn crate::sys::lock::Forkable {
    &HELD
}

/// Takes back the object of `slot` (class `class_id`, size class `index`),
/// just marked free by `free`: checks its canary, zeroes it, and puts it in
/// quarantine, releasing the oldest quarantined object to the cache.
pub fn take_back(class_id: u32, index: usize, slot: Slot) {
    let addr = slot.object as usize;
    if index != 0 {
        // SAFETY: as in `hand_out`; the object was live until now.
        let found = unsafe { canary_slot(addr, index).read() };
        if found != canary(addr) {
            crate::sys::fatal::die(format_args!(
                "heap overflow: the canary after the {} usable bytes of {addr:#x} ({}) was \
                 overwritten",
                usable_size(index),
                ClassLabel(class_id)
            ))
        }
        // SAFETY: the whole object is ours until it is released.
        unsafe {
            slot.object
                .write_bytes(0, size_classes::size_of_class(index))
        };
    }
    let evicted = {
        let mut held = HELD.lock();
        let next = held.next;
        held.next = (next + 1) % QUARANTINE;
        core::mem::replace(&mut held.entries[next], (class_id, slot))
    };
    if evicted.0 != 0 {
        thread_cache::release(evicted.0, evicted.1);
    }
}
