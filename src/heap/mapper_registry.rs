//! The registry of named mappers that classes pick from.
//!
//! Owns: the names and mappers registered (the three built-in ones first:
//! `"default"`, `"file"`, `"noaccess"`), their lookup by name and by index.
//!
//! Invariants: registered names are unique; the registry holds at most
//! [`MAX_MAPPERS`] mappers and the index of a mapper never changes, so mills
//! can be indexed by it.

use crate::heap::anonymous_mapper::{AnonymousMapper, NoAccessMapper};
use crate::heap::file_mapper::FileBackedMapper;
use crate::heap::mapper::Mapper;
use crate::sys::lock::Lock;

/// At most this many mappers can be registered, built-ins included.
///
/// ```
/// use slitter::{register_mapper, RegisterMapperError, MAX_MAPPERS};
///
/// /// A mapper no class uses: it never has to back memory.
/// struct Unused;
/// impl slitter::Mapper for Unused {
///     fn allocate_data(
///         &self,
///         _: core::ptr::NonNull<core::ffi::c_void>,
///         _: usize,
///     ) -> Result<(), slitter::Errno> {
///         Err(libc::ENOMEM)
///     }
/// }
/// static UNUSED: Unused = Unused;
///
/// let refused = (0..MAX_MAPPERS)
///     .map(|i| register_mapper(format!("unused-{i}").leak(), &UNUSED))
///     .filter(|result| *result == Err(RegisterMapperError::TooManyMappers))
///     .count();
/// // The built-in mappers take some of the slots.
/// assert!(refused > 0 && refused < MAX_MAPPERS);
/// ```
pub const MAX_MAPPERS: usize = 16;

/// The position of a mapper in the registry (and of its mill).
pub type MapperIndex = usize;

/// Why [`register_mapper`] refused a mapper.
///
/// ```
/// # struct Anonymous;
/// # impl slitter::Mapper for Anonymous {
/// #     fn allocate_data(
/// #         &self,
/// #         _: core::ptr::NonNull<core::ffi::c_void>,
/// #         _: usize,
/// #     ) -> Result<(), slitter::Errno> {
/// #         Err(libc::ENOMEM)
/// #     }
/// # }
/// # static ANONYMOUS: Anonymous = Anonymous;
/// use slitter::{register_mapper, RegisterMapperError};
///
/// // "file" is the built-in file-backed mapper.
/// let error = register_mapper("file", &ANONYMOUS).unwrap_err();
/// assert_eq!(error, RegisterMapperError::DuplicateName);
/// assert_eq!(error.to_string(), "a mapper with this name is already registered");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegisterMapperError {
    /// A mapper with this name is already registered.
    DuplicateName,
    /// The registry already holds [`MAX_MAPPERS`] mappers.
    TooManyMappers,
}

impl core::fmt::Display for RegisterMapperError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::DuplicateName => write!(f, "a mapper with this name is already registered"),
            Self::TooManyMappers => write!(f, "at most {MAX_MAPPERS} mappers can be registered"),
        }
    }
}

/// The lock of the mapper registry, for the fork handlers.
pub fn registry_lock() -> &'static dyn crate::sys::lock::Forkable {
    &REGISTRY
}

type Entry = Option<(&'static str, &'static dyn Mapper)>;

static ANONYMOUS: AnonymousMapper = AnonymousMapper;
static FILE_BACKED: FileBackedMapper = FileBackedMapper;
static NO_ACCESS: NoAccessMapper = NoAccessMapper;

/// The name of the anonymous-memory mapper, used when a class names none.
pub const DEFAULT_MAPPER_NAME: &str = "default";

/// The name of the mapper whose object memory is never accessible.
pub const NO_ACCESS_MAPPER_NAME: &str = "noaccess";

