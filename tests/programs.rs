//! Real programs under `LD_PRELOAD=libslitter.so`: each workload runs once
//! without slitter and once with it, and the two transcripts (every
//! command's stdout and stderr, plus sizes and digests of the files it
//! wrote) must be identical.
//!
//! - python3: `tests/programs/alloc_heavy.py` with `PYTHONMALLOC=malloc`
//!   (every Python object from malloc, not from pymalloc's arenas);
//! - git: init, add and commit 1,350 files over three commits, log, diff,
//!   gc, repack, fsck, archive;
//! - perl: `tests/programs/hash_regex.pl`;
//! - gcc and g++: compile a C and a C++ test program and link one, the
//!   objects and executable compared byte for byte (through their digests);
//! - sort: three sorts of a generated 20 MB file (one with temporary files
//!   and two threads);
//! - sqlite3: `tests/programs/sqlite_workload.sql` (100,000 rows in one
//!   transaction, aggregates, joins, updates, integrity check).
//!
//! The slitter run also sets `LD_DEBUG=bindings` with `LD_DEBUG_OUTPUT`
//! (`common::trace_bindings`): the dynamic linker of every process logs
//! where each symbol reference went, and `common::check_bindings` requires
//! that no process bound malloc, free or any other allocation function to
//! the C library and that each one bound them to libslitter.so. That log
//! covers child processes (git's helpers, gcc's cc1/as/ld) and references
//! from inside libc, which a probe in the program itself would not see.
//!
//! Missing programs are installed with apt-get when running as root.

mod common;

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const GROUP: &str = "programs";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// The process allocator is the C library's.
    Plain,
    /// `LD_PRELOAD=libslitter.so`, with the binding trace.
    Slitter,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Plain => "plain",
            Mode::Slitter => "slitter",
        }
    }
}

/// One run of a workload in one mode.
struct Run {
    program: String,
    mode: Mode,
    /// `<scratch>/<program>/<mode>/work`: a fresh directory for the run.
    work: PathBuf,
    /// Where the binding logs go (slitter mode).
    trace: PathBuf,
    /// The directory commands start in (`work` unless changed).
    cwd: PathBuf,
    env: Vec<(OsString, OsString)>,
    transcript: String,
}

impl Run {
    fn new(program: &str, mode: Mode) -> Run {
        let base = common::scratch_dir(GROUP).join(program);
        let dir = base.join(mode.name());
        let work = common::fresh_dir(&dir.join("work"));
        let trace = common::fresh_dir(&dir.join("bindings"));
        let home = base.join("home");
        std::fs::create_dir_all(&home).expect("create the home directory");
        let tmp = common::fresh_dir(&work.join("tmp"));
        let env = [
            ("LC_ALL", OsString::from("C")),
            ("TZ", OsString::from("UTC")),
            ("HOME", home.into_os_string()),
            ("TMPDIR", tmp.into_os_string()),
        ]
        .into_iter()
        .map(|(k, v)| (OsString::from(k), v))
        .collect();
        Run {
            program: program.to_owned(),
            mode,
            cwd: work.clone(),
            work,
            trace,
            env,
            transcript: String::new(),
        }
    }

    fn set_env(&mut self, key: &str, value: impl AsRef<OsStr>) {
        self.env
            .push((OsString::from(key), value.as_ref().to_os_string()));
    }

