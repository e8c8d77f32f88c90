//! Counterfactual regret minimisation for small imperfect-information games (used for Kuhn Poker).
//!
//! Vanilla CFR (Zinkevich et al. 2007, "Regret Minimization in Games with Incomplete Information", Eq. 7–8:
//! counterfactual regrets, regret matching, reach-weighted average strategy) and CFR+ (Tammelin 2014:
//! regret-matching+ clipping cumulative regrets at 0, alternating updates, linearly weighted averaging).
//! Full-width traversal with chance enumeration over the [`Game`] tree; information sets are keyed by
//! [`Game::info_key`]. The average strategy converges to a Nash equilibrium; in Kuhn Poker its value for the
//! first player is −1/18.
use crate::game::{Action, Game, Turn};
use std::collections::HashMap;

#[derive(Clone, Debug, Default)]
struct InfoSet {
    actions: Vec<Action>,
    regret: Vec<f64>,
    strategy_sum: Vec<f64>,
}

impl InfoSet {
    fn current(&self) -> Vec<f64> {
        let pos: f64 = self.regret.iter().map(|r| r.max(0.0)).sum();
        let n = self.actions.len() as f64;
        if pos > 0.0 {
            self.regret.iter().map(|r| r.max(0.0) / pos).collect()
        } else {
            vec![1.0 / n; self.actions.len()]
        }
    }
    fn average(&self) -> Vec<f64> {
        let s: f64 = self.strategy_sum.iter().sum();
        if s > 0.0 {
            self.strategy_sum.iter().map(|x| x / s).collect()
        } else {
            vec![1.0 / self.actions.len() as f64; self.actions.len()]
        }
    }
}

/// A CFR / CFR+ solver over the tree rooted at a position.
pub struct Cfr<G: Game> {
    root: G,
    plus: bool,
    infosets: HashMap<(usize, u64), InfoSet>,
    iterations: u64,
}

impl<G: Game> Cfr<G> {
    /// A solver for the game starting at `root`; `plus` selects CFR+.
    pub fn new(root: G, plus: bool) -> Self {
        Cfr {
            root,
            plus,
            infosets: HashMap::new(),
            iterations: 0,
        }
    }

    /// Runs `n` iterations (each updates both players).
    pub fn run(&mut self, n: u64) {
        for _ in 0..n {
            self.iterations += 1;
            for p in 0..2 {
                let root = self.root.clone();
                self.traverse(&root, p, [1.0, 1.0], 1.0);
            }
        }
    }

    fn traverse(&mut self, s: &G, update: usize, reach: [f64; 2], chance_reach: f64) -> f64 {
        match s.turn() {
            Turn::Terminal => s.returns()[update],
            Turn::Chance => {
                let mut outcomes = Vec::new();
                s.chance_outcomes(&mut outcomes);
                let mut v = 0.0;
                for (a, p) in outcomes {
                    let mut c = s.clone();
                    c.apply(a);
                    v += p * self.traverse(&c, update, reach, chance_reach * p);
                }
                v
            }
            Turn::Player(p) => {
                let key = (p, s.info_key(p));
                let info = self.infosets.entry(key).or_insert_with(|| {
                    let mut actions = Vec::new();
                    s.legal_actions(&mut actions);
                    let n = actions.len();
                    InfoSet {
                        actions,
                        regret: vec![0.0; n],
                        strategy_sum: vec![0.0; n],
                    }
                });
                let strategy = info.current();
                let actions = info.actions.clone();
                let mut values = vec![0.0; actions.len()];
                let mut node_value = 0.0;
                for (i, &a) in actions.iter().enumerate() {
                    let mut c = s.clone();
                    c.apply(a);
                    let mut r = reach;
                    r[p] *= strategy[i];
                    values[i] = self.traverse(&c, update, r, chance_reach);
                    node_value += strategy[i] * values[i];
                }
                if p == update {
                    let opp_reach = reach[1 - p] * chance_reach;
                    let weight = if self.plus {
                        self.iterations as f64
                    } else {
                        1.0
                    };
                    let plus = self.plus;
                    let info = self.infosets.get_mut(&key).expect("inserted above");
                    for i in 0..actions.len() {
                        info.regret[i] += opp_reach * (values[i] - node_value);
                        if plus {
                            info.regret[i] = info.regret[i].max(0.0);
                        }
                        info.strategy_sum[i] += weight * reach[p] * strategy[i];
                    }
                }
                node_value
            }
        }
    }

    /// The average strategy at `player`'s information set `key` as (action, probability) pairs.
    pub fn policy(&self, player: usize, key: u64) -> Option<Vec<(Action, f64)>> {
        self.infosets
            .get(&(player, key))
            .map(|i| i.actions.iter().copied().zip(i.average()).collect())
    }

    /// Expected returns when both players follow the average strategy.
    pub fn average_strategy_value(&self) -> [f64; 2] {
        self.value_of(&self.root.clone())
    }

    fn value_of(&self, s: &G) -> [f64; 2] {
        match s.turn() {
            Turn::Terminal => s.returns(),
            Turn::Chance => {
                let mut outcomes = Vec::new();
                s.chance_outcomes(&mut outcomes);
                outcomes.into_iter().fold([0.0; 2], |acc, (a, p)| {
                    let mut c = s.clone();
                    c.apply(a);
                    let v = self.value_of(&c);
                    [acc[0] + p * v[0], acc[1] + p * v[1]]
                })
            }
            Turn::Player(p) => {
                let pol = self.policy(p, s.info_key(p)).unwrap_or_default();
                pol.into_iter().fold([0.0; 2], |acc, (a, q)| {
                    let mut c = s.clone();
                    c.apply(a);
                    let v = self.value_of(&c);
                    [acc[0] + q * v[0], acc[1] + q * v[1]]
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::games::KuhnPoker;

    fn bet_prob(cfr: &Cfr<KuhnPoker>, card: u16) -> f64 {
        let mut g = KuhnPoker::default();
        g.apply(card);
        g.apply((card + 1) % 3);
        cfr.policy(0, g.info_key(0))
            .unwrap()
            .iter()
            .find(|x| x.0 == 1)
            .unwrap()
            .1
    }

    #[test]
    fn cfr_and_cfr_plus_converge_to_minus_one_eighteenth() {
        for (plus, iters, tol) in [(false, 4000, 3e-3), (true, 1000, 1e-3)] {
            let mut cfr = Cfr::new(KuhnPoker::default(), plus);
            cfr.run(iters);
            let v = cfr.average_strategy_value();
            assert!((v[0] + 1.0 / 18.0).abs() < tol, "plus={plus}: value {v:?}");
            // Equilibrium family: player 1 bets the King three times as often as the Jack.
            let (j, k) = (bet_prob(&cfr, 0), bet_prob(&cfr, 2));
            assert!((k - 3.0 * j).abs() < 0.05, "plus={plus}: bet J {j}, K {k}");
            assert!(bet_prob(&cfr, 1) < 0.05, "the Queen never opens with a bet");
        }
    }
}
