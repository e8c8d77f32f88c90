//! LLM agents (GTBench paper §2.1 "LLM agents"): Prompt, Chain-of-Thought (CoT), Self-Consistent CoT (SC-CoT)
//! and Tree-of-Thought (ToT), over any [`ChatBackend`].
//!
//! The prompt holds the game's real rules ([`GameId::rules`]), the player's observation (with a rendered board
//! for board games), the legal moves, and the documented answer format ([`GameId::action_format`]).
//! - Prompt: answer `Action: <move>` directly.
//! - CoT: `Thought: ...` then `Action: <move>`.
//! - SC-CoT: `n` CoT samples and a true majority vote over the parsed legal moves (GTBench's released code
//!   plays the last parsable sample instead; ties here go to the move first reached in sample order).
//! - ToT: propose `breadth` CoT candidates, ask `breadth` votes "The best choice is i", select the most-voted.
//!
//! With legal-move decoding (`+legal`, beyond GTBench) the final answer is not parsed from free text: every legal
//! move's answer string `Action: <move>` is scored by the backend (its log-likelihood as the reply, after the
//! prompt for Prompt, after the model's own generated thought for CoT; SC-CoT votes over the per-sample choices),
//! and the most likely legal move is played, as lm-eval-harness scores multiple choice. Such an agent cannot
//! forfeit by a malformed or illegal answer.
//!
//! An unparsable, ambiguous or illegal answer is fed back with the error and asked again, up to `retries` times
//! (`retries = 0` reproduces GTBench, which aborts at the first bad move); then the agent forfeits. A backend
//! that cannot be reached is an infrastructure failure, never a forfeit. A single legal move is played without
//! asking the model, as GTBench does.
use super::backend::{BackendError, ChatBackend, ChatMessage, ChatParams};
use super::parse::{parse_action, ParseError};
use super::{Agent, AgentFailure, Decision, ForfeitKind, LlmKind};
use crate::game::{legal, Action, Game};
use crate::games::{AnyGame, GameId};
use serde::Serialize;
use std::sync::Arc;

/// GTBench's sampling temperature.
pub const GTBENCH_TEMPERATURE: f64 = 0.2;
/// GTBench's token limit per answer.
pub const GTBENCH_MAX_TOKENS: usize = 1024;
/// GTBench's SC-CoT sample count.
pub const GTBENCH_SC_SAMPLES: usize = 5;
/// GTBench's ToT breadth (proposals and votes).
pub const GTBENCH_TOT_BREADTH: usize = 3;
/// Re-asks after an invalid free-text answer before forfeiting, by default (GTBench: 0).
pub const DEFAULT_RETRIES: u32 = 1;

/// LLM agent options.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct LlmOptions {
    /// Re-asks after an invalid answer before forfeiting (0 = GTBench behaviour).
    pub retries: u32,
    /// SC-CoT samples (GTBench: 5).
    pub sc_samples: usize,
    /// ToT proposals and votes (GTBench: 3).
    pub tot_breadth: usize,
    /// Sampling parameters (GTBench: temperature 0.2, 1024 tokens).
    pub params: ChatParams,
}

impl Default for LlmOptions {
    fn default() -> Self {
        LlmOptions {
            retries: DEFAULT_RETRIES,
            sc_samples: GTBENCH_SC_SAMPLES,
            tot_breadth: GTBENCH_TOT_BREADTH,
            params: ChatParams {
                temperature: GTBENCH_TEMPERATURE,
                max_tokens: GTBENCH_MAX_TOKENS,
                ..ChatParams::default()
            },
        }
    }
}

/// One request to the backend and what came of it.
#[derive(Clone, Debug, Serialize)]
pub struct Attempt {
    /// `answer`, `propose`, `vote`, `think` (legal-move decoding's thought) or `score`.
    pub stage: String,
    /// The conversation sent.
    pub messages: Vec<ChatMessage>,
    /// Raw completions.
    pub outputs: Vec<String>,
    /// Parse error of the answer, if any.
    pub error: Option<ParseError>,
    /// Legal-move decoding: each legal move and its log-likelihood.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub scores: Vec<(String, f64)>,
}

