//! [`LocalChat`]: the Tessera runtime (`tessera-lm`) behind [`ChatModel`], with the model's chat template.
use crate::chat::{BoxFuture, ChatModel};
use crate::engine::{Engine, Event};
use crate::error::{LlmError, Result};
use crate::types::{
    ChatParams, ChatRequest, ChatResponse, Choice, TokenLogprob, TopLogprob, Usage,
};
use std::path::Path;
use std::sync::Arc;
use tessera_lm::{FinishReason, Generation, Llama, SamplingParams};
use tokio::sync::mpsc::UnboundedReceiver;

/// A local model answering through a worker [`Engine`].
#[derive(Clone)]
pub struct LocalChat {
    engine: Arc<Engine>,
    name: String,
}

impl LocalChat {
    /// Wraps a loaded model: one worker thread, a queue of 4096 waiting calls.
    pub fn new(model: Llama, name: impl Into<String>) -> Result<Self> {
        Ok(Self::with_engine(
            Arc::new(Engine::new(Arc::new(model), 1, 4096)?),
            name,
        ))
    }

    /// Like [`LocalChat::new`], running every generation with a fresh layer hook from `hooks` (e.g. FFN
    /// skipping; see [`Engine::with_hooks`]).
    pub fn with_hooks(
        model: Llama,
        name: impl Into<String>,
        hooks: tessera_lm::LayerHookFactory,
    ) -> Result<Self> {
        Ok(Self::with_engine(
            Arc::new(Engine::with_hooks(
                Arc::new(model),
                1,
                4096,
                1,
                Some(hooks),
            )?),
            name,
        ))
    }

    /// Loads a model by asset name (`smollm2-135m`) or path (GGUF file or safetensors directory) for inference in
    /// the file's own representation ([`tessera_lm::WeightDtype::File`]: a GGUF's quantized blocks), the default
    /// of every inference command.
    pub fn open(name_or_path: &str, offline: bool) -> Result<Self> {
        Self::open_with(name_or_path, offline, tessera_lm::WeightDtype::File)
    }

    /// [`LocalChat::open`] with an explicit weight representation (`local:MODEL;dtype=f32` in a backend spec).
    pub fn open_with(
        name_or_path: &str,
        offline: bool,
        dtype: tessera_lm::WeightDtype,
    ) -> Result<Self> {
        let path = tessera_core::assets::resolve_model(name_or_path, offline)?;
        let model = tessera_lm::load_with(&path, &tessera_lm::LoadOptions { dtype })?;
        Self::new(model, model_id(name_or_path))
    }

    /// Shares an existing engine (e.g. the server's).
    pub fn with_engine(engine: Arc<Engine>, name: impl Into<String>) -> Self {
        LocalChat {
            engine,
            name: name.into(),
        }
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    async fn run(&self, req: &ChatRequest) -> Result<ChatResponse> {
        let (prompt, sp) = prepare(&self.engine, req, false)?;
        let n = req.params.n;
        let rx = if n == 1 {
            self.engine.submit_plain(prompt.clone(), sp)?
        } else {
            self.engine.submit_batch(vec![prompt.clone(); n], sp)?
        };
        let gens = collect(rx).await?;
        let tok = self.engine.model().tokenizer()?;
        Ok(ChatResponse {
            model: self.name.clone(),
            usage: Usage {
                prompt_tokens: prompt.len(),
                completion_tokens: gens.iter().map(|g| g.tokens.len()).sum(),
            },
            choices: gens
                .iter()
                .map(|g| choice(g, tok, req.params.logprobs))
                .collect(),
        })
    }
}

impl ChatModel for LocalChat {
    fn name(&self) -> String {
        format!("local:{}", self.name)
    }

    fn chat<'a>(&'a self, req: &'a ChatRequest) -> BoxFuture<'a, Result<ChatResponse>> {
        Box::pin(self.run(req))
    }

