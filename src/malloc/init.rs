//! malloc's size classes, registered on first use.
//!
//! Owns: the class ids of the size classes (`1..FIRST_USER_ID`, one per
//! `size_classes` index), their registration on malloc's first slow path,
//! the switch to hardening, the limits that the fast paths read, and
//! malloc's own locks for the fork handlers.
//!
//! Invariants: before the classes are registered, both fast-path limits
//! send every call to the slow path; once `INITIALISED` is set, every size
//! class is registered and the limits never change again.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, AtomicUsize, Ordering};

use crate::cache::class_table::{self, RawConfig, FIRST_USER_ID};
use crate::heap::mapper_registry::NO_ACCESS_MAPPER_NAME;
use crate::layout::size_classes::{self, MAX_SMALL_SIZE};
use crate::malloc::hardening;
use crate::process::entry;
use crate::process::fork::{self, LockSet};
use crate::sys::lock::{Forkable, Lock};

/// The class id of size class `index`.
#[inline(always)]
pub fn class_id(index: usize) -> u32 {
    1 + index as u32
}

/// The size class index of malloc class `class_id`.
pub fn class_index(class_id: u32) -> usize {
    (class_id - 1) as usize
}

/// Whether `class_id` is one of the malloc size classes.
#[inline(always)]
pub fn is_malloc_class(class_id: u32) -> bool {
    class_id.wrapping_sub(1) < FIRST_USER_ID - 1
}

/// The object size of malloc class `class_id`.
pub fn class_size(class_id: u32) -> usize {
    size_classes::size_of_class(class_index(class_id))
}

pub static INITIALISED: AtomicBool = AtomicBool::new(false);
/// `malloc` requests of at most this many bytes take the fast path: 0
/// until the size classes are registered, and when hardened (so that every
/// request takes `allocate_slow`).
pub static FAST_MALLOC_LIMIT: AtomicUsize = AtomicUsize::new(0);
/// `free` releases objects of class ids below this on its fast path: the
/// malloc classes, or none when hardened. The memory operand costs no more
/// than the constant it stands for.
pub static FAST_FREE_LIMIT: AtomicU32 = AtomicU32::new(FIRST_USER_ID);
pub static INIT_LOCK: Lock<()> = Lock::new(());

/// malloc's own locks, held across `fork()` before the core's (see
/// `process::fork`).
pub struct MallocLocks;

pub static FORK_REGISTRATION: AtomicU8 = AtomicU8::new(0);

impl LockSet for MallocLocks {
    fn each(f: &mut dyn FnMut(&dyn Forkable)) {
        f(&INIT_LOCK);
    }

    fn registration() -> &'static AtomicU8 {
        &FORK_REGISTRATION
    }
}

/// Registers the size classes if that is not done yet; `false` when out of
/// memory.
#[cold]
pub fn initialise() -> bool {
    if !INITIALISED.load(Ordering::Acquire) {
        let _guard = INIT_LOCK.lock();
        if !INITIALISED.load(Ordering::Acquire) {
            let harden = crate::sys::config::settle_now().harden();
            for index in 0..size_classes::COUNT {
                let mut name = [0u8; 16];
                let len = size_classes::name_of_class(index, &mut name);
                let config = RawConfig {
                    name: Some(&name[..len]),
                    size: size_classes::size_of_class(index).max(16),
                    zero_init: false,
                    purge: true,
                    // Hardened: no predictable reuse order.
                    scatter: harden,
                    mapper_name: (index == 0).then_some(NO_ACCESS_MAPPER_NAME.as_bytes()),
                };
                if class_table::register_reserved(class_id(index), &config).is_err() {
                    return false;
                }
            }
            if harden {
                hardening::enable();
                FAST_FREE_LIMIT.store(0, Ordering::Relaxed);
            } else {
                FAST_MALLOC_LIMIT.store(MAX_SMALL_SIZE, Ordering::Relaxed);
            }
            INITIALISED.store(true, Ordering::Release);
        }
    }
    // Outside the lock: pthread_atfork may call malloc. The core's fork
    // handlers first, so that malloc's prepare handler runs before them.
    entry::enter();
    fork::register::<MallocLocks>();
    true
}
