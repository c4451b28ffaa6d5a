//! Statistics and configuration as programs see them.
//!
//! - `tests/c/stats_api.c`, compiled against `include/slitter.h` and
//!   linked with the cdylib and the staticlib: the statistics C API; then
//!   the same program with `SLITTER_STATS=1`, whose table at exit must hold
//!   its class's exact counts.
//! - `tests/c/glibc_stats.c`, built without slitter and run under
//!   `LD_PRELOAD` with `SLITTER_PURGE_DELAY=off`: `mallinfo2`, `mallinfo`,
//!   `malloc_info`, `mallopt`, `malloc_trim` and `malloc_stats`, whose
//!   table must show the spans `malloc_trim` purged.
//! - python3 under `LD_PRELOAD` with `SLITTER_STATS=1`: a table whose
//!   totals add up.
//! - `SLITTER_VERBOSE`, `SLITTER_PURGE_DELAY` and invalid values of every
//!   variable, with `true`.
//! - In this process (whose `malloc` is slitter's): tables printed while
//!   another thread allocates and frees, whose totals must still be the
//!   sums of their rows.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::Link;

const GROUP: &str = "stats";

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The counts of a line of the table: allocations, releases, live,
/// spans, span bytes, purged bytes.
const COUNTS: usize = 6;

/// One class line of the table: name and its counts.
#[derive(Debug)]
struct ClassLine {
    name: String,
    counts: [u64; COUNTS],
}

/// The class lines and the totals line of the statistics table in
/// `stderr` (which must hold exactly one table), checking the layout and,
/// if `exact`, that the table says its counts are exact.
fn parse_table_of(stderr: &str, exact: bool) -> (Vec<ClassLine>, [u64; COUNTS]) {
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("slitter: "))
        .collect();
    let starts = lines
        .iter()
        .filter(|l| l.starts_with("slitter: statistics of pid "))
        .count();
    assert_eq!(starts, 1, "expected one table in:\n{stderr}");
    let header = lines
        .iter()
        .position(|l| l.starts_with("slitter: class "))
        .unwrap_or_else(|| panic!("no header line in:\n{stderr}"));
    let numbers = |words: &[&str]| -> [u64; COUNTS] {
        let values: Vec<u64> = words
            .iter()
            .map(|w| {
                w.parse()
                    .unwrap_or_else(|_| panic!("{w:?} is not a count in:\n{stderr}"))
            })
            .collect();
        values
            .try_into()
            .unwrap_or_else(|_| panic!("not {COUNTS} counts in:\n{stderr}"))
    };
    let mut classes = Vec::new();
    for line in &lines[header + 1..] {
        let words: Vec<&str> = line.split_whitespace().skip(1).collect();
        if words[0] == "total" {
            assert!(
                !exact || lines.last() == Some(&"slitter: counts are exact"),
                "the table does not end with exact counts:\n{stderr}"
            );
            return (classes, numbers(&words[1..]));
        }
        assert_eq!(words.len(), 3 + COUNTS, "unexpected class line {line:?}");
        classes.push(ClassLine {
            name: words[0].to_owned(),
            counts: numbers(&words[3..]),
        });
    }
    panic!("no totals line in:\n{stderr}");
}

/// [`parse_table_of`] a table whose counts must be exact.
fn parse_table(stderr: &str) -> (Vec<ClassLine>, [u64; COUNTS]) {
    parse_table_of(stderr, true)
}

/// Checks each class line (live = allocations - releases, purged bytes
/// within the span bytes) and that the totals are the sums of the class
/// lines.
fn check_sums(classes: &[ClassLine], totals: [u64; COUNTS]) {
    for class in classes {
        let [allocations, releases, live, _, span_bytes, purged] = class.counts;
        assert_eq!(allocations - releases, live, "{class:?}");
        assert!(purged <= span_bytes, "{class:?}");
    }
    check_totals(classes, totals);
}

