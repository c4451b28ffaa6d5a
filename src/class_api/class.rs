//! The Rust class API: [`Class`] handles and their [`ClassConfig`].
//!
//! Owns: the public face of classes for Rust programs: registration from a
//! config (after `process::entry::enter`, so that the fork handlers and
//! process hooks are in place), allocation through the thread cache, and
//! release through the checks (a misuse is reported and aborts).
//!
//! Invariants: a `Class` always names a registered class (its id is never
//! 0); classes are never unregistered, so a handle stays valid forever.

use core::ffi::c_void;
use core::num::NonZeroU32;
use core::ptr::NonNull;

use crate::cache::checks;
use crate::cache::class_table::{info, register, ClassError, ClassInfo, RawConfig};
use crate::cache::misuse_report;
use crate::cache::thread_cache;
use crate::process::entry;
use crate::stats::counters::ClassStats;

/// How to create a [`Class`]. Fields not given default to an anonymous
/// class of non-zeroed objects in anonymous memory (the size has no usable
/// default).
///
/// ```
/// use slitter::{Class, ClassConfig};
///
/// let config = ClassConfig {
///     name: Some("file-backed"),
///     size: 4096,
///     mapper_name: Some("file"),
///     ..Default::default()
/// };
/// let class = Class::new(config).unwrap();
/// let page = class.allocate().unwrap();
/// // SAFETY: a fresh 4096-byte object.
/// unsafe { page.as_ptr().cast::<u8>().write_bytes(1, 4096) };
/// class.release(page);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct ClassConfig<'a> {
    /// A name for diagnostics (`None`: "anonymous").
    pub name: Option<&'a str>,
    /// Object size in bytes (1 to the maximum span size).
    pub size: usize,
    /// Whether every object handed out reads as zeroes.
    pub zero_init: bool,
    /// The registered mapper to take memory from (`None`: anonymous mmap;
    /// `"file"`: file-backed).
    pub mapper_name: Option<&'a str>,
    /// Whether the memory of spans whose objects are all released may go
    /// back to the operating system (after `SLITTER_PURGE_DELAY`, or at
    /// `malloc_trim`): a released object's bytes may then read as zeroes
    /// when it is next read. Off by default: a released object keeps its
    /// bytes until it is handed out again, which lock-free readers of
    /// type-stable memory may rely on (a generation counter that must
    /// never go back to zero). Its address stays the class's either way,
    /// and `zero_init` holds either way.
    pub purge: bool,
}

/// A registered class: a handle on a type-stable pool of same-size objects.
///
/// Objects of a class are never used by another class, so a pointer to a
/// released object stays safe to read (it still points at an object of the
/// same class); their memory goes back to the operating system only in
/// classes that opt in with [`ClassConfig::purge`], where a released
/// object may then read as zeroes.
///
/// ```
/// let class = slitter::Class::new(slitter::ClassConfig {
///     name: Some("doc-example"),
///     size: 24,
///     ..Default::default()
/// })
/// .unwrap();
/// let object = class.allocate().unwrap();
/// class.release(object);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Class {
    id: NonZeroU32,
}

impl Class {
    /// Registers a new class. Classes are never unregistered: create each
    /// once and keep (or copy) the handle.
    ///
    /// ```
    /// let nodes = slitter::Class::new(slitter::ClassConfig {
    ///     name: Some("nodes"),
    ///     size: 48,
    ///     ..Default::default()
    /// })
    /// .expect("a valid config");
    /// assert_eq!(nodes.info().object_size, 48);
    /// ```
    pub fn new(config: ClassConfig<'_>) -> Result<Class, ClassError> {
        let raw = RawConfig {
            name: config.name.map(str::as_bytes),
            size: config.size,
            zero_init: config.zero_init,
            purge: config.purge,
            scatter: false,
            mapper_name: config.mapper_name.map(str::as_bytes),
        };
        entry::enter();
        let info = register(&raw)?;
        Ok(Class {
            id: NonZeroU32::new(info.id).expect("class ids start at 1"),
        })
    }

    /// The class with id `id`, if one is registered.
    ///
    /// ```
    /// use slitter::{Class, ClassConfig};
    ///
    /// let class = Class::new(ClassConfig {
    ///     size: 8,
    ///     ..Default::default()
    /// })
    /// .unwrap();
    /// assert_eq!(Class::from_id(class.id()), Some(class));
    /// assert_eq!(Class::from_id(0), None);
    /// assert_eq!(Class::from_id(slitter::MAX_CLASSES as u32), None);
    /// ```
    pub fn from_id(id: u32) -> Option<Class> {
        info(id)?;
        Some(Class {
            id: NonZeroU32::new(id)?,
        })
    }

    /// The class id: what the C API's `SlitterClass` holds.
    ///
    /// ```
    /// let make = || {
    ///     slitter::Class::new(slitter::ClassConfig {
    ///         size: 8,
    ///         ..Default::default()
    ///     })
    ///     .unwrap()
    /// };
    /// let (a, b) = (make(), make());
    /// assert_ne!(a.id(), b.id());
    /// assert!(a.id() > 0 && (b.id() as usize) < slitter::MAX_CLASSES);
    /// ```
    pub fn id(self) -> u32 {
        self.id.get()
    }

