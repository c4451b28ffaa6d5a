//! The C class API, exported from the cdylib and the staticlib and declared
//! in `include/slitter.h` (generated from this file by cbindgen).
//!
//! Owns: the `extern "C"` entry points of the class API and their C types.
//! Invariants: every entry point validates its arguments and either
//! succeeds or reports a clear error; nothing panics or unwinds across the
//! C boundary (every failure goes through `fatal::die`, which aborts).

use core::ffi::{c_char, c_void, CStr};

use crate::cache::checks;
use crate::cache::class_table::{self, ClassError, RawConfig};
use crate::cache::misuse_report;
use crate::cache::thread_cache;
use crate::heap::file_mapper;

/// A registered class, passed by value. Id 0 is never a valid class.
// The Rust examples are attached for rustdoc only, so that cbindgen keeps
// them out of the C header.
#[cfg_attr(
    any(doc, doctest),
    doc = r#"
The C API can be called from Rust too (the crate exports it):

```
use core::ffi::c_void;
use slitter::{SlitterClass, SlitterClassConfig};

extern "C" {
    fn slitter_class_register(config: *const SlitterClassConfig) -> SlitterClass;
    fn slitter_allocate(class: SlitterClass) -> *mut c_void;
    fn slitter_release(class: SlitterClass, ptr: *mut c_void);
}

let config = SlitterClassConfig {
    name: c"c-api-example".as_ptr(),
    size: 24,
    zero_init: true,
    mapper_name: core::ptr::null(),
    purge: false,
};
// SAFETY: a valid config with a NUL-terminated name; the object is
// released once, into its own class.
unsafe {
    let class = slitter_class_register(&config);
    assert_eq!(slitter::Class::from_id(class.id).unwrap().info().name(), "c-api-example");
    let object = slitter_allocate(class);
    assert_eq!(*object.cast::<u64>(), 0);
    slitter_release(class, object);
}
```
"#
)]
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SlitterClass {
    /// The class id.
    pub id: u32,
}

/// How to create a class. Use designated initialisers: fields added in
/// later versions default to zero.
// As for `SlitterClass`: the Rust example is for rustdoc only.
#[cfg_attr(
    any(doc, doctest),
    doc = r#"
```
use slitter::{SlitterClass, SlitterClassConfig, SlitterStatus};

extern "C" {
    fn slitter_class_try_register(
        config: *const SlitterClassConfig,
        out: *mut SlitterClass,
    ) -> SlitterStatus;
}

let try_register = |size, mapper_name: &core::ffi::CStr, out: *mut SlitterClass| {
    let config = SlitterClassConfig {
        name: core::ptr::null(),
        size,
        zero_init: false,
        mapper_name: mapper_name.as_ptr(),
        purge: false,
    };
    // SAFETY: a valid config whose strings are NULL or NUL-terminated;
    // `out` is NULL or writable.
    unsafe { slitter_class_try_register(&config, out) }
};
let mut class = SlitterClass { id: 0 };
assert_eq!(try_register(100, c"file", &mut class), SlitterStatus::SLITTER_OK);
let info = slitter::Class::from_id(class.id).unwrap().info();
assert_eq!((info.name(), info.object_size), ("anonymous", 112));

let nowhere = core::ptr::null_mut();
assert_eq!(try_register(0, c"file", nowhere), SlitterStatus::SLITTER_ZERO_SIZE);
assert_eq!(try_register(8, c"tape", nowhere), SlitterStatus::SLITTER_UNKNOWN_MAPPER);
```
"#
)]
#[repr(C)]
pub struct SlitterClassConfig {
    /// A name for diagnostics (NULL: "anonymous"); copied, at most 63 bytes.
    pub name: *const c_char,
    /// Object size in bytes, from 1 to the largest span size (rounded up
    /// to a multiple of 16).
    pub size: usize,
    /// Whether every object handed out reads as zeroes.
    pub zero_init: bool,
    /// The mapper to take memory from: NULL or "default" for anonymous
    /// memory, "file" for file-backed memory.
    pub mapper_name: *const c_char,
    /// Whether the memory of spans whose objects are all released may go
    /// back to the operating system (after SLITTER_PURGE_DELAY, or at
    /// malloc_trim), so that a released object may then read as zeroes.
    /// Off (0) by default: a released object keeps its bytes until it is
    /// handed out again, which lock-free readers of type-stable memory may
    /// rely on (e.g. a generation counter that must never go back to
    /// zero). Addresses stay the class's either way; zero_init holds
    /// either way. The "file" mapper never gives memory back.
    pub purge: bool,
}

