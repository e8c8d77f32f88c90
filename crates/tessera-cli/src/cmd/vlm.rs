//! `tessera vlm` glue: argument parsing and printing around `tessera-vision`.
use super::{print_json, Ctx};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use tessera_lm::LoraForm;
use tessera_prune::prune::Method;
use tessera_vision::prune::TowerSpec;

/// `tessera vlm` subcommands.
#[derive(Subcommand)]
pub enum VlmCmd {
    /// Train the VLM (stage 1: encoder + projector, language model frozen; --lora-rank for stage 2).
    Train(Box<TrainArgs>),
    /// easy-vqa exact-match accuracy and Fashion-MNIST zero-shot accuracy of a VLM directory.
    Eval(EvalArgs),
    /// Prune the vision and/or language tower (Wanda, SparseGPT, magnitude).
    Prune(PruneArgs),
    /// Restore a pruned VLM with SparseLoRA (or plain LoRA) on both towers, distilled from the dense VLM.
    Restore(Box<RestoreArgs>),
    /// The sparsity-distribution study: both / language-only / vision-only at several sparsities.
    Study(StudyArgs),
    /// Answer a question about an image file.
    Ask(AskArgs),
}

/// `tessera vlm train` arguments.
#[derive(Args)]
pub struct TrainArgs {
    /// Total optimizer steps (a resumed run continues up to this many).
    #[arg(long, default_value_t = 600)]
    pub steps: u64,
    /// Output directory (model/, checkpoints/, train.json, loss.svg).
    #[arg(long)]
    pub out: PathBuf,
    /// Continue the run in this directory (its settings must match).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Start from this VLM directory (e.g. a stage-1 model for stage 2).
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Examples per step.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Warm-up steps.
    #[arg(long, default_value_t = 20)]
    pub warmup: u64,
    /// Share of Fashion-MNIST caption examples per batch.
    #[arg(long, default_value_t = 0.25)]
    pub caption_fraction: f64,
    /// LoRA rank on the language model's q, v (0 = stage 1).
    #[arg(long, default_value_t = 0)]
    pub lora_rank: usize,
    /// Encoder width.
    #[arg(long, default_value_t = 192)]
    pub width: usize,
    /// Encoder blocks.
    #[arg(long, default_value_t = 4)]
    pub layers: usize,
    /// Patch side in pixels.
    #[arg(long, default_value_t = 8)]
    pub patch: usize,
    /// Pooling of pool × pool patches per image token.
    #[arg(long, default_value_t = 2)]
    pub pool: usize,
    /// Steps between checkpoints.
    #[arg(long, default_value_t = 25)]
    pub checkpoint_every: u64,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
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

/// `tessera vlm restore` arguments.
#[derive(Args)]
pub struct RestoreArgs {
    /// Pruned VLM directory (student).
    pub pruned: PathBuf,
    /// Dense VLM directory (teacher).
    #[arg(long)]
    pub dense: PathBuf,
    /// sparselora or lora.
    #[arg(long, default_value = "sparselora")]
    pub form: LoraForm,
    /// Steps.
    #[arg(long, default_value_t = 50)]
    pub steps: u64,
    /// Examples per step.
    #[arg(long, default_value_t = 4)]
    pub batch: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 1e-4)]
    pub lr: f64,
    /// Distillation weight λ.
    #[arg(long, default_value_t = 0.1)]
    pub lambda: f64,
    /// easy-vqa test questions scored before and after.
    #[arg(long, default_value_t = 200)]
    pub eval_questions: usize,
    /// Output directory (merged VLM).
    #[arg(long)]
    pub out: PathBuf,
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
    #[arg(long, default_value = "wanda,sparsegpt")]
    pub methods: String,
    /// Sparsities (comma list of ratios / N:M).
    #[arg(long, default_value = "0.5,0.7,2:4")]
    pub sparsities: String,
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
        VlmCmd::Train(a) => train(ctx, *a),
        VlmCmd::Eval(a) => eval(ctx, a),
        VlmCmd::Prune(a) => prune(ctx, a),
        VlmCmd::Restore(a) => restore(ctx, *a),
        VlmCmd::Study(a) => study(ctx, a),
        VlmCmd::Ask(a) => ask(ctx, a),
    }
}

fn emit<T: serde::Serialize>(json: bool, v: &T, line: String) -> anyhow::Result<()> {
    if json {
        print_json(&serde_json::to_value(v)?);
    } else {
        println!("{line}");
    }
    Ok(())
}

