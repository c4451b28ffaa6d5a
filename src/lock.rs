//! A mutex around data, built directly on `pthread_mutex_t`.
//!
//! Owns: the blocking lock used by the slow paths (mill, press refill,
//! internal arena, registries). It is a plain pthread mutex so that it can be
//! statically initialised, never allocates, and can later be held across
//! `fork()` from `pthread_atfork` handlers. Invariant: the data is only
//! reachable through a guard, so only one thread touches it at a time.

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};

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
        // SAFETY: the mutex is initialised and lives as long as `self`.
        let ret = unsafe { libc::pthread_mutex_lock(self.mutex.get()) };
        if ret != 0 {
            crate::fatal::die(format_args!("pthread_mutex_lock failed with error {ret}"));
        }
        LockGuard { lock: self }
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
}
