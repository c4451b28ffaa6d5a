//! Formatted output without allocating, for slitter's reports (statistics,
//! configuration, warnings).
//!
//! Owns: [`Output`], a fixed buffer that implements `core::fmt::Write` and
//! hands each full buffer to a [`Sink`]: a file descriptor (`write(2)`) or
//! a C `FILE` (`fwrite`); and [`write_all`], the `write(2)` loop.
//!
//! Invariants: nothing here allocates (this code runs inside malloc, and
//! while slitter may be the process's malloc); bytes reach the sink in the
//! order written; after the sink's first error, later output is dropped
//! and that error is what [`Output::finish`] returns.

use core::fmt;

use crate::sys::errno::last_errno;

/// Where an [`Output`] sends its bytes.
#[derive(Clone, Copy)]
pub enum Sink {
    /// A file descriptor, written with `write(2)`.
    Fd(i32),
    /// A C stream, written with `fwrite` (which may call malloc: never
    /// hold a slitter lock while writing to one). Only `malloc_info`
    /// writes to one, so only with the `malloc` feature.
    #[cfg(feature = "malloc")]
    File(*mut libc::FILE),
}

const BUFFER_SIZE: usize = 1024;

/// A buffered writer to a [`Sink`] that never allocates.
pub struct Output {
    sink: Sink,
    buffer: [u8; BUFFER_SIZE],
    len: usize,
    /// The errno of the sink's first failure.
    error: Option<i32>,
}

/// Writes all of `bytes` to `fd`, retrying after interruptions and short
/// writes; the errno of a failure.
pub fn write_all(fd: i32, mut bytes: &[u8]) -> Result<(), i32> {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is a valid slice for reading.
        let ret = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if ret < 0 {
            let errno = last_errno();
            if errno == libc::EINTR {
                continue;
            }
            return Err(errno);
        }
        if ret == 0 {
            return Err(libc::EIO);
        }
        bytes = &bytes[ret as usize..];
    }
    Ok(())
}

impl Output {
    /// An empty output to `sink`.
    pub fn new(sink: Sink) -> Self {
        Output {
            sink,
            buffer: [0; BUFFER_SIZE],
            len: 0,
            error: None,
        }
    }

    fn flush(&mut self) {
        let bytes = &self.buffer[..self.len];
        self.len = 0;
        if self.error.is_some() || bytes.is_empty() {
            return;
        }
        let result = match self.sink {
            Sink::Fd(fd) => write_all(fd, bytes),
            #[cfg(feature = "malloc")]
            Sink::File(file) => {
                // SAFETY: the caller of `Output::new` passed a valid stream;
                // `bytes` is valid for reading.
                let written = unsafe { libc::fwrite(bytes.as_ptr().cast(), 1, bytes.len(), file) };
                if written == bytes.len() {
                    Ok(())
                } else {
                    Err(match last_errno() {
                        0 => libc::EIO,
                        errno => errno,
                    })
                }
            }
        };
        self.error = result.err();
    }

    /// Sends what is buffered to the sink; the errno of the sink's first
    /// failure, if any.
    pub fn finish(mut self) -> Result<(), i32> {
        self.flush();
        match self.error {
            Some(errno) => Err(errno),
            None => Ok(()),
        }
    }
}

impl fmt::Write for Output {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut bytes = s.as_bytes();
        while !bytes.is_empty() {
            if self.len == BUFFER_SIZE {
                self.flush();
            }
            let take = bytes.len().min(BUFFER_SIZE - self.len);
            self.buffer[self.len..self.len + take].copy_from_slice(&bytes[..take]);
            self.len += take;
            bytes = &bytes[take..];
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::fmt::Write;

    /// A pipe whose read end is drained after writing.
    fn pipe() -> (i32, i32) {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        (fds[0], fds[1])
    }

    fn read_all(fd: i32) -> Vec<u8> {
        let mut out = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            // SAFETY: `chunk` is writable for its length.
            let n = unsafe { libc::read(fd, chunk.as_mut_ptr().cast(), chunk.len()) };
            if n <= 0 {
                return out;
            }
            out.extend_from_slice(&chunk[..n as usize]);
        }
    }

    #[test]
    fn output_longer_than_the_buffer_arrives_whole_and_in_order() {
        let (read, write) = pipe();
        let mut output = Output::new(Sink::Fd(write));
        for line in 0..500 {
            writeln!(output, "line {line}").unwrap();
        }
        assert_eq!(output.finish(), Ok(()));
        // SAFETY: closing our own descriptor ends the pipe for the reader.
        unsafe { libc::close(write) };
        let expected: String = (0..500).map(|line| format!("line {line}\n")).collect();
        assert_eq!(String::from_utf8(read_all(read)).unwrap(), expected);
        // SAFETY: our own descriptor.
        unsafe { libc::close(read) };
    }

    #[test]
    fn the_first_error_is_reported() {
        let mut output = Output::new(Sink::Fd(-1));
        write!(output, "{}", "x".repeat(3 * BUFFER_SIZE)).unwrap();
        assert_eq!(output.finish(), Err(libc::EBADF));
    }
}
