//! The calling thread's `errno`.
//!
//! Owns: reading and writing it, for the system calls slitter makes and
//! the C functions that report through it. Invariant: touches only the
//! calling thread's slot.

/// The calling thread's `errno`.
pub fn last_errno() -> i32 {
    // SAFETY: __errno_location returns this thread's errno slot.
    unsafe { *libc::__errno_location() }
}

/// Sets the calling thread's `errno`.
pub fn set_errno(value: i32) {
    // SAFETY: __errno_location returns this thread's errno slot.
    unsafe { *libc::__errno_location() = value };
}
