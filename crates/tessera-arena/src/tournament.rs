//! Matches and tournaments (GTBench `gamingbench/main.py`, made reproducible and resumable).
//!
//! Every pairing of two agents plays `matches` matches per game, seats swapped at half (GTBench's
//! `--exchange-first-player`). Each match has its own seed derived from the tournament seed and the match key,
//! so results do not depend on scheduling. Each finished match is appended to `matches.jsonl` at once; a rerun
//! with the same output directory skips every match whose last record is `ok` or `forfeit` and retries matches
//! that failed for infrastructure reasons (unreachable backend), which are never scored.
use crate::agents::backend::{BackendFactory, ChatBackend};
use crate::agents::llm::{LlmOptions, LlmTrace};
use crate::agents::{AgentFailure, AgentSpec, ForfeitKind};
use crate::error::{ArenaError, Result};
use crate::game::{Game, Turn};
use crate::games::GameId;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Tournament settings.
#[derive(Clone)]
pub struct TournamentConfig {
    /// Games to play.
    pub games: Vec<GameId>,
    /// Agent specs (each unordered pair plays).
    pub agents: Vec<String>,
    /// Matches per pairing and game (seats swapped at half).
    pub matches: usize,
    /// Tournament seed.
    pub seed: u64,
    /// Matches run at once.
    pub parallel: usize,
    /// LLM agent options.
    pub llm: LlmOptions,
    /// Builds chat backends for LLM agent specs; `None` rejects LLM agents with a clear error.
    pub backends: Option<BackendFactory>,
}

impl TournamentConfig {
    /// Defaults: 50 matches, seed 0, 1 match at a time.
    pub fn new(games: Vec<GameId>, agents: Vec<String>) -> Self {
        TournamentConfig {
            games,
            agents,
            matches: 50,
            seed: 0,
            parallel: 1,
            llm: LlmOptions::default(),
            backends: None,
        }
    }
}

/// One move in a match record.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MoveRecord {
    /// The mover (0/1), absent for chance.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub player: Option<usize>,
    /// True for chance outcomes.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub chance: bool,
    /// Action id.
    pub action: u16,
    /// Readable label.
    pub label: String,
}

/// A forfeit: who and why.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Forfeit {
    /// Seat of the offender.
    pub player: usize,
    /// Spec of the offending agent.
    pub agent: String,
    /// Kind of error.
    pub kind: ForfeitKind,
    /// Detail.
    pub detail: String,
}

/// Outcome class of a match.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Played to the end.
    Ok,
    /// An agent forfeited.
    Forfeit,
    /// A backend was unreachable: not scored, retried on resume.
    Infrastructure,
}

/// One JSONL match record.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MatchRecord {
    /// Unique key `game|agentA|agentB|index` (A, B = pairing order, not seats).
    pub key: String,
    /// Game id.
    pub game: GameId,
    /// Match seed.
    pub seed: u64,
    /// Index within the pairing.
    pub index: usize,
    /// Agent spec in seat 0 and seat 1.
    pub seats: [String; 2],
    /// Moves in order, chance outcomes marked.
    pub moves: Vec<MoveRecord>,
    /// Final returns (zeros for unfinished matches).
    pub returns: [f64; 2],
    /// Status.
    pub status: Status,
    /// The forfeit, if any.
    pub forfeit: Option<Forfeit>,
    /// Infrastructure error message, if any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub infrastructure_error: Option<String>,
    /// LLM traces (observation prompts, raw outputs, retries) per LLM decision, with the move index.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub llm: Vec<(usize, serde_json::Value)>,
    /// Invalid LLM answers that were retried, per seat.
    pub retries: [u32; 2],
    /// Wall-clock seconds.
    pub duration_s: f64,
}

/// Resolved backends per LLM agent spec.
type BackendMap = HashMap<String, Arc<dyn ChatBackend>>;

