//! The statistics C API, declared in `include/slitter.h`: versioned
//! structs for one class, one mapper and the whole process, and the print
//! function.
//!
//! Owns: the `extern "C"` statistics entry points and their C types.
//! Each struct starts with `size` and `version`. The caller sets `size` to
//! `sizeof` the struct it was compiled with (zeroing the rest is wise);
//! slitter fills at most that many bytes, then sets `size` to the bytes it
//! filled (the smaller of the caller's size and its own) and `version` to
//! `SLITTER_STATS_VERSION`. Later versions only append fields, so a
//! program built against an older header keeps working with a newer
//! library, and one built against a newer header sees, from `size`, which
//! fields an older library filled.
//!
//! Invariants: nothing here allocates or unwinds; every entry point checks
//! its pointers and returns 0 or an errno value.

use core::ffi::{c_char, c_int};

use crate::c_api::classes::SlitterClass;
use crate::class_api::class::{self, Class};
use crate::stats::counters::{self, UNCOUNTED_BOUND};
use crate::stats::report;

/// The version of the statistics structs that this library fills.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlitterStatsVersion {
    /// Version 2: version 1's fields, then `purged_bytes` at the end of
    /// `struct slitter_class_stats` and `struct slitter_stats`.
    SLITTER_STATS_VERSION = 2,
}

/// Bytes kept for a name, its terminating NUL included (the literal 64 in
/// the structs below keeps it visible in the C header).
const NAME_BYTES: usize = 64;

/// Statistics of one class (see `slitter_class_stats`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SlitterClassStats {
    /// In: `sizeof(struct slitter_class_stats)`; out: the bytes filled.
    pub size: u32,
    /// Out: `SLITTER_STATS_VERSION`.
    pub version: u32,
    /// The class id.
    pub id: u32,
    /// The class name, NUL-terminated (malloc size classes: `malloc-<size>`).
    pub name: [c_char; 64],
    /// Object size in bytes.
    pub object_size: u64,
    /// Objects handed out.
    pub allocations: u64,
    /// Objects taken back.
    pub releases: u64,
    /// Objects handed out and not taken back: exact when the process
    /// stats' `uncounted_threads` is 0, else an estimate (see
    /// `uncounted_bound`).
    pub live: u64,
    /// Spans taken from the mill.
    pub spans: u64,
    /// Bytes of those spans.
    pub span_bytes: u64,
    /// Bytes of those spans whose memory is given back now (purged);
    /// their addresses stay the class's (since version 2).
    pub purged_bytes: u64,
}

/// Statistics of one mapper (see `slitter_mapper_stats`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SlitterMapperStats {
    /// In: `sizeof(struct slitter_mapper_stats)`; out: the bytes filled.
    pub size: u32,
    /// Out: `SLITTER_STATS_VERSION`.
    pub version: u32,
    /// The mapper's index in the registry.
    pub index: u32,
    /// The mapper's name, NUL-terminated ("default", "file", ...).
    pub name: [c_char; 64],
    /// Chunks reserved.
    pub chunks: u64,
    /// Bytes of address space those chunks keep reserved.
    pub reserved_bytes: u64,
    /// Bytes of chunk data handed out as spans.
    pub span_bytes: u64,
}

/// Statistics of the whole process (see `slitter_stats`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SlitterStats {
    /// In: `sizeof(struct slitter_stats)`; out: the bytes filled.
    pub size: u32,
    /// Out: `SLITTER_STATS_VERSION`.
    pub version: u32,
    /// Registered classes (malloc size classes included once malloc was
    /// used).
    pub classes: u64,
    /// Classes that handed out or took back an object, or took memory.
    pub classes_used: u64,
    /// Objects handed out, all classes together.
    pub allocations: u64,
    /// Objects taken back, all classes together.
    pub releases: u64,
    /// Live objects, all classes together.
    pub live: u64,
    /// Spans the classes took.
    pub spans: u64,
    /// Bytes of those spans.
    pub span_bytes: u64,
    /// Chunks the mappers reserved.
    pub chunks: u64,
    /// Bytes of address space those chunks keep reserved.
    pub reserved_bytes: u64,
    /// Live large allocations (malloc requests above 32 KiB, or aligned
    /// beyond 16 KiB).
    pub large_live: u64,
    /// Bytes of those.
    pub large_bytes: u64,
    /// Freed large ranges whose pages are kept for reuse.
    pub large_cached: u64,
    /// Bytes mapped for slitter's own records.
    pub arena_bytes: u64,
    /// Magazines created.
    pub magazines: u64,
    /// Per-thread caches created.
    pub thread_caches: u64,
    /// Running threads other than the caller whose latest operations may
    /// not be counted yet: 0 means every count is exact.
    pub uncounted_threads: u64,
    /// The most allocations, and the most releases, of one class that one
    /// such thread may have made without them being counted yet.
    pub uncounted_bound: u64,
    /// Bytes of the classes' spans whose memory is given back now
    /// (purged), all classes together (since version 2).
    pub purged_bytes: u64,
}

