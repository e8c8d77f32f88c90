//! `tessera skip eval` and `tessera bench skip` (FFN-SkipLLM): argument parsing and printing; the work is in
//! `tessera-skip` (`eval::run`, `bench::run`). The `--ffn-skip` flags of `generate` / `serve` build their rule
//! with [`SkipRuleArgs::rule`].
use super::lm::{load_model, DEFAULT_MODEL};
use super::{print_json, Ctx};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use tessera_skip::bench::{self, BenchSkipConfig};
use tessera_skip::eval::{self, SkipEvalConfig};
use tessera_skip::{Budget, FfnSkipConfig, SkipMode};

/// `tessera skip` subcommands.
#[derive(Subcommand)]
pub enum SkipCmd {
    /// Full model vs FFN skipping on factoid questions: accuracy, exact match, ROUGE-L, continuation
    /// perplexity, skipped fraction, decode speedup.
    Eval(SkipEvalArgs),
}

/// The rule's settings shared by every skipping command.
#[derive(Args, Clone)]
pub struct SkipRuleArgs {
    /// Leading layers that always run their FFN (default: 5 of 30, scaled with depth).
    #[arg(long)]
    pub cold_first: Option<usize>,
    /// Trailing layers that always run their FFN (default: 5 of 30, scaled with depth).
    #[arg(long)]
    pub cold_last: Option<usize>,
    /// After the warm-up every N-th token runs in full (0 = never).
    #[arg(long, default_value_t = tessera_skip::ffn_skip::DEFAULT_FULL_EVERY)]
    pub full_every: usize,
    /// Warm-up tokens that run in full (default: max(max_new_tokens / 64, 1)).
    #[arg(long)]
    pub warmup: Option<usize>,
    /// Seed of the random-span baseline.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl SkipRuleArgs {
    /// The rule with these settings.
    pub fn rule(&self, mode: SkipMode, threshold: f64, budget: Budget) -> FfnSkipConfig {
        FfnSkipConfig {
            mode,
            threshold,
            budget,
            cold_first: self.cold_first,
            cold_last: self.cold_last,
            full_every: self.full_every,
            warmup: self.warmup,
            seed: self.seed,
        }
    }
}

fn budget(s: &str) -> Result<Budget, String> {
    s.parse()
        .map_err(|e: tessera_skip::SkipError| e.to_string())
}

fn threshold(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(t) if !t.is_nan() => Ok(t),
        _ => Err(format!(
            "threshold `{s}` is not a number (use inf to never skip)"
        )),
    }
}

