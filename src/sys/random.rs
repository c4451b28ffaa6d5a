//! Unpredictable numbers from the kernel, for the secrets and seeds of
//! the opt-in hardening.
//!
//! Owns: [`random_u64`], one `getrandom(2)` call (no file descriptor, no
//! allocation), and the stand-in used where the kernel gives nothing.
//! Invariant: never fails and never blocks for long (the kernel's pool is
//! ready once the system has booted).

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_draws_differ() {
        assert_ne!(random_u64(), random_u64());
    }
}
