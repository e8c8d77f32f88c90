//! The chat-backend interface LLM agents talk to. A small object-safe trait so any backend (local model, an
//! OpenAI-compatible server, a scripted mock) can be plugged in through a [`BackendFactory`].
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

pub use tessera_core::chat::ChatMessage;

/// Sampling parameters of one request: the one type shared with every chat backend (`tessera-llm`).
pub use tessera_core::chat::ChatParams;

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

    /// The log-likelihood (sum of token log-probabilities) of each continuation as the assistant's reply to
    /// `messages`, after the assistant text `prefix` (shared, not scored). Backends that cannot score refuse
    /// (the default).
    fn score(
        &self,
        messages: &[ChatMessage],
        prefix: &str,
        continuations: &[String],
    ) -> Result<Vec<f64>, BackendError> {
        let _ = (messages, prefix, continuations);
        Err(BackendError::Refused(
            "this backend cannot score continuations (legal-move decoding needs a local model or a server with /v1/completions echo+logprobs)".into(),
        ))
    }
}

/// A scoring function for [`ScriptedBackend::with_scorer`]: `(messages, prefix, continuations) -> log-likelihoods`.
pub type Scorer = Box<dyn Fn(&[ChatMessage], &str, &[String]) -> Vec<f64> + Send + Sync>;

/// Builds a backend from the part of an agent spec after `<kind>:` (e.g. `local:smollm2-135m`).
pub type BackendFactory =
    Arc<dyn Fn(&str) -> Result<Arc<dyn ChatBackend>, BackendError> + Send + Sync>;

/// A backend that replays scripted replies in order (each call pops one batch), for tests and dry runs.
/// When the script runs out it returns an infrastructure error.
#[derive(Default)]
pub struct ScriptedBackend {
    replies: Mutex<VecDeque<Result<Vec<String>, BackendError>>>,
    scorer: Option<Scorer>,
    /// Every conversation received, in order.
    pub seen: Mutex<Vec<Vec<ChatMessage>>>,
    /// Every scoring request received: `(prefix, continuations)`.
    pub scored: Mutex<Vec<(String, Vec<String>)>>,
}

impl ScriptedBackend {
    /// A backend replying `replies[i]` to the i-th request.
    pub fn new(replies: Vec<Result<Vec<String>, BackendError>>) -> Self {
        ScriptedBackend {
            replies: Mutex::new(replies.into()),
            ..Default::default()
        }
    }
    /// Adds a scoring function (otherwise scoring is refused).
    pub fn with_scorer(mut self, scorer: Scorer) -> Self {
        self.scorer = Some(scorer);
        self
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
                while v.len() < params.n {
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

    fn score(
        &self,
        messages: &[ChatMessage],
        prefix: &str,
        continuations: &[String],
    ) -> Result<Vec<f64>, BackendError> {
        if let Ok(mut s) = self.scored.lock() {
            s.push((prefix.to_string(), continuations.to_vec()));
        }
        match &self.scorer {
            Some(f) => Ok(f(messages, prefix, continuations)),
            None => Err(BackendError::Refused(
                "scripted backend has no scorer".into(),
            )),
        }
    }
}
