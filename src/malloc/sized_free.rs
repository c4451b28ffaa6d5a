//! Sized frees: C23's `free_sized` and `free_aligned_sized`, and C++'s
//! sized `operator delete` (scalar and array, plain and aligned), exported
//! under their mangled names so that a C++ program's sized deletes reach
//! slitter instead of libstdc++'s forwarding to `free`; and C++'s aligned
//! `operator new` (scalar and array, throwing and nothrow), which the
//! aligned sized deletes rely on.
//!
//! Owns: the check that the size (and alignment) a program names when it
//! frees agrees with the allocation. The size must select the object's
//! size class: the class that the allocation call with that size and
//! alignment uses (`malloc`'s for a plain request, `aligned_alloc`'s for an
//! aligned one); a large allocation must be one that only the large path
//! serves, and hold at least that many bytes. A disagreement aborts with a
//! `slitter: size mismatch` line naming the address, the size and the
//! class. When the program replaced C++'s `operator new` or `delete` (plain
//! or aligned), sized deletes go to the unsized `operator delete` of the
//! same form instead (the program's or the C++ library's), looked up once
//! per operator (or to `free` while none is found).
//!
//! Aligned `operator new(n, a)` allocates `max(n, 1)` bytes aligned to `a`
//! (not rounded up to `a`, as the C++ libraries do before `aligned_alloc`),
//! so an aligned sized delete is checked with the size the program names,
//! exactly as `free_aligned_sized` is: a wrong size that rounds to the
//! right one is caught where the hardened canary makes their classes
//! differ. When that allocation fails, the operator calls the C++
//! library's own (the next definition of its name), which runs the
//! new-handler loop, then throws `std::bad_alloc` or returns null, as C++
//! requires; what the library's retry allocates (its size rounded up) is
//! marked as given room, so the unrounded size passes its delete.
//!
//! Relies on: a small object allocated by `malloc` or `calloc` of `n`
//! bytes lives in class `index_for(n)`, and one allocated with alignment
//! `a` in `index_for_aligned(n, a)`; an object that `realloc` placed in a
//! larger class (room to grow) or kept when shrinking is marked so in its
//! state (`object_states::ROOM`), and then any size that selects its
//! class or a smaller one is accepted; libstdc++'s `operator new(n)` is
//! `malloc(max(n, 1))`; the exported aligned `operator new`s jump to
//! `c/cxx_new.c`, whose C frames (built with `-fexceptions`) are the only
//! ones `std::bad_alloc` crosses: Rust is built with panic=abort.

use core::ffi::{c_void, CStr};
use core::sync::atomic::{AtomicPtr, AtomicU8, Ordering};

use crate::cache::checks;
use crate::cache::misuse_report::{misuse, ClassLabel, Operation};
use crate::layout::size_classes::MALLOC_ALIGNMENT;
use crate::malloc::allocation::{self, Owner};
use crate::malloc::exports;
use crate::malloc::init;
use crate::sys::fatal::die;

/// Frees `ptr`, named by the caller (`operation`) as an allocation of
/// `size` bytes aligned to `align`; aborts if `ptr` is not live or the
/// size disagrees with the allocation.
fn free_checked(ptr: *mut c_void, size: usize, align: usize, name: &'static str) {
    if ptr.is_null() {
        return;
    }
    let operation = Operation { name, frees: true };
    if !align.is_power_of_two() {
        return misuse(format_args!(
            "{name} of {ptr:p} with alignment {align}, which is not a power of two"
        ));
    }
    let expected = allocation::small_class_for(size, align);
    let Some(owner) = allocation::owner(ptr, operation) else {
        return;
    };
    match owner {
        Owner::Small { id, room }
            if expected == Some(init::class_index(id))
                || (room && expected.is_some_and(|index| index < init::class_index(id))) => {}
        Owner::Small { id, .. } => {
            return misuse(format_args!(
                "size mismatch: {name} of {ptr:p} with size {size}, but it was allocated \
             in {} ({})",
                ClassLabel(id),
                describe_expected(expected)
            ))
        }
        Owner::Large(usable) if expected.is_none() && size <= usable => {}
        Owner::Large(usable) => {
            return misuse(format_args!(
                "size mismatch: {name} of {ptr:p} with size {size}, but it is a large \
             allocation of {usable} usable bytes ({})",
                describe_expected(expected)
            ))
        }
    }
    exports::free(ptr)
}

/// Says where an allocation of the size named at free would come from.
fn describe_expected(expected: Option<usize>) -> impl core::fmt::Display {
    struct Expected(Option<usize>);
    impl core::fmt::Display for Expected {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            match self.0 {
                Some(index) => write!(
                    f,
                    "that size belongs to {}",
                    ClassLabel(init::class_id(index))
                ),
                None => f.write_str("that size belongs to the large path"),
            }
        }
    }
    Expected(expected)
}

