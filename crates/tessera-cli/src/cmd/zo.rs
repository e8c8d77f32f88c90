//! `tessera zo` glue: argument parsing and printing around `tessera-zo` (`zo memory` runs each case in a fresh
//! worker process of this binary, so each peak is its own).
use super::lm::DEFAULT_MODEL;
use super::{emit, print_json, Ctx};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use tessera_zo::{MemoryConfig, MemoryEntry, Optimizer, Scheme, SparsityMode, Task, ZoConfig};

/// `tessera zo` subcommands.
#[derive(Subcommand)]
pub enum ZoCmd {
    /// Fine-tune with a zeroth-order (or first-order baseline) optimizer on SST-2 or COPA.
    Train(Box<TrainArgs>),
    /// Peak heap of one training step per optimizer next to inference on the same batch.
    Memory(MemoryArgs),
    /// Accuracy-vs-steps SVG of finished runs (their result.json files).
    Plot(PlotArgs),
}

/// `tessera zo plot` arguments.
#[derive(Args)]
pub struct PlotArgs {
    /// `result.json` files (or run directories holding one).
    #[arg(required = true)]
    pub results: Vec<PathBuf>,
    /// SVG file to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Plot title.
    #[arg(long, default_value = "SST-2 accuracy vs steps")]
    pub title: String,
}

