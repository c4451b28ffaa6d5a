//! A mutex around data, built directly on `pthread_mutex_t`.
//!
//! Owns: the blocking lock used by the slow paths (mill, press refill,
//! internal arena, registries, large allocations). It is a plain pthread
//! mutex so that it can be statically initialised and never allocates;
//! a thread that finds it held retries for a short while
//! ([`SPINS`]) before it sleeps.
//! `process/fork.rs` takes every such lock, in one fixed order, before `fork()`
//! ([`Forkable::hold_for_fork`]), so that the child starts with all of
//! them free ([`Forkable::reset_in_child`]) and the parent gets them back
//! ([`Forkable::release_after_fork`]); a `Lock` costs nothing else.
//!
//! Invariants: the data is only reachable through a guard, so only one
//! thread touches it at a time.

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};

/// Attempts to take a held lock before sleeping on it: the critical
/// sections are short, and a sleep and a wake-up cost two system calls and
/// microseconds (on a 2-thread large-block churn, most of its time).
const SPINS: usize = 64;
/// Pause instructions between two attempts.
const PAUSES: usize = 16;

/// Data of type `T` protected by a pthread mutex.
pub struct Lock<T> {
    mutex: UnsafeCell<libc::pthread_mutex_t>,
    data: UnsafeCell<T>,
}

// SAFETY: access to `data` is serialised by the mutex.
unsafe impl<T: Send> Sync for Lock<T> {}

/// Exclusive access to a [`Lock`]'s data; unlocks on drop.
pub struct LockGuard<'a, T> {
    lock: &'a Lock<T>,
}

impl<T> Lock<T> {
    /// A new, unlocked mutex around `data`.
    pub const fn new(data: T) -> Self {
        Lock {
            mutex: UnsafeCell::new(libc::PTHREAD_MUTEX_INITIALIZER),
            data: UnsafeCell::new(data),
        }
    }

    /// Blocks until the lock is held.
    pub fn lock(&self) -> LockGuard<'_, T> {
        self.acquire();
        LockGuard { lock: self }
    }

    /// Takes the lock if it is free now, without waiting.
    pub fn try_lock(&self) -> Option<LockGuard<'_, T>> {
        // SAFETY: the mutex is initialised and lives as long as `self`.
        (unsafe { libc::pthread_mutex_trylock(self.mutex.get()) } == 0)
            .then_some(LockGuard { lock: self })
    }

    fn acquire(&self) {
        for _ in 0..SPINS {
            // SAFETY: the mutex is initialised and lives as long as `self`.
            if unsafe { libc::pthread_mutex_trylock(self.mutex.get()) } == 0 {
                return;
            }
            for _ in 0..PAUSES {
                core::hint::spin_loop();
            }
        }
        // SAFETY: as above.
        let ret = unsafe { libc::pthread_mutex_lock(self.mutex.get()) };
        if ret != 0 {
            crate::sys::fatal::die(format_args!("pthread_mutex_lock failed with error {ret}"));
        }
    }
}

/// What the fork handlers (`process/fork.rs`) do with every lock.
pub trait Forkable {
    /// Takes the lock before `fork()` without a guard: the prepare handler
    /// holds it across the fork, then calls
    /// [`Forkable::release_after_fork`] (parent) or
    /// [`Forkable::reset_in_child`].
    fn hold_for_fork(&self);

    /// Releases the lock [`Forkable::hold_for_fork`] took, in the parent.
    ///
    /// # Safety
    /// This thread holds the lock through `hold_for_fork`.
    unsafe fn release_after_fork(&self);

    /// Makes the lock free in a forked child, whose only thread is the
    /// copy of the one that held it through [`Forkable::hold_for_fork`]
    /// (its thread id changed, so the mutex is initialised afresh rather
    /// than unlocked).
    ///
    /// # Safety
    /// Called in the child of a `fork()` across which this lock was held,
    /// before the child's thread uses it.
    unsafe fn reset_in_child(&self);
}

impl<T> Forkable for Lock<T> {
    fn hold_for_fork(&self) {
        self.acquire();
    }

    unsafe fn release_after_fork(&self) {
        // SAFETY: guaranteed by the caller.
        unsafe { libc::pthread_mutex_unlock(self.mutex.get()) };
    }

    unsafe fn reset_in_child(&self) {
        // SAFETY: no other thread exists in the child, and the data was
        // left consistent by the holder, which was not inside it.
        unsafe { self.mutex.get().write(libc::PTHREAD_MUTEX_INITIALIZER) };
    }
}

impl<T> Drop for LockGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: this guard holds the mutex, locked by this thread.
        unsafe { libc::pthread_mutex_unlock(self.lock.mutex.get()) };
    }
}

impl<T> Deref for LockGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the guard holds the mutex, so no one else accesses the data.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> DerefMut for LockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard holds the mutex, so no one else accesses the data.
        unsafe { &mut *self.lock.data.get() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_increments() {
        static COUNTER: Lock<u64> = Lock::new(0);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    for _ in 0..10_000 {
                        *COUNTER.lock() += 1;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*COUNTER.lock(), 40_000);
    }

    #[test]
    fn a_lock_held_for_fork_is_released_and_reset() {
        static HELD: Lock<u32> = Lock::new(7);
        HELD.hold_for_fork();
        // SAFETY: this thread holds it.
        unsafe { HELD.release_after_fork() };
        assert_eq!(*HELD.lock(), 7);
        HELD.hold_for_fork();
        // SAFETY: as in a child: the holder, not inside the data, resets it.
        unsafe { HELD.reset_in_child() };
        assert_eq!(*HELD.lock(), 7);
    }
}
