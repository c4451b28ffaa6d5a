//! Raw memory from the kernel: the thin `mmap` helpers.
//!
//! Owns: anonymous reservations, zero-filled mappings and the replacement
//! of a reserved range by private memory; errors come back as `errno`
//! values. Invariant: `MAP_FIXED` only ever lands on a range the caller
//! reserved.

use core::ffi::c_void;
use core::ptr::NonNull;

use crate::sys::errno::last_errno;

/// `mmap` with the given protection, flags and file, at `addr` if non-null.
pub fn os_mmap(
    addr: *mut c_void,
    size: usize,
    prot: i32,
    flags: i32,
    fd: i32,
) -> Result<NonNull<c_void>, i32> {
    // SAFETY: mmap has no memory-safety preconditions unless MAP_FIXED is in
    // `flags`, and callers only pass MAP_FIXED over ranges they reserved.
    let ret = unsafe { libc::mmap(addr, size, prot, flags, fd, 0) };
    if ret == libc::MAP_FAILED {
        return Err(last_errno());
    }
    NonNull::new(ret).ok_or(libc::ENOMEM)
}

/// Reserves `size` bytes of fresh, inaccessible address space (no memory
/// behind it).
pub fn os_reserve(size: usize) -> Result<NonNull<c_void>, i32> {
    os_mmap(
        core::ptr::null_mut(),
        size,
        libc::PROT_NONE,
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
        -1,
    )
}

/// Maps `size` bytes of fresh, readable and writable, zero-filled memory.
pub fn os_map_zeroed(size: usize) -> Option<NonNull<u8>> {
    os_mmap(
        core::ptr::null_mut(),
        size,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
        -1,
    )
    .ok()
    .map(NonNull::cast)
}

/// Replaces a reserved range with private, zero-filled, writable memory.
pub fn back_anonymous(base: NonNull<c_void>, size: usize) -> Result<(), i32> {
    os_mmap(
        base.as_ptr(),
        size,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_FIXED,
        -1,
    )
    .map(|_| ())
}
