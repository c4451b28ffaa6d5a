//! Helpers shared by the integration tests that build C programs against
//! the slitter cdylib or staticlib and run them (`tests/c_api.rs`,
//! `tests/death.rs`, `tests/examples.rs`, `tests/stats.rs`), or build C and
//! C++ programs without slitter and run them, and real programs, with
//! `LD_PRELOAD=libslitter.so` (`tests/malloc.rs`, `tests/programs.rs`,
//! `tests/stats.rs`).
//!
//! `cargo test` compiles the library with all its crate types into
//! `target/<profile>/deps/`, next to the test binary, so the freshly built
//! `libslitter.so` and `libslitter.a` are found from
//! `std::env::current_exe()`. (They are only copied up to
//! `target/<profile>/` by `cargo build`, so the copies there may be stale or
//! missing.) Compiled C programs go to `target/<profile>/c-tests/`.

// Each test crate includes this module and uses a different part of it.
#![allow(dead_code)]

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// How a C program is linked against slitter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// `-L <dir> -lslitter` with an rpath: uses `libslitter.so` (through its
    /// SONAME, see [`soname_dir`]).
    Dynamic,
    /// `<dir>/libslitter.a` and the system libraries Rust's std needs.
    Static,
}

impl Link {
    /// A short name for file names and messages.
    pub fn name(self) -> &'static str {
        match self {
            Link::Dynamic => "dynamic",
            Link::Static => "static",
        }
    }
}

/// The repository root.
pub fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `target/<profile>/deps`: the directory of this test binary.
fn deps_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    exe.parent()
        .expect("the test binary lives in a directory")
        .to_path_buf()
}

/// `target/<profile>`.
pub fn profile_dir() -> PathBuf {
    let deps = deps_dir();
    match deps.file_name() {
        Some(name) if name == "deps" => deps.parent().expect("deps has a parent").to_path_buf(),
        _ => deps,
    }
}

/// The directory holding the `libslitter.so` and `libslitter.a` built for
/// this test run.
pub fn lib_dir() -> PathBuf {
    let has_libs =
        |dir: &Path| dir.join("libslitter.so").is_file() && dir.join("libslitter.a").is_file();
    let deps = deps_dir();
    if has_libs(&deps) {
        return deps;
    }
    let profile = profile_dir();
    if has_libs(&profile) {
        return profile;
    }
    panic!(
        "neither {} nor {} holds libslitter.so and libslitter.a; \
         run the tests with `cargo test`",
        deps.display(),
        profile.display()
    );
}

/// `target/<profile>/c-tests/<group>`, created if needed.
pub fn scratch_dir(group: &str) -> PathBuf {
    let dir = profile_dir().join("c-tests").join(group);
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

/// A directory holding `libslitter.so.<major>`, the SONAME that build.rs
/// gives the cdylib and so the name that programs linked with `-lslitter`
/// load at run time, as a link to [`lib_dir`]'s `libslitter.so` (cargo only
/// makes the latter).
pub fn soname_dir() -> PathBuf {
    let dir = scratch_dir("soname");
    let name = format!("libslitter.so.{}", env!("CARGO_PKG_VERSION_MAJOR"));
    let target = lib_dir().join("libslitter.so");
    let link = dir.join(&name);
    if std::fs::read_link(&link).ok().as_deref() != Some(target.as_path()) {
        // A new link renamed over the old one: tests running at the same
        // time never see the name missing.
        let temporary = dir.join(format!("{name}.{}", std::process::id()));
        let _ = std::fs::remove_file(&temporary);
        std::os::unix::fs::symlink(&target, &temporary)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", temporary.display()));
        std::fs::rename(&temporary, &link)
            .unwrap_or_else(|e| panic!("cannot rename to {}: {e}", link.display()));
    }
    dir
}

/// The C compiler: `$CC`, else `cc`.
fn c_compiler() -> OsString {
    std::env::var_os("CC").unwrap_or_else(|| "cc".into())
}

/// Compiles `source` (relative to the repository root) against
/// `include/slitter.h` and links it with slitter as `link` says: see
/// [`compile_program`].
pub fn compile_c(group: &str, source: &str, link: Link) -> PathBuf {
    compile_program(group, source, Some(link))
}

/// Keeps a child that is expected to abort from writing a core file.
pub fn no_core_dumps(command: &mut Command) -> &mut Command {
    // SAFETY: the hook runs in the forked child before exec and only calls
    // setrlimit, which is async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::setrlimit(libc::RLIMIT_CORE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// A command running `binary` with `libslitter.so` on the library path
/// (besides the rpath) and without core dumps.
pub fn command(binary: &Path) -> Command {
    let mut library_path = OsString::from(lib_dir());
    if let Some(old) = std::env::var_os("LD_LIBRARY_PATH").filter(|p| !p.is_empty()) {
        library_path.push(":");
        library_path.push(old);
    }
    let mut command = Command::new(binary);
    command
        .current_dir(manifest_dir())
        .env("LD_LIBRARY_PATH", library_path);
    no_core_dumps(&mut command);
    command
}

/// Runs `command` to completion, capturing its output.
pub fn output(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"))
}

/// Runs `binary` to completion, capturing its output.
pub fn run(binary: &Path) -> Output {
    output(&mut command(binary))
}

/// The status, stdout and stderr of a finished process, for messages.
pub fn describe(output: &Output) -> String {
    format!(
        "status: {}\n--- stdout ---\n{}--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Asserts that `output` is from a successful run whose stdout ends with
/// the line `last_line`.
pub fn assert_success_ending_with(output: &Output, last_line: &str) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.lines().last() == Some(last_line),
        "expected a successful run ending with {last_line:?}\n{}",
        describe(output)
    );
}

/// The value of `key=value` in `text`: the first whitespace-separated word
/// starting with `key=`.
pub fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.split_whitespace()
        .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
}

/// The lines of `stderr` that start with `slitter: `.
pub fn slitter_lines(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter(|line| line.starts_with("slitter: "))
        .map(str::to_owned)
        .collect()
}

/// Asserts that `output`, of the run `what` names, is from a process
/// killed by SIGABRT whose stderr has exactly one `slitter: ` line
/// (slitter's report), and returns it.
pub fn assert_aborted(output: &Output, what: &str) -> String {
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        output.status.signal(),
        Some(libc::SIGABRT),
        "{what}: expected death by SIGABRT\n{}",
        describe(output)
    );
    let lines = slitter_lines(output);
    assert_eq!(
        lines.len(),
        1,
        "{what}: expected exactly one `slitter: ` line on stderr\n{}",
        describe(output)
    );
    lines.into_iter().next().unwrap()
}

