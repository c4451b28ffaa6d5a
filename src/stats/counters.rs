//! Statistics: snapshots of what slitter has done and what it holds.
//!
//! Owns: the public statistics types ([`ClassStats`], [`MapperStats`],
//! [`ProcessStats`], [`InternalCounts`]) and the functions that fill them
//! from the counters the other modules keep: the class tallies
//! (`cache/tally.rs`, folded in by the thread caches), the presses (spans), the
//! mills (chunks), the arena, the rack, the thread caches and the large
//! path.
//!
//! Invariants: taking a snapshot allocates nothing and takes no lock but
//! the mapper registry's, the large path's and each class's press lists'
//! (to count its purged spans), briefly, one at a time; it first counts
//! the calling thread's own operations (see [`ClassStats`] for what is
//! exact); counters only grow, except the live and cached counts of the
//! large path and the purged bytes (a purged span that is used again is
//! no longer purged).

use crate::cache::class_table::{self, ClassInfo};
use crate::cache::thread_cache;
use crate::cache::{rack, tally};
use crate::heap::arena;
use crate::heap::large::blocks;
use crate::heap::mapper_registry::{self, MAX_MAPPERS};
use crate::heap::mill::{self, CHUNK_KEPT_SIZE};
use crate::layout::constants::MAX_CLASSES;

/// How much internal memory slitter has created so far, and the state of
/// the large path (allocations above the largest malloc size class).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InternalCounts {
    /// Bytes of address space mapped for internal records.
    pub arena_bytes: usize,
    /// Magazines created (they are recycled, never freed).
    pub magazines: usize,
    /// Per-thread entry arrays created (recycled when threads exit).
    pub thread_caches: usize,
    /// Live large allocations (above the largest malloc size class).
    pub large_live: usize,
    /// Bytes of data in live large allocations.
    pub large_bytes: usize,
    /// Freed large ranges whose pages are kept for reuse.
    pub large_cached: usize,
}

/// A snapshot of the internal counters.
///
/// ```
/// let counts = slitter::internal_counts();
/// assert!(counts.magazines <= counts.arena_bytes / 512);
/// ```
pub fn internal_counts() -> InternalCounts {
    let (large_live, large_bytes, large_cached) = blocks::counts();
    InternalCounts {
        large_live,
        large_bytes,
        large_cached,
        arena_bytes: arena::bytes_mapped(),
        magazines: rack::magazines_created(),
        thread_caches: thread_cache::entry_arrays_created(),
    }
}

/// What one class has done: its objects handed out and taken back, and
/// the memory it took from its mill.
///
/// The malloc size classes appear as classes named `malloc-<size>`.
///
/// Exactness: slitter counts a thread's allocations and releases when the
/// thread takes a slow path, exits, or takes a snapshot itself, never on
/// its fast paths. So `allocations` and `releases` are exact for every
/// thread that has exited and for the calling thread; each other running
/// thread may have made up to [`UNCOUNTED_BOUND`] allocations and as many
/// releases of the class that are not counted yet
/// ([`ProcessStats::uncounted_threads`] says how many such threads there
/// are). `live` is `allocations - releases` (0 if that is negative, which
/// only uncounted operations can cause): exact when no other thread holds
/// uncounted operations, an estimate otherwise. `spans`, `span_bytes` and
/// `purged_bytes` are exact.
///
/// ```
/// use slitter::{Class, ClassConfig};
///
/// let class = Class::new(ClassConfig {
///     name: Some("stats-example"),
///     size: 40,
///     ..Default::default()
/// })
/// .unwrap();
/// let objects: Vec<_> = (0..100).map(|_| class.allocate().unwrap()).collect();
/// for &object in &objects[..30] {
///     class.release(object);
/// }
/// let stats = slitter::class_stats(class);
/// assert_eq!(stats.name, "stats-example");
/// assert_eq!(stats.object_size, 48); // 40 rounded up to the granule
/// // This thread made every operation of this class: the counts are exact.
/// assert_eq!((stats.allocations, stats.releases, stats.live), (100, 30, 70));
/// assert_eq!(stats.spans, 1);
/// assert!(stats.span_bytes >= 100 * 40);
/// // The class does not opt in to purging: its spans stay resident.
/// assert_eq!(stats.purged_bytes, 0);
/// # for &object in &objects[30..] { class.release(object); }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClassStats {
    /// The class id.
    pub id: u32,
    /// The class name.
    pub name: &'static str,
    /// Object size in bytes (the requested size rounded up to 16).
    pub object_size: usize,
    /// Objects handed out.
    pub allocations: u64,
    /// Objects taken back.
    pub releases: u64,
    /// Objects handed out and not taken back.
    pub live: u64,
    /// Spans taken from the mill (never given back: class memory is
    /// type-stable; purged ones count too).
    pub spans: usize,
    /// Bytes of those spans.
    pub span_bytes: usize,
    /// Bytes of the class's spans whose memory is given back now
    /// (purged); their addresses stay the class's, so `spans` and
    /// `span_bytes` still count them.
    pub purged_bytes: usize,
}

