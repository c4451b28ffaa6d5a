//! Mappers: where slitter's address space and memory come from.
//!
//! Owns: the [`Mapper`] trait, the three built-in mappers (anonymous `mmap`,
//! the default; the file-backed mapper named `"file"`; and `"noaccess"`,
//! whose object memory is never accessible), the registry of
//! named mappers that classes pick from, and the thin `mmap` helpers the
//! rest of the crate uses.
//!
//! Invariants: a reservation is inaccessible until a mill backs part of it;
//! mappers are immortal (`&'static`) and registered names are unique; the
//! registry holds at most [`MAX_MAPPERS`] mappers and the index of a mapper
//! never changes, so mills can be indexed by it.

use crate::sys::errno::last_errno;
use core::ffi::{c_char, c_void, CStr};
use core::ptr::NonNull;

use crate::sys::lock::Lock;

/// An `errno` value explaining why a mapper call failed.
///
/// ```
/// let error: slitter::Errno = libc::ENOMEM;
/// assert_eq!(
///     std::io::Error::from_raw_os_error(error).kind(),
///     std::io::ErrorKind::OutOfMemory
/// );
/// ```
pub type Errno = i32;

/// A source of address space and memory for one or more mills.
///
/// A mill calls `reserve` once per chunk, `release` to give back the slop
/// around the aligned chunk, then `allocate_meta` and `allocate_data` on the
/// chunk's metadata and data regions. Ranges passed in are page-aligned.
/// Every method but `allocate_data` defaults to private anonymous memory.
///
/// A mapper that backs object data with anonymous memory, like the default
/// one, and counts the bytes it backed; a class takes its memory from it by
/// naming it:
///
/// ```
/// use core::ffi::c_void;
/// use core::ptr::NonNull;
/// use std::sync::atomic::{AtomicUsize, Ordering};
///
/// use slitter::{Class, ClassConfig, Errno, Mapper};
///
/// struct Counting {
///     backed: AtomicUsize,
/// }
///
/// impl Mapper for Counting {
///     fn allocate_data(&self, base: NonNull<c_void>, size: usize) -> Result<(), Errno> {
///         let rw = libc::PROT_READ | libc::PROT_WRITE;
///         // SAFETY: slitter passes part of a reservation this mapper made
///         // (the default `reserve`: private anonymous memory, zero-filled
///         // once accessible) that nothing uses yet.
///         if unsafe { libc::mprotect(base.as_ptr(), size, rw) } != 0 {
///             return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::ENOMEM));
///         }
///         self.backed.fetch_add(size, Ordering::Relaxed);
///         Ok(())
///     }
/// }
///
/// static COUNTING: Counting = Counting { backed: AtomicUsize::new(0) };
///
/// slitter::register_mapper("counting", &COUNTING).unwrap();
/// let class = Class::new(ClassConfig {
///     name: Some("counted"),
///     size: 64,
///     mapper_name: Some("counting"),
///     ..Default::default()
/// })
/// .unwrap();
/// let object = class.allocate().unwrap();
/// assert!(COUNTING.backed.load(Ordering::Relaxed) >= 64);
/// class.release(object);
/// ```
pub trait Mapper: Sync {
    /// The granularity of this mapper's ranges.
    fn page_size(&self) -> usize {
        4096
    }

    /// Reserves `size` bytes of inaccessible address space.
    fn reserve(&self, size: usize) -> Result<NonNull<c_void>, Errno> {
        os_reserve(size)
    }

    /// Returns part of a reservation to the operating system.
    fn release(&self, base: NonNull<c_void>, size: usize) -> Result<(), Errno> {
        // SAFETY: mills only release parts of their reservations that they
        // never handed out.
        if unsafe { libc::munmap(base.as_ptr(), size) } != 0 {
            return Err(last_errno());
        }
        Ok(())
    }

    /// Makes a reserved range usable for span metadata (zero-filled).
    fn allocate_meta(&self, base: NonNull<c_void>, size: usize) -> Result<(), Errno> {
        back_anonymous(base, size)
    }

    /// Makes a reserved range usable for objects (zero-filled).
    fn allocate_data(&self, base: NonNull<c_void>, size: usize) -> Result<(), Errno>;

