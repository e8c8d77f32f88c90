//! Speed measurement of the runtime (used by `tessera bench decode` and the tour): prompt processing and greedy
//! decoding timed separately, plus the process's peak resident memory.
use crate::error::Result;
use crate::generate::{sample, SamplingParams};
use crate::model::{Cache, Forward, Input, Llama};
use candle_core::{Device, Tensor};
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
    let dev = Device::Cpu;
    let layers = model.config.num_hidden_layers;
    // Warm-up: touch every weight once.
    let mut c = Cache::new(layers);
    let warm = Tensor::new(&prompt[..prompt.len().min(4)], &dev)?.unsqueeze(0)?;
    model.forward(
        Input::Ids(&warm),
        Forward {
            cache: Some(&mut c),
            last_only: true,
            ..Default::default()
        },
    )?;
    let mut cache = Cache::new(layers);
    let ids = Tensor::new(prompt, &dev)?.unsqueeze(0)?;
    let t0 = Instant::now();
    let mut logits = model.forward(
        Input::Ids(&ids),
        Forward {
            cache: Some(&mut cache),
            last_only: true,
            ..Default::default()
        },
    )?;
    let prompt_s = t0.elapsed().as_secs_f64();
    let greedy = SamplingParams::default();
    let mut rng = tessera_core::rng::seeded(0);
    let t1 = Instant::now();
    for _ in 0..steps {
        let row: Vec<f32> = logits.flatten_all()?.to_vec1()?;
        let (next, _) = sample(&row, &greedy, &mut rng);
        let step = Tensor::new(&[next], &dev)?.unsqueeze(0)?;
        logits = model.forward(
            Input::Ids(&step),
            Forward {
                cache: Some(&mut cache),
                last_only: true,
                ..Default::default()
            },
        )?;
    }
    let decode_s = t1.elapsed().as_secs_f64();
    Ok(DecodeSpeed {
        prompt_tokens_per_s: prompt.len() as f64 / prompt_s,
        decode_tokens_per_s: steps as f64 / decode_s,
        peak_rss_mb: peak_rss_mb(),
    })
}
