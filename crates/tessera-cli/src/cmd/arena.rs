//! `tessera arena` glue: argument parsing and calls into `tessera-arena`.
use super::{print_json, Ctx};
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use tessera_arena::agents::backend::BackendFactory;
use tessera_arena::agents::llm::LlmOptions;
use tessera_arena::games::{GameId, ALL_GAMES};
use tessera_arena::{bench, metrics, report, tournament};
use tessera_core::record::RunDir;
use tessera_core::report::Report;

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
    pub games: Vec<String>,
    /// Agent specs, comma-separated: random, mcts[:sims=N], ismcts[:sims=N], mcts_clairvoyant, cfr, cfr+, tft,
    /// prompt|cot|sccot|tot:<backend spec>.
    #[arg(long, value_delimiter = ',', required_unless_present = "config")]
    pub agents: Vec<String>,
    /// Matches per pairing and game.
    #[arg(long)]
    pub matches: Option<usize>,
    /// Output directory (default runs/arena-<time>); rerunning with the same directory resumes.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Tournament seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Matches played in parallel.
    #[arg(long, default_value_t = 1)]
    pub parallel: usize,
    /// LLM agents: re-asks after an invalid answer before forfeiting (0 = GTBench behaviour).
    #[arg(long, default_value_t = 1)]
    pub retries: u32,
    /// SC-CoT samples.
    #[arg(long, default_value_t = 5)]
    pub sc_samples: u32,
    /// LLM sampling temperature.
    #[arg(long, default_value_t = 0.2)]
    pub temperature: f32,
    /// LLM token limit per answer.
    #[arg(long, default_value_t = 1024)]
    pub max_tokens: u32,
    /// Bradley–Terry bootstrap resamples.
    #[arg(long, default_value_t = 200)]
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
    #[arg(long, default_value_t = 200)]
    pub bootstrap: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// The chat-backend factory for LLM agent specs (`cot:local:smollm2-135m`, `prompt:openai:URL#model`).
/// Backends come from `tessera-llm` (`local:NAME_OR_PATH`, `openai:URL#model`, `replay:PATH`).
pub fn backend_factory(ctx: &Ctx) -> Option<BackendFactory> {
    Some(super::llm_bridge::arena_backend_factory(ctx))
}

fn parse_games(ids: &[String]) -> anyhow::Result<Vec<GameId>> {
    if ids.is_empty() {
        return Ok(ALL_GAMES.to_vec());
    }
    Ok(ids
        .iter()
        .map(|s| GameId::parse(s))
        .collect::<Result<_, _>>()?)
}

/// Runs a `tessera arena` subcommand.
pub fn run(ctx: &Ctx, cmd: ArenaCmd) -> anyhow::Result<()> {
    match cmd {
        ArenaCmd::Match(a) => {
            let a = apply_config(a)?;
            if a.agents.len() != 2 {
                bail!("`arena match` takes exactly two agents (got {}); use `arena tournament` for more", a.agents.len());
            }
            play(ctx, a, 2)
        }
        ArenaCmd::Tournament(a) => play(ctx, a, 50),
        ArenaCmd::Report(a) => {
            let recs = tournament::scored(&tournament::read_records(&a.out.join("matches.jsonl"))?);
            if recs.is_empty() {
                bail!("{}: no scored matches in matches.jsonl", a.out.display());
            }
            let m = metrics::compute(&recs, a.seed, a.bootstrap);
            report::write_report(
                &m,
                &a.out,
                "Arena tournament",
                "Recomputed from matches.jsonl.",
                "",
            )?;
            RunDir::at(&a.out)?.write_json("metrics.json", &m)?;
            finish(&m, &a.out, a.json, serde_json::json!({}));
            Ok(())
        }
        ArenaCmd::Games => {
            for g in ALL_GAMES {
                println!(
                    "{}\n  rules: {}\n  answer format: {}\n",
                    g.id(),
                    g.rules(),
                    g.action_format()
                );
            }
            println!("agents: random, mcts[:sims=N] (IS-MCTS on imperfect-information games), ismcts[:sims=N], mcts_clairvoyant, cfr, cfr+ (kuhn_poker), tft (prisoners_dilemma), prompt|cot|sccot|tot:<backend spec>");
            Ok(())
        }
    }
}