impl ClassStats {
    /// Whether the class has been used: it handed out or took back an
    /// object, or took memory (a snapshot taken while other threads run
    /// can count a release before the allocation it follows).
    pub fn is_used(&self) -> bool {
        self.allocations != 0 || self.releases != 0 || self.spans != 0
    }

    pub(crate) fn of(info: &'static ClassInfo) -> ClassStats {
        thread_cache::fold_this_thread(info);
        let (allocations, releases) = tally::counts(info.id);
        // Purged spans before spans taken: every span counted as purged
        // is then counted as taken.
        let purged_bytes = info.press.purged_bytes();
        let (spans, span_bytes) = info.press.spans_taken();
        ClassStats {
            id: info.id,
            name: info.name(),
            object_size: info.object_size,
            allocations,
            releases,
            live: allocations.saturating_sub(releases),
            spans,
            span_bytes,
            purged_bytes,
        }
    }
}

/// Snapshots of the statistics of every registered class (used or not),
/// by increasing id.
///
/// ```
/// let used = slitter::all_class_stats().filter(|c| c.is_used()).count();
/// assert!(used <= slitter::process_stats().classes);
/// ```
pub fn all_class_stats() -> impl Iterator<Item = ClassStats> {
    (1..MAX_CLASSES as u32)
        .filter_map(class_table::info)
        .map(ClassStats::of)
}

/// What one mapper has provided: chunks of address space, and how much of
/// them the classes took as spans.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapperStats {
    /// The mapper's position in the registry.
    pub index: usize,
    /// The name it was registered under.
    pub name: &'static str,
    /// Chunks reserved (each 1 GiB of data, plus metadata and guards).
    pub chunks: usize,
    /// Bytes of address space those chunks keep reserved.
    pub reserved_bytes: usize,
    /// Bytes of chunk data handed out as spans.
    pub span_bytes: usize,
}

/// Snapshots of the statistics of every registered mapper, by index.
///
/// ```
/// let default = slitter::mapper_stats().next().unwrap();
/// assert_eq!(default.name, "default");
/// assert!(default.span_bytes <= default.reserved_bytes);
/// ```
pub fn mapper_stats() -> impl Iterator<Item = MapperStats> {
    (0..MAX_MAPPERS).filter_map(|index| {
        let name = mapper_registry::mapper_name(index)?;
        let (chunks, span_bytes) =
            mill::existing_mill(index).map_or((0, 0), |m| (m.chunk_count(), m.span_bytes()));
        Some(MapperStats {
            index,
            name,
            chunks,
            reserved_bytes: chunks * CHUNK_KEPT_SIZE,
            span_bytes,
        })
    })
}

