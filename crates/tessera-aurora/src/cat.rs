//! Stage 2, Continual Alignment Tuning (CAT) — Aurora-M (arXiv 2404.00399) §3 and Fig. 2: after CAP, a shorter
//! stage whose mix shifts toward instruction and safety data (the Biden-Harris red-team set, refusals with
//! explanations).
//!
//! Here: a mix of three kinds, sampled by weight ([`default_mix`]: `safety=0.4,benign=0.4,text=0.2`): harmful
//! training prompts of [`crate::redteam`] answered with the area's refusal, benign instructions with helpful
//! answers, and replay windows of the CAP text mixture. Chat examples are rendered with the model's ChatML
//! template and only the assistant's tokens (its reply and the closing `<|im_end|>`) carry loss; text windows
//! carry loss on every token.
use crate::cap::{self, StageInfo};
use crate::error::{AuroraError, Result};
use crate::mixture::{Mixture, MixtureCursor, Weights};
use crate::redteam::{self, Split};
use crate::train::{self, Example, ExampleSource, RunControl, TrainOutcome, TrainSpec};
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use tessera_lm::{ChatMessage, Llama};

/// Names of the CAT mix components.
pub const KINDS: [&str; 3] = ["safety", "benign", "text"];

/// The default CAT mix.
pub fn default_mix() -> Weights {
    "safety=0.4,benign=0.4,text=0.2"
        .parse()
        .expect("static mix")
}

/// Settings of `tessera aurora cat`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatConfig {
    /// Model to tune: a CAP output directory (its split seed and text mix are reused) or any model.
    pub model: String,
    /// Optimisation settings.
    pub train: TrainSpec,
    /// Weights of `safety`, `benign` and `text`.
    pub mix: Weights,
    /// Longest chat example in tokens (longer ones are cut).
    pub max_len: usize,
    /// Split seed when the model is not a CAP directory.
    pub split_seed: u64,
    /// Output directory.
    pub out: PathBuf,
    /// Continue the run in `out`.
    pub resume: bool,
    /// Checkpoint every this many steps.
    pub checkpoint_every: u64,
    /// Stop after this many steps in this invocation.
    pub pause_after: Option<u64>,
    /// Never download.
    pub offline: bool,
}

impl Default for CatConfig {
    fn default() -> Self {
        let mut t = cap::CapConfig::default().train;
        t.steps = 50;
        t.warmup_steps = 5;
        CatConfig {
            model: "runs/aurora-cap".into(),
            train: t,
            mix: default_mix(),
            max_len: 160,
            split_seed: 0,
            out: PathBuf::from("runs/aurora-cat"),
            resume: false,
            checkpoint_every: 25,
            pause_after: None,
            offline: false,
        }
    }
}

/// Result of a CAT run (`result.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatResult {
    /// Settings as run.
    pub config: CatConfig,
    /// Training examples per kind (harmful prompts, benign prompts, text windows available).
    pub examples: BTreeMap<String, usize>,
    /// Examples drawn per kind.
    pub drawn: BTreeMap<String, u64>,
    /// The training loop's outcome.
    pub train: TrainOutcome,
    /// Output directory.
    pub out: PathBuf,
}

/// A chat example with the assistant-only loss mask: the rendered prompt (system, user, assistant header) has
/// weight 0, the reply and its closing `<|im_end|>` weight 1. `None` when the prompt leaves no room for a reply
/// token within `max_len`.
pub fn chat_example(
    model: &Llama,
    prompt: &str,
    answer: &str,
    max_len: usize,
    stream: &str,
) -> Result<Option<Example>> {
    let tok = model.tokenizer()?;
    let prefix = tok
        .template
        .render(&[ChatMessage::new("user", prompt)], true);
    let mut ids = tok.encode_plain(&prefix)?;
    let n_prompt = ids.len();
    ids.extend(tok.encode_plain(&format!("{answer}<|im_end|>"))?);
    if n_prompt + 1 >= max_len.min(ids.len()) {
        return Ok(None);
    }
    ids.truncate(max_len);
    let weights = (0..ids.len())
        .map(|j| if j >= n_prompt { 1.0 } else { 0.0 })
        .collect();
    Ok(Some(Example {
        stream: stream.into(),
        ids,
        weights,
    }))
}

