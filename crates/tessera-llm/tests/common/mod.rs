//! Shared helpers of the loopback tests: a tiny model served on 127.0.0.1, and a raw HTTP/1.1 client.
#![allow(dead_code)]
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tessera_llm::server::{self, ServerConfig, ServerHandle};
use tessera_llm::{Engine, OpenAiChat, OpenAiConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const TINY_ID: &str = "tiny";

/// Writes a tiny random GGUF model, loads it from the path (as `tessera serve` does), and serves it.
pub async fn tiny_server(
    workers: usize,
    queue: usize,
    api_key: Option<&str>,
) -> (ServerHandle, tempfile::TempDir) {
    tiny_server_batching(workers, queue, 1, api_key).await
}

/// [`tiny_server`] merging up to `max_batch` queued greedy requests.
pub async fn tiny_server_batching(
    workers: usize,
    queue: usize,
    max_batch: usize,
    api_key: Option<&str>,
) -> (ServerHandle, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    tessera_lm::testing::write_tiny_gguf(&path, 7).unwrap();
    let model = tessera_lm::load(&path).unwrap();
    let engine =
        Arc::new(Engine::with_batching(Arc::new(model), workers, queue, max_batch).unwrap());
    let mut cfg = ServerConfig::new(TINY_ID);
    cfg.api_key = api_key.map(str::to_string);
    cfg.default_max_tokens = 24;
    (
        server::start(engine, cfg, "127.0.0.1:0").await.unwrap(),
        dir,
    )
}

/// A client of `h` with fast retries.
pub fn client(h: &ServerHandle, model: &str) -> OpenAiChat {
    let mut c = OpenAiConfig::new(h.base_url(), model);
    c.timeout = Duration::from_secs(60);
    c.backoff_base = Duration::from_millis(5);
    c.max_retries = 0;
    c.max_concurrency = 64;
    OpenAiChat::new(c).unwrap()
}

/// One HTTP/1.1 exchange over a fresh connection: `(status, body)`.
pub async fn raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), s.read_to_end(&mut out))
        .await
        .expect("response in time")
        .unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The JSON of a (non-chunked) response body.
pub fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// Polls `/health` until `cond(engine stats)` holds (at most ~20 s).
pub async fn wait_stats(
    addr: SocketAddr,
    cond: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    for _ in 0..400 {
        let (st, body) = raw(addr, "GET", "/health", &[], b"").await;
        assert_eq!(st, 200);
        let v = json(&body);
        if cond(&v["engine"]) {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("engine never reached the expected state");
}

/// Opens a streaming request, reads until `chunks` SSE data lines arrived, then drops the connection.
pub async fn stream_then_drop(addr: SocketAddr, body: &str, chunks: usize) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while String::from_utf8_lossy(&seen).matches("data:").count() < chunks {
        let n = tokio::time::timeout(Duration::from_secs(60), s.read(&mut buf))
            .await
            .expect("chunk in time")
            .unwrap();
        assert!(
            n > 0,
            "server closed early: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    drop(s);
}
