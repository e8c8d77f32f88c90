//! `tessera skip eval`: the skipping model against the full one on the same prompts, greedy.
//!
//! For every question (in order) the full model generates first, then every variant (each cosine threshold ×
//! budget, and the random-span baseline at each budget) generates from the same prompt right after it, so the
//! decode-speed comparison is interleaved in one run. Per variant:
//!
//! - `factoid_accuracy_skip`: fraction of questions whose answer the generation contains ([`answer_correct`]);
//!   `factoid_accuracy_full` the same for the full model.
//! - `exact_match`: mean positional token agreement with the full generation ([`token_match`]);
//!   `identical_generations`: fraction of generations token-for-token identical.
//! - `rouge_l`: mean ROUGE-L F1 of the generation against the full one ([`rouge_l`]).
//! - `continuation_perplexity`: exp of the mean negative log-likelihood of the full model's greedy continuation
//!   under the skipping model, **teacher-forced with the rule active**: one forward over prompt + continuation with
//!   a fresh hook told the prompt length and `max_new_tokens`, so every continuation token gets the role (warm-up,
//!   every-k-th full, eligible) and the skip decisions it would get when decoded at that position (each token's
//!   decisions depend only on its own residual stream, so the parallel forward computes what token-by-token
//!   decoding of the same tokens would). `continuation_perplexity_full` is the full model's own value.
//! - `skipped_fraction`: skipped share of the FFN blocks of decoded tokens (prefill excluded), over the
//!   generations; also per layer and per generated-token position.
//! - `decode_speedup`: decode tokens/s of the variant over the full model's, both timed by the hook over the
//!   decoding forward steps of the same generations.
//!
//! With an output folder, each finished (question, variant) is journaled (`records.jsonl`): a rerun resumes, and a
//! rerun with different settings is refused (`settings.json`); the result and its plots ([`crate::plots`]) are
//! written there at the end.
use crate::error::{Result, SkipError};
use crate::ffn_skip::{Budget, FfnSkipConfig, FfnSkipHook, SkipMode, SkipStats};
use crate::metrics::{answer_correct, rouge_l, token_match};
use crate::questions::{self, Question};
use candle_core::{Tensor, D};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;
use tessera_lm::{
    generate_with, ChatMessage, Forward, Input, LayerHook, Llama, SamplingParams, SequenceInfo,
};

/// Default instruction put before each question (in the user message).
pub const DEFAULT_INSTRUCTION: &str = "Answer in a few words.";

/// Settings of an evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkipEvalConfig {
    /// The model's name or path (reported; the caller loads it).
    pub model: String,
    /// Questions file (`None`: the built-in `data/factoid.jsonl`).
    pub questions: Option<PathBuf>,
    /// Evaluate only the first N questions.
    pub limit: Option<usize>,
    /// Most new tokens per answer.
    pub max_new_tokens: usize,
    /// Instruction before each question in the user message ("" for none).
    pub instruction: String,
    /// Cosine thresholds τ to evaluate.
    pub thresholds: Vec<f64>,
    /// Per-token budgets to evaluate.
    pub budgets: Vec<Budget>,
    /// Also evaluate the random-span baseline at each budget.
    pub random_baseline: bool,
    /// The rest of the rule (cold regions, warm-up, full-token period, seed); its mode, threshold and budget are
    /// set per variant.
    pub rule: FfnSkipConfig,
    /// Output folder for the journal, settings and result (`None`: nothing written).
    #[serde(skip)]
    pub out: Option<PathBuf>,
}

impl Default for SkipEvalConfig {
    fn default() -> Self {
        SkipEvalConfig {
            model: "smollm2-135m".into(),
            questions: None,
            limit: None,
            max_new_tokens: 16,
            instruction: DEFAULT_INSTRUCTION.into(),
            thresholds: vec![crate::ffn_skip::DEFAULT_THRESHOLD],
            budgets: vec![Budget::Fraction(0.25)],
            random_baseline: false,
            rule: FfnSkipConfig::default(),
            out: None,
        }
    }
}

