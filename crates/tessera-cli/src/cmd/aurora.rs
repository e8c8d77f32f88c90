//! `tessera aurora` glue: argument parsing and printing around `tessera-aurora` (CAP, CAT, evaluation).
use super::{emit, Ctx};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use tessera_aurora::cap::CapConfig;
use tessera_aurora::cat::{self, CatConfig};
use tessera_aurora::eval::EvalConfig;
use tessera_aurora::train::TrainSpec;
use tessera_aurora::Weights;

/// `tessera aurora` subcommands.
#[derive(Subcommand)]
pub enum AuroraCmd {
    /// Stage 1, continual pretraining on a weighted mixture of language streams.
    Cap(Box<CapArgs>),
    /// Stage 2, alignment tuning on safety, instruction and replay data (assistant-only loss).
    Cat(Box<CatArgs>),
    /// Perplexity per language, refusal per concern area and over-refusal of a model.
    Eval(EvalArgs),
    /// SVG plots of finished runs: loss curves, perplexity per language and refusal rates across stages.
    Plot(PlotArgs),
}

/// `tessera aurora plot` arguments.
#[derive(Args)]
pub struct PlotArgs {
    /// Evaluation JSON files as STAGE=FILE, in stage order (e.g. base=a.json cap=b.json cat=c.json).
    #[arg(long = "eval")]
    pub evals: Vec<String>,
    /// Training result.json files as LABEL=FILE (CAP or CAT).
    #[arg(long = "run")]
    pub runs: Vec<String>,
    /// Folder for loss.svg, perplexity.svg, refusal.svg.
    #[arg(long)]
    pub out: PathBuf,
}

