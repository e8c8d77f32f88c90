//! FFN-SkipLLM (Jaiswal et al., "FFN-SkipLLM: A Hidden Gem for Autoregressive Decoding with Adaptive Feed Forward
//! Skipping", arXiv:2404.03865, EMNLP 2024), implemented as a [`LayerHook`] of the runtime. The rule follows the
//! first author's code (`Ajay1994/layer-skip`, `llama/model_ffn_cosine.py`; no official release), summarised in
//! `shared/notes/papers/compression.md` §4:
//!
//! - **Cold regions**: the first and last `cold` layers always run their FFN (5 and 5 of 30 for SmolLM2; by
//!   default `round(5·L/30)` for a model of `L` layers, [`default_cold`]).
//! - **Prefill** runs in full. **Warm-up**: the first `max(max_new_tokens / 64, 1)` generated tokens run every FFN.
//!   After the warm-up every `k`-th token (default 6, the authors' `[k, k, k, k, k, 0]` pattern) runs in full.
//! - **The rule** (every other decoded token, independently per token): at each non-cold layer `j`, with
//!   `c = cos(h_out[j−1], h_mid[j−1])` the cosine of the residual stream after vs before the FFN of layer `j−1`,
//!   when `c > τ` (default 0.95) and the token's budget is unused, the next `n` non-cold layers `j, j+1, …` run
//!   attention (their KV cache is written as usual) but skip the FFN (`h_out = h_mid`); the budget is then spent
//!   (one span per token, as in the reference code). Attention always runs, so no KV state is copied or lost.
//! - **Budget**: `n` layers per token ([`Budget`]); a percentage is converted to `n` so that the fraction of decode
//!   FFN blocks skipped is about that percentage once every `k`-th token runs in full
//!   (`n = round(f · L · k / (k − 1))`, the reading of the authors' "10% / 25% / 30%" labels: e.g. 12 of 40 layers
//!   on 5 tokens of 6 is 25%).
//! - **Baseline** ([`SkipMode::RandomSpan`]): on the same tokens, a contiguous span of `n` layers at a uniformly
//!   random start inside the non-cold range, drawn per (prompt, generated position) from the seed and a hash of
//!   the prompt's tokens ([`tessera_lm::hook::prompt_hash`]), so different prompts draw different spans while a
//!   generation and its teacher-forced re-scoring draw the same ones.
//!
//! Deviations from the reference code, all documented in the crate README: layer 0 is never eligible (it has no
//! previous layer to take a cosine of); a span that reaches the last cold region is cut there; batches are
//! supported by deciding per row ([`FfnDecision::PerToken`]); the role of a token (prompt, warm-up, anchor,
//! eligible) is derived from its absolute position and the row's prompt length, so the same hook applies the same
//! rule to a multi-token teacher-forced forward as to token-by-token decoding (each token's decisions depend only on
//! its own residual stream, so both compute the same thing).
use crate::error::{Result, SkipError};
use candle_core::{DType, Tensor};
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;
use tessera_lm::{FfnDecision, LayerHook, LayerHookFactory, LayerSite, SequenceInfo, StepInfo};

/// Default cosine threshold τ.
pub const DEFAULT_THRESHOLD: f64 = 0.95;
/// Default period `k` of fully computed tokens after the warm-up.
pub const DEFAULT_FULL_EVERY: usize = 6;
/// Generated tokens per warm-up token (`max_new_tokens / 64`).
pub const WARMUP_DIVISOR: usize = 64;

/// Which skipping rule a hook applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SkipMode {
    /// Never skip (the full model, with the same statistics and timing).
    Full,
    /// The paper's cosine rule.
    Cosine,
    /// The authors' baseline: a random contiguous span of layers at the same budget.
    RandomSpan,
}

impl fmt::Display for SkipMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SkipMode::Full => "full",
            SkipMode::Cosine => "cosine",
            SkipMode::RandomSpan => "random-span",
        })
    }
}

impl FromStr for SkipMode {
    type Err = SkipError;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "full" | "off" => Ok(SkipMode::Full),
            "cosine" => Ok(SkipMode::Cosine),
            "random-span" | "random" => Ok(SkipMode::RandomSpan),
            o => Err(SkipError::invalid(format!(
                "unknown skip mode `{o}` (expected full, cosine or random-span)"
            ))),
        }
    }
}

