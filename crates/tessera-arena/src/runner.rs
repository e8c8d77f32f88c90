//! The arena's typed entry points: [`ArenaConfig`] → [`run`] → [`ArenaRun`] (plays or resumes a tournament,
//! scores this configuration's matches, writes `report.md`, `metrics.json` and the plots), [`recompute`] (the
//! same from an existing run directory), and [`tour`] (the `tessera tour` section). [`ArenaRun`] serialises to
//! the JSON `tessera arena match|tournament|report --json` prints: `out`, `run`, `matches`, `completion_rate`,
//! `overall`, `games` (`[{game, agents}]`) and `error_profile`.
use crate::agents::AgentSpec;
use crate::error::{ArenaError, Result};
use crate::games::{GameId, ALL_GAMES};
use crate::metrics::{self, Metrics};
use crate::tournament::{self, MatchRecord, RunSummary, Status, TournamentConfig};
use serde::ser::{SerializeMap, Serializer};
use std::path::{Path, PathBuf};
use tessera_core::record::RunDir;
use tessera_core::report::Report;

/// Bradley–Terry bootstrap resamples by default.
pub const DEFAULT_BOOTSTRAP: usize = 200;

/// A tournament run: what to play, where, and how to rate it.
#[derive(Clone)]
pub struct ArenaConfig {
    /// The matches.
    pub tournament: TournamentConfig,
    /// Output directory (`None`: a fresh `runs/arena-<time>`); an existing one resumes.
    pub out: Option<PathBuf>,
    /// Bradley–Terry bootstrap resamples.
    pub bootstrap: usize,
    /// Title of `report.md`.
    pub title: String,
}

impl ArenaConfig {
    /// A run of `tournament` into `out` with the default bootstrap and title.
    pub fn new(tournament: TournamentConfig, out: Option<PathBuf>) -> Self {
        ArenaConfig {
            tournament,
            out,
            bootstrap: DEFAULT_BOOTSTRAP,
            title: "Arena tournament".into(),
        }
    }
}

/// The outcome of [`run`] or [`recompute`].
#[derive(Clone, Debug)]
pub struct ArenaRun {
    /// The run directory.
    pub out: PathBuf,
    /// What this invocation played (`None` for [`recompute`]).
    pub run: Option<RunSummary>,
    /// Ratings, NRA tables, error profile.
    pub metrics: Metrics,
}

impl serde::Serialize for ArenaRun {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let m = &self.metrics;
        let games: Vec<serde_json::Value> = m
            .games
            .iter()
            .map(|b| serde_json::json!({"game": b.game, "agents": b.agents}))
            .collect();
        let mut map = s.serialize_map(Some(7))?;
        map.serialize_entry("out", &self.out.display().to_string())?;
        match &self.run {
            Some(r) => map.serialize_entry("run", r)?,
            None => map.serialize_entry("run", &serde_json::json!({}))?,
        }
        map.serialize_entry("matches", &m.matches)?;
        map.serialize_entry("completion_rate", &m.completion_rate)?;
        map.serialize_entry("overall", &m.overall.agents)?;
        map.serialize_entry("games", &games)?;
        map.serialize_entry("error_profile", &m.error_profile)?;
        map.end()
    }
}

impl ArenaRun {
    /// The NRA matrix (games × agents) as a markdown table, for the terminal.
    pub fn nra_table(&self) -> String {
        let (agents, rows) = crate::report::nra_matrix(&self.metrics);
        let mut header = vec!["game"];
        header.extend(agents.iter().map(|s| s.as_str()));
        tessera_core::report::markdown_table(&header, &rows)
    }

    /// The report's path.
    pub fn report_path(&self) -> PathBuf {
        self.out.join("report.md")
    }
}

