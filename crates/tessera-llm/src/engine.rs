//! The local model worker pool: a bounded job queue in front of dedicated OS threads that run the blocking,
//! CPU-bound generation of `tessera-lm` (never on the async executor).
//!
//! Each job streams [`Event`]s back through a channel; when the receiver is dropped (the HTTP client went away, the
//! caller's future was dropped) the job is cancelled at its next token, or skipped if it has not started yet.
use crate::error::{LlmError, Result};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
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
}

#[derive(Default)]
struct Shared {
    queued: AtomicUsize,
    active: AtomicUsize,
    completed: AtomicU64,
    cancelled: AtomicU64,
    failed: AtomicU64,
    generated_tokens: AtomicU64,
    paused: Mutex<bool>,
    resumed: Condvar,
}

/// A model behind `workers` generation threads and a queue of at most `capacity` waiting jobs.
pub struct Engine {
    model: Arc<Llama>,
    tx: Mutex<Option<mpsc::Sender<Job>>>,
    shared: Arc<Shared>,
    capacity: usize,
    workers: Vec<std::thread::JoinHandle<()>>,
}

impl Engine {
    /// Starts `workers` (at least 1) threads over `model`; at most `capacity` jobs may wait.
    pub fn new(model: Arc<Llama>, workers: usize, capacity: usize) -> Result<Self> {
        model.tokenizer()?;
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let shared = Arc::new(Shared::default());
        let handles = (0..workers.max(1))
            .map(|i| {
                let (rx, shared, model) = (rx.clone(), shared.clone(), model.clone());
                std::thread::Builder::new()
                    .name(format!("tessera-llm-worker-{i}"))
                    .spawn(move || worker_loop(&model, &rx, &shared))
                    .map_err(|e| LlmError::Config(format!("cannot start worker thread: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Engine {
            model,
            tx: Mutex::new(Some(tx)),
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
        let sent = match self.tx.lock() {
            Ok(g) => g.as_ref().map(|tx| tx.send(job).is_ok()).unwrap_or(false),
            Err(_) => false,
        };
        if !sent {
            self.shared.queued.fetch_sub(1, Ordering::SeqCst);
            return Err(LlmError::Config("the model workers have stopped".into()));
        }
        Ok(rx)
    }

    /// Holds the workers before their next job (jobs keep queueing). For maintenance and for tests that need a
    /// full queue deterministically.
    pub fn pause(&self) {
        if let Ok(mut p) = self.shared.paused.lock() {
            *p = true;
        }
    }

    /// Lets the workers go on.
    pub fn resume(&self) {
        if let Ok(mut p) = self.shared.paused.lock() {
            *p = false;
        }
        self.shared.resumed.notify_all();
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
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Ok(mut g) = self.tx.lock() {
            g.take();
        }
        self.resume();
        for h in self.workers.drain(..) {
            let _ = h.join();
        }
    }
}

fn wait_while_paused(shared: &Shared) {
    let Ok(mut p) = shared.paused.lock() else {
        return;
    };
    while *p {
        match shared.resumed.wait_timeout(p, Duration::from_millis(50)) {
            Ok((g, _)) => p = g,
            Err(_) => return,
        }
    }
}

fn worker_loop(model: &Llama, rx: &Mutex<mpsc::Receiver<Job>>, shared: &Shared) {
    loop {
        let job = {
            let Ok(guard) = rx.lock() else { return };
            match guard.recv() {
                Ok(j) => j,
                Err(_) => return,
            }
        };
        wait_while_paused(shared);
        shared.queued.fetch_sub(1, Ordering::SeqCst);
        if job.events.is_closed() {
            shared.cancelled.fetch_add(1, Ordering::SeqCst);
            continue;
        }
        shared.active.fetch_add(1, Ordering::SeqCst);
        let out = run_job(model, &job);
        shared.active.fetch_sub(1, Ordering::SeqCst);
        match out {
            Ok(gens) => {
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
            Err(e) => {
                shared.failed.fetch_add(1, Ordering::SeqCst);
                let _ = job.events.send(Event::Failed(e.to_string()));
            }
        }
    }
}

fn run_job(model: &Llama, job: &Job) -> tessera_lm::Result<Vec<Generation>> {
    match &job.work {
        Work::Stream(prompt) => {
            let events = &job.events;
            let mut on_text = |piece: &str| events.send(Event::Text(piece.to_string())).is_ok();
            let g = tessera_lm::generate(model, prompt, &job.params, &mut on_text)?;
            Ok(vec![g])
        }
        Work::Batch(prompts) => tessera_lm::generate_batch(model, prompts, &job.params),
    }
}