/// The outcome of `slitter_class_try_register`.
// As for `SlitterClass`: the Rust example is for rustdoc only.
#[cfg_attr(
    any(doc, doctest),
    doc = r#"
```
use slitter::{ClassError, SlitterStatus};

// `slitter_class_try_register` returns these (see `SlitterClassConfig`);
// the Rust API's errors map to the same statuses.
assert_eq!(SlitterStatus::SLITTER_OK as i32, 0);
assert_eq!(
    SlitterStatus::from(ClassError::ZeroSize),
    SlitterStatus::SLITTER_ZERO_SIZE
);
assert_eq!(
    SlitterStatus::from(ClassError::SizeTooLarge { size: 1 << 40, max: slitter::MAX_SPAN_SIZE }),
    SlitterStatus::SLITTER_SIZE_TOO_LARGE
);
```
"#
)]
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlitterStatus {
    /// The class was registered.
    SLITTER_OK = 0,
    /// The config pointer was NULL.
    SLITTER_NULL_CONFIG,
    /// The object size was 0.
    SLITTER_ZERO_SIZE,
    /// The object size exceeds the largest span the mill serves.
    SLITTER_SIZE_TOO_LARGE,
    /// No mapper is registered under `mapper_name`.
    SLITTER_UNKNOWN_MAPPER,
    /// The class table is full.
    SLITTER_TOO_MANY_CLASSES,
    /// Memory for the class's records could not be obtained.
    SLITTER_OUT_OF_MEMORY,
}

impl From<ClassError> for SlitterStatus {
    fn from(error: ClassError) -> Self {
        match error {
            ClassError::NullConfig => Self::SLITTER_NULL_CONFIG,
            ClassError::ZeroSize => Self::SLITTER_ZERO_SIZE,
            ClassError::SizeTooLarge { .. } => Self::SLITTER_SIZE_TOO_LARGE,
            ClassError::UnknownMapper => Self::SLITTER_UNKNOWN_MAPPER,
            ClassError::TooManyClasses => Self::SLITTER_TOO_MANY_CLASSES,
            ClassError::OutOfMemory => Self::SLITTER_OUT_OF_MEMORY,
        }
    }
}

/// Reads an optional C string.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string.
unsafe fn optional_bytes<'a>(ptr: *const c_char) -> Option<&'a [u8]> {
    // SAFETY: guaranteed by the caller.
    (!ptr.is_null()).then(|| unsafe { CStr::from_ptr(ptr) }.to_bytes())
}

/// Registers the class described by `config`.
///
/// # Safety
/// `config` is NULL or points to a valid config whose strings are NULL or
/// NUL-terminated.
unsafe fn register(config: *const SlitterClassConfig) -> Result<SlitterClass, ClassError> {
    // SAFETY: guaranteed by the caller.
    let config = unsafe { config.as_ref() }.ok_or(ClassError::NullConfig)?;
    let raw = RawConfig {
        // SAFETY: guaranteed by the caller.
        name: unsafe { optional_bytes(config.name) },
        size: config.size,
        zero_init: config.zero_init,
        purge: config.purge,
        scatter: false,
        // SAFETY: guaranteed by the caller.
        mapper_name: unsafe { optional_bytes(config.mapper_name) },
    };
    crate::process::entry::enter();
    class_table::register(&raw).map(|info| SlitterClass { id: info.id })
}

/// Registers a new class and returns it. Aborts with a `slitter:` message
/// naming the problem if the config is invalid (NULL, size 0 or too large,
/// unknown mapper) or memory is exhausted; see `slitter_class_try_register`
/// for a variant that reports errors instead.
///
/// # Safety
/// `config` is NULL or points to a valid config whose strings are NULL or
/// NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn slitter_class_register(config: *const SlitterClassConfig) -> SlitterClass {
    // SAFETY: forwarded from the caller.
    match unsafe { register(config) } {
        Ok(class) => class,
        // SAFETY: `register` refused a NULL config, so the config is valid.
        Err(error) => unsafe { refuse(config, error) },
    }
}

/// Aborts with a message naming the class and what is wrong with it (the
/// mapper too, for an unknown mapper).
///
/// # Safety
/// `config` is NULL or valid, as for `slitter_class_register`.
#[cold]
unsafe fn refuse(config: *const SlitterClassConfig, error: ClassError) -> ! {
    // SAFETY: guaranteed by the caller.
    let Some(config) = (unsafe { config.as_ref() }) else {
        crate::sys::fatal::die(format_args!("cannot register class: {error}"))
    };
    // SAFETY: the config's strings are NULL or NUL-terminated.
    let (name, mapper) = unsafe {
        (
            optional_bytes(config.name),
            optional_bytes(config.mapper_name),
        )
    };
    let name = Quoted(name.unwrap_or(b"anonymous"));
    match (error, mapper) {
        (ClassError::UnknownMapper, Some(mapper)) => crate::sys::fatal::die(format_args!(
            "cannot register class {name}: no mapper is registered under the name {}",
            Quoted(mapper)
        )),
        _ => crate::sys::fatal::die(format_args!("cannot register class {name}: {error}")),
    }
}

