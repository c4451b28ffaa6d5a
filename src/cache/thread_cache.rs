//! The per-thread cache: the allocation and release fast paths.
//!
//! Owns: for each thread, one allocation magazine and one release magazine
//! per class, each holding at most the class's `magazine_capacity`
//! objects, and the span of the class the thread owns; on the slow paths,
//! the filling of the allocation magazine from that span (through the
//! press) and the giving back of a full release magazine's objects to
//! their spans, the magazines themselves coming from and going back to
//! the rack; the zeroing of objects for
//! classes that ask for it; the thread's quarantine, made on its first
//! delayed release (`release_later`); the return of every object, span and
//! magazine, and of every object in the quarantine, when a thread exits,
//! when it trims its cache (`malloc_trim`), and in a forked child for the
//! threads that do not exist there; the reclaim of the spans of threads
//! idle for [`IDLE_MS`], by a thread that would otherwise take a fresh
//! span (or by `malloc_trim`); the ticks of the purge on slow paths.
//!
//! The thread's state is a small header in an initial-exec thread-local
//! declared in `c/thread_state.c` (one `%fs`-relative access, no
//! `__tls_get_addr`, no destructor registration that could allocate). It
//! points to two arrays of magazine tops indexed by class id (see
//! `layout/magazine.rs` for tops): at first to read-only arrays, also in C, whose
//! entries are the tops of an always-empty and an always-full sentinel
//! magazine, then, from the thread's first slow path, to an [`EntryArray`]
//! of its own, taken from a free list (or the arena) and returned to it
//! when the thread exits, via a `pthread_key_create` destructor. An entry
//! array keeps its quarantine (empty) on the free list, for the next
//! thread that takes it.
//!
//! Invariants: every entry of the arrays a thread points to is the top of a
//! magazine owned by the thread or of a sentinel (never written: the
//! fast-path tests send every use of a sentinel to a slow path), so the
//! fast paths need no bound, length or null check beyond the class id
//! bound on allocation; the fast paths use no lock and no atomic
//! read-modify-write; objects in the allocation magazine of a `zero_init`
//! class are zero (they are cleared when the magazine is installed there,
//! or come fresh from the press); after a thread's exit destructor ran, its
//! later calls go through a temporary entry that is flushed at once, and
//! its delayed releases skip the quarantine, so nothing is cached or held
//! for a dead thread. A thread's span of a class is taken from it only by
//! one compare-and-swap of its array's slot, which the thread itself sets
//! to `BUSY` while it works on that class's entry, so a span is never
//! used by two threads as their own.
//!
//! Counting (for `cache/tally.rs`), without a single instruction on the fast
//! paths: they only pop from the allocation magazine and push into the
//! release magazine, so a thread's entry for a class records the objects
//! it held in each (`alloc_mark`, `release_mark`; a sentinel holds none)
//! when it last counted, and `swapped`, the objects that changed from the
//! release to the allocation magazine in swaps since then (kept as a
//! budget of slot bytes that each swap lowers, which costs it a few
//! instructions). Its allocations since are
//! `swapped + alloc_mark - held(alloc)` and its releases
//! `swapped + held(release) - release_mark`. A fold adds them to the
//! entry's pending counts and resets the marks; it runs on every slow path
//! that goes through `with_entry`, which is where a swap goes when it
//! would take `swapped` past `FOLD_THRESHOLD`. The pending counts go to the class's tallies (two
//! atomic additions, which cost more than the rest of a slow path) once
//! they reach `FOLD_THRESHOLD` operations, at thread exit, and for the
//! calling thread before a statistics snapshot. So a running thread has at
//! most [`UNCOUNTED_BOUND`] allocations and as many releases per class not
//! yet in the tallies.

use core::arch::asm;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicUsize, Ordering};

use crate::cache::checks;
use crate::cache::class_table::{self, ClassInfo};
use crate::cache::misuse_report;
use crate::cache::purge;
use crate::cache::quarantine::{Held, Quarantine};
use crate::cache::rack;
use crate::cache::tally;
use crate::heap::arena;
use crate::heap::decay;
use crate::heap::press::Order;
use crate::layout::constants::{MAGAZINE_ALIGNMENT, MAGAZINE_SIZE, MAX_CLASSES};
use crate::layout::magazine::{
    count_below, magazine_of, top_is_full, top_may_be_empty, Magazine, Slot, FIRST_SLOT_OFFSET,
};
use crate::layout::span::SpanRecord;
use crate::sys::lock::Lock;
use crate::sys::random::Generator;

