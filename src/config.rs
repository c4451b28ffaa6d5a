//! Configuration from the environment, read without allocating.
//!
//! Owns: the `SLITTER_*` switches and their parsing. The variables are
//! found by scanning `environ` directly (`getenv` may not be usable while
//! the C library starts, when malloc is already being called), once, the
//! first time a switch is asked for; a value that is not understood gives
//! one `slitter: warning:` line on stderr and the default.
//!
//! | variable | values | default | effect |
//! |---|---|---|---|
//! | `SLITTER_HARDEN` | `0`/`1` (also `off`/`on`, `false`/`true`, `no`/`yes`) | `0` | opt-in hardening of the malloc API (`hardening.rs`) |
//!
//! Invariants: the settings are read once and never change afterwards; if
//! `environ` is not set up yet when they are first asked for, the defaults
//! hold for the whole run.

use core::ffi::{c_char, CStr};
use core::sync::atomic::{AtomicU8, Ordering};

extern "C" {
    static environ: *const *const c_char;
}

const UNREAD: u8 = 0;
const READING: u8 = 1;
const READ: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(UNREAD);
static HARDEN: AtomicU8 = AtomicU8::new(0);

/// A boolean switch.
struct Switch {
    name: &'static str,
    value: &'static AtomicU8,
}

const SWITCHES: [Switch; 1] = [Switch {
    name: "SLITTER_HARDEN",
    value: &HARDEN,
}];

/// Parses a boolean switch's value.
fn parse_bool(value: &[u8]) -> Option<bool> {
    match value {
        b"1" | b"on" | b"true" | b"yes" => Some(true),
        b"0" | b"off" | b"false" | b"no" => Some(false),
        _ => None,
    }
}

/// Applies one `NAME=value` entry of the environment.
fn apply(entry: &[u8]) {
    let Some(switch) = SWITCHES.iter().find(|switch| {
        entry.len() > switch.name.len()
            && entry.starts_with(switch.name.as_bytes())
            && entry[switch.name.len()] == b'='
    }) else {
        return;
    };
    let value = &entry[switch.name.len() + 1..];
    match parse_bool(value) {
        Some(on) => switch.value.store(u8::from(on), Ordering::Relaxed),
        None => crate::fatal::report(format_args!(
            "warning: {}={} is not 0 or 1 (nor off/on, false/true, no/yes); using 0",
            switch.name,
            value.escape_ascii()
        )),
    }
}

/// Reads the environment once; later callers wait for the first.
fn read() {
    if STATE.load(Ordering::Acquire) == READ {
        return;
    }
    if STATE
        .compare_exchange(UNREAD, READING, Ordering::Acquire, Ordering::Acquire)
        .is_ok()
    {
        // SAFETY: `environ` is the C library's, NULL or a NULL-terminated
        // array of C strings; nothing here changes it.
        let mut entry = unsafe { environ };
        while !entry.is_null() {
            // SAFETY: `entry` points into that array, before its end.
            let string = unsafe { *entry };
            if string.is_null() {
                break;
            }
            // SAFETY: a C string of the environment.
            apply(unsafe { CStr::from_ptr(string) }.to_bytes());
            // SAFETY: not past the terminating NULL.
            entry = unsafe { entry.add(1) };
        }
        STATE.store(READ, Ordering::Release);
    }
    while STATE.load(Ordering::Acquire) != READ {
        core::hint::spin_loop();
    }
}

/// `SLITTER_HARDEN`: whether the malloc API is hardened.
pub fn harden() -> bool {
    read();
    HARDEN.load(Ordering::Relaxed) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_parse() {
        for on in ["1", "on", "true", "yes"] {
            assert_eq!(parse_bool(on.as_bytes()), Some(true));
        }
        for off in ["0", "off", "false", "no"] {
            assert_eq!(parse_bool(off.as_bytes()), Some(false));
        }
        for bad in ["", "2", "On", "enable"] {
            assert_eq!(parse_bool(bad.as_bytes()), None);
        }
    }
}
