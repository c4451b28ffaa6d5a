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

use std::hint::black_box;
use std::ptr::NonNull;
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

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

/// A second thread that runs `iters` pairs whenever it is sent `iters`,
/// starting together with the benchmark thread, and sends back its time.
struct Partner {
    start: Arc<Barrier>,
    work: Option<mpsc::Sender<u64>>,
    done: mpsc::Receiver<Duration>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Partner {
    fn spawn(class: Class) -> Partner {
        let start = Arc::new(Barrier::new(2));
        let (work, work_rx) = mpsc::channel::<u64>();
        let (done_tx, done) = mpsc::channel();
        let barrier = Arc::clone(&start);
        let thread = thread::spawn(move || {
            // Warm this thread's cache before the first measurement.
            pairs(class, 1000);
            for iters in work_rx {
                barrier.wait();
                let begin = Instant::now();
                pairs(class, iters);
                if done_tx.send(begin.elapsed()).is_err() {
                    break;
                }
            }
        });
        Partner {
            start,
            work: Some(work),
            done,
            thread: Some(thread),
        }
    }

    /// Runs `iters` pairs here and in the partner at the same time; returns
    /// the longer of the two times.
    fn run(&self, class: Class, iters: u64) -> Duration {
        self.work
            .as_ref()
            .expect("partner running")
            .send(iters)
            .expect("partner alive");
        self.start.wait();
        let begin = Instant::now();
        pairs(class, iters);
        let mine = begin.elapsed();
        let theirs = self.done.recv().expect("partner alive");
        mine.max(theirs)
    }
}

impl Drop for Partner {
    fn drop(&mut self) {
        drop(self.work.take());
        if let Some(thread) = self.thread.take() {
            thread.join().expect("partner thread panicked");
        }
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
    let partner = Partner::spawn(shared);
    pairs(shared, 1000);
    group.throughput(Throughput::Elements(2));
    group.bench_function("pair_2_threads", |b| {
        b.iter_custom(|iters| partner.run(shared, iters))
    });
    drop(partner);

    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_class_pair
}
criterion_main!(benches);