/// A swap folds the counts of its entry rather than take `swapped` past
/// this many objects, and a fold publishes the entry's pending counts when they reach
/// this many operations: rarely enough that neither costs anything
/// measurable on top of the slow paths, often enough that a running
/// thread's counts are never far behind.
const FOLD_THRESHOLD: u64 = 4096;

/// The bytes of one magazine slot.
const SLOT_BYTES: i64 = core::mem::size_of::<Slot>() as i64;

/// `CacheEntry::fold_budget` right after a fold.
const FOLD_BUDGET: i64 = FOLD_THRESHOLD as i64 * SLOT_BYTES;

/// The most allocations, and the most releases, of one class that one
/// running thread other than the caller may have made without the
/// statistics counting them yet: slitter counts a thread's operations on
/// its slow paths, not on its fast paths (see [`ClassStats`]).
///
/// [`ClassStats`]: crate::ClassStats
pub const UNCOUNTED_BOUND: u64 = 2 * FOLD_THRESHOLD + 2 * MAGAZINE_SIZE as u64;

/// A thread that has not been through a slow path for this long is idle:
/// another thread that would otherwise take a fresh span from the mill
/// takes the spans the idle thread owns of that class first.
pub const IDLE_MS: u32 = 1000;

/// A thread's activity is read from the clock once per this many calls of
/// `with_entry`: a thread that makes fewer slow paths than this in
/// [`IDLE_MS`] counts as idle (and loses its spans, which it then replaces
/// at no more cost than a refill).
const ACTIVITY_STRIDE: u32 = 32;

/// The value of an entry array's span while its thread works on the entry.
const BUSY: *mut SpanRecord = core::ptr::dangling_mut();

/// One class's magazines in one thread, as the slow paths handle them
/// (with exact counts, unlike the tops of the fast paths), and what the
/// tallies do not count yet (see "Counting" above).
#[derive(Clone, Copy)]
struct CacheEntry {
    alloc: *mut Magazine,
    release: *mut Magazine,
    /// The span of the class this thread owns (null: none).
    span: *const SpanRecord,
    /// The thread's generator, for classes that scatter their objects
    /// (null: none, for an exited thread).
    random: *mut Generator,
    alloc_mark: u8,
    release_mark: u8,
    /// `FOLD_BUDGET` minus the slot bytes of the objects swapped since
    /// the last fold.
    fold_budget: i64,
    /// Allocations folded but not yet in the tallies.
    pending_allocations: u32,
    /// Releases folded but not yet in the tallies.
    pending_releases: u32,
}

/// The objects a thread holds in `magazine`, for counting: a sentinel
/// holds none (nothing is ever popped from or pushed into one).
fn held(magazine: *mut Magazine) -> u8 {
    if is_sentinel(magazine) {
        return 0;
    }
    // SAFETY: a non-sentinel magazine of an entry is owned by the thread.
    unsafe { (*magazine).len() as u8 }
}

impl CacheEntry {
    /// Adds what the thread did since the last fold to the pending counts,
    /// publishes them to the tallies of class `class_id` once they reach
    /// `FOLD_THRESHOLD`, and starts counting afresh.
    fn fold(&mut self, class_id: u32) {
        let swapped = ((FOLD_BUDGET - self.fold_budget) / SLOT_BYTES) as u32;
        let allocations = swapped + u32::from(self.alloc_mark) - u32::from(held(self.alloc));
        let releases = swapped + u32::from(held(self.release)) - u32::from(self.release_mark);
        self.pending_allocations += allocations;
        self.pending_releases += releases;
        if u64::from(self.pending_allocations + self.pending_releases) >= FOLD_THRESHOLD {
            self.publish(class_id);
        }
        self.settle();
    }

    /// Adds the pending counts to the tallies of class `class_id`.
    fn publish(&mut self, class_id: u32) {
        tally::add(
            class_id,
            u64::from(self.pending_allocations),
            u64::from(self.pending_releases),
        );
        self.pending_allocations = 0;
        self.pending_releases = 0;
    }

    /// Starts counting from the magazines as they are now (the pending
    /// counts stay): a fold ends with it, and a slow path calls it again
    /// after the fold, once it has moved
    /// magazines or filled one from the press (changes of what the thread
    /// holds that are not allocations or releases).
    fn settle(&mut self) {
        self.alloc_mark = held(self.alloc);
        self.release_mark = held(self.release);
        self.fold_budget = FOLD_BUDGET;
    }
}