/// The whole process: totals over all classes and mappers, the large path
/// and slitter's own records.
///
/// ```
/// let before = slitter::process_stats();
/// let class = slitter::Class::new(slitter::ClassConfig {
///     size: 64,
///     ..Default::default()
/// })
/// .unwrap();
/// let object = class.allocate().unwrap();
/// let after = slitter::process_stats();
/// assert_eq!(after.classes, before.classes + 1);
/// assert!(after.allocations >= before.allocations + 1);
/// assert!(after.chunks >= 1);
/// # class.release(object);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessStats {
    /// Registered classes, the malloc size classes included once malloc
    /// was used.
    pub classes: usize,
    /// Classes that handed out or took back an object, or took memory.
    pub classes_used: usize,
    /// Objects handed out, all classes together.
    pub allocations: u64,
    /// Objects taken back, all classes together.
    pub releases: u64,
    /// Live objects, all classes together (the sum of the classes' `live`).
    pub live: u64,
    /// Spans the classes took.
    pub spans: usize,
    /// Bytes of those spans.
    pub span_bytes: usize,
    /// Bytes of those spans that are purged now (the sum of the classes'
    /// `purged_bytes`).
    pub purged_bytes: usize,
    /// Chunks the mappers reserved.
    pub chunks: usize,
    /// Bytes of address space those chunks keep reserved.
    pub reserved_bytes: usize,
    /// Internal memory and the large path.
    pub internal: InternalCounts,
    /// Running threads other than the caller that may hold uncounted
    /// operations (see [`ClassStats`]): the class counts are exact when
    /// this is 0.
    pub uncounted_threads: usize,
}

/// A snapshot of the whole process's statistics.
///
/// ```
/// let stats = slitter::process_stats();
/// assert!(stats.live <= stats.allocations);
/// assert!(stats.span_bytes <= stats.reserved_bytes);
/// assert!(stats.purged_bytes <= stats.span_bytes);
/// ```
pub fn process_stats() -> ProcessStats {
    process_stats_with(|_| {})
}

/// [`process_stats`], showing `visit` each class's snapshot as it is
/// summed, so that a report of the classes and their totals agree even
/// while other threads run.
pub(crate) fn process_stats_with(mut visit: impl FnMut(&ClassStats)) -> ProcessStats {
    let mut stats = ProcessStats {
        internal: internal_counts(),
        uncounted_threads: thread_cache::other_threads_with_caches(),
        ..Default::default()
    };
    for class in all_class_stats() {
        visit(&class);
        stats.classes += 1;
        stats.classes_used += usize::from(class.is_used());
        stats.allocations += class.allocations;
        stats.releases += class.releases;
        stats.live += class.live;
        stats.spans += class.spans;
        stats.span_bytes += class.span_bytes;
        stats.purged_bytes += class.purged_bytes;
    }
    for mapper in mapper_stats() {
        stats.chunks += mapper.chunks;
        stats.reserved_bytes += mapper.reserved_bytes;
    }
    stats
}