// ---------------------------------------------------------------------------
// The malloc drop-in: programs built without slitter and run with
// LD_PRELOAD=libslitter.so (`tests/malloc.rs`, `tests/programs.rs`).

/// The C++ compiler: `$CXX`, else `g++` (installed with apt-get if missing).
fn cxx_compiler() -> OsString {
    match std::env::var_os("CXX") {
        Some(cxx) => cxx,
        None => ensure_tool("g++", "g++").into_os_string(),
    }
}

/// Compiles the C (`.c`, as C11) or C++ (`.cpp`, as C++17) program
/// `source` (relative to the repository root) with `-Wall -Wextra -Werror
/// -O2 -g -pthread` into `target/<profile>/c-tests/<group>/<stem>-<how>`.
/// `link` says how slitter is linked in; `None` leaves the process
/// allocator to the C library, for runs under `LD_PRELOAD` (`<how>` is
/// then `plain`). Panics with the compiler's output on failure. Each
/// program is compiled once per test process: tests that share one wait
/// for it rather than rewrite a binary another test may be running.
pub fn compile_program(group: &str, source: &str, link: Option<Link>) -> PathBuf {
    static COMPILED: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
    let mut compiled = COMPILED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let root = manifest_dir();
    let source = root.join(source);
    let stem = source
        .file_stem()
        .expect("a source file has a name")
        .to_string_lossy()
        .into_owned();
    let is_cpp = source.extension().is_some_and(|ext| ext == "cpp");
    let how = link.map_or("plain", Link::name);
    let binary = scratch_dir(group).join(format!("{stem}-{how}"));
    if compiled.contains(&binary) {
        return binary;
    }

    let compiler = if is_cpp { cxx_compiler() } else { c_compiler() };
    let mut cc = Command::new(&compiler);
    cc.current_dir(root)
        .arg(if is_cpp { "-std=c++17" } else { "-std=c11" })
        .args(["-Wall", "-Wextra", "-Werror", "-O2", "-g", "-pthread"])
        .arg(&source)
        .arg("-o")
        .arg(&binary);
    match link {
        None => {}
        Some(Link::Dynamic) => {
            let lib_dir = lib_dir();
            cc.arg("-I")
                .arg(root.join("include"))
                .arg("-L")
                .arg(&lib_dir)
                .arg("-lslitter")
                .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
                .arg(format!("-Wl,-rpath,{}", soname_dir().display()));
        }
        Some(Link::Static) => {
            cc.arg("-I")
                .arg(root.join("include"))
                .arg(lib_dir().join("libslitter.a"))
                .args(["-lpthread", "-lm"]);
        }
    }
    cc.arg("-ldl");
    let output = cc
        .output()
        .unwrap_or_else(|e| panic!("cannot run the compiler {compiler:?}: {e}"));
    assert!(
        output.status.success(),
        "compiling {} ({how}) failed: {:?}\n{}",
        source.display(),
        cc,
        describe(&output)
    );
    compiled.push(binary.clone());
    binary
}

