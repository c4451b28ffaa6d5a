//! Classes: registration and the class table.
//!
//! Owns: [`ClassInfo`], the immutable facts of a class (id, name, object
//! size, zeroing, purging, the capacity of its magazines) together with
//! its press; the process-wide class table indexed by id; registration from
//! a [`RawConfig`] (which the Rust and C class APIs and malloc build), and
//! its [`ClassError`]s.
//!
//! Invariants: ids stay below `MAX_CLASSES`; 0 means "no class" in span
//! records, ids `1..FIRST_USER_ID` are reserved for the malloc size classes
//! (registered on first use of malloc), and user classes get the following
//! ids, densely; a class is never unregistered, and
//! its `ClassInfo` is immortal and immutable once published in the table;
//! a magazine of a thread cache holds at most `magazine_capacity` objects
//! of the class, so that a thread caches at most about
//! `2 * MAGAZINE_BYTES` bytes of it (two objects if they are larger).

use core::fmt;
use core::sync::atomic::{AtomicPtr, Ordering};

use crate::heap::arena;
use crate::heap::mapper_registry;
use crate::heap::mill;
use crate::heap::press::Press;
use crate::layout::constants::{GRANULE, MAGAZINE_SIZE, MAX_CLASSES, MAX_SPAN_SIZE};
use crate::sys::lock::Lock;

/// The bytes of objects a thread cache's magazine of one class holds at
/// most (one object, if it is larger).
pub const MAGAZINE_BYTES: usize = 32 << 10;

/// Class names longer than this are truncated.
///
/// ```
/// let long = "n".repeat(100);
/// let class = slitter::Class::new(slitter::ClassConfig {
///     name: Some(&long),
///     size: 8,
///     ..Default::default()
/// })
/// .unwrap();
/// assert_eq!(class.info().name().len(), slitter::MAX_NAME_LEN);
/// ```
pub const MAX_NAME_LEN: usize = 63;

/// Everything slitter knows about one class.
///
/// ```
/// let class = slitter::Class::new(slitter::ClassConfig {
///     name: Some("info-example"),
///     size: 20,
///     zero_init: true,
///     ..Default::default()
/// })
/// .unwrap();
/// let info = class.info();
/// assert_eq!(info.id, class.id());
/// assert_eq!(info.name(), "info-example");
/// assert_eq!(info.object_size, 32);
/// assert!(info.zero_init);
/// ```
pub struct ClassInfo {
    /// The class id (index in the class table).
    pub id: u32,
    /// Object size in bytes, rounded up to a multiple of 16 (the granule
    /// of object states: every object starts on one).
    pub object_size: usize,
    /// Whether objects are zero-filled when handed out.
    pub zero_init: bool,
    /// The most objects a thread cache's magazine of this class holds:
    /// `MAGAZINE_SIZE`, fewer for objects above `MAGAZINE_BYTES /
    /// MAGAZINE_SIZE` bytes.
    pub magazine_capacity: usize,
    /// Whether a thread's release magazine may simply become its
    /// allocation magazine, as it is (full capacity, no zeroing, no
    /// scattering).
    pub swaps_in_place: bool,
    /// Whether free objects are handed out in a random order rather than
    /// lowest first (the hardened malloc classes).
    pub scatters: bool,
    name: [u8; MAX_NAME_LEN],
    name_len: usize,
    /// The class's spans and the objects they hold free.
    pub press: Press,
}

impl ClassInfo {
    /// The class name given at registration (possibly truncated to
    /// [`MAX_NAME_LEN`] bytes; "anonymous" if none was given).
    ///
    /// ```
    /// let class = slitter::Class::new(slitter::ClassConfig {
    ///     size: 8,
    ///     ..Default::default()
    /// })
    /// .unwrap();
    /// assert_eq!(class.info().name(), "anonymous");
    /// ```
    pub fn name(&self) -> &str {
        // The name was truncated to a valid UTF-8 prefix at registration.
        core::str::from_utf8(&self.name[..self.name_len]).unwrap_or("?")
    }

