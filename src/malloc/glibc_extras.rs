//! glibc's malloc introspection and tuning functions, for programs that
//! call them: `malloc_stats`, `mallinfo2`, `mallinfo`, `malloc_trim`,
//! `mallopt` and `malloc_info`, exported unprefixed like malloc itself
//! (`malloc/exports.rs`) and declared by the C library's `<malloc.h>`, not by
//! `slitter.h`.
//!
//! Owns: how slitter's statistics answer glibc's questions. "The heap" is
//! the malloc size classes (ids below `FIRST_USER_ID`); "mmapped regions"
//! are the large allocations. `struct mallinfo2` is filled as follows
//! (`mallinfo` is the same with `int` fields, which stop at `INT_MAX`):
//!
//! | field | glibc's meaning | slitter's value |
//! |---|---|---|
//! | `arena` | bytes of the heap | bytes of the spans of the malloc size classes that are not purged |
//! | `ordblks` | free chunks | objects those spans hold that are not live |
//! | `smblks`, `fsmblks` | fastbin chunks, bytes | 0 (no fastbins) |
//! | `hblks` | mmapped regions | live large allocations |
//! | `hblkhd` | bytes in mmapped regions | bytes of live large allocations |
//! | `usmblks` | unused (0) | 0 |
//! | `uordblks` | bytes in use | live small objects times their class size |
//! | `fordblks` | free bytes | `arena - uordblks` |
//! | `keepcost` | bytes `malloc_trim` could release | bytes of freed large allocations kept resident for reuse |
//!
//! A purged span (its pages given back after `SLITTER_PURGE_DELAY` or by
//! `malloc_trim`) keeps its address range but counts in none of these
//! fields (its objects are not in `ordblks`): `mallinfo2` has no field for
//! purged memory; `malloc_info` reports it as `<aspace type="purged">`,
//! and the statistics table in its `purged` column.
//!
//! The live counts follow the statistics' exactness rules (`stats/counters.rs`):
//! exact for the calling thread and exited ones.
//!
//! Invariants: nothing here allocates, except what `fwrite` does inside
//! the C library in `malloc_info` (while slitter holds no lock); nothing
//! changes the allocator's behaviour.

use core::ffi::c_int;
use core::fmt::{self, Write};

use crate::cache::class_table::FIRST_USER_ID;
use crate::layout::size_classes;
use crate::malloc::init;
use crate::stats::counters::{self, ClassStats};
use crate::stats::report;
use crate::sys::writer::{Output, Sink};

/// The malloc size classes' memory, in the terms glibc uses.
#[derive(Default)]
struct Heap {
    /// Bytes of their spans.
    span_bytes: usize,
    /// Bytes of those spans that are purged.
    purged_bytes: usize,
    /// Objects in their spans that are not purged and not live.
    free_objects: usize,
    /// Bytes of those.
    free_bytes: usize,
    /// Bytes of live objects.
    used_bytes: usize,
}

/// What a malloc size class's spans that are not purged hold that is not
/// live: objects, bytes.
fn free_in(class: &ClassStats) -> (usize, usize) {
    let (per_span, resident) = match class.spans {
        0 => (0, 0),
        spans => {
            let span_size = class.span_bytes / spans;
            let purged = class.purged_bytes / span_size;
            (span_size / class.object_size, spans.saturating_sub(purged))
        }
    };
    let free = (resident * per_span).saturating_sub(class.live as usize);
    (free, free * class.object_size)
}

/// The malloc size classes (`malloc-<size>`), by increasing size.
fn malloc_classes() -> impl Iterator<Item = ClassStats> {
    counters::all_class_stats().filter(|class| class.id < FIRST_USER_ID)
}

fn heap() -> Heap {
    heap_with(|_| {})
}

/// [`heap`], showing `visit` each class's snapshot as it is summed, so
/// that a report of the classes and their totals agree.
fn heap_with(mut visit: impl FnMut(&ClassStats)) -> Heap {
    let mut heap = Heap::default();
    for class in malloc_classes() {
        visit(&class);
        let (free_objects, free_bytes) = free_in(&class);
        heap.span_bytes += class.span_bytes;
        heap.purged_bytes += class.purged_bytes;
        heap.free_objects += free_objects;
        heap.free_bytes += free_bytes;
        heap.used_bytes += class.live as usize * class.object_size;
    }
    heap
}

