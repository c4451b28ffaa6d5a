//! The mill: carves chunks obtained from a mapper into spans.
//!
//! Owns: one mill per registered mapper; the chunk layout
//! `| guard | metadata | guard | data (DATA_ALIGNMENT, aligned) | guard |`
//! and its carving out of an over-sized reservation; the tags of the
//! classes in each chunk (see `layout/object_states.rs`); the initialisation of
//! span records when a span is handed to a press; the purge of a span's
//! memory and metadata through the mapper.
//!
//! Invariants: chunks and spans are immortal and never handed out twice
//! (a purged span stays its press's, its address range reserved);
//! spans are `SPAN_ALIGNMENT`-aligned, lie inside one chunk's data region,
//! and all their records carry the owning class and its tag in the chunk;
//! a chunk gives each class that has spans in it one tag, at most
//! `MAX_TAG` of them, written to its tag table before the first such span
//! is published, and only when that span fits; a span comes from the
//! newest chunk where it fits and its class has a tag, else the newest
//! where it fits and its class can get one, else from a new chunk (so chunks fill up whatever the order of classes,
//! and a new one is mapped only when no chunk can take the span); a chunk
//! is registered in the chunk registry
//! only once its metadata is mapped. The mill's lock is taken about once
//! per span (about once per MiB), and the mapper is called once per
//! chunk.

use core::ffi::c_void;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

use crate::heap::arena;
use crate::heap::mapper::{Errno, Mapper};
use crate::heap::mapper_registry::{MapperIndex, MAX_MAPPERS};
use crate::layout::chunk_registry;
use crate::layout::constants::{
    CHUNK_RESERVATION_SIZE, DATA_ALIGNMENT, GRANULE, GUARD_PAGE_SIZE, MAX_CLASSES, MAX_SPAN_SIZE,
    METADATA_OFFSET, METADATA_SIZE, SPAN_ALIGNMENT,
};
use crate::layout::object_states::{self, MAX_TAG};
use crate::layout::span::{record_for, SpanRecord};
use crate::sys::lock::Lock;

/// Where the parts of a chunk lie inside a reservation `[base, base + size)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkLayout {
    /// Start of the kept range (the first guard).
    pub keep_start: usize,
    /// Start of the metadata region.
    pub meta: usize,
    /// Start of the `DATA_ALIGNMENT`-aligned data region.
    pub data: usize,
    /// End of the kept range (after the last guard).
    pub keep_end: usize,
}

/// Finds the chunk layout inside the page-aligned reservation
/// `[base, base + size)`, or `None` if it does not fit.
#[contracts::debug_requires(base.is_multiple_of(4096) && size.is_multiple_of(4096))]
#[contracts::debug_ensures(ret.is_none_or(|l| l.data % DATA_ALIGNMENT == 0
    && l.keep_start >= base
    && l.keep_end - 1 <= base + (size - 1)
    && l.meta == l.data - METADATA_OFFSET
    && l.keep_start == l.meta - GUARD_PAGE_SIZE
    && l.keep_end == l.data + DATA_ALIGNMENT + GUARD_PAGE_SIZE))]
pub fn carve(base: usize, size: usize) -> Option<ChunkLayout> {
    if size == 0 {
        return None;
    }
    let last = base.checked_add(size - 1)?;
    let prefix = GUARD_PAGE_SIZE + METADATA_OFFSET;
    let lowest_data = base.checked_add(prefix)?;
    let data = lowest_data.checked_add(DATA_ALIGNMENT - 1)? & !(DATA_ALIGNMENT - 1);
    let keep_end = data.checked_add(DATA_ALIGNMENT + GUARD_PAGE_SIZE)?;
    if keep_end - 1 > last {
        return None;
    }
    Some(ChunkLayout {
        keep_start: data - prefix,
        meta: data - METADATA_OFFSET,
        data,
        keep_end,
    })
}

/// The span size a press asks for, for objects of `object_size` bytes:
/// about `SPAN_TARGET_SIZE`, and at least eight objects where that fits in
/// `MAX_SPAN_SIZE`.
#[contracts::debug_requires(object_size > 0 && object_size <= MAX_SPAN_SIZE)]
#[contracts::debug_ensures(ret.is_multiple_of(SPAN_ALIGNMENT) && ret >= object_size && ret <= MAX_SPAN_SIZE)]
pub fn span_size_for(object_size: usize) -> usize {
    let target = crate::layout::constants::SPAN_TARGET_SIZE;
    let count = (target / object_size)
        .max(8)
        .min(MAX_SPAN_SIZE / object_size);
    (count * object_size).next_multiple_of(SPAN_ALIGNMENT)
}

