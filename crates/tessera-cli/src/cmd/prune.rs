//! `tessera prune`, `tessera sparselora` and the sparsity part of `tessera info`: argument parsing and printing;
//! the work is in `tessera-prune`.
use super::{print_json, Ctx};
use clap::Args;
use std::path::{Path, PathBuf};
use tessera_core::assets;
use tessera_prune::{
    Allocation, CalibConfig, EvalConfig, Method, Pattern, Propagate, PruneConfig, SparseGptOptions,
    SparseLoraConfig, WindowMode,
};

/// `tessera prune` arguments.
#[derive(Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["sparsity", "pattern"])))]
pub struct PruneArgs {
    /// Model name (e.g. smollm2-135m) or path to a GGUF file / safetensors directory.
    pub model: String,
    /// magnitude, wanda or sparsegpt.
    #[arg(long)]
    pub method: Method,
    /// Unstructured sparsity ratio in [0, 1) (e.g. 0.5).
    #[arg(long)]
    pub sparsity: Option<f64>,
    /// N:M pattern: N of every M consecutive input weights pruned (2:4, 4:8).
    #[arg(long)]
    pub pattern: Option<Pattern>,
    /// Per-part rules refining the default, e.g. `attn=dense,mlp@0-9=0.3` (later rules win).
    #[arg(long, default_value = "")]
    pub allocation: String,
    /// Calibration text (default: WikiText-2 raw valid).
    #[arg(long)]
    pub calib: Option<PathBuf>,
    /// Calibration windows.
    #[arg(long, default_value_t = 128)]
    pub nsamples: usize,
    /// Tokens per calibration window.
    #[arg(long, default_value_t = 512)]
    pub seqlen: usize,
    /// random (seeded starts) or first (consecutive windows from the start).
    #[arg(long, default_value_t = WindowMode::Random)]
    pub calib_windows: WindowMode,
    /// Seed of the random windows.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Outputs feeding the next block: pruned (Wanda, SparseGPT) or dense (VLM-Compression, SparseLoRA mode).
    #[arg(long, default_value_t = Propagate::Pruned)]
    pub propagate: Propagate,
    /// Pruned checkpoint directory to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Also measure WikiText-2 test perplexity (windows of 512) over the first N tokens (0 = off).
    #[arg(long, default_value_t = 0)]
    pub eval_tokens: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

fn eval_cfg(tokens: usize) -> Option<EvalConfig> {
    (tokens > 0).then(|| EvalConfig {
        max_tokens: tokens,
        ..Default::default()
    })
}

/// Runs `tessera prune`.
pub fn prune(ctx: &Ctx, a: PruneArgs) -> anyhow::Result<()> {
    let pattern = match (a.pattern, a.sparsity) {
        (Some(p), _) => p,
        (None, Some(s)) => Pattern::unstructured(s)?,
        (None, None) => anyhow::bail!("give --sparsity R or --pattern N:M"),
    };
    let cfg = PruneConfig {
        model: assets::resolve_model(&a.model, ctx.offline)?,
        method: a.method,
        allocation: Allocation::with_rules(pattern, &a.allocation)?,
        calib: CalibConfig {
            text: a.calib,
            nsamples: a.nsamples,
            seqlen: a.seqlen,
            windows: a.calib_windows,
            seed: a.seed,
        },
        propagate: a.propagate,
        sparsegpt: SparseGptOptions::default(),
        out: a.out,
        eval: eval_cfg(a.eval_tokens),
    };
    let pb = tessera_core::progress::bar(0, "prune");
    let r = tessera_prune::prune::run(&cfg, &mut |d, n| {
        pb.set_length(n as u64);
        pb.set_position(d as u64)
    })?;
    pb.finish_and_clear();
    if a.json {
        print_json(&serde_json::to_value(&r)?);
    } else {
        println!(
            "{} {}: sparsity {:.4} over {} matrices in {:.1}s → {}",
            r.method,
            r.pattern,
            r.sparsity,
            r.matrices.len(),
            r.seconds,
            r.out.display()
        );
        if let Some(p) = &r.perplexity {
            println!("perplexity {:.4} over {} tokens", p.perplexity, p.tokens);
        }
    }
    Ok(())
}

/// `tessera sparselora` arguments.
#[derive(Args)]
pub struct SparseLoraArgs {
    /// Pruned checkpoint directory (written by `tessera prune`).
    pub pruned_dir: PathBuf,
    /// The dense source model (teacher): name or path.
    #[arg(long)]
    pub teacher: String,
    /// Optimizer steps.
    #[arg(long)]
    pub steps: u64,
    /// LoRA rank.
    #[arg(long, default_value_t = 8)]
    pub rank: usize,
    /// LoRA alpha (scale alpha / rank).
    #[arg(long, default_value_t = 16.0)]
    pub alpha: f64,
    /// Plain LoRA baseline (W⊙M + sBA: merged, it loses the sparsity) instead of SparseLoRA.
    #[arg(long)]
    pub plain_lora: bool,
    /// KL weight λ in (1−λ)·CE + λ·KL.
    #[arg(long, default_value_t = 0.1)]
    pub lambda: f64,
    /// Peak learning rate (cosine down to --lr-end).
    #[arg(long, default_value_t = 1e-4)]
    pub lr: f64,
    /// Final learning rate.
    #[arg(long, default_value_t = 1e-5)]
    pub lr_end: f64,
    /// Tokens per sequence.
    #[arg(long, default_value_t = 512)]
    pub seqlen: usize,
    /// Sequences per step.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Recovery text (default: WikiText-2 raw valid).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Seed of the adapters and the windows.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Checkpoint every N steps (0 = only at the end).
    #[arg(long, default_value_t = 25)]
    pub checkpoint_every: u64,
    /// Continue from the latest checkpoint (same settings only).
    #[arg(long)]
    pub resume: bool,
    /// Checkpoint directory (default `<out>.ckpt`).
    #[arg(long)]
    pub checkpoints: Option<PathBuf>,
    /// Merged checkpoint directory to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Also measure WikiText-2 test perplexity before and after over the first N tokens (0 = off).
    #[arg(long, default_value_t = 0)]
    pub eval_tokens: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Runs `tessera sparselora`.
pub fn sparselora(ctx: &Ctx, a: SparseLoraArgs) -> anyhow::Result<()> {
    let teacher = assets::resolve_model(&a.teacher, ctx.offline)?;
    let mut cfg = SparseLoraConfig::new(a.pruned_dir, teacher, a.steps, a.out);
    cfg.rank = a.rank;
    cfg.alpha = a.alpha;
    if a.plain_lora {
        cfg.form = tessera_lm::LoraForm::Lora;
    }
    cfg.lambda = a.lambda;
    cfg.lr = a.lr;
    cfg.lr_end = a.lr_end;
    cfg.seqlen = a.seqlen;
    cfg.batch = a.batch;
    cfg.data = a.data;
    cfg.seed = a.seed;
    cfg.checkpoint_every = a.checkpoint_every;
    cfg.resume = a.resume;
    cfg.checkpoints = a.checkpoints;
    cfg.eval = eval_cfg(a.eval_tokens);
    let pb = tessera_core::progress::bar(a.steps, cfg.form.to_string());
    let r = tessera_prune::sparselora::run(&cfg, &mut |s, _, loss| {
        pb.set_position(s);
        pb.set_message(format!("loss {loss:.3}"));
        true
    })?;
    pb.finish_and_clear();
    if a.json {
        print_json(&serde_json::to_value(&r)?);
    } else {
        println!(
            "{} r={} {} steps: final loss {:.4}, sparsity after merge {:.4} (mask kept: {}) → {}",
            r.form,
            r.rank,
            r.steps,
            r.loss_curve.last().map(|p| p.loss).unwrap_or(f64::NAN),
            r.sparsity_after_merge,
            r.mask_kept,
            r.out.display()
        );
    }
    Ok(())
}

/// The `sparsity` object `tessera info` adds for `path` (per-matrix and overall zeros, masks, N:M patterns).
pub fn info_sparsity(path: &Path, m: &tessera_lm::Llama) -> anyhow::Result<serde_json::Value> {
    Ok(serde_json::to_value(tessera_prune::info(m, path)?)?)
}
