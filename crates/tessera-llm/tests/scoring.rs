//! Continuation scoring (`ChatModel::score`): the local runtime against step-by-step decoding, `/v1/completions`
//! with `echo` + `logprobs`, and the OpenAI client scoring through our own server on 127.0.0.1 (tiny model).
mod common;
use common::*;
use std::sync::Arc;
use tessera_llm::{ChatMessage, ChatModel, LocalChat, ScoreRequest};

fn request() -> ScoreRequest {
    ScoreRequest {
        messages: vec![
            ChatMessage::new("system", "You play tic-tac-toe."),
            ChatMessage::new("user", "Legal moves: <C1R1>, <C2R2>. Your move?"),
        ],
        prefix: "Thought: the centre.\n".into(),
        continuations: vec!["Action: <C1R1>".into(), "Action: <C2R2>".into(), "x".into()],
    }
}

/// The reference: each continuation token's log-probability from a fresh forward pass over everything before it.
fn step_by_step(model: &tessera_lm::Llama, context: &[u32], cont: &[u32]) -> f64 {
    let mut total = 0.0;
    for j in 0..cont.len() {
        let mut ids = context.to_vec();
        ids.extend_from_slice(&cont[..j]);
        let mut cache = tessera_lm::Cache::new(model.config.num_hidden_layers);
        let logits = model.next_logits(&ids, &mut cache).unwrap();
        let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
        let lse = max
            + logits
                .iter()
                .map(|&l| (l as f64 - max).exp())
                .sum::<f64>()
                .ln();
        total += logits[cont[j] as usize] as f64 - lse;
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_scores_match_step_by_step_decoding_and_the_served_scores() {
    let (h, _d) = tiny_server(1, 8, None).await;
    let local = LocalChat::with_engine(h.engine().clone(), TINY_ID);
    let req = request();
    let got = local.score(&req).await.unwrap();
    assert_eq!(got.scores.len(), 3);
    let model = h.engine().model();
    let tok = model.tokenizer().unwrap();
    let mut context = tok.encode_chat(&req.messages).unwrap();
    context.extend(tok.encode_plain(&req.prefix).unwrap());
    for (s, c) in got.scores.iter().zip(&req.continuations) {
        let ids = tok.encode_plain(c).unwrap();
        assert_eq!(s.tokens, ids.len());
        let want = step_by_step(model, &context, &ids);
        assert!(
            (s.logprob - want).abs() < 1e-3 * want.abs().max(1.0),
            "{c}: {} vs {want}",
            s.logprob
        );
        assert!(s.logprob < 0.0);
    }
    // The same scores over HTTP: OpenAiChat -> /v1/completions (echo, logprobs) -> our server.
    let remote = client(&h, TINY_ID).score(&req).await.unwrap();
    for (a, b) in remote.scores.iter().zip(&got.scores) {
        assert_eq!(a.tokens, b.tokens);
        assert!(
            (a.logprob - b.logprob).abs() < 1e-3 * b.logprob.abs().max(1.0),
            "{} vs {}",
            a.logprob,
            b.logprob
        );
    }
    // Bad requests are typed errors, not panics.
    let mut bad = request();
    bad.continuations.clear();
    assert!(local.score(&bad).await.is_err());
    bad.continuations = vec![String::new()];
    assert!(client(&h, TINY_ID).score(&bad).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_endpoint_echoes_prompt_logprobs_and_generates() {
    let (h, _d) = tiny_server(1, 8, None).await;
    let body = serde_json::json!({"model": TINY_ID, "prompt": ["Hello there, friend", "Hello there"],
        "max_tokens": 0, "echo": true, "logprobs": 2});
    let (status, text) = raw(
        h.addr(),
        "POST",
        "/v1/completions",
        &[("content-type", "application/json")],
        body.to_string().as_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let v = json(&text);
    assert_eq!(v["object"], "text_completion");
    let choices = v["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 2);
    let tok = h.engine().model().tokenizer().unwrap();
    for (i, c) in choices.iter().enumerate() {
        let prompt = ["Hello there, friend", "Hello there"][i];
        assert_eq!(c["text"], prompt);
        let lp = &c["logprobs"];
        let n = tok.encode(prompt).unwrap().len();
        assert_eq!(lp["tokens"].as_array().unwrap().len(), n);
        assert!(lp["token_logprobs"][0].is_null());
        let offs: Vec<u64> = lp["text_offset"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o.as_u64().unwrap())
            .collect();
        assert!(offs.windows(2).all(|w| w[0] <= w[1]), "{offs:?}");
        for j in 1..n {
            assert!(lp["token_logprobs"][j].as_f64().unwrap() <= 0.0);
            assert_eq!(lp["top_logprobs"][j].as_object().unwrap().len(), 2);
        }
    }
    // The shared prefix is scored identically for both prompts.
    let a = &choices[0]["logprobs"]["token_logprobs"];
    let b = &choices[1]["logprobs"]["token_logprobs"];
    let shared = choices[1]["logprobs"]["tokens"].as_array().unwrap().len() - 1;
    for j in 1..shared {
        assert!((a[j].as_f64().unwrap() - b[j].as_f64().unwrap()).abs() < 1e-4);
    }
    // Generation with echo appends the completion after the prompt.
    let body =
        serde_json::json!({"model": TINY_ID, "prompt": "Hi", "max_tokens": 4, "temperature": 0.0});
    let (status, text) = raw(
        h.addr(),
        "POST",
        "/v1/completions",
        &[],
        body.to_string().as_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let v = json(&text);
    assert!(v["usage"]["completion_tokens"].as_u64().unwrap() <= 4);
    // Bad input: 400 with an OpenAI error body.
    for bad in [
        serde_json::json!({"model": TINY_ID}),
        serde_json::json!({"model": "other", "prompt": "x"}),
        serde_json::json!({"model": TINY_ID, "prompt": "x", "logprobs": 99}),
        serde_json::json!({"model": TINY_ID, "prompt": "x", "stream": true}),
    ] {
        let (status, text) = raw(
            h.addr(),
            "POST",
            "/v1/completions",
            &[],
            bad.to_string().as_bytes(),
        )
        .await;
        assert_eq!(status, 400, "{bad}: {text}");
        assert!(json(&text)["error"]["message"].is_string());
    }
    let _ = Arc::strong_count(h.engine());
}
