//! The quarantine of freed large blocks, when hardened (`SLITTER_HARDEN`).
//!
//! Owns: [`SHELVES`] rings (one per thread slot, [`reuse::thread_slot`],
//! each under a lock of its own, so that no process-wide lock is taken on
//! free), each holding up to [`QUARANTINE`] freed blocks and
//! [`QUARANTINE_BYTES`] of them, oldest first.
//!
//! A freed block is sealed at once (made inaccessible: from 1 MiB fresh
//! inaccessible memory mapped over it, else guard markers, which also free
//! its pages, or `mprotect`), so a read or write after
//! free faults, and waits in its ring: its address is not handed out
//! again before half as many later frees of its thread slot pushed it out
//! (at random, so the order of reuse cannot be predicted).
//! Then it goes to its class's cache (`heap/large/reuse.rs`), still
//! sealed, and is unsealed when it is taken again: two changes of
//! protection per block, and no other system call.
//!
//! Invariants: a block in a ring is sealed and not live, and in no cache;
//! a ring's `bytes` is the sum of its blocks' lengths; a ring's lock is
//! never held while another lock is taken.

use crate::heap::large::reuse::{self, Block, SHELVES};
use crate::sys::lock::{Forkable, Lock};
use crate::sys::random::Generator;

/// Blocks a ring holds at most.
pub const QUARANTINE: usize = 64;
/// Bytes of blocks a ring holds at most (when their pages are kept, with
/// `mprotect`).
pub const QUARANTINE_BYTES: usize = 32 << 20;

/// One ring: `len` blocks from `first`, about oldest first.
struct Ring {
    blocks: [Block; QUARANTINE],
    first: usize,
    len: usize,
    bytes: usize,
    /// The generator that picks who leaves.
    random: Generator,
}

impl Ring {
    /// Adds `block`; returns the blocks pushed out: one when the ring is
    /// full, two while its bytes exceed their bound (so that a large block
    /// admitted over it brings them back under), each picked at random
    /// among the older half of the ring, so that a block waits for at
    /// least half a ring of later frees and the order of reuse cannot be
    /// predicted.
    fn admit(&mut self, block: Block) -> [Option<Block>; 2] {
        let mut out = [None, None];
        for evicted in &mut out {
            let full = self.len == QUARANTINE || self.bytes + block.length > QUARANTINE_BYTES;
            if !full || self.len == 0 {
                break;
            }
            let pick = (self.first + self.random.below(self.len.div_ceil(2))) % QUARANTINE;
            self.blocks.swap(self.first, pick);
            let oldest = self.blocks[self.first];
            self.first = (self.first + 1) % QUARANTINE;
            self.len -= 1;
            self.bytes -= oldest.length;
            *evicted = Some(oldest);
        }
        self.blocks[(self.first + self.len) % QUARANTINE] = block;
        self.len += 1;
        self.bytes += block.length;
        out
    }

    /// Whether `addr` lies in one of the ring's blocks.
    fn holds(&self, addr: usize) -> bool {
        (0..self.len).any(|i| {
            let block = self.blocks[(self.first + i) % QUARANTINE];
            addr.wrapping_sub(block.data) < block.length
        })
    }
}

/// A ring on cache lines of its own.
#[repr(align(128))]
struct Padded(Lock<Ring>);

static RINGS: [Padded; SHELVES] = [const {
    Padded(Lock::new(Ring {
        blocks: [Block {
            data: 0,
            length: 0,
            slot: false,
        }; QUARANTINE],
        first: 0,
        len: 0,
        bytes: 0,
        random: Generator::UNSEEDED,
    }))
}; SHELVES];

/// Seals the freed `block` and holds it back from reuse; the blocks it
/// pushes out of the ring go to their class's cache, sealed.
pub fn keep(block: Block) {
    // SAFETY: the block lies in the arena and is no longer live.
    if !unsafe { reuse::set_sealed(block, true) } {
        // Not sealed: no use to the caches, which hold sealed blocks only.
        reuse::forget(block);
        return;
    }
    let out = RINGS[reuse::thread_slot()].0.lock().admit(block);
    for evicted in out.into_iter().flatten() {
        reuse::keep(evicted, reuse::sealing_frees(evicted));
    }
}

/// Whether `addr` lies in a quarantined block (for reports).
pub fn holds(addr: usize) -> bool {
    RINGS.iter().any(|ring| ring.0.lock().holds(addr))
}

/// Calls `f` with the lock of every ring, for the fork handlers.
pub fn each_lock(f: &mut dyn FnMut(&dyn Forkable)) {
    for ring in &RINGS {
        f(&ring.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> Ring {
        Ring {
            blocks: [Block::default(); QUARANTINE],
            first: 0,
            len: 0,
            bytes: 0,
            random: Generator::UNSEEDED,
        }
    }

    fn block(i: usize, length: usize) -> Block {
        Block {
            data: (i + 1) << 30,
            length,
            slot: false,
        }
    }

    #[test]
    fn a_ring_lets_older_blocks_out_at_random_within_its_bounds() {
        let mut ring = ring();
        for i in 0..QUARANTINE {
            assert_eq!(ring.admit(block(i, 4096)), [None, None]);
        }
        assert!(ring.holds(block(0, 4096).data + 100));
        // Each block pushed out is among the older half, and leaves.
        let mut order = Vec::new();
        for i in QUARANTINE..3 * QUARANTINE {
            let [Some(out), None] = ring.admit(block(i, 4096)) else {
                panic!("one block out per block in");
            };
            let age = (out.data >> 30) - 1;
            assert!(i - age >= QUARANTINE / 2, "{age} left at {i}");
            assert!(!ring.holds(out.data));
            order.push(age);
        }
        // Not in the order they came.
        assert!(order.windows(2).filter(|w| w[1] == w[0] + 1).count() < order.len() / 2);
        // A large block pushes out as many as its bytes need, two at a time.
        let big = QUARANTINE_BYTES - 10 * 4096;
        let out = ring.admit(block(1000, big));
        assert!(out.iter().all(Option::is_some));
        assert!(ring.bytes > QUARANTINE_BYTES);
        for i in 0..60 {
            ring.admit(block(2000 + i, 4096));
        }
        assert!(ring.bytes <= QUARANTINE_BYTES && ring.len <= QUARANTINE);
    }
}