/// A chunk that a mill carves spans from: where its unused data starts
/// and ends, and the tags of its classes. In arena memory (immortal),
/// linked from the mill's state, newest first.
struct Chunk {
    older: *mut Chunk,
    /// Next unused address of the chunk's data region.
    next: usize,
    /// End of the chunk's data region.
    end: usize,
    /// Start of the chunk's metadata region.
    metadata: usize,
    /// Tags given out in this chunk.
    tags_used: u8,
    /// The tag of each class in this chunk (0: none yet).
    tags: [u8; MAX_CLASSES],
}

impl Chunk {
    /// Takes `span_size` bytes for class `class_id` if they fit and the
    /// class has a tag here or (if `new_tag`) can be given one; returns the
    /// span's start and the class's tag.
    fn take_span(&mut self, class_id: u32, span_size: usize, new_tag: bool) -> Option<(usize, u8)> {
        if self.end - self.next < span_size {
            return None;
        }
        let tag = &mut self.tags[class_id as usize];
        if *tag == 0 {
            if !new_tag || self.tags_used == MAX_TAG {
                return None;
            }
            self.tags_used += 1;
            *tag = self.tags_used;
            object_states::set_tag(self.metadata, *tag, class_id);
        }
        let begin = self.next;
        self.next += span_size;
        Some((begin, *tag))
    }
}

struct MillState {
    /// The newest chunk (null: none yet).
    newest: *mut Chunk,
}

// SAFETY: the chunks are immortal arena memory, only reached through the
// mill's lock.
unsafe impl Send for MillState {}

/// The bytes of a chunk kept from its reservation: its data region, its
/// metadata region and the three guards around them.
pub const CHUNK_KEPT_SIZE: usize = 3 * GUARD_PAGE_SIZE + METADATA_SIZE + DATA_ALIGNMENT;

/// Span allocation for one mapper.
pub struct Mill {
    mapper: &'static dyn Mapper,
    state: Lock<MillState>,
    chunks: AtomicUsize,
    span_bytes: AtomicUsize,
    purged_bytes: AtomicUsize,
    /// See [`Mill::replaced_in_child`].
    replaced_in_child: AtomicBool,
}

fn as_ptr(addr: usize) -> NonNull<c_void> {
    // Only called with addresses inside a successful reservation.
    NonNull::new(addr as *mut c_void).expect("mapped ranges are not at address 0")
}

impl Mill {
    fn new(mapper: &'static dyn Mapper) -> Self {
        Mill {
            mapper,
            state: Lock::new(MillState {
                newest: core::ptr::null_mut(),
            }),
            chunks: AtomicUsize::new(0),
            span_bytes: AtomicUsize::new(0),
            purged_bytes: AtomicUsize::new(0),
            replaced_in_child: AtomicBool::new(false),
        }
    }

    /// Number of chunks this mill has mapped.
    pub fn chunk_count(&self) -> usize {
        self.chunks.load(Ordering::Relaxed)
    }

    /// Bytes of chunk data handed out as spans so far.
    pub fn span_bytes(&self) -> usize {
        self.span_bytes.load(Ordering::Relaxed)
    }

    /// Reserves and backs a new chunk; returns its layout. On failure,
    /// everything reserved is given back.
    fn map_chunk(&self) -> Result<ChunkLayout, Errno> {
        let base = self.mapper.reserve(CHUNK_RESERVATION_SIZE)?.as_ptr() as usize;
        let end = base + CHUNK_RESERVATION_SIZE;
        let Some(layout) = carve(base, CHUNK_RESERVATION_SIZE) else {
            crate::sys::fatal::die(format_args!(
                "cannot carve a chunk out of the reservation at {base:#x}"
            ));
        };
        // What is still reserved after each step, given back if a later
        // step fails (errors of that give-back cannot be reported better).
        let give_back = |start: usize, stop: usize, error: Errno| {
            let _ = self.mapper.release(as_ptr(start), stop - start);
            error
        };
        if layout.keep_start > base {
            self.mapper
                .release(as_ptr(base), layout.keep_start - base)
                .map_err(|error| give_back(base, end, error))?;
        }
        if end > layout.keep_end {
            self.mapper
                .release(as_ptr(layout.keep_end), end - layout.keep_end)
                .map_err(|error| give_back(layout.keep_start, end, error))?;
        }
        let kept = |error| give_back(layout.keep_start, layout.keep_end, error);
        self.mapper
            .allocate_meta(as_ptr(layout.meta), METADATA_SIZE)
            .map_err(kept)?;
        self.mapper
            .allocate_data(as_ptr(layout.data), DATA_ALIGNMENT)
            .map_err(kept)?;
        chunk_registry::register(layout.data, layout.meta);
        self.chunks.fetch_add(1, Ordering::Relaxed);
        Ok(layout)
    }

