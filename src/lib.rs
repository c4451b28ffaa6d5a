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
//! Follow an allocation from the top: [`Class::allocate`] (`class.rs`) →
//! `cache.rs` (fast path) → `magazine.rs` / `rack.rs` → `press.rs` →
//! `mill.rs` → `mapper.rs` (mmap). A release goes through `checks.rs` first.
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

mod arena;
mod c_api;
mod cache;
mod checks;
mod chunk_registry;
mod class;
mod constants;
mod fatal;
mod large;
mod large_arena;
mod lock;
mod magazine;
mod malloc_api;
mod mapper;
mod mill;
mod page_states;
mod press;
mod rack;
mod size_classes;
mod span;
mod stats;

pub use c_api::{SlitterClass, SlitterClassConfig, SlitterStatus};
pub use class::{Class, ClassConfig, ClassError, ClassInfo, MAX_NAME_LEN};
pub use constants::{MAX_CLASSES, MAX_SPAN_SIZE};
pub use mapper::{register_mapper, Errno, Mapper, RegisterMapperError, MAX_MAPPERS};
pub use stats::{internal_counts, InternalCounts};
