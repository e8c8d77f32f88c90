//! `tessera qnewton` glue: argument parsing only; the work is in `tessera-qnewton`.
use super::Ctx;
use clap::{Args, Subcommand};
use tessera_qnewton::experiment::DEFAULT_TARGET_FRACTION;
use tessera_qnewton::hessian::Curvature;
use tessera_qnewton::newton::{RuleKind, StepRule, DEFAULT_REG_EPS, DEFAULT_SPARSITY};
use tessera_qnewton::run::{
    self as qrun, DatasetKind, Event, HhlRunConfig, OptimizerChoice, RunConfig,
};
use tessera_qnewton::scheduler::{
    DEFAULT_KAPPA_LIMIT, DEFAULT_LANCZOS_STEPS, DEFAULT_QLSA_EPS, TODAY_GATE_TIME,
};
use tessera_qnewton::sparsify::Symmetrize;
use tessera_qnewton::train::{Optimizer, TrainConfig};

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
    #[arg(long, default_value_t = DatasetKind::Digits)]
    pub dataset: DatasetKind,
    /// newton, qnewton, sgd, adam, or all (every optimiser, Q-Newton at each --gate-times value).
    #[arg(long, default_value_t = OptimizerChoice::One(Optimizer::Qnewton))]
    pub optimizer: OptimizerChoice,
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
    #[arg(long, default_value_t = RuleKind::Sgd)]
    pub newton_rule: RuleKind,
    /// exact or gauss-newton curvature blocks.
    #[arg(long, default_value_t = Curvature::GaussNewton)]
    pub curvature: Curvature,
    /// ε in λ = ε·max|H_ij|.
    #[arg(long, default_value_t = DEFAULT_REG_EPS)]
    pub reg_eps: f64,
    /// Fraction r of entries kept per row when pruning (Q-Newton).
    #[arg(long, default_value_t = DEFAULT_SPARSITY)]
    pub sparsity: f64,
    /// Symmetrise pruning masks by intersection (d ≤ r·N + 1) or union.
    #[arg(long, default_value_t = Symmetrize::Intersection)]
    pub symmetrize: Symmetrize,
    /// Plain pruning (no diagonal compensation; may break positive definiteness).
    #[arg(long)]
    pub no_compensate: bool,
    /// Seconds per QLSA query (1e-7 today, 1e-18 in the paper's future scenario).
    #[arg(long, default_value_t = TODAY_GATE_TIME)]
    pub gate_time: f64,
    /// Gate times for `--optimizer all`.
    #[arg(long, value_delimiter = ',', default_value = "1e-7,1e-18")]
    pub gate_times: Vec<f64>,
    /// Blocks with κ above this always go classical.
    #[arg(long, default_value_t = DEFAULT_KAPPA_LIMIT)]
    pub kappa_limit: f64,
    /// QLSA target accuracy ε.
    #[arg(long, default_value_t = DEFAULT_QLSA_EPS)]
    pub qlsa_eps: f64,
    /// Lanczos steps for κ.
    #[arg(long, default_value_t = DEFAULT_LANCZOS_STEPS)]
    pub lanczos_steps: usize,
    /// Fashion-MNIST: images used (train split) and average-pool size.
    #[arg(long, default_value_t = 6000)]
    pub fashion_limit: usize,
    /// Fashion-MNIST pool size (4 → 7×7 inputs).
    #[arg(long, default_value_t = 4)]
    pub pool: usize,
    /// Time to accuracy (`--optimizer all`): to this fraction of Newton's final test accuracy.
    #[arg(long, default_value_t = DEFAULT_TARGET_FRACTION)]
    pub target_fraction: f64,
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
        QnewtonCmd::Hhl(a) => {
            let r = qrun::hhl_run(&HhlRunConfig {
                dim: a.dim,
                kappa: a.kappa,
                clock: a.clock,
                seed: a.seed,
                sweep: a.sweep,
            })?;
            if a.json {
                super::print_json(&serde_json::to_value(&r)?);
            } else {
                println!("{}", r.text());
            }
            Ok(())
        }
    }
}

/// The training settings named by the arguments (for `all`: the Newton runs' template).
fn train_config(a: &TrainArgs) -> TrainConfig {
    let opt = match a.optimizer {
        OptimizerChoice::One(o) => o,
        OptimizerChoice::All => Optimizer::Newton,
    };
    let mut c = TrainConfig::defaults(opt);
    c.hidden = a.hidden.clone();
    c.batch = a.batch;
    c.steps = a.steps;
    c.eval_every = (a.steps / 30).max(1);
    c.seed = a.seed;
    c.curvature = a.curvature;
    c.newton.reg_eps = a.reg_eps;
    c.newton.sparsity_ratio = a.sparsity;
    c.newton.compensate = !a.no_compensate;
    c.newton.symmetrize = a.symmetrize;
    c.scheduler.gate_time = a.gate_time;
    c.scheduler.kappa_limit = a.kappa_limit;
    c.scheduler.qlsa_eps = a.qlsa_eps;
    c.scheduler.lanczos_steps = a.lanczos_steps;
    if opt.is_newton() {
        c.rule = StepRule::new(a.newton_rule, c.rule.lr());
    }
    if let Some(lr) = a.lr {
        c.rule = c.rule.with_lr(lr);
    }
    c
}

fn train_cmd(ctx: &Ctx, a: TrainArgs) -> anyhow::Result<()> {
    let cfg = RunConfig {
        dataset: a.dataset,
        fashion_limit: a.fashion_limit,
        pool: a.pool,
        offline: ctx.offline,
        optimizer: a.optimizer,
        train: train_config(&a),
        first_order_steps: a.first_order_steps,
        gate_times: a.gate_times.clone(),
        target_fraction: a.target_fraction,
        out: a.out.clone(),
    };
    let quiet = a.json;
    let out = qrun::run(&cfg, |e| match e {
        Event::Training(l) => eprintln!("tessera qnewton: training {l} ..."),
        Event::Report(p) => eprintln!("tessera qnewton: report in {}", p.display()),
        Event::Eval(p) if !quiet => eprintln!(
            "step {:>5}  time {:>8.3}s  train loss {:.4}  test loss {:.4}  test acc {:.3}",
            p.step, p.time_s, p.train_loss, p.test_loss, p.test_acc
        ),
        Event::Eval(_) => {}
    })?;
    if a.json {
        super::print_json(&serde_json::to_value(&out)?);
    } else {
        println!("{}", out.text());
    }
    Ok(())
}
