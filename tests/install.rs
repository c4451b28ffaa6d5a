//! `make install` and what it installs: the files and links, the SONAME,
//! C programs built with `pkg-config --cflags --libs slitter` (linked
//! dynamically, and statically with `--static`), `make uninstall`, and the
//! `slitter-run` launcher.
//!
//! The Makefile runs `cargo build --release` into a target directory of its
//! own (`target/<profile>/c-tests/install/target`): the one of the
//! `cargo test` running this is locked while tests run. The first build
//! there takes a minute or two; later ones are incremental.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const GROUP: &str = "install";

/// `<major>.<minor>.<patch>` and `<major>`.
const VERSION: &str = env!("CARGO_PKG_VERSION");
const MAJOR: &str = env!("CARGO_PKG_VERSION_MAJOR");

/// Runs `make -C <repository> <args>` with the nested target directory, and
/// panics with its output if it fails.
fn make(args: &[&str]) -> Output {
    let make = common::ensure_tool("make", "make");
    let target_dir = common::nested_target_dir(GROUP);
    let mut command = Command::new(make);
    command
        .arg("-C")
        .arg(common::manifest_dir())
        .args(args)
        .arg(format!("CARGO_TARGET_DIR={}", target_dir.display()))
        .env("CARGO", common::cargo())
        .env("CARGO_TARGET_DIR", &target_dir);
    let output = common::output(&mut command);
    assert!(
        output.status.success(),
        "{command:?} failed\n{}",
        common::describe(&output)
    );
    output
}

/// The prefix that `make install PREFIX=...` filled, once per test run.
fn prefix() -> &'static Path {
    static PREFIX: OnceLock<PathBuf> = OnceLock::new();
    PREFIX.get_or_init(|| {
        let prefix = common::fresh_dir(&common::scratch_dir(GROUP).join("prefix"));
        make(&["install", &format!("PREFIX={}", prefix.display())]);
        prefix
    })
}

/// The files `make install` installs, relative to the prefix.
fn installed_files() -> Vec<String> {
    vec![
        "bin/slitter-run".to_owned(),
        format!("lib/libslitter.so.{VERSION}"),
        format!("lib/libslitter.so.{MAJOR}"),
        "lib/libslitter.so".to_owned(),
        "lib/libslitter.a".to_owned(),
        "lib/pkgconfig/slitter.pc".to_owned(),
        "include/slitter.h".to_owned(),
        "share/man/man7/slitter.7".to_owned(),
    ]
}

