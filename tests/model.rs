//! Model-based tests of the Rust class API.
//!
//! Random sequences of operations (allocate from a class, release one of its
//! live objects, rewrite an object, verify everything) run against a model
//! of what the program owns. The checks:
//!
//! - no two live objects overlap, even across threads (one process-wide
//!   map of live address ranges);
//! - every live object still holds the pattern last written into it;
//! - objects of a `zero_init` class read as zeroes when handed out, also
//!   when they are reused;
//! - addresses are 16-aligned (sizes are rounded up to a multiple of 16);
//! - type stability: an address, once handed out by a class, only ever
//!   comes back from that same class, and never overlaps an object of
//!   another class;
//! - released addresses are reused;
//! - all of this in classes that purge (24, 48, 96 bytes) as in those that
//!   do not.
//!
//! Classes are immortal, so they are created once per process.

use std::collections::{BTreeMap, HashSet};
use std::ffi::c_void;
use std::ptr::NonNull;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};
use slitter::{Class, ClassConfig};

/// One class under test.
struct Spec {
    name: &'static str,
    size: usize,
    zero_init: bool,
    file: bool,
    class: Class,
}

const SPECS: &[(&str, usize, bool, bool)] = &[
    // (name, size, zero_init, file-backed)
    ("model-8", 8, false, false),
    ("model-13", 13, false, false),
    ("model-24", 24, false, false),
    ("model-32", 32, false, false),
    ("model-48-zero", 48, true, false),
    ("model-200", 200, false, false),
    ("model-4096", 4096, false, false),
    ("model-96-file", 96, false, true),
    ("model-40-file-zero", 40, true, true),
];

fn classes() -> &'static [Spec] {
    static CLASSES: OnceLock<Vec<Spec>> = OnceLock::new();
    CLASSES.get_or_init(|| {
        SPECS
            .iter()
            .map(|&(name, size, zero_init, file)| Spec {
                name,
                size,
                zero_init,
                file,
                class: Class::new(ClassConfig {
                    name: Some(name),
                    size,
                    zero_init,
                    mapper_name: file.then_some("file"),
                    // Purging classes (their spans' memory may go back to
                    // the kernel) keep every property above too.
                    purge: size % 3 == 0,
                })
                .unwrap_or_else(|e| panic!("cannot create class {name}: {e}")),
            })
            .collect()
    })
}

/// What every test in this process has seen, keyed by address.
#[derive(Default)]
struct Registry {
    /// Live objects: start -> (end, class index).
    live: BTreeMap<usize, (usize, usize)>,
    /// Every object ever handed out: start -> (end, class index).
    ever: BTreeMap<usize, (usize, usize)>,
    allocations: u64,
    /// Allocations that returned an address seen before.
    reuses: u64,
}

fn registry() -> MutexGuard<'static, Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY
        .get_or_init(Default::default)
        .lock()
        // A failed (panicking) case must not hide later failures.
        .unwrap_or_else(PoisonError::into_inner)
}

/// The range in `map` that overlaps `[start, end)`, if any.
fn overlapping(
    map: &BTreeMap<usize, (usize, usize)>,
    start: usize,
    end: usize,
) -> Option<(usize, usize, usize)> {
    // Ranges in `map` are disjoint, so only the last one starting below
    // `end` can overlap.
    let (&s, &(e, class)) = map.range(..end).next_back()?;
    (e > start).then_some((s, e, class))
}

fn record_allocation(addr: usize, class: usize) {
    let specs = classes();
    let end = addr + specs[class].size;
    let mut reg = registry();
    if let Some((s, e, c)) = overlapping(&reg.live, addr, end) {
        panic!(
            "{} handed out {addr:#x}..{end:#x}, overlapping live object {s:#x}..{e:#x} of {}",
            specs[class].name, specs[c].name
        );
    }
    reg.live.insert(addr, (end, class));
    reg.allocations += 1;
    match reg.ever.get(&addr) {
        Some(&(_, c)) => {
            assert_eq!(
                c, class,
                "type stability: {addr:#x} was handed out by {} and now by {}",
                specs[c].name, specs[class].name
            );
            reg.reuses += 1;
        }
        None => {
            if let Some((s, e, c)) = overlapping(&reg.ever, addr, end) {
                panic!(
                    "type stability: {} handed out {addr:#x}..{end:#x}, overlapping \
                     {s:#x}..{e:#x} once handed out by {}",
                    specs[class].name, specs[c].name
                );
            }
            reg.ever.insert(addr, (end, class));
        }
    }
}

/// Must run before the object goes back to slitter: once released, another
/// thread may get it at once.
fn record_release(addr: usize, class: usize) {
    let removed = registry().live.remove(&addr);
    assert_eq!(
        removed.map(|(_, c)| c),
        Some(class),
        "releasing {addr:#x}, which the registry does not hold as live"
    );
}

