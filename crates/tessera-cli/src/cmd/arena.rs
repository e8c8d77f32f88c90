//! `tessera arena` glue: argument parsing and calls into `tessera-arena`.
use super::{print_json, Ctx};
use anyhow::bail;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use tessera_arena::agents::llm::{
    DEFAULT_RETRIES, GTBENCH_MAX_TOKENS, GTBENCH_SC_SAMPLES, GTBENCH_TEMPERATURE,
};
use tessera_arena::agents::AgentSpec;
use tessera_arena::games::{GameId, ALL_GAMES};
use tessera_arena::recompute;
use tessera_arena::runner::{self, ArenaConfig, DEFAULT_BOOTSTRAP};
use tessera_arena::tournament::{TournamentConfig, DEFAULT_TOURNAMENT_MATCHES};
use tessera_core::record::RunDir;

/// `tessera arena` subcommands.
#[derive(Subcommand)]
pub enum ArenaCmd {
    /// Play matches between exactly two agents (default 2 matches per game).
    Match(PlayArgs),
    /// Round robin: every pair of agents plays every game (default 50 matches per pairing, seats swapped at half).
    Tournament(PlayArgs),
    /// Recompute the metrics and report.md from an existing run directory.
    Report(ReportArgs),
    /// List the games (with rules and answer formats) and agent specs.
    Games,
}