/// The per-token skip budget.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Budget {
    /// At most this many FFN blocks per token (one contiguous span).
    Layers(usize),
    /// About this fraction (0..1) of all decode FFN blocks, converted to layers per token (module docs).
    Fraction(f64),
    /// Every non-cold layer.
    All,
}

impl Budget {
    /// Layers per token for a model of `layers` layers with `eligible` non-cold layers and full tokens every
    /// `full_every` tokens.
    pub fn span(&self, layers: usize, eligible: usize, full_every: usize) -> usize {
        let n = match *self {
            Budget::Layers(n) => n,
            Budget::All => eligible,
            Budget::Fraction(f) => {
                let k = full_every as f64;
                let per_token = if full_every > 1 { f * k / (k - 1.0) } else { f };
                (per_token * layers as f64).round() as usize
            }
        };
        n.min(eligible)
    }
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Budget::Layers(n) => write!(f, "{n}"),
            Budget::Fraction(x) => write!(f, "{}%", x * 100.0),
            Budget::All => f.write_str("all"),
        }
    }
}

impl FromStr for Budget {
    type Err = SkipError;
    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("all") {
            return Ok(Budget::All);
        }
        if let Some(p) = t.strip_suffix('%') {
            let v: f64 = p.trim().parse().map_err(|_| {
                SkipError::invalid(format!("budget `{s}`: expected a percentage like 25%"))
            })?;
            if !(v.is_finite() && (0.0..=100.0).contains(&v)) {
                return Err(SkipError::invalid(format!(
                    "budget `{s}` must lie in 0%..=100%"
                )));
            }
            return Ok(Budget::Fraction(v / 100.0));
        }
        t.parse::<usize>().map(Budget::Layers).map_err(|_| {
            SkipError::invalid(format!(
                "budget `{s}`: expected layers per token (e.g. 9), a percentage (25%) or `all`"
            ))
        })
    }
}

/// The default cold region at each end for a model of `layers` layers: 5 of 30, scaled with depth.
pub fn default_cold(layers: usize) -> usize {
    ((5.0 * layers as f64 / 30.0).round() as usize).min(layers / 2)
}

/// Settings of the skipping rule (every number of the method is one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FfnSkipConfig {
    /// Which rule.
    pub mode: SkipMode,
    /// Cosine threshold τ (the FFN of the next layers is skipped when the cosine exceeds it; +∞ never skips).
    pub threshold: f64,
    /// Per-token budget.
    pub budget: Budget,
    /// Layers at the start that always run their FFN (default [`default_cold`]).
    pub cold_first: Option<usize>,
    /// Layers at the end that always run their FFN (default [`default_cold`]).
    pub cold_last: Option<usize>,
    /// After the warm-up every this-many-th token runs in full (0 = never).
    pub full_every: usize,
    /// Warm-up tokens (default `max(max_new_tokens / 64, 1)`).
    pub warmup: Option<usize>,
    /// Seed of the random-span baseline.
    pub seed: u64,
}

impl Default for FfnSkipConfig {
    fn default() -> Self {
        FfnSkipConfig {
            mode: SkipMode::Cosine,
            threshold: DEFAULT_THRESHOLD,
            budget: Budget::Fraction(0.25),
            cold_first: None,
            cold_last: None,
            full_every: DEFAULT_FULL_EVERY,
            warmup: None,
            seed: 0,
        }
    }
}

impl FfnSkipConfig {
    /// The paper's rule at threshold `threshold` (everything else default).
    pub fn cosine(threshold: f64) -> Self {
        FfnSkipConfig {
            threshold,
            ..Default::default()
        }
    }

    /// Checks the settings against a model of `layers` layers and resolves the defaults.
    pub fn plan(&self, layers: usize) -> Result<SkipPlan> {
        if self.threshold.is_nan() {
            return Err(SkipError::invalid("the cosine threshold is NaN"));
        }
        if let Budget::Fraction(f) = self.budget {
            if !(f.is_finite() && (0.0..=1.0).contains(&f)) {
                return Err(SkipError::invalid(format!(
                    "budget fraction {f} must lie in [0, 1]"
                )));
            }
        }
        if self.full_every == 1 {
            return Err(SkipError::invalid(
                "--full-every 1 would run every token in full (use 0 for never, or at least 2)",
            ));
        }
        let cold_first = self.cold_first.unwrap_or_else(|| default_cold(layers));
        let cold_last = self.cold_last.unwrap_or_else(|| default_cold(layers));
        if cold_first.saturating_add(cold_last) > layers {
            return Err(SkipError::invalid(format!(
                "cold regions {cold_first} + {cold_last} exceed the model's {layers} layers"
            )));
        }
        let first = cold_first.max(1).min(layers);
        let end = layers - cold_last;
        let eligible = end.saturating_sub(first);
        Ok(SkipPlan {
            layers,
            cold_first,
            cold_last,
            first_eligible: first,
            end_eligible: end.max(first),
            span: self.budget.span(layers, eligible, self.full_every),
        })
    }
}