/// `free` of an allocation of `size` bytes made by `malloc`, `calloc` or
/// `realloc` (C23); aborts if `size` disagrees with the allocation.
#[no_mangle]
pub extern "C" fn free_sized(ptr: *mut c_void, size: usize) {
    free_checked(ptr, size, MALLOC_ALIGNMENT, "free_sized")
}

/// `free` of an allocation of `size` bytes aligned to `align` made by
/// `aligned_alloc` (C23); aborts if they disagree with the allocation.
#[no_mangle]
pub extern "C" fn free_aligned_sized(ptr: *mut c_void, align: usize, size: usize) {
    free_checked(ptr, size, align, "free_aligned_sized")
}

/// Whether this process's C++ `operator new`/`delete` are the C++
/// library's and slitter's aligned `operator new` (then slitter checks
/// sized deletes), or the program's own: C++ lets a program replace them,
/// and the default sized delete then calls its `operator delete(void *)`,
/// so slitter's forwards to it.
static CXX_RUNTIME: AtomicU8 = AtomicU8::new(UNKNOWN);
const UNKNOWN: u8 = 0;
const STANDARD: u8 = 1;
const REPLACED: u8 = 2;

/// The aligned `operator new`s slitter defines, each with the address of
/// the C++ library's definition (the next after slitter's), which the
/// failure path calls.
static NEW_ALIGNED: Forward = Forward::next(c"_ZnwmSt11align_val_t");
static NEW_ARRAY_ALIGNED: Forward = Forward::next(c"_ZnamSt11align_val_t");
static NEW_ALIGNED_NOTHROW: Forward = Forward::next(c"_ZnwmSt11align_val_tRKSt9nothrow_t");
static NEW_ARRAY_ALIGNED_NOTHROW: Forward = Forward::next(c"_ZnamSt11align_val_tRKSt9nothrow_t");

/// Whether the program replaced C++'s `operator new` or `delete`: a plain
/// one or an unsized aligned delete is defined outside libstdc++ and
/// libc++, or an aligned new outside slitter (the program's, or the C++
/// library's when it comes before slitter: either way not one whose sizes
/// slitter knows unrounded). Found once, with the dynamic loader (which
/// may allocate: slitter holds no lock here).
fn cxx_operators_replaced() -> bool {
    let known = CXX_RUNTIME.load(Ordering::Relaxed);
    if known != UNKNOWN {
        return known == REPLACED;
    }
    let replaced = [
        c"_Znwm",
        c"_ZdlPv",
        c"_Znam",
        c"_ZdaPv",
        c"_ZdlPvSt11align_val_t",
        c"_ZdaPvSt11align_val_t",
    ]
    .into_iter()
    .any(defined_outside_the_cxx_library)
        || [
            &NEW_ALIGNED,
            &NEW_ARRAY_ALIGNED,
            &NEW_ALIGNED_NOTHROW,
            &NEW_ARRAY_ALIGNED_NOTHROW,
        ]
        .into_iter()
        .any(|new| !defined_in_slitter(new.name));
    CXX_RUNTIME.store(
        if replaced { REPLACED } else { STANDARD },
        Ordering::Relaxed,
    );
    replaced
}

/// The loader's description of the object defining `name` for the
/// program (the first in lookup order), if any does.
fn definition(name: &CStr) -> Option<libc::Dl_info> {
    // SAFETY: dlsym reads the loader's tables.
    let symbol = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    if symbol.is_null() {
        return None;
    }
    object_at(symbol)
}

/// The loader's description of the object holding `address`, if any.
fn object_at(address: *const c_void) -> Option<libc::Dl_info> {
    // SAFETY: dladdr reads the loader's tables; `info` is a plain
    // out-parameter, all zero (null pointers) until it fills it.
    unsafe {
        let mut info: libc::Dl_info = core::mem::zeroed();
        (libc::dladdr(address, &mut info) != 0).then_some(info)
    }
}

/// Whether `name` resolves to a definition outside libstdc++ and libc++.
fn defined_outside_the_cxx_library(name: &CStr) -> bool {
    let Some(info) = definition(name).filter(|info| !info.dli_fname.is_null()) else {
        return false;
    };
    // SAFETY: `dli_fname` is a non-null C string the loader owns.
    let file = unsafe { CStr::from_ptr(info.dli_fname) }.to_bytes();
    let base = file.rsplit(|&b| b == b'/').next().unwrap_or(file);
    !(base.starts_with(b"libstdc++") || base.starts_with(b"libc++"))
}

