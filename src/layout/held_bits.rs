//! Held bits: which objects their spans hold free.
//!
//! Owns: one bit per `GRANULE` of a chunk's data region, at `HELD_OFFSET +
//! (addr % DATA_ALIGNMENT) / GRANULE / 8` in the chunk's metadata region
//! (1/128 of the data), set at the start of each object that a thread
//! cache gave back to its span and that no thread has taken since; the
//! setting of them for a batch of objects, the taking of the lowest ones of
//! a span, and the counting of a span's.
//!
//! A span starts on a `SPAN_ALIGNMENT` boundary and is a multiple of it
//! long, so its bits are whole 64-bit words of their own.
//!
//! Invariants: a bit is set only at the start of a free object (its state
//! says free) by the one thread giving it back, and cleared only by one
//! atomic `fetch_and` that returns it to exactly one taker, so an object
//! is taken at most once per return however many threads take from the
//! span at once; a span's bits are all clear when its memory is fresh
//! (never used, or purged).

use core::sync::atomic::{AtomicU64, Ordering};

use static_assertions::const_assert;

use crate::layout::constants::{DATA_ALIGNMENT, GRANULE, HELD_OFFSET, SPAN_ALIGNMENT};

/// Granules covered by one word of bits.
const WORD_GRANULES: usize = 64;

// A span's bits are whole words.
const_assert!(SPAN_ALIGNMENT.is_multiple_of(WORD_GRANULES * GRANULE));

/// The granule number of `addr` inside its chunk's data.
fn granule_in_chunk(addr: usize) -> usize {
    (addr & (DATA_ALIGNMENT - 1)) / GRANULE
}

/// The word holding the bit of `addr`, in `metadata`, the region the chunk
/// registry gives for `addr`.
fn word_for(metadata: usize, addr: usize) -> &'static AtomicU64 {
    let word = metadata + HELD_OFFSET + granule_in_chunk(addr) / WORD_GRANULES * 8;
    // SAFETY: the metadata region is mapped and immortal, and its last
    // HELD_SIZE bytes from HELD_OFFSET (8-byte aligned) hold one bit per
    // granule of the chunk's data: the index stays inside.
    unsafe { &*(word as *const AtomicU64) }
}

/// The address range of the bits of the span `[begin, begin + size)` in
/// `metadata` (for purging them with the span).
pub fn range_of(metadata: usize, begin: usize, size: usize) -> (usize, usize) {
    let start = word_for(metadata, begin) as *const AtomicU64 as usize;
    (start, size / GRANULE / 8)
}

