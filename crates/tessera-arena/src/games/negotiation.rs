//! Negotiation (OpenSpiel `negotiation`, after Lewis et al. 2017 and Cao et al. 2018): 3 item types, proposals
//! and utterances (5 symbols, length 3).
//!
//! A single chance outcome (an instance id, 0..65535) generates the instance: the number of turns `max_steps`
//! from a Poisson(7) truncated to 4..10, the item pool (each type U{0..5}, redrawn if empty), and each player's
//! private values per item (each U{0..10}, redrawn until the player values the pool above 0). Unlike the
//! reference (whose `rng_seed=-1` default yields the same instance every game), every match draws a fresh one.
//! Player 0 starts. A turn is a *proposal* — a split `[a, b, c]` (what the proposer keeps, each at most the
//! pool) or `Agree` to the opponent's last proposal — followed, unless it agreed, by an *utterance* (three
//! symbols 0..4, cheap talk). After `max_steps` turns without agreement both get 0. On agreement the last
//! proposer gets its proposal and the other player the rest, each valued at its own private values.
//! Actions: proposal 36a+6b+c (0..216), Agree 216, utterance 217+25x+5y+z; labels `<Proposal: [a, b, c]>`,
//! `<Agree>`, `<Utterance: [x, y, z]>`.
use crate::game::{mix, Action, Game, Turn};
use rand::Rng as _;
use tessera_core::rng::Rng;

const ITEMS: usize = 3;
const MAX_QTY: u8 = 5;
const MAX_VALUE: u8 = 10;
const SYMBOLS: u8 = 5;
/// The Agree action.
pub const AGREE: Action = 216;
const UTTER0: Action = 217;
const INSTANCES: Action = u16::MAX;

/// A Negotiation position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Negotiation {
    generated: bool,
    max_steps: u8,
    pool: [u8; ITEMS],
    values: [[u8; ITEMS]; 2],
    step: u8,
    utterance_turn: bool,
    proposal: Option<[u8; ITEMS]>,
    proposer: u8,
    utterance: Option<[u8; ITEMS]>,
    agreed: bool,
}

fn poisson(rng: &mut Rng, mean: f64) -> u32 {
    let l = (-mean).exp();
    let (mut k, mut p) = (0u32, 1.0f64);
    loop {
        p *= rng.gen::<f64>();
        if p <= l {
            return k;
        }
        k += 1;
    }
}

fn draw_values(rng: &mut Rng, pool: &[u8; ITEMS]) -> [u8; ITEMS] {
    loop {
        let v: [u8; ITEMS] = std::array::from_fn(|_| rng.gen_range(0..=MAX_VALUE));
        if v.iter()
            .zip(pool)
            .map(|(a, b)| *a as u32 * *b as u32)
            .sum::<u32>()
            > 0
        {
            return v;
        }
    }
}

fn triple(a: Action) -> [u8; ITEMS] {
    [(a / 36) as u8, (a / 6 % 6) as u8, (a % 6) as u8]
}

impl Negotiation {
    /// The instance generated from id `instance` (what the chance node does).
    pub fn generated(instance: Action) -> Self {
        let mut g = Negotiation::default();
        g.apply(instance);
        g
    }
    /// Item pool.
    pub fn pool(&self) -> [u8; ITEMS] {
        self.pool
    }
    /// Private values of `player`.
    pub fn values(&self, player: usize) -> [u8; ITEMS] {
        self.values[player]
    }
    /// Number of turns before the game ends without agreement.
    pub fn max_steps(&self) -> u8 {
        self.max_steps
    }
    fn mover(&self) -> usize {
        self.step as usize % 2
    }
    fn worth(&self, player: usize, items: [u8; ITEMS]) -> u32 {
        (0..ITEMS)
            .map(|i| self.values[player][i] as u32 * items[i] as u32)
            .sum()
    }
}