/// A thread's entries, recycled through a free list when the thread exits.
/// Cache-line aligned (so its size is a multiple of the line too): two
/// threads' arrays never share a line, so thread caches never falsely
/// share.
#[repr(C, align(64))]
struct EntryArray {
    next_free: *mut EntryArray,
    /// The next array ever created (all of them are on that list; set
    /// before the array is published on it, then never changed).
    next_created: *mut EntryArray,
    /// Whether a thread owns the array (it is not on the free list).
    in_use: AtomicBool,
    /// When the thread last went through `with_entry`, to within
    /// [`ACTIVITY_STRIDE`] calls (`heap/decay.rs` milliseconds): threads
    /// idle for [`IDLE_MS`] may lose their spans.
    last_active: AtomicU32,
    /// Calls of `with_entry` since `last_active` was last read from the
    /// clock.
    calls_since_clock: u32,
    alloc: [*mut Slot; MAX_CLASSES],
    release: [*mut Slot; MAX_CLASSES],
    /// The span of each class the thread owns (null: none; [`BUSY`] while
    /// the thread works on its entry, when no one may take it).
    spans: [AtomicPtr<SpanRecord>; MAX_CLASSES],
    /// `CacheEntry::fold_budget`, `BUDGET_FROM_ALLOC` bytes after `alloc`.
    fold_budget: [i64; MAX_CLASSES],
    alloc_mark: [u8; MAX_CLASSES],
    release_mark: [u8; MAX_CLASSES],
    pending_allocations: [u32; MAX_CLASSES],
    pending_releases: [u32; MAX_CLASSES],
    /// The quarantine of `release_later`, or null before the first.
    quarantine: *mut Quarantine,
    /// Draws the order of the objects of classes that scatter them.
    random: Generator,
}

/// The distance from a class's allocation top to its `fold_budget` in an
/// entry array (both are 8 bytes per class).
const BUDGET_FROM_ALLOC: usize =
    core::mem::offset_of!(EntryArray, fold_budget) - core::mem::offset_of!(EntryArray, alloc);
static_assertions::const_assert_eq!(core::mem::size_of::<*mut Slot>(), 8);
static_assertions::const_assert!(MAGAZINE_SIZE <= u8::MAX as usize);

/// Reads the entry of class `index` from `array`, with up-to-date counts.
///
/// # Safety
/// `array` is this thread's entry array and `index < MAX_CLASSES`.
unsafe fn load_entry(array: *mut EntryArray, index: usize) -> CacheEntry {
    // SAFETY: guaranteed by the caller.
    unsafe {
        CacheEntry {
            alloc: load((*array).alloc[index]),
            release: load((*array).release[index]),
            span: match (*array).spans[index].swap(BUSY, Ordering::Acquire) {
                // A thread that forked while working on its entry.
                BUSY => core::ptr::null(),
                span => span,
            },
            random: &raw mut (*array).random,
            alloc_mark: (*array).alloc_mark[index],
            release_mark: (*array).release_mark[index],
            fold_budget: (*array).fold_budget[index],
            pending_allocations: (*array).pending_allocations[index],
            pending_releases: (*array).pending_releases[index],
        }
    }
}

/// Writes `entry` back as the entry of class `index` in `array`.
///
/// # Safety
/// As for [`load_entry`].
unsafe fn store_entry(array: *mut EntryArray, index: usize, entry: &CacheEntry) {
    // SAFETY: guaranteed by the caller.
    unsafe {
        (*array).alloc[index] = Magazine::top(entry.alloc);
        (*array).release[index] = Magazine::top(entry.release);
        (*array).spans[index].store(entry.span.cast_mut(), Ordering::Release);
        (*array).alloc_mark[index] = entry.alloc_mark;
        (*array).release_mark[index] = entry.release_mark;
        (*array).fold_budget[index] = entry.fold_budget;
        (*array).pending_allocations[index] = entry.pending_allocations;
        (*array).pending_releases[index] = entry.pending_releases;
    }
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
        span: core::ptr::null(),
        random: core::ptr::null_mut(),
        alloc_mark: 0,
        release_mark: 0,
        fold_budget: FOLD_BUDGET,
        pending_allocations: 0,
        pending_releases: 0,
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
    // SAFETY: the id was just checked.
    unsafe { pop_live(class_id as usize) }
}

