//! Perplexity with the standard sliding-window protocol (as in the HF "Perplexity of fixed-length models" guide):
//! line endings normalised to `\n`; the whole text tokenized at once without BOS (unless the model requires one);
//! windows of `window` tokens advanced by `stride`; each window scores only the tokens no earlier window scored,
//! conditioning on the rest of the window as context. PPL = exp(mean NLL over scored tokens).
use crate::error::{LmError, Result};
use crate::hook::{LayerHook, SequenceInfo};
use crate::model::{Forward, Input, Llama};
use candle_core::{Tensor, D};
use serde::Serialize;

/// Result of a perplexity run.
#[derive(Debug, Clone, Serialize)]
pub struct PerplexityReport {
    /// exp(mean negative log-likelihood).
    pub perplexity: f64,
    /// Mean negative log-likelihood (nats per token).
    pub nll: f64,
    /// Tokens in the text.
    pub tokens: usize,
    /// Tokens that were scored (all but the first).
    pub scored_tokens: usize,
    /// Window length.
    pub window: usize,
    /// Stride.
    pub stride: usize,
    /// Number of forward passes.
    pub windows: usize,
}

/// Token ids of a text per the protocol (CRLF/CR → LF, no BOS unless the tokenizer requires it).
pub fn tokenize_document(model: &Llama, text: &str) -> Result<Vec<u32>> {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    if text.trim().is_empty() {
        return Err(LmError::Invalid("the text is empty".into()));
    }
    model.tokenizer()?.encode(&text)
}

/// Sliding-window perplexity of `ids`. `max_tokens` truncates the document (0 = all). `progress` is told the
/// number of windows done.
pub fn perplexity(
    model: &Llama,
    ids: &[u32],
    window: usize,
    stride: usize,
    max_tokens: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<PerplexityReport> {
    perplexity_with(model, ids, window, stride, max_tokens, None, progress)
}

/// [`perplexity`] with a [`LayerHook`] inside every block; each window is one sequence
/// ([`LayerHook::begin_sequence`] with `max_new_tokens` 0).
pub fn perplexity_with(
    model: &Llama,
    ids: &[u32],
    window: usize,
    stride: usize,
    max_tokens: usize,
    mut hook: Option<&mut dyn LayerHook>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<PerplexityReport> {
    if window < 2 || stride == 0 || stride > window {
        return Err(LmError::Invalid(format!(
            "need window >= 2 and 0 < stride <= window (got {window}, {stride})"
        )));
    }
    let ids = if max_tokens > 0 && ids.len() > max_tokens {
        &ids[..max_tokens]
    } else {
        ids
    };
    if ids.len() < 2 {
        return Err(LmError::Invalid("the text has fewer than 2 tokens".into()));
    }
    let n = ids.len();
    let starts: Vec<usize> = {
        let mut v = vec![];
        let mut s = 0;
        loop {
            v.push(s);
            if s + window >= n {
                break;
            }
            s += stride;
        }
        v
    };
    let (mut nll_sum, mut scored, mut prev_end) = (0f64, 0usize, 0usize);
    for (wi, &begin) in starts.iter().enumerate() {
        let end = (begin + window).min(n);
        // Targets are positions begin+1..end; score only those not scored before (index >= prev_end, and >= 1).
        let first_target = prev_end.max(begin + 1);
        let chunk = Tensor::new(&ids[begin..end], model.device())?.unsqueeze(0)?;
        if let Some(h) = hook.as_deref_mut() {
            h.begin_sequence(&SequenceInfo::new(&[&ids[begin..end]], 0));
        }
        let from = first_target - begin - 1; // logits row predicting token first_target
        let rows = end - first_target;
        let logits = model
            .forward(
                Input::Ids(&chunk),
                Forward {
                    logits_from: Some(from),
                    hook: hook.as_deref_mut().map(|h| h as _),
                    ..Default::default()
                },
            )?
            .squeeze(0)?;
        let lsm = candle_nn::ops::log_softmax(&logits, D::Minus1)?.narrow(0, 0, rows)?;
        let targets = Tensor::new(&ids[first_target..end], model.device())?.unsqueeze(1)?;
        let picked: Vec<f32> = lsm.gather(&targets, 1)?.squeeze(1)?.to_vec1()?;
        nll_sum -= picked.iter().map(|&x| x as f64).sum::<f64>();
        scored += rows;
        prev_end = end;
        progress(wi + 1, starts.len());
    }
    let nll = nll_sum / scored as f64;
    Ok(PerplexityReport {
        perplexity: nll.exp(),
        nll,
        tokens: n,
        scored_tokens: scored,
        window,
        stride,
        windows: starts.len(),
    })
}
