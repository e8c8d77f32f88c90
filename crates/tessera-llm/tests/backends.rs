//! LocalChat, spec strings, transcripts and replay, the blocking facade, and wire-format parsing.
use std::sync::Arc;
use tessera_llm::{
    spec, BlockingChat, ChatMessage, ChatModel, ChatParams, ChatRequest, LlmError, LocalChat,
    Recording, ReplayChat, ScoreRequest,
};

fn tiny_chat() -> LocalChat {
    LocalChat::new(tessera_lm::testing::tiny_model(3).unwrap(), "tiny").unwrap()
}

fn req(text: &str, max_tokens: usize) -> ChatRequest {
    ChatRequest::user(text).with_params(ChatParams {
        max_tokens,
        ..ChatParams::default()
    })
}

#[test]
fn local_chat_uses_the_chat_template_and_reports_usage() {
    let chat = tiny_chat();
    let model = chat.engine().model();
    let r = req("hello", 10);
    let got = tessera_llm::blocking::chat(&chat, &r).unwrap();
    let ids = model.tokenizer().unwrap().encode_chat(&r.messages).unwrap();
    let want = tessera_lm::generate(
        model,
        &ids,
        &tessera_llm::local::sampling(&r.params),
        &mut |_| true,
    )
    .unwrap();
    assert_eq!(got.text(), want.text);
    assert_eq!(got.usage.prompt_tokens, ids.len());
    assert_eq!(got.usage.completion_tokens, want.tokens.len());
    assert_eq!(chat.name(), "local:tiny");
    // Bad requests are refused before reaching the model.
    let mut bad = req("x", 10);
    bad.params.temperature = -1.0;
    assert!(matches!(
        tessera_llm::blocking::chat(&chat, &bad),
        Err(LlmError::Invalid(_))
    ));
    let empty = ChatRequest::new(vec![]);
    assert!(matches!(
        tessera_llm::blocking::chat(&chat, &empty),
        Err(LlmError::Invalid(_))
    ));
    let too_long = req("x", 10_000);
    assert!(matches!(
        tessera_llm::blocking::chat(&chat, &too_long),
        Err(LlmError::Runtime(tessera_lm::LmError::ContextLength { .. }))
    ));
}

