//! Stage 1, Continual Auxiliary Pretraining (CAP) — Aurora-M (Nakamura et al., arXiv 2404.00399, COLING 2025
//! Industry), §3 "Continual pretraining" and Fig. 2: next-token training of a base model on a weighted mixture of
//! language streams (English, Finnish, Hindi, Japanese, Vietnamese, code), AdamW with warm-up and cosine decay.
//!
//! Here: the mixture of [`crate::mixture`] packed into fixed windows, the loop of [`crate::train`] (gradient
//! accumulation, full parameters or LoRA, exact resume), and at the end a model directory in `out` that loads
//! everywhere. The paper trains 15.5B parameters on 377B tokens; this runs a 135M model on a few hundred
//! thousand tokens, so only the direction of the effects can be compared.
use crate::error::Result;
use crate::mixture::{self, Mixture, MixtureCursor, Weights};
use crate::train::{self, Example, ExampleSource, RunControl, TrainOutcome, TrainSpec};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Settings of `tessera aurora cap`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapConfig {
    /// Model name or path.
    pub model: String,
    /// Optimisation settings.
    pub train: TrainSpec,
    /// Stream weights.
    pub weights: Weights,
    /// Window length in tokens.
    pub window: usize,
    /// Users' streams `(name, file)`.
    pub streams: Vec<(String, PathBuf)>,
    /// Seed of the train / held-out split of every stream.
    pub split_seed: u64,
    /// Bytes of Rust source in the `code` stream (0: no code stream).
    pub code_bytes: usize,
    /// Output directory.
    pub out: PathBuf,
    /// Continue the run in `out`.
    pub resume: bool,
    /// Checkpoint every this many steps (0: at the end only).
    pub checkpoint_every: u64,
    /// Stop after this many steps in this invocation (resume later).
    pub pause_after: Option<u64>,
    /// Never download the model.
    pub offline: bool,
}

impl Default for CapConfig {
    fn default() -> Self {
        CapConfig {
            model: tessera_lm::tour::TOUR_MODEL.into(),
            train: TrainSpec {
                steps: 100,
                batch: 4,
                grad_accum: 1,
                lr: 1e-4,
                warmup_steps: 10,
                min_lr_ratio: 0.1,
                weight_decay: 0.0,
                clip_norm: 1.0,
                lora: None,
                seed: 0,
            },
            weights: Weights::default_cap(),
            window: 128,
            streams: vec![],
            split_seed: 0,
            code_bytes: mixture::DEFAULT_CODE_BYTES,
            out: PathBuf::from("runs/aurora-cap"),
            resume: false,
            checkpoint_every: 25,
            pause_after: None,
            offline: false,
        }
    }
}

/// Stage metadata written to `out/aurora.json` (read by CAT and the evaluation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageInfo {
    /// `cap` or `cat`.
    pub stage: String,
    /// The model trained from (name, path or an earlier stage's directory).
    pub base_model: String,
    /// Split seed of the streams and prompt sets.
    pub split_seed: u64,
    /// Stream weights of CAP (carried through CAT for its text replay).
    pub weights: Weights,
    /// Window length.
    pub window: usize,
    /// Users' streams.
    pub streams: Vec<(String, PathBuf)>,
    /// Code bytes.
    pub code_bytes: usize,
}

/// Result of a CAP run (`result.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapResult {
    /// Settings as run.
    pub config: CapConfig,
    /// Stream name → tokens in its training buffer.
    pub stream_tokens: BTreeMap<String, usize>,
    /// Stream name → sampling probability.
    pub probabilities: BTreeMap<String, f64>,
    /// Windows drawn per stream.
    pub windows_by_stream: BTreeMap<String, u64>,
    /// The training loop's outcome (loss curve, loss per stream, tokens/s).
    pub train: TrainOutcome,
    /// The output directory (a model directory once finished).
    pub out: PathBuf,
}

/// CAP's example source: windows of the mixture, every token a target.
pub struct CapSource {
    /// The packed mixture.
    pub mixture: Mixture,
    /// Windows drawn per stream.
    pub counts: BTreeMap<String, u64>,
}

#[derive(Serialize, Deserialize)]
struct CapPosition {
    mixture: MixtureCursor,
    counts: BTreeMap<String, u64>,
}

