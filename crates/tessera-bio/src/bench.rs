//! `tessera bio bench-samples`: the gain of asking for the Thought Graph's `s` samples as one request with
//! `n = s` (the local backend decodes them as one left-padded batch, `tessera_llm::engine`) over `s` requests
//! with `n = 1` decoded one after another. Timings only; correctness is tested elsewhere.
use crate::error::{BioError, Result};
use crate::thought_graph::{first_prompt, Asker, SYSTEM};
use serde::Serialize;
use std::time::Instant;
use tessera_llm::ChatModel;

/// What one comparison measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SampleBench {
    /// The backend.
    pub backend: String,
    /// Samples `s`.
    pub samples: usize,
    /// Token limit per sample.
    pub max_tokens: usize,
    /// Repetitions (the best time of each mode is kept).
    pub repeats: usize,
    /// Seconds for one request with `n = s`.
    pub batched_s: f64,
    /// Seconds for `s` requests with `n = 1`.
    pub sequential_s: f64,
    /// `sequential_s / batched_s`.
    pub speedup: f64,
    /// Completion tokens of the batched request.
    pub batched_tokens: usize,
    /// Completion tokens of the sequential requests.
    pub sequential_tokens: usize,
    /// Completion tokens per second, batched.
    pub batched_tokens_per_s: f64,
    /// Completion tokens per second, sequential.
    pub sequential_tokens_per_s: f64,
}

/// Runs the layer-1 Thought Graph prompt for `genes` both ways, `repeats` times each (temperature 1).
pub fn bench_samples(
    model: &dyn ChatModel,
    genes: &[String],
    samples: usize,
    max_tokens: usize,
    repeats: usize,
) -> Result<SampleBench> {
    if !(1..=tessera_llm::types::MAX_N).contains(&samples)
        || repeats == 0
        || max_tokens == 0
        || repeats > 100
    {
        return Err(BioError::invalid(format!(
            "samples must be 1..={}, repeats 1..=100 and max_tokens at least 1",
            tessera_llm::types::MAX_N
        )));
    }
    let prompt = first_prompt(genes);
    let (mut best_b, mut best_s) = (f64::INFINITY, f64::INFINITY);
    let (mut tok_b, mut tok_s) = (0, 0);
    for r in 0..repeats {
        let mut a = Asker::new(model, r as u64);
        let t0 = Instant::now();
        a.ask(SYSTEM, &prompt, samples, 1.0, max_tokens)?;
        let dt = t0.elapsed().as_secs_f64();
        if dt < best_b {
            (best_b, tok_b) = (dt, a.cost.completion_tokens);
        }
        let mut a = Asker::new(model, 1000 + r as u64);
        let t0 = Instant::now();
        for _ in 0..samples {
            a.ask(SYSTEM, &prompt, 1, 1.0, max_tokens)?;
        }
        let dt = t0.elapsed().as_secs_f64();
        if dt < best_s {
            (best_s, tok_s) = (dt, a.cost.completion_tokens);
        }
    }
    Ok(SampleBench {
        backend: model.name(),
        samples,
        max_tokens,
        repeats,
        batched_s: best_b,
        sequential_s: best_s,
        speedup: best_s / best_b.max(1e-9),
        batched_tokens: tok_b,
        sequential_tokens: tok_s,
        batched_tokens_per_s: tok_b as f64 / best_b.max(1e-9),
        sequential_tokens_per_s: tok_s as f64 / best_s.max(1e-9),
    })
}
