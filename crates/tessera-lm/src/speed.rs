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
    tessera_core::mem::peak_rss_bytes().map(|b| b as f64 / (1024.0 * 1024.0))
}

/// Time and memory of one training step (forward + backward, no optimizer update).
#[derive(Debug, Clone, Serialize)]
pub struct StepCost {
    /// Whether base parameters were frozen ([`crate::Grad::Adapters`]) or trainable ([`crate::Grad::All`]).
    pub freeze_base: bool,
    /// Wall time of forward + backward, seconds.
    pub seconds: f64,
    /// Peak resident memory during the step minus resident memory before it, MiB (Linux only).
    pub peak_extra_mb: Option<f64>,
    /// Number of tensors that received a gradient.
    pub gradients: usize,
}

/// One next-token cross-entropy step on `tokens` (length ≥ 2), measuring time and the peak memory it adds.
/// The model is expected to carry LoRA adapters; with `freeze_base` only they (and no base weight) get gradients.
pub fn train_step_cost(model: &Llama, tokens: &[u32], freeze_base: bool) -> Result<StepCost> {
    let before = tessera_core::mem::rss_bytes();
    let reset = tessera_core::mem::reset_peak_rss();
    let t0 = Instant::now();
    let grads = model.next_token_loss(tokens, freeze_base)?.backward()?;
    let seconds = t0.elapsed().as_secs_f64();
    let peak = tessera_core::mem::peak_rss_bytes();
    let mut vars: Vec<candle_core::Var> = model.named_vars().into_iter().map(|(_, v)| v).collect();
    vars.extend(model.lora_vars());
    let gradients = vars.iter().filter(|v| grads.get(v).is_some()).count();
    let peak_extra_mb = match (reset, before, peak) {
        (true, Some(b), Some(p)) => Some(p.saturating_sub(b) as f64 / (1024.0 * 1024.0)),
        _ => None,
    };
    Ok(StepCost {
        freeze_base,
        seconds,
        peak_extra_mb,
        gradients,
    })
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
