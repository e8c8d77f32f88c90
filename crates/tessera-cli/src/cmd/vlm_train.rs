//! `tessera vlm train|restore` glue: the training commands of `tessera-vision` (argument parsing and printing).
use super::{emit, Ctx};
use clap::Args;
use std::path::PathBuf;
use tessera_lm::LoraForm;

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

pub fn train(ctx: &Ctx, a: TrainArgs) -> anyhow::Result<()> {
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
    emit(a.json, &r)
}

pub fn restore(ctx: &Ctx, a: RestoreArgs) -> anyhow::Result<()> {
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
    emit(a.json, &r)
}
