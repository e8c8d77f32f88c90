//! Speed measurement of the runtime (used by `tessera bench decode` and the tour): prompt processing and greedy
//! decoding timed separately, plus the process's peak resident memory.
use crate::error::Result;
use crate::generate::{sample, SamplingParams};
use crate::model::{Cache, Llama};
use serde::Serialize;
use std::time::Instant;

/// Measured speed of one engine.
#[derive(Debug, Clone, Serialize)]
pub struct DecodeSpeed {
    /// Prompt tokens processed per second (one batched forward).
    pub prompt_tokens_per_s: f64,
    /// Generated tokens per second (one forward per token, KV cache).
    pub decode_tokens_per_s: f64,
    /// Peak resident set size of this process, MiB (Linux `VmHWM`).
    pub peak_rss_mb: Option<f64>,
}

/// Peak resident set size of this process in MiB, where the OS reports it.
pub fn peak_rss_mb() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Times one prompt forward and `steps` greedy decode steps (after a short warm-up).
pub fn measure_decode(model: &Llama, prompt: &[u32], steps: usize) -> Result<DecodeSpeed> {
    let layers = model.config.num_hidden_layers;
    // Warm-up: touch every weight once.
    model.next_logits(&prompt[..prompt.len().min(4)], &mut Cache::new(layers))?;
    let mut cache = Cache::new(layers);
    let t0 = Instant::now();
    let mut row = model.next_logits(prompt, &mut cache)?;
    let prompt_s = t0.elapsed().as_secs_f64();
    let greedy = SamplingParams::default();
    let mut rng = tessera_core::rng::seeded(0);
    let t1 = Instant::now();
    for _ in 0..steps {
        let (next, _) = sample(&row, &greedy, &mut rng);
        row = model.next_logits(&[next], &mut cache)?;
    }
    let decode_s = t1.elapsed().as_secs_f64();
    Ok(DecodeSpeed {
        prompt_tokens_per_s: prompt.len() as f64 / prompt_s,
        decode_tokens_per_s: steps as f64 / decode_s,
        peak_rss_mb: peak_rss_mb(),
    })
}
