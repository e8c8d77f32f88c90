//! `tessera vlm` glue: argument parsing and printing around `tessera-vision`.
use super::{emit, Ctx};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use tessera_prune::prune::Method;
use tessera_vision::prune::TowerSpec;

/// `tessera vlm` subcommands.
#[derive(Subcommand)]
pub enum VlmCmd {
    /// Train the VLM (stage 1: encoder + projector, language model frozen; --lora-rank for stage 2).
    Train(Box<super::vlm_train::TrainArgs>),
    /// easy-vqa exact-match accuracy and Fashion-MNIST zero-shot accuracy of a VLM directory.
    Eval(EvalArgs),
    /// Prune the vision and/or language tower (Wanda, SparseGPT, magnitude).
    Prune(PruneArgs),
    /// Restore a pruned VLM with SparseLoRA (or plain LoRA) on both towers, distilled from the dense VLM.
    Restore(Box<super::vlm_train::RestoreArgs>),
    /// The sparsity-distribution study: both / language-only / vision-only at several sparsities.
    Study(StudyArgs),
    /// Answer a question about an image file.
    Ask(AskArgs),
}

/// `tessera vlm eval` arguments.
#[derive(Args)]
pub struct EvalArgs {
    /// VLM directory.
    pub model: PathBuf,
    /// easy-vqa test questions (evenly spaced slice; 0 skips).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Fashion-MNIST t10k images (evenly spaced slice; 0 skips; default: --limit).
    #[arg(long)]
    pub fashion_limit: Option<usize>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `tessera vlm prune` arguments.
#[derive(Args)]
pub struct PruneArgs {
    /// Dense VLM directory.
    pub model: PathBuf,
    /// wanda, sparsegpt or magnitude.
    #[arg(long, default_value = "wanda")]
    pub method: Method,
    /// Vision sparsity: a ratio (0.5), N:M (2:4) or none.
    #[arg(long, default_value = "none")]
    pub vision: TowerSpec,
    /// Language sparsity: a ratio (0.5), N:M (2:4) or none.
    #[arg(long, default_value = "none")]
    pub language: TowerSpec,
    /// Output VLM directory.
    #[arg(long)]
    pub out: PathBuf,
    /// Calibration image–question pairs.
    #[arg(long, default_value_t = 128)]
    pub calib: usize,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `tessera vlm study` arguments.
#[derive(Args)]
pub struct StudyArgs {
    /// Dense VLM directory.
    pub model: PathBuf,
    /// Methods (comma list).
    #[arg(long, value_delimiter = ',', default_value = "wanda,sparsegpt")]
    pub methods: Vec<Method>,
    /// Sparsities (comma list of ratios / N:M).
    #[arg(long, value_delimiter = ',', default_value = "0.5,0.7,2:4")]
    pub sparsities: Vec<tessera_prune::Pattern>,
    /// easy-vqa test questions per configuration.
    #[arg(long, default_value_t = 200)]
    pub limit: usize,
    /// Calibration pairs.
    #[arg(long, default_value_t = 128)]
    pub calib: usize,
    /// Output directory (one JSON per configuration, study.json, study.svg); rerunning skips finished ones.
    #[arg(long)]
    pub out: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `tessera vlm ask` arguments.
#[derive(Args)]
pub struct AskArgs {
    /// VLM directory.
    pub model: PathBuf,
    /// Image file (PNG).
    #[arg(long)]
    pub image: PathBuf,
    /// The question.
    pub question: String,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs a `tessera vlm` subcommand.
pub fn run(ctx: &Ctx, c: VlmCmd) -> anyhow::Result<()> {
    match c {
        VlmCmd::Train(a) => super::vlm_train::train(ctx, *a),
        VlmCmd::Eval(a) => eval(ctx, a),
        VlmCmd::Prune(a) => prune(ctx, a),
        VlmCmd::Restore(a) => super::vlm_train::restore(ctx, *a),
        VlmCmd::Study(a) => study(ctx, a),
        VlmCmd::Ask(a) => ask(ctx, a),
    }
}

fn eval(ctx: &Ctx, a: EvalArgs) -> anyhow::Result<()> {
    let cfg = tessera_vision::eval::EvalConfig {
        model: a.model,
        vqa_limit: a.limit,
        fashion_limit: a.fashion_limit.or(a.limit),
        offline: ctx.offline,
    };
    let bar = tessera_core::progress::bar(0, "vlm eval");
    let r = tessera_vision::eval::run(&cfg, &mut |what, i, n| {
        bar.set_length(n as u64);
        bar.set_position(i as u64);
        bar.set_message(what.to_string());
    })?;
    bar.finish_and_clear();
    emit(a.json, &r)
}

fn prune(ctx: &Ctx, a: PruneArgs) -> anyhow::Result<()> {
    let cfg = tessera_vision::prune::VlmPruneConfig {
        model: a.model,
        method: a.method,
        vision: a.vision,
        language: a.language,
        out: a.out,
        calib: a.calib,
        seed: 0,
        offline: ctx.offline,
    };
    let r = tessera_vision::prune::run(&cfg)?;
    emit(a.json, &r)
}

fn study(ctx: &Ctx, a: StudyArgs) -> anyhow::Result<()> {
    let cfg = tessera_vision::study::StudyConfig {
        model: a.model,
        methods: a.methods,
        sparsities: a.sparsities,
        limit: a.limit,
        calib: a.calib,
        out: a.out,
        offline: ctx.offline,
    };
    let r = tessera_vision::study::run(&cfg, &mut |msg| eprintln!("tessera: {msg}"))?;
    emit(a.json, &r)
}

fn ask(ctx: &Ctx, a: AskArgs) -> anyhow::Result<()> {
    let r = tessera_vision::ask::ask(&a.model, &a.image, &a.question, ctx.offline)?;
    emit(a.json, &r)
}
