//! A scripted chat backend for tests and demos without a model: `script:PATH` in every `--backend` of
//! `tessera kg` (a JSON file of [`Script`]).
//!
//! Each call is answered by the first rule whose every `contains` string occurs in the conversation (all
//! messages; the default otherwise); scoring gives a continuation a log-likelihood of -1 when it contains one of
//! `prefer`, else -10. `unavailable_after` makes every call after the first N fail as an unreachable backend
//! would, to test stopping and resuming.
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use tessera_llm::{
    BoxFuture, ChatModel, ChatRequest, ChatResponse, Choice, ContinuationScore, LlmError,
    ScoreRequest, ScoreResponse, Usage,
};

/// One scripted answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    /// Strings that must all occur in the conversation.
    pub contains: Vec<String>,
    /// The reply.
    pub reply: String,
}

/// A whole script.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Script {
    /// Rules, first match wins.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// Reply when no rule matches.
    #[serde(default)]
    pub default: String,
    /// Continuations containing one of these score -1, others -10.
    #[serde(default)]
    pub prefer: Vec<String>,
    /// Calls (chat and score) answered before the backend turns unreachable.
    #[serde(default)]
    pub unavailable_after: Option<usize>,
}

/// The scripted backend.
#[derive(Debug)]
pub struct ScriptedChat {
    script: Script,
    calls: AtomicUsize,
}

impl ScriptedChat {
    /// A backend playing `script`.
    pub fn new(script: Script) -> Self {
        ScriptedChat {
            script,
            calls: AtomicUsize::new(0),
        }
    }

    /// Loads a script from a JSON file.
    pub fn open(path: &Path) -> crate::Result<Self> {
        let text = tessera_core::fsx::read_to_string(path)?;
        let script: Script = serde_json::from_str(&text).map_err(|e| crate::KgError::Format {
            path: path.to_path_buf(),
            msg: format!("not a chat script: {e}"),
        })?;
        Ok(Self::new(script))
    }

    /// Calls made so far.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn tick(&self) -> tessera_llm::Result<()> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        match self.script.unavailable_after {
            Some(limit) if n >= limit => Err(LlmError::Unavailable {
                attempts: 1,
                last: "scripted outage".into(),
            }),
            _ => Ok(()),
        }
    }

    fn reply(&self, req: &ChatRequest) -> String {
        let all: String = req
            .messages
            .iter()
            .map(|m| m.content.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        let last = all.as_str();
        self.script
            .rules
            .iter()
            .find(|r| r.contains.iter().all(|c| last.contains(c.as_str())))
            .map(|r| r.reply.clone())
            .unwrap_or_else(|| self.script.default.clone())
    }
}

impl ChatModel for ScriptedChat {
    fn name(&self) -> String {
        "script".into()
    }

    fn chat<'a>(
        &'a self,
        req: &'a ChatRequest,
    ) -> BoxFuture<'a, tessera_llm::Result<ChatResponse>> {
        Box::pin(async move {
            self.tick()?;
            let text = self.reply(req);
            Ok(ChatResponse {
                model: "script".into(),
                choices: vec![Choice {
                    text,
                    finish_reason: "stop".into(),
                    logprobs: None,
                }],
                usage: Usage::default(),
            })
        })
    }

    fn score<'a>(
        &'a self,
        req: &'a ScoreRequest,
    ) -> BoxFuture<'a, tessera_llm::Result<ScoreResponse>> {
        Box::pin(async move {
            self.tick()?;
            let scores = req
                .continuations
                .iter()
                .map(|c| ContinuationScore {
                    logprob: if self.script.prefer.iter().any(|p| c.contains(p.as_str())) {
                        -1.0
                    } else {
                        -10.0
                    },
                    tokens: 1,
                })
                .collect();
            Ok(ScoreResponse {
                model: "script".into(),
                scores,
                usage: Usage::default(),
            })
        })
    }
}

/// Opens a backend spec: `script:PATH` (this module) or anything [`tessera_llm::spec::open`] accepts.
pub fn open_backend(spec: &str, offline: bool) -> crate::Result<std::sync::Arc<dyn ChatModel>> {
    match spec.strip_prefix("script:") {
        Some(p) => Ok(std::sync::Arc::new(ScriptedChat::open(Path::new(p))?)),
        None => Ok(tessera_llm::spec::open(spec, offline)?),
    }
}