fn pattern_byte(addr: usize, seed: u64, index: usize) -> u8 {
    let x = ((addr as u64) ^ seed.rotate_left(17))
        .wrapping_add(index as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (x >> 56) as u8
}

/// The `size` bytes of the object at `addr`.
///
/// # Safety
/// `addr` must be a live object of at least `size` bytes owned by the caller.
unsafe fn bytes<'a>(addr: usize, size: usize) -> &'a mut [u8] {
    // SAFETY: per the contract above.
    unsafe { std::slice::from_raw_parts_mut(addr as *mut u8, size) }
}

fn fill(addr: usize, size: usize, seed: u64) {
    // SAFETY: only called on live objects this test owns.
    let object = unsafe { bytes(addr, size) };
    for (i, b) in object.iter_mut().enumerate() {
        *b = pattern_byte(addr, seed, i);
    }
}

fn verify(addr: usize, size: usize, seed: u64, name: &str) {
    // SAFETY: only called on live objects this test owns.
    let object = unsafe { bytes(addr, size) };
    for (i, &b) in object.iter().enumerate() {
        let expected = pattern_byte(addr, seed, i);
        assert_eq!(
            b, expected,
            "{name}: byte {i} of live object {addr:#x} is {b:#04x}, expected {expected:#04x}"
        );
    }
}

#[derive(Clone, Copy, Debug)]
struct Object {
    addr: usize,
    seed: u64,
}

#[derive(Clone, Debug)]
enum Op {
    /// Allocate `n` objects of a class.
    Alloc { class: usize, n: usize },
    /// Release `n` live objects of a class, starting at index `at`.
    Release { class: usize, at: usize, n: usize },
    /// Rewrite one live object of a class with a new pattern.
    Write { class: usize, at: usize, seed: u64 },
    /// Check every live object.
    Verify,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let n = SPECS.len();
    prop_oneof![
        5 => (0..n, 1..=48usize).prop_map(|(class, n)| Op::Alloc { class, n }),
        4 => (0..n, any::<usize>(), 1..=48usize)
            .prop_map(|(class, at, n)| Op::Release { class, at, n }),
        2 => (0..n, any::<usize>(), any::<u64>())
            .prop_map(|(class, at, seed)| Op::Write { class, at, seed }),
        1 => Just(Op::Verify),
    ]
}

fn ops_strategy() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op_strategy(), 1..100)
}

/// What one run of a case owns.
struct Model {
    live: Vec<Vec<Object>>,
    next_seed: u64,
}

impl Model {
    fn new() -> Self {
        Model {
            live: SPECS.iter().map(|_| Vec::new()).collect(),
            next_seed: 1,
        }
    }

    fn allocate(&mut self, class: usize) {
        let spec = &classes()[class];
        let object = spec
            .class
            .allocate()
            .unwrap_or_else(|| panic!("{}: out of memory", spec.name));
        let addr = object.as_ptr() as usize;
        assert_eq!(addr % 16, 0, "{}: {addr:#x} is not 16-aligned", spec.name);
        record_allocation(addr, class);
        if spec.zero_init {
            // SAFETY: we own this fresh object.
            let object = unsafe { bytes(addr, spec.size) };
            if let Some(i) = object.iter().position(|&b| b != 0) {
                panic!(
                    "{}: zero_init object {addr:#x} has byte {i} = {:#04x}",
                    spec.name, object[i]
                );
            }
        }
        let seed = self.next_seed;
        self.next_seed += 1;
        fill(addr, spec.size, seed);
        self.live[class].push(Object { addr, seed });
    }

    fn release(&mut self, class: usize, at: usize) {
        let spec = &classes()[class];
        let objects = &mut self.live[class];
        if objects.is_empty() {
            return;
        }
        let Object { addr, seed } = objects.swap_remove(at % objects.len());
        verify(addr, spec.size, seed, spec.name);
        record_release(addr, class);
        spec.class
            .release(NonNull::new(addr as *mut c_void).expect("non-null"));
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Alloc { class, n } => (0..n).for_each(|_| self.allocate(class)),
            Op::Release { class, at, n } => {
                (0..n).for_each(|i| self.release(class, at.wrapping_add(i * 7)))
            }
            Op::Write { class, at, seed } => {
                let spec = &classes()[class];
                let objects = &mut self.live[class];
                if !objects.is_empty() {
                    let len = objects.len();
                    let object = &mut objects[at % len];
                    verify(object.addr, spec.size, object.seed, spec.name);
                    object.seed = seed;
                    fill(object.addr, spec.size, seed);
                }
            }
            Op::Verify => self.verify_all(),
        }
    }

    fn verify_all(&self) {
        for (class, objects) in self.live.iter().enumerate() {
            let spec = &classes()[class];
            for object in objects {
                verify(object.addr, spec.size, object.seed, spec.name);
            }
        }
    }

    /// Verifies and releases everything, so cases do not accumulate memory.
    fn finish(mut self) {
        self.verify_all();
        for class in 0..self.live.len() {
            while !self.live[class].is_empty() {
                let last = self.live[class].len() - 1;
                self.release(class, last);
            }
        }
    }
}

