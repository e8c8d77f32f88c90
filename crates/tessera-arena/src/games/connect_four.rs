//! Connect-4 on 6 rows × 7 columns (OpenSpiel `connect_four`): `x` (player 0) first, a move drops a disc in a
//! column, four in a row (horizontal, vertical, diagonal) wins, a full board is a draw. Action = column;
//! label `<Cx>` (1-based column).
use crate::game::{mix, Action, Game, Turn};

const ROWS: usize = 6;
const COLS: usize = 7;

/// A Connect-4 position. `board[r * COLS + c]`, row 0 is the bottom.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectFour {
    board: [u8; ROWS * COLS],
    heights: [u8; COLS],
    to_move: u8,
    moves: u8,
    winner: i8,
}

impl Default for ConnectFour {
    fn default() -> Self {
        ConnectFour {
            board: [0; ROWS * COLS],
            heights: [0; COLS],
            to_move: 0,
            moves: 0,
            winner: -1,
        }
    }
}

impl ConnectFour {
    fn cell(&self, r: isize, c: isize) -> u8 {
        if r < 0 || c < 0 || r >= ROWS as isize || c >= COLS as isize {
            0
        } else {
            self.board[r as usize * COLS + c as usize]
        }
    }
    fn wins_at(&self, r: isize, c: isize, v: u8) -> bool {
        [(0, 1), (1, 0), (1, 1), (1, -1)].iter().any(|&(dr, dc)| {
            let mut n = 1;
            for s in [1isize, -1] {
                let (mut rr, mut cc) = (r + s * dr, c + s * dc);
                while self.cell(rr, cc) == v {
                    n += 1;
                    rr += s * dr;
                    cc += s * dc;
                }
            }
            n >= 4
        })
    }
}

impl Game for ConnectFour {
    fn turn(&self) -> Turn {
        if self.winner >= 0 || self.moves as usize == ROWS * COLS {
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
        out.extend(
            (0..COLS)
                .filter(|&c| (self.heights[c] as usize) < ROWS)
                .map(|c| c as Action),
        );
    }
    fn chance_outcomes(&self, out: &mut Vec<(Action, f64)>) {
        out.clear();
    }
    fn apply(&mut self, a: Action) {
        let c = a as usize;
        let r = self.heights[c] as usize;
        let v = self.to_move + 1;
        self.board[r * COLS + c] = v;
        self.heights[c] += 1;
        self.moves += 1;
        if self.wins_at(r as isize, c as isize, v) {
            self.winner = self.to_move as i8;
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
        let mut s = String::from(" C1 C2 C3 C4 C5 C6 C7\n");
        for r in (0..ROWS).rev() {
            for c in 0..COLS {
                s.push_str(match self.board[r * COLS + c] {
                    1 => "  x",
                    2 => "  o",
                    _ => "  .",
                });
            }
            s.push('\n');
        }
        s.push_str(&format!(
            "(bottom row last; discs fall to the lowest empty cell) You play '{}'.",
            if player == 0 { 'x' } else { 'o' }
        ));
        s
    }
    fn action_label(&self, a: Action) -> String {
        format!("<C{}>", a + 1)
    }
    fn action_space(&self) -> std::ops::Range<Action> {
        0..COLS as Action
    }
    fn info_key(&self, _player: usize) -> u64 {
        self.board
            .iter()
            .fold(self.to_move as u64, |h, &c| mix(h, c as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vertical_and_diagonal_fours_win() {
        let mut g = ConnectFour::default();
        for a in [0, 1, 0, 1, 0, 1, 0] {
            g.apply(a);
        }
        assert_eq!(g.returns(), [1.0, -1.0]);
        // Diagonal for o (player 1): o at (0,1),(1,2),(2,3),(3,4).
        let mut g = ConnectFour::default();
        for a in [0, 1, 2, 2, 3, 3, 4, 3, 4, 4, 6, 4] {
            assert!(!g.is_terminal());
            g.apply(a);
        }
        assert_eq!(g.returns(), [-1.0, 1.0]);
    }

    #[test]
    fn full_column_is_illegal() {
        let mut g = ConnectFour::default();
        for a in [0, 0, 0, 0, 0, 0] {
            g.apply(a);
        }
        assert!(!crate::game::legal(&g).contains(&0));
    }
}
