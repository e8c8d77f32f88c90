//! The runtime's section of `tessera tour`: a chat sample, perplexity on the start of WikiText-2 test, decode
//! speed, and one LoRA training step with trainable vs frozen base weights.
use crate::error::Result;
use crate::generate::{generate, SamplingParams};
use crate::perplexity::{perplexity, tokenize_document};
use crate::speed::{self, BENCH_PROMPT, BENCH_STEPS};
use crate::tokenizer::ChatMessage;
use tessera_core::assets;
use tessera_core::record::RunDir;
use tessera_core::report::{Report, TourSection};

/// The tour's model (the default model of every command).
pub const TOUR_MODEL: &str = "smollm2-135m";
/// WikiText-2 raw test, relative to the data root: the default perplexity text.
pub const WIKITEXT_TEST: &str = "wikitext2/raw/wiki.test.raw";
/// Tokens of WikiText-2 test scored by the tour (window 1024, stride 512).
pub const TOUR_PPL_TOKENS: usize = 2048;

/// Runs the tour's runtime part and writes `lm.json` into `dir`.
pub fn tour(dir: &RunDir, offline: bool) -> Result<TourSection> {
    let mut m = crate::load(&assets::resolve_model(TOUR_MODEL, offline)?)?;
    let question = "What is the capital of France?";
    let ids = m
        .tokenizer()?
        .encode_chat(&[ChatMessage::new("user", question)])?;
    let g = generate(
        &m,
        &ids,
        &SamplingParams {
            max_tokens: 48,
            ..Default::default()
        },
        &mut |_| true,
    )?;
    let text_path = assets::resolve_data(WIKITEXT_TEST)?;
    let wiki = tessera_core::fsx::read_to_string(&text_path)?;
    let doc = tokenize_document(&m, &wiki)?;
    let r = perplexity(&m, &doc, 1024, 512, TOUR_PPL_TOKENS, &mut |_, _| {})?;
    let bench_ids = m.tokenizer()?.encode(BENCH_PROMPT)?;
    let s = speed::measure_decode(&m, &bench_ids, BENCH_STEPS)?;
    // One LoRA training step each way (B starts at zero, so the adapters do not change the model).
    m.add_lora_qv(8, 16.0)?;
    let toks = m
        .tokenizer()?
        .encode(tessera_core::text::prefix_at_most(&wiki, 4000))?;
    let toks = &toks[..toks.len().min(129)];
    let lora: Vec<speed::StepCost> = [false, true]
        .into_iter()
        .map(|freeze| speed::train_step_cost(&m, toks, freeze))
        .collect::<Result<_>>()?;
    let json = serde_json::json!({
        "model": TOUR_MODEL, "parameters": m.num_params(),
        "sample": { "prompt": question, "completion": g.text },
        "perplexity_first_2048_tokens": r, "speed": s, "lora_step": lora,
    });
    dir.write_json("lm.json", &json)?;
    let mut rep = Report::new("LM runtime (SmolLM2-135M-Instruct, f32)");
    rep.para(&format!(
        "{} parameters, loaded from the Q4_1 GGUF and dequantized to f32.",
        m.num_params()
    ));
    rep.para(&format!(
        "**Chat sample** (greedy): *{question}* → {}",
        g.text.trim()
    ));
    rep.table(
        &["measure", "value"],
        &[
            vec![
                format!(
                    "perplexity, WikiText-2 test, first {TOUR_PPL_TOKENS} tokens (window 1024, stride 512)"
                ),
                format!("{:.3}", r.perplexity),
            ],
            vec![
                "prompt processing (tok/s)".into(),
                format!("{:.1}", s.prompt_tokens_per_s),
            ],
            vec![
                "decode (tok/s)".into(),
                format!("{:.1}", s.decode_tokens_per_s),
            ],
            vec![
                "peak RSS (MiB)".into(),
                format!("{:.0}", s.peak_rss_mb.unwrap_or(0.0)),
            ],
            vec![
                format!(
                    "LoRA step (r = 8 on q, v; {} tokens), base trainable: seconds / tensors with a gradient",
                    toks.len().saturating_sub(1)
                ),
                format!("{:.2} / {}", lora[0].seconds, lora[0].gradients),
            ],
            vec![
                "LoRA step, base frozen (`freeze_base`): seconds / tensors with a gradient".into(),
                format!("{:.2} / {}", lora[1].seconds, lora[1].gradients),
            ],
        ],
    );
    rep.para("Full-text perplexity, the llama.cpp comparison and LoRA-step memory: `tessera perplexity`, `tessera bench decode` and `tessera bench lora`.");
    Ok(TourSection::new("lm", rep, json))
}
