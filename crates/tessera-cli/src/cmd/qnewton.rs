//! `tessera qnewton` glue: argument parsing only; the work is in `tessera-qnewton`.
use super::Ctx;
use anyhow::Context;
use clap::{Args, Subcommand};
use tessera_core::record::RunDir;
use tessera_qnewton::data::{self, Dataset};
use tessera_qnewton::experiment::{self, CompareConfig};
use tessera_qnewton::hessian::Curvature;
use tessera_qnewton::hhl::{hhl_solve, random_rhs, random_symmetric, HhlConfig};
use tessera_qnewton::newton::StepRule;
use tessera_qnewton::sparsify::Symmetrize;
use tessera_qnewton::train::{self, Optimizer, TrainConfig};

/// `tessera qnewton` subcommands.
#[derive(Subcommand)]
pub enum QnewtonCmd {
    /// Train an MLP with SGD, Adam, block-Newton or scheduled Q-Newton (`--optimizer all` compares them).
    Train(Box<TrainArgs>),
    /// Exact statevector HHL on a random SPD block, compared with the classical solve.
    Hhl(HhlArgs),
}

/// `tessera qnewton train` arguments.
#[derive(Args)]
pub struct TrainArgs {
    /// digits, fashion-mnist or blobs.
    #[arg(long, default_value = "digits")]
    pub dataset: String,
    /// newton, qnewton, sgd, adam, or all (every optimiser, Q-Newton at each --gate-times value).
    #[arg(long, default_value = "qnewton")]
    pub optimizer: String,
    /// Training steps (for `all`: the Newton runs' steps).
    #[arg(long, default_value_t = 150)]
    pub steps: usize,
    /// Steps for SGD/Adam in `all`.
    #[arg(long, default_value_t = 1500)]
    pub first_order_steps: usize,
    /// Minibatch size.
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// Hidden widths, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "16,16")]
    pub hidden: Vec<usize>,
    /// Learning rate (default: 0.1 sgd, 0.01 adam, 0.05 Newton variants).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Step rule applied to the Newton direction: sgd (momentum 0.9) or adam.
    #[arg(long, default_value = "sgd")]
    pub newton_rule: String,
    /// exact or gauss-newton curvature blocks.
    #[arg(long, default_value = "gauss-newton")]
    pub curvature: String,
    /// ε in λ = ε·max|H_ij|.
    #[arg(long, default_value_t = 0.1)]
    pub reg_eps: f64,
    /// Fraction r of entries kept per row when pruning (Q-Newton).
    #[arg(long, default_value_t = 0.25)]
    pub sparsity: f64,
    /// Symmetrise pruning masks by intersection (d ≤ r·N + 1) or union.
    #[arg(long, default_value = "intersection")]
    pub symmetrize: String,
    /// Plain pruning (no diagonal compensation; may break positive definiteness).
    #[arg(long)]
    pub no_compensate: bool,
    /// Seconds per QLSA query (1e-7 today, 1e-18 in the paper's future scenario).
    #[arg(long, default_value_t = 1e-7)]
    pub gate_time: f64,
    /// Gate times for `--optimizer all`.
    #[arg(long, value_delimiter = ',', default_value = "1e-7,1e-18")]
    pub gate_times: Vec<f64>,
    /// Blocks with κ above this always go classical.
    #[arg(long, default_value_t = 1e4)]
    pub kappa_limit: f64,
    /// QLSA target accuracy ε.
    #[arg(long, default_value_t = 1e-2)]
    pub qlsa_eps: f64,
    /// Lanczos steps for κ.
    #[arg(long, default_value_t = 30)]
    pub lanczos_steps: usize,
    /// Fashion-MNIST: images used (train split) and average-pool size.
    #[arg(long, default_value_t = 6000)]
    pub fashion_limit: usize,
    /// Fashion-MNIST pool size (4 → 7×7 inputs).
    #[arg(long, default_value_t = 4)]
    pub pool: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write plots and report.md here (default runs/qnewton-<time> for `all`).
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `tessera qnewton hhl` arguments.
#[derive(Args)]
pub struct HhlArgs {
    /// Matrix order (1..=16).
    #[arg(long, default_value_t = 8)]
    pub dim: usize,
    /// Exact condition number of the random SPD test matrix.
    #[arg(long, default_value_t = 10.0)]
    pub kappa: f64,
    /// Clock qubits.
    #[arg(long, default_value_t = 9)]
    pub clock: usize,
    /// Seed for the matrix and right-hand side.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Also sweep fidelity over clock qubits (2..10) and κ.
    #[arg(long)]
    pub sweep: bool,
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Runs a `tessera qnewton` subcommand.
pub fn run(ctx: &Ctx, cmd: QnewtonCmd) -> anyhow::Result<()> {
    match cmd {
        QnewtonCmd::Train(a) => train_cmd(ctx, *a),
        QnewtonCmd::Hhl(a) => hhl_cmd(a),
    }
}

fn load(ctx: &Ctx, a: &TrainArgs) -> anyhow::Result<(Dataset, Dataset)> {
    let d = match a.dataset.as_str() {
        "digits" => data::digits(ctx.offline)?,
        "fashion-mnist" | "fashion" => data::fashion_mnist("train", a.fashion_limit, a.pool)?,
        "blobs" => data::blobs(2000, 16, 10, a.seed),
        o => anyhow::bail!("unknown dataset {o:?} (digits|fashion-mnist|blobs)"),
    };
    Ok(d.split(0.2, a.seed))
}

fn config(a: &TrainArgs, opt: Optimizer) -> anyhow::Result<TrainConfig> {
    let mut c = TrainConfig::defaults(opt);
    c.hidden = a.hidden.clone();
    c.batch = a.batch;
    c.steps = a.steps;
    c.eval_every = (a.steps / 30).max(1);
    c.seed = a.seed;
    c.curvature = match a.curvature.as_str() {
        "exact" => Curvature::Exact,
        "gauss-newton" | "gn" => Curvature::GaussNewton,
        o => anyhow::bail!("unknown curvature {o:?} (exact|gauss-newton)"),
    };
    c.newton.reg_eps = a.reg_eps;
    c.newton.sparsity_ratio = a.sparsity;
    c.newton.compensate = !a.no_compensate;
    c.newton.symmetrize = match a.symmetrize.as_str() {
        "intersection" => Symmetrize::Intersection,
        "union" => Symmetrize::Union,
        o => anyhow::bail!("unknown symmetrize {o:?} (intersection|union)"),
    };
    c.scheduler.gate_time = a.gate_time;
    c.scheduler.kappa_limit = a.kappa_limit;
    c.scheduler.qlsa_eps = a.qlsa_eps;
    c.scheduler.lanczos_steps = a.lanczos_steps;
    if opt.is_newton() {
        let lr = a.lr.unwrap_or(0.05);
        c.rule = match a.newton_rule.as_str() {
            "sgd" => StepRule::Sgd { lr, momentum: 0.9 },
            "adam" => StepRule::Adam { lr },
            o => anyhow::bail!("unknown newton rule {o:?} (sgd|adam)"),
        };
    } else if let Some(lr) = a.lr {
        c.rule = match c.rule {
            StepRule::Sgd { momentum, .. } => StepRule::Sgd { lr, momentum },
            StepRule::Adam { .. } => StepRule::Adam { lr },
        };
    }
    Ok(c)
}

fn train_cmd(ctx: &Ctx, a: TrainArgs) -> anyhow::Result<()> {
    let (tr, te) = load(ctx, &a)?;
    if a.optimizer == "all" {
        let newton = config(&a, Optimizer::Newton)?;
        let cfg = CompareConfig {
            newton,
            first_order_steps: a.first_order_steps,
            gate_times: a.gate_times.clone(),
        };
        let runs = experiment::compare(&cfg, &tr, &te, |l| {
            eprintln!("tessera qnewton: training {l} ...")
        })?;
        let dir = match &a.out {
            Some(p) => RunDir::at(p)?,
            None => RunDir::fresh("runs", "qnewton")?,
        };
        let rep = experiment::comparison_report(&runs, dir.path(), "")?;
        rep.write(dir.file("report.md"))?;
        dir.write_json("runs.json", &runs)?;
        eprintln!(
            "tessera qnewton: report in {}",
            dir.file("report.md").display()
        );
        if a.json {
            let summary: Vec<_> = runs.iter().map(|r| run_json(&r.label, &r.result)).collect();
            super::print_json(
                &serde_json::json!({ "dataset": tr.name, "runs": summary, "out": dir.path() }),
            );
        } else {
            println!("{}", rep.as_markdown());
        }
        return Ok(());
    }
    let opt = Optimizer::parse(&a.optimizer)?;
    let cfg = config(&a, opt)?;
    let quiet = a.json;
    let res = train::train(&cfg, &tr, &te, |p| {
        if !quiet {
            eprintln!(
                "step {:>5}  time {:>8.3}s  train loss {:.4}  test loss {:.4}  test acc {:.3}",
                p.step, p.time_s, p.train_loss, p.test_loss, p.test_acc
            );
        }
    })?;
    if let Some(out) = &a.out {
        RunDir::at(out)?
            .write_json("run.json", &res)
            .context("writing run.json")?;
    }
    if a.json {
        super::print_json(&run_json(opt.name(), &res));
    } else {
        println!(
            "{}: test acc {:.3}, train loss {:.4}, time {:.3}s{} (wall {:.1}s), blocks quantum/classical {}/{}",
            opt.name(),
            res.final_test_acc,
            res.final_train_loss,
            res.time_s,
            if res.time_includes_modelled { " incl. modelled quantum solves" } else { "" },
            res.wall_s,
            res.blocks_quantum,
            res.blocks_classical
        );
    }
    Ok(())
}

fn run_json(label: &str, r: &train::TrainResult) -> serde_json::Value {
    let traj: Vec<_> = experiment::kappa_trajectory(&r.blocks)
        .iter()
        .enumerate()
        .map(|(l, pts)| serde_json::json!({ "layer": l, "points": pts }))
        .collect();
    serde_json::json!({
        "label": label,
        "optimizer": r.optimizer,
        "dataset": r.dataset,
        "curves": r.curve,
        "time_s": r.time_s,
        "time_includes_modelled_quantum": r.time_includes_modelled,
        "time_note": "time_s is charged training time; for qnewton, quantum-routed solves are charged their modelled time",
        "time_breakdown": r.time,
        "wall_s": r.wall_s,
        "blocks_quantum": r.blocks_quantum,
        "blocks_classical": r.blocks_classical,
        "kappa_trajectory": traj,
        "final_test_acc": r.final_test_acc,
        "final_train_loss": r.final_train_loss,
        "config": r.config,
    })
}

fn hhl_cmd(a: HhlArgs) -> anyhow::Result<()> {
    let m = random_symmetric(a.dim, a.kappa, false, a.seed)?;
    let b = random_rhs(a.dim, a.seed);
    let r = hhl_solve(
        &m,
        &b,
        &HhlConfig {
            clock_qubits: a.clock,
            ..HhlConfig::default()
        },
    )?;
    let sweeps = if a.sweep {
        Some(experiment::hhl_sweeps(a.dim, a.kappa, a.clock, a.seed)?)
    } else {
        None
    };
    if a.json {
        let mut v = serde_json::json!({
            "dim": a.dim, "kappa": r.kappa, "clock_qubits": r.clock_qubits, "total_qubits": r.total_qubits,
            "fidelity": r.fidelity, "success_probability": r.success_probability,
            "solution": r.solution, "classical": r.classical,
        });
        if let Some((c, k)) = &sweeps {
            v["by_clock_qubits"] = serde_json::to_value(c)?;
            v["by_kappa"] = serde_json::to_value(k)?;
        }
        super::print_json(&v);
    } else {
        println!(
            "HHL N={} κ={:.2} clock={} ({} qubits): fidelity {:.6}, success probability {:.3e}",
            a.dim, r.kappa, r.clock_qubits, r.total_qubits, r.fidelity, r.success_probability
        );
        if let Some((c, k)) = &sweeps {
            println!("{}", experiment::hhl_report(c, k).as_markdown());
        }
    }
    Ok(())
}

/// The tour's section: a small optimiser comparison on digits and the HHL sweeps.
pub fn tour(ctx: &Ctx, dir: &RunDir) -> anyhow::Result<Option<crate::tour::Section>> {
    let d = data::digits(ctx.offline)?;
    let (tr, te) = d.split(0.2, 0);
    let mut newton = TrainConfig::defaults(Optimizer::Newton);
    newton.steps = 40;
    newton.eval_every = 4;
    let cfg = CompareConfig {
        newton,
        first_order_steps: 400,
        gate_times: vec![1e-7, 1e-18],
    };
    let runs = experiment::compare(&cfg, &tr, &te, |_| {})?;
    let mut rep = experiment::comparison_report(&runs, dir.path(), "qnewton_")?;
    let (by_clock, by_kappa) = experiment::hhl_sweeps(8, 10.0, 9, 0)?;
    rep.include(&experiment::hhl_report(&by_clock, &by_kappa));
    rep.para(
        "Small scale: 40 Newton steps, 400 SGD/Adam steps on digits (64→16→16→10). Full run: \
         `tessera qnewton train --optimizer all --steps 150` (see crates/tessera-qnewton/README.md).",
    );
    dir.write_json("qnewton_runs.json", &runs)?;
    let json = serde_json::json!({
        "runs": runs.iter().map(|r| serde_json::json!({
            "label": r.label, "time_s": r.result.time_s, "final_test_acc": r.result.final_test_acc,
            "final_train_loss": r.result.final_train_loss,
            "blocks_quantum": r.result.blocks_quantum, "blocks_classical": r.result.blocks_classical,
        })).collect::<Vec<_>>(),
        "hhl_by_clock": by_clock, "hhl_by_kappa": by_kappa,
    });
    Ok(Some(crate::tour::Section {
        title: "Q-Newton: scheduled Newton training and HHL".into(),
        report: rep,
        json,
    }))
}
