//! The server with the real SmolLM2-135M-Instruct model, driven by `OpenAiChat` on 127.0.0.1. Skips (with a
//! message) when the model is not cached, unless `TESSERA_REQUIRE_ASSETS` is set.
mod common;
use common::*;
use std::sync::Arc;
use tessera_llm::server::{self, ServerConfig};
use tessera_llm::{ChatModel, ChatParams, ChatRequest, Engine};

fn cached_model() -> Option<std::path::PathBuf> {
    let asset = tessera_core::assets::find_model("smollm2-135m").expect("known asset");
    if asset.is_present() {
        return Some(asset.main_path());
    }
    if std::env::var_os("TESSERA_REQUIRE_ASSETS").is_some() {
        panic!("smollm2-135m is not cached and TESSERA_REQUIRE_ASSETS is set; run `tessera assets fetch`");
    }
    eprintln!("SKIPPED: smollm2-135m is not cached (run `tessera assets fetch`)");
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smollm2_round_trip_stream_and_cancel() {
    let Some(path) = cached_model() else { return };
    let model = tessera_lm::load(&path).unwrap();
    let engine = Arc::new(Engine::new(Arc::new(model), 1, 8).unwrap());
    let h = server::start(engine, ServerConfig::new("smollm2-135m"), "127.0.0.1:0")
        .await
        .unwrap();
    let c = client(&h, "smollm2-135m");
    let req = ChatRequest::user("What is the capital of France? Answer in one word.").with_params(
        ChatParams {
            max_tokens: 12,
            ..ChatParams::default()
        },
    );
    let full = c.chat(&req).await.unwrap();
    assert!(full.text().contains("Paris"), "{:?}", full.text());
    let mut pieces = String::new();
    let streamed = c
        .chat_stream(&req, &mut |t| pieces.push_str(t))
        .await
        .unwrap();
    assert_eq!(streamed.text(), full.text());
    assert_eq!(pieces, full.text());
    assert_eq!(streamed.usage, full.usage);
    // Leaving mid-generation cancels it well before max_tokens.
    let body = r#"{"model":"smollm2-135m","messages":[{"role":"user","content":"Write a very long essay about the sea."}],"max_tokens":1000,"stream":true}"#;
    let before = wait_stats(h.addr(), |_| true).await["engine"]["generated_tokens"]
        .as_u64()
        .unwrap();
    stream_then_drop(h.addr(), body, 4).await;
    let v = wait_stats(h.addr(), |e| e["cancelled"] == 1 && e["active"] == 0).await;
    let spent = v["engine"]["generated_tokens"].as_u64().unwrap() - before;
    assert!(
        spent < 1000,
        "generated {spent} tokens after the client left"
    );
    h.stop().await.unwrap();
}
