//! `fork()` while slitter is in use: the `pthread_atfork` handlers.
//!
//! Owns: the one order in which every slitter [`Lock`] is taken before a
//! fork (the prepare handler holds them all, so no lock is held by a
//! thread that does not exist in the child), their release in the parent
//! and their reset in the child, and what the child must then put right:
//! the thread caches of the parent's other threads, and memory that a
//! mapper shares with the parent (the `"file"` mapper's `MAP_SHARED` data).
//!
//! The order is the order in which slow paths nest locks, outermost
//! first: malloc's initialisation, class registration, the mill table,
//! the mapper registry, the thread-exit key, each class's press (by class
//! id), each mill (by mapper index), the file mapper's directory and
//! files, the internal arena, the free list of thread caches, the large
//! path, the hardening quarantine. A thread that holds one of them only
//! ever waits for one later in the list, so the prepare handler, taking
//! them in this order, never deadlocks with it.
//!
//! Invariants: the handlers are registered once, outside any lock (the
//! first registration of a class, and malloc's initialisation, register
//! them; `pthread_atfork` may itself call malloc); no `Lock` exists that
//! `each_lock` does not list.

use core::sync::atomic::{AtomicU8, Ordering};

use crate::sys::lock::Forkable;

/// Calls `f` on every slitter lock, in the fixed order (see above).
fn each_lock(f: &mut dyn FnMut(&dyn Forkable)) {
    f(crate::malloc::api::init_lock());
    f(crate::cache::class_table::registration_lock());
    f(crate::heap::mill::table_lock());
    f(crate::heap::mapper::registry_lock());
    f(crate::cache::thread_cache::exit_key_lock());
    crate::cache::class_table::each_press_lock(f);
    crate::heap::mill::each_mill_lock(f);
    crate::heap::mapper::file_mapper_locks(f);
    f(crate::heap::arena::lock());
    f(crate::cache::thread_cache::free_arrays_lock());
    f(crate::heap::large::blocks::lock());
    f(crate::malloc::hardening::lock());
}

extern "C" fn before_fork() {
    each_lock(&mut |lock| lock.hold_for_fork());
}

extern "C" fn after_fork_in_parent() {
    // SAFETY: `before_fork` took every lock on this thread.
    each_lock(&mut |lock| unsafe { lock.release_after_fork() });
}

extern "C" fn after_fork_in_child() {
    // SAFETY: this is the child of the fork across which `before_fork`
    // held every lock; it has one thread, this one.
    each_lock(&mut |lock| unsafe { lock.reset_in_child() });
    crate::cache::thread_cache::after_fork_in_child();
    crate::heap::mill::after_fork_in_child();
}

/// 0: handlers not registered; 1: being registered; 2: registered.
static ATFORK_STATE: AtomicU8 = AtomicU8::new(0);

/// Registers the fork handlers, once. Must not be called while holding a
/// [`Lock`](crate::sys::lock::Lock) or from inside malloc's initialisation:
/// `pthread_atfork` may itself call malloc (a nested call made meanwhile
/// returns at once).
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
        crate::sys::fatal::die(format_args!("pthread_atfork failed with error {ret}"));
    }
    ATFORK_STATE.store(2, Ordering::Release);
}
