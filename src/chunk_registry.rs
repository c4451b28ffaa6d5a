//! The chunk registry: which aligned data blocks of the address space are
//! slitter chunks.
//!
//! Owns: one bit per possible `DATA_ALIGNMENT`-aligned block of the 47-bit
//! user address space. Every address is tested here before any span record
//! is read, so a foreign, stack or garbage pointer is recognised without
//! touching memory that might not be mapped.
//!
//! Invariants: a bit is set only after its chunk's metadata region is
//! readable, and bits are never cleared (chunks are immortal).

use core::sync::atomic::{AtomicU64, Ordering};

use crate::constants::{ADDRESS_SPACE_LIMIT, DATA_ALIGNMENT};

const BLOCKS: usize = ADDRESS_SPACE_LIMIT / DATA_ALIGNMENT;
const WORDS: usize = BLOCKS.div_ceil(64);

static CHUNK_BITS: [AtomicU64; WORDS] = [const { AtomicU64::new(0) }; WORDS];

/// Records that the data block containing `data_start` is a chunk.
pub fn register(data_start: usize) {
    debug_assert_eq!(data_start % DATA_ALIGNMENT, 0);
    let block = data_start / DATA_ALIGNMENT;
    CHUNK_BITS[block / 64].fetch_or(1 << (block % 64), Ordering::Release);
}

/// Whether `addr` lies in the data region of a registered chunk.
#[inline(always)]
pub fn contains(addr: usize) -> bool {
    if addr >= ADDRESS_SPACE_LIMIT {
        return false;
    }
    let block = addr / DATA_ALIGNMENT;
    // SAFETY: addr < ADDRESS_SPACE_LIMIT, so block / 64 < WORDS.
    let word = unsafe { CHUNK_BITS.get_unchecked(block / 64) };
    word.load(Ordering::Acquire) & (1 << (block % 64)) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_registered_blocks_are_contained() {
        let block = 12345 % BLOCKS;
        let base = block * DATA_ALIGNMENT;
        assert!(!contains(base));
        register(base);
        assert!(contains(base));
        assert!(contains(base + DATA_ALIGNMENT - 1));
        assert!(!contains(base + DATA_ALIGNMENT) || (block + 1).is_multiple_of(BLOCKS));
        assert!(!contains(usize::MAX));
        assert!(!contains(ADDRESS_SPACE_LIMIT));
    }
}
