//! JSONL transcripts: [`Recording`] appends every call (request, response or error, latency, usage) of any
//! backend to a file; [`ReplayChat`] answers from such a file, so an evaluation can be re-scored offline.
use crate::chat::{BoxFuture, ChatModel};
use crate::error::{LlmError, Result};
use crate::types::{ChatRequest, ChatResponse};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// One transcript line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TranscriptEntry {
    /// Unix time of the call's end, seconds.
    pub time: f64,
    /// The backend's name.
    pub backend: String,
    /// The request.
    pub request: ChatRequest,
    /// The answer, if the call succeeded.
    pub response: Option<ChatResponse>,
    /// The error, if it failed.
    pub error: Option<String>,
    /// Wall-clock latency in milliseconds.
    pub latency_ms: f64,
}

/// Wraps a backend and appends each call to a JSONL transcript.
pub struct Recording {
    inner: Arc<dyn ChatModel>,
    path: PathBuf,
    lock: Mutex<()>,
}

impl Recording {
    /// Records `inner`'s calls into `path` (appending).
    pub fn new(inner: Arc<dyn ChatModel>, path: impl Into<PathBuf>) -> Self {
        Recording {
            inner,
            path: path.into(),
            lock: Mutex::new(()),
        }
    }

    async fn run(&self, req: &ChatRequest) -> Result<ChatResponse> {
        let t0 = Instant::now();
        let out = self.inner.chat(req).await;
        let entry = TranscriptEntry {
            time: tessera_core::record::unix_time(),
            backend: self.inner.name(),
            request: req.clone(),
            response: out.as_ref().ok().cloned(),
            error: out.as_ref().err().map(|e| e.to_string()),
            latency_ms: t0.elapsed().as_secs_f64() * 1e3,
        };
        let line = serde_json::to_string(&entry).map_err(tessera_core::Error::from)?;
        {
            let _g = self
                .lock
                .lock()
                .map_err(|_| LlmError::Config("transcript lock poisoned".into()))?;
            tessera_core::fsx::append_line(&self.path, &line)?;
        }
        out
    }
}

impl ChatModel for Recording {
    fn name(&self) -> String {
        self.inner.name()
    }

    fn chat<'a>(&'a self, req: &'a ChatRequest) -> BoxFuture<'a, Result<ChatResponse>> {
        Box::pin(self.run(req))
    }
}

fn key(req: &ChatRequest) -> String {
    serde_json::to_string(req).unwrap_or_default()
}

/// Serves recorded answers: the k-th identical request gets the k-th recorded answer (the last one repeats).
pub struct ReplayChat {
    path: PathBuf,
    answers: HashMap<String, Vec<ChatResponse>>,
    served: Mutex<HashMap<String, usize>>,
}

impl ReplayChat {
    /// Loads a transcript (failed calls are skipped).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = tessera_core::fsx::read_to_string(path)?;
        let mut answers: HashMap<String, Vec<ChatResponse>> = HashMap::new();
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let e: TranscriptEntry = serde_json::from_str(line).map_err(|err| {
                tessera_core::Error::format(path, format!("line {}: {err}", i + 1))
            })?;
            if let Some(r) = e.response {
                answers.entry(key(&e.request)).or_default().push(r);
            }
        }
        Ok(ReplayChat {
            path: path.to_path_buf(),
            answers,
            served: Mutex::new(HashMap::new()),
        })
    }

    /// Number of distinct recorded requests.
    pub fn len(&self) -> usize {
        self.answers.len()
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.answers.is_empty()
    }

    fn answer(&self, req: &ChatRequest) -> Result<ChatResponse> {
        let k = key(req);
        let list = self
            .answers
            .get(&k)
            .ok_or_else(|| LlmError::NotRecorded(self.path.display().to_string()))?;
        let mut served = self
            .served
            .lock()
            .map_err(|_| LlmError::Config("replay lock poisoned".into()))?;
        let i = served.entry(k).or_insert(0);
        let r = list[(*i).min(list.len() - 1)].clone();
        *i += 1;
        Ok(r)
    }
}

impl ChatModel for ReplayChat {
    fn name(&self) -> String {
        format!("replay:{}", self.path.display())
    }

    fn chat<'a>(&'a self, req: &'a ChatRequest) -> BoxFuture<'a, Result<ChatResponse>> {
        Box::pin(std::future::ready(self.answer(req)))
    }
}
