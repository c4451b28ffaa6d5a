//! The system layer: what slitter needs from the operating system and the
//! C library, with no knowledge of heaps or classes.
//!
//! Owns: the pthread mutex around data (`lock`), the calling thread's `errno` (`errno`),
//! random numbers from the kernel (`random`), raw `mmap` helpers (`os_memory`), the lock-free stack with
//! an ABA-proof head (`tagged_stack`), output that never allocates
//! (`writer`), the one-line fatal report (`fatal`), and the configuration
//! read from the environment (`config`).
//!
//! May call: nothing of slitter's (the bottom layer). Files, bottom up:
//! errno, random, os_memory, writer, fatal, lock,
//! tagged_stack, config.

pub(crate) mod config;
pub(crate) mod errno;
pub(crate) mod fatal;
pub(crate) mod lock;
pub(crate) mod os_memory;
pub(crate) mod random;
pub(crate) mod tagged_stack;
pub(crate) mod writer;