/// A tournament configuration file (`--config`); every key is optional.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PlayFile {
    games: Option<Vec<String>>,
    agents: Option<Vec<String>>,
    matches: Option<usize>,
    out: Option<PathBuf>,
    seed: Option<u64>,
    parallel: Option<usize>,
    retries: Option<u32>,
    sc_samples: Option<u32>,
    temperature: Option<f32>,
    max_tokens: Option<u32>,
    bootstrap: Option<usize>,
}

/// Folds a `--config` file into the arguments (file keys replace defaults; explicit list/out flags win).
fn apply_config(mut a: PlayArgs) -> anyhow::Result<PlayArgs> {
    let Some(path) = a.config.clone() else {
        return Ok(a);
    };
    let text = tessera_core::fsx::read_to_string(&path)?;
    let f: PlayFile = toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map_or(1, |sp| text[..sp.start].matches('\n').count() + 1);
        anyhow::anyhow!("{}:{line}: {}", path.display(), e.message().trim())
    })?;
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

fn play(ctx: &Ctx, a: PlayArgs, default_matches: usize) -> anyhow::Result<()> {
    let a = apply_config(a)?;
    let games = parse_games(&a.games)?;
    let dir = match &a.out {
        Some(p) => RunDir::at(p)?,
        None => RunDir::fresh("runs", "arena")?,
    };
    let mut cfg = tournament::TournamentConfig::new(games, a.agents.clone());
    cfg.matches = a.matches.unwrap_or(default_matches);
    cfg.seed = a.seed;
    cfg.parallel = a.parallel;
    cfg.llm = LlmOptions {
        retries: a.retries,
        sc_samples: a.sc_samples,
        ..Default::default()
    };
    cfg.llm.params.temperature = a.temperature;
    cfg.llm.params.max_tokens = a.max_tokens;
    cfg.backends = backend_factory(ctx);
    let quiet = a.json;
    let summary = tournament::run_tournament(&cfg, dir.path(), &|r| {
        if !quiet {
            let how = match (&r.status, &r.forfeit) {
                (_, Some(f)) => format!("forfeit by {} ({:?})", f.agent, f.kind),
                (tournament::Status::Infrastructure, _) => format!(
                    "infrastructure failure: {}",
                    r.infrastructure_error.clone().unwrap_or_default()
                ),
                _ => format!("returns {:?}", r.returns),
            };
            eprintln!(
                "{} #{}: {} vs {}: {} ({} moves, {:.2}s)",
                r.game.id(),
                r.index,
                r.seats[0],
                r.seats[1],
                how,
                r.moves.len(),
                r.duration_s
            );
        }
    })?;
    // Score only this configuration's matches (the directory may hold records of other runs).
    let recs: Vec<_> = tournament::scored(&tournament::read_records(&summary.records)?)
        .into_iter()
        .filter(|r| {
            cfg.games.contains(&r.game)
                && r.index < cfg.matches
                && r.seats.iter().all(|s| cfg.agents.contains(s))
        })
        .collect();
    if recs.is_empty() {
        bail!(
            "no match could be scored (infrastructure failures: {}); rerun with --out {} to retry",
            summary.infrastructure_failures,
            dir.path().display()
        );
    }
    let m = metrics::compute(&recs, a.seed, a.bootstrap);
    let intro = format!(
        "Agents: {}. Games: {}. {} matches per pairing, seed {}. Records: `matches.jsonl`.",
        a.agents.join(", "),
        cfg.games
            .iter()
            .map(|g| g.id())
            .collect::<Vec<_>>()
            .join(", "),
        cfg.matches,
        a.seed
    );
    report::write_report(&m, dir.path(), "Arena tournament", &intro, "")
        .context("writing the report")?;
    dir.write_json("metrics.json", &m)?;
    if !summary.skipped.is_empty() && !quiet {
        eprintln!("skipped: {}", summary.skipped.join("; "));
    }
    finish(&m, dir.path(), a.json, serde_json::to_value(&summary)?);
    Ok(())
}

