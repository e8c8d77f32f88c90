//! The local model worker pool: a bounded job queue in front of dedicated OS threads that run the blocking,
//! CPU-bound generation of `tessera-lm` (never on the async executor).
//!
//! Each job streams [`Event`]s back through a channel; when the receiver is dropped (the HTTP client went away, the
//! caller's future was dropped) the job is cancelled at its next token, or skipped if it has not started yet.
//!
//! Dynamic batching: a worker that picks a non-streamed greedy job also takes every queued job with the same
//! sampling parameters (up to `max_batch`) and runs them as one left-padded batch (`tessera_lm::generate_batch`),
//! which turns many memory-bound matrix-vector products into one matrix product per step.
//!
//! Admission control: every job's peak memory is estimated with [`MemoryModel`] from its prompt length, batch
//! size and `max_tokens`. A job that could never fit the memory budget is refused at submission
//! ([`tessera_lm::LmError::OverBudget`]); a job that does not fit now waits until running jobs release their
//! memory; a batch (`n` > 1) larger than what fits is run in sub-batches; merged batches only grow while they fit.
//! The sum of the estimates of running jobs plus the resident model never exceeds the budget.
use crate::error::{LlmError, Result};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;
use tessera_lm::limits::{self, MemoryModel};
use tessera_lm::{FinishReason, Generation, Llama, LmError, SamplingParams};
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
    /// `n` > 1 jobs run in several sub-batches to fit the memory budget.
    pub split_jobs: u64,
    /// Memory budget for jobs, bytes (the total budget less the resident model).
    pub budget_bytes: u64,
    /// Estimated bytes of the jobs running now.
    pub reserved_bytes: u64,
    /// Largest `reserved_bytes` seen.
    pub peak_reserved_bytes: u64,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    paused: bool,
    closed: bool,
    /// Estimated bytes of running jobs.
    reserved: u64,
}

