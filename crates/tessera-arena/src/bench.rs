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
        let mut s = IsMcts::new(2.0, sims);
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
