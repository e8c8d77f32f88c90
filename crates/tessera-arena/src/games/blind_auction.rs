//! First-price sealed-bid ("blind") auction (OpenSpiel `first_sealed_auction`, 2 players, `max_value=10`).
//! Chance draws each player's private valuation from U{1..10}. Player 0 then player 1 bid, neither seeing the
//! other's bid; a bid is an integer in 0..v−1 (strictly below one's own valuation). A final chance node picks
//! the winner among the highest bidders (a fair coin on a tie, a single outcome otherwise, as in OpenSpiel). The winner receives v − bid, the loser 0 (general-sum).
//! Action = the bid; label `<b>`.
use crate::game::{mix, Action, Game, Turn};
use rand::Rng as _;
use tessera_core::rng::Rng;

/// Highest valuation.
pub const MAX_VALUE: u8 = 10;

/// A blind-auction position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct BlindAuction {
    values: [u8; 2],
    dealt: u8,
    bids: [u8; 2],
    nbids: u8,
    /// Winner once decided (0/1), 2 while undecided.
    winner: u8,
    decided: bool,
}

impl BlindAuction {
    /// A position after valuations `v0`, `v1` were drawn.
    pub fn with_values(v0: u8, v1: u8) -> Self {
        BlindAuction {
            values: [v0, v1],
            dealt: 2,
            ..Default::default()
        }
    }
    /// The bids once both were placed.
    pub fn bids(&self) -> [u8; 2] {
        self.bids
    }
    /// The private valuations.
    pub fn values(&self) -> [u8; 2] {
        self.values
    }
}

impl Game for BlindAuction {
    fn turn(&self) -> Turn {
        if self.dealt < 2 {
            Turn::Chance
        } else if self.nbids < 2 {
            Turn::Player(self.nbids as usize)
        } else if !self.decided {
            Turn::Chance
        } else {
            Turn::Terminal
        }
    }
    fn legal_actions(&self, out: &mut Vec<Action>) {
        out.clear();
        if let Turn::Player(p) = self.turn() {
            out.extend(0..self.values[p] as Action);
        }
    }
    fn chance_outcomes(&self, out: &mut Vec<(Action, f64)>) {
        out.clear();
        if self.dealt < 2 {
            out.extend((1..=MAX_VALUE as Action).map(|v| (v, 1.0 / MAX_VALUE as f64)));
        } else if self.nbids == 2 && !self.decided {
            // As in OpenSpiel, a final chance node picks the winner among the highest bidders (one outcome
            // unless the bids tie).
            match self.bids[0].cmp(&self.bids[1]) {
                std::cmp::Ordering::Greater => out.push((0, 1.0)),
                std::cmp::Ordering::Less => out.push((1, 1.0)),
                std::cmp::Ordering::Equal => out.extend([(0, 0.5), (1, 0.5)]),
            }
        }
    }
    fn sample_chance(&self, rng: &mut Rng) -> Action {
        if self.dealt < 2 {
            rng.gen_range(1..=MAX_VALUE as Action)
        } else if self.bids[0] == self.bids[1] {
            rng.gen_range(0..2)
        } else {
            (self.bids[1] > self.bids[0]) as Action
        }
    }
    fn apply(&mut self, a: Action) {
        if self.dealt < 2 {
            self.values[self.dealt as usize] = a as u8;
            self.dealt += 1;
        } else if self.nbids < 2 {
            self.bids[self.nbids as usize] = a as u8;
            self.nbids += 1;
        } else {
            self.winner = a as u8;
            self.decided = true;
        }
    }
    fn returns(&self) -> [f64; 2] {
        if !self.decided {
            return [0.0, 0.0];
        }
        let w = self.winner as usize;
        let mut r = [0.0, 0.0];
        r[w] = (self.values[w] - self.bids[w]) as f64;
        r
    }
    fn observation(&self, player: usize) -> String {
        let mut s = format!("Your valuation of the item: {}.", self.values[player]);
        if self.nbids as usize > player {
            s.push_str(&format!("\nYour bid: {}.", self.bids[player]));
        }
        if self.decided {
            s.push_str(&format!(
                "\nOpponent's bid: {}. Opponent's valuation: {}. Winner: {}.",
                self.bids[1 - player],
                self.values[1 - player],
                if self.winner as usize == player {
                    "you"
                } else {
                    "opponent"
                }
            ));
        } else if self.nbids as usize > 1 - player {
            s.push_str("\nThe opponent has already placed a sealed bid (you cannot see it).");
        }
        s
    }
    fn action_label(&self, a: Action) -> String {
        format!("<{a}>")
    }
    fn chance_label(&self, a: Action) -> String {
        if self.dealt < 2 {
            format!("player {} valuation {}", self.dealt + 1, a)
        } else {
            format!("winner: player {}", a + 1)
        }
    }
    fn action_space(&self) -> std::ops::Range<Action> {
        0..MAX_VALUE as Action
    }
    fn info_key(&self, player: usize) -> u64 {
        let own_bid = if self.nbids as usize > player {
            self.bids[player] as u64 + 1
        } else {
            0
        };
        mix(
            mix(mix(player as u64, self.values[player] as u64), own_bid),
            self.nbids as u64,
        )
    }
    fn determinize(&self, player: usize, rng: &mut Rng) -> Self {
        let mut g = *self;
        if self.dealt < 2 || self.decided {
            return g;
        }
        let o = 1 - player;
        g.values[o] = rng.gen_range(1..=MAX_VALUE);
        if self.nbids as usize > o {
            // The opponent's sealed bid is hidden too: draw it uniformly among its legal bids.
            g.bids[o] = rng.gen_range(0..g.values[o]);
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
    fn bids_are_below_valuation_and_higher_bid_wins() {
        let mut g = BlindAuction::with_values(3, 7);
        assert_eq!(crate::game::legal(&g), vec![0, 1, 2]);
        g.apply(2);
        assert_eq!(crate::game::legal(&g).len(), 7);
        g.apply(4);
        assert_eq!(g.turn(), Turn::Chance);
        let mut o = Vec::new();
        g.chance_outcomes(&mut o);
        assert_eq!(o, vec![(1, 1.0)]);
        g.apply(1);
        assert!(g.is_terminal());
        assert_eq!(g.returns(), [0.0, 3.0]);
    }

    #[test]
    fn ties_are_broken_by_chance() {
        let mut g = BlindAuction::with_values(5, 9);
        g.apply(3);
        g.apply(3);
        assert_eq!(g.turn(), Turn::Chance);
        let mut o = Vec::new();
        g.chance_outcomes(&mut o);
        assert_eq!(o, vec![(0, 0.5), (1, 0.5)]);
        let mut a = g;
        a.apply(0);
        assert_eq!(a.returns(), [2.0, 0.0]);
        g.apply(1);
        assert_eq!(g.returns(), [0.0, 6.0]);
    }

    #[test]
    fn player_one_cannot_see_player_zero_bid() {
        let mut g = BlindAuction::with_values(5, 9);
        let before = g.observation(1);
        g.apply(4);
        let mut h = BlindAuction::with_values(5, 9);
        h.apply(1);
        assert_eq!(g.observation(1), h.observation(1));
        assert_eq!(g.info_key(1), h.info_key(1));
        assert_ne!(before, g.observation(1));
    }
}
