//! Page states of the large arena's reservations.
//!
//! Owns: per arena reservation, three bitmaps with one bit per page:
//! - *accessible*: the page is readable and writable (else inaccessible),
//!   so the arena changes a protection only when it differs;
//! - *freed*: the page was freed and may hold memory, not yet asked of the
//!   kernel;
//! - *resident*: the page was freed and the kernel said (by `mincore`) that
//!   it held memory.
//!
//! Freeing costs no system call: it only sets freed bits. Only when the
//! arena's upper bound of resident free bytes exceeds its budget does it
//! [`PageStates::verify`] its free ranges, asking `mincore` about their
//! freed pages (and only those), so that pages of an extent the program
//! never touched (growth room, an oversized buffer) count for nothing.
//!
//! Inaccessible pages: where the kernel has `MADV_GUARD_INSTALL` (and
//! `SLITTER_MPROTECT_GUARDS` is off; decided at the first reservation), a
//! reservation is read/write memory and an inaccessible page carries a
//! guard marker, so that a reservation stays one mapping whatever its
//! pages become; markers are installed only where a guard is needed (the
//! reservation's ends, and the guard pages the arena asks for), since
//! `fork` copies the page tables that hold them. Else a reservation is
//! `PROT_NONE` and `mprotect` changes protections (each change of
//! protection splits a mapping).
//!
//! Invariants: the accessible bit of a page is set exactly when it is
//! accessible (read/write without a guard marker), or is about to be: the
//! arena changes protections only through [`PageStates::plan`], which sets
//! the bits, and the [`Change`] it returns, applied by the extent's new
//! owner right after with no lock held; once a change failed (it may
//! have changed part of its range), every change is asked of the kernel
//! without looking at the bits; the freed and resident bits are set only for
//! pages of free ranges and never both; a page of a free range that held
//! memory when freed has one of them set (it may have been swapped out
//! since, so the count is an upper bound of the resident memory). The
//! bitmaps come from memory mapped here and live as long as their
//! reservations (forever).

use core::ffi::c_void;

use crate::sys::os_memory::{
    os_map_zeroed, os_mmap, os_reserve, MADV_GUARD_INSTALL, MADV_GUARD_REMOVE,
};

/// The page size (x86-64).
pub const PAGE_SIZE: usize = 4096;

/// The most reservations tracked.
pub const MAX_RESERVATIONS: usize = 64;

const BITS: usize = u64::BITS as usize;

/// One bit per page of a reservation.
#[derive(Clone, Copy)]
struct Bitmap(*mut u64);

impl Bitmap {
    /// Applies `f` to each word of pages `[first, end)` with the mask of
    /// those pages; returns the sum of its results.
    fn for_words(
        self,
        first: usize,
        end: usize,
        mut f: impl FnMut(&mut u64, u64) -> usize,
    ) -> usize {
        let mut sum = 0;
        let mut bit = first;
        while bit < end {
            let word = bit / BITS;
            let low = bit % BITS;
            let high = (end - word * BITS).min(BITS);
            let mask = (u64::MAX >> (BITS - (high - low))) << low;
            // SAFETY: callers pass pages of the bitmap's reservation, so
            // `word` lies inside the bitmap, which only the arena (under
            // its lock) touches.
            sum += f(unsafe { &mut *self.0.add(word) }, mask);
            bit = (word + 1) * BITS;
        }
        sum
    }

    /// The number of set bits among pages `[first, end)`.
    fn count(self, first: usize, end: usize) -> usize {
        self.for_words(first, end, |word, mask| {
            (*word & mask).count_ones() as usize
        })
    }

    /// Sets (or clears) the bits of pages `[first, end)`; returns how many
    /// were set before.
    fn assign(self, first: usize, end: usize, value: bool) -> usize {
        self.for_words(first, end, |word, mask| {
            let before = (*word & mask).count_ones() as usize;
            if value {
                *word |= mask;
            } else {
                *word &= !mask;
            }
            before
        })
    }
}