/// One line per finished match, for progress output.
pub fn progress_line(r: &MatchRecord) -> String {
    let how = match (&r.status, &r.forfeit) {
        (_, Some(f)) => format!("forfeit by {} ({:?})", f.agent, f.kind),
        (Status::Infrastructure, _) => format!(
            "infrastructure failure: {}",
            r.infrastructure_error.clone().unwrap_or_default()
        ),
        _ => format!("returns {:?}", r.returns),
    };
    format!(
        "{} #{}: {} vs {}: {} ({} moves, {:.2}s)",
        r.game.id(),
        r.index,
        r.seats[0],
        r.seats[1],
        how,
        r.moves.len(),
        r.duration_s
    )
}

fn write_outputs(m: &Metrics, dir: &Path, title: &str, intro: &str) -> Result<()> {
    crate::report::write_report(m, dir, title, intro, "")?;
    RunDir::at(dir)?.write_json("metrics.json", m)?;
    Ok(())
}

/// Plays (or resumes) the tournament, scores this configuration's matches and writes the report.
/// `on_record` sees each finished match. No scorable match (e.g. every one failed for infrastructure reasons)
/// is an error that says how to retry.
pub fn run(cfg: &ArenaConfig, on_record: &(dyn Fn(&MatchRecord) + Sync)) -> Result<ArenaRun> {
    let dir = match &cfg.out {
        Some(p) => RunDir::at(p)?,
        None => RunDir::fresh("runs", "arena")?,
    };
    let t = &cfg.tournament;
    let summary = tournament::run_tournament(t, dir.path(), on_record)?;
    let recs = tournament::scored_for(t, dir.path())?;
    if recs.is_empty() {
        return Err(ArenaError::Invalid(format!(
            "no match could be scored (infrastructure failures: {}); rerun with --out {} to retry",
            summary.infrastructure_failures,
            dir.path().display()
        )));
    }
    let m = metrics::compute(&recs, t.seed, cfg.bootstrap);
    let intro = format!(
        "Agents: {}. Games: {}. {} matches per pairing, seed {}. Records: `matches.jsonl`.",
        t.labels().join(", "),
        t.games
            .iter()
            .map(|g| g.id())
            .collect::<Vec<_>>()
            .join(", "),
        t.matches,
        t.seed
    );
    write_outputs(&m, dir.path(), &cfg.title, &intro)?;
    Ok(ArenaRun {
        out: dir.path().to_path_buf(),
        run: Some(summary),
        metrics: m,
    })
}

/// Recomputes the metrics and report of an existing run directory from its `matches.jsonl`.
pub fn recompute(out: &Path, seed: u64, bootstrap: usize) -> Result<ArenaRun> {
    let recs = tournament::scored(&tournament::read_records(&out.join("matches.jsonl"))?);
    if recs.is_empty() {
        return Err(ArenaError::Invalid(format!(
            "{}: no scored matches in matches.jsonl",
            out.display()
        )));
    }
    let m = metrics::compute(&recs, seed, bootstrap);
    write_outputs(
        &m,
        out,
        "Arena tournament",
        "Recomputed from matches.jsonl.",
    )?;
    Ok(ArenaRun {
        out: out.to_path_buf(),
        run: None,
        metrics: m,
    })
}

/// The rules and answer formats of every game, and the agent specs, as text (`tessera arena games`).
pub fn games_help() -> String {
    let mut s = String::new();
    for g in ALL_GAMES {
        s.push_str(&format!(
            "{}\n  rules: {}\n  answer format: {}\n\n",
            g.id(),
            g.rules(),
            g.action_format()
        ));
    }
    s.push_str(&format!("agents: {}\n", crate::agents::AGENT_SPECS_HELP));
    s
}

/// The arena's section of `tessera tour`.
pub struct TourSection {
    /// Section title.
    pub title: String,
    /// The markdown section.
    pub report: Report,
    /// Its numbers: `matches_per_game`, `nra_mcts_vs_random` (game → NRA), `completion_rate`.
    pub json: serde_json::Value,
}

/// Matches per game in the tour.
pub const TOUR_MATCHES: usize = 10;