struct Shared {
    queue: Mutex<Queue>,
    mem: MemoryModel,
    /// Bytes jobs may take together.
    budget: u64,
    split_jobs: AtomicU64,
    reserved_now: AtomicU64,
    peak_reserved: AtomicU64,
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

/// Most worker threads of one engine.
pub const MAX_WORKERS: usize = 256;

/// How to build an [`Engine`] (`tessera serve`'s options).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// Generation worker threads (at least 1).
    pub workers: usize,
    /// Most jobs waiting for a worker.
    pub queue: usize,
    /// Most queued greedy jobs merged into one batch (1 = no merging).
    pub max_batch: usize,
    /// Total memory budget in bytes, the model included (`None`: [`limits::default_memory_budget`]).
    pub memory_budget: Option<u64>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            workers: 1,
            queue: 64,
            max_batch: 8,
            memory_budget: None,
        }
    }
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

    /// Like [`Engine::new`], merging up to `max_batch` queued non-streamed greedy jobs into one batch, with the
    /// default memory budget ([`limits::default_memory_budget`]).
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
        let mem = MemoryModel::for_runtime(&model.config);
        let budget = limits::default_memory_budget(mem.resident_bytes());
        Self::with_memory_hooks(model, workers, capacity, max_batch, mem, budget, hooks)
    }

    /// An engine built from `c`, with the runtime's memory model ([`MemoryModel::for_runtime`]).
    pub fn from_config(model: Arc<Llama>, c: &EngineConfig) -> Result<Self> {
        Self::from_config_with_hooks(model, c, None)
    }

    /// [`Engine::from_config`] running every job with a fresh layer hook from `hooks` (e.g. FFN skipping;
    /// see [`Engine::with_hooks`]).
    pub fn from_config_with_hooks(
        model: Arc<Llama>,
        c: &EngineConfig,
        hooks: Option<tessera_lm::LayerHookFactory>,
    ) -> Result<Self> {
        let mem = MemoryModel::for_runtime(&model.config);
        let budget = c
            .memory_budget
            .unwrap_or_else(|| limits::default_memory_budget(mem.resident_bytes()));
        Self::with_memory_hooks(model, c.workers, c.queue, c.max_batch, mem, budget, hooks)
    }

    /// Like [`Engine::with_batching`] with an explicit memory model and a total memory budget in bytes (the
    /// resident model included). Fails when the budget does not even hold the model.
    pub fn with_memory(
        model: Arc<Llama>,
        workers: usize,
        capacity: usize,
        max_batch: usize,
        mem: MemoryModel,
        budget_bytes: u64,
    ) -> Result<Self> {
        Self::with_memory_hooks(model, workers, capacity, max_batch, mem, budget_bytes, None)
    }

    /// [`Engine::with_memory`] with a layer hook per job ([`Engine::with_hooks`]).
    pub fn with_memory_hooks(
        model: Arc<Llama>,
        workers: usize,
        capacity: usize,
        max_batch: usize,
        mem: MemoryModel,
        budget_bytes: u64,
        hooks: Option<tessera_lm::LayerHookFactory>,
    ) -> Result<Self> {
        model.tokenizer()?;
        if !(1..=MAX_WORKERS).contains(&workers) {
            return Err(LlmError::Config(format!(
                "workers {workers} out of range 1..={MAX_WORKERS}"
            )));
        }
        let resident = mem.resident_bytes();
        if budget_bytes <= resident {
            return Err(LlmError::Config(format!(
                "memory budget of {budget_bytes} bytes does not exceed the model's own {resident} bytes"
            )));
        }
        let shared = Arc::new(Shared {
            queue: Mutex::default(),
            mem,
            budget: budget_bytes - resident,
            split_jobs: AtomicU64::new(0),
            reserved_now: AtomicU64::new(0),
            peak_reserved: AtomicU64::new(0),
            wake: Condvar::new(),
            queued: AtomicUsize::new(0),
            active: AtomicUsize::new(0),
            completed: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            generated_tokens: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            batched_jobs: AtomicU64::new(0),
        });
        let max_batch = max_batch.max(1);
        let handles = (0..workers)
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

    /// The memory model used for admission.
    pub fn memory_model(&self) -> &MemoryModel {
        &self.shared.mem
    }

    /// Bytes jobs may take together (the total budget less the resident model).
    pub fn job_budget(&self) -> u64 {
        self.shared.budget
    }

    /// Checks that `n` completions of a `prompt_len`-token prompt with these parameters are valid for the
    /// model's context and can fit the memory budget (at worst one completion at a time). The same check runs in
    /// every `submit_*`.
    pub fn admit(&self, prompt_len: usize, n: usize, params: &SamplingParams) -> Result<()> {
        limits::check_generation(self.context_len(), prompt_len, params)?;
        if n == 0 {
            return Err(LlmError::Invalid("n must be at least 1".into()));
        }
        let need = self.shared.mem.job_bytes(1, prompt_len, params.max_tokens);
        if need > self.shared.budget {
            return Err(LmError::OverBudget {
                needed: need,
                budget: self.shared.budget,
                why: "use a shorter prompt or fewer max_tokens".into(),
            }
            .into());
        }
        Ok(())
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
        match &work {
            Work::Stream(p) | Work::Plain(p) => self.admit(p.len(), 1, &params)?,
            Work::Batch(ps) => {
                let longest = ps.iter().map(Vec::len).max().unwrap_or(0);
                if ps.iter().any(Vec::is_empty) {
                    return Err(LlmError::Invalid("empty prompt in batch".into()));
                }
                self.admit(longest, ps.len(), &params)?
            }
        }
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
            split_jobs: s.split_jobs.load(Ordering::SeqCst),
            budget_bytes: s.budget,
            reserved_bytes: s.reserved_now.load(Ordering::SeqCst),
            peak_reserved_bytes: s.peak_reserved.load(Ordering::SeqCst),
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

fn prompt_len(w: &Work) -> usize {
    match w {
        Work::Stream(p) | Work::Plain(p) => p.len(),
        Work::Batch(ps) => ps.iter().map(Vec::len).max().unwrap_or(0),
    }
}

/// Jobs taken together, the bytes reserved for them, and the sub-batch size of a `Batch` job.
struct Taken {
    jobs: Vec<Job>,
    reserved: u64,
    split: usize,
}

/// Takes the next job (waiting while paused, empty, or while the head job does not fit the memory left) plus,
/// for a greedy plain job, every compatible queued one that still fits. `None` once the engine is closed and
/// drained.
fn next_jobs(shared: &Shared, max_batch: usize) -> Option<Taken> {
    let mem = &shared.mem;
    let mut q = shared.queue.lock().ok()?;
    loop {
        if !q.paused {
            let free = shared.budget.saturating_sub(q.reserved);
            let head_fits = q
                .jobs
                .front()
                .map(|j| mem.job_bytes(1, prompt_len(&j.work), j.params.max_tokens) <= free);
            if head_fits == Some(true) {
                let first = q.jobs.pop_front().expect("head exists");
                let mt = first.params.max_tokens;
                let mut longest = prompt_len(&first.work);
                let (reserved, split) = match &first.work {
                    Work::Batch(ps) => {
                        let k = mem.max_batch_within(ps.len(), longest, mt, free).max(1);
                        (mem.job_bytes(k, longest, mt), k)
                    }
                    _ => (mem.job_bytes(1, longest, mt), 1),
                };
                let mut taken = Taken {
                    jobs: vec![first],
                    reserved,
                    split,
                };
                let first = &taken.jobs[0];
                let greedy_plain =
                    matches!(first.work, Work::Plain(_)) && first.params.temperature <= 0.0;
                if greedy_plain {
                    let mut i = 0;
                    while i < q.jobs.len() && taken.jobs.len() < max_batch {
                        let j = &q.jobs[i];
                        let len = longest.max(prompt_len(&j.work));
                        let grown = mem.job_bytes(taken.jobs.len() + 1, len, mt);
                        if matches!(j.work, Work::Plain(_))
                            && same_params(&j.params, &taken.jobs[0].params)
                            && grown <= free
                        {
                            taken.jobs.extend(q.jobs.remove(i));
                            taken.reserved = grown;
                            longest = len;
                        } else {
                            i += 1;
                        }
                    }
                }
                q.reserved += taken.reserved;
                shared.reserved_now.store(q.reserved, Ordering::SeqCst);
                shared.peak_reserved.fetch_max(q.reserved, Ordering::SeqCst);
                shared.queued.fetch_sub(taken.jobs.len(), Ordering::SeqCst);
                return Some(taken);
            }
            if q.jobs.is_empty() && q.closed {
                return None;
            }
        }
        q = match shared.wake.wait_timeout(q, Duration::from_millis(200)) {
            Ok((g, _)) => g,
            Err(_) => return None,
        };
    }
}

fn release(shared: &Shared, bytes: u64) {
    if let Ok(mut q) = shared.queue.lock() {
        q.reserved = q.reserved.saturating_sub(bytes);
        shared.reserved_now.store(q.reserved, Ordering::SeqCst);
    }
    shared.wake.notify_all();
}

fn worker_loop(
    model: &Llama,
    shared: &Shared,
    max_batch: usize,
    hooks: Option<&tessera_lm::LayerHookFactory>,
) {
    while let Some(Taken {
        jobs,
        reserved,
        split,
    }) = next_jobs(shared, max_batch)
    {
        let (live, gone): (Vec<Job>, Vec<Job>) =
            jobs.into_iter().partition(|j| !j.events.is_closed());
        shared
            .cancelled
            .fetch_add(gone.len() as u64, Ordering::SeqCst);
        if live.is_empty() {
            release(shared, reserved);
            continue;
        }
        shared.active.fetch_add(live.len(), Ordering::SeqCst);
        let out = if live.len() == 1 {
            run_job(model, shared, &live[0], split, hooks).map(|g| vec![g])
        } else {
            shared.batches.fetch_add(1, Ordering::SeqCst);
            shared
                .batched_jobs
                .fetch_add(live.len() as u64, Ordering::SeqCst);
            run_merged(model, &live, hooks)
        };
        shared.active.fetch_sub(live.len(), Ordering::SeqCst);
        release(shared, reserved);
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

/// Runs one job; a batch runs in sub-batches of `split` prompts (sub-batch `c` samples with seed `seed + c`, so
/// rows of different sub-batches never repeat each other's random streams).
fn run_job(
    model: &Llama,
    shared: &Shared,
    job: &Job,
    split: usize,
    hooks: Option<&tessera_lm::LayerHookFactory>,
) -> tessera_lm::Result<Vec<Generation>> {
    let mut hook = hooks.map(|f| f());
    match &job.work {
        Work::Stream(prompt) | Work::Plain(prompt) => {
            let events = &job.events;
            let mut on_text = |piece: &str| events.send(Event::Text(piece.to_string())).is_ok();
            let g = tessera_lm::generate_with(
                model,
                prompt,
                &job.params,
                hook.as_deref_mut().map(|h| h as _),
                &mut on_text,
            )?;
            Ok(vec![g])
        }
        Work::Batch(prompts) if split >= prompts.len() => tessera_lm::generate_batch_with(
            model,
            prompts,
            &job.params,
            hook.as_deref_mut().map(|h| h as _),
        ),
        Work::Batch(prompts) => {
            shared.split_jobs.fetch_add(1, Ordering::SeqCst);
            let mut out = Vec::with_capacity(prompts.len());
            for (c, part) in prompts.chunks(split.max(1)).enumerate() {
                if job.events.is_closed() {
                    break;
                }
                let mut p = job.params.clone();
                p.seed = p.seed.wrapping_add(c as u64);
                out.extend(tessera_lm::generate_batch_with(
                    model,
                    part,
                    &p,
                    hook.as_deref_mut().map(|h| h as _),
                )?);
            }
            Ok(out)
        }
    }
}
