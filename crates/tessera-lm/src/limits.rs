//! Resource limits where user numbers meet model sizes: one validation of generation and perplexity requests
//! (shared by the CLI and the server), and a peak-memory estimator for admission control.
//!
//! The estimator ([`MemoryModel`]) follows the runtime's allocations: resident f32 weights, the KV cache (grown by
//! concatenation, so one layer's old and new copies coexist), prefill activations of one chunk of
//! `prefill_chunk` queries against key blocks of `key_block` keys (scores, softmax and mask), and the logits
//! rows read back for sampling. Sizes are computed with saturating arithmetic: an absurd request estimates to
//! `u64::MAX` bytes, which never fits a budget.
use crate::config::LlamaConfig;
use crate::error::{LmError, Result};
use crate::generate::SamplingParams;

/// Default prefill chunk (queries per prefill step) assumed by [`MemoryModel::new`].
pub const PREFILL_CHUNK: usize = 256;
/// Default attention key block (keys per score block) assumed by [`MemoryModel::new`].
pub const KEY_BLOCK: usize = 256;

/// Prefill chunk of the runtime as built ([`crate::model::PREFILL_CHUNK`]); [`MemoryModel::for_runtime`] uses it.
pub const RUNTIME_PREFILL_CHUNK: usize = crate::model::PREFILL_CHUNK;
/// Key block of the runtime as built ([`crate::model::ATTENTION_KEY_BLOCK`]).
pub const RUNTIME_KEY_BLOCK: usize = crate::model::ATTENTION_KEY_BLOCK;

/// Largest vocabulary a config may declare.
pub const MAX_VOCAB: usize = 1 << 22;
/// Largest model width.
pub const MAX_HIDDEN: usize = 1 << 16;
/// Largest feed-forward width.
pub const MAX_INTERMEDIATE: usize = 1 << 20;
/// Most decoder blocks.
pub const MAX_LAYERS: usize = 1 << 10;
/// Most attention heads.
pub const MAX_HEADS: usize = 1 << 10;
/// Longest context a config may declare (tokens).
pub const MAX_CONTEXT: usize = 1 << 20;

/// Shape numbers of a model that drive memory, plus the runtime's prefill chunk and key block sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct MemoryModel {
    /// Decoder blocks.
    pub layers: u64,
    /// Model width.
    pub hidden: u64,
    /// Feed-forward width.
    pub intermediate: u64,
    /// Query heads.
    pub heads: u64,
    /// Key/value heads.
    pub kv_heads: u64,
    /// Width of one head.
    pub head_dim: u64,
    /// Vocabulary size.
    pub vocab: u64,
    /// Context length (tokens).
    pub context: u64,
    /// Bytes of the resident weights (f32).
    pub weight_bytes: u64,
    /// Queries per prefill step (`u64::MAX`: the whole prompt at once).
    pub prefill_chunk: u64,
    /// Keys per attention score block (`u64::MAX`: all keys at once).
    pub key_block: u64,
}

const F32: u64 = 4;

fn mul(xs: &[u64]) -> u64 {
    xs.iter().fold(1u64, |a, &x| a.saturating_mul(x))
}

impl MemoryModel {
    /// The model's shape with the default [`PREFILL_CHUNK`] and [`KEY_BLOCK`].
    pub fn new(cfg: &LlamaConfig) -> Self {
        let (h, i, v) = (
            cfg.hidden_size as u64,
            cfg.intermediate_size as u64,
            cfg.vocab_size as u64,
        );
        let hd = cfg
            .hidden_size
            .checked_div(cfg.num_attention_heads)
            .unwrap_or(0) as u64;
        let kv = cfg.num_key_value_heads as u64;
        let per_layer = mul(&[h, h])
            .saturating_mul(2)
            .saturating_add(mul(&[2, kv, hd, h]))
            .saturating_add(mul(&[3, h, i]))
            .saturating_add(2 * h);
        let params = mul(&[per_layer, cfg.num_hidden_layers as u64])
            .saturating_add(mul(&[v, h]).saturating_mul(if cfg.tie_word_embeddings {
                1
            } else {
                2
            }))
            .saturating_add(h);
        MemoryModel {
            layers: cfg.num_hidden_layers as u64,
            hidden: h,
            intermediate: i,
            heads: cfg.num_attention_heads as u64,
            kv_heads: kv,
            head_dim: hd,
            vocab: v,
            context: cfg.max_position_embeddings as u64,
            weight_bytes: params.saturating_mul(F32),
            prefill_chunk: PREFILL_CHUNK as u64,
            key_block: KEY_BLOCK as u64,
        }
    }

