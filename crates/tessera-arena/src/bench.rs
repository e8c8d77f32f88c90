//! Speed measurements for `tessera bench arena`: MCTS time per move and simulations per second on each game's
//! start position, matches per second, and OpenSpiel 1.4's C++ and Python `MCTSBot` timed side by side by
//! `bench/openspiel_mcts.py` (same settings: c = 2, 1000 simulations, one random rollout, solver on).
use crate::agents::ismcts::IsMcts;
use crate::agents::llm::LlmOptions;
use crate::agents::mcts::{Mcts, MctsConfig};
use crate::agents::AgentSpec;
use crate::error::{ArenaError, Result};
use crate::game::{Game, Turn};
use crate::games::{AnyGame, GameId};
use crate::tournament::play_match;
use serde::Serialize;
use std::time::Instant;

/// MCTS speed on one game.
#[derive(Clone, Debug, Serialize)]
pub struct MctsSpeed {
    /// Game id.
    pub game: String,
    /// Searcher used (`mcts` or `ismcts`).
    pub searcher: String,
    /// Mean milliseconds per move (one full search from the start position).
    pub ms_per_move: f64,
    /// Simulations per second.
    pub sims_per_s: f64,
}

/// The start position with chance events resolved to their last outcome (as `bench/openspiel_mcts.py` does;
/// Negotiation, whose instance space is huge, uses instance `seed`).
pub fn start_position(game: GameId, seed: u64) -> AnyGame {
    let mut g = game.initial();
    let mut outcomes = Vec::new();
    while g.turn() == Turn::Chance {
        let a = if game == GameId::Negotiation {
            seed as crate::Action
        } else {
            g.chance_outcomes(&mut outcomes);
            outcomes.last().map(|o| o.0).unwrap_or(0)
        };
        g.apply(a);
    }
    g
}

/// Times `moves` searches of `sims` simulations from the start position (after one warm-up search). Perfect-
/// information games use MCTS with the solver, the others IS-MCTS (what the `mcts` agent plays) unless
/// `true_state` asks for plain MCTS on the true state (the algorithm OpenSpiel's `MCTSBot` runs there).
pub fn mcts_speed(game: GameId, sims: u32, moves: usize, seed: u64, true_state: bool) -> MctsSpeed {
    let g = start_position(game, seed);
    let mut rng = tessera_core::rng::derived(seed, "bench");
    let moves = moves.max(1);
    let player = match g.turn() {
        Turn::Player(p) => p,
        _ => 0,
    };
    let (searcher, total_sims, secs) = if game.imperfect_information() && !true_state {
        let mut s = IsMcts::new(crate::agents::UCT_C, sims);
        s.search(&g, player, &mut rng);
        let t0 = Instant::now();
        for _ in 0..moves {
            std::hint::black_box(s.search(&g, player, &mut rng));
        }
        (
            "ismcts",
            sims as u64 * moves as u64,
            t0.elapsed().as_secs_f64(),
        )
    } else {
        let mut s = Mcts::new(MctsConfig {
            max_simulations: sims,
            max_utility: game.max_utility(),
            ..Default::default()
        });
        s.search(&g, &mut rng);
        let t0 = Instant::now();
        let mut total = 0u64;
        for _ in 0..moves {
            std::hint::black_box(s.search(&g, &mut rng));
            total += s.last_simulations as u64;
        }
        (
            if game.imperfect_information() {
                "mcts (true state)"
            } else {
                "mcts"
            },
            total,
            t0.elapsed().as_secs_f64(),
        )
    };
    MctsSpeed {
        game: game.id().into(),
        searcher: searcher.into(),
        ms_per_move: secs * 1000.0 / moves as f64,
        sims_per_s: total_sims as f64 / secs.max(1e-12),
    }
}

/// Plays `n` matches `a` vs `b` (seats alternating) and returns matches per second.
pub fn matches_per_second(game: GameId, a: &str, b: &str, n: usize, seed: u64) -> Result<f64> {
    let specs = [AgentSpec::parse(a)?, AgentSpec::parse(b)?];
    let opts = LlmOptions::default();
    let backends = Default::default();
    let t0 = Instant::now();
    for i in 0..n.max(1) {
        let s = tessera_core::rng::derive_seed(seed, &format!("bench-match{i}"));
        let (x, y) = if i % 2 == 0 { (0, 1) } else { (1, 0) };
        play_match(
            game,
            [&specs[x], &specs[y]],
            [[a, b][x], [a, b][y]],
            s,
            &backends,
            &opts,
        )?;
    }
    Ok(n.max(1) as f64 / t0.elapsed().as_secs_f64().max(1e-12))
}

/// The OpenSpiel timing script (also in `bench/openspiel_mcts.py`).
pub const OPENSPIEL_SCRIPT: &str = include_str!("../bench/openspiel_mcts.py");

/// Runs the OpenSpiel script with `python`; returns its JSON (`{"skipped": ..}` when open_spiel is missing).
pub fn openspiel_times(
    python: &str,
    games: &[GameId],
    sims: u32,
    cpp_moves: usize,
    python_moves: usize,
) -> Result<serde_json::Value> {
    let dir = tempfile_dir()?;
    let script = dir.join("openspiel_mcts.py");
    tessera_core::fsx::write_atomic(&script, OPENSPIEL_SCRIPT.as_bytes())?;
    let ids: Vec<&str> = games.iter().map(|g| g.id()).collect();
    let out = std::process::Command::new(python)
        .arg(&script)
        .args(["--games", &ids.join(","), "--sims", &sims.to_string()])
        .args([
            "--cpp-moves",
            &cpp_moves.to_string(),
            "--python-moves",
            &python_moves.to_string(),
        ])
        .output();
    let _ = std::fs::remove_dir_all(&dir);
    let out = match out {
        Ok(o) => o,
        Err(e) => return Ok(serde_json::json!({ "skipped": format!("cannot run {python}: {e}") })),
    };
    let text = String::from_utf8_lossy(&out.stdout);
    match text
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
    {
        Some(v) => Ok(v),
        None => Ok(
            serde_json::json!({ "skipped": format!("{python} failed: {}", String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("")) }),
        ),
    }
}

