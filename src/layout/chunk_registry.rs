//! The chunk registry: where the metadata of any address lives.
//!
//! Owns: one word per possible `DATA_ALIGNMENT`-aligned block of the 47-bit
//! user address space, giving the metadata region of the chunk whose data
//! occupies that block, and a zero-filled stand-in metadata region for every
//! other block. Every address therefore finds a readable span record,
//! tag table and object state without any memory access that could fault:
//! a foreign, stack or garbage pointer finds an all-zero record (class id
//! 0), state and tag table (which names no class), which no check accepts.
//! The stand-in is as large as a metadata region (about 140 MiB), all of it
//! untouched zero-filled memory (.bss): address space, not memory.
//!
//! The word holds the chunk's metadata address *minus* the stand-in's
//! address, so the zero-initialised table means "no chunk" everywhere.
//! Addresses at or above 2^47 (beyond the user address space) find the
//! stand-in too, so the metadata of a real chunk is only ever found from an
//! address inside that chunk's data (which `layout/object_states.rs`, masking an
//! address to its offset in the chunk, and `cache/checks.rs` rely on).
//!
//! Invariants: a block's word is set once, after the chunk's metadata is
//! mapped, and never cleared (chunks are immortal).

use core::arch::asm;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::layout::constants::{ADDRESS_SPACE_LIMIT, DATA_ALIGNMENT, GRANULE, METADATA_SIZE};

const BLOCKS: usize = ADDRESS_SPACE_LIMIT / DATA_ALIGNMENT;

static METADATA_OFFSETS: [AtomicUsize; BLOCKS] = [const { AtomicUsize::new(0) }; BLOCKS];

/// The metadata of every block that holds no chunk: all records unused.
/// Atomic words keep it in writable, zero-filled memory (.bss), never
/// written.
static UNUSED_METADATA: [AtomicU64; METADATA_SIZE / 8] =
    [const { AtomicU64::new(0) }; METADATA_SIZE / 8];

#[inline(always)]
fn block(addr: usize) -> usize {
    addr / DATA_ALIGNMENT
}

/// Records that the chunk whose data starts at `data_start` keeps its span
/// records at `metadata` (mapped and zero-filled).
#[contracts::debug_requires(data_start.is_multiple_of(DATA_ALIGNMENT) && data_start < ADDRESS_SPACE_LIMIT)]
pub fn register(data_start: usize, metadata: usize) {
    let offset = metadata.wrapping_sub(UNUSED_METADATA.as_ptr() as usize);
    METADATA_OFFSETS[block(data_start)].store(offset, Ordering::Release);
}

/// The start of a `METADATA_SIZE` readable region holding the metadata
/// (span records, tag table, object states) for `addr`'s block: its
/// chunk's, or all-zero ones.
#[inline(always)]
pub fn metadata_for(addr: usize) -> usize {
    user_metadata_for(addr).unwrap_or(UNUSED_METADATA.as_ptr() as usize)
}

/// [`metadata_for`], but `None` for an address beyond the user address
/// space (which no chunk holds).
#[inline(always)]
pub fn user_metadata_for(addr: usize) -> Option<usize> {
    metadata_of_block(block(addr))
}

/// The metadata region for the blocks below `BLOCKS`, `None` for others.
#[inline(always)]
fn metadata_of_block(block: usize) -> Option<usize> {
    let word = METADATA_OFFSETS.get(block)?;
    Some((UNUSED_METADATA.as_ptr() as usize).wrapping_add(word.load(Ordering::Acquire)))
}

/// The metadata region for `addr`, and `addr / GRANULE`, if `addr` is a
/// multiple of `GRANULE` in the user address space: the start of every
/// check of an address handed back. One rotation puts the bits that must
/// be zero for the alignment above the block number, so that a single
/// bound check on the block tests both, and leaves the granule number.
#[inline(always)]
pub fn granule_metadata_for(addr: usize) -> Option<(usize, usize)> {
    let (rotated, block): (usize, usize);
    // SAFETY: register arithmetic, nothing else.
    unsafe {
        asm!(
            "ror {rotated}, {granule_shift}",
            "mov {block}, {rotated}",
            "shr {block}, {block_shift}",
            rotated = inout(reg) addr => rotated,
            block = out(reg) block,
            granule_shift = const GRANULE.trailing_zeros(),
            block_shift = const DATA_ALIGNMENT.trailing_zeros() - GRANULE.trailing_zeros(),
            options(pure, nomem, nostack)
        );
    }
    // A misaligned address has its low bits rotated to the top, so its
    // block is far beyond BLOCKS; an aligned one rotates to addr / GRANULE.
    Some((metadata_of_block(block)?, rotated))
}

/// Whether `addr` lies in the data region of a registered chunk.
#[cfg(test)]
pub fn contains(addr: usize) -> bool {
    addr < ADDRESS_SPACE_LIMIT && metadata_for(addr) != UNUSED_METADATA.as_ptr() as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unregistered_blocks_read_the_zero_metadata() {
        let base = 12345 % BLOCKS * DATA_ALIGNMENT;
        assert!(!contains(base));
        assert_eq!(metadata_for(base), UNUSED_METADATA.as_ptr() as usize);
        let fake_metadata = 0x1234_5000;
        register(base, fake_metadata);
        assert!(contains(base));
        assert!(contains(base + DATA_ALIGNMENT - 1));
        assert_eq!(metadata_for(base + 77), fake_metadata);
        assert!(!contains(base + DATA_ALIGNMENT));
        // Addresses above the user address space find the stand-in.
        assert_eq!(
            metadata_for(base + ADDRESS_SPACE_LIMIT),
            UNUSED_METADATA.as_ptr() as usize
        );
        assert!(!contains(base + ADDRESS_SPACE_LIMIT));
        assert!(!contains(usize::MAX));
    }
}