    /// The model's shape with the runtime's own chunk and block sizes ([`RUNTIME_PREFILL_CHUNK`],
    /// [`RUNTIME_KEY_BLOCK`]): what admission control uses.
    pub fn for_runtime(cfg: &LlamaConfig) -> Self {
        Self::new(cfg).with_blocks(RUNTIME_PREFILL_CHUNK, RUNTIME_KEY_BLOCK)
    }

    /// Like [`MemoryModel::new`] for a runtime that prefills the whole prompt at once and scores all keys at once
    /// (attention scores of `t²` per head).
    pub fn unchunked(cfg: &LlamaConfig) -> Self {
        Self::new(cfg).with_blocks(usize::MAX, usize::MAX)
    }

    /// Sets the prefill chunk and key block sizes (0 is taken as 1).
    pub fn with_blocks(mut self, prefill_chunk: usize, key_block: usize) -> Self {
        self.prefill_chunk = (prefill_chunk as u64).max(1);
        self.key_block = (key_block as u64).max(1);
        self
    }

    /// Bytes held for the model itself: weights and rotary tables for the context.
    pub fn resident_bytes(&self) -> u64 {
        self.weight_bytes
            .saturating_add(mul(&[2, self.context, self.head_dim, F32]))
    }

    /// KV cache of `batch` sequences of `tokens` positions, all layers.
    pub fn kv_cache_bytes(&self, batch: u64, tokens: u64) -> u64 {
        mul(&[
            2,
            self.layers,
            batch,
            self.kv_heads,
            self.head_dim,
            tokens,
            F32,
        ])
    }

    /// Transient activations of one forward step of `batch` rows of `queries` new tokens against `keys` keys.
    pub fn step_bytes(&self, batch: u64, queries: u64, keys: u64) -> u64 {
        let q = queries.min(self.prefill_chunk).max(1);
        let k = keys.min(self.key_block).max(1);
        // Residual stream, norm output, q/k/v, attention output, gate/up/activation (a few live at once).
        let hidden = mul(&[
            batch,
            q,
            F32,
            (4u64.saturating_mul(self.hidden))
                .saturating_add(mul(&[2, self.kv_heads, self.head_dim]))
                .saturating_add(3u64.saturating_mul(self.intermediate)),
        ]);
        // Scores, mask-added scores and softmax output over one key block, plus the mask itself.
        let scores = mul(&[3, batch, self.heads, q, k, F32]);
        let rep = self.heads.checked_div(self.kv_heads).unwrap_or(1);
        let mask = mul(&[batch, rep.max(1), q, keys.max(1), F32]);
        // One layer's K/V re-concatenated with the cache (old and new copies alive together).
        let kv_copy = mul(&[2, batch, self.kv_heads, self.head_dim, keys.max(1), F32]);
        hidden
            .saturating_add(scores)
            .saturating_add(mask)
            .saturating_add(kv_copy)
    }

    /// Logits of the last position for `batch` rows, with the copies made to sample from them.
    pub fn logits_bytes(&self, batch: u64) -> u64 {
        mul(&[4, batch, self.vocab, F32])
    }

