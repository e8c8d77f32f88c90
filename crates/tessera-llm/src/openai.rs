//! [`OpenAiChat`]: any OpenAI-compatible `/v1/chat/completions` endpoint over plain HTTP.
//!
//! Per-attempt timeout, retries with exponential backoff and full jitter (delay drawn uniformly from
//! `[0, min(max, base * 2^attempt)]`, or the server's `Retry-After` when it sends one) on connection errors,
//! timeouts, 429 and 5xx, a concurrency limit (a semaphore over in-flight requests), and a clear error after the
//! last retry. The API key is read from an environment variable named by the user, sent only as a bearer header,
//! and scrubbed from every error message.
use crate::chat::{BoxFuture, ChatModel};
use crate::error::{LlmError, Result};
use crate::types::{
    ChatRequest, ChatResponse, Choice, ContinuationScore, ScoreRequest, ScoreResponse, Usage,
};
use crate::wire;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use rand::Rng as _;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Options of an OpenAI-compatible backend.
#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// Base URL including `/v1`, e.g. `http://127.0.0.1:8080/v1`.
    pub base_url: String,
    /// Model name sent in each request.
    pub model: String,
    /// Name of the environment variable holding the API key (none: no `Authorization` header).
    pub api_key_env: Option<String>,
    /// Limit on one attempt (whole response; for streams, the gap between chunks).
    pub timeout: Duration,
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// First backoff step.
    pub backoff_base: Duration,
    /// Largest backoff.
    pub backoff_max: Duration,
    /// Most requests in flight at once.
    pub max_concurrency: usize,
}

impl OpenAiConfig {
    /// Defaults: 120 s timeout, 4 retries, backoff 0.5 s doubling up to 20 s, 16 requests in flight.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        OpenAiConfig {
            base_url: base_url.into(),
            model: model.into(),
            api_key_env: None,
            timeout: Duration::from_secs(120),
            max_retries: 4,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(20),
            max_concurrency: 16,
        }
    }
}

/// A secret that never prints.
#[derive(Clone)]
struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// An OpenAI-compatible chat backend.
pub struct OpenAiChat {
    cfg: OpenAiConfig,
    endpoint: Uri,
    completions: Uri,
    key: Option<Secret>,
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    slots: Arc<Semaphore>,
}

/// Why one attempt failed, and whether another may succeed.
struct AttemptError {
    retryable: bool,
    retry_after: Option<Duration>,
    err: LlmError,
}

fn transient(msg: String) -> AttemptError {
    AttemptError {
        retryable: true,
        retry_after: None,
        err: LlmError::Protocol(msg),
    }
}

