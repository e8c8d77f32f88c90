//! The one `Game` trait every arena game implements (OpenSpiel-style extensive-form interface, two players).
//!
//! A value of a type implementing [`Game`] is one *position* (OpenSpiel's `State`). Positions are small `Copy`
//! structs without heap data, so search algorithms clone them for free. Simultaneous moves (Iterated Prisoner's
//! Dilemma) are serialised as OpenSpiel's `turn_based_simultaneous_game` does: player 0 moves, then player 1 moves
//! without seeing that move (it is absent from player 1's observation), then the round resolves.
use tessera_core::rng::Rng;

/// An action id. Its meaning depends on the game and, for chance nodes, is the outcome.
pub type Action = u16;

/// Whose turn it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Turn {
    /// Player 0 or 1 decides.
    Player(usize),
    /// Nature samples an outcome.
    Chance,
    /// The game is over.
    Terminal,
}

/// A game position. All methods are cheap; none panics on a position reached through legal play.
pub trait Game: Clone + Send + Sync + 'static {
    /// Whose turn it is.
    fn turn(&self) -> Turn;
    /// Legal actions of the player to move, in increasing order (empty at chance and terminal nodes).
    fn legal_actions(&self, out: &mut Vec<Action>);
    /// Chance outcomes with probabilities (empty unless at a chance node).
    fn chance_outcomes(&self, out: &mut Vec<(Action, f64)>);
    /// Samples a chance outcome (default: from [`Game::chance_outcomes`]).
    fn sample_chance(&self, rng: &mut Rng) -> Action {
        use rand::Rng as _;
        let mut v = Vec::new();
        self.chance_outcomes(&mut v);
        let mut u: f64 = rng.gen();
        for &(a, p) in &v {
            if u < p {
                return a;
            }
            u -= p;
        }
        v.last().map(|x| x.0).unwrap_or(0)
    }
    /// Applies a legal action (or chance outcome). Applying an illegal action is a logic error and may leave the
    /// position inconsistent; callers check legality first.
    fn apply(&mut self, a: Action);
    /// Final returns of both players (zeros before the end).
    fn returns(&self) -> [f64; 2];
    /// Whether the game is over.
    fn is_terminal(&self) -> bool {
        self.turn() == Turn::Terminal
    }
    /// Text of everything `player` may know at this position (its information set), with a rendered board.
    fn observation(&self, player: usize) -> String;
    /// The label of action `a` for the player to move, in the documented format (e.g. `<C2R3>`).
    fn action_label(&self, a: Action) -> String;
    /// A readable label of chance outcome `a` at this chance node.
    fn chance_label(&self, a: Action) -> String {
        format!("outcome {a}")
    }
    /// The full action-id range of the current decision (used to tell an illegal move from an unparsable one).
    fn action_space(&self) -> std::ops::Range<Action>;
    /// A key identifying `player`'s information set (own private data + public history). Equal keys mean the
    /// player cannot tell the positions apart.
    fn info_key(&self, player: usize) -> u64;
    /// Samples a position consistent with `player`'s information set (hidden data of the opponent drawn from its
    /// prior, conditioned on what `player` observed). The default, for perfect-information games, is a copy.
    fn determinize(&self, _player: usize, _rng: &mut Rng) -> Self {
        self.clone()
    }
    /// Whether neither player ever holds private information (default: true; games with hidden data override it).
    fn perfect_information(&self) -> bool {
        true
    }
}

/// The legal actions as a fresh vector (convenience for non-hot paths).
pub fn legal<G: Game>(g: &G) -> Vec<Action> {
    let mut v = Vec::new();
    g.legal_actions(&mut v);
    v
}

/// Mixes `x` into the hash `h` (FNV-1a style on 64 bits), for building information-set keys.
pub fn mix(h: u64, x: u64) -> u64 {
    (h ^ x.wrapping_add(0x9e37_79b9_7f4a_7c15))
        .wrapping_mul(0x0000_0100_0000_01b3)
        .rotate_left(17)
}
