//! `tessera society` glue: argument parsing only; the work is in `tessera-society`.
use super::{emit, Ctx};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use tessera_core::record::RunDir;
use tessera_society::attack::{self, AttackConfig, AttackSettings, LrSchedule, Variant};
use tessera_society::society::{self, SocietyConfig, Topology};
use tessera_society::{targets, Defence};

/// `tessera society` subcommands.
#[derive(Subcommand)]
pub enum SocietyCmd {
    /// Optimise an operative's injection so that a sheep agent emits a target (embed: the paper's wolf chain;
    /// gcg: a plain-text injection); checkpointed and resumable.
    Attack(AttackArgs),
    /// Run a society with an operative and measure infection by hop and round, transfer and defences.
    Run(RunArgs),
}

/// `tessera society attack`.
#[derive(Args)]
pub struct AttackArgs {
    /// The text the sheep should emit (default: the canary `--canary`).
    #[arg(long)]
    pub target: Option<String>,
    /// A built-in benign canary by id (see crates/tessera-society/README.md).
    #[arg(long, default_value = "ia-url")]
    pub canary: String,
    /// Attack the first N built-in canaries one after another (success over targets; resumable in --out).
    #[arg(long)]
    pub canaries: Option<usize>,
    /// Optimisation steps.
    #[arg(long, default_value_t = 100)]
    pub steps: usize,
    /// Learning rate of the signed-gradient steps.
    #[arg(long, default_value_t = 0.1)]
    pub lr: f64,
    /// constant or cosine.
    #[arg(long, default_value = "constant")]
    pub schedule: LrSchedule,
    /// embed (the paper's chain) or gcg (discrete, transferable).
    #[arg(long, default_value = "embed")]
    pub variant: Variant,
    /// Backend the plain-text injection is sent to at the end (transfer), e.g. local:smollm2-135m.
    #[arg(long)]
    pub backend: Option<String>,
    /// White-box wolf and sheep model.
    #[arg(long, default_value = "smollm2-135m")]
    pub model: String,
    /// Injected embeddings (embed) or tokens (gcg).
    #[arg(long, default_value_t = 8)]
    pub inject_len: usize,
    /// The wolf's reply slots.
    #[arg(long, default_value_t = 12)]
    pub reply_len: usize,
    /// Evaluate every N steps.
    #[arg(long, default_value_t = 10)]
    pub eval_every: usize,
    /// GCG candidates per step.
    #[arg(long, default_value_t = 16)]
    pub candidates: usize,
    /// Run seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Keep optimising after the first success.
    #[arg(long)]
    pub keep_going: bool,
    /// Exact containment only (no MiniLM cosine).
    #[arg(long)]
    pub no_minilm: bool,
    /// Checkpoint directory (default runs/society-attack-<time>); rerun with it to resume.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Stop after N steps in this process (checkpointed; rerun to resume).
    #[arg(long)]
    pub pause_after: Option<usize>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `tessera society run`.
#[derive(Args)]
pub struct RunArgs {
    /// Agents including the operative.
    #[arg(long, default_value_t = 6)]
    pub agents: usize,
    /// chain, star, ring, complete, random or random:P.
    #[arg(long, default_value = "chain")]
    pub topology: Topology,
    /// Rounds.
    #[arg(long, default_value_t = 4)]
    pub rounds: usize,
    /// First round in which the operative speaks (earlier rounds are clean traffic).
    #[arg(long, default_value_t = 1)]
    pub join_round: usize,
    /// none, perplexity, paraphrase or hardened.
    #[arg(long, default_value = "none")]
    pub defence: Defence,
    /// Agents' backend: local:NAME, openai:URL#MODEL, replay:PATH, script:PATH.
    #[arg(long, default_value = "local:smollm2-135m")]
    pub backend: String,
    /// Backend of the even-numbered agents (transfer).
    #[arg(long)]
    pub alt_backend: Option<String>,
    /// The canary to spread (default: the canary `--canary`).
    #[arg(long)]
    pub target: Option<String>,
    /// A built-in canary by id.
    #[arg(long, default_value = "ia-url")]
    pub canary: String,
    /// The operative's message (default: a naive instruction to repeat the target).
    #[arg(long)]
    pub injection: Option<String>,
    /// Use the injection of an `attack.json` from `society attack`.
    #[arg(long)]
    pub injection_from: Option<PathBuf>,
    /// Most tokens per reply.
    #[arg(long, default_value_t = 40)]
    pub max_tokens: usize,
    /// Own exchanges kept in each agent's context.
    #[arg(long, default_value_t = 2)]
    pub memory: usize,
    /// Explicit perplexity-filter threshold (default: calibrated on clean traffic).
    #[arg(long)]
    pub ppl_threshold: Option<f64>,
    /// Run seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Exact containment only (no MiniLM).
    #[arg(long)]
    pub no_minilm: bool,
    /// Output directory (default runs/society-<time>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Runs a `tessera society` subcommand.
pub fn run(ctx: &Ctx, c: SocietyCmd) -> anyhow::Result<()> {
    match c {
        SocietyCmd::Attack(a) => attack_cmd(ctx, a),
        SocietyCmd::Run(a) => run_cmd(ctx, a),
    }
}

fn out_dir(out: Option<PathBuf>, name: &str) -> anyhow::Result<PathBuf> {
    Ok(match out {
        Some(p) => RunDir::at(p)?.path().to_path_buf(),
        None => RunDir::fresh("runs", name)?.path().to_path_buf(),
    })
}

fn attack_cmd(ctx: &Ctx, a: AttackArgs) -> anyhow::Result<()> {
    let target = match a.target {
        Some(t) => t,
        None => targets::canary(&a.canary)?.text.to_string(),
    };
    let out = out_dir(a.out, "society-attack")?;
    let cfg = AttackConfig {
        settings: AttackSettings {
            target,
            variant: a.variant,
            steps: a.steps,
            lr: a.lr,
            schedule: a.schedule,
            inject_len: a.inject_len,
            reply_len: a.reply_len,
            eval_every: a.eval_every,
            candidates: a.candidates,
            seed: a.seed,
            stop_on_success: !a.keep_going,
            ..Default::default()
        },
        model: a.model,
        backend: a.backend,
        out: Some(out.clone()),
        minilm: !a.no_minilm,
        offline: ctx.offline,
        pause_after: a.pause_after,
    };
    cfg.settings.validate()?;
    if let Some(n) = a.canaries {
        let ts: Vec<String> = targets::CANARIES
            .iter()
            .take(n)
            .map(|c| c.text.to_string())
            .collect();
        let r = attack::sweep(&cfg, &ts, &out)?;
        tessera_core::fsx::write_json_atomic(out.join("sweep.json"), &r)?;
        eprintln!("tessera: results in {}", out.display());
        return emit(a.json, &r);
    }
    let r = attack::attack(&cfg)?;
    tessera_society::plot::loss_plot(
        &[(format!("lr {}", cfg.settings.lr), &r)],
        &out.join("loss.svg"),
    )?;
    eprintln!("tessera: results in {}", out.display());
    emit(a.json, &r)
}

fn run_cmd(ctx: &Ctx, a: RunArgs) -> anyhow::Result<()> {
    let target = match a.target {
        Some(t) => t,
        None => targets::canary(&a.canary)?.text.to_string(),
    };
    let injection = match (a.injection, a.injection_from) {
        (Some(t), _) => Some(t),
        (None, Some(p)) => Some(attack::load_result(&p)?.injection.text),
        (None, None) => None,
    };
    let cfg = SocietyConfig {
        agents: a.agents,
        topology: a.topology,
        rounds: a.rounds,
        join_round: a.join_round,
        defence: a.defence,
        backend: a.backend,
        alt_backend: a.alt_backend,
        target,
        injection,
        memory: a.memory,
        max_tokens: a.max_tokens,
        seed: a.seed,
        out: out_dir(a.out, "society")?,
        minilm: !a.no_minilm,
        ppl_threshold: a.ppl_threshold,
        offline: ctx.offline,
        ..Default::default()
    };
    let r = society::run(&cfg)?;
    tessera_society::plot::society_report(&r).write(cfg.out.join("report.md"))?;
    eprintln!("tessera: report in {}", cfg.out.join("report.md").display());
    emit(a.json, &r)
}

/// The `tessera tour` section.
pub fn tour(ctx: &Ctx, dir: &RunDir) -> anyhow::Result<Option<crate::tour::Section>> {
    Ok(Some(tessera_society::tour::tour(dir, ctx.offline)?))
}
