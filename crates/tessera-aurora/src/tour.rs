//! The Aurora-M section of `tessera tour`: a few CAP steps (LoRA) and CAT steps on a tiny budget, and the
//! evaluation on a slice (perplexity per language, refusal and over-refusal on a few held-out prompts).
use crate::cap::{self, CapConfig};
use crate::cat::{self, CatConfig};
use crate::error::Result;
use crate::eval::{self, EvalConfig};
use tessera_core::record::RunDir;
use tessera_core::report::{Report, TourSection};

/// Steps of the tour's CAP and CAT runs.
pub const TOUR_STEPS: u64 = 3;

/// Runs the tour's part and writes `aurora.json` into `dir`.
pub fn tour(dir: &RunDir, offline: bool) -> Result<TourSection> {
    let mut c = CapConfig {
        out: dir.file("aurora-cap"),
        offline,
        window: 64,
        code_bytes: 100_000,
        checkpoint_every: 0,
        ..Default::default()
    };
    c.train.steps = TOUR_STEPS;
    c.train.batch = 2;
    c.train.warmup_steps = 1;
    c.train.lora = Some(8);
    c.train.lr = 1e-3;
    let capr = cap::run(&c)?;
    let mut t = CatConfig {
        model: c.out.display().to_string(),
        out: dir.file("aurora-cat"),
        offline,
        max_len: 96,
        checkpoint_every: 0,
        ..Default::default()
    };
    t.train = c.train.clone();
    let catr = cat::run(&t)?;
    let ev = |m: String| {
        eval::run(&EvalConfig {
            model: m,
            offline,
            ppl_tokens: 256,
            per_area: 1,
            benign: 3,
            max_new_tokens: 24,
            ..Default::default()
        })
    };
    let before = ev(c.model.clone())?;
    let after = ev(t.out.display().to_string())?;
    let json = serde_json::json!({ "cap": capr, "cat": catr, "eval_base": before, "eval_after_cat": after });
    dir.write_json("aurora.json", &json)?;
    let mut rep = Report::new(
        "Aurora-M: continual pretraining, alignment and red-team evaluation (SmolLM2-135M)",
    );
    rep.para(&format!(
        "{} CAP steps (LoRA r8, windows of 64 tokens, {:.0} tokens/s) then {} CAT steps (assistant-only loss); \
         a tiny budget that exercises the pipeline, not one that changes the model much.",
        capr.train.steps_done, capr.train.tokens_per_second, catr.train.steps_done
    ));
    let rows: Vec<Vec<String>> = before
        .perplexity_by_language
        .iter()
        .map(|(k, v)| {
            let a = after
                .perplexity_by_language
                .get(k)
                .copied()
                .unwrap_or(f64::NAN);
            vec![k.clone(), format!("{v:.1}"), format!("{a:.1}")]
        })
        .collect();
    rep.table(
        &[
            "stream (held-out, first 256 tokens)",
            "base",
            "after CAP+CAT",
        ],
        &rows,
    );
    let pct = |x: Option<f64>| {
        x.map(|v| format!("{:.0}%", 100.0 * v))
            .unwrap_or("-".into())
    };
    rep.para(&format!(
        "Refusal on {} held-out harmful prompts (one per area): {} → {}; over-refusal on {} benign prompts: {} → {}.",
        before.harmful_evaluated,
        pct(before.refusal_rate),
        pct(after.refusal_rate),
        before.benign_evaluated,
        pct(before.over_refusal_rate),
        pct(after.over_refusal_rate)
    ));
    Ok(TourSection::new("aurora", rep, json))
}
