//! Iterated Prisoner's Dilemma (OpenSpiel `python_iterated_prisoners_dilemma`: `termination_probability=0.125`,
//! `max_game_length=9999`). Each round both players choose Cooperate (0) or Defect (1) simultaneously; payoffs
//! C/C 5,5; D/C 10,0; C/D 0,10; D/D 1,1. After each round a chance node ends the game with probability 0.125
//! (mean 8 rounds). Returns are the summed payoffs (general-sum). The simultaneous move is serialised: player 0
//! chooses, then player 1 chooses without seeing it. Labels `<Cooperate>` / `<Defect>`.
use crate::game::{mix, Action, Game, Turn};
use rand::Rng as _;
use tessera_core::rng::Rng;

/// Probability that the game stops after a round.
pub const STOP_PROB: f64 = 0.125;
const MAX_ROUNDS: u16 = 9999;
/// Row player's payoff for (own move, opponent move); 0 = cooperate, 1 = defect.
pub const PAYOFF: [[f64; 2]; 2] = [[5.0, 0.0], [10.0, 1.0]];

/// An IPD position. The last 128 rounds are kept as bit masks (bit i = round i, 1 = defect).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PrisonersDilemma {
    rounds: u16,
    /// 0: player 0 to choose, 1: player 1 to choose, 2: continuation chance, 3: over.
    phase: u8,
    pending: u8,
    history: [u128; 2],
    totals: [u32; 2],
}

impl PrisonersDilemma {
    /// Moves of both players in the last completed round.
    pub fn last_round(&self) -> Option<[u8; 2]> {
        self.rounds
            .checked_sub(1)
            .filter(|&r| r < 128)
            .map(|r| [0, 1].map(|p| (self.history[p] >> r & 1) as u8))
    }
    /// Completed rounds.
    pub fn rounds(&self) -> u16 {
        self.rounds
    }
    /// Moves of `player` in completed round `r` (first 128 rounds).
    pub fn move_in_round(&self, player: usize, r: u16) -> u8 {
        if r < 128 {
            (self.history[player] >> r & 1) as u8
        } else {
            0
        }
    }
}

impl Game for PrisonersDilemma {
    fn turn(&self) -> Turn {
        match self.phase {
            0 => Turn::Player(0),
            1 => Turn::Player(1),
            2 => Turn::Chance,
            _ => Turn::Terminal,
        }
    }
    fn legal_actions(&self, out: &mut Vec<Action>) {
        out.clear();
        if self.phase < 2 {
            out.extend([0, 1]);
        }
    }
    fn chance_outcomes(&self, out: &mut Vec<(Action, f64)>) {
        out.clear();
        if self.phase == 2 {
            out.extend([(0, 1.0 - STOP_PROB), (1, STOP_PROB)]);
        }
    }
    fn sample_chance(&self, rng: &mut Rng) -> Action {
        (rng.gen::<f64>() < STOP_PROB) as Action
    }
    fn apply(&mut self, a: Action) {
        match self.phase {
            0 => {
                self.pending = a as u8;
                self.phase = 1;
            }
            1 => {
                let m = [self.pending as usize, a as usize];
                self.totals[0] += PAYOFF[m[0]][m[1]] as u32;
                self.totals[1] += PAYOFF[m[1]][m[0]] as u32;
                if self.rounds < 128 {
                    for (h, &mv) in self.history.iter_mut().zip(&m) {
                        *h |= (mv as u128) << self.rounds;
                    }
                }
                self.rounds += 1;
                self.phase = 2;
            }
            2 => {
                self.phase = if a == 1 || self.rounds > MAX_ROUNDS {
                    3
                } else {
                    0
                }
            }
            _ => {}
        }
    }
    fn returns(&self) -> [f64; 2] {
        [self.totals[0] as f64, self.totals[1] as f64]
    }
    fn observation(&self, player: usize) -> String {
        let name = |m: u8| if m == 0 { "Cooperate" } else { "Defect" };
        let mut s = format!(
            "Rounds played: {}. Your total payoff: {}. Opponent's total payoff: {}.",
            self.rounds,
            self.totals[player],
            self.totals[1 - player]
        );
        if self.rounds > 0 {
            s.push_str("\nHistory (round: you / opponent):");
            let from = self.rounds.saturating_sub(20).min(108);
            for r in from..self.rounds.min(128) {
                s.push_str(&format!(
                    "\n  {}: {} / {}",
                    r + 1,
                    name(self.move_in_round(player, r)),
                    name(self.move_in_round(1 - player, r))
                ));
            }
        }
        s
    }
    fn action_label(&self, a: Action) -> String {
        if a == 0 { "<Cooperate>" } else { "<Defect>" }.into()
    }
    fn chance_label(&self, a: Action) -> String {
        if a == 0 { "continue" } else { "stop" }.into()
    }
    fn action_space(&self) -> std::ops::Range<Action> {
        0..2
    }
    fn info_key(&self, player: usize) -> u64 {
        let own_pending = if player == 0 && self.phase == 1 {
            self.pending as u64 + 1
        } else {
            0
        };
        let h = mix(
            mix(player as u64, self.rounds as u64),
            self.phase as u64 * 3 + own_pending,
        );
        mix(mix(h, self.history[0] as u64), self.history[1] as u64)
    }
    fn determinize(&self, player: usize, rng: &mut Rng) -> Self {
        let mut g = *self;
        if player == 1 && self.phase == 1 {
            g.pending = rng.gen_range(0..2);
        }
        g
    }
    fn perfect_information(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payoffs_and_continuation() {
        let mut g = PrisonersDilemma::default();
        g.apply(0);
        g.apply(1);
        assert_eq!(g.returns(), [0.0, 10.0]);
        assert_eq!(g.turn(), Turn::Chance);
        g.apply(0); // continue
        g.apply(1);
        g.apply(1);
        assert_eq!(g.returns(), [1.0, 11.0]);
        g.apply(1); // stop
        assert!(g.is_terminal());
        assert_eq!(g.last_round(), Some([1, 1]));
    }

    #[test]
    fn continuation_probability_gives_mean_eight_rounds() {
        let mut rng = tessera_core::rng::seeded(5);
        let n = 20_000;
        let mut total = 0u64;
        for _ in 0..n {
            let mut g = PrisonersDilemma::default();
            while !g.is_terminal() {
                let a = if g.turn() == Turn::Chance {
                    g.sample_chance(&mut rng)
                } else {
                    0
                };
                g.apply(a);
            }
            total += g.rounds() as u64;
        }
        let mean = total as f64 / n as f64;
        // Geometric with p = 0.125: mean 8, sd of the mean ~ 7.5/sqrt(n) ~ 0.053.
        assert!((mean - 8.0).abs() < 0.25, "mean rounds {mean}");
    }

    #[test]
    fn player_one_does_not_see_pending_move() {
        let mut a = PrisonersDilemma::default();
        let mut b = PrisonersDilemma::default();
        a.apply(0);
        b.apply(1);
        assert_eq!(a.observation(1), b.observation(1));
        assert_eq!(a.info_key(1), b.info_key(1));
    }
}
