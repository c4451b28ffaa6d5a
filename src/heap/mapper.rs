//! Mappers: where slitter's address space and memory come from.
//!
//! Owns: the [`Mapper`] trait, the interface between a mill and the memory
//! behind it (the built-in mappers are in `anonymous_mapper.rs` and
//! `file_mapper.rs`, the registry in `mapper_registry.rs`).
//!
//! Invariants: a reservation is inaccessible until a mill backs part of it;
//! mappers are immortal (`&'static`).

use core::ffi::c_void;
use core::ptr::NonNull;

use crate::sys::errno::last_errno;
use crate::sys::os_memory::{back_anonymous, discard_anonymous, os_reserve};

/// An `errno` value explaining why a mapper call failed.
///
/// ```
/// let error: slitter::Errno = libc::ENOMEM;
/// assert_eq!(
///     std::io::Error::from_raw_os_error(error).kind(),
///     std::io::ErrorKind::OutOfMemory
/// );
/// ```
pub type Errno = i32;

/// A source of address space and memory for one or more mills.
///
/// A mill calls `reserve` once per chunk, `release` to give back the slop
/// around the aligned chunk, then `allocate_meta` and `allocate_data` on the
/// chunk's metadata and data regions. Ranges passed in are page-aligned.
/// Every method but `allocate_data` defaults to private anonymous memory.
///
/// A mapper that backs object data with anonymous memory, like the default
/// one, and counts the bytes it backed; a class takes its memory from it by
/// naming it:
///
/// ```
/// use core::ffi::c_void;
/// use core::ptr::NonNull;
/// use std::sync::atomic::{AtomicUsize, Ordering};
///
/// use slitter::{Class, ClassConfig, Errno, Mapper};
///
/// struct Counting {
///     backed: AtomicUsize,
/// }
///
/// impl Mapper for Counting {
///     fn allocate_data(&self, base: NonNull<c_void>, size: usize) -> Result<(), Errno> {
///         let rw = libc::PROT_READ | libc::PROT_WRITE;
///         // SAFETY: slitter passes part of a reservation this mapper made
///         // (the default `reserve`: private anonymous memory, zero-filled
///         // once accessible) that nothing uses yet.
///         if unsafe { libc::mprotect(base.as_ptr(), size, rw) } != 0 {
///             return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::ENOMEM));
///         }
///         self.backed.fetch_add(size, Ordering::Relaxed);
///         Ok(())
///     }
/// }
///
/// static COUNTING: Counting = Counting { backed: AtomicUsize::new(0) };
///
/// slitter::register_mapper("counting", &COUNTING).unwrap();
/// let class = Class::new(ClassConfig {
///     name: Some("counted"),
///     size: 64,
///     mapper_name: Some("counting"),
///     ..Default::default()
/// })
/// .unwrap();
/// let object = class.allocate().unwrap();
/// assert!(COUNTING.backed.load(Ordering::Relaxed) >= 64);
/// class.release(object);
/// ```
pub trait Mapper: Sync {
    /// The granularity of this mapper's ranges.
    fn page_size(&self) -> usize {
        4096
    }

    /// Reserves `size` bytes of inaccessible address space.
    fn reserve(&self, size: usize) -> Result<NonNull<c_void>, Errno> {
        os_reserve(size)
    }

    /// Returns part of a reservation to the operating system.
    fn release(&self, base: NonNull<c_void>, size: usize) -> Result<(), Errno> {
        // SAFETY: mills only release parts of their reservations that they
        // never handed out.
        if unsafe { libc::munmap(base.as_ptr(), size) } != 0 {
            return Err(last_errno());
        }
        Ok(())
    }

    /// Makes a reserved range usable for span metadata (zero-filled).
    fn allocate_meta(&self, base: NonNull<c_void>, size: usize) -> Result<(), Errno> {
        back_anonymous(base, size)
    }

    /// Makes a reserved range usable for objects (zero-filled).
    fn allocate_data(&self, base: NonNull<c_void>, size: usize) -> Result<(), Errno>;

    /// Gives back the memory of `size` bytes at `base`, a page-aligned part
    /// of a range `allocate_data` backed that holds no live object, so that
    /// it reads as zeroes afterwards, and returns `Ok(true)`; or keeps it
    /// and returns `Ok(false)`, the default (the range then keeps its
    /// contents, and its spans are not purged). Called without any of
    /// slitter's locks but the purging class's; it must not allocate.
    fn purge(&self, base: NonNull<c_void>, size: usize) -> Result<bool, Errno> {
        let _ = (base, size);
        Ok(false)
    }

    /// Gives back the memory of `size` bytes at `base`, a page-aligned part
    /// of a range `allocate_meta` backed, so that it reads as zeroes
    /// afterwards, and returns `Ok(true)`; `Ok(false)` if it keeps it
    /// (slitter then writes the zeroes). The default matches the default
    /// `allocate_meta` (private anonymous memory: `MADV_DONTNEED`); a
    /// mapper that backs metadata otherwise overrides both.
    fn purge_meta(&self, base: NonNull<c_void>, size: usize) -> Result<bool, Errno> {
        discard_anonymous(base, size).map(|()| true)
    }

    /// Called in the child of a `fork()`, for each range of `size` bytes
    /// at `base` that `allocate_data` backed, of which the first `used`
    /// bytes hold objects handed out so far. A mapper whose memory the
    /// child would share with its parent (a `MAP_SHARED` mapping) gives the
    /// child memory of its own there, holding what the first `used` bytes
    /// hold and zeroes after them, and returns `Ok(true)`. The default,
    /// for private memory (which `fork` already copies), does nothing and
    /// returns `Ok(false)`. An error aborts the child with a message. It
    /// runs in the child's only thread, inside the fork handler: it must
    /// not allocate.
    fn after_fork_in_child(
        &self,
        base: NonNull<c_void>,
        size: usize,
        used: usize,
    ) -> Result<bool, Errno> {
        let _ = (base, size, used);
        Ok(false)
    }
}
