//! Tic-Tac-Toe 3×3 (OpenSpiel `tic_tac_toe`): `x` (player 0) moves first; three in a row wins (+1/−1), a full
//! board without a line is a draw. Action = 3·row + column; label `<CxRy>` (1-based column x, row y).
use crate::game::{mix, Action, Game, Turn};
use tessera_core::rng::Rng;

const LINES: [[usize; 3]; 8] = [
    [0, 1, 2],
    [3, 4, 5],
    [6, 7, 8],
    [0, 3, 6],
    [1, 4, 7],
    [2, 5, 8],
    [0, 4, 8],
    [2, 4, 6],
];

/// A Tic-Tac-Toe position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TicTacToe {
    board: [u8; 9],
    to_move: u8,
    moves: u8,
    winner: i8,
}

impl Default for TicTacToe {
    fn default() -> Self {
        TicTacToe {
            board: [0; 9],
            to_move: 0,
            moves: 0,
            winner: -1,
        }
    }
}

fn mark(c: u8) -> char {
    match c {
        1 => 'x',
        2 => 'o',
        _ => '.',
    }
}

impl Game for TicTacToe {
    fn turn(&self) -> Turn {
        if self.winner >= 0 || self.moves == 9 {
            Turn::Terminal
        } else {
            Turn::Player(self.to_move as usize)
        }
    }
    fn legal_actions(&self, out: &mut Vec<Action>) {
        out.clear();
        if self.is_terminal() {
            return;
        }
        out.extend((0..9).filter(|&i| self.board[i] == 0).map(|i| i as Action));
    }
    fn chance_outcomes(&self, out: &mut Vec<(Action, f64)>) {
        out.clear();
    }
    fn apply(&mut self, a: Action) {
        let p = self.to_move;
        self.board[a as usize] = p + 1;
        self.moves += 1;
        if LINES
            .iter()
            .any(|l| l.contains(&(a as usize)) && l.iter().all(|&i| self.board[i] == p + 1))
        {
            self.winner = p as i8;
        }
        self.to_move = 1 - p;
    }
    fn returns(&self) -> [f64; 2] {
        match self.winner {
            0 => [1.0, -1.0],
            1 => [-1.0, 1.0],
            _ => [0.0, 0.0],
        }
    }
    fn observation(&self, player: usize) -> String {
        let mut s = String::from("    C1 C2 C3\n");
        for r in 0..3 {
            s.push_str(&format!("R{} ", r + 1));
            for c in 0..3 {
                s.push_str(&format!("  {}", mark(self.board[3 * r + c])));
            }
            s.push('\n');
        }
        s.push_str(&format!("You play '{}'.", mark(player as u8 + 1)));
        s
    }
    fn action_label(&self, a: Action) -> String {
        format!("<C{}R{}>", a % 3 + 1, a / 3 + 1)
    }
    fn action_space(&self) -> std::ops::Range<Action> {
        0..9
    }
    fn info_key(&self, _player: usize) -> u64 {
        self.board
            .iter()
            .fold(self.to_move as u64, |h, &c| mix(h, c as u64))
    }
    fn determinize(&self, _player: usize, _rng: &mut Rng) -> Self {
        *self
    }
    fn perfect_information(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagonal_wins_and_labels_are_column_row() {
        let mut g = TicTacToe::default();
        for a in [0, 1, 4, 2, 8] {
            g.apply(a);
        }
        assert_eq!(g.turn(), Turn::Terminal);
        assert_eq!(g.returns(), [1.0, -1.0]);
        assert_eq!(g.action_label(5), "<C3R2>");
    }

    #[test]
    fn full_board_without_line_is_a_draw() {
        let mut g = TicTacToe::default();
        for a in [0, 1, 2, 4, 3, 5, 7, 6, 8] {
            assert!(!g.is_terminal());
            g.apply(a);
        }
        assert!(g.is_terminal());
        assert_eq!(g.returns(), [0.0, 0.0]);
    }
}
