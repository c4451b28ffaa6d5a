//! The decay of wholly free spans: when their memory goes back.
//!
//! Owns: the clock of the decay (milliseconds of `CLOCK_MONOTONIC_COARSE`, kept
//! in 32 bits, compared with wrapping arithmetic), the delay a wholly free
//! span waits before it is purged (`SLITTER_PURGE_DELAY`, see
//! `sys/config.rs`), the count of spans waiting, and the pacing of the
//! ticks that purge them: the thread caches call [`due`] on their slow
//! paths, which says yes at most once per [`TICK_MS`] (any time, with a
//! delay of 0) and only while spans wait.
//!
//! It also keeps one bit per class whose press has spans waiting, so that
//! a tick visits those presses only.
//!
//! Invariants: `WAITING` counts the spans on the wholly-free lists of
//! presses that purge (each press adds its own changes); a class's bit in
//! `WAITING_CLASSES` is set whenever its press has a span waiting (set and
//! cleared under the press's lock); the clock never
//! goes back (it may wrap after 49 days, which a wrapping comparison of
//! intervals shorter than 24 days does not notice).

use core::sync::atomic::{AtomicIsize, AtomicU32, AtomicU64, Ordering};

use crate::layout::constants::MAX_CLASSES;

/// The shortest time between two ticks that purge, with a non-zero delay.
pub const TICK_MS: u32 = 1;

static WAITING: AtomicIsize = AtomicIsize::new(0);
static LAST_TICK: AtomicU32 = AtomicU32::new(0);
static WAITING_CLASSES: [AtomicU64; MAX_CLASSES / 64] =
    [const { AtomicU64::new(0) }; MAX_CLASSES / 64];

/// Notes whether class `class_id` has spans waiting (its press calls this
/// under its lock).
pub fn note_class(class_id: u32, waiting: bool) {
    let word = &WAITING_CLASSES[class_id as usize / 64];
    let bit = 1u64 << (class_id % 64);
    if waiting {
        word.fetch_or(bit, Ordering::Relaxed);
    } else {
        word.fetch_and(!bit, Ordering::Relaxed);
    }
}

/// Calls `f` on each class that has spans waiting, by class id.
pub fn each_waiting_class(mut f: impl FnMut(u32)) {
    for (index, word) in WAITING_CLASSES.iter().enumerate() {
        let mut bits = word.load(Ordering::Relaxed);
        while bits != 0 {
            f(index as u32 * 64 + bits.trailing_zeros());
            bits &= bits - 1;
        }
    }
}

/// Milliseconds since an arbitrary start (wraps), from the coarse clock:
/// it moves in steps of a few milliseconds (the kernel's tick), plenty for
/// delays of tens of milliseconds and more, and costs a third of the
/// precise one (measured 13 against 35 ns a call on the development
/// machine).
pub fn now_ms() -> u32 {
    let mut time = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `time` is a valid out-pointer; CLOCK_MONOTONIC_COARSE always
    // exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut time) };
    (time.tv_sec as u64 * 1000 + time.tv_nsec as u64 / 1_000_000) as u32
}

/// How long a wholly free span waits before it is purged; `None`: never
/// (only `malloc_trim` purges).
pub fn delay_ms() -> Option<u32> {
    crate::sys::config::current().purge_delay_ms()
}

/// Whether a span wholly free since `since` has waited `delay` at `now`.
pub fn expired(since: u32, now: u32, delay: u32) -> bool {
    now.wrapping_sub(since) >= delay
}

/// Adds `spans` (negative: takes them away) to the spans waiting.
pub fn add_waiting(spans: isize) {
    WAITING.fetch_add(spans, Ordering::Relaxed);
}

/// Whether a tick should purge now: spans wait, purging is on, and (with a
/// non-zero delay) no tick began in the last [`TICK_MS`]. Cheap when no
/// span waits: one load.
#[inline(always)]
pub fn due() -> bool {
    WAITING.load(Ordering::Relaxed) > 0 && paced()
}

#[cold]
fn paced() -> bool {
    match delay_ms() {
        None => false,
        Some(0) => true,
        Some(_) => {
            let now = now_ms();
            let last = LAST_TICK.load(Ordering::Relaxed);
            now.wrapping_sub(last) >= TICK_MS
                && LAST_TICK
                    .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_survive_the_wrap() {
        assert!(expired(u32::MAX - 5, 10, 16));
        assert!(!expired(u32::MAX - 5, 9, 16));
        assert!(expired(100, 100, 0));
        let (a, b) = (now_ms(), now_ms());
        assert!(b.wrapping_sub(a) < 1000);
    }
}
