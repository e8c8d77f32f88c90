//! Monte-Carlo tree search with UCT and the MCTS-Solver, a faithful port of OpenSpiel 1.4's
//! `open_spiel/python/algorithms/mcts.py` `MCTSBot` (the opponent GTBench uses, paper §2.1/§3: `uct_c=2`,
//! `max_simulations=1000`, one random rollout, `solve=True`).
//!
//! Semantics kept from OpenSpiel: a node is expanded on its second visit (chance nodes always), children are
//! shuffled at expansion, unvisited children score +∞, solved children score their proven outcome, chance
//! children are sampled from the chance distribution, rewards at a node are for the player who chose the edge
//! into it, the solver backs up proven outcomes (a win for the mover or all children solved; chance nodes only
//! if every outcome has the same result), the search stops early when the root is solved, and the final move is
//! the child maximising (proven outcome, visits, total reward).
//!
//! Speed: all nodes live in one arena `Vec` (children contiguous, no per-node allocation), the tree is reused as
//! capacity across moves, positions are `Copy`, and rollouts reuse one legal-move buffer.
use crate::game::{Action, Game, Turn};
use rand::seq::SliceRandom;
use rand::Rng as _;
use tessera_core::rng::Rng;

/// MCTS settings (defaults = GTBench's).
#[derive(Clone, Copy, Debug)]
pub struct MctsConfig {
    /// Exploration constant `c` in UCT.
    pub uct_c: f64,
    /// Simulations per move.
    pub max_simulations: u32,
    /// Use the MCTS-Solver backup.
    pub solve: bool,
    /// Largest return (a proven outcome equal to it is a win).
    pub max_utility: f64,
}

impl Default for MctsConfig {
    fn default() -> Self {
        MctsConfig {
            uct_c: super::UCT_C,
            max_simulations: super::DEFAULT_SIMULATIONS,
            solve: true,
            max_utility: 1.0,
        }
    }
}

const CHANCE: i8 = -1;

#[derive(Clone, Copy, Debug)]
struct Node {
    action: Action,
    /// The player who chose the edge into this node (`CHANCE` for chance outcomes).
    player: i8,
    solved: bool,
    n_children: u16,
    first_child: u32,
    explore_count: u32,
    total_reward: f64,
    outcome: [f64; 2],
}

impl Node {
    fn new(action: Action, player: i8) -> Self {
        Node {
            action,
            player,
            solved: false,
            n_children: 0,
            first_child: 0,
            explore_count: 0,
            total_reward: 0.0,
            outcome: [0.0; 2],
        }
    }
    fn uct(&self, parent_count: u32, c: f64) -> f64 {
        if self.solved {
            return self.outcome[self.player.max(0) as usize];
        }
        if self.explore_count == 0 {
            return f64::INFINITY;
        }
        let n = self.explore_count as f64;
        self.total_reward / n + c * ((parent_count as f64).ln() / n).sqrt()
    }
    fn sort_key(&self) -> (f64, u32, f64) {
        let o = if self.solved {
            self.outcome[self.player.max(0) as usize]
        } else {
            0.0
        };
        (o, self.explore_count, self.total_reward)
    }
}

/// A reusable MCTS searcher.
pub struct Mcts {
    cfg: MctsConfig,
    nodes: Vec<Node>,
    path: Vec<u32>,
    legal: Vec<Action>,
    chance: Vec<(Action, f64)>,
    /// Simulations run by the last search.
    pub last_simulations: u32,
}

/// Plays uniformly random moves (chance by its distribution) to the end and returns the returns.
pub fn random_rollout<G: Game>(state: &mut G, rng: &mut Rng, legal: &mut Vec<Action>) -> [f64; 2] {
    loop {
        match state.turn() {
            Turn::Terminal => return state.returns(),
            Turn::Chance => {
                let a = state.sample_chance(rng);
                state.apply(a);
            }
            Turn::Player(_) => {
                state.legal_actions(legal);
                let a = legal[rng.gen_range(0..legal.len())];
                state.apply(a);
            }
        }
    }
}

impl Mcts {
    /// A searcher with the given settings.
    pub fn new(cfg: MctsConfig) -> Self {
        Mcts {
            cfg,
            nodes: Vec::with_capacity(cfg.max_simulations as usize * 8),
            path: Vec::new(),
            legal: Vec::new(),
            chance: Vec::new(),
            last_simulations: 0,
        }
    }

    fn expand<G: Game>(&mut self, node: usize, s: &G, rng: &mut Rng) {
        let first = self.nodes.len() as u32;
        match s.turn() {
            Turn::Chance => {
                s.chance_outcomes(&mut self.chance);
                for &(a, _) in &self.chance {
                    self.nodes.push(Node::new(a, CHANCE));
                }
            }
            Turn::Player(p) => {
                s.legal_actions(&mut self.legal);
                self.legal.shuffle(rng);
                for &a in &self.legal {
                    self.nodes.push(Node::new(a, p as i8));
                }
            }
            Turn::Terminal => return,
        }
        let n = self.nodes.len() as u32 - first;
        self.nodes[node].first_child = first;
        self.nodes[node].n_children = n as u16;
    }

