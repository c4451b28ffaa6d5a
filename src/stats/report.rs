//! The statistics table: what `SLITTER_STATS=1` prints at exit, and what
//! `slitter_stats_print`, [`print_stats`] and `malloc_stats` print.
//!
//! Owns: the table's text. One line per class that was used (class API
//! classes by their names, malloc size classes as `malloc-<size>`) with
//! its counts (allocations, releases, live objects, spans, span bytes and
//! the bytes of those spans purged now), a totals line, the number of
//! classes, one line per mapper that reserved chunks, one for the large
//! path, one for slitter's own records, and one saying whether the counts
//! are exact. Every line starts with `slitter: `.
//!
//! Invariants: formatting and writing allocate nothing (a stack buffer,
//! then `write(2)`, possibly while the classes are still being read); each
//! class is read once, and the totals line sums the rows as they were read
//! (a class left out, unused, counts nothing), so the two agree even while
//! other threads allocate.

use core::fmt::{self, Write};

use crate::stats::counters::{self, ClassStats, UNCOUNTED_BOUND};
use crate::sys::config;
use crate::sys::writer::{Output, Sink};

/// One row of the class table: name, id, object size and counts
/// (allocations, releases, live, spans, span bytes, purged bytes).
fn row(
    out: &mut Output,
    name: &str,
    id: &dyn fmt::Display,
    size: &dyn fmt::Display,
    counts: [&dyn fmt::Display; 6],
) -> fmt::Result {
    let [allocations, releases, live, spans, span_bytes, purged] = counts;
    writeln!(
        out,
        "slitter: {name:<24} {id:>5} {size:>8} {allocations:>12} {releases:>12} {live:>12} \
         {spans:>6} {span_bytes:>12} {purged:>12}"
    )
}

/// The headings of the class table's columns.
fn heading_row(out: &mut Output) -> fmt::Result {
    row(
        out,
        "class",
        &"id",
        &"size",
        [
            &"allocations",
            &"releases",
            &"live",
            &"spans",
            &"span bytes",
            &"purged",
        ],
    )
}

fn class_row(out: &mut Output, class: &ClassStats) -> fmt::Result {
    row(
        out,
        class.name,
        &class.id,
        &class.object_size,
        [
            &class.allocations,
            &class.releases,
            &class.live,
            &class.spans,
            &class.span_bytes,
            &class.purged_bytes,
        ],
    )
}

fn write_table(out: &mut Output) -> fmt::Result {
    writeln!(
        out,
        "slitter: statistics of pid {} (version {}, {})",
        // SAFETY: getpid has no preconditions.
        unsafe { libc::getpid() },
        env!("CARGO_PKG_VERSION"),
        config::current()
    )?;
    heading_row(out)?;
    let mut rows = Ok(());
    let process = counters::process_stats_with(|class| {
        if rows.is_ok() && class.is_used() {
            rows = class_row(out, class);
        }
    });
    rows?;
    row(
        out,
        "total",
        &"",
        &"",
        [
            &process.allocations,
            &process.releases,
            &process.live,
            &process.spans,
            &process.span_bytes,
            &process.purged_bytes,
        ],
    )?;
    writeln!(
        out,
        "slitter: classes: {} registered, {} used",
        process.classes, process.classes_used
    )?;
    for mapper in counters::mapper_stats().filter(|m| m.chunks != 0) {
        writeln!(
            out,
            "slitter: mapper {}: {} chunks, {} bytes reserved, {} bytes in spans",
            mapper.name, mapper.chunks, mapper.reserved_bytes, mapper.span_bytes
        )?;
    }
    let internal = &process.internal;
    writeln!(
        out,
        "slitter: large allocations: {} live, {} bytes, {} freed blocks and ranges kept for reuse",
        internal.large_live, internal.large_bytes, internal.large_cached
    )?;
    writeln!(
        out,
        "slitter: internal: {} arena bytes, {} magazines, {} thread caches",
        internal.arena_bytes, internal.magazines, internal.thread_caches
    )?;
    match process.uncounted_threads {
        0 => writeln!(out, "slitter: counts are exact"),
        threads => writeln!(
            out,
            "slitter: counts are estimates: {threads} other running threads may each have up \
             to {UNCOUNTED_BOUND} allocations and as many releases per class not counted yet"
        ),
    }
}

/// Writes the statistics table to `sink`; the errno of a failed write.
pub fn print_to(sink: Sink) -> Result<(), i32> {
    let mut out = Output::new(sink);
    // `Output` never fails to format; write errors come from `finish`.
    let _ = write_table(&mut out);
    out.finish()
}

/// Writes the statistics table (as `SLITTER_STATS=1` prints it at exit)
/// to the file descriptor `fd`, without allocating; the errno of a failed
/// write.
///
/// ```
/// slitter::print_stats(2).expect("stderr is writable");
/// ```
pub fn print_stats(fd: i32) -> Result<(), i32> {
    print_to(Sink::Fd(fd))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::FromRawFd;

    /// What `write` writes to an [`Output`] on a pipe.
    fn written(write: impl FnOnce(&mut Output) -> fmt::Result) -> String {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: the two descriptors are this test's own, closed once.
        let (mut reader, writer) = unsafe {
            (
                std::fs::File::from_raw_fd(fds[0]),
                std::fs::File::from_raw_fd(fds[1]),
            )
        };
        let mut out = Output::new(Sink::Fd(fds[1]));
        write(&mut out).unwrap();
        out.finish().unwrap();
        drop(writer);
        let mut text = String::new();
        reader.read_to_string(&mut text).unwrap();
        text
    }

    #[test]
    fn each_count_ends_under_its_heading_purged_bytes_last() {
        let class = ClassStats {
            id: 5,
            name: "malloc-64",
            object_size: 64,
            allocations: 1_048_576,
            releases: 1_048_576,
            live: 0,
            spans: 65,
            span_bytes: 65 << 20,
            purged_bytes: 64 << 20,
        };
        let text = written(|out| {
            heading_row(out)?;
            class_row(out, &class)
        });
        assert_eq!(
            text.lines().collect::<Vec<_>>(),
            [
                "slitter: class                       id     size  allocations     releases         \
                 live  spans   span bytes       purged",
                "slitter: malloc-64                    5       64      1048576      1048576            \
                 0     65     68157440     67108864",
            ]
        );
    }
}