impl ExampleSource for CapSource {
    fn next_example(&mut self, rng: &mut tessera_core::rng::Rng) -> Result<Example> {
        let w = self.mixture.next_window(rng);
        *self.counts.entry(w.stream.clone()).or_default() += 1;
        Ok(Example {
            weights: vec![1.0; w.ids.len()],
            ids: w.ids,
            stream: w.stream,
        })
    }
    fn position(&self) -> serde_json::Value {
        serde_json::to_value(CapPosition {
            mixture: self.mixture.cursor().clone(),
            counts: self.counts.clone(),
        })
        .unwrap_or_default()
    }
    fn restore(&mut self, v: &serde_json::Value) -> Result<()> {
        let p: CapPosition = serde_json::from_value(v.clone())?;
        self.mixture.restore(&p.mixture)?;
        self.counts = p.counts;
        Ok(())
    }
}

/// Loads the streams, tokenizes and packs them for `model` (the CAP mixture; CAT reuses it as replay).
pub fn build_mixture(
    model: &tessera_lm::Llama,
    weights: &Weights,
    window: usize,
    split_seed: u64,
    code_bytes: usize,
    user: &[(String, PathBuf)],
) -> Result<Mixture> {
    weights.validate()?;
    let wanted_code = weights.0.get("code").is_some_and(|&w| w > 0.0);
    let s = mixture::builtin_streams(split_seed, if wanted_code { code_bytes } else { 0 }, user)?;
    let sep = mixture::separator_id(model)?;
    let mut bufs = Vec::new();
    for t in &s.train {
        if weights.0.get(&t.name).is_some_and(|&w| w > 0.0) {
            bufs.push((t.name.clone(), mixture::pack_stream(model, t, sep)?));
        } else {
            bufs.push((t.name.clone(), vec![sep, sep]));
        }
    }
    Mixture::new(bufs, weights, window)
}

/// Runs CAP: loads the model, trains, writes `out/` (model files, `aurora.json`, `result.json`).
pub fn run(cfg: &CapConfig) -> Result<CapResult> {
    cfg.train.validate()?;
    cfg.weights.validate()?;
    let path = tessera_core::assets::resolve_model(&cfg.model, cfg.offline)?;
    let mut model = tessera_lm::load(&path)?;
    if cfg.window > model.max_positions() {
        return Err(crate::error::AuroraError::invalid(format!(
            "--window {} is longer than the model's {} positions",
            cfg.window,
            model.max_positions()
        )));
    }
    let mixture = build_mixture(
        &model,
        &cfg.weights,
        cfg.window,
        cfg.split_seed,
        cfg.code_bytes,
        &cfg.streams,
    )?;
    let stream_tokens = mixture.buffer_tokens();
    let mut src = CapSource {
        mixture,
        counts: BTreeMap::new(),
    };
    let identity = serde_json::json!({
        "stage": "cap", "model": cfg.model, "train": cfg.train, "weights": cfg.weights, "window": cfg.window,
        "streams": cfg.streams, "split_seed": cfg.split_seed, "code_bytes": cfg.code_bytes,
    });
    let ctl = RunControl {
        out: cfg.out.clone(),
        resume: cfg.resume,
        checkpoint_every: cfg.checkpoint_every,
        pause_after: cfg.pause_after,
    };
    let outcome = train::train(&mut model, &cfg.train, &identity, &mut src, &ctl, "cap")?;
    if outcome.finished {
        train::save_model_into(&mut model, &cfg.out)?;
    }
    let info = StageInfo {
        stage: "cap".into(),
        base_model: cfg.model.clone(),
        split_seed: cfg.split_seed,
        weights: cfg.weights.clone(),
        window: cfg.window,
        streams: cfg.streams.clone(),
        code_bytes: cfg.code_bytes,
    };
    tessera_core::fsx::write_json_atomic(cfg.out.join("aurora.json"), &info)?;
    let r = CapResult {
        config: cfg.clone(),
        probabilities: cfg
            .weights
            .probabilities()
            .into_iter()
            .filter(|(k, _)| stream_tokens.contains_key(k))
            .collect(),
        stream_tokens,
        windows_by_stream: src.counts.clone(),
        train: outcome,
        out: cfg.out.clone(),
    };
    tessera_core::fsx::write_json_atomic(cfg.out.join("result.json"), &r)?;
    Ok(r)
}

/// Reads `dir/aurora.json` when `dir` is an earlier stage's output.
pub fn stage_info(dir: &std::path::Path) -> Option<StageInfo> {
    let p = dir.join("aurora.json");
    let t = std::fs::read_to_string(p).ok()?;
    serde_json::from_str(&t).ok()
}