/// glibc's `mallinfo2`: see the module doc for each field.
#[no_mangle]
pub extern "C" fn mallinfo2() -> libc::mallinfo2 {
    let heap = heap();
    let internal = counters::internal_counts();
    let arena = heap.span_bytes.saturating_sub(heap.purged_bytes);
    libc::mallinfo2 {
        arena,
        ordblks: heap.free_objects,
        smblks: 0,
        hblks: internal.large_live,
        hblkhd: internal.large_bytes,
        usmblks: 0,
        fsmblks: 0,
        uordblks: heap.used_bytes,
        fordblks: arena.saturating_sub(heap.used_bytes),
        keepcost: crate::heap::large::blocks::retained_bytes(),
    }
}

/// `value` as an `int`, stopping at `INT_MAX`.
fn to_int(value: usize) -> c_int {
    c_int::try_from(value).unwrap_or(c_int::MAX)
}

/// glibc's obsolete `mallinfo`: `mallinfo2` with each field stopping at
/// `INT_MAX`.
#[no_mangle]
pub extern "C" fn mallinfo() -> libc::mallinfo {
    let info = mallinfo2();
    let int = to_int;
    libc::mallinfo {
        arena: int(info.arena),
        ordblks: int(info.ordblks),
        smblks: int(info.smblks),
        hblks: int(info.hblks),
        hblkhd: int(info.hblkhd),
        usmblks: int(info.usmblks),
        fsmblks: int(info.fsmblks),
        uordblks: int(info.uordblks),
        fordblks: int(info.fordblks),
        keepcost: int(info.keepcost),
    }
}

/// glibc's `malloc_stats`: prints slitter's statistics table (the one
/// `SLITTER_STATS=1` prints at exit) to stderr.
#[no_mangle]
pub extern "C" fn malloc_stats() {
    // As in glibc, nothing reports a failure to write.
    let _ = report::print_stats(libc::STDERR_FILENO);
}

/// glibc's `malloc_trim`: gives back to the operating system the memory of
/// freed large allocations that slitter keeps for reuse, and of every span
/// whose objects are all free, in the malloc size classes and the classes
/// that opted in to purging, after the calling thread's cache gave back
/// the objects it holds (and threads idle for a second their spans); returns 1 if some memory was released, else 0
/// ("no memory could be released"). `pad` is ignored.
#[no_mangle]
pub extern "C" fn malloc_trim(_pad: usize) -> c_int {
    crate::cache::thread_cache::trim();
    let small = crate::cache::purge::purge_all();
    let large = crate::heap::large::blocks::trim();
    c_int::from(small + large > 0)
}

/// glibc's `mallopt`: returns 1 (accepted) and changes nothing for
/// `M_MXFAST`, `M_TRIM_THRESHOLD`, `M_TOP_PAD`, `M_MMAP_THRESHOLD`,
/// `M_MMAP_MAX`, `M_ARENA_TEST` and `M_ARENA_MAX`, which tune glibc's
/// bins, trimming, mmap threshold and arenas, none of which slitter has;
/// returns 0 (refused) for everything else, `M_CHECK_ACTION` and
/// `M_PERTURB` included (slitter always aborts on misuse and never fills
/// freed memory).
#[no_mangle]
pub extern "C" fn mallopt(param: c_int, _value: c_int) -> c_int {
    match param {
        libc::M_MXFAST
        | libc::M_TRIM_THRESHOLD
        | libc::M_TOP_PAD
        | libc::M_MMAP_THRESHOLD
        | libc::M_MMAP_MAX
        | libc::M_ARENA_TEST
        | libc::M_ARENA_MAX => 1,
        _ => 0,
    }
}

