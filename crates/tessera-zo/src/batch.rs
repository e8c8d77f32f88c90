//! Tokenised examples, the training loss and label-word scoring.
//!
//! - When every candidate of every example is a single token (SST-2's `" terrible"` / `" great"` on SmolLM2),
//!   one row per example holds the prompt and only the last position's logits are computed. The loss is then
//!   MeZO's classification loss: cross-entropy over the candidates' logits, `−log softmax_c(ℓ_c)[label]`; the
//!   prediction is the candidate with the highest log-likelihood.
//! - Otherwise (COPA; byte-level tokenizers) every candidate gets its own row `prompt + candidate`, scored by the
//!   mean log-probability of its tokens; the training loss is the next-token cross-entropy of the correct
//!   candidate's tokens (MeZO's language-modelling loss for multiple-choice tasks).
use crate::error::{Result, ZoError};
use crate::scheme::{Pass, Rows, Tunable};
use crate::task::Example;
use candle_core::{DType, Tensor, D};
use tessera_lm::Llama;

/// Prompts longer than this many tokens keep their last tokens.
pub const MAX_PROMPT_TOKENS: usize = 256;

/// One tokenised example.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    /// Prompt tokens.
    pub prompt: Vec<u32>,
    /// Candidate tokens.
    pub candidates: Vec<Vec<u32>>,
    /// The correct candidate.
    pub label: usize,
}

impl Encoded {
    fn single_token(&self) -> bool {
        self.candidates.iter().all(|c| c.len() == 1)
    }
}

/// Tokenises examples with the model's tokenizer (prompt and candidates separately, then concatenated).
pub fn encode(model: &Llama, examples: &[Example]) -> Result<Vec<Encoded>> {
    let tok = model.tokenizer()?;
    examples
        .iter()
        .map(|e| {
            let mut prompt = tok.encode(&e.prompt)?;
            if prompt.len() > MAX_PROMPT_TOKENS {
                prompt.drain(..prompt.len() - MAX_PROMPT_TOKENS);
            }
            let candidates = e
                .candidates
                .iter()
                .map(|c| tok.encode_plain(c))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            if prompt.is_empty()
                || candidates.iter().any(Vec::is_empty)
                || e.label >= candidates.len()
            {
                return Err(ZoError::invalid(format!(
                    "example `{}` tokenises to an empty prompt or candidate",
                    tessera_core::text::first_chars(&e.prompt, 60)
                )));
            }
            Ok(Encoded {
                prompt,
                candidates,
                label: e.label,
            })
        })
        .collect()
}

/// Per-row mean log-probability of each row's last `lens[i]` tokens (rows end at the last column).
fn row_scores(logits: &Tensor, rows: &Rows, lens: &[usize]) -> Result<Tensor> {
    let (b, n, v) = logits.dims3()?; // n = lmax + 1: the logits predicting the last lmax tokens, plus the last one
    let lmax = n - 1;
    let (_, t) = rows.ids.dims2()?;
    let ids: Vec<u32> = rows.ids.flatten_all()?.to_vec1()?;
    let (mut tg, mut w) = (vec![0u32; b * lmax], vec![0f32; b * lmax]);
    for i in 0..b {
        for r in 0..lmax {
            let a = t - lmax - 1 + r; // absolute position of this logit row; it predicts token a + 1
            tg[i * lmax + r] = ids[i * t + a + 1];
            if a + 1 >= t - lens[i] {
                w[i * lmax + r] = 1.0 / lens[i] as f32;
            }
        }
    }
    let dev = logits.device();
    let lp = candle_nn::ops::log_softmax(
        &logits.narrow(1, 0, lmax)?.reshape((b * lmax, v))?,
        D::Minus1,
    )?;
    let picked = lp
        .gather(&Tensor::from_vec(tg, (b * lmax, 1), dev)?, 1)?
        .reshape((b, lmax))?;
    Ok(picked.mul(&Tensor::from_vec(w, (b, lmax), dev)?)?.sum(1)?)
}

/// What a batch is scored with.
fn candidate_logits(
    model: &Llama,
    tun: &Tunable,
    ex: &[&Encoded],
    pass: Pass<'_>,
) -> Result<Tensor> {
    let rows = Rows::new(
        &ex.iter().map(|e| e.prompt.clone()).collect::<Vec<_>>(),
        model.device(),
    )?;
    let last = tun.logits(model, &rows, 1, pass)?.squeeze(1)?; // [b, vocab]
    let c = ex[0].candidates.len();
    let idx: Vec<u32> = ex
        .iter()
        .flat_map(|e| e.candidates.iter().map(|t| t[0]))
        .collect();
    let idx = Tensor::from_vec(idx, (ex.len(), c), model.device())?;
    Ok(last.gather(&idx, 1)?)
}