/// Whether `name` resolves to slitter's own definition: one in the object
/// that holds slitter's statics (unexported, so never interposed).
fn defined_in_slitter(name: &CStr) -> bool {
    let slitter = object_at(core::ptr::addr_of!(CXX_RUNTIME).cast());
    definition(name)
        .is_some_and(|info| slitter.is_some_and(|slitter| info.dli_fbase == slitter.dli_fbase))
}

/// A C++ operator found with the dynamic loader at its first use and kept
/// once found (a lookup per call would be slow, and the loader may
/// allocate): an unsized `operator delete` that sized deletes forward to
/// when the program replaced C++'s operators (the program's definition),
/// or an aligned `operator new` that slitter's calls when it cannot
/// allocate (the C++ library's: the next definition after slitter's).
struct Forward {
    name: &'static CStr,
    /// Whether to look for the next definition after slitter's
    /// (`RTLD_NEXT`) rather than the program's (`RTLD_DEFAULT`).
    next: bool,
    symbol: AtomicPtr<c_void>,
}

impl Forward {
    /// The program's definition of `name`.
    const fn new(name: &'static CStr) -> Self {
        Forward {
            name,
            next: false,
            symbol: AtomicPtr::new(core::ptr::null_mut()),
        }
    }

    /// The definition of `name` that slitter's hides.
    const fn next(name: &'static CStr) -> Self {
        Forward {
            next: true,
            ..Forward::new(name)
        }
    }

    /// The operator's address (null if nothing defines it).
    fn symbol(&self) -> *mut c_void {
        let known = self.symbol.load(Ordering::Acquire);
        if !known.is_null() {
            return known;
        }
        let handle = if self.next {
            libc::RTLD_NEXT
        } else {
            libc::RTLD_DEFAULT
        };
        // SAFETY: dlsym reads the loader's tables (with RTLD_NEXT, from the
        // object after the caller's, which is slitter's).
        let found = unsafe { libc::dlsym(handle, self.name.as_ptr()) };
        if !found.is_null() {
            self.symbol.store(found, Ordering::Release);
        }
        found
    }

    /// Calls the operator on `ptr`, with `align` when it takes one (or
    /// `free` when nothing defines it).
    fn call(&self, ptr: *mut c_void, align: Option<usize>) {
        let symbol = self.symbol();
        if symbol.is_null() {
            return exports::free(ptr);
        }
        // SAFETY: `symbol` is the non-null address dlsym gave for one of
        // these mangled names, which POSIX lets a program call as a
        // function; the names fix the signatures (void (void *) and void
        // (void *, std::align_val_t), an enum class over size_t, passed as
        // a usize), and the operators are noexcept, so nothing unwinds
        // through the call. slitter defines none of these unsized names,
        // so the call does not come back here.
        unsafe {
            match align {
                None => {
                    core::mem::transmute::<*mut c_void, extern "C" fn(*mut c_void)>(symbol)(ptr)
                }
                Some(align) => {
                    core::mem::transmute::<*mut c_void, extern "C" fn(*mut c_void, usize)>(symbol)(
                        ptr, align,
                    )
                }
            }
        }
    }
}

static DELETE: Forward = Forward::new(c"_ZdlPv");
static DELETE_ARRAY: Forward = Forward::new(c"_ZdaPv");
static DELETE_ALIGNED: Forward = Forward::new(c"_ZdlPvSt11align_val_t");
static DELETE_ARRAY_ALIGNED: Forward = Forward::new(c"_ZdaPvSt11align_val_t");

/// C++ `operator new(n)` asks `malloc` for at least one byte.
fn cxx_size(size: usize) -> usize {
    size.max(1)
}

/// C++ `operator delete(void *, std::size_t)`.
#[export_name = "_ZdlPvm"]
pub extern "C" fn cxx_delete_sized(ptr: *mut c_void, size: usize) {
    if cxx_operators_replaced() {
        return DELETE.call(ptr, None);
    }
    free_checked(ptr, cxx_size(size), MALLOC_ALIGNMENT, "operator delete")
}

/// C++ `operator delete[](void *, std::size_t)`.
#[export_name = "_ZdaPvm"]
pub extern "C" fn cxx_delete_array_sized(ptr: *mut c_void, size: usize) {
    if cxx_operators_replaced() {
        return DELETE_ARRAY.call(ptr, None);
    }
    free_checked(ptr, cxx_size(size), MALLOC_ALIGNMENT, "operator delete[]")
}

/// C++ `operator delete(void *, std::size_t, std::align_val_t)`.
#[export_name = "_ZdlPvmSt11align_val_t"]
pub extern "C" fn cxx_delete_sized_aligned(ptr: *mut c_void, size: usize, align: usize) {
    if cxx_operators_replaced() {
        return DELETE_ALIGNED.call(ptr, Some(align));
    }
    free_checked(ptr, cxx_size(size), align, "operator delete")
}

