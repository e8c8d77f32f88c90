//! The local model worker pool: a bounded job queue in front of dedicated OS threads that run the blocking,
//! CPU-bound generation of `tessera-lm` (never on the async executor).
//!
//! Each job streams [`Event`]s back through a channel; when the receiver is dropped (the HTTP client went away, the
//! caller's future was dropped) the job is cancelled at its next token, or skipped if it has not started yet.
//!
//! Dynamic batching: a worker that picks a non-streamed greedy job also takes every queued job with the same
//! sampling parameters (up to `max_batch`) and runs them as one left-padded batch (`tessera_lm::generate_batch`),
//! which turns many memory-bound matrix-vector products into one matrix product per step.
use crate::error::{LlmError, Result};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;
use tessera_lm::{FinishReason, Generation, Llama, SamplingParams};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

/// What a job sends back.
#[derive(Debug)]
pub enum Event {
    /// A final piece of streamed text.
    Text(String),
    /// The finished generation(s): one for a streaming job, `prompts.len()` for a batch job.
    Done(Vec<Generation>),
    /// The runtime failed.
    Failed(String),
}

/// One unit of work.
enum Work {
    /// One prompt, streamed, cancellable.
    Stream(Vec<u32>),
    /// One prompt, not streamed: may join other queued greedy jobs in a batch.
    Plain(Vec<u32>),
    /// Several prompts in one left-padded batch (not streamed).
    Batch(Vec<Vec<u32>>),
}

struct Job {
    work: Work,
    params: SamplingParams,
    events: UnboundedSender<Event>,
}

/// Counters, for `/health` and tests.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct EngineStats {
    /// Jobs waiting for a worker.
    pub queued: usize,
    /// Jobs being generated.
    pub active: usize,
    /// Jobs finished normally.
    pub completed: u64,
    /// Jobs cancelled (client gone before or during generation).
    pub cancelled: u64,
    /// Jobs the runtime failed on.
    pub failed: u64,
    /// Tokens generated in total.
    pub generated_tokens: u64,
    /// Batches of two or more merged jobs run.
    pub batches: u64,
    /// Jobs that ran inside such batches.
    pub batched_jobs: u64,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    paused: bool,
    closed: bool,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    /// Signalled on a new job, resume and close.
    wake: Condvar,
    queued: AtomicUsize,
    active: AtomicUsize,
    completed: AtomicU64,
    cancelled: AtomicU64,
    failed: AtomicU64,
    generated_tokens: AtomicU64,
    batches: AtomicU64,
    batched_jobs: AtomicU64,
}

/// A model behind `workers` generation threads and a queue of at most `capacity` waiting jobs.
pub struct Engine {
    model: Arc<Llama>,
    shared: Arc<Shared>,
    capacity: usize,
    workers: Vec<std::thread::JoinHandle<()>>,
}

impl Engine {
    /// Starts `workers` (at least 1) threads over `model`; at most `capacity` jobs may wait. No batching.
    pub fn new(model: Arc<Llama>, workers: usize, capacity: usize) -> Result<Self> {
        Self::with_batching(model, workers, capacity, 1)
    }

    /// Like [`Engine::new`], merging up to `max_batch` queued non-streamed greedy jobs into one batch.
    pub fn with_batching(
        model: Arc<Llama>,
        workers: usize,
        capacity: usize,
        max_batch: usize,
    ) -> Result<Self> {
        Self::with_hooks(model, workers, capacity, max_batch, None)
    }