fn tempfile_dir() -> Result<std::path::PathBuf> {
    let d = std::env::temp_dir().join(format!("tessera-arena-bench-{}", std::process::id()));
    std::fs::create_dir_all(&d).map_err(|e| ArenaError::Core(tessera_core::Error::io(&d, e)))?;
    Ok(d)
}

/// Settings of `tessera bench arena`.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// Games to time.
    pub games: Vec<GameId>,
    /// MCTS simulations per move.
    pub sims: u32,
    /// Timed searches per game.
    pub moves: usize,
    /// Random-vs-random matches timed per game.
    pub random_matches: usize,
    /// MCTS-vs-random matches timed per game.
    pub mcts_matches: usize,
    /// Python with open_spiel 1.4 for the side-by-side comparison.
    pub python: String,
    /// Timed moves of OpenSpiel's Python MCTSBot per game.
    pub python_moves: usize,
}

/// One row of the speed table.
#[derive(Clone, Debug, Serialize)]
pub struct BenchRow {
    /// Game id.
    pub game: String,
    /// Tessera's MCTS timing.
    pub mcts: MctsSpeed,
    /// OpenSpiel C++ ms per move (comparable rows only).
    pub openspiel_cpp_ms: Option<f64>,
    /// OpenSpiel Python ms per move (comparable rows only).
    pub openspiel_python_ms: Option<f64>,
    /// Random-vs-random matches per second.
    pub random_vs_random_matches_per_s: f64,
    /// MCTS-vs-random matches per second.
    pub mcts_vs_random_matches_per_s: f64,
}

/// The result of [`run_bench`]; serialises to `{sims, games: [BenchRow], openspiel}`.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    /// Simulations per move.
    pub sims: u32,
    /// Rows (imperfect-information games get a second, true-state row when OpenSpiel timed them).
    pub games: Vec<BenchRow>,
    /// The OpenSpiel script's raw output.
    pub openspiel: serde_json::Value,
}

/// Times Tessera's MCTS and match throughput per game, next to OpenSpiel's `MCTSBot`.
pub fn run_bench(cfg: &BenchConfig) -> Result<BenchReport> {
    let os = openspiel_times(
        &cfg.python,
        &cfg.games,
        cfg.sims,
        cfg.moves,
        cfg.python_moves,
    )?;
    let mut rows = Vec::new();
    for &g in &cfg.games {
        let rr = matches_per_second(g, "random", "random", cfg.random_matches, 2)?;
        let mcts = format!("mcts:sims={}", cfg.sims);
        let mr = matches_per_second(g, &mcts, "random", cfg.mcts_matches, 3)?;
        let cpp = os.get(g.id()).and_then(|v| v["cpp_ms"].as_f64());
        let py = os.get(g.id()).and_then(|v| v["python_ms"].as_f64());
        let mut variants = vec![false];
        if g.imperfect_information() && cpp.is_some() {
            variants.push(true);
        }
        for true_state in variants {
            let comparable = !g.imperfect_information() || true_state;
            rows.push(BenchRow {
                game: g.id().to_string(),
                mcts: mcts_speed(g, cfg.sims, cfg.moves, 1, true_state),
                openspiel_cpp_ms: cpp.filter(|_| comparable),
                openspiel_python_ms: py.filter(|_| comparable),
                random_vs_random_matches_per_s: rr,
                mcts_vs_random_matches_per_s: mr,
            });
        }
    }
    Ok(BenchReport {
        sims: cfg.sims,
        games: rows,
        openspiel: os,
    })
}

impl BenchReport {
    /// The side-by-side table (speedup = OpenSpiel ms / Tessera ms), with a header line.
    pub fn markdown(&self) -> String {
        let cell = |x: Option<f64>| x.map(|v| format!("{v:.2}")).unwrap_or_else(|| "–".into());
        let rows: Vec<Vec<String>> = self
            .games
            .iter()
            .map(|r| {
                let ratio = |x: Option<f64>| {
                    x.map(|v| format!("{:.1}×", v / r.mcts.ms_per_move))
                        .unwrap_or_else(|| "–".into())
                };
                vec![
                    r.game.clone(),
                    r.mcts.searcher.clone(),
                    format!("{:.3}", r.mcts.ms_per_move),
                    format!("{:.0}", r.mcts.sims_per_s),
                    cell(r.openspiel_cpp_ms),
                    ratio(r.openspiel_cpp_ms),
                    cell(r.openspiel_python_ms),
                    ratio(r.openspiel_python_ms),
                    format!("{:.0}", r.random_vs_random_matches_per_s),
                    format!("{:.2}", r.mcts_vs_random_matches_per_s),
                ]
            })
            .collect();
        let mut s = String::new();
        if let Some(x) = self.openspiel.get("skipped") {
            s.push_str(&format!(
                "OpenSpiel comparison skipped: {}\n",
                x.as_str().unwrap_or("")
            ));
        }
        s.push_str(&format!("MCTS c={}, {} simulations, 1 random rollout, solver on (OpenSpiel settings); start positions; speedup = OpenSpiel ms / Tessera ms\n", crate::agents::UCT_C, self.sims));
        s.push_str(&tessera_core::report::markdown_table(
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
                "mcts-vs-random matches/s",
            ],
            &rows,
        ));
        s
    }
}