impl Game for Negotiation {
    fn turn(&self) -> Turn {
        if !self.generated {
            Turn::Chance
        } else if self.agreed || self.step >= self.max_steps {
            Turn::Terminal
        } else {
            Turn::Player(self.mover())
        }
    }
    fn legal_actions(&self, out: &mut Vec<Action>) {
        out.clear();
        if !matches!(self.turn(), Turn::Player(_)) {
            return;
        }
        if self.utterance_turn {
            out.extend(UTTER0..UTTER0 + 125);
            return;
        }
        for a in 0..=self.pool[0] {
            for b in 0..=self.pool[1] {
                for c in 0..=self.pool[2] {
                    out.push(a as Action * 36 + b as Action * 6 + c as Action);
                }
            }
        }
        if self.proposal.is_some() {
            out.push(AGREE);
        }
    }
    fn chance_outcomes(&self, out: &mut Vec<(Action, f64)>) {
        out.clear();
        if !self.generated {
            out.extend((0..INSTANCES).map(|i| (i, 1.0 / INSTANCES as f64)));
        }
    }
    fn sample_chance(&self, rng: &mut Rng) -> Action {
        rng.gen_range(0..INSTANCES)
    }
    fn apply(&mut self, a: Action) {
        if !self.generated {
            let mut rng = tessera_core::rng::derived(a as u64, "negotiation-instance");
            self.max_steps = loop {
                let k = poisson(&mut rng, 7.0);
                if (4..=10).contains(&k) {
                    break k as u8;
                }
            };
            self.pool = loop {
                let p: [u8; ITEMS] = std::array::from_fn(|_| rng.gen_range(0..=MAX_QTY));
                if p.iter().any(|&x| x > 0) {
                    break p;
                }
            };
            self.values = [
                draw_values(&mut rng, &self.pool),
                draw_values(&mut rng, &self.pool),
            ];
            self.generated = true;
        } else if self.utterance_turn {
            let u = a - UTTER0;
            self.utterance = Some([(u / 25) as u8, (u / 5 % 5) as u8, (u % 5) as u8]);
            self.utterance_turn = false;
            self.step += 1;
        } else if a == AGREE {
            self.agreed = true;
        } else {
            self.proposal = Some(triple(a));
            self.proposer = self.mover() as u8;
            self.utterance_turn = true;
        }
    }
    fn returns(&self) -> [f64; 2] {
        match (self.agreed, self.proposal) {
            (true, Some(p)) => {
                let q = p;
                let rest: [u8; ITEMS] = std::array::from_fn(|i| self.pool[i] - q[i]);
                let pr = self.proposer as usize;
                let mut r = [0.0; 2];
                r[pr] = self.worth(pr, q) as f64;
                r[1 - pr] = self.worth(1 - pr, rest) as f64;
                r
            }
            _ => [0.0, 0.0],
        }
    }
    fn observation(&self, player: usize) -> String {
        let v = self.values[player];
        let mut s = format!(
            "Item pool (books, hats, balls): {:?}.\nYour private values per item: {:?} (the opponent's values are hidden).\nTurn {} of {} (a turn = proposal then utterance).",
            self.pool,
            v,
            (self.step + 1).min(self.max_steps),
            self.max_steps
        );
        match self.proposal {
            Some(p) => {
                let who = if self.proposer as usize == player {
                    "you"
                } else {
                    "the opponent"
                };
                let rest: [u8; ITEMS] = std::array::from_fn(|i| self.pool[i] - p[i]);
                s.push_str(&format!("\nLast proposal by {who}: the proposer keeps {p:?}, the other player gets {rest:?}."));
            }
            None => s.push_str("\nNo proposal yet."),
        }
        if let Some(u) = self.utterance {
            s.push_str(&format!("\nLast utterance: {u:?}."));
        }
        s.push_str(if self.utterance_turn {
            "\nNow: your utterance."
        } else {
            "\nNow: your proposal (or Agree)."
        });
        s
    }
    fn action_label(&self, a: Action) -> String {
        if a == AGREE {
            "<Agree>".into()
        } else if a >= UTTER0 {
            let u = a - UTTER0;
            format!("<Utterance: [{}, {}, {}]>", u / 25, u / 5 % 5, u % 5)
        } else {
            let t = triple(a);
            format!("<Proposal: [{}, {}, {}]>", t[0], t[1], t[2])
        }
    }
    fn chance_label(&self, a: Action) -> String {
        format!("instance {a}")
    }
    fn action_space(&self) -> std::ops::Range<Action> {
        if self.utterance_turn {
            UTTER0..UTTER0 + (SYMBOLS as Action).pow(3)
        } else {
            0..AGREE + 1
        }
    }
    fn info_key(&self, player: usize) -> u64 {
        let mut h = mix(
            player as u64,
            self.step as u64 * 2 + self.utterance_turn as u64,
        );
        for x in self.pool.iter().chain(&self.values[player]) {
            h = mix(h, *x as u64);
        }
        h = mix(h, self.max_steps as u64);
        if let Some(p) = self.proposal {
            h = mix(h, 100 + p[0] as u64 * 36 + p[1] as u64 * 6 + p[2] as u64);
        }
        if let Some(u) = self.utterance {
            h = mix(h, 1000 + u[0] as u64 * 25 + u[1] as u64 * 5 + u[2] as u64);
        }
        h
    }
    fn determinize(&self, player: usize, rng: &mut Rng) -> Self {
        let mut g = *self;
        if self.generated {
            g.values[1 - player] = draw_values(rng, &self.pool);
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
    use crate::game::legal;

    #[test]
    fn agreement_pays_proposer_its_split_and_other_the_rest() {
        let mut g = Negotiation::generated(7);
        let p = g.pool();
        let keep = [p[0], 0, p[2] / 2];
        g.apply(keep[0] as Action * 36 + keep[1] as Action * 6 + keep[2] as Action);
        assert_eq!(g.turn(), Turn::Player(0), "utterance by the same player");
        g.apply(UTTER0 + 3);
        assert_eq!(g.turn(), Turn::Player(1));
        assert!(legal(&g).contains(&AGREE));
        g.apply(AGREE);
        assert!(g.is_terminal());
        let v0 = g.values(0);
        let v1 = g.values(1);
        let r0: u32 = (0..3).map(|i| v0[i] as u32 * keep[i] as u32).sum();
        let r1: u32 = (0..3).map(|i| v1[i] as u32 * (p[i] - keep[i]) as u32).sum();
        assert_eq!(g.returns(), [r0 as f64, r1 as f64]);
    }

    #[test]
    fn no_agreement_pays_nothing_after_max_steps_and_instances_vary() {
        let mut g = Negotiation::generated(11);
        assert!(!legal(&g).contains(&AGREE));
        let mut turns = 0;
        while !g.is_terminal() {
            let a = legal(&g)[0];
            assert_ne!(a, AGREE);
            g.apply(a);
            if a >= UTTER0 {
                turns += 1;
            }
        }
        assert_eq!(turns, g.max_steps());
        assert!((4..=10).contains(&g.max_steps()));
        assert_eq!(g.returns(), [0.0, 0.0]);
        let distinct: std::collections::HashSet<_> = (0..50)
            .map(|i| {
                (
                    Negotiation::generated(i).pool(),
                    Negotiation::generated(i).values(0),
                )
            })
            .collect();
        assert!(distinct.len() > 40);
        // Proposals never exceed the pool.
        let g = Negotiation::generated(3);
        for a in legal(&g) {
            if a < AGREE {
                let t = triple(a);
                assert!((0..3).all(|i| t[i] <= g.pool()[i]));
            }
        }
    }
}