/// Makes the `length` bytes (whole pages) at `start` of a reservation
/// accessible or not: with guard markers (`markers`), else `mprotect`;
/// `false` if the kernel refused (it may have changed part of the range).
///
/// # Safety
/// The range lies in an arena reservation, and nothing that is live lies
/// in it when it is made inaccessible (a guard marker frees the memory of
/// its pages).
pub unsafe fn change_access(start: usize, length: usize, markers: bool, accessible: bool) -> bool {
    let at = start as *mut c_void;
    // SAFETY: as the caller promises.
    let ret = unsafe {
        match (markers, accessible) {
            (true, true) => libc::madvise(at, length, MADV_GUARD_REMOVE),
            (true, false) => libc::madvise(at, length, MADV_GUARD_INSTALL),
            (false, true) => libc::mprotect(at, length, libc::PROT_READ | libc::PROT_WRITE),
            (false, false) => libc::mprotect(at, length, libc::PROT_NONE),
        }
    };
    ret == 0
}

/// A change of protection that the bits already record, for the kernel.
#[derive(Clone, Copy)]
pub struct Change {
    start: usize,
    length: usize,
    markers: bool,
    accessible: bool,
}

impl Change {
    /// Asks the kernel for the change; `false` if it refused.
    ///
    /// # Safety
    /// As for [`change_access`]: the pages are the caller's.
    pub unsafe fn apply(self) -> bool {
        // SAFETY: as the caller promises.
        unsafe { change_access(self.start, self.length, self.markers, self.accessible) }
    }
}

/// The bitmaps of one reservation.
#[derive(Clone, Copy)]
struct Bitmaps {
    base: usize,
    accessible: Bitmap,
    freed: Bitmap,
    resident: Bitmap,
}

const NO_BITMAPS: Bitmaps = Bitmaps {
    base: 0,
    accessible: Bitmap(core::ptr::null_mut()),
    freed: Bitmap(core::ptr::null_mut()),
    resident: Bitmap(core::ptr::null_mut()),
};

/// The bitmaps of the reservations, each covering `size` bytes.
pub struct PageStates {
    size: usize,
    /// Whether the accessible bits are exact (until an `mprotect` fails).
    bits_exact: bool,
    reservations: [Bitmaps; MAX_RESERVATIONS],
    count: usize,
    /// Inaccessible pages carry guard markers (else `PROT_NONE`).
    markers: bool,
}

// SAFETY: the bitmaps are owned by the value and only touched through it.
unsafe impl Send for PageStates {}

impl PageStates {
    /// Bitmaps for reservations of `size` bytes (a multiple of 64 pages).
    pub const fn new(size: usize) -> PageStates {
        PageStates {
            size,
            bits_exact: true,
            reservations: [NO_BITMAPS; MAX_RESERVATIONS],
            count: 0,
            markers: false,
        }
    }

    /// Reserves a new reservation, every page of it inaccessible, with
    /// its bitmaps; returns its address, or `None` when
    /// [`MAX_RESERVATIONS`] are tracked already or out of memory.
    pub fn reserve(&mut self) -> Option<usize> {
        if self.count == MAX_RESERVATIONS {
            return None;
        }
        if self.count == 0 {
            self.markers = crate::sys::config::current().guard_install();
        }
        let base = self.map_reservation()?;
        let bytes = self.size / PAGE_SIZE / 8;
        let Some(memory) = os_map_zeroed(3 * bytes) else {
            // SAFETY: the reservation just made, unused.
            unsafe { libc::munmap(base as *mut c_void, self.size) };
            return None;
        };
        // SAFETY: the three thirds of the mapping just made.
        let bitmap = |third: usize| Bitmap(unsafe { memory.as_ptr().add(third * bytes) }.cast());
        let bitmaps = Bitmaps {
            base,
            accessible: bitmap(0),
            freed: bitmap(1),
            resident: bitmap(2),
        };
        if self.markers {
            // Everything but the two end pages is read/write already.
            bitmaps
                .accessible
                .assign(1, self.size / PAGE_SIZE - 1, true);
        }
        self.reservations[self.count] = bitmaps;
        self.count += 1;
        Some(base)
    }

