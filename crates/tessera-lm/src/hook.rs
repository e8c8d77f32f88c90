//! The per-step layer hook: called inside every decoder block for every forward step (the whole prompt, or one
//! chunk of it, during prefill; one token per sequence during decoding) with the layer index, the absolute
//! positions and the residual stream before attention, after attention and after the FFN. After attention it
//! decides whether the block's FFN runs, for the whole step or per token; a skipped FFN leaves the residual
//! unchanged, while attention and the KV cache always run. A hook takes `&mut self`, so it may keep state between
//! layers and steps (FFN-SkipLLM's cosine of the previous layer, activation statistics).
//!
//! [`generate_with`](crate::generate::generate_with), [`generate_batch_with`](crate::generate::generate_batch_with)
//! and [`perplexity_with`](crate::perplexity::perplexity_with) accept one and tell it where a sequence starts
//! ([`LayerHook::begin_sequence`]) and which generated token a decoding step feeds ([`StepInfo::generated`]).
use crate::error::Result;
use candle_core::Tensor;
use std::sync::Arc;

/// What one forward step processes.
#[derive(Debug, Clone, Default)]
pub struct StepInfo {
    /// Sequences in the batch.
    pub batch: usize,
    /// Tokens per sequence in this step.
    pub tokens: usize,
    /// Tokens already in the KV cache before this step.
    pub past: usize,
    /// Absolute position of every token, row-major `[batch × tokens]` (left padding gives padded rows
    /// position 0).
    pub positions: Vec<u32>,
    /// During generation: the 0-based index of the generated token this step feeds (`None` for the prompt, a
    /// perplexity window or a plain forward).
    pub generated: Option<usize>,
}

/// Where a generation (or a scored window) starts.
#[derive(Debug, Clone, Default)]
pub struct SequenceInfo {
    /// Prompt length of every row.
    pub prompt_lens: Vec<usize>,
    /// A 64-bit FNV-1a hash of every row's prompt tokens ([`prompt_hash`]), so a hook can draw per-sequence
    /// randomness that is the same whether the sequence is decoded or scored teacher-forced.
    pub prompt_hashes: Vec<u64>,
    /// Most new tokens the generation may produce (0 for scoring).
    pub max_new_tokens: usize,
}

impl SequenceInfo {
    /// The start of a generation of `max_new_tokens` after each of `prompts` (one per row; 0 for scoring).
    pub fn new<P: AsRef<[u32]>>(prompts: &[P], max_new_tokens: usize) -> Self {
        SequenceInfo {
            prompt_lens: prompts.iter().map(|p| p.as_ref().len()).collect(),
            prompt_hashes: prompts.iter().map(|p| prompt_hash(p.as_ref())).collect(),
            max_new_tokens,
        }
    }
}

/// 64-bit FNV-1a over the little-endian bytes of `tokens`: stable across runs, platforms and releases.
pub fn prompt_hash(tokens: &[u32]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in tokens.iter().flat_map(|t| t.to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// One call site inside a block.
#[derive(Debug, Clone, Copy)]
pub struct LayerSite<'a> {
    /// Layer index.
    pub layer: usize,
    /// The step being run.
    pub step: &'a StepInfo,
    /// The residual stream `[batch, tokens, hidden]` at this point.
    pub residual: &'a Tensor,
}

/// Whether a block's FFN runs in the current step.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum FfnDecision {
    /// Run it for every token.
    #[default]
    Run,
    /// Skip it for every token (the residual passes through unchanged).
    Skip,
    /// Per token, row-major `[batch × tokens]`: `true` runs the FFN for that token, `false` skips it.
    PerToken(Vec<bool>),
}

impl FfnDecision {
    /// Whether the FFN ran for token `i` (row-major index) of the step.
    pub fn runs(&self, i: usize) -> bool {
        match self {
            FfnDecision::Run => true,
            FfnDecision::Skip => false,
            FfnDecision::PerToken(v) => v.get(i).copied().unwrap_or(true),
        }
    }
}

/// A hook called inside every block for every forward step. Every method has a do-nothing default.
pub trait LayerHook: Send {
    /// A generation (or scored window) starts.
    fn begin_sequence(&mut self, _info: &SequenceInfo) {}
    /// A forward step starts (before layer 0).
    fn begin_step(&mut self, _step: &StepInfo) {}
    /// The residual entering block `site.layer` (before its attention).
    fn before_attention(&mut self, _site: &LayerSite<'_>) -> Result<()> {
        Ok(())
    }
    /// The residual after the block's attention (before its FFN); returns whether the FFN runs.
    fn after_attention(&mut self, _site: &LayerSite<'_>) -> Result<FfnDecision> {
        Ok(FfnDecision::Run)
    }
    /// The residual leaving the block (after its FFN, or unchanged where the FFN was skipped).
    fn after_ffn(&mut self, _site: &LayerSite<'_>, _ran: &FfnDecision) -> Result<()> {
        Ok(())
    }
    /// The step's last block has run.
    fn end_step(&mut self, _step: &StepInfo) {}
    /// A JSON summary of what the hook did (e.g. the skipped fraction), stored in the generation's
    /// [`Generation::hook`](crate::generate::Generation::hook) at its end.
    fn summary(&self) -> Option<serde_json::Value> {
        None
    }
}

/// Makes a fresh hook per generation job (a server runs many generations at once, each with its own state).
pub type LayerHookFactory = Arc<dyn Fn() -> Box<dyn LayerHook> + Send + Sync>;

/// A hook that skips every FFN (attention and the KV cache still run).
#[derive(Debug, Clone, Copy, Default)]
pub struct SkipAllFfn;

impl LayerHook for SkipAllFfn {
    fn after_attention(&mut self, _site: &LayerSite<'_>) -> Result<FfnDecision> {
        Ok(FfnDecision::Skip)
    }
}
