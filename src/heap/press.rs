//! The press: the spans of one class and the objects they hold free.
//!
//! Owns: the spans a class took from its mill, and for each the objects it
//! holds free: never handed out (below its bump index) or given back by
//! the thread caches (their held bits, `layout/held_bits.rs`). A span is
//! owned by one thread at a time, which takes objects from it into its
//! magazine, held ones first and lowest first, then fresh ones in address
//! order, until it has none left; then the thread gives it up and adopts
//! another: a partly free one, else a wholly free one, else a purged one,
//! else a fresh one from the mill. The spans no thread owns that hold
//! objects free are on the press's lists (`heap/span_list.rs`): partly
//! free, wholly free (oldest first, waiting for the decay), and purged.
//! Any thread gives objects back to their spans, owned or not, a
//! magazine at a time ([`Press::give_back`]). A wholly free span of a
//! press that purges is purged once it has waited out the decay
//! (`heap/decay.rs`): its memory, states and held bits go back to the
//! kernel through the mill, and it comes back as a fresh span of the same
//! class (its addresses stay the class's).
//!
//! Invariants: a span is owned (its `OWNED` bit) or on at most one list,
//! chosen by its held count and bump index when it was last placed: no
//! object free (held 0, bump at the end): none; every object handed out
//! is held (held equal to the bump index): wholly free; else partly free.
//! Ownership and list membership change only under the press's lock;
//! held counts change with atomic additions, and a giver of objects to a
//! span nobody owns whose change may move it between lists takes the lock
//! and places it again. Only the owner moves the bump index or the
//! cursor. A span is purged only while the purger owns it and every
//! object it handed out has its held bit set, so no object of it is live,
//! cached or being given back.

use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::heap::decay;
use crate::heap::mapper::Errno;
use crate::heap::mill::{span_size_for, Mill};
use crate::heap::span_list::{SpanList, NONE};
use crate::layout::chunk_registry;
use crate::layout::held_bits;
use crate::layout::magazine::{Magazine, Slot};
use crate::layout::object_states;
use crate::layout::span::{record_for, SpanRecord, HELD_MASK, OWNED};
use crate::sys::lock::Lock;
use crate::sys::random::Generator;

/// The order in which a press hands out the held objects of a span.
pub enum Order<'a> {
    /// Lowest first (locality: objects freed together come back together).
    Ascending,
    /// At random, drawn from the generator (the hardened malloc classes:
    /// no predictable reuse).
    Scattered(&'a mut Generator),
}

/// The most listed spans one refill adopts that yield no object before it
/// takes a fresh span (see [`Press::fill`]).
const MAX_EMPTY_ADOPTIONS: usize = 4;

const PARTLY_FREE: u8 = 1;
const WHOLLY_FREE: u8 = 2;
const PURGED: u8 = 3;

struct Lists {
    partly_free: SpanList,
    wholly_free: SpanList,
    purged: SpanList,
}

/// Where a span goes when nobody owns it, by its held count and bump index.
fn kind_for(held: u64, bump: u64, object_count: u64) -> u8 {
    if held == bump {
        WHOLLY_FREE
    } else if held == 0 && bump == object_count {
        NONE
    } else {
        PARTLY_FREE
    }
}

/// The spans of one class.
pub struct Press {
    class_id: u32,
    object_size: usize,
    span_size: usize,
    mill: &'static Mill,
    /// Whether wholly free spans are purged (the class allows it, and its
    /// mapper has not refused a purge).
    purges: AtomicBool,
    /// Whether fresh objects must be cleared when handed out (a forked
    /// child whose mill memory was copied while the parent ran).
    clear_fresh: AtomicBool,
    lists: Lock<Lists>,
    /// Held by the one thread purging this press's spans.
    purging: Lock<()>,
    /// Spans taken from the mill so far.
    spans: AtomicUsize,
}

impl Press {
    /// A press for `class_id`'s objects of `object_size` bytes, which
    /// purges its wholly free spans if `purges`.
    pub fn new(class_id: u32, object_size: usize, mill: &'static Mill, purges: bool) -> Self {
        Press {
            class_id,
            object_size,
            span_size: span_size_for(object_size),
            mill,
            purges: AtomicBool::new(purges),
            clear_fresh: AtomicBool::new(false),
            lists: Lock::new(Lists {
                partly_free: SpanList::new(PARTLY_FREE),
                wholly_free: SpanList::new(WHOLLY_FREE),
                purged: SpanList::new(PURGED),
            }),
            purging: Lock::new(()),
            spans: AtomicUsize::new(0),
        }
    }

