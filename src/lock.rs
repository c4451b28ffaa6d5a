//! A mutex around data, built directly on `pthread_mutex_t`, and the fork
//! guard that keeps every such lock free across `fork()`.
//!
//! Owns: the blocking lock used by the slow paths (mill, press refill,
//! internal arena, registries, large allocations). It is a plain pthread
//! mutex so that it can be statically initialised and never allocates.
//! Every [`Lock`] is taken under a process-wide read lock, the fork guard;
//! a `pthread_atfork` prepare handler takes the guard for writing, so
//! `fork()` happens only while no thread holds any slitter lock, and the
//! child starts with all of them free (it re-initialises the guard, whose
//! writer is the parent's thread).
//!
//! Invariants: the data is only reachable through a guard, so only one
//! thread touches it at a time; a thread holding a `Lock` holds the fork
//! guard for reading (glibc's default rwlock prefers readers, so nested
//! locks never wait behind a waiting fork).

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicU8, Ordering};

/// The process-wide fork guard.
struct ForkGuard(UnsafeCell<libc::pthread_rwlock_t>);

// SAFETY: the rwlock is only used through the pthread functions, which
// synchronise.
unsafe impl Sync for ForkGuard {}

static FORK_GUARD: ForkGuard = ForkGuard(UnsafeCell::new(libc::PTHREAD_RWLOCK_INITIALIZER));

/// 0: atfork handlers not registered; 1: being registered; 2: registered.
static ATFORK_STATE: AtomicU8 = AtomicU8::new(0);

extern "C" fn before_fork() {
    // SAFETY: the guard is initialised; the forking thread holds no Lock
    // (it is not inside slitter), so this cannot deadlock on itself.
    unsafe { libc::pthread_rwlock_wrlock(FORK_GUARD.0.get()) };
}

extern "C" fn after_fork_in_parent() {
    // SAFETY: this thread took the guard for writing in `before_fork`.
    unsafe { libc::pthread_rwlock_unlock(FORK_GUARD.0.get()) };
}

extern "C" fn after_fork_in_child() {
    // The child has one thread, which no longer has the writer's thread id:
    // start the guard afresh. Every mutex is free, since no thread held one
    // at the fork.
    // SAFETY: no other thread exists to use the guard concurrently.
    unsafe { FORK_GUARD.0.get().write(libc::PTHREAD_RWLOCK_INITIALIZER) };
}

/// Registers the fork handlers, once. Must not be called while holding a
/// [`Lock`] or from inside malloc's initialisation: `pthread_atfork` may
/// itself call malloc (a nested call made meanwhile returns at once).
pub fn prepare_for_fork() {
    // A load first: callers run this on every slow allocation, where a
    // failing compare-and-swap would still be an atomic read-modify-write.
    if ATFORK_STATE.load(Ordering::Acquire) != 0
        || ATFORK_STATE
            .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
    {
        return;
    }
    // SAFETY: the handlers are `extern "C"` functions that never unwind.
    let ret = unsafe {
        libc::pthread_atfork(
            Some(before_fork),
            Some(after_fork_in_parent),
            Some(after_fork_in_child),
        )
    };
    if ret != 0 {
        crate::fatal::die(format_args!("pthread_atfork failed with error {ret}"));
    }
    ATFORK_STATE.store(2, Ordering::Release);
}

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
        // SAFETY: the guard is initialised; read locks nest.
        let ret = unsafe { libc::pthread_rwlock_rdlock(FORK_GUARD.0.get()) };
        if ret != 0 {
            crate::fatal::die(format_args!(
                "pthread_rwlock_rdlock failed with error {ret}"
            ));
        }
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
        // SAFETY: this guard holds the mutex, locked by this thread, and a
        // read lock on the fork guard.
        unsafe {
            libc::pthread_mutex_unlock(self.lock.mutex.get());
            libc::pthread_rwlock_unlock(FORK_GUARD.0.get());
        }
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
