//! Multi-threaded tests: cross-thread release under load, thread churn, and
//! reuse of objects left behind by exited threads.
//!
//! The tests read process-wide counters (`slitter::internal_counts()`, RSS),
//! so they take a lock and run one at a time.

use std::collections::HashSet;
use std::ffi::c_void;
use std::ptr::NonNull;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Barrier, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Instant;

use slitter::{internal_counts, Class, ClassConfig, InternalCounts};

fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

fn new_class(name: &str, size: usize) -> Class {
    Class::new(ClassConfig {
        name: Some(name),
        size,
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("cannot create class {name}: {e}"))
}

/// Resident set size in bytes, from `/proc/self/statm`.
fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("read /proc/self/statm");
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("statm has a resident field");
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    pages * page
}

const MIB: usize = 1 << 20;

/// A pointer that may cross threads (ownership of the object moves with it).
#[derive(Clone, Copy)]
struct Sent(NonNull<c_void>);
// SAFETY: the object is owned by exactly one thread at a time.
unsafe impl Send for Sent {}

fn words<'a>(object: NonNull<c_void>) -> &'a mut [u64; 8] {
    // SAFETY: callers own a live 64-byte, 8-aligned object.
    unsafe { &mut *object.as_ptr().cast::<[u64; 8]>() }
}

/// The contents a producer writes into an object it sends.
fn expected_stamp(addr: u64, producer: u64, seq: u64) -> [u64; 8] {
    let mut words = [addr, producer, seq, 0, 0, 0, 0, 0];
    for (i, w) in words.iter_mut().enumerate().skip(3) {
        *w = addr ^ producer.rotate_left(48) ^ seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ i as u64;
    }
    words
}

fn stamp(object: NonNull<c_void>, producer: u64, seq: u64) {
    *words(object) = expected_stamp(object.as_ptr() as u64, producer, seq);
}

fn check_stamp(object: NonNull<c_void>, producer: u64, seq: u64) {
    let addr = object.as_ptr() as u64;
    assert_eq!(
        *words(object),
        expected_stamp(addr, producer, seq),
        "object {addr:#x} (producer {producer}, seq {seq}) was corrupted in flight"
    );
}

/// A batch of objects in flight, each with its producer and sequence number.
type Batch = Vec<(Sent, u64, u64)>;

/// (a) Producers allocate and send objects to consumers, which verify and
/// release them: every release is a cross-thread release. Memory must stay
/// bounded: objects are reused rather than taken fresh from the press.
#[test]
fn cross_thread_release_under_load() {
    let _serial = serial();
    const PRODUCERS: u64 = 2;
    const CONSUMERS: usize = 2;
    const PER_PRODUCER: u64 = 300_000;
    const BATCH: usize = 16;
    const CHANNEL_BOUND: usize = 32;
    let class = new_class("threads-cross", 64);
    let before = internal_counts();
    let start = Instant::now();

    let mut senders: Vec<SyncSender<Batch>> = Vec::new();
    let mut consumers = Vec::new();
    for _ in 0..CONSUMERS {
        let (tx, rx): (_, Receiver<Batch>) = sync_channel(CHANNEL_BOUND);
        senders.push(tx);
        consumers.push(thread::spawn(move || {
            let mut seen = HashSet::new();
            let mut released = 0u64;
            for batch in rx {
                for (Sent(object), producer, seq) in batch {
                    check_stamp(object, producer, seq);
                    seen.insert(object.as_ptr() as usize);
                    // Scribble so a stale user would notice.
                    words(object).fill(0xDEAD_BEEF_DEAD_BEEF);
                    class.release(object);
                    released += 1;
                }
            }
            (seen, released)
        }));
    }
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|producer| {
            let senders = senders.clone();
            thread::spawn(move || {
                let mut batch = Vec::with_capacity(BATCH);
                let mut turn = producer as usize;
                for seq in 0..PER_PRODUCER {
                    let object = class.allocate().expect("out of memory");
                    assert_eq!(object.as_ptr() as usize % 16, 0);
                    stamp(object, producer, seq);
                    batch.push((Sent(object), producer, seq));
                    if batch.len() == BATCH {
                        let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                        senders[turn % CONSUMERS].send(full).expect("consumer gone");
                        turn += 1;
                    }
                }
                if !batch.is_empty() {
                    senders[turn % CONSUMERS]
                        .send(batch)
                        .expect("consumer gone");
                }
            })
        })
        .collect();
    drop(senders);
    for p in producers {
        p.join().expect("producer failed");
    }
    let mut distinct = HashSet::new();
    let mut released = 0;
    for c in consumers {
        let (seen, count) = c.join().expect("consumer failed");
        distinct.extend(seen);
        released += count;
    }
    let elapsed = start.elapsed();
    let after = internal_counts();

    let allocated = PRODUCERS * PER_PRODUCER;
    assert_eq!(released, allocated);
    let in_flight = CONSUMERS * (CHANNEL_BOUND + 2) * BATCH + PRODUCERS as usize * BATCH;
    // Span memory touched: the 16 KiB span-alignment blocks holding objects.
    let blocks: HashSet<usize> = distinct.iter().map(|a| a >> 14).collect();
    println!(
        "cross-thread: {} allocations + {} releases in {elapsed:?}; {} distinct addresses \
         in {} KiB of span blocks (at most ~{in_flight} in flight); magazines {} -> {}, \
         arena {} -> {} KiB",
        allocated,
        released,
        distinct.len(),
        blocks.len() * 16,
        before.magazines,
        after.magazines,
        before.arena_bytes / 1024,
        after.arena_bytes / 1024,
    );
    assert!(
        distinct.len() <= 30_000,
        "{} distinct addresses for {allocated} allocations with at most ~{in_flight} in flight: \
         released objects are not reused",
        distinct.len()
    );
    // Each magazine holds 30 objects; in-flight objects and thread caches
    // need a few hundred at most.
    assert!(
        after.magazines - before.magazines <= 1_000,
        "{} magazines created for at most ~{in_flight} objects in flight",
        after.magazines - before.magazines
    );
    assert!(
        after.arena_bytes - before.arena_bytes <= 8 * MIB,
        "internal memory grew by {} KiB",
        (after.arena_bytes - before.arena_bytes) / 1024
    );
}

