//! Sized frees: C23's `free_sized` and `free_aligned_sized`, and C++'s
//! sized `operator delete` (scalar and array, plain and aligned), exported
//! under their mangled names so that a C++ program's sized deletes reach
//! slitter instead of libstdc++'s forwarding to `free`.
//!
//! Owns: the check that the size (and alignment) a program names when it
//! frees agrees with the allocation. The size must select the object's
//! size class: the class that the allocation call with that size and
//! alignment uses (`malloc`'s for a plain request, `aligned_alloc`'s for an
//! aligned one); a large allocation must be one that only the large path
//! serves, and hold at least that many bytes. A disagreement aborts with a
//! `slitter: size mismatch` line naming the address, the size and the
//! class. When the program replaced C++'s `operator new` or `delete`,
//! sized deletes go to the unsized `operator delete` of the same form
//! instead (the program's or the C++ library's), looked up once per
//! operator (or to `free` while none is found).
//!
//! Relies on: a small object allocated by `malloc` or `calloc` of `n`
//! bytes lives in class `index_for(n)`, and one allocated with alignment
//! `a` in `index_for_aligned(n, a)`; an object that `realloc` placed in a
//! larger class (room to grow) or kept when shrinking is marked so in its
//! state (`object_states::ROOM`), and then any size that selects its
//! class or a smaller one is accepted; libstdc++'s `operator
//! new(n)` is `malloc(max(n, 1))` and its aligned form `aligned_alloc(a,
//! max(n, 1) rounded up to a)`, which selects the same class as `max(n,
//! 1)`.

use core::ffi::{c_void, CStr};
use core::sync::atomic::{AtomicPtr, AtomicU8, Ordering};

use crate::cache::misuse_report::{misuse, ClassLabel, Operation};
use crate::layout::size_classes::MALLOC_ALIGNMENT;
use crate::malloc::allocation::{self, Owner};
use crate::malloc::exports;
use crate::malloc::init;

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

/// Whether this process's plain C++ `operator new`/`delete` are the C++
/// library's (then slitter checks sized deletes), or the program's own:
/// C++ lets a program replace them, and the default sized delete then
/// calls its `operator delete(void *)`, so slitter's forwards to it.
static CXX_RUNTIME: AtomicU8 = AtomicU8::new(UNKNOWN);
const UNKNOWN: u8 = 0;
const STANDARD: u8 = 1;
const REPLACED: u8 = 2;

/// Whether the program replaced C++'s plain `operator new` or `delete`:
/// one of them is defined outside libstdc++ and libc++. Found once, with
/// the dynamic loader (which may allocate: slitter holds no lock here).
fn cxx_operators_replaced() -> bool {
    let known = CXX_RUNTIME.load(Ordering::Relaxed);
    if known != UNKNOWN {
        return known == REPLACED;
    }
    let replaced = [c"_Znwm", c"_ZdlPv", c"_Znam", c"_ZdaPv"]
        .into_iter()
        .any(defined_outside_the_cxx_library);
    CXX_RUNTIME.store(
        if replaced { REPLACED } else { STANDARD },
        Ordering::Relaxed,
    );
    replaced
}

/// Whether `name` resolves to a definition outside libstdc++ and libc++.
fn defined_outside_the_cxx_library(name: &CStr) -> bool {
    // SAFETY: dlsym and dladdr read the loader's tables; `info` is a plain
    // out-parameter, and `dli_fname` a C string the loader owns.
    unsafe {
        let symbol = libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr());
        let mut info: libc::Dl_info = core::mem::zeroed();
        if symbol.is_null() || libc::dladdr(symbol, &mut info) == 0 || info.dli_fname.is_null() {
            return false;
        }
        let file = CStr::from_ptr(info.dli_fname).to_bytes();
        let base = file.rsplit(|&b| b == b'/').next().unwrap_or(file);
        !(base.starts_with(b"libstdc++") || base.starts_with(b"libc++"))
    }
}

/// An unsized `operator delete` that sized deletes forward to when the
/// program replaced C++'s operators, found with the dynamic loader at its
/// first use and kept once found (a lookup per call would be slow, and
/// the loader may allocate).
struct Forward {
    name: &'static CStr,
    symbol: AtomicPtr<c_void>,
}

impl Forward {
    const fn new(name: &'static CStr) -> Self {
        Forward {
            name,
            symbol: AtomicPtr::new(core::ptr::null_mut()),
        }
    }

    /// The operator's address (null if nothing defines it).
    fn symbol(&self) -> *mut c_void {
        let known = self.symbol.load(Ordering::Acquire);
        if !known.is_null() {
            return known;
        }
        // SAFETY: dlsym reads the loader's tables.
        let found = unsafe { libc::dlsym(libc::RTLD_DEFAULT, self.name.as_ptr()) };
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

/// C++ `operator new(n, align)` asks `aligned_alloc` for at least one
/// byte, rounded up to the alignment (libstdc++ and libc++ both round, as
/// C11 once required); `usize::MAX` when that overflows (a size no
/// allocation has).
fn cxx_aligned_size(size: usize, align: usize) -> usize {
    cxx_size(size)
        .checked_next_multiple_of(align.max(1))
        .unwrap_or(usize::MAX)
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
    free_checked(ptr, cxx_aligned_size(size, align), align, "operator delete")
}

/// C++ `operator delete[](void *, std::size_t, std::align_val_t)`.
#[export_name = "_ZdaPvmSt11align_val_t"]
pub extern "C" fn cxx_delete_array_sized_aligned(ptr: *mut c_void, size: usize, align: usize) {
    if cxx_operators_replaced() {
        return DELETE_ARRAY_ALIGNED.call(ptr, Some(align));
    }
    free_checked(
        ptr,
        cxx_aligned_size(size, align),
        align,
        "operator delete[]",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cxx_aligned_sizes_are_rounded_like_libstdcxx() {
        assert_eq!(cxx_aligned_size(0, 64), 64);
        assert_eq!(cxx_aligned_size(56, 16), 64);
        assert_eq!(cxx_aligned_size(64, 64), 64);
        assert_eq!(cxx_aligned_size(usize::MAX - 3, 64), usize::MAX);
    }
}