/// [`allocate_fast`] for a class id known to be below `MAX_CLASSES`.
///
/// # Safety
/// `class_id < MAX_CLASSES`.
#[inline(always)]
pub unsafe fn pop_live(class_id: usize) -> Option<NonNull<u8>> {
    // SAFETY: the thread's tops array has MAX_CLASSES entries, each the top
    // of a magazine this thread owns or of a sentinel; a top that passes
    // the emptiness test has a filled slot below it, in a real magazine.
    unsafe {
        let entry = tops::<0>().add(class_id);
        let top = *entry;
        if top_may_be_empty(top) {
            return None;
        }
        let slot = top.sub(1);
        *entry = slot;
        checks::mark_live(slot);
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

/// Releases an object to class `class_id` and marks it free: the caller
/// has checked that the object is live and belongs to the class (so
/// `class_id < MAX_CLASSES`), or the object leaves a quarantine, where it
/// was already marked free (marking it again changes nothing).
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
            checks::mark_released(&slot);
            return;
        }
    }
    release_slow(class_id, slot)
}

fn class_or_die(class_id: u32) -> &'static ClassInfo {
    match class_table::info(class_id) {
        Some(info) => info,
        None => crate::sys::fatal::die(format_args!("use of unknown class id {class_id}")),
    }
}

#[cold]
#[inline(never)]
fn allocate_slow_or_die(class_id: u32) -> NonNull<u8> {
    match allocate_slow(class_id) {
        Some(object) => object,
        None => crate::sys::fatal::die(format_args!(
            "out of memory allocating from ({})",
            crate::cache::misuse_report::ClassLabel(class_id)
        )),
    }
}

/// The slow path of allocation, for callers whose fast path just failed;
/// `None` when out of memory. Aborts if no such class exists.
#[cold]
pub fn allocate_slow(class_id: u32) -> Option<NonNull<u8>> {
    let info = class_or_die(class_id);
    purge::tick();
    swap_and_allocate(info).or_else(|| refill_and_allocate(info))
}

/// The slow path of allocation when the magazines of `info` cannot simply
/// trade places (see [`swap_and_allocate`]).
#[inline(never)]
fn refill_and_allocate(info: &'static ClassInfo) -> Option<NonNull<u8>> {
    with_entry(info, |entry| {
        let magazine = refill(entry, info);
        entry.settle();
        // SAFETY: `refill` leaves a real, non-empty magazine of this thread
        // in `entry.alloc`.
        let slot = unsafe { (*magazine?).pop() };
        // SAFETY: the slot came out of a magazine.
        unsafe { checks::mark_live(&slot) };
        NonNull::new(slot.object)
    })
    .flatten()
}

/// Releases the object of `slot`, of class `class_id` and `bytes` bytes,
/// later: the caller checked it and marked it free; it waits in this
/// thread's quarantine, and the objects that leave the quarantine to make
/// room for it (random ones, see `cache/quarantine.rs`) are released now.
/// Released at once when the thread has no quarantine (after its exit
/// destructor ran, or out of memory for one).
pub fn release_later(class_id: u32, bytes: usize, slot: Slot) {
    let held = Held {
        class_id,
        bytes: bytes as u32,
        slot,
    };
    let Some(quarantine) = this_quarantine() else {
        return release(class_id, slot);
    };
    // SAFETY: the thread's own quarantine, which only it touches (the
    // releases of the objects leaving it do not).
    let quarantine = unsafe { &mut *quarantine };
    quarantine.admit(held, |held| release(held.class_id, held.slot));
}

/// This thread's quarantine, made on first use; `None` after the thread's
/// exit destructor ran, or when out of memory.
fn this_quarantine() -> Option<*mut Quarantine> {
    // SAFETY: `state` is this thread's header, only touched by this thread.
    let state = unsafe { &mut *state() };
    if state.flags & EXITED != 0 {
        return None;
    }
    if state.array.is_null() {
        adopt_entry_array(state)?;
    }
    // SAFETY: the thread's own entry array.
    let quarantine = unsafe { &mut (*state.array).quarantine };
    if quarantine.is_null() {
        *quarantine = Quarantine::create()?.as_ptr();
    }
    Some(*quarantine)
}

