//! The per-thread cache: the allocation and release fast paths.
//!
//! Owns: for each thread, one allocation magazine and one release magazine
//! per class it has used, and the exchange of whole magazines with the
//! class's stacks, the press and the rack on the slow paths; the return of
//! every magazine when a thread exits.
//!
//! The thread's state is a small header in an initial-exec thread-local
//! declared in `c/thread_state.c` (one `%fs`-relative access, no
//! `__tls_get_addr`, no destructor registration that could allocate). It
//! points into an [`EntryArray`] (one allocation-magazine and one
//! release-magazine pointer per class id) taken from a free list (or the
//! arena) on the thread's first slow path, and returned when the thread
//! exits, via a `pthread_key_create` destructor.
//!
//! Invariants: entries below `len` point to real magazines or to the two
//! sentinels (an always-empty allocation sentinel and an always-full release
//! sentinel, never written), so the fast paths need no null check; the fast
//! paths use no lock and no atomic read-modify-write; after a thread's exit
//! destructor ran, its later calls go through a temporary entry that is
//! flushed at once, so nothing is cached for a dead thread.

use core::arch::asm;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use crate::arena;
use crate::class::{self, ClassInfo};
use crate::constants::MAX_CLASSES;
use crate::lock::Lock;
use crate::magazine::Magazine;
use crate::rack;

/// One class's magazines in one thread, as the slow paths handle them.
#[derive(Clone, Copy)]
struct CacheEntry {
    alloc: *mut Magazine,
    release: *mut Magazine,
}

/// A thread's entries, recycled through a free list when the thread exits.
/// Allocation and release magazines are in separate arrays so the fast
/// paths index them with a scaled addressing mode.
#[repr(C)]
struct EntryArray {
    next_free: *mut EntryArray,
    alloc: [*mut Magazine; MAX_CLASSES],
    release: [*mut Magazine; MAX_CLASSES],
}

/// The thread-local cache header (layout shared with C's
/// `struct slitter_thread_state`).
#[repr(C)]
pub struct ThreadState {
    /// `array.alloc`, or null before the thread's first slow path.
    alloc: *mut *mut Magazine,
    /// `array.release`, or null before the thread's first slow path.
    release: *mut *mut Magazine,
    /// Number of valid entries in each array.
    len: usize,
    flags: usize,
    array: *mut EntryArray,
}

/// `ThreadState::flags` bit: the exit destructor has run.
const EXITED: usize = 1;

extern "C" {
    static mut slitter_thread_state: ThreadState;
}

/// This thread's cache header.
#[inline(always)]
fn state() -> *mut ThreadState {
    let state: *mut ThreadState;
    // SAFETY: reads the thread pointer and adds the initial-exec TLS offset
    // of `slitter_thread_state` (a hidden symbol of this library), giving
    // the address of this thread's instance; touches no other memory.
    unsafe {
        asm!(
            "mov {state}, qword ptr fs:[0]",
            "add {state}, qword ptr [rip + {tls}@GOTTPOFF]",
            state = out(reg) state,
            tls = sym slitter_thread_state,
            options(pure, readonly, nostack, preserves_flags)
        );
    }
    state
}

/// Never written: the fast path sees it as empty (allocation slot) or full
/// (release slot) and falls to the slow path.
static EMPTY_SENTINEL: Magazine = Magazine::empty();
static FULL_SENTINEL: Magazine = Magazine::full();

fn sentinel(magazine: &'static Magazine) -> *mut Magazine {
    magazine as *const Magazine as *mut Magazine
}

fn is_sentinel(magazine: *mut Magazine) -> bool {
    magazine == sentinel(&EMPTY_SENTINEL) || magazine == sentinel(&FULL_SENTINEL)
}

/// An entry that holds no magazine.
fn sentinel_entry() -> CacheEntry {
    CacheEntry {
        alloc: sentinel(&EMPTY_SENTINEL),
        release: sentinel(&FULL_SENTINEL),
    }
}