/// Copies `name` into a NUL-terminated field, truncated if needed.
fn copy_name(name: &str) -> [c_char; NAME_BYTES] {
    let mut field = [0; NAME_BYTES];
    for (to, &from) in field
        .iter_mut()
        .zip(&name.as_bytes()[..name.len().min(NAME_BYTES - 1)])
    {
        *to = from as c_char;
    }
    field
}

/// Bytes of the `size` and `version` header.
const HEADER_BYTES: u32 = 8;

/// Fills the caller's `*out` from `value` as the module doc says; the
/// struct `T` starts with the `size` and `version` header.
///
/// # Safety
/// `out` is NULL or points to at least `(*out).size` writable bytes, of
/// which the first four hold that size.
unsafe fn fill<T: Copy>(out: *mut T, value: T) -> c_int {
    if out.is_null() {
        return libc::EINVAL;
    }
    let out = out.cast::<u32>();
    // SAFETY: guaranteed by the caller.
    let caller_size = unsafe { out.read_unaligned() };
    if caller_size < HEADER_BYTES {
        return libc::EINVAL;
    }
    let filled = (caller_size as usize).min(core::mem::size_of::<T>());
    // SAFETY: `value` is a `T`; the caller's buffer holds `filled` bytes.
    unsafe {
        core::ptr::copy_nonoverlapping((&raw const value).cast::<u8>(), out.cast::<u8>(), filled);
        out.write_unaligned(filled as u32);
        out.add(1)
            .write_unaligned(SlitterStatsVersion::SLITTER_STATS_VERSION as u32);
    }
    0
}

/// Fills `*out` with the statistics of `class`. Returns 0; EINVAL if `out`
/// is NULL or `out->size` is below 8; ENOENT if no such class exists.
/// The calling thread's own operations are always counted.
///
/// # Safety
/// `out` is NULL or points to a `struct slitter_class_stats` (or a prefix
/// of one, `out->size` bytes long) whose `size` is set.
#[no_mangle]
pub unsafe extern "C" fn slitter_class_stats(
    class: SlitterClass,
    out: *mut SlitterClassStats,
) -> c_int {
    let Some(class) = Class::from_id(class.id) else {
        return libc::ENOENT;
    };
    let stats = class::class_stats(class);
    let value = SlitterClassStats {
        size: 0,
        version: 0,
        id: stats.id,
        name: copy_name(stats.name),
        object_size: stats.object_size as u64,
        allocations: stats.allocations,
        releases: stats.releases,
        live: stats.live,
        spans: stats.spans as u64,
        span_bytes: stats.span_bytes as u64,
        purged_bytes: stats.purged_bytes as u64,
    };
    // SAFETY: forwarded from the caller.
    unsafe { fill(out, value) }
}

/// Fills `*out` with the statistics of the mapper at `index` (0: the
/// default mapper, 1: "file", 2: "noaccess", then mappers registered
/// later, up to 15).
/// Returns 0; EINVAL if `out` is NULL or `out->size` is below 8; ENOENT if
/// no mapper is registered at `index`.
///
/// # Safety
/// As for `slitter_class_stats`, with `struct slitter_mapper_stats`.
#[no_mangle]
pub unsafe extern "C" fn slitter_mapper_stats(index: u32, out: *mut SlitterMapperStats) -> c_int {
    let Some(stats) = counters::mapper_stats().find(|m| m.index == index as usize) else {
        return libc::ENOENT;
    };
    let value = SlitterMapperStats {
        size: 0,
        version: 0,
        index,
        name: copy_name(stats.name),
        chunks: stats.chunks as u64,
        reserved_bytes: stats.reserved_bytes as u64,
        span_bytes: stats.span_bytes as u64,
    };
    // SAFETY: forwarded from the caller.
    unsafe { fill(out, value) }
}

/// Fills `*out` with the statistics of the whole process. Returns 0, or
/// EINVAL if `out` is NULL or `out->size` is below 8.
///
/// # Safety
/// As for `slitter_class_stats`, with `struct slitter_stats`.
#[no_mangle]
pub unsafe extern "C" fn slitter_stats(out: *mut SlitterStats) -> c_int {
    let stats = counters::process_stats();
    let internal = stats.internal;
    let value = SlitterStats {
        size: 0,
        version: 0,
        classes: stats.classes as u64,
        classes_used: stats.classes_used as u64,
        allocations: stats.allocations,
        releases: stats.releases,
        live: stats.live,
        spans: stats.spans as u64,
        span_bytes: stats.span_bytes as u64,
        chunks: stats.chunks as u64,
        reserved_bytes: stats.reserved_bytes as u64,
        large_live: internal.large_live as u64,
        large_bytes: internal.large_bytes as u64,
        large_cached: internal.large_cached as u64,
        arena_bytes: internal.arena_bytes as u64,
        magazines: internal.magazines as u64,
        thread_caches: internal.thread_caches as u64,
        uncounted_threads: stats.uncounted_threads as u64,
        uncounted_bound: UNCOUNTED_BOUND,
        purged_bytes: stats.purged_bytes as u64,
    };
    // SAFETY: forwarded from the caller.
    unsafe { fill(out, value) }
}