    /// In a forked child: lets the mapper give the child memory of its own
    /// for each chunk's data (see [`Mapper::after_fork_in_child`]);
    /// whether it did for any.
    fn replace_data_in_child(&self) -> bool {
        let state = self.state.lock();
        let mut replaced = false;
        let mut chunk = state.newest;
        // SAFETY: chunks are immortal and only reached under the mill's
        // lock, held here.
        while let Some(current) = unsafe { chunk.as_ref() } {
            let data = current.end - DATA_ALIGNMENT;
            match self
                .mapper
                .after_fork_in_child(as_ptr(data), DATA_ALIGNMENT, current.next - data)
            {
                Ok(done) => replaced |= done,
                Err(error) => crate::sys::fatal::die(format_args!(
                    "the mapper cannot give the forked child its own copy of the objects \
                     at {data:#x} (errno {error})"
                )),
            }
            chunk = current.older;
        }
        replaced
    }

    /// Whether this mill's memory was replaced in this process, a forked
    /// child, so that the objects its presses have not handed out yet may
    /// hold the parent's writes.
    pub fn replaced_in_child(&self) -> bool {
        self.replaced_in_child.load(Ordering::Relaxed)
    }

    /// A span from the newest chunk where it fits and its class has a tag,
    /// else from the newest where it fits and its class can get one (so
    /// that tags, 255 per chunk, last).
    fn take_from_chunks(
        newest: *mut Chunk,
        class_id: u32,
        span_size: usize,
    ) -> Option<(usize, u8)> {
        [false, true].into_iter().find_map(|new_tag| {
            let mut chunk = newest;
            // SAFETY: chunks are immortal and only reached under the
            // mill's lock, which the caller holds.
            while let Some(current) = unsafe { chunk.as_mut() } {
                if let Some(span) = current.take_span(class_id, span_size, new_tag) {
                    return Some(span);
                }
                chunk = current.older;
            }
            None
        })
    }

    /// Maps a new chunk and its record, which comes before `older`.
    fn new_chunk(&self, older: *mut Chunk) -> Result<*mut Chunk, Errno> {
        // The record comes first: a failure then loses no chunk.
        let chunk = arena::allocate(
            core::mem::size_of::<Chunk>(),
            core::mem::align_of::<Chunk>(),
        )
        .ok_or(libc::ENOMEM)?
        .cast::<Chunk>()
        .as_ptr();
        let layout = self.map_chunk()?;
        // SAFETY: fresh, aligned arena memory for one Chunk.
        unsafe {
            chunk.write(Chunk {
                older,
                next: layout.data,
                end: layout.data + DATA_ALIGNMENT,
                metadata: layout.meta,
                tags_used: 0,
                tags: [0; MAX_CLASSES],
            })
        };
        Ok(chunk)
    }

    /// Gives the memory of the span `[begin, begin + size)`, which holds no
    /// live or cached object, back to the mapper, with its object states
    /// and held bits: everything about it then reads as zero, as in a
    /// fresh span. Returns whether it did: `false` when the mapper keeps
    /// the memory (or fails to give it back), which changes nothing.
    pub fn purge_span(&self, begin: usize, size: usize) -> bool {
        if !matches!(self.mapper.purge(as_ptr(begin), size), Ok(true)) {
            return false;
        }
        let metadata = chunk_registry::metadata_for(begin);
        let (states, states_len) = object_states::range_of(metadata, begin, size);
        clear_metadata(self.mapper, states, states_len);
        let (held, held_len) = crate::layout::held_bits::range_of(metadata, begin, size);
        clear_metadata(self.mapper, held, held_len);
        self.purged_bytes.fetch_add(size, Ordering::Relaxed);
        true
    }

    /// Bytes of spans purged so far (a span purged twice counts twice).
    pub fn purged_bytes(&self) -> usize {
        self.purged_bytes.load(Ordering::Relaxed)
    }

