//! slitter: a slab allocator with type-stable class memory, out-of-band
//! metadata and a C ABI.
//!
//! A *class* is a pool of objects of one size. Objects come from per-thread
//! magazine caches (no lock, no atomic read-modify-write on the fast path),
//! refilled from lock-free per-class magazine stacks, a per-class press that
//! bump-allocates fresh objects out of spans, a mill that carves 1 GiB chunks
//! (with guard pages and out-of-band span metadata) into spans, and a mapper
//! that reserves address space. Class memory is immortal: an address once
//! used by a class is never used by another class nor unmapped.
//!
//! Rust programs use slitter in two ways: [`Class`] for type-stable pools
//! of their own (below), and [`Slitter`] as the `#[global_allocator]`,
//! which serves every `Box`, `Vec` and `String` through slitter's malloc
//! (size classes up to 32 KiB, the large path above).
//!
//! C programs use the class API declared in `include/slitter.h` (see
//! [`SlitterClass`]), or link or `LD_PRELOAD` the library to replace
//! `malloc`.
//!
//! The C allocation functions (`malloc`, `free`, ..., `mallinfo`, C++'s
//! sized deletes) are exported only with the cargo feature `malloc`, on by
//! default. A Rust crate that depends on slitter with
//! `default-features = false` keeps its process's C allocator and still
//! has [`Class`], [`Slitter`], the statistics and the C class API.
//!
//! Layers, bottom up: sys, layout, heap, cache, stats, process,
//! class_api, malloc, c_api. Each is a folder whose `mod.rs` says what it owns and which
//! layers it may call; a module calls only lower files of its own folder
//! and lower layers (`tests/layers.rs` checks it).
//!
//! Follow an allocation from the top: [`Class::allocate`]
//! (`class_api/class.rs`) → `cache/thread_cache.rs` (fast path) →
//! `layout/magazine.rs` / `cache/rack.rs` → `heap/press.rs` →
//! `heap/mill.rs` → `heap/mapper.rs` → `sys/os_memory.rs` (mmap). A
//! release goes through `cache/checks.rs` first.
//!
//! ```
//! use slitter::{Class, ClassConfig};
//!
//! let class = Class::new(ClassConfig {
//!     name: Some("example"),
//!     size: 32,
//!     zero_init: true,
//!     ..Default::default()
//! })
//! .expect("valid config");
//! let object = class.allocate().expect("memory available");
//! // SAFETY: a zero_init class hands out 32 zeroed bytes.
//! assert_eq!(unsafe { *object.as_ptr().cast::<u64>() }, 0);
//! class.release(object);
//! ```

#![deny(missing_docs)]
// The measurement build compiles the checks out, leaving their helpers unused.
#![cfg_attr(feature = "measure_without_checks", allow(unused))]

pub(crate) mod c_api;
pub(crate) mod cache;
pub(crate) mod class_api;
pub(crate) mod heap;
pub(crate) mod layout;
pub(crate) mod malloc;
pub(crate) mod process;
pub(crate) mod stats;
pub(crate) mod sys;

pub use c_api::classes::{SlitterClass, SlitterClassConfig, SlitterStatus};
pub use c_api::stats::{SlitterClassStats, SlitterMapperStats, SlitterStats, SlitterStatsVersion};
pub use cache::class_table::{ClassError, ClassInfo, MAX_NAME_LEN};
pub use class_api::class::{class_stats, Class, ClassConfig};
pub use heap::mapper::{Errno, Mapper};
pub use heap::mapper_registry::{register_mapper, RegisterMapperError, MAX_MAPPERS};
pub use layout::constants::{MAX_CLASSES, MAX_SPAN_SIZE};
pub use malloc::global_alloc::Slitter;
pub use stats::counters::{
    all_class_stats, internal_counts, mapper_stats, process_stats, ClassStats, InternalCounts,
    MapperStats, ProcessStats, UNCOUNTED_BOUND,
};
pub use stats::report::print_stats;
pub use sys::config::{current as configuration, Config};
