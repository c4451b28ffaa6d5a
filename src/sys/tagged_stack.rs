//! A lock-free stack of immortal nodes, safe from ABA by construction.
//!
//! Owns: the algorithm of the Treiber stack through which whole magazines
//! move between threads (`layout/magazine.rs`), written once over two small
//! traits so that the same code runs in the allocator, on a 16-byte head
//! updated with `cmpxchg16b` ([`DoubleWordHead`]), and in the `loom`
//! model of its tests, where every interleaving of push and pop with
//! these orderings is explored.
//!
//! The head is a pair (top node, generation); every successful update
//! increments the generation, a full 64 bits, so a pop whose head went
//! from (A, g) through any other states back to node A carries generation
//! g + 2 or more and its compare-and-swap fails: a stale link is never
//! installed unless 2^64 updates happen between a pop's load and its
//! compare-and-swap (at 10^9 updates a second, 584 years). The two
//! halves of the head are loaded separately (x86-64 has no atomic 16-byte
//! load short of the compare-and-swap itself); a torn pair fails the
//! compare-and-swap like a stale one.
//!
//! Invariants: nodes are immortal (never unmapped), so a pop that reads
//! the link of a node another thread just took still reads valid memory;
//! a node's link is written only by the thread pushing it, before the
//! compare-and-swap that publishes it; a node is in the stack at most once
//! (the callers own what they push).

use core::sync::atomic::Ordering;

/// A node's link word.
pub trait Link {
    /// Loads the link.
    fn load(&self, order: Ordering) -> u64;
    /// Stores the link.
    fn store(&self, value: u64, order: Ordering);
}

/// The stack's head: (top node, generation), compared and swapped as one.
pub trait Head {
    /// Loads the top node, then the generation (each atomically, the pair
    /// not necessarily).
    fn load(&self) -> (u64, u64);
    /// Replaces the pair with `new` if it is `current`, as one atomic
    /// read-modify-write with acquire and release ordering; else returns
    /// the pair found.
    fn compare_exchange(&self, current: (u64, u64), new: (u64, u64)) -> Result<(), (u64, u64)>;
}

/// Pushes `node` (an address, not 0), whose link is `link`, on the stack
/// headed by `head`.
pub fn push(head: &impl Head, node: u64, link: &impl Link) {
    let mut current = head.load();
    loop {
        link.store(current.0, Ordering::Relaxed);
        match head.compare_exchange(current, (node, current.1.wrapping_add(1))) {
            Ok(()) => return,
            Err(found) => current = found,
        }
    }
}

/// Pops the top node of the stack headed by `head`, reading a node's link
/// with `link_of`; `None` when the stack is empty.
pub fn pop<'a, L: Link + 'a>(head: &impl Head, link_of: impl Fn(u64) -> &'a L) -> Option<u64> {
    let mut current = head.load();
    loop {
        if current.0 == 0 {
            return None;
        }
        // A stale `current.0` is still a node (nodes are immortal); its
        // link is then wrong, and the compare-and-swap fails.
        let next = link_of(current.0).load(Ordering::Relaxed);
        match head.compare_exchange(current, (next, current.1.wrapping_add(1))) {
            Ok(()) => return Some(current.0),
            Err(found) => current = found,
        }
    }
}

impl Link for core::sync::atomic::AtomicU64 {
    fn load(&self, order: Ordering) -> u64 {
        self.load(order)
    }

    fn store(&self, value: u64, order: Ordering) {
        self.store(value, order)
    }
}

/// The allocator's head: two 64-bit words, 16-byte aligned, updated with
/// `lock cmpxchg16b` (which every x86-64 CPU slitter runs on has: it is
/// part of x86-64-v2, and the kernel's own code needs it).
#[repr(C, align(16))]
pub struct DoubleWordHead {
    top: core::sync::atomic::AtomicU64,
    generation: core::sync::atomic::AtomicU64,
}

