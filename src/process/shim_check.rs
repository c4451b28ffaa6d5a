//! The start-up check of the C shim: the layout constants exist twice, in
//! Rust (`layout::constants`) and in `c/layout.h`, and must agree.
//!
//! Owns: asking the C side for each constant (and for the sizes of the
//! structures the two sides share) and aborting with a message naming the
//! first that differs. Invariant: runs before any personality allocates
//! (`entry::enter`).

use crate::cache::thread_cache::ThreadState;
use crate::layout::constants::*;
use crate::layout::magazine::Magazine;
use crate::sys::fatal;

mod shim {
    extern "C" {
        pub fn slitter_c_data_alignment() -> usize;
        pub fn slitter_c_guard_page_size() -> usize;
        pub fn slitter_c_records_size() -> usize;
        pub fn slitter_c_metadata_size() -> usize;
        pub fn slitter_c_granule() -> usize;
        pub fn slitter_c_span_alignment() -> usize;
        pub fn slitter_c_span_metadata_size() -> usize;
        pub fn slitter_c_magazine_size() -> usize;
        pub fn slitter_c_magazine_bytes() -> usize;
        pub fn slitter_c_max_classes() -> usize;
        pub fn slitter_c_thread_state_size() -> usize;
    }
}

/// The constants shared with C, as (name, Rust value, C value).
fn shared_constants() -> [(&'static str, usize, usize); 11] {
    // SAFETY: the shim functions take no argument and return a constant.
    unsafe {
        [
            (
                "DATA_ALIGNMENT",
                DATA_ALIGNMENT,
                shim::slitter_c_data_alignment(),
            ),
            (
                "GUARD_PAGE_SIZE",
                GUARD_PAGE_SIZE,
                shim::slitter_c_guard_page_size(),
            ),
            ("RECORDS_SIZE", RECORDS_SIZE, shim::slitter_c_records_size()),
            (
                "METADATA_SIZE",
                METADATA_SIZE,
                shim::slitter_c_metadata_size(),
            ),
            ("GRANULE", GRANULE, shim::slitter_c_granule()),
            (
                "SPAN_ALIGNMENT",
                SPAN_ALIGNMENT,
                shim::slitter_c_span_alignment(),
            ),
            (
                "SPAN_METADATA_SIZE",
                SPAN_METADATA_SIZE,
                shim::slitter_c_span_metadata_size(),
            ),
            (
                "MAGAZINE_SIZE",
                MAGAZINE_SIZE,
                shim::slitter_c_magazine_size(),
            ),
            (
                "MAGAZINE_BYTES",
                core::mem::size_of::<Magazine>(),
                shim::slitter_c_magazine_bytes(),
            ),
            ("MAX_CLASSES", MAX_CLASSES, shim::slitter_c_max_classes()),
            (
                "THREAD_STATE_SIZE",
                core::mem::size_of::<ThreadState>(),
                shim::slitter_c_thread_state_size(),
            ),
        ]
    }
}

/// Returns the first constant on which Rust and C disagree.
pub fn first_mismatch() -> Option<(&'static str, usize, usize)> {
    shared_constants()
        .into_iter()
        .find(|&(_, rust, c)| rust != c)
}

/// Aborts with a message naming the constant if the C shim disagrees.
pub fn check_against_c() {
    if let Some((name, rust, c)) = first_mismatch() {
        fatal::die(format_args!(
            "layout constant {name} differs between Rust ({rust}) and C ({c})"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_and_rust_agree() {
        assert_eq!(first_mismatch(), None);
    }
}
