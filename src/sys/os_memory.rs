//! Raw memory from the kernel: the thin `mmap` helpers.
//!
//! Owns: anonymous reservations, zero-filled mappings and the replacement
//! of a reserved range by private memory; errors come back as `errno`
//! values. Invariant: `MAP_FIXED` only ever lands on a range the caller
//! reserved.

use core::ffi::c_void;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU8, Ordering::Relaxed};

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

/// `madvise` advice of Linux 6.13 and later: puts a guard marker on each
/// page of a private anonymous range (an access faults; the page's
/// protection, and so the mapping, stays as it is), freeing its memory.
pub const MADV_GUARD_INSTALL: i32 = 102;
/// Takes the guard markers off a range: its pages read as zero again.
pub const MADV_GUARD_REMOVE: i32 = 103;

/// [`kernel_has_guard_install`]'s answer: 0 not asked yet, 1 no, 2 yes.
static GUARD_INSTALL: AtomicU8 = AtomicU8::new(0);

/// Whether the kernel has `MADV_GUARD_INSTALL`, asked once, by a `madvise`
/// on a scratch page (an older kernel refuses the advice with `EINVAL`).
pub fn kernel_has_guard_install() -> bool {
    match GUARD_INSTALL.load(Relaxed) {
        0 => {
            let present = probe_guard_install();
            GUARD_INSTALL.store(1 + u8::from(present), Relaxed);
            present
        }
        answer => answer == 2,
    }
}

fn probe_guard_install() -> bool {
    const PAGE: usize = 4096;
    let Some(page) = os_map_zeroed(PAGE) else {
        return false;
    };
    let page = page.as_ptr().cast::<c_void>();
    // SAFETY: the scratch page just mapped, used by nothing else and
    // unmapped right after.
    unsafe {
        let present = libc::madvise(page, PAGE, MADV_GUARD_INSTALL) == 0;
        libc::munmap(page, PAGE);
        present
    }
}

/// Moves an array of `len` entries, in a mapping of `old_capacity`
/// entries at `old` (null when `old_capacity` is 0), into a fresh
/// zero-filled mapping of `capacity` entries, and unmaps the old one;
/// `None` (the old array untouched) when no memory can be mapped.
///
/// # Safety
/// `old` holds `old_capacity >= len` entries in a mapping of its own that
/// nothing references after the call; `capacity >= len`.
pub unsafe fn grow_mapped_array<T: Copy>(
    old: *mut T,
    old_capacity: usize,
    len: usize,
    capacity: usize,
) -> Option<*mut T> {
    let fresh = os_map_zeroed(capacity * core::mem::size_of::<T>())?
        .as_ptr()
        .cast::<T>();
    if old_capacity != 0 {
        // SAFETY: both arrays hold at least `len` entries and do not
        // overlap; the old one is unreferenced afterwards (the caller).
        unsafe {
            core::ptr::copy_nonoverlapping(old, fresh, len);
            libc::munmap(old.cast(), old_capacity * core::mem::size_of::<T>());
        }
    }
    Some(fresh)
}

/// Replaces a reserved range with private, zero-filled, writable memory.
pub fn back_anonymous(base: NonNull<c_void>, size: usize) -> Result<(), i32> {
    os_mmap(
        base.as_ptr(),
        size,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_FIXED,
        -1,
    )?;
    // Purges give back less than a huge page at a time: transparent huge
    // pages (where the system turns them on for every mapping) would fill
    // the holes back in. Only advice: its failure changes nothing else.
    // SAFETY: the range was just mapped by this function.
    unsafe { libc::madvise(base.as_ptr(), size, libc::MADV_NOHUGEPAGE) };
    Ok(())
}

/// Gives the pages of `size` bytes at `base` (page-aligned, private
/// anonymous memory) back to the kernel: they read as zeroes afterwards.
pub fn discard_anonymous(base: NonNull<c_void>, size: usize) -> Result<(), i32> {
    // SAFETY: the caller owns the range and wants its contents dropped;
    // MADV_DONTNEED on private anonymous memory only does that.
    if unsafe { libc::madvise(base.as_ptr(), size, libc::MADV_DONTNEED) } != 0 {
        return Err(last_errno());
    }
    Ok(())
}
