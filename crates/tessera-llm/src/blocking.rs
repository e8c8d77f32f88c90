//! A blocking facade for callers outside async code (rayon threads, the game arena): [`BlockingChat`] owns a
//! small runtime, and [`chat`] runs any [`ChatModel`] on a shared one. Never call these from inside an async task.
use crate::chat::ChatModel;
use crate::error::{LlmError, Result};
use crate::types::{ChatRequest, ChatResponse};
use std::sync::{Arc, OnceLock};

/// A multi-threaded async runtime with `threads` workers (for CLI glue that must drive async code).
pub fn build_runtime(threads: usize) -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .thread_name("tessera-llm-io")
        .enable_all()
        .build()
        .map_err(|e| LlmError::Config(format!("cannot start the async runtime: {e}")))
}

fn shared_runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RT: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RT.get_or_init(|| build_runtime(2).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| LlmError::Config(e.clone()))
}

/// Runs one call to completion on the shared runtime; safe to call from many threads at once.
pub fn chat(model: &dyn ChatModel, req: &ChatRequest) -> Result<ChatResponse> {
    shared_runtime()?.block_on(model.chat(req))
}

/// A backend with its own runtime; `chat` may be called from many threads at once.
pub struct BlockingChat {
    model: Arc<dyn ChatModel>,
    rt: tokio::runtime::Runtime,
}

impl BlockingChat {
    /// Wraps a backend.
    pub fn new(model: Arc<dyn ChatModel>) -> Result<Self> {
        Ok(BlockingChat {
            model,
            rt: build_runtime(2)?,
        })
    }

    /// Opens a backend from a spec string (see [`crate::spec`]).
    pub fn open(spec: &str, offline: bool) -> Result<Self> {
        Self::new(crate::spec::open(spec, offline)?)
    }

    /// The wrapped backend.
    pub fn model(&self) -> &Arc<dyn ChatModel> {
        &self.model
    }

    /// Completes a conversation, blocking the calling thread.
    pub fn chat(&self, req: &ChatRequest) -> Result<ChatResponse> {
        self.rt.block_on(self.model.chat(req))
    }

    /// Runs any future on this runtime (e.g. [`crate::OpenAiChat::chat_stream`]).
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }
}