/// The work of one short-lived thread in the churn test.
fn churn_thread(a: Class, b: Class, salt: usize, barrier: &Barrier) {
    let mut objects_a: Vec<NonNull<c_void>> = (0..300).map(|_| a.allocate().unwrap()).collect();
    let mut objects_b: Vec<NonNull<c_void>> = (0..200).map(|_| b.allocate().unwrap()).collect();
    for (i, &o) in objects_a.iter().enumerate() {
        // SAFETY: live 32-byte objects we own.
        unsafe { o.as_ptr().cast::<usize>().write(salt ^ i) };
    }
    for (i, &o) in objects_b.iter().enumerate() {
        // SAFETY: live 256-byte objects we own.
        unsafe { o.as_ptr().cast::<usize>().add(31).write(!(salt ^ i)) };
    }
    // The whole wave is alive, each thread holding its objects and cache.
    barrier.wait();
    for (i, &o) in objects_a.iter().enumerate() {
        // SAFETY: as above.
        assert_eq!(unsafe { o.as_ptr().cast::<usize>().read() }, salt ^ i);
    }
    for (i, &o) in objects_b.iter().enumerate() {
        // SAFETY: as above.
        assert_eq!(
            unsafe { o.as_ptr().cast::<usize>().add(31).read() },
            !(salt ^ i)
        );
    }
    // Release in a thread-dependent order; the last releases stay in this
    // thread's cache until it exits.
    objects_a.rotate_left(salt % 7 * 13);
    objects_b.reverse();
    for &o in &objects_a {
        a.release(o);
    }
    for &o in &objects_b[..150] {
        b.release(o);
    }
    // A few more allocations so the thread exits holding both full and
    // partial magazines.
    let extra: Vec<_> = (0..17).map(|_| a.allocate().unwrap()).collect();
    for o in extra {
        a.release(o);
    }
    for &o in &objects_b[150..] {
        b.release(o);
    }
}

#[derive(Clone, Copy, Debug)]
struct Snapshot {
    threads: usize,
    counts: InternalCounts,
    rss: usize,
}

