//! `tessera bench serve --abuse`: a bounded mix of hostile requests against a live server on 127.0.0.1, with a
//! memory budget. Reports the responses by status code, the process's peak resident memory, the engine's peak
//! reserved memory against its budget, and `/health` latency (probed every 50 ms throughout).
//!
//! The mix, per round: an `n = 16` request with a long prompt, `max_tokens` of 2^64-1 and of 0, a prompt too long
//! by bytes alone, a body over the limit, invalid JSON, an unknown model, `n = 17`, a request whose headers never
//! finish, one whose body never finishes, a stream dropped after its first chunk, and a valid request; plus
//! `idle_connections` connections opened at the start that never send anything.
use crate::engine::Engine;
use crate::error::{LlmError, Result};
use crate::server::{self, ServerConfig};
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What to throw at the server.
#[derive(Debug, Clone)]
pub struct AbuseConfig {
    /// Rounds of the mix (at least 1).
    pub rounds: usize,
    /// Idle connections held open for the whole run.
    pub idle_connections: usize,
    /// Words of the long prompt of the `n = 16` request.
    pub long_prompt_words: usize,
}

impl Default for AbuseConfig {
    fn default() -> Self {
        AbuseConfig {
            rounds: 3,
            idle_connections: 200,
            long_prompt_words: 500,
        }
    }
}

/// What happened.
#[derive(Debug, Clone, Serialize)]
pub struct AbuseReport {
    /// Requests sent (answered or not).
    pub requests: usize,
    /// Responses by HTTP status (`0`: the server closed the connection without a response, as it should for a
    /// request whose headers never finish).
    pub statuses: BTreeMap<u16, usize>,
    /// Peak resident set size of this process (server and clients), bytes.
    pub peak_rss_bytes: Option<u64>,
    /// The engine's job budget, bytes (total budget less the resident model).
    pub budget_bytes: u64,
    /// Largest estimated memory of running jobs, bytes.
    pub peak_reserved_bytes: u64,
    /// `/health` probes made.
    pub health_probes: usize,
    /// `/health` probes that failed or took 100 ms or more.
    pub health_slow: usize,
    /// Median `/health` latency, ms.
    pub health_p50_ms: f64,
    /// Slowest `/health` probe, ms.
    pub health_max_ms: f64,
    /// Every probe answered 200 in under 100 ms.
    pub health_ok: bool,
}

/// Sends `head` + `body` on a fresh connection and reads the status (0 when the server closed without one).
/// With `hold`, the request is left unfinished and the connection waits for the server to act.
async fn exchange(addr: SocketAddr, head: String, body: &[u8], drop_after: Option<usize>) -> u16 {
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
        return 0;
    };
    if s.write_all(head.as_bytes()).await.is_err() || s.write_all(body).await.is_err() {
        return 0;
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match tokio::time::timeout(Duration::from_secs(600), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => {
                out.extend_from_slice(&buf[..n]);
                if let Some(k) = drop_after {
                    if out.len() >= k {
                        break;
                    }
                }
            }
        }
    }
    String::from_utf8_lossy(&out)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn post(addr: SocketAddr, body: &[u8], content_length: Option<usize>) -> String {
    format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        content_length.unwrap_or(body.len())
    )
}

fn chat(model: &str, content: &str, extra: serde_json::Value) -> Vec<u8> {
    let mut v =
        serde_json::json!({ "model": model, "messages": [{ "role": "user", "content": content }] });
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    v.to_string().into_bytes()
}

