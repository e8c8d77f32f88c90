//! Agents: [`Agent`] is what plays a seat; [`AgentSpec`] is how configs name agents (`random`, `mcts`,
//! `ismcts`, `mcts_clairvoyant`, `cfr`, `cfr+`, `tft`, and LLM agents `prompt|cot|sccot|tot[+legal]:<backend>`).
//! Specs are parsed once at the edge ([`std::str::FromStr`]) and print back canonically ([`std::fmt::Display`]).
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

/// UCT exploration constant of every MCTS agent (GTBench/OpenSpiel `uct_c = 2`).
pub const UCT_C: f64 = 2.0;

/// Simulations per move of the MCTS agents unless a spec says `:sims=N` (GTBench: 1000).
pub const DEFAULT_SIMULATIONS: u32 = 1000;

/// The agent specs `AgentSpec` accepts, for help texts.
pub const AGENT_SPECS_HELP: &str = "random, mcts[:sims=N] (IS-MCTS on imperfect-information games), ismcts[:sims=N], mcts_clairvoyant[:sims=N], cfr, cfr+ (kuhn_poker), tft (prisoners_dilemma), prompt|cot|sccot|tot:<backend> (free text, GTBench), prompt+legal|cot+legal|sccot+legal:<backend> (answer chosen among the legal moves by log-likelihood)";

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

impl LlmKind {
    /// The spec name (`prompt`, `cot`, `sccot`, `tot`).
    pub fn name(self) -> &'static str {
        match self {
            LlmKind::Prompt => "prompt",
            LlmKind::Cot => "cot",
            LlmKind::ScCot => "sccot",
            LlmKind::Tot => "tot",
        }
    }
}

impl std::fmt::Display for LlmKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for LlmKind {
    type Err = ArenaError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "prompt" => Ok(LlmKind::Prompt),
            "cot" => Ok(LlmKind::Cot),
            "sccot" | "sc-cot" => Ok(LlmKind::ScCot),
            "tot" => Ok(LlmKind::Tot),
            _ => Err(ArenaError::Invalid(format!(
                "unknown LLM agent kind '{s}' (known: prompt, cot, sccot, tot)"
            ))),
        }
    }
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
        /// Legal-move decoding (`+legal`): the answer is the legal move whose answer string the model finds most
        /// likely (after the prompt, or after its own thought for CoT), so the agent never forfeits.
        legal: bool,
        /// Backend spec handed to the backend factory.
        backend: String,
    },
}

fn sims_option(rest: Option<&str>, spec: &str) -> Result<u32> {
    match rest {
        None => Ok(DEFAULT_SIMULATIONS),
        Some(r) => r
            .strip_prefix("sims=")
            .and_then(|n| n.parse::<u32>().ok())
            .filter(|&n| n > 0)
            .ok_or_else(|| {
                ArenaError::Invalid(format!(
                    "agent '{spec}': expected '<name>:sims=N' with N > 0"
                ))
            }),
    }
}

impl AgentSpec {
    /// Parses an agent spec (same as [`str::parse`]).
    pub fn parse(spec: &str) -> Result<Self> {
        let spec = spec.trim();
        let (head, rest) = match spec.split_once(':') {
            Some((h, r)) => (h, Some(r)),
            None => (spec, None),
        };
        let plain = rest.is_none();
        match head {
            "random" if plain => Ok(AgentSpec::Random),
            "mcts" => Ok(AgentSpec::Mcts {
                sims: sims_option(rest, spec)?,
            }),
            "ismcts" => Ok(AgentSpec::IsMcts {
                sims: sims_option(rest, spec)?,
            }),
            "mcts_clairvoyant" => Ok(AgentSpec::MctsClairvoyant {
                sims: sims_option(rest, spec)?,
            }),
            "cfr" if plain => Ok(AgentSpec::Cfr { plus: false }),
            "cfr+" | "cfrplus" if plain => Ok(AgentSpec::Cfr { plus: true }),
            "tft" if plain => Ok(AgentSpec::TitForTat),
            _ => {
                let (kind, legal) = match head.strip_suffix("+legal") {
                    Some(k) => (k, true),
                    None => (head, false),
                };
                let kind: LlmKind = kind.parse().map_err(|_| {
                    ArenaError::Invalid(format!(
                        "unknown agent '{spec}' (known: {AGENT_SPECS_HELP})"
                    ))
                })?;
                if legal && kind == LlmKind::Tot {
                    return Err(ArenaError::Invalid(format!(
                        "agent '{spec}': legal-move decoding is offered for prompt, cot and sccot, not tot"
                    )));
                }
                match rest {
                    Some(b) if !b.trim().is_empty() => Ok(AgentSpec::Llm {
                        kind,
                        legal,
                        backend: b.trim().to_string(),
                    }),
                    _ => Err(ArenaError::Invalid(format!(
                        "agent '{spec}': LLM agents need a backend, e.g. '{head}:local:smollm2-135m'"
                    ))),
                }
            }
        }
    }