/// The first `program` on `$PATH`.
pub fn find_in_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            use std::os::unix::fs::PermissionsExt;
            candidate
                .metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// The path of `program`, installing the Debian package `package` with
/// apt-get first if it is not on `$PATH` (only when running as root, as in
/// CI; otherwise panics saying what to install).
pub fn ensure_tool(program: &str, package: &str) -> PathBuf {
    // One apt-get at a time within this test binary.
    static APT: std::sync::Mutex<bool> = std::sync::Mutex::new(false);

    if let Some(path) = find_in_path(program) {
        return path;
    }
    let mut updated = APT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(path) = find_in_path(program) {
        return path;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        panic!(
            "`{program}` is not installed and this test is not running as root: \
             install the `{package}` package (apt-get install {package})"
        );
    }
    let apt = |args: &[&str]| {
        let mut command = Command::new("apt-get");
        command.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        let output = output(&mut command);
        assert!(
            output.status.success(),
            "`{program}` is missing and {command:?} failed\n{}",
            describe(&output)
        );
    };
    if !*updated {
        apt(&["update", "-qq"]);
        *updated = true;
    }
    apt(&["install", "-y", "-qq", "--no-install-recommends", package]);
    find_in_path(program).unwrap_or_else(|| {
        panic!("installed the `{package}` package but `{program}` is still not on $PATH")
    })
}

/// The real python3 interpreter: `sys.executable`, so that a wrapper on
/// `$PATH` (pyenv's shims are shell scripts) is not what runs the workload.
pub fn python3() -> PathBuf {
    let python = ensure_tool("python3", "python3");
    let output = output(
        Command::new(&python)
            .args(["-c", "import sys; print(sys.executable)"])
            .env_remove("LD_PRELOAD"),
    );
    assert!(
        output.status.success(),
        "cannot run {}\n{}",
        python.display(),
        describe(&output)
    );
    let executable = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if executable.is_empty() {
        python
    } else {
        PathBuf::from(executable)
    }
}

/// The `libslitter.so` that `LD_PRELOAD` names.
pub fn preload_library() -> PathBuf {
    lib_dir().join("libslitter.so")
}

/// Makes `command` run with `libslitter.so` preloaded (ahead of anything
/// already in `$LD_PRELOAD`).
pub fn preload(command: &mut Command) -> &mut Command {
    let mut preload = OsString::from(preload_library());
    if let Some(old) = std::env::var_os("LD_PRELOAD").filter(|p| !p.is_empty()) {
        preload.push(":");
        preload.push(old);
    }
    command.env("LD_PRELOAD", preload)
}

/// A command running `program` (a path or a name on `$PATH`) in the
/// repository root under `LD_PRELOAD=libslitter.so`, without core dumps.
pub fn preloaded_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new(program);
    command.current_dir(manifest_dir());
    preload(&mut command);
    no_core_dumps(&mut command);
    command
}

/// Runs `binary` with `args` under `LD_PRELOAD=libslitter.so`.
pub fn run_preloaded(binary: &Path, args: &[&str]) -> Output {
    output(preloaded_command(binary).args(args))
}

/// Asserts that the `allocator: malloc=... free=...` line printed by
/// `tests/c/allocator_probe.h` names `libslitter` for both functions.
pub fn assert_allocator_is_slitter(output: &Output) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find(|line| line.starts_with("allocator: "))
        .unwrap_or_else(|| {
            panic!(
                "the program printed no `allocator:` line\n{}",
                describe(output)
            )
        });
    for key in ["malloc", "free"] {
        let object = field(line, key).unwrap_or("?");
        assert!(
            object.contains("libslitter"),
            "{key} does not resolve to libslitter.so but to {object} \
             (does libslitter.so export `{key}`?): {line}"
        );
    }
}

/// The C allocation API as a replacement malloc must define it: every
/// binding of one of these names must go to libslitter.so.
pub const ALLOCATION_SYMBOLS: &[&str] = &[
    "malloc",
    "free",
    "calloc",
    "realloc",
    "reallocarray",
    "posix_memalign",
    "aligned_alloc",
    "memalign",
    "valloc",
    "pvalloc",
    "malloc_usable_size",
    "cfree",
    "free_sized",
    "free_aligned_sized",
    "__libc_malloc",
    "__libc_free",
    "__libc_calloc",
    "__libc_realloc",
    "__libc_memalign",
    "__libc_valloc",
    "__libc_pvalloc",
];

/// `path` as a new empty directory (removed first if it exists).
pub fn fresh_dir(path: &Path) -> PathBuf {
    if path.exists() {
        std::fs::remove_dir_all(path)
            .unwrap_or_else(|e| panic!("cannot remove {}: {e}", path.display()));
    }
    std::fs::create_dir_all(path)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
    path.to_path_buf()
}

