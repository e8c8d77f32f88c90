//! The chat-backend interface LLM agents talk to. A small object-safe trait so any backend (local model, an
//! OpenAI-compatible server, a scripted mock) can be plugged in through a [`BackendFactory`].
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

pub use tessera_core::chat::ChatMessage;

/// Sampling parameters of one request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatParams {
    /// Sampling temperature (GTBench: 0.2).
    pub temperature: f32,
    /// Token limit per completion (GTBench: 1024).
    pub max_tokens: u32,
    /// Number of completions to return.
    pub n: u32,
    /// Seed for reproducible sampling, where the backend supports it.
    pub seed: Option<u64>,
}

impl Default for ChatParams {
    fn default() -> Self {
        ChatParams {
            temperature: 0.2,
            max_tokens: 1024,
            n: 1,
            seed: None,
        }
    }
}

/// A backend failure.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BackendError {
    /// The backend could not be reached or crashed (connection refused, timeout, 5xx): not the agent's fault.
    #[error("backend unreachable: {0}")]
    Infrastructure(String),
    /// The backend answered but refused the request (bad request, content filter, context too long).
    #[error("backend refused the request: {0}")]
    Refused(String),
}

/// A chat model. `chat` returns `params.n` completions of the conversation.
pub trait ChatBackend: Send + Sync {
    /// Completes the conversation `messages`.
    fn chat(
        &self,
        messages: &[ChatMessage],
        params: &ChatParams,
    ) -> Result<Vec<String>, BackendError>;
}

/// Builds a backend from the part of an agent spec after `<kind>:` (e.g. `local:smollm2-135m`).
pub type BackendFactory =
    Arc<dyn Fn(&str) -> Result<Arc<dyn ChatBackend>, BackendError> + Send + Sync>;

/// A backend that replays scripted replies in order (each call pops one batch), for tests and dry runs.
/// When the script runs out it returns an infrastructure error.
#[derive(Default)]
pub struct ScriptedBackend {
    replies: Mutex<VecDeque<Result<Vec<String>, BackendError>>>,
    /// Every conversation received, in order.
    pub seen: Mutex<Vec<Vec<ChatMessage>>>,
}

impl ScriptedBackend {
    /// A backend replying `replies[i]` to the i-th request.
    pub fn new(replies: Vec<Result<Vec<String>, BackendError>>) -> Self {
        ScriptedBackend {
            replies: Mutex::new(replies.into()),
            seen: Mutex::new(Vec::new()),
        }
    }
    /// A backend whose every request gets one of `texts`, cycling.
    pub fn single(texts: &[&str]) -> Self {
        Self::new(texts.iter().map(|t| Ok(vec![t.to_string()])).collect())
    }
}

impl ChatBackend for ScriptedBackend {
    fn chat(
        &self,
        messages: &[ChatMessage],
        params: &ChatParams,
    ) -> Result<Vec<String>, BackendError> {
        if let Ok(mut s) = self.seen.lock() {
            s.push(messages.to_vec());
        }
        let next = self
            .replies
            .lock()
            .map_err(|_| BackendError::Infrastructure("poisoned".into()))?
            .pop_front();
        match next {
            Some(Ok(mut v)) => {
                while v.len() < params.n as usize {
                    let last = v.last().cloned().unwrap_or_default();
                    v.push(last);
                }
                Ok(v)
            }
            Some(Err(e)) => Err(e),
            None => Err(BackendError::Infrastructure(
                "scripted backend exhausted".into(),
            )),
        }
    }
}
