//! Matches and tournaments (GTBench `gamingbench/main.py`, made reproducible and resumable).
//!
//! Every pairing of two agents plays `matches` matches per game, seats swapped at half (GTBench's
//! `--exchange-first-player`). The same spec may sit on both seats (self-play): its two entries are labelled
//! `spec#1` and `spec#2` in the records. Each match has its own seed derived from the tournament seed and the
//! pairing, so results do not depend on scheduling.
//!
//! Resume integrity: the output directory holds `settings.json` (everything that defines the matches: games,
//! agents, matches per pairing, seed, LLM options) and the journal `matches.jsonl` ([`tessera_core::journal`]).
//! A rerun with the same settings skips every match whose last record is `ok` or `forfeit` and retries those that
//! failed for infrastructure reasons (unreachable backend, never scored); a rerun with different settings is
//! refused. Match keys carry the seed too (`game|A|B|index|seed=S`), so records of another run never count.
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
use tessera_core::journal::{check_settings, Journal};

/// Tournament settings.
#[derive(Clone)]
pub struct TournamentConfig {
    /// Games to play.
    pub games: Vec<GameId>,
    /// Agents (each unordered pair of entries plays; an entry may repeat for self-play).
    pub agents: Vec<AgentSpec>,
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

/// Matches per pairing of `tessera arena tournament` (GTBench: 50).
pub const DEFAULT_TOURNAMENT_MATCHES: usize = 50;

impl TournamentConfig {
    /// Defaults: 50 matches, seed 0, 1 match at a time.
    pub fn new(games: Vec<GameId>, agents: Vec<AgentSpec>) -> Self {
        TournamentConfig {
            games,
            agents,
            matches: DEFAULT_TOURNAMENT_MATCHES,
            seed: 0,
            parallel: 1,
            llm: LlmOptions::default(),
            backends: None,
        }
    }

    /// The record label of each agent entry: its spec, with `#1`, `#2`, ... when the same spec is listed more
    /// than once (self-play).
    pub fn labels(&self) -> Vec<String> {
        let names: Vec<String> = self.agents.iter().map(|a| a.to_string()).collect();
        let mut seen: HashMap<&str, usize> = HashMap::new();
        names
            .iter()
            .map(|n| {
                let total = names.iter().filter(|m| *m == n).count();
                let k = seen.entry(n).or_insert(0);
                *k += 1;
                if total > 1 {
                    format!("{n}#{k}")
                } else {
                    n.clone()
                }
            })
            .collect()
    }

    /// What defines the matches of this configuration (stored as `settings.json`; not `parallel`, which does
    /// not change results).
    pub fn settings(&self) -> Settings {
        Settings {
            games: self.games.clone(),
            agents: self.labels(),
            matches: self.matches,
            seed: self.seed,
            llm: self.llm.clone(),
        }
    }
}

/// The settings guard of a run directory: a rerun must match them exactly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Games.
    pub games: Vec<GameId>,
    /// Agent labels (specs, `#k` for self-play).
    pub agents: Vec<String>,
    /// Matches per pairing.
    pub matches: usize,
    /// Tournament seed.
    pub seed: u64,
    /// LLM agent options (sampling, retries, SC-CoT samples, ToT breadth).
    pub llm: LlmOptions,
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
    /// Unique key `game|agentA|agentB|index|seed=S` (A, B = pairing order, not seats).
    pub key: String,
    /// Game id.
    pub game: GameId,
    /// Match seed.
    pub seed: u64,
    /// Index within the pairing.
    pub index: usize,
    /// Agent label in seat 0 and seat 1 (the spec, `#k` for self-play).
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

/// Resolved backends per agent label.
type BackendMap = HashMap<String, Arc<dyn ChatBackend>>;

/// Plays one match between `seats[0]` and `seats[1]` (labelled `seat_names`) with `seed`.
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
    /// Record key (includes the seed).
    pub key: String,
    /// The match seed.
    pub seed: u64,
}

