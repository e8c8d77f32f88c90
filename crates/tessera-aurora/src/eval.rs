//! Evaluation before CAP, after CAP and after CAT (Aurora-M §5: forgetting and gains, safety):
//! - perplexity per stream on the held-out halves (same split seed as training, read from the model directory's
//!   `aurora.json` when it has one), on English WikiText-2 raw test (`en-wikitext-test`), and on `--text FILE`;
//! - refusal rate on held-out harmful prompts per concern area (greedy generation of a short reply with the chat
//!   template, judged by [`crate::refusal`]);
//! - over-refusal rate on the held-out benign prompts.
use crate::cap;
use crate::error::{AuroraError, Result};
use crate::mixture::{self, TextStream};
use crate::redteam::{self, Area, HarmfulPrompt};
use crate::refusal::RefusalClassifier;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use tessera_lm::perplexity::{perplexity, tokenize_document};
use tessera_lm::{generate, ChatMessage, Llama, SamplingParams};

/// Settings of `tessera aurora eval`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalConfig {
    /// Model name or path (a CAP / CAT output directory, a GGUF file, a model directory).
    pub model: String,
    /// Extra text whose perplexity is reported as `perplexity`.
    pub text: Option<PathBuf>,
    /// Users' streams (their held-out halves are scored too).
    pub streams: Vec<(String, PathBuf)>,
    /// Split seed (default: the model directory's, else 0).
    pub split_seed: Option<u64>,
    /// Perplexity window (and stride).
    pub window: usize,
    /// Tokens scored per stream (0: all).
    pub ppl_tokens: usize,
    /// Held-out harmful prompts per area (0: skip the safety part).
    pub per_area: usize,
    /// Held-out benign prompts (0: none).
    pub benign: usize,
    /// New tokens per reply.
    pub max_new_tokens: usize,
    /// Use the phrase rule only (no MiniLM).
    pub phrases_only: bool,
    /// Keep the text of replies to harmful prompts that were not refused (default: replaced by [`REDACTED`]).
    pub keep_harmful_outputs: bool,
    /// Never download.
    pub offline: bool,
}

/// What replaces a non-refused reply to a harmful prompt unless `keep_harmful_outputs` (result files do not
/// carry generated harmful content).
pub const REDACTED: &str = "[redacted: reply to a harmful prompt that was not refused]";

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            model: tessera_lm::tour::TOUR_MODEL.into(),
            text: None,
            streams: vec![],
            split_seed: None,
            window: 256,
            ppl_tokens: 2048,
            per_area: 8,
            benign: 24,
            max_new_tokens: 40,
            phrases_only: false,
            keep_harmful_outputs: false,
            offline: false,
        }
    }
}

/// One generated reply and its judgement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// `harmful` or `benign`.
    pub kind: String,
    /// Area (harmful prompts) or `benign`.
    pub category: String,
    /// The prompt.
    pub prompt: String,
    /// The reply.
    pub output: String,
    /// Judged a refusal.
    pub refusal: bool,
    /// Similarity to the nearest refusal exemplar.
    pub similarity: Option<f32>,
}

/// Result of `tessera aurora eval` (its `--json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalResult {
    /// Model as given.
    pub model: String,
    /// Split seed used for the held-out halves.
    pub split_seed: u64,
    /// Perplexity of `--text` (None without it).
    pub perplexity: Option<f64>,
    /// Perplexity per held-out stream and on `en-wikitext-test`.
    pub perplexity_by_language: BTreeMap<String, f64>,
    /// Tokens scored per entry of `perplexity_by_language`.
    pub scored_tokens: BTreeMap<String, usize>,
    /// Share of held-out harmful prompts refused (None when the safety part was skipped).
    pub refusal_rate: Option<f64>,
    /// Refusal rate per concern area.
    pub refusal_by_category: BTreeMap<String, f64>,
    /// Share of held-out benign prompts refused.
    pub over_refusal_rate: Option<f64>,
    /// Harmful prompts evaluated.
    pub harmful_evaluated: usize,
    /// Benign prompts evaluated.
    pub benign_evaluated: usize,
    /// Whether the MiniLM similarity rule was active.
    pub classifier_uses_minilm: bool,
    /// Every reply with its judgement.
    pub replies: Vec<Reply>,
}

fn ppl_of(model: &Llama, text: &str, window: usize, max_tokens: usize) -> Result<(f64, usize)> {
    let ids = tokenize_document(model, text)?;
    let r = perplexity(model, &ids, window, window, max_tokens, &mut |_, _| {})?;
    Ok((r.perplexity, r.scored_tokens))
}

fn join_docs(s: &TextStream) -> String {
    s.docs.join("\n")
}

/// Greedy short replies to `prompts` with the chat template.
pub fn replies(model: &Llama, prompts: &[&str], max_new_tokens: usize) -> Result<Vec<String>> {
    let tok = model.tokenizer()?;
    let p = SamplingParams {
        max_tokens: max_new_tokens,
        ..Default::default()
    };
    prompts
        .iter()
        .map(|q| {
            let ids = tok.encode_chat(&[ChatMessage::new("user", *q)])?;
            Ok(generate(model, &ids, &p, &mut |_| true)?.text)
        })
        .collect()
}

/// The held-out harmful prompts evaluated: the first `per_area` of every area's test half.
pub fn eval_prompts(test: &[HarmfulPrompt], per_area: usize) -> Vec<HarmfulPrompt> {
    let mut out = Vec::new();
    for a in Area::ALL {
        out.extend(test.iter().filter(|h| h.area == a).take(per_area).cloned());
    }
    out
}

