//! Tic-Tac-Toe 3×3 (OpenSpiel `tic_tac_toe`): `x` (player 0) moves first; three in a row wins (+1/−1), a full
//! board without a line is a draw. Action = 3·row + column; label `<CxRy>` (1-based column x, row y).
use crate::game::{mix, Action, Game, Turn};

/// The eight lines as bit masks over cells 0..9 (cell = 3·row + column).
const LINES: [u16; 8] = [0o007, 0o070, 0o700, 0o111, 0o222, 0o444, 0o421, 0o124];

/// A Tic-Tac-Toe position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TicTacToe {
    /// Bit masks of the cells held by `x` and by `o`.
    marks: [u16; 2],
    to_move: u8,
    moves: u8,
    winner: i8,
}

impl Default for TicTacToe {
    fn default() -> Self {
        TicTacToe {
            marks: [0; 2],
            to_move: 0,
            moves: 0,
            winner: -1,
        }
    }
}

impl TicTacToe {
    fn cell(&self, i: usize) -> u8 {
        if self.marks[0] >> i & 1 == 1 {
            1
        } else if self.marks[1] >> i & 1 == 1 {
            2
        } else {
            0
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
        let mut free = !(self.marks[0] | self.marks[1]) & 0x1ff;
        while free != 0 {
            out.push(free.trailing_zeros() as Action);
            free &= free - 1;
        }
    }
    fn chance_outcomes(&self, out: &mut Vec<(Action, f64)>) {
        out.clear();
    }
    fn apply(&mut self, a: Action) {
        let p = self.to_move as usize;
        self.marks[p] |= 1 << a;
        self.moves += 1;
        let m = self.marks[p];
        for &line in &LINES {
            if m & line == line {
                self.winner = p as i8;
                break;
            }
        }
        self.to_move = 1 - self.to_move;
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
                s.push_str(&format!("  {}", mark(self.cell(3 * r + c))));
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
        mix(
            mix(self.to_move as u64, self.marks[0] as u64),
            self.marks[1] as u64,
        )
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
