//! Misère Nim with piles 1, 3, 5, 7 (OpenSpiel `nim`, `is_misere=true`): a move takes one or more objects from
//! one pile; the player who takes the last object **loses** (+1 to the other player). Action = 4·(take−1) +
//! (pile−1), as in OpenSpiel; label `<pile:p, take:t>` (1-based pile).
use crate::game::{mix, Action, Game, Turn};

const PILES: usize = 4;
const MAX_TAKE: usize = 7;

/// A Nim position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Nim {
    piles: [u8; PILES],
    to_move: u8,
}

impl Default for Nim {
    fn default() -> Self {
        Nim {
            piles: [1, 3, 5, 7],
            to_move: 0,
        }
    }
}

impl Nim {
    /// A position with the given piles and player to move.
    pub fn with_piles(piles: [u8; PILES], to_move: usize) -> Self {
        Nim {
            piles,
            to_move: to_move as u8,
        }
    }
    fn empty(&self) -> bool {
        self.piles.iter().all(|&p| p == 0)
    }
}

impl Game for Nim {
    fn turn(&self) -> Turn {
        if self.empty() {
            Turn::Terminal
        } else {
            Turn::Player(self.to_move as usize)
        }
    }
    fn legal_actions(&self, out: &mut Vec<Action>) {
        out.clear();
        for take in 1..=MAX_TAKE {
            for pile in 0..PILES {
                if self.piles[pile] as usize >= take {
                    out.push(((take - 1) * PILES + pile) as Action);
                }
            }
        }
        out.sort_unstable();
    }
    fn chance_outcomes(&self, out: &mut Vec<(Action, f64)>) {
        out.clear();
    }
    fn apply(&mut self, a: Action) {
        let (take, pile) = (a as usize / PILES + 1, a as usize % PILES);
        self.piles[pile] = self.piles[pile].saturating_sub(take as u8);
        self.to_move = 1 - self.to_move;
    }
    fn returns(&self) -> [f64; 2] {
        if !self.empty() {
            return [0.0, 0.0];
        }
        // The player who took the last object moved last and loses; `to_move` is the winner.
        if self.to_move == 0 {
            [1.0, -1.0]
        } else {
            [-1.0, 1.0]
        }
    }
    fn observation(&self, _player: usize) -> String {
        let piles: Vec<String> = self
            .piles
            .iter()
            .enumerate()
            .map(|(i, p)| format!("pile {}: {} object(s)", i + 1, p))
            .collect();
        piles.join("\n")
    }
    fn action_label(&self, a: Action) -> String {
        format!(
            "<pile:{}, take:{}>",
            a as usize % PILES + 1,
            a as usize / PILES + 1
        )
    }
    fn action_space(&self) -> std::ops::Range<Action> {
        0..(PILES * MAX_TAKE) as Action
    }
    fn info_key(&self, _player: usize) -> u64 {
        self.piles
            .iter()
            .fold(self.to_move as u64, |h, &c| mix(h, c as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taking_the_last_object_loses() {
        let mut g = Nim::with_piles([0, 0, 0, 1], 0);
        g.apply(3); // player 0 takes the last object
        assert!(g.is_terminal());
        assert_eq!(g.returns(), [-1.0, 1.0]);
        let mut g = Nim::with_piles([0, 0, 2, 0], 1);
        g.apply(2); // player 1 takes 1 from pile 3, leaving 1 for player 0
        g.apply(2);
        assert_eq!(g.returns(), [-1.0, 1.0]);
    }

    #[test]
    fn action_encoding_matches_openspiel() {
        let g = Nim::default();
        assert_eq!(g.action_label(0), "<pile:1, take:1>");
        assert_eq!(g.action_label(1), "<pile:2, take:1>");
        assert_eq!(g.action_label(5), "<pile:2, take:2>");
        assert_eq!(crate::game::legal(&g).len(), 1 + 3 + 5 + 7);
    }
}