/// Checks that every class line counts something and that the totals are
/// the sums of the class lines.
fn check_totals(classes: &[ClassLine], totals: [u64; COUNTS]) {
    let mut sums = [0u64; COUNTS];
    for class in classes {
        assert!(class.counts != [0; COUNTS], "unused: {class:?}");
        for (sum, count) in sums.iter_mut().zip(class.counts) {
            *sum += count;
        }
    }
    assert_eq!(sums, totals, "the totals are not the sums of {classes:?}");
}

fn check_stats_api(link: Link) {
    let binary = common::compile_c(GROUP, "tests/c/stats_api.c", link);
    let output = common::run(&binary);
    common::assert_success_ending_with(&output, "stats_api: ok");
    assert!(
        common::slitter_lines(&output).is_empty(),
        "slitter printed without SLITTER_STATS\n{}",
        common::describe(&output)
    );

    let output = common::output(common::command(&binary).env("SLITTER_STATS", "1"));
    common::assert_success_ending_with(&output, "stats_api: ok");
    let (classes, totals) = parse_table(&stderr_of(&output));
    check_sums(&classes, totals);
    let node = classes
        .iter()
        .find(|c| c.name == "stats-node")
        .unwrap_or_else(|| panic!("no stats-node line\n{}", common::describe(&output)));
    // 1000 + 500 allocations, 300 + 200 releases (tests/c/stats_api.c).
    assert_eq!(node.counts[..3], [1500, 500, 1000], "{node:?}");
}

#[test]
fn stats_api_with_cdylib() {
    check_stats_api(Link::Dynamic);
}

#[test]
fn stats_api_with_staticlib() {
    check_stats_api(Link::Static);
}

#[test]
fn glibc_introspection_under_preload() {
    let binary = common::compile_program(GROUP, "tests/c/glibc_stats.c", None);
    // Only malloc_trim purges: the program checks what it gave back.
    let output =
        common::output(common::preloaded_command(&binary).env("SLITTER_PURGE_DELAY", "off"));
    common::assert_success_ending_with(&output, "glibc_stats: ok");
    common::assert_allocator_is_slitter(&output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("introspection: "))
        .unwrap_or_default();
    for key in ["mallinfo2", "malloc_info"] {
        assert!(
            common::field(line, key).is_some_and(|object| object.contains("libslitter")),
            "{key} does not resolve to libslitter.so: {line:?}"
        );
    }
    // malloc_stats printed the table, with the 48-byte class in use.
    let stderr = stderr_of(&output);
    let (classes, totals) = parse_table(&stderr);
    check_sums(&classes, totals);
    assert!(
        classes
            .iter()
            .any(|c| c.name == "malloc-48" && c.counts[0] >= 1000),
        "no malloc-48 line with the program's allocations in:\n{stderr}"
    );
    // 64 MiB of 64-byte objects freed, then malloc_trim: at least half of
    // their spans are purged, and they are still the class's.
    let class = classes
        .iter()
        .find(|c| c.name == "malloc-64")
        .unwrap_or_else(|| panic!("no malloc-64 line in:\n{stderr}"));
    let [.., span_bytes, purged] = class.counts;
    assert!(
        purged >= 32 << 20 && span_bytes >= 64 << 20,
        "malloc-64 purged too little, or lost its spans: {class:?}"
    );
    let [.., total_purged] = totals;
    assert!(total_purged >= purged, "{totals:?}");
}

#[test]
fn stats_table_at_exit_of_python_under_preload() {
    let python = common::python3();
    let mut command = common::preloaded_command(&python);
    command
        .args([
            "-c",
            "x = [str(i) * 3 for i in range(20000)]; print('done')",
        ])
        .env("SLITTER_STATS", "1")
        // Every object through malloc, not pymalloc's arenas.
        .env("PYTHONMALLOC", "malloc");
    let output = common::output(&mut command);
    common::assert_success_ending_with(&output, "done");
    let (classes, totals) = parse_table(&stderr_of(&output));
    check_sums(&classes, totals);
    assert!(
        classes.iter().all(|c| c.name.starts_with("malloc-")),
        "python3 used classes other than malloc's: {classes:?}"
    );
    assert!(totals[0] >= 20000, "too few allocations: {totals:?}");
}