/// The fast path of allocation: pops from this thread's allocation
/// magazine for `class_id`, or returns `None` to send the caller to a slow
/// path.
#[inline(always)]
fn allocate_fast(class_id: u32) -> Option<NonNull<u8>> {
    let state = state();
    // SAFETY: `state` is this thread's header; entries below `len` are
    // valid, and each points to a magazine owned by this thread or to a
    // sentinel, which the count test keeps us from writing.
    unsafe {
        if (class_id as usize) >= (*state).len {
            return None;
        }
        let magazine = &mut **(*state).alloc.add(class_id as usize);
        if magazine.is_empty() {
            return None;
        }
        let object = magazine.pop();
        clear(object, magazine.zero_size);
        // Magazines only hold objects of spans, never null.
        Some(NonNull::new_unchecked(object))
    }
}

/// Allocates an object of class `class_id`; `None` when out of memory.
/// Aborts if no such class exists.
#[inline(always)]
pub fn allocate(class_id: u32) -> Option<NonNull<u8>> {
    allocate_fast(class_id).or_else(|| allocate_slow(class_id))
}

/// Allocates an object of class `class_id`, aborting with a message when
/// out of memory or if no such class exists.
#[inline(always)]
pub fn allocate_or_die(class_id: u32) -> NonNull<u8> {
    match allocate_fast(class_id) {
        Some(object) => object,
        None => allocate_slow_or_die(class_id),
    }
}

/// Releases `object` to class `class_id`; the caller has checked that the
/// object belongs to the class and is live.
#[inline(always)]
pub fn release(class_id: u32, object: NonNull<u8>) {
    let state = state();
    // SAFETY: as in `allocate_fast`.
    unsafe {
        if (class_id as usize) < (*state).len {
            let magazine = &mut **(*state).release.add(class_id as usize);
            if !magazine.is_full() {
                magazine.push(object.as_ptr());
                return;
            }
        }
    }
    release_slow(class_id, object)
}

#[inline(always)]
fn clear(object: *mut u8, zero_size: u32) {
    if zero_size != 0 {
        // SAFETY: `object` is a free object of at least `zero_size` bytes,
        // now owned by the caller.
        unsafe { object.write_bytes(0, zero_size as usize) };
    }
}

fn class_or_die(class_id: u32) -> &'static ClassInfo {
    match class::info(class_id) {
        Some(info) => info,
        None => crate::fatal::die(format_args!("use of unknown class id {class_id}")),
    }
}

#[cold]
#[inline(never)]
fn allocate_slow_or_die(class_id: u32) -> NonNull<u8> {
    match allocate_slow(class_id) {
        Some(object) => object,
        None => crate::fatal::die(format_args!(
            "out of memory allocating from ({})",
            crate::checks::ClassLabel(class_id)
        )),
    }
}

#[cold]
fn allocate_slow(class_id: u32) -> Option<NonNull<u8>> {
    let info = class_or_die(class_id);
    with_entry(info, |entry| {
        // SAFETY: `refill` leaves a real, non-empty magazine in `entry.alloc`.
        let magazine = unsafe { &mut *refill(entry, info)? };
        let object = magazine.pop();
        clear(object, magazine.zero_size);
        NonNull::new(object)
    })
    .flatten()
}

#[cold]
fn release_slow(class_id: u32, object: NonNull<u8>) {
    let info = class_or_die(class_id);
    let pushed = with_entry(info, |entry| {
        let magazine = make_room(entry, info)?;
        // SAFETY: `make_room` returns this thread's non-full release magazine.
        unsafe { (*magazine).push(object.as_ptr()) };
        Some(())
    })
    .flatten();
    if pushed.is_none() {
        crate::fatal::die(format_args!(
            "out of memory for a magazine while releasing {:#x} into class {}",
            object.as_ptr() as usize,
            info.name()
        ));
    }
}

