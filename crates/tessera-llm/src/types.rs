//! Backend-neutral request and response types of one chat call.
use crate::error::{LlmError, Result};
use serde::{Deserialize, Serialize};
pub use tessera_lm::ChatMessage;

/// Sampling parameters of one request.
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

/// Largest `n` accepted.
pub const MAX_N: usize = 16;

impl ChatParams {
    /// Checks every range (the same limits the server enforces).
    pub fn validate(&self) -> Result<()> {
        if !self.temperature.is_finite() || !(0.0..=2.0).contains(&self.temperature) {
            return Err(LlmError::Invalid(format!(
                "temperature {} out of range [0, 2]",
                self.temperature
            )));
        }
        if !(self.top_p.is_finite() && self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(LlmError::Invalid(format!(
                "top_p {} out of range (0, 1]",
                self.top_p
            )));
        }
        if self.max_tokens == 0 {
            return Err(LlmError::Invalid("max_tokens must be at least 1".into()));
        }
        if self.top_logprobs > tessera_lm::generate::MAX_TOP_LOGPROBS {
            return Err(LlmError::Invalid(format!(
                "top_logprobs {} out of range [0, {}]",
                self.top_logprobs,
                tessera_lm::generate::MAX_TOP_LOGPROBS
            )));
        }
        if self.top_logprobs > 0 && !self.logprobs {
            return Err(LlmError::Invalid(
                "top_logprobs needs logprobs = true".into(),
            ));
        }
        if !(1..=MAX_N).contains(&self.n) {
            return Err(LlmError::Invalid(format!(
                "n {} out of range [1, {MAX_N}]",
                self.n
            )));
        }
        if self.stop.len() > 4 {
            return Err(LlmError::Invalid("at most 4 stop strings".into()));
        }
        Ok(())
    }
}

/// One chat request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The conversation (`system`, `user`, `assistant` messages).
    pub messages: Vec<ChatMessage>,
    /// Sampling parameters.
    #[serde(default)]
    pub params: ChatParams,
}

impl ChatRequest {
    /// A request with default parameters.
    pub fn new(messages: Vec<ChatMessage>) -> Self {
        ChatRequest {
            messages,
            params: ChatParams::default(),
        }
    }

    /// A one-turn request.
    pub fn user(text: impl Into<String>) -> Self {
        Self::new(vec![ChatMessage::new("user", text)])
    }

    /// Sets the parameters.
    pub fn with_params(mut self, params: ChatParams) -> Self {
        self.params = params;
        self
    }

    /// Checks roles, emptiness and parameter ranges.
    pub fn validate(&self) -> Result<()> {
        if self.messages.is_empty() {
            return Err(LlmError::Invalid("messages must not be empty".into()));
        }
        for (i, m) in self.messages.iter().enumerate() {
            if !matches!(m.role.as_str(), "system" | "user" | "assistant") {
                return Err(LlmError::Invalid(format!(
                    "messages[{i}].role `{}` is not system, user or assistant",
                    m.role
                )));
            }
        }
        self.params.validate()
    }
}

/// One generated token and its natural-log probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenLogprob {
    /// Token text.
    pub token: String,
    /// Log-probability under the model.
    pub logprob: f32,
    /// The most likely tokens at this position, most likely first (when `top_logprobs` was asked for).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub top_logprobs: Vec<TopLogprob>,
}

/// One alternative token at a position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopLogprob {
    /// Token text.
    pub token: String,
    /// Log-probability under the model.
    pub logprob: f32,
}

/// One completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    /// The completion text.
    pub text: String,
    /// `stop`, `length` or `cancelled` (or whatever a remote backend reports).
    pub finish_reason: String,
    /// Per-token log-probabilities, when asked for and offered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Vec<TokenLogprob>>,
}

/// Token counts of one call (summed over choices).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens (counted once).
    pub prompt_tokens: usize,
    /// Generated tokens, all choices.
    pub completion_tokens: usize,
}

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// The model that answered.
    pub model: String,
    /// `params.n` completions.
    pub choices: Vec<Choice>,
    /// Token usage.
    pub usage: Usage,
}

impl ChatResponse {
    /// The first completion's text (empty when there is none).
    pub fn text(&self) -> &str {
        self.choices.first().map(|c| c.text.as_str()).unwrap_or("")
    }

    /// Every completion's text.
    pub fn texts(&self) -> Vec<String> {
        self.choices.iter().map(|c| c.text.clone()).collect()
    }
}
