//! Criterion benchmarks of slitter's `malloc` and `free`:
//!
//! - `malloc_pair/<size>`: one `malloc(size)` + `free` pair, for 16, 64,
//!   512 and 4096 bytes (size classes) and 1 MiB (the large path); the
//!   first byte of each object is written, so the pair cannot be optimised
//!   away and the large path hands out usable memory;
//! - `malloc_pair_2_threads/<size>`: the same pair in two threads at once,
//!   each on its own thread cache; the time reported is that of one pair in
//!   each thread (the slower thread counts), and the throughput counts the
//!   pairs of both threads;
//! - `cross_thread/64`: one thread allocates 64-byte objects and hands
//!   them, through a ring of slots, to a second thread that frees them, so
//!   every free is a cross-thread free; the time is per object.
//!
//! The benchmark binary links slitter's rlib, which exports `malloc` and
//! `free` unprefixed, so `libc::malloc` here *is* slitter's (checked at
//! start: a 1 MiB `malloc` must show up in slitter's count of large
//! allocations). Other allocators are measured by `benches/compare.sh` and
//! `benches/instructions.sh`, which preload them into separate programs.
//!
//! Run with `cargo bench --bench malloc_pairs` (add `-- --quick` for a
//! short run).

mod common;

use std::hint::{black_box, spin_loop};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{config, Partner};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const SIZES: [usize; 5] = [16, 64, 512, 4096, 1 << 20];

/// Slots between the allocating and the freeing thread.
const RING: usize = 1024;

/// One malloc + free pair of `size` bytes.
#[inline(always)]
fn pair(size: usize) {
    // SAFETY: malloc and free of a fresh object, written within its size.
    unsafe {
        let object = libc::malloc(size).cast::<u8>();
        assert!(!object.is_null(), "malloc({size}) failed");
        object.write(1);
        libc::free(black_box(object).cast());
    }
}

fn pairs(size: usize, iters: u64) {
    for _ in 0..iters {
        pair(size);
    }
}

/// Checks that `libc::malloc` in this binary is slitter's.
fn assert_malloc_is_slitter() {
    let before = slitter::internal_counts().large_live;
    // SAFETY: a plain allocation, freed below (`black_box` keeps the
    // compiler from eliding the pair).
    let object = black_box(unsafe { libc::malloc(1 << 20) });
    let during = slitter::internal_counts().large_live;
    // SAFETY: allocated above.
    unsafe { libc::free(object) };
    assert_eq!(
        during,
        before + 1,
        "libc::malloc is not slitter's malloc in this binary"
    );
}

/// Allocates `iters` 64-byte objects into the ring, in order.
fn produce(ring: &[AtomicUsize], iters: u64) {
    for i in 0..iters as usize {
        // SAFETY: a fresh object of 64 bytes, handed to the consumer.
        let object = unsafe { libc::malloc(64) };
        assert!(!object.is_null(), "malloc(64) failed");
        let slot = &ring[i % RING];
        while slot.load(Ordering::Acquire) != 0 {
            spin_loop();
        }
        slot.store(object as usize, Ordering::Release);
    }
}

/// Frees `iters` objects taken from the ring, in order.
fn consume(ring: &[AtomicUsize], iters: u64) {
    for i in 0..iters as usize {
        let slot = &ring[i % RING];
        let object = loop {
            let object = slot.load(Ordering::Acquire);
            if object != 0 {
                break object;
            }
            spin_loop();
        };
        slot.store(0, Ordering::Relaxed);
        // SAFETY: the producer handed this object over and forgot it.
        unsafe { libc::free(object as *mut libc::c_void) };
    }
}

fn bench_malloc(c: &mut Criterion) {
    assert_malloc_is_slitter();

    let mut group = c.benchmark_group("malloc_pair");
    group.throughput(Throughput::Elements(1));
    for size in SIZES {
        group.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, &size| {
            b.iter(|| pair(size))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("malloc_pair_2_threads");
    group.throughput(Throughput::Elements(2));
    for size in SIZES {
        let partner = Partner::spawn(1000, move |iters| pairs(size, iters));
        pairs(size, 1000);
        group.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, &size| {
            b.iter_custom(|iters| partner.run(iters, |iters| pairs(size, iters)))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("cross_thread");
    group.throughput(Throughput::Elements(1));
    let ring: Arc<Vec<AtomicUsize>> = Arc::new((0..RING).map(|_| AtomicUsize::new(0)).collect());
    let theirs = Arc::clone(&ring);
    let partner = Partner::spawn(0, move |iters| consume(&theirs, iters));
    group.bench_function(BenchmarkId::from_parameter(64), |b| {
        b.iter_custom(|iters| partner.run(iters, |iters| produce(&ring, iters)))
    });
    drop(partner);
    group.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_malloc
}
criterion_main!(benches);
