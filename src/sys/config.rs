//! Configuration from environment variables, read without allocating.
//!
//! Owns: the switches and the setting below, their parsing, their
//! warnings, and the line that `SLITTER_VERBOSE` prints at start-up.
//!
//! | variable | default | what it does |
//! |---|---|---|
//! | `SLITTER_STATS` | off | print the statistics table to stderr at exit |
//! | `SLITTER_VERBOSE` | off | print the version and this configuration to stderr at start-up |
//! | `SLITTER_HARDEN` | off | opt-in hardening of the malloc API |
//! | `SLITTER_CONTINUE_ON_MISUSE` | off | report a misuse that can be survived (a bad release or free) and carry on, leaving the pointer alone, instead of aborting |
//! | `SLITTER_MPROTECT_GUARDS` | off | give large blocks guard pages with `mprotect` (blocks under 1 MiB in guarded groups) even where the kernel has `MADV_GUARD_INSTALL` |
//! | `SLITTER_PURGE_DELAY` | 100 | how long, in milliseconds, a wholly free span of small objects waits before its memory is purged (given back to the kernel with `MADV_DONTNEED`) |
//!
//! Each switch (all but `SLITTER_PURGE_DELAY`) accepts, in any ASCII case,
//! `1`, `on`, `true` or `yes` to turn it on and `0`, `off`, `false` or
//! `no` to turn it off. `SLITTER_PURGE_DELAY` accepts a decimal number of
//! milliseconds from 0 (purge at once) to 3600000, of at most 16 digits,
//! or `off` or `never` in any ASCII case (never purge; `malloc_trim`
//! still does). Any other value, the empty one included, prints one
//! `slitter: warning:` line to stderr and leaves the variable at its
//! default. When a variable appears twice in the
//! environment, the first one counts (as for `getenv`).
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
//! and settles the defaults if even that fails (a switch turned on, or a
//! purge delay other than the default, found later is then reported as
//! ignored, so that what slitter prints is what it does); the warnings are
//! printed once, by the thread that settled. The whole configuration,
//! switches and purge delay, is one word of `STATE`, settled by a single
//! compare-and-swap, so a reader never sees half of it.

use core::ffi::{c_char, CStr};
use core::fmt;
use core::sync::atomic::{AtomicU32, Ordering};

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

/// The variable of the purge delay (see [`Config::purge_delay_ms`]).
const PURGE_DELAY: &str = "SLITTER_PURGE_DELAY";
/// The purge delay when `SLITTER_PURGE_DELAY` is unset or invalid.
const DEFAULT_PURGE_DELAY_MS: u32 = 100;
/// The longest purge delay that can be set.
const MAX_PURGE_DELAY_MS: u32 = 3_600_000;
/// `Config::purge_delay`: never purge.
const NEVER: u32 = u32::MAX;

/// How many variables are read: the switches, then [`PURGE_DELAY`].
const VARIABLES: usize = SWITCHES.len() + 1;
/// The index of [`PURGE_DELAY`] in [`NAMES`] and in arrays of values.
const PURGE_DELAY_INDEX: usize = SWITCHES.len();
/// The names of the variables read, in the order of arrays of values.
const NAMES: [&str; VARIABLES] = {
    let mut names = [PURGE_DELAY; VARIABLES];
    let mut index = 0;
    while index < SWITCHES.len() {
        names[index] = SWITCHES[index].name;
        index += 1;
    }
    names
};

/// slitter's configuration: which of its environment switches are on,
/// and its purge delay.
///
/// ```
/// let config = slitter::configuration();
/// let shown = config.to_string();
/// assert!(shown.starts_with("SLITTER_STATS="));
/// assert_eq!(shown.contains("SLITTER_HARDEN=1"), config.harden());
/// assert!(shown.contains(" SLITTER_PURGE_DELAY="));
/// assert_eq!(slitter::Config::default().purge_delay_ms(), Some(100));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// The bits of the switches that are on.
    switches: u8,
    /// The purge delay in milliseconds, at most [`MAX_PURGE_DELAY_MS`],
    /// or [`NEVER`].
    purge_delay: u32,
}