static REGISTRY: Lock<[Entry; MAX_MAPPERS]> = Lock::new({
    let mut entries: [Entry; MAX_MAPPERS] = [None; MAX_MAPPERS];
    entries[0] = Some((DEFAULT_MAPPER_NAME, &ANONYMOUS));
    entries[1] = Some(("file", &FILE_BACKED));
    entries[2] = Some((NO_ACCESS_MAPPER_NAME, &NO_ACCESS));
    entries
});

/// Makes `mapper` available to classes under `name` (their
/// [`ClassConfig::mapper_name`](crate::ClassConfig::mapper_name)); see
/// [`Mapper`] for a complete example.
///
/// ```
/// # struct Anonymous;
/// # impl slitter::Mapper for Anonymous {
/// #     fn allocate_data(
/// #         &self,
/// #         base: core::ptr::NonNull<core::ffi::c_void>,
/// #         size: usize,
/// #     ) -> Result<(), slitter::Errno> {
/// #         let rw = libc::PROT_READ | libc::PROT_WRITE;
/// #         // SAFETY: part of this mapper's own anonymous reservation.
/// #         match unsafe { libc::mprotect(base.as_ptr(), size, rw) } {
/// #             0 => Ok(()),
/// #             _ => Err(libc::ENOMEM),
/// #         }
/// #     }
/// # }
/// static MINE: Anonymous = Anonymous;
///
/// assert_eq!(slitter::register_mapper("mine", &MINE), Ok(()));
/// let class = slitter::Class::new(slitter::ClassConfig {
///     size: 32,
///     mapper_name: Some("mine"),
///     ..Default::default()
/// })
/// .unwrap();
/// class.release(class.allocate().unwrap());
/// ```
pub fn register_mapper(
    name: &'static str,
    mapper: &'static dyn Mapper,
) -> Result<(), RegisterMapperError> {
    let mut registry = REGISTRY.lock();
    if registry.iter().flatten().any(|(n, _)| *n == name) {
        return Err(RegisterMapperError::DuplicateName);
    }
    let slot = registry
        .iter_mut()
        .find(|entry| entry.is_none())
        .ok_or(RegisterMapperError::TooManyMappers)?;
    *slot = Some((name, mapper));
    Ok(())
}

/// The name of the mapper registered at `index`, if any.
pub fn mapper_name(index: MapperIndex) -> Option<&'static str> {
    REGISTRY
        .lock()
        .get(index)
        .copied()
        .flatten()
        .map(|(name, _)| name)
}

/// Finds a registered mapper by name (`None` means the default mapper).
pub fn find_mapper(name: Option<&[u8]>) -> Option<(MapperIndex, &'static dyn Mapper)> {
    let name = name.unwrap_or(DEFAULT_MAPPER_NAME.as_bytes());
    let registry = REGISTRY.lock();
    registry
        .iter()
        .enumerate()
        .find_map(|(index, entry)| match entry {
            Some((n, mapper)) if n.as_bytes() == name => Some((index, *mapper)),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::heap::anonymous_mapper::AnonymousMapper;

    #[test]
    fn builtin_mappers_are_found_by_name() {
        assert_eq!(find_mapper(None).unwrap().0, 0);
        assert_eq!(find_mapper(Some(b"default")).unwrap().0, 0);
        assert_eq!(find_mapper(Some(b"file")).unwrap().0, 1);
        assert_eq!(find_mapper(Some(b"noaccess")).unwrap().0, 2);
        assert!(find_mapper(Some(b"no-such-mapper")).is_none());
        assert_eq!(mapper_name(1), Some("file"));
        assert_eq!(mapper_name(MAX_MAPPERS), None);
    }

    #[test]
    fn duplicate_names_are_refused() {
        static EXTRA: AnonymousMapper = AnonymousMapper;
        assert_eq!(
            register_mapper("file", &EXTRA),
            Err(RegisterMapperError::DuplicateName)
        );
        assert_eq!(register_mapper("mapper-test-extra", &EXTRA), Ok(()));
        assert!(find_mapper(Some(b"mapper-test-extra")).is_some());
    }
}