fn run_case(ops: &[Op]) {
    let mut model = Model::new();
    for op in ops {
        model.apply(op);
    }
    model.finish();
}

proptest! {
    // Integration tests have no lib.rs next to them, so failures are saved
    // beside this file (tests/model.proptest-regressions).
    #![proptest_config(ProptestConfig {
        cases: 200,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn model_single_thread(ops in ops_strategy()) {
        run_case(&ops);
    }
}

/// Two threads run cases at once on the same classes, so magazines and
/// objects move between thread caches; the shared registry catches an
/// object handed to both.
#[test]
fn model_two_threads() {
    let threads: Vec<_> = (0..2)
        .map(|_| {
            std::thread::spawn(|| {
                let mut runner = TestRunner::new(Config {
                    cases: 100,
                    failure_persistence: None,
                    ..Config::default()
                });
                if let Err(e) = runner.run(&ops_strategy(), |ops| {
                    run_case(&ops);
                    Ok(())
                }) {
                    panic!("{e}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("model thread failed");
    }
    let reg = registry();
    assert!(
        reg.reuses > 0,
        "no address was ever reused in {} allocations",
        reg.allocations
    );
}

/// With a class no other test uses, objects released by a thread come back
/// to it: all but at most two magazines' worth of fresh objects are reused.
#[test]
fn released_addresses_are_reused() {
    const N: usize = 1000;
    // Magazines hold 30 objects; a thread caches at most two per class.
    const SLACK: usize = 60;
    for zero_init in [false, true] {
        let class = Class::new(ClassConfig {
            name: Some(if zero_init {
                "model-reuse-zero"
            } else {
                "model-reuse"
            }),
            size: 40,
            zero_init,
            purge: false,
            mapper_name: None,
        })
        .unwrap();
        let first: Vec<_> = (0..N).map(|_| class.allocate().unwrap()).collect();
        for &object in &first {
            // SAFETY: a live 40-byte object we own.
            unsafe { object.as_ptr().cast::<u8>().write_bytes(0xA5, 40) };
        }
        let first_set: HashSet<usize> = first.iter().map(|p| p.as_ptr() as usize).collect();
        assert_eq!(first_set.len(), N, "an object was handed out twice");
        for &object in &first {
            class.release(object);
        }
        let second: Vec<_> = (0..N).map(|_| class.allocate().unwrap()).collect();
        let reused = second
            .iter()
            .filter(|p| first_set.contains(&(p.as_ptr() as usize)))
            .count();
        assert!(
            reused >= N - SLACK,
            "only {reused} of {N} released addresses were reused"
        );
        if zero_init {
            for &object in &second {
                // SAFETY: a live 40-byte object we own.
                let b = unsafe { std::slice::from_raw_parts(object.as_ptr().cast::<u8>(), 40) };
                assert!(
                    b.iter().all(|&x| x == 0),
                    "reused zero_init object {object:p} is not zeroed: {b:?}"
                );
            }
        }
        for object in second {
            class.release(object);
        }
    }
}

/// The `/proc/self/maps` line of the mapping containing `addr`.
fn mapping_of(addr: usize) -> String {
    let maps = std::fs::read_to_string("/proc/self/maps").expect("read /proc/self/maps");
    maps.lines()
        .find(|line| {
            let range = line.split_whitespace().next().unwrap_or("");
            let (lo, hi) = range.split_once('-').unwrap_or(("0", "0"));
            let lo = usize::from_str_radix(lo, 16).unwrap_or(0);
            let hi = usize::from_str_radix(hi, 16).unwrap_or(0);
            lo <= addr && addr < hi
        })
        .unwrap_or_else(|| panic!("{addr:#x} is in no mapping"))
        .to_string()
}

/// Objects of the "file" classes live in a shared file mapping; the others
/// in anonymous memory.
#[test]
fn file_classes_are_file_backed() {
    for (index, spec) in classes().iter().enumerate() {
        let object = spec.class.allocate().unwrap();
        let addr = object.as_ptr() as usize;
        record_allocation(addr, index);
        let line = mapping_of(addr);
        let fields: Vec<&str> = line.split_whitespace().collect();
        let perms = fields.get(1).copied().unwrap_or("");
        let path = fields.get(5).copied().unwrap_or("");
        if spec.file {
            assert!(
                perms.starts_with("rw") && perms.ends_with('s') && path.contains("slitter-"),
                "{}: {addr:#x} should be in a shared file mapping: {line}",
                spec.name
            );
        } else {
            assert!(
                perms.starts_with("rw") && perms.ends_with('p') && !path.contains("slitter-"),
                "{}: {addr:#x} should be in private anonymous memory: {line}",
                spec.name
            );
        }
        record_release(addr, index);
        spec.class.release(object);
    }
}
