//! Unpredictable numbers from the kernel, for the secrets and seeds of
//! the opt-in hardening.
//!
//! Owns: [`random_u64`], one `getrandom(2)` call (no file descriptor, no
//! allocation), and the stand-in used where the kernel gives nothing; and
//! [`Generator`], a fast generator (wyrand) seeded from it on first use,
//! for choices drawn too often for a system call each.
//! Invariant: never fails and never blocks for long (the kernel's pool is
//! ready once the system has booted); a generator's state is 0 only until
//! it is seeded.

/// Eight random bytes from the kernel; without them, a value derived from
/// the caller's stack address (differs between threads and processes, but
/// is guessable: only a stand-in).
pub fn random_u64() -> u64 {
    let mut value = 0u64;
    // SAFETY: getrandom writes at most 8 bytes into `value`.
    let got = unsafe { libc::getrandom((&raw mut value).cast(), 8, 0) };
    if got == 8 {
        return value;
    }
    0x5ca1_ab1e_c0ff_ee00 ^ (&raw const value as u64)
}

/// A generator of numbers an observer cannot predict without its seed; all
/// zero (as in zero-filled memory) until its first draw seeds it.
#[derive(Clone, Copy, Default)]
#[repr(C)]
pub struct Generator {
    state: u64,
}

impl Generator {
    /// A generator not seeded yet.
    pub const UNSEEDED: Generator = Generator { state: 0 };

    /// A uniformly random number below `bound` (not 0), by wyrand and a
    /// multiply-shift.
    pub fn below(&mut self, bound: usize) -> usize {
        if self.state == 0 {
            self.state = random_u64() | 1;
        }
        self.state = self.state.wrapping_add(0xa076_1d64_78bd_642f);
        let product =
            u128::from(self.state).wrapping_mul(u128::from(self.state ^ 0xe703_7ed1_a0b4_28db));
        let value = (product >> 64) as u64 ^ product as u64;
        ((u128::from(value) * bound as u128) >> 64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_draws_differ() {
        assert_ne!(random_u64(), random_u64());
    }

    #[test]
    fn a_generator_draws_below_its_bound_and_covers_it() {
        let mut generator = Generator::UNSEEDED;
        let mut seen = [0u32; 8];
        for _ in 0..8000 {
            seen[generator.below(8)] += 1;
        }
        assert!(seen.iter().all(|&n| n > 800), "{seen:?}");
    }
}