    /// Called in the child of a `fork()`, for each range of `size` bytes
    /// at `base` that `allocate_data` backed, of which the first `used`
    /// bytes hold objects handed out so far. A mapper whose memory the
    /// child would share with its parent (a `MAP_SHARED` mapping) gives the
    /// child memory of its own there, holding what the first `used` bytes
    /// hold and zeroes after them, and returns `Ok(true)`. The default,
    /// for private memory (which `fork` already copies), does nothing and
    /// returns `Ok(false)`. An error aborts the child with a message. It
    /// runs in the child's only thread, inside the fork handler: it must
    /// not allocate.
    fn after_fork_in_child(
        &self,
        base: NonNull<c_void>,
        size: usize,
        used: usize,
    ) -> Result<bool, Errno> {
        let _ = (base, size, used);
        Ok(false)
    }
}

/// `mmap` with the given protection, flags and file, at `addr` if non-null.
fn os_mmap(
    addr: *mut c_void,
    size: usize,
    prot: i32,
    flags: i32,
    fd: i32,
) -> Result<NonNull<c_void>, Errno> {
    // SAFETY: mmap has no memory-safety preconditions unless MAP_FIXED is in
    // `flags`, and callers only pass MAP_FIXED over ranges they reserved.
    let ret = unsafe { libc::mmap(addr, size, prot, flags, fd, 0) };
    if ret == libc::MAP_FAILED {
        return Err(last_errno());
    }
    NonNull::new(ret).ok_or(libc::ENOMEM)
}

/// Reserves `size` bytes of fresh, inaccessible address space (no memory
/// behind it).
pub fn os_reserve(size: usize) -> Result<NonNull<c_void>, Errno> {
    os_mmap(
        core::ptr::null_mut(),
        size,
        libc::PROT_NONE,
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
        -1,
    )
}

/// Maps `size` bytes of fresh, readable and writable, zero-filled memory.
pub fn os_map_zeroed(size: usize) -> Option<NonNull<u8>> {
    os_mmap(
        core::ptr::null_mut(),
        size,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
        -1,
    )
    .ok()
    .map(NonNull::cast)
}

/// Replaces a reserved range with private, zero-filled, writable memory.
fn back_anonymous(base: NonNull<c_void>, size: usize) -> Result<(), Errno> {
    os_mmap(
        base.as_ptr(),
        size,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_FIXED,
        -1,
    )
    .map(|_| ())
}

/// The default mapper: private anonymous memory.
pub struct AnonymousMapper;

impl Mapper for AnonymousMapper {
    fn allocate_data(&self, base: NonNull<c_void>, size: usize) -> Result<(), Errno> {
        back_anonymous(base, size)
    }
}

/// The mapper named `"noaccess"`: data stays reserved and inaccessible, so
/// any access to an object faults. It serves objects that are addresses
/// only, such as the results of `malloc(0)`.
pub struct NoAccessMapper;

impl Mapper for NoAccessMapper {
    fn allocate_data(&self, _base: NonNull<c_void>, _size: usize) -> Result<(), Errno> {
        Ok(())
    }
}

const PATH_CAPACITY: usize = 4096;

/// A NUL-terminated directory path kept without heap allocation.
struct Directory {
    path: [u8; PATH_CAPACITY],
    len: usize,
}

/// The directory the file-backed mapper creates its files in; empty means
/// the default (`$TMPDIR`, else `/tmp`).
static FILE_DIRECTORY: Lock<Directory> = Lock::new(Directory {
    path: [0; PATH_CAPACITY],
    len: 0,
});

/// Sets the directory for file-backed slabs; `None` restores the default.
pub fn set_file_backed_slab_directory(dir: Option<&CStr>) -> Result<(), Errno> {
    let bytes = dir.map_or(&[][..], CStr::to_bytes);
    // Room for "/slitter-XXXXXX" and the terminating NUL.
    if bytes.len() + 16 >= PATH_CAPACITY {
        return Err(libc::ENAMETOOLONG);
    }
    let mut directory = FILE_DIRECTORY.lock();
    directory.path[..bytes.len()].copy_from_slice(bytes);
    directory.path[bytes.len()] = 0;
    directory.len = bytes.len();
    Ok(())
}