/// Plays one match between `seats[0]` and `seats[1]` with `seed`.
pub fn play_match(
    game: GameId,
    seats: [&AgentSpec; 2],
    seat_names: [&str; 2],
    seed: u64,
    backends: &BackendMap,
    opts: &LlmOptions,
) -> Result<MatchRecord> {
    let t0 = std::time::Instant::now();
    let mut agents = Vec::with_capacity(2);
    for p in 0..2 {
        let b = backends.get(seat_names[p]).cloned();
        agents.push(seats[p].build(
            game,
            tessera_core::rng::derive_seed(seed, &format!("seat{p}")),
            b,
            opts,
        )?);
    }
    let mut chance_rng = tessera_core::rng::derived(seed, "chance");
    let mut g = game.initial();
    let mut rec = MatchRecord {
        key: String::new(),
        game,
        seed,
        index: 0,
        seats: [seat_names[0].to_string(), seat_names[1].to_string()],
        moves: Vec::new(),
        returns: [0.0; 2],
        status: Status::Ok,
        forfeit: None,
        infrastructure_error: None,
        llm: Vec::new(),
        retries: [0, 0],
        duration_s: 0.0,
    };
    let push_trace = |rec: &mut MatchRecord, p: usize, t: Option<LlmTrace>| {
        if let Some(t) = t {
            rec.retries[p] += t.retries;
            rec.llm.push((
                rec.moves.len(),
                serde_json::to_value(&t).unwrap_or_default(),
            ));
        }
    };
    loop {
        match g.turn() {
            Turn::Terminal => break,
            Turn::Chance => {
                let a = g.sample_chance(&mut chance_rng);
                rec.moves.push(MoveRecord {
                    player: None,
                    chance: true,
                    action: a,
                    label: g.chance_label(a),
                });
                g.apply(a);
            }
            Turn::Player(p) => match agents[p].act(&g, p) {
                Ok(d) => {
                    push_trace(&mut rec, p, d.trace);
                    rec.moves.push(MoveRecord {
                        player: Some(p),
                        chance: false,
                        action: d.action,
                        label: g.action_label(d.action),
                    });
                    g.apply(d.action);
                }
                Err(AgentFailure::Forfeit {
                    kind,
                    detail,
                    trace,
                }) => {
                    push_trace(&mut rec, p, trace);
                    rec.status = Status::Forfeit;
                    rec.forfeit = Some(Forfeit {
                        player: p,
                        agent: seat_names[p].to_string(),
                        kind,
                        detail,
                    });
                    break;
                }
                Err(AgentFailure::Infrastructure(e)) => {
                    rec.status = Status::Infrastructure;
                    rec.infrastructure_error = Some(e);
                    break;
                }
            },
        }
    }
    rec.returns = g.returns();
    rec.duration_s = t0.elapsed().as_secs_f64();
    Ok(rec)
}

/// One scheduled match.
#[derive(Clone, Debug)]
pub struct Job {
    /// Game.
    pub game: GameId,
    /// Pairing (indices into the agent list).
    pub pair: (usize, usize),
    /// Index within the pairing.
    pub index: usize,
    /// Record key.
    pub key: String,
}

/// The schedule: every unordered pair of agents, every game both support, `matches` each.
/// Returns the jobs and the (game, agent) combinations skipped as unsupported.
pub fn schedule(cfg: &TournamentConfig, specs: &[AgentSpec]) -> (Vec<Job>, Vec<String>) {
    let mut jobs = Vec::new();
    let mut skipped = Vec::new();
    for &game in &cfg.games {
        for i in 0..specs.len() {
            if !specs[i].supports(game) {
                skipped.push(format!("{} does not play {}", cfg.agents[i], game.id()));
                continue;
            }
            for (j, spec_j) in specs.iter().enumerate().skip(i + 1) {
                if !spec_j.supports(game) {
                    continue;
                }
                for m in 0..cfg.matches {
                    let key = format!("{}|{}|{}|{}", game.id(), cfg.agents[i], cfg.agents[j], m);
                    jobs.push(Job {
                        game,
                        pair: (i, j),
                        index: m,
                        key,
                    });
                }
            }
        }
    }
    (jobs, skipped)
}

/// Reads the records of `path` (missing file: none). Unreadable lines (a torn last line) are skipped.
pub fn read_records(path: &Path) -> Result<Vec<MatchRecord>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = tessera_core::fsx::read_to_string(path)?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str::<MatchRecord>(l).ok())
        .collect())
}

/// The last record per key, dropping infrastructure failures (unscored).
pub fn scored(records: &[MatchRecord]) -> Vec<MatchRecord> {
    let mut last: HashMap<&str, &MatchRecord> = HashMap::new();
    for r in records {
        last.insert(&r.key, r);
    }
    let mut v: Vec<MatchRecord> = last
        .into_values()
        .filter(|r| r.status != Status::Infrastructure)
        .cloned()
        .collect();
    v.sort_by(|a, b| (a.game, &a.key, a.index).cmp(&(b.game, &b.key, b.index)));
    v
}