/// Optimisation flags shared by `cap` and `cat`.
#[derive(Args)]
pub struct TrainArgs {
    /// Optimizer steps in total.
    #[arg(long)]
    pub steps: u64,
    /// Sequences per micro-batch.
    #[arg(long, default_value_t = 4)]
    pub batch: usize,
    /// Micro-batches accumulated per optimizer step.
    #[arg(long, default_value_t = 1)]
    pub grad_accum: usize,
    /// Peak learning rate (AdamW).
    #[arg(long, default_value_t = 1e-4)]
    pub lr: f64,
    /// Linear warm-up steps, then cosine decay.
    #[arg(long, default_value_t = 10)]
    pub warmup: u64,
    /// Final learning rate as a fraction of the peak.
    #[arg(long, default_value_t = 0.1)]
    pub min_lr_ratio: f64,
    /// AdamW weight decay.
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Global gradient-norm clip.
    #[arg(long, default_value_t = 1.0)]
    pub clip_norm: f64,
    /// Train LoRA adapters of this rank on every projection instead of all parameters.
    #[arg(long)]
    pub lora: Option<usize>,
    /// Seed of sampling and adapter initialisation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Continue the run saved in --out (same settings).
    #[arg(long)]
    pub resume: bool,
    /// Checkpoint every this many steps (0: at the end only).
    #[arg(long, default_value_t = 25)]
    pub checkpoint_every: u64,
    /// Stop after this many steps in this invocation (checkpointed; --resume continues).
    #[arg(long)]
    pub pause_after: Option<u64>,
    /// Output directory (checkpoints, then the model files, result.json).
    #[arg(long)]
    pub out: PathBuf,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

impl TrainArgs {
    fn spec(&self) -> TrainSpec {
        TrainSpec {
            steps: self.steps,
            batch: self.batch,
            grad_accum: self.grad_accum,
            lr: self.lr,
            warmup_steps: self.warmup,
            min_lr_ratio: self.min_lr_ratio,
            weight_decay: self.weight_decay,
            clip_norm: self.clip_norm,
            lora: self.lora,
            seed: self.seed,
        }
    }
}

/// `tessera aurora cap` arguments.
#[derive(Args)]
pub struct CapArgs {
    /// Base model name or path.
    pub model: String,
    /// Stream weights, e.g. en=0.3,fi=0.15,hi=0.15,ja=0.15,vi=0.15,code=0.1.
    #[arg(long)]
    pub weights: Option<Weights>,
    /// A user's corpus as a stream, LANG=FILE (repeatable; replaces a built-in stream of that name).
    #[arg(long = "stream", value_parser = tessera_aurora::mixture::parse_stream_arg)]
    pub streams: Vec<(String, PathBuf)>,
    /// Window length in tokens.
    #[arg(long, default_value_t = 128)]
    pub window: usize,
    /// Seed of the train / held-out split of every stream.
    #[arg(long, default_value_t = 0)]
    pub split_seed: u64,
    /// Bytes of this workspace's Rust sources in the `code` stream.
    #[arg(long, default_value_t = tessera_aurora::mixture::DEFAULT_CODE_BYTES)]
    pub code_bytes: usize,
    #[command(flatten)]
    pub train: TrainArgs,
}

/// `tessera aurora cat` arguments.
#[derive(Args)]
pub struct CatArgs {
    /// A CAP output directory (or any model).
    pub model: String,
    /// Mix of safety, benign and text-replay examples.
    #[arg(long)]
    pub mix: Option<Weights>,
    /// Longest chat example in tokens.
    #[arg(long, default_value_t = 160)]
    pub max_len: usize,
    #[command(flatten)]
    pub train: TrainArgs,
}

/// `tessera aurora eval` arguments.
#[derive(Args)]
pub struct EvalArgs {
    /// Model name or path (a CAP / CAT output directory too).
    pub model: String,
    /// Also report the perplexity of this text file (`perplexity`).
    #[arg(long)]
    pub text: Option<PathBuf>,
    /// A user's stream LANG=FILE whose held-out half is scored (repeatable).
    #[arg(long = "stream", value_parser = tessera_aurora::mixture::parse_stream_arg)]
    pub streams: Vec<(String, PathBuf)>,
    /// Split seed (default: the model directory's, else 0).
    #[arg(long)]
    pub split_seed: Option<u64>,
    /// Perplexity window and stride.
    #[arg(long, default_value_t = 256)]
    pub window: usize,
    /// Tokens scored per stream (0: all).
    #[arg(long, default_value_t = 2048)]
    pub ppl_tokens: usize,
    /// Held-out harmful prompts per concern area (0: skip the safety part).
    #[arg(long, default_value_t = 8)]
    pub per_area: usize,
    /// Held-out benign prompts.
    #[arg(long, default_value_t = 24)]
    pub benign: usize,
    /// New tokens per reply (greedy).
    #[arg(long, default_value_t = 40)]
    pub max_new_tokens: usize,
    /// Judge refusals by phrases only (no MiniLM).
    #[arg(long)]
    pub phrases_only: bool,
    /// Keep the text of non-refused replies to harmful prompts (default: redacted).
    #[arg(long)]
    pub keep_harmful_outputs: bool,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Runs `tessera aurora`.
pub fn run(ctx: &Ctx, c: AuroraCmd) -> anyhow::Result<()> {
    match c {
        AuroraCmd::Cap(a) => {
            let cfg = CapConfig {
                model: a.model,
                train: a.train.spec(),
                weights: a.weights.unwrap_or_else(Weights::default_cap),
                window: a.window,
                streams: a.streams,
                split_seed: a.split_seed,
                code_bytes: a.code_bytes,
                out: a.train.out.clone(),
                resume: a.train.resume,
                checkpoint_every: a.train.checkpoint_every,
                pause_after: a.train.pause_after,
                offline: ctx.offline,
            };
            emit(a.train.json, &tessera_aurora::cap::run(&cfg)?)
        }
        AuroraCmd::Cat(a) => {
            let cfg = CatConfig {
                model: a.model,
                train: a.train.spec(),
                mix: a.mix.unwrap_or_else(cat::default_mix),
                max_len: a.max_len,
                split_seed: 0,
                out: a.train.out.clone(),
                resume: a.train.resume,
                checkpoint_every: a.train.checkpoint_every,
                pause_after: a.train.pause_after,
                offline: ctx.offline,
            };
            emit(a.train.json, &cat::run(&cfg)?)
        }
        AuroraCmd::Eval(a) => eval(ctx, a),
        AuroraCmd::Plot(a) => plot(a),
    }
}

fn eval(ctx: &Ctx, a: EvalArgs) -> anyhow::Result<()> {
    let cfg = EvalConfig {
        model: a.model,
        text: a.text,
        streams: a.streams,
        split_seed: a.split_seed,
        window: a.window,
        ppl_tokens: a.ppl_tokens,
        per_area: a.per_area,
        benign: a.benign,
        max_new_tokens: a.max_new_tokens,
        phrases_only: a.phrases_only,
        keep_harmful_outputs: a.keep_harmful_outputs,
        offline: ctx.offline,
    };
    emit(a.json, &tessera_aurora::eval::run(&cfg)?)
}

fn plot(a: PlotArgs) -> anyhow::Result<()> {
    tessera_aurora::plot::plot_files(&a.runs, &a.evals, &a.out)?;
    println!("{}", a.out.display());
    Ok(())
}
