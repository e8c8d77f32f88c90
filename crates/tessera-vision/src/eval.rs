//! `tessera vlm eval`: [`EvalConfig`] → [`run`] → [`EvalResult`].
//!
//! - easy-vqa: for every test question the 13 candidate answers are scored by their log-likelihood after the
//!   prompt (sum over the answer's tokens, no end-of-turn token) and the best one is the prediction; accuracy is
//!   exact match with the reference answer. Scoring instead of free generation means an answer can never be
//!   malformed, and it is what "exact match over the 13 answers" needs.
//! - Fashion-MNIST t10k: zero-shot classification by caption likelihood: the ten captions `a photo of a
//!   <class>` are scored after the question "What is in the image?" and the most likely is the prediction (the
//!   shared words "a photo of a" go into the prompt; only the class words differ).
//!
//! `vqa_limit` / `fashion_limit` evaluate evenly spaced slices (question `i · n / limit`), so a slice covers the
//! whole test set.
use crate::data::{caption, patchify, EasyVqa, FashionMnist, RgbImage};
use crate::error::Result;
use crate::llava::Vlm;
use crate::train::CAPTION_QUESTION;
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Instant;

/// An evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalConfig {
    /// The VLM directory.
    pub model: PathBuf,
    /// easy-vqa test questions to score (`None` = all 9,673; `Some(0)` skips the dataset).
    pub vqa_limit: Option<usize>,
    /// Fashion-MNIST t10k images to score (`None` = all 10,000; `Some(0)` skips the dataset).
    pub fashion_limit: Option<usize>,
    /// Never download.
    pub offline: bool,
}

/// Accuracy per reference answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerAnswer {
    /// The reference answer.
    pub answer: String,
    /// Questions with this answer.
    pub n: usize,
    /// Correct predictions among them.
    pub correct: usize,
}

/// What `tessera vlm eval --json` prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalResult {
    /// The model evaluated.
    pub model: PathBuf,
    /// easy-vqa exact-match accuracy (`None` when skipped).
    pub easyvqa_accuracy: Option<f64>,
    /// Questions scored.
    pub easyvqa_questions: usize,
    /// Per-answer breakdown.
    pub easyvqa_per_answer: Vec<PerAnswer>,
    /// Fashion-MNIST t10k zero-shot accuracy (`None` when skipped).
    pub fashion_mnist_accuracy: Option<f64>,
    /// Images scored.
    pub fashion_mnist_images: usize,
    /// Wall seconds.
    pub seconds: f64,
}

/// Evenly spaced indices: `limit` of `0..n` (all when `limit` is `None` or ≥ n).
pub fn slice(n: usize, limit: Option<usize>) -> Vec<usize> {
    match limit {
        Some(l) if l < n => (0..l).map(|i| i * n / l).collect(),
        _ => (0..n).collect(),
    }
}

fn one_image(vlm: &Vlm, img: &RgbImage) -> Result<Tensor> {
    let c = &vlm.vit.config;
    Ok(Tensor::from_vec(
        patchify(img, c)?,
        (1, c.patches(), c.patch_dim()),
        &Device::Cpu,
    )?)
}

/// Splits the longest common prefix off candidate token lists (returned separately).
fn common_prefix(cands: &[Vec<u32>]) -> (Vec<u32>, Vec<Vec<u32>>) {
    let mut k = 0;
    let min = cands.iter().map(Vec::len).min().unwrap_or(0);
    // Keep at least one token per candidate.
    while k + 1 < min && cands.iter().all(|c| c[k] == cands[0][k]) {
        k += 1;
    }
    let prefix = cands.first().map(|c| c[..k].to_vec()).unwrap_or_default();
    (prefix, cands.iter().map(|c| c[k..].to_vec()).collect())
}