/// Everything an LLM agent did for one decision.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LlmTrace {
    /// Requests in order.
    pub attempts: Vec<Attempt>,
    /// Invalid answers that were fed back and retried.
    pub retries: u32,
}

/// An LLM agent.
pub struct LlmAgent {
    kind: LlmKind,
    game: GameId,
    backend: Arc<dyn ChatBackend>,
    opts: LlmOptions,
    seed: u64,
    calls: u64,
    pub(crate) legal: bool,
}

enum Failure {
    Parse(ParseError),
    Backend(BackendError),
}

impl LlmAgent {
    /// An agent of `kind` playing `game` over `backend`.
    pub fn new(
        kind: LlmKind,
        game: GameId,
        backend: Arc<dyn ChatBackend>,
        opts: LlmOptions,
        seed: u64,
    ) -> Self {
        LlmAgent {
            kind,
            game,
            backend,
            opts,
            seed,
            calls: 0,
            legal: false,
        }
    }

    /// The same agent with legal-move decoding on or off.
    pub fn with_legal_decoding(mut self, legal: bool) -> Self {
        self.legal = legal;
        self
    }

    fn instruction(&self) -> String {
        let fmt = self.game.action_format();
        match self.kind {
            LlmKind::Prompt => format!("Reply with your move only, as one line 'Action: <move>' where the move uses the format {fmt}. Do not explain."),
            _ => format!("First think step by step about the position, starting with 'Thought:'. Then end with exactly one line 'Action: <move>' where the move uses the format {fmt}."),
        }
    }

    /// The conversation for the first attempt.
    pub fn messages(&self, state: &AnyGame, player: usize) -> Vec<ChatMessage> {
        let system = format!(
            "You are a strategic player in a two-player game; you are player {}. Rules: {}\nYou must answer by choosing exactly one of the legal moves.",
            player + 1,
            self.game.rules()
        );
        let moves: Vec<String> = legal(state)
            .iter()
            .map(|&a| state.action_label(a))
            .collect();
        let user = format!(
            "Current state:\n{}\n\nLegal moves: {}\n\n{}",
            state.observation(player),
            moves.join(", "),
            self.instruction()
        );
        vec![
            ChatMessage::new("system", system),
            ChatMessage::new("user", user),
        ]
    }

    fn call(
        &mut self,
        stage: &str,
        messages: &[ChatMessage],
        n: usize,
        trace: &mut LlmTrace,
    ) -> Result<Vec<String>, BackendError> {
        self.calls += 1;
        let mut params = self.opts.params.clone();
        if self.legal {
            // The thought only: the answer is chosen by likelihood, not generated.
            params.stop = vec!["Action:".into()];
        }
        let params = ChatParams {
            n,
            seed: Some(tessera_core::rng::derive_seed(
                self.seed,
                &format!("call{}", self.calls),
            )),
            ..params
        };
        let out = self.backend.chat(messages, &params);
        trace.attempts.push(Attempt {
            stage: stage.into(),
            messages: messages.to_vec(),
            outputs: out.clone().unwrap_or_default(),
            error: None,
            scores: Vec::new(),
        });
        out
    }