impl OpenAiChat {
    /// Builds the client; reads the key from `cfg.api_key_env` now (an unset variable is an error naming it).
    pub fn new(cfg: OpenAiConfig) -> Result<Self> {
        let base = cfg.base_url.trim_end_matches('/');
        if !base.starts_with("http://") && !base.starts_with("https://") {
            return Err(LlmError::Config(format!(
                "{base}: the URL must start with http:// or https://"
            )));
        }
        let endpoint: Uri = format!("{base}/chat/completions")
            .parse()
            .map_err(|e| LlmError::Config(format!("{base}: bad URL: {e}")))?;
        let completions: Uri = format!("{base}/completions")
            .parse()
            .map_err(|e| LlmError::Config(format!("{base}: bad URL: {e}")))?;
        let key = match &cfg.api_key_env {
            None => None,
            Some(var) => match std::env::var(var) {
                Ok(k) if !k.is_empty() => Some(Secret(k)),
                _ => {
                    return Err(LlmError::Config(format!(
                        "environment variable `{var}` (the API key) is not set"
                    )))
                }
            },
        };
        if cfg.max_concurrency == 0 || cfg.max_concurrency > Semaphore::MAX_PERMITS {
            return Err(LlmError::Config(format!(
                "max_concurrency {} out of range 1..={}",
                cfg.max_concurrency,
                Semaphore::MAX_PERMITS
            )));
        }
        let mut conn = HttpConnector::new();
        conn.set_connect_timeout(Some(cfg.timeout.min(Duration::from_secs(30))));
        conn.set_nodelay(true);
        conn.enforce_http(false);
        let tls = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(conn);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(tls);
        Ok(OpenAiChat {
            slots: Arc::new(Semaphore::new(cfg.max_concurrency)),
            cfg,
            endpoint,
            completions,
            key,
            client,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &OpenAiConfig {
        &self.cfg
    }

    fn scrub(&self, s: String) -> String {
        match &self.key {
            Some(k) if k.0.len() >= 4 => s.replace(&k.0, "***"),
            _ => s,
        }
    }

    fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(d) = retry_after {
            return d.min(self.cfg.backoff_max);
        }
        let cap = self
            .cfg
            .backoff_base
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.cfg.backoff_max);
        cap.mul_f64(rand::thread_rng().gen::<f64>())
    }

    async fn send(&self, body: &serde_json::Value) -> Result<Response<Incoming>, AttemptError> {
        self.send_to(&self.endpoint, body).await
    }

    async fn send_to(
        &self,
        endpoint: &Uri,
        body: &serde_json::Value,
    ) -> Result<Response<Incoming>, AttemptError> {
        let bytes = Bytes::from(serde_json::to_vec(body).map_err(|e| AttemptError {
            retryable: false,
            retry_after: None,
            err: LlmError::Invalid(e.to_string()),
        })?);
        let mut b = Request::post(endpoint.clone())
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        if let Some(k) = &self.key {
            b = b.header("authorization", format!("Bearer {}", k.0));
        }
        let req = b.body(Full::new(bytes)).map_err(|e| AttemptError {
            retryable: false,
            retry_after: None,
            err: LlmError::Config(e.to_string()),
        })?;
        let resp = match tokio::time::timeout(self.cfg.timeout, self.client.request(req)).await {
            Err(_) => {
                return Err(transient(format!(
                    "no response within {:?}",
                    self.cfg.timeout
                )))
            }
            Ok(Err(e)) => return Err(transient(format!("connection error: {}", error_chain(&e)))),
            Ok(Ok(r)) => r,
        };
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64);
        let body = tokio::time::timeout(self.cfg.timeout, resp.into_body().collect())
            .await
            .ok()
            .and_then(|r| r.ok())
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        let message = wire::error_message(&body);
        let retryable = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
        Err(AttemptError {
            retryable,
            retry_after,
            err: if retryable {
                LlmError::Protocol(format!("HTTP {}: {message}", status.as_u16()))
            } else {
                LlmError::Refused {
                    status: status.as_u16(),
                    message,
                }
            },
        })
    }