/// Runs the mix against `engine` served on a free loopback port with `server_cfg`.
pub fn run(
    engine: Arc<Engine>,
    server_cfg: ServerConfig,
    cfg: &AbuseConfig,
) -> Result<AbuseReport> {
    if cfg.rounds == 0 || cfg.rounds > 1000 || cfg.idle_connections > 100_000 {
        return Err(LlmError::Invalid(
            "rounds must be in 1..=1000 and idle connections at most 100000".into(),
        ));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| LlmError::Config(format!("cannot start the async runtime: {e}")))?;
    let model = server_cfg.model_id.clone();
    let body_limit = server_cfg.body_limit;
    tessera_core::mem::reset_peak_rss();
    rt.block_on(async move {
        let h = server::start(engine, server_cfg, "127.0.0.1:0").await?;
        let addr = h.addr();
        let mut idle = Vec::new();
        for _ in 0..cfg.idle_connections {
            match tokio::net::TcpStream::connect(addr).await {
                Ok(s) => idle.push(s),
                Err(_) => break,
            }
        }
        let done = Arc::new(AtomicBool::new(false));
        let probes = Arc::new(Mutex::new(Vec::<Option<f64>>::new()));
        let prober = {
            let (done, probes) = (done.clone(), probes.clone());
            tokio::spawn(async move {
                while !done.load(Ordering::SeqCst) {
                    let t = Instant::now();
                    let head = format!(
                        "GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
                    );
                    let st = tokio::time::timeout(
                        Duration::from_secs(5),
                        exchange(addr, head, b"", None),
                    )
                    .await
                    .unwrap_or(0);
                    let ms = t.elapsed().as_secs_f64() * 1e3;
                    if let Ok(mut p) = probes.lock() {
                        p.push((st == 200).then_some(ms));
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        };
        let long = "lorem ipsum ".repeat(cfg.long_prompt_words / 2 + 1);
        let mut statuses = BTreeMap::new();
        let mut requests = 0;
        for _ in 0..cfg.rounds {
            let mut jobs: Vec<(String, Vec<u8>, Option<usize>)> = Vec::new();
            let mut add = |body: Vec<u8>| {
                let head = post(addr, &body, None);
                jobs.push((head, body, None));
            };
            add(chat(
                &model,
                &long,
                serde_json::json!({ "n": 16, "max_tokens": 2, "temperature": 0.7 }),
            ));
            add(chat(
                &model,
                "hi",
                serde_json::json!({ "max_tokens": u64::MAX }),
            ));
            add(chat(&model, "hi", serde_json::json!({ "max_tokens": 0 })));
            add(chat(
                &model,
                &"x".repeat(body_limit.saturating_sub(200).min(900_000)),
                serde_json::json!({}),
            ));
            add(chat(
                &model,
                &"y".repeat(body_limit + 10),
                serde_json::json!({}),
            ));
            add(b"{not json".to_vec());
            add(chat("no-such-model", "hi", serde_json::json!({})));
            add(chat(&model, "hi", serde_json::json!({ "n": 17 })));
            add(chat(
                &model,
                "Say hello.",
                serde_json::json!({ "max_tokens": 4 }),
            ));
            // Headers that never finish, a body that never finishes, a stream dropped after its first bytes.
            jobs.push((
                format!("POST /v1/chat/completions HTTP/1.1\r\nHost: {addr}\r\n"),
                vec![],
                None,
            ));
            jobs.push((post(addr, b"", Some(100)), b"{\"model\"".to_vec(), None));
            let s = chat(
                &model,
                "Tell me a story.",
                serde_json::json!({ "stream": true, "max_tokens": 64 }),
            );
            jobs.push((post(addr, &s, None), s, Some(64)));
            requests += jobs.len();
            let handles: Vec<_> = jobs
                .into_iter()
                .map(|(head, body, drop_after)| {
                    tokio::spawn(async move { exchange(addr, head, &body, drop_after).await })
                })
                .collect();
            for j in handles {
                let st = j.await.unwrap_or(0);
                *statuses.entry(st).or_insert(0) += 1;
            }
        }
        done.store(true, Ordering::SeqCst);
        let _ = prober.await;
        drop(idle);
        let stats = h.engine().stats();
        h.stop().await?;
        let probes = probes.lock().map(|p| p.clone()).unwrap_or_default();
        let mut ok: Vec<f64> = probes.iter().flatten().copied().collect();
        ok.sort_by(f64::total_cmp);
        let slow = probes
            .iter()
            .filter(|p| p.is_none_or(|ms| ms >= 100.0))
            .count();
        Ok(AbuseReport {
            requests,
            statuses,
            peak_rss_bytes: tessera_core::mem::peak_rss_bytes(),
            budget_bytes: stats.budget_bytes,
            peak_reserved_bytes: stats.peak_reserved_bytes,
            health_probes: probes.len(),
            health_slow: slow,
            health_p50_ms: crate::bench::percentile(&ok, 0.5),
            health_max_ms: ok.last().copied().unwrap_or(f64::NAN),
            health_ok: slow == 0 && !probes.is_empty(),
        })
    })
}

impl AbuseReport {
    /// The report as the text `tessera bench serve --abuse` prints.
    pub fn render(&self, model: &str, cfg: &AbuseConfig) -> String {
        let mb = |b: u64| b as f64 / (1u64 << 20) as f64;
        let mut s = format!(
            "tessera bench serve --abuse: model {model}, {} rounds, {} requests, {} idle connections\n",
            cfg.rounds, self.requests, cfg.idle_connections
        );
        for (st, n) in &self.statuses {
            s.push_str(&format!("  HTTP {st:>3}: {n}\n"));
        }
        s.push_str(&format!(
            "  peak RSS {} MiB; engine peak reserved {:.1} MiB of a {:.1} MiB job budget\n",
            self.peak_rss_bytes
                .map(|b| format!("{:.1}", mb(b)))
                .unwrap_or_else(|| "-".into()),
            mb(self.peak_reserved_bytes),
            mb(self.budget_bytes)
        ));
        s.push_str(&format!(
            "  /health: {} probes, p50 {:.1} ms, max {:.1} ms, {} failed or >= 100 ms -> {}\n",
            self.health_probes,
            self.health_p50_ms,
            self.health_max_ms,
            self.health_slow,
            if self.health_ok {
                "stayed under 100 ms"
            } else {
                "NOT always under 100 ms"
            }
        ));
        s
    }
}
