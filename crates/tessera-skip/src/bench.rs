//! `tessera bench skip`: decode speed of the full model vs FFN skipping, side by side in one process on the same
//! prompts. Each repetition decodes every prompt greedily for a fixed number of steps (end-of-sequence ignored, so
//! both sides decode exactly as many tokens) first in full, then with skipping, interleaved; the reported speeds
//! are the medians over repetitions of each side's decode tokens/s (decoding forward steps only, timed by the
//! hook; the prefill is excluded).
use crate::error::{Result, SkipError};
use crate::ffn_skip::{FfnSkipConfig, FfnSkipHook, SkipMode, SkipStats};
use serde::{Deserialize, Serialize};
use tessera_lm::{Cache, Forward, Input, LayerHook, Llama, SequenceInfo};

/// Settings of the benchmark.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchSkipConfig {
    /// Prompts (token ids), decoded in turn.
    pub prompts: Vec<Vec<u32>>,
    /// Decode steps per prompt.
    pub steps: usize,
    /// Repetitions (medians reported).
    pub reps: usize,
    /// The skipping rule measured against the full model.
    pub rule: FfnSkipConfig,
    /// Compute threads (reported; the caller sets them up before the model runs).
    pub threads: usize,
}

/// The benchmark's result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchSkipResult {
    /// Median decode tokens/s of the full model.
    pub full_tokens_per_s: f64,
    /// Median decode tokens/s with skipping.
    pub skip_tokens_per_s: f64,
    /// `skip_tokens_per_s / full_tokens_per_s`.
    pub speedup: f64,
    /// Skipped share of the decode FFN blocks.
    pub skipped_fraction: f64,
    /// Per repetition: (full, skip) tokens/s.
    pub reps: Vec<(f64, f64)>,
    /// Prompts.
    pub prompts: usize,
    /// Decode steps per prompt.
    pub steps: usize,
    /// Threads.
    pub threads: usize,
    /// The rule.
    pub rule: FfnSkipConfig,
}

/// Most decode steps per prompt.
pub const MAX_STEPS: usize = 4096;

/// Greedy decoding of `steps` tokens after `prompt` through `hook` (end-of-sequence ignored).
pub fn decode_fixed(
    model: &Llama,
    prompt: &[u32],
    steps: usize,
    hook: &mut dyn LayerHook,
) -> Result<()> {
    if prompt.is_empty() {
        return Err(SkipError::invalid("empty prompt"));
    }
    hook.begin_sequence(&SequenceInfo::new(&[prompt], steps));
    let mut cache = Cache::new(model.config.num_hidden_layers);
    let mut feed = prompt.to_vec();
    for i in 0..=steps {
        let ids = candle_core::Tensor::new(feed.as_slice(), model.device())?.unsqueeze(0)?;
        let logits = model.forward(
            Input::Ids(&ids),
            Forward {
                cache: Some(&mut cache),
                last_only: true,
                hook: Some(&mut *hook),
                generated: (i > 0).then(|| i - 1),
                ..Default::default()
            },
        )?;
        if i == steps {
            break;
        }
        let row: Vec<f32> = logits.flatten_all()?.to_vec1()?;
        let next = row
            .iter()
            .enumerate()
            .fold(0, |b, (j, &l)| if l > row[b] { j } else { b });
        feed = vec![next as u32];
    }
    Ok(())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Runs the benchmark; `progress` is told `(repetitions done, repetitions)`.
pub fn run(
    model: &Llama,
    cfg: &BenchSkipConfig,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<BenchSkipResult> {
    if cfg.prompts.is_empty() || cfg.reps == 0 || cfg.steps < 2 || cfg.steps > MAX_STEPS {
        return Err(SkipError::invalid(format!(
            "need at least one prompt, --reps >= 1 and --steps in 2..={MAX_STEPS}"
        )));
    }
    let layers = model.config.num_hidden_layers;
    let full_cfg = FfnSkipConfig {
        mode: SkipMode::Full,
        ..cfg.rule.clone()
    };
    for p in &cfg.prompts {
        tessera_lm::limits::check_generation(
            model.config.max_position_embeddings,
            p.len(),
            &tessera_lm::SamplingParams {
                max_tokens: cfg.steps + 1,
                ..Default::default()
            },
        )?;
    }
    // Warm-up: touch every weight once.
    decode_fixed(
        model,
        &cfg.prompts[0],
        2,
        &mut FfnSkipHook::new(&full_cfg, layers)?,
    )?;
    let (mut reps, mut skip_all) = (vec![], SkipStats::default());
    for r in 0..cfg.reps {
        let (mut full, mut skip) = (SkipStats::default(), SkipStats::default());
        for p in &cfg.prompts {
            let mut h = FfnSkipHook::new(&full_cfg, layers)?;
            decode_fixed(model, p, cfg.steps, &mut h)?;
            full.merge(h.stats());
            let mut h = FfnSkipHook::new(&cfg.rule, layers)?;
            decode_fixed(model, p, cfg.steps, &mut h)?;
            skip.merge(h.stats());
        }
        let tps = |s: &SkipStats| s.decode_steps as f64 / s.decode_seconds.max(1e-12);
        reps.push((tps(&full), tps(&skip)));
        skip_all.merge(&skip);
        progress(r + 1, cfg.reps);
    }
    let f = median(reps.iter().map(|r| r.0).collect());
    let s = median(reps.iter().map(|r| r.1).collect());
    Ok(BenchSkipResult {
        full_tokens_per_s: f,
        skip_tokens_per_s: s,
        speedup: s / f,
        skipped_fraction: skip_all.skipped_fraction(),
        reps,
        prompts: cfg.prompts.len(),
        steps: cfg.steps,
        threads: cfg.threads,
        rule: cfg.rule.clone(),
    })
}

impl std::fmt::Display for BenchSkipResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} prompts × {} decode steps, {} reps (median), {} threads; rule: {} τ={} budget={}",
            self.prompts,
            self.steps,
            self.reps.len(),
            self.threads,
            self.rule.mode,
            self.rule.threshold,
            self.rule.budget
        )?;
        writeln!(f, "  full  {:>8.2} tok/s", self.full_tokens_per_s)?;
        writeln!(
            f,
            "  skip  {:>8.2} tok/s  ({:.1}% of decode FFN blocks skipped)",
            self.skip_tokens_per_s,
            100.0 * self.skipped_fraction
        )?;
        write!(f, "  ratio {:>8.3}x", self.speedup)
    }
}