/// Largest `max_new_tokens` accepted.
pub const MAX_NEW_TOKENS: usize = 4096;

impl SkipEvalConfig {
    /// The variants evaluated against the full model, in order (the first is the headline).
    pub fn variants(&self) -> Vec<FfnSkipConfig> {
        let mut v = vec![];
        for &b in &self.budgets {
            for &t in &self.thresholds {
                v.push(FfnSkipConfig {
                    mode: SkipMode::Cosine,
                    threshold: t,
                    budget: b,
                    ..self.rule.clone()
                });
            }
        }
        if self.random_baseline {
            for &b in &self.budgets {
                v.push(FfnSkipConfig {
                    mode: SkipMode::RandomSpan,
                    budget: b,
                    ..self.rule.clone()
                });
            }
        }
        v
    }

    /// Checks the settings against a model of `layers` layers.
    pub fn validate(&self, layers: usize) -> Result<()> {
        if self.max_new_tokens == 0 || self.max_new_tokens > MAX_NEW_TOKENS {
            return Err(SkipError::invalid(format!(
                "max new tokens {} must lie in 1..={MAX_NEW_TOKENS}",
                self.max_new_tokens
            )));
        }
        if self.limit == Some(0) {
            return Err(SkipError::invalid("--limit must be at least 1"));
        }
        if self.thresholds.is_empty() || self.budgets.is_empty() {
            return Err(SkipError::invalid(
                "need at least one threshold and one budget",
            ));
        }
        for v in self.variants() {
            v.plan(layers)?;
        }
        Ok(())
    }
}

/// A variant's label: `cosine τ=0.95 budget=25%` or `random-span budget=25%`.
pub fn label(v: &FfnSkipConfig) -> String {
    match v.mode {
        SkipMode::Cosine => format!("cosine τ={} budget={}", v.threshold, v.budget),
        m => format!("{m} budget={}", v.budget),
    }
}

/// One finished (question, variant): the unit of the journal.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// The variant's label (`full` for the full model).
    pub variant: String,
    /// Question index.
    pub index: usize,
    /// Generated tokens.
    pub tokens: Vec<u32>,
    /// Generated text.
    pub text: String,
    /// Whether the answer was found.
    pub correct: bool,
    /// Skip statistics of the generation (decode timing included).
    pub stats: SkipStats,
    /// Summed negative log-likelihood of the full model's continuation (teacher-forced with the rule for a
    /// variant, the generation's own log-probabilities for the full model).
    pub nll: f64,
    /// Tokens scored in `nll`.
    pub scored: usize,
}

/// One variant's results against the full model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VariantResult {
    /// Label.
    pub label: String,
    /// Rule.
    pub mode: SkipMode,
    /// Cosine threshold.
    pub threshold: f64,
    /// Budget as given.
    pub budget: Budget,
    /// FFN blocks skippable per token (the budget in layers).
    pub span_layers: usize,
    /// Skipped share of the decoded tokens' FFN blocks.
    pub skipped_fraction: f64,
    /// Factoid accuracy with skipping.
    pub factoid_accuracy_skip: f64,
    /// Accuracy change vs the full model, percentage points.
    pub factoid_delta_points: f64,
    /// Mean positional token agreement with the full generations.
    pub exact_match: f64,
    /// Fraction of generations identical to the full ones.
    pub identical_generations: f64,
    /// Mean ROUGE-L F1 against the full generations.
    pub rouge_l: f64,
    /// Perplexity of the full continuation under the skipping model (teacher-forced, rule active).
    pub continuation_perplexity: f64,
    /// Decode tokens per second.
    pub decode_tokens_per_s: f64,
    /// Decode speed over the full model's.
    pub decode_speedup: f64,
    /// Skipped fraction per layer.
    pub per_layer_skipped: Vec<f64>,
    /// Skipped fraction per generated-token position.
    pub per_position_skipped: Vec<f64>,
}

