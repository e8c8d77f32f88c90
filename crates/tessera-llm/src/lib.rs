//! Chat backends behind one trait, and an OpenAI-compatible server for local models.
//!
//! - [`ChatModel`] ([`chat`]): messages and sampling parameters in, completions with usage (and log-probabilities
//!   where offered) out.
//! - [`LocalChat`] ([`local`]): the Tessera runtime with the model's chat template, on worker threads
//!   ([`engine`]).
//! - [`OpenAiChat`] ([`openai`]): any OpenAI-compatible `/v1/chat/completions` endpoint, with timeouts,
//!   retries with exponential backoff and jitter, and a concurrency limit.
//! - [`spec::open`]: `local:NAME_OR_PATH`, `openai:URL#MODEL`, `replay:PATH`, optional `;record=PATH`.
//! - [`Recording`] / [`ReplayChat`] ([`record`]): JSONL transcripts and offline replay.
//! - [`blocking`]: calls from non-async code (rayon threads).
//! - [`server`]: `tessera serve`; [`mod@bench`]: `tessera bench serve`; [`abuse`]: `tessera bench serve --abuse`.
//!
//! Resource limits: every request is validated against the model's context and admitted against a memory budget
//! ([`engine`], estimates from [`tessera_lm::limits::MemoryModel`]); the server caps and times out connections.
//!
//! The wire format follows the OpenAI Chat Completions API reference (`POST /v1/chat/completions`, server-sent
//! event chunks `chat.completion.chunk`, error objects `{"error": {message, type, param, code}}`).
#![deny(missing_docs)]
pub mod abuse;
pub mod bench;
pub mod blocking;
pub mod chat;
pub mod completions;
pub mod engine;
pub mod error;
pub mod local;
pub mod openai;
pub mod record;
pub mod server;
pub mod spec;
pub mod tour;
pub mod types;
pub mod wire;

pub use blocking::BlockingChat;
pub use chat::{BoxFuture, ChatModel};
pub use engine::{Engine, EngineConfig, EngineStats};
pub use error::{LlmError, Result};
pub use local::LocalChat;
pub use openai::{OpenAiChat, OpenAiConfig};
pub use record::{Recording, ReplayChat, ScoreEntry, TranscriptEntry};
pub use server::{ServerConfig, ServerHandle};
pub use types::{
    ChatMessage, ChatParams, ChatRequest, ChatResponse, Choice, ContinuationScore, ScoreRequest,
    ScoreResponse, TokenLogprob, TopLogprob, Usage,
};
