//! The training clock: CPU time of the calling thread.
//!
//! Four engineers share two cores on the machine these numbers come from, so the wall-clock time of identical runs
//! varied by up to 80%. Training runs faer single-threaded and charges each phase its thread CPU time
//! (`CLOCK_THREAD_CPUTIME_ID`), which other processes barely disturb. Non-Unix targets fall back to wall time.
use std::time::Instant;

/// Measures elapsed thread CPU time.
#[derive(Debug, Clone, Copy)]
pub struct Stopwatch {
    cpu: f64,
    wall: Instant,
}

#[cfg(unix)]
fn thread_cpu_seconds() -> Option<f64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec and the clock id is a constant supported on Linux and macOS.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then_some(ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9)
}

#[cfg(not(unix))]
fn thread_cpu_seconds() -> Option<f64> {
    None
}

impl Stopwatch {
    /// Starts now.
    pub fn start() -> Self {
        Stopwatch {
            cpu: thread_cpu_seconds().unwrap_or(f64::NAN),
            wall: Instant::now(),
        }
    }
    /// Seconds of thread CPU time since [`Stopwatch::start`] (wall time where unavailable).
    pub fn elapsed(&self) -> f64 {
        match thread_cpu_seconds() {
            Some(now) if self.cpu.is_finite() => now - self.cpu,
            _ => self.wall.elapsed().as_secs_f64(),
        }
    }
}
