//! The [`ChatModel`] trait every backend implements.
use crate::error::Result;
use crate::types::{ChatRequest, ChatResponse, ScoreRequest, ScoreResponse};
use std::future::Future;
use std::pin::Pin;

/// A boxed, sendable future (keeps [`ChatModel`] object-safe without a proc-macro crate).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A chat model: messages and sampling parameters in, `params.n` completions with usage out.
///
/// Implementations must be cheap to share (`Arc<dyn ChatModel>`) and safe to call concurrently.
/// Non-async callers use [`crate::blocking`].
pub trait ChatModel: Send + Sync {
    /// A short name for logs and transcripts (never contains a secret).
    fn name(&self) -> String;

    /// Completes the conversation.
    fn chat<'a>(&'a self, req: &'a ChatRequest) -> BoxFuture<'a, Result<ChatResponse>>;

    /// The log-likelihood of each continuation after the conversation (and the shared assistant prefix).
    ///
    /// Backends that cannot score answer [`crate::LlmError::Invalid`] (the default): the local runtime and
    /// OpenAI-compatible servers that offer `/v1/completions` with `echo` and `logprobs` (vLLM, `tessera serve`)
    /// can.
    fn score<'a>(&'a self, req: &'a ScoreRequest) -> BoxFuture<'a, Result<ScoreResponse>> {
        let _ = req;
        Box::pin(async move {
            Err(crate::LlmError::Invalid(format!(
                "backend `{}` cannot score continuations",
                self.name()
            )))
        })
    }
}