    /// Legal-move decoding: the legal move whose answer `Action: <move>` is most likely after `messages` and the
    /// assistant text `prefix` (ties: the first legal move).
    fn choose_legal(
        &mut self,
        state: &AnyGame,
        messages: &[ChatMessage],
        prefix: &str,
        trace: &mut LlmTrace,
    ) -> Result<Action, BackendError> {
        let moves = legal(state);
        let answers: Vec<String> = moves
            .iter()
            .map(|&a| format!("Action: {}", state.action_label(a)))
            .collect();
        let scores = self.backend.score(messages, prefix, &answers)?;
        if scores.len() != moves.len() {
            return Err(BackendError::Refused(format!(
                "the backend scored {} of {} continuations",
                scores.len(),
                moves.len()
            )));
        }
        let mut best = 0;
        for (i, s) in scores.iter().enumerate() {
            if *s > scores[best] {
                best = i;
            }
        }
        trace.attempts.push(Attempt {
            stage: "score".into(),
            messages: Vec::new(),
            outputs: if prefix.is_empty() {
                Vec::new()
            } else {
                vec![prefix.to_string()]
            },
            error: None,
            scores: moves
                .iter()
                .zip(&scores)
                .map(|(&a, &s)| (state.action_label(a), s))
                .collect(),
        });
        Ok(moves[best])
    }

    /// Legal-move decoding under the agent's method.
    fn decide_legal(
        &mut self,
        state: &AnyGame,
        messages: &[ChatMessage],
        trace: &mut LlmTrace,
    ) -> Result<Action, BackendError> {
        match self.kind {
            LlmKind::Prompt | LlmKind::Tot => self.choose_legal(state, messages, "", trace),
            LlmKind::Cot => {
                let out = self.call("think", messages, 1, trace)?;
                let prefix = thought_prefix(out.first().map_or("", |s| s.as_str()));
                self.choose_legal(state, messages, &prefix, trace)
            }
            LlmKind::ScCot => {
                let out = self.call("think", messages, self.opts.sc_samples.max(1), trace)?;
                let mut picks = Vec::with_capacity(out.len());
                for t in &out {
                    picks.push(self.choose_legal(state, messages, &thought_prefix(t), trace)?);
                }
                Ok(majority(picks.into_iter()).unwrap_or(legal(state)[0]))
            }
        }
    }

    fn set_error(trace: &mut LlmTrace, e: &ParseError) {
        if let Some(a) = trace.attempts.last_mut() {
            a.error = Some(e.clone());
        }
    }

    /// One answer under the agent's method: the move, or the error with the raw text that caused it.
    fn decide(
        &mut self,
        state: &AnyGame,
        messages: &[ChatMessage],
        trace: &mut LlmTrace,
    ) -> Result<Action, (Failure, String)> {
        let backend = |e: BackendError| (Failure::Backend(e), String::new());
        match self.kind {
            LlmKind::Prompt | LlmKind::Cot => {
                let out = self.call("answer", messages, 1, trace).map_err(backend)?;
                let text = out.into_iter().next().unwrap_or_default();
                parse_action(state, &text).map_err(|e| {
                    Self::set_error(trace, &e);
                    (Failure::Parse(e), text)
                })
            }
            LlmKind::ScCot => {
                let out = self
                    .call("answer", messages, self.opts.sc_samples.max(1), trace)
                    .map_err(backend)?;
                let parsed: Vec<Result<Action, ParseError>> =
                    out.iter().map(|t| parse_action(state, t)).collect();
                match majority(parsed.iter().filter_map(|p| p.as_ref().ok().copied())) {
                    Some(a) => Ok(a),
                    None => {
                        let e = parsed
                            .into_iter()
                            .find_map(|p| p.err())
                            .unwrap_or(ParseError::NoMove);
                        Self::set_error(trace, &e);
                        Err((
                            Failure::Parse(e),
                            out.into_iter().next().unwrap_or_default(),
                        ))
                    }
                }
            }
            LlmKind::Tot => {
                let k = self.opts.tot_breadth.max(1);
                let out = self.call("propose", messages, k, trace).map_err(backend)?;
                let mut candidates: Vec<(Action, String)> = Vec::new();
                let mut first_err = None;
                for t in &out {
                    match parse_action(state, t) {
                        Ok(a) if !candidates.iter().any(|c| c.0 == a) => {
                            candidates.push((a, t.clone()))
                        }
                        Ok(_) => {}
                        Err(e) => first_err = first_err.or(Some(e)),
                    }
                }
                if candidates.is_empty() {
                    let e = first_err.unwrap_or(ParseError::NoMove);
                    Self::set_error(trace, &e);
                    return Err((
                        Failure::Parse(e),
                        out.into_iter().next().unwrap_or_default(),
                    ));
                }
                if candidates.len() == 1 {
                    return Ok(candidates[0].0);
                }
                let mut vote_msgs = messages.to_vec();
                let mut listing = String::from("Here are candidate moves with their reasoning:\n");
                for (i, (a, t)) in candidates.iter().enumerate() {
                    listing.push_str(&format!(
                        "Choice {}: {}\nReasoning: {}\n\n",
                        i + 1,
                        state.action_label(*a),
                        t.trim()
                    ));
                }
                listing.push_str("Analyse each choice, then conclude with the line 'The best choice is <i>' where i is the choice number.");
                vote_msgs.push(ChatMessage::new("user", listing));
                let votes = self.call("vote", &vote_msgs, k, trace).map_err(backend)?;
                let picked = majority(votes.iter().filter_map(|v| parse_vote(v, candidates.len())));
                Ok(candidates[picked.unwrap_or(0)].0)
            }
        }
    }
}