/// [`FfnSkipConfig`] resolved for one model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkipPlan {
    /// Layers of the model.
    pub layers: usize,
    /// Leading cold layers.
    pub cold_first: usize,
    /// Trailing cold layers.
    pub cold_last: usize,
    /// First layer whose FFN may be skipped (at least 1: layer 0 has no previous cosine).
    pub first_eligible: usize,
    /// One past the last layer whose FFN may be skipped.
    pub end_eligible: usize,
    /// FFN blocks skipped per eligible token at most (`n`).
    pub span: usize,
}

impl SkipPlan {
    /// Whether layer `l`'s FFN may be skipped.
    pub fn eligible(&self, l: usize) -> bool {
        (self.first_eligible..self.end_eligible).contains(&l)
    }
    /// Number of layers whose FFN may be skipped.
    pub fn eligible_layers(&self) -> usize {
        self.end_eligible - self.first_eligible
    }
}

/// Counts of FFN blocks run and skipped on decoded tokens (prompt tokens are never counted).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SkipStats {
    /// Decoded tokens seen (one per row per decoding step).
    pub tokens: u64,
    /// FFN blocks of those tokens (tokens × layers).
    pub blocks: u64,
    /// Of those, skipped.
    pub skipped: u64,
    /// Skipped blocks per layer.
    pub layer_skipped: Vec<u64>,
    /// Decoded tokens per generated-token index (`[i]` counts tokens at index `i`).
    pub position_tokens: Vec<u64>,
    /// Skipped blocks per generated-token index.
    pub position_skipped: Vec<u64>,
    /// Forward steps that decoded at least one token.
    pub decode_steps: u64,
    /// Wall time of those steps, seconds (from the step's start to its last block).
    pub decode_seconds: f64,
}

fn add_at(v: &mut Vec<u64>, i: usize, x: u64) {
    if v.len() <= i {
        v.resize(i + 1, 0);
    }
    v[i] += x;
}

impl SkipStats {
    /// Skipped fraction of the decoded tokens' FFN blocks (0 when none was decoded).
    pub fn skipped_fraction(&self) -> f64 {
        if self.blocks == 0 {
            0.0
        } else {
            self.skipped as f64 / self.blocks as f64
        }
    }
    /// Skipped fraction per layer.
    pub fn per_layer(&self) -> Vec<f64> {
        self.layer_skipped
            .iter()
            .map(|&s| {
                if self.tokens == 0 {
                    0.0
                } else {
                    s as f64 / self.tokens as f64
                }
            })
            .collect()
    }
    /// Skipped fraction of the FFN blocks per generated-token index.
    pub fn per_position(&self, layers: usize) -> Vec<f64> {
        self.position_tokens
            .iter()
            .zip(&self.position_skipped)
            .map(|(&t, &s)| {
                if t == 0 || layers == 0 {
                    0.0
                } else {
                    s as f64 / (t * layers as u64) as f64
                }
            })
            .collect()
    }
    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &SkipStats) {
        self.tokens += other.tokens;
        self.blocks += other.blocks;
        self.skipped += other.skipped;
        for (i, &x) in other.layer_skipped.iter().enumerate() {
            add_at(&mut self.layer_skipped, i, x);
        }
        for (i, &x) in other.position_tokens.iter().enumerate() {
            add_at(&mut self.position_tokens, i, x);
        }
        for (i, &x) in other.position_skipped.iter().enumerate() {
            add_at(&mut self.position_skipped, i, x);
        }
        self.decode_steps += other.decode_steps;
        self.decode_seconds += other.decode_seconds;
    }
}

/// What a skipping hook reports at the end of a generation ([`LayerHook::summary`], e.g. in a served response's
/// usage).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SkipSummary {
    /// The rule.
    pub mode: SkipMode,
    /// The cosine threshold.
    pub threshold: f64,
    /// FFN blocks skippable per token.
    pub span: usize,
    /// Skipped fraction of the decoded tokens' FFN blocks.
    pub skipped_fraction: f64,
    /// Decoded tokens' FFN blocks.
    pub ffn_blocks: u64,
    /// Of those, skipped.
    pub ffn_skipped: u64,
    /// Skipped fraction per layer.
    pub per_layer: Vec<f64>,
    /// Skipped fraction per generated-token index.
    pub per_position: Vec<f64>,
}

