//! Q-Newton's section of `tessera tour`: a small optimiser comparison on digits (with time to accuracy) and the
//! HHL fidelity sweeps.
use crate::error::Result;
use crate::experiment::{self, CompareConfig, DEFAULT_TARGET_FRACTION};
use crate::scheduler::{FUTURE_GATE_TIME, TODAY_GATE_TIME};
use crate::train::{Optimizer, TrainConfig};
use tessera_core::record::RunDir;
use tessera_core::report::TourSection;

/// Newton steps of the tour's comparison.
pub const TOUR_NEWTON_STEPS: usize = 40;
/// SGD/Adam steps of the tour's comparison.
pub const TOUR_FIRST_ORDER_STEPS: usize = 400;

/// Runs the tour's Q-Newton part, writing plots and `qnewton_runs.json` into `dir`.
pub fn tour(dir: &RunDir, offline: bool) -> Result<TourSection> {
    let d = crate::data::digits(offline)?;
    let (tr, te) = d.split(0.2, 0);
    let mut newton = TrainConfig::defaults(Optimizer::Newton);
    newton.steps = TOUR_NEWTON_STEPS;
    newton.eval_every = 2;
    let cfg = CompareConfig {
        newton,
        first_order_steps: TOUR_FIRST_ORDER_STEPS,
        gate_times: vec![TODAY_GATE_TIME, FUTURE_GATE_TIME],
        target_fraction: DEFAULT_TARGET_FRACTION,
    };
    let runs = experiment::compare(&cfg, &tr, &te, |_| {})?;
    let mut rep =
        experiment::comparison_report(&runs, dir.path(), "qnewton_", cfg.target_fraction)?;
    let (by_clock, by_kappa) = experiment::hhl_sweeps(8, 10.0, 9, 0)?;
    rep.include(&experiment::hhl_report(&by_clock, &by_kappa));
    rep.para(&format!(
        "Small scale: {TOUR_NEWTON_STEPS} Newton steps, {TOUR_FIRST_ORDER_STEPS} SGD/Adam steps on digits \
         (64→16→16→10). Full run: `tessera qnewton train --optimizer all --steps 150` (see \
         crates/tessera-qnewton/README.md)."
    ));
    dir.write_json("qnewton_runs.json", &runs)?;
    let target = experiment::target_accuracy(&runs, cfg.target_fraction);
    let json = serde_json::json!({
        "target_fraction": cfg.target_fraction,
        "target_acc": target,
        "runs": runs.iter().map(|r| serde_json::json!({
            "label": r.label, "time_s": r.result.time_s, "final_test_acc": r.result.final_test_acc,
            "final_train_loss": r.result.final_train_loss,
            "blocks_quantum": r.result.blocks_quantum, "blocks_classical": r.result.blocks_classical,
            "time_to_target_s": r.time_to_target_s,
        })).collect::<Vec<_>>(),
        "hhl_by_clock": by_clock, "hhl_by_kappa": by_kappa,
    });
    Ok(TourSection::new(
        "Q-Newton: scheduled Newton training and HHL",
        rep,
        json,
    ))
}
