//! The internal arena: immortal, zero-filled memory for slitter's own records.
//!
//! Owns: every internal record that is not a span record (class descriptors,
//! presses, mills, magazines, thread-cache entry arrays). The allocator must
//! never call the process allocator, because it may *be* the process
//! allocator, so these records come from anonymous mappings made here.
//!
//! Invariants: memory handed out is zero-filled, aligned as asked, never
//! returned or reused for another purpose (callers recycle their own records
//! through free lists); `bytes_mapped` only grows.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::sys::lock::Lock;
use crate::sys::os_memory::os_map_zeroed;

/// Internal memory is mapped in regions of this size (or larger, for a
/// larger request).
const REGION_SIZE: usize = 4 << 20;

struct Cursor {
    next: usize,
    end: usize,
}

static CURSOR: Lock<Cursor> = Lock::new(Cursor { next: 0, end: 0 });
static BYTES_MAPPED: AtomicUsize = AtomicUsize::new(0);

/// The arena's lock, for the fork handlers.
pub fn lock() -> &'static dyn crate::sys::lock::Forkable {
    &CURSOR
}

/// Returns `size` bytes of zero-filled memory aligned to `align`, or `None`
/// when the operating system refuses more memory.
#[contracts::debug_requires(align.is_power_of_two() && align <= 4096)]
#[contracts::debug_ensures(ret.is_none_or(|p| (p.as_ptr() as usize).is_multiple_of(align)))]
pub fn allocate(size: usize, align: usize) -> Option<NonNull<u8>> {
    let mut cursor = CURSOR.lock();
    let mut start = cursor.next.checked_add(align - 1)? & !(align - 1);
    if cursor.next == 0 || start.checked_add(size)? > cursor.end {
        let region = size.max(REGION_SIZE).checked_add(4095)? & !4095;
        let base = os_map_zeroed(region)?;
        BYTES_MAPPED.fetch_add(region, Ordering::Relaxed);
        start = base.as_ptr() as usize;
        cursor.end = start + region;
    }
    cursor.next = start + size;
    NonNull::new(start as *mut u8)
}

/// Total bytes of address space mapped for internal records so far.
pub fn bytes_mapped() -> usize {
    BYTES_MAPPED.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_aligned_zeroed_and_disjoint() {
        let a = allocate(24, 8).unwrap().as_ptr() as usize;
        let b = allocate(256, 256).unwrap().as_ptr() as usize;
        let c = allocate(REGION_SIZE + 1, 64).unwrap().as_ptr() as usize;
        assert_eq!(b % 256, 0);
        assert_eq!(c % 64, 0);
        assert!(a + 24 <= b || b + 256 <= a);
        // SAFETY: c points to REGION_SIZE + 1 fresh bytes.
        let bytes = unsafe { core::slice::from_raw_parts(c as *const u8, REGION_SIZE + 1) };
        assert!(bytes.iter().all(|&x| x == 0));
        assert!(bytes_mapped() >= 2 * REGION_SIZE);
    }
}
