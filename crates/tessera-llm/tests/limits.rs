//! The server under hostile but valid input (issue #11 items 1, 2 and 5), on 127.0.0.1 with a tiny random model:
//! admission control against a memory budget, checked context arithmetic, JSON errors for 404/408/413, and
//! connection handling (cap, header and body timeouts).
mod common;
use common::{json, raw, TINY_ID};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tessera_llm::server::{self, ServerConfig, ServerHandle};
use tessera_llm::{ChatMessage, Engine};
use tessera_lm::MemoryModel;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Setup {
    budget: Option<u64>,
    cfg: ServerConfig,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            budget: None,
            cfg: ServerConfig::new(TINY_ID),
        }
    }
}

fn tiny_model() -> (tessera_lm::Llama, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    tessera_lm::testing::write_tiny_gguf(&path, 7).unwrap();
    (tessera_lm::load(&path).unwrap(), dir)
}

async fn serve(s: Setup) -> (ServerHandle, tempfile::TempDir) {
    let (model, dir) = tiny_model();
    let mem = MemoryModel::for_runtime(&model.config);
    let budget = s.budget.unwrap_or(mem.resident_bytes() + (1 << 30));
    let engine = Arc::new(Engine::with_memory(Arc::new(model), 1, 64, 8, mem, budget).unwrap());
    (
        server::start(engine, s.cfg, "127.0.0.1:0").await.unwrap(),
        dir,
    )
}

fn chat(body: serde_json::Value) -> Vec<u8> {
    body.to_string().into_bytes()
}