    /// Like [`Engine::with_batching`], running every job (a generation, or a merged batch) with a fresh
    /// [`tessera_lm::LayerHook`] from `hooks` inside every block (e.g. FFN skipping).
    pub fn with_hooks(
        model: Arc<Llama>,
        workers: usize,
        capacity: usize,
        max_batch: usize,
        hooks: Option<tessera_lm::LayerHookFactory>,
    ) -> Result<Self> {
        model.tokenizer()?;
        let shared = Arc::new(Shared::default());
        let max_batch = max_batch.max(1);
        let handles = (0..workers.max(1))
            .map(|i| {
                let (shared, model, hooks) = (shared.clone(), model.clone(), hooks.clone());
                std::thread::Builder::new()
                    .name(format!("tessera-llm-worker-{i}"))
                    .spawn(move || worker_loop(&model, &shared, max_batch, hooks.as_ref()))
                    .map_err(|e| LlmError::Config(format!("cannot start worker thread: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Engine {
            model,
            shared,
            capacity,
            workers: handles,
        })
    }

    /// The model.
    pub fn model(&self) -> &Llama {
        &self.model
    }

    /// Context length of the model (prompt + completion tokens).
    pub fn context_len(&self) -> usize {
        self.model.config.max_position_embeddings.max(1)
    }

    /// Queues one streamed generation. Fails with [`LlmError::Overloaded`] when the queue is full.
    pub fn submit_stream(
        &self,
        prompt: Vec<u32>,
        params: SamplingParams,
    ) -> Result<UnboundedReceiver<Event>> {
        self.submit(Work::Stream(prompt), params)
    }

    /// Queues one non-streamed prompt; it may run batched with other queued greedy prompts.
    pub fn submit_plain(
        &self,
        prompt: Vec<u32>,
        params: SamplingParams,
    ) -> Result<UnboundedReceiver<Event>> {
        self.submit(Work::Plain(prompt), params)
    }

    /// Queues one batch of prompts (one queue slot). Fails with [`LlmError::Overloaded`] when the queue is full.
    pub fn submit_batch(
        &self,
        prompts: Vec<Vec<u32>>,
        params: SamplingParams,
    ) -> Result<UnboundedReceiver<Event>> {
        self.submit(Work::Batch(prompts), params)
    }

    fn submit(&self, work: Work, params: SamplingParams) -> Result<UnboundedReceiver<Event>> {
        let admitted = self
            .shared
            .queued
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |q| {
                (q < self.capacity).then_some(q + 1)
            });
        if let Err(q) = admitted {
            return Err(LlmError::Overloaded(q));
        }
        let (events, rx) = unbounded_channel();
        let job = Job {
            work,
            params,
            events,
        };
        let sent = match self.shared.queue.lock() {
            Ok(mut q) if !q.closed => {
                q.jobs.push_back(job);
                true
            }
            _ => false,
        };
        self.shared.wake.notify_one();
        if !sent {
            self.shared.queued.fetch_sub(1, Ordering::SeqCst);
            return Err(LlmError::Config("the model workers have stopped".into()));
        }
        Ok(rx)
    }

    /// Holds the workers before their next job (jobs keep queueing). For maintenance and for tests that need a
    /// full queue deterministically.
    pub fn pause(&self) {
        if let Ok(mut q) = self.shared.queue.lock() {
            q.paused = true;
        }
    }

    /// Lets the workers go on.
    pub fn resume(&self) {
        if let Ok(mut q) = self.shared.queue.lock() {
            q.paused = false;
        }
        self.shared.wake.notify_all();
    }

    /// Current counters.
    pub fn stats(&self) -> EngineStats {
        let s = &self.shared;
        EngineStats {
            queued: s.queued.load(Ordering::SeqCst),
            active: s.active.load(Ordering::SeqCst),
            completed: s.completed.load(Ordering::SeqCst),
            cancelled: s.cancelled.load(Ordering::SeqCst),
            failed: s.failed.load(Ordering::SeqCst),
            generated_tokens: s.generated_tokens.load(Ordering::SeqCst),
            batches: s.batches.load(Ordering::SeqCst),
            batched_jobs: s.batched_jobs.load(Ordering::SeqCst),
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Ok(mut q) = self.shared.queue.lock() {
            q.closed = true;
            q.paused = false;
        }
        self.shared.wake.notify_all();
        for h in self.workers.drain(..) {
            let _ = h.join();
        }
    }
}

fn same_params(a: &SamplingParams, b: &SamplingParams) -> bool {
    a.max_tokens == b.max_tokens
        && a.temperature == b.temperature
        && a.top_k == b.top_k
        && a.top_p == b.top_p
        && a.stop == b.stop
        && a.top_logprobs == b.top_logprobs
}

/// Takes the next job (waiting while paused or empty) plus, for a greedy plain job, every compatible queued one.
/// `None` once the engine is closed and drained.
fn next_jobs(shared: &Shared, max_batch: usize) -> Option<Vec<Job>> {
    let mut q = shared.queue.lock().ok()?;
    loop {
        if !q.paused {
            if let Some(first) = q.jobs.pop_front() {
                let mut batch = vec![first];
                let greedy_plain =
                    matches!(batch[0].work, Work::Plain(_)) && batch[0].params.temperature <= 0.0;
                if greedy_plain {
                    let mut i = 0;
                    while i < q.jobs.len() && batch.len() < max_batch {
                        let j = &q.jobs[i];
                        if matches!(j.work, Work::Plain(_))
                            && same_params(&j.params, &batch[0].params)
                        {
                            batch.extend(q.jobs.remove(i));
                        } else {
                            i += 1;
                        }
                    }
                }
                shared.queued.fetch_sub(batch.len(), Ordering::SeqCst);
                return Some(batch);
            }
            if q.closed {
                return None;
            }
        }
        q = match shared.wake.wait_timeout(q, Duration::from_millis(200)) {
            Ok((g, _)) => g,
            Err(_) => return None,
        };
    }
}

fn worker_loop(
    model: &Llama,
    shared: &Shared,
    max_batch: usize,
    hooks: Option<&tessera_lm::LayerHookFactory>,
) {
    while let Some(jobs) = next_jobs(shared, max_batch) {
        let (live, gone): (Vec<Job>, Vec<Job>) =
            jobs.into_iter().partition(|j| !j.events.is_closed());
        shared
            .cancelled
            .fetch_add(gone.len() as u64, Ordering::SeqCst);
        if live.is_empty() {
            continue;
        }
        shared.active.fetch_add(live.len(), Ordering::SeqCst);
        let out = if live.len() == 1 {
            run_job(model, &live[0], hooks).map(|g| vec![g])
        } else {
            shared.batches.fetch_add(1, Ordering::SeqCst);
            shared
                .batched_jobs
                .fetch_add(live.len() as u64, Ordering::SeqCst);
            run_merged(model, &live, hooks)
        };
        shared.active.fetch_sub(live.len(), Ordering::SeqCst);
        match out {
            Ok(per_job) => {
                for (job, gens) in live.iter().zip(per_job) {
                    finish(shared, job, gens);
                }
            }
            Err(e) => {
                for job in &live {
                    shared.failed.fetch_add(1, Ordering::SeqCst);
                    let _ = job.events.send(Event::Failed(e.to_string()));
                }
            }
        }
    }
}

fn finish(shared: &Shared, job: &Job, gens: Vec<Generation>) {
    let toks: usize = gens.iter().map(|g| g.tokens.len()).sum();
    shared
        .generated_tokens
        .fetch_add(toks as u64, Ordering::SeqCst);
    let cancelled = gens
        .iter()
        .any(|g| g.finish_reason == FinishReason::Cancelled);
    let counter = if cancelled {
        &shared.cancelled
    } else {
        &shared.completed
    };
    counter.fetch_add(1, Ordering::SeqCst);
    let _ = job.events.send(Event::Done(gens));
}

/// Several compatible plain jobs as one batch; one generation per job.
fn run_merged(
    model: &Llama,
    jobs: &[Job],
    hooks: Option<&tessera_lm::LayerHookFactory>,
) -> tessera_lm::Result<Vec<Vec<Generation>>> {
    let prompts: Vec<Vec<u32>> = jobs
        .iter()
        .map(|j| match &j.work {
            Work::Plain(p) | Work::Stream(p) => p.clone(),
            Work::Batch(_) => Vec::new(),
        })
        .collect();
    let mut hook = hooks.map(|f| f());
    let gens = tessera_lm::generate_batch_with(
        model,
        &prompts,
        &jobs[0].params,
        hook.as_deref_mut().map(|h| h as _),
    )?;
    Ok(gens.into_iter().map(|g| vec![g]).collect())
}

fn run_job(
    model: &Llama,
    job: &Job,
    hooks: Option<&tessera_lm::LayerHookFactory>,
) -> tessera_lm::Result<Vec<Generation>> {
    let mut hook = hooks.map(|f| f());
    let hook = hook.as_deref_mut().map(|h| h as _);
    match &job.work {
        Work::Stream(prompt) | Work::Plain(prompt) => {
            let events = &job.events;
            let mut on_text = |piece: &str| events.send(Event::Text(piece.to_string())).is_ok();
            let g = tessera_lm::generate_with(model, prompt, &job.params, hook, &mut on_text)?;
            Ok(vec![g])
        }
        Work::Batch(prompts) => tessera_lm::generate_batch_with(model, prompts, &job.params, hook),
    }
}
