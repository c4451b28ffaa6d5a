//! Compiles the C shim in `c/`, gives `libslitter.so` its SONAME, and, with
//! the `regenerate-header` feature, generates the C header with cbindgen.
//!
//! The SONAME is `libslitter.so.<major>`, from `CARGO_PKG_VERSION`.
//!
//! With `--features regenerate-header` the header is generated into
//! `$OUT_DIR/slitter.h` on every build, with the version macros
//! (`SLITTER_VERSION_MAJOR`, ...) from `CARGO_PKG_VERSION`; a test
//! (`tests/c_api.rs`) builds with the feature and fails when that header
//! differs from the committed `include/slitter.h`. Set
//! `SLITTER_UPDATE_HEADER=1` (with the feature) to refresh the committed copy.

use std::env;

/// `CARGO_PKG_VERSION`, in parts.
struct Version {
    major: u32,
    minor: u32,
    patch: u32,
}

impl Version {
    fn from_env() -> Version {
        let part = |name: &str| -> u32 {
            let text = env::var(name).unwrap_or_else(|_| panic!("cargo sets {name}"));
            text.parse()
                .unwrap_or_else(|_| panic!("{name}={text:?} is not a number"))
        };
        let version = Version {
            major: part("CARGO_PKG_VERSION_MAJOR"),
            minor: part("CARGO_PKG_VERSION_MINOR"),
            patch: part("CARGO_PKG_VERSION_PATCH"),
        };
        // SLITTER_VERSION packs the parts into one number.
        assert!(
            version.minor < 100 && version.patch < 100,
            "SLITTER_VERSION needs a minor and patch version below 100"
        );
        version
    }
}

fn main() {
    let mut shim = cc::Build::new();
    shim.file("c/layout.c")
        .file("c/thread_state.c")
        .flag("-std=c11")
        .warnings(true)
        .extra_warnings(true);
    if env::var_os("CARGO_FEATURE_TEST_ONLY_SMALL_CONSTANTS").is_some() {
        shim.define("SLITTER_SMALL_CONSTANTS", None);
    }
    shim.compile("slitter_shim");
    // The C++ aligned operator new entry points (malloc personality):
    // std::bad_alloc unwinds through them.
    if env::var_os("CARGO_FEATURE_MALLOC").is_some() {
        cc::Build::new()
            .file("c/cxx_new.c")
            .flag("-std=c11")
            .flag("-fexceptions")
            .warnings(true)
            .extra_warnings(true)
            .compile("slitter_cxx_new");
    }
    for path in [
        "c/layout.c",
        "c/layout.h",
        "c/thread_state.c",
        "c/cxx_new.c",
    ] {
        println!("cargo:rerun-if-changed={path}");
    }

    let version = Version::from_env();
    println!(
        "cargo:rustc-cdylib-link-arg=-Wl,-soname,libslitter.so.{}",
        version.major
    );

    header(&version);
    println!("cargo:rerun-if-env-changed=SLITTER_UPDATE_HEADER");
}

/// Generates `$OUT_DIR/slitter.h`, and copies it to `include/slitter.h`
/// when `SLITTER_UPDATE_HEADER` is set.
#[cfg(feature = "regenerate-header")]
fn header(version: &Version) {
    use std::path::PathBuf;

    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());

    let mut config = cbindgen::Config::from_file(manifest_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is valid");
    let Version {
        major,
        minor,
        patch,
    } = version;
    let version_macros = format!(
        "
/*
 * The version of slitter this header belongs to. SLITTER_VERSION is
 * major * 10000 + minor * 100 + patch; slitter_version() returns the same
 * number for the library a program runs with.
 */
#define SLITTER_VERSION_MAJOR {major}
#define SLITTER_VERSION_MINOR {minor}
#define SLITTER_VERSION_PATCH {patch}
#define SLITTER_VERSION {}

",
        major * 10000 + minor * 100 + patch
    );
    config.after_includes = Some(version_macros + config.after_includes.as_deref().unwrap_or(""));

    let generated = out_dir.join("slitter.h");
    cbindgen::Builder::new()
        .with_crate(&manifest_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen can generate the header")
        .write_to_file(&generated);
    if env::var_os("SLITTER_UPDATE_HEADER").is_some() {
        std::fs::copy(&generated, manifest_dir.join("include/slitter.h"))
            .expect("include/slitter.h is writable");
    }
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
}

/// Without the feature the committed header is used as it is; asking for
/// an update then is a mistake worth stopping the build for.
#[cfg(not(feature = "regenerate-header"))]
fn header(_version: &Version) {
    if env::var_os("SLITTER_UPDATE_HEADER").is_some() {
        panic!(
            "SLITTER_UPDATE_HEADER is set but the header is only generated with the \
             `regenerate-header` feature: run \
             `SLITTER_UPDATE_HEADER=1 cargo build --features regenerate-header`"
        );
    }
}
