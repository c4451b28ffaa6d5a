//! Configuration from environment variables, read without allocating.
//!
//! Owns: the switches below, their parsing, their warnings, and the line
//! that `SLITTER_VERBOSE` prints at start-up.
//!
//! | variable | default | when on |
//! |---|---|---|
//! | `SLITTER_STATS` | off | print the statistics table to stderr at exit |
//! | `SLITTER_VERBOSE` | off | print the version and this configuration to stderr at start-up |
//! | `SLITTER_HARDEN` | off | opt-in hardening of the malloc API |
//! | `SLITTER_CONTINUE_ON_MISUSE` | off | report a misuse that can be survived (a bad release or free) and carry on, leaving the pointer alone, instead of aborting |
//! | `SLITTER_MPROTECT_GUARDS` | off | give large blocks guard pages with `mprotect` (blocks under 1 MiB in guarded groups) even where the kernel has `MADV_GUARD_INSTALL` |
//!
//! Each accepts, in any ASCII case, `1`, `on`, `true` or `yes` to turn it
//! on and `0`, `off`, `false` or `no` to turn it off. Any other value,
//! the empty one included, prints one `slitter: warning:` line to stderr
//! and leaves the switch at its default. When a variable appears twice in
//! the environment, the first one counts (as for `getenv`).
//!
//! The environment is found by scanning `environ` directly (or the `envp`
//! that the C library passes to slitter's constructor, see
//! `process/hooks.rs`): `getenv` may not be usable when the first malloc
//! arrives, and nothing here may allocate.
//!
//! Invariants: the configuration is settled once, by the first read that
//! finds an environment (at the latest by slitter's constructor, before
//! `main` or as the library is loaded), and never changes afterwards;
//! before that (a NULL `environ`, which a malloc made by the dynamic loader
//! before the C library is initialised would see) readers get the defaults
//! without settling anything, except [`settle_now`], which malloc's
//! initialisation calls because it fixes the hardening for good: it reads
//! the environment the process started with from `/proc/self/environ`,
//! and settles the defaults if even that fails (a switch found later is
//! then reported as ignored, so that what slitter prints is what it does);
//! the warnings are printed once, by the thread that settled.

use core::ffi::{c_char, CStr};
use core::fmt;
use core::sync::atomic::{AtomicU8, Ordering};

/// One switch: its variable and its bit in [`Config`].
struct Switch {
    name: &'static str,
    bit: u8,
}

const STATS: Switch = Switch {
    name: "SLITTER_STATS",
    bit: 1,
};
const VERBOSE: Switch = Switch {
    name: "SLITTER_VERBOSE",
    bit: 2,
};
const HARDEN: Switch = Switch {
    name: "SLITTER_HARDEN",
    bit: 4,
};
const CONTINUE_ON_MISUSE: Switch = Switch {
    name: "SLITTER_CONTINUE_ON_MISUSE",
    bit: 8,
};
const MPROTECT_GUARDS: Switch = Switch {
    name: "SLITTER_MPROTECT_GUARDS",
    bit: 16,
};
const SWITCHES: [Switch; 5] = [STATS, VERBOSE, HARDEN, CONTINUE_ON_MISUSE, MPROTECT_GUARDS];

/// slitter's configuration: which of its environment switches are on.
///
/// ```
/// let config = slitter::configuration();
/// let shown = config.to_string();
/// assert!(shown.starts_with("SLITTER_STATS="));
/// assert_eq!(shown.contains("SLITTER_HARDEN=1"), config.harden());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config(u8);

impl Config {
    fn is_on(self, switch: &Switch) -> bool {
        self.0 & switch.bit != 0
    }

    /// Whether `SLITTER_STATS` is on.
    pub fn stats(self) -> bool {
        self.is_on(&STATS)
    }

    /// Whether `SLITTER_VERBOSE` is on.
    pub fn verbose(self) -> bool {
        self.is_on(&VERBOSE)
    }

    /// Whether `SLITTER_HARDEN` is on.
    pub fn harden(self) -> bool {
        self.is_on(&HARDEN)
    }

    /// Whether `SLITTER_CONTINUE_ON_MISUSE` is on.
    pub fn continue_on_misuse(self) -> bool {
        self.is_on(&CONTINUE_ON_MISUSE)
    }

    /// Whether `SLITTER_MPROTECT_GUARDS` is on.
    pub fn mprotect_guards(self) -> bool {
        self.is_on(&MPROTECT_GUARDS)
    }

    /// Whether large blocks get their guard pages from
    /// `MADV_GUARD_INSTALL`: the kernel has it (asked once) and
    /// `SLITTER_MPROTECT_GUARDS` is off.
    pub fn guard_install(self) -> bool {
        !self.mprotect_guards() && crate::sys::os_memory::kernel_has_guard_install()
    }
}