/// Makes the dynamic linker of `command`, and of every process it starts,
/// log each symbol binding (`LD_DEBUG=bindings`) into `<dir>/ld.<pid>`, for
/// `check_bindings`. `dir` must exist; old logs in it count too.
///
/// This is the binding probe for programs we do not build: the log shows,
/// for every object of every process, which object each reference to
/// `malloc`, `free`, ... was bound to, including the C library's own
/// internal references and the dynamic loader's switch to the real malloc.
pub fn trace_bindings<'a>(command: &'a mut Command, dir: &Path) -> &'a mut Command {
    command
        .env("LD_DEBUG", "bindings")
        .env("LD_DEBUG_OUTPUT", dir.join("ld"))
}

/// The referencing object, the defining object and the symbol of an
/// `LD_DEBUG=bindings` line such as
/// ``binding file /usr/bin/sort [0] to /lib/x86_64-linux-gnu/libc.so.6 [0]: normal symbol `malloc' [GLIBC_2.2.5]``.
fn parse_binding(line: &str) -> Option<(&str, &str, &str)> {
    let start = line.find("binding file ")? + "binding file ".len();
    let (from, rest) = line[start..].split_once(" to ")?;
    let (to, rest) = rest.split_once(": normal symbol `")?;
    let (symbol, _) = rest.split_once('\'')?;
    let name = |s: &str| -> usize { s.rfind(" [").unwrap_or(s.len()) };
    Some((&from[..name(from)], &to[..name(to)], symbol))
}

/// Checks the `LD_DEBUG=bindings` logs that `trace_bindings` had written to
/// `dir`: no process bound a name of `ALLOCATION_SYMBOLS` to the C library,
/// every process that bound any of them bound at least one to libslitter.so,
/// and `malloc` and `free` were bound to libslitter.so somewhere. (Bindings
/// to other objects are allowed: a non-PIE program's canonical PLT entry for
/// `malloc` is itself bound to libslitter.so.) Returns a one-line summary,
/// or what is wrong.
pub fn check_bindings(dir: &Path) -> Result<String, String> {
    let mut problems = Vec::new();
    let mut processes = 0;
    let mut to_slitter = 0;
    let mut malloc_seen = false;
    let mut free_seen = false;
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry
            .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
            .path();
        let bytes =
            std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let log = String::from_utf8_lossy(&bytes);
        let mut allocation_bindings = 0;
        let mut slitter_bindings = 0;
        for line in log.lines() {
            let Some((from, to, symbol)) = parse_binding(line) else {
                continue;
            };
            if !ALLOCATION_SYMBOLS.contains(&symbol) {
                continue;
            }
            allocation_bindings += 1;
            if to.contains("libslitter") {
                slitter_bindings += 1;
                malloc_seen |= symbol == "malloc";
                free_seen |= symbol == "free";
            } else if to.contains("/libc.so") || to.contains("/libc-") {
                problems.push(format!(
                    "{}: {from} binds `{symbol}' to {to}",
                    path.display()
                ));
            }
        }
        if allocation_bindings > 0 {
            processes += 1;
            to_slitter += slitter_bindings;
            if slitter_bindings == 0 {
                problems.push(format!(
                    "{}: this process bound no allocation function to libslitter.so",
                    path.display()
                ));
            }
        }
    }
    if processes == 0 {
        problems.push(format!(
            "no process logged a binding of an allocation function in {} \
             (is LD_DEBUG honoured?)",
            dir.display()
        ));
    } else if !malloc_seen || !free_seen {
        problems.push("`malloc' or `free' was never bound to libslitter.so".to_owned());
    }
    if problems.is_empty() {
        Ok(format!(
            "{processes} processes, {to_slitter} bindings of allocation functions to libslitter.so"
        ))
    } else {
        let total = problems.len();
        problems.truncate(12);
        if total > problems.len() {
            problems.push(format!("... and {} more", total - problems.len()));
        }
        Err(problems.join("\n"))
    }
}

/// Panics unless `check_bindings(dir)` passes.
pub fn assert_bound_to_slitter(dir: &Path, what: &str) {
    if let Err(problems) = check_bindings(dir) {
        panic!(
            "{what}: the allocation functions do not all resolve to {} \
             (LD_DEBUG=bindings logs in {}):\n{problems}",
            preload_library().display(),
            dir.display()
        );
    }
}

// ---------------------------------------------------------------------------
// Tests that run cargo themselves.

/// The cargo running these tests (`$CARGO`), else `cargo` from `$PATH`.
pub fn cargo() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// `target/<profile>/c-tests/<group>/target`: the target directory of a
/// cargo run from inside a test. It must not be the outer one, which the
/// `cargo test` running the test keeps locked.
pub fn nested_target_dir(group: &str) -> PathBuf {
    scratch_dir(group).join("target")
}