impl DoubleWordHead {
    /// An empty head.
    pub const fn new() -> Self {
        DoubleWordHead {
            top: core::sync::atomic::AtomicU64::new(0),
            generation: core::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The generation, for tests.
    #[cfg(test)]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }
}

impl Head for DoubleWordHead {
    fn load(&self) -> (u64, u64) {
        let top = self.top.load(Ordering::Acquire);
        (top, self.generation.load(Ordering::Acquire))
    }

    fn compare_exchange(&self, current: (u64, u64), new: (u64, u64)) -> Result<(), (u64, u64)> {
        let (mut top, mut generation) = current;
        let swapped: u8;
        // SAFETY: `self` is 16-byte aligned and its two words are only
        // accessed atomically. cmpxchg16b compares rdx:rax with the 16
        // bytes and, if equal, stores rcx:rbx, else loads them into
        // rdx:rax; `lock` makes it one atomic read-modify-write and a full
        // barrier. rbx, which LLVM reserves, is swapped in and restored.
        unsafe {
            core::arch::asm!(
                "xchg {new_top}, rbx",
                "lock cmpxchg16b xmmword ptr [{head}]",
                "sete {swapped}",
                "mov rbx, {new_top}",
                head = in(reg) self as *const DoubleWordHead,
                new_top = inout(reg) new.0 => _,
                swapped = out(reg_byte) swapped,
                in("rcx") new.1,
                inout("rax") top,
                inout("rdx") generation,
                options(nostack)
            );
        }
        if swapped != 0 {
            Ok(())
        } else {
            Err((top, generation))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn the_double_word_head_compares_both_halves() {
        let head = DoubleWordHead::new();
        assert_eq!(head.compare_exchange((0, 0), (16, 1)), Ok(()));
        assert_eq!(head.load(), (16, 1));
        // Same top, other generation: refused, and the pair is returned.
        assert_eq!(head.compare_exchange((16, 0), (32, 2)), Err((16, 1)));
        assert_eq!(head.compare_exchange((0, 1), (32, 2)), Err((16, 1)));
        assert_eq!(head.compare_exchange((16, 1), (0, u64::MAX)), Ok(()));
        assert_eq!(head.load(), (0, u64::MAX));
    }

    #[test]
    fn a_pop_that_saw_an_old_head_fails_after_pop_push_of_the_same_node() {
        // The classic ABA: A on B; a pop reads (A, g) and A's link (B);
        // meanwhile A and B are popped and A pushed back alone.
        let head = DoubleWordHead::new();
        let nodes: Vec<AtomicU64> = (0..3).map(|_| AtomicU64::new(0)).collect();
        let link_of = |node: u64| &nodes[node as usize / 16];
        push(&head, 16, &nodes[1]);
        push(&head, 32, &nodes[2]);
        let seen = head.load();
        let stale_next = link_of(seen.0).load(Ordering::Relaxed);
        assert_eq!(pop(&head, link_of), Some(32));
        assert_eq!(pop(&head, link_of), Some(16));
        push(&head, 32, &nodes[2]);
        assert_eq!(head.load().0, seen.0, "the same top node again");
        assert!(head
            .compare_exchange(seen, (stale_next, seen.1 + 1))
            .is_err());
        assert_eq!(pop(&head, link_of), Some(32));
        assert_eq!(pop(&head, link_of), None);
    }

    /// The loom model: the same `push` and `pop`, with a head whose
    /// compare-and-swap is one atomic step (a loom mutex around both
    /// halves, as `lock cmpxchg16b` is one locked instruction) and whose
    /// halves are loaded separately, as in [`DoubleWordHead`].
    mod model {
        use super::super::{pop, push, Head, Link};
        use core::sync::atomic::Ordering;
        use loom::sync::atomic::AtomicU64;
        use loom::sync::{Arc, Mutex};

        struct LoomLink(AtomicU64);

        impl Link for LoomLink {
            fn load(&self, order: Ordering) -> u64 {
                self.0.load(order)
            }

            fn store(&self, value: u64, order: Ordering) {
                self.0.store(value, order)
            }
        }

        struct LoomHead {
            top: AtomicU64,
            generation: AtomicU64,
            cas: Mutex<()>,
        }

        impl Head for LoomHead {
            fn load(&self) -> (u64, u64) {
                let top = self.top.load(Ordering::Acquire);
                (top, self.generation.load(Ordering::Acquire))
            }

            fn compare_exchange(
                &self,
                current: (u64, u64),
                new: (u64, u64),
            ) -> Result<(), (u64, u64)> {
                let _step = self.cas.lock().unwrap();
                let found = (
                    self.top.load(Ordering::Acquire),
                    self.generation.load(Ordering::Acquire),
                );
                if found != current {
                    return Err(found);
                }
                self.top.store(new.0, Ordering::Release);
                self.generation.store(new.1, Ordering::Release);
                Ok(())
            }
        }

        /// Nodes 1..=n (addresses 1..=n), with their links and a payload
        /// written before each push and checked after each pop.
        struct World {
            head: LoomHead,
            links: Vec<LoomLink>,
            payload: Vec<AtomicU64>,
        }

        impl World {
            fn new(nodes: usize) -> Arc<World> {
                Arc::new(World {
                    head: LoomHead {
                        top: AtomicU64::new(0),
                        generation: AtomicU64::new(0),
                        cas: Mutex::new(()),
                    },
                    links: (0..=nodes).map(|_| LoomLink(AtomicU64::new(0))).collect(),
                    payload: (0..=nodes).map(|_| AtomicU64::new(0)).collect(),
                })
            }

            fn push(&self, node: u64, value: u64) {
                // Written plainly (relaxed) before the push: a pop must see
                // it through the head's release/acquire.
                self.payload[node as usize].store(value, Ordering::Relaxed);
                push(&self.head, node, &self.links[node as usize]);
            }

            fn pop(&self) -> Option<(u64, u64)> {
                let node = pop(&self.head, |node| &self.links[node as usize])?;
                Some((node, self.payload[node as usize].load(Ordering::Relaxed)))
            }
        }

        /// Runs `f` under loom with every interleaving of up to
        /// `PREEMPTIONS` preemptions (the bugs of a Treiber stack, ABA
        /// among them, need two: loom's documentation finds almost all
        /// real bugs within a bound of 2 or 3).
        fn explore(f: impl Fn() + Sync + Send + 'static) {
            const PREEMPTIONS: usize = 3;
            let mut builder = loom::model::Builder::new();
            builder.preemption_bound = Some(PREEMPTIONS);
            builder.check(f);
        }

        #[test]
        fn concurrent_pops_and_pushes_never_lose_or_duplicate_a_node() {
            explore(|| {
                let world = World::new(3);
                world.push(1, 10);
                world.push(2, 20);
                let threads: Vec<_> = (0..2)
                    .map(|_| {
                        let world = Arc::clone(&world);
                        loom::thread::spawn(move || {
                            // Pop one, push it back with a new payload.
                            let (node, value) = world.pop().expect("two nodes, two threads");
                            assert_eq!(value, node * 10, "a popped node carries its payload");
                            world.push(node, node * 10);
                        })
                    })
                    .collect();
                world.push(3, 30);
                for thread in threads {
                    thread.join().unwrap();
                }
                let mut seen = Vec::new();
                while let Some((node, value)) = world.pop() {
                    assert_eq!(value, node * 10);
                    seen.push(node);
                }
                seen.sort();
                assert_eq!(seen, [1, 2, 3]);
            });
        }

        #[test]
        fn a_pop_racing_with_pop_and_push_back_of_its_node_keeps_the_stack_whole() {
            // The ABA interleaving: one thread pops A (reading A's link, B)
            // while another pops A and B and pushes A back.
            explore(|| {
                let world = World::new(2);
                world.push(2, 20);
                world.push(1, 10);
                let other = {
                    let world = Arc::clone(&world);
                    loom::thread::spawn(move || {
                        let a = world.pop();
                        let b = world.pop();
                        if let Some((node, _)) = a {
                            world.push(node, node * 10);
                        }
                        b.map(|(node, _)| node)
                    })
                };
                let mine = world.pop().map(|(node, _)| node);
                let taken = other.join().unwrap();
                let mut all: Vec<u64> = mine.into_iter().chain(taken).collect();
                while let Some((node, value)) = world.pop() {
                    assert_eq!(value, node * 10);
                    all.push(node);
                }
                all.sort();
                assert_eq!(all, [1, 2], "every node once");
            });
        }
    }
}