/// Every switch off, and a purge delay of 100 milliseconds.
impl Default for Config {
    fn default() -> Self {
        Config {
            switches: 0,
            purge_delay: DEFAULT_PURGE_DELAY_MS,
        }
    }
}

impl Config {
    fn is_on(self, switch: &Switch) -> bool {
        self.switches & switch.bit != 0
    }

    /// This configuration as `STATE` holds it (without its two flags).
    fn to_state(self) -> u32 {
        let delay = if self.purge_delay == NEVER {
            STATE_DELAY_NEVER
        } else {
            self.purge_delay
        };
        u32::from(self.switches) | delay << STATE_DELAY_SHIFT
    }

    /// The configuration that `state` holds (its two flags ignored).
    fn from_state(state: u32) -> Config {
        let delay = state >> STATE_DELAY_SHIFT;
        Config {
            switches: (state & STATE_SWITCHES) as u8,
            purge_delay: if delay == STATE_DELAY_NEVER {
                NEVER
            } else {
                delay
            },
        }
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

    /// How long, in milliseconds, a wholly free span of small objects
    /// waits before its memory is purged (given back to the kernel with
    /// `MADV_DONTNEED`), from `SLITTER_PURGE_DELAY` (default 100, at most
    /// 3600000; 0: at once); `None` if it is never purged (`off` or
    /// `never`; `malloc_trim` still purges it).
    ///
    /// ```
    /// let delay = slitter::configuration().purge_delay_ms();
    /// assert!(delay.map_or(true, |ms| ms <= 3_600_000));
    /// ```
    pub fn purge_delay_ms(self) -> Option<u32> {
        (self.purge_delay != NEVER).then_some(self.purge_delay)
    }
}

/// Writes `SLITTER_STATS=0 SLITTER_VERBOSE=1 ... SLITTER_PURGE_DELAY=100`
/// (`SLITTER_PURGE_DELAY=off` when spans are never purged).
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
        match self.purge_delay_ms() {
            Some(ms) => write!(f, " {PURGE_DELAY}={ms}"),
            None => write!(f, " {PURGE_DELAY}=off"),
        }
    }
}

/// The settled configuration: 0 until it is settled, then [`SETTLED`]
/// (and maybe [`DEFAULTED`]) with [`Config::to_state`]: the switches'
/// bits in [`STATE_SWITCHES`], the purge delay (or
/// [`STATE_DELAY_NEVER`]) from bit [`STATE_DELAY_SHIFT`] up.
static STATE: AtomicU32 = AtomicU32::new(0);
/// `STATE` bit: the configuration is settled (the other bits are it).
const SETTLED: u32 = 0x80;
/// `STATE` bits of the switches.
const STATE_SWITCHES: u32 = 0x3f;
/// Where the purge delay starts in `STATE`.
const STATE_DELAY_SHIFT: u32 = 8;
/// The purge delay in `STATE` when spans are never purged.
const STATE_DELAY_NEVER: u32 = u32::MAX >> STATE_DELAY_SHIFT;

const _: () = {
    // Every switch's bit, and every purge delay, fits beside the flags.
    let mut index = 0;
    while index < SWITCHES.len() {
        assert!(SWITCHES[index].bit as u32 & !STATE_SWITCHES == 0);
        index += 1;
    }
    assert!(STATE_SWITCHES & (SETTLED | DEFAULTED) == 0);
    assert!((SETTLED | DEFAULTED) >> STATE_DELAY_SHIFT == 0);
    assert!(MAX_PURGE_DELAY_MS < STATE_DELAY_NEVER);
};

