//! The FFN-skipping section of `tessera tour`: a few factoid questions, full vs skipping at one budget.
use crate::error::Result;
use crate::eval::{self, SkipEvalConfig};
use tessera_core::assets;
use tessera_core::record::RunDir;
use tessera_core::report::{Report, TourSection};

/// Questions the tour evaluates.
pub const TOUR_QUESTIONS: usize = 8;

/// Runs the tour's part and writes `skip.json` into `dir`.
pub fn tour(dir: &RunDir, offline: bool) -> Result<TourSection> {
    let model = tessera_lm::tour::TOUR_MODEL;
    let m = tessera_lm::load(&assets::resolve_model(model, offline)?)?;
    let cfg = SkipEvalConfig {
        limit: Some(TOUR_QUESTIONS),
        ..Default::default()
    };
    let r = eval::run(&m, &cfg, &mut |_, _| {})?;
    let json = serde_json::to_value(&r).map_err(|e| crate::SkipError::invalid(e.to_string()))?;
    dir.write_json("skip.json", &json)?;
    let mut rep = Report::new("FFN-SkipLLM (input-adaptive FFN skipping during decoding)");
    rep.para(&format!(
        "{} factoid questions, greedy, {} new tokens; rule {} (cold 5 + 5 layers, warm-up, every 6th token full).",
        r.questions, cfg.max_new_tokens, r.headline
    ));
    rep.table(
        &["measure", "value"],
        &[
            vec![
                "decode FFN blocks skipped".into(),
                format!("{:.1}%", 100.0 * r.skipped_fraction),
            ],
            vec![
                "factoid accuracy, full / skip".into(),
                format!(
                    "{:.3} / {:.3}",
                    r.factoid_accuracy_full, r.factoid_accuracy_skip
                ),
            ],
            vec![
                "token exact match vs full".into(),
                format!("{:.3}", r.exact_match),
            ],
            vec!["ROUGE-L vs full".into(), format!("{:.3}", r.rouge_l)],
            vec![
                "continuation perplexity, full / skip".into(),
                format!(
                    "{:.3} / {:.3}",
                    r.continuation_perplexity_full, r.continuation_perplexity
                ),
            ],
            vec![
                "decode speedup (in-run, interleaved)".into(),
                format!("{:.3}x", r.decode_speedup),
            ],
        ],
    );
    rep.para("All 177 questions, budgets and the random-span baseline: `tessera skip eval --budget 25%,10%,30% --random-baseline`; speed: `tessera bench skip`.");
    Ok(TourSection::new("skip", rep, json))
}
