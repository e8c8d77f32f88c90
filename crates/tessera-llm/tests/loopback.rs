//! The server and `OpenAiChat` against each other on 127.0.0.1, with a tiny random model.
mod common;
use common::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tessera_llm::{ChatModel, ChatParams, ChatRequest, LlmError, OpenAiChat, OpenAiConfig};

fn params(max_tokens: usize) -> ChatParams {
    ChatParams {
        max_tokens,
        ..ChatParams::default()
    }
}

/// What the runtime itself generates for `req` (the reference the server must match).
fn direct(h: &tessera_llm::ServerHandle, req: &ChatRequest) -> tessera_lm::Generation {
    let m = h.engine().model();
    let ids = m.tokenizer().unwrap().encode_chat(&req.messages).unwrap();
    tessera_lm::generate(
        m,
        &ids,
        &tessera_llm::local::sampling(&req.params),
        &mut |_| true,
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_matches_the_runtime() {
    let (h, _d) = tiny_server(1, 8, None).await;
    let c = client(&h, TINY_ID);
    let req = ChatRequest::user("Hello there").with_params(params(20));
    let r = c.chat(&req).await.unwrap();
    let g = direct(&h, &req);
    assert!(!g.tokens.is_empty(), "the tiny model should say something");
    assert_eq!(r.text(), g.text);
    assert_eq!(r.model, TINY_ID);
    assert_eq!(r.usage.prompt_tokens, g.prompt_tokens);
    assert_eq!(r.usage.completion_tokens, g.tokens.len());
    assert_eq!(
        r.choices[0].finish_reason,
        if g.tokens.len() == 20 {
            "length"
        } else {
            "stop"
        }
    );
    // Logprobs and n > 1 come back too.
    let mut p = params(8);
    p.logprobs = true;
    p.n = 3;
    p.temperature = 0.9;
    p.seed = Some(5);
    let r = c
        .chat(&ChatRequest::user("Hi").with_params(p))
        .await
        .unwrap();
    assert_eq!(r.choices.len(), 3);
    for ch in &r.choices {
        let lp = ch.logprobs.as_ref().expect("logprobs");
        assert!(lp.iter().all(|t| t.logprob <= 0.0 && t.logprob.is_finite()));
    }
    assert_eq!(
        r.usage.completion_tokens,
        r.choices
            .iter()
            .map(|c| c.logprobs.as_ref().unwrap().len())
            .sum::<usize>()
    );
    // Top alternatives: at temperature 0 the chosen token is the most likely one, listed first.
    let mut p = params(6);
    p.logprobs = true;
    p.top_logprobs = 3;
    let req = ChatRequest::user("Hi").with_params(p);
    let r = c.chat(&req).await.unwrap();
    let g = direct(&h, &req);
    let lp = r.choices[0].logprobs.as_ref().expect("logprobs");
    assert_eq!(lp.len(), g.tokens.len());
    for (i, t) in lp.iter().enumerate() {
        assert_eq!(t.top_logprobs.len(), 3);
        assert_eq!(t.top_logprobs[0].token, t.token);
        assert!((t.top_logprobs[0].logprob - t.logprob).abs() < 1e-6);
        assert!(t
            .top_logprobs
            .windows(2)
            .all(|w| w[0].logprob >= w[1].logprob));
        assert_eq!(g.top_logprobs[i][0].0, g.tokens[i]);
    }
    let (st, body) = raw(h.addr(), "GET", "/v1/models", &[], b"").await;
    assert_eq!(st, 200);
    assert_eq!(json(&body)["data"][0]["id"], TINY_ID);
    h.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_equals_non_streaming_at_temperature_zero() {
    let (h, _d) = tiny_server(1, 8, None).await;
    let c = client(&h, TINY_ID);
    for (i, prompt) in ["Tell me a story", "2+2=", "Why is the sky blue?"]
        .iter()
        .enumerate()
    {
        let mut p = params(30);
        if i == 2 {
            p.stop = vec!["e".into()];
        }
        let req = ChatRequest::user(*prompt).with_params(p);
        let full = c.chat(&req).await.unwrap();
        let mut pieces = Vec::new();
        let streamed = c
            .chat_stream(&req, &mut |t| pieces.push(t.to_string()))
            .await
            .unwrap();
        assert_eq!(streamed.text(), full.text());
        assert_eq!(pieces.concat(), full.text());
        assert_eq!(
            streamed.choices[0].finish_reason,
            full.choices[0].finish_reason
        );
        assert_eq!(streamed.usage, full.usage);
    }
    h.stop().await.unwrap();
}

/// Sends every request concurrently; one task per request, in order.
fn spawn_all(
    c: &Arc<OpenAiChat>,
    reqs: &[ChatRequest],
) -> Vec<tokio::task::JoinHandle<tessera_llm::Result<tessera_llm::ChatResponse>>> {
    reqs.iter()
        .cloned()
        .map(|r| {
            let c = c.clone();
            tokio::spawn(async move { c.chat(&r).await })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_concurrent_requests_all_complete() {
    let (h, _d) = tiny_server_batching(2, 64, 8, None).await;
    let c = Arc::new(client(&h, TINY_ID));
    let reqs: Vec<ChatRequest> = (0..32)
        .map(|i| ChatRequest::user(format!("Request number {i}")).with_params(params(12)))
        .collect();
    let tasks = spawn_all(&c, &reqs);
    for (t, r) in tasks.into_iter().zip(&reqs) {
        let got = t.await.unwrap().unwrap();
        assert_eq!(got.text(), direct(&h, r).text);
    }
    let v = wait_stats(h.addr(), |e| e["completed"] == 32).await;
    assert_eq!(v["engine"]["queued"], 0);
    h.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_greedy_requests_run_as_one_batch_with_unchanged_answers() {
    let (h, _d) = tiny_server_batching(1, 64, 8, None).await;
    h.engine().pause();
    let c = Arc::new(client(&h, TINY_ID));
    let reqs: Vec<ChatRequest> = (0..6)
        .map(|i| ChatRequest::user("x".repeat(i * 3 + 1)).with_params(params(16)))
        .collect();
    let tasks = spawn_all(&c, &reqs);
    wait_stats(h.addr(), |e| e["queued"] == 6).await;
    h.engine().resume();
    for (t, r) in tasks.into_iter().zip(&reqs) {
        let got = t.await.unwrap().unwrap();
        let want = direct(&h, r);
        assert_eq!(got.text(), want.text);
        assert_eq!(got.usage.completion_tokens, want.tokens.len());
    }
    let v = wait_stats(h.addr(), |e| e["completed"] == 6).await;
    assert_eq!(v["engine"]["batches"], 1);
    assert_eq!(v["engine"]["batched_jobs"], 6);
    h.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queue_answers_503_and_then_recovers() {
    let (h, _d) = tiny_server(1, 1, None).await;
    h.engine().pause();
    let c = Arc::new(client(&h, TINY_ID));
    let c2 = c.clone();
    let first = tokio::spawn(async move {
        c2.chat(&ChatRequest::user("first").with_params(params(8)))
            .await
    });
    wait_stats(h.addr(), |e| e["queued"] == 1).await;
    let body = r#"{"model":"tiny","messages":[{"role":"user","content":"second"}],"max_tokens":4}"#;
    let (st, b) = raw(
        h.addr(),
        "POST",
        "/v1/chat/completions",
        &[],
        body.as_bytes(),
    )
    .await;
    assert_eq!(st, 503, "{b}");
    let v = json(&b);
    assert_eq!(v["error"]["type"], "server_error");
    assert_eq!(v["error"]["code"], "queue_full");
    // The client retries 503 and reports the last failure clearly.
    let err = c
        .chat(&ChatRequest::user("third").with_params(params(4)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, LlmError::Unavailable { attempts: 1, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("503"), "{err}");
    h.engine().resume();
    assert!(first.await.unwrap().is_ok());
    h.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_400_with_openai_error_bodies() {
    let (h, _d) = tiny_server(1, 8, None).await;
    let long = "word ".repeat(400);
    let cases: Vec<(String, Option<&str>)> = vec![
        ("{not json".into(), None),
        ("[]".into(), None),
        (r#"{"model":"tiny"}"#.into(), Some("messages")),
        (r#"{"messages":[{"role":"user","content":"x"}]}"#.into(), Some("model")),
        (r#"{"model":"tiny","messages":[{"role":"wizard","content":"x"}]}"#.into(), Some("messages[0].role")),
        (r#"{"model":"tiny","messages":[{"role":"user","content":"x"}],"temperature":5}"#.into(), Some("temperature")),
        (r#"{"model":"tiny","messages":[{"role":"user","content":"x"}],"top_p":0}"#.into(), Some("top_p")),
        (r#"{"model":"tiny","messages":[{"role":"user","content":"x"}],"n":0}"#.into(), Some("n")),
        (r#"{"model":"tiny","messages":[{"role":"user","content":"x"}],"max_tokens":-3}"#.into(), Some("max_tokens")),
        (r#"{"model":"tiny","messages":[{"role":"user","content":"x"}],"max_tokens":"many"}"#.into(), Some("max_tokens")),
        (r#"{"model":"tiny","messages":[{"role":"user","content":"x"}],"stream":"yes"}"#.into(), Some("stream")),
        (r#"{"model":"tiny","messages":[{"role":"user","content":"x"}],"stop":["a","b","c","d","e"]}"#.into(), Some("stop")),
        (r#"{"model":"tiny","messages":[{"role":"user","content":"x"}],"logprobs":true,"top_logprobs":21}"#.into(), Some("top_logprobs")),
        (r#"{"model":"tiny","messages":[{"role":"user","content":"x"}],"top_logprobs":2}"#.into(), Some("top_logprobs")),
        (r#"{"model":"tiny","messages":[{"role":"user","content":"x"}],"logprobs":true,"top_logprobs":-1}"#.into(), Some("top_logprobs")),
        (r#"{"model":"tiny","messages":[{"role":"user","content":"x"}],"max_tokens":100000}"#.into(), None),
        (format!(r#"{{"model":"tiny","messages":[{{"role":"user","content":"{long}"}}]}}"#), None),
    ];
    for (body, param) in cases {
        let (st, b) = raw(
            h.addr(),
            "POST",
            "/v1/chat/completions",
            &[],
            body.as_bytes(),
        )
        .await;
        assert_eq!(st, 400, "{body} -> {b}");
        let v = json(&b);
        assert_eq!(v["error"]["type"], "invalid_request_error", "{b}");
        assert!(!v["error"]["message"].as_str().unwrap().is_empty());
        if let Some(p) = param {
            assert_eq!(v["error"]["param"], p, "{b}");
        }
    }
    // An unknown model is 404 (as OpenAI answers), still with the OpenAI error body.
    let (st, b) = raw(
        h.addr(),
        "POST",
        "/v1/chat/completions",
        &[],
        br#"{"model":"gpt-9","messages":[{"role":"user","content":"x"}]}"#,
    )
    .await;
    assert_eq!(st, 404, "{b}");
    assert_eq!(json(&b)["error"]["param"], "model");
    // The client surfaces the 404 as a refusal without retrying.
    let c = client(&h, "gpt-9");
    let err = c.chat(&ChatRequest::user("x")).await.unwrap_err();
    assert!(
        matches!(err, LlmError::Refused { status: 404, .. }),
        "{err}"
    );
    // Nothing reached the model.
    let v = wait_stats(h.addr(), |_| true).await;
    assert_eq!(v["engine"]["completed"], 0);
    h.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_token_gets_401_and_keys_never_leak() {
    let key = "sk-test-correct-0123456789";
    let (h, _d) = tiny_server(1, 8, Some(key)).await;
    std::env::set_var("TESSERA_TEST_KEY_OK", key);
    std::env::set_var("TESSERA_TEST_KEY_BAD", "sk-test-WRONG-9876543210");
    let mk = |var: &str| {
        let mut c = OpenAiConfig::new(h.base_url(), TINY_ID);
        c.api_key_env = Some(var.into());
        c.max_retries = 0;
        OpenAiChat::new(c).unwrap()
    };
    let req = ChatRequest::user("hi").with_params(params(4));
    let err = mk("TESSERA_TEST_KEY_BAD").chat(&req).await.unwrap_err();
    assert!(
        matches!(err, LlmError::Refused { status: 401, .. }),
        "{err}"
    );
    let msg = format!("{err} {err:?}");
    assert!(!msg.contains("WRONG") && !msg.contains(key), "{msg}");
    assert!(mk("TESSERA_TEST_KEY_OK").chat(&req).await.is_ok());
    let (st, b) = raw(h.addr(), "GET", "/v1/models", &[], b"").await;
    assert_eq!(st, 401);
    assert_eq!(json(&b)["error"]["code"], "invalid_api_key");
    let auth = format!("Bearer {key}");
    let (st, _) = raw(
        h.addr(),
        "GET",
        "/v1/models",
        &[("Authorization", &auth)],
        b"",
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(raw(h.addr(), "GET", "/health", &[], b"").await.0, 200);
    // A missing variable is named, and the client's Debug output never shows a key.
    let mut c = OpenAiConfig::new(h.base_url(), TINY_ID);
    c.api_key_env = Some("TESSERA_TEST_KEY_UNSET_XYZ".into());
    let e = OpenAiChat::new(c).err().expect("unset variable");
    assert!(e.to_string().contains("TESSERA_TEST_KEY_UNSET_XYZ"));
    h.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnect_cancels_the_generation() {
    let (h, _d) = tiny_server(1, 8, None).await;
    h.engine().pause();
    let body = r#"{"model":"tiny","messages":[{"role":"user","content":"go"}],"max_tokens":200,"stream":true}"#;
    // The role chunk comes at once; the job is still queued when the client leaves.
    stream_then_drop(h.addr(), body, 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    h.engine().resume();
    let v = wait_stats(h.addr(), |e| e["cancelled"] == 1).await;
    assert_eq!(v["engine"]["completed"], 0);
    assert_eq!(v["engine"]["generated_tokens"], 0);
    // The same for a plain (non-streaming) request whose client hangs up while it waits.
    h.engine().pause();
    let plain = body.replace(r#","stream":true"#, "");
    let addr = h.addr();
    let waiting = tokio::spawn(async move {
        raw(addr, "POST", "/v1/chat/completions", &[], plain.as_bytes()).await
    });
    wait_stats(h.addr(), |e| e["queued"] == 1).await;
    waiting.abort();
    let _ = waiting.await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    h.engine().resume();
    let v = wait_stats(h.addr(), |e| e["cancelled"] == 2).await;
    assert_eq!(v["engine"]["completed"], 0);
    h.stop().await.unwrap();
}

/// A server that fails `failures` times (503 with Retry-After: 0, or by closing the connection) then answers.
async fn flaky_server(
    failures: usize,
    drop_connection: bool,
) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let h2 = hits.clone();
    tokio::spawn(async move {
        for _ in 0..20 {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let k = h2.fetch_add(1, Ordering::SeqCst);
            let mut buf = vec![0u8; 65536];
            let _ = s.read(&mut buf).await;
            let (status, body) = if k < failures {
                if drop_connection {
                    drop(s);
                    continue;
                }
                (
                    "503 Service Unavailable",
                    r#"{"error":{"message":"busy","type":"server_error"}}"#.to_string(),
                )
            } else {
                let v = serde_json::json!({"id":"x","object":"chat.completion","created":0,"model":"m",
                    "choices":[{"index":0,"message":{"role":"assistant","content":"recovered"},"finish_reason":"stop"}],
                    "usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}});
                ("200 OK", v.to_string())
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nRetry-After: 0\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(resp.as_bytes()).await;
        }
    });
    (addr, hits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_recover_from_a_server_that_fails_twice() {
    for drop_connection in [false, true] {
        let (addr, hits) = flaky_server(2, drop_connection).await;
        let mut cfg = OpenAiConfig::new(format!("http://{addr}/v1"), "m");
        cfg.backoff_base = Duration::from_millis(5);
        cfg.max_retries = 3;
        let r = OpenAiChat::new(cfg.clone())
            .unwrap()
            .chat(&ChatRequest::user("x"))
            .await
            .unwrap();
        assert_eq!(r.text(), "recovered");
        assert_eq!(r.usage.completion_tokens, 1);
        assert_eq!(hits.load(Ordering::SeqCst), 3);
        // With one retry only, the client gives up after two attempts with a clear error.
        let (addr, hits) = flaky_server(2, drop_connection).await;
        cfg.base_url = format!("http://{addr}/v1");
        cfg.max_retries = 1;
        let err = OpenAiChat::new(cfg)
            .unwrap()
            .chat(&ChatRequest::user("x"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, LlmError::Unavailable { attempts: 2, .. }),
            "{err}"
        );
        assert!(err.is_infrastructure());
        assert_eq!(hits.load(Ordering::SeqCst), 2);
    }
}