/// Arguments of `match` and `tournament`.
#[derive(Args)]
pub struct PlayArgs {
    /// TOML file with any of: games, agents (lists), matches, out, seed, parallel, retries, sc_samples,
    /// temperature, max_tokens, bootstrap. Its keys replace the built-in defaults; --games, --agents, --matches
    /// and --out given on the command line replace the file's.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Games, comma-separated (default: all ten).
    #[arg(long, value_delimiter = ',')]
    pub games: Vec<GameId>,
    /// Agent specs, comma-separated: random, mcts (or mcts:sims=N), ismcts, mcts_clairvoyant, cfr, cfr+, tft,
    /// prompt|cot|sccot|tot:BACKEND (free text), prompt+legal|cot+legal|sccot+legal:BACKEND (legal-move
    /// decoding). A spec may repeat (self-play; labelled spec#1, spec#2).
    #[arg(long, value_delimiter = ',', required_unless_present = "config")]
    pub agents: Vec<AgentSpec>,
    /// Matches per pairing and game.
    #[arg(long)]
    pub matches: Option<usize>,
    /// Output directory (default runs/arena-TIME); rerunning with the same directory resumes.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Tournament seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Matches played in parallel.
    #[arg(long, default_value_t = 1)]
    pub parallel: usize,
    /// LLM agents: re-asks after an invalid answer before forfeiting (0 = GTBench behaviour).
    #[arg(long, default_value_t = DEFAULT_RETRIES)]
    pub retries: u32,
    /// SC-CoT samples.
    #[arg(long, default_value_t = GTBENCH_SC_SAMPLES)]
    pub sc_samples: usize,
    /// LLM sampling temperature.
    #[arg(long, default_value_t = GTBENCH_TEMPERATURE)]
    pub temperature: f64,
    /// LLM token limit per answer.
    #[arg(long, default_value_t = GTBENCH_MAX_TOKENS)]
    pub max_tokens: usize,
    /// Bradley–Terry bootstrap resamples.
    #[arg(long, default_value_t = DEFAULT_BOOTSTRAP)]
    pub bootstrap: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `report`.
#[derive(Args)]
pub struct ReportArgs {
    /// Run directory holding matches.jsonl.
    #[arg(long)]
    pub out: PathBuf,
    /// Seed for Elo shuffles and the bootstrap.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Bradley–Terry bootstrap resamples.
    #[arg(long, default_value_t = DEFAULT_BOOTSTRAP)]
    pub bootstrap: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Folds a `--config` file into the arguments (file keys replace defaults; explicit list/out flags win).
fn apply_config(mut a: PlayArgs) -> anyhow::Result<PlayArgs> {
    let Some(path) = a.config.clone() else {
        return Ok(a);
    };
    let f = runner::PlayFile::load(&path)?;
    if a.games.is_empty() {
        a.games = f.games.unwrap_or_default();
    }
    if a.agents.is_empty() {
        a.agents = f.agents.unwrap_or_default();
    }
    if a.agents.is_empty() {
        bail!(
            "{}: no agents (set `agents = [...]` or pass --agents)",
            path.display()
        );
    }
    a.matches = a.matches.or(f.matches);
    a.out = a.out.or(f.out);
    a.seed = f.seed.unwrap_or(a.seed);
    a.parallel = f.parallel.unwrap_or(a.parallel);
    a.retries = f.retries.unwrap_or(a.retries);
    a.sc_samples = f.sc_samples.unwrap_or(a.sc_samples);
    a.temperature = f.temperature.unwrap_or(a.temperature);
    a.max_tokens = f.max_tokens.unwrap_or(a.max_tokens);
    a.bootstrap = f.bootstrap.unwrap_or(a.bootstrap);
    Ok(a)
}

/// The run configuration of `match`/`tournament` (arguments folded with `--config`).
fn config(ctx: &Ctx, a: &PlayArgs, default_matches: usize) -> ArenaConfig {
    let games = if a.games.is_empty() {
        ALL_GAMES.to_vec()
    } else {
        a.games.clone()
    };
    let mut t = TournamentConfig::new(games, a.agents.clone());
    t.matches = a.matches.unwrap_or(default_matches);
    t.seed = a.seed;
    t.parallel = a.parallel;
    t.llm.retries = a.retries;
    t.llm.sc_samples = a.sc_samples;
    t.llm.params.temperature = a.temperature;
    t.llm.params.max_tokens = a.max_tokens;
    t.backends = Some(super::llm_bridge::arena_backend_factory(ctx));
    let mut cfg = ArenaConfig::new(t, a.out.clone());
    cfg.bootstrap = a.bootstrap;
    cfg
}

/// Runs a `tessera arena` subcommand.
pub fn run(ctx: &Ctx, cmd: ArenaCmd) -> anyhow::Result<()> {
    let (res, json) = match cmd {
        ArenaCmd::Match(a) => {
            let a = apply_config(a)?;
            if a.agents.len() != 2 {
                bail!("`arena match` takes exactly two agents (got {}); use `arena tournament` for more", a.agents.len());
            }
            play(ctx, a, 2)?
        }
        ArenaCmd::Tournament(a) => play(ctx, apply_config(a)?, DEFAULT_TOURNAMENT_MATCHES)?,
        ArenaCmd::Report(a) => (recompute(&a.out, a.seed, a.bootstrap)?, a.json),
        ArenaCmd::Games => {
            print!("{}", runner::games_help());
            return Ok(());
        }
    };
    if json {
        print_json(&serde_json::to_value(&res)?);
    } else {
        println!("{}", res.nra_table());
        println!("report: {}", res.report_path().display());
    }
    Ok(())
}

fn play(
    ctx: &Ctx,
    a: PlayArgs,
    default_matches: usize,
) -> anyhow::Result<(runner::ArenaRun, bool)> {
    let cfg = config(ctx, &a, default_matches);
    let quiet = a.json;
    let res = tessera_arena::run(&cfg, &|r| {
        if !quiet {
            eprintln!("{}", runner::progress_line(r));
        }
    })?;
    if let Some(s) = res.run.as_ref().filter(|s| !s.skipped.is_empty() && !quiet) {
        eprintln!("skipped: {}", s.skipped.join("; "));
    }
    Ok((res, a.json))
}

/// MCTS vs Random on all ten games, a few matches each.
pub fn tour(_ctx: &Ctx, dir: &RunDir) -> anyhow::Result<Option<crate::tour::Section>> {
    let s = tessera_arena::tour(dir.path())?;
    Ok(Some(crate::tour::Section {
        title: s.title,
        report: s.report,
        json: s.json,
    }))
}
