//! Training losses over batches of sequences of unequal length.
//!
//! - [`TokenBatch`]: sequences right-padded to the longest member, with the key-padding mask
//!   [`Llama::forward`] takes and a per-token weight (0 ignores a token: padding, prompt tokens, everything but
//!   the assistant's replies).
//! - [`next_token_loss`]: weighted mean next-token cross-entropy, `Σ w·(−log p(target)) / Σ w`, in
//!   [`LossMode::Train`] (an autograd graph) or [`LossMode::Inference`] (no graph at all: the forward passes of
//!   zeroth-order tuning).
//! - [`kl_divergence`]: `KL(teacher ‖ student)` at temperature `T`, summed over the vocabulary and the weighted
//!   tokens and divided by the batch size (PyTorch's `kl_div(..., reduction="batchmean")`, as in SparseLoRA).
use crate::error::{LmError, Result};
use crate::model::{Forward, Input, Llama};
use candle_core::{DType, Device, Tensor, D};

/// A batch of token sequences right-padded to the longest one.
#[derive(Debug, Clone)]
pub struct TokenBatch {
    /// Token ids `[batch, tokens]` (u32); padding is `pad_id`.
    pub ids: Tensor,
    /// Key-padding mask `[batch, tokens]` (f32, 1 real token, 0 padding) for [`Forward::key_mask`].
    pub key_mask: Tensor,
    /// Per-token loss weight `[batch, tokens]` (f32): the weight of predicting token `j` from `..j`. Padding
    /// and position 0 (which nothing predicts) are 0.
    pub weights: Tensor,
    /// Length of every sequence before padding.
    pub lengths: Vec<usize>,
}

impl TokenBatch {
    /// Pads `seqs` with `pad_id`; every real token except the first of its sequence has weight 1.
    pub fn new(seqs: &[Vec<u32>], pad_id: u32) -> Result<Self> {
        let w: Vec<Vec<f32>> = seqs.iter().map(|s| vec![1.0; s.len()]).collect();
        Self::weighted(seqs, &w, pad_id)
    }

    /// Pads `seqs` with `pad_id` and weights token `j` of sequence `i` by `weights[i][j]` (≥ 0; 0 ignores it).
    /// The first token of every sequence is never a target.
    pub fn weighted(seqs: &[Vec<u32>], weights: &[Vec<f32>], pad_id: u32) -> Result<Self> {
        if seqs.is_empty() {
            return Err(LmError::Invalid(
                "a token batch needs at least one sequence".into(),
            ));
        }
        if weights.len() != seqs.len() {
            return Err(LmError::Invalid(format!(
                "{} weight rows for {} sequences",
                weights.len(),
                seqs.len()
            )));
        }
        let t = seqs.iter().map(Vec::len).max().unwrap_or(0);
        if t < 2 {
            return Err(LmError::Invalid(
                "a next-token loss needs a sequence of at least 2 tokens".into(),
            ));
        }
        let b = seqs.len();
        let (mut ids, mut mask, mut w) =
            (vec![pad_id; b * t], vec![0f32; b * t], vec![0f32; b * t]);
        for (i, (s, ws)) in seqs.iter().zip(weights).enumerate() {
            if ws.len() != s.len() {
                return Err(LmError::Invalid(format!(
                    "sequence {i} has {} tokens but {} weights",
                    s.len(),
                    ws.len()
                )));
            }
            for (j, (&id, &wj)) in s.iter().zip(ws).enumerate() {
                if !wj.is_finite() || wj < 0.0 {
                    return Err(LmError::Invalid(format!(
                        "weight {wj} of token {j} in sequence {i} is not a finite number ≥ 0"
                    )));
                }
                ids[i * t + j] = id;
                mask[i * t + j] = 1.0;
                if j > 0 {
                    w[i * t + j] = wj;
                }
            }
        }
        if w.iter().all(|&x| x == 0.0) {
            return Err(LmError::Invalid(
                "every token of the batch has weight 0".into(),
            ));
        }
        let dev = Device::Cpu;
        Ok(TokenBatch {
            ids: Tensor::from_vec(ids, (b, t), &dev)?,
            key_mask: Tensor::from_vec(mask, (b, t), &dev)?,
            weights: Tensor::from_vec(w, (b, t), &dev)?,
            lengths: seqs.iter().map(Vec::len).collect(),
        })
    }

