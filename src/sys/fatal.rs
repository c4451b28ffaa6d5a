//! Fatal error reporting: one `slitter:` line on stderr, then `abort()`.
//!
//! Owns: the only way the allocator stops the process. The message is
//! formatted into a fixed buffer on the stack (no heap allocation: this code
//! runs when the heap itself is in doubt, and while slitter may be the
//! process's malloc) and written with `write(2)`. Nothing here panics or
//! unwinds; a message longer than the buffer is truncated.

use core::fmt::{self, Write};

const BUFFER_SIZE: usize = 512;

/// A fixed-capacity line buffer that silently truncates.
struct LineBuffer {
    bytes: [u8; BUFFER_SIZE],
    len: usize,
}

impl Write for LineBuffer {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Keep one byte for the final newline.
        let room = BUFFER_SIZE - 1 - self.len;
        let take = s.len().min(room);
        self.bytes[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        Ok(())
    }
}

/// Formats `slitter: <message>\n` into a stack buffer and writes it to
/// stderr, without allocating.
pub fn report(message: fmt::Arguments<'_>) {
    let mut line = LineBuffer {
        bytes: [0; BUFFER_SIZE],
        len: 0,
    };
    // `LineBuffer::write_str` never fails, so neither can this.
    let _ = line.write_str("slitter: ");
    let _ = line.write_fmt(message);
    line.bytes[line.len] = b'\n';
    line.len += 1;
    // Nothing better can be done when stderr fails.
    let _ = crate::sys::writer::write_all(libc::STDERR_FILENO, &line.bytes[..line.len]);
}

/// Reports `message` and aborts the process.
#[cold]
#[inline(never)]
pub fn die(message: fmt::Arguments<'_>) -> ! {
    report(message);
    // SAFETY: abort takes no argument and does not return.
    unsafe { libc::abort() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_truncated_not_overflowed() {
        let mut line = LineBuffer {
            bytes: [0; BUFFER_SIZE],
            len: 0,
        };
        for _ in 0..100 {
            write!(line, "0123456789").unwrap();
        }
        assert_eq!(line.len, BUFFER_SIZE - 1);
    }
}