fn finish(m: &metrics::Metrics, dir: &std::path::Path, json: bool, summary: serde_json::Value) {
    if json {
        print_json(&serde_json::json!({
            "out": dir.display().to_string(),
            "run": summary,
            "matches": m.matches,
            "completion_rate": m.completion_rate,
            "overall": m.overall.agents,
            "games": m.games.iter().map(|b| serde_json::json!({"game": b.game, "agents": b.agents})).collect::<Vec<_>>(),
            "error_profile": m.error_profile,
        }));
    } else {
        let (agents, rows) = report::nra_matrix(m);
        let mut header = vec!["game"];
        header.extend(agents.iter().map(|s| s.as_str()));
        println!("{}", tessera_core::report::markdown_table(&header, &rows));
        println!("report: {}", dir.join("report.md").display());
    }
}

/// `tessera bench arena` arguments.
#[derive(Args)]
pub struct BenchArenaArgs {
    /// Games (default: all ten).
    #[arg(long, value_delimiter = ',')]
    pub games: Vec<String>,
    /// MCTS simulations per move.
    #[arg(long, default_value_t = 1000)]
    pub sims: u32,
    /// Timed searches per game.
    #[arg(long, default_value_t = 20)]
    pub moves: usize,
    /// Random-vs-random matches timed per game.
    #[arg(long, default_value_t = 2000)]
    pub random_matches: usize,
    /// MCTS-vs-random matches timed per game.
    #[arg(long, default_value_t = 4)]
    pub mcts_matches: usize,
    /// Python with open_spiel 1.4 for the side-by-side comparison (default $TESSERA_PYTHON or python3).
    #[arg(long)]
    pub python: Option<String>,
    /// Timed moves of OpenSpiel's Python MCTSBot per game (slow).
    #[arg(long, default_value_t = 3)]
    pub python_moves: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Runs `tessera bench arena`.
pub fn bench(_ctx: &Ctx, a: BenchArenaArgs) -> anyhow::Result<()> {
    let games = parse_games(&a.games)?;
    let python = a
        .python
        .clone()
        .or_else(|| std::env::var("TESSERA_PYTHON").ok())
        .unwrap_or_else(|| "python3".into());
    let os = bench::openspiel_times(&python, &games, a.sims, a.moves, a.python_moves)?;
    let mut rows = Vec::new();
    let mut out = Vec::new();
    for &g in &games {
        let rr = bench::matches_per_second(g, "random", "random", a.random_matches, 2)?;
        let mr = bench::matches_per_second(
            g,
            &format!("mcts:sims={}", a.sims),
            "random",
            a.mcts_matches,
            3,
        )?;
        let cpp = os.get(g.id()).and_then(|v| v["cpp_ms"].as_f64());
        let py = os.get(g.id()).and_then(|v| v["python_ms"].as_f64());
        let mut variants = vec![false];
        if g.imperfect_information() && cpp.is_some() {
            variants.push(true);
        }
        for true_state in variants {
            let s = bench::mcts_speed(g, a.sims, a.moves, 1, true_state);
            let comparable = !g.imperfect_information() || true_state;
            let (cpp, py) = if comparable { (cpp, py) } else { (None, None) };
            let cell = |x: Option<f64>| x.map(|v| format!("{v:.2}")).unwrap_or_else(|| "–".into());
            let ratio = |x: Option<f64>| {
                x.map(|v| format!("{:.1}×", v / s.ms_per_move))
                    .unwrap_or_else(|| "–".into())
            };
            rows.push(vec![
                g.id().to_string(),
                s.searcher.clone(),
                format!("{:.3}", s.ms_per_move),
                format!("{:.0}", s.sims_per_s),
                cell(cpp),
                ratio(cpp),
                cell(py),
                ratio(py),
                format!("{rr:.0}"),
                format!("{mr:.2}"),
            ]);
            out.push(serde_json::json!({"game": g.id(), "mcts": s, "openspiel_cpp_ms": cpp, "openspiel_python_ms": py,
                "random_vs_random_matches_per_s": rr, "mcts_vs_random_matches_per_s": mr}));
        }
    }
    if a.json {
        print_json(&serde_json::json!({"sims": a.sims, "games": out, "openspiel": os}));
    } else {
        if let Some(s) = os.get("skipped") {
            println!("OpenSpiel comparison skipped: {}", s.as_str().unwrap_or(""));
        }
        println!("MCTS c=2, {} simulations, 1 random rollout, solver on (OpenSpiel settings); start positions; speedup = OpenSpiel ms / Tessera ms", a.sims);
        println!(
            "{}",
            tessera_core::report::markdown_table(
                &[
                    "game",
                    "searcher",
                    "Tessera ms/move",
                    "sims/s",
                    "OpenSpiel C++ ms",
                    "speedup",
                    "OpenSpiel Python ms",
                    "speedup",
                    "random-vs-random matches/s",
                    "mcts-vs-random matches/s"
                ],
                &rows
            )
        );
    }
    Ok(())
}

/// MCTS vs Random on all ten games, a few matches each.
pub fn tour(_ctx: &Ctx, dir: &RunDir) -> anyhow::Result<Option<crate::tour::Section>> {
    let sub = dir.path().join("arena");
    let mut cfg =
        tournament::TournamentConfig::new(ALL_GAMES.to_vec(), vec!["mcts".into(), "random".into()]);
    cfg.matches = 10;
    cfg.seed = 7;
    cfg.parallel = 2;
    let summary = tournament::run_tournament(&cfg, &sub, &|_| {})?;
    let recs = tournament::scored(&tournament::read_records(&summary.records)?);
    let m = metrics::compute(&recs, 7, 100);
    report::write_report(
        &m,
        &sub,
        "Arena tournament: MCTS vs Random",
        "Tour run.",
        "",
    )?;
    let mut r = Report::new("Game arena (GTBench): MCTS vs Random");
    r.para(&format!(
        "MCTS (UCT c=2, 1000 simulations, random rollouts, MCTS-Solver; information-set MCTS on the imperfect-information games) against uniform Random, {} matches per game with seats swapped at half. NRA of MCTS per game (paper §2.2; +1 = MCTS wins every match). Full report: `arena/report.md`, records: `arena/matches.jsonl`.",
        cfg.matches
    ));
    let rows: Vec<Vec<String>> = m
        .games
        .iter()
        .map(|b| {
            let st = b.agents.iter().find(|x| x.agent == "mcts");
            let pair = b
                .pairs
                .iter()
                .find(|p| p.0 == "mcts")
                .map(|p| format!("{}/{}/{}", p.2.wins, p.2.draws, p.2.losses))
                .unwrap_or_default();
            vec![
                b.game.map(|g| g.id().to_string()).unwrap_or_default(),
                st.map(|s| format!("{:.2}", s.nra)).unwrap_or_default(),
                pair,
            ]
        })
        .collect();
    r.table(&["game", "NRA of MCTS vs Random", "MCTS W/D/L"], &rows);
    r.image("NRA of MCTS per game", "arena/nra_by_game.svg");
    let json = serde_json::json!({
        "matches_per_game": cfg.matches,
        "nra_mcts_vs_random": m.games.iter().map(|b| (b.game.map(|g| g.id()).unwrap_or("?").to_string(), b.agents.iter().find(|x| x.agent == "mcts").map(|s| s.nra))).collect::<std::collections::BTreeMap<_, _>>(),
        "completion_rate": m.completion_rate,
    });
    Ok(Some(crate::tour::Section {
        title: "Game arena (GTBench)".into(),
        report: r,
        json,
    }))
}
