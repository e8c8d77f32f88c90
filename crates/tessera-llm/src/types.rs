//! Backend-neutral request and response types of one chat call.
use crate::error::{LlmError, Result};
use serde::{Deserialize, Serialize};
pub use tessera_lm::ChatMessage;

pub use tessera_core::chat::{ChatParams, MAX_N};

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
        self.params.validate().map_err(|e| match e {
            tessera_core::Error::InvalidInput(m) => LlmError::Invalid(m),
            other => LlmError::Core(other),
        })
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

/// Most continuations one [`ScoreRequest`] may carry.
pub const MAX_CONTINUATIONS: usize = 1024;

/// A scoring request: the log-likelihood of each continuation as the assistant's reply to `messages`
/// (lm-eval-harness's `loglikelihood`, used for multiple choice and legal-move decoding).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreRequest {
    /// The conversation; the continuations follow its assistant header.
    pub messages: Vec<ChatMessage>,
    /// Text the assistant has already written (e.g. its own chain of thought), shared by every continuation and
    /// not scored.
    #[serde(default)]
    pub prefix: String,
    /// The candidate continuations, each scored on its own after `messages` and `prefix`.
    pub continuations: Vec<String>,
}

impl ScoreRequest {
    /// Checks the conversation and that there are 1..=[`MAX_CONTINUATIONS`] non-empty continuations.
    pub fn validate(&self) -> Result<()> {
        ChatRequest::new(self.messages.clone()).validate()?;
        if self.continuations.is_empty() || self.continuations.len() > MAX_CONTINUATIONS {
            return Err(LlmError::Invalid(format!(
                "{} continuations; give 1 to {MAX_CONTINUATIONS}",
                self.continuations.len()
            )));
        }
        if let Some(i) = self.continuations.iter().position(|c| c.is_empty()) {
            return Err(LlmError::Invalid(format!("continuations[{i}] is empty")));
        }
        Ok(())
    }
}

/// The log-likelihood of one continuation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ContinuationScore {
    /// Sum of the natural-log probabilities of the continuation's tokens.
    pub logprob: f64,
    /// Number of tokens scored.
    pub tokens: usize,
}

/// The answer to a [`ScoreRequest`], one score per continuation in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreResponse {
    /// The model that scored.
    pub model: String,
    /// Scores, in the order of the continuations.
    pub scores: Vec<ContinuationScore>,
    /// Token usage (prompt counted once; completion = scored tokens).
    pub usage: Usage,
}