    /// Hands out a fresh span of `span_size` bytes for `class_id`, whose
    /// objects are `object_size` bytes, and returns its first record.
    #[contracts::debug_requires(class_id != 0 && span_size.is_multiple_of(SPAN_ALIGNMENT))]
    #[contracts::debug_requires(span_size <= MAX_SPAN_SIZE && object_size <= span_size)]
    #[contracts::debug_requires(object_size.is_multiple_of(GRANULE))]
    #[contracts::debug_ensures(ret.as_ref().map_or(true, |r| r.class_id() == class_id
        && r.begin() % SPAN_ALIGNMENT == 0))]
    pub fn allocate_span(
        &self,
        class_id: u32,
        object_size: usize,
        span_size: usize,
    ) -> Result<&'static SpanRecord, Errno> {
        let object_count = span_size / object_size;
        let (begin, tag) = {
            let mut state = self.state.lock();
            let (begin, tag) = match Self::take_from_chunks(state.newest, class_id, span_size) {
                Some(span) => span,
                None => {
                    let chunk = self.new_chunk(state.newest)?;
                    state.newest = chunk;
                    // SAFETY: a fresh chunk, owned under the lock.
                    unsafe { (*chunk).take_span(class_id, span_size, true) }.unwrap_or_else(|| {
                        crate::sys::fatal::die(format_args!("a span does not fit in a new chunk"))
                    })
                }
            };
            self.span_bytes.fetch_add(span_size, Ordering::Relaxed);
            (begin, tag)
        };
        for slot in (begin..begin + span_size).step_by(SPAN_ALIGNMENT) {
            record_for(slot).init(class_id, object_count as u32, begin, tag);
        }
        Ok(record_for(begin))
    }
}

/// Gives back the pages of the metadata range `[start, start + len)` (8-byte
/// aligned) through `mapper`'s `purge_meta`, and clears by hand the parts
/// of pages it shares with other spans' metadata, or all of it if the
/// mapper keeps its memory: afterwards it reads as zeroes either way.
fn clear_metadata(mapper: &dyn Mapper, start: usize, len: usize) {
    let page = mapper.page_size();
    let (first_page, end_page) = (start.next_multiple_of(page), (start + len) & !(page - 1));
    let purged = first_page < end_page
        && matches!(
            mapper.purge_meta(as_ptr(first_page), end_page - first_page),
            Ok(true)
        );
    let clear = |from: usize, to: usize| {
        for word in (from..to).step_by(8) {
            // SAFETY: metadata is mapped, immortal and 8-byte aligned here;
            // other threads only read these words (with atomic loads) or
            // write them atomically.
            unsafe { &*(word as *const core::sync::atomic::AtomicU64) }.store(0, Ordering::Relaxed);
        }
    };
    if purged {
        clear(start, first_page);
        clear(end_page, start + len);
    } else {
        clear(start, start + len);
    }
}

static MILLS: [AtomicPtr<Mill>; MAX_MAPPERS] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_MAPPERS];
static MILLS_LOCK: Lock<()> = Lock::new(());

/// The lock of the mill table, for the fork handlers.
pub fn table_lock() -> &'static dyn crate::sys::lock::Forkable {
    &MILLS_LOCK
}

/// Puts the mills right in a forked child: memory a mapper shares with the
/// parent is replaced by the child's own (and the presses of the classes
/// on it then take new spans, see [`Mill::replaced_in_child`]).
pub fn after_fork_in_child() {
    for index in 0..MAX_MAPPERS {
        if let Some(mill) = existing_mill(index) {
            if mill.replace_data_in_child() {
                mill.replaced_in_child.store(true, Ordering::Relaxed);
            }
        }
    }
}

/// Calls `f` on the lock of every mill, by mapper index (for the fork
/// handlers, which hold the mill table's lock).
pub fn each_mill_lock(f: &mut dyn FnMut(&dyn crate::sys::lock::Forkable)) {
    for index in 0..MAX_MAPPERS {
        if let Some(mill) = existing_mill(index) {
            f(&mill.state);
        }
    }
}

/// The mill of the mapper at `index`, if it was created.
pub fn existing_mill(index: MapperIndex) -> Option<&'static Mill> {
    // SAFETY: published mills are initialised and immortal.
    unsafe { MILLS.get(index)?.load(Ordering::Acquire).as_ref() }
}