/// What `tessera skip eval --json` prints: the headline variant's numbers at the top level, all variants below.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SkipEvalResult {
    /// Model.
    pub model: String,
    /// Questions source.
    pub questions_file: String,
    /// Questions evaluated.
    pub questions: usize,
    /// Layers of the model.
    pub layers: usize,
    /// Headline variant's label.
    pub headline: String,
    /// Headline: skipped share of decode FFN blocks.
    pub skipped_fraction: f64,
    /// Factoid accuracy of the full model.
    pub factoid_accuracy_full: f64,
    /// Headline: factoid accuracy with skipping.
    pub factoid_accuracy_skip: f64,
    /// Headline: decode speed over the full model's.
    pub decode_speedup: f64,
    /// Headline: mean positional token agreement.
    pub exact_match: f64,
    /// Headline: mean ROUGE-L F1.
    pub rouge_l: f64,
    /// Headline: perplexity of the full continuation under the skipping model.
    pub continuation_perplexity: f64,
    /// The full model's perplexity of its own continuation.
    pub continuation_perplexity_full: f64,
    /// The full model's decode tokens per second.
    pub decode_tokens_per_s_full: f64,
    /// Every variant (per budget, threshold and rule).
    pub variants: Vec<VariantResult>,
    /// The settings.
    pub config: SkipEvalConfig,
}

/// The prompt ids of a question: one user message (instruction, space, question) in the model's chat template.
pub fn question_prompt(model: &Llama, instruction: &str, q: &Question) -> Result<Vec<u32>> {
    let text = if instruction.is_empty() {
        q.question.clone()
    } else {
        format!("{instruction} {}", q.question)
    };
    Ok(model
        .tokenizer()?
        .encode_chat(&[ChatMessage::new("user", &text)])?)
}

/// Summed negative log-likelihood of `continuation` after `prompt`, with `hook` inside every block of one
/// forward over both (teacher forcing; see the module docs). Returns `(nll, tokens scored)`.
pub fn continuation_nll(
    model: &Llama,
    prompt: &[u32],
    continuation: &[u32],
    max_new_tokens: usize,
    hook: Option<&mut dyn LayerHook>,
) -> Result<(f64, usize)> {
    if continuation.is_empty() {
        return Ok((0.0, 0));
    }
    if prompt.is_empty() {
        return Err(SkipError::invalid("empty prompt"));
    }
    let mut hook = hook;
    if let Some(h) = hook.as_deref_mut() {
        h.begin_sequence(&SequenceInfo::new(&[prompt], max_new_tokens));
    }
    let mut ids = prompt.to_vec();
    ids.extend_from_slice(&continuation[..continuation.len() - 1]);
    let input = Tensor::new(ids.as_slice(), model.device())?.unsqueeze(0)?;
    let logits = model
        .forward(
            Input::Ids(&input),
            Forward {
                logits_from: Some(prompt.len() - 1),
                hook,
                ..Default::default()
            },
        )?
        .squeeze(0)?;
    let lsm = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
    let targets = Tensor::new(continuation, model.device())?.unsqueeze(1)?;
    let picked: Vec<f32> = lsm.gather(&targets, 1)?.squeeze(1)?.to_vec1()?;
    Ok((
        -picked.iter().map(|&x| x as f64).sum::<f64>(),
        continuation.len(),
    ))
}

fn greedy(max_tokens: usize) -> SamplingParams {
    SamplingParams {
        max_tokens,
        ..Default::default()
    }
}

fn generate_one(
    model: &Llama,
    prompt: &[u32],
    max_new: usize,
    cfg: &FfnSkipConfig,
) -> Result<(tessera_lm::Generation, SkipStats)> {
    let mut hook = FfnSkipHook::new(cfg, model.config.num_hidden_layers)?;
    let g = generate_with(
        model,
        prompt,
        &greedy(max_new),
        Some(&mut hook),
        &mut |_| true,
    )?;
    Ok((g, hook.take_stats()))
}