/// slitter's configuration, read from the environment variables
/// `SLITTER_STATS`, `SLITTER_VERBOSE`, `SLITTER_HARDEN`,
/// `SLITTER_CONTINUE_ON_MISUSE` and `SLITTER_MPROTECT_GUARDS` (values `1`,
/// `on`, `true`, `yes` or `0`, `off`, `false`, `no`, in any case; all
/// default to off) and `SLITTER_PURGE_DELAY` (milliseconds from 0 to
/// 3600000, or `off` or `never`; default 100). It is read once, before
/// `main` at the latest, and never changes afterwards.
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
        return Config::from_state(state);
    }
    settle(envp)
}

/// [`settle_from`] for slitter's constructor, which also reports the
/// switches and purge delay of `envp` that came too late (see
/// [`settle_now`]).
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
/// (then, if it was settled to the defaults without an environment,
/// reports what `parsed` would have changed as ignored), and returns it.
fn settle_parsed(parsed: &Parsed<'_>) -> Config {
    match STATE.compare_exchange(
        0,
        parsed.config.to_state() | SETTLED,
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        Ok(_) => {
            parsed.warn();
            parsed.config
        }
        Err(state) => {
            let settled = Config::from_state(state);
            if state & DEFAULTED != 0 {
                for name in ignored(parsed.config, settled).into_iter().flatten() {
                    crate::sys::fatal::report(format_args!(
                        "warning: {name} is ignored: malloc started before the \
                         environment could be read"
                    ));
                }
            }
            settled
        }
    }
}

/// The variables of `parsed` that `settled` does not follow: the switches
/// `parsed` turns on and `settled` has off, and the purge delay if they
/// differ.
fn ignored(parsed: Config, settled: Config) -> [Option<&'static str>; VARIABLES] {
    let mut names = [None; VARIABLES];
    for (switch, name) in SWITCHES.iter().zip(&mut names) {
        if parsed.is_on(switch) && !settled.is_on(switch) {
            *name = Some(switch.name);
        }
    }
    if parsed.purge_delay != settled.purge_delay {
        names[PURGE_DELAY_INDEX] = Some(PURGE_DELAY);
    }
    names
}

/// `STATE` bit: the configuration was settled to the defaults by
/// [`settle_now`], without an environment.
const DEFAULTED: u32 = 0x40;

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
    let defaults = Config::default();
    match STATE.compare_exchange(
        0,
        defaults.to_state() | SETTLED | DEFAULTED,
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        Ok(_) => defaults,
        Err(state) => Config::from_state(state),
    }
}

/// The longest valid value of a variable, in bytes.
const VALUE_CAPACITY: usize = 16;
/// The bytes of a variable's value kept from `/proc/self/environ`: one
/// more than the longest valid value, so that a longer one, cut, stays
/// invalid.
const VALUE_KEPT: usize = VALUE_CAPACITY + 1;

/// The variables' values as read from `/proc/self/environ`, without
/// allocating.
#[derive(Default)]
struct ProcValues {
    values: [Option<([u8; VALUE_KEPT], usize)>; VARIABLES],
}