    /// Maps the address space of a reservation: inaccessible throughout
    /// with `mprotect`; with guard markers, read/write but for a marker on
    /// its first and last pages (markers elsewhere would cost every `fork`
    /// a copy of their page tables, a millisecond per 64 MiB).
    fn map_reservation(&self) -> Option<usize> {
        if !self.markers {
            return Some(os_reserve(self.size).ok()?.as_ptr() as usize);
        }
        let base = os_mmap(
            core::ptr::null_mut(),
            self.size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
        )
        .ok()?
        .as_ptr();
        let last = base as usize + self.size - PAGE_SIZE;
        // SAFETY: two pages of the fresh mapping just made, used by
        // nothing else.
        let marked = [base as usize, last].iter().all(|&page| unsafe {
            libc::madvise(page as *mut c_void, PAGE_SIZE, MADV_GUARD_INSTALL) == 0
        });
        if !marked {
            // SAFETY: as above.
            unsafe { libc::munmap(base, self.size) };
            return None;
        }
        Some(base as usize)
    }

    /// The bitmaps of the reservation holding `[start, start + length)`
    /// and the range of its pages.
    fn locate(&self, start: usize, length: usize) -> (Bitmaps, usize, usize) {
        let bitmaps = *self.reservations[..self.count]
            .iter()
            .find(|r| start.wrapping_sub(r.base) < self.size)
            .expect("arena addresses lie in a tracked reservation");
        let first = (start - bitmaps.base) / PAGE_SIZE;
        debug_assert!(first * PAGE_SIZE + length <= self.size);
        (bitmaps, first, first + length / PAGE_SIZE)
    }

    /// Records that the `length` bytes (whole pages) at `start` become
    /// accessible or not; returns the change the kernel must then be asked
    /// for (with no lock held), if any page differs or the bits are no
    /// longer trusted.
    pub fn plan(&mut self, start: usize, length: usize, accessible: bool) -> Option<Change> {
        let (bitmaps, first, end) = self.locate(start, length);
        let bitmap = bitmaps.accessible;
        let matching = bitmap.count(first, end);
        if self.bits_exact && matching == if accessible { end - first } else { 0 } {
            return None;
        }
        bitmap.assign(first, end, accessible);
        Some(Change {
            start,
            length,
            markers: self.markers,
            accessible,
        })
    }

    /// After a planned change failed (the kernel may have made part of
    /// it): from now on, every change asks the kernel.
    pub fn distrust(&mut self) {
        self.bits_exact = false;
    }

    /// Records that the `length` bytes (whole pages) at `start` were
    /// freed (all of them may hold memory).
    pub fn free(&mut self, start: usize, length: usize) {
        let (bitmaps, first, end) = self.locate(start, length);
        bitmaps.freed.assign(first, end, true);
    }

    /// Forgets what was recorded of the `length` bytes (whole pages) at
    /// `start`, which are handed out again or given back; returns the bytes
    /// that were counted as holding memory.
    pub fn forget(&mut self, start: usize, length: usize) -> usize {
        let (bitmaps, first, end) = self.locate(start, length);
        (bitmaps.freed.assign(first, end, false) + bitmaps.resident.assign(first, end, false))
            * PAGE_SIZE
    }

