//! The chat message every system exchanges with a language model (runtime, backends, LLM agents).
use serde::{Deserialize, Serialize};

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

impl ChatMessage {
    /// A message with `role` and `content`.
    pub fn new(role: &str, content: impl Into<String>) -> Self {
        ChatMessage {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// Most alternatives per position a caller may ask for with `top_logprobs`.
pub const MAX_TOP_LOGPROBS: usize = 20;

/// Largest number of completions (`n`) one request may ask for.
pub const MAX_N: usize = 16;

/// Sampling parameters of one chat request, shared by every chat backend (`tessera-llm`) and every system that
/// calls one (the arena's LLM agents).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChatParams {
    /// Sampling temperature (0 = greedy), in [0, 2].
    pub temperature: f64,
    /// Nucleus sampling mass, in (0, 1].
    pub top_p: f64,
    /// Most new tokens per completion.
    pub max_tokens: usize,
    /// Completion stops before any of these strings (at most 4).
    pub stop: Vec<String>,
    /// Seed for reproducible sampling, where the backend supports it.
    pub seed: Option<u64>,
    /// Number of completions.
    pub n: usize,
    /// Ask for per-token log-probabilities, where the backend offers them.
    pub logprobs: bool,
    /// With `logprobs`, also the this-many most likely alternatives at each position (0–20).
    pub top_logprobs: usize,
}

impl Default for ChatParams {
    fn default() -> Self {
        ChatParams {
            temperature: 0.0,
            top_p: 1.0,
            max_tokens: 256,
            stop: vec![],
            seed: None,
            n: 1,
            logprobs: false,
            top_logprobs: 0,
        }
    }
}

impl ChatParams {
    /// Checks every range (the same limits the server enforces); the error is [`crate::Error::InvalidInput`].
    pub fn validate(&self) -> crate::Result<()> {
        if !self.temperature.is_finite() || !(0.0..=2.0).contains(&self.temperature) {
            crate::bail_invalid!("temperature {} out of range [0, 2]", self.temperature);
        }
        if !(self.top_p.is_finite() && self.top_p > 0.0 && self.top_p <= 1.0) {
            crate::bail_invalid!("top_p {} out of range (0, 1]", self.top_p);
        }
        if self.max_tokens == 0 {
            crate::bail_invalid!("max_tokens must be at least 1");
        }
        if self.top_logprobs > MAX_TOP_LOGPROBS {
            crate::bail_invalid!(
                "top_logprobs {} out of range [0, {MAX_TOP_LOGPROBS}]",
                self.top_logprobs
            );
        }
        if self.top_logprobs > 0 && !self.logprobs {
            crate::bail_invalid!("top_logprobs needs logprobs = true");
        }
        if !(1..=MAX_N).contains(&self.n) {
            crate::bail_invalid!("n {} out of range [1, {MAX_N}]", self.n);
        }
        if self.stop.len() > 4 {
            crate::bail_invalid!("at most 4 stop strings");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_ranges_are_checked() {
        assert!(ChatParams::default().validate().is_ok());
        for bad in [
            ChatParams {
                temperature: 2.5,
                ..Default::default()
            },
            ChatParams {
                top_p: 0.0,
                ..Default::default()
            },
            ChatParams {
                max_tokens: 0,
                ..Default::default()
            },
            ChatParams {
                n: 0,
                ..Default::default()
            },
            ChatParams {
                top_logprobs: 3,
                ..Default::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