/// Writes `SLITTER_STATS=0 SLITTER_VERBOSE=1 ...`.
impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, switch) in SWITCHES.iter().enumerate() {
            let separator = if index == 0 { "" } else { " " };
            write!(
                f,
                "{separator}{}={}",
                switch.name,
                u8::from(self.is_on(switch))
            )?;
        }
        Ok(())
    }
}

/// `STATE` bit: the configuration is settled (the other bits are it).
const SETTLED: u8 = 0x80;
static STATE: AtomicU8 = AtomicU8::new(0);

/// slitter's configuration, read from the environment variables
/// `SLITTER_STATS`, `SLITTER_VERBOSE`, `SLITTER_HARDEN`,
/// `SLITTER_CONTINUE_ON_MISUSE` and `SLITTER_MPROTECT_GUARDS` (values `1`,
/// `on`, `true`, `yes` or `0`, `off`, `false`, `no`, in any case; all
/// default to off). It is read once, before `main` at the latest, and
/// never changes afterwards.
pub fn current() -> Config {
    // SAFETY: reads the C library's `environ` pointer (a plain load; a
    // concurrent `setenv` would race just as it races with `getenv`),
    // which is NULL or a valid environment.
    unsafe {
        let environ = (&raw const libc::environ).read();
        settle_from(environ.cast_const().cast())
    }
}

/// Settles the configuration from `envp` unless it is settled already,
/// and returns it.
///
/// # Safety
/// `envp` is NULL or a NULL-terminated array of NUL-terminated strings.
pub unsafe fn settle_from(envp: *const *const c_char) -> Config {
    let state = STATE.load(Ordering::Acquire);
    if state & SETTLED != 0 {
        return Config(state & !(SETTLED | DEFAULTED));
    }
    settle(envp)
}

/// [`settle_from`] for slitter's constructor, which also reports the
/// switches of `envp` that came too late (see [`settle_now`]).
///
/// # Safety
/// As for [`settle_from`].
pub unsafe fn settle_at_start(envp: *const *const c_char) -> Config {
    if STATE.load(Ordering::Acquire) & DEFAULTED != 0 {
        return settle(envp);
    }
    // SAFETY: guaranteed by the caller.
    unsafe { settle_from(envp) }
}

fn settle(envp: *const *const c_char) -> Config {
    if envp.is_null() {
        return Config::default();
    }
    // SAFETY: a non-null `environ` or `envp` is such an array.
    let parsed = unsafe { parse_environment(envp) };
    settle_parsed(&parsed)
}

/// Settles the configuration to `parsed` unless it is settled already
/// (then reports the switches `parsed` would have turned on and the
/// settled one has off as ignored), and returns it.
fn settle_parsed(parsed: &Parsed<'_>) -> Config {
    match STATE.compare_exchange(
        0,
        parsed.config.0 | SETTLED,
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        Ok(_) => {
            parsed.warn();
            parsed.config
        }
        Err(state) => {
            let settled = Config(state & !(SETTLED | DEFAULTED));
            if state & DEFAULTED != 0 {
                for switch in SWITCHES.iter() {
                    if parsed.config.is_on(switch) && !settled.is_on(switch) {
                        crate::sys::fatal::report(format_args!(
                            "warning: {} is ignored: malloc started before the \
                             environment could be read",
                            switch.name
                        ));
                    }
                }
            }
            settled
        }
    }
}

/// `STATE` bit: the configuration was settled to the defaults by
/// [`settle_now`], without an environment.
const DEFAULTED: u8 = 0x40;

/// The configuration, settled now for good: from `environ`, else from the
/// environment the process started with (`/proc/self/environ`), else the
/// defaults. Called where a switch takes effect for good (malloc's
/// initialisation), so that the configuration reported is what is done.
pub fn settle_now() -> Config {
    let config = current();
    if STATE.load(Ordering::Acquire) & SETTLED != 0 {
        return config;
    }
    let mut values = ProcValues::default();
    if values.read_proc_environ() {
        return settle_parsed(&parse_values(values.slices()));
    }
    match STATE.compare_exchange(0, SETTLED | DEFAULTED, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => Config::default(),
        Err(state) => Config(state & !(SETTLED | DEFAULTED)),
    }
}

/// The bytes of a switch's value kept from `/proc/self/environ`: enough
/// for every valid value, and a longer one stays invalid.
const VALUE_CAPACITY: usize = 16;