/// Writes bytes from C in double quotes: their valid UTF-8 prefix, and
/// `...` if more follows.
struct Quoted<'a>(&'a [u8]);

impl core::fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let valid = match core::str::from_utf8(self.0) {
            Ok(text) => text,
            Err(error) => core::str::from_utf8(&self.0[..error.valid_up_to()]).unwrap_or(""),
        };
        let more = if valid.len() < self.0.len() {
            "..."
        } else {
            ""
        };
        write!(f, "\"{valid}{more}\"")
    }
}

/// Registers a new class into `*out`; returns SLITTER_OK, or the reason
/// the config was refused (leaving `*out` untouched).
///
/// # Safety
/// `config` as for `slitter_class_register`; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn slitter_class_try_register(
    config: *const SlitterClassConfig,
    out: *mut SlitterClass,
) -> SlitterStatus {
    // SAFETY: forwarded from the caller.
    match unsafe { register(config) } {
        Ok(class) => {
            // SAFETY: the caller passes NULL or a writable pointer.
            if let Some(out) = unsafe { out.as_mut() } {
                *out = class;
            }
            SlitterStatus::SLITTER_OK
        }
        Err(error) => error.into(),
    }
}

/// Returns a new object of `class`, 16-byte aligned (class sizes are
/// rounded up to a multiple of 16). Aborts if the class does not exist or
/// memory is exhausted.
#[no_mangle]
pub extern "C" fn slitter_allocate(class: SlitterClass) -> *mut c_void {
    thread_cache::allocate_or_die(class.id).as_ptr().cast()
}

/// Returns `ptr` to `class`; NULL is a no-op. Aborts with a `slitter:`
/// message if `ptr` is not a live object of `class` (allocated from
/// another class or not by slitter, an interior pointer, or already
/// released).
#[no_mangle]
pub extern "C" fn slitter_release(class: SlitterClass, ptr: *mut c_void) {
    let addr = ptr as usize;
    // NULL is never in a chunk, so it only costs a test on the failure path.
    match checks::take_back(class.id, addr) {
        Some((id, slot)) => thread_cache::release(id, slot),
        None if ptr.is_null() => {}
        None => misuse_report::report_bad_release(class.id, addr),
    }
}

/// Sets the directory in which the "file" mapper creates its (unlinked)
/// backing files; NULL restores the default ($TMPDIR, else /tmp). Returns 0,
/// or ENAMETOOLONG if the path is too long. Affects chunks mapped later.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn slitter_set_file_backed_slab_directory(path: *const c_char) -> i32 {
    // SAFETY: guaranteed by the caller.
    let path = (!path.is_null()).then(|| unsafe { CStr::from_ptr(path) });
    match file_mapper::set_file_backed_slab_directory(path) {
        Ok(()) => 0,
        Err(errno) => errno,
    }
}

/// A decimal part of `CARGO_PKG_VERSION`, parsed at compile time.
const fn version_part(digits: &str) -> u32 {
    let bytes = digits.as_bytes();
    assert!(!bytes.is_empty(), "a version part has digits");
    let mut value = 0;
    let mut i = 0;
    while i < bytes.len() {
        assert!(bytes[i].is_ascii_digit(), "a version part is decimal");
        value = value * 10 + (bytes[i] - b'0') as u32;
        i += 1;
    }
    value
}

/// `slitter_version()`: the crate's version as one number.
const VERSION: u32 = {
    let minor = version_part(env!("CARGO_PKG_VERSION_MINOR"));
    let patch = version_part(env!("CARGO_PKG_VERSION_PATCH"));
    assert!(
        minor < 100 && patch < 100,
        "minor and patch fit in two digits"
    );
    version_part(env!("CARGO_PKG_VERSION_MAJOR")) * 10000 + minor * 100 + patch
};

/// Returns the version of the slitter library the program runs with, as
/// major * 10000 + minor * 100 + patch (0.1.0 is 100): the same encoding as
/// the header's `SLITTER_VERSION`, so a program can check at run time that
/// the library is at least as new as the header it was compiled with.
#[no_mangle]
pub extern "C" fn slitter_version() -> core::ffi::c_uint {
    VERSION
}
