//! Agents: [`Agent`] is what plays a seat; [`AgentSpec`] is how configs name agents (`random`, `mcts`,
//! `ismcts`, `mcts_clairvoyant`, `cfr`, `cfr+`, `tft`, and LLM agents `prompt|cot|sccot|tot:<backend spec>`).
pub mod backend;
pub mod cfr;
pub mod ismcts;
pub mod llm;
pub mod mcts;
pub mod parse;

use crate::error::{ArenaError, Result};
use crate::game::{Action, Game};
use crate::games::{AnyGame, GameId, KuhnPoker};
use backend::ChatBackend;
use rand::Rng as _;
use std::sync::{Arc, OnceLock};
use tessera_core::rng::Rng;

/// One decision of an agent.
#[derive(Debug, Clone)]
pub struct Decision {
    /// The chosen (legal) action.
    pub action: Action,
    /// For LLM agents: prompts, raw outputs and parse errors of every attempt.
    pub trace: Option<llm::LlmTrace>,
}

impl Decision {
    fn plain(action: Action) -> Self {
        Decision {
            action,
            trace: None,
        }
    }
}

/// Machine-detectable forfeit kinds (the error-profile tally).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForfeitKind {
    /// No move in the documented format.
    NoMove,
    /// Several different moves in one answer.
    MultipleMoves,
    /// A well-formed but illegal move.
    Illegal,
    /// The backend refused the request (not an infrastructure failure).
    BackendRefusal,
}

/// Why an agent produced no move.
#[derive(Debug, Clone)]
pub enum AgentFailure {
    /// The agent is at fault: the match ends as a forfeit attributed to it.
    Forfeit {
        /// What went wrong.
        kind: ForfeitKind,
        /// Human-readable detail.
        detail: String,
        /// The LLM exchange that led to it.
        trace: Option<llm::LlmTrace>,
    },
    /// The backend was unreachable: the match is recorded as an infrastructure failure and retried on resume.
    Infrastructure(String),
}

/// A player of one seat in one match.
pub trait Agent: Send {
    /// Chooses a legal action for `player` at `state`.
    fn act(&mut self, state: &AnyGame, player: usize) -> Result<Decision, AgentFailure>;
}

/// The kind of LLM agent (paper §2.1, "LLM agents").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LlmKind {
    /// Answer directly.
    Prompt,
    /// Chain-of-thought, then the move.
    Cot,
    /// Self-consistent CoT: n samples, majority vote.
    ScCot,
    /// Tree-of-thought: propose, vote, select.
    Tot,
}

/// A parsed agent name.
#[derive(Clone, Debug, PartialEq)]
pub enum AgentSpec {
    /// Uniformly random legal moves.
    Random,
    /// MCTS (UCT, solver) on perfect-information games and IS-MCTS on the others.
    Mcts {
        /// Simulations per move.
        sims: u32,
    },
    /// Information-set MCTS on every game.
    IsMcts {
        /// Simulations per move.
        sims: u32,
    },
    /// MCTS on the true state even in imperfect-information games (GTBench's clairvoyant opponent; for study).
    MctsClairvoyant {
        /// Simulations per move.
        sims: u32,
    },
    /// CFR (or CFR+) average strategy, Kuhn Poker only.
    Cfr {
        /// CFR+ instead of vanilla CFR.
        plus: bool,
    },
    /// Tit-for-Tat, Iterated Prisoner's Dilemma only.
    TitForTat,
    /// An LLM agent over a chat backend named by `backend` (e.g. `local:smollm2-135m`).
    Llm {
        /// Prompting method.
        kind: LlmKind,
        /// Backend spec handed to the backend factory.
        backend: String,
    },
}

fn sims_option(rest: Option<&str>, spec: &str) -> Result<u32> {
    match rest {
        None => Ok(1000),
        Some(r) => r
            .strip_prefix("sims=")
            .and_then(|n| n.parse::<u32>().ok())
            .filter(|&n| n > 0)
            .ok_or_else(|| {
                ArenaError::Config(format!(
                    "agent '{spec}': expected '<name>:sims=N' with N > 0"
                ))
            }),
    }
}

