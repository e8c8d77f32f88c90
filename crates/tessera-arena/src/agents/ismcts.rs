//! Single-observer information-set MCTS (Cowling, Powley & Whitehouse 2012, "Information Set Monte Carlo Tree
//! Search", Algorithm 2: SO-ISMCTS) for the imperfect-information games.
//!
//! GTBench hands OpenSpiel's MCTS the true state, so in Kuhn Poker or Liar's Dice it sees the opponent's card.
//! Here every simulation starts from a *determinisation* drawn from the searching player's own information set
//! ([`crate::game::Game::determinize`]: the opponent's hidden card/die/valuation/values/sealed move re-sampled
//! from its prior), and the tree is keyed by the action sequence, so statistics are shared across all states the
//! player cannot tell apart. Selection uses UCB with *availability* counts (a child's exploration term uses how
//! often it was legal, not the parent's visits); unseen legal actions are expanded first; rollouts are uniform
//! random; no solver (proven values of one determinisation are not proven for the information set).
use crate::agents::mcts::random_rollout;
use crate::game::{Action, Game, Turn};
use rand::Rng as _;
use tessera_core::rng::Rng;

const NONE: u32 = u32::MAX;
const CHANCE: i8 = -1;

#[derive(Clone, Copy, Debug)]
struct Node {
    action: Action,
    player: i8,
    first_child: u32,
    next_sibling: u32,
    visits: u32,
    avail: u32,
    total_reward: f64,
}

/// A reusable IS-MCTS searcher.
pub struct IsMcts {
    uct_c: f64,
    simulations: u32,
    nodes: Vec<Node>,
    path: Vec<u32>,
    legal: Vec<Action>,
    untried: Vec<Action>,
    /// Scratch map action -> child index of the node being visited (`NONE` elsewhere), reset after each use.
    slot: Vec<u32>,
}

impl IsMcts {
    /// A searcher with exploration constant `uct_c` and `simulations` determinised simulations per move.
    pub fn new(uct_c: f64, simulations: u32) -> Self {
        IsMcts {
            uct_c,
            simulations,
            nodes: Vec::new(),
            path: Vec::new(),
            legal: Vec::new(),
            untried: Vec::new(),
            slot: vec![NONE; 1 << 16],
        }
    }

    fn child(&self, node: usize, action: Action, player: i8) -> Option<usize> {
        let mut c = self.nodes[node].first_child;
        while c != NONE {
            let n = &self.nodes[c as usize];
            if n.action == action && n.player == player {
                return Some(c as usize);
            }
            c = n.next_sibling;
        }
        None
    }

    fn add_child(&mut self, node: usize, action: Action, player: i8) -> usize {
        let idx = self.nodes.len();
        self.nodes.push(Node {
            action,
            player,
            first_child: NONE,
            next_sibling: self.nodes[node].first_child,
            visits: 0,
            avail: 0,
            total_reward: 0.0,
        });
        self.nodes[node].first_child = idx as u32;
        idx
    }

    /// Searches from `player`'s information set containing `state` and returns the most visited legal action.
    pub fn search<G: Game>(&mut self, state: &G, player: usize, rng: &mut Rng) -> Action {
        self.nodes.clear();
        self.nodes.push(Node {
            action: 0,
            player: player as i8,
            first_child: NONE,
            next_sibling: NONE,
            visits: 0,
            avail: 0,
            total_reward: 0.0,
        });
        for _ in 0..self.simulations {
            let mut s = state.determinize(player, rng);
            self.path.clear();
            self.path.push(0);
            let mut cur = 0usize;
            loop {
                match s.turn() {
                    Turn::Terminal => break,
                    Turn::Chance => {
                        let a = s.sample_chance(rng);
                        cur = match self.child(cur, a, CHANCE) {
                            Some(c) => c,
                            None => self.add_child(cur, a, CHANCE),
                        };
                        s.apply(a);
                        self.path.push(cur as u32);
                    }
                    Turn::Player(p) => {
                        s.legal_actions(&mut self.legal);
                        // Map this node's children by action once (O(children)), instead of a scan per action.
                        let mut c = self.nodes[cur].first_child;
                        while c != NONE {
                            let n = &self.nodes[c as usize];
                            if n.player == p as i8 {
                                self.slot[n.action as usize] = c;
                            }
                            c = n.next_sibling;
                        }
                        self.untried.clear();
                        for &a in &self.legal {
                            if self.slot[a as usize] == NONE {
                                self.untried.push(a);
                            }
                        }
                        let mut best = NONE as usize;
                        let mut best_v = f64::NEG_INFINITY;
                        if self.untried.is_empty() {
                            for i in 0..self.legal.len() {
                                let c = self.slot[self.legal[i] as usize] as usize;
                                let n = &mut self.nodes[c];
                                n.avail += 1;
                                let v = n.total_reward / n.visits.max(1) as f64
                                    + self.uct_c
                                        * ((n.avail as f64).ln() / n.visits.max(1) as f64).sqrt();
                                if v > best_v {
                                    best_v = v;
                                    best = c;
                                }
                            }
                        }
                        let mut c = self.nodes[cur].first_child;
                        while c != NONE {
                            let n = &self.nodes[c as usize];
                            self.slot[n.action as usize] = NONE;
                            c = n.next_sibling;
                        }
                        if !self.untried.is_empty() {
                            let a = self.untried[rng.gen_range(0..self.untried.len())];
                            cur = self.add_child(cur, a, p as i8);
                            s.apply(a);
                            self.path.push(cur as u32);
                            break;
                        }
                        let a = self.nodes[best].action;
                        s.apply(a);
                        cur = best;
                        self.path.push(cur as u32);
                    }
                }
            }
            let returns = random_rollout(&mut s, rng, &mut self.legal);
            for k in 0..self.path.len() {
                let mut d = k;
                while d > 0 && self.nodes[self.path[d] as usize].player == CHANCE {
                    d -= 1;
                }
                let who = self.nodes[self.path[d] as usize].player.max(0) as usize;
                let n = &mut self.nodes[self.path[k] as usize];
                n.visits += 1;
                n.total_reward += returns[who];
            }
        }
        state.legal_actions(&mut self.legal);
        let mut best = self.legal.first().copied().unwrap_or(0);
        let mut best_visits = 0;
        for &a in &self.legal {
            if let Some(c) = self.child(0, a, player as i8) {
                if self.nodes[c].visits > best_visits {
                    best_visits = self.nodes[c].visits;
                    best = a;
                }
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::games::KuhnPoker;

    #[test]
    fn kuhn_decisions_do_not_depend_on_opponent_card() {
        // Player 1 (index 1) holds the Queen facing a bet: IS-MCTS must act identically whether player 0 holds the
        // Jack or the King, because it only sees its own information set (GTBench's MCTS calls vs J, folds vs K).
        let mut choices = Vec::new();
        for opp in [0u16, 2] {
            let mut g = KuhnPoker::default();
            g.apply(opp);
            g.apply(1);
            g.apply(1); // player 0 bets
            let mut rng = tessera_core::rng::seeded(77);
            let mut m = IsMcts::new(2.0, 1000);
            choices.push(m.search(&g, 1, &mut rng));
        }
        assert_eq!(choices[0], choices[1]);
    }

    #[test]
    fn kuhn_king_always_calls_a_bet() {
        let mut g = KuhnPoker::default();
        g.apply(1);
        g.apply(2);
        g.apply(1);
        let mut rng = tessera_core::rng::seeded(1);
        let mut m = IsMcts::new(2.0, 1000);
        assert_eq!(m.search(&g, 1, &mut rng), 1);
    }
}