/// The switches' values as read from `/proc/self/environ`, without
/// allocating.
#[derive(Default)]
struct ProcValues {
    values: [Option<([u8; VALUE_CAPACITY], usize)>; SWITCHES.len()],
}

impl ProcValues {
    fn slices(&self) -> [Option<&[u8]>; SWITCHES.len()] {
        core::array::from_fn(|i| self.values[i].as_ref().map(|(bytes, len)| &bytes[..*len]))
    }

    /// Scans `/proc/self/environ` (NUL-separated `NAME=value` entries);
    /// `false` if it cannot be read.
    fn read_proc_environ(&mut self) -> bool {
        // SAFETY: opens a NUL-terminated path read-only.
        let fd = unsafe {
            libc::open(
                c"/proc/self/environ".as_ptr(),
                libc::O_RDONLY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return false;
        }
        // The start of the current entry: long enough for every name and a
        // value of VALUE_CAPACITY bytes (a longer one is cut, hence
        // invalid, as it would be whole).
        let mut entry = [0u8; 32 + VALUE_CAPACITY];
        let mut len = 0;
        let mut buffer = [0u8; 4096];
        let complete = loop {
            // SAFETY: reads into a stack buffer of that size.
            let got = unsafe { libc::read(fd, buffer.as_mut_ptr().cast(), buffer.len()) };
            if got < 0 {
                break false;
            }
            if got == 0 {
                break true;
            }
            for &byte in &buffer[..got as usize] {
                if byte == 0 {
                    self.take(&entry[..len]);
                    len = 0;
                } else if len < entry.len() {
                    entry[len] = byte;
                    len += 1;
                }
            }
        };
        // SAFETY: our own descriptor.
        unsafe { libc::close(fd) };
        complete
    }

    /// Keeps the value of `entry` if it sets a switch not seen yet.
    fn take(&mut self, entry: &[u8]) {
        for (switch, value) in SWITCHES.iter().zip(&mut self.values) {
            if value.is_some() {
                continue;
            }
            if let Some(found) = entry
                .strip_prefix(switch.name.as_bytes())
                .and_then(|rest| rest.strip_prefix(b"="))
            {
                let mut bytes = [0u8; VALUE_CAPACITY];
                let len = found.len().min(VALUE_CAPACITY);
                bytes[..len].copy_from_slice(&found[..len]);
                *value = Some((bytes, len));
            }
        }
    }
}

/// Prints the line `SLITTER_VERBOSE` asks for: the version, the process
/// and `config`.
pub fn print_effective(config: Config) {
    crate::sys::fatal::report(format_args!(
        "version {}, pid {}: {config}; large-block guards: {}",
        env!("CARGO_PKG_VERSION"),
        // SAFETY: getpid has no preconditions.
        unsafe { libc::getpid() },
        if config.guard_install() {
            "MADV_GUARD_INSTALL"
        } else {
            "mprotect"
        }
    ));
}

/// The value of a switch: `Some(on)`, or `None` if it is not valid.
fn parse_switch(value: &[u8]) -> Option<bool> {
    let is_any = |words: [&[u8]; 4]| words.iter().any(|word| value.eq_ignore_ascii_case(word));
    if is_any([b"1", b"on", b"true", b"yes"]) {
        Some(true)
    } else if is_any([b"0", b"off", b"false", b"no"]) {
        Some(false)
    } else {
        None
    }
}

/// A configuration read from an environment, with the invalid values seen.
struct Parsed<'a> {
    config: Config,
    invalid: [Option<&'a [u8]>; SWITCHES.len()],
}

impl Parsed<'_> {
    /// Prints one warning per invalid value.
    fn warn(&self) {
        for (switch, value) in SWITCHES.iter().zip(self.invalid) {
            if let Some(value) = value {
                crate::sys::fatal::report(format_args!(
                    "warning: {}=\"{}\" is not 1, on, true, yes, 0, off, false or no; \
                     {} stays off",
                    switch.name,
                    Escaped(value),
                    switch.name
                ));
            }
        }
    }
}

/// Reads the switches from their values (`None`: the variable is unset).
fn parse_values(values: [Option<&[u8]>; SWITCHES.len()]) -> Parsed<'_> {
    let mut parsed = Parsed {
        config: Config::default(),
        invalid: [None; SWITCHES.len()],
    };
    for ((switch, value), invalid) in SWITCHES.iter().zip(values).zip(&mut parsed.invalid) {
        match value.map(parse_switch) {
            Some(Some(true)) => parsed.config.0 |= switch.bit,
            Some(None) => *invalid = value,
            Some(Some(false)) | None => {}
        }
    }
    parsed
}

