//! The ten GTBench games (paper Table 1) and [`AnyGame`], an enum over them that implements [`Game`] by
//! dispatch, so tournaments handle every game through one type while search stays monomorphic and fast.
mod blind_auction;
mod breakthrough;
mod connect_four;
mod kuhn_poker;
mod liars_dice;
mod negotiation;
mod nim;
mod pig;
mod prisoners_dilemma;
mod tic_tac_toe;

pub use blind_auction::BlindAuction;
pub use breakthrough::Breakthrough;
pub use connect_four::ConnectFour;
pub use kuhn_poker::KuhnPoker;
pub use liars_dice::LiarsDice;
pub use negotiation::Negotiation;
pub use nim::Nim;
pub use pig::Pig;
pub use prisoners_dilemma::PrisonersDilemma;
pub use tic_tac_toe::TicTacToe;

use crate::error::{ArenaError, Result};
use crate::game::{Action, Game, Turn};
use tessera_core::rng::Rng;

/// The ten games, by their CLI ids.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum GameId {
    /// Tic-Tac-Toe.
    TicTacToe,
    /// Connect-4.
    ConnectFour,
    /// Breakthrough 8×3.
    Breakthrough,
    /// Misère Nim 1/3/5/7.
    Nim,
    /// Kuhn Poker.
    KuhnPoker,
    /// Liar's Dice.
    LiarsDice,
    /// First-price sealed-bid auction.
    BlindAuction,
    /// Negotiation.
    Negotiation,
    /// Pig to 20.
    Pig,
    /// Iterated Prisoner's Dilemma.
    PrisonersDilemma,
}

/// Every game, in the paper's order.
pub const ALL_GAMES: [GameId; 10] = [
    GameId::TicTacToe,
    GameId::ConnectFour,
    GameId::Breakthrough,
    GameId::Nim,
    GameId::KuhnPoker,
    GameId::LiarsDice,
    GameId::BlindAuction,
    GameId::Negotiation,
    GameId::Pig,
    GameId::PrisonersDilemma,
];

