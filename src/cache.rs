//! The per-thread cache: the allocation and release fast paths.
//!
//! Owns: for each thread, one allocation magazine and one release magazine
//! per class, and the exchange of whole magazines with the class's stacks,
//! the press and the rack on the slow paths; the zeroing of objects for
//! classes that ask for it; the return of every magazine when a thread
//! exits.
//!
//! The thread's state is a small header in an initial-exec thread-local
//! declared in `c/thread_state.c` (one `%fs`-relative access, no
//! `__tls_get_addr`, no destructor registration that could allocate). It
//! points to two arrays of magazine tops indexed by class id (see
//! `magazine.rs` for tops): at first to read-only arrays, also in C, whose
//! entries are the tops of an always-empty and an always-full sentinel
//! magazine, then, from the thread's first slow path, to an [`EntryArray`]
//! of its own, taken from a free list (or the arena) and returned to it
//! when the thread exits, via a `pthread_key_create` destructor.
//!
//! Invariants: every entry of the arrays a thread points to is the top of a
//! magazine owned by the thread or of a sentinel (never written: the
//! fast-path tests send every use of a sentinel to a slow path), so the
//! fast paths need no bound, length or null check beyond the class id
//! bound on allocation; the fast paths use no lock and no atomic
//! read-modify-write; objects in the allocation magazine of a `zero_init`
//! class are zero (they are cleared when the magazine is installed there,
//! or come fresh from the press); after a thread's exit destructor ran, its
//! later calls go through a temporary entry that is flushed at once, so
//! nothing is cached for a dead thread.

use core::arch::asm;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use crate::arena;
use crate::class::{self, ClassInfo};
use crate::constants::{MAGAZINE_ALIGNMENT, MAX_CLASSES};
use crate::lock::Lock;
use crate::magazine::{
    count_below, magazine_of, top_is_full, top_may_be_empty, Magazine, Slot, FIRST_SLOT_OFFSET,
};
use crate::rack;
use crate::span::LIVE;

/// One class's magazines in one thread, as the slow paths handle them
/// (with exact counts, unlike the tops of the fast paths).
#[derive(Clone, Copy)]
struct CacheEntry {
    alloc: *mut Magazine,
    release: *mut Magazine,
}

/// A thread's entries, recycled through a free list when the thread exits.
/// Cache-line aligned (so its size is a multiple of the line too): two
/// threads' arrays never share a line, so thread caches never falsely
/// share.
#[repr(C, align(64))]
struct EntryArray {
    next_free: *mut EntryArray,
    alloc: [*mut Slot; MAX_CLASSES],
    release: [*mut Slot; MAX_CLASSES],
}

/// The thread-local cache header (layout shared with C's
/// `struct slitter_thread_state`).
#[repr(C)]
pub struct ThreadState {
    /// Allocation-magazine tops, indexed by class id.
    alloc: *mut *mut Slot,
    /// Release-magazine tops, indexed by class id.
    release: *mut *mut Slot,
    flags: usize,
    /// The thread's own entries, or null before its first slow path.
    array: *mut EntryArray,
}

/// Offset of `ThreadState::release`, for the release fast path.
const RELEASE_FIELD: usize = core::mem::offset_of!(ThreadState, release);
static_assertions::const_assert_eq!(core::mem::offset_of!(ThreadState, alloc), 0);

/// `ThreadState::flags` bit: the exit destructor has run.
const EXITED: usize = 1;