/// easy-vqa accuracy of `vlm` on the questions `idx` of the test split; returns (accuracy, per answer).
pub fn easyvqa_accuracy(
    vlm: &Vlm,
    vqa: &EasyVqa,
    idx: &[usize],
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(f64, Vec<PerAnswer>)> {
    let cands: Vec<Vec<u32>> = vqa
        .answers
        .iter()
        .map(|a| vlm.answer_tokens(a))
        .collect::<Result<_>>()?;
    let (shared, cands) = common_prefix(&cands);
    let mut per: Vec<PerAnswer> = vqa
        .answers
        .iter()
        .map(|a| PerAnswer {
            answer: a.clone(),
            n: 0,
            correct: 0,
        })
        .collect();
    let mut correct = 0;
    for (k, &i) in idx.iter().enumerate() {
        let q = &vqa.test.questions[i];
        let (pre, mut post) = vlm.prompt(&q.text)?;
        post.extend(&shared);
        let patches = one_image(vlm, &vqa.test.images[q.image])?;
        let s = vlm.score_candidates(&patches, &pre, &post, &cands)?;
        let pred = argmax(&s);
        per[q.answer].n += 1;
        if pred == q.answer {
            correct += 1;
            per[q.answer].correct += 1;
        }
        progress(k + 1, idx.len());
    }
    Ok((correct as f64 / idx.len().max(1) as f64, per))
}

/// Fashion-MNIST zero-shot accuracy of `vlm` on the t10k images `idx`.
pub fn fashion_accuracy(
    vlm: &Vlm,
    f: &FashionMnist,
    idx: &[usize],
    progress: &mut dyn FnMut(usize, usize),
) -> Result<f64> {
    let cands: Vec<Vec<u32>> = (0..10)
        .map(|c| vlm.answer_tokens(&caption(c)))
        .collect::<Result<_>>()?;
    let (shared, cands) = common_prefix(&cands);
    let (pre, mut post) = vlm.prompt(CAPTION_QUESTION)?;
    post.extend(&shared);
    let mut correct = 0;
    for (k, &i) in idx.iter().enumerate() {
        let img = f.test.image(i, vlm.vit.config.image_size);
        let s = vlm.score_candidates(&one_image(vlm, &img)?, &pre, &post, &cands)?;
        if argmax(&s) == f.test.labels[i] as usize {
            correct += 1;
        }
        progress(k + 1, idx.len());
    }
    Ok(correct as f64 / idx.len().max(1) as f64)
}

fn argmax(s: &[f64]) -> usize {
    let mut best = 0;
    for (i, v) in s.iter().enumerate() {
        if *v > s[best] {
            best = i;
        }
    }
    best
}

/// Evaluates an already loaded model on already loaded data.
pub fn evaluate(
    vlm: &Vlm,
    vqa: Option<&EasyVqa>,
    fashion: Option<&FashionMnist>,
    cfg: &EvalConfig,
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<EvalResult> {
    let t0 = Instant::now();
    let (mut acc, mut nq, mut per) = (None, 0, vec![]);
    if let Some(v) = vqa.filter(|_| cfg.vqa_limit != Some(0)) {
        let idx = slice(v.test.questions.len(), cfg.vqa_limit);
        let (a, p) = easyvqa_accuracy(vlm, v, &idx, &mut |i, n| progress("easy-vqa", i, n))?;
        acc = Some(a);
        nq = idx.len();
        per = p;
    }
    let (mut facc, mut nf) = (None, 0);
    if let Some(f) = fashion.filter(|_| cfg.fashion_limit != Some(0)) {
        let idx = slice(f.test.len(), cfg.fashion_limit);
        facc = Some(fashion_accuracy(vlm, f, &idx, &mut |i, n| {
            progress("fashion-mnist", i, n)
        })?);
        nf = idx.len();
    }
    Ok(EvalResult {
        model: cfg.model.clone(),
        easyvqa_accuracy: acc,
        easyvqa_questions: nq,
        easyvqa_per_answer: per,
        fashion_mnist_accuracy: facc,
        fashion_mnist_images: nf,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// Loads the model and the datasets and evaluates.
pub fn run(cfg: &EvalConfig, progress: &mut dyn FnMut(&str, usize, usize)) -> Result<EvalResult> {
    let (vlm, _) = Vlm::load(&cfg.model, cfg.offline)?;
    let side = vlm.vit.config.image_size;
    let vqa = if cfg.vqa_limit != Some(0) {
        Some(EasyVqa::load(
            &crate::data::easy_vqa_root(cfg.offline)?,
            side,
            None,
        )?)
    } else {
        None
    };
    let fashion = if cfg.fashion_limit != Some(0) {
        Some(FashionMnist::load(&FashionMnist::root(cfg.offline)?)?)
    } else {
        None
    };
    evaluate(&vlm, vqa.as_ref(), fashion.as_ref(), cfg, progress)
}
