//! Tessera arena: a native-Rust re-implementation of **GTBench** (Duan et al., "GTBench: Uncovering the
//! Strategic Reasoning Limitations of LLMs via Game-Theoretic Evaluations", NeurIPS 2024).
//!
//! - [`game`]: the one [`game::Game`] trait; [`games`]: the ten games of the paper's Table 1 with OpenSpiel 1.4
//!   rules.
//! - [`agents`]: Random, MCTS (UCT + MCTS-Solver), information-set MCTS, CFR/CFR+, Tit-for-Tat, LLM agents.
//! - [`tournament`]: matches, JSONL records, resume with a settings guard; [`metrics`]: NRA (§2.2), Elo,
//!   Bradley–Terry, regret.
//! - [`runner`]: the typed entry points ([`ArenaConfig`] → [`run`] → [`ArenaRun`], [`recompute`], [`tour`]).
#![deny(missing_docs)]

pub mod agents;
pub mod bench;
pub mod error;
pub mod game;
pub mod games;
pub mod metrics;
pub mod report;
pub mod runner;
pub mod tournament;

pub use error::{ArenaError, Result};
pub use game::{Action, Game, Turn};
pub use games::{AnyGame, GameId, ALL_GAMES};
pub use runner::{recompute, run, tour, ArenaConfig, ArenaRun, TourSection};
