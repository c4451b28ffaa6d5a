//! The Rust global allocator: [`Slitter`], slitter's malloc personality
//! behind `core::alloc::GlobalAlloc`.
//!
//! Owns: the mapping from a `Layout` to the malloc personality's requests
//! (`malloc/allocation.rs` and `malloc/realloc.rs`, the paths under the
//! exported C functions, so that it works without the `malloc` feature): a
//! request of size `n` aligned to `a` is served by the smallest size class whose objects hold `n` bytes at alignment `a`, else
//! by the large path (`heap/large/blocks.rs`), which maps memory at any alignment the
//! address space allows.
//!
//! Invariants: every pointer handed out is aligned as its layout asks, or
//! null when the request cannot be met (out of memory, or an alignment too
//! large for the address space); `realloc` keeps the layout's alignment;
//! `dealloc` goes through the same out-of-band checks as `free`, so
//! releasing a pointer slitter did not hand out, or one already released,
//! aborts with a `slitter:` line. Nothing here allocates.

use core::alloc::{GlobalAlloc, Layout};

use crate::malloc::{allocation, realloc};

/// slitter as Rust's global allocator.
///
/// Install it in a program that depends on slitter with
///
/// ```
/// #[global_allocator]
/// static GLOBAL: slitter::Slitter = slitter::Slitter;
///
/// fn main() {
///     let squares: Vec<u64> = (0..1000).map(|i| i * i).collect();
///     assert_eq!(squares[999], 998_001);
/// }
/// ```
///
/// Requests are served by slitter's malloc size classes (up to 32 KiB,
/// through the per-thread caches) or by its large path, at any alignment a
/// [`Layout`] can ask for: small requests aligned beyond 16 bytes go to a
/// size class whose object size is a multiple of the alignment (up to
/// 16 KiB), larger alignments to the large path. A request that cannot be
/// met returns null (and sets `errno` to `ENOMEM`, as `malloc` does), so
/// Rust's `handle_alloc_error` reports it.
///
/// With the default feature `malloc`, linking slitter already replaces the
/// C `malloc` and `free` of a Rust program (the crate exports them), so
/// Rust's default `System` allocator reaches slitter too; `Slitter` skips
/// that detour and serves over-aligned layouts directly. Without the
/// feature (`default-features = false`) the process keeps its C allocator
/// and `Slitter` serves only Rust's allocations.
///
/// `Slitter` can also be called directly, like any `GlobalAlloc`:
///
/// ```
/// use std::alloc::{GlobalAlloc, Layout};
///
/// let layout = Layout::from_size_align(100, 4096).unwrap();
/// // SAFETY: the layout has a non-zero size; the pointer is checked for
/// // null, used within its 100 bytes and released with its layout.
/// unsafe {
///     let p = slitter::Slitter.alloc_zeroed(layout);
///     assert!(!p.is_null());
///     assert_eq!(p as usize % 4096, 0);
///     assert_eq!(*p.add(99), 0);
///     slitter::Slitter.dealloc(p, layout);
/// }
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Slitter;