fn same_arity(ex: &[&Encoded]) -> bool {
    ex.iter()
        .all(|e| e.candidates.len() == ex[0].candidates.len())
}

/// The training loss of a batch (a scalar tensor; differentiable unless `pass` is [`Pass::Infer`]).
pub fn loss(model: &Llama, tun: &Tunable, ex: &[&Encoded], pass: Pass<'_>) -> Result<Tensor> {
    if ex.is_empty() {
        return Err(ZoError::invalid("an empty batch"));
    }
    if ex.iter().all(|e| e.single_token()) && same_arity(ex) {
        let z = candidate_logits(model, tun, ex, pass)?;
        let labels: Vec<u32> = ex.iter().map(|e| e.label as u32).collect();
        let labels = Tensor::from_vec(labels, ex.len(), model.device())?;
        return Ok(candle_nn::loss::cross_entropy(&z, &labels)?);
    }
    let seqs: Vec<Vec<u32>> = ex
        .iter()
        .map(|e| [e.prompt.as_slice(), &e.candidates[e.label]].concat())
        .collect();
    let lens: Vec<usize> = ex.iter().map(|e| e.candidates[e.label].len()).collect();
    let lmax = *lens.iter().max().unwrap_or(&1);
    let rows = Rows::new(&seqs, model.device())?;
    let logits = tun.logits(model, &rows, lmax + 1, pass)?;
    // Token-weighted mean over the batch: Σ_i len_i · mean_i / Σ_i len_i.
    let s = row_scores(&logits, &rows, &lens)?;
    let total: usize = lens.iter().sum();
    let wl: Vec<f32> = lens.iter().map(|&l| l as f32 / total as f32).collect();
    let wl = Tensor::from_vec(wl, ex.len(), model.device())?;
    Ok(s.mul(&wl)?.sum_all()?.neg()?)
}

/// The inference-mode loss as a number (what zeroth-order methods evaluate).
pub fn loss_value(model: &Llama, tun: &Tunable, ex: &[&Encoded]) -> Result<f64> {
    Ok(loss(model, tun, ex, Pass::Infer)?
        .to_dtype(DType::F64)?
        .to_scalar::<f64>()?)
}

/// Predicted candidate of every example (inference mode), `batch` examples per forward.
pub fn predict(model: &Llama, tun: &Tunable, ex: &[Encoded], batch: usize) -> Result<Vec<usize>> {
    let mut out = Vec::with_capacity(ex.len());
    for chunk in ex.chunks(batch.max(1)) {
        let refs: Vec<&Encoded> = chunk.iter().collect();
        if refs.iter().all(|e| e.single_token()) && same_arity(&refs) {
            let z: Vec<Vec<f32>> = candidate_logits(model, tun, &refs, Pass::Infer)?.to_vec2()?;
            out.extend(z.iter().map(|r| argmax(r)));
            continue;
        }
        let mut seqs = Vec::new();
        let mut lens = Vec::new();
        for e in &refs {
            for c in &e.candidates {
                seqs.push([e.prompt.as_slice(), c].concat());
                lens.push(c.len());
            }
        }
        let lmax = *lens.iter().max().unwrap_or(&1);
        let rows = Rows::new(&seqs, model.device())?;
        let logits = tun.logits(model, &rows, lmax + 1, Pass::Infer)?;
        let s: Vec<f32> = row_scores(&logits, &rows, &lens)?.to_vec1()?;
        let mut k = 0;
        for e in &refs {
            let n = e.candidates.len();
            out.push(argmax(&s[k..k + n]));
            k += n;
        }
    }
    Ok(out)
}

fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

/// Accuracy of `predict` on `ex`.
pub fn accuracy(model: &Llama, tun: &Tunable, ex: &[Encoded], batch: usize) -> Result<f64> {
    if ex.is_empty() {
        return Err(ZoError::invalid("no evaluation examples"));
    }
    let p = predict(model, tun, ex, batch)?;
    Ok(p.iter().zip(ex).filter(|(p, e)| **p == e.label).count() as f64 / ex.len() as f64)
}
