//! `tessera bench serve`: N concurrent clients send a fixed number of chat requests through [`OpenAiChat`];
//! reports throughput and p50/p95/p99 latency per concurrency level.
use crate::engine::Engine;
use crate::error::{LlmError, Result};
use crate::openai::{OpenAiChat, OpenAiConfig};
use crate::server::{self, ServerConfig};
use crate::types::{ChatParams, ChatRequest};
use serde::Serialize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What to send.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Concurrency levels to run, in order.
    pub clients: Vec<usize>,
    /// Requests per level.
    pub requests: usize,
    /// `max_tokens` of each request.
    pub max_tokens: usize,
    /// The user message.
    pub prompt: String,
}

/// Most concurrent clients of one level.
pub const MAX_CLIENTS: usize = 4096;
/// Most requests of one level.
pub const MAX_REQUESTS: usize = 1_000_000;

impl BenchConfig {
    /// Checks the levels and counts (positive and bounded), before any allocation sized by them.
    pub fn validate(&self) -> Result<()> {
        if self.clients.is_empty() || self.clients.iter().any(|&c| c == 0 || c > MAX_CLIENTS) {
            return Err(LlmError::Invalid(format!(
                "clients must be in 1..={MAX_CLIENTS} (got {:?})",
                self.clients
            )));
        }
        if !(1..=MAX_REQUESTS).contains(&self.requests) {
            return Err(LlmError::Invalid(format!(
                "requests {} out of range 1..={MAX_REQUESTS}",
                self.requests
            )));
        }
        if self.max_tokens == 0 {
            return Err(LlmError::Invalid("max_tokens must be at least 1".into()));
        }
        Ok(())
    }
}

/// One concurrency level's figures.
#[derive(Debug, Clone, Serialize)]
pub struct LevelResult {
    /// Concurrent clients.
    pub clients: usize,
    /// Requests sent.
    pub requests: usize,
    /// Requests that failed.
    pub errors: usize,
    /// Wall time of the level, seconds.
    pub wall_s: f64,
    /// Successful requests per second.
    pub requests_per_s: f64,
    /// Generated tokens per second (from the usage the server reports).
    pub tokens_per_s: f64,
    /// Latency percentiles of successful requests, milliseconds.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
}

/// Nearest-rank percentile of sorted values (`q` in [0, 1]).
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

