//! Helpers shared by the criterion benchmarks: a partner thread that runs
//! the same work as the benchmark thread, at the same time, and the
//! criterion configuration (short measurements: the machine is shared).

use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use criterion::Criterion;

/// A second thread that runs `work(iters)` whenever it is sent `iters`,
/// starting together with the benchmark thread, and sends back its time.
pub struct Partner {
    start: Arc<Barrier>,
    work: Option<mpsc::Sender<u64>>,
    done: mpsc::Receiver<Duration>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Partner {
    /// Starts the partner; it runs `work(warm_up)` once first (unless 0),
    /// to warm its thread cache before the first measurement.
    pub fn spawn(warm_up: u64, work: impl Fn(u64) + Send + 'static) -> Partner {
        let start = Arc::new(Barrier::new(2));
        let (work_tx, work_rx) = mpsc::channel::<u64>();
        let (done_tx, done) = mpsc::channel();
        let barrier = Arc::clone(&start);
        let thread = thread::spawn(move || {
            if warm_up > 0 {
                work(warm_up);
            }
            for iters in work_rx {
                barrier.wait();
                let begin = Instant::now();
                work(iters);
                if done_tx.send(begin.elapsed()).is_err() {
                    break;
                }
            }
        });
        Partner {
            start,
            work: Some(work_tx),
            done,
            thread: Some(thread),
        }
    }

    /// Runs `work(iters)` here and in the partner at the same time; returns
    /// the longer of the two times.
    pub fn run(&self, iters: u64, work: impl Fn(u64)) -> Duration {
        self.work
            .as_ref()
            .expect("partner running")
            .send(iters)
            .expect("partner alive");
        self.start.wait();
        let begin = Instant::now();
        work(iters);
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

/// Short measurements, overridable on the command line
/// (`-- --measurement-time 10`).
pub fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
}