/// `tessera zo train` arguments.
#[derive(Args)]
pub struct TrainArgs {
    /// Model name or path.
    #[arg(default_value = DEFAULT_MODEL)]
    pub model: String,
    /// sst2 or copa.
    #[arg(long, default_value = "sst2")]
    pub task: Task,
    /// zo-sgd, zo-sgd-sign, zo-sgd-mmt, zo-sgd-cons, zo-adam, forward-grad, fo-sgd or fo-adam.
    #[arg(long, default_value = "zo-sgd")]
    pub optimizer: Optimizer,
    /// full, lora, prefix or prompt.
    #[arg(long, default_value = "full")]
    pub scheme: Scheme,
    /// Optimizer steps (a resumed run continues up to this many).
    #[arg(long, default_value_t = 100)]
    pub steps: u64,
    /// Run seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Constant learning rate (default per optimizer and scheme, from the reference grid).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Perturbation scale μ (default per scheme).
    #[arg(long)]
    pub mu: Option<f64>,
    /// Query budget: estimates averaged per step.
    #[arg(long, default_value_t = 1)]
    pub q: usize,
    /// Block-wise ZO: perturb and update one block at a time.
    #[arg(long)]
    pub block_wise: bool,
    /// Hybrid ZO/FO: these layers first-order (e.g. `0-3` or `28,29`), the rest zeroth-order.
    #[arg(long)]
    pub hybrid_fo: Option<String>,
    /// Learning rate of the first-order layers with --hybrid-fo (default 1e-4).
    #[arg(long)]
    pub fo_lr: Option<f64>,
    /// Gradient sparsity: share of coordinates left unperturbed, in [0, 1).
    #[arg(long, default_value_t = 0.0)]
    pub sparsity: f64,
    /// Which coordinates --sparsity keeps: random (new each query) or magnitude (largest |w| per tensor, fixed).
    #[arg(long, default_value = "random")]
    pub sparsity_mode: SparsityMode,
    /// Weight decay (not on norms, biases, prefixes, prompts).
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Examples per step.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Training examples drawn by seed (default 1000 SST-2, 400 COPA).
    #[arg(long)]
    pub train_examples: Option<usize>,
    /// Evaluation examples (default 872 SST-2 dev, 100 COPA validation).
    #[arg(long)]
    pub eval_examples: Option<usize>,
    /// Evaluate every this many steps (0: before and after only).
    #[arg(long, default_value_t = 0)]
    pub eval_every: u64,
    /// Checkpoint every this many steps (0: at the end only).
    #[arg(long, default_value_t = 0)]
    pub checkpoint_every: u64,
    /// Folder holding the task files (default: TESSERA_DATA or ../shared/data).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Continue the run saved in this directory (same settings).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Output directory (settings, checkpoints, result.json).
    #[arg(long)]
    pub out: PathBuf,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `tessera zo memory` arguments.
#[derive(Args)]
pub struct MemoryArgs {
    /// Model name or path.
    #[arg(default_value = DEFAULT_MODEL)]
    pub model: String,
    /// full, lora, prefix or prompt.
    #[arg(long, default_value = "full")]
    pub scheme: Scheme,
    /// Examples in the batch.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Optimizers to measure, comma-separated (default: all).
    #[arg(long, value_delimiter = ',')]
    pub optimizers: Vec<Optimizer>,
    /// Folder holding the SST-2 files (default: TESSERA_DATA or ../shared/data).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Internal: measure one case in this process and print its JSON.
    #[arg(long, hide = true)]
    pub worker: Option<String>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Runs `tessera zo`.
pub fn run(ctx: &Ctx, c: ZoCmd) -> anyhow::Result<()> {
    match c {
        ZoCmd::Train(a) => train(ctx, *a),
        ZoCmd::Memory(a) => memory(ctx, a),
        ZoCmd::Plot(a) => plot(a),
    }
}

fn plot(a: PlotArgs) -> anyhow::Result<()> {
    tessera_zo::plot::plot_files(&a.results, &a.out, &a.title)?;
    println!("{}", a.out.display());
    Ok(())
}

fn train(ctx: &Ctx, a: TrainArgs) -> anyhow::Result<()> {
    let cfg = ZoConfig {
        model: a.model,
        task: a.task,
        optimizer: a.optimizer,
        scheme: a.scheme,
        steps: a.steps,
        seed: a.seed,
        lr: a.lr,
        mu: a.mu,
        q: a.q,
        block_wise: a.block_wise,
        hybrid_fo: a.hybrid_fo,
        fo_lr: a.fo_lr,
        sparsity: a.sparsity,
        sparsity_mode: a.sparsity_mode,
        weight_decay: a.weight_decay,
        batch: a.batch,
        train_examples: a.train_examples,
        eval_examples: a.eval_examples,
        eval_every: a.eval_every,
        checkpoint_every: a.checkpoint_every,
        data_dir: a.data,
        out: a.out,
        resume: a.resume,
        offline: ctx.offline,
    };
    emit(a.json, &tessera_zo::run(&cfg)?)
}

/// Runs one memory case in a fresh process of this binary.
pub fn spawn_case(ctx: &Ctx, cfg: &MemoryConfig, case: &str) -> tessera_zo::Result<MemoryEntry> {
    let mut cmd = std::process::Command::new(tessera_core::worker::current_exe()?);
    cmd.args(["zo", "memory", "--json", "--worker", case])
        .args(["--scheme", &cfg.scheme.to_string()])
        .args(["--batch", &cfg.batch.to_string()])
        .args(ctx.offline.then_some("--offline"))
        .arg(&cfg.model);
    if let Some(d) = &cfg.data_dir {
        cmd.arg("--data").arg(d);
    }
    Ok(tessera_core::worker::run_json(&mut cmd, case)?)
}

fn memory(ctx: &Ctx, a: MemoryArgs) -> anyhow::Result<()> {
    let cfg = MemoryConfig {
        model: a.model,
        scheme: a.scheme,
        batch: a.batch,
        optimizers: a.optimizers,
        data_dir: a.data,
        offline: ctx.offline,
    };
    if let Some(case) = &a.worker {
        print_json(&serde_json::to_value(tessera_zo::memory::measure_case(
            &cfg, case,
        )?)?);
        return Ok(());
    }
    let rep = tessera_zo::memory::memory(&cfg, &mut |case| spawn_case(ctx, &cfg, case))?;
    emit(a.json, &rep)
}

/// The tour's zeroth-order section.
pub fn tour(
    ctx: &Ctx,
    dir: &tessera_core::record::RunDir,
) -> anyhow::Result<Option<super::super::tour::Section>> {
    let cfg = MemoryConfig {
        model: DEFAULT_MODEL.into(),
        scheme: Scheme::Full,
        batch: 16,
        optimizers: vec![],
        data_dir: None,
        offline: ctx.offline,
    };
    Ok(Some(tessera_zo::tour::tour(
        dir,
        ctx.offline,
        &mut |case| spawn_case(ctx, &cfg, case),
    )?))
}
