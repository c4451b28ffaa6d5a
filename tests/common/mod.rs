//! Helpers shared by the integration tests that build C programs against
//! the slitter cdylib or staticlib and run them (`tests/c_api.rs`,
//! `tests/death.rs`, `tests/examples.rs`).
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
    /// `-L <dir> -lslitter` with an rpath: uses `libslitter.so`.
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

/// The C compiler: `$CC`, else `cc`.
fn c_compiler() -> OsString {
    std::env::var_os("CC").unwrap_or_else(|| "cc".into())
}

/// Compiles `source` (relative to the repository root) against
/// `include/slitter.h` and links it with slitter as `link` says, into
/// `target/<profile>/c-tests/<group>/<stem>-<link>`. Panics with the
/// compiler's output on failure.
pub fn compile_c(group: &str, source: &str, link: Link) -> PathBuf {
    let root = manifest_dir();
    let source = root.join(source);
    let stem = source
        .file_stem()
        .expect("a C source file has a name")
        .to_string_lossy()
        .into_owned();
    let binary = scratch_dir(group).join(format!("{stem}-{}", link.name()));
    let lib_dir = lib_dir();

    let mut cc = Command::new(c_compiler());
    cc.current_dir(root)
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-g"])
        .arg("-I")
        .arg(root.join("include"))
        .arg(&source)
        .arg("-o")
        .arg(&binary);
    match link {
        Link::Dynamic => {
            cc.arg("-L")
                .arg(&lib_dir)
                .arg("-lslitter")
                .arg(format!("-Wl,-rpath,{}", lib_dir.display()));
        }
        Link::Static => {
            cc.arg(lib_dir.join("libslitter.a"))
                .args(["-lpthread", "-ldl", "-lm"]);
        }
    }
    let output = cc
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C compiler {:?}: {e}", c_compiler()));
    assert!(
        output.status.success(),
        "compiling {} ({} link) failed: {:?}\n{}",
        source.display(),
        link.name(),
        cc,
        describe(&output)
    );
    binary
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
