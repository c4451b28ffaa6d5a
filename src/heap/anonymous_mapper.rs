//! The built-in mappers of private memory: `"default"` (anonymous `mmap`)
//! and `"noaccess"`.
//!
//! Owns: backing a reserved range with zero-filled private memory, or
//! leaving it inaccessible, and purging it (`MADV_DONTNEED`: the pages go
//! back to the kernel and read as zeroes). Invariant: neither keeps any
//! state.

use core::ffi::c_void;
use core::ptr::NonNull;

use crate::heap::mapper::{Errno, Mapper};
use crate::sys::os_memory::{back_anonymous, discard_anonymous};

/// The default mapper: private anonymous memory.
pub struct AnonymousMapper;

impl Mapper for AnonymousMapper {
    fn allocate_data(&self, base: NonNull<c_void>, size: usize) -> Result<(), Errno> {
        back_anonymous(base, size)
    }

    fn purge(&self, base: NonNull<c_void>, size: usize) -> Result<bool, Errno> {
        discard_anonymous(base, size).map(|()| true)
    }
}

/// The mapper named `"noaccess"`: data stays reserved and inaccessible, so
/// any access to an object faults. It serves objects that are addresses
/// only, such as the results of `malloc(0)`.
pub struct NoAccessMapper;

impl Mapper for NoAccessMapper {
    fn allocate_data(&self, _base: NonNull<c_void>, _size: usize) -> Result<(), Errno> {
        Ok(())
    }

    /// Nothing to give back: the data never had memory.
    fn purge(&self, _base: NonNull<c_void>, _size: usize) -> Result<bool, Errno> {
        Ok(true)
    }
}