fn full_config(rule: &FfnSkipConfig) -> FfnSkipConfig {
    FfnSkipConfig {
        mode: SkipMode::Full,
        ..rule.clone()
    }
}

/// Runs the evaluation on `model`; `progress` is told `(questions done, questions)`.
pub fn run(
    model: &Llama,
    cfg: &SkipEvalConfig,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<SkipEvalResult> {
    let layers = model.config.num_hidden_layers;
    cfg.validate(layers)?;
    let mut qs = questions::load(cfg.questions.as_deref())?;
    if let Some(n) = cfg.limit {
        qs.truncate(n);
    }
    let variants = cfg.variants();
    let journal = match &cfg.out {
        None => None,
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| tessera_core::Error::io(dir, e))?;
            // `limit` is left out: records are keyed by question index, so a run may be extended or summarised
            // over fewer questions.
            let settings = SkipEvalConfig {
                limit: None,
                ..cfg.clone()
            };
            tessera_core::journal::check_settings(&dir.join("settings.json"), &settings)?;
            let (j, recs) =
                tessera_core::journal::Journal::open::<Record>(dir.join("records.jsonl"))?;
            Some((j, recs))
        }
    };
    let mut done: HashMap<(String, usize), Record> = HashMap::new();
    let journal = journal.map(|(j, recs)| {
        for r in recs {
            done.insert((r.variant.clone(), r.index), r);
        }
        j
    });
    let full_cfg = full_config(&cfg.rule);
    // Warm-up (not recorded): the first forward passes touch every weight and build the rotary tables, which
    // would otherwise slow whichever generation comes first.
    let warm = question_prompt(model, &cfg.instruction, &qs[0])?;
    generate_one(model, &warm, 4, &full_cfg)?;
    for (i, q) in qs.iter().enumerate() {
        let prompt = question_prompt(model, &cfg.instruction, q)?;
        tessera_lm::limits::check_generation(
            model.config.max_position_embeddings,
            prompt.len(),
            &greedy(cfg.max_new_tokens),
        )?;
        let key = ("full".to_string(), i);
        let full = match done.get(&key) {
            Some(r) => r.clone(),
            None => {
                let (g, stats) = generate_one(model, &prompt, cfg.max_new_tokens, &full_cfg)?;
                let r = Record {
                    variant: key.0.clone(),
                    index: i,
                    correct: answer_correct(&g.text, &q.answers),
                    nll: -g.logprobs.iter().map(|&x| x as f64).sum::<f64>(),
                    scored: g.tokens.len(),
                    tokens: g.tokens,
                    text: g.text,
                    stats,
                };
                if let Some(j) = &journal {
                    j.append(&r)?;
                }
                done.insert(key, r.clone());
                r
            }
        };
        for v in &variants {
            let key = (label(v), i);
            if done.contains_key(&key) {
                continue;
            }
            let (g, stats) = generate_one(model, &prompt, cfg.max_new_tokens, v)?;
            let mut hook = FfnSkipHook::new(v, layers)?;
            let (nll, scored) = continuation_nll(
                model,
                &prompt,
                &full.tokens,
                cfg.max_new_tokens,
                Some(&mut hook),
            )?;
            let r = Record {
                variant: key.0.clone(),
                index: i,
                correct: answer_correct(&g.text, &q.answers),
                tokens: g.tokens,
                text: g.text,
                stats,
                nll,
                scored,
            };
            if let Some(j) = &journal {
                j.append(&r)?;
            }
            done.insert(key, r);
        }
        progress(i + 1, qs.len());
    }
    let result = summarise(cfg, &qs, &variants, &done, layers)?;
    if let Some(dir) = &cfg.out {
        tessera_core::fsx::write_json_atomic(dir.join("result.json"), &result)?;
        crate::plots::write_plots(&result, dir)?;
    }
    Ok(result)
}

