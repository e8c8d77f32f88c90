//! Experiments behind the CLI, the README and the tour: the optimiser comparison (loss/accuracy vs charged time,
//! routing fractions, κ trajectory) and the HHL fidelity sweeps, with their Markdown/SVG report.
use crate::data::Dataset;
use crate::error::Result;
use crate::hhl::{hhl_solve, random_rhs, random_symmetric, HhlConfig, HhlResult};
use crate::scheduler::{decide, Route, SchedulerConfig};
use crate::train::{train, BlockRecord, Optimizer, TrainConfig, TrainResult};
use serde::Serialize;
use std::path::Path;
use tessera_core::report::{line_plot_svg, Report, Series};

/// Gate times the routing sweep re-routes the recorded blocks under (seconds per query).
pub const GATE_TIMES: &[f64] = &[1e-7, 1e-9, 1e-11, 1e-12, 1e-13, 1e-15, 1e-18];

/// Routing of the recorded blocks of a Q-Newton run under another gate time (same κ, d and measured T_C).
#[derive(Debug, Clone, Serialize)]
pub struct Reroute {
    /// Seconds per query.
    pub gate_time: f64,
    /// Fraction of blocks routed to the quantum solver.
    pub quantum_fraction: f64,
    /// Charged solve time (modelled T_Q + measured T_C), seconds.
    pub solve_time_s: f64,
}

/// Re-routes recorded blocks for each gate time.
pub fn reroute(blocks: &[BlockRecord], base: &SchedulerConfig, gate_times: &[f64]) -> Vec<Reroute> {
    gate_times
        .iter()
        .map(|&g| {
            let cfg = SchedulerConfig {
                gate_time: g,
                ..base.clone()
            };
            let ds: Vec<_> = blocks
                .iter()
                .map(|b| decide(&cfg, b.kappa, b.d, b.t_classical))
                .collect();
            let q = ds.iter().filter(|d| d.route == Route::Quantum).count();
            Reroute {
                gate_time: g,
                quantum_fraction: q as f64 / ds.len().max(1) as f64,
                solve_time_s: ds.iter().map(|d| d.charged()).sum(),
            }
        })
        .collect()
}

/// `(step, κ)` per layer.
pub fn kappa_trajectory(blocks: &[BlockRecord]) -> Vec<Vec<(usize, f64)>> {
    let layers = blocks.iter().map(|b| b.layer + 1).max().unwrap_or(0);
    (0..layers)
        .map(|l| {
            blocks
                .iter()
                .filter(|b| b.layer == l)
                .map(|b| (b.step, b.kappa))
                .collect()
        })
        .collect()
}

/// Per-step fraction of blocks routed to the quantum solver, in windows of `window` steps.
pub fn quantum_fraction_over_training(blocks: &[BlockRecord], window: usize) -> Vec<(usize, f64)> {
    let steps = blocks.iter().map(|b| b.step + 1).max().unwrap_or(0);
    (0..steps)
        .step_by(window.max(1))
        .map(|s| {
            let w: Vec<_> = blocks
                .iter()
                .filter(|b| b.step >= s && b.step < s + window)
                .collect();
            (
                s,
                w.iter().filter(|b| b.route == Route::Quantum).count() as f64
                    / w.len().max(1) as f64,
            )
        })
        .collect()
}

/// One labelled run in a comparison.
#[derive(Debug, Clone, Serialize)]
pub struct LabelledRun {
    /// Label used in tables and plots.
    pub label: String,
    /// The run.
    pub result: TrainResult,
    /// Charged time at the first evaluation reaching the comparison's target accuracy (`None`: not reached).
    pub time_to_target_s: Option<f64>,
}

/// Default target of the time-to-accuracy column: this fraction of classical Newton's final test accuracy.
pub const DEFAULT_TARGET_FRACTION: f64 = 0.95;

/// Charged time of the first curve point whose test accuracy reaches `target` (`None` when no point does).
pub fn time_to_accuracy(curve: &[crate::train::CurvePoint], target: f64) -> Option<f64> {
    curve
        .iter()
        .find(|p| p.test_acc >= target)
        .map(|p| p.time_s)
}

/// The target accuracy of a comparison: `fraction` × the final test accuracy of its `newton` run.
pub fn target_accuracy(runs: &[LabelledRun], fraction: f64) -> Option<f64> {
    runs.iter()
        .find(|r| r.result.optimizer == Optimizer::Newton)
        .map(|r| fraction * r.result.final_test_acc)
}