/// `true`, run under `LD_PRELOAD` with the `SLITTER_*` variables `vars`.
fn run_true(vars: &[(&str, &str)]) -> Output {
    let program: PathBuf = common::find_in_path("true").expect("`true` is on $PATH");
    let mut command: Command = common::preloaded_command(program);
    for (key, value) in vars {
        command.env(key, value);
    }
    let output = common::output(&mut command);
    assert!(output.status.success(), "{}", common::describe(&output));
    output
}

fn verbose_line(stats: u8, verbose: u8, harden: u8) -> String {
    format!(
        "SLITTER_STATS={stats} SLITTER_VERBOSE={verbose} SLITTER_HARDEN={harden} \
         SLITTER_CONTINUE_ON_MISUSE=0 SLITTER_MPROTECT_GUARDS=0 SLITTER_PURGE_DELAY=100"
    )
}

/// The switches and the large-block guards of a verbose line's
/// configuration part; asserts the guards are one of the two kinds.
fn switches_and_guards(config: &str) -> (&str, &str) {
    let (switches, guards) = config
        .split_once("; large-block guards: ")
        .unwrap_or_else(|| panic!("no guards in {config:?}"));
    assert!(
        ["MADV_GUARD_INSTALL", "mprotect"].contains(&guards),
        "{config:?}"
    );
    (switches, guards)
}

#[test]
fn verbose_prints_the_version_and_configuration_once() {
    let output = run_true(&[("SLITTER_VERBOSE", "1")]);
    let lines = common::slitter_lines(&output);
    let prefix = format!("slitter: version {}, pid ", env!("CARGO_PKG_VERSION"));
    assert_eq!(lines.len(), 1, "{}", common::describe(&output));
    let rest = lines[0].strip_prefix(&prefix).unwrap_or_else(|| {
        panic!("unexpected line {:?}", lines[0]);
    });
    let (pid, config) = rest.split_once(": ").expect("pid: configuration");
    assert!(pid.parse::<u32>().is_ok(), "{:?}", lines[0]);
    assert_eq!(switches_and_guards(config).0, verbose_line(0, 1, 0));

    let output = run_true(&[("SLITTER_VERBOSE", "On"), ("SLITTER_HARDEN", "YES")]);
    let lines = common::slitter_lines(&output);
    assert_eq!(lines.len(), 1, "{}", common::describe(&output));
    let (_, config) = lines[0].split_once(": ").unwrap();
    let (_, config) = config.split_once(": ").unwrap();
    assert_eq!(switches_and_guards(config).0, verbose_line(0, 1, 1));
}

/// `SLITTER_MPROTECT_GUARDS=1` gives large blocks `mprotect` guards
/// whatever the kernel, and the verbose line says so.
#[test]
fn verbose_names_the_large_block_guards() {
    let output = run_true(&[("SLITTER_VERBOSE", "1"), ("SLITTER_MPROTECT_GUARDS", "1")]);
    let lines = common::slitter_lines(&output);
    assert_eq!(lines.len(), 1, "{}", common::describe(&output));
    assert!(
        lines[0].ends_with(
            "SLITTER_MPROTECT_GUARDS=1 SLITTER_PURGE_DELAY=100; large-block guards: mprotect"
        ),
        "{:?}",
        lines[0]
    );
}

/// `SLITTER_PURGE_DELAY` shows in the verbose line; an invalid value
/// warns once and keeps the default.
#[test]
fn verbose_shows_the_purge_delay_and_invalid_ones_warn() {
    for (value, shown) in [("0", "0"), ("2500", "2500"), ("NEVER", "off")] {
        let output = run_true(&[("SLITTER_VERBOSE", "1"), ("SLITTER_PURGE_DELAY", value)]);
        let lines = common::slitter_lines(&output);
        assert_eq!(lines.len(), 1, "{}", common::describe(&output));
        assert!(
            lines[0].contains(&format!(
                "SLITTER_MPROTECT_GUARDS=0 SLITTER_PURGE_DELAY={shown}; "
            )),
            "{value:?}: {:?}",
            lines[0]
        );
    }

    let output = run_true(&[("SLITTER_VERBOSE", "1"), ("SLITTER_PURGE_DELAY", "3600001")]);
    let lines = common::slitter_lines(&output);
    assert_eq!(
        lines[0],
        "slitter: warning: SLITTER_PURGE_DELAY=\"3600001\" is not a number of \
         milliseconds (0 to 3600000) or off; it stays 100"
    );
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[1].contains(" SLITTER_PURGE_DELAY=100; "),
        "{:?}",
        lines[1]
    );
}