impl GameId {
    /// The CLI id (`tic_tac_toe`, ...).
    pub fn id(self) -> &'static str {
        match self {
            GameId::TicTacToe => "tic_tac_toe",
            GameId::ConnectFour => "connect_four",
            GameId::Breakthrough => "breakthrough",
            GameId::Nim => "nim",
            GameId::KuhnPoker => "kuhn_poker",
            GameId::LiarsDice => "liars_dice",
            GameId::BlindAuction => "blind_auction",
            GameId::Negotiation => "negotiation",
            GameId::Pig => "pig",
            GameId::PrisonersDilemma => "prisoners_dilemma",
        }
    }
    /// Parses a CLI id.
    pub fn parse(s: &str) -> Result<Self> {
        ALL_GAMES
            .into_iter()
            .find(|g| g.id() == s.trim())
            .ok_or_else(|| {
                let ids: Vec<&str> = ALL_GAMES.iter().map(|g| g.id()).collect();
                ArenaError::Invalid(format!("unknown game '{s}' (known: {})", ids.join(", ")))
            })
    }
    /// The starting position.
    pub fn initial(self) -> AnyGame {
        match self {
            GameId::TicTacToe => AnyGame::TicTacToe(Default::default()),
            GameId::ConnectFour => AnyGame::ConnectFour(Default::default()),
            GameId::Breakthrough => AnyGame::Breakthrough(Default::default()),
            GameId::Nim => AnyGame::Nim(Default::default()),
            GameId::KuhnPoker => AnyGame::KuhnPoker(Default::default()),
            GameId::LiarsDice => AnyGame::LiarsDice(Default::default()),
            GameId::BlindAuction => AnyGame::BlindAuction(Default::default()),
            GameId::Negotiation => AnyGame::Negotiation(Default::default()),
            GameId::Pig => AnyGame::Pig(Default::default()),
            GameId::PrisonersDilemma => AnyGame::PrisonersDilemma(Default::default()),
        }
    }
    /// Zero-sum games are scored win 1 / draw 0.5 / loss 0 in NRA; the others by reward (paper §2.2).
    pub fn zero_sum(self) -> bool {
        !matches!(
            self,
            GameId::BlindAuction | GameId::Negotiation | GameId::PrisonersDilemma
        )
    }
    /// Complete-information deterministic games (paper Table 1, first group).
    pub fn deterministic(self) -> bool {
        matches!(
            self,
            GameId::TicTacToe | GameId::ConnectFour | GameId::Breakthrough | GameId::Nim
        )
    }
    /// Whether players hold private information (or move simultaneously).
    pub fn imperfect_information(self) -> bool {
        matches!(
            self,
            GameId::KuhnPoker
                | GameId::LiarsDice
                | GameId::BlindAuction
                | GameId::Negotiation
                | GameId::PrisonersDilemma
        )
    }
    /// Largest return a player can get (the MCTS-Solver's "proven win" value).
    pub fn max_utility(self) -> f64 {
        match self {
            GameId::KuhnPoker => 2.0,
            GameId::BlindAuction => 10.0,
            GameId::Negotiation => 150.0,
            GameId::PrisonersDilemma => f64::INFINITY,
            _ => 1.0,
        }
    }
    /// The full rules, as told to LLM agents (the real numbers of this implementation).
    pub fn rules(self) -> &'static str {
        match self {
            GameId::TicTacToe => "Tic-Tac-Toe on a 3x3 grid. Player 'x' moves first, then players alternate placing their mark in an empty cell. Three of your marks in a row, column or diagonal wins. A full board without such a line is a draw.",
            GameId::ConnectFour => "Connect-4 on a board of 6 rows and 7 columns. Players alternate dropping a disc into a column that is not full; the disc falls to the lowest empty cell of that column. Four of your discs in a row horizontally, vertically or diagonally wins. A full board is a draw.",
            GameId::Breakthrough => "Breakthrough on a board of 8 rows (1-8) and 3 columns (a-c). Black starts on rows 8 and 7 and moves first, towards row 1; white starts on rows 1 and 2 and moves towards row 8. On your turn move one of your pieces one row forward: straight ahead onto an empty cell, or diagonally forward onto an empty cell or onto an opponent piece, capturing it (captures are only diagonal). You win by reaching the opponent's home row (row 1 for black, row 8 for white) or by capturing all opponent pieces.",
            GameId::Nim => "Misere Nim with four piles of 1, 3, 5 and 7 objects. Players alternate; on your turn take one or more objects from a single pile. The player who takes the last object LOSES.",
            GameId::KuhnPoker => "Kuhn Poker with a deck of three cards: Jack < Queen < King. Each player antes 1 chip and gets one private card. Player 1 acts first: Pass or Bet (1 chip). If player 1 passes, player 2 may Pass (showdown, higher card wins the pot of 2) or Bet; after a bet the other player may Bet (call: showdown for a pot of 4) or Pass (fold: the bettor wins the pot). Your payoff is your net chip gain.",
            GameId::LiarsDice => "Liar's Dice with two players and one six-sided die each; you see only your own die. Player 1 bids first. A bid 'q x v' claims that at least q of the 2 dice show face v. Each new bid must be higher: more dice, or the same number of dice with a higher face. Instead of bidding you may call 'Liar' on the opponent's last bid; then both dice are revealed. Sixes are WILD: a 6 counts as every face. If the bid holds, the caller loses; otherwise the bidder loses. Winner +1, loser -1.",
            GameId::BlindAuction => "First-price sealed-bid auction for one item. Each player privately values the item at an integer from 1 to 10 (drawn uniformly). Each player submits one sealed bid, an integer from 0 up to one less than their own valuation, without seeing the other's bid. The higher bid wins the item and pays its bid: the winner's payoff is valuation minus bid, the loser's payoff is 0. Ties are broken by a fair coin flip.",
            GameId::Negotiation => "Negotiation over a pool of items of 3 types (books, hats, balls). Each player has private values per item type (integers 0-10) that the opponent cannot see. Players alternate turns, starting with player 1; the game lasts at most the stated number of turns. On your turn make a proposal [a, b, c] = the numbers of each item YOU keep (each at most the pool; the opponent gets the rest), or Agree to the opponent's last proposal; after a proposal you send an utterance of three symbols (each 0-4), which is free cheap talk. If a proposal is agreed, the proposer gets its items and the other player the rest, each scoring the sum of its own values of the items it gets. If no agreement is reached within the turn limit, both score 0.",
            GameId::Pig => "Pig with one six-sided die. On your turn you repeatedly choose Roll or Stop. Roll: a 1 ends your turn and you lose this turn's total; 2-6 are added to your turn total. Stop: your turn total is added to your banked score and the turn passes. The first player to reach a banked score of 20 points wins; once your banked score plus turn total reaches 20 you can only Stop (which wins).",
            GameId::PrisonersDilemma => "Iterated Prisoner's Dilemma. Each round both players simultaneously choose Cooperate or Defect. Payoffs per round: both cooperate 5 each; both defect 1 each; if one defects and the other cooperates, the defector gets 10 and the cooperator 0. After each round the game continues with probability 0.875 (stops with probability 0.125). Your score is the sum of your payoffs over all rounds.",
        }
    }
    /// The documented answer format for one move.
    pub fn action_format(self) -> &'static str {
        match self {
            GameId::TicTacToe => "<CxRy> with column x and row y in 1..3, e.g. <C2R3>",
            GameId::ConnectFour => "<Cx> with column x in 1..7, e.g. <C4>",
            GameId::Breakthrough => "<from->to>, cells as column letter + row number, e.g. <a7->b6> (a trailing * for captures is optional)",
            GameId::Nim => "<pile:p, take:t>, e.g. <pile:3, take:2>",
            GameId::KuhnPoker => "<Pass> or <Bet>",
            GameId::LiarsDice => "<Bid: q x v> (at least q dice show face v), e.g. <Bid: 1 x 4>, or <Liar>",
            GameId::BlindAuction => "<b> with your bid b, e.g. <3>",
            GameId::Negotiation => "<Proposal: [a, b, c]> or <Agree> on a proposal turn; <Utterance: [x, y, z]> on an utterance turn",
            GameId::Pig => "<Roll> or <Stop>",
            GameId::PrisonersDilemma => "<Cooperate> or <Defect>",
        }
    }
}