/// The thought of a CoT answer as the assistant prefix for scoring: the text before its last `Action:` (the stop
/// string normally ends it there already), trimmed, followed by a newline; empty when there is no thought.
fn thought_prefix(text: &str) -> String {
    let cut = text
        .to_ascii_lowercase()
        .rfind("action:")
        .unwrap_or(text.len());
    let t = text.get(..cut).unwrap_or(text).trim_end();
    if t.trim().is_empty() {
        String::new()
    } else {
        format!("{t}\n")
    }
}

/// The most frequent item (ties: the one reaching the top count first in order).
fn majority<T: Copy + PartialEq>(items: impl Iterator<Item = T>) -> Option<T> {
    let mut counts: Vec<(T, usize, usize)> = Vec::new();
    for (i, x) in items.enumerate() {
        match counts.iter_mut().find(|c| c.0 == x) {
            Some(c) => c.1 += 1,
            None => counts.push((x, 1, i)),
        }
    }
    counts
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.2.cmp(&a.2)))
        .map(|c| c.0)
}

/// Parses "The best choice is i" (1-based) into a 0-based index.
fn parse_vote(text: &str, n: usize) -> Option<usize> {
    let lower = text.to_lowercase();
    let i = lower.rfind("best choice is")?;
    let digits: String = lower[i + 14..]
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits
        .parse::<usize>()
        .ok()
        .filter(|&k| k >= 1 && k <= n)
        .map(|k| k - 1)
}

