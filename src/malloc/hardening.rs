//! Opt-in hardening of the malloc API (`SLITTER_HARDEN=1`), for programs
//! that will pay for more checks than the default ones.
//!
//! Owns, for the small objects of the malloc size classes (large
//! allocations already sit between guard pages with checked slack):
//! - a canary: the last `CANARY` bytes of each object's slot, checked
//!   when the object is freed (catches overflows past the usable size,
//!   which is the slot size minus the canary); its first byte (the lowest
//!   address, right after the usable bytes) is zero, so that a string
//!   read past its end (an unterminated string) stops inside the slot,
//!   and the others hold a value derived from a per-process secret and
//!   the object's address;
//! - zero on free: a freed object is zeroed (so a read after free reads
//!   zeroes), and checked to be still all zero when it is handed out
//!   again (catches writes after free);
//! - a claim by atomic exchange: `free` marks the object free with an
//!   atomic exchange of its state (`checks::claim_released`, in
//!   `allocation::free_taken`), so of two threads freeing one object at
//!   the same instant one is reported;
//! - a quarantine: freed objects wait in their thread's quarantine
//!   (`cache/quarantine.rs`: bounded, no lock) before they can be reused,
//!   leaving it in random order (delays reuse, so a use after free meets
//!   zeroes and is caught at the next reuse check, not hidden, and makes
//!   the object a new allocation gets unpredictable).
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
use crate::sys::random::random_u64;

/// Bytes of canary at the end of each hardened object's slot.
pub const CANARY: usize = 8;

static ENABLED: AtomicBool = AtomicBool::new(false);
static SECRET: AtomicU64 = AtomicU64::new(0);

/// Whether the malloc API is hardened.
#[inline(always)]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Turns hardening on; called once, before any malloc object exists.
pub fn enable() {
    SECRET.store(random_u64(), Ordering::Relaxed);
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

/// The canary of the object at `addr`, as stored little-endian: its low
/// byte, the first in memory, is zero (it ends a string read past the
/// usable bytes).
fn canary(addr: usize) -> u64 {
    (SECRET.load(Ordering::Relaxed) ^ addr as u64).rotate_left(17) & !0xff
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
        if let Some(offset) = first_nonzero(object, size_classes::size_of_class(index)) {
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

/// The offset of the first byte that is not zero in the `size` bytes of
/// the object at `object` (a multiple of 8 bytes, 8-byte aligned), if
/// any: one pass of 8-byte loads (which the compiler vectorises), then a
/// search by bytes only when something was written.
fn first_nonzero(object: NonNull<u8>, size: usize) -> Option<usize> {
    // SAFETY: the caller's object is `size` bytes, aligned, all ours.
    let words = unsafe { core::slice::from_raw_parts(object.as_ptr().cast::<u64>(), size / 8) };
    if words.iter().fold(0, |any, &word| any | word) == 0 {
        return None;
    }
    // SAFETY: as above.
    let bytes = unsafe { core::slice::from_raw_parts(object.as_ptr(), size) };
    bytes.iter().position(|&b| b != 0)
}

/// Takes back the object of `slot` (class `class_id`, size class `index`),
/// just marked free by `free`: checks its canary, zeroes it, and puts it in
/// this thread's quarantine, whence random objects go back to the cache.
pub fn take_back(class_id: u32, index: usize, slot: Slot) {
    let addr = slot.object as usize;
    let size = size_classes::size_of_class(index);
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
        unsafe { slot.object.write_bytes(0, size) };
    }
    thread_cache::release_later(class_id, size, slot);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_byte_of_every_canary_is_zero_and_the_rest_secret() {
        SECRET.store(0x0123_4567_89ab_cdef, Ordering::Relaxed);
        for addr in (0x7f00_0000_0000usize..).step_by(16).take(1000) {
            let value = canary(addr);
            assert_eq!(value.to_le_bytes()[0], 0);
            assert_ne!(value >> 8, 0);
            assert_ne!(value, canary(addr + 16));
        }
    }

    #[test]
    fn the_zero_check_finds_the_first_written_byte() {
        let mut object = [0u64; 8];
        let at = |object: &mut [u64; 8]| {
            first_nonzero(
                NonNull::from(object).cast(),
                core::mem::size_of::<[u64; 8]>(),
            )
        };
        assert_eq!(at(&mut object), None);
        object[5] = 1 << 16;
        assert_eq!(at(&mut object), Some(5 * 8 + 2));
        object[1] = 1 << 56;
        assert_eq!(at(&mut object), Some(15));
    }
}