/// Runs the evaluation with the given harmful prompts (see [`redteam::load_harmful`]).
pub fn run_with(cfg: &EvalConfig, harmful: &[HarmfulPrompt]) -> Result<EvalResult> {
    if cfg.window < 2 {
        return Err(AuroraError::invalid("--window must be at least 2"));
    }
    let path = tessera_core::assets::resolve_model(&cfg.model, cfg.offline)?;
    let info = cap::stage_info(&path);
    let split_seed = cfg
        .split_seed
        .or(info.as_ref().map(|i| i.split_seed))
        .unwrap_or(0);
    let user: Vec<(String, PathBuf)> = if cfg.streams.is_empty() {
        info.as_ref().map(|i| i.streams.clone()).unwrap_or_default()
    } else {
        cfg.streams.clone()
    };
    let text = match &cfg.text {
        Some(p) => Some(mixture::read_utf8(p)?),
        None => None,
    };
    let model = tessera_lm::load(&path)?;
    if cfg.window > model.max_positions() {
        return Err(AuroraError::invalid(format!(
            "--window {} is longer than the model's {} positions",
            cfg.window,
            model.max_positions()
        )));
    }
    let code_bytes = info
        .as_ref()
        .map(|i| i.code_bytes)
        .unwrap_or(mixture::DEFAULT_CODE_BYTES);
    let streams = mixture::builtin_streams(split_seed, code_bytes, &user)?;
    let (mut by_lang, mut scored) = (BTreeMap::new(), BTreeMap::new());
    for s in &streams.heldout {
        let (p, n) = ppl_of(&model, &join_docs(s), cfg.window, cfg.ppl_tokens)?;
        by_lang.insert(s.name.clone(), p);
        scored.insert(s.name.clone(), n);
    }
    let wt = tessera_core::fsx::read_to_string(tessera_core::assets::resolve_data(
        mixture::WIKITEXT_TEST,
    )?)?;
    let (p, n) = ppl_of(&model, &wt, cfg.window, cfg.ppl_tokens)?;
    by_lang.insert("en-wikitext-test".into(), p);
    scored.insert("en-wikitext-test".into(), n);
    let perplexity = match &text {
        Some(t) => Some(ppl_of(&model, t, cfg.window, cfg.ppl_tokens)?.0),
        None => None,
    };
    let mut res = EvalResult {
        model: cfg.model.clone(),
        split_seed,
        perplexity,
        perplexity_by_language: by_lang,
        scored_tokens: scored,
        refusal_rate: None,
        refusal_by_category: BTreeMap::new(),
        over_refusal_rate: None,
        harmful_evaluated: 0,
        benign_evaluated: 0,
        classifier_uses_minilm: false,
        replies: vec![],
    };
    if cfg.per_area == 0 && cfg.benign == 0 {
        return Ok(res);
    }
    let split = redteam::split(harmful, split_seed);
    let hp = eval_prompts(&split.test_harmful, cfg.per_area);
    let bp: Vec<&(String, String)> = split.test_benign.iter().take(cfg.benign).collect();
    let clf = if cfg.phrases_only {
        RefusalClassifier::phrases_only()
    } else {
        RefusalClassifier::from_asset(cfg.offline)?
    };
    res.classifier_uses_minilm = clf.uses_embedder();
    let hq: Vec<&str> = hp.iter().map(|h| h.text.as_str()).collect();
    let bq: Vec<&str> = bp.iter().map(|b| b.0.as_str()).collect();
    let ho = replies(&model, &hq, cfg.max_new_tokens)?;
    let bo = replies(&model, &bq, cfg.max_new_tokens)?;
    let hj = clf.judge_all(&ho.iter().map(String::as_str).collect::<Vec<_>>())?;
    let bj = clf.judge_all(&bo.iter().map(String::as_str).collect::<Vec<_>>())?;
    let mut per: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for ((h, o), j) in hp.iter().zip(&ho).zip(&hj) {
        let e = per.entry(h.area.to_string()).or_default();
        e.0 += j.refusal as usize;
        e.1 += 1;
        res.replies.push(Reply {
            kind: "harmful".into(),
            category: h.area.to_string(),
            prompt: h.text.clone(),
            output: if j.refusal || cfg.keep_harmful_outputs {
                o.clone()
            } else {
                REDACTED.to_string()
            },
            refusal: j.refusal,
            similarity: j.similarity,
        });
    }
    for ((b, o), j) in bp.iter().zip(&bo).zip(&bj) {
        res.replies.push(Reply {
            kind: "benign".into(),
            category: "benign".into(),
            prompt: b.0.clone(),
            output: o.clone(),
            refusal: j.refusal,
            similarity: j.similarity,
        });
    }
    let rate = |js: &[crate::refusal::Judgement]| {
        (!js.is_empty()).then(|| js.iter().filter(|j| j.refusal).count() as f64 / js.len() as f64)
    };
    res.refusal_rate = rate(&hj);
    res.over_refusal_rate = rate(&bj);
    res.refusal_by_category = per
        .into_iter()
        .map(|(k, (r, n))| (k, r as f64 / n as f64))
        .collect();
    res.harmful_evaluated = hp.len();
    res.benign_evaluated = bp.len();
    Ok(res)
}

/// Runs the evaluation with the red-team prompts of the asset step (skipped, with no download, when
/// `per_area` and `benign` are both 0).
pub fn run(cfg: &EvalConfig) -> Result<EvalResult> {
    let harmful = if cfg.per_area > 0 {
        redteam::load_harmful(cfg.offline)?
    } else {
        vec![]
    };
    run_with(cfg, &harmful)
}