/// What a tournament run did.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// Where the records are.
    pub records: PathBuf,
    /// Matches scheduled in total.
    pub scheduled: usize,
    /// Matches already finished before this run (skipped).
    pub resumed: usize,
    /// Matches played now.
    pub played: usize,
    /// Of those, infrastructure failures (to retry).
    pub infrastructure_failures: usize,
    /// Unsupported agent/game combinations.
    pub skipped: Vec<String>,
}

/// Resolves every LLM agent's backend through the factory (once per spec).
fn resolve_backends(cfg: &TournamentConfig, specs: &[AgentSpec]) -> Result<BackendMap> {
    let mut map = BackendMap::new();
    for (name, spec) in cfg.agents.iter().zip(specs) {
        if let AgentSpec::Llm { backend, .. } = spec {
            let f = cfg.backends.as_ref().ok_or_else(|| {
                ArenaError::Config(format!("agent '{name}': LLM backends are not available in this build yet (no backend factory plugged in)"))
            })?;
            let b = f(backend).map_err(|e| ArenaError::Config(format!("agent '{name}': {e}")))?;
            map.insert(name.clone(), b);
        }
    }
    Ok(map)
}

/// Runs (or resumes) a tournament writing `out/matches.jsonl`. `on_record` sees each record as it finishes.
pub fn run_tournament(
    cfg: &TournamentConfig,
    out: &Path,
    on_record: &(dyn Fn(&MatchRecord) + Sync),
) -> Result<RunSummary> {
    if cfg.agents.len() < 2 {
        return Err(ArenaError::Config(
            "a tournament needs at least two agents".into(),
        ));
    }
    if cfg.games.is_empty() {
        return Err(ArenaError::Config("no games given".into()));
    }
    let specs: Vec<AgentSpec> = cfg
        .agents
        .iter()
        .map(|a| AgentSpec::parse(a))
        .collect::<Result<_>>()?;
    let mut seen = HashSet::new();
    for a in &cfg.agents {
        if !seen.insert(a) {
            return Err(ArenaError::Config(format!("agent '{a}' is listed twice")));
        }
    }
    let backends = resolve_backends(cfg, &specs)?;
    let path = out.join("matches.jsonl");
    // A run killed mid-write can leave a torn last line: start appending on a fresh line.
    if let Ok(bytes) = std::fs::read(&path) {
        if bytes.last().is_some_and(|&b| b != b'\n') {
            tessera_core::fsx::append_line(&path, "")?;
        }
    }
    let done: HashSet<String> = scored(&read_records(&path)?)
        .into_iter()
        .map(|r| r.key)
        .collect();
    let (jobs, skipped) = schedule(cfg, &specs);
    let pending: Vec<&Job> = jobs.iter().filter(|j| !done.contains(&j.key)).collect();
    let writer = Mutex::new(());
    let infra = std::sync::atomic::AtomicUsize::new(0);
    let bar = tessera_core::progress::bar(pending.len() as u64, "matches");
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(cfg.parallel.max(1))
        .build()
        .map_err(|e| ArenaError::Config(format!("thread pool: {e}")))?;
    let results: Vec<Result<()>> = pool.install(|| {
        pending
            .par_iter()
            .map(|job| {
                let (i, j) = job.pair;
                let (s0, s1) = if job.index < cfg.matches / 2 {
                    (i, j)
                } else {
                    (j, i)
                };
                let seed = tessera_core::rng::derive_seed(cfg.seed, &job.key);
                let mut rec = play_match(
                    job.game,
                    [&specs[s0], &specs[s1]],
                    [&cfg.agents[s0], &cfg.agents[s1]],
                    seed,
                    &backends,
                    &cfg.llm,
                )?;
                rec.key = job.key.clone();
                rec.index = job.index;
                if rec.status == Status::Infrastructure {
                    infra.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                let line = serde_json::to_string(&rec)?;
                {
                    let _guard = writer
                        .lock()
                        .map_err(|_| ArenaError::Config("writer lock poisoned".into()))?;
                    tessera_core::fsx::append_line(&path, &line)?;
                }
                on_record(&rec);
                bar.inc(1);
                Ok(())
            })
            .collect()
    });
    bar.finish_and_clear();
    for r in results {
        r?;
    }
    Ok(RunSummary {
        records: path,
        scheduled: jobs.len(),
        resumed: jobs.len() - pending.len(),
        played: pending.len(),
        infrastructure_failures: infra.into_inner(),
        skipped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::backend::{BackendError, ScriptedBackend};

    #[test]
    fn records_resume_and_seats_swap() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = TournamentConfig::new(
            vec![GameId::TicTacToe, GameId::KuhnPoker],
            vec!["random".into(), "mcts:sims=20".into()],
        );
        cfg.matches = 4;
        cfg.parallel = 2;
        let s = run_tournament(&cfg, dir.path(), &|_| {}).unwrap();
        assert_eq!((s.scheduled, s.played, s.resumed), (8, 8, 0));
        let recs = read_records(&s.records).unwrap();
        assert_eq!(recs.len(), 8);
        let ttt: Vec<_> = recs
            .iter()
            .filter(|r| r.game == GameId::TicTacToe)
            .collect();
        assert_eq!(
            ttt.iter().filter(|r| r.seats[0] == "random").count(),
            2,
            "seats swapped at half"
        );
        let kuhn = recs.iter().find(|r| r.game == GameId::KuhnPoker).unwrap();
        assert!(kuhn.moves[0].chance && kuhn.moves[1].chance && !kuhn.moves[2].chance);
        let again = run_tournament(&cfg, dir.path(), &|_| {}).unwrap();
        assert_eq!((again.played, again.resumed), (0, 8));
        // A torn last line (crash mid-write) loses only that match, which is replayed.
        let text = std::fs::read_to_string(&s.records).unwrap();
        let cut = text.trim_end().rfind('\n').unwrap() + 20;
        std::fs::write(&s.records, &text[..cut]).unwrap();
        let healed = run_tournament(&cfg, dir.path(), &|_| {}).unwrap();
        assert_eq!((healed.played, healed.resumed), (1, 7));
        assert_eq!(scored(&read_records(&s.records).unwrap()).len(), 8);
        // Same seed => same moves (reproducible), independent of parallelism.
        let dir2 = tempfile::tempdir().unwrap();
        cfg.parallel = 1;
        run_tournament(&cfg, dir2.path(), &|_| {}).unwrap();
        let mut a: Vec<_> = recs
            .iter()
            .map(|r| (r.key.clone(), serde_json::to_string(&r.moves).unwrap()))
            .collect();
        let mut b: Vec<_> = read_records(&dir2.path().join("matches.jsonl"))
            .unwrap()
            .iter()
            .map(|r| (r.key.clone(), serde_json::to_string(&r.moves).unwrap()))
            .collect();
        a.sort();
        b.sort();
        assert_eq!(a, b);
    }

    #[test]
    fn unreachable_backend_is_recorded_as_infrastructure_and_retried() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = TournamentConfig::new(
            vec![GameId::TicTacToe],
            vec!["random".into(), "prompt:mock".into()],
        );
        cfg.matches = 2;
        let down: BackendFactory = Arc::new(|_s: &str| {
            Ok(Arc::new(ScriptedBackend::new(vec![Err(
                BackendError::Infrastructure("connection refused".into()),
            )])) as Arc<dyn ChatBackend>)
        });
        cfg.backends = Some(down);
        let s = run_tournament(&cfg, dir.path(), &|_| {}).unwrap();
        assert_eq!(s.infrastructure_failures, 2);
        assert!(scored(&read_records(&s.records).unwrap()).is_empty());
        // The endpoint is back: the two matches are played again; a garbage answer forfeits (R = 0).
        let up: BackendFactory = Arc::new(|_s: &str| {
            Ok(Arc::new(ScriptedBackend::single(&["no idea"; 20])) as Arc<dyn ChatBackend>)
        });
        cfg.backends = Some(up);
        cfg.llm.retries = 0;
        let s = run_tournament(&cfg, dir.path(), &|_| {}).unwrap();
        assert_eq!((s.played, s.infrastructure_failures), (2, 0));
        let recs = scored(&read_records(&s.records).unwrap());
        assert_eq!(recs.len(), 2);
        assert!(recs
            .iter()
            .all(|r| r.status == Status::Forfeit
                && r.forfeit.as_ref().unwrap().agent == "prompt:mock"));
        // Without a factory, LLM specs fail with a clear error.
        cfg.backends = None;
        let err = run_tournament(&cfg, dir.path(), &|_| {})
            .unwrap_err()
            .to_string();
        assert!(err.contains("LLM backends are not available"), "{err}");
        cfg.agents = vec!["random".into(), "alphago".into()];
        assert!(run_tournament(&cfg, dir.path(), &|_| {}).is_err());
    }
}