impl AgentSpec {
    /// Parses an agent spec.
    pub fn parse(spec: &str) -> Result<Self> {
        let spec = spec.trim();
        let (head, rest) = match spec.split_once(':') {
            Some((h, r)) => (h, Some(r)),
            None => (spec, None),
        };
        let llm = |kind| match rest {
            Some(b) if !b.is_empty() => Ok(AgentSpec::Llm {
                kind,
                backend: b.to_string(),
            }),
            _ => Err(ArenaError::Config(format!(
                "agent '{spec}': LLM agents need a backend, e.g. '{head}:local:smollm2-135m'"
            ))),
        };
        match head {
            "random" if rest.is_none() => Ok(AgentSpec::Random),
            "mcts" => Ok(AgentSpec::Mcts { sims: sims_option(rest, spec)? }),
            "ismcts" => Ok(AgentSpec::IsMcts { sims: sims_option(rest, spec)? }),
            "mcts_clairvoyant" => Ok(AgentSpec::MctsClairvoyant { sims: sims_option(rest, spec)? }),
            "cfr" if rest.is_none() => Ok(AgentSpec::Cfr { plus: false }),
            "cfr+" | "cfrplus" if rest.is_none() => Ok(AgentSpec::Cfr { plus: true }),
            "tft" if rest.is_none() => Ok(AgentSpec::TitForTat),
            "prompt" => llm(LlmKind::Prompt),
            "cot" => llm(LlmKind::Cot),
            "sccot" | "sc-cot" => llm(LlmKind::ScCot),
            "tot" => llm(LlmKind::Tot),
            _ => Err(ArenaError::Config(format!(
                "unknown agent '{spec}' (known: random, mcts[:sims=N], ismcts[:sims=N], mcts_clairvoyant, cfr, cfr+, tft, prompt|cot|sccot|tot:<backend>)"
            ))),
        }
    }

    /// Whether the agent can play `game` (CFR: Kuhn Poker only; Tit-for-Tat: IPD only).
    pub fn supports(&self, game: GameId) -> bool {
        match self {
            AgentSpec::Cfr { .. } => game == GameId::KuhnPoker,
            AgentSpec::TitForTat => game == GameId::PrisonersDilemma,
            _ => true,
        }
    }

    /// Whether this is an LLM agent.
    pub fn is_llm(&self) -> bool {
        matches!(self, AgentSpec::Llm { .. })
    }

    /// Instantiates the agent for one match. LLM agents need `backend`.
    pub fn build(
        &self,
        game: GameId,
        seed: u64,
        backend: Option<Arc<dyn ChatBackend>>,
        opts: &llm::LlmOptions,
    ) -> Result<Box<dyn Agent>> {
        let rng = tessera_core::rng::seeded(seed);
        let max_utility = game.max_utility();
        Ok(match self {
            AgentSpec::Random => Box::new(RandomAgent { rng }),
            AgentSpec::Mcts { sims } if game.imperfect_information() => Box::new(IsMctsAgent {
                rng,
                search: ismcts::IsMcts::new(2.0, *sims),
            }),
            AgentSpec::Mcts { sims } | AgentSpec::MctsClairvoyant { sims } => Box::new(MctsAgent {
                rng,
                search: mcts::Mcts::new(mcts::MctsConfig {
                    max_simulations: *sims,
                    max_utility,
                    ..Default::default()
                }),
            }),
            AgentSpec::IsMcts { sims } => Box::new(IsMctsAgent {
                rng,
                search: ismcts::IsMcts::new(2.0, *sims),
            }),
            AgentSpec::Cfr { plus } => {
                if game != GameId::KuhnPoker {
                    return Err(ArenaError::Config("cfr plays kuhn_poker only".into()));
                }
                Box::new(CfrAgent {
                    rng,
                    solver: kuhn_solver(*plus),
                })
            }
            AgentSpec::TitForTat => {
                if game != GameId::PrisonersDilemma {
                    return Err(ArenaError::Config(
                        "tft plays prisoners_dilemma only".into(),
                    ));
                }
                Box::new(TitForTat)
            }
            AgentSpec::Llm {
                kind,
                backend: name,
            } => {
                let b = backend.ok_or_else(|| {
                    ArenaError::Config(format!(
                        "agent '{name}': no chat backend available for this spec"
                    ))
                })?;
                Box::new(llm::LlmAgent::new(*kind, game, b, opts.clone(), seed))
            }
        })
    }
}

/// Uniformly random legal moves.
pub struct RandomAgent {
    rng: Rng,
}

