//! Allocating and freeing one malloc object: the paths behind the exported
//! functions.
//!
//! Owns: the small path (a size class through the thread cache) and its
//! slow path, the large path (`heap::large`), aligned and zeroed requests
//! (which both the exports and `Slitter` make), `free`'s paths after its
//! fast path, and the owner of a live allocation; glibc's errno and NULL
//! conventions.
//!
//! A request of at most `MAX_SMALL_SIZE` bytes is served by its size class
//! through the thread cache, with no lock and no atomic read-modify-write;
//! `malloc(0)` by the zero-size class, whose objects lie in inaccessible
//! memory; a request aligned beyond 16 bytes by a class whose size is a
//! multiple of the alignment (up to the span alignment); larger or more
//! aligned requests by the large path.
//!
//! Invariants: nothing here allocates through another allocator; failures
//! return NULL with errno set (ENOMEM, or EINVAL for a bad alignment) and
//! never abort; misuse (a pointer slitter did not hand out, or no longer
//! live) aborts with a `slitter:` line; `free` keeps errno.

use core::ffi::c_void;
use core::ptr::null_mut;
use core::sync::atomic::Ordering;

use crate::cache::checks;
use crate::cache::misuse_report::{self, Operation};
use crate::cache::thread_cache;
use crate::heap::large::blocks;
use crate::layout::size_classes::{self, MALLOC_ALIGNMENT};
use crate::malloc::hardening;
use crate::sys::errno::{last_errno, set_errno};

use crate::malloc::init::*;

pub const FREE: Operation = Operation {
    name: "free",
    frees: true,
};
pub const REALLOC: Operation = Operation {
    name: "realloc",
    frees: false,
};
#[cfg(feature = "malloc")]
pub const USABLE_SIZE: Operation = Operation {
    name: "malloc_usable_size",
    frees: false,
};

#[cold]
pub fn out_of_memory() -> *mut c_void {
    set_errno(libc::ENOMEM);
    null_mut()
}

/// Allocates from malloc class `id`, registering the classes if needed.
#[cold]
pub fn allocate_small_slow(id: u32) -> *mut c_void {
    if !INITIALISED.load(Ordering::Acquire) && !initialise() {
        return out_of_memory();
    }
    // The fast path just failed (or ran on the sentinels before the
    // classes existed): go straight to the slow path.
    match thread_cache::allocate_slow(id) {
        Some(object) => object.as_ptr().cast(),
        None => out_of_memory(),
    }
}

#[inline(always)]
pub fn allocate_small(index: usize) -> *mut c_void {
    // SAFETY: size class indices are below `COUNT` (`index_for` and
    // `index_for_aligned` return one for every size up to `MAX_SMALL_SIZE`,
    // checked for each size by a unit test), so the id is below
    // FIRST_USER_ID <= MAX_CLASSES; telling the compiler spares the
    // allocation fast path its class id bound check.
    unsafe { core::hint::assert_unchecked(index < size_classes::COUNT) };
    let id = class_id(index);
    // SAFETY: malloc class ids are below FIRST_USER_ID <= MAX_CLASSES.
    match unsafe { thread_cache::pop_live(id as usize) } {
        Some(object) => object.as_ptr().cast(),
        None => allocate_small_slow(id),
    }
}

/// A large allocation, and whether it is known to be zero.
pub fn allocate_large(size: usize, align: usize) -> Option<(*mut c_void, bool)> {
    blocks::allocate(size, align).map(|(p, fresh)| (p.as_ptr(), fresh))
}

/// The size class serving a request of `size` bytes aligned to `align`
/// (a power of two), with room for the canary when hardened; `None` when
/// the large path serves it.
pub fn small_class_for(size: usize, align: usize) -> Option<usize> {
    if hardening::enabled() {
        hardening::index_for(size, align)
    } else {
        size_classes::index_for_request(size, align)
    }
}

/// The bytes a program may use in an object of malloc class `class_id`.
pub fn small_usable_size(class_id: u32) -> usize {
    if hardening::enabled() {
        hardening::usable_size(class_index(class_id))
    } else {
        class_size(class_id)
    }
}

/// Allocates `size` bytes aligned to `align` (a power of two); NULL with
/// ENOMEM on failure.
pub fn allocate_aligned(size: usize, align: usize) -> *mut c_void {
    if align <= MALLOC_ALIGNMENT {
        return allocate(size);
    }
    allocate_slow(size, align)
}