    /// Chat-style supervision: token `j` of sequence `i` counts only where `assistant[i][j]` is true (the
    /// assistant's replies; prompts and system text are ignored).
    pub fn assistant_only(seqs: &[Vec<u32>], assistant: &[Vec<bool>], pad_id: u32) -> Result<Self> {
        let w: Vec<Vec<f32>> = assistant
            .iter()
            .map(|r| r.iter().map(|&a| if a { 1.0 } else { 0.0 }).collect())
            .collect();
        Self::weighted(seqs, &w, pad_id)
    }

    /// `(batch, tokens)`.
    pub fn dims(&self) -> (usize, usize) {
        let d = self.ids.dims();
        (d[0], d[1])
    }

    /// Targets `[batch, tokens − 1]`: token `j + 1` is what position `j` predicts.
    pub fn targets(&self) -> Result<Tensor> {
        let (_, t) = self.dims();
        Ok(self.ids.narrow(1, 1, t - 1)?.contiguous()?)
    }

    /// Weights aligned with [`TokenBatch::targets`], `[batch, tokens − 1]`.
    pub fn target_weights(&self) -> Result<Tensor> {
        let (_, t) = self.dims();
        Ok(self.weights.narrow(1, 1, t - 1)?.contiguous()?)
    }
}

/// Whether a loss builds an autograd graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossMode {
    /// Differentiable forward; with `freeze_base` only adapters and tensor inputs get gradients.
    Train {
        /// Freeze base weights, norms and the embedding ([`crate::Grad::Adapters`]).
        freeze_base: bool,
    },
    /// No graph: fused kernels, detached parameters (zeroth-order tuning, evaluation).
    Inference,
}

impl LossMode {
    fn forward_opts<'a>(self, batch: &'a TokenBatch) -> Forward<'a> {
        let (train, freeze_base) = match self {
            LossMode::Train { freeze_base } => (true, freeze_base),
            LossMode::Inference => (false, false),
        };
        Forward {
            train,
            freeze_base,
            key_mask: Some(&batch.key_mask),
            ..Default::default()
        }
    }
}

/// Logits `[batch, tokens, vocab]` of `batch` (token ids) in `mode`.
pub fn batch_logits(model: &Llama, batch: &TokenBatch, mode: LossMode) -> Result<Tensor> {
    model.forward(Input::Ids(&batch.ids), mode.forward_opts(batch))
}

/// Logits of input embeddings `[batch, tokens, hidden]` aligned with `batch` (its ids serve only as targets and
/// its key mask as the padding mask): prompt tuning and embedding-space attacks.
pub fn embeds_logits(
    model: &Llama,
    embeds: &Tensor,
    batch: &TokenBatch,
    mode: LossMode,
) -> Result<Tensor> {
    let (b, t) = batch.dims();
    if embeds.rank() != 3 || embeds.dim(0)? != b || embeds.dim(1)? != t {
        return Err(LmError::Invalid(format!(
            "embeddings {:?} do not match the batch [{b}, {t}, hidden]",
            embeds.dims()
        )));
    }
    model.forward(Input::Embeds(embeds), mode.forward_opts(batch))
}

/// Weighted mean cross-entropy of `logits` `[batch, n, vocab]` against `targets` `[batch, n]` (u32) with
/// `weights` `[batch, n]`: `Σ w·(−log softmax(logits)[target]) / Σ w`. Differentiable (composed ops only).
pub fn weighted_cross_entropy(
    logits: &Tensor,
    targets: &Tensor,
    weights: &Tensor,
) -> Result<Tensor> {
    let (b, n, v) = logits.dims3()?;
    if targets.dims() != [b, n] || weights.dims() != [b, n] {
        return Err(LmError::Invalid(format!(
            "targets {:?} / weights {:?} must be [{b}, {n}] for logits {:?}",
            targets.dims(),
            weights.dims(),
            logits.dims()
        )));
    }
    let lp = candle_nn::ops::log_softmax(&logits.reshape((b * n, v))?, D::Minus1)?;
    let picked = lp
        .gather(&targets.reshape((b * n, 1))?.to_dtype(DType::U32)?, 1)?
        .reshape((b * n,))?;
    let w = weights.reshape((b * n,))?.to_dtype(DType::F32)?;
    let total = w.sum_all()?.to_scalar::<f32>()?;
    if total <= 0.0 {
        return Err(LmError::Invalid("the loss weights sum to 0".into()));
    }
    Ok((picked.mul(&w)?.sum_all()?.neg()? / total as f64)?)
}