/// Runs `f` on this thread's entry for `info`, creating the thread's cache
/// if needed; after thread exit, runs it on a temporary entry and flushes
/// that entry afterwards. `None` when out of memory.
fn with_entry<R>(info: &'static ClassInfo, f: impl FnOnce(&mut CacheEntry) -> R) -> Option<R> {
    let state = state();
    // SAFETY: `state` is this thread's header, only touched by this thread.
    let state = unsafe { &mut *state };
    if state.flags & EXITED != 0 {
        let mut temporary = sentinel_entry();
        let result = f(&mut temporary);
        flush_entry(&mut temporary, info);
        return Some(result);
    }
    let index = info.id as usize;
    if index >= state.len {
        extend(state, index)?;
    }
    // SAFETY: index < len, so both entries are initialised and ours.
    unsafe {
        let alloc = state.alloc.add(index);
        let release = state.release.add(index);
        let mut entry = CacheEntry {
            alloc: *alloc,
            release: *release,
        };
        let result = f(&mut entry);
        *alloc = entry.alloc;
        *release = entry.release;
        Some(result)
    }
}

/// Head of the free list of entry arrays (an address; 0 when empty).
static FREE_ARRAYS: Lock<usize> = Lock::new(0);
static ENTRY_ARRAYS_CREATED: AtomicUsize = AtomicUsize::new(0);

/// Makes entries `[len, index]` valid, taking an entry array first if the
/// thread has none.
#[contracts::debug_requires(index < MAX_CLASSES && index >= state.len)]
fn extend(state: &mut ThreadState, index: usize) -> Option<()> {
    if state.array.is_null() {
        let array = take_entry_array()?;
        state.array = array;
        // SAFETY: `array` is a valid EntryArray now owned by this thread.
        unsafe {
            state.alloc = (*array).alloc.as_mut_ptr();
            state.release = (*array).release.as_mut_ptr();
        }
        register_exit_hook(array);
    }
    let empty = sentinel_entry();
    for i in state.len..=index {
        // SAFETY: i < MAX_CLASSES, inside this thread's arrays.
        unsafe {
            state.alloc.add(i).write(empty.alloc);
            state.release.add(i).write(empty.release);
        }
    }
    state.len = index + 1;
    Some(())
}

fn take_entry_array() -> Option<*mut EntryArray> {
    {
        let mut head = FREE_ARRAYS.lock();
        let array = *head as *mut EntryArray;
        if !array.is_null() {
            // SAFETY: arrays on the free list are valid and unowned.
            *head = unsafe { (*array).next_free } as usize;
            return Some(array);
        }
    }
    let array = arena::allocate(
        core::mem::size_of::<EntryArray>(),
        core::mem::align_of::<EntryArray>(),
    )?;
    ENTRY_ARRAYS_CREATED.fetch_add(1, Ordering::Relaxed);
    Some(array.cast::<EntryArray>().as_ptr())
}

/// Ensures `entry.alloc` is a non-empty magazine of this thread and
/// returns it; `None` when out of memory.
fn refill(entry: &mut CacheEntry, info: &'static ClassInfo) -> Option<*mut Magazine> {
    // SAFETY (for the dereferences below): entry magazines are either
    // sentinels, only read, or magazines owned by this thread.
    unsafe {
        if !is_sentinel(entry.release) && !(*entry.release).is_empty() {
            core::mem::swap(&mut entry.alloc, &mut entry.release);
            if is_sentinel(entry.release) {
                entry.release = sentinel(&FULL_SENTINEL);
            }
            return Some(entry.alloc);
        }
        if let Some(magazine) = info.full.pop().or_else(|| info.partial.pop()) {
            retire(entry.alloc, info);
            entry.alloc = install(magazine, info);
            return Some(entry.alloc);
        }
        if is_sentinel(entry.alloc) {
            entry.alloc = install(rack::allocate_empty()?, info);
        }
        info.press.allocate_batch(&mut *entry.alloc).ok()?;
        Some(entry.alloc)
    }
}

/// Ensures `entry.release` is a non-full magazine of this thread and
/// returns it; `None` when out of memory.
fn make_room(entry: &mut CacheEntry, info: &'static ClassInfo) -> Option<*mut Magazine> {
    // SAFETY: as in `refill`.
    unsafe {
        if !is_sentinel(entry.alloc) && (*entry.alloc).is_empty() {
            core::mem::swap(&mut entry.alloc, &mut entry.release);
            if is_sentinel(entry.alloc) {
                entry.alloc = sentinel(&EMPTY_SENTINEL);
            }
            return Some(entry.release);
        }
        let empty = rack::allocate_empty()?;
        retire(entry.release, info);
        entry.release = install(empty, info);
        Some(entry.release)
    }
}