/// Settings of the optimiser comparison.
#[derive(Debug, Clone)]
pub struct CompareConfig {
    /// Template for the Newton runs (steps, curvature, pruning, scheduler).
    pub newton: TrainConfig,
    /// Steps for SGD and Adam (cheap per step, so they get more).
    pub first_order_steps: usize,
    /// Gate times for the Q-Newton runs.
    pub gate_times: Vec<f64>,
    /// Time to accuracy is measured to this fraction of Newton's final test accuracy.
    pub target_fraction: f64,
}

/// Runs SGD, Adam, classical Newton and Q-Newton (one run per gate time) on the same split.
pub fn compare(
    cfg: &CompareConfig,
    tr: &Dataset,
    te: &Dataset,
    mut progress: impl FnMut(&str),
) -> Result<Vec<LabelledRun>> {
    let mut runs = Vec::new();
    for opt in [Optimizer::Sgd, Optimizer::Adam] {
        let mut c = TrainConfig::defaults(opt);
        c.hidden = cfg.newton.hidden.clone();
        c.batch = cfg.newton.batch;
        c.seed = cfg.newton.seed;
        c.steps = cfg.first_order_steps;
        c.eval_every = (cfg.first_order_steps / 30).max(1);
        progress(opt.name());
        runs.push(LabelledRun {
            label: opt.name().into(),
            result: train(&c, tr, te, |_| {})?,
            time_to_target_s: None,
        });
    }
    let mut c = cfg.newton.clone();
    c.optimizer = Optimizer::Newton;
    progress("newton");
    runs.push(LabelledRun {
        label: "newton".into(),
        result: train(&c, tr, te, |_| {})?,
        time_to_target_s: None,
    });
    for &g in &cfg.gate_times {
        let mut c = cfg.newton.clone();
        c.optimizer = Optimizer::Qnewton;
        c.scheduler.gate_time = g;
        let label = format!("qnewton gate {g:.0e}s");
        progress(&label);
        runs.push(LabelledRun {
            label,
            result: train(&c, tr, te, |_| {})?,
            time_to_target_s: None,
        });
    }
    if let Some(target) = target_accuracy(&runs, cfg.target_fraction) {
        for r in &mut runs {
            r.time_to_target_s = time_to_accuracy(&r.result.curve, target);
        }
    }
    Ok(runs)
}

fn fmt_s(x: f64) -> String {
    if x >= 0.01 {
        format!("{x:.2}")
    } else {
        format!("{x:.1e}")
    }
}