async fn post(h: &ServerHandle, body: &[u8]) -> (u16, serde_json::Value) {
    let (st, b) = raw(h.addr(), "POST", "/v1/chat/completions", &[], body).await;
    (st, json(&b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_arithmetic_does_not_wrap() {
    let (h, _d) = serve(Setup::default()).await;
    let msg = serde_json::json!([{ "role": "user", "content": "hi" }]);
    for (max, code) in [
        (serde_json::json!(u64::MAX), "context_length_exceeded"),
        (
            serde_json::json!(1_000_000_000u64),
            "context_length_exceeded",
        ),
        (serde_json::json!(256), "context_length_exceeded"),
    ] {
        let (st, v) = post(
            &h,
            &chat(serde_json::json!({ "model": TINY_ID, "messages": msg, "max_tokens": max })),
        )
        .await;
        assert_eq!(st, 400, "{max}: {v}");
        assert_eq!(v["error"]["code"], code, "{max}: {v}");
    }
    let (st, v) = post(
        &h,
        &chat(serde_json::json!({ "model": TINY_ID, "messages": msg, "max_tokens": 0 })),
    )
    .await;
    assert_eq!(st, 400, "{v}");
    // A valid request still works and its usage stays within the context.
    let (st, v) = post(
        &h,
        &chat(serde_json::json!({ "model": TINY_ID, "messages": msg, "max_tokens": 5 })),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    // A prompt beyond the context by bytes alone is refused before tokenizing.
    let huge = "x".repeat(900_000);
    let (st, v) = post(
        &h,
        &chat(serde_json::json!({ "model": TINY_ID, "messages": [{ "role": "user", "content": huge }] })),
    )
    .await;
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["error"]["code"], "context_length_exceeded");
    h.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_budget_refuses_splits_and_is_never_exceeded() {
    let (model, _d0) = tiny_model();
    let mem = MemoryModel::for_runtime(&model.config);
    let msgs = vec![ChatMessage::new("user", "Tell me a story about a cat.")];
    let prompt = model.tokenizer().unwrap().encode_chat(&msgs).unwrap().len();
    let mt = 6;
    let one = mem.job_bytes(1, prompt, mt);
    assert!(mem.job_bytes(16, prompt, mt) > 3 * one);
    // Room for about three completions at once: n = 16 must run split, not be refused, not exceed the budget.
    let budget = mem.resident_bytes() + 3 * one;
    let (h, _d) = serve(Setup {
        budget: Some(budget),
        ..Setup::default()
    })
    .await;
    let body = serde_json::json!({
        "model": TINY_ID, "messages": [{ "role": "user", "content": "Tell me a story about a cat." }],
        "max_tokens": mt, "n": 16, "temperature": 0.8, "seed": 1,
    });
    let (st, v) = post(&h, &chat(body.clone())).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["choices"].as_array().unwrap().len(), 16);
    let s = h.engine().stats();
    assert_eq!(s.split_jobs, 1, "{s:?}");
    assert!(s.peak_reserved_bytes <= s.budget_bytes, "{s:?}");
    assert_eq!(s.budget_bytes, 3 * one);
    // Rows of different sub-batches are different samples (the seed moves per sub-batch).
    let texts: std::collections::HashSet<_> = v["choices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["message"]["content"].as_str().unwrap().to_string())
        .collect();
    assert!(texts.len() > 3, "{texts:?}");
    h.stop().await.unwrap();

    // A budget below one completion: refused with 400, never queued or crashed.
    let (h, _d) = serve(Setup {
        budget: Some(mem.resident_bytes() + one - 1),
        ..Setup::default()
    })
    .await;
    let (st, v) = post(&h, &chat(body)).await;
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["error"]["code"], "memory_budget_exceeded", "{v}");
    h.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_openai_json() {
    let mut cfg = ServerConfig::new(TINY_ID);
    cfg.body_limit = 1000;
    let (h, _d) = serve(Setup {
        cfg,
        ..Setup::default()
    })
    .await;
    let msg = serde_json::json!([{ "role": "user", "content": "hi" }]);
    let (st, v) = post(
        &h,
        &chat(serde_json::json!({ "model": "gpt-4", "messages": msg })),
    )
    .await;
    assert_eq!(st, 404);
    assert_eq!(v["error"]["code"], "model_not_found");
    let big = chat(
        serde_json::json!({ "model": TINY_ID, "messages": [{ "role": "user", "content": "y".repeat(5000) }] }),
    );
    let (st, v) = post(&h, &big).await;
    assert_eq!(st, 413);
    assert_eq!(v["error"]["code"], "request_too_large");
    let (st, v) = post(&h, b"{not json").await;
    assert_eq!(st, 400);
    assert!(v["error"]["message"].as_str().unwrap().contains("JSON"));
    let (st, b) = raw(h.addr(), "GET", "/v2/nothing", &[], b"").await;
    assert_eq!(st, 404);
    assert!(json(&b)["error"].is_object());
    let (st, b) = raw(h.addr(), "GET", "/v1/chat/completions", &[], b"").await;
    assert_eq!(st, 405);
    assert!(json(&b)["error"].is_object());
    h.stop().await.unwrap();
}

async fn health_ms(addr: std::net::SocketAddr) -> u128 {
    let t = Instant::now();
    let (st, _) = tokio::time::timeout(
        Duration::from_secs(5),
        raw(addr, "GET", "/health", &[], b""),
    )
    .await
    .expect("/health answered");
    assert_eq!(st, 200);
    t.elapsed().as_millis()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_half_open_connections_cannot_starve_health() {
    let mut cfg = ServerConfig::new(TINY_ID);
    cfg.max_connections = Some(16);
    cfg.header_timeout = Duration::from_millis(500);
    cfg.body_timeout = Duration::from_millis(500);
    let (h, _d) = serve(Setup {
        cfg,
        ..Setup::default()
    })
    .await;
    let addr = h.addr();
    // 40 idle connections (more than the cap), then /health.
    let mut idle = vec![];
    for _ in 0..40 {
        idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let ms = health_ms(addr).await;
    assert!(ms < 2000, "/health took {ms} ms behind idle connections");
    // A half-open request (headers never finished) is closed after the header timeout.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    let t = Instant::now();
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("closed in time")
        .unwrap_or(0);
    assert!(t.elapsed() < Duration::from_secs(4));
    let _ = n;
    // A body that never completes gets 408 (JSON) after the body timeout.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"model\"",
    )
    .await
    .unwrap();
    let mut out = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut out))
        .await
        .expect("answered in time")
        .unwrap();
    let text = String::from_utf8_lossy(&out[..n]).to_string();
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("request_timeout"), "{text}");
    drop(idle);
    h.stop().await.unwrap();
}