    /// A short kind name for tables of timings: `random`, `mcts`, `prompt+legal`, ... (no backend or options).
    pub fn kind_name(&self) -> String {
        match self {
            AgentSpec::Llm { kind, legal, .. } => {
                format!("{kind}{}", if *legal { "+legal" } else { "" })
            }
            other => {
                let s = other.to_string();
                s.split(':').next().unwrap_or("").to_string()
            }
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
                search: ismcts::IsMcts::new(UCT_C, *sims),
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
                search: ismcts::IsMcts::new(UCT_C, *sims),
            }),
            AgentSpec::Cfr { plus } => {
                if game != GameId::KuhnPoker {
                    return Err(ArenaError::Invalid("cfr plays kuhn_poker only".into()));
                }
                Box::new(CfrAgent {
                    rng,
                    solver: kuhn_solver(*plus),
                })
            }
            AgentSpec::TitForTat => {
                if game != GameId::PrisonersDilemma {
                    return Err(ArenaError::Invalid(
                        "tft plays prisoners_dilemma only".into(),
                    ));
                }
                Box::new(TitForTat)
            }
            AgentSpec::Llm {
                kind,
                legal,
                backend: name,
            } => {
                let b = backend.ok_or_else(|| {
                    ArenaError::Invalid(format!(
                        "agent '{name}': no chat backend available for this spec"
                    ))
                })?;
                let mut a = llm::LlmAgent::new(*kind, game, b, opts.clone(), seed);
                a.legal = *legal;
                Box::new(a)
            }
        })
    }
}

impl std::fmt::Display for AgentSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sims = |f: &mut std::fmt::Formatter<'_>, name: &str, n: u32| {
            if n == DEFAULT_SIMULATIONS {
                f.write_str(name)
            } else {
                write!(f, "{name}:sims={n}")
            }
        };
        match self {
            AgentSpec::Random => f.write_str("random"),
            AgentSpec::Mcts { sims: n } => sims(f, "mcts", *n),
            AgentSpec::IsMcts { sims: n } => sims(f, "ismcts", *n),
            AgentSpec::MctsClairvoyant { sims: n } => sims(f, "mcts_clairvoyant", *n),
            AgentSpec::Cfr { plus } => f.write_str(if *plus { "cfr+" } else { "cfr" }),
            AgentSpec::TitForTat => f.write_str("tft"),
            AgentSpec::Llm {
                kind,
                legal,
                backend,
            } => write!(f, "{kind}{}:{backend}", if *legal { "+legal" } else { "" }),
        }
    }
}

impl std::str::FromStr for AgentSpec {
    type Err = ArenaError;
    fn from_str(s: &str) -> Result<Self> {
        AgentSpec::parse(s)
    }
}

impl serde::Serialize for AgentSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for AgentSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
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
            AgentSpec::Mcts {
                sims: DEFAULT_SIMULATIONS
            }
        );
        assert_eq!(
            AgentSpec::parse("ismcts:sims=50").unwrap(),
            AgentSpec::IsMcts { sims: 50 }
        );
        assert_eq!(
            AgentSpec::parse("cot:local:smollm2-135m").unwrap(),
            AgentSpec::Llm {
                kind: LlmKind::Cot,
                legal: false,
                backend: "local:smollm2-135m".into()
            }
        );
        for bad in [
            "alphazero",
            "mcts:sims=0",
            "cot",
            "random:x",
            "tft:1",
            "tot+legal:mock",
            "chess+legal:mock",
        ] {
            assert!(AgentSpec::parse(bad).is_err(), "{bad}");
        }
        assert!(!AgentSpec::TitForTat.supports(GameId::Nim));
        // Parsed once, printed back canonically, round trips.
        for s in [
            "random",
            "mcts",
            "mcts:sims=50",
            "ismcts",
            "mcts_clairvoyant",
            "cfr",
            "cfr+",
            "tft",
            "prompt:local:smollm2-135m",
            "sccot+legal:openai:http://h:1/v1#m",
            "cot+legal:mock",
        ] {
            let a: AgentSpec = s.parse().unwrap();
            assert_eq!(a.to_string(), s);
            assert_eq!(a.to_string().parse::<AgentSpec>().unwrap(), a);
        }
        assert_eq!(
            "sc-cot+legal:m".parse::<AgentSpec>().unwrap(),
            AgentSpec::Llm {
                kind: LlmKind::ScCot,
                legal: true,
                backend: "m".into()
            }
        );
        assert_eq!(
            "mcts:sims=1000".parse::<AgentSpec>().unwrap().to_string(),
            "mcts"
        );
        assert_eq!(
            "prompt+legal:x".parse::<AgentSpec>().unwrap().kind_name(),
            "prompt+legal"
        );
        assert_eq!(
            "mcts:sims=5".parse::<AgentSpec>().unwrap().kind_name(),
            "mcts"
        );
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