/// Writes the comparison plots into `dir` and returns the report section (links relative to `dir`);
/// `target_fraction` is the one the runs' `time_to_target_s` was measured with.
pub fn comparison_report(
    runs: &[LabelledRun],
    dir: &Path,
    prefix: &str,
    target_fraction: f64,
) -> Result<Report> {
    let mut rep = Report::new("Q-Newton: optimiser comparison");
    let dataset = runs
        .first()
        .map(|r| r.result.dataset.clone())
        .unwrap_or_default();
    let newton_time = runs
        .iter()
        .find(|r| r.result.optimizer == Optimizer::Newton)
        .map(|r| r.result.time_s);
    rep.para(&format!(
        "Dataset `{dataset}`. Time is charged training time (evaluation excluded). For Q-Newton rows, solves routed \
         to the quantum solver are charged their **modelled** time `T_Q = gate_time × queries(d, κ, ε)`; every other \
         part is measured (CPU time of the single training thread; faer runs single-threaded)."
    ));
    let target = target_accuracy(runs, target_fraction);
    if let Some(t) = target {
        rep.para(&format!(
            "**Time to target** is the charged time of the first evaluation whose test accuracy reaches {:.0}% of \
             classical Newton's final accuracy (target {t:.3}); \"not reached\" when no evaluation does. It compares \
             optimisers at equal model quality, which charged time alone does not.",
            100.0 * target_fraction
        ));
    }
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            let x = &r.result;
            let vs = newton_time
                .filter(|_| x.optimizer.is_newton())
                .map(|t| format!("{:+.0}%", 100.0 * (x.time_s - t) / t))
                .unwrap_or_else(|| "".into());
            vec![
                r.label.clone(),
                x.config.steps.to_string(),
                fmt_s(x.time_s)
                    + if x.time_includes_modelled {
                        " (modelled part)"
                    } else {
                        ""
                    },
                vs,
                match (target, r.time_to_target_s) {
                    (None, _) => "".into(),
                    (Some(_), Some(t)) => fmt_s(t),
                    (Some(_), None) => "not reached".into(),
                },
                if x.optimizer == Optimizer::Qnewton {
                    fmt_s(x.time.prune + x.time.kappa)
                } else {
                    "".into()
                },
                format!("{:.4}", x.final_train_loss),
                format!("{:.3}", x.final_test_acc),
                if x.optimizer.is_newton() {
                    format!("{}/{}", x.blocks_quantum, x.blocks_classical)
                } else {
                    "".into()
                },
            ]
        })
        .collect();
    rep.table(
        &[
            "run",
            "steps",
            "time s",
            "vs Newton",
            "time to target s",
            "scheduler overhead s",
            "train loss",
            "test acc",
            "blocks Q/C",
        ],
        &rows,
    );
    let brow = |label: &str, t: &crate::train::TimeBreakdown| {
        vec![
            label.to_string(),
            fmt_s(t.forward_backward),
            fmt_s(t.hessian),
            fmt_s(t.prune),
            fmt_s(t.kappa),
            fmt_s(t.solve_classical),
            fmt_s(t.solve_quantum_modelled),
            fmt_s(t.uncharged_quantum_emulation),
        ]
    };
    let brows: Vec<Vec<String>> = runs
        .iter()
        .filter(|r| r.result.optimizer.is_newton())
        .map(|r| brow(&r.label, &r.result.time))
        .collect();
    rep.para(
        "Where the charged time went (seconds). `emulation` is the time spent computing the solutions of \
         quantum-routed blocks classically; it is not charged.",
    );
    rep.table(
        &[
            "run",
            "fwd/bwd",
            "Hessian",
            "prune+λ",
            "κ (Lanczos)",
            "classical solves",
            "quantum solves (modelled)",
            "emulation (uncharged)",
        ],
        &brows,
    );
    let series = |f: &dyn Fn(&crate::train::CurvePoint) -> f64| -> Vec<Series> {
        runs.iter()
            .map(|r| {
                Series::new(
                    r.label.clone(),
                    r.result.curve.iter().map(|p| (p.time_s, f(p))).collect(),
                )
            })
            .collect()
    };
    let loss_svg = format!("{prefix}loss_vs_time.svg");
    line_plot_svg(
        dir.join(&loss_svg),
        "Training loss vs charged time (Q-Newton: modelled quantum solves)",
        "time (s)",
        "train loss",
        &series(&|p| p.train_loss),
    )?;
    rep.image("loss vs time", &loss_svg);
    let acc_svg = format!("{prefix}acc_vs_time.svg");
    line_plot_svg(
        dir.join(&acc_svg),
        "Test accuracy vs charged time (Q-Newton: modelled quantum solves)",
        "time (s)",
        "test accuracy",
        &series(&|p| p.test_acc),
    )?;
    rep.image("accuracy vs time", &acc_svg);

    if let Some(q) = runs
        .iter()
        .find(|r| r.result.optimizer == Optimizer::Qnewton)
    {
        let blocks = &q.result.blocks;
        let traj = kappa_trajectory(blocks);
        let kappa_series: Vec<Series> = traj
            .iter()
            .enumerate()
            .map(|(l, pts)| {
                Series::new(
                    format!("layer {l}"),
                    pts.iter().map(|&(s, k)| (s as f64, k.log10())).collect(),
                )
            })
            .collect();
        let k_svg = format!("{prefix}kappa.svg");
        line_plot_svg(
            dir.join(&k_svg),
            "κ of H + λI per layer block (Lanczos)",
            "step",
            "log10 κ",
            &kappa_series,
        )?;
        rep.section("κ trajectory");
        let krows: Vec<Vec<String>> = traj
            .iter()
            .enumerate()
            .map(|(l, pts)| {
                let n = pts.len();
                let head = pts.iter().take(5).map(|p| p.1).sum::<f64>() / n.clamp(1, 5) as f64;
                let tail = pts
                    .iter()
                    .skip(n.saturating_sub(5))
                    .map(|p| p.1)
                    .sum::<f64>()
                    / n.clamp(1, 5) as f64;
                let bsz = blocks
                    .iter()
                    .find(|b| b.layer == l)
                    .map(|b| (b.n, b.d))
                    .unwrap_or((0, 0));
                let raw: Vec<f64> = blocks
                    .iter()
                    .filter(|b| b.layer == l)
                    .map(|b| b.kappa_raw)
                    .collect();
                let m = raw.len();
                let geo = |xs: &[f64]| {
                    (xs.iter().map(|x| x.ln()).sum::<f64>() / xs.len().max(1) as f64).exp()
                };
                let (rh, rt) = (geo(&raw[..m.min(5)]), geo(&raw[m.saturating_sub(5)..]));
                vec![
                    l.to_string(),
                    bsz.0.to_string(),
                    bsz.1.to_string(),
                    format!("{head:.1}"),
                    format!("{tail:.1}"),
                    format!("{rh:.2e}"),
                    format!("{rt:.2e}"),
                ]
            })
            .collect();
        rep.para(
            "Lanczos κ over the first and last 5 steps of the Q-Newton run: of the regularised, pruned block the \
             scheduler routes on (mean), and of the raw block `H` before pruning and λ (geometric mean; 30 Lanczos \
             steps under-estimate a large κ).",
        );
        rep.table(
            &[
                "layer",
                "N",
                "d",
                "κ(H+λI) first 5",
                "κ(H+λI) last 5",
                "κ(H) first 5",
                "κ(H) last 5",
            ],
            &krows,
        );
        rep.image("kappa trajectory", &k_svg);
        rep.section("Routing vs gate time");
        rep.para(
            "The recorded blocks of the Q-Newton run (their κ, d and measured T_C) re-routed under other gate times. \
             Solve time = Σ min-route time (modelled T_Q for quantum, measured T_C for classical).",
        );
        let rr = reroute(blocks, &q.result.config.scheduler, GATE_TIMES);
        let rrows: Vec<Vec<String>> = rr
            .iter()
            .map(|r| {
                vec![
                    format!("{:.0e}", r.gate_time),
                    format!("{:.1}%", 100.0 * r.quantum_fraction),
                    fmt_s(r.solve_time_s),
                ]
            })
            .collect();
        rep.table(&["gate time s", "blocks quantum", "solve time s"], &rrows);
        let frac = quantum_fraction_over_training(blocks, 10);
        rep.para(&format!(
            "Fraction routed to quantum over training (`{}`, windows of 10 steps): {}",
            q.label,
            frac.iter()
                .map(|(s, f)| format!("{s}: {:.0}%", 100.0 * f))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(rep)
}

/// One point of an HHL sweep.
#[derive(Debug, Clone, Serialize)]
pub struct HhlPoint {
    /// Matrix order.
    pub dim: usize,
    /// Exact κ of the test matrix.
    pub kappa: f64,
    /// Clock qubits.
    pub clock_qubits: usize,
    /// Fidelity vs the classical solve.
    pub fidelity: f64,
    /// Post-selection success probability.
    pub success_probability: f64,
}

fn point(r: &HhlResult, dim: usize) -> HhlPoint {
    HhlPoint {
        dim,
        kappa: r.kappa,
        clock_qubits: r.clock_qubits,
        fidelity: r.fidelity,
        success_probability: r.success_probability,
    }
}

/// Fidelity against the number of clock qubits (κ fixed) and against κ (clock fixed) on seeded random SPD blocks.
pub fn hhl_sweeps(
    dim: usize,
    kappa: f64,
    clock: usize,
    seed: u64,
) -> Result<(Vec<HhlPoint>, Vec<HhlPoint>)> {
    let b = random_rhs(dim, seed);
    let a = random_symmetric(dim, kappa, false, seed)?;
    let by_clock = (2..=10)
        .map(|nc| {
            hhl_solve(
                &a,
                &b,
                &HhlConfig {
                    clock_qubits: nc,
                    ..HhlConfig::default()
                },
            )
            .map(|r| point(&r, dim))
        })
        .collect::<Result<Vec<_>>>()?;
    let by_kappa = [2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 1000.0]
        .iter()
        .map(|&k| {
            let a = random_symmetric(dim, k, false, seed)?;
            hhl_solve(
                &a,
                &b,
                &HhlConfig {
                    clock_qubits: clock,
                    ..HhlConfig::default()
                },
            )
            .map(|r| point(&r, dim))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((by_clock, by_kappa))
}

/// Markdown tables for the HHL sweeps.
pub fn hhl_report(by_clock: &[HhlPoint], by_kappa: &[HhlPoint]) -> Report {
    let mut rep = Report::new("HHL statevector simulation");
    let row = |p: &HhlPoint| {
        vec![
            p.dim.to_string(),
            format!("{:.1}", p.kappa),
            p.clock_qubits.to_string(),
            format!("{:.5}", p.fidelity),
            format!("{:.2e}", p.success_probability),
        ]
    };
    let header = ["N", "κ", "clock qubits", "fidelity", "P(success)"];
    rep.para("Fidelity |⟨x_HHL|x⟩|² of the post-selected HHL state against the normalised LU solution, random SPD blocks with geometrically spaced eigenvalues.");
    rep.subsection("Fidelity vs clock qubits");
    rep.table(&header, &by_clock.iter().map(row).collect::<Vec<_>>());
    rep.subsection("Fidelity vs κ");
    rep.table(&header, &by_kappa.iter().map(row).collect::<Vec<_>>());
    rep
}
