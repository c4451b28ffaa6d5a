//! The memory of one large allocation, and its checked slack.
//!
//! Owns: [`Mapping`], what holds an allocation (a mapping of its own, an
//! extent of the arena or a slot of a group) and where in it the
//! allocation lies; the placement of a new allocation at the *end* of its
//! data (at the highest address aligned as asked, 16 bytes by default), so
//! that a write just past it faults on the guard page where there is one;
//! the slack checks; and mappings of their own, laid out
//! `| guard page | data (whole pages) | guard page |`.
//!
//! Invariants: `data <= user` and `user + size <= data + length`; the
//! `SLACK_CHECKED` bytes of slack on each side of a live allocation (before
//! it in its data, and after its size) are zero unless the program wrote
//! outside it, so a write just before it, or past its size where no guard
//! page is there, is caught when it is freed or resized; a mapping of its
//! own has an inaccessible page on each side of its data.

use core::ffi::c_void;

pub use crate::heap::large::arena::PAGE_SIZE;
use crate::heap::large::reuse::Block;
use crate::sys::os_memory::os_reserve;

const GUARD_SIZE: usize = PAGE_SIZE;
/// The alignment of every allocation.
const MIN_ALIGN: usize = 16;
/// Bytes of slack checked on each side of an allocation: a stray write
/// just before or after it lands there.
const SLACK_CHECKED: usize = 256;

/// What holds an allocation's memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Kind {
    /// A mapping of its own.
    #[default]
    Own,
    /// An extent of the arena.
    Extent,
    /// A slot of a group.
    Slot,
}

/// One allocation's memory: `base` and `total` cover its guards (for an
/// arena extent, only the guard above: the one below belongs to what lies
/// below; a slot has none of its own), `data` and `length` the accessible
/// part; `user` is the address handed out and `size` the bytes asked for,
/// `data <= user` and `user + size <= data + length`.
#[derive(Clone, Copy, Default)]
pub struct Mapping {
    pub base: usize,
    pub total: usize,
    pub data: usize,
    pub length: usize,
    pub kind: Kind,
    pub user: usize,
    pub size: usize,
}

impl Mapping {
    /// The memory of a block of a size class, not yet placed.
    pub fn block(block: Block) -> Mapping {
        let (kind, guard) = if block.slot {
            (Kind::Slot, 0)
        } else {
            (Kind::Extent, GUARD_SIZE)
        };
        Mapping {
            base: block.data,
            total: block.length + guard,
            data: block.data,
            length: block.length,
            kind,
            user: 0,
            size: 0,
        }
    }

    /// The block of an extent or slot.
    pub fn as_block(&self) -> Block {
        Block {
            data: self.data,
            length: self.length,
            slot: self.kind == Kind::Slot,
        }
    }

    /// The end of the data.
    pub fn end(&self) -> usize {
        self.data + self.length
    }

    /// This memory holding `size` bytes at its highest address aligned to
    /// `align` (at least `MIN_ALIGN`).
    pub fn placed_at_end(self, size: usize, align: usize) -> Mapping {
        let rounded = size.max(1).next_multiple_of(MIN_ALIGN);
        let user = (self.end() - rounded) & !(align.max(MIN_ALIGN) - 1);
        Mapping { user, size, ..self }
    }

    /// The checked slack: up to `SLACK_CHECKED` bytes just before the
    /// allocation, and just after its size.
    fn slack_windows(&self) -> [(usize, usize); 2] {
        let before = (self.user - self.data).min(SLACK_CHECKED);
        let after = self.user + self.size;
        [
            (self.user - before, before),
            (after, (self.end() - after).min(SLACK_CHECKED)),
        ]
    }

    /// Zeroes the checked slack.
    pub fn clear_slack(&self) {
        for (start, len) in self.slack_windows() {
            // SAFETY: the windows lie in this memory's accessible data,
            // outside the allocation.
            unsafe { (start as *mut u8).write_bytes(0, len) };
        }
    }

    /// Aborts if the checked slack was written to: the program wrote
    /// outside its allocation.
    pub fn check_slack(&self) {
        let [before, after] = self.slack_windows().map(|(start, len)| {
            // SAFETY: as in `clear_slack`; reads only.
            let bytes = unsafe { core::slice::from_raw_parts(start as *const u8, len) };
            // No early exit: the loop is vectorised.
            bytes.iter().fold(0, |any, &b| any | b) == 0
        });
        let (user, size) = (self.user, self.size);
        if !before {
            crate::sys::fatal::die(format_args!(
                "heap underflow: the bytes just before the large allocation at {user:#x} \
                 (size {size}) were overwritten"
            ))
        }
        if !after {
            crate::sys::fatal::die(format_args!(
                "heap overflow: the bytes just after the large allocation at {user:#x} \
                 (size {size}) were overwritten"
            ))
        }
    }
}

/// Rounds `size` up to whole pages; `None` on overflow.
pub fn page_round(size: usize) -> Option<usize> {
    size.checked_add(PAGE_SIZE - 1)
        .map(|s| s & !(PAGE_SIZE - 1))
}

/// Maps a guarded region whose data holds `length` bytes at an address
/// aligned to `align` (a power of two).
pub fn map(length: usize, align: usize) -> Option<Mapping> {
    let align = align.max(PAGE_SIZE);
    let total = length
        .checked_add(2 * GUARD_SIZE)?
        .checked_add(align - PAGE_SIZE)?;
    let base = os_reserve(total).ok()?.as_ptr() as usize;
    let data = (base + GUARD_SIZE).next_multiple_of(align);
    // Give back the alignment slop on both sides, keeping one guard each.
    let start = data - GUARD_SIZE;
    let end = data + length + GUARD_SIZE;
    // SAFETY: both ranges lie in the reservation just made, outside the
    // part kept.
    unsafe {
        if start > base {
            libc::munmap(base as *mut c_void, start - base);
        }
        if base + total > end {
            libc::munmap(end as *mut c_void, base + total - end);
        }
    }
    let mapping = Mapping {
        base: start,
        total: end - start,
        data,
        length,
        kind: Kind::Own,
        user: 0,
        size: 0,
    };
    // SAFETY: the data range lies inside the kept reservation.
    let ret = unsafe {
        libc::mprotect(
            data as *mut c_void,
            length,
            libc::PROT_READ | libc::PROT_WRITE,
        )
    };
    if ret != 0 {
        unmap(mapping);
        return None;
    }
    Some(mapping)
}

pub fn unmap(mapping: Mapping) {
    // SAFETY: the whole mapping is owned by the caller and no longer used.
    unsafe { libc::munmap(mapping.base as *mut c_void, mapping.total) };
}
