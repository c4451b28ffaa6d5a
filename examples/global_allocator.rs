//! slitter as the global allocator of a Rust program.
//!
//! Installs `slitter::Slitter` with `#[global_allocator]`, so every `Box`,
//! `Vec`, `String` and `HashMap` below is allocated by slitter, then does
//! some work whose answers are known: counts primes with four threads that
//! send their results back through a channel, finds the longest Collatz
//! chain with a memo table, builds a long string, and allocates
//! over-aligned values. Run it with
//!
//! ```sh
//! cargo run --example global_allocator
//! ```
//!
//! It prints one line per task and ends with `global allocator example
//! finished`; `tests/examples.rs` runs it and checks every line.

use std::alloc::Layout;
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::{mpsc, Arc};
use std::thread;

#[global_allocator]
static GLOBAL: slitter::Slitter = slitter::Slitter;

/// The primes below `limit`, by the sieve of Eratosthenes.
fn small_primes(limit: usize) -> Vec<usize> {
    let mut composite = vec![false; limit];
    let mut primes = Vec::new();
    for n in 2..limit {
        if !composite[n] {
            primes.push(n);
            for multiple in (n * n..limit).step_by(n) {
                composite[multiple] = true;
            }
        }
    }
    primes
}

/// Counts the primes below `limit` with `threads` threads, each sieving
/// one segment with the primes up to the square root and sending the
/// primes it found back as a `Vec`.
fn count_primes(limit: usize, threads: usize) -> usize {
    let base = Arc::new(small_primes(limit.isqrt() + 1));
    let (sender, receiver) = mpsc::channel::<Vec<usize>>();
    let segment = limit.div_ceil(threads);
    for t in 0..threads {
        let base = Arc::clone(&base);
        let sender = sender.clone();
        thread::spawn(move || {
            let start = (t * segment).max(2);
            let end = ((t + 1) * segment).min(limit);
            let mut composite = vec![false; end.saturating_sub(start)];
            for &p in base.iter() {
                let first = (p * p).max(start.div_ceil(p) * p);
                for multiple in (first..end).step_by(p) {
                    composite[multiple - start] = true;
                }
            }
            let primes: Vec<usize> = (start..end).filter(|&n| !composite[n - start]).collect();
            sender.send(primes).expect("main waits for every segment");
        });
    }
    drop(sender);
    receiver.iter().map(|primes| primes.len()).sum()
}

/// The start below `limit` of the longest Collatz chain, and its number of
/// steps down to 1, with the lengths memoised in a `HashMap`.
fn longest_collatz(limit: u64) -> (u64, u32) {
    let mut steps: HashMap<u64, u32> = HashMap::from([(1, 0)]);
    let mut best = (1, 0);
    for start in 1..limit {
        let mut path = Vec::new();
        let mut n = start;
        while !steps.contains_key(&n) {
            path.push(n);
            n = if n % 2 == 0 { n / 2 } else { 3 * n + 1 };
        }
        let mut count = steps[&n];
        for &m in path.iter().rev() {
            count += 1;
            steps.insert(m, count);
        }
        if steps[&start] > best.1 {
            best = (start, steps[&start]);
        }
    }
    best
}

/// The decimal digits of 1, 2, ..., `last` written one after another.
fn digits_up_to(last: u32) -> String {
    let mut text = String::new();
    for n in 1..=last {
        write!(text, "{n}").expect("writing to a String cannot fail");
    }
    text
}

/// A page-sized, page-aligned value.
#[repr(align(4096))]
struct Page([u8; 4096]);

/// Allocates over-aligned values and returns how many were aligned as
/// their types and layouts ask.
fn aligned_allocations() -> usize {
    let pages: Vec<Box<Page>> = (0..64).map(|i| Box::new(Page([i; 4096]))).collect();
    let mut aligned = pages
        .iter()
        .enumerate()
        .filter(|(i, page)| {
            (&***page as *const Page as usize).is_multiple_of(4096) && page.0[4095] == *i as u8
        })
        .count();
    let layout = Layout::from_size_align(3 << 20, 1 << 20).expect("a valid layout");
    // SAFETY: the layout has a non-zero size.
    let buffer = unsafe { std::alloc::alloc_zeroed(layout) };
    if buffer.is_null() {
        std::alloc::handle_alloc_error(layout);
    }
    // SAFETY: `buffer` holds `layout.size()` bytes.
    let zeroed = unsafe { std::slice::from_raw_parts(buffer, layout.size()) };
    if (buffer as usize).is_multiple_of(1 << 20) && zeroed.iter().all(|&b| b == 0) {
        aligned += 1;
    }
    // SAFETY: `buffer` is live with `layout`.
    unsafe { std::alloc::dealloc(buffer, layout) };
    aligned
}

fn main() {
    println!(
        "primes below 2000000: {} (4 threads)",
        count_primes(2_000_000, 4)
    );
    let (start, steps) = longest_collatz(100_000);
    println!("longest Collatz chain below 100000: {start}, {steps} steps");
    let digits = digits_up_to(999_999);
    println!(
        "digits of 1..=999999: {}, ending {}",
        digits.len(),
        &digits[digits.len() - 6..]
    );
    println!(
        "over-aligned allocations: {} of 65 aligned",
        aligned_allocations()
    );
    println!("global allocator example finished");
}
