//! A Rust program with slitter as its global allocator: threads exchanging
//! owned values through channels, standard collections, large buffers and
//! over-aligned layouts, each checked for contents and alignment. Every
//! allocation of this test binary, the test harness's included, goes
//! through `slitter::Slitter`.

use std::alloc::Layout;
use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc;
use std::thread;

#[global_allocator]
static GLOBAL: slitter::Slitter = slitter::Slitter;

// Only the `malloc` feature exports it: without the feature this name
// would bind to the C library's.
#[cfg(feature = "malloc")]
extern "C" {
    /// slitter's, as the crate exports it unprefixed.
    fn malloc_usable_size(ptr: *mut std::ffi::c_void) -> usize;
}

/// The bytes of value `i` of a message, recomputable by the receiver.
fn word(i: usize) -> String {
    format!("word-{i}-{}", "x".repeat(i % 37))
}

/// What one thread sends: values of many sizes, built from `seed`.
struct Message {
    seed: usize,
    numbers: Vec<u64>,
    text: String,
    boxed: Box<[u8; 1000]>,
    words: Vec<String>,
}

impl Message {
    fn new(seed: usize) -> Message {
        Message {
            seed,
            numbers: (0..seed % 500).map(|i| (seed * 1000 + i) as u64).collect(),
            text: word(seed),
            boxed: Box::new([seed as u8; 1000]),
            words: (0..seed % 20).map(|i| word(seed + i)).collect(),
        }
    }

    fn check(&self) {
        let seed = self.seed;
        assert_eq!(self.numbers.len(), seed % 500);
        assert!(self
            .numbers
            .iter()
            .enumerate()
            .all(|(i, &n)| n == (seed * 1000 + i) as u64));
        assert_eq!(self.text, word(seed));
        assert!(self.boxed.iter().all(|&b| b == seed as u8));
        assert_eq!(self.words.len(), seed % 20);
        for (i, w) in self.words.iter().enumerate() {
            assert_eq!(*w, word(seed + i));
        }
    }
}

#[test]
fn threads_exchange_owned_values_through_channels() {
    const THREADS: usize = 4;
    const MESSAGES: usize = 2000;
    // Thread t sends to thread t + 1 (mod 4): every value is allocated on
    // one thread and freed on another.
    let (senders, receivers): (Vec<_>, Vec<_>) =
        (0..THREADS).map(|_| mpsc::channel::<Message>()).unzip();
    let handles: Vec<_> = receivers
        .into_iter()
        .enumerate()
        .map(|(t, receiver)| {
            let next = senders[(t + 1) % THREADS].clone();
            thread::spawn(move || {
                let mut received = 0;
                for m in 0..MESSAGES {
                    next.send(Message::new(t * MESSAGES + m))
                        .expect("the receiver is alive");
                    // Receive as much as was sent to this thread so far.
                    while let Ok(message) = receiver.try_recv() {
                        message.check();
                        received += 1;
                    }
                }
                drop(next);
                while received < MESSAGES {
                    receiver.recv().expect("the sender is alive").check();
                    received += 1;
                }
                received
            })
        })
        .collect();
    drop(senders);
    for handle in handles {
        assert_eq!(handle.join().expect("no thread panicked"), MESSAGES);
    }
}

#[test]
fn collections_grow_and_keep_their_contents() {
    let mut map: HashMap<String, Vec<usize>> = HashMap::new();
    for i in 0..50_000 {
        map.entry(word(i % 10_000)).or_default().push(i);
    }
    assert_eq!(map.len(), 10_000);
    for k in 0..10_000 {
        let expected: Vec<usize> = (0..5).map(|j| k + j * 10_000).collect();
        assert_eq!(map[&word(k)], expected);
    }
    map.retain(|key, _| key.len() % 2 == 0);
    assert!(map.keys().all(|key| key.len() % 2 == 0));

    let mut tree: BTreeMap<u64, String> = (0..20_000u64)
        .map(|i| (i * 7919 % 20_011, word(i as usize)))
        .collect();
    assert_eq!(tree.len(), 20_000);
    tree.retain(|key, _| key % 3 != 0);
    assert!(tree.keys().all(|key| key % 3 != 0));
    assert!(tree.keys().zip(tree.keys().skip(1)).all(|(a, b)| a < b));

    // A Vec grown one element at a time through every size class into the
    // large path, then shrunk.
    let mut numbers: Vec<u32> = Vec::new();
    for i in 0..1_000_000u32 {
        numbers.push(i.wrapping_mul(2_654_435_761));
    }
    numbers.truncate(1000);
    numbers.shrink_to_fit();
    assert!(numbers
        .iter()
        .enumerate()
        .all(|(i, &n)| n == (i as u32).wrapping_mul(2_654_435_761)));
}