/// What a token of the current step is to the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// A prompt token (or left padding): always full, not counted.
    Prompt,
    /// A decoded token that runs in full (warm-up or every k-th).
    Full(usize),
    /// A decoded token the rule may skip on; carries its generated-token index.
    Eligible(usize),
}

/// The FFN-SkipLLM hook: one per generation job (it keeps per-sequence state).
#[derive(Debug)]
pub struct FfnSkipHook {
    cfg: FfnSkipConfig,
    plan: SkipPlan,
    prompt_lens: Vec<usize>,
    prompt_hashes: Vec<u64>,
    warmup: usize,
    stats: SkipStats,
    // Per step: role, span state and the previous layer's cosine for each of the step's tokens.
    roles: Vec<Role>,
    remaining: Vec<usize>,
    used: Vec<bool>,
    random_start: Vec<usize>,
    cos: Vec<f64>,
    mid: Option<Tensor>,
    step_start: Option<Instant>,
}

impl FfnSkipHook {
    /// A hook applying `cfg` to a model of `layers` layers.
    pub fn new(cfg: &FfnSkipConfig, layers: usize) -> Result<Self> {
        let plan = cfg.plan(layers)?;
        Ok(FfnSkipHook {
            cfg: cfg.clone(),
            plan,
            prompt_lens: vec![],
            prompt_hashes: vec![],
            warmup: cfg.warmup.unwrap_or(1),
            stats: SkipStats {
                layer_skipped: vec![0; layers],
                ..Default::default()
            },
            roles: vec![],
            remaining: vec![],
            used: vec![],
            random_start: vec![],
            cos: vec![],
            mid: None,
            step_start: None,
        })
    }

    /// A factory making a fresh hook per job (for `tessera serve`'s engine); the settings are checked now.
    pub fn factory(cfg: &FfnSkipConfig, layers: usize) -> Result<LayerHookFactory> {
        FfnSkipHook::new(cfg, layers)?;
        let cfg = cfg.clone();
        Ok(Arc::new(move || {
            Box::new(
                FfnSkipHook::new(&cfg, layers).expect("settings checked when the factory was made"),
            ) as Box<dyn LayerHook>
        }))
    }

    /// The resolved plan.
    pub fn plan(&self) -> &SkipPlan {
        &self.plan
    }

    /// The counts so far (over every sequence this hook saw).
    pub fn stats(&self) -> &SkipStats {
        &self.stats
    }

    /// The counts so far, resetting them.
    pub fn take_stats(&mut self) -> SkipStats {
        let layers = self.plan.layers;
        std::mem::replace(
            &mut self.stats,
            SkipStats {
                layer_skipped: vec![0; layers],
                ..Default::default()
            },
        )
    }

    /// The summary reported at the end of a generation.
    pub fn summary_value(&self) -> SkipSummary {
        SkipSummary {
            mode: self.cfg.mode,
            threshold: self.cfg.threshold,
            span: self.plan.span,
            skipped_fraction: self.stats.skipped_fraction(),
            ffn_blocks: self.stats.blocks,
            ffn_skipped: self.stats.skipped,
            per_layer: self.stats.per_layer(),
            per_position: self.stats.per_position(self.plan.layers),
        }
    }

    fn role(&self, row: usize, pos: u32) -> Role {
        let p = self.prompt_lens.get(row).copied().unwrap_or(usize::MAX);
        let pos = pos as usize;
        if pos < p {
            return Role::Prompt;
        }
        let g = pos - p;
        if g < self.warmup {
            return Role::Full(g);
        }
        let k = self.cfg.full_every;
        if k > 1 && (g - self.warmup) % k == k - 1 {
            return Role::Full(g);
        }
        Role::Eligible(g)
    }

    /// Whether the cosine after layer `l` is needed by some token (for the decision at layer `l + 1`).
    fn needs_cos(&self, l: usize) -> bool {
        self.cfg.mode == SkipMode::Cosine
            && self.plan.span > 0
            && self.plan.eligible(l + 1)
            && self
                .roles
                .iter()
                .zip(&self.used)
                .any(|(r, &u)| matches!(r, Role::Eligible(_)) && !u)
    }
}