    /// Peak bytes beyond [`MemoryModel::resident_bytes`] of generating up to `max_tokens` tokens for `batch`
    /// copies of a `prompt`-token prompt (left-padded to the longest, so `prompt` is the longest).
    pub fn job_bytes(&self, batch: usize, prompt: usize, max_tokens: usize) -> u64 {
        let (b, t) = (batch as u64, prompt as u64);
        let total = t.saturating_add(max_tokens as u64);
        let prefill = self.step_bytes(b, t, t);
        let decode = self.step_bytes(b, 1, total);
        self.kv_cache_bytes(b, total)
            .saturating_add(prefill.max(decode))
            .saturating_add(self.logits_bytes(b))
            // Generated tokens, log-probabilities and text: small, bounded by the tokens.
            .saturating_add(mul(&[b, max_tokens as u64, 64]))
    }

    /// The largest batch (at most `batch`) of this prompt whose job fits in `free` bytes; 0 when even one does not.
    pub fn max_batch_within(
        &self,
        batch: usize,
        prompt: usize,
        max_tokens: usize,
        free: u64,
    ) -> usize {
        let (mut lo, mut hi) = (0usize, batch);
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if self.job_bytes(mid, prompt, max_tokens) <= free {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        lo
    }
}

fn proc_field(file: &str, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key).map(|r| r.trim().to_string()))
}

/// A safe default memory budget in bytes for a process that already holds `resident` bytes of model: the
/// resident bytes plus three quarters of what the machine has available now (`MemAvailable`), and no more than
/// three quarters of what an address-space limit (`ulimit -v`) leaves. 4 GiB of headroom where `/proc` cannot be
/// read.
pub fn default_memory_budget(resident: u64) -> u64 {
    let kib = |s: String| {
        s.split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .map(|v| v.saturating_mul(1024))
    };
    let available = proc_field("/proc/meminfo", "MemAvailable:")
        .and_then(kib)
        .unwrap_or(4 << 30);
    let mut headroom = available / 4 * 3;
    let as_limit = proc_field("/proc/self/limits", "Max address space").and_then(|s| {
        s.split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
    });
    if let Some(limit) = as_limit {
        let used = proc_field("/proc/self/status", "VmSize:")
            .and_then(kib)
            .unwrap_or(0);
        headroom = headroom.min(limit.saturating_sub(used) / 4 * 3);
    }
    resident.saturating_add(headroom)
}

/// Checks one generation request against the model's context: a non-empty prompt, `max_tokens >= 1`, and
/// prompt plus `max_tokens` within `context` (checked arithmetic; nothing wraps). Also checks the sampling ranges.
/// Returns the total number of positions the generation may use.
pub fn check_generation(context: usize, prompt_len: usize, p: &SamplingParams) -> Result<usize> {
    check_sampling(p)?;
    if prompt_len == 0 {
        return Err(LmError::Invalid("the prompt is empty".into()));
    }
    match prompt_len.checked_add(p.max_tokens) {
        Some(total) if total <= context => Ok(total),
        _ => Err(LmError::ContextLength {
            prompt_tokens: prompt_len,
            max_tokens: p.max_tokens,
            context,
        }),
    }
}

/// The part of [`check_generation`] that needs no model: sampling ranges and `max_tokens >= 1` (for checking
/// flags before a model is loaded).
pub fn check_sampling(p: &SamplingParams) -> Result<()> {
    p.validate()?;
    if p.max_tokens == 0 {
        return Err(LmError::Invalid("max_tokens must be at least 1".into()));
    }
    Ok(())
}

/// `max_tokens` lowered to what the context leaves after the prompt (unchanged when nothing is left, so that
/// [`check_generation`] reports the overflow).
pub fn fit_max_tokens(context: usize, prompt_len: usize, max_tokens: usize) -> usize {
    match context.checked_sub(prompt_len) {
        Some(left) if left > 0 => max_tokens.min(left),
        _ => max_tokens,
    }
}

/// Checks sliding-window perplexity settings: `window >= 2`, `0 < stride <= window`, `window <= context`.
pub fn check_perplexity(context: usize, window: usize, stride: usize) -> Result<()> {
    if window < 2 {
        return Err(LmError::Invalid(format!(
            "window {window} must be at least 2"
        )));
    }
    if stride == 0 || stride > window {
        return Err(LmError::Invalid(format!(
            "stride {stride} must be in 1..={window} (the window)"
        )));
    }
    if window > context {
        return Err(LmError::Invalid(format!(
            "window {window} exceeds the model's context of {context} tokens"
        )));
    }
    Ok(())
}

