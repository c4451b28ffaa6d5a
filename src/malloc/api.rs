//! The malloc personality: the C allocation API, exported unprefixed.
//!
//! Owns: `malloc`, `free`, `calloc`, `realloc`, `reallocarray`,
//! `posix_memalign`, `aligned_alloc`, `memalign`, `valloc`, `pvalloc`,
//! `malloc_usable_size`, `cfree` and glibc's `__libc_*` aliases (the sized
//! frees, which check their size first, are in `sized_free.rs`); the
//! aligned, zeroed and resizing requests that both these and
//! `global_alloc.rs` (`Slitter`) make; the registration of the size
//! classes (ids `1..FIRST_USER_ID`, one per `size_classes` index) on first
//! use; glibc's errno and NULL conventions.
//!
//! A request of at most `MAX_SMALL_SIZE` bytes is served by its size class
//! through the thread cache (`cache.rs`), with no lock and no atomic
//! read-modify-write; `malloc(0)` by the zero-size class, whose objects lie
//! in inaccessible memory; a request aligned beyond 16 bytes by a class
//! whose size is a multiple of the alignment (up to the span alignment);
//! larger or more aligned requests by `large.rs`, and a resize keeps the
//! alignment it was allocated with.
//! `free` validates every pointer out of band (`checks.rs`).
//!
//! Invariants: nothing here allocates through another allocator; failures
//! return NULL with errno set (ENOMEM, or EINVAL for a bad alignment) and
//! never abort; misuse (a pointer slitter did not hand out, or no longer
//! live) aborts with a `slitter:` line.

use core::ffi::c_void;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, AtomicUsize, Ordering};

use crate::cache::checks::{self, Operation};
use crate::cache::class_table::{self, RawConfig, FIRST_USER_ID};
use crate::cache::thread_cache;
use crate::heap::large::blocks::{self, Resized, PAGE_SIZE};
use crate::heap::mapper::NO_ACCESS_MAPPER_NAME;
use crate::layout::size_classes::{self, MALLOC_ALIGNMENT, MAX_SMALL_SIZE};
use crate::malloc::hardening;
use crate::process::entry;
use crate::process::fork::{self, LockSet};
use crate::sys::errno::{last_errno, set_errno};
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
fn is_malloc_class(class_id: u32) -> bool {
    class_id.wrapping_sub(1) < FIRST_USER_ID - 1
}

/// The object size of malloc class `class_id`.
fn class_size(class_id: u32) -> usize {
    size_classes::size_of_class(class_index(class_id))
}

const FREE: Operation = Operation {
    name: "free",
    frees: true,
};
const REALLOC: Operation = Operation {
    name: "realloc",
    frees: false,
};
const USABLE_SIZE: Operation = Operation {
    name: "malloc_usable_size",
    frees: false,
};

static INITIALISED: AtomicBool = AtomicBool::new(false);
/// `malloc` requests of at most this many bytes take the fast path: 0
/// until the size classes are registered, and when hardened (so that every
/// request takes `allocate_slow`).
static FAST_MALLOC_LIMIT: AtomicUsize = AtomicUsize::new(0);
/// `free` releases objects of class ids below this on its fast path: the
/// malloc classes, or none when hardened. The memory operand costs no more
/// than the constant it stands for.
static FAST_FREE_LIMIT: AtomicU32 = AtomicU32::new(FIRST_USER_ID);
static INIT_LOCK: Lock<()> = Lock::new(());

/// malloc's own locks, held across `fork()` before the core's (see
/// `process::fork`).
struct MallocLocks;

static FORK_REGISTRATION: AtomicU8 = AtomicU8::new(0);

impl LockSet for MallocLocks {
    fn each(f: &mut dyn FnMut(&dyn Forkable)) {
        f(&INIT_LOCK);
        f(hardening::lock());
    }

    fn registration() -> &'static AtomicU8 {
        &FORK_REGISTRATION
    }
}