    /// A command for `program` with this run's environment and directory,
    /// preloading slitter (and tracing bindings) in slitter mode.
    fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new(program);
        command
            .current_dir(&self.cwd)
            .env_remove("LD_PRELOAD")
            .env_remove("LD_DEBUG")
            .env_remove("LD_DEBUG_OUTPUT")
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        if self.mode == Mode::Slitter {
            common::preload(&mut command);
            common::trace_bindings(&mut command, &self.trace);
        }
        common::no_core_dumps(&mut command);
        command
    }

    /// Runs `command`, which must succeed, and appends `$ label` and its
    /// output to the transcript.
    fn run(&mut self, label: &str, command: &mut Command) -> Output {
        let output = common::output(command);
        assert!(
            output.status.success(),
            "{} ({} run): `{label}` failed: {command:?}\n{}",
            self.program,
            self.mode.name(),
            common::describe(&output)
        );
        let _ = writeln!(self.transcript, "$ {label}");
        self.transcript
            .push_str(&String::from_utf8_lossy(&output.stdout));
        if !output.stderr.is_empty() {
            self.transcript.push_str("[stderr]\n");
            self.transcript
                .push_str(&String::from_utf8_lossy(&output.stderr));
        }
        output
    }

    /// Like `run`, but records only `keep(stdout)`.
    fn run_filtered(&mut self, label: &str, command: &mut Command, keep: impl Fn(&str) -> String) {
        let before = self.transcript.len();
        let output = self.run(label, command);
        self.transcript.truncate(before);
        let _ = writeln!(self.transcript, "$ {label} (filtered)");
        self.transcript
            .push_str(&keep(&String::from_utf8_lossy(&output.stdout)));
    }

    /// Appends the size and a digest of `path` (relative to `work`).
    fn record_file(&mut self, path: &str) {
        let full = self.work.join(path);
        let bytes =
            std::fs::read(&full).unwrap_or_else(|e| panic!("cannot read {}: {e}", full.display()));
        let _ = writeln!(
            self.transcript,
            "file {path}: {} bytes, fnv1a64 {:016x}",
            bytes.len(),
            fnv1a64(&bytes)
        );
    }

    /// Writes the transcript next to `work`, for inspection after a failure.
    fn save_transcript(&self) -> PathBuf {
        let path = self.work.with_file_name("transcript.txt");
        std::fs::write(&path, &self.transcript)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    }
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Runs `workload` without and with slitter and compares the transcripts,
/// then checks the slitter run's binding logs.
fn check_program(program: &str, workload: impl Fn(&mut Run)) {
    let mut plain = Run::new(program, Mode::Plain);
    workload(&mut plain);
    let mut slitter = Run::new(program, Mode::Slitter);
    workload(&mut slitter);

    let plain_path = plain.save_transcript();
    let slitter_path = slitter.save_transcript();
    if plain.transcript != slitter.transcript {
        let mut plain_lines = plain.transcript.lines();
        let mut slitter_lines = slitter.transcript.lines();
        let mut line = 1;
        let (a, b) = loop {
            match (plain_lines.next(), slitter_lines.next()) {
                (a, b) if a != b => break (a, b),
                _ => line += 1,
            }
        };
        panic!(
            "{program}: the output under LD_PRELOAD=libslitter.so differs from the plain run \
             at line {line}:\n  plain:   {a:?}\n  slitter: {b:?}\n\
             transcripts: {} and {}",
            plain_path.display(),
            slitter_path.display()
        );
    }
    common::assert_bound_to_slitter(&slitter.trace, program);
}

/// The binding check can fail: a traced run without slitter binds malloc
/// to the C library, and `check_bindings` must say so.
#[test]
fn binding_check_rejects_the_c_library_malloc() {
    let sort = common::ensure_tool("sort", "coreutils");
    let trace = common::fresh_dir(&common::scratch_dir(GROUP).join("binding-check"));
    let mut command = Command::new(&sort);
    command.arg("/dev/null").env_remove("LD_PRELOAD");
    common::trace_bindings(&mut command, &trace);
    let output = common::output(&mut command);
    assert!(output.status.success(), "{}", common::describe(&output));
    match common::check_bindings(&trace) {
        Ok(summary) => panic!("check_bindings accepted a run without slitter: {summary}"),
        Err(problems) => assert!(
            problems.contains("binds `malloc' to") && problems.contains("libc.so"),
            "check_bindings failed a run without slitter for another reason:\n{problems}"
        ),
    }
}

// ---- python3 -------------------------------------------------------------

#[test]
fn python3_allocation_heavy_script() {
    let python = common::python3();
    let script = common::manifest_dir().join("tests/programs/alloc_heavy.py");
    check_program("python3", |run| {
        run.set_env("PYTHONMALLOC", "malloc");
        run.set_env("PYTHONHASHSEED", "0");
        run.set_env("PYTHONDONTWRITEBYTECODE", "1");
        let mut command = run.command(&python);
        command.arg(&script);
        let output = run.run("python3 alloc_heavy.py", &mut command);
        assert!(
            String::from_utf8_lossy(&output.stdout).ends_with("alloc_heavy: ok\n"),
            "alloc_heavy.py did not finish\n{}",
            common::describe(&output)
        );
    });
}

// ---- git -----------------------------------------------------------------

const GIT_FILES: usize = 1200;

/// The text of file `i` at `version`: 1 to 120 lines.
fn file_text(i: usize, version: usize) -> String {
    let mut text = String::new();
    let lines = (i * 37 + version * 11) % 120 + 1;
    for n in 0..lines {
        let hash = (i as u64 * 1_000_003 + n as u64 * 7919 + version as u64)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let _ = writeln!(
            text,
            "line {n} of file {i} version {version} alpha {} {:016x}",
            hash % 1000,
            hash
        );
    }
    text
}

fn file_path(i: usize) -> String {
    format!("src/dir{:02}/file{i:05}.txt", i % 40)
}