/// The schedule: every unordered pair of agent entries, every game both support, `matches` each.
/// Returns the jobs and the (game, agent) combinations skipped as unsupported.
pub fn schedule(cfg: &TournamentConfig) -> (Vec<Job>, Vec<String>) {
    let labels = cfg.labels();
    let specs = &cfg.agents;
    let mut jobs = Vec::new();
    let mut skipped = Vec::new();
    for &game in &cfg.games {
        for i in 0..specs.len() {
            if !specs[i].supports(game) {
                skipped.push(format!("{} does not play {}", labels[i], game.id()));
                continue;
            }
            for (j, spec_j) in specs.iter().enumerate().skip(i + 1) {
                if !spec_j.supports(game) {
                    continue;
                }
                for m in 0..cfg.matches {
                    let pairing = format!("{}|{}|{}|{}", game.id(), labels[i], labels[j], m);
                    jobs.push(Job {
                        game,
                        pair: (i, j),
                        index: m,
                        key: format!("{pairing}|seed={}", cfg.seed),
                        seed: tessera_core::rng::derive_seed(cfg.seed, &pairing),
                    });
                }
            }
        }
    }
    (jobs, skipped)
}

/// Reads the records of a journal (missing file: none); a torn last line is dropped, a corrupt line is an error.
pub fn read_records(path: &Path) -> Result<Vec<MatchRecord>> {
    Ok(Journal::open::<MatchRecord>(path)?.1)
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

/// Resolves every LLM agent's backend through the factory (keyed by label; the factory shares one backend per
/// spec).
fn resolve_backends(cfg: &TournamentConfig, labels: &[String]) -> Result<BackendMap> {
    let mut map = BackendMap::new();
    for (name, spec) in labels.iter().zip(&cfg.agents) {
        if let AgentSpec::Llm { backend, .. } = spec {
            let f = cfg.backends.as_ref().ok_or_else(|| {
                ArenaError::Invalid(format!("agent '{name}': LLM backends are not available in this build yet (no backend factory plugged in)"))
            })?;
            let b = f(backend).map_err(|e| ArenaError::Invalid(format!("agent '{name}': {e}")))?;
            map.insert(name.clone(), b);
        }
    }
    Ok(map)
}

/// Runs (or resumes) a tournament writing `out/settings.json` and `out/matches.jsonl`. `on_record` sees each
/// record as it finishes. A directory holding another configuration's run is refused.
pub fn run_tournament(
    cfg: &TournamentConfig,
    out: &Path,
    on_record: &(dyn Fn(&MatchRecord) + Sync),
) -> Result<RunSummary> {
    if cfg.agents.len() < 2 {
        return Err(ArenaError::Invalid(
            "a tournament needs at least two agents".into(),
        ));
    }
    if cfg.games.is_empty() {
        return Err(ArenaError::Invalid("no games given".into()));
    }
    if cfg.matches == 0 {
        return Err(ArenaError::Invalid("matches must be at least 1".into()));
    }
    let labels = cfg.labels();
    let backends = resolve_backends(cfg, &labels)?;
    std::fs::create_dir_all(out).map_err(|e| tessera_core::Error::io(out, e))?;
    check_settings(&out.join("settings.json"), &cfg.settings()).map_err(|e| {
        let e = match e {
            tessera_core::Error::InvalidInput(m) => m,
            other => other.to_string(),
        };
        ArenaError::Invalid(format!(
            "{e} (this run: seed {}, {} matches per pairing, agents {}; --out {})",
            cfg.seed,
            cfg.matches,
            labels.join(","),
            out.display()
        ))
    })?;
    let (journal, existing) = Journal::open::<MatchRecord>(out.join("matches.jsonl"))?;
    let done: HashSet<String> = scored(&existing).into_iter().map(|r| r.key).collect();
    let (jobs, skipped) = schedule(cfg);
    let pending: Vec<&Job> = jobs.iter().filter(|j| !done.contains(&j.key)).collect();
    let writer = Mutex::new(());
    let infra = std::sync::atomic::AtomicUsize::new(0);
    let bar = tessera_core::progress::bar(pending.len() as u64, "matches");
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(cfg.parallel.max(1))
        .build()
        .map_err(|e| ArenaError::Invalid(format!("thread pool: {e}")))?;
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
                let mut rec = play_match(
                    job.game,
                    [&cfg.agents[s0], &cfg.agents[s1]],
                    [&labels[s0], &labels[s1]],
                    job.seed,
                    &backends,
                    &cfg.llm,
                )?;
                rec.key = job.key.clone();
                rec.index = job.index;
                if rec.status == Status::Infrastructure {
                    infra.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                {
                    let _guard = writer
                        .lock()
                        .map_err(|_| ArenaError::Invalid("writer lock poisoned".into()))?;
                    journal.append(&rec)?;
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
        records: journal.path().to_path_buf(),
        scheduled: jobs.len(),
        resumed: jobs.len() - pending.len(),
        played: pending.len(),
        infrastructure_failures: infra.into_inner(),
        skipped,
    })
}

/// The scored records of this configuration's matches in `out` (the last record per scheduled key).
pub fn scored_for(cfg: &TournamentConfig, out: &Path) -> Result<Vec<MatchRecord>> {
    let keys: HashSet<String> = schedule(cfg).0.into_iter().map(|j| j.key).collect();
    Ok(scored(&read_records(&out.join("matches.jsonl"))?)
        .into_iter()
        .filter(|r| keys.contains(&r.key))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::backend::{BackendError, ScriptedBackend};

    fn specs(names: &[&str]) -> Vec<AgentSpec> {
        names.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn records_resume_and_seats_swap() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = TournamentConfig::new(
            vec![GameId::TicTacToe, GameId::KuhnPoker],
            specs(&["random", "mcts:sims=20"]),
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
        let mut cfg =
            TournamentConfig::new(vec![GameId::TicTacToe], specs(&["random", "prompt:mock"]));
        cfg.matches = 2;
        cfg.llm.retries = 0;
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
        assert!("alphago".parse::<AgentSpec>().is_err());
    }

    #[test]
    fn self_play_gets_distinct_labels() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = TournamentConfig::new(
            vec![GameId::Nim],
            specs(&["random", "random", "mcts:sims=10"]),
        );
        cfg.matches = 2;
        assert_eq!(cfg.labels(), ["random#1", "random#2", "mcts:sims=10"]);
        let s = run_tournament(&cfg, dir.path(), &|_| {}).unwrap();
        assert_eq!(
            s.played, 6,
            "three pairings, including random#1 vs random#2"
        );
        let recs = read_records(&s.records).unwrap();
        let selfplay: Vec<_> = recs
            .iter()
            .filter(|r| {
                r.seats.contains(&"random#1".to_string())
                    && r.seats.contains(&"random#2".to_string())
            })
            .collect();
        assert_eq!(selfplay.len(), 2);
        assert_ne!(
            selfplay[0].seats[0], selfplay[1].seats[0],
            "seats swap in self-play too"
        );
        let m = crate::metrics::compute(&scored(&recs), 0, 10);
        assert_eq!(m.overall.agents.len(), 3);
    }

    #[test]
    fn rerun_with_other_settings_is_refused_and_same_settings_resume() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg =
            TournamentConfig::new(vec![GameId::TicTacToe], specs(&["random", "mcts:sims=10"]));
        cfg.matches = 2;
        let first = run_tournament(&cfg, dir.path(), &|_| {}).unwrap();
        assert!(first.records.ends_with("matches.jsonl"));
        assert!(dir.path().join("settings.json").exists());
        assert!(read_records(&first.records)
            .unwrap()
            .iter()
            .all(|r| r.key.ends_with("|seed=0")));
        for change in 0..3 {
            let mut other = cfg.clone();
            match change {
                0 => other.seed = 1,
                1 => other.matches = 4,
                _ => other.llm.params.temperature = 0.7,
            }
            let err = run_tournament(&other, dir.path(), &|_| {})
                .unwrap_err()
                .to_string();
            assert!(err.contains("different settings"), "{err}");
        }
        // `parallel` does not define matches: resuming with another value is fine and replays nothing.
        cfg.parallel = 2;
        let again = run_tournament(&cfg, dir.path(), &|_| {}).unwrap();
        assert_eq!((again.played, again.resumed), (0, 2));
        assert_eq!(scored_for(&cfg, dir.path()).unwrap().len(), 2);
    }
}