pub use crate::cache::thread_cache::UNCOUNTED_BOUND;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{class_stats, Class, ClassConfig};

    fn new_class(size: usize) -> Class {
        Class::new(ClassConfig {
            size,
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn counts_follow_allocations_and_releases_exactly_on_this_thread() {
        let class = new_class(24);
        assert_eq!(
            (class_stats(class).allocations, class_stats(class).spans),
            (0, 0)
        );
        // Enough to go through swaps, refills from the press and pushes
        // of full magazines, in several rounds.
        let mut held = Vec::new();
        let (mut allocations, mut releases) = (0, 0);
        for round in 1..=5u64 {
            for _ in 0..round * 300 {
                held.push(class.allocate().unwrap());
                allocations += 1;
            }
            for _ in 0..round * 200 {
                class.release(held.pop().unwrap());
                releases += 1;
            }
            let stats = class_stats(class);
            assert_eq!(
                (stats.allocations, stats.releases, stats.live),
                (allocations, releases, held.len() as u64),
                "round {round}"
            );
        }
        for object in held.drain(..) {
            class.release(object);
        }
        let stats = class_stats(class);
        assert_eq!((stats.allocations, stats.live), (allocations, 0));
        assert!(stats.spans >= 1);
    }

    #[test]
    fn a_running_threads_alternations_are_counted_within_the_bound() {
        // One object allocated and released in turn only ever swaps the
        // thread's two magazines: the counts come from the swaps, and a
        // running thread folds them in as they pass the threshold.
        const PAIRS: u64 = 5 * UNCOUNTED_BOUND;
        let class = new_class(16);
        let (done, wait_done) = std::sync::mpsc::channel();
        let (checked, wait_checked) = std::sync::mpsc::channel::<()>();
        let worker = std::thread::spawn(move || {
            for _ in 0..PAIRS {
                let object = class.allocate().unwrap();
                class.release(object);
            }
            done.send(()).unwrap();
            wait_checked.recv().unwrap();
        });
        wait_done.recv().unwrap();
        let running = class_stats(class);
        assert!(process_stats().uncounted_threads >= 1);
        assert!(running.allocations <= PAIRS && running.releases <= PAIRS);
        assert!(
            running.allocations >= PAIRS - UNCOUNTED_BOUND
                && running.releases >= PAIRS - UNCOUNTED_BOUND,
            "{running:?}"
        );
        checked.send(()).unwrap();
        worker.join().unwrap();
        let exited = class_stats(class);
        assert_eq!((exited.allocations, exited.releases), (PAIRS, PAIRS));
    }

    #[test]
    fn operations_of_exited_threads_are_counted() {
        let class = new_class(32);
        let objects = std::thread::spawn(move || {
            let objects: Vec<_> = (0..50).map(|_| class.allocate().unwrap()).collect();
            for &object in &objects[..20] {
                class.release(object);
            }
            objects[20..]
                .iter()
                .map(|o| o.as_ptr() as usize)
                .collect::<Vec<_>>()
        })
        .join()
        .unwrap();
        let stats = class_stats(class);
        assert_eq!(
            (stats.allocations, stats.releases, stats.live),
            (50, 20, 30)
        );
        for addr in objects {
            class.release(core::ptr::NonNull::new(addr as *mut _).unwrap());
        }
        assert_eq!(class_stats(class).releases, 50);
    }

    #[test]
    fn purged_spans_are_counted_until_they_are_used_again() {
        let class = Class::new(ClassConfig {
            size: 256,
            purge: true,
            ..Default::default()
        })
        .unwrap();
        let press = &class.info().press;
        let per_span = press.span_size() / 256;
        // A thread that exits gives its objects back to their spans, and
        // its spans to the press: every span is then wholly free.
        std::thread::spawn(move || {
            let objects: Vec<_> = (0..3 * per_span)
                .map(|_| class.allocate().unwrap())
                .collect();
            assert_eq!(class_stats(class).purged_bytes, 0);
            for object in objects {
                class.release(object);
            }
        })
        .join()
        .unwrap();
        // Another thread's tick may hold the press's purge for a moment: a
        // few tries.
        let mut stats = class_stats(class);
        for _ in 0..1000 {
            if stats.purged_bytes == stats.span_bytes {
                break;
            }
            press.purge(crate::heap::decay::now_ms(), 0, usize::MAX);
            std::thread::yield_now();
            stats = class_stats(class);
        }
        assert!(stats.spans >= 3, "{stats:?}");
        assert_eq!(stats.purged_bytes, stats.span_bytes, "{stats:?}");
        assert!(process_stats().purged_bytes >= stats.purged_bytes);

        // An allocation takes a purged span back: it is resident again,
        // and still counted in the class's spans.
        let object = class.allocate().unwrap();
        let again = class_stats(class);
        assert_eq!(
            (again.spans, again.purged_bytes),
            (stats.spans, stats.span_bytes - press.span_size())
        );
        class.release(object);
    }

    #[test]
    fn process_totals_cover_the_classes_and_mappers() {
        let class = new_class(48);
        let object = class.allocate().unwrap();
        let process = process_stats();
        let classes: Vec<ClassStats> = all_class_stats().collect();
        assert!(process.classes >= classes.iter().filter(|c| c.is_used()).count());
        assert!(process.classes_used >= 1);
        assert!(process.span_bytes >= class_stats(class).span_bytes);
        let mappers: Vec<MapperStats> = mapper_stats().collect();
        assert_eq!(mappers[0].name, "default");
        assert!(mappers[0].chunks >= 1);
        assert_eq!(
            mappers[0].reserved_bytes,
            mappers[0].chunks * CHUNK_KEPT_SIZE
        );
        assert!(process.reserved_bytes >= mappers[0].reserved_bytes);
        class.release(object);
    }
}