#[cold]
fn release_slow(class_id: u32, slot: Slot) {
    let Some(info) = class_table::info(class_id) else {
        // Class id 0 (no class): the check compares the class named with
        // the tag table's entry, which is 0 for every address that is not
        // a live object, so it lets those through for id 0; no other
        // unknown id gets here, and the release tops of id 0 are always
        // the full sentinel's, so here is where they are turned away,
        // before anything is written.
        return misuse_report::reject_release(class_id, slot.object as usize);
    };
    // SAFETY: the slot passed the check for this (existing) class.
    unsafe { checks::mark_released(&slot) };
    let pushed = with_entry(info, |entry| {
        let magazine = make_room(entry, info);
        entry.settle();
        let magazine = magazine?;
        // SAFETY: `make_room` returns this thread's non-full release magazine.
        unsafe { (*magazine).push(slot) };
        Some(())
    })
    .flatten();
    if pushed.is_none() {
        crate::sys::fatal::die(format_args!(
            "out of memory for a magazine while releasing {:#x} into class {}",
            slot.object as usize,
            info.name()
        ));
    }
    purge::tick();
}

/// The cheapest slow path: when this thread's allocation magazine for
/// `info` is empty (or the empty sentinel) and its release magazine holds
/// objects, the release magazine becomes the allocation magazine and the
/// empty one takes releases; then allocates. Works on the tops directly,
/// without the entry bookkeeping of `with_entry`, counting the objects
/// that changed roles in the entry's fold budget. `None` when that does
/// not apply, and also when the class zeroes its objects or the budget is
/// spent: `refill` then trades the magazines, after a fold, clearing the
/// objects, or its magazines hold fewer objects (see `magazine_capacity`).
/// Makes no call, so that `allocate_slow`, into which it is
/// inlined, costs about 50 instructions when it swaps (once per
/// `MAGAZINE_SIZE` allocations).
#[inline(always)]
fn swap_and_allocate(info: &'static ClassInfo) -> Option<NonNull<u8>> {
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
            || !info.swaps_in_place
        {
            return None;
        }
        let slot = release_top.sub(1);
        // The thread has an entry array of its own (its release top is not
        // the full sentinel), where `fold_budget` follows `alloc`.
        let budget = alloc.byte_add(BUDGET_FROM_ALLOC).cast::<i64>();
        // The bytes of the slots below `release_top`, from the first one:
        // the offset of the top one, `slot`, in its aligned magazine.
        let swapped = (slot as usize % MAGAZINE_ALIGNMENT) as i64;
        if *budget < swapped {
            return None;
        }
        *budget -= swapped;
        // The empty sentinel must not take releases: it is never written.
        *release = if magazine_of(alloc_top) == empty_sentinel() {
            Magazine::top(full_sentinel())
        } else {
            alloc_top
        };
        *alloc = slot;
        checks::mark_live(slot);
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
    // SAFETY: the array is the thread's own.
    unsafe { note_activity(&mut *state.array) };
    // SAFETY: class ids are below MAX_CLASSES, and the array is the
    // thread's own.
    let mut entry = unsafe { load_entry(state.array, index) };
    entry.fold(info.id);
    let result = f(&mut entry);
    // SAFETY: as above.
    unsafe { store_entry(state.array, index, &entry) };
    Some(result)
}

/// Head of the free list of entry arrays (an address; 0 when empty).
static FREE_ARRAYS: Lock<usize> = Lock::new(0);
/// Head of the list of every entry array created (an address; 0 when none).
static CREATED_ARRAYS: Lock<usize> = Lock::new(0);
static ENTRY_ARRAYS_CREATED: AtomicUsize = AtomicUsize::new(0);
/// Entry arrays owned by threads (not on the free list).
static ENTRY_ARRAYS_IN_USE: AtomicUsize = AtomicUsize::new(0);

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
        for span in &(*array).spans {
            span.store(core::ptr::null_mut(), Ordering::Relaxed);
        }
        (*array)
            .last_active
            .store(decay::now_ms(), Ordering::Relaxed);
        (*array).calls_since_clock = 0;
        (*array).in_use.store(true, Ordering::Release);
        (*array).fold_budget.fill(FOLD_BUDGET);
        (*array).alloc_mark.fill(0);
        (*array).release_mark.fill(0);
        (*array).pending_allocations.fill(0);
        (*array).pending_releases.fill(0);
        state.alloc = (*array).alloc.as_mut_ptr();
        state.release = (*array).release.as_mut_ptr();
    }
    state.array = array;
    ENTRY_ARRAYS_IN_USE.fetch_add(1, Ordering::Relaxed);
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
    )?
    .cast::<EntryArray>()
    .as_ptr();
    ENTRY_ARRAYS_CREATED.fetch_add(1, Ordering::Relaxed);
    let mut created = CREATED_ARRAYS.lock();
    // SAFETY: fresh arena memory (zeroed), owned by this thread; the list
    // of created arrays is changed under its lock.
    unsafe { (*array).next_created = *created as *mut EntryArray };
    *created = array as usize;
    Some(array)
}