/// `tessera skip eval` arguments.
#[derive(Args)]
pub struct SkipEvalArgs {
    /// Model name or path.
    #[arg(default_value = DEFAULT_MODEL)]
    pub model: String,
    /// Cosine thresholds (comma-separated: a sweep).
    #[arg(long, value_delimiter = ',', value_parser = threshold, default_value = "0.95", allow_negative_numbers = true)]
    pub threshold: Vec<f64>,
    /// Per-token budgets: layers (9), a share of decode FFN blocks (25%) or `all`; comma-separated. The first
    /// threshold and budget are the headline.
    #[arg(long, value_delimiter = ',', value_parser = budget, default_value = "25%")]
    pub budget: Vec<Budget>,
    /// Also evaluate the random contiguous-span baseline at each budget.
    #[arg(long)]
    pub random_baseline: bool,
    /// Questions file (JSONL `{"question", "answers": [...]}`; default: the built-in data/factoid.jsonl).
    #[arg(long)]
    pub questions: Option<PathBuf>,
    /// Only the first N questions.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Most new tokens per answer.
    #[arg(long, default_value_t = 16)]
    pub max_tokens: usize,
    /// Instruction before each question.
    #[arg(long, default_value = eval::DEFAULT_INSTRUCTION)]
    pub instruction: String,
    #[command(flatten)]
    pub rule: SkipRuleArgs,
    /// Folder for the journal (resumable), result.json and plots.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Runs `tessera skip`.
pub fn run(ctx: &Ctx, c: SkipCmd) -> anyhow::Result<()> {
    match c {
        SkipCmd::Eval(a) => eval_cmd(ctx, a),
    }
}

fn eval_cmd(ctx: &Ctx, a: SkipEvalArgs) -> anyhow::Result<()> {
    let cfg = SkipEvalConfig {
        model: a.model.clone(),
        questions: a.questions,
        limit: a.limit,
        max_new_tokens: a.max_tokens,
        instruction: a.instruction,
        thresholds: a.threshold,
        budgets: a.budget,
        random_baseline: a.random_baseline,
        rule: a.rule.rule(SkipMode::Cosine, 0.95, Budget::All),
        out: a.out,
    };
    // Cheap checks before loading the model (the layer count is checked again by `run`).
    cfg.validate(usize::MAX / 2)?;
    tessera_skip::questions::load(cfg.questions.as_deref())?;
    let m = load_model(ctx, &a.model)?;
    let pb = tessera_core::progress::bar(0, "skip eval");
    let r = eval::run(&m, &cfg, &mut |d, n| {
        pb.set_length(n as u64);
        pb.set_position(d as u64)
    })?;
    pb.finish_and_clear();
    if a.json {
        print_json(&serde_json::to_value(&r)?);
        return Ok(());
    }
    println!(
        "{} questions, full model: factoid accuracy {:.3}, continuation perplexity {:.3}, decode {:.2} tok/s",
        r.questions, r.factoid_accuracy_full, r.continuation_perplexity_full, r.decode_tokens_per_s_full
    );
    for v in &r.variants {
        println!(
            "  {:<32} skipped {:>5.1}%  accuracy {:.3} ({:+.1} pt)  exact {:.3}  ROUGE-L {:.3}  ppl {:.3}  speedup {:.3}x",
            v.label,
            100.0 * v.skipped_fraction,
            v.factoid_accuracy_skip,
            v.factoid_delta_points,
            v.exact_match,
            v.rouge_l,
            v.continuation_perplexity,
            v.decode_speedup
        );
    }
    Ok(())
}

/// `tessera bench skip` arguments.
#[derive(Args)]
pub struct BenchSkipArgs {
    /// Model name or path.
    #[arg(default_value = DEFAULT_MODEL)]
    pub model: String,
    /// Compute threads.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Cosine threshold.
    #[arg(long, value_parser = threshold, default_value = "0.95", allow_negative_numbers = true)]
    pub threshold: f64,
    /// Per-token budget (layers, a percentage or `all`).
    #[arg(long, value_parser = budget, default_value = "25%")]
    pub budget: Budget,
    /// Rule: cosine or random-span.
    #[arg(long, default_value = "cosine")]
    pub mode: String,
    /// Factoid prompts decoded per repetition.
    #[arg(long, default_value_t = 4)]
    pub prompts: usize,
    /// Decode steps per prompt.
    #[arg(long, default_value_t = 64)]
    pub steps: usize,
    /// Repetitions (medians reported).
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    #[command(flatten)]
    pub rule: SkipRuleArgs,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Most threads `bench skip` accepts.
const MAX_THREADS: usize = 256;

/// Runs `tessera bench skip`.
pub fn bench_cmd(ctx: &Ctx, a: BenchSkipArgs) -> anyhow::Result<()> {
    if !(1..=MAX_THREADS).contains(&a.threads) || a.prompts == 0 {
        anyhow::bail!("--threads must lie in 1..={MAX_THREADS} and --prompts be at least 1");
    }
    let mode: SkipMode = a.mode.parse()?;
    // Before any tensor work: candle and rayon read the thread count from here.
    std::env::set_var("RAYON_NUM_THREADS", a.threads.to_string());
    let qs = tessera_skip::questions::load(None)?;
    let m = load_model(ctx, &a.model)?;
    let prompts = qs
        .iter()
        .take(a.prompts)
        .map(|q| eval::question_prompt(&m, eval::DEFAULT_INSTRUCTION, q))
        .collect::<Result<Vec<_>, _>>()?;
    let cfg = BenchSkipConfig {
        prompts,
        steps: a.steps,
        reps: a.reps,
        rule: a.rule.rule(mode, a.threshold, a.budget),
        threads: a.threads,
    };
    let r = bench::run(&m, &cfg, &mut |_, _| {})?;
    if a.json {
        print_json(&serde_json::to_value(&r)?);
    } else {
        println!("{r}");
    }
    Ok(())
}