/// Every chat example CAT can train on: refusals for the harmful training prompts, answers for the benign ones;
/// also how many were left out because their prompt does not fit in `max_len`.
pub fn chat_examples(
    model: &Llama,
    split: &Split,
    max_len: usize,
) -> Result<(Vec<Example>, Vec<Example>, usize)> {
    let (mut safety, mut benign, mut skipped) = (Vec::new(), Vec::new(), 0);
    let mut count: BTreeMap<redteam::Area, usize> = BTreeMap::new();
    for h in &split.train_harmful {
        let i = count.entry(h.area).or_default();
        let answer = redteam::refusal_for(h.area, *i);
        match chat_example(model, &h.text, answer, max_len, "safety")? {
            Some(e) => safety.push(e),
            None => skipped += 1,
        }
        *i += 1;
    }
    for (p, a) in &split.train_benign {
        match chat_example(model, p, a, max_len, "benign")? {
            Some(e) => benign.push(e),
            None => skipped += 1,
        }
    }
    Ok((safety, benign, skipped))
}

/// CAT's example source.
pub struct CatSource {
    kinds: Vec<Vec<Example>>,
    order: Vec<Vec<usize>>,
    next: Vec<usize>,
    epochs: Vec<u64>,
    seed: u64,
    cumulative: Vec<f64>,
    text: Mixture,
    /// Examples drawn per kind.
    pub drawn: BTreeMap<String, u64>,
}

#[derive(Serialize, Deserialize)]
struct CatPosition {
    next: Vec<usize>,
    epochs: Vec<u64>,
    text: MixtureCursor,
    drawn: BTreeMap<String, u64>,
}

fn order(n: usize, seed: u64, kind: usize, epoch: u64) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    v.shuffle(&mut tessera_core::rng::derived(
        seed,
        &format!("aurora/cat/{kind}/{epoch}"),
    ));
    v
}

impl CatSource {
    /// Chat sets `safety` and `benign`, the text replay mixture, and the mix weights.
    pub fn new(
        safety: Vec<Example>,
        benign: Vec<Example>,
        text: Mixture,
        mix: &Weights,
        seed: u64,
    ) -> Result<Self> {
        mix.validate()?;
        for k in mix.0.keys() {
            if !KINDS.contains(&k.as_str()) {
                return Err(AuroraError::invalid(format!(
                    "unknown CAT mix part `{k}` (known: safety, benign, text)"
                )));
            }
        }
        let p = mix.probabilities();
        let mut acc = 0.0;
        let cumulative = KINDS
            .iter()
            .map(|k| {
                acc += p.get(*k).copied().unwrap_or(0.0);
                acc
            })
            .collect();
        let kinds = vec![safety, benign];
        for (i, k) in kinds.iter().enumerate() {
            if k.is_empty() && p.get(KINDS[i]).is_some_and(|&w| w > 0.0) {
                return Err(AuroraError::invalid(format!(
                    "the CAT mix weights `{}` but it has no examples",
                    KINDS[i]
                )));
            }
        }
        Ok(CatSource {
            order: kinds
                .iter()
                .enumerate()
                .map(|(i, k)| order(k.len(), seed, i, 0))
                .collect(),
            next: vec![0; 2],
            epochs: vec![0; 2],
            kinds,
            seed,
            cumulative,
            text,
            drawn: BTreeMap::new(),
        })
    }
}

impl ExampleSource for CatSource {
    fn next_example(&mut self, rng: &mut tessera_core::rng::Rng) -> Result<Example> {
        use rand::Rng as _;
        let u = rng.gen::<f64>() * self.cumulative[2];
        let k = self.cumulative.iter().position(|&c| u < c).unwrap_or(2);
        *self.drawn.entry(KINDS[k].to_string()).or_default() += 1;
        if k == 2 {
            let w = self.text.next_window(rng);
            return Ok(Example {
                weights: vec![1.0; w.ids.len()],
                ids: w.ids,
                stream: format!("text-{}", w.stream),
            });
        }
        if self.next[k] == self.kinds[k].len() {
            self.epochs[k] += 1;
            self.next[k] = 0;
            self.order[k] = order(self.kinds[k].len(), self.seed, k, self.epochs[k]);
        }
        let e = self.kinds[k][self.order[k][self.next[k]]].clone();
        self.next[k] += 1;
        Ok(e)
    }
    fn position(&self) -> serde_json::Value {
        serde_json::to_value(CatPosition {
            next: self.next.clone(),
            epochs: self.epochs.clone(),
            text: self.text.cursor().clone(),
            drawn: self.drawn.clone(),
        })
        .unwrap_or_default()
    }
    fn restore(&mut self, v: &serde_json::Value) -> Result<()> {
        let p: CatPosition = serde_json::from_value(v.clone())?;
        if p.next.len() != 2 || p.epochs.len() != 2 {
            return Err(AuroraError::invalid("malformed CAT data position"));
        }
        self.text.restore(&p.text)?;
        for k in 0..2 {
            self.order[k] = order(self.kinds[k].len(), self.seed, k, p.epochs[k]);
        }
        self.next = p.next;
        self.epochs = p.epochs;
        self.drawn = p.drawn;
        Ok(())
    }
}