/// Notes that the thread of `array` is active: reads the clock once every
/// [`ACTIVITY_STRIDE`] calls (a clock read costs more than the rest of a
/// cheap slow path).
fn note_activity(array: &mut EntryArray) {
    array.calls_since_clock += 1;
    if array.calls_since_clock >= ACTIVITY_STRIDE {
        array.calls_since_clock = 0;
        array.last_active.store(decay::now_ms(), Ordering::Relaxed);
    }
}

/// Gives up, for their threads, the spans of class `info` that threads
/// idle for [`IDLE_MS`] own (their next slow path adopts another);
/// whether there was one.
fn reclaim_idle_spans(info: &ClassInfo) -> bool {
    let now = decay::now_ms();
    // SAFETY: `state` is this thread's header.
    let mine = unsafe { (*state()).array };
    let mut array = *CREATED_ARRAYS.lock() as *mut EntryArray;
    let mut reclaimed = false;
    // SAFETY: arrays are immortal, and their `next_created` never changes
    // once they are on the list; the fields read are atomic.
    while let Some(current) = unsafe { array.as_ref() } {
        if array != mine
            && current.in_use.load(Ordering::Acquire)
            && decay::expired(current.last_active.load(Ordering::Relaxed), now, IDLE_MS)
        {
            let slot = &current.spans[info.id as usize];
            let span = slot.load(Ordering::Acquire);
            if !span.is_null()
                && span != BUSY
                && slot
                    .compare_exchange(
                        span,
                        core::ptr::null_mut(),
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    )
                    .is_ok()
            {
                // SAFETY: span records are immortal; the exchange moved
                // the idle thread's ownership to this thread.
                info.press.give_up(unsafe { &*span });
                reclaimed = true;
            }
        }
        array = current.next_created;
    }
    reclaimed
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
        if !(*entry.release).is_empty() && !is_sentinel(entry.release) {
            // What `swap_and_allocate` leaves to this path.
            trade_places(entry, info);
            return Some(entry.alloc);
        }
        if is_sentinel(entry.alloc) {
            entry.alloc = rack::allocate_empty()?.as_ptr();
        }
        // The press clears the objects that are not fresh (zero already).
        let order = match entry.random.as_mut() {
            Some(random) if info.scatters => Order::Scattered(random),
            _ => Order::Ascending,
        };
        info.press
            .fill(
                &mut *entry.alloc,
                info.magazine_capacity,
                &mut entry.span,
                info.zero_init,
                order,
                &mut || reclaim_idle_spans(info),
            )
            .ok()?;
        Some(entry.alloc)
    }
}

/// Ensures `entry.release` is a non-full magazine of this thread and
/// returns it: the empty allocation magazine, else the release magazine
/// once its objects are given back to their spans, else a new one;
/// `None` when out of memory.
fn make_room(entry: &mut CacheEntry, info: &'static ClassInfo) -> Option<*mut Magazine> {
    // SAFETY: as in `refill`.
    unsafe {
        if !is_sentinel(entry.alloc) && (*entry.alloc).is_empty() {
            trade_places(entry, info);
            return Some(entry.release);
        }
        if is_sentinel(entry.release) {
            entry.release = rack::allocate_empty()?.as_ptr();
        } else {
            info.press.give_back((*entry.release).objects());
            (*entry.release).clear();
        }
        (*entry.release).bound(info.magazine_capacity);
        Some(entry.release)
    }
}