    /// The mill this press takes spans from.
    pub fn mill(&self) -> &'static Mill {
        self.mill
    }

    /// In a forked child whose mill memory was replaced: objects never
    /// handed out may hold what the parent's threads wrote while the child
    /// copied them, so they are cleared when handed out from now on.
    pub fn clear_fresh_objects(&self) {
        self.clear_fresh.store(true, Ordering::Relaxed);
    }

    /// The locks of this press, for the fork handlers.
    pub fn locks(&self) -> [&dyn crate::sys::lock::Forkable; 2] {
        [&self.purging, &self.lists]
    }

    /// The number of spans this press has taken from its mill, and their
    /// bytes.
    pub fn spans_taken(&self) -> (usize, usize) {
        let spans = self.spans.load(Ordering::Relaxed);
        (spans, spans * self.span_size)
    }

    /// The bytes of each of this press's spans.
    pub fn span_size(&self) -> usize {
        self.span_size
    }

    /// The bytes of this press's spans that are purged now.
    pub fn purged_bytes(&self) -> usize {
        self.lists.lock().purged.len() * self.span_size
    }

    /// Fills `magazine` with up to `capacity` objects in all (at least one
    /// more), from the span `*owned` this thread owns (null: none), giving
    /// it up and adopting another when it has no free object left; clears
    /// the objects that are not fresh if `clear`; held objects come in
    /// `order`. Before it takes a fresh span from the mill, it asks
    /// `reclaim` to give back spans that idle threads own (true: it gave
    /// some). Fails only when the mill cannot get memory.
    #[contracts::debug_requires(magazine.len() < capacity)]
    #[contracts::debug_ensures(ret.is_err() || magazine.len() > old(magazine.len()))]
    pub fn fill(
        &self,
        magazine: &mut Magazine,
        capacity: usize,
        owned: &mut *const SpanRecord,
        clear: bool,
        mut order: Order<'_>,
        reclaim: &mut dyn FnMut() -> bool,
    ) -> Result<(), Errno> {
        let wanted = capacity - magazine.len();
        let mut listed_without_objects = 0;
        loop {
            // SAFETY: span records are immortal.
            if let Some(span) = unsafe { owned.as_ref() } {
                if self.take(span, magazine, wanted, clear, &mut order) > 0 {
                    return Ok(());
                }
                self.give_up(span);
            }
            // A listed span whose held count is ahead of its held bits
            // (objects on their way back, or a double free that raced past
            // the checks) yields nothing; after a few, a fresh span.
            let listed = (listed_without_objects < MAX_EMPTY_ADOPTIONS)
                .then(|| self.adopt_listed())
                .flatten();
            *owned = match listed {
                Some(span) => {
                    listed_without_objects += 1;
                    span
                }
                None if reclaim() => continue,
                None => self.adopt_fresh()?,
            };
        }
    }

    /// Moves up to `wanted` free objects of `span`, which the caller owns,
    /// into `magazine` (held ones first, in `order`, then fresh ones, so
    /// that they pop lowest first); returns how many.
    fn take(
        &self,
        span: &SpanRecord,
        magazine: &mut Magazine,
        wanted: usize,
        clear: bool,
        order: &mut Order<'_>,
    ) -> usize {
        let (begin, tag) = (span.begin(), span.tag());
        let metadata = chunk_registry::metadata_for(begin);
        let first = magazine.count as usize;
        let size = self.object_size;
        // Written slot by slot, the count once at the end (a push per
        // object would store it each time).
        let mut next = first;
        let slots = &mut magazine.slots;
        let mut push = |object: usize, state: &'static object_states::State, clear: bool| {
            if clear {
                // SAFETY: a free object of this span, which the caller
                // owns: nobody else reads or writes it.
                unsafe { (object as *mut u8).write_bytes(0, size) };
            }
            slots[next] = Slot {
                object: object as *mut u8,
                state,
            };
            next += 1;
        };
        let mut taken = 0;
        let held = span.status.load(Ordering::Acquire) & HELD_MASK;
        if held != 0 {
            let size = self.span_size;
            // Held objects were handed out before: their states have the
            // tag already.
            let push_held = |o| push(o, object_states::state_at(metadata, o), clear);
            match order {
                Order::Ascending => {
                    let mut cursor = span.cursor.load(Ordering::Relaxed) as usize;
                    taken = held_bits::take(metadata, begin, size, &mut cursor, wanted, push_held);
                    span.cursor.store(cursor as u32, Ordering::Relaxed);
                }
                Order::Scattered(random) => {
                    let words = size / crate::layout::constants::GRANULE / 64;
                    taken = held_bits::take_scattered(
                        metadata,
                        begin,
                        size,
                        random.below(words),
                        wanted,
                        |set| random.below(set as usize) as u32,
                        push_held,
                    );
                }
            }
            span.status.fetch_sub(taken as u64, Ordering::Release);
        }
        let bump = span.bump_index.load(Ordering::Relaxed);
        let fresh = (u64::from(span.object_count()) - bump).min((wanted - taken) as u64);
        if fresh > 0 {
            span.bump_index.store(bump + fresh, Ordering::Relaxed);
            let clear_fresh = self.clear_fresh.load(Ordering::Relaxed);
            for index in bump..bump + fresh {
                let object = begin + index as usize * size;
                push(
                    object,
                    object_states::hand_out(metadata, object, tag),
                    clear_fresh,
                );
            }
            taken += fresh as usize;
        }
        magazine.count = (first + taken) as u32;
        let slots = &mut magazine.slots[first..first + taken];
        match order {
            // Pushed lowest first: turned round so that pops hand out
            // ascending addresses, as a program walking its objects in
            // allocation order (a tree, a list) prefers; measured 25%
            // faster on benches/workloads/trees.c than descending order.
            Order::Ascending => slots.reverse(),
            // The last objects of a span are few words apart: shuffled so
            // that neighbours do not come out one after the other.
            Order::Scattered(random) => {
                for index in (1..slots.len()).rev() {
                    slots.swap(index, random.below(index + 1));
                }
            }
        }
        taken
    }

    /// Gives up the span `span` that the caller owns, placing it on the
    /// list its free objects call for.
    pub fn give_up(&self, span: &'static SpanRecord) {
        let mut lists = self.lists.lock();
        span.status.fetch_and(!OWNED, Ordering::AcqRel);
        self.place(&mut lists, span);
    }

    /// Puts `span`, which nobody owns, on the list its held count and bump
    /// index call for (taking it off the one it is on).
    fn place(&self, lists: &mut Lists, span: &'static SpanRecord) {
        let status = span.status.load(Ordering::Acquire);
        if status & OWNED != 0 {
            return;
        }
        let kind = kind_for(
            status & HELD_MASK,
            span.bump_index.load(Ordering::Relaxed),
            u64::from(span.object_count()),
        );
        let current = span.list.load(Ordering::Relaxed);
        if kind == current {
            return;
        }
        match current {
            PARTLY_FREE => lists.partly_free.remove(span),
            WHOLLY_FREE => {
                lists.wholly_free.remove(span);
                self.count_waiting(lists, -1);
            }
            PURGED => lists.purged.remove(span),
            _ => {}
        }
        match kind {
            PARTLY_FREE => lists.partly_free.push_front(span),
            WHOLLY_FREE => {
                span.emptied_at.store(decay::now_ms(), Ordering::Relaxed);
                lists.wholly_free.push_back(span);
                self.count_waiting(lists, 1);
            }
            _ => {}
        }
    }

    /// Adds `spans` to the count of spans waiting for the decay, if this
    /// press purges, after a change of `lists` (whose lock the caller
    /// holds).
    fn count_waiting(&self, lists: &Lists, spans: isize) {
        if self.purges.load(Ordering::Relaxed) {
            decay::add_waiting(spans);
            decay::note_class(self.class_id, lists.wholly_free.len() > 0);
        }
    }

    /// A listed span for the caller to own: partly free, else wholly free
    /// (the most recently freed, whose memory is likeliest still there),
    /// else purged.
    fn adopt_listed(&self) -> Option<&'static SpanRecord> {
        let mut lists = self.lists.lock();
        let listed = lists.partly_free.pop_front().or_else(|| {
            let span = lists.wholly_free.pop_back()?;
            self.count_waiting(&lists, -1);
            Some(span)
        });
        let span = listed.or_else(|| lists.purged.pop_front())?;
        span.status.fetch_or(OWNED, Ordering::AcqRel);
        Some(span)
    }

    /// A fresh span from the mill for the caller to own.
    fn adopt_fresh(&self) -> Result<&'static SpanRecord, Errno> {
        let span = self
            .mill
            .allocate_span(self.class_id, self.object_size, self.span_size)?;
        span.status.store(OWNED, Ordering::Release);
        // Counted before it is used, so that statistics never see objects
        // of a span they do not count.
        self.spans.fetch_add(1, Ordering::Relaxed);
        Ok(span)
    }

    /// Gives the free objects of `objects` (this class's, marked free)
    /// back to their spans: per run of objects of one span, one atomic
    /// addition to its held count and one atomic `or` per word of held
    /// bits; a span nobody owns is placed again when it had no held object
    /// or now holds every object it handed out.
    pub fn give_back(&self, objects: &[Slot]) {
        let mut rest = objects;
        while let Some(first) = rest.first() {
            let begin = record_for(first.object as usize).begin();
            let end = begin + self.span_size;
            let run = rest
                .iter()
                .position(|slot| !(begin..end).contains(&(slot.object as usize)))
                .unwrap_or(rest.len());
            let span = record_for(begin);
            let old = span.status.fetch_add(run as u64, Ordering::AcqRel);
            let metadata = chunk_registry::metadata_for(begin);
            held_bits::set(
                metadata,
                rest[..run].iter().map(|slot| slot.object as usize),
            );
            let held = (old & HELD_MASK) + run as u64;
            if old & OWNED == 0
                && (old & HELD_MASK == 0 || held == span.bump_index.load(Ordering::Relaxed))
            {
                self.place(&mut self.lists.lock(), span);
            }
            rest = &rest[run..];
        }
    }

    /// Purges up to `budget` wholly free spans that have waited `delay`
    /// milliseconds at `now` (oldest first); returns the bytes purged.
    /// Does nothing if this press does not purge, or if another thread is
    /// purging its spans.
    pub fn purge(&self, now: u32, delay: u32, budget: usize) -> usize {
        if !self.purges.load(Ordering::Relaxed) {
            return 0;
        }
        let Some(_purging) = self.purging.try_lock() else {
            return 0;
        };
        let mut purged = 0;
        for _ in 0..budget {
            let span = {
                let mut lists = self.lists.lock();
                let Some(span) = lists.wholly_free.first() else {
                    break;
                };
                if !decay::expired(span.emptied_at.load(Ordering::Relaxed), now, delay) {
                    break;
                }
                lists.wholly_free.remove(span);
                self.count_waiting(&lists, -1);
                span.status.fetch_or(OWNED, Ordering::AcqRel);
                span
            };
            let done = self.purge_owned(span);
            let mut lists = self.lists.lock();
            span.status.fetch_and(!OWNED, Ordering::AcqRel);
            if done {
                lists.purged.push_back(span);
                purged += self.span_size;
            } else {
                self.place(&mut lists, span);
                if !self.purges.load(Ordering::Relaxed) {
                    break;
                }
            }
        }
        purged
    }

    /// Purges `span`, which the caller owns, if every object it handed out
    /// is held, and makes it fresh; whether it did. Stops purging for good
    /// if the mapper keeps its memory.
    fn purge_owned(&self, span: &SpanRecord) -> bool {
        let begin = span.begin();
        let bump = span.bump_index.load(Ordering::Relaxed);
        let held = span.status.load(Ordering::Acquire) & HELD_MASK;
        let metadata = chunk_registry::metadata_for(begin);
        if held != bump || held_bits::count(metadata, begin, self.span_size) as u64 != bump {
            // An object is still on its way back (or was given back twice,
            // a misuse that raced past the checks).
            return false;
        }
        if !self.mill.purge_span(begin, self.span_size) {
            let lists = self.lists.lock();
            self.count_waiting(&lists, -(lists.wholly_free.len() as isize));
            decay::note_class(self.class_id, false);
            self.purges.store(false, Ordering::Relaxed);
            return false;
        }
        span.bump_index.store(0, Ordering::Relaxed);
        span.cursor.store(0, Ordering::Relaxed);
        span.status.fetch_sub(held, Ordering::AcqRel);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::heap::anonymous_mapper::AnonymousMapper;
    use std::collections::HashSet;

    fn press(size: usize) -> Press {
        static MAPPER: AnonymousMapper = AnonymousMapper;
        let mill =
            crate::heap::mill::mill_for(crate::heap::mapper_registry::MAX_MAPPERS - 1, &MAPPER)
                .unwrap();
        Press::new(1, size, mill, true)
    }

    /// Takes every object out of `magazine`, marking them live.
    fn drain(magazine: &mut Magazine) -> Vec<Slot> {
        let mut slots = Vec::new();
        while !magazine.is_empty() {
            let slot = magazine.pop();
            // SAFETY: the test hands the object out.
            unsafe { object_states::mark_live(slot.state) };
            slots.push(slot);
        }
        slots
    }

    #[test]
    fn objects_are_distinct_ascending_and_cross_spans() {
        let size = 4096;
        let press = press(size);
        let per_span = span_size_for(size) / size;
        let mut owned = core::ptr::null();
        let (mut seen, mut spans) = (HashSet::new(), HashSet::new());
        for _ in 0..3 * per_span {
            let mut magazine = Magazine::empty();
            press
                .fill(
                    &mut magazine,
                    31,
                    &mut owned,
                    false,
                    Order::Ascending,
                    &mut || false,
                )
                .unwrap();
            let mut previous = 0;
            for slot in drain(&mut magazine) {
                let object = slot.object as usize;
                assert!(object > previous, "pops hand out ascending addresses");
                previous = object;
                assert!(matches!(
                    object_states::seen(object),
                    object_states::Seen::Live(1)
                ));
                assert!(seen.insert(object), "object handed out twice");
                spans.insert(record_for(object).begin());
            }
        }
        assert!(spans.len() >= 3);
        assert_eq!(
            press.spans_taken(),
            (spans.len(), spans.len() * span_size_for(size))
        );
    }

    #[test]
    fn objects_given_back_come_back_from_their_span_then_it_is_purged() {
        let size = 64;
        let press = press(size);
        let span_size = span_size_for(size);
        let per_span = span_size / size;
        let mut owned = core::ptr::null();
        // Two spans' worth, handed out (the first span is given up).
        let mut live = Vec::new();
        while live.len() < 2 * per_span {
            let mut magazine = Magazine::empty();
            press
                .fill(
                    &mut magazine,
                    31,
                    &mut owned,
                    false,
                    Order::Ascending,
                    &mut || false,
                )
                .unwrap();
            live.extend(drain(&mut magazine));
        }
        let first = record_for(live[0].object as usize);
        assert_eq!(
            first.status.load(Ordering::Relaxed),
            0,
            "given up, none held"
        );
        // Free the first span's objects, newest first, a magazine at a time.
        let (first_span, rest) = live.split_at(per_span);
        for chunk in first_span.rchunks(31) {
            for slot in chunk {
                object_states::mark_free(
                    // SAFETY: states are immortal.
                    unsafe { &*slot.state },
                );
            }
            press.give_back(chunk);
        }
        assert_eq!(first.list.load(Ordering::Relaxed), WHOLLY_FREE);
        // Purged at once with no delay: memory gone, span fresh again.
        assert_eq!(press.purge(decay::now_ms(), 0, usize::MAX), span_size);
        assert_eq!(press.purged_bytes(), span_size);
        assert_eq!(first.bump_index.load(Ordering::Relaxed), 0);
        assert!(matches!(
            object_states::seen(first.begin()),
            object_states::Seen::NoObject
        ));
        // The owned span runs out; the purged one is adopted, lowest first.
        let _ = rest;
        let mut magazine = Magazine::empty();
        loop {
            press
                .fill(
                    &mut magazine,
                    31,
                    &mut owned,
                    false,
                    Order::Ascending,
                    &mut || false,
                )
                .unwrap();
            let slots = drain(&mut magazine);
            if record_for(slots[0].object as usize).begin() == first.begin() {
                assert_eq!(slots[0].object as usize, first.begin());
                break;
            }
        }
        assert_eq!(press.spans_taken().0, 2);
    }
}
