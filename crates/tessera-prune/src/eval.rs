//! WikiText-2 perplexity in the Wanda protocol: the raw test text tokenized at once, cut into non-overlapping
//! windows of `window` tokens, each scoring its `window − 1` next-token predictions (the runtime's sliding-window
//! perplexity with stride = window). `max_tokens` keeps the first tokens only (the grid uses 65,536).
use crate::calib::{resolve_text, WIKITEXT_TEST};
use crate::error::{PruneError, Result};
use std::path::PathBuf;
use tessera_lm::perplexity::{self as ppl, PerplexityReport};
use tessera_lm::Llama;

/// Which perplexity to measure.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EvalConfig {
    /// Text file (default WikiText-2 raw test).
    pub text: Option<PathBuf>,
    /// Window = stride, tokens.
    pub window: usize,
    /// First tokens scored (0 = the whole text).
    pub max_tokens: usize,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            text: None,
            window: 512,
            max_tokens: 65_536,
        }
    }
}

impl EvalConfig {
    /// Checks the window against the model's positions.
    pub fn validate(&self, max_positions: usize) -> Result<()> {
        if self.window < 2 || self.window > max_positions {
            return Err(PruneError::Invalid(format!(
                "evaluation window {} must be in [2, {max_positions}]",
                self.window
            )));
        }
        Ok(())
    }
}

/// The perplexity of `model` as `cfg` says.
pub fn perplexity(model: &Llama, cfg: &EvalConfig) -> Result<PerplexityReport> {
    cfg.validate(model.max_positions())?;
    let path = resolve_text(cfg.text.as_ref(), WIKITEXT_TEST)?;
    let text = tessera_core::fsx::read_to_string(&path)?;
    let ids = ppl::tokenize_document(model, &text)?;
    Ok(ppl::perplexity(
        model,
        &ids,
        cfg.window,
        cfg.window,
        cfg.max_tokens,
        &mut |_, _| {},
    )?)
}
