//! JSONL transcripts: [`Recording`] appends every call (request, response or error, latency, usage) of any
//! backend to a file, chat completions as [`TranscriptEntry`] lines and continuation scoring as [`ScoreEntry`]
//! lines; [`ReplayChat`] answers both from such a file, so an evaluation can be re-scored offline.
use crate::chat::{BoxFuture, ChatModel};
use crate::error::{LlmError, Result};
use crate::types::{ChatRequest, ChatResponse, ScoreRequest, ScoreResponse};
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

/// One transcript line of a scoring call ([`ChatModel::score`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScoreEntry {
    /// Unix time of the call's end, seconds.
    pub time: f64,
    /// The backend's name.
    pub backend: String,
    /// The scoring request.
    pub score_request: ScoreRequest,
    /// The scores, if the call succeeded.
    pub score_response: Option<ScoreResponse>,
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
        self.append(&TranscriptEntry {
            time: tessera_core::record::unix_time(),
            backend: self.inner.name(),
            request: req.clone(),
            response: out.as_ref().ok().cloned(),
            error: out.as_ref().err().map(|e| e.to_string()),
            latency_ms: t0.elapsed().as_secs_f64() * 1e3,
        })?;
        out
    }

    async fn run_score(&self, req: &ScoreRequest) -> Result<ScoreResponse> {
        let t0 = Instant::now();
        let out = self.inner.score(req).await;
        self.append(&ScoreEntry {
            time: tessera_core::record::unix_time(),
            backend: self.inner.name(),
            score_request: req.clone(),
            score_response: out.as_ref().ok().cloned(),
            error: out.as_ref().err().map(|e| e.to_string()),
            latency_ms: t0.elapsed().as_secs_f64() * 1e3,
        })?;
        out
    }

    fn append(&self, entry: &impl Serialize) -> Result<()> {
        let line = serde_json::to_string(entry).map_err(tessera_core::Error::from)?;
        let _g = self
            .lock
            .lock()
            .map_err(|_| LlmError::Config("transcript lock poisoned".into()))?;
        Ok(tessera_core::fsx::append_line(&self.path, &line)?)
    }
}

impl ChatModel for Recording {
    fn name(&self) -> String {
        self.inner.name()
    }

    fn chat<'a>(&'a self, req: &'a ChatRequest) -> BoxFuture<'a, Result<ChatResponse>> {
        Box::pin(self.run(req))
    }

    fn score<'a>(&'a self, req: &'a ScoreRequest) -> BoxFuture<'a, Result<ScoreResponse>> {
        Box::pin(self.run_score(req))
    }
}

fn key(req: &impl Serialize) -> String {
    serde_json::to_string(req).unwrap_or_default()
}

/// Serves recorded answers: the k-th identical request gets the k-th recorded answer (the last one repeats).
/// Chat and scoring calls are replayed from their own lines.
pub struct ReplayChat {
    path: PathBuf,
    answers: HashMap<String, Vec<ChatResponse>>,
    scores: HashMap<String, Vec<ScoreResponse>>,
    served: Mutex<HashMap<String, usize>>,
}

impl ReplayChat {
    /// Loads a transcript (failed calls are skipped).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = tessera_core::fsx::read_to_string(path)?;
        let mut answers: HashMap<String, Vec<ChatResponse>> = HashMap::new();
        let mut scores: HashMap<String, Vec<ScoreResponse>> = HashMap::new();
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let bad = |err: serde_json::Error| {
                tessera_core::Error::format(path, format!("line {}: {err}", i + 1))
            };
            let v: serde_json::Value = serde_json::from_str(line).map_err(bad)?;
            if v.get("score_request").is_some() {
                let e: ScoreEntry = serde_json::from_value(v).map_err(bad)?;
                if let Some(r) = e.score_response {
                    scores.entry(key(&e.score_request)).or_default().push(r);
                }
            } else {
                let e: TranscriptEntry = serde_json::from_value(v).map_err(bad)?;
                if let Some(r) = e.response {
                    answers.entry(key(&e.request)).or_default().push(r);
                }
            }
        }
        Ok(ReplayChat {
            path: path.to_path_buf(),
            answers,
            scores,
            served: Mutex::new(HashMap::new()),
        })
    }

    /// Number of distinct recorded requests.
    pub fn len(&self) -> usize {
        self.answers.len()
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.answers.is_empty() && self.scores.is_empty()
    }

    /// The next recorded answer to the request with key `k` (`kind` keeps chat and score counters apart).
    fn next<T: Clone>(&self, map: &HashMap<String, Vec<T>>, kind: &str, k: String) -> Result<T> {
        let list = map
            .get(&k)
            .filter(|l| !l.is_empty())
            .ok_or_else(|| LlmError::NotRecorded(self.path.display().to_string()))?;
        let mut served = self
            .served
            .lock()
            .map_err(|_| LlmError::Config("replay lock poisoned".into()))?;
        let i = served.entry(format!("{kind}\u{0}{k}")).or_insert(0);
        let r = list[(*i).min(list.len() - 1)].clone();
        *i += 1;
        Ok(r)
    }

    fn answer(&self, req: &ChatRequest) -> Result<ChatResponse> {
        self.next(&self.answers, "chat", key(req))
    }
}

impl ChatModel for ReplayChat {
    fn name(&self) -> String {
        format!("replay:{}", self.path.display())
    }

    fn chat<'a>(&'a self, req: &'a ChatRequest) -> BoxFuture<'a, Result<ChatResponse>> {
        Box::pin(std::future::ready(self.answer(req)))
    }

    fn score<'a>(&'a self, req: &'a ScoreRequest) -> BoxFuture<'a, Result<ScoreResponse>> {
        Box::pin(std::future::ready(self.next(
            &self.scores,
            "score",
            key(req),
        )))
    }
}