fn warning(name: &str, value: &str) -> String {
    format!(
        "slitter: warning: {name}=\"{value}\" is not 1, on, true, yes, 0, off, false or no; \
         {name} stays off"
    )
}

#[test]
fn invalid_values_warn_once_each_and_keep_the_defaults() {
    let output = run_true(&[
        ("SLITTER_STATS", "maybe"),
        ("SLITTER_VERBOSE", ""),
        ("SLITTER_HARDEN", "2"),
    ]);
    assert_eq!(
        common::slitter_lines(&output),
        [
            warning("SLITTER_STATS", "maybe"),
            warning("SLITTER_VERBOSE", ""),
            warning("SLITTER_HARDEN", "2"),
        ],
        "{}",
        common::describe(&output)
    );

    // A bad switch leaves the others working: the verbose line shows the
    // effective configuration, and the table comes at exit.
    let output = run_true(&[("SLITTER_VERBOSE", "true"), ("SLITTER_STATS", "1\u{1}")]);
    let lines = common::slitter_lines(&output);
    assert_eq!(lines[0], warning("SLITTER_STATS", "1\\x01"));
    let (_, config) = lines[1].rsplit_once(": SLITTER_STATS").unwrap();
    let config = format!("SLITTER_STATS{config}");
    assert_eq!(switches_and_guards(&config).0, verbose_line(0, 1, 0));
    assert_eq!(lines.len(), 2, "{lines:?}");
}

/// The totals line is the sum of the class lines even while another thread
/// allocates and frees (and publishes its counts every few thousand
/// operations): each class is read once for both. The tables must show
/// malloc classes, whose counts change from table to table (this process's
/// `malloc` is slitter's, exported by the rlib), or the test tested nothing.
#[test]
fn totals_are_the_sums_of_the_rows_while_another_thread_allocates() {
    use std::io::Read;
    use std::os::fd::FromRawFd;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    /// Stops the churning thread however the test ends.
    struct StopOnDrop(Arc<AtomicBool>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }

    let stop = StopOnDrop(Arc::new(AtomicBool::new(false)));
    let churn = {
        let stop = Arc::clone(&stop.0);
        std::thread::spawn(move || {
            let mut held = Vec::with_capacity(64);
            while !stop.load(Ordering::Relaxed) {
                for size in [16, 48, 100, 300, 1000] {
                    held.push(vec![1u8; size]);
                }
                if held.len() >= 60 {
                    held.clear();
                }
            }
        })
    };
    let mut allocations_seen = std::collections::BTreeSet::new();
    for _ in 0..50 {
        // A pipe holds a whole table (a few KiB) without a reader.
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        slitter::print_stats(fds[1]).unwrap();
        // SAFETY: the two descriptors are this test's own, closed once.
        let (mut reader, writer) = unsafe {
            (
                std::fs::File::from_raw_fd(fds[0]),
                std::fs::File::from_raw_fd(fds[1]),
            )
        };
        drop(writer);
        let mut table = String::new();
        reader.read_to_string(&mut table).unwrap();
        // A row's releases may be ahead of its allocations here: each
        // thread publishes its counts in batches, so only the sums are
        // checked.
        let (classes, totals) = parse_table_of(&table, false);
        check_totals(&classes, totals);
        assert!(
            classes
                .iter()
                .any(|class| class.name.starts_with("malloc-")),
            "no malloc class in:\n{table}"
        );
        allocations_seen.insert(totals[0]);
    }
    assert!(
        allocations_seen.len() > 1,
        "the counts did not change while the tables were printed"
    );
    drop(stop);
    churn.join().unwrap();
}
