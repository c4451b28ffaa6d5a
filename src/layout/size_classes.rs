//! Size classes of the malloc personality.
//!
//! Owns: the table of internal classes that serve small `malloc` requests
//! and the map from a request (size, alignment) to a class index. Index 0
//! is the zero-size class (objects in inaccessible memory, for
//! `malloc(0)`); indices 1..=8 are 16..=128 bytes in steps of 16; above 128
//! bytes there are 8 classes per doubling up to [`MAX_SMALL_SIZE`].
//!
//! Invariants: every class size is a multiple of 16 (so every object is
//! 16-byte aligned: spans start 16 KiB-aligned), sizes strictly increase
//! with the index, and above 128 bytes a request wastes at most 1/8 of its
//! size (the step between classes is 1/8 of the power of two below them).

/// The largest request served by a size class; larger ones take the large
/// path.
pub const MAX_SMALL_SIZE: usize = 32 << 10;

/// Classes per doubling above 128 bytes.
const PER_DOUBLING: usize = 8;

/// Number of size classes, the zero-size class included.
pub const COUNT: usize = 9 + PER_DOUBLING * (MAX_SMALL_SIZE.trailing_zeros() as usize - 7);

/// The object size of class `index` (0 for the zero-size class, whose
/// objects nevertheless occupy 16 bytes of inaccessible address space).
pub const fn size_of_class(index: usize) -> usize {
    if index <= 8 {
        return index * 16;
    }
    let j = index - 9;
    let power = 7 + j / PER_DOUBLING;
    (1 << power) + ((j % PER_DOUBLING) + 1) * (1 << (power - 3))
}

/// The index of the smallest class whose objects hold `size` bytes, for
/// `size <= MAX_SMALL_SIZE`.
#[contracts::debug_requires(size <= MAX_SMALL_SIZE)]
#[contracts::debug_ensures(size_of_class(ret) >= size && (ret == 0 || size_of_class(ret - 1) < size))]
#[inline(always)]
pub fn index_for(size: usize) -> usize {
    if size <= 128 {
        return (size + 15) >> 4;
    }
    let last = size - 1;
    let power = (usize::BITS - 1 - last.leading_zeros()) as usize;
    9 + (power - 7) * PER_DOUBLING + ((last - (1 << power)) >> (power - 3))
}

/// The index of the smallest class that holds `size` bytes at an address
/// aligned to `align` (a power of two), if a class can: its size must be a
/// multiple of `align`, and `align` at most the span alignment.
pub fn index_for_aligned(size: usize, align: usize) -> Option<usize> {
    if size > MAX_SMALL_SIZE || align > crate::layout::constants::SPAN_ALIGNMENT {
        return None;
    }
    (index_for(size.max(1))..COUNT).find(|&index| size_of_class(index).is_multiple_of(align))
}

/// The alignment of every object of a size class, and of every `malloc`
/// result.
pub const MALLOC_ALIGNMENT: usize = 16;

/// The class serving a request of `size` bytes aligned to `align` (a power
/// of two): `index_for` up to `MALLOC_ALIGNMENT`, `index_for_aligned`
/// beyond; `None` when no class can (the large path's requests).
pub fn index_for_request(size: usize, align: usize) -> Option<usize> {
    if align <= MALLOC_ALIGNMENT {
        (size <= MAX_SMALL_SIZE).then(|| index_for(size))
    } else {
        index_for_aligned(size, align)
    }
}

/// Writes `malloc-<size>` into `buffer` and returns the name's length.
pub fn name_of_class(index: usize, buffer: &mut [u8; 16]) -> usize {
    let prefix = b"malloc-";
    buffer[..prefix.len()].copy_from_slice(prefix);
    let mut digits = [0u8; 8];
    let mut n = size_of_class(index);
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for (i, digit) in digits[..len].iter().rev().enumerate() {
        buffer[prefix.len() + i] = *digit;
    }
    prefix.len() + len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_increase_and_are_16_byte_multiples() {
        assert_eq!(size_of_class(0), 0);
        assert_eq!(size_of_class(COUNT - 1), MAX_SMALL_SIZE);
        for index in 1..COUNT {
            assert!(size_of_class(index) > size_of_class(index - 1));
            assert_eq!(size_of_class(index) % 16, 0, "class {index}");
        }
    }

    #[test]
    fn every_size_finds_the_smallest_fitting_class_with_bounded_waste() {
        for size in 0..=MAX_SMALL_SIZE {
            let index = index_for(size);
            assert!(index < COUNT, "size {size}");
            let class = size_of_class(index);
            assert!(class >= size, "size {size}");
            assert!(index == 0 || size_of_class(index - 1) < size, "size {size}");
            if size > 128 {
                assert!(
                    (class - size) * 8 <= size,
                    "size {size} wastes too much in {class}"
                );
            }
        }
    }

    #[test]
    fn aligned_requests_find_classes_with_multiple_sizes() {
        assert_eq!(index_for_aligned(1, 16), Some(1));
        let index = index_for_aligned(100, 64).unwrap();
        assert_eq!(size_of_class(index), 128);
        let index = index_for_aligned(5000, 4096).unwrap();
        assert_eq!(size_of_class(index) % 4096, 0);
        assert!(size_of_class(index) >= 5000);
        for align in [32, 64, 4096, 16 << 10] {
            for size in (0..=MAX_SMALL_SIZE).step_by(97) {
                assert!(index_for_aligned(size, align).is_none_or(|i| i < COUNT));
            }
        }
        assert_eq!(index_for_aligned(10, 1 << 20), None);
        assert_eq!(index_for_aligned(MAX_SMALL_SIZE + 1, 16), None);
    }

    #[test]
    fn names_spell_the_size() {
        let mut buffer = [0u8; 16];
        let len = name_of_class(3, &mut buffer);
        assert_eq!(&buffer[..len], b"malloc-48");
        let len = name_of_class(COUNT - 1, &mut buffer);
        assert_eq!(&buffer[..len], b"malloc-32768");
    }
}