extern "C" {
    static mut slitter_thread_state: ThreadState;
    static slitter_empty_sentinel: Magazine;
    static slitter_full_sentinel: Magazine;
    static slitter_initial_alloc: *mut *mut Slot;
    static slitter_initial_release: *mut *mut Slot;
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

/// This thread's array of tops at `FIELD` (0: allocation, `RELEASE_FIELD`:
/// release), read with one `%fs`-relative load.
#[inline(always)]
fn tops<const FIELD: usize>() -> *mut *mut Slot {
    let tops: *mut *mut Slot;
    // SAFETY: as in `state`, then reads one field of this thread's header,
    // which only this thread writes.
    unsafe {
        asm!(
            "mov {tops}, qword ptr [rip + {tls}@GOTTPOFF]",
            "mov {tops}, qword ptr fs:[{tops} + {field}]",
            tops = out(reg) tops,
            tls = sym slitter_thread_state,
            field = const FIELD,
            options(pure, readonly, nostack, preserves_flags)
        );
    }
    tops
}

fn empty_sentinel() -> *mut Magazine {
    &raw const slitter_empty_sentinel as *mut Magazine
}

fn full_sentinel() -> *mut Magazine {
    &raw const slitter_full_sentinel as *mut Magazine
}

fn is_sentinel(magazine: *mut Magazine) -> bool {
    magazine == empty_sentinel() || magazine == full_sentinel()
}

/// An entry that holds no magazine.
fn sentinel_entry() -> CacheEntry {
    CacheEntry {
        alloc: empty_sentinel(),
        release: full_sentinel(),
    }
}

/// The fast path of allocation: pops from this thread's allocation
/// magazine for `class_id` and marks the object live, or returns `None` to
/// send the caller to a slow path.
#[inline(always)]
pub fn allocate_fast(class_id: u32) -> Option<NonNull<u8>> {
    if class_id as usize >= MAX_CLASSES {
        return None;
    }
    // SAFETY: the thread's tops array has MAX_CLASSES entries, each the top
    // of a magazine this thread owns or of a sentinel; a top that passes
    // the emptiness test has a filled slot below it, in a real magazine.
    unsafe {
        let entry = tops::<0>().add(class_id as usize);
        let top = *entry;
        if top_may_be_empty(top) {
            return None;
        }
        let slot = top.sub(1);
        *entry = slot;
        (*(*slot).state).store(LIVE, Ordering::Relaxed);
        // Magazines only hold objects of spans, never null.
        Some(NonNull::new_unchecked((*slot).object))
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

/// Releases an object to class `class_id`: the caller has checked that
/// the object belongs to the class (so `class_id < MAX_CLASSES`) and has
/// marked it free.
#[contracts::debug_requires((class_id as usize) < MAX_CLASSES)]
#[inline(always)]
pub fn release(class_id: u32, slot: Slot) {
    // SAFETY: as in `allocate_fast`; a top that passes the fullness test
    // is a free slot of a real magazine.
    unsafe {
        let entry = tops::<RELEASE_FIELD>().add(class_id as usize);
        let top = *entry;
        if !top_is_full(top) {
            top.write(slot);
            *entry = top.add(1);
            return;
        }
    }
    release_slow(class_id, slot)
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

/// The slow path of allocation, for callers whose fast path just failed;
/// `None` when out of memory. Aborts if no such class exists.
#[cold]
pub fn allocate_slow(class_id: u32) -> Option<NonNull<u8>> {
    let info = class_or_die(class_id);
    if let Some(object) = swap_and_allocate(info) {
        return Some(object);
    }
    with_entry(info, |entry| {
        // SAFETY: `refill` leaves a real, non-empty magazine of this thread
        // in `entry.alloc`.
        let slot = unsafe { (*refill(entry, info)?).pop() };
        // SAFETY: state pointers in magazines point to state bytes.
        unsafe { (*slot.state).store(LIVE, Ordering::Relaxed) };
        NonNull::new(slot.object)
    })
    .flatten()
}

#[cold]
fn release_slow(class_id: u32, slot: Slot) {
    let info = class_or_die(class_id);
    let pushed = with_entry(info, |entry| {
        let magazine = make_room(entry, info)?;
        // SAFETY: `make_room` returns this thread's non-full release magazine.
        unsafe { (*magazine).push(slot) };
        Some(())
    })
    .flatten();
    if pushed.is_none() {
        crate::fatal::die(format_args!(
            "out of memory for a magazine while releasing {:#x} into class {}",
            slot.object as usize,
            info.name()
        ));
    }
}

/// The cheapest slow path, and the only place where the two magazines of
/// an entry trade places on allocation: when this thread's allocation
/// magazine for `info` is empty (or the empty sentinel) and its release
/// magazine holds objects, the release magazine becomes the allocation
/// magazine (its objects cleared first for a `zero_init` class) and the
/// empty one takes releases; then allocates. Works on the tops directly,
/// without the entry bookkeeping of `with_entry`. `None` when that does
/// not apply.
fn swap_and_allocate(info: &ClassInfo) -> Option<NonNull<u8>> {
    let first_slot = |top: *mut Slot| (top as usize) % MAGAZINE_ALIGNMENT == FIRST_SLOT_OFFSET;
    // SAFETY: class ids are below MAX_CLASSES; the entries are this
    // thread's (a thread still on the read-only initial arrays has the full
    // sentinel as release magazine, so nothing is written); a release top
    // that is not the full sentinel's and not at its magazine's first slot
    // has filled slots below it in a real magazine the thread owns.
    unsafe {
        let alloc = tops::<0>().add(info.id as usize);
        let release = tops::<RELEASE_FIELD>().add(info.id as usize);
        let (alloc_top, release_top) = (*alloc, *release);
        if !first_slot(alloc_top)
            || first_slot(release_top)
            || magazine_of(release_top) == full_sentinel()
        {
            return None;
        }
        if info.zero_init {
            clear_objects(load(release_top), info);
        }
        // The empty sentinel must not take releases: it is never written.
        *release = if magazine_of(alloc_top) == empty_sentinel() {
            Magazine::top(full_sentinel())
        } else {
            alloc_top
        };
        let slot = release_top.sub(1);
        *alloc = slot;
        (*(*slot).state).store(LIVE, Ordering::Relaxed);
        NonNull::new((*slot).object)
    }
}

/// The magazine whose top is `top`, with its count brought up to date.
fn load(top: *mut Slot) -> *mut Magazine {
    let magazine = magazine_of(top);
    if !is_sentinel(magazine) {
        // SAFETY: a non-sentinel magazine of a thread's entry is owned by
        // the thread.
        unsafe { (*magazine).count = count_below(top) };
    }
    magazine
}

/// Runs `f` on this thread's entry for `info`, giving the thread its own
/// entry array if needed; after thread exit, runs it on a temporary entry
/// and flushes that entry afterwards. `None` when out of memory.
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
    if state.array.is_null() {
        adopt_entry_array(state)?;
    }
    let index = info.id as usize;
    // SAFETY: class ids are below MAX_CLASSES, and the arrays are the
    // thread's own.
    unsafe {
        let alloc = state.alloc.add(index);
        let release = state.release.add(index);
        let mut entry = CacheEntry {
            alloc: load(*alloc),
            release: load(*release),
        };
        let result = f(&mut entry);
        *alloc = Magazine::top(entry.alloc);
        *release = Magazine::top(entry.release);
        Some(result)
    }
}

/// Head of the free list of entry arrays (an address; 0 when empty).
static FREE_ARRAYS: Lock<usize> = Lock::new(0);
static ENTRY_ARRAYS_CREATED: AtomicUsize = AtomicUsize::new(0);

/// Gives this thread an entry array of its own, with every entry on the
/// sentinels, and registers its exit hook.
fn adopt_entry_array(state: &mut ThreadState) -> Option<()> {
    let array = take_entry_array()?;
    let empty = Magazine::top(empty_sentinel());
    let full = Magazine::top(full_sentinel());
    // SAFETY: `array` is a valid EntryArray now owned by this thread.
    unsafe {
        (*array).alloc.fill(empty);
        (*array).release.fill(full);
        state.alloc = (*array).alloc.as_mut_ptr();
        state.release = (*array).release.as_mut_ptr();
    }
    state.array = array;
    register_exit_hook(array);
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

/// Zeroes the objects of a magazine about to become the allocation
/// magazine of a `zero_init` class.
fn clear_objects(magazine: *mut Magazine, info: &ClassInfo) {
    if !info.zero_init {
        return;
    }
    // SAFETY: the caller owns the magazine; its objects are free objects
    // of `info`, `object_size` bytes each, owned by the allocator.
    unsafe {
        for slot in (*magazine).objects() {
            slot.object.write_bytes(0, info.object_size);
        }
    }
}

/// Ensures `entry.alloc` is a non-empty magazine of this thread and
/// returns it; `None` when out of memory.
fn refill(entry: &mut CacheEntry, info: &'static ClassInfo) -> Option<*mut Magazine> {
    // SAFETY (for the dereferences below): entry magazines are either
    // sentinels, only read, or magazines owned by this thread.
    unsafe {
        if !(*entry.alloc).is_empty() {
            // The fast path's emptiness test also sends full magazines here.
            return Some(entry.alloc);
        }
        // `swap_and_allocate` ran first: the release magazine holds nothing.
        if let Some(magazine) = info.full.pop().or_else(|| info.partial.pop()) {
            retire(entry.alloc, info);
            entry.alloc = magazine.as_ptr();
            clear_objects(entry.alloc, info);
            return Some(entry.alloc);
        }
        if is_sentinel(entry.alloc) {
            entry.alloc = rack::allocate_empty()?.as_ptr();
        }
        // Fresh objects from the press are zero already.
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
                entry.alloc = empty_sentinel();
            } else {
                clear_objects(entry.alloc, info);
            }
            return Some(entry.release);
        }
        let empty = rack::allocate_empty()?;
        retire(entry.release, info);
        entry.release = empty.as_ptr();
        Some(entry.release)
    }
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
    let array = state.array;
    if array.is_null() {
        return;
    }
    for index in 1..MAX_CLASSES {
        if let Some(info) = class::info(index as u32) {
            // SAFETY: index < MAX_CLASSES, inside this thread's arrays,
            // whose magazines it owns; the entries go with the array.
            let mut entry = unsafe {
                CacheEntry {
                    alloc: load(*state.alloc.add(index)),
                    release: load(*state.release.add(index)),
                }
            };
            flush_entry(&mut entry, info);
        }
    }
    // SAFETY: the initial arrays are valid for the rest of the process.
    unsafe {
        state.alloc = slitter_initial_alloc;
        state.release = slitter_initial_release;
    }
    state.array = core::ptr::null_mut();
    state.flags |= EXITED;
    let mut head = FREE_ARRAYS.lock();
    // SAFETY: the array is no longer reachable from this thread.
    unsafe { (*array).next_free = *head as *mut EntryArray };
    *head = array as usize;
}

/// Number of entry arrays ever created (bounded by the peak number of
/// threads alive at once).
pub fn entry_arrays_created() -> usize {
    ENTRY_ARRAYS_CREATED.load(Ordering::Relaxed)
}