fn train(ctx: &Ctx, a: TrainArgs) -> anyhow::Result<()> {
    let mut cfg = tessera_vision::train::TrainConfig::new(a.steps, a.out);
    let s = &mut cfg.settings;
    s.vision.width = a.width;
    s.vision.layers = a.layers;
    s.vision.patch = a.patch;
    s.vision.pool = a.pool;
    s.vision.heads = (a.width / 64).max(1);
    (s.init, s.batch, s.lr, s.warmup) = (a.init, a.batch, a.lr, a.warmup);
    (s.caption_fraction, s.lora_rank, s.seed) = (a.caption_fraction, a.lora_rank, a.seed);
    cfg.resume = a.resume;
    cfg.checkpoint_every = a.checkpoint_every;
    cfg.offline = ctx.offline;
    let bar = tessera_core::progress::bar(cfg.steps, "vlm train");
    let r = tessera_vision::train::run(&cfg, &mut |i, _, loss| {
        bar.set_position(i);
        bar.set_message(format!("loss {loss:.3}"));
    })?;
    bar.finish_and_clear();
    let line = format!(
        "trained {} steps (from {}), loss {:.3} -> {:.3}, {:.2} images/s; model in {}",
        r.steps,
        r.resumed_from,
        r.first_loss,
        r.last_loss,
        r.images_per_s,
        r.model.display()
    );
    emit(a.json, &r, line)
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
    let pct = |x: Option<f64>| x.map_or("-".into(), |v| format!("{:.1}%", 100.0 * v));
    let line = format!(
        "easy-vqa {} ({} questions), Fashion-MNIST {} ({} images)",
        pct(r.easyvqa_accuracy),
        r.easyvqa_questions,
        pct(r.fashion_mnist_accuracy),
        r.fashion_mnist_images
    );
    emit(a.json, &r, line)
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
    let line = format!(
        "{}: vision {} ({:.1}% zeros), language {} ({:.1}% zeros) -> {}",
        r.method,
        r.vision_spec,
        100.0 * r.vision.sparsity,
        r.language_spec,
        100.0 * r.language.sparsity,
        r.out.display()
    );
    emit(a.json, &r, line)
}

fn restore(ctx: &Ctx, a: RestoreArgs) -> anyhow::Result<()> {
    let cfg = tessera_vision::restore::RestoreConfig {
        pruned: a.pruned,
        dense: a.dense,
        form: a.form,
        steps: a.steps,
        batch: a.batch,
        lr: a.lr,
        lambda: a.lambda,
        seed: 0,
        out: a.out,
        eval_questions: a.eval_questions,
        offline: ctx.offline,
    };
    let bar = tessera_core::progress::bar(cfg.steps, "vlm restore");
    let r = tessera_vision::restore::run(&cfg, &mut |i, _, l| {
        bar.set_position(i);
        bar.set_message(format!("loss {l:.3}"));
    })?;
    bar.finish_and_clear();
    let line = format!(
        "{}: accuracy {:?} -> {:?}, language sparsity {:.3} -> {:.3}, mask kept: {}",
        r.form,
        r.accuracy_before,
        r.accuracy_after,
        r.language_sparsity.0,
        r.language_sparsity.1,
        r.mask_kept
    );
    emit(a.json, &r, line)
}

fn study(ctx: &Ctx, a: StudyArgs) -> anyhow::Result<()> {
    let methods = a
        .methods
        .split(',')
        .map(|m| m.parse::<Method>())
        .collect::<Result<Vec<_>, _>>()?;
    let sparsities = a
        .sparsities
        .split(',')
        .map(|s| s.parse::<tessera_prune::Pattern>())
        .collect::<Result<Vec<_>, _>>()?;
    let cfg = tessera_vision::study::StudyConfig {
        model: a.model,
        methods,
        sparsities,
        limit: a.limit,
        calib: a.calib,
        out: a.out,
        offline: ctx.offline,
    };
    let r = tessera_vision::study::run(&cfg, &mut |msg| eprintln!("tessera: {msg}"))?;
    let line = format!(
        "{} configurations; table and plot in {}",
        r.rows.len(),
        cfg.out.display()
    );
    emit(a.json, &r, line)
}

fn ask(ctx: &Ctx, a: AskArgs) -> anyhow::Result<()> {
    let r = tessera_vision::ask::ask(&a.model, &a.image, &a.question, ctx.offline)?;
    let line = format!(
        "{}  (best of the 13 easy-vqa answers: {}, p = {:.2})",
        r.answer, r.best_choice, r.best_choice_prob
    );
    emit(a.json, &r, line)
}
