//! A small fork-join pool whose workers spin between the decode kernels instead of sleeping.
//!
//! Decoding one token runs about 200 matrix-vector products, each a few tens of microseconds on two cores. Handed to
//! rayon, every product wakes the sleeping workers through the kernel (futex wake, context switch) and lets them
//! fall asleep again before the next one: measured with `perf` on SmolLM2 that scheduling took about a third of the
//! decode time on the quantized path. Like llama.cpp's compute threads, the workers here poll for the next product
//! for a short while ([`SPIN`]) before they park on a condition variable, so back-to-back kernels never touch the
//! scheduler, and an idle process holds no busy thread.
//!
//! [`parallel_for`] splits `0..tasks` dynamically (an atomic counter) between the calling thread and the workers and
//! returns when every task has run. One job runs at a time; a caller that finds the pool busy (another thread is
//! decoding) or is itself inside a job runs its tasks on rayon instead, so nesting and concurrency stay correct.
//! The pool has `rayon::current_num_threads() − 1` workers (the caller is the last thread), fixed at first use.
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long an idle worker polls for the next job before it parks.
pub const SPIN: Duration = Duration::from_micros(400);

/// A job's task function, with its lifetime erased (see the safety argument in [`parallel_for`]).
type TaskFn = *const (dyn Fn(usize) + Sync);

struct Shared {
    /// Incremented once per job; workers run one job per value they observe.
    epoch: AtomicUsize,
    /// The next task index to hand out.
    next: AtomicUsize,
    /// Tasks in the current job.
    tasks: AtomicUsize,
    /// Workers that have finished the current job.
    done: AtomicUsize,
    /// Workers parked on `cv`.
    sleepers: AtomicUsize,
    /// A task panicked on a worker during the current job.
    worker_panicked: AtomicBool,
    /// The current job's task function (set before `epoch` is published, cleared after `done` is complete).
    func: Mutex<Option<SendPtr>>,
    park: Mutex<()>,
    cv: Condvar,
}

#[derive(Clone, Copy)]
struct SendPtr(TaskFn);
// SAFETY: the pointee is `Sync` and outlives every use (see `parallel_for`).
unsafe impl Send for SendPtr {}

struct Pool {
    shared: &'static Shared,
    workers: usize,
    /// Held while a job runs.
    busy: AtomicBool,
}

thread_local! {
    /// Whether this thread is running pool tasks (a nested `parallel_for` then falls back to rayon).
    static IN_JOB: Cell<bool> = const { Cell::new(false) };
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let shared: &'static Shared = Box::leak(Box::new(Shared {
            epoch: AtomicUsize::new(0),
            next: AtomicUsize::new(0),
            tasks: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            sleepers: AtomicUsize::new(0),
            worker_panicked: AtomicBool::new(false),
            func: Mutex::new(None),
            park: Mutex::new(()),
            cv: Condvar::new(),
        }));
        let want = rayon::current_num_threads().saturating_sub(1);
        let mut workers = 0;
        for i in 0..want {
            let spawned = std::thread::Builder::new()
                .name(format!("tessera-kernel-{i}"))
                .spawn(move || worker(shared));
            if spawned.is_ok() {
                workers += 1;
            }
        }
        Pool {
            shared,
            workers,
            busy: AtomicBool::new(false),
        }
    })
}

/// Takes tasks until none are left; a panicking task is caught (and reported to the caller) so that the job still
/// completes and no thread keeps using the closure.
fn run_tasks(s: &Shared, f: &(dyn Fn(usize) + Sync)) -> std::thread::Result<()> {
    let n = s.tasks.load(Acquire);
    IN_JOB.with(|c| c.set(true));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| loop {
        let i = s.next.fetch_add(1, AcqRel);
        if i >= n {
            break;
        }
        f(i);
    }));
    if r.is_err() {
        // Let the other threads stop early.
        s.next.store(usize::MAX / 2, SeqCst);
    }
    IN_JOB.with(|c| c.set(false));
    r
}

fn worker(s: &'static Shared) {
    let mut seen = 0usize;
    loop {
        let start = Instant::now();
        let mut polls = 0u32;
        loop {
            if s.epoch.load(SeqCst) != seen {
                break;
            }
            std::hint::spin_loop();
            polls += 1;
            if polls.is_multiple_of(256) && start.elapsed() > SPIN {
                let g = s.park.lock().unwrap_or_else(|e| e.into_inner());
                s.sleepers.fetch_add(1, SeqCst);
                let mut g = g;
                while s.epoch.load(SeqCst) == seen {
                    g = s.cv.wait(g).unwrap_or_else(|e| e.into_inner());
                }
                s.sleepers.fetch_sub(1, SeqCst);
                drop(g);
                break;
            }
        }
        seen = s.epoch.load(SeqCst);
        let f = s
            .func
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map(|p| p.0);
        if let Some(f) = f {
            // SAFETY: `parallel_for` keeps the closure alive until every worker has counted itself done.
            if run_tasks(s, unsafe { &*f }).is_err() {
                s.worker_panicked.store(true, SeqCst);
            }
        }
        s.done.fetch_add(1, AcqRel);
    }
}

