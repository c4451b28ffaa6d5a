//! Compiles the C shim in `c/` and generates the C header with cbindgen.
//!
//! The header is generated into `$OUT_DIR/slitter.h` on every build; a test
//! (`tests/c_api.rs`) fails when it differs from the committed
//! `include/slitter.h`. Set `SLITTER_UPDATE_HEADER=1` to refresh the
//! committed copy.

use std::env;
use std::path::PathBuf;

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());

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
    for path in ["c/layout.c", "c/layout.h", "c/thread_state.c"] {
        println!("cargo:rerun-if-changed={path}");
    }

    let config = cbindgen::Config::from_file(manifest_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is valid");
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
    println!("cargo:rerun-if-env-changed=SLITTER_UPDATE_HEADER");
}
