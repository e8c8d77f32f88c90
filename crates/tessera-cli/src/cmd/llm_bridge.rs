//! Connects systems that call language models through their own small traits (the arena's `ChatBackend`) to the
//! shared chat backends of `tessera-llm` (`local:…`, `openai:URL#model`, `replay:…`).
use super::Ctx;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tessera_arena::agents::backend::{
    self as arena_backend, BackendError, BackendFactory, ChatBackend,
};
use tessera_llm::{BlockingChat, ChatRequest, LlmError, ScoreRequest};

/// A `tessera-llm` backend seen through the arena's trait.
struct ArenaChat(BlockingChat);

fn classify(e: LlmError) -> BackendError {
    // Infrastructure failures are not the agent's fault: the match is recorded as such and retried on resume.
    if e.is_infrastructure() {
        BackendError::Infrastructure(e.to_string())
    } else {
        BackendError::Refused(e.to_string())
    }
}

impl ChatBackend for ArenaChat {
    fn chat(
        &self,
        messages: &[arena_backend::ChatMessage],
        params: &arena_backend::ChatParams,
    ) -> Result<Vec<String>, BackendError> {
        let req = ChatRequest::new(messages.to_vec()).with_params(params.clone());
        Ok(self.0.chat(&req).map_err(classify)?.texts())
    }

    fn score(
        &self,
        messages: &[arena_backend::ChatMessage],
        prefix: &str,
        continuations: &[String],
    ) -> Result<Vec<f64>, BackendError> {
        let req = ScoreRequest {
            messages: messages.to_vec(),
            prefix: prefix.to_string(),
            continuations: continuations.to_vec(),
        };
        let resp = self
            .0
            .block_on(self.0.model().score(&req))
            .map_err(classify)?;
        Ok(resp.scores.iter().map(|s| s.logprob).collect())
    }
}

/// A factory for arena LLM agents; each distinct backend spec is opened once and shared.
pub fn arena_backend_factory(ctx: &Ctx) -> BackendFactory {
    let offline = ctx.offline;
    let opened: Mutex<HashMap<String, Arc<dyn ChatBackend>>> = Mutex::new(HashMap::new());
    Arc::new(move |spec: &str| {
        let mut map = opened.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = map.get(spec) {
            return Ok(b.clone());
        }
        let chat = BlockingChat::open(spec, offline).map_err(classify)?;
        let b: Arc<dyn ChatBackend> = Arc::new(ArenaChat(chat));
        map.insert(spec.to_string(), b.clone());
        Ok(b)
    })
}