/// Runs one level against `client`.
pub async fn run_level(client: Arc<OpenAiChat>, clients: usize, cfg: &BenchConfig) -> LevelResult {
    let req = Arc::new(
        ChatRequest::user(cfg.prompt.clone()).with_params(ChatParams {
            max_tokens: cfg.max_tokens,
            ..ChatParams::default()
        }),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let lat = Arc::new(Mutex::new(Vec::with_capacity(cfg.requests)));
    let tokens = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients.max(1) {
        let (client, req, next, lat, tokens, errors) = (
            client.clone(),
            req.clone(),
            next.clone(),
            lat.clone(),
            tokens.clone(),
            errors.clone(),
        );
        let total = cfg.requests;
        tasks.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::SeqCst) < total {
                let t = Instant::now();
                match crate::ChatModel::chat(client.as_ref(), &req).await {
                    Ok(r) => {
                        tokens.fetch_add(r.usage.completion_tokens, Ordering::SeqCst);
                        if let Ok(mut l) = lat.lock() {
                            l.push(t.elapsed().as_secs_f64() * 1e3);
                        }
                    }
                    Err(e) => {
                        tracing::warn!("bench request failed: {e}");
                        errors.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let wall = t0.elapsed().as_secs_f64();
    let mut l = lat.lock().map(|l| l.clone()).unwrap_or_default();
    l.sort_by(f64::total_cmp);
    LevelResult {
        clients,
        requests: cfg.requests,
        errors: errors.load(Ordering::SeqCst),
        wall_s: wall,
        requests_per_s: l.len() as f64 / wall,
        tokens_per_s: tokens.load(Ordering::SeqCst) as f64 / wall,
        p50_ms: percentile(&l, 0.50),
        p95_ms: percentile(&l, 0.95),
        p99_ms: percentile(&l, 0.99),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| LlmError::Config(format!("cannot start the async runtime: {e}")))
}

fn client_for(base_url: &str, model: &str, cfg: &BenchConfig) -> Result<Arc<OpenAiChat>> {
    let mut c = OpenAiConfig::new(base_url, model);
    c.max_concurrency = cfg.clients.iter().copied().max().unwrap_or(1).max(1);
    c.max_retries = 0;
    c.timeout = Duration::from_secs(600);
    Ok(Arc::new(OpenAiChat::new(c)?))
}

/// Serves `engine` on a free loopback port and runs every level against it.
pub fn self_hosted(
    engine: Arc<Engine>,
    server_cfg: ServerConfig,
    cfg: &BenchConfig,
) -> Result<Vec<LevelResult>> {
    cfg.validate()?;
    let model = server_cfg.model_id.clone();
    runtime()?.block_on(async {
        let h = server::start(engine, server_cfg, "127.0.0.1:0").await?;
        let client = client_for(&h.base_url(), &model, cfg)?;
        let mut out = Vec::new();
        for &c in &cfg.clients {
            out.push(run_level(client.clone(), c, cfg).await);
        }
        h.stop().await?;
        Ok(out)
    })
}

/// Runs every level against an already running server.
pub fn remote(base_url: &str, model: &str, cfg: &BenchConfig) -> Result<Vec<LevelResult>> {
    cfg.validate()?;
    runtime()?.block_on(async {
        let client = client_for(base_url, model, cfg)?;
        let mut out = Vec::new();
        for &c in &cfg.clients {
            out.push(run_level(client.clone(), c, cfg).await);
        }
        Ok(out)
    })
}

/// One row of a `tessera bench serve` run: a concurrency level under one batching setting (`None` for a
/// remote server, whose setting is unknown).
#[derive(Debug, Clone, Serialize)]
pub struct BatchLevel {
    /// `--max-batch` of the self-hosted server.
    pub max_batch: Option<usize>,
    /// The level's figures.
    pub result: LevelResult,
}

/// A whole `tessera bench serve` run (the command's JSON).
#[derive(Debug, Clone, Serialize)]
pub struct ServeBench {
    /// Model id requested.
    pub model: String,
    /// The remote server, if one was benchmarked.
    pub url: Option<String>,
    /// Generation workers of the self-hosted server.
    pub workers: usize,
    /// Requests per level.
    pub requests: usize,
    /// `max_tokens` of each request.
    pub max_tokens: usize,
    /// Every level, in run order.
    pub levels: Vec<BatchLevel>,
}

/// Where the benchmarked server is.
pub enum Target {
    /// An already running server at this base URL.
    Remote(String),
    /// A server started here for the model, once per `--max-batch` setting.
    SelfHosted {
        /// The model to serve.
        model: Arc<tessera_lm::Llama>,
        /// Batching settings to compare.
        max_batch: Vec<usize>,
    },
}

/// Runs every level against `target` (for a self-hosted one with `workers` generation workers, under each
/// batching setting in turn).
pub fn run(
    target: Target,
    model_id: &str,
    workers: usize,
    cfg: &BenchConfig,
) -> Result<ServeBench> {
    cfg.validate()?;
    let (url, levels) = match target {
        Target::Remote(url) => {
            let levels = remote(&url, model_id, cfg)?
                .into_iter()
                .map(|result| BatchLevel {
                    max_batch: None,
                    result,
                })
                .collect();
            (Some(url), levels)
        }
        Target::SelfHosted { model, max_batch } => {
            let queue = cfg.clients.iter().max().copied().unwrap_or(1) * 2;
            let mut levels = Vec::new();
            for mb in max_batch {
                let engine = Arc::new(Engine::with_batching(model.clone(), workers, queue, mb)?);
                let mut sc = ServerConfig::new(model_id);
                sc.default_max_tokens = cfg.max_tokens;
                levels.extend(
                    self_hosted(engine, sc, cfg)?
                        .into_iter()
                        .map(|result| BatchLevel {
                            max_batch: Some(mb),
                            result,
                        }),
                );
            }
            (None, levels)
        }
    };
    Ok(ServeBench {
        model: model_id.to_string(),
        url,
        workers,
        requests: cfg.requests,
        max_tokens: cfg.max_tokens,
        levels,
    })
}

impl ServeBench {
    /// The table `tessera bench serve` prints: one line per level, throughput relative to the first.
    pub fn render(&self) -> String {
        let base = self
            .levels
            .first()
            .map(|l| l.result.requests_per_s)
            .unwrap_or(f64::NAN);
        let mut s = format!(
            "tessera bench serve: model {}, {} requests per level, max_tokens {}, {} worker(s){}\n",
            self.model,
            self.requests,
            self.max_tokens,
            self.workers,
            self.url
                .as_ref()
                .map(|u| format!(", remote {u}"))
                .unwrap_or_default()
        );
        s.push_str(&format!(
            "{:>9} {:>7} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
            "max_batch",
            "clients",
            "errors",
            "req/s",
            "tok/s",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "vs first"
        ));
        for BatchLevel {
            max_batch,
            result: l,
        } in &self.levels
        {
            s.push_str(&format!(
                "{:>9} {:>7} {:>7} {:>9.2} {:>9.1} {:>9.0} {:>9.0} {:>9.0} {:>8.2}x\n",
                max_batch
                    .map(|m| m.to_string())
                    .unwrap_or_else(|| "-".into()),
                l.clients,
                l.errors,
                l.requests_per_s,
                l.tokens_per_s,
                l.p50_ms,
                l.p95_ms,
                l.p99_ms,
                l.requests_per_s / base
            ));
        }
        s
    }
}