/// Fills `template` with `<dir>/slitter-XXXXXX\0`, where dir is the configured
/// directory or the default.
fn file_template(template: &mut [u8; PATH_CAPACITY]) -> Result<(), Errno> {
    let directory = FILE_DIRECTORY.lock();
    let mut dir: &[u8] = &directory.path[..directory.len];
    if dir.is_empty() {
        // SAFETY: getenv takes a NUL-terminated name and returns NULL or a
        // NUL-terminated string that stays valid while the environment is
        // not modified; it is copied right away.
        let tmpdir = unsafe { libc::getenv(c"TMPDIR".as_ptr()) };
        dir = if tmpdir.is_null() {
            b"/tmp"
        } else {
            // SAFETY: a non-null getenv result is NUL-terminated.
            unsafe { CStr::from_ptr(tmpdir) }.to_bytes()
        };
        if dir.is_empty() {
            dir = b"/tmp";
        }
    }
    const SUFFIX: &[u8] = b"/slitter-XXXXXX\0";
    if dir.len() + SUFFIX.len() > PATH_CAPACITY {
        return Err(libc::ENAMETOOLONG);
    }
    template[..dir.len()].copy_from_slice(dir);
    template[dir.len()..dir.len() + SUFFIX.len()].copy_from_slice(SUFFIX);
    Ok(())
}

/// Creates an unlinked temporary file of `size` bytes; returns its fd.
fn create_backing_file(size: usize) -> Result<i32, Errno> {
    let mut template = [0u8; PATH_CAPACITY];
    file_template(&mut template)?;
    // SAFETY: `template` is a NUL-terminated, writable path template.
    let fd = unsafe { libc::mkstemp(template.as_mut_ptr().cast::<c_char>()) };
    if fd < 0 {
        return Err(last_errno());
    }
    // SAFETY: mkstemp wrote the created file's NUL-terminated name back.
    unsafe { libc::unlink(template.as_ptr().cast::<c_char>()) };
    // SAFETY: `fd` is the file we just created.
    if unsafe { libc::ftruncate(fd, size as libc::off_t) } != 0 {
        let err = last_errno();
        // SAFETY: closing our own descriptor.
        unsafe { libc::close(fd) };
        return Err(err);
    }
    Ok(fd)
}

/// The most ranges the file mapper backs (one per chunk of its classes:
/// 1 GiB of objects each).
const MAX_FILE_RANGES: usize = 256;

/// A range the file mapper backed, and the descriptor of its file (kept
/// open, for the copy a forked child makes).
#[derive(Clone, Copy)]
struct FileRange {
    /// 0: an unused entry.
    base: usize,
    fd: i32,
}

static FILE_RANGES: Lock<[FileRange; MAX_FILE_RANGES]> =
    Lock::new([FileRange { base: 0, fd: -1 }; MAX_FILE_RANGES]);

/// The locks of the file mapper, for the fork handlers.
pub fn file_mapper_locks(f: &mut dyn FnMut(&dyn crate::sys::lock::Forkable)) {
    f(&FILE_DIRECTORY);
    f(&FILE_RANGES);
}

/// Maps the file `fd` over `[base, base + size)`, shared, read-write.
fn map_file(base: NonNull<c_void>, size: usize, fd: i32) -> Result<(), Errno> {
    os_mmap(
        base.as_ptr(),
        size,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_SHARED | libc::MAP_FIXED,
        fd,
    )
    .map(|_| ())
}

fn close(fd: i32) {
    // SAFETY: closing a descriptor the file mapper owns.
    unsafe { libc::close(fd) };
}

/// Writes the bytes at `[base + offset, base + end)` into `fd` at the same
/// offsets.
fn write_at(fd: i32, base: usize, mut offset: usize, end: usize) -> Result<(), Errno> {
    while offset < end {
        // SAFETY: the range is mapped and readable (the caller's data).
        let written = unsafe {
            libc::pwrite(
                fd,
                (base + offset) as *const c_void,
                end - offset,
                offset as libc::off_t,
            )
        };
        match written {
            n if n > 0 => offset += n as usize,
            0 => return Err(libc::EIO),
            _ if last_errno() == libc::EINTR => {}
            _ => return Err(last_errno()),
        }
    }
    Ok(())
}

/// A new file of `size` bytes holding what the first `used` bytes of the
/// data at `base` (backed by `old`) hold, copying only the parts of `old`
/// that hold data (`SEEK_DATA`), so that holes stay holes.
fn copy_into_new_file(base: usize, size: usize, used: usize, old: i32) -> Result<i32, Errno> {
    let fd = create_backing_file(size)?;
    let mut offset = 0;
    let copied = loop {
        if offset >= used {
            break Ok(());
        }
        // SAFETY: lseek on a descriptor the mapper owns.
        let data = unsafe { libc::lseek(old, offset as libc::off_t, libc::SEEK_DATA) };
        if data < 0 {
            // ENXIO: no data after `offset`.
            break if last_errno() == libc::ENXIO {
                Ok(())
            } else {
                Err(last_errno())
            };
        }
        let data = data as usize;
        if data >= used {
            break Ok(());
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(old, data as libc::off_t, libc::SEEK_HOLE) };
        let end = if hole < 0 {
            used
        } else {
            (hole as usize).min(used)
        };
        if let Err(error) = write_at(fd, base, data, end) {
            break Err(error);
        }
        offset = end;
    };
    match copied {
        Ok(()) => Ok(fd),
        Err(error) => {
            close(fd);
            Err(error)
        }
    }
}

