//! The serve section of `tessera tour`: SmolLM2 served on a free loopback port, one chat round trip through
//! [`OpenAiChat`] and the same request streamed.
use crate::engine::{Engine, EngineConfig};
use crate::error::Result;
use crate::openai::{OpenAiChat, OpenAiConfig};
use crate::server::{self, ServerConfig};
use crate::types::{ChatParams, ChatRequest};
use crate::ChatModel;
use std::sync::Arc;
use std::time::Instant;
use tessera_core::record::RunDir;
use tessera_core::report::{Report, TourSection};

/// The question the tour asks.
pub const TOUR_QUESTION: &str = "What is the capital of France? Answer in one sentence.";

/// Runs the serve tour on `model` (served under the id `model_id`) and writes `serve.json` into `dir`.
pub fn tour(dir: &RunDir, model: tessera_lm::Llama, model_id: &str) -> Result<TourSection> {
    let ec = EngineConfig {
        queue: 16,
        max_batch: 1,
        ..EngineConfig::default()
    };
    let engine = Arc::new(Engine::from_config(Arc::new(model), &ec)?);
    let req = ChatRequest::user(TOUR_QUESTION).with_params(ChatParams {
        max_tokens: 32,
        ..ChatParams::default()
    });
    let rt = crate::blocking::build_runtime(2)?;
    let (addr, reply, latency_s, first_piece_s, streamed) = rt.block_on(async {
        let h = server::start(engine, ServerConfig::new(model_id), "127.0.0.1:0").await?;
        let client = OpenAiChat::new(OpenAiConfig::new(h.base_url(), model_id))?;
        let t0 = Instant::now();
        let reply = client.chat(&req).await?;
        let latency_s = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let mut first: Option<f64> = None;
        let streamed = client
            .chat_stream(&req, &mut |_| {
                first.get_or_insert(t1.elapsed().as_secs_f64());
            })
            .await?;
        let addr = h.addr();
        h.stop().await?;
        Ok::<_, crate::LlmError>((addr, reply, latency_s, first, streamed))
    })?;
    let same = streamed.text() == reply.text();
    let json = serde_json::json!({
        "model": model_id, "address": addr.to_string(), "question": TOUR_QUESTION,
        "reply": reply.text(), "usage": reply.usage,
        "finish_reason": reply.choices.first().map(|c| c.finish_reason.clone()),
        "latency_s": latency_s, "stream_first_piece_s": first_piece_s, "stream_matches": same,
    });
    dir.write_json("serve.json", &json)?;
    let mut rep = Report::new("Serve (OpenAI-compatible server and client)");
    rep.para(&format!(
        "`tessera serve` logic on {addr} with {model_id}; one chat round trip through `OpenAiChat` (greedy, \
         max_tokens 32), then the same request streamed."
    ));
    let secs = |s: Option<f64>| s.map(|s| format!("{s:.2}")).unwrap_or_else(|| "-".into());
    rep.table(
        &["measure", "value"],
        &[
            vec!["question".into(), TOUR_QUESTION.into()],
            vec!["reply".into(), reply.text().trim().to_string()],
            vec![
                "tokens (prompt / completion)".into(),
                format!(
                    "{} / {}",
                    reply.usage.prompt_tokens, reply.usage.completion_tokens
                ),
            ],
            vec!["round-trip latency (s)".into(), format!("{latency_s:.2}")],
            vec![
                "streamed: first piece after (s)".into(),
                secs(first_piece_s),
            ],
            vec!["streamed text equals non-streamed".into(), same.to_string()],
        ],
    );
    rep.para("Throughput and latency under load: `tessera bench serve`.");
    Ok(TourSection::new("serve", rep, json))
}