/// Per-row cosine of two `[batch, tokens, hidden]` tensors.
fn row_cosines(a: &Tensor, b: &Tensor) -> tessera_lm::Result<Vec<f64>> {
    let a = a.to_dtype(DType::F32)?.flatten_to(1)?;
    let b = b.to_dtype(DType::F32)?.flatten_to(1)?;
    let dot: Vec<f32> = (&a * &b)?.sum(1)?.to_vec1()?;
    let na: Vec<f32> = a.sqr()?.sum(1)?.to_vec1()?;
    let nb: Vec<f32> = b.sqr()?.sum(1)?.to_vec1()?;
    Ok(dot
        .iter()
        .zip(na.iter().zip(&nb))
        .map(|(&d, (&x, &y))| d as f64 / ((x as f64) * (y as f64)).sqrt())
        .collect())
}

impl LayerHook for FfnSkipHook {
    fn begin_sequence(&mut self, info: &SequenceInfo) {
        self.prompt_lens = info.prompt_lens.clone();
        self.prompt_hashes = info.prompt_hashes.clone();
        self.warmup = self
            .cfg
            .warmup
            .unwrap_or((info.max_new_tokens / WARMUP_DIVISOR).max(1));
    }

    fn begin_step(&mut self, step: &StepInfo) {
        let n = step.batch * step.tokens;
        self.roles = (0..n)
            .map(|i| {
                let pos = step.positions.get(i).copied().unwrap_or(0);
                self.role(i / step.tokens.max(1), pos)
            })
            .collect();
        self.remaining = vec![0; n];
        self.used = vec![false; n];
        self.cos = vec![f64::NAN; n];
        self.mid = None;
        let span = self.plan.span;
        let (lo, hi) = (self.plan.first_eligible, self.plan.end_eligible);
        self.random_start = match self.cfg.mode {
            SkipMode::RandomSpan if span > 0 => self
                .roles
                .iter()
                .enumerate()
                .map(|(i, r)| match r {
                    Role::Eligible(g) => {
                        let row = i / step.tokens.max(1);
                        let prompt = self.prompt_hashes.get(row).copied().unwrap_or(0);
                        let mut rng = tessera_core::rng::derived(
                            self.cfg.seed,
                            &format!("span/{prompt:016x}/{g}"),
                        );
                        rng.gen_range(lo..=hi - span)
                    }
                    _ => usize::MAX,
                })
                .collect(),
            _ => vec![usize::MAX; n],
        };
        let decoded = self.roles.iter().any(|r| *r != Role::Prompt);
        self.step_start = decoded.then(Instant::now);
    }

    fn after_attention(&mut self, site: &LayerSite<'_>) -> tessera_lm::Result<FfnDecision> {
        let l = site.layer;
        let mut run = vec![true; self.roles.len()];
        let eligible_layer = self.plan.eligible(l);
        for (i, ran) in run.iter_mut().enumerate() {
            let g = match self.roles[i] {
                Role::Prompt => continue,
                Role::Full(g) => {
                    self.count(l, g, false);
                    continue;
                }
                Role::Eligible(g) => g,
            };
            let skip = eligible_layer
                && match self.cfg.mode {
                    SkipMode::Full => false,
                    SkipMode::RandomSpan => {
                        let s = self.random_start[i];
                        s != usize::MAX && l >= s && l < s + self.plan.span
                    }
                    SkipMode::Cosine => {
                        if self.remaining[i] > 0 {
                            self.remaining[i] -= 1;
                            true
                        } else if !self.used[i]
                            && self.plan.span > 0
                            && self.cos[i] > self.cfg.threshold
                        {
                            self.used[i] = true;
                            self.remaining[i] = self.plan.span - 1;
                            true
                        } else {
                            false
                        }
                    }
                };
            *ran = !skip;
            self.count(l, g, skip);
        }
        if self.needs_cos(l) {
            self.mid = Some(site.residual.clone());
        }
        Ok(if run.iter().all(|&r| r) {
            FfnDecision::Run
        } else if run.iter().all(|&r| !r) {
            FfnDecision::Skip
        } else {
            FfnDecision::PerToken(run)
        })
    }

    fn after_ffn(&mut self, site: &LayerSite<'_>, _ran: &FfnDecision) -> tessera_lm::Result<()> {
        if let Some(mid) = self.mid.take() {
            let c = row_cosines(site.residual, &mid)?;
            if c.len() == self.cos.len() {
                self.cos = c;
            }
        }
        Ok(())
    }

