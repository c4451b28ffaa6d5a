//! The malloc personality's exported C functions, unprefixed.
//!
//! Owns: `malloc`, `free`, `calloc`, `realloc`, `reallocarray`,
//! `posix_memalign`, `aligned_alloc`, `memalign`, `valloc`, `pvalloc`,
//! `malloc_usable_size`, `cfree` and glibc's `__libc_*` aliases (the sized
//! frees, which check their size first, are in `malloc/sized_free.rs`): their
//! fast paths (`malloc`: one limit, one class lookup, the thread cache's
//! pop; `free`: the check, one limit, the thread cache's push), and their
//! argument conventions.
//!
//! Invariants: as in `allocation.rs`: failures return NULL with errno set,
//! misuse aborts with one `slitter:` line.

use core::ffi::c_void;
use core::ptr::null_mut;

use crate::heap::large::blocks::{self, PAGE_SIZE};
use crate::layout::size_classes::MALLOC_ALIGNMENT;
use crate::sys::errno::{last_errno, set_errno};

use crate::malloc::allocation::*;
use crate::malloc::realloc::*;

/// Allocates `size` bytes, 16-byte aligned (`malloc(0)` gives a unique
/// pointer into inaccessible memory); NULL with ENOMEM on failure.
#[no_mangle]
pub extern "C" fn malloc(size: usize) -> *mut c_void {
    allocate(size)
}

/// Frees `ptr` (NULL is a no-op); aborts with a `slitter:` line if `ptr`
/// is not a live allocation of slitter's malloc.
#[no_mangle]
pub extern "C" fn free(ptr: *mut c_void) {
    release(ptr)
}

/// Allocates `count * size` zeroed bytes; NULL with ENOMEM on overflow or
/// failure.
#[no_mangle]
pub extern "C" fn calloc(count: usize, size: usize) -> *mut c_void {
    match count.checked_mul(size) {
        Some(total) => allocate_zeroed(total, MALLOC_ALIGNMENT),
        None => out_of_memory(),
    }
}

/// Resizes `ptr` to `size` bytes, in place when it fits; `realloc(NULL, n)`
/// is `malloc(n)` and `realloc(p, 0)` frees `p` and returns NULL (as glibc
/// does). On failure returns NULL with ENOMEM and leaves `ptr` unchanged.
#[no_mangle]
pub extern "C" fn realloc(ptr: *mut c_void, size: usize) -> *mut c_void {
    if ptr.is_null() {
        return malloc(size);
    }
    if size == 0 {
        free(ptr);
        return null_mut();
    }
    reallocate(ptr, size, MALLOC_ALIGNMENT)
}

/// `realloc(ptr, count * size)`, with NULL and ENOMEM on overflow.
#[no_mangle]
pub extern "C" fn reallocarray(ptr: *mut c_void, count: usize, size: usize) -> *mut c_void {
    match count.checked_mul(size) {
        Some(total) => realloc(ptr, total),
        None => out_of_memory(),
    }
}

/// Stores in `*memptr` `size` bytes aligned to `align`, which must be a
/// power of two multiple of `sizeof(void *)` (else EINVAL); returns ENOMEM
/// on failure. `*memptr` is untouched on error.
///
/// # Safety
/// `memptr` must be valid for a pointer-sized write.
#[no_mangle]
pub unsafe extern "C" fn posix_memalign(
    memptr: *mut *mut c_void,
    align: usize,
    size: usize,
) -> i32 {
    if !align.is_power_of_two() || !align.is_multiple_of(core::mem::size_of::<usize>()) {
        return libc::EINVAL;
    }
    let errno = last_errno();
    let p = allocate_aligned(size, align);
    if p.is_null() {
        set_errno(errno);
        return libc::ENOMEM;
    }
    // SAFETY: guaranteed by the caller.
    unsafe { *memptr = p };
    0
}

/// `size` bytes aligned to `align`, a power of two (else NULL with EINVAL).
#[no_mangle]
pub extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    if !align.is_power_of_two() {
        set_errno(libc::EINVAL);
        return null_mut();
    }
    allocate_aligned(size, align)
}

/// `size` bytes aligned to `align`, rounded up to a power of two (glibc);
/// NULL with EINVAL when no power of two is that large.
#[no_mangle]
pub extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
    match align.checked_next_power_of_two() {
        Some(align) => allocate_aligned(size, align),
        None => {
            set_errno(libc::EINVAL);
            null_mut()
        }
    }
}

/// `size` bytes aligned to the page size.
#[no_mangle]
pub extern "C" fn valloc(size: usize) -> *mut c_void {
    allocate_aligned(size, PAGE_SIZE)
}

/// Whole pages (at least one) holding `size` bytes, page-aligned.
#[no_mangle]
pub extern "C" fn pvalloc(size: usize) -> *mut c_void {
    match blocks::page_round(size.max(1)) {
        Some(rounded) => allocate_aligned(rounded, PAGE_SIZE),
        None => out_of_memory(),
    }
}

/// The number of usable bytes at `ptr` (0 for NULL); reports a misuse if
/// `ptr` is not a live allocation (0 when the program carries on).
#[no_mangle]
pub extern "C" fn malloc_usable_size(ptr: *mut c_void) -> usize {
    if ptr.is_null() {
        return 0;
    }
    match owner(ptr, USABLE_SIZE) {
        Some(Owner::Small { id, .. }) => small_usable_size(id),
        Some(Owner::Large(usable)) => usable,
        None => 0,
    }
}

/// `free`, under its obsolete name.
#[no_mangle]
pub extern "C" fn cfree(ptr: *mut c_void) {
    free(ptr)
}

/// glibc's internal name for `malloc`.
#[no_mangle]
pub extern "C" fn __libc_malloc(size: usize) -> *mut c_void {
    malloc(size)
}

/// glibc's internal name for `free`.
#[no_mangle]
pub extern "C" fn __libc_free(ptr: *mut c_void) {
    free(ptr)
}

/// glibc's internal name for `calloc`.
#[no_mangle]
pub extern "C" fn __libc_calloc(count: usize, size: usize) -> *mut c_void {
    calloc(count, size)
}

/// glibc's internal name for `realloc`.
#[no_mangle]
pub extern "C" fn __libc_realloc(ptr: *mut c_void, size: usize) -> *mut c_void {
    realloc(ptr, size)
}

/// glibc's internal name for `memalign`.
#[no_mangle]
pub extern "C" fn __libc_memalign(align: usize, size: usize) -> *mut c_void {
    memalign(align, size)
}

/// glibc's internal name for `valloc`.
#[no_mangle]
pub extern "C" fn __libc_valloc(size: usize) -> *mut c_void {
    valloc(size)
}

/// glibc's internal name for `pvalloc`.
#[no_mangle]
pub extern "C" fn __libc_pvalloc(size: usize) -> *mut c_void {
    pvalloc(size)
}

/// glibc's internal name for `posix_memalign`.
///
/// # Safety
/// As for [`posix_memalign`].
#[no_mangle]
pub unsafe extern "C" fn __posix_memalign(
    memptr: *mut *mut c_void,
    align: usize,
    size: usize,
) -> i32 {
    // SAFETY: forwarded from the caller.
    unsafe { posix_memalign(memptr, align, size) }
}