/// Writes the statistics table (one line per used class, totals, mappers,
/// large allocations, internal records; as `SLITTER_STATS=1` prints it at
/// exit) to the file descriptor `fd`, without allocating. Returns 0, or
/// the errno of a failed write.
#[no_mangle]
pub extern "C" fn slitter_stats_print(fd: c_int) -> c_int {
    match report::print_stats(fd) {
        Ok(()) => 0,
        Err(errno) => errno,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::heap::mapper_registry::MAX_MAPPERS;

    #[test]
    fn structs_are_filled_up_to_the_callers_size() {
        // SAFETY: all-zero bytes are a valid SlitterStats.
        let mut full: SlitterStats = unsafe { core::mem::zeroed() };
        full.size = core::mem::size_of::<SlitterStats>() as u32;
        // SAFETY: a whole struct with its size set.
        assert_eq!(unsafe { slitter_stats(&mut full) }, 0);
        assert_eq!(full.size as usize, core::mem::size_of::<SlitterStats>());
        assert_eq!(full.version, 2);
        assert_eq!(full.uncounted_bound, UNCOUNTED_BOUND);
        assert!(full.reserved_bytes >= full.span_bytes);
        // Fields added later go last, after version 1's last ones.
        use core::mem::{offset_of, size_of};
        assert_eq!(
            offset_of!(SlitterStats, purged_bytes),
            offset_of!(SlitterStats, uncounted_bound) + 8
        );
        assert_eq!(
            offset_of!(SlitterStats, purged_bytes) + 8,
            size_of::<SlitterStats>()
        );
        assert_eq!(
            offset_of!(SlitterClassStats, purged_bytes),
            offset_of!(SlitterClassStats, span_bytes) + 8
        );
        assert_eq!(
            offset_of!(SlitterClassStats, purged_bytes) + 8,
            size_of::<SlitterClassStats>()
        );

        // An older caller that only knows the first 24 bytes.
        let mut old = [0u64; 4];
        old[0] = 24;
        // SAFETY: 32 writable bytes, of which 24 are claimed.
        assert_eq!(unsafe { slitter_stats(old.as_mut_ptr().cast()) }, 0);
        assert_eq!(old[0], 24 | (2 << 32));
        assert_eq!(old[3], 0, "bytes past the caller's size were written");

        let mut tiny = [4u32, 0];
        // SAFETY: 8 writable bytes.
        assert_eq!(
            unsafe { slitter_stats(tiny.as_mut_ptr().cast()) },
            libc::EINVAL
        );
        // SAFETY: NULL is allowed.
        assert_eq!(
            unsafe { slitter_stats(core::ptr::null_mut()) },
            libc::EINVAL
        );
    }

    #[test]
    fn names_are_truncated_and_terminated() {
        let long = "n".repeat(100);
        let field = copy_name(&long);
        assert_eq!(field[NAME_BYTES - 2], b'n' as c_char);
        assert_eq!(field[NAME_BYTES - 1], 0);
        assert_eq!(copy_name("ab")[..3], [b'a' as c_char, b'b' as c_char, 0]);
    }

    #[test]
    fn unknown_classes_and_mappers_are_reported() {
        // SAFETY: all-zero bytes are valid for these structs.
        let mut class: SlitterClassStats = unsafe { core::mem::zeroed() };
        class.size = core::mem::size_of::<SlitterClassStats>() as u32;
        let missing = SlitterClass { id: 0 };
        // SAFETY: a whole struct with its size set.
        assert_eq!(
            unsafe { slitter_class_stats(missing, &mut class) },
            libc::ENOENT
        );
        // SAFETY: as above.
        let mut mapper: SlitterMapperStats = unsafe { core::mem::zeroed() };
        mapper.size = core::mem::size_of::<SlitterMapperStats>() as u32;
        // SAFETY: as above.
        assert_eq!(
            unsafe { slitter_mapper_stats(MAX_MAPPERS as u32, &mut mapper) },
            libc::ENOENT
        );
        // SAFETY: as above.
        assert_eq!(unsafe { slitter_mapper_stats(0, &mut mapper) }, 0);
        assert_eq!(mapper.name[..8], copy_name("default")[..8]);
    }
}