/// Runs `f(0) … f(tasks − 1)`, each exactly once, spread over the calling thread and the pool's workers; returns
/// when all have run. Tasks must not depend on each other's order.
pub fn parallel_for(tasks: usize, f: &(dyn Fn(usize) + Sync)) {
    if tasks == 0 {
        return;
    }
    let p = pool();
    let nested = IN_JOB.with(|c| c.get());
    if tasks == 1 || p.workers == 0 || nested || p.busy.swap(true, Acquire) {
        use rayon::prelude::*;
        if tasks == 1 || p.workers == 0 {
            (0..tasks).for_each(f);
        } else {
            (0..tasks).into_par_iter().for_each(f);
        }
        return;
    }
    let s = p.shared;
    // SAFETY of the lifetime erasure: the pointer is published below and read by workers only between this
    // job's epoch increment and their `done` increment; this function waits for all `done` increments and clears
    // the pointer before it returns, so `f` outlives every use.
    let erased: TaskFn = unsafe { std::mem::transmute::<&(dyn Fn(usize) + Sync), TaskFn>(f) };
    *s.func.lock().unwrap_or_else(|e| e.into_inner()) = Some(SendPtr(erased));
    s.next.store(0, SeqCst);
    s.tasks.store(tasks, SeqCst);
    s.done.store(0, SeqCst);
    s.worker_panicked.store(false, SeqCst);
    s.epoch.fetch_add(1, SeqCst);
    if s.sleepers.load(SeqCst) > 0 {
        let _g = s.park.lock().unwrap_or_else(|e| e.into_inner());
        s.cv.notify_all();
    }
    let mine = run_tasks(s, f);
    let mut polls = 0u32;
    while s.done.load(Acquire) < p.workers {
        polls += 1;
        if polls < 4096 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
    *s.func.lock().unwrap_or_else(|e| e.into_inner()) = None;
    let theirs = s.worker_panicked.load(SeqCst);
    p.busy.store(false, Release);
    if let Err(e) = mine {
        std::panic::resume_unwind(e);
    }
    if theirs {
        panic!("a decode kernel task panicked on a pool worker");
    }
}

/// Splits `out` into consecutive chunks of `chunk` elements (the last may be shorter) and runs
/// `f(chunk_index, chunk)` for each with [`parallel_for`].
pub fn parallel_chunks_mut<T: Send>(
    out: &mut [T],
    chunk: usize,
    f: &(dyn Fn(usize, &mut [T]) + Sync),
) {
    let chunk = chunk.max(1);
    let len = out.len();
    let tasks = len.div_ceil(chunk);
    let base = SendMut(out.as_mut_ptr());
    parallel_for(tasks, &|c| {
        let start = c * chunk;
        let n = chunk.min(len - start);
        let b = base;
        // SAFETY: task `c` is the only one touching `start..start + n`, which lies inside `out`, and `out` is
        // borrowed mutably for the whole call.
        let part = unsafe { std::slice::from_raw_parts_mut(b.0.add(start), n) };
        f(c, part);
    });
}

/// Runs `f(i, parts[i])` for every part with [`parallel_for`]: one fork-join over disjoint output slices of any
/// lengths (the fused projections of the one-token decode path write q, k and v in one job).
pub fn parallel_parts_mut<T: Send>(parts: Vec<&mut [T]>, f: &(dyn Fn(usize, &mut [T]) + Sync)) {
    let ptrs: Vec<(SendMut<T>, usize)> = parts
        .into_iter()
        .map(|p| (SendMut(p.as_mut_ptr()), p.len()))
        .collect();
    parallel_for(ptrs.len(), &|i| {
        let (b, n) = ptrs[i];
        // SAFETY: the parts were distinct `&mut` slices, borrowed for the whole call, and task `i` is the only one
        // touching part `i`.
        let part = unsafe { std::slice::from_raw_parts_mut(b.0, n) };
        f(i, part);
    });
}

struct SendMut<T>(*mut T);
impl<T> Clone for SendMut<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SendMut<T> {}
// SAFETY: used only to hand out disjoint sub-slices of a `&mut [T]` with `T: Send`.
unsafe impl<T: Send> Send for SendMut<T> {}
// SAFETY: as above; each task derives its own disjoint slice.
unsafe impl<T: Send> Sync for SendMut<T> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_runs_exactly_once_also_nested_and_concurrent() {
        for n in [0usize, 1, 2, 7, 1000] {
            let hits: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
            parallel_for(n, &|i| {
                hits[i].fetch_add(1, SeqCst);
                // A nested job runs too (on rayon).
                let inner = AtomicUsize::new(0);
                parallel_for(3, &|_| {
                    inner.fetch_add(1, SeqCst);
                });
                assert_eq!(inner.load(SeqCst), 3);
            });
            assert!(hits.iter().all(|h| h.load(SeqCst) == 1), "n = {n}");
        }
        // Two threads submitting at once: one uses the pool, the other falls back; both complete.
        let total = AtomicUsize::new(0);
        std::thread::scope(|sc| {
            for _ in 0..2 {
                sc.spawn(|| {
                    for _ in 0..200 {
                        parallel_for(16, &|_| {
                            total.fetch_add(1, SeqCst);
                        });
                    }
                });
            }
        });
        assert_eq!(total.load(SeqCst), 2 * 200 * 16);
    }

    #[test]
    fn chunks_are_disjoint_and_cover_the_slice() {
        let mut v = vec![0usize; 1003];
        parallel_chunks_mut(&mut v, 64, &|c, part| {
            for (i, x) in part.iter_mut().enumerate() {
                *x = c * 64 + i;
            }
        });
        assert!(v.iter().enumerate().all(|(i, &x)| i == x));
    }

    #[test]
    fn a_panicking_task_reaches_the_caller_and_the_pool_keeps_working() {
        let r = std::panic::catch_unwind(|| {
            parallel_for(64, &|i| {
                if i == 40 {
                    panic!("task 40");
                }
            })
        });
        assert!(r.is_err());
        let n = AtomicUsize::new(0);
        parallel_for(64, &|_| {
            n.fetch_add(1, SeqCst);
        });
        assert_eq!(n.load(SeqCst), 64);
    }
}
