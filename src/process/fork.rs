//! `fork()` while slitter is in use: the `pthread_atfork` handlers.
//!
//! Owns: the one order in which every slitter [`Lock`] is taken before a
//! fork (the prepare handlers hold them all, so no lock is held by a
//! thread that does not exist in the child), their release in the parent
//! and their reset in the child, and what the child must then put right:
//! the thread caches of the parent's other threads, and memory that a
//! mapper shares with the parent (the `"file"` mapper's `MAP_SHARED` data).
//!
//! The order is the order in which slow paths nest locks, outermost
//! first. A personality's own locks come first: it registers its
//! [`LockSet`] after the core's ([`prepare_for_fork`], through
//! `entry::enter`), and `pthread_atfork` runs prepare handlers in the
//! reverse order of registration (malloc: its initialisation, whose
//! holder registers classes; the hardening quarantines are per thread and
//! take no lock). Then the core's: class registration, the mill
//! table, the mapper registry, the thread-exit key, each class's press (by
//! class id), each mill (by mapper index), the file mapper's directory and
//! files, the internal arena, the free list of thread caches, the large
//! path. A thread that holds one of them only ever waits for one later in
//! this order, so the prepare handlers, taking them in it, never deadlock
//! with it.
//!
//! Invariants: each set's handlers are registered once, outside any lock
//! (`pthread_atfork` may itself call malloc); no `Lock` exists that no
//! `LockSet` lists.
//!
//! [`Lock`]: crate::sys::lock::Lock

use core::sync::atomic::{AtomicU8, Ordering};

use crate::cache::{class_table, thread_cache};
use crate::heap::large::blocks;
use crate::heap::{arena, file_mapper, mapper_registry, mill};
use crate::sys::lock::Forkable;

/// Locks that the fork handlers hold across `fork()`.
pub trait LockSet: 'static {
    /// Calls `f` on every lock of the set, outermost first.
    fn each(f: &mut dyn FnMut(&dyn Forkable));

    /// Puts the set's state right in a forked child, once its locks are
    /// free again.
    fn after_fork_in_child() {}

    /// Whether the set's handlers are registered: 0 no, 1 being
    /// registered, 2 yes.
    fn registration() -> &'static AtomicU8;
}

extern "C" fn before_fork<L: LockSet>() {
    L::each(&mut |lock| lock.hold_for_fork());
}

extern "C" fn after_fork_in_parent<L: LockSet>() {
    // SAFETY: `before_fork` took every lock of the set on this thread.
    L::each(&mut |lock| unsafe { lock.release_after_fork() });
}

extern "C" fn after_fork_in_child<L: LockSet>() {
    // SAFETY: this is the child of the fork across which `before_fork`
    // held every lock of the set; it has one thread, this one.
    L::each(&mut |lock| unsafe { lock.reset_in_child() });
    L::after_fork_in_child();
}

/// Registers the handlers of `L`, once. Must not be called while holding
/// a [`Lock`](crate::sys::lock::Lock) or from inside malloc's
/// initialisation: `pthread_atfork` may itself call malloc (a nested call
/// made meanwhile returns at once).
pub fn register<L: LockSet>() {
    let state = L::registration();
    // A load first: callers run this on slow allocations, where a failing
    // compare-and-swap would still be an atomic read-modify-write.
    if state.load(Ordering::Acquire) != 0
        || state
            .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
    {
        return;
    }
    // SAFETY: the handlers are `extern "C"` functions that never unwind.
    let ret = unsafe {
        libc::pthread_atfork(
            Some(before_fork::<L>),
            Some(after_fork_in_parent::<L>),
            Some(after_fork_in_child::<L>),
        )
    };
    if ret != 0 {
        crate::sys::fatal::die(format_args!("pthread_atfork failed with error {ret}"));
    }
    state.store(2, Ordering::Release);
}

/// The locks of the core (every layer below the personalities).
struct CoreLocks;

static CORE_REGISTRATION: AtomicU8 = AtomicU8::new(0);

impl LockSet for CoreLocks {
    fn each(f: &mut dyn FnMut(&dyn Forkable)) {
        f(class_table::registration_lock());
        f(mill::table_lock());
        f(mapper_registry::registry_lock());
        f(thread_cache::exit_key_lock());
        class_table::each_press_lock(f);
        mill::each_mill_lock(f);
        file_mapper::file_mapper_locks(f);
        f(arena::lock());
        thread_cache::array_list_locks()
            .into_iter()
            .for_each(&mut *f);
        blocks::each_lock(f);
    }

    fn after_fork_in_child() {
        thread_cache::after_fork_in_child();
        mill::after_fork_in_child();
        class_table::after_fork_in_child();
    }

    fn registration() -> &'static AtomicU8 {
        &CORE_REGISTRATION
    }
}

/// Registers the core's fork handlers, once (see [`register`]).
pub fn prepare_for_fork() {
    register::<CoreLocks>();
}