/// Number of windows the sliding-window protocol runs over `total` tokens (1 when the text fits one window).
/// Never divides by zero: a zero stride counts as 1.
pub fn perplexity_windows(total: usize, window: usize, stride: usize) -> usize {
    if total <= window {
        1
    } else {
        (total - window).div_ceil(stride.max(1)) + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::tiny_config;

    fn smollm() -> LlamaConfig {
        LlamaConfig {
            vocab_size: 49152,
            hidden_size: 576,
            intermediate_size: 1536,
            num_hidden_layers: 30,
            num_attention_heads: 9,
            num_key_value_heads: 3,
            max_position_embeddings: 8192,
            ..tiny_config(10)
        }
    }

    #[test]
    fn unchunked_prefill_of_the_issue_needs_tens_of_gigabytes() {
        let m = MemoryModel::unchunked(&smollm());
        // n = 16, 7000-token prompt: one score tensor is 16 x 9 x 7000^2 x 4 bytes = 28 GB.
        assert!(m.job_bytes(16, 7000, 2) > 28_000_000_000);
        // n = 16, ~1000 tokens: more than the 612 MB allocation that failed under a 2.5 GB limit.
        assert!(m.job_bytes(16, 1000, 2) > 612_265_536);
        let c = MemoryModel::new(&smollm());
        assert!(c.job_bytes(16, 7000, 2) < m.job_bytes(16, 7000, 2) / 4);
        // SmolLM2-135M: ~135M parameters.
        let p = m.weight_bytes / 4;
        assert!((130_000_000..140_000_000).contains(&p), "{p}");
    }

    #[test]
    fn batches_split_to_fit() {
        let m = MemoryModel::unchunked(&smollm());
        let one = m.job_bytes(1, 7000, 2);
        assert_eq!(m.max_batch_within(16, 7000, 2, one - 1), 0);
        assert_eq!(m.max_batch_within(16, 7000, 2, one), 1);
        let k = m.max_batch_within(16, 7000, 2, 4 * one);
        assert!((1..=4).contains(&k) && m.job_bytes(k, 7000, 2) <= 4 * one);
        assert_eq!(m.max_batch_within(16, 10, 2, u64::MAX), 16);
        assert_eq!(m.job_bytes(usize::MAX, usize::MAX, usize::MAX), u64::MAX);
    }

    #[test]
    fn generation_checks_do_not_wrap() {
        let mut p = SamplingParams {
            max_tokens: usize::MAX,
            ..SamplingParams::default()
        };
        assert!(matches!(
            check_generation(8192, 10, &p),
            Err(LmError::ContextLength { .. })
        ));
        p.max_tokens = 0;
        assert!(check_generation(8192, 10, &p).is_err());
        p.max_tokens = 8182;
        assert_eq!(check_generation(8192, 10, &p).unwrap(), 8192);
        p.max_tokens = 8183;
        assert!(check_generation(8192, 10, &p).is_err());
        assert!(check_generation(8192, 0, &p).is_err());
        assert_eq!(fit_max_tokens(8192, 10, usize::MAX), 8182);
        assert_eq!(fit_max_tokens(8192, 9000, 5), 5);
    }

    #[test]
    fn perplexity_settings() {
        assert!(check_perplexity(256, 64, 0).is_err());
        assert!(check_perplexity(256, 100_000, 512).is_err());
        assert!(check_perplexity(256, 1, 1).is_err());
        assert!(check_perplexity(256, 64, 65).is_err());
        assert!(check_perplexity(256, 64, 32).is_ok());
        assert_eq!(perplexity_windows(1000, 64, 0), 937);
        assert_eq!(perplexity_windows(10, 64, 32), 1);
    }
}