    /// The class's descriptor.
    ///
    /// ```
    /// let class = slitter::Class::new(slitter::ClassConfig {
    ///     name: Some("described"),
    ///     size: 8,
    ///     ..Default::default()
    /// })
    /// .unwrap();
    /// assert_eq!(class.info().name(), "described");
    /// ```
    pub fn info(self) -> &'static ClassInfo {
        info(self.id.get()).expect("a Class handle always names a registered class")
    }

    /// A new object of this class (16-byte aligned), or `None` when memory
    /// is exhausted.
    ///
    /// ```
    /// let class = slitter::Class::new(slitter::ClassConfig {
    ///     size: 32,
    ///     ..Default::default()
    /// })
    /// .unwrap();
    /// let a = class.allocate().unwrap();
    /// let b = class.allocate().unwrap();
    /// assert_ne!(a, b);
    /// assert_eq!(a.as_ptr() as usize % 16, 0);
    /// class.release(a);
    /// class.release(b);
    /// ```
    #[inline(always)]
    pub fn allocate(self) -> Option<NonNull<c_void>> {
        thread_cache::allocate(self.id.get()).map(NonNull::cast)
    }

    /// Returns an object to this class. Aborts the process with a
    /// `slitter:` message if `object` is not a live object of this class
    /// (allocated from another class or not by slitter, an interior
    /// pointer, or already released).
    ///
    /// A released object keeps its class: the memory is type-stable, and
    /// only a later allocation from the same class hands it out again.
    ///
    /// ```
    /// let class = slitter::Class::new(slitter::ClassConfig {
    ///     size: 64,
    ///     ..Default::default()
    /// })
    /// .unwrap();
    /// let objects: Vec<_> = (0..100).map(|_| class.allocate().unwrap()).collect();
    /// for &object in &objects {
    ///     class.release(object);
    /// }
    /// // Released objects come back from this class, not from fresh memory.
    /// let again: Vec<_> = (0..100).map(|_| class.allocate().unwrap()).collect();
    /// assert!(again.iter().any(|object| objects.contains(object)));
    /// for object in again {
    ///     class.release(object);
    /// }
    /// ```
    #[inline(always)]
    pub fn release(self, object: NonNull<c_void>) {
        let addr = object.as_ptr() as usize;
        match checks::take_back(self.id.get(), addr) {
            Some((id, slot)) => thread_cache::release(id, slot),
            None => misuse_report::report_bad_release(self.id.get(), addr),
        }
    }
}

/// A snapshot of `class`'s statistics (see [`ClassStats`] for what is
/// exact).
///
/// ```
/// let class = slitter::Class::new(slitter::ClassConfig {
///     size: 8,
///     ..Default::default()
/// })
/// .unwrap();
/// let object = class.allocate().unwrap();
/// assert_eq!(slitter::class_stats(class).live, 1);
/// class.release(object);
/// assert_eq!(slitter::class_stats(class).live, 0);
/// ```
pub fn class_stats(class: Class) -> ClassStats {
    ClassStats::of(class.info())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::class_table::MAX_NAME_LEN;
    use crate::layout::constants::{MAX_CLASSES, MAX_SPAN_SIZE};

    #[test]
    fn invalid_configs_are_refused() {
        let config = |size, mapper_name| ClassConfig {
            name: Some("bad"),
            size,
            mapper_name,
            ..Default::default()
        };
        assert_eq!(Class::new(config(0, None)), Err(ClassError::ZeroSize));
        assert_eq!(
            Class::new(config(MAX_SPAN_SIZE + 1, None)),
            Err(ClassError::SizeTooLarge {
                size: MAX_SPAN_SIZE + 1,
                max: MAX_SPAN_SIZE
            })
        );
        assert_eq!(
            Class::new(config(8, Some("nope"))),
            Err(ClassError::UnknownMapper)
        );
        assert!(Class::new(config(MAX_SPAN_SIZE, None)).is_ok());
    }

    #[test]
    fn names_are_truncated_to_valid_utf8() {
        let long = "é".repeat(40);
        let class = Class::new(ClassConfig {
            name: Some(&long),
            size: 8,
            ..Default::default()
        })
        .unwrap();
        let name = class.info().name();
        assert!(name.len() <= MAX_NAME_LEN && name.len() >= MAX_NAME_LEN - 1);
        assert!(long.starts_with(name));
        assert_eq!(
            Class::new(ClassConfig {
                size: 8,
                ..Default::default()
            })
            .unwrap()
            .info()
            .name(),
            "anonymous"
        );
    }

    #[test]
    fn sizes_round_up_to_the_granule_and_objects_are_aligned() {
        for size in [1, 7, 8, 9, 16, 24, 48, 100, 4096] {
            let class = Class::new(ClassConfig {
                size,
                ..Default::default()
            })
            .unwrap();
            assert_eq!(class.info().object_size, size.next_multiple_of(16));
            let objects: Vec<_> = (0..100).map(|_| class.allocate().unwrap()).collect();
            for &object in &objects {
                assert_eq!(object.as_ptr() as usize % 16, 0);
            }
            for object in objects {
                class.release(object);
            }
        }
    }

    #[test]
    fn from_id_only_finds_registered_classes() {
        let class = Class::new(ClassConfig {
            size: 8,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(Class::from_id(class.id()), Some(class));
        assert_eq!(Class::from_id(0), None);
        assert_eq!(
            Class::from_id(MAX_CLASSES as u32 - 1).map(Class::id),
            info(MAX_CLASSES as u32 - 1).map(|i| i.id)
        );
    }
}