/// `readelf -d FILE`.
fn dynamic_section(file: &Path) -> String {
    let readelf = common::ensure_tool("readelf", "binutils");
    let output = common::output(Command::new(readelf).arg("-d").arg(file));
    assert!(
        output.status.success(),
        "readelf -d {} failed\n{}",
        file.display(),
        common::describe(&output)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `pkg-config ARGS slitter` against the installed `slitter.pc`, split
/// into words.
fn pkg_config(args: &[&str]) -> Vec<String> {
    let pkg_config = common::ensure_tool("pkg-config", "pkg-config");
    let mut command = Command::new(pkg_config);
    command
        .args(args)
        .arg("slitter")
        .env("PKG_CONFIG_PATH", prefix().join("lib/pkgconfig"))
        .env_remove("PKG_CONFIG_LIBDIR");
    let output = common::output(&mut command);
    assert!(
        output.status.success(),
        "{command:?} failed\n{}",
        common::describe(&output)
    );
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// Compiles `tests/c/class_api.c` (which checks the header's version
/// against `slitter_version()`) with the installed header and `link_flags`.
fn compile_class_api(name: &str, link_flags: &[String]) -> PathBuf {
    let binary = common::scratch_dir(GROUP).join(name);
    let mut cc = Command::new(std::env::var_os("CC").unwrap_or_else(|| "cc".into()));
    cc.current_dir(common::manifest_dir())
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-O2"])
        .args(pkg_config(&["--cflags"]))
        .arg("tests/c/class_api.c")
        .arg("-o")
        .arg(&binary)
        .args(link_flags);
    let output = common::output(&mut cc);
    assert!(
        output.status.success(),
        "{cc:?} failed\n{}",
        common::describe(&output)
    );
    binary
}

/// The `NEEDED` entries of `binary`'s dynamic section.
fn needed(binary: &Path) -> Vec<String> {
    dynamic_section(binary)
        .lines()
        .filter(|line| line.contains("(NEEDED)"))
        .filter_map(|line| Some(line.split_once('[')?.1.split_once(']')?.0.to_owned()))
        .collect()
}

#[test]
fn installs_the_library_header_pkg_config_file_man_page_and_launcher() {
    let prefix = prefix();
    for file in installed_files() {
        assert!(
            prefix.join(&file).is_file(),
            "make install did not install {file} into {}",
            prefix.display()
        );
    }
    let lib = prefix.join("lib");
    for (link, target) in [
        (
            format!("libslitter.so.{MAJOR}"),
            format!("libslitter.so.{VERSION}"),
        ),
        ("libslitter.so".to_owned(), format!("libslitter.so.{MAJOR}")),
    ] {
        let found = std::fs::read_link(lib.join(&link))
            .unwrap_or_else(|e| panic!("{link} is not a symbolic link: {e}"));
        assert_eq!(found, Path::new(&target), "{link} points elsewhere");
    }
    let dynamic = dynamic_section(&lib.join(format!("libslitter.so.{VERSION}")));
    let soname = format!("Library soname: [libslitter.so.{MAJOR}]");
    assert!(
        dynamic.contains(&soname),
        "the installed library has no `{soname}`:\n{dynamic}"
    );
    assert_eq!(
        pkg_config(&["--modversion"]),
        [VERSION],
        "slitter.pc has another version"
    );
    let header = std::fs::read_to_string(prefix.join("include/slitter.h")).unwrap();
    let committed = std::fs::read_to_string(common::manifest_dir().join("include/slitter.h"))
        .expect("include/slitter.h is readable");
    assert_eq!(
        header, committed,
        "the installed header is not include/slitter.h"
    );
}

#[test]
fn c_program_links_dynamically_through_pkg_config() {
    let libs = pkg_config(&["--libs"]);
    assert!(
        libs.iter().any(|word| word == "-lslitter"),
        "pkg-config --libs slitter has no -lslitter: {libs:?}"
    );
    let binary = compile_class_api("class_api-pkg-config-dynamic", &libs);
    let needed = needed(&binary);
    let soname = format!("libslitter.so.{MAJOR}");
    assert!(
        needed.contains(&soname),
        "the program does not need {soname}: {needed:?}"
    );

    let lib = prefix().join("lib");
    let run = |extra: Option<(&str, &str)>| {
        let mut command = Command::new(&binary);
        command.env("LD_LIBRARY_PATH", &lib);
        if let Some((key, value)) = extra {
            command.env(key, value);
        }
        common::output(&mut command)
    };
    // The dynamic loader's list: libslitter.so.0 comes from the prefix.
    let trace = run(Some(("LD_TRACE_LOADED_OBJECTS", "1")));
    let expected = format!("{soname} => {}", lib.join(&soname).display());
    assert!(
        String::from_utf8_lossy(&trace.stdout).contains(&expected),
        "{soname} is not loaded from {}\n{}",
        lib.display(),
        common::describe(&trace)
    );
    common::assert_success_ending_with(&run(None), "ok");
}

#[test]
fn c_program_links_statically_through_pkg_config() {
    let libs = pkg_config(&["--static", "--libs"]);
    for library in ["-lslitter", "-lpthread", "-ldl"] {
        assert!(
            libs.iter().any(|word| word == library),
            "pkg-config --static --libs slitter has no {library}: {libs:?}"
        );
    }
    // libslitter.so is installed beside libslitter.a: make the linker take
    // the archive, as the README says.
    let libs: Vec<String> = libs
        .into_iter()
        .map(|word| {
            if word == "-lslitter" {
                "-l:libslitter.a".to_owned()
            } else {
                word
            }
        })
        .collect();
    let binary = compile_class_api("class_api-pkg-config-static", &libs);
    let needed = needed(&binary);
    assert!(
        !needed.iter().any(|library| library.contains("slitter")),
        "the static link still needs a shared slitter: {needed:?}"
    );
    let output = common::output(&mut Command::new(&binary));
    common::assert_success_ending_with(&output, "ok");
}

#[test]
fn destdir_install_and_uninstall() {
    let stage = common::fresh_dir(&common::scratch_dir(GROUP).join("stage"));
    let destdir = format!("DESTDIR={}", stage.display());
    make(&["install", "PREFIX=/opt/slitter", &destdir]);
    let root = stage.join("opt/slitter");
    for file in installed_files() {
        assert!(
            root.join(&file).is_file(),
            "make install DESTDIR=... did not install {file} under {}",
            root.display()
        );
    }
    let pc = std::fs::read_to_string(root.join("lib/pkgconfig/slitter.pc")).unwrap();
    assert!(
        pc.lines().any(|line| line == "prefix=/opt/slitter"),
        "slitter.pc does not name the final prefix:\n{pc}"
    );

    make(&["uninstall", "PREFIX=/opt/slitter", &destdir]);
    for file in installed_files() {
        assert!(
            root.join(&file).symlink_metadata().is_err(),
            "make uninstall left {file} under {}",
            root.display()
        );
    }
}

// ---------------------------------------------------------------------------
// The launcher.

/// Runs the installed `slitter-run` with `args`.
fn slitter_run(args: &[&str]) -> Output {
    common::output(Command::new(prefix().join("bin/slitter-run")).args(args))
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn launcher_stats_table_for_true() {
    let output = slitter_run(&["--stats", "true"]);
    assert!(output.status.success(), "{}", common::describe(&output));
    let stderr = stderr(&output);
    for prefix in [
        "slitter: statistics of pid ",
        "slitter: total ",
        "slitter: counts are exact",
    ] {
        assert!(
            stderr.lines().any(|line| line.starts_with(prefix)),
            "no stderr line starting with {prefix:?}\n{}",
            common::describe(&output)
        );
    }
    let plain = slitter_run(&["true"]);
    assert!(
        common::slitter_lines(&plain).is_empty(),
        "without --stats, slitter printed:\n{}",
        common::describe(&plain)
    );
}

#[test]
fn launcher_makes_the_installed_library_the_programs_malloc() {
    let probe = common::compile_program(GROUP, "tests/c/malloc_probe.c", None);
    let installed = prefix()
        .join("lib")
        .canonicalize()
        .unwrap()
        .join("libslitter");
    let output = slitter_run(&[
        "--stats",
        "--",
        probe.to_str().unwrap(),
        installed.to_str().unwrap(),
    ]);
    assert!(
        output.status.success()
            && String::from_utf8_lossy(&output.stdout)
                .lines()
                .any(|line| line == "malloc_probe: ok"),
        "the allocation functions do not all come from {}\n{}",
        installed.display(),
        common::describe(&output)
    );
    let stderr = stderr(&output);
    assert!(
        stderr
            .lines()
            .any(|line| line.starts_with("slitter: malloc-")),
        "no malloc class in the statistics table\n{}",
        common::describe(&output)
    );
}

#[test]
fn launcher_flags_set_the_configuration() {
    let output = slitter_run(&["--verbose", "--harden", "true"]);
    let lines = common::slitter_lines(&output);
    assert!(
        output.status.success()
            && lines.len() == 1
            && lines[0].starts_with("slitter: version ")
            && lines[0].contains(
                ": SLITTER_STATS=0 SLITTER_VERBOSE=1 SLITTER_HARDEN=1 SLITTER_CONTINUE_ON_MISUSE=0 \
                 SLITTER_MPROTECT_GUARDS=0 SLITTER_PURGE_DELAY=100; large-block guards: "
            ),
        "expected the verbose line with hardening on\n{}",
        common::describe(&output)
    );
}

#[test]
fn launcher_in_the_build_tree_uses_the_library_beside_it() {
    prefix();
    let release = common::nested_target_dir(GROUP).join("release");
    let output = common::output(
        Command::new(release.join("slitter-run"))
            .args(["--verbose", "true"])
            .env_remove("SLITTER_LIBRARY"),
    );
    assert!(
        output.status.success() && common::slitter_lines(&output).len() == 1,
        "{}",
        common::describe(&output)
    );
}

#[test]
fn launcher_help_and_errors() {
    let help = slitter_run(&["--help"]);
    assert!(
        help.status.success() && String::from_utf8_lossy(&help.stdout).starts_with("Usage: "),
        "{}",
        common::describe(&help)
    );

    let missing = slitter_run(&["--stats", "no-such-program-for-slitter"]);
    assert_eq!(
        missing.status.code(),
        Some(127),
        "{}",
        common::describe(&missing)
    );
    assert!(
        stderr(&missing).contains("no-such-program-for-slitter: program not found"),
        "{}",
        common::describe(&missing)
    );

    let none = slitter_run(&["--stats"]);
    assert_eq!(none.status.code(), Some(2), "{}", common::describe(&none));
    assert!(stderr(&none).contains("no program to run"));

    let library = common::output(
        Command::new(prefix().join("bin/slitter-run"))
            .arg("true")
            .env("SLITTER_LIBRARY", "/nonexistent/libslitter.so"),
    );
    assert_eq!(
        library.status.code(),
        Some(127),
        "{}",
        common::describe(&library)
    );
    assert!(
        stderr(&library).contains("SLITTER_LIBRARY=/nonexistent/libslitter.so: no such file"),
        "{}",
        common::describe(&library)
    );
}
