//! The rack: the process-wide pool of empty magazines.
//!
//! Owns: empty magazines not held by any thread cache or class stack, and
//! the creation of new magazines from the internal arena when the pool is
//! dry. Magazines are shared by all classes: a magazine carries no class
//! until a thread cache puts objects in it.
//!
//! Invariants: every magazine in the rack is empty (count 0);
//! magazines are never freed, so the number created is bounded by the peak
//! number in use at once.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::heap::arena;
use crate::layout::magazine::{Magazine, MagazineStack};

static EMPTY_MAGAZINES: MagazineStack = MagazineStack::new();
static CREATED: AtomicUsize = AtomicUsize::new(0);

/// An empty magazine, recycled or new; `None` when out of memory.
#[contracts::debug_ensures(ret.is_none_or(|m| unsafe { m.as_ref() }.is_empty()))]
pub fn allocate_empty() -> Option<NonNull<Magazine>> {
    if let Some(magazine) = EMPTY_MAGAZINES.pop() {
        return Some(magazine);
    }
    let magazine = arena::allocate(
        core::mem::size_of::<Magazine>(),
        core::mem::align_of::<Magazine>(),
    )?
    .cast::<Magazine>();
    // SAFETY: fresh, aligned arena memory for one magazine.
    unsafe { magazine.as_ptr().write(Magazine::empty()) };
    CREATED.fetch_add(1, Ordering::Relaxed);
    Some(magazine)
}

/// Returns an empty magazine to the rack.
#[contracts::debug_requires(unsafe { magazine.as_ref() }.is_empty())]
pub fn release_empty(magazine: NonNull<Magazine>) {
    EMPTY_MAGAZINES.push(magazine);
}

/// Number of magazines created since the process started.
pub fn magazines_created() -> usize {
    CREATED.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magazines_are_empty_aligned_and_distinct() {
        let mags: Vec<_> = (0..8).map(|_| allocate_empty().unwrap()).collect();
        for (i, m) in mags.iter().enumerate() {
            // SAFETY: we own these magazines until they are released.
            assert!(unsafe { m.as_ref() }.is_empty());
            assert_eq!(
                m.as_ptr() as usize % crate::layout::constants::MAGAZINE_ALIGNMENT,
                0
            );
            assert!(mags[..i].iter().all(|other| other != m));
        }
        assert!(magazines_created() >= 1);
        for m in mags {
            release_empty(m);
        }
    }
}