/// MCTS vs Random on all ten games, [`TOUR_MATCHES`] matches each, into `dir/arena` (report, plots, records).
pub fn tour(dir: &Path) -> Result<TourSection> {
    let sub = dir.join("arena");
    let mut t = TournamentConfig::new(
        ALL_GAMES.to_vec(),
        vec![
            crate::agents::AgentSpec::Mcts {
                sims: crate::agents::DEFAULT_SIMULATIONS,
            },
            crate::agents::AgentSpec::Random,
        ],
    );
    t.matches = TOUR_MATCHES;
    t.seed = 7;
    t.parallel = 2;
    let mut cfg = ArenaConfig::new(t, Some(sub));
    cfg.bootstrap = 100;
    cfg.title = "Arena tournament: MCTS vs Random".into();
    let res = run(&cfg, &|_| {})?;
    let m = &res.metrics;
    let mut r = Report::new("Game arena (GTBench): MCTS vs Random");
    r.para(&format!(
        "MCTS (UCT c={}, {} simulations, random rollouts, MCTS-Solver; information-set MCTS on the imperfect-information games) against uniform Random, {} matches per game with seats swapped at half. NRA of MCTS per game (paper §2.2; +1 = MCTS wins every match). Full report: `arena/report.md`, records: `arena/matches.jsonl`.",
        crate::agents::UCT_C,
        crate::agents::DEFAULT_SIMULATIONS,
        TOUR_MATCHES
    ));
    let mcts_nra =
        |b: &metrics::Leaderboard| b.agents.iter().find(|x| x.agent == "mcts").map(|s| s.nra);
    let rows: Vec<Vec<String>> = m
        .games
        .iter()
        .map(|b| {
            let pair = b
                .pairs
                .iter()
                .find(|p| p.0 == "mcts")
                .map(|p| format!("{}/{}/{}", p.2.wins, p.2.draws, p.2.losses))
                .unwrap_or_default();
            vec![
                b.game.map(|g| g.id().to_string()).unwrap_or_default(),
                mcts_nra(b).map(|x| format!("{x:.2}")).unwrap_or_default(),
                pair,
            ]
        })
        .collect();
    r.table(&["game", "NRA of MCTS vs Random", "MCTS W/D/L"], &rows);
    r.image("NRA of MCTS per game", "arena/nra_by_game.svg");
    let nra: std::collections::BTreeMap<String, Option<f64>> = m
        .games
        .iter()
        .map(|b| {
            (
                b.game.map(GameId::id).unwrap_or("?").to_string(),
                mcts_nra(b),
            )
        })
        .collect();
    Ok(TourSection {
        title: "Game arena (GTBench)".into(),
        report: r,
        json: serde_json::json!({
            "matches_per_game": TOUR_MATCHES,
            "nra_mcts_vs_random": nra,
            "completion_rate": m.completion_rate,
        }),
    })
}

/// A tournament configuration file (`tessera arena match|tournament --config FILE`, TOML); every key is optional
/// and an unknown key is an error.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlayFile {
    /// Games to play.
    pub games: Option<Vec<GameId>>,
    /// Agent specs.
    pub agents: Option<Vec<AgentSpec>>,
    /// Matches per pairing and game.
    pub matches: Option<usize>,
    /// Run directory.
    pub out: Option<PathBuf>,
    /// Base seed.
    pub seed: Option<u64>,
    /// Matches played at once.
    pub parallel: Option<usize>,
    /// LLM answer retries.
    pub retries: Option<u32>,
    /// SC-CoT samples.
    pub sc_samples: Option<usize>,
    /// LLM sampling temperature.
    pub temperature: Option<f64>,
    /// LLM answer length cap.
    pub max_tokens: Option<usize>,
    /// Bootstrap resamples of the NRA intervals.
    pub bootstrap: Option<usize>,
}

impl PlayFile {
    /// Reads and parses `path`; a syntax error or an unknown key is an error naming the file and line.
    pub fn load(path: &Path) -> Result<PlayFile> {
        let text = tessera_core::fsx::read_to_string(path)?;
        toml::from_str(&text).map_err(|e| {
            let line = e
                .span()
                .map_or(1, |sp| text[..sp.start].matches('\n').count() + 1);
            ArenaError::Invalid(format!("{}:{line}: {}", path.display(), e.message().trim()))
        })
    }
}