/// A position of any of the ten games.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum AnyGame {
    TicTacToe(TicTacToe),
    ConnectFour(ConnectFour),
    Breakthrough(Breakthrough),
    Nim(Nim),
    KuhnPoker(KuhnPoker),
    LiarsDice(LiarsDice),
    BlindAuction(BlindAuction),
    Negotiation(Negotiation),
    Pig(Pig),
    PrisonersDilemma(PrisonersDilemma),
}

macro_rules! dispatch {
    ($self:expr, $g:ident => $e:expr) => {
        match $self {
            AnyGame::TicTacToe($g) => $e,
            AnyGame::ConnectFour($g) => $e,
            AnyGame::Breakthrough($g) => $e,
            AnyGame::Nim($g) => $e,
            AnyGame::KuhnPoker($g) => $e,
            AnyGame::LiarsDice($g) => $e,
            AnyGame::BlindAuction($g) => $e,
            AnyGame::Negotiation($g) => $e,
            AnyGame::Pig($g) => $e,
            AnyGame::PrisonersDilemma($g) => $e,
        }
    };
}

impl AnyGame {
    /// Which game this is.
    pub fn id(&self) -> GameId {
        match self {
            AnyGame::TicTacToe(_) => GameId::TicTacToe,
            AnyGame::ConnectFour(_) => GameId::ConnectFour,
            AnyGame::Breakthrough(_) => GameId::Breakthrough,
            AnyGame::Nim(_) => GameId::Nim,
            AnyGame::KuhnPoker(_) => GameId::KuhnPoker,
            AnyGame::LiarsDice(_) => GameId::LiarsDice,
            AnyGame::BlindAuction(_) => GameId::BlindAuction,
            AnyGame::Negotiation(_) => GameId::Negotiation,
            AnyGame::Pig(_) => GameId::Pig,
            AnyGame::PrisonersDilemma(_) => GameId::PrisonersDilemma,
        }
    }
}

impl Game for AnyGame {
    fn turn(&self) -> Turn {
        dispatch!(self, g => g.turn())
    }
    fn legal_actions(&self, out: &mut Vec<Action>) {
        dispatch!(self, g => g.legal_actions(out))
    }
    fn chance_outcomes(&self, out: &mut Vec<(Action, f64)>) {
        dispatch!(self, g => g.chance_outcomes(out))
    }
    fn sample_chance(&self, rng: &mut Rng) -> Action {
        dispatch!(self, g => g.sample_chance(rng))
    }
    fn apply(&mut self, a: Action) {
        dispatch!(self, g => g.apply(a))
    }
    fn returns(&self) -> [f64; 2] {
        dispatch!(self, g => g.returns())
    }
    fn observation(&self, player: usize) -> String {
        dispatch!(self, g => g.observation(player))
    }
    fn action_label(&self, a: Action) -> String {
        dispatch!(self, g => g.action_label(a))
    }
    fn chance_label(&self, a: Action) -> String {
        dispatch!(self, g => g.chance_label(a))
    }
    fn action_space(&self) -> std::ops::Range<Action> {
        dispatch!(self, g => g.action_space())
    }
    fn info_key(&self, player: usize) -> u64 {
        dispatch!(self, g => g.info_key(player))
    }
    fn determinize(&self, player: usize, rng: &mut Rng) -> Self {
        match self {
            AnyGame::TicTacToe(g) => AnyGame::TicTacToe(g.determinize(player, rng)),
            AnyGame::ConnectFour(g) => AnyGame::ConnectFour(g.determinize(player, rng)),
            AnyGame::Breakthrough(g) => AnyGame::Breakthrough(g.determinize(player, rng)),
            AnyGame::Nim(g) => AnyGame::Nim(g.determinize(player, rng)),
            AnyGame::KuhnPoker(g) => AnyGame::KuhnPoker(g.determinize(player, rng)),
            AnyGame::LiarsDice(g) => AnyGame::LiarsDice(g.determinize(player, rng)),
            AnyGame::BlindAuction(g) => AnyGame::BlindAuction(g.determinize(player, rng)),
            AnyGame::Negotiation(g) => AnyGame::Negotiation(g.determinize(player, rng)),
            AnyGame::Pig(g) => AnyGame::Pig(g.determinize(player, rng)),
            AnyGame::PrisonersDilemma(g) => AnyGame::PrisonersDilemma(g.determinize(player, rng)),
        }
    }
    fn perfect_information(&self) -> bool {
        dispatch!(self, g => g.perfect_information())
    }
}

impl std::fmt::Display for GameId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}

impl std::str::FromStr for GameId {
    type Err = ArenaError;
    fn from_str(s: &str) -> Result<Self> {
        GameId::parse(s)
    }
}