/// The mill of the mapper at `index`, created on first use; `None` if
/// internal memory is exhausted.
pub fn mill_for(index: MapperIndex, mapper: &'static dyn Mapper) -> Option<&'static Mill> {
    if let Some(mill) = existing_mill(index) {
        return Some(mill);
    }
    let _guard = MILLS_LOCK.lock();
    if let Some(mill) = existing_mill(index) {
        return Some(mill);
    }
    let slot = arena::allocate(core::mem::size_of::<Mill>(), core::mem::align_of::<Mill>())?
        .cast::<Mill>()
        .as_ptr();
    // SAFETY: `slot` is fresh, aligned arena memory for one Mill.
    unsafe { slot.write(Mill::new(mapper)) };
    MILLS[index].store(slot, Ordering::Release);
    // SAFETY: just initialised; arena memory is immortal.
    Some(unsafe { &*slot })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: usize = 4096;
    const PREFIX: usize = GUARD_PAGE_SIZE + METADATA_OFFSET;

    fn check(base: usize) -> ChunkLayout {
        let layout = carve(base, CHUNK_RESERVATION_SIZE)
            .unwrap_or_else(|| panic!("no chunk fits at base {base:#x}"));
        assert_eq!(layout.data % DATA_ALIGNMENT, 0);
        assert!(layout.keep_start >= base);
        assert!(layout.keep_end - 1 <= base + (CHUNK_RESERVATION_SIZE - 1));
        assert_eq!(layout.data - layout.keep_start, PREFIX);
        assert_eq!(layout.meta + METADATA_SIZE + GUARD_PAGE_SIZE, layout.data);
        assert_eq!(layout.keep_end - layout.keep_start, CHUNK_KEPT_SIZE);
        layout
    }

    /// The base at which the kept range starts exactly at the reservation.
    fn exact_fit(data: usize) -> usize {
        data - PREFIX
    }

    #[test]
    fn carving_works_for_every_base_case() {
        let aligned = 64 * DATA_ALIGNMENT;
        // First non-zero page.
        check(PAGE);
        // Ending just below the top of the address space.
        let top_base = (usize::MAX - CHUNK_RESERVATION_SIZE + 1) & !(PAGE - 1);
        check(top_base - PAGE);
        check(top_base);
        // Exactly aligned.
        assert_eq!(check(aligned).data, aligned + DATA_ALIGNMENT);
        // Misaligned by one page.
        assert_eq!(check(aligned + PAGE).data, aligned + DATA_ALIGNMENT);
        assert_eq!(check(aligned - PAGE).data, aligned + DATA_ALIGNMENT);
        // Offset by one guard, and by guard + metadata.
        check(aligned + GUARD_PAGE_SIZE);
        check(aligned + GUARD_PAGE_SIZE + METADATA_SIZE);
        check(aligned - GUARD_PAGE_SIZE - METADATA_SIZE);
        // Exact fit, and one page off either way.
        let exact = exact_fit(aligned);
        let layout = check(exact);
        assert_eq!(layout.keep_start, exact);
        assert_eq!(layout.data, aligned);
        assert_eq!(check(exact - PAGE).data, aligned);
        assert_eq!(check(exact + PAGE).data, aligned + DATA_ALIGNMENT);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "Pre-condition of carve violated")]
    fn contracts_are_checked_in_tests() {
        let _ = carve(PAGE + 1, CHUNK_RESERVATION_SIZE);
    }

    #[test]
    fn carving_refuses_regions_that_are_too_small() {
        let aligned = 64 * DATA_ALIGNMENT;
        let exact = exact_fit(aligned);
        let needed = PREFIX + DATA_ALIGNMENT + GUARD_PAGE_SIZE;
        assert!(carve(exact, needed).is_some());
        assert!(carve(exact, needed - PAGE).is_none());
        assert!(carve(exact + PAGE, needed).is_none());
        assert!(carve(usize::MAX & !(PAGE - 1), PAGE).is_none());
        assert!(carve(PAGE, 0).is_none());
    }

    #[test]
    fn span_sizes_are_aligned_and_hold_several_objects() {
        for size in [
            8,
            16,
            24,
            48,
            1000,
            4096,
            20_000,
            100_000,
            MAX_SPAN_SIZE / 3,
            MAX_SPAN_SIZE,
        ] {
            let span = span_size_for(size);
            assert_eq!(span % SPAN_ALIGNMENT, 0);
            assert!(span >= size && span <= MAX_SPAN_SIZE);
            if size * 8 <= MAX_SPAN_SIZE {
                assert!(span / size >= 8, "size {size}");
            }
        }
    }

    #[test]
    fn spans_roll_over_into_new_chunks() {
        static MAPPER: crate::heap::anonymous_mapper::AnonymousMapper =
            crate::heap::anonymous_mapper::AnonymousMapper;
        let mill = Mill::new(&MAPPER);
        let span = MAX_SPAN_SIZE;
        let per_chunk = DATA_ALIGNMENT / span;
        let mut last_end = 0;
        for i in 0..per_chunk + 2 {
            let first = mill.allocate_span(1, 64, span).unwrap();
            let begin = first.begin();
            assert!(chunk_registry::contains(begin));
            assert!(chunk_registry::contains(begin + span - 1));
            let last_slot = record_for(begin + span - 1);
            assert_eq!(last_slot.class_id(), 1);
            assert_eq!(last_slot.begin(), begin);
            assert_eq!(first.object_count() as usize, span / 64);
            if i % per_chunk != 0 {
                assert_eq!(begin, last_end);
            }
            last_end = begin + span;
        }
        assert_eq!(mill.chunk_count(), 2);
        assert_eq!(mill.span_bytes(), (per_chunk + 2) * span);
    }

    #[test]
    fn classes_get_tags_until_a_chunk_has_none_left() {
        static MAPPER: crate::heap::anonymous_mapper::AnonymousMapper =
            crate::heap::anonymous_mapper::AnonymousMapper;
        let mill = Mill::new(&MAPPER);
        // Tags 1 to MAX_TAG in the first chunk, then 1 in a second one.
        let expected_tag = |class_id: u32| {
            class_id % (u32::from(MAX_TAG) + 1) + class_id / (u32::from(MAX_TAG) + 1)
        };
        for class_id in 1..=u32::from(MAX_TAG) + 1 {
            let record = mill.allocate_span(class_id, 64, SPAN_ALIGNMENT).unwrap();
            assert_eq!(u32::from(record.tag()), expected_tag(class_id));
            // The chunk's tag table names the class: a live object of the
            // span is found as one of it, and of no other class.
            let object = record.begin();
            let metadata = chunk_registry::metadata_for(object);
            let state = object_states::hand_out(metadata, object, record.tag());
            // SAFETY: the object is this test's, handed out here.
            unsafe { object_states::mark_live(state) };
            let live = object_states::live_object(object).map(|(id, _)| id);
            assert_eq!(live, Some(class_id));
            assert!(object_states::live_state(class_id + 1, object).is_none());
            // Given room, it is still live, of the same class; once free,
            // of none, and seen as a free object of its class.
            object_states::mark_room(state);
            assert!(object_states::has_room(state));
            let live = object_states::live_state(class_id, object).map(|(id, _)| id);
            assert_eq!(live, Some(class_id));
            object_states::mark_free(state);
            assert!(object_states::live_object(object).is_none());
            assert!(matches!(
                object_states::seen(object),
                object_states::Seen::Free(id) if id == class_id
            ));
        }
        assert_eq!(mill.chunk_count(), 2);
        // The classes tagged in the first chunk keep taking their spans
        // there, whatever the order: no chunk is mapped for tags alone.
        for _ in 0..3 {
            for class_id in 1..=u32::from(MAX_TAG) + 1 {
                let record = mill.allocate_span(class_id, 64, SPAN_ALIGNMENT).unwrap();
                assert_eq!(u32::from(record.tag()), expected_tag(class_id));
            }
        }
        assert_eq!(mill.chunk_count(), 2);
    }

    #[test]
    fn a_span_too_large_for_a_chunk_takes_no_tag_there() {
        static MAPPER: crate::heap::anonymous_mapper::AnonymousMapper =
            crate::heap::anonymous_mapper::AnonymousMapper;
        let mill = Mill::new(&MAPPER);
        let span = MAX_SPAN_SIZE;
        let per_chunk = DATA_ALIGNMENT / span;
        // Fill the first chunk but for one span slot, with class 1.
        for _ in 0..per_chunk - 1 {
            assert_eq!(mill.allocate_span(1, 64, span).unwrap().tag(), 1);
        }
        // Class 2's two spans: one fills the first chunk, the second goes
        // to a new chunk; class 3, which fits nowhere old, takes its first
        // tag in the new chunk, not in the full one.
        assert_eq!(mill.allocate_span(2, 64, span).unwrap().tag(), 2);
        assert_eq!(mill.chunk_count(), 1);
        assert_eq!(mill.allocate_span(3, 64, span).unwrap().tag(), 1);
        assert_eq!(mill.chunk_count(), 2);
        // SAFETY: the mill's chunks are only reached under its lock.
        let first = unsafe { &*(*mill.state.lock().newest).older };
        assert_eq!((first.tags_used, first.tags[3]), (2, 0));
    }
}