/// Runs CAT on `cfg.model` with the harmful prompts `harmful` (see [`redteam::load_harmful`]).
pub fn run_with(cfg: &CatConfig, harmful: &[redteam::HarmfulPrompt]) -> Result<CatResult> {
    cfg.train.validate()?;
    cfg.mix.validate()?;
    let path = tessera_core::assets::resolve_model(&cfg.model, cfg.offline)?;
    let info = cap::stage_info(&path).unwrap_or(StageInfo {
        stage: "base".into(),
        base_model: cfg.model.clone(),
        split_seed: cfg.split_seed,
        weights: crate::mixture::Weights::default_cap(),
        window: 128,
        streams: vec![],
        code_bytes: crate::mixture::DEFAULT_CODE_BYTES,
    });
    let mut model = tessera_lm::load(&path)?;
    let split = redteam::split(harmful, info.split_seed);
    if cfg.max_len < 2 || cfg.max_len > model.max_positions() {
        return Err(AuroraError::invalid(format!(
            "--max-len must be in [2, {}] for this model, got {}",
            model.max_positions(),
            cfg.max_len
        )));
    }
    let (safety, benign, skipped) = chat_examples(&model, &split, cfg.max_len)?;
    let text_on = cfg.mix.0.get("text").is_some_and(|&w| w > 0.0);
    let text = if text_on {
        cap::build_mixture(
            &model,
            &info.weights,
            info.window,
            info.split_seed,
            info.code_bytes,
            &info.streams,
        )?
    } else {
        Mixture::new(vec![("none".into(), vec![0, 0])], &"none=1".parse()?, 2)?
    };
    let examples = BTreeMap::from([
        ("safety".to_string(), safety.len()),
        ("benign".to_string(), benign.len()),
        ("skipped_too_long".to_string(), skipped),
        (
            "text_windows_per_epoch".to_string(),
            text.buffer_tokens()
                .values()
                .map(|n| n / info.window.max(1))
                .sum(),
        ),
    ]);
    let mut src = CatSource::new(safety, benign, text, &cfg.mix, cfg.train.seed)?;
    let identity = serde_json::json!({
        "stage": "cat", "model": cfg.model, "train": cfg.train, "mix": cfg.mix, "max_len": cfg.max_len,
        "split_seed": info.split_seed, "harmful_prompts": split.train_harmful.len(),
    });
    let ctl = RunControl {
        out: cfg.out.clone(),
        resume: cfg.resume,
        checkpoint_every: cfg.checkpoint_every,
        pause_after: cfg.pause_after,
    };
    let outcome = train::train(&mut model, &cfg.train, &identity, &mut src, &ctl, "cat")?;
    if outcome.finished {
        train::save_model_into(&mut model, &cfg.out)?;
    }
    let out_info = StageInfo {
        stage: "cat".into(),
        base_model: cfg.model.clone(),
        ..info
    };
    tessera_core::fsx::write_json_atomic(cfg.out.join("aurora.json"), &out_info)?;
    let r = CatResult {
        config: cfg.clone(),
        examples,
        drawn: src.drawn.clone(),
        train: outcome,
        out: cfg.out.clone(),
    };
    tessera_core::fsx::write_json_atomic(cfg.out.join("result.json"), &r)?;
    Ok(r)
}

/// Runs CAT with the red-team prompts of the asset step.
pub fn run(cfg: &CatConfig) -> Result<CatResult> {
    let harmful = redteam::load_harmful(cfg.offline)?;
    run_with(cfg, &harmful)
}
