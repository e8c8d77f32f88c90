//! The pruning section of `tessera tour`: a 2:4 Wanda prune of SmolLM2-135M-Instruct on a few calibration
//! windows, perplexity before and after on the start of WikiText-2 test, and a short SparseLoRA run whose merged
//! checkpoint keeps the 2:4 pattern.
use crate::calib::{CalibConfig, WindowMode};
use crate::eval::EvalConfig;
use crate::prune::{Method, PruneConfig};
use crate::sparselora::SparseLoraConfig;
use crate::{Allocation, Pattern, Propagate, Result, SparseGptOptions};
use tessera_core::record::RunDir;
use tessera_core::report::{Report, TourSection};

/// Tokens of WikiText-2 test scored in the tour (windows of 512).
pub const TOUR_EVAL_TOKENS: usize = 4096;

/// Runs the tour's pruning part and writes `prune.json` into `dir`.
pub fn tour(dir: &RunDir, offline: bool) -> Result<TourSection> {
    let model = tessera_core::assets::resolve_model(tessera_lm::tour::TOUR_MODEL, offline)?;
    let eval = EvalConfig {
        text: None,
        window: 512,
        max_tokens: TOUR_EVAL_TOKENS,
    };
    let dense = crate::eval::perplexity(&tessera_lm::load(&model)?, &eval)?;
    let pruned_dir = dir.file("wanda-2-4");
    let cfg = PruneConfig {
        model: model.clone(),
        method: Method::Wanda,
        allocation: Allocation::uniform(Pattern::nm(2, 4)?),
        calib: CalibConfig {
            nsamples: 8,
            seqlen: 256,
            windows: WindowMode::First,
            ..Default::default()
        },
        propagate: Propagate::Pruned,
        sparsegpt: SparseGptOptions::default(),
        out: pruned_dir.clone(),
        eval: Some(eval.clone()),
    };
    let p = crate::prune::run(&cfg, &mut |_, _| {})?;
    let mut sl = SparseLoraConfig::new(pruned_dir, model, 4, dir.file("wanda-2-4-sparselora"));
    sl.seqlen = 256;
    sl.checkpoint_every = 0;
    sl.eval = Some(eval);
    let r = crate::sparselora::run(&sl, &mut |_, _, _| true)?;
    let json = serde_json::json!({
        "dense_perplexity": dense, "prune": p, "sparselora": r,
    });
    dir.write_json("prune.json", &json)?;
    let ppl = |x: &Option<tessera_lm::perplexity::PerplexityReport>| {
        x.as_ref()
            .map(|r| format!("{:.2}", r.perplexity))
            .unwrap_or_default()
    };
    let mut rep = Report::new("Pruning and SparseLoRA (SmolLM2-135M-Instruct)");
    rep.para(&format!(
        "Wanda 2:4 on {} calibration windows of {} tokens (WikiText-2 valid), then {} SparseLoRA steps of {} tokens. \
         Perplexity on the first {TOUR_EVAL_TOKENS} tokens of WikiText-2 test (windows of 512).",
        cfg.calib.nsamples, cfg.calib.seqlen, sl.steps, sl.seqlen
    ));
    rep.table(
        &[
            "model",
            "perplexity",
            "sparsity of the 7 projections",
            "seconds",
        ],
        &[
            vec![
                "dense".into(),
                format!("{:.2}", dense.perplexity),
                "0".into(),
                String::new(),
            ],
            vec![
                "Wanda 2:4".into(),
                ppl(&p.perplexity),
                format!("{:.4}", p.sparsity),
                format!("{:.1}", p.seconds),
            ],
            vec![
                format!("+ SparseLoRA ({} steps), merged", sl.steps),
                ppl(&r.perplexity_after),
                format!("{:.4} (mask kept: {})", r.sparsity_after_merge, r.mask_kept),
                format!("{:.1}", r.seconds),
            ],
        ],
    );
    rep.para("Full grid (magnitude / Wanda / SparseGPT × 50%, 2:4, 4:8, 70%; LoRA vs SparseLoRA): `crates/tessera-prune/README.md`.");
    Ok(TourSection::new("prune", rep, json))
}