    /// The number of bytes to clear in each object handed out (0: none).
    ///
    /// ```
    /// let class = |zero_init| {
    ///     slitter::Class::new(slitter::ClassConfig {
    ///         size: 40, // rounded up to 48
    ///         zero_init,
    ///         ..Default::default()
    ///     })
    ///     .unwrap()
    /// };
    /// assert_eq!(class(true).info().zero_size(), 48);
    /// assert_eq!(class(false).info().zero_size(), 0);
    /// ```
    pub fn zero_size(&self) -> u32 {
        if self.zero_init {
            self.object_size as u32
        } else {
            0
        }
    }
}

static CLASSES: [AtomicPtr<ClassInfo>; MAX_CLASSES] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_CLASSES];

/// Ids below this one are reserved for the malloc size classes.
pub const FIRST_USER_ID: u32 = 1 + crate::layout::size_classes::COUNT as u32;

/// The next id to hand out to a user class; also serialises registrations.
static NEXT_ID: Lock<u32> = Lock::new(FIRST_USER_ID);

/// The lock of class registration, for the fork handlers.
pub fn registration_lock() -> &'static dyn crate::sys::lock::Forkable {
    &NEXT_ID
}

/// In a forked child whose mill memory was replaced: the presses of the
/// classes on it clear the objects they hand out for the first time, which
/// may hold what the parent's threads wrote while the child copied them
/// (they must be zero).
pub fn after_fork_in_child() {
    for id in 1..MAX_CLASSES as u32 {
        if let Some(info) = info(id) {
            if info.press.mill().replaced_in_child() {
                info.press.clear_fresh_objects();
            }
        }
    }
}

/// Calls `f` on the locks of every class's press, by class id (for the
/// fork handlers, which hold the registration lock, so that no class
/// appears meanwhile).
pub fn each_press_lock(f: &mut dyn FnMut(&dyn crate::sys::lock::Forkable)) {
    for id in 1..MAX_CLASSES as u32 {
        if let Some(info) = info(id) {
            info.press.locks().into_iter().for_each(&mut *f);
        }
    }
}

/// Calls `f` on every registered class, by class id.
#[cfg(feature = "malloc")]
pub fn each_class(f: impl FnMut(&'static ClassInfo)) {
    (1..MAX_CLASSES as u32).filter_map(info).for_each(f);
}

/// The class registered under `id`, if any.
#[inline(always)]
pub fn info(id: u32) -> Option<&'static ClassInfo> {
    let slot = CLASSES.get(id as usize)?;
    // SAFETY: published ClassInfo records are initialised and immortal.
    unsafe { slot.load(Ordering::Acquire).as_ref() }
}

/// Why a class could not be registered.
///
/// ```
/// use slitter::{Class, ClassConfig, ClassError};
///
/// let error = Class::new(ClassConfig::default()).unwrap_err();
/// assert_eq!(error, ClassError::ZeroSize);
/// assert_eq!(error.to_string(), "the object size is 0");
///
/// let unknown = ClassConfig {
///     size: 8,
///     mapper_name: Some("no-such-mapper"),
///     ..Default::default()
/// };
/// assert_eq!(Class::new(unknown), Err(ClassError::UnknownMapper));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClassError {
    /// The C caller passed a NULL config.
    NullConfig,
    /// The object size is 0.
    ZeroSize,
    /// The object size exceeds the largest span the mill serves.
    SizeTooLarge {
        /// The requested size.
        size: usize,
        /// The largest size a class may have.
        max: usize,
    },
    /// No mapper is registered under the requested name.
    UnknownMapper,
    /// All `MAX_CLASSES - FIRST_USER_ID` user class ids are taken.
    TooManyClasses,
    /// Memory for the class's records could not be obtained.
    OutOfMemory,
}

impl fmt::Display for ClassError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NullConfig => write!(f, "the class config is NULL"),
            Self::ZeroSize => write!(f, "the object size is 0"),
            Self::SizeTooLarge { size, max } => {
                write!(
                    f,
                    "the object size {size} exceeds the maximum of {max} bytes"
                )
            }
            Self::UnknownMapper => write!(f, "no mapper is registered under that name"),
            Self::TooManyClasses => {
                write!(
                    f,
                    "at most {} classes can be registered",
                    MAX_CLASSES - FIRST_USER_ID as usize
                )
            }
            Self::OutOfMemory => write!(f, "out of memory for the class's records"),
        }
    }
}