/// Registers the size classes if that is not done yet; `false` when out of
/// memory.
#[cold]
fn initialise() -> bool {
    if !INITIALISED.load(Ordering::Acquire) {
        let _guard = INIT_LOCK.lock();
        if !INITIALISED.load(Ordering::Acquire) {
            for index in 0..size_classes::COUNT {
                let mut name = [0u8; 16];
                let len = size_classes::name_of_class(index, &mut name);
                let config = RawConfig {
                    name: Some(&name[..len]),
                    size: size_classes::size_of_class(index).max(16),
                    zero_init: false,
                    mapper_name: (index == 0).then_some(NO_ACCESS_MAPPER_NAME.as_bytes()),
                };
                if class_table::register_reserved(class_id(index), &config).is_err() {
                    return false;
                }
            }
            if crate::sys::config::settle_now().harden() {
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

#[cold]
fn out_of_memory() -> *mut c_void {
    set_errno(libc::ENOMEM);
    null_mut()
}

/// Allocates from malloc class `id`, registering the classes if needed.
#[cold]
fn allocate_small_slow(id: u32) -> *mut c_void {
    if !INITIALISED.load(Ordering::Acquire) && !initialise() {
        return out_of_memory();
    }
    // The fast path just failed (or ran on the sentinels before the
    // classes existed): go straight to the slow path.
    match thread_cache::allocate_slow(id) {
        Some(object) => object.as_ptr().cast(),
        None => out_of_memory(),
    }
}

#[inline(always)]
fn allocate_small(index: usize) -> *mut c_void {
    // SAFETY: size class indices are below `COUNT` (`index_for` and
    // `index_for_aligned` return one for every size up to `MAX_SMALL_SIZE`,
    // checked for each size by a unit test), so the id is below
    // FIRST_USER_ID <= MAX_CLASSES; telling the compiler spares the
    // allocation fast path its class id bound check.
    unsafe { core::hint::assert_unchecked(index < size_classes::COUNT) };
    let id = class_id(index);
    // SAFETY: malloc class ids are below FIRST_USER_ID <= MAX_CLASSES.
    match unsafe { thread_cache::pop_live(id as usize) } {
        Some(object) => object.as_ptr().cast(),
        None => allocate_small_slow(id),
    }
}

/// A large allocation, and whether it is known to be zero.
fn allocate_large(size: usize, align: usize) -> Option<(*mut c_void, bool)> {
    blocks::allocate(size, align).map(|(p, fresh)| (p.as_ptr(), fresh))
}

/// The size class serving a request of `size` bytes aligned to `align`
/// (a power of two), with room for the canary when hardened; `None` when
/// the large path serves it.
pub fn small_class_for(size: usize, align: usize) -> Option<usize> {
    if hardening::enabled() {
        hardening::index_for(size, align)
    } else {
        size_classes::index_for_request(size, align)
    }
}

/// The bytes a program may use in an object of malloc class `class_id`.
fn small_usable_size(class_id: u32) -> usize {
    if hardening::enabled() {
        hardening::usable_size(class_index(class_id))
    } else {
        class_size(class_id)
    }
}

/// Allocates `size` bytes aligned to `align` (a power of two); NULL with
/// ENOMEM on failure.
pub(crate) fn allocate_aligned(size: usize, align: usize) -> *mut c_void {
    if align <= MALLOC_ALIGNMENT {
        return malloc(size);
    }
    allocate_slow(size, align)
}

/// Any allocation that `malloc`'s fast path does not serve: before the
/// classes exist, when hardened, large or over-aligned. Kept out of line so
/// that `malloc`'s fast path needs no stack frame.
#[cold]
#[inline(never)]
fn allocate_slow(size: usize, align: usize) -> *mut c_void {
    if !initialise() {
        return out_of_memory();
    }
    match small_class_for(size, align) {
        Some(index) if hardening::enabled() => {
            let id = class_id(index);
            match thread_cache::allocate(id) {
                Some(object) => hardening::hand_out(id, index, object),
                None => out_of_memory(),
            }
        }
        Some(index) => allocate_small(index),
        None => match allocate_large(size, align) {
            Some((p, _)) => p,
            None => out_of_memory(),
        },
    }
}

/// Allocates `size` zeroed bytes aligned to `align` (a power of two),
/// clearing only memory not known to be zero (fresh large mappings are);
/// NULL with ENOMEM on failure.
pub(crate) fn allocate_zeroed(size: usize, align: usize) -> *mut c_void {
    let (p, zero) = if small_class_for(size, align).is_some() {
        (allocate_aligned(size, align), false)
    } else if !initialise() {
        return out_of_memory();
    } else {
        match allocate_large(size, align) {
            Some(allocation) => allocation,
            None => return out_of_memory(),
        }
    };
    if !zero && !p.is_null() {
        // SAFETY: a new allocation of at least `size` bytes.
        unsafe { p.cast::<u8>().write_bytes(0, size) };
    }
    p
}

/// Allocates `size` bytes, 16-byte aligned (`malloc(0)` gives a unique
/// pointer into inaccessible memory); NULL with ENOMEM on failure.
#[no_mangle]
pub extern "C" fn malloc(size: usize) -> *mut c_void {
    if size <= FAST_MALLOC_LIMIT.load(Ordering::Relaxed) {
        return allocate_small(size_classes::index_for(size));
    }
    allocate_slow(size, MALLOC_ALIGNMENT)
}

/// Frees `ptr` (NULL is a no-op); aborts with a `slitter:` line if `ptr`
/// is not a live allocation of slitter's malloc.
#[no_mangle]
pub extern "C" fn free(ptr: *mut c_void) {
    if let Some((id, slot)) = checks::take_back_any(ptr as usize) {
        if id < FAST_FREE_LIMIT.load(Ordering::Relaxed) {
            thread_cache::release(id, slot);
            return;
        }
        return free_taken(ptr, id, slot);
    }
    free_slow(ptr);
}

/// Frees the object that just passed `free`'s check, of class `id` that
/// the fast path does not release: hardened malloc objects (marked free
/// here, before their quarantine), or a class-API object (a misuse).
#[cold]
fn free_taken(ptr: *mut c_void, id: u32, slot: crate::layout::magazine::Slot) {
    if !is_malloc_class(id) {
        report_bad(ptr, FREE)
    }
    // SAFETY: the slot comes from `take_back_any`.
    unsafe { checks::mark_released(&slot) };
    keeping_errno(|| hardening::take_back(id, class_index(id), slot))
}

#[cold]
fn free_slow(ptr: *mut c_void) {
    if ptr.is_null() || keeping_errno(|| blocks::free(ptr)) {
        return;
    }
    report_bad(ptr, FREE)
}

/// Runs `f`, then gives `errno` back the value it had: `free` keeps
/// `errno` (as glibc does since 2.33), whatever system calls it makes
/// (`munmap`, `madvise`, `mincore`) and however they fail.
fn keeping_errno<R>(f: impl FnOnce() -> R) -> R {
    let saved = last_errno();
    let result = f();
    set_errno(saved);
    result
}

fn report_bad(ptr: *const c_void, operation: Operation) -> ! {
    let addr = ptr as usize;
    checks::report_bad_free(operation, addr, is_malloc_class)
}

/// A live allocation of slitter's malloc.
pub enum Owner {
    /// An object of malloc class `id`; `room`: `realloc` put it in a
    /// larger class than its size selects.
    Small { id: u32, room: bool },
    /// A large allocation with this many usable bytes.
    Large(usize),
}

/// What holds the live allocation at `ptr`; aborts if nothing does.
pub fn owner(ptr: *mut c_void, operation: Operation) -> Owner {
    match checks::live_class(ptr as usize) {
        Some((id, room)) if is_malloc_class(id) => Owner::Small { id, room },
        _ => match blocks::usable_size(ptr) {
            Some(usable) => Owner::Large(usable),
            None => report_bad(ptr, operation),
        },
    }
}

/// Allocates `count * size` zeroed bytes; NULL with ENOMEM on overflow or
/// failure.
#[no_mangle]
pub extern "C" fn calloc(count: usize, size: usize) -> *mut c_void {
    match count.checked_mul(size) {
        Some(total) => allocate_zeroed(total, MALLOC_ALIGNMENT),
        None => out_of_memory(),
    }
}

/// Resizes `ptr` to `size` bytes, in place when it fits; `realloc(NULL, n)`
/// is `malloc(n)` and `realloc(p, 0)` frees `p` and returns NULL (as glibc
/// does). On failure returns NULL with ENOMEM and leaves `ptr` unchanged.
#[no_mangle]
pub extern "C" fn realloc(ptr: *mut c_void, size: usize) -> *mut c_void {
    if ptr.is_null() {
        return malloc(size);
    }
    if size == 0 {
        free(ptr);
        return null_mut();
    }
    reallocate(ptr, size, MALLOC_ALIGNMENT)
}

/// Resizes the live allocation `ptr`, aligned to `align` (a power of two),
/// to `size` bytes at the same alignment, in place when it fits; aborts if
/// `ptr` is not a live allocation. On failure returns NULL with ENOMEM and
/// leaves `ptr` unchanged.
pub(crate) fn reallocate(ptr: *mut c_void, size: usize, align: usize) -> *mut c_void {
    match owner(ptr, REALLOC) {
        Owner::Small { id, room } => {
            // Keep the object while the new size selects its class, or a
            // smaller one that uses more than half of it; then it has room
            // (which the sized frees accept).
            let usable = small_usable_size(id);
            match small_class_for(size, align) {
                Some(index) if index == class_index(id) => ptr,
                Some(index) if index < class_index(id) && size > usable / 2 => {
                    if !room {
                        checks::mark_given_room(ptr as usize);
                    }
                    ptr
                }
                _ => move_object(ptr, usable, size, align),
            }
        }
        // A large block keeps a smaller size that uses more than half of
        // it without a call to the large path (a sized free accepts any
        // size up to its usable size).
        Owner::Large(usable)
            if size <= usable && size > usable / 2 && small_class_for(size, align).is_none() =>
        {
            ptr
        }
        Owner::Large(usable) if small_class_for(size, align).is_none() => {
            match blocks::resize(ptr, size, room(usable, size, align), align) {
                Resized::Done(p) => p.as_ptr(),
                Resized::OutOfMemory => out_of_memory(),
                Resized::NotLarge => report_bad(ptr, REALLOC),
                Resized::Move => move_object(ptr, usable, size, align),
            }
        }
        Owner::Large(usable) => move_object(ptr, usable, size, align),
    }
}

/// The size to give an allocation of `old_size` bytes, aligned to
/// `align`, that must grow to `size`: half as much again, so that an
/// object grown a little at a time (a string appended to) moves a
/// logarithmic number of times rather than once per size class; but a
/// request that a size class serves stays in one (the room is cut to the
/// largest request the classes serve, with the hardened canary).
fn room(old_size: usize, size: usize, align: usize) -> usize {
    let room = old_size.saturating_add(old_size / 2).max(size);
    if small_class_for(size, align).is_none() {
        return room;
    }
    let canary = if hardening::enabled() {
        hardening::CANARY
    } else {
        0
    };
    let room = room.min((MAX_SMALL_SIZE - canary).max(size));
    if small_class_for(room, align).is_some() {
        room
    } else {
        size
    }
}

/// Moves the `old_size`-byte object at `ptr` into a new allocation of
/// `size` bytes aligned to `align` (with [`room`] to grow, when it grows)
/// and frees it; NULL with ENOMEM (and `ptr` kept) on failure.
fn move_object(ptr: *mut c_void, old_size: usize, size: usize, align: usize) -> *mut c_void {
    let request = if size > old_size {
        room(old_size, size, align)
    } else {
        size
    };
    let (mut new, mut request) = (allocate_aligned(request, align), request);
    if new.is_null() && request != size {
        // No memory for the room: the size alone may still fit.
        (new, request) = (allocate_aligned(size, align), size);
    }
    if new.is_null() {
        return new;
    }
    if request != size && small_class_for(request, align) != small_class_for(size, align) {
        checks::mark_given_room(new as usize);
    }
    // SAFETY: both objects are live, distinct and at least this large.
    unsafe {
        core::ptr::copy_nonoverlapping(ptr.cast::<u8>(), new.cast::<u8>(), old_size.min(size))
    };
    free(ptr);
    new
}

/// `realloc(ptr, count * size)`, with NULL and ENOMEM on overflow.
#[no_mangle]
pub extern "C" fn reallocarray(ptr: *mut c_void, count: usize, size: usize) -> *mut c_void {
    match count.checked_mul(size) {
        Some(total) => realloc(ptr, total),
        None => out_of_memory(),
    }
}

/// Stores in `*memptr` `size` bytes aligned to `align`, which must be a
/// power of two multiple of `sizeof(void *)` (else EINVAL); returns ENOMEM
/// on failure. `*memptr` is untouched on error.
///
/// # Safety
/// `memptr` must be valid for a pointer-sized write.
#[no_mangle]
pub unsafe extern "C" fn posix_memalign(
    memptr: *mut *mut c_void,
    align: usize,
    size: usize,
) -> i32 {
    if !align.is_power_of_two() || !align.is_multiple_of(core::mem::size_of::<usize>()) {
        return libc::EINVAL;
    }
    let errno = last_errno();
    let p = allocate_aligned(size, align);
    if p.is_null() {
        set_errno(errno);
        return libc::ENOMEM;
    }
    // SAFETY: guaranteed by the caller.
    unsafe { *memptr = p };
    0
}

/// `size` bytes aligned to `align`, a power of two (else NULL with EINVAL).
#[no_mangle]
pub extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    if !align.is_power_of_two() {
        set_errno(libc::EINVAL);
        return null_mut();
    }
    allocate_aligned(size, align)
}

/// `size` bytes aligned to `align`, rounded up to a power of two (glibc);
/// NULL with EINVAL when no power of two is that large.
#[no_mangle]
pub extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
    match align.checked_next_power_of_two() {
        Some(align) => allocate_aligned(size, align),
        None => {
            set_errno(libc::EINVAL);
            null_mut()
        }
    }
}

/// `size` bytes aligned to the page size.
#[no_mangle]
pub extern "C" fn valloc(size: usize) -> *mut c_void {
    allocate_aligned(size, PAGE_SIZE)
}

/// Whole pages (at least one) holding `size` bytes, page-aligned.
#[no_mangle]
pub extern "C" fn pvalloc(size: usize) -> *mut c_void {
    match blocks::page_round(size.max(1)) {
        Some(rounded) => allocate_aligned(rounded, PAGE_SIZE),
        None => out_of_memory(),
    }
}

/// The number of usable bytes at `ptr` (0 for NULL); aborts if `ptr` is
/// not a live allocation.
#[no_mangle]
pub extern "C" fn malloc_usable_size(ptr: *mut c_void) -> usize {
    if ptr.is_null() {
        return 0;
    }
    match owner(ptr, USABLE_SIZE) {
        Owner::Small { id, .. } => small_usable_size(id),
        Owner::Large(usable) => usable,
    }
}

/// `free`, under its obsolete name.
#[no_mangle]
pub extern "C" fn cfree(ptr: *mut c_void) {
    free(ptr)
}

/// glibc's internal name for `malloc`.
#[no_mangle]
pub extern "C" fn __libc_malloc(size: usize) -> *mut c_void {
    malloc(size)
}

/// glibc's internal name for `free`.
#[no_mangle]
pub extern "C" fn __libc_free(ptr: *mut c_void) {
    free(ptr)
}

/// glibc's internal name for `calloc`.
#[no_mangle]
pub extern "C" fn __libc_calloc(count: usize, size: usize) -> *mut c_void {
    calloc(count, size)
}

/// glibc's internal name for `realloc`.
#[no_mangle]
pub extern "C" fn __libc_realloc(ptr: *mut c_void, size: usize) -> *mut c_void {
    realloc(ptr, size)
}

/// glibc's internal name for `memalign`.
#[no_mangle]
pub extern "C" fn __libc_memalign(align: usize, size: usize) -> *mut c_void {
    memalign(align, size)
}

/// glibc's internal name for `valloc`.
#[no_mangle]
pub extern "C" fn __libc_valloc(size: usize) -> *mut c_void {
    valloc(size)
}

/// glibc's internal name for `pvalloc`.
#[no_mangle]
pub extern "C" fn __libc_pvalloc(size: usize) -> *mut c_void {
    pvalloc(size)
}

/// glibc's internal name for `posix_memalign`.
///
/// # Safety
/// As for [`posix_memalign`].
#[no_mangle]
pub unsafe extern "C" fn __posix_memalign(
    memptr: *mut *mut c_void,
    align: usize,
    size: usize,
) -> i32 {
    // SAFETY: forwarded from the caller.
    unsafe { posix_memalign(memptr, align, size) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_room_is_half_again_within_the_size_classes() {
        assert_eq!(room(100, 101, MALLOC_ALIGNMENT), 150);
        assert_eq!(room(64, 1000, MALLOC_ALIGNMENT), 1000);
        assert_eq!(room(30_000, 30_001, MALLOC_ALIGNMENT), MAX_SMALL_SIZE);
        assert_eq!(
            room(MAX_SMALL_SIZE, MAX_SMALL_SIZE + 1, MALLOC_ALIGNMENT),
            49_152
        );
        assert_eq!(room(1 << 20, (1 << 20) + 1, MALLOC_ALIGNMENT), 3 << 19);
    }

    #[test]
    fn a_string_grown_a_byte_at_a_time_moves_a_logarithmic_number_of_times() {
        let mut p = malloc(1).cast::<u8>();
        let mut moves = 0;
        for len in 1..100_000usize {
            // SAFETY: `p` holds `len` bytes; realloc keeps them.
            let q = unsafe {
                p.add(len - 1).write(len as u8);
                realloc(p.cast(), len + 1).cast::<u8>()
            };
            assert!(!q.is_null());
            // SAFETY: the first `len` bytes moved with the object.
            assert_eq!(unsafe { q.add(len - 1).read() }, len as u8);
            moves += usize::from(q != p);
            p = q;
        }
        free(p.cast());
        // Growing by half again from 16 bytes to 100,000 moves about 20
        // times (18 measured); a move per size class would be over 70.
        assert!(moves <= 30, "{moves} moves");
    }
}