impl Agent for RandomAgent {
    fn act(&mut self, state: &AnyGame, _player: usize) -> Result<Decision, AgentFailure> {
        let legal = crate::game::legal(state);
        Ok(Decision::plain(legal[self.rng.gen_range(0..legal.len())]))
    }
}

/// MCTS on the (true) state.
pub struct MctsAgent {
    rng: Rng,
    search: mcts::Mcts,
}

impl Agent for MctsAgent {
    fn act(&mut self, state: &AnyGame, _player: usize) -> Result<Decision, AgentFailure> {
        Ok(Decision::plain(self.search.search(state, &mut self.rng)))
    }
}

/// Information-set MCTS.
pub struct IsMctsAgent {
    rng: Rng,
    search: ismcts::IsMcts,
}

impl Agent for IsMctsAgent {
    fn act(&mut self, state: &AnyGame, player: usize) -> Result<Decision, AgentFailure> {
        Ok(Decision::plain(self.search.search(
            state,
            player,
            &mut self.rng,
        )))
    }
}

/// Iterations used to solve Kuhn Poker for the CFR agents.
pub const KUHN_CFR_ITERATIONS: u64 = 2000;

/// The process-wide solved Kuhn Poker (trained once on first use).
pub fn kuhn_solver(plus: bool) -> &'static cfr::Cfr<KuhnPoker> {
    static CFR: OnceLock<cfr::Cfr<KuhnPoker>> = OnceLock::new();
    static CFR_PLUS: OnceLock<cfr::Cfr<KuhnPoker>> = OnceLock::new();
    let cell = if plus { &CFR_PLUS } else { &CFR };
    cell.get_or_init(|| {
        let mut s = cfr::Cfr::new(KuhnPoker::default(), plus);
        s.run(KUHN_CFR_ITERATIONS);
        s
    })
}

/// Plays CFR's average strategy (sampled).
pub struct CfrAgent {
    rng: Rng,
    solver: &'static cfr::Cfr<KuhnPoker>,
}

impl Agent for CfrAgent {
    fn act(&mut self, state: &AnyGame, player: usize) -> Result<Decision, AgentFailure> {
        let legal = crate::game::legal(state);
        let policy = self
            .solver
            .policy(player, state.info_key(player))
            .unwrap_or_default();
        let mut u: f64 = self.rng.gen();
        for (a, p) in &policy {
            if u < *p && legal.contains(a) {
                return Ok(Decision::plain(*a));
            }
            u -= p;
        }
        Ok(Decision::plain(
            policy
                .last()
                .map(|x| x.0)
                .filter(|a| legal.contains(a))
                .unwrap_or(legal[0]),
        ))
    }
}

/// Tit-for-Tat: cooperate first, then repeat the opponent's previous move.
pub struct TitForTat;

impl Agent for TitForTat {
    fn act(&mut self, state: &AnyGame, player: usize) -> Result<Decision, AgentFailure> {
        let a = match state {
            AnyGame::PrisonersDilemma(g) => {
                g.last_round().map(|m| m[1 - player] as Action).unwrap_or(0)
            }
            _ => crate::game::legal(state)[0],
        };
        Ok(Decision::plain(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_reject_unknown_names() {
        assert_eq!(
            AgentSpec::parse("mcts").unwrap(),
            AgentSpec::Mcts { sims: 1000 }
        );
        assert_eq!(
            AgentSpec::parse("ismcts:sims=50").unwrap(),
            AgentSpec::IsMcts { sims: 50 }
        );
        assert_eq!(
            AgentSpec::parse("cot:local:smollm2-135m").unwrap(),
            AgentSpec::Llm {
                kind: LlmKind::Cot,
                backend: "local:smollm2-135m".into()
            }
        );
        for bad in ["alphazero", "mcts:sims=0", "cot", "random:x", "tft:1"] {
            assert!(AgentSpec::parse(bad).is_err(), "{bad}");
        }
        assert!(!AgentSpec::TitForTat.supports(GameId::Nim));
    }

    #[test]
    fn tit_for_tat_copies_the_opponent() {
        let mut g = GameId::PrisonersDilemma.initial();
        let mut t = TitForTat;
        assert_eq!(t.act(&g, 1).unwrap().action, 0);
        g.apply(1); // player 0 defects
        g.apply(0);
        g.apply(0); // continue
        assert_eq!(t.act(&g, 1).unwrap().action, 1);
        assert_eq!(t.act(&g, 0).unwrap().action, 0);
    }
}
