//! Kuhn Poker (OpenSpiel `kuhn_poker`, 2 players): deck J, Q, K; each antes 1; chance deals one private card to
//! player 0 then player 1. Actions Pass (0) / Bet (1). `pp` → showdown for 1, `bp` and `pbp` → the bettor wins
//! 1 (the other folded), `bb` and `pbb` → showdown for 2. The game value for player 0 is −1/18.
use crate::game::{mix, Action, Game, Turn};
use rand::Rng as _;
use tessera_core::rng::Rng;

const CARD: [&str; 3] = ["Jack", "Queen", "King"];

/// A Kuhn Poker position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct KuhnPoker {
    cards: [u8; 2],
    dealt: u8,
    history: [u8; 3],
    len: u8,
}

impl KuhnPoker {
    fn hist(&self) -> &[u8] {
        &self.history[..self.len as usize]
    }
    fn done(&self) -> bool {
        matches!(
            self.hist(),
            [0, 0] | [1, 0] | [1, 1] | [0, 1, 0] | [0, 1, 1]
        )
    }
}

impl Game for KuhnPoker {
    fn turn(&self) -> Turn {
        if self.dealt < 2 {
            Turn::Chance
        } else if self.done() {
            Turn::Terminal
        } else {
            Turn::Player(self.len as usize % 2)
        }
    }
    fn legal_actions(&self, out: &mut Vec<Action>) {
        out.clear();
        if let Turn::Player(_) = self.turn() {
            out.extend([0, 1]);
        }
    }
    fn chance_outcomes(&self, out: &mut Vec<(Action, f64)>) {
        out.clear();
        match self.dealt {
            0 => out.extend((0..3).map(|c| (c, 1.0 / 3.0))),
            1 => out.extend(
                (0..3)
                    .filter(|&c| c != self.cards[0] as Action)
                    .map(|c| (c, 0.5)),
            ),
            _ => {}
        }
    }
    fn sample_chance(&self, rng: &mut Rng) -> Action {
        if self.dealt == 0 {
            rng.gen_range(0..3)
        } else {
            (self.cards[0] as Action + rng.gen_range(1..3)) % 3
        }
    }
    fn apply(&mut self, a: Action) {
        if self.dealt < 2 {
            self.cards[self.dealt as usize] = a as u8;
            self.dealt += 1;
        } else {
            self.history[self.len as usize] = a as u8;
            self.len += 1;
        }
    }
    fn returns(&self) -> [f64; 2] {
        if !self.done() {
            return [0.0, 0.0];
        }
        let p0_wins_showdown = self.cards[0] > self.cards[1];
        let v = match self.hist() {
            [0, 0] => {
                if p0_wins_showdown {
                    1.0
                } else {
                    -1.0
                }
            }
            [1, 0] => 1.0,
            [0, 1, 0] => -1.0,
            _ => {
                if p0_wins_showdown {
                    2.0
                } else {
                    -2.0
                }
            }
        };
        [v, -v]
    }
    fn observation(&self, player: usize) -> String {
        let mut s = format!(
            "Your card: {}.\nPot contributions: ",
            CARD[self.cards[player] as usize]
        );
        let mut put = [1, 1];
        for (i, &a) in self.hist().iter().enumerate() {
            put[i % 2] += a as u32;
        }
        s.push_str(&format!(
            "you {}, opponent {}.\nBetting so far:",
            put[player],
            put[1 - player]
        ));
        if self.len == 0 {
            s.push_str(" none (you act first).");
        }
        for (i, &a) in self.hist().iter().enumerate() {
            let who = if i % 2 == player { "you" } else { "opponent" };
            s.push_str(&format!(
                " {} {};",
                who,
                if a == 0 { "passed" } else { "bet" }
            ));
        }
        if self.done() {
            s.push_str(&format!(
                "\nOpponent's card: {}.",
                CARD[self.cards[1 - player] as usize]
            ));
        }
        s
    }
    fn action_label(&self, a: Action) -> String {
        if a == 0 { "<Pass>" } else { "<Bet>" }.to_string()
    }
    fn chance_label(&self, a: Action) -> String {
        format!("deal {} to player {}", CARD[a as usize % 3], self.dealt + 1)
    }
    fn action_space(&self) -> std::ops::Range<Action> {
        0..2
    }
    fn info_key(&self, player: usize) -> u64 {
        let own = if (self.dealt as usize) > player {
            self.cards[player] as u64
        } else {
            9
        };
        self.hist()
            .iter()
            .fold(mix(player as u64, own), |h, &a| mix(h, a as u64 + 1))
    }
    fn determinize(&self, player: usize, rng: &mut Rng) -> Self {
        let mut g = *self;
        if self.dealt == 2 {
            let mine = self.cards[player];
            let others: Vec<u8> = (0..3).filter(|&c| c != mine).collect();
            g.cards[1 - player] = others[rng.gen_range(0..2)];
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

    fn play(cards: [u8; 2], moves: &[Action]) -> [f64; 2] {
        let mut g = KuhnPoker::default();
        g.apply(cards[0] as Action);
        g.apply(cards[1] as Action);
        for &m in moves {
            assert!(!g.is_terminal());
            g.apply(m);
        }
        assert!(g.is_terminal());
        g.returns()
    }

    #[test]
    fn payoffs_follow_the_betting_tree() {
        assert_eq!(play([2, 0], &[0, 0]), [1.0, -1.0]);
        assert_eq!(play([0, 2], &[1, 0]), [1.0, -1.0]);
        assert_eq!(play([2, 0], &[0, 1, 0]), [-1.0, 1.0]);
        assert_eq!(play([0, 1], &[0, 1, 1]), [-2.0, 2.0]);
        assert_eq!(play([1, 0], &[1, 1]), [2.0, -2.0]);
    }

    #[test]
    fn determinization_keeps_own_card_and_hides_nothing_else() {
        let mut g = KuhnPoker::default();
        g.apply(1);
        g.apply(2);
        let mut rng = tessera_core::rng::seeded(1);
        for _ in 0..50 {
            let d = g.determinize(0, &mut rng);
            assert_eq!(d.cards[0], 1);
            assert_ne!(d.cards[1], 1);
            assert_eq!(d.info_key(0), g.info_key(0));
        }
    }
}
