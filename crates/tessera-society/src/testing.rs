//! A scripted chat backend (`script:PATH`, a JSON [`Script`]) for tests and demos without a model: each call is
//! answered by the first rule whose `contains` strings all occur in the conversation's last user message (the
//! default reply otherwise). `{n}` in a reply becomes the number of calls answered so far, so replies differ from
//! round to round.
use crate::error::Result;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use tessera_llm::{BoxFuture, ChatModel, ChatRequest, ChatResponse, Choice, Usage};

/// One rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    /// Strings that must all occur in the last user message.
    pub contains: Vec<String>,
    /// The reply.
    pub reply: String,
}

/// A script.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Script {
    /// Rules, first match wins.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// Reply when no rule matches.
    #[serde(default)]
    pub default: String,
}

/// The scripted backend.
#[derive(Debug)]
pub struct ScriptChat {
    script: Script,
    calls: AtomicUsize,
}

impl ScriptChat {
    /// A backend playing `script`.
    pub fn new(script: Script) -> Self {
        ScriptChat {
            script,
            calls: AtomicUsize::new(0),
        }
    }

    /// Loads a script file.
    pub fn open(path: &Path) -> Result<Self> {
        let text = tessera_core::fsx::read_to_string(path)?;
        let s: Script = serde_json::from_str(&text)
            .map_err(|e| tessera_core::Error::format(path, e.to_string()))?;
        Ok(Self::new(s))
    }

    fn answer(&self, req: &ChatRequest) -> ChatResponse {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let last = req
            .messages
            .iter()
            .rev()
            .find(|m| m.role == "user")
            .map(|m| m.content.as_str())
            .unwrap_or("");
        let reply = self
            .script
            .rules
            .iter()
            .find(|r| r.contains.iter().all(|c| last.contains(c.as_str())))
            .map_or(self.script.default.as_str(), |r| r.reply.as_str())
            .replace("{n}", &n.to_string());
        ChatResponse {
            model: "script".into(),
            choices: vec![Choice {
                text: reply,
                finish_reason: "stop".into(),
                logprobs: None,
            }],
            usage: Usage::default(),
        }
    }
}

impl ChatModel for ScriptChat {
    fn name(&self) -> String {
        "script".into()
    }
    fn chat<'a>(
        &'a self,
        req: &'a ChatRequest,
    ) -> BoxFuture<'a, tessera_llm::Result<ChatResponse>> {
        Box::pin(std::future::ready(Ok(self.answer(req))))
    }
}