/// C++ `operator delete[](void *, std::size_t, std::align_val_t)`.
#[export_name = "_ZdaPvmSt11align_val_t"]
pub extern "C" fn cxx_delete_array_sized_aligned(ptr: *mut c_void, size: usize, align: usize) {
    if cxx_operators_replaced() {
        return DELETE_ARRAY_ALIGNED.call(ptr, Some(align));
    }
    free_checked(ptr, cxx_size(size), align, "operator delete[]")
}

/// The C++ library's aligned `operator new`s, in the order
/// `c/cxx_new.c` numbers them.
static NEXT_NEW: [&Forward; 4] = [
    &NEW_ALIGNED,
    &NEW_ARRAY_ALIGNED,
    &NEW_ALIGNED_NOTHROW,
    &NEW_ARRAY_ALIGNED_NOTHROW,
];

/// For `c/cxx_new.c`: `max(n, 1)` bytes aligned to `align`, unrounded;
/// null when out of memory or when `align` is not a power of two.
#[no_mangle]
extern "C" fn slitter_cxx_new_aligned(size: usize, align: usize) -> *mut c_void {
    if !align.is_power_of_two() {
        return core::ptr::null_mut();
    }
    allocation::allocate_aligned(cxx_size(size), align)
}

/// For `c/cxx_new.c`, when an aligned allocation failed: the C++
/// library's definition of aligned `operator new` number `which`, which
/// runs the new-handler loop, then throws `std::bad_alloc` or returns
/// null, as C++ requires; dies when no C++ library defines it.
#[no_mangle]
#[cold]
extern "C" fn slitter_cxx_new_next(which: u32) -> *mut c_void {
    let next = NEXT_NEW[which as usize];
    let symbol = next.symbol();
    if symbol.is_null() {
        die(format_args!(
            "out of memory in C++ {:?}, and no C++ library defines it to report that",
            next.name
        ));
    }
    symbol
}

/// For `c/cxx_new.c`: marks what the C++ library's retry allocated (the
/// size rounded up to the alignment, which in a hardened class may not be
/// the unrounded size's) as given room, so the size the program names
/// passes its sized delete.
#[no_mangle]
#[cold]
extern "C" fn slitter_cxx_new_retried(allocated: *mut c_void) {
    checks::mark_given_room(allocated as usize);
}

unsafe extern "C" {
    fn slitter_cxx_new_entry(size: usize, align: usize) -> *mut c_void;
    fn slitter_cxx_new_array_entry(size: usize, align: usize) -> *mut c_void;
    fn slitter_cxx_new_nothrow_entry(
        size: usize,
        align: usize,
        nothrow: *const c_void,
    ) -> *mut c_void;
    fn slitter_cxx_new_array_nothrow_entry(
        size: usize,
        align: usize,
        nothrow: *const c_void,
    ) -> *mut c_void;
}

/// C++ `operator new(std::size_t, std::align_val_t)`: a jump to
/// `c/cxx_new.c`, leaving no Rust frame for `std::bad_alloc` to cross.
#[unsafe(naked)]
#[export_name = "_ZnwmSt11align_val_t"]
pub extern "C" fn cxx_new_aligned(size: usize, align: usize) -> *mut c_void {
    core::arch::naked_asm!("jmp {}", sym slitter_cxx_new_entry)
}

/// C++ `operator new[](std::size_t, std::align_val_t)`, as
/// [`cxx_new_aligned`].
#[unsafe(naked)]
#[export_name = "_ZnamSt11align_val_t"]
pub extern "C" fn cxx_new_array_aligned(size: usize, align: usize) -> *mut c_void {
    core::arch::naked_asm!("jmp {}", sym slitter_cxx_new_array_entry)
}

/// C++ `operator new(std::size_t, std::align_val_t, const
/// std::nothrow_t &)`, as [`cxx_new_aligned`].
#[unsafe(naked)]
#[export_name = "_ZnwmSt11align_val_tRKSt9nothrow_t"]
pub extern "C" fn cxx_new_aligned_nothrow(
    size: usize,
    align: usize,
    nothrow: *const c_void,
) -> *mut c_void {
    core::arch::naked_asm!("jmp {}", sym slitter_cxx_new_nothrow_entry)
}

/// C++ `operator new[](std::size_t, std::align_val_t, const
/// std::nothrow_t &)`, as [`cxx_new_aligned`].
#[unsafe(naked)]
#[export_name = "_ZnamSt11align_val_tRKSt9nothrow_t"]
pub extern "C" fn cxx_new_array_aligned_nothrow(
    size: usize,
    align: usize,
    nothrow: *const c_void,
) -> *mut c_void {
    core::arch::naked_asm!("jmp {}", sym slitter_cxx_new_array_nothrow_entry)
}