    fn end_step(&mut self, _step: &StepInfo) {
        if let Some(t0) = self.step_start.take() {
            self.stats.decode_steps += 1;
            self.stats.decode_seconds += t0.elapsed().as_secs_f64();
        }
    }

    fn summary(&self) -> Option<serde_json::Value> {
        serde_json::to_value(self.summary_value()).ok()
    }
}

impl FfnSkipHook {
    fn count(&mut self, layer: usize, g: usize, skipped: bool) {
        let s = &mut self.stats;
        s.blocks += 1;
        if layer == 0 {
            s.tokens += 1;
            add_at(&mut s.position_tokens, g, 1);
            add_at(&mut s.position_skipped, g, 0);
        }
        if skipped {
            s.skipped += 1;
            add_at(&mut s.layer_skipped, layer, 1);
            add_at(&mut s.position_skipped, g, 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_parse_and_convert() {
        assert_eq!("25%".parse::<Budget>().unwrap(), Budget::Fraction(0.25));
        assert_eq!("9".parse::<Budget>().unwrap(), Budget::Layers(9));
        assert_eq!("all".parse::<Budget>().unwrap(), Budget::All);
        assert!("-1".parse::<Budget>().is_err());
        assert!("130%".parse::<Budget>().is_err());
        assert!("NaN%".parse::<Budget>().is_err());
        // 25% of 30 layers with every 6th token full: 9 layers per skipping token (9·5/6 / 30 = 25%).
        assert_eq!(Budget::Fraction(0.25).span(30, 20, 6), 9);
        assert_eq!(Budget::Fraction(0.10).span(30, 20, 6), 4);
        assert_eq!(Budget::Fraction(0.30).span(30, 20, 6), 11);
        assert_eq!(Budget::Layers(50).span(30, 20, 6), 20);
        assert_eq!(default_cold(30), 5);
        assert_eq!(default_cold(2), 0);
        for m in ["full", "cosine", "random-span"] {
            assert_eq!(m.parse::<SkipMode>().unwrap().to_string(), m);
        }
    }

    #[test]
    fn random_spans_differ_between_prompts_and_repeat_for_one() {
        let cfg = FfnSkipConfig {
            mode: SkipMode::RandomSpan,
            ..FfnSkipConfig::default()
        };
        let spans = |prompt: &[u32]| -> Vec<usize> {
            let mut h = FfnSkipHook::new(&cfg, 30).unwrap();
            h.begin_sequence(&SequenceInfo::new(&[prompt], 128));
            (0..40)
                .filter_map(|g| {
                    let pos = (prompt.len() + g) as u32;
                    h.begin_step(&StepInfo {
                        batch: 1,
                        tokens: 1,
                        past: pos as usize,
                        positions: vec![pos],
                        generated: Some(g),
                    });
                    (h.random_start[0] != usize::MAX).then_some(h.random_start[0])
                })
                .collect()
        };
        let a = spans(&[1, 2, 3]);
        assert!(a.len() > 20, "{a:?}");
        assert_eq!(a, spans(&[1, 2, 3]));
        assert_ne!(a, spans(&[1, 2, 4]));
    }

    #[test]
    fn roles_follow_warmup_and_the_full_token_period() {
        let cfg = FfnSkipConfig::default();
        let mut h = FfnSkipHook::new(&cfg, 30).unwrap();
        h.begin_sequence(&SequenceInfo::new(&[[0u32; 10]], 128));
        // Warm-up 2 tokens (positions 10, 11), then [e, e, e, e, e, full].
        assert_eq!(h.role(0, 9), Role::Prompt);
        assert_eq!(h.role(0, 10), Role::Full(0));
        assert_eq!(h.role(0, 11), Role::Full(1));
        for g in 2..7 {
            assert_eq!(h.role(0, 10 + g as u32), Role::Eligible(g));
        }
        assert_eq!(h.role(0, 17), Role::Full(7));
        assert_eq!(h.role(0, 18), Role::Eligible(8));
        let p = h.plan();
        assert_eq!((p.first_eligible, p.end_eligible, p.span), (5, 25, 9));
        assert!(FfnSkipConfig {
            cold_first: Some(20),
            cold_last: Some(20),
            ..Default::default()
        }
        .plan(30)
        .is_err());
        assert!(FfnSkipConfig::cosine(f64::NAN).plan(30).is_err());
    }
}