/// (b) Thread churn: 10,000 short-lived threads, 16 at a time. Internal
/// memory must track the peak concurrency, not the number of threads ever
/// started.
#[test]
fn thread_churn_keeps_memory_bounded() {
    let _serial = serial();
    const THREADS: usize = 10_000;
    const WAVE: usize = 16;
    const FIRST_CHECKPOINT: usize = 1_000;
    let a = new_class("threads-churn-a", 32);
    let b = new_class("threads-churn-b", 256);
    let start = Instant::now();
    let initial = Snapshot {
        threads: 0,
        counts: internal_counts(),
        rss: rss_bytes(),
    };
    let mut checkpoints = Vec::new();
    let mut started = 0;
    while started < THREADS {
        let size = WAVE.min(THREADS - started);
        let barrier = Arc::new(Barrier::new(size));
        let wave: Vec<_> = (0..size)
            .map(|i| {
                let salt = started + i;
                let barrier = Arc::clone(&barrier);
                thread::spawn(move || churn_thread(a, b, salt, &barrier))
            })
            .collect();
        started += wave.len();
        for t in wave {
            t.join().expect("churn thread failed");
        }
        if checkpoints.is_empty() && started >= FIRST_CHECKPOINT {
            checkpoints.push(Snapshot {
                threads: started,
                counts: internal_counts(),
                rss: rss_bytes(),
            });
        }
    }
    let last = Snapshot {
        threads: started,
        counts: internal_counts(),
        rss: rss_bytes(),
    };
    let first = checkpoints[0];
    for s in [initial, first, last] {
        println!(
            "churn: after {:>5} threads: arena {:>6} KiB, magazines {:>5}, thread caches {:>3}, \
             RSS {:>6} KiB",
            s.threads,
            s.counts.arena_bytes / 1024,
            s.counts.magazines,
            s.counts.thread_caches,
            s.rss / 1024
        );
    }
    println!("churn: {THREADS} threads in {:?}", start.elapsed());

    // Entry arrays are recycled: their number tracks the peak number of
    // threads alive at once (WAVE here, plus whatever earlier tests left).
    assert!(
        last.counts.thread_caches <= initial.counts.thread_caches + WAVE,
        "thread caches grew from {} to {} with at most {WAVE} threads alive at once",
        initial.counts.thread_caches,
        last.counts.thread_caches
    );
    assert!(
        first.counts.thread_caches >= WAVE,
        "{WAVE} threads held caches at once, yet only {} thread caches exist",
        first.counts.thread_caches
    );
    assert!(
        last.counts.thread_caches <= first.counts.thread_caches + 2,
        "thread caches kept growing: {} after {} threads, {} after {}",
        first.counts.thread_caches,
        first.threads,
        last.counts.thread_caches,
        last.threads
    );
    assert!(
        last.counts.magazines <= first.counts.magazines + 64,
        "magazines kept growing: {} after {} threads, {} after {}",
        first.counts.magazines,
        first.threads,
        last.counts.magazines,
        last.threads
    );
    assert!(
        last.counts.arena_bytes <= first.counts.arena_bytes + 4 * MIB,
        "internal memory kept growing: {} KiB after {} threads, {} KiB after {}",
        first.counts.arena_bytes / 1024,
        first.threads,
        last.counts.arena_bytes / 1024,
        last.threads
    );
    assert!(
        last.rss <= first.rss + 64 * MIB,
        "RSS grew from {} KiB after {} threads to {} KiB after {}",
        first.rss / 1024,
        first.threads,
        last.rss / 1024,
        last.threads
    );
}

/// Allocates `n` objects of `class` in a new thread that then exits.
fn allocate_in_thread(class: Class, n: usize) -> Vec<usize> {
    thread::spawn(move || {
        (0..n)
            .map(|_| class.allocate().unwrap().as_ptr() as usize)
            .collect()
    })
    .join()
    .unwrap()
}

/// Releases `objects` of `class` in a new thread that then exits.
fn release_in_thread(class: Class, objects: Vec<usize>) {
    thread::spawn(move || {
        for addr in objects {
            class.release(NonNull::new(addr as *mut c_void).unwrap());
        }
    })
    .join()
    .unwrap()
}

/// Thread A allocates `n` objects of a fresh class and exits; thread B
/// releases them all and exits; thread C then allocates `n` objects.
/// Returns how many of C's objects are ones B released.
fn handoff(name: &str, n: usize) -> usize {
    let class = new_class(name, 48);
    let first = allocate_in_thread(class, n);
    let first_set: HashSet<usize> = first.iter().copied().collect();
    assert_eq!(first_set.len(), n, "an object was handed out twice");
    release_in_thread(class, first);
    let second = allocate_in_thread(class, n);
    let reused = second.iter().filter(|a| first_set.contains(a)).count();
    println!("handoff: thread C got {reused} of {n} addresses released by exited thread B");
    // Released from another thread: the test's own thread must not touch
    // slitter, or its thread cache would outlive the test (libtest does not
    // join it before the next test starts) and skew the churn figures.
    release_in_thread(class, second);
    reused
}

/// (c) Objects released by a thread that then exits are reused by other
/// threads.
#[test]
fn objects_of_exited_threads_are_reused() {
    let _serial = serial();
    // Many objects: most of them went through the class's full magazines
    // while B ran; at most B's two cached magazines (60 objects) plus A's
    // leftover fresh objects may come before them.
    const MANY: usize = 1_000;
    let reused = handoff("threads-handoff-many", MANY);
    assert!(
        reused >= MANY - 60,
        "thread C reused only {reused} of the {MANY} objects released by exited thread B"
    );
    // Fewer objects than a magazine holds: they all stayed in B's cache
    // until B exited, so C only gets them if B's exit handed them back.
    const FEW: usize = 25;
    let reused = handoff("threads-handoff-few", FEW);
    assert!(
        reused >= FEW - 5,
        "thread C reused only {reused} of the {FEW} objects left in exited thread B's cache"
    );
}