// SAFETY: every method meets the GlobalAlloc contract by construction of the
// malloc personality: allocations are fresh, disjoint, at least `size`
// bytes and aligned to `align` (the size class or large mapping is chosen
// for the alignment), or null; `realloc` keeps the first `min(old, new)`
// bytes and the alignment; nothing unwinds.
unsafe impl GlobalAlloc for Slitter {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        allocation::allocate_aligned(layout.size(), layout.align()).cast()
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        allocation::allocate_zeroed(layout.size(), layout.align()).cast()
    }

    // Not `#[inline]`: `release` is `free`'s fast path, inlined here, and an
    // inlinable body would let other crates reach `FAST_FREE_LIMIT`, which
    // then could not stay internal to the library: `free` would load its
    // address from the GOT, one instruction more on every call.
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        allocation::release(ptr.cast())
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        realloc::reallocate(ptr.cast(), new_size, layout.align()).cast()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sizes on both sides of size-class and large-path boundaries.
    const SIZES: &[usize] = &[
        1,
        15,
        16,
        17,
        100,
        128,
        129,
        1000,
        4096,
        5000,
        16 << 10,
        32 << 10,
        40 << 10,
        200 << 10,
    ];

    /// Alignments from 1 byte to beyond the size classes' and the pages'.
    const ALIGNS: &[usize] = &[1, 8, 16, 32, 64, 256, 4096, 16 << 10, 64 << 10, 1 << 20];

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).expect("a valid layout")
    }

    /// The byte at offset `i` of an allocation tagged `tag`: a hash, so
    /// that memory left by another tag does not pass for this one.
    fn pattern(tag: usize, i: usize) -> u8 {
        let x = (tag as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ i as u64;
        (x.wrapping_mul(0xD6E8_FEB8_6659_FD93) >> 56) as u8
    }

    fn fill(p: *mut u8, len: usize, tag: usize) {
        // SAFETY: callers pass a live allocation of at least `len` bytes.
        let bytes = unsafe { core::slice::from_raw_parts_mut(p, len) };
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = pattern(tag, i);
        }
    }

    fn assert_filled(p: *const u8, len: usize, tag: usize, what: &str) {
        // SAFETY: callers pass a live allocation of at least `len` bytes.
        let bytes = unsafe { core::slice::from_raw_parts(p, len) };
        if let Some(i) = (0..len).find(|&i| bytes[i] != pattern(tag, i)) {
            panic!("{what}: byte {i} of {len} changed");
        }
    }

    /// `p`, after checking that it is a successful allocation of `layout`.
    fn checked(p: *mut u8, layout: Layout) -> *mut u8 {
        assert!(!p.is_null(), "{layout:?} failed");
        assert!(
            (p as usize).is_multiple_of(layout.align()),
            "{layout:?} misaligned"
        );
        p
    }

    fn allocate(layout: Layout) -> *mut u8 {
        // SAFETY: every layout used here has a non-zero size.
        checked(unsafe { Slitter.alloc(layout) }, layout)
    }

    /// Reallocates `p`, live with layout `(from, align)` and filled with
    /// `tag`'s pattern, to `to` bytes; checks the alignment and the bytes
    /// kept, and fills the new allocation with `tag + 1`'s pattern.
    fn resize(p: *mut u8, from: usize, to: usize, align: usize, tag: usize) -> *mut u8 {
        // SAFETY: guaranteed by the caller; every size used here is
        // non-zero.
        let q = unsafe { Slitter.realloc(p, layout(from, align), to) };
        let q = checked(q, layout(to, align));
        let what = format!("align {align}: {from} -> {to}");
        assert_filled(q, from.min(to), tag, &what);
        fill(q, to, tag + 1);
        q
    }

    #[test]
    fn realloc_across_sizes_and_alignments_keeps_contents_and_alignment() {
        let mut tag = 0;
        for &align in ALIGNS {
            for &from in SIZES {
                for &to in SIZES {
                    tag += 2;
                    let p = allocate(layout(from, align));
                    fill(p, from, tag);
                    let q = resize(p, from, to, align, tag);
                    // SAFETY: `q` is live with the new layout.
                    unsafe { Slitter.dealloc(q, layout(to, align)) };
                }
            }
        }
    }

    #[test]
    fn realloc_chains_through_every_size_class_and_back() {
        // Grow by a third from 1 byte to 256 KiB, then halve back to 1.
        let mut sizes = vec![1];
        while let Some(&size) = sizes.last().filter(|&&size| size < 256 << 10) {
            sizes.push(size + size / 3 + 1);
        }
        while let Some(&size) = sizes.last().filter(|&&size| size > 1) {
            sizes.push(size / 2);
        }
        for align in [16, 64, 4096] {
            // Tags unique across the chains of all alignments.
            let first_tag = align * sizes.len();
            let mut p = allocate(layout(1, align));
            fill(p, 1, first_tag);
            for (step, pair) in sizes.windows(2).enumerate() {
                p = resize(p, pair[0], pair[1], align, first_tag + step);
            }
            // SAFETY: `p` is live with layout (1, align).
            unsafe { Slitter.dealloc(p, layout(1, align)) };
        }
    }

    #[test]
    fn alloc_zeroed_reads_zero_even_where_memory_was_used() {
        for &align in ALIGNS {
            for &size in SIZES {
                let layout = layout(size, align);
                // Dirty memory the zeroed allocation may reuse.
                let dirty = allocate(layout);
                fill(dirty, size, 1);
                // SAFETY: `dirty` is live with `layout`.
                unsafe { Slitter.dealloc(dirty, layout) };
                // SAFETY: a non-zero size.
                let p = checked(unsafe { Slitter.alloc_zeroed(layout) }, layout);
                // SAFETY: `p` holds `size` bytes.
                let bytes = unsafe { core::slice::from_raw_parts(p, size) };
                assert!(bytes.iter().all(|&b| b == 0), "{layout:?} not zeroed");
                // SAFETY: `p` is live with `layout`.
                unsafe { Slitter.dealloc(p, layout) };
            }
        }
    }

    #[test]
    fn alloc_zeroed_leaves_fresh_large_mappings_untouched() {
        // Larger than the large arena's extents: always a fresh mapping of
        // its own (an arena extent may reuse pages freed by other tests,
        // which must then be cleared).
        let layout = layout(
            crate::heap::large::arena::MAX_EXTENT + crate::heap::large::blocks::PAGE_SIZE,
            4096,
        );
        // SAFETY: a non-zero size.
        let p = checked(unsafe { Slitter.alloc_zeroed(layout) }, layout);
        let pages = layout.size() / 4096;
        let mut resident = vec![0u8; pages];
        // SAFETY: `p` is page-aligned and maps `layout.size()` bytes;
        // `resident` has one byte per page.
        let ret = unsafe { libc::mincore(p.cast(), layout.size(), resident.as_mut_ptr()) };
        assert_eq!(ret, 0, "mincore failed");
        let touched = resident.iter().filter(|&&r| r & 1 != 0).count();
        assert_eq!(
            touched, 0,
            "alloc_zeroed touched {touched} of {pages} fresh pages"
        );
        // SAFETY: `p` holds `layout.size()` bytes.
        assert_eq!(unsafe { *p.add(layout.size() - 1) }, 0);
        // SAFETY: `p` is live with `layout`.
        unsafe { Slitter.dealloc(p, layout) };
    }

    #[test]
    fn alignments_beyond_a_mebibyte_work_or_fail_cleanly() {
        let p = allocate(layout(10, 1 << 26));
        fill(p, 10, 3);
        // SAFETY: `p` is live with this layout.
        unsafe { Slitter.dealloc(p, layout(10, 1 << 26)) };
        // More than the whole 47-bit address space: cannot be met.
        // SAFETY: a non-zero size.
        let p = unsafe { Slitter.alloc(layout(1, 1 << 50)) };
        assert!(p.is_null());
    }
}