/// Any allocation that `malloc`'s fast path does not serve: before the
/// classes exist, when hardened, large or over-aligned. Kept out of line so
/// that `malloc`'s fast path needs no stack frame.
#[cold]
#[inline(never)]
pub fn allocate_slow(size: usize, align: usize) -> *mut c_void {
    if !INITIALISED.load(Ordering::Acquire) && !initialise() {
        return out_of_memory();
    }
    match small_class_for(size, align) {
        Some(index) if hardening::enabled() => {
            let id = class_id(index);
            match thread_cache::allocate(id) {
                Some(object) => hardening::hand_out(id, index, object),
                None => out_of_memory(),
            }
        }
        Some(index) => allocate_small(index),
        None => match allocate_large(size, align) {
            Some((p, _)) => p,
            None => out_of_memory(),
        },
    }
}

/// Allocates `size` zeroed bytes aligned to `align` (a power of two),
/// clearing only memory not known to be zero (fresh large mappings are);
/// NULL with ENOMEM on failure.
pub fn allocate_zeroed(size: usize, align: usize) -> *mut c_void {
    let (p, zero) = if small_class_for(size, align).is_some() {
        (allocate_aligned(size, align), false)
    } else if !initialise() {
        return out_of_memory();
    } else {
        match allocate_large(size, align) {
            Some(allocation) => allocation,
            None => return out_of_memory(),
        }
    };
    if !zero && !p.is_null() {
        // SAFETY: a new allocation of at least `size` bytes.
        unsafe { p.cast::<u8>().write_bytes(0, size) };
    }
    p
}

/// Frees the object that just passed `free`'s check, of class `id` that
/// the fast path does not release: hardened malloc objects (marked free
/// here by an atomic exchange, before their quarantine: of two frees
/// racing past the check, the one that finds it free already is reported
/// as a double free), or a class-API object (a misuse).
#[cold]
pub fn free_taken(ptr: *mut c_void, id: u32, slot: crate::layout::magazine::Slot) {
    // SAFETY: the slot comes from `take_back_any`.
    if !is_malloc_class(id) || !unsafe { checks::claim_released(&slot) } {
        return report_bad(ptr, FREE);
    }
    // The same calls as the default `free`'s release (a magazine from the
    // rack, the arena once per thread), which keep errno unless they fail.
    hardening::take_back(id, class_index(id), slot)
}

#[cold]
pub fn free_slow(ptr: *mut c_void) {
    if ptr.is_null() || keeping_errno(|| blocks::free(ptr)) {
        return;
    }
    report_bad(ptr, FREE)
}

/// Runs `f`, then gives `errno` back the value it had: `free` keeps
/// `errno` (as glibc does since 2.33), whatever system calls it makes
/// (`munmap`, `madvise`, `mincore`) and however they fail.
pub fn keeping_errno<R>(f: impl FnOnce() -> R) -> R {
    let saved = last_errno();
    let result = f();
    set_errno(saved);
    result
}

/// Reports why `operation` of `ptr` is a misuse (see
/// `misuse_report::misuse`: it returns only when the program carries on).
pub fn report_bad(ptr: *const c_void, operation: Operation) {
    let addr = ptr as usize;
    misuse_report::report_bad_free(operation, addr, is_malloc_class)
}

/// A live allocation of slitter's malloc.
pub enum Owner {
    /// An object of malloc class `id`; `room`: `realloc` put it in a
    /// larger class than its size selects.
    Small { id: u32, room: bool },
    /// A large allocation with this many usable bytes.
    Large(usize),
}

/// What holds the live allocation at `ptr`; if nothing does, reports the
/// misuse and returns `None` (when the program carries on after it).
pub fn owner(ptr: *mut c_void, operation: Operation) -> Option<Owner> {
    match checks::live_class(ptr as usize) {
        Some((id, room)) if is_malloc_class(id) => Some(Owner::Small { id, room }),
        _ => match blocks::usable_size(ptr) {
            Some(usable) => Some(Owner::Large(usable)),
            None => {
                report_bad(ptr, operation);
                None
            }
        },
    }
}

/// What `realloc` returns for a pointer it refused (after its report,
/// when the program carries on): NULL with EINVAL, the pointer unchanged.
#[cold]
pub fn refused() -> *mut c_void {
    set_errno(libc::EINVAL);
    null_mut()
}

/// `malloc`: `size` bytes, 16-byte aligned; NULL with ENOMEM on failure.
#[inline(always)]
pub fn allocate(size: usize) -> *mut c_void {
    if size <= FAST_MALLOC_LIMIT.load(Ordering::Relaxed) {
        return allocate_small(size_classes::index_for(size));
    }
    allocate_slow(size, MALLOC_ALIGNMENT)
}

/// `free`: releases `ptr` (NULL is a no-op); aborts with a `slitter:`
/// line if `ptr` is not a live allocation of slitter's malloc.
#[inline(always)]
pub fn release(ptr: *mut c_void) {
    if let Some((id, slot)) = checks::take_back_any(ptr as usize) {
        if id < FAST_FREE_LIMIT.load(Ordering::Relaxed) {
            thread_cache::release(id, slot);
            return;
        }
        return free_taken(ptr, id, slot);
    }
    free_slow(ptr);
}
