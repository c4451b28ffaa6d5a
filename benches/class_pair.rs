//! Criterion benchmarks of the Rust class API on a 32-byte class:
//!
//! - `class_pair/pair`: one `allocate` + `release` pair (the fast paths,
//!   plus a magazine swap every `MAGAZINE_SIZE` pairs);
//! - `class_pair/batch_100`: allocate 100 objects, then release the 100
//!   (crosses magazine boundaries, so the slow paths show up);
//! - `class_pair/pair_2_threads`: the pair in two threads at once, each on
//!   its own thread cache; the time reported is the wall time of one pair in
//!   each thread (the slower thread counts), and the throughput counts the
//!   pairs of both threads.
//!
//! Run with `cargo bench --bench class_pair` (add `-- --quick` for a short
//! run). Measurement times are kept short; override them on the command line
//! (`-- --measurement-time 10`).

mod common;

use std::hint::black_box;
use std::ptr::NonNull;

use common::{config, Partner};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use slitter::{Class, ClassConfig};

const OBJECT_SIZE: usize = 32;
const BATCH: usize = 100;

fn class(name: &str) -> Class {
    Class::new(ClassConfig {
        name: Some(name),
        size: OBJECT_SIZE,
        ..Default::default()
    })
    .expect("a 32-byte class can be registered")
}

/// One allocate+release pair; the object goes through `black_box` so the
/// pair cannot be optimised away.
#[inline(always)]
fn pair(class: Class) {
    let object = class.allocate().expect("memory available");
    class.release(black_box(object));
}

fn pairs(class: Class, iters: u64) {
    for _ in 0..iters {
        pair(class);
    }
}

fn bench_class_pair(c: &mut Criterion) {
    let mut group = c.benchmark_group("class_pair");

    let single = class("bench-pair");
    group.throughput(Throughput::Elements(1));
    group.bench_function("pair", |b| b.iter(|| pair(single)));

    let batched = class("bench-batch");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("batch_100", |b| {
        let mut objects = [NonNull::<core::ffi::c_void>::dangling(); BATCH];
        b.iter(|| {
            for slot in objects.iter_mut() {
                *slot = batched.allocate().expect("memory available");
            }
            for &object in black_box(&objects).iter() {
                batched.release(object);
            }
        })
    });

    let shared = class("bench-pair-2-threads");
    let partner = Partner::spawn(1000, move |iters| pairs(shared, iters));
    pairs(shared, 1000);
    group.throughput(Throughput::Elements(2));
    group.bench_function("pair_2_threads", |b| {
        b.iter_custom(|iters| partner.run(iters, |iters| pairs(shared, iters)))
    });
    drop(partner);

    group.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_class_pair
}
criterion_main!(benches);
