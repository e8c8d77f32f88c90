//! Pig (OpenSpiel `pig(winscore=20)`, as GTBench configures it; d6, 2 players, horizon 1000 decisions).
//! On your turn you repeatedly choose Roll (0) or Stop (1). Roll: a chance node rolls a die; a 1 loses the turn
//! total and passes the turn, 2–6 add to the turn total. Stop: the turn total is banked into your score and the
//! turn passes. Once banking would reach 20, Stop is the only legal move (OpenSpiel). The first player whose
//! banked score reaches 20 wins (+1, the other −1); if the horizon is hit first both get 0. Labels `<Roll>` /
//! `<Stop>`.
use crate::game::{mix, Action, Game, Turn};
use tessera_core::rng::Rng;

/// Score needed to win.
pub const WIN_SCORE: u16 = 20;
const HORIZON: u16 = 1000;

/// A Pig position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Pig {
    scores: [u16; 2],
    turn_total: u16,
    turn_player: u8,
    rolling: bool,
    decisions: u16,
}

impl Pig {
    /// A position with the given banked scores, turn total and player to move.
    pub fn with(scores: [u16; 2], turn_total: u16, player: usize) -> Self {
        Pig {
            scores,
            turn_total,
            turn_player: player as u8,
            ..Default::default()
        }
    }
}

impl Game for Pig {
    fn turn(&self) -> Turn {
        if self.decisions >= HORIZON || self.scores.iter().any(|&s| s >= WIN_SCORE) {
            Turn::Terminal
        } else if self.rolling {
            Turn::Chance
        } else {
            Turn::Player(self.turn_player as usize)
        }
    }
    fn legal_actions(&self, out: &mut Vec<Action>) {
        out.clear();
        if let Turn::Player(p) = self.turn() {
            // As in OpenSpiel, once banking would win, Stop is the only legal move.
            if self.scores[p] + self.turn_total >= WIN_SCORE {
                out.push(1);
            } else {
                out.extend([0, 1]);
            }
        }
    }
    fn chance_outcomes(&self, out: &mut Vec<(Action, f64)>) {
        out.clear();
        if self.turn() == Turn::Chance {
            out.extend((0..6).map(|o| (o, 1.0 / 6.0)));
        }
    }
    fn sample_chance(&self, rng: &mut Rng) -> Action {
        use rand::Rng as _;
        rng.gen_range(0..6)
    }
    fn apply(&mut self, a: Action) {
        if self.rolling {
            self.rolling = false;
            if a == 0 {
                self.turn_total = 0;
                self.turn_player = 1 - self.turn_player;
            } else {
                self.turn_total += a + 1;
            }
        } else {
            self.decisions += 1;
            if a == 0 {
                self.rolling = true;
            } else {
                self.scores[self.turn_player as usize] += self.turn_total;
                self.turn_total = 0;
                self.turn_player = 1 - self.turn_player;
            }
        }
    }
    fn returns(&self) -> [f64; 2] {
        if self.scores[0] >= WIN_SCORE {
            [1.0, -1.0]
        } else if self.scores[1] >= WIN_SCORE {
            [-1.0, 1.0]
        } else {
            [0.0, 0.0]
        }
    }
    fn observation(&self, player: usize) -> String {
        let tt = if self.turn_player as usize == player {
            self.turn_total
        } else {
            0
        };
        format!(
            "Your banked score: {}. Opponent's banked score: {}. Your current turn total (not yet banked): {}.\nFirst to bank {} points wins.",
            self.scores[player],
            self.scores[1 - player],
            tt,
            WIN_SCORE
        )
    }
    fn action_label(&self, a: Action) -> String {
        if a == 0 { "<Roll>" } else { "<Stop>" }.into()
    }
    fn chance_label(&self, a: Action) -> String {
        format!("die shows {}", a + 1)
    }
    fn action_space(&self) -> std::ops::Range<Action> {
        0..2
    }
    fn info_key(&self, _player: usize) -> u64 {
        [
            self.scores[0],
            self.scores[1],
            self.turn_total,
            self.turn_player as u16,
            self.rolling as u16,
        ]
        .iter()
        .fold(0, |h, &x| mix(h, x as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rolling_one_loses_turn_total_and_stop_banks() {
        let mut g = Pig::with([0, 0], 0, 0);
        g.apply(0);
        g.apply(4); // rolled a 5
        assert_eq!(g.turn(), Turn::Player(0));
        g.apply(0);
        g.apply(0); // rolled a 1
        assert_eq!(g.turn(), Turn::Player(1));
        assert_eq!(g.scores, [0, 0]);
        g.apply(0);
        g.apply(5); // 6
        g.apply(1); // stop
        assert_eq!(g.scores, [0, 6]);
        assert_eq!(g.turn(), Turn::Player(0));
    }

    #[test]
    fn must_bank_twenty_to_win() {
        let mut g = Pig::with([18, 0], 0, 0);
        g.apply(0);
        g.apply(5); // turn total 6: not yet a win
        assert!(!g.is_terminal());
        assert_eq!(
            crate::game::legal(&g),
            vec![1],
            "banking wins, so only Stop is legal"
        );
        g.apply(1);
        assert_eq!(g.returns(), [1.0, -1.0]);
    }
}