fn mean(v: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 {
        0.0
    } else {
        s / n as f64
    }
}

fn tokens_per_s(s: &SkipStats) -> f64 {
    if s.decode_seconds > 0.0 {
        s.decode_steps as f64 / s.decode_seconds
    } else {
        0.0
    }
}

fn summarise(
    cfg: &SkipEvalConfig,
    qs: &[Question],
    variants: &[FfnSkipConfig],
    done: &HashMap<(String, usize), Record>,
    layers: usize,
) -> Result<SkipEvalResult> {
    let get = |v: &str, i: usize| {
        done.get(&(v.to_string(), i))
            .ok_or_else(|| SkipError::invalid(format!("missing record {v} #{i}")))
    };
    let n = qs.len();
    let full: Vec<&Record> = (0..n).map(|i| get("full", i)).collect::<Result<_>>()?;
    let mut full_stats = SkipStats::default();
    full.iter().for_each(|r| full_stats.merge(&r.stats));
    let full_tps = tokens_per_s(&full_stats);
    let acc_full = mean(full.iter().map(|r| f64::from(u8::from(r.correct))));
    let ppl = |rs: &[&Record]| {
        let (nll, k) = rs
            .iter()
            .fold((0.0, 0usize), |(a, k), r| (a + r.nll, k + r.scored));
        if k == 0 {
            1.0
        } else {
            (nll / k as f64).exp()
        }
    };
    let ppl_full = ppl(&full);
    let mut out = vec![];
    for v in variants {
        let l = label(v);
        let rs: Vec<&Record> = (0..n).map(|i| get(&l, i)).collect::<Result<_>>()?;
        let mut st = SkipStats::default();
        rs.iter().for_each(|r| st.merge(&r.stats));
        let acc = mean(rs.iter().map(|r| f64::from(u8::from(r.correct))));
        let tps = tokens_per_s(&st);
        out.push(VariantResult {
            label: l,
            mode: v.mode,
            threshold: v.threshold,
            budget: v.budget,
            span_layers: v.plan(layers)?.span,
            skipped_fraction: st.skipped_fraction(),
            factoid_accuracy_skip: acc,
            factoid_delta_points: 100.0 * (acc - acc_full),
            exact_match: mean(
                rs.iter()
                    .zip(&full)
                    .map(|(r, f)| token_match(&r.tokens, &f.tokens)),
            ),
            identical_generations: mean(
                rs.iter()
                    .zip(&full)
                    .map(|(r, f)| f64::from(u8::from(r.tokens == f.tokens))),
            ),
            rouge_l: mean(rs.iter().zip(&full).map(|(r, f)| rouge_l(&r.text, &f.text))),
            continuation_perplexity: ppl(&rs),
            decode_tokens_per_s: tps,
            decode_speedup: if full_tps > 0.0 { tps / full_tps } else { 0.0 },
            per_layer_skipped: st.per_layer(),
            per_position_skipped: st.per_position(layers),
        });
    }
    let h = out
        .first()
        .cloned()
        .ok_or_else(|| SkipError::invalid("no variant to evaluate"))?;
    Ok(SkipEvalResult {
        model: cfg.model.clone(),
        questions_file: cfg
            .questions
            .as_ref()
            .map_or(questions::FACTOID_NAME.to_string(), |p| {
                p.display().to_string()
            }),
        questions: n,
        layers,
        headline: h.label.clone(),
        skipped_fraction: h.skipped_fraction,
        factoid_accuracy_full: acc_full,
        factoid_accuracy_skip: h.factoid_accuracy_skip,
        decode_speedup: h.decode_speedup,
        exact_match: h.exact_match,
        rouge_l: h.rouge_l,
        continuation_perplexity: h.continuation_perplexity,
        continuation_perplexity_full: ppl_full,
        decode_tokens_per_s_full: full_tps,
        variants: out,
        config: cfg.clone(),
    })
}