fn write_file(root: &Path, relative: &str, text: &str) {
    let path = root.join(relative);
    std::fs::create_dir_all(path.parent().expect("a file has a parent")).expect("create dir");
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

fn git_workload(run: &mut Run, git: &Path) {
    for (key, value) in [
        ("GIT_AUTHOR_NAME", "Slitter Test"),
        ("GIT_AUTHOR_EMAIL", "test@slitter.invalid"),
        ("GIT_COMMITTER_NAME", "Slitter Test"),
        ("GIT_COMMITTER_EMAIL", "test@slitter.invalid"),
        ("GIT_CONFIG_NOSYSTEM", "1"),
        ("GIT_CONFIG_GLOBAL", "/dev/null"),
        ("GIT_TERMINAL_PROMPT", "0"),
        ("GIT_PAGER", "cat"),
    ] {
        run.set_env(key, value);
    }
    let config = [
        "init.defaultBranch=main",
        "gc.auto=0",
        "maintenance.auto=false",
        "core.pager=cat",
        "core.autocrlf=false",
        "color.ui=false",
        "commit.gpgSign=false",
        "advice.detachedHead=false",
    ];
    let git_command = |run: &Run, date: u64, args: &[&str]| {
        let mut command = run.command(git);
        for c in config {
            command.args(["-c", c]);
        }
        let date = format!("{date} +0000");
        command
            .args(args)
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_DATE", &date);
        command
    };
    let date = 1_700_000_000;
    // `args`: whitespace-separated.
    let git_run = |run: &mut Run, args: &str| {
        let args: Vec<&str> = args.split_whitespace().collect();
        let mut command = git_command(run, date, &args);
        run.run(&format!("git {}", args.join(" ")), &mut command);
    };

    git_run(run, "init -q repo");
    let repo = run.work.join("repo");
    run.cwd = repo.clone();
    for i in 0..GIT_FILES {
        write_file(&repo, &file_path(i), &file_text(i, 0));
    }
    git_run(run, "add -A");
    let commit = |run: &mut Run, date: u64, message: &str| {
        let mut command = git_command(run, date, &["commit", "-m", message]);
        run.run(&format!("git commit -m {message:?}"), &mut command);
    };
    commit(run, date, "initial: 1200 files");

    // Rewrite every fifth file, add 150, delete every seventeenth.
    for i in (0..GIT_FILES).step_by(5) {
        write_file(&repo, &file_path(i), &file_text(i, 1));
    }
    for i in GIT_FILES..GIT_FILES + 150 {
        write_file(&repo, &file_path(i), &file_text(i, 1));
    }
    for i in (3..GIT_FILES).step_by(17) {
        std::fs::remove_file(repo.join(file_path(i))).expect("remove a file");
    }
    git_run(run, "add -A");
    commit(run, date + 3600, "second: edits, additions, deletions");

    // Renames of 30 files that are still there.
    let mut moved = vec!["mv".to_owned()];
    moved.extend(
        (1..GIT_FILES)
            .step_by(10)
            .filter(|i| i % 17 != 3)
            .take(30)
            .map(file_path),
    );
    moved.push("moved".to_owned());
    std::fs::create_dir_all(repo.join("moved")).expect("create moved/");
    let moved: Vec<&str> = moved.iter().map(String::as_str).collect();
    let mut command = git_command(run, date, &moved);
    run.run("git mv <30 files> moved", &mut command);
    commit(run, date + 7200, "third: renames");

    git_run(run, "log --stat --format=fuller");
    git_run(run, "log -p --format=%H%x20%T%x20%s HEAD~2..HEAD");
    git_run(run, "diff --stat HEAD~2 HEAD");
    git_run(run, "diff -M --summary HEAD~1 HEAD");
    git_run(run, "grep -n -e alpha.99[0-9]. HEAD -- src/dir01");
    git_run(run, "gc --quiet");
    git_run(run, "repack -a -d -f -q --window=20 --depth=20");
    git_run(run, "fsck --full --strict --no-progress");
    let mut command = git_command(run, date, &["count-objects", "-v"]);
    // Pack sizes depend on the delta search (threads): keep the counts.
    run.run_filtered("git count-objects -v", &mut command, |stdout| {
        stdout
            .lines()
            .filter(|line| !line.starts_with("size"))
            .map(|line| format!("{line}\n"))
            .collect()
    });
    git_run(run, "cat-file --batch-all-objects --batch-check");
    git_run(run, "rev-parse HEAD HEAD^{tree} HEAD~2");
    git_run(run, "ls-files -s");
    git_run(run, "status --porcelain");
    git_run(run, "archive --format=tar -o ../archive.tar HEAD");
    run.record_file("archive.tar");
}

#[test]
fn git_commits_gc_and_fsck() {
    let git = common::ensure_tool("git", "git");
    check_program("git", |run| git_workload(run, &git));
}

// ---- perl ----------------------------------------------------------------

#[test]
fn perl_hash_and_regex_script() {
    let perl = common::ensure_tool("perl", "perl");
    let script = common::manifest_dir().join("tests/programs/hash_regex.pl");
    check_program("perl", |run| {
        let mut command = run.command(&perl);
        command.arg(&script);
        run.run("perl hash_regex.pl", &mut command);
    });
}

// ---- gcc -----------------------------------------------------------------

#[test]
fn gcc_compiles_and_links() {
    let gcc = common::ensure_tool("gcc", "gcc");
    let gxx = common::ensure_tool("g++", "g++");
    let root = common::manifest_dir();
    check_program("gcc", |run| {
        // Compile in the repository root in both runs: the debug info
        // records the compilation directory.
        run.cwd = root.to_path_buf();
        let work = run.work.clone();
        let object = |name: &str| work.join(name).into_os_string();

        let mut command = run.command(&gcc);
        command
            .args(["-std=c11", "-O2", "-g", "-Wall", "-Wextra", "-c"])
            .arg("tests/c/malloc_stress.c")
            .arg("-o")
            .arg(object("stress.o"));
        run.run("gcc -c malloc_stress.c", &mut command);
        run.record_file("stress.o");

        let mut command = run.command(&gxx);
        command
            .args(["-std=c++17", "-O2", "-g", "-Wall", "-Wextra"])
            .args(["-frandom-seed=containers", "-c"])
            .arg("tests/cpp/containers.cpp")
            .arg("-o")
            .arg(object("containers.o"));
        run.run("g++ -c containers.cpp", &mut command);
        run.record_file("containers.o");

        let mut command = run.command(&gcc);
        command
            .arg(object("stress.o"))
            .args(["-pthread", "-o"])
            .arg(object("stress"));
        run.run("gcc stress.o -o stress", &mut command);
        run.record_file("stress");
    });
}

// ---- sort ----------------------------------------------------------------

/// A deterministic file of about 20 MB: `hex,number,word-word-number` lines.
fn sort_input() -> PathBuf {
    const WORDS: [&str; 12] = [
        "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa",
        "lambda", "mu",
    ];
    let path = common::scratch_dir(GROUP).join("sort-input.txt");
    let mut text = String::with_capacity(21 << 20);
    let mut state: u64 = 0x1234_5678_9abc_def1;
    while text.len() < 20 << 20 {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let r = state >> 11;
        let _ = writeln!(
            text,
            "{:08x},{},{}-{}-{}",
            r & 0xffff_ffff,
            (r >> 20) % 1_000_000,
            WORDS[(r >> 3) as usize % WORDS.len()],
            WORDS[(r >> 40) as usize % WORDS.len()],
            (r >> 7) % 5000
        );
    }
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    path
}

#[test]
fn sort_a_20_mb_file() {
    let sort = common::ensure_tool("sort", "coreutils");
    let input = sort_input();
    check_program("sort", |run| {
        let work = run.work.clone();
        let tmp = work.join("tmp");
        let out = |name: &str| work.join(name);

        let mut command = run.command(&sort);
        command.arg("-o").arg(out("by_text.txt")).arg(&input);
        run.run("sort", &mut command);
        run.record_file("by_text.txt");

        // A 4 MiB buffer: runs in temporary files, merged; two threads.
        let mut command = run.command(&sort);
        command
            .args(["-t,", "-k2,2n", "-k1,1r", "--parallel=2", "-S", "4M", "-T"])
            .arg(&tmp)
            .arg("-o")
            .arg(out("by_number.txt"))
            .arg(&input);
        run.run("sort -t, -k2,2n -k1,1r --parallel=2 -S 4M", &mut command);
        run.record_file("by_number.txt");

        let mut command = run.command(&sort);
        command
            .args(["-u", "-t,", "-k3,3", "-o"])
            .arg(out("unique.txt"))
            .arg(&input);
        run.run("sort -u -t, -k3,3", &mut command);
        run.record_file("unique.txt");
    });
}

// ---- sqlite3 -------------------------------------------------------------

#[test]
fn sqlite3_inserts_and_aggregates() {
    let sqlite3 = common::ensure_tool("sqlite3", "sqlite3");
    let script = common::manifest_dir().join("tests/programs/sqlite_workload.sql");
    check_program("sqlite3", |run| {
        let mut command = run.command(&sqlite3);
        command.arg(run.work.join("workload.db")).stdin(Stdio::from(
            File::open(&script).unwrap_or_else(|e| panic!("cannot open {}: {e}", script.display())),
        ));
        let output = run.run("sqlite3 workload.db < sqlite_workload.sql", &mut command);
        assert!(
            String::from_utf8_lossy(&output.stdout).ends_with("sqlite_workload: ok\n"),
            "the SQL script did not finish\n{}",
            common::describe(&output)
        );
    });
}