/// Sets the bits of `objects` (addresses of free objects of spans in the
/// chunk of `metadata`, each given back by the caller): one atomic `or`
/// per word of bits they touch, for objects given in address order.
pub fn set(metadata: usize, objects: impl Iterator<Item = usize>) {
    let mut pending: Option<(&'static AtomicU64, u64)> = None;
    for addr in objects {
        let word = word_for(metadata, addr);
        let bit = 1u64 << (granule_in_chunk(addr) % WORD_GRANULES);
        match &mut pending {
            Some((current, bits)) if core::ptr::eq(*current, word) => *bits |= bit,
            _ => {
                if let Some((current, bits)) = pending {
                    current.fetch_or(bits, Ordering::Release);
                }
                pending = Some((word, bit));
            }
        }
    }
    if let Some((current, bits)) = pending {
        current.fetch_or(bits, Ordering::Release);
    }
}

/// The lowest `count` bits set in `bits` (all of them if it has fewer), in
/// at most `count` or (popcount - `count`) steps, whichever is fewer.
fn lowest_bits(bits: u64, count: u32) -> u64 {
    let set = bits.count_ones();
    if set <= count {
        return bits;
    }
    if count <= set - count {
        let (mut rest, mut mask) = (bits, 0);
        for _ in 0..count {
            mask |= rest & rest.wrapping_neg();
            rest &= rest - 1;
        }
        mask
    } else {
        let mut mask = bits;
        for _ in count..set {
            mask &= !(1u64 << (63 - mask.leading_zeros()));
        }
        mask
    }
}

/// Takes up to `wanted` held objects of the span `[begin, begin + size)`,
/// lowest first, starting at word `*cursor` of its bits and going round
/// once; calls `take` on each object's address and returns how many it
/// took. `*cursor` is left at the word where the next search should start.
pub fn take(
    metadata: usize,
    begin: usize,
    size: usize,
    cursor: &mut usize,
    wanted: usize,
    mut take: impl FnMut(usize),
) -> usize {
    let first = word_for(metadata, begin) as *const AtomicU64;
    let words = size / GRANULE / WORD_GRANULES;
    let mut taken = 0;
    // Going round from the cursor, without a division per word.
    let mut index = (*cursor).min(words - 1);
    for _ in 0..words {
        let current = index;
        index = if index + 1 == words { 0 } else { index + 1 };
        let index = current;
        // SAFETY: the span's bits are `words` consecutive words from
        // `first` (see `word_for`).
        let word = unsafe { &*first.add(index) };
        let bits = word.load(Ordering::Relaxed);
        if bits == 0 {
            continue;
        }
        let room = (wanted - taken) as u32;
        let mask = lowest_bits(bits, room);
        let mut got = word.fetch_and(!mask, Ordering::Acquire) & mask;
        while got != 0 {
            let bit = got.trailing_zeros() as usize;
            got &= got - 1;
            take(begin + (index * WORD_GRANULES + bit) * GRANULE);
            taken += 1;
        }
        if taken == wanted {
            *cursor = index;
            return taken;
        }
    }
    *cursor = 0;
    taken
}

/// Takes up to `wanted` held objects of the span `[begin, begin + size)`,
/// one per word of bits, going round once from word `word`: in each word
/// with bits set, the one `pick(set)` bits above its lowest (`set`: how
/// many bits it has). Calls `take` on each object's address and returns
/// how many it took. With a random `word` and `pick`, objects come out in
/// no predictable order and no two from the same word (the hardened
/// malloc classes), for at most one pass over the span's bits.
pub fn take_scattered(
    metadata: usize,
    begin: usize,
    size: usize,
    word: usize,
    wanted: usize,
    mut pick: impl FnMut(u32) -> u32,
    mut take: impl FnMut(usize),
) -> usize {
    let first = word_for(metadata, begin) as *const AtomicU64;
    let words = size / GRANULE / WORD_GRANULES;
    let mut taken = 0;
    let mut index = word % words;
    for _ in 0..words {
        if taken == wanted {
            break;
        }
        let current = index;
        index = if index + 1 == words { 0 } else { index + 1 };
        // SAFETY: as in `take`.
        let bits_word = unsafe { &*first.add(current) };
        let bits = bits_word.load(Ordering::Relaxed);
        if bits == 0 {
            continue;
        }
        let mut rest = bits;
        for _ in 0..pick(bits.count_ones()) % bits.count_ones() {
            rest &= rest - 1;
        }
        let bit = 1u64 << rest.trailing_zeros();
        // Another taker may have cleared it meanwhile: then none from here.
        if bits_word.fetch_and(!bit, Ordering::Acquire) & bit != 0 {
            take(begin + (current * WORD_GRANULES + rest.trailing_zeros() as usize) * GRANULE);
            taken += 1;
        }
    }
    taken
}

/// The number of bits set for the span `[begin, begin + size)`.
pub fn count(metadata: usize, begin: usize, size: usize) -> usize {
    let first = word_for(metadata, begin) as *const AtomicU64;
    (0..size / GRANULE / WORD_GRANULES)
        .map(|index| {
            // SAFETY: as in `take`.
            let word = unsafe { &*first.add(index) };
            word.load(Ordering::Acquire).count_ones() as usize
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::constants::METADATA_SIZE;

    /// A stand-in metadata region, and a chunk-aligned span address.
    fn region() -> (Vec<u64>, usize, usize) {
        let words = vec![0u64; METADATA_SIZE / 8];
        let metadata = words.as_ptr() as usize;
        let begin = 5 * DATA_ALIGNMENT + 3 * SPAN_ALIGNMENT;
        (words, metadata, begin)
    }

    #[test]
    fn objects_set_are_taken_lowest_first_once() {
        let (_words, metadata, begin) = region();
        let size = 4 * SPAN_ALIGNMENT;
        let objects: Vec<usize> = (0..200).map(|i| begin + i * 48).collect();
        set(metadata, objects.iter().copied());
        assert_eq!(count(metadata, begin, size), 200);
        let mut cursor = 0;
        let mut seen = Vec::new();
        assert_eq!(
            take(metadata, begin, size, &mut cursor, 31, |a| seen.push(a)),
            31
        );
        assert_eq!(seen, objects[..31]);
        let mut rest = Vec::new();
        while take(metadata, begin, size, &mut cursor, 31, |a| rest.push(a)) > 0 {}
        assert_eq!(rest, objects[31..]);
        assert_eq!(count(metadata, begin, size), 0);
        // Bits of the next span are not this span's.
        set(metadata, [begin + size].into_iter());
        assert_eq!(count(metadata, begin, size), 0);
        assert_eq!(take(metadata, begin, size, &mut cursor, 31, |_| ()), 0);
    }

    #[test]
    fn the_lowest_bits_are_chosen_either_way() {
        let bits = 0b1011_0110_1101u64 | 1 << 63;
        assert_eq!(lowest_bits(bits, 0), 0);
        assert_eq!(lowest_bits(bits, 2), 0b101);
        assert_eq!(lowest_bits(bits, 6), 0b1_0110_1101);
        assert_eq!(lowest_bits(bits, 8), 0b1011_0110_1101);
        assert_eq!(lowest_bits(bits, 9), bits);
        assert_eq!(lowest_bits(bits, 40), bits);
        assert_eq!(lowest_bits(u64::MAX, 63), u64::MAX >> 1);
    }

    #[test]
    fn scattered_takes_are_one_per_word_where_asked() {
        let (_words, metadata, begin) = region();
        let size = SPAN_ALIGNMENT;
        let objects: Vec<usize> = (0..100).map(|i| begin + i * 32).collect();
        set(metadata, objects.iter().copied());
        // Words 0 and 1 hold objects 0-31 and 32-63, word 3 holds 96-99:
        // from word 1, the third of each word, round to word 0.
        let mut seen = Vec::new();
        let taken = take_scattered(metadata, begin, size, 1, 10, |_| 2, |a| seen.push(a));
        assert_eq!(taken, 4);
        assert_eq!(seen, [objects[34], objects[66], objects[98], objects[2]]);
        let mut rest = 0;
        while take_scattered(metadata, begin, size, 5, 31, |set| set + 1, |_| rest += 1) > 0 {}
        assert_eq!(rest, 96);
    }

    #[test]
    fn racing_takers_get_each_object_once() {
        let (_words, metadata, begin) = region();
        let size = 8 * SPAN_ALIGNMENT;
        let total = size / 16;
        set(metadata, (0..total).map(|i| begin + i * 16));
        let taken: Vec<Vec<usize>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    scope.spawn(move || {
                        let (mut mine, mut cursor) = (Vec::new(), 0);
                        while take(metadata, begin, size, &mut cursor, 7, |a| mine.push(a)) > 0 {}
                        mine
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut all: Vec<usize> = taken.concat();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), total);
        assert_eq!(taken.iter().map(Vec::len).sum::<usize>(), total);
    }
}