#[test]
fn large_buffers_up_to_64_mib() {
    for shift in [20, 22, 24, 26] {
        let len = 1usize << shift;
        let zeroed = vec![0u8; len];
        assert!(zeroed.iter().all(|&b| b == 0), "vec![0; {len}] is not zero");
        let mut buffer = zeroed;
        for (i, byte) in buffer.iter_mut().enumerate().step_by(4093) {
            *byte = (i % 251) as u8 + 1;
        }
        // Grow past the end (realloc of a large allocation) and check that
        // the bytes moved with it.
        buffer.resize(len + len / 2, 0xaa);
        assert!(buffer
            .iter()
            .enumerate()
            .take(len)
            .step_by(4093)
            .all(|(i, &b)| b == (i % 251) as u8 + 1));
        assert!(buffer[len..].iter().all(|&b| b == 0xaa));
    }
}

/// Allocates `layout` with `std::alloc` (zeroed or not), checks its
/// alignment, writes all of it and frees it.
fn check_layout(layout: Layout, zeroed: bool) {
    // SAFETY: every layout used here has a non-zero size.
    let p = unsafe {
        if zeroed {
            std::alloc::alloc_zeroed(layout)
        } else {
            std::alloc::alloc(layout)
        }
    };
    assert!(!p.is_null(), "{layout:?} failed");
    assert_eq!(p as usize % layout.align(), 0, "{layout:?} is misaligned");
    // SAFETY: `p` holds `layout.size()` bytes.
    let bytes = unsafe { std::slice::from_raw_parts_mut(p, layout.size()) };
    if zeroed {
        assert!(bytes.iter().all(|&b| b == 0), "{layout:?} is not zeroed");
    }
    bytes.fill(0x5a);
    // SAFETY: `p` is live with `layout`.
    unsafe { std::alloc::dealloc(p, layout) };
}

#[test]
fn over_aligned_layouts_through_std_alloc() {
    let mut align = 32;
    while align <= 1 << 20 {
        for size in [1, align / 2 + 1, align, 3 * align, 100_000] {
            let layout = Layout::from_size_align(size, align).expect("valid layout");
            check_layout(layout, false);
            check_layout(layout, true);
        }
        align *= 2;
    }
}

#[repr(align(4096))]
struct Page([u64; 512]);

#[repr(align(65536))]
struct Block(u64);

#[test]
fn over_aligned_types_in_vecs() {
    let mut pages: Vec<Page> = Vec::new();
    for i in 0..300u64 {
        pages.push(Page([i; 512]));
        assert_eq!(pages.as_ptr() as usize % 4096, 0);
    }
    for (i, page) in pages.iter().enumerate() {
        assert!(page.0.iter().all(|&v| v == i as u64));
    }
    let boxed: Vec<Box<Block>> = (0..50).map(|i| Box::new(Block(i))).collect();
    for (i, block) in boxed.iter().enumerate() {
        assert_eq!(&**block as *const Block as usize % 65536, 0);
        assert_eq!(block.0, i as u64);
    }
    let mut blocks: Vec<Block> = Vec::with_capacity(1);
    for i in 0..100 {
        blocks.push(Block(i));
        assert_eq!(blocks.as_ptr() as usize % 65536, 0);
    }
    assert!(blocks.iter().enumerate().all(|(i, b)| b.0 == i as u64));
}

#[cfg(feature = "malloc")]
#[test]
fn boxes_come_from_slitter_size_classes() {
    // slitter serves 100 bytes from its 112-byte class; glibc's malloc
    // would report 104.
    let boxed = Box::new([7u8; 100]);
    let ptr = Box::into_raw(boxed);
    // SAFETY: `ptr` is a live allocation of slitter's malloc personality.
    assert_eq!(unsafe { malloc_usable_size(ptr.cast()) }, 112);
    // SAFETY: `ptr` came from Box::into_raw just above.
    drop(unsafe { Box::from_raw(ptr) });
}
