//! Resizing a malloc allocation: `realloc`'s policy.
//!
//! Owns: where a resized allocation goes: a small object stays while its
//! class holds the new size, and moves with growth room (half again, capped
//! by the size classes) when it outgrows it; a large block stays in place
//! while its pages suffice and more than half stay used, and moves
//! otherwise (by `mremap` above 64 MiB). A resize keeps the alignment it was allocated with.
//!
//! Invariant: a failed resize leaves the allocation as it was.

use core::ffi::c_void;

use crate::cache::checks;
use crate::heap::large::blocks::{self, Resized};
use crate::layout::size_classes::MAX_SMALL_SIZE;
use crate::malloc::hardening;

use crate::malloc::allocation::*;
use crate::malloc::init::*;

/// Resizes the live allocation `ptr`, aligned to `align` (a power of two),
/// to `size` bytes at the same alignment, in place when it fits; reports a
/// misuse if `ptr` is not a live allocation (and returns NULL with EINVAL
/// when the program carries on after it). On failure returns NULL with
/// ENOMEM and leaves `ptr` unchanged.
pub fn reallocate(ptr: *mut c_void, size: usize, align: usize) -> *mut c_void {
    let Some(owner) = owner(ptr, REALLOC) else {
        return refused();
    };
    match owner {
        Owner::Small { id, room } => {
            // Keep the object while the new size selects its class, or a
            // smaller one that uses more than half of it; then it has room
            // (which the sized frees accept).
            let usable = small_usable_size(id);
            match small_class_for(size, align) {
                Some(index) if index == class_index(id) => ptr,
                Some(index) if index < class_index(id) && size > usable / 2 => {
                    if !room {
                        checks::mark_given_room(ptr as usize);
                    }
                    ptr
                }
                _ => move_object(ptr, usable, size, align),
            }
        }
        // A large block keeps a smaller size that uses more than half of
        // it without a call to the large path (a sized free accepts any
        // size up to its usable size).
        Owner::Large(usable)
            if size <= usable && size > usable / 2 && small_class_for(size, align).is_none() =>
        {
            ptr
        }
        Owner::Large(usable) if small_class_for(size, align).is_none() => {
            match blocks::resize(ptr, size, room(usable, size, align), align) {
                Resized::Done(p) => p.as_ptr(),
                Resized::OutOfMemory => out_of_memory(),
                Resized::NotLarge => {
                    report_bad(ptr, REALLOC);
                    refused()
                }
                Resized::Move => move_object(ptr, usable, size, align),
            }
        }
        Owner::Large(usable) => move_object(ptr, usable, size, align),
    }
}

/// The size to give an allocation of `old_size` bytes, aligned to
/// `align`, that must grow to `size`: half as much again, so that an
/// object grown a little at a time (a string appended to) moves a
/// logarithmic number of times rather than once per size class; but a
/// request that a size class serves stays in one (the room is cut to the
/// largest request the classes serve, with the hardened canary).
pub fn room(old_size: usize, size: usize, align: usize) -> usize {
    let room = old_size.saturating_add(old_size / 2).max(size);
    if small_class_for(size, align).is_none() {
        return room;
    }
    let canary = if hardening::enabled() {
        hardening::CANARY
    } else {
        0
    };
    let room = room.min((MAX_SMALL_SIZE - canary).max(size));
    if small_class_for(room, align).is_some() {
        room
    } else {
        size
    }
}

/// Moves the `old_size`-byte object at `ptr` into a new allocation of
/// `size` bytes aligned to `align` (with [`room`] to grow, when it grows)
/// and frees it; NULL with ENOMEM (and `ptr` kept) on failure.
pub fn move_object(ptr: *mut c_void, old_size: usize, size: usize, align: usize) -> *mut c_void {
    let request = if size > old_size {
        room(old_size, size, align)
    } else {
        size
    };
    let (mut new, mut request) = (allocate_aligned(request, align), request);
    if new.is_null() && request != size {
        // No memory for the room: the size alone may still fit.
        (new, request) = (allocate_aligned(size, align), size);
    }
    if new.is_null() {
        return new;
    }
    if request != size && small_class_for(request, align) != small_class_for(size, align) {
        checks::mark_given_room(new as usize);
    }
    // SAFETY: both objects are live, distinct and at least this large.
    unsafe {
        core::ptr::copy_nonoverlapping(ptr.cast::<u8>(), new.cast::<u8>(), old_size.min(size))
    };
    release(ptr);
    new
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::size_classes::MALLOC_ALIGNMENT;

    #[test]
    fn growth_room_is_half_again_within_the_size_classes() {
        assert_eq!(room(100, 101, MALLOC_ALIGNMENT), 150);
        assert_eq!(room(64, 1000, MALLOC_ALIGNMENT), 1000);
        assert_eq!(room(30_000, 30_001, MALLOC_ALIGNMENT), MAX_SMALL_SIZE);
        assert_eq!(
            room(MAX_SMALL_SIZE, MAX_SMALL_SIZE + 1, MALLOC_ALIGNMENT),
            49_152
        );
        assert_eq!(room(1 << 20, (1 << 20) + 1, MALLOC_ALIGNMENT), 3 << 19);
    }

    #[test]
    fn a_string_grown_a_byte_at_a_time_moves_a_logarithmic_number_of_times() {
        let mut p = allocate(1).cast::<u8>();
        let mut moves = 0;
        for len in 1..100_000usize {
            // SAFETY: `p` holds `len` bytes; realloc keeps them.
            let q = unsafe {
                p.add(len - 1).write(len as u8);
                reallocate(p.cast(), len + 1, MALLOC_ALIGNMENT).cast::<u8>()
            };
            assert!(!q.is_null());
            // SAFETY: the first `len` bytes moved with the object.
            assert_eq!(unsafe { q.add(len - 1).read() }, len as u8);
            moves += usize::from(q != p);
            p = q;
        }
        release(p.cast());
        // Growing by half again from 16 bytes to 100,000 moves about 20
        // times (18 measured); a move per size class would be over 70.
        assert!(moves <= 30, "{moves} moves");
    }
}
