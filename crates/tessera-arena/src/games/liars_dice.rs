//! Liar's Dice (OpenSpiel `liars_dice`: 2 players, 1 die each, 6 faces, `reset-face` bidding). Chance rolls
//! player 0's die, then player 1's. Player 0 bids first. A bid (q, v) claims "at least q of the 2 dice show v";
//! each bid must be higher than the previous one (more dice, or the same number of dice with a higher face,
//! i.e. a higher action id). Instead of bidding, a player may call "Liar" on the previous bid. **6 is wild**: it
//! counts as every face. If the bid holds the caller loses (−1), else the bidder loses. Action = 6·(q−1) +
//! (v−1) for bids, 12 for Liar; labels `<Bid: q x v>` and `<Liar>`.
use crate::game::{mix, Action, Game, Turn};
use rand::Rng as _;
use tessera_core::rng::Rng;

const FACES: u8 = 6;
const LIAR: Action = 12;

/// A Liar's Dice position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct LiarsDice {
    dice: [u8; 2],
    rolled: u8,
    bids: [u8; 12],
    nbids: u8,
    liar_called: bool,
}

impl LiarsDice {
    /// A position after the roll (faces 1..=6).
    pub fn with_dice(d0: u8, d1: u8) -> Self {
        LiarsDice {
            dice: [d0, d1],
            rolled: 2,
            ..Default::default()
        }
    }
    fn mover(&self) -> usize {
        self.nbids as usize % 2
    }
    fn last_bid(&self) -> Option<u8> {
        self.nbids.checked_sub(1).map(|i| self.bids[i as usize])
    }
    fn bid_text(b: u8) -> String {
        format!("at least {} dice showing {}", b / FACES + 1, b % FACES + 1)
    }
    /// How many dice count for face `v` (6 is wild).
    pub fn count(&self, v: u8) -> u8 {
        self.dice.iter().filter(|&&d| d == v || d == FACES).count() as u8
    }
}

impl Game for LiarsDice {
    fn turn(&self) -> Turn {
        if self.rolled < 2 {
            Turn::Chance
        } else if self.liar_called {
            Turn::Terminal
        } else {
            Turn::Player(self.mover())
        }
    }
    fn legal_actions(&self, out: &mut Vec<Action>) {
        out.clear();
        if self.turn() != Turn::Player(self.mover()) {
            return;
        }
        let from = self.last_bid().map(|b| b as Action + 1).unwrap_or(0);
        out.extend(from..12);
        if self.nbids > 0 {
            out.push(LIAR);
        }
    }
    fn chance_outcomes(&self, out: &mut Vec<(Action, f64)>) {
        out.clear();
        if self.rolled < 2 {
            out.extend((0..FACES as Action).map(|f| (f, 1.0 / FACES as f64)));
        }
    }
    fn sample_chance(&self, rng: &mut Rng) -> Action {
        rng.gen_range(0..FACES as Action)
    }
    fn apply(&mut self, a: Action) {
        if self.rolled < 2 {
            self.dice[self.rolled as usize] = a as u8 + 1;
            self.rolled += 1;
        } else if a == LIAR {
            self.liar_called = true;
        } else {
            self.bids[self.nbids as usize] = a as u8;
            self.nbids += 1;
        }
    }
    fn returns(&self) -> [f64; 2] {
        if !self.liar_called {
            return [0.0, 0.0];
        }
        let Some(b) = self.last_bid() else {
            return [0.0, 0.0];
        };
        let caller = self.mover();
        let bid_holds = self.count(b % FACES + 1) > b / FACES;
        let loser = if bid_holds { caller } else { 1 - caller };
        let mut r = [1.0, 1.0];
        r[loser] = -1.0;
        r
    }
    fn observation(&self, player: usize) -> String {
        let mut s = format!("Your die shows {}.\nBids so far:", self.dice[player]);
        if self.nbids == 0 {
            s.push_str(" none (you open the bidding).");
        }
        for i in 0..self.nbids as usize {
            let who = if i % 2 == player { "you" } else { "opponent" };
            s.push_str(&format!("\n  {} bid {}", who, Self::bid_text(self.bids[i])));
        }
        if self.liar_called {
            s.push_str(&format!(
                "\nLiar was called. Opponent's die: {}.",
                self.dice[1 - player]
            ));
        }
        s
    }
    fn action_label(&self, a: Action) -> String {
        if a == LIAR {
            "<Liar>".into()
        } else {
            format!(
                "<Bid: {} x {}>",
                a / FACES as Action + 1,
                a % FACES as Action + 1
            )
        }
    }
    fn chance_label(&self, a: Action) -> String {
        format!("player {} rolls {}", self.rolled + 1, a + 1)
    }
    fn action_space(&self) -> std::ops::Range<Action> {
        0..13
    }
    fn info_key(&self, player: usize) -> u64 {
        let own = if self.rolled as usize > player {
            self.dice[player] as u64
        } else {
            0
        };
        let h = (0..self.nbids as usize).fold(mix(player as u64, own), |h, i| {
            mix(h, self.bids[i] as u64 + 1)
        });
        mix(h, self.liar_called as u64)
    }
    fn determinize(&self, player: usize, rng: &mut Rng) -> Self {
        let mut g = *self;
        if self.rolled == 2 {
            g.dice[1 - player] = rng.gen_range(1..=FACES);
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

    fn call_after(d: [u8; 2], bids: &[Action]) -> [f64; 2] {
        let mut g = LiarsDice::with_dice(d[0], d[1]);
        for &b in bids {
            g.apply(b);
        }
        g.apply(LIAR);
        g.returns()
    }

    #[test]
    fn six_is_wild() {
        // Dice 3 and 6; P0 bids "one 2" (true thanks to the wild 6); P1 calls and loses. (Checked against OpenSpiel 1.4.)
        assert_eq!(call_after([3, 6], &[1]), [1.0, -1.0]);
        // "two 2s" is false (only the 6 counts): P1 calls and wins.
        assert_eq!(call_after([3, 6], &[7]), [-1.0, 1.0]);
        // "two 3s" holds: 3 plus wild 6.
        assert_eq!(call_after([3, 6], &[8]), [1.0, -1.0]);
        // Bid on 6 itself: only sixes count.
        assert_eq!(call_after([6, 6], &[11]), [1.0, -1.0]);
        assert_eq!(call_after([5, 6], &[11]), [-1.0, 1.0]);
    }

    #[test]
    fn bids_must_increase_and_liar_needs_a_bid() {
        let mut g = LiarsDice::with_dice(1, 2);
        assert!(!crate::game::legal(&g).contains(&LIAR));
        g.apply(7);
        assert_eq!(crate::game::legal(&g), vec![8, 9, 10, 11, LIAR]);
        g.apply(11);
        assert_eq!(crate::game::legal(&g), vec![LIAR]);
        // Player 0 calls on player 1's bid: dice 1,2 do not contain two sixes -> P0 wins.
        g.apply(LIAR);
        assert_eq!(g.returns(), [1.0, -1.0]);
    }
}
