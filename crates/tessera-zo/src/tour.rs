//! The zeroth-order section of `tessera tour`: zero-shot SST-2 accuracy against a short ZO-SGD run (full
//! parameters), and the memory of one step of ZO-SGD, FO-SGD and FO-Adam next to inference.
use crate::error::Result;
use crate::memory::{self, MemoryConfig, MemoryEntry};
use crate::optimizer::Optimizer;
use crate::run::{self, ZoConfig};
use crate::scheme::Scheme;
use tessera_core::record::RunDir;
use tessera_core::report::{Report, TourSection};

/// Steps of the tour's ZO-SGD run.
pub const TOUR_STEPS: u64 = 10;
/// Evaluation examples of the tour.
pub const TOUR_EVAL: usize = 128;

/// Runs the tour's part; `run_case` measures one memory case in a fresh process (see [`memory::memory`]).
pub fn tour(
    dir: &RunDir,
    offline: bool,
    run_case: &mut dyn FnMut(&str) -> Result<MemoryEntry>,
) -> Result<TourSection> {
    let cfg = ZoConfig {
        steps: TOUR_STEPS,
        eval_examples: Some(TOUR_EVAL),
        out: dir.file("zo-train"),
        offline,
        ..Default::default()
    };
    let r = run::run(&cfg)?;
    let mc = MemoryConfig {
        model: cfg.model.clone(),
        scheme: Scheme::Full,
        batch: 16,
        optimizers: vec![Optimizer::ZoSgd, Optimizer::FoSgd, Optimizer::FoAdam],
        data_dir: None,
        offline,
    };
    let m = memory::memory(&mc, run_case)?;
    let json = serde_json::json!({ "train": r, "memory": m });
    dir.write_json("zo.json", &json)?;
    let mut rep = Report::new("Zeroth-order fine-tuning (SmolLM2-135M-Instruct, SST-2)");
    rep.para(&format!(
        "Zero-shot accuracy of the prompt `<sentence> It was [terrible|great]` on {} SST-2 dev sentences: \
         **{:.1}%**. After {} ZO-SGD steps (full parameters, batch 16, lr {:.0e}, μ {:.0e}): **{:.1}%** \
         ({:+.1} points; a short run, far from the thousands of steps ZO needs). A step took {:.2} s, \
         {:.2}× one forward pass of the batch.",
        r.eval_examples,
        100.0 * r.zero_shot_accuracy,
        r.steps_done,
        r.settings.lr,
        r.settings.mu,
        100.0 * r.accuracy_after,
        r.gain_points,
        r.step_seconds,
        r.step_vs_forward
    ));
    let mib = |b: usize| format!("{:.0}", b as f64 / 1048576.0);
    let rows: Vec<Vec<String>> = m
        .cases
        .iter()
        .map(|(k, e)| {
            vec![
                k.clone(),
                mib(e.peak_heap_bytes),
                format!("{:.2}", m.heap_vs_inference.get(k).copied().unwrap_or(0.0)),
                format!("{:.2}", e.seconds),
            ]
        })
        .collect();
    rep.para("Peak live heap of one step (weights included), each case in its own process:");
    rep.table(
        &["case", "peak heap (MiB)", "× inference", "step (s)"],
        &rows,
    );
    Ok(TourSection::new("zo", rep, json))
}
