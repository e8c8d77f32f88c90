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
//! - [`server`]: `tessera serve`; [`bench`](mod@bench): `tessera bench serve`.
//!
//! The wire format follows the OpenAI Chat Completions API reference (`POST /v1/chat/completions`, server-sent
//! event chunks `chat.completion.chunk`, error objects `{"error": {message, type, param, code}}`).
pub mod bench;
pub mod blocking;
pub mod chat;
pub mod engine;
pub mod error;
pub mod local;
pub mod openai;
pub mod record;
pub mod server;
pub mod spec;
pub mod types;
pub mod wire;

pub use blocking::BlockingChat;
pub use chat::{BoxFuture, ChatModel};
pub use engine::{Engine, EngineStats};
pub use error::{LlmError, Result};
pub use local::LocalChat;
pub use openai::{OpenAiChat, OpenAiConfig};
pub use record::{Recording, ReplayChat, TranscriptEntry};
pub use server::{ServerConfig, ServerHandle};
pub use types::{
    ChatMessage, ChatParams, ChatRequest, ChatResponse, Choice, TokenLogprob, TopLogprob, Usage,
};