impl Agent for LlmAgent {
    fn act(&mut self, state: &AnyGame, player: usize) -> Result<Decision, AgentFailure> {
        let moves = legal(state);
        if moves.len() == 1 {
            return Ok(Decision {
                action: moves[0],
                trace: None,
            });
        }
        let mut trace = LlmTrace::default();
        let mut messages = self.messages(state, player);
        if self.legal {
            return match self.decide_legal(state, &messages, &mut trace) {
                Ok(a) => Ok(Decision {
                    action: a,
                    trace: Some(trace),
                }),
                Err(BackendError::Infrastructure(e)) => Err(AgentFailure::Infrastructure(e)),
                Err(BackendError::Refused(e)) => Err(AgentFailure::Forfeit {
                    kind: ForfeitKind::BackendRefusal,
                    detail: e,
                    trace: Some(trace),
                }),
            };
        }
        let mut attempt = 0;
        loop {
            match self.decide(state, &messages, &mut trace) {
                Ok(a) => {
                    return Ok(Decision {
                        action: a,
                        trace: Some(trace),
                    })
                }
                Err((Failure::Backend(BackendError::Infrastructure(e)), _)) => {
                    return Err(AgentFailure::Infrastructure(e))
                }
                Err((Failure::Backend(BackendError::Refused(e)), _)) => {
                    return Err(AgentFailure::Forfeit {
                        kind: ForfeitKind::BackendRefusal,
                        detail: e,
                        trace: Some(trace),
                    })
                }
                Err((Failure::Parse(e), raw)) => {
                    if attempt >= self.opts.retries {
                        let kind = match e {
                            ParseError::NoMove => ForfeitKind::NoMove,
                            ParseError::MultipleMoves(_) => ForfeitKind::MultipleMoves,
                            ParseError::Illegal(_) => ForfeitKind::Illegal,
                        };
                        return Err(AgentFailure::Forfeit {
                            kind,
                            detail: e.to_string(),
                            trace: Some(trace),
                        });
                    }
                    attempt += 1;
                    trace.retries += 1;
                    let labels: Vec<String> =
                        moves.iter().map(|&a| state.action_label(a)).collect();
                    messages.push(ChatMessage::new("assistant", raw));
                    messages.push(ChatMessage::new(
                        "user",
                        format!(
                            "Your answer was invalid: {e}. Legal moves: {}. Answer again, ending with one line 'Action: <move>' in the format {}.",
                            labels.join(", "),
                            self.game.action_format()
                        ),
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::backend::ScriptedBackend;
    use super::*;

    fn agent(kind: LlmKind, game: GameId, b: Arc<ScriptedBackend>, retries: u32) -> LlmAgent {
        LlmAgent::new(
            kind,
            game,
            b,
            LlmOptions {
                retries,
                ..Default::default()
            },
            1,
        )
    }

    #[test]
    fn prompt_contains_rules_board_legal_moves_and_format() {
        let b = Arc::new(ScriptedBackend::single(&["Action: <C2R2>"]));
        let mut a = agent(LlmKind::Cot, GameId::TicTacToe, b.clone(), 0);
        let g = GameId::TicTacToe.initial();
        assert_eq!(a.act(&g, 0).unwrap().action, 4);
        let seen = b.seen.lock().unwrap();
        let text: String = seen[0].iter().map(|m| m.content.clone()).collect();
        assert!(text.contains("Three of your marks"));
        assert!(text.contains("R2   .  .  ."));
        assert!(text.contains("<C3R3>"));
        assert!(text.contains("Thought:"));
        let pig = agent(
            LlmKind::Prompt,
            GameId::Pig,
            Arc::new(ScriptedBackend::default()),
            0,
        );
        let m = pig.messages(&GameId::Pig.initial(), 0);
        assert!(m[0].content.contains("banked score of 20") && !m[0].content.contains("100"));
    }

    #[test]
    fn garbage_then_valid_answer_is_retried_with_feedback() {
        let b = Arc::new(ScriptedBackend::single(&[
            "I like turtles",
            "<C1R1> or <C3R3>?",
            "Action: <C3R3>",
        ]));
        let mut a = agent(LlmKind::Prompt, GameId::TicTacToe, b.clone(), 2);
        let d = a.act(&GameId::TicTacToe.initial(), 0).unwrap();
        assert_eq!(d.action, 8);
        assert_eq!(d.trace.unwrap().retries, 2);
        let seen = b.seen.lock().unwrap();
        assert!(seen[1]
            .last()
            .unwrap()
            .content
            .contains("no move in the required format"));
        assert!(seen[2]
            .last()
            .unwrap()
            .content
            .contains("several different moves"));
    }

    #[test]
    fn zero_retries_forfeits_like_gtbench_and_infrastructure_is_not_a_forfeit() {
        let mut g = GameId::TicTacToe.initial();
        g.apply(4);
        let b = Arc::new(ScriptedBackend::single(&["Action: <C2R2>"]));
        match agent(LlmKind::Prompt, GameId::TicTacToe, b, 0).act(&g, 1) {
            Err(AgentFailure::Forfeit {
                kind: ForfeitKind::Illegal,
                ..
            }) => {}
            other => panic!("expected an illegal-move forfeit, got {other:?}"),
        }
        let b = Arc::new(ScriptedBackend::new(vec![Err(
            BackendError::Infrastructure("connection refused".into()),
        )]));
        assert!(matches!(
            agent(LlmKind::Cot, GameId::TicTacToe, b, 3).act(&g, 1),
            Err(AgentFailure::Infrastructure(_))
        ));
    }

    #[test]
    fn sc_cot_takes_the_true_majority_not_the_last_sample() {
        let b = Arc::new(ScriptedBackend::new(vec![Ok(vec![
            "Action: <C1R1>".into(),
            "Action: <C3R3>".into(),
            "nonsense".into(),
            "Action: <C3R3>".into(),
            "Action: <C1R1>".into(),
            "Action: <C3R3>".into(),
        ])]));
        let mut a = LlmAgent::new(
            LlmKind::ScCot,
            GameId::TicTacToe,
            b,
            LlmOptions {
                sc_samples: 6,
                ..Default::default()
            },
            1,
        );
        assert_eq!(a.act(&GameId::TicTacToe.initial(), 0).unwrap().action, 8);
    }

    #[test]
    fn tot_votes_between_distinct_proposals() {
        let b = Arc::new(ScriptedBackend::new(vec![
            Ok(vec![
                "Thought: corner. Action: <C1R1>".into(),
                "Thought: centre. Action: <C2R2>".into(),
                "Action: <C1R1>".into(),
            ]),
            Ok(vec![
                "The best choice is 2".into(),
                "the best choice is 2.".into(),
                "The best choice is 1".into(),
            ]),
        ]));
        let mut a = agent(LlmKind::Tot, GameId::TicTacToe, b.clone(), 0);
        assert_eq!(a.act(&GameId::TicTacToe.initial(), 0).unwrap().action, 4);
        assert!(b.seen.lock().unwrap()[1]
            .last()
            .unwrap()
            .content
            .contains("Choice 2: <C2R2>"));
    }

    #[test]
    fn single_legal_move_is_auto_played() {
        let g = crate::games::Nim::with_piles([0, 0, 0, 1], 0);
        let b = Arc::new(ScriptedBackend::default());
        let mut a = agent(LlmKind::Prompt, GameId::Nim, b.clone(), 0);
        assert_eq!(a.act(&AnyGame::Nim(g), 0).unwrap().action, 3);
        assert!(b.seen.lock().unwrap().is_empty());
    }

    /// A scorer preferring the continuation naming `target` (log-likelihood 0), then shorter strings.
    fn prefer(target: &'static str) -> super::super::backend::Scorer {
        Box::new(move |_m, _p, conts| {
            conts
                .iter()
                .map(|c| {
                    if c.contains(target) {
                        -0.5
                    } else {
                        -(c.len() as f64)
                    }
                })
                .collect()
        })
    }

    #[test]
    fn legal_prompt_picks_the_most_likely_legal_move_without_generating() {
        let b = Arc::new(ScriptedBackend::default().with_scorer(prefer("<C3R1>")));
        let mut a =
            agent(LlmKind::Prompt, GameId::TicTacToe, b.clone(), 0).with_legal_decoding(true);
        let d = a.act(&GameId::TicTacToe.initial(), 0).unwrap();
        assert_eq!(d.action, 2, "C3R1 = column 3, row 1");
        assert!(b.seen.lock().unwrap().is_empty(), "no free-text call");
        let scored = b.scored.lock().unwrap();
        assert_eq!(scored.len(), 1);
        assert_eq!(scored[0].0, "", "Prompt scores right after the prompt");
        assert_eq!(scored[0].1.len(), 9);
        assert!(scored[0].1.iter().all(|c| c.starts_with("Action: <C")));
        let trace = d.trace.unwrap();
        assert_eq!(trace.attempts[0].scores.len(), 9);
        // An occupied square is never offered: after C3R1 is taken the scorer's favourite is not legal.
        let mut g = GameId::TicTacToe.initial();
        g.apply(2);
        let b = Arc::new(ScriptedBackend::default().with_scorer(prefer("<C3R1>")));
        let mut a =
            agent(LlmKind::Prompt, GameId::TicTacToe, b.clone(), 0).with_legal_decoding(true);
        let d = a.act(&g, 1).unwrap();
        assert_ne!(d.action, 2);
        assert_eq!(b.scored.lock().unwrap()[0].1.len(), 8);
    }

    #[test]
    fn legal_cot_scores_after_its_own_thought_and_sc_cot_votes() {
        let b = Arc::new(
            ScriptedBackend::single(&["Thought: the centre is strongest. Action: <C1R1>"])
                .with_scorer(prefer("<C2R2>")),
        );
        let mut a = agent(LlmKind::Cot, GameId::TicTacToe, b.clone(), 0).with_legal_decoding(true);
        assert_eq!(a.act(&GameId::TicTacToe.initial(), 0).unwrap().action, 4);
        let scored = b.scored.lock().unwrap();
        assert_eq!(
            scored[0].0, "Thought: the centre is strongest.\n",
            "thought without its own action"
        );
        // SC-CoT: one choice per sampled thought, majority vote (scorer depends on the thought).
        let votes: super::super::backend::Scorer = Box::new(|_m, prefix, conts| {
            let want = if prefix.contains("corner") {
                "<C1R1>"
            } else {
                "<C2R2>"
            };
            conts
                .iter()
                .map(|c| if c.contains(want) { 0.0 } else { -5.0 })
                .collect()
        });
        let b = Arc::new(
            ScriptedBackend::new(vec![Ok(vec![
                "Thought: corner".into(),
                "Thought: centre".into(),
                "Thought: corner again".into(),
            ])])
            .with_scorer(votes),
        );
        let mut a = LlmAgent::new(
            LlmKind::ScCot,
            GameId::TicTacToe,
            b.clone(),
            LlmOptions {
                sc_samples: 3,
                ..Default::default()
            },
            1,
        )
        .with_legal_decoding(true);
        assert_eq!(a.act(&GameId::TicTacToe.initial(), 0).unwrap().action, 0);
        assert_eq!(b.scored.lock().unwrap().len(), 3);
    }

    #[test]
    fn legal_agents_never_forfeit_and_unscorable_backends_refuse() {
        // Random log-likelihoods on every game: every decision is a legal move, no forfeit, whole matches.
        for game in crate::ALL_GAMES {
            let scorer: super::super::backend::Scorer = Box::new(|_m, _p, conts| {
                conts
                    .iter()
                    .map(|c| -((c.len() * 7919 % 13) as f64))
                    .collect()
            });
            let b: Arc<dyn ChatBackend> = Arc::new(ScriptedBackend::default().with_scorer(scorer));
            let spec: crate::agents::AgentSpec = "prompt+legal:mock".parse().unwrap();
            let mut backends = std::collections::HashMap::new();
            backends.insert("prompt+legal:mock".to_string(), b);
            let random = crate::agents::AgentSpec::Random;
            let rec = crate::tournament::play_match(
                game,
                [&spec, &random],
                ["prompt+legal:mock", "random"],
                3,
                &backends,
                &LlmOptions::default(),
            )
            .unwrap();
            assert_eq!(rec.status, crate::tournament::Status::Ok, "{game}");
            assert!(rec.forfeit.is_none());
        }
        let b = Arc::new(ScriptedBackend::default());
        let mut a = agent(LlmKind::Prompt, GameId::Nim, b, 0).with_legal_decoding(true);
        assert!(matches!(
            a.act(&GameId::Nim.initial(), 0),
            Err(AgentFailure::Forfeit {
                kind: ForfeitKind::BackendRefusal,
                ..
            })
        ));
    }
}