    fn score<'a>(
        &'a self,
        req: &'a crate::types::ScoreRequest,
    ) -> BoxFuture<'a, Result<crate::types::ScoreResponse>> {
        let (engine, req, name) = (self.engine.clone(), req.clone(), self.name());
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                crate::completions::score_local(&engine, &name, &req)
            })
            .await
            .map_err(|e| LlmError::Protocol(format!("scoring task failed: {e}")))?
        })
    }
}

/// A short model id from a name or path (`smollm2-135m`, or a file stem).
pub fn model_id(name_or_path: &str) -> String {
    let p = Path::new(name_or_path);
    if p.components().count() > 1 || p.extension().is_some() {
        if let Some(s) = p.file_stem() {
            return s.to_string_lossy().into_owned();
        }
    }
    name_or_path.to_string()
}

/// Validates a request against the model and renders the prompt: `(prompt ids, sampling parameters)`.
/// Rejects prompts that leave no room for `max_tokens` in the model's context, and requests the memory budget can
/// never hold ([`Engine::admit`], the same checks `tessera generate` makes through
/// [`tessera_lm::limits::check_generation`]). With `fit_max_tokens`, `max_tokens` is first lowered to what the
/// context leaves (when it leaves anything). Tokenizes: call it off the async threads for long prompts.
pub fn prepare(
    engine: &Engine,
    req: &ChatRequest,
    fit_max_tokens: bool,
) -> Result<(Vec<u32>, SamplingParams)> {
    req.validate()?;
    let tok = engine.model().tokenizer()?;
    let prompt = tok.encode_chat(&req.messages)?;
    let ctx = engine.context_len();
    let mut sp = sampling(&req.params);
    if fit_max_tokens {
        sp.max_tokens = tessera_lm::limits::fit_max_tokens(ctx, prompt.len(), sp.max_tokens);
    }
    engine.admit(prompt.len(), req.params.n, &sp)?;
    Ok((prompt, sp))
}

/// Maps chat parameters onto the runtime's.
pub fn sampling(p: &ChatParams) -> SamplingParams {
    SamplingParams {
        max_tokens: p.max_tokens,
        temperature: p.temperature,
        top_k: 0,
        top_p: p.top_p,
        stop: p.stop.clone(),
        seed: p.seed.unwrap_or(0),
        top_logprobs: if p.logprobs { p.top_logprobs } else { 0 },
    }
}

/// Waits for a job's final generations (text events are skipped).
pub async fn collect(mut rx: UnboundedReceiver<Event>) -> Result<Vec<Generation>> {
    while let Some(ev) = rx.recv().await {
        match ev {
            Event::Text(_) => {}
            Event::Done(g) => return Ok(g),
            Event::Failed(e) => return Err(LlmError::Protocol(format!("local runtime: {e}"))),
        }
    }
    Err(LlmError::Protocol(
        "the model worker stopped without an answer".into(),
    ))
}

/// OpenAI's name for a finish reason.
pub fn finish_name(f: FinishReason) -> &'static str {
    match f {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
        FinishReason::Cancelled => "cancelled",
    }
}

/// One choice from a generation (with per-token log-probabilities when asked).
pub fn choice(g: &Generation, tok: &tessera_lm::Tokenizer, logprobs: bool) -> Choice {
    Choice {
        text: g.text.clone(),
        finish_reason: finish_name(g.finish_reason).into(),
        logprobs: logprobs.then(|| {
            g.tokens
                .iter()
                .zip(&g.logprobs)
                .enumerate()
                .map(|(i, (&t, &lp))| TokenLogprob {
                    token: tok.decode(&[t], false).unwrap_or_default(),
                    logprob: lp,
                    top_logprobs: g
                        .top_logprobs
                        .get(i)
                        .map(|alts| {
                            alts.iter()
                                .map(|&(a, alp)| TopLogprob {
                                    token: tok.decode(&[a], false).unwrap_or_default(),
                                    logprob: alp,
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                })
                .collect()
        }),
    }
}