#[test]
fn blocking_facade_works_from_many_threads() {
    let chat = BlockingChat::new(Arc::new(tiny_chat())).unwrap();
    let outs: Vec<String> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    chat.chat(&req("same prompt", 8))
                        .unwrap()
                        .text()
                        .to_string()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(outs.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn transcripts_record_and_replay() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.jsonl");
    let rec = BlockingChat::new(Arc::new(Recording::new(Arc::new(tiny_chat()), &path))).unwrap();
    let a = rec.chat(&req("first", 6)).unwrap();
    let b = rec.chat(&req("second", 6)).unwrap();
    let mut bad = req("x", 6);
    bad.params.top_p = 0.0;
    assert!(rec.chat(&bad).is_err());
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert!(lines[0]["latency_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(lines[0]["backend"], "local:tiny");
    assert!(lines[2]["error"].as_str().unwrap().contains("top_p"));
    let replay = ReplayChat::open(&path).unwrap();
    assert_eq!(replay.len(), 2);
    let rb = BlockingChat::new(Arc::new(replay)).unwrap();
    assert_eq!(rb.chat(&req("second", 6)).unwrap(), b);
    assert_eq!(rb.chat(&req("first", 6)).unwrap(), a);
    assert!(matches!(
        rb.chat(&req("never asked", 6)),
        Err(LlmError::NotRecorded(_))
    ));
    // The spec string opens the same replay, and `;record=` records any backend.
    let spec = format!(
        "replay:{};record={}",
        path.display(),
        dir.path().join("r2.jsonl").display()
    );
    let m = BlockingChat::open(&spec, true).unwrap();
    assert_eq!(m.chat(&req("first", 6)).unwrap(), a);
    assert!(dir.path().join("r2.jsonl").exists());
}

#[test]
fn scoring_calls_are_recorded_and_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.jsonl");
    let rec = BlockingChat::new(Arc::new(Recording::new(Arc::new(tiny_chat()), &path))).unwrap();
    let sreq = |a: &str, b: &str| ScoreRequest {
        messages: vec![ChatMessage::new("user", "Pick one.")],
        prefix: String::new(),
        continuations: vec![a.to_string(), b.to_string()],
    };
    let s1 = rec.block_on(rec.model().score(&sreq("yes", "no"))).unwrap();
    let chat = rec.chat(&req("hello", 4)).unwrap();
    let bad = ScoreRequest {
        continuations: vec![],
        ..sreq("a", "b")
    };
    assert!(rec.block_on(rec.model().score(&bad)).is_err());
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["score_request"]["continuations"][1], "no");
    assert!(lines[2]["error"].is_string() && lines[2]["score_response"].is_null());
    let rb = BlockingChat::new(Arc::new(ReplayChat::open(&path).unwrap())).unwrap();
    // Scores and chat answers replay from their own lines, in any order.
    assert_eq!(rb.chat(&req("hello", 4)).unwrap(), chat);
    assert_eq!(
        rb.block_on(rb.model().score(&sreq("yes", "no"))).unwrap(),
        s1
    );
    assert!(matches!(
        rb.block_on(rb.model().score(&sreq("no", "yes"))),
        Err(LlmError::NotRecorded(_))
    ));
}

#[test]
fn spec_strings_parse_and_fail_clearly() {
    let c = spec::parse_openai(
        "http://127.0.0.1:8080/v1#smollm2-135m,key_env=K,timeout=2.5,retries=7,concurrency=3",
    )
    .unwrap();
    assert_eq!(c.base_url, "http://127.0.0.1:8080/v1");
    assert_eq!(c.model, "smollm2-135m");
    assert_eq!(c.api_key_env.as_deref(), Some("K"));
    assert_eq!(c.timeout, std::time::Duration::from_millis(2500));
    assert_eq!((c.max_retries, c.max_concurrency), (7, 3));
    for bad in [
        "http://x/v1",
        "http://x/v1#",
        "http://x/v1#m,color=red",
        "http://x/v1#m,retries=-1",
    ] {
        assert!(spec::parse_openai(bad).is_err(), "{bad}");
    }
    let err = |s: &str| {
        spec::open(s, true)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    assert!(err("smollm2-135m").contains("expected"));
    assert!(err("magic:thing").contains("unknown backend kind"));
    assert!(
        spec::open("openai:https://api.example.com/v1#gpt", true).is_ok(),
        "https endpoints are accepted"
    );
    assert!(err("openai:ftp://api.example.com/v1#gpt").contains("http"));
    assert!(err("local:/no/such/model.gguf").contains("/no/such/model.gguf"));
    assert!(spec::open("openai:http://127.0.0.1:9/v1#m", true).is_ok());
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.gguf");
    tessera_lm::testing::write_tiny_gguf(&p, 1).unwrap();
    let m = spec::open(&format!("local:{}", p.display()), true).unwrap();
    assert_eq!(m.name(), "local:m");
    let again = spec::open(&format!("local:{}", p.display()), true).unwrap();
    assert!(
        std::ptr::addr_eq(Arc::as_ptr(&m), Arc::as_ptr(&again)),
        "one model, shared"
    );
}

#[test]
fn wire_parsing_accepts_openai_variants() {
    let body = br#"{"model":"m","messages":[{"role":"developer","content":"be brief"},
        {"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}],
        "max_completion_tokens":7,"stop":"x","seed":-1,"stream":true,"stream_options":{"include_usage":true}}"#;
    let p = tessera_llm::wire::parse_request(body, 99).unwrap();
    assert_eq!(
        p.request.messages,
        vec![
            ChatMessage::new("system", "be brief"),
            ChatMessage::new("user", "ab")
        ]
    );
    assert_eq!(p.request.params.max_tokens, 7);
    assert!(p.max_tokens_given && p.stream && p.include_usage);
    assert_eq!(p.request.params.stop, vec!["x".to_string()]);
    assert_eq!(p.request.params.seed, Some(u64::MAX));
    let p = tessera_llm::wire::parse_request(
        br#"{"model":"m","messages":[{"role":"user","content":"a"}]}"#,
        99,
    )
    .unwrap();
    assert_eq!(p.request.params.max_tokens, 99);
    assert!(!p.max_tokens_given);
    let e = tessera_llm::wire::parse_request(
        br#"{"model":"m","messages":[{"role":"user","content":"a"}],"n":2,"stream":true}"#,
        9,
    )
    .unwrap_err();
    assert_eq!(e.param.as_deref(), Some("n"));
}

#[test]
fn percentiles_are_nearest_rank() {
    let v: Vec<f64> = (1..=100).map(f64::from).collect();
    use tessera_llm::bench::percentile;
    assert_eq!(percentile(&v, 0.5), 50.0);
    assert_eq!(percentile(&v, 0.95), 95.0);
    assert_eq!(percentile(&v, 0.99), 99.0);
    assert_eq!(percentile(&[3.0], 0.99), 3.0);
    assert!(percentile(&[], 0.5).is_nan());
}