/// Prepares a magazine for use in a cache entry of `info`.
fn install(magazine: NonNull<Magazine>, info: &ClassInfo) -> *mut Magazine {
    // SAFETY: the caller owns `magazine`.
    unsafe { (*magazine.as_ptr()).zero_size = info.zero_size() };
    magazine.as_ptr()
}

/// Gives a magazine taken out of a cache entry back to where it belongs:
/// the class's full or partial stack, or the rack if empty.
fn retire(magazine: *mut Magazine, info: &ClassInfo) {
    let Some(magazine) = NonNull::new(magazine).filter(|m| !is_sentinel(m.as_ptr())) else {
        return;
    };
    // SAFETY: the caller owned `magazine` and gives it up here.
    let m = unsafe { magazine.as_ref() };
    if m.is_empty() {
        rack::release_empty(magazine);
    } else if m.is_full() {
        info.full.push(magazine);
    } else {
        info.partial.push(magazine);
    }
}

fn flush_entry(entry: &mut CacheEntry, info: &ClassInfo) {
    retire(entry.alloc, info);
    retire(entry.release, info);
    *entry = sentinel_entry();
}

/// The pthread key whose destructor flushes an exiting thread's cache
/// (0 until created; stored as key + 1).
static EXIT_KEY: AtomicU32 = AtomicU32::new(0);
static EXIT_KEY_LOCK: Lock<()> = Lock::new(());

fn exit_key() -> libc::pthread_key_t {
    let key = EXIT_KEY.load(Ordering::Acquire);
    if key != 0 {
        return key - 1;
    }
    let _guard = EXIT_KEY_LOCK.lock();
    let key = EXIT_KEY.load(Ordering::Acquire);
    if key != 0 {
        return key - 1;
    }
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: `key` is a valid out-pointer; the destructor is an
    // `extern "C"` function that never unwinds.
    if unsafe { libc::pthread_key_create(&mut key, Some(on_thread_exit)) } != 0 {
        crate::fatal::die(format_args!("pthread_key_create failed"));
    }
    EXIT_KEY.store(key + 1, Ordering::Release);
    key
}

/// Arranges for `on_thread_exit` to run when this thread exits.
fn register_exit_hook(array: *mut EntryArray) {
    // SAFETY: the key exists; the value is only passed back to our destructor.
    unsafe { libc::pthread_setspecific(exit_key(), array.cast()) };
}

/// Returns every magazine of the exiting thread to the classes and the
/// rack, and its entry array to the free list.
extern "C" fn on_thread_exit(_array: *mut libc::c_void) {
    // SAFETY: runs in the exiting thread, which owns its header.
    let state = unsafe { &mut *state() };
    for index in 1..state.len {
        if let Some(info) = class::info(index as u32) {
            // SAFETY: index < len, inside this thread's arrays, whose
            // magazines it owns; the entries are dropped with the arrays.
            let mut entry = unsafe {
                CacheEntry {
                    alloc: *state.alloc.add(index),
                    release: *state.release.add(index),
                }
            };
            flush_entry(&mut entry, info);
        }
    }
    let array = state.array;
    state.len = 0;
    state.alloc = core::ptr::null_mut();
    state.release = core::ptr::null_mut();
    state.array = core::ptr::null_mut();
    state.flags |= EXITED;
    if !array.is_null() {
        let mut head = FREE_ARRAYS.lock();
        // SAFETY: the array is no longer reachable from this thread.
        unsafe { (*array).next_free = *head as *mut EntryArray };
        *head = array as usize;
    }
}

/// Number of entry arrays ever created (bounded by the peak number of
/// threads alive at once).
pub fn entry_arrays_created() -> usize {
    ENTRY_ARRAYS_CREATED.load(Ordering::Relaxed)
}
