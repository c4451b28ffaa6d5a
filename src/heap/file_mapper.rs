//! The built-in mapper named `"file"`: object data in shared mappings of
//! unlinked temporary files.
//!
//! Owns: the directory the files go in, the files of the ranges it backed
//! (their descriptors stay open), and the forked child's copy of them.
//! Invariant: at most `MAX_FILE_RANGES` ranges; each entry's descriptor is
//! the file mapped over its range.

use core::ffi::{c_char, c_void, CStr};
use core::ptr::NonNull;

use crate::heap::mapper::{Errno, Mapper};
use crate::sys::errno::last_errno;
use crate::sys::lock::Lock;
use crate::sys::os_memory::{back_anonymous, os_map_zeroed, os_mmap};

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

#[cfg(test)]
mod tests {
    use super::*;

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