impl std::error::Error for ClassError {}

/// The byte-level view of a config that both the Rust and C APIs build.
pub struct RawConfig<'a> {
    /// Name bytes, not necessarily UTF-8.
    pub name: Option<&'a [u8]>,
    /// Object size in bytes.
    pub size: usize,
    /// Zero-fill objects.
    pub zero_init: bool,
    /// Give the memory of wholly free spans back to the kernel.
    pub purge: bool,
    /// Hand out free objects in a random order.
    pub scatter: bool,
    /// Mapper name bytes.
    pub mapper_name: Option<&'a [u8]>,
}

/// Copies the longest valid UTF-8 prefix of `name` (at most MAX_NAME_LEN
/// bytes) into a fixed buffer.
fn copy_name(name: &[u8]) -> ([u8; MAX_NAME_LEN], usize) {
    let mut len = name.len().min(MAX_NAME_LEN);
    len = match core::str::from_utf8(&name[..len]) {
        Ok(_) => len,
        Err(e) => e.valid_up_to(),
    };
    let mut buffer = [0; MAX_NAME_LEN];
    buffer[..len].copy_from_slice(&name[..len]);
    (buffer, len)
}

/// Registers a new class and returns its immortal descriptor.
#[contracts::debug_ensures(ret.map_or(true, |c| info(c.id).is_some_and(|i| core::ptr::eq(i, c))))]
pub fn register(config: &RawConfig<'_>) -> Result<&'static ClassInfo, ClassError> {
    register_as(config, None)
}

/// Registers the class of reserved id `id` (one of the malloc size classes,
/// `1..FIRST_USER_ID`); returns the descriptor already registered under
/// `id` if there is one.
#[contracts::debug_requires(id != 0 && id < FIRST_USER_ID)]
pub fn register_reserved(
    id: u32,
    config: &RawConfig<'_>,
) -> Result<&'static ClassInfo, ClassError> {
    register_as(config, Some(id))
}

fn register_as(
    config: &RawConfig<'_>,
    reserved: Option<u32>,
) -> Result<&'static ClassInfo, ClassError> {
    if config.size == 0 {
        return Err(ClassError::ZeroSize);
    }
    if config.size > MAX_SPAN_SIZE {
        return Err(ClassError::SizeTooLarge {
            size: config.size,
            max: MAX_SPAN_SIZE,
        });
    }
    let (mapper_index, mapper) =
        mapper_registry::find_mapper(config.mapper_name).ok_or(ClassError::UnknownMapper)?;
    let mill = mill::mill_for(mapper_index, mapper).ok_or(ClassError::OutOfMemory)?;
    let object_size = config.size.next_multiple_of(GRANULE);
    let (name, name_len) = copy_name(config.name.unwrap_or(b"anonymous"));

    let mut next_id = NEXT_ID.lock();
    let id = match reserved {
        Some(id) => {
            if let Some(existing) = info(id) {
                return Ok(existing);
            }
            id
        }
        None => *next_id,
    };
    if id as usize >= MAX_CLASSES {
        return Err(ClassError::TooManyClasses);
    }
    let slot = arena::allocate(
        core::mem::size_of::<ClassInfo>(),
        core::mem::align_of::<ClassInfo>(),
    )
    .ok_or(ClassError::OutOfMemory)?
    .cast::<ClassInfo>()
    .as_ptr();
    let magazine_capacity = (MAGAZINE_BYTES / object_size).clamp(1, MAGAZINE_SIZE);
    // SAFETY: `slot` is fresh, aligned arena memory for one ClassInfo.
    unsafe {
        slot.write(ClassInfo {
            id,
            object_size,
            zero_init: config.zero_init,
            magazine_capacity,
            swaps_in_place: !config.zero_init
                && !config.scatter
                && magazine_capacity == MAGAZINE_SIZE,
            scatters: config.scatter,
            name,
            name_len,
            press: Press::new(id, object_size, mill, config.purge),
        })
    };
    CLASSES[id as usize].store(slot, Ordering::Release);
    if reserved.is_none() {
        *next_id += 1;
    }
    // SAFETY: just initialised and published; arena memory is immortal.
    Ok(unsafe { &*slot })
}