    /// Runs the search from `root` (a decision node) and returns the chosen action.
    pub fn search<G: Game>(&mut self, root: &G, rng: &mut Rng) -> Action {
        let root_player = match root.turn() {
            Turn::Player(p) => p as i8,
            _ => return 0,
        };
        self.nodes.clear();
        self.nodes.push(Node::new(0, root_player));
        let c = self.cfg.uct_c;
        let mut sims = 0;
        for _ in 0..self.cfg.max_simulations {
            sims += 1;
            self.path.clear();
            self.path.push(0);
            let mut s = root.clone();
            let mut cur = 0usize;
            // Selection / expansion.
            loop {
                let turn = s.turn();
                if turn == Turn::Terminal
                    || (self.nodes[cur].explore_count == 0 && turn != Turn::Chance)
                {
                    break;
                }
                if self.nodes[cur].n_children == 0 {
                    self.expand(cur, &s, rng);
                }
                let (first, n) = (
                    self.nodes[cur].first_child as usize,
                    self.nodes[cur].n_children as usize,
                );
                let chosen = if turn == Turn::Chance {
                    let a = s.sample_chance(rng);
                    (first..first + n)
                        .find(|&i| self.nodes[i].action == a)
                        .unwrap_or(first)
                } else {
                    let parent_count = self.nodes[cur].explore_count;
                    let mut best = first;
                    let mut best_v = f64::NEG_INFINITY;
                    for i in first..first + n {
                        let v = self.nodes[i].uct(parent_count, c);
                        if v > best_v {
                            best_v = v;
                            best = i;
                        }
                    }
                    best
                };
                s.apply(self.nodes[chosen].action);
                cur = chosen;
                self.path.push(cur as u32);
            }
            // Evaluation.
            let (returns, mut solved) = if s.turn() == Turn::Terminal {
                let r = s.returns();
                let leaf = &mut self.nodes[cur];
                leaf.outcome = r;
                leaf.solved = true;
                (r, self.cfg.solve)
            } else {
                (random_rollout(&mut s, rng, &mut self.legal), false)
            };
            // Backpropagation (leaf to root).
            for k in (0..self.path.len()).rev() {
                let mut d = k;
                while self.nodes[self.path[d] as usize].player == CHANCE && d > 0 {
                    d -= 1;
                }
                let target = returns[self.nodes[self.path[d] as usize].player.max(0) as usize];
                let idx = self.path[k] as usize;
                self.nodes[idx].total_reward += target;
                self.nodes[idx].explore_count += 1;
                if solved && self.nodes[idx].n_children > 0 {
                    solved = self.backup_solved(idx);
                }
            }
            if self.nodes[0].solved {
                break;
            }
        }
        self.last_simulations = sims;
        let (first, n) = (
            self.nodes[0].first_child as usize,
            self.nodes[0].n_children as usize,
        );
        if n == 0 {
            // Only one simulation ran (or root unexpanded): fall back to the first legal move.
            root.legal_actions(&mut self.legal);
            return self.legal.first().copied().unwrap_or(0);
        }
        let mut best = first;
        for i in first + 1..first + n {
            if self.nodes[i]
                .sort_key()
                .partial_cmp(&self.nodes[best].sort_key())
                == Some(std::cmp::Ordering::Greater)
            {
                best = i;
            }
        }
        self.nodes[best].action
    }

    /// MCTS-Solver backup at `idx`; returns whether solving continues upward.
    fn backup_solved(&mut self, idx: usize) -> bool {
        let (first, n) = (
            self.nodes[idx].first_child as usize,
            self.nodes[idx].n_children as usize,
        );
        let player = self.nodes[first].player;
        if player == CHANCE {
            let o = self.nodes[first];
            if o.solved
                && (first..first + n)
                    .all(|i| self.nodes[i].solved && self.nodes[i].outcome == o.outcome)
            {
                self.nodes[idx].solved = true;
                self.nodes[idx].outcome = o.outcome;
                return true;
            }
            return false;
        }
        let p = player as usize;
        let mut best: Option<usize> = None;
        let mut all_solved = true;
        for i in first..first + n {
            if !self.nodes[i].solved {
                all_solved = false;
            } else if best.is_none_or(|b| self.nodes[i].outcome[p] > self.nodes[b].outcome[p]) {
                best = Some(i);
            }
        }
        if let Some(b) = best {
            if all_solved || self.nodes[b].outcome[p] == self.cfg.max_utility {
                self.nodes[idx].solved = true;
                self.nodes[idx].outcome = self.nodes[b].outcome;
                return true;
            }
        }
        false
    }

    /// Number of tree nodes after the last search.
    pub fn tree_size(&self) -> usize {
        self.nodes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::games::{Nim, TicTacToe};

    #[test]
    fn finds_immediate_win_and_blocks() {
        let mut rng = tessera_core::rng::seeded(3);
        let mut m = Mcts::new(MctsConfig::default());
        // x: 0, 1 ; o: 3, 4 -> x to play 2 wins.
        let mut g = TicTacToe::default();
        for a in [0, 3, 1, 4] {
            g.apply(a);
        }
        assert_eq!(m.search(&g, &mut rng), 2);
        // o to move must block 2 (x threatens 0,1,2); o has no immediate win.
        let mut g = TicTacToe::default();
        for a in [0, 4, 1] {
            g.apply(a);
        }
        assert_eq!(m.search(&g, &mut rng), 2);
    }

    #[test]
    fn solver_plays_winning_misere_nim_move() {
        // Piles (0,0,2,1) with misère rules: the winning move leaves an odd number of single piles -> take the
        // whole pile of 2 (leaves one pile of 1 for the opponent).
        let mut rng = tessera_core::rng::seeded(9);
        let mut m = Mcts::new(MctsConfig::default());
        let g = Nim::with_piles([0, 0, 2, 1], 0);
        let a = m.search(&g, &mut rng);
        assert_eq!(g.action_label(a), "<pile:3, take:2>");
        assert!(m.last_simulations < 1000, "root should be solved early");
    }
}