/// Replaces `[base, base + size)` with private anonymous memory holding
/// what its first `used` bytes hold: the child's copy when no new file can
/// be made.
fn copy_into_anonymous_memory(base: usize, size: usize, used: usize) -> Result<(), Errno> {
    if used > 0 {
        let copy = os_map_zeroed(used).ok_or(libc::ENOMEM)?;
        // SAFETY: both ranges are mapped, `used` bytes long, and distinct;
        // then the fresh pages move over the start of the range, which
        // this mapper backs.
        let moved = unsafe {
            core::ptr::copy_nonoverlapping(base as *const u8, copy.as_ptr(), used);
            libc::mremap(
                copy.as_ptr().cast(),
                used,
                used,
                libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
                base as *mut c_void,
            )
        };
        if moved == libc::MAP_FAILED {
            return Err(last_errno());
        }
    }
    if size > used {
        back_anonymous(
            NonNull::new((base + used) as *mut c_void).ok_or(libc::EINVAL)?,
            size - used,
        )?;
    }
    Ok(())
}

/// The mapper named `"file"`: object data lives in shared mappings of
/// unlinked temporary files (in the directory set with
/// `slitter_set_file_backed_slab_directory`), metadata stays anonymous. A
/// forked child gets files of its own, holding a copy of the objects (see
/// [`Mapper::after_fork_in_child`]), so that neither process sees the
/// other's objects change.
pub struct FileBackedMapper;

impl Mapper for FileBackedMapper {
    fn allocate_data(&self, base: NonNull<c_void>, size: usize) -> Result<(), Errno> {
        let mut ranges = FILE_RANGES.lock();
        let entry = ranges
            .iter_mut()
            .find(|range| range.base == 0)
            .ok_or(libc::ENOMEM)?;
        let fd = create_backing_file(size)?;
        if let Err(error) = map_file(base, size, fd) {
            close(fd);
            return Err(error);
        }
        *entry = FileRange {
            base: base.as_ptr() as usize,
            fd,
        };
        Ok(())
    }

    fn after_fork_in_child(
        &self,
        base: NonNull<c_void>,
        size: usize,
        used: usize,
    ) -> Result<bool, Errno> {
        let addr = base.as_ptr() as usize;
        let used = used.next_multiple_of(self.page_size()).min(size);
        let mut ranges = FILE_RANGES.lock();
        let Some(entry) = ranges.iter_mut().find(|range| range.base == addr) else {
            return Ok(false);
        };
        match copy_into_new_file(addr, size, used, entry.fd) {
            Ok(fd) => {
                map_file(base, size, fd)?;
                close(entry.fd);
                entry.fd = fd;
            }
            Err(error) => {
                copy_into_anonymous_memory(addr, size, used)?;
                close(entry.fd);
                *entry = FileRange { base: 0, fd: -1 };
                crate::sys::fatal::report(format_args!(
                    "warning: cannot create a file for the forked child's copy of \
                     file-backed objects at {addr:#x} (errno {error}); it uses \
                     anonymous memory"
                ));
            }
        }
        Ok(true)
    }
}

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

    #[test]
    fn file_mapper_backs_data_with_a_file() {
        let mapper = FileBackedMapper;
        let base = mapper.reserve(1 << 20).unwrap();
        mapper.allocate_data(base, 1 << 20).unwrap();
        // SAFETY: the range was just backed with 1 MiB of writable memory.
        let bytes = unsafe { core::slice::from_raw_parts_mut(base.as_ptr().cast::<u8>(), 1 << 20) };
        assert!(bytes.iter().all(|&b| b == 0));
        bytes[12345] = 7;
        assert_eq!(bytes[12345], 7);
        mapper.release(base, 1 << 20).unwrap();
    }

    #[test]
    fn overlong_directory_is_refused() {
        let long = vec![b'a'; PATH_CAPACITY];
        let name = std::ffi::CString::new(long).unwrap();
        assert_eq!(
            set_file_backed_slab_directory(Some(&name)),
            Err(libc::ENAMETOOLONG)
        );
    }
}
