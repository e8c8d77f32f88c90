//! `tessera bench arena` glue: argument parsing only; the benchmark is `tessera_arena::bench`.
use super::{print_json, Ctx};
use clap::Args;
use tessera_arena::bench;
use tessera_arena::games::{GameId, ALL_GAMES};

/// `tessera bench arena` arguments.
#[derive(Args)]
pub struct BenchArenaArgs {
    /// Games (default: all ten).
    #[arg(long, value_delimiter = ',')]
    pub games: Vec<GameId>,
    /// MCTS simulations per move.
    #[arg(long, default_value_t = tessera_arena::agents::DEFAULT_SIMULATIONS)]
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
    let r = bench::run_bench(&bench::BenchConfig {
        games: if a.games.is_empty() {
            ALL_GAMES.to_vec()
        } else {
            a.games
        },
        sims: a.sims,
        moves: a.moves,
        random_matches: a.random_matches,
        mcts_matches: a.mcts_matches,
        python: a
            .python
            .or_else(|| std::env::var("TESSERA_PYTHON").ok())
            .unwrap_or_else(|| "python3".into()),
        python_moves: a.python_moves,
    })?;
    if a.json {
        print_json(&serde_json::to_value(&r)?);
    } else {
        println!("{}", r.markdown());
    }
    Ok(())
}