/// Reads the switches from `envp`.
///
/// # Safety
/// `envp` is a NULL-terminated array of NUL-terminated strings that stay
/// valid and unchanged for `'a`.
unsafe fn parse_environment<'a>(mut envp: *const *const c_char) -> Parsed<'a> {
    let mut values = [None; SWITCHES.len()];
    // SAFETY: guaranteed by the caller: every entry up to the NULL one is
    // a valid string.
    unsafe {
        while !(*envp).is_null() {
            let entry: &'a [u8] = CStr::from_ptr(*envp).to_bytes();
            if entry.starts_with(b"SLITTER_") {
                for (switch, value) in SWITCHES.iter().zip(&mut values) {
                    if value.is_none() {
                        *value = entry
                            .strip_prefix(switch.name.as_bytes())
                            .and_then(|rest| rest.strip_prefix(b"="));
                    }
                }
            }
            envp = envp.add(1);
        }
    }
    parse_values(values)
}

/// Displays bytes as they are when printable ASCII, else as `\xNN`.
struct Escaped<'a>(&'a [u8]);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &byte in self.0 {
            if byte.is_ascii_graphic() || byte == b' ' {
                write!(f, "{}", byte as char)?;
            } else {
                write!(f, "\\x{byte:02x}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;

    #[test]
    fn switch_values_are_documented_words_in_any_case() {
        for on in ["1", "on", "ON", "true", "True", "yes", "YES"] {
            assert_eq!(parse_switch(on.as_bytes()), Some(true), "{on}");
        }
        for off in ["0", "off", "Off", "false", "FALSE", "no", "No"] {
            assert_eq!(parse_switch(off.as_bytes()), Some(false), "{off}");
        }
        for bad in ["", " 1", "1 ", "2", "01", "enable", "y", "n", "truee"] {
            assert_eq!(parse_switch(bad.as_bytes()), None, "{bad:?}");
        }
    }

    #[test]
    fn invalid_values_keep_the_default_and_are_reported() {
        let parsed = parse_values([Some(b"1"), Some(b"maybe"), None, Some(b"on"), None]);
        assert!(parsed.config.stats());
        assert!(!parsed.config.verbose());
        assert!(!parsed.config.harden());
        assert!(parsed.config.continue_on_misuse());
        assert!(!parsed.config.mprotect_guards());
        assert_eq!(
            parsed.invalid,
            [None, Some(&b"maybe"[..]), None, None, None]
        );
        let parsed = parse_values([
            Some(b"off"),
            Some(b"yes"),
            Some(b""),
            Some(b"x"),
            Some(b"1"),
        ]);
        assert_eq!(parsed.config, Config(VERBOSE.bit | MPROTECT_GUARDS.bit));
        assert!(parsed.config.mprotect_guards() && !parsed.config.guard_install());
        assert_eq!(
            parsed.invalid,
            [None, None, Some(&b""[..]), Some(&b"x"[..]), None]
        );
    }

    /// A NULL-terminated `envp` over `entries`.
    fn with_envp<R>(entries: &[&str], f: impl FnOnce(*const *const c_char) -> R) -> R {
        let strings: Vec<CString> = entries.iter().map(|e| CString::new(*e).unwrap()).collect();
        let mut pointers: Vec<*const c_char> = strings.iter().map(|s| s.as_ptr()).collect();
        pointers.push(core::ptr::null());
        f(pointers.as_ptr())
    }

    #[test]
    fn the_environment_is_scanned_for_exact_names_first_one_wins() {
        let config = with_envp(
            &[
                "PATH=/bin",
                "SLITTER_STATSX=0",
                "XSLITTER_VERBOSE=1",
                "SLITTER_HARDEN=on",
                "SLITTER_STATS=true",
                "SLITTER_STATS=0",
                "SLITTER_VERBOSE",
            ],
            // SAFETY: a valid envp, alive during the call.
            |envp| unsafe { parse_environment(envp) }.config,
        );
        assert!(config.stats());
        assert!(config.harden());
        assert!(!config.verbose());
    }

    #[test]
    fn without_an_environment_the_defaults_apply() {
        assert_eq!(settle(core::ptr::null()), Config::default());
    }

    #[test]
    fn the_configuration_displays_every_switch() {
        let config = Config(STATS.bit | HARDEN.bit);
        assert_eq!(
            config.to_string(),
            "SLITTER_STATS=1 SLITTER_VERBOSE=0 SLITTER_HARDEN=1 SLITTER_CONTINUE_ON_MISUSE=0 \
             SLITTER_MPROTECT_GUARDS=0"
        );
        assert_eq!(Escaped(b"a\x01 \xff").to_string(), "a\\x01 \\xff");
    }
}