    /// Asks the kernel which freed pages among the `length` bytes (whole
    /// pages) at `start` hold memory, keeping only those; returns the bytes
    /// counted as holding memory afterwards. Pages the kernel cannot tell
    /// about count as holding memory.
    pub fn verify(&mut self, start: usize, length: usize) -> usize {
        const CHUNK: usize = 4096;
        let (bitmaps, first, end) = self.locate(start, length);
        let mut vector = [0u8; CHUNK];
        let mut page = first;
        while page < end {
            // Skip whole words without freed pages.
            if page % BITS == 0 && end - page >= BITS && bitmaps.freed.count(page, page + BITS) == 0
            {
                page += BITS;
                continue;
            }
            let n = (end - page).min(CHUNK);
            let at = bitmaps.base + page * PAGE_SIZE;
            // SAFETY: the range lies in a reservation (mapped); `vector`
            // holds one byte per page of it.
            let known =
                unsafe { libc::mincore(at as *mut c_void, n * PAGE_SIZE, vector.as_mut_ptr()) }
                    == 0;
            for (offset, &state) in vector[..n].iter().enumerate() {
                let p = page + offset;
                if bitmaps.freed.assign(p, p + 1, false) == 1 && (!known || state & 1 != 0) {
                    bitmaps.resident.assign(p, p + 1, true);
                }
            }
            page += n;
        }
        bitmaps.resident.count(first, end) * PAGE_SIZE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::heap::large::arena::protection;

    /// Makes the pages accessible or not at once; `false` if the kernel
    /// refused.
    fn protect(states: &mut PageStates, start: usize, length: usize, accessible: bool) -> bool {
        // SAFETY: the test's own reservation.
        states
            .plan(start, length, accessible)
            .is_none_or(|change| unsafe { change.apply() })
    }

    /// A reservation of `size` bytes with its states, its ends
    /// inaccessible (and, with `mprotect`, everything else too).
    fn reservation(size: usize) -> (usize, PageStates) {
        let mut states = PageStates::new(size);
        let base = states.reserve().unwrap();
        assert_eq!(protection(base), "--");
        assert_eq!(protection(base + size - PAGE_SIZE), "--");
        let inside = if states.markers { "rw" } else { "--" };
        assert_eq!(protection(base + size / 2), inside);
        (base, states)
    }

    #[test]
    fn only_pages_holding_memory_count_once_verified() {
        let (base, mut states) = reservation(1 << 20);
        assert!(protect(&mut states, base, 1 << 20, true));
        // Touch pages 3, 70 and 71.
        for page in [3, 70, 71] {
            // SAFETY: inside the mapping, now accessible.
            unsafe { *((base + page * PAGE_SIZE) as *mut u8) = 1 };
        }
        states.free(base, 128 * PAGE_SIZE);
        assert_eq!(states.verify(base, 256 * PAGE_SIZE), 3 * PAGE_SIZE);
        assert_eq!(states.verify(base, 256 * PAGE_SIZE), 3 * PAGE_SIZE);
        assert_eq!(states.forget(base + 4 * PAGE_SIZE, 66 * PAGE_SIZE), 0);
        assert_eq!(
            states.forget(base + 3 * PAGE_SIZE, 68 * PAGE_SIZE),
            2 * PAGE_SIZE
        );
        // Freed again, not verified: counted in full until verified.
        states.free(base + 128 * PAGE_SIZE, 64 * PAGE_SIZE);
        assert_eq!(states.forget(base, 256 * PAGE_SIZE), 65 * PAGE_SIZE);
        assert_eq!(states.forget(base, 256 * PAGE_SIZE), 0);
    }

    #[test]
    fn protections_follow_the_bits() {
        let (base, mut states) = reservation(1 << 20);
        assert!(protect(
            &mut states,
            base + 101 * PAGE_SIZE,
            PAGE_SIZE,
            false
        ));
        assert!(protect(
            &mut states,
            base + 200 * PAGE_SIZE,
            PAGE_SIZE,
            false
        ));
        assert!(protect(
            &mut states,
            base + PAGE_SIZE,
            100 * PAGE_SIZE,
            true
        ));
        assert_eq!(protection(base), "--");
        assert_eq!(protection(base + PAGE_SIZE), "rw");
        assert_eq!(protection(base + 100 * PAGE_SIZE), "rw");
        assert_eq!(protection(base + 101 * PAGE_SIZE), "--");
        assert!(protect(
            &mut states,
            base + 64 * PAGE_SIZE,
            PAGE_SIZE,
            false
        ));
        assert_eq!(protection(base + 63 * PAGE_SIZE), "rw");
        assert_eq!(protection(base + 64 * PAGE_SIZE), "--");
        assert_eq!(protection(base + 65 * PAGE_SIZE), "rw");
        // A range spanning both states is made accessible throughout.
        assert!(protect(&mut states, base, 200 * PAGE_SIZE, true));
        for page in [0, 64, 150, 199] {
            assert_eq!(protection(base + page * PAGE_SIZE), "rw", "page {page}");
        }
        assert_eq!(protection(base + 200 * PAGE_SIZE), "--");
    }
}