/// Writes glibc's XML: one heap (the malloc size classes, with one `size`
/// element per class whose resident spans hold free objects), then the
/// totals, where the large allocations are the `mmap` ones. In each, the
/// `system` and `aspace` elements say: `current`, the bytes of spans
/// (and at the top, of live large allocations) that are not purged;
/// `max` and `mprotect`, those bytes with the purged spans, whose address
/// ranges stay mapped; `total`, the address space reserved; `purged`
/// (slitter's own), the bytes of purged spans: the heap's for the malloc
/// size classes, the top level's for every class.
fn write_info(out: &mut Output) -> fmt::Result {
    let process = counters::process_stats();
    let internal = process.internal;
    writeln!(out, "<malloc version=\"1\">\n<heap nr=\"0\">\n<sizes>")?;
    let mut sizes = Ok(());
    let heap = heap_with(|class| {
        let (count, total) = free_in(class);
        if count == 0 || sizes.is_err() {
            return;
        }
        let index = init::class_index(class.id);
        let from = index
            .checked_sub(1)
            .map_or(0, |below| size_classes::size_of_class(below) + 1);
        let to = size_classes::size_of_class(index);
        sizes = writeln!(
            out,
            "  <size from=\"{from}\" to=\"{to}\" total=\"{total}\" count=\"{count}\"/>"
        );
    });
    sizes?;
    let (free_objects, free_bytes) = (heap.free_objects, heap.free_bytes);
    let totals = |out: &mut Output| {
        writeln!(
            out,
            "<total type=\"fast\" count=\"0\" size=\"0\"/>\n\
             <total type=\"rest\" count=\"{free_objects}\" size=\"{free_bytes}\"/>"
        )
    };
    // `mapped`: bytes with address space handed out, `purged` among them.
    let system = |out: &mut Output, mapped: usize, purged: usize, reserved: usize| {
        let current = mapped.saturating_sub(purged);
        writeln!(
            out,
            "<system type=\"current\" size=\"{current}\"/>\n\
             <system type=\"max\" size=\"{mapped}\"/>\n\
             <aspace type=\"total\" size=\"{reserved}\"/>\n\
             <aspace type=\"mprotect\" size=\"{mapped}\"/>\n\
             <aspace type=\"purged\" size=\"{purged}\"/>"
        )
    };
    writeln!(out, "</sizes>")?;
    totals(out)?;
    system(out, heap.span_bytes, heap.purged_bytes, heap.span_bytes)?;
    writeln!(out, "</heap>")?;
    totals(out)?;
    writeln!(
        out,
        "<total type=\"mmap\" count=\"{}\" size=\"{}\"/>",
        internal.large_live, internal.large_bytes
    )?;
    system(
        out,
        process.span_bytes + internal.large_bytes,
        process.purged_bytes,
        process.reserved_bytes + internal.large_bytes,
    )?;
    writeln!(out, "</malloc>")
}

/// glibc's `malloc_info`: writes the XML of `write_info` to `stream`.
/// Returns 0; or -1 with errno EINVAL if `options` is not 0 or `stream` is
/// NULL, or with the errno of a failed write.
///
/// # Safety
/// `stream` is NULL or an open `FILE`.
#[no_mangle]
pub unsafe extern "C" fn malloc_info(options: c_int, stream: *mut libc::FILE) -> c_int {
    let errno = if options != 0 || stream.is_null() {
        libc::EINVAL
    } else {
        let mut out = Output::new(Sink::File(stream));
        // `Output` never fails to format; write errors come from `finish`.
        let _ = write_info(&mut out);
        match out.finish() {
            Ok(()) => return 0,
            Err(errno) => errno,
        }
    };
    crate::sys::errno::set_errno(errno);
    -1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mallopt_accepts_only_the_documented_tuning_options() {
        for param in [-8, -7, -4, -3, -2, -1, 1] {
            assert_eq!(mallopt(param, 1), 1, "param {param}");
        }
        for param in [libc::M_CHECK_ACTION, libc::M_PERTURB, 0, 2, 3, 4, 99, -9] {
            assert_eq!(mallopt(param, 1), 0, "param {param}");
        }
        // Once trimmed, nothing is left to release (other tests of this
        // process may free large blocks between two trims: a few tries).
        malloc_trim(0);
        assert!((0..100).any(|_| malloc_trim(0) == 0));
    }

    #[test]
    fn free_objects_are_what_the_spans_hold_beyond_the_live_ones() {
        let class = ClassStats {
            id: 3,
            name: "malloc-48",
            object_size: 48,
            allocations: 10,
            releases: 3,
            live: 7,
            spans: 2,
            span_bytes: 2 * 16384,
            purged_bytes: 0,
        };
        // 341 objects of 48 bytes fit in a 16 KiB span.
        assert_eq!(free_in(&class), (682 - 7, (682 - 7) * 48));
        let empty = ClassStats {
            spans: 0,
            span_bytes: 0,
            live: 0,
            ..class
        };
        assert_eq!(free_in(&empty), (0, 0));
        // A purged span holds no free objects: only the other one counts.
        let purged = ClassStats {
            spans: 3,
            span_bytes: 3 * 16384,
            purged_bytes: 2 * 16384,
            ..class
        };
        assert_eq!(free_in(&purged), (341 - 7, (341 - 7) * 48));
        let all_purged = ClassStats {
            live: 0,
            purged_bytes: 3 * 16384,
            ..purged
        };
        assert_eq!(free_in(&all_purged), (0, 0));
    }

    #[test]
    fn mallinfo_fields_saturate_instead_of_wrapping() {
        assert_eq!(to_int(5), 5);
        assert_eq!(to_int(c_int::MAX as usize), c_int::MAX);
        assert_eq!(to_int(1 << 32), c_int::MAX);
        assert_eq!(to_int(usize::MAX), c_int::MAX);
    }
}