/// Weighted mean next-token cross-entropy of `batch` (see [`TokenBatch`]); a scalar tensor.
pub fn next_token_loss(model: &Llama, batch: &TokenBatch, mode: LossMode) -> Result<Tensor> {
    let logits = batch_logits(model, batch, mode)?;
    shifted_loss(&logits, batch)
}

/// [`next_token_loss`] for input embeddings instead of ids (gradients reach `embeds` when it is a `Var`).
pub fn next_token_loss_embeds(
    model: &Llama,
    embeds: &Tensor,
    batch: &TokenBatch,
    mode: LossMode,
) -> Result<Tensor> {
    let logits = embeds_logits(model, embeds, batch, mode)?;
    shifted_loss(&logits, batch)
}

/// The inference-mode loss as a number (no graph is built): the objective zeroth-order optimizers evaluate.
pub fn next_token_loss_value(model: &Llama, batch: &TokenBatch) -> Result<f64> {
    Ok(next_token_loss(model, batch, LossMode::Inference)?.to_scalar::<f32>()? as f64)
}

fn shifted_loss(logits: &Tensor, batch: &TokenBatch) -> Result<Tensor> {
    let (_, t, _) = logits.dims3()?;
    let pred = logits.narrow(1, 0, t - 1)?;
    weighted_cross_entropy(&pred, &batch.targets()?, &batch.target_weights()?)
}

/// `KL(teacher ‖ student)` at temperature `temperature`:
/// `Σ_tokens w · Σ_vocab p_T (log p_T − log p_S) / batch`, with `p = softmax(logits / T)`. Both logits are
/// `[batch, tokens, vocab]`; `weights` `[batch, tokens]` (0 ignores a token, e.g. padding) or `None` for all.
/// The teacher is detached (no gradient flows into it); the result is differentiable in the student.
pub fn kl_divergence(
    teacher: &Tensor,
    student: &Tensor,
    temperature: f64,
    weights: Option<&Tensor>,
) -> Result<Tensor> {
    if !(temperature.is_finite() && temperature > 0.0) {
        return Err(LmError::Invalid(format!(
            "KL temperature must be > 0, got {temperature}"
        )));
    }
    if teacher.dims() != student.dims() || teacher.rank() != 3 {
        return Err(LmError::Invalid(format!(
            "teacher logits {:?} and student logits {:?} must both be [batch, tokens, vocab]",
            teacher.dims(),
            student.dims()
        )));
    }
    let (b, t, _) = student.dims3()?;
    let lt = candle_nn::ops::log_softmax(&(teacher.detach() / temperature)?, D::Minus1)?;
    let ls = candle_nn::ops::log_softmax(&(student / temperature)?, D::Minus1)?;
    let per_token = lt.exp()?.mul(&(lt - ls)?)?.sum(D::Minus1)?; // [b, t]
    let per_token = match weights {
        None => per_token,
        Some(w) => {
            if w.dims() != [b, t] {
                return Err(LmError::Invalid(format!(
                    "KL weights {:?} must be [{b}, {t}]",
                    w.dims()
                )));
            }
            per_token.mul(&w.to_dtype(DType::F32)?)?
        }
    };
    Ok((per_token.sum_all()? / b as f64)?)
}

/// Distillation of `student` towards `teacher` on `batch`: the teacher runs in inference mode (no graph), the
/// student in `mode`; padding is ignored (the batch's key mask weights the tokens).
pub fn distill_kl(
    teacher: &Llama,
    student: &Llama,
    batch: &TokenBatch,
    temperature: f64,
    mode: LossMode,
) -> Result<Tensor> {
    let zt = batch_logits(teacher, batch, LossMode::Inference)?;
    let zs = batch_logits(student, batch, mode)?;
    kl_divergence(&zt, &zs, temperature, Some(&batch.key_mask))
}