/// Makes the allocation magazine of `entry` its release magazine and the
/// other way round, keeping each sentinel on its side (the empty one for
/// allocation, the full one for release): the new allocation magazine's
/// objects move down to its first slots (and are cleared if `info` zeroes
/// them), the new release magazine (empty) is bounded to the class's
/// capacity.
fn trade_places(entry: &mut CacheEntry, info: &ClassInfo) {
    core::mem::swap(&mut entry.alloc, &mut entry.release);
    if is_sentinel(entry.alloc) {
        entry.alloc = empty_sentinel();
    } else {
        // SAFETY: a magazine of this thread's.
        unsafe { (*entry.alloc).compact() };
        clear_objects(entry.alloc, info);
    }
    if is_sentinel(entry.release) {
        entry.release = full_sentinel();
    } else {
        // SAFETY: a magazine of this thread's, empty (the caller checked).
        unsafe { (*entry.release).bound(info.magazine_capacity) };
    }
}

/// Gives the objects of a magazine taken out of a cache entry back to
/// their spans, and the magazine to the rack.
fn retire(magazine: *mut Magazine, info: &ClassInfo) {
    let Some(magazine) = NonNull::new(magazine).filter(|m| !is_sentinel(m.as_ptr())) else {
        return;
    };
    // SAFETY: the caller owned `magazine` and gives it up here.
    let m = unsafe { &mut *magazine.as_ptr() };
    info.press.give_back(m.objects());
    m.clear();
    rack::release_empty(magazine);
}

/// Gives back everything `entry` holds: its objects and magazines, and the
/// span it owns.
fn flush_entry(entry: &mut CacheEntry, info: &ClassInfo) {
    entry.fold(info.id);
    entry.publish(info.id);
    retire(entry.alloc, info);
    retire(entry.release, info);
    // SAFETY: span records are immortal.
    if let Some(span) = unsafe { entry.span.as_ref() } {
        info.press.give_up(span);
    }
    *entry = sentinel_entry();
}

/// The pthread key whose destructor flushes an exiting thread's cache
/// (0 until created; stored as key + 1).
static EXIT_KEY: AtomicU32 = AtomicU32::new(0);
static EXIT_KEY_LOCK: Lock<()> = Lock::new(());

/// The lock of the thread-exit key's creation, for the fork handlers.
pub fn exit_key_lock() -> &'static dyn crate::sys::lock::Forkable {
    &EXIT_KEY_LOCK
}

/// The locks of the lists of entry arrays, for the fork handlers.
pub fn array_list_locks() -> [&'static dyn crate::sys::lock::Forkable; 2] {
    [&CREATED_ARRAYS, &FREE_ARRAYS]
}

/// Puts the thread caches right in a forked child: of the threads that
/// held entry arrays, only the calling one exists there, so what the
/// others' arrays hold (objects, spans, magazines, quarantines) is given
/// back and their arrays go to the free list.
pub fn after_fork_in_child() {
    // SAFETY: `state` is this thread's header, only touched by this thread.
    let mine = unsafe { (*state()).array };
    let mut array = *CREATED_ARRAYS.lock() as *mut EntryArray;
    while !array.is_null() {
        // SAFETY: arrays are immortal; in the child no other thread runs,
        // so the arrays of the parent's other threads are no one's.
        unsafe {
            let next = (*array).next_created;
            if (*array).in_use.load(Ordering::Relaxed) && array != mine {
                if let Some(quarantine) = (*array).quarantine.as_mut() {
                    quarantine.drain(|held| release(held.class_id, held.slot));
                }
                flush_dead_array(array);
                free_array(array);
            }
            array = next;
        }
    }
    ENTRY_ARRAYS_IN_USE.store(usize::from(!mine.is_null()), Ordering::Relaxed);
}

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
        crate::sys::fatal::die(format_args!("pthread_key_create failed"));
    }
    EXIT_KEY.store(key + 1, Ordering::Release);
    key
}

/// Arranges for `on_thread_exit` to run when this thread exits.
fn register_exit_hook(array: *mut EntryArray) {
    // SAFETY: the key exists; the value is only passed back to our destructor.
    unsafe { libc::pthread_setspecific(exit_key(), array.cast()) };
}