impl ProcValues {
    fn slices(&self) -> [Option<&[u8]>; VARIABLES] {
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
        // The start of the current entry: long enough for every name (at
        // most 31 bytes and `=`) and a value of VALUE_KEPT bytes (a longer
        // one is cut, hence invalid, as it would be whole).
        let mut entry = [0u8; 32 + VALUE_KEPT];
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

    /// Keeps the value of `entry` if it sets a variable not seen yet.
    fn take(&mut self, entry: &[u8]) {
        for (name, value) in NAMES.iter().zip(&mut self.values) {
            if value.is_some() {
                continue;
            }
            if let Some(found) = entry
                .strip_prefix(name.as_bytes())
                .and_then(|rest| rest.strip_prefix(b"="))
            {
                let mut bytes = [0u8; VALUE_KEPT];
                let len = found.len().min(VALUE_KEPT);
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

/// The value of `SLITTER_PURGE_DELAY`: `Some(milliseconds)` or
/// `Some(NEVER)`, or `None` if it is not valid (more than
/// [`VALUE_CAPACITY`] bytes included, whatever they are).
fn parse_purge_delay(value: &[u8]) -> Option<u32> {
    if value.eq_ignore_ascii_case(b"off") || value.eq_ignore_ascii_case(b"never") {
        return Some(NEVER);
    }
    if value.is_empty() || value.len() > VALUE_CAPACITY {
        return None;
    }
    let mut ms: u64 = 0;
    for &byte in value {
        if !byte.is_ascii_digit() {
            return None;
        }
        // At most 16 digits: no overflow.
        ms = ms * 10 + u64::from(byte - b'0');
    }
    u32::try_from(ms)
        .ok()
        .filter(|&ms| ms <= MAX_PURGE_DELAY_MS)
}

/// A configuration read from an environment, with the invalid values seen
/// (in the order of [`NAMES`]).
struct Parsed<'a> {
    config: Config,
    invalid: [Option<&'a [u8]>; VARIABLES],
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
        if let Some(value) = self.invalid[PURGE_DELAY_INDEX] {
            crate::sys::fatal::report(format_args!(
                "warning: {PURGE_DELAY}=\"{}\" is not a number of milliseconds \
                 (0 to {MAX_PURGE_DELAY_MS}) or off; it stays {DEFAULT_PURGE_DELAY_MS}",
                Escaped(value)
            ));
        }
    }
}

/// Reads the configuration from the variables' values, in the order of
/// [`NAMES`] (`None`: the variable is unset).
fn parse_values(values: [Option<&[u8]>; VARIABLES]) -> Parsed<'_> {
    let mut parsed = Parsed {
        config: Config::default(),
        invalid: [None; VARIABLES],
    };
    for ((switch, value), invalid) in SWITCHES.iter().zip(values).zip(&mut parsed.invalid) {
        match value.map(parse_switch) {
            Some(Some(true)) => parsed.config.switches |= switch.bit,
            Some(None) => *invalid = value,
            Some(Some(false)) | None => {}
        }
    }
    let value = values[PURGE_DELAY_INDEX];
    match value.map(parse_purge_delay) {
        Some(Some(delay)) => parsed.config.purge_delay = delay,
        Some(None) => parsed.invalid[PURGE_DELAY_INDEX] = value,
        None => {}
    }
    parsed
}

/// Reads the configuration from `envp`.
///
/// # Safety
/// `envp` is a NULL-terminated array of NUL-terminated strings that stay
/// valid and unchanged for `'a`.
unsafe fn parse_environment<'a>(mut envp: *const *const c_char) -> Parsed<'a> {
    let mut values = [None; VARIABLES];
    // SAFETY: guaranteed by the caller: every entry up to the NULL one is
    // a valid string.
    unsafe {
        while !(*envp).is_null() {
            let entry: &'a [u8] = CStr::from_ptr(*envp).to_bytes();
            if entry.starts_with(b"SLITTER_") {
                for (name, value) in NAMES.iter().zip(&mut values) {
                    if value.is_none() {
                        *value = entry
                            .strip_prefix(name.as_bytes())
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
        let parsed = parse_values([Some(b"1"), Some(b"maybe"), None, Some(b"on"), None, None]);
        assert!(parsed.config.stats());
        assert!(!parsed.config.verbose());
        assert!(!parsed.config.harden());
        assert!(parsed.config.continue_on_misuse());
        assert!(!parsed.config.mprotect_guards());
        assert_eq!(parsed.config.purge_delay_ms(), Some(100));
        assert_eq!(
            parsed.invalid,
            [None, Some(&b"maybe"[..]), None, None, None, None]
        );
        let parsed = parse_values([
            Some(b"off"),
            Some(b"yes"),
            Some(b""),
            Some(b"x"),
            Some(b"1"),
            Some(b"250"),
        ]);
        assert_eq!(
            parsed.config,
            Config {
                switches: VERBOSE.bit | MPROTECT_GUARDS.bit,
                purge_delay: 250,
            }
        );
        assert!(parsed.config.mprotect_guards() && !parsed.config.guard_install());
        assert_eq!(
            parsed.invalid,
            [None, None, Some(&b""[..]), Some(&b"x"[..]), None, None]
        );
    }

    /// The values of `SLITTER_PURGE_DELAY` alone, the switches unset.
    fn parse_delay(value: &[u8]) -> Parsed<'_> {
        let mut values = [None; VARIABLES];
        values[PURGE_DELAY_INDEX] = Some(value);
        parse_values(values)
    }

    #[test]
    fn purge_delays_are_milliseconds_up_to_an_hour_or_off() {
        for (value, delay) in [
            ("0", Some(0)),
            ("1", Some(1)),
            ("100", Some(100)),
            ("0100", Some(100)),
            ("0000000000000100", Some(100)),
            ("3600000", Some(3_600_000)),
            ("off", None),
            ("OFF", None),
            ("Off", None),
            ("never", None),
            ("NEVER", None),
        ] {
            let parsed = parse_delay(value.as_bytes());
            assert_eq!(parsed.config.purge_delay_ms(), delay, "{value:?}");
            assert_eq!(parsed.config.switches, 0, "{value:?}");
            assert_eq!(parsed.invalid, [None; VARIABLES], "{value:?}");
        }
    }

    #[test]
    fn invalid_purge_delays_keep_the_default_and_are_reported() {
        for bad in [
            "",
            " ",
            "-1",
            "+1",
            "1 ",
            " 1",
            "1.5",
            "10ms",
            "abc",
            "3600001",
            "4294967295",
            "4294967296",
            "99999999999999999999",
            "00000000000000100",
            "no",
            "0x10",
            "offf",
            "nevermore",
        ] {
            let parsed = parse_delay(bad.as_bytes());
            assert_eq!(parsed.config, Config::default(), "{bad:?}");
            let mut invalid = [None; VARIABLES];
            invalid[PURGE_DELAY_INDEX] = Some(bad.as_bytes());
            assert_eq!(parsed.invalid, invalid, "{bad:?}");
        }
    }

    #[test]
    fn every_name_and_value_fits_the_proc_environ_entry() {
        assert_eq!(NAMES[..SWITCHES.len()], SWITCHES.map(|s| s.name));
        assert_eq!(NAMES[PURGE_DELAY_INDEX], "SLITTER_PURGE_DELAY");
        assert!(NAMES.iter().all(|name| name.len() < 32));
        // A longer value is cut to VALUE_KEPT bytes, which stays invalid.
        let mut values = ProcValues::default();
        values.take(b"SLITTER_PURGE_DELAY=000000000000000000100");
        values.take(b"SLITTER_PURGE_DELAY=5");
        let slices = values.slices();
        assert_eq!(slices[PURGE_DELAY_INDEX].map(<[u8]>::len), Some(VALUE_KEPT));
        let parsed = parse_values(slices);
        assert_eq!(parsed.config, Config::default());
        assert!(parsed.invalid[PURGE_DELAY_INDEX].is_some());
    }

    #[test]
    fn the_proc_environ_values_first_one_wins() {
        let mut values = ProcValues::default();
        for entry in [
            &b"SLITTER_PURGE_DELAYX=7"[..],
            b"SLITTER_PURGE_DELAY=off",
            b"SLITTER_PURGE_DELAY=5",
            b"SLITTER_STATS=1",
        ] {
            values.take(entry);
        }
        let parsed = parse_values(values.slices());
        assert_eq!(parsed.config.purge_delay_ms(), None);
        assert!(parsed.config.stats());
    }

    #[test]
    fn the_state_holds_every_configuration() {
        for purge_delay in [0, 1, 100, MAX_PURGE_DELAY_MS, NEVER] {
            for switches in [0, STATS.bit, HARDEN.bit | MPROTECT_GUARDS.bit, 0x1f] {
                let config = Config {
                    switches,
                    purge_delay,
                };
                let state = config.to_state();
                assert_eq!(state & (SETTLED | DEFAULTED), 0);
                assert_eq!(Config::from_state(state | SETTLED), config);
                assert_eq!(Config::from_state(state | SETTLED | DEFAULTED), config);
            }
        }
        assert_ne!(Config::default().to_state() | SETTLED, 0);
    }

    #[test]
    fn late_switches_and_delays_are_reported_as_ignored() {
        let settled = Config::default();
        assert_eq!(ignored(settled, settled), [None; VARIABLES]);
        let parsed = Config {
            switches: STATS.bit | HARDEN.bit,
            purge_delay: NEVER,
        };
        assert_eq!(
            ignored(parsed, settled),
            [
                Some("SLITTER_STATS"),
                None,
                Some("SLITTER_HARDEN"),
                None,
                None,
                Some("SLITTER_PURGE_DELAY"),
            ]
        );
        let parsed = Config {
            switches: 0,
            purge_delay: 0,
        };
        let mut expected = [None; VARIABLES];
        expected[PURGE_DELAY_INDEX] = Some("SLITTER_PURGE_DELAY");
        assert_eq!(ignored(parsed, settled), expected);
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
                "SLITTER_PURGE_DELAYS=7",
                "SLITTER_PURGE_DELAY=2500",
                "SLITTER_PURGE_DELAY=off",
            ],
            // SAFETY: a valid envp, alive during the call.
            |envp| unsafe { parse_environment(envp) }.config,
        );
        assert!(config.stats());
        assert!(config.harden());
        assert!(!config.verbose());
        assert_eq!(config.purge_delay_ms(), Some(2500));

        // The first value counts even when it is invalid.
        let parsed = with_envp(
            &["SLITTER_PURGE_DELAY=abc", "SLITTER_PURGE_DELAY=0"],
            // SAFETY: a valid envp, alive during the call.
            |envp| {
                let parsed = unsafe { parse_environment(envp) };
                (parsed.config, parsed.invalid.map(|v| v.map(<[u8]>::to_vec)))
            },
        );
        assert_eq!(parsed.0, Config::default());
        assert_eq!(parsed.1[PURGE_DELAY_INDEX].as_deref(), Some(&b"abc"[..]));
    }

    #[test]
    fn without_the_variables_the_defaults_apply() {
        let config = with_envp(
            &["PATH=/bin", "HOME=/"],
            // SAFETY: a valid envp, alive during the call.
            |envp| unsafe { parse_environment(envp) }.config,
        );
        assert_eq!(config, Config::default());
        assert_eq!(config.purge_delay_ms(), Some(DEFAULT_PURGE_DELAY_MS));
        assert_eq!(parse_values([None; VARIABLES]).config, Config::default());
    }

    #[test]
    fn without_an_environment_the_defaults_apply() {
        assert_eq!(settle(core::ptr::null()), Config::default());
    }

    #[test]
    fn the_configuration_displays_every_switch() {
        let config = Config {
            switches: STATS.bit | HARDEN.bit,
            ..Config::default()
        };
        assert_eq!(
            config.to_string(),
            "SLITTER_STATS=1 SLITTER_VERBOSE=0 SLITTER_HARDEN=1 SLITTER_CONTINUE_ON_MISUSE=0 \
             SLITTER_MPROTECT_GUARDS=0 SLITTER_PURGE_DELAY=100"
        );
        let config = Config {
            switches: 0,
            purge_delay: NEVER,
        };
        assert!(config.to_string().ends_with(" SLITTER_PURGE_DELAY=off"));
        let config = Config {
            switches: 0,
            purge_delay: 0,
        };
        assert!(config.to_string().ends_with("=0 SLITTER_PURGE_DELAY=0"));
        assert_eq!(Escaped(b"a\x01 \xff").to_string(), "a\\x01 \\xff");
    }
}