    /// Runs `attempt` with retries; the concurrency slot is held for the whole call.
    async fn with_retries<'a, T, F>(&'a self, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> BoxFuture<'a, Result<T, AttemptError>>,
    {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| LlmError::Config("client closed".into()))?;
        let mut tries = 0u32;
        loop {
            tries += 1;
            match attempt().await {
                Ok(v) => return Ok(v),
                Err(e) if e.retryable && tries <= self.cfg.max_retries => {
                    let d = self.backoff(tries - 1, e.retry_after);
                    tracing::warn!(
                        "{}: attempt {tries} failed ({}); retrying in {:?}",
                        self.cfg.base_url,
                        self.scrub(e.err.to_string()),
                        d
                    );
                    tokio::time::sleep(d).await;
                }
                Err(e) if e.retryable => {
                    return Err(LlmError::Unavailable {
                        attempts: tries,
                        last: self.scrub(format!("{}: {}", self.cfg.base_url, e.err)),
                    })
                }
                Err(e) => return Err(scrub_err(self, e.err)),
            }
        }
    }

    async fn complete(&self, req: &ChatRequest) -> Result<ChatResponse> {
        req.validate()?;
        let body = wire::request_json(&self.cfg.model, req, false);
        let body = &body;
        self.with_retries(|| {
            Box::pin(async move {
                let resp = self.send(body).await?;
                let bytes = match tokio::time::timeout(self.cfg.timeout, resp.into_body().collect())
                    .await
                {
                    Err(_) => return Err(transient("response body timed out".into())),
                    Ok(Err(e)) => return Err(transient(format!("reading response: {e}"))),
                    Ok(Ok(c)) => c.to_bytes(),
                };
                let v: serde_json::Value = serde_json::from_slice(&bytes)
                    .map_err(|e| transient(format!("response is not JSON: {e}")))?;
                wire::parse_completion(&v).map_err(|e| AttemptError {
                    retryable: false,
                    retry_after: None,
                    err: LlmError::Protocol(e),
                })
            })
        })
        .await
    }

    /// Scores continuations through `/v1/completions` (vLLM's and `tessera serve`'s): each prompt is the
    /// conversation rendered with the ChatML template (the template of the models `tessera serve` runs) plus the
    /// prefix and one continuation, sent with `echo`, `logprobs = 0` and `max_tokens = 0`; the continuation's
    /// log-likelihood is the sum of the echoed log-probabilities of the tokens that start at or after the end of
    /// the context (by `text_offset`).
    async fn score_remote(&self, req: &ScoreRequest) -> Result<ScoreResponse> {
        req.validate()?;
        let mut context =
            tessera_lm::tokenizer::ChatTemplate::default().render(&req.messages, true);
        context.push_str(&req.prefix);
        let prompts: Vec<String> = req
            .continuations
            .iter()
            .map(|c| format!("{context}{c}"))
            .collect();
        let body = serde_json::json!({
            "model": self.cfg.model, "prompt": prompts, "max_tokens": 0, "echo": true, "logprobs": 0,
            "temperature": 0.0,
        });
        let body = &body;
        let v: serde_json::Value = self
            .with_retries(|| {
                Box::pin(async move {
                    let resp = self.send_to(&self.completions, body).await?;
                    let bytes =
                        match tokio::time::timeout(self.cfg.timeout, resp.into_body().collect())
                            .await
                        {
                            Err(_) => return Err(transient("response body timed out".into())),
                            Ok(Err(e)) => return Err(transient(format!("reading response: {e}"))),
                            Ok(Ok(c)) => c.to_bytes(),
                        };
                    serde_json::from_slice(&bytes)
                        .map_err(|e| transient(format!("response is not JSON: {e}")))
                })
            })
            .await?;
        let ctx_chars = context.chars().count();
        let bad = |m: &str| LlmError::Protocol(format!("/v1/completions: {m}"));
        let choices = v["choices"].as_array().ok_or_else(|| bad("no `choices`"))?;
        let mut scores = vec![None; prompts.len()];
        for (k, c) in choices.iter().enumerate() {
            let i = c["index"].as_u64().map_or(k, |i| i as usize);
            let end = prompts
                .get(i)
                .ok_or_else(|| bad("choice index out of range"))?
                .chars()
                .count();
            let lp = &c["logprobs"];
            let (Some(lps), Some(offs)) = (
                lp["token_logprobs"].as_array(),
                lp["text_offset"].as_array(),
            ) else {
                return Err(bad(
                    "a choice has no echoed `token_logprobs`/`text_offset` (echo unsupported?)",
                ));
            };
            let mut s = ContinuationScore {
                logprob: 0.0,
                tokens: 0,
            };
            for (l, o) in lps.iter().zip(offs) {
                let o = o.as_u64().ok_or_else(|| bad("non-integer text_offset"))? as usize;
                if o >= ctx_chars && o < end {
                    s.logprob += l
                        .as_f64()
                        .ok_or_else(|| bad("a scored token has no log-probability"))?;
                    s.tokens += 1;
                }
            }
            scores[i] = Some(s);
        }
        let scores: Vec<ContinuationScore> = scores
            .into_iter()
            .map(|s| s.ok_or_else(|| bad("fewer choices than prompts")))
            .collect::<Result<_>>()?;
        Ok(ScoreResponse {
            model: v["model"].as_str().unwrap_or(&self.cfg.model).to_string(),
            usage: Usage {
                prompt_tokens: v["usage"]["prompt_tokens"].as_u64().unwrap_or(0) as usize,
                completion_tokens: scores.iter().map(|s| s.tokens).sum(),
            },
            scores,
        })
    }

    /// Streams one completion (`n` must be 1): `on_text` gets each content delta as it arrives. Retries apply
    /// until the response starts; an error mid-stream is returned as is.
    pub async fn chat_stream(
        &self,
        req: &ChatRequest,
        on_text: &mut (dyn FnMut(&str) + Send),
    ) -> Result<ChatResponse> {
        req.validate()?;
        if req.params.n != 1 {
            return Err(LlmError::Invalid("streaming supports n = 1 only".into()));
        }
        let body = wire::request_json(&self.cfg.model, req, true);
        let body = &body;
        let resp = self
            .with_retries(|| Box::pin(async move { self.send(body).await }))
            .await?;
        let mut incoming = resp.into_body();
        let (mut buf, mut text) = (Vec::<u8>::new(), String::new());
        let mut finish = String::new();
        let mut usage = Usage::default();
        let mut model = self.cfg.model.clone();
        loop {
            let frame = match tokio::time::timeout(self.cfg.timeout, incoming.frame()).await {
                Err(_) => return Err(LlmError::Protocol("stream stalled past the timeout".into())),
                Ok(None) => break,
                Ok(Some(Err(e))) => return Err(LlmError::Protocol(format!("stream broke: {e}"))),
                Ok(Some(Ok(f))) => f,
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            buf.extend_from_slice(&data);
            while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buf.drain(..=nl).collect();
                let line = String::from_utf8_lossy(&line);
                let Some(payload) = line.trim_end().strip_prefix("data:") else {
                    continue;
                };
                let payload = payload.trim();
                if payload == "[DONE]" {
                    return Ok(stream_response(model, text, finish, usage));
                }
                let v: serde_json::Value = serde_json::from_str(payload)
                    .map_err(|e| LlmError::Protocol(format!("bad stream chunk: {e}")))?;
                if let Some(err) = v.get("error") {
                    return Err(LlmError::Protocol(
                        self.scrub(format!("stream error: {err}")),
                    ));
                }
                let parts = wire::parse_chunk(&v);
                if let Some(c) = parts.content.filter(|c| !c.is_empty()) {
                    on_text(&c);
                    text.push_str(&c);
                }
                if let Some(f) = parts.finish {
                    finish = f;
                }
                if let Some(u) = parts.usage {
                    usage = u;
                }
                if let Some(m) = parts.model {
                    model = m;
                }
            }
        }
        Ok(stream_response(model, text, finish, usage))
    }
}

fn stream_response(model: String, text: String, finish: String, usage: Usage) -> ChatResponse {
    ChatResponse {
        model,
        choices: vec![Choice {
            text,
            finish_reason: finish,
            logprobs: None,
        }],
        usage,
    }
}

fn scrub_err(c: &OpenAiChat, e: LlmError) -> LlmError {
    match e {
        LlmError::Refused { status, message } => LlmError::Refused {
            status,
            message: c.scrub(message),
        },
        LlmError::Protocol(m) => LlmError::Protocol(c.scrub(m)),
        other => other,
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}

impl ChatModel for OpenAiChat {
    fn name(&self) -> String {
        format!("openai:{}#{}", self.cfg.base_url, self.cfg.model)
    }

    fn chat<'a>(&'a self, req: &'a ChatRequest) -> BoxFuture<'a, Result<ChatResponse>> {
        Box::pin(self.complete(req))
    }

    fn score<'a>(&'a self, req: &'a ScoreRequest) -> BoxFuture<'a, Result<ScoreResponse>> {
        Box::pin(self.score_remote(req))
    }
}