/// Releases every object of the exiting thread's quarantine into its
/// magazines, returns every magazine to the classes and the rack, and its
/// entry array to the free list.
extern "C" fn on_thread_exit(_array: *mut libc::c_void) {
    // SAFETY: runs in the exiting thread, which owns its header.
    let state = unsafe { &mut *state() };
    let array = state.array;
    if array.is_null() {
        return;
    }
    // SAFETY: the thread's own entry array and quarantine.
    if let Some(quarantine) = unsafe { (*array).quarantine.as_mut() } {
        quarantine.drain(|held| release(held.class_id, held.slot));
    }
    // SAFETY: the thread's own array.
    unsafe { flush_array(array) };
    // SAFETY: the initial arrays are valid for the rest of the process.
    unsafe {
        state.alloc = slitter_initial_alloc;
        state.release = slitter_initial_release;
    }
    state.array = core::ptr::null_mut();
    state.flags |= EXITED;
    ENTRY_ARRAYS_IN_USE.fetch_sub(1, Ordering::Relaxed);
    // SAFETY: the array is no longer reachable from this thread.
    unsafe { free_array(array) };
}

/// Gives back every object, magazine and span of every class that
/// `array`'s entries hold, leaving them on the sentinels.
///
/// # Safety
/// `array` is an entry array whose thread is the caller, or an exiting
/// thread's own (the caller).
unsafe fn flush_array(array: *mut EntryArray) {
    for index in 1..MAX_CLASSES {
        if let Some(info) = class_table::info(index as u32) {
            // SAFETY: index < MAX_CLASSES, in an array whose magazines and
            // spans the caller may give back (see above).
            unsafe {
                let mut entry = load_entry(array, index);
                flush_entry(&mut entry, info);
                store_entry(array, index, &entry);
            }
        }
    }
}

/// [`flush_array`] for the array of a thread that does not exist in this
/// forked child, and may have been anywhere in slitter at the fork: the
/// entries it was working on (span slot `BUSY`) may be half changed, so
/// they are left as they are (their objects are lost to the child); a
/// swap of its magazines that the fork cut in two may have left one
/// magazine on both sides, which is then given back once.
///
/// # Safety
/// In a forked child, `array` was the array of another thread.
unsafe fn flush_dead_array(array: *mut EntryArray) {
    for index in 1..MAX_CLASSES {
        let Some(info) = class_table::info(index as u32) else {
            continue;
        };
        // SAFETY: index < MAX_CLASSES; no thread uses the array.
        unsafe {
            if (*array).spans[index].load(Ordering::Relaxed) == BUSY {
                continue;
            }
            let mut entry = load_entry(array, index);
            if entry.alloc == entry.release {
                entry.release = full_sentinel();
            }
            flush_entry(&mut entry, info);
            store_entry(array, index, &entry);
        }
    }
}

/// Puts `array`, which no thread owns any more, on the free list.
///
/// # Safety
/// No thread uses `array`.
unsafe fn free_array(array: *mut EntryArray) {
    let mut head = FREE_ARRAYS.lock();
    // SAFETY: guaranteed by the caller.
    unsafe {
        (*array).in_use.store(false, Ordering::Release);
        (*array).next_free = *head as *mut EntryArray;
    }
    *head = array as usize;
}

/// Gives back everything this thread's cache holds, for every class:
/// objects to their spans, spans to their presses, magazines to the rack;
/// and the spans that idle threads own (`malloc_trim`). The thread keeps
/// its entry array and quarantine.
#[cfg(feature = "malloc")]
pub fn trim() {
    // SAFETY: `state` is this thread's header, only touched by this thread.
    let array = unsafe { (*state()).array };
    if !array.is_null() {
        // SAFETY: the thread's own array.
        unsafe { flush_array(array) };
    }
    class_table::each_class(|info| {
        reclaim_idle_spans(info);
    });
}

/// Number of entry arrays ever created (bounded by the peak number of
/// threads alive at once).
pub fn entry_arrays_created() -> usize {
    ENTRY_ARRAYS_CREATED.load(Ordering::Relaxed)
}

/// Adds what this thread did with its magazines of `info` to the class's
/// tallies, so that a snapshot taken next counts the calling thread's
/// operations exactly.
pub fn fold_this_thread(info: &'static ClassInfo) {
    // SAFETY: `state` is this thread's header, only touched by this thread.
    if unsafe { !(*state()).array.is_null() } {
        // `with_entry` folds before running its closure.
        let _ = with_entry(info, |entry| entry.publish(info.id));
    }
}

/// Number of threads other than the caller that hold magazines and so
/// may have uncounted operations (see "Counting" above).
pub fn other_threads_with_caches() -> usize {
    let in_use = ENTRY_ARRAYS_IN_USE.load(Ordering::Relaxed);
    // SAFETY: as in `fold_this_thread`.
    let mine = unsafe { !(*state()).array.is_null() };
    in_use.saturating_sub(usize::from(mine))
}
