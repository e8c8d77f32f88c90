//! Breakthrough on 8 rows × 3 columns (OpenSpiel `breakthrough(rows=8,columns=3)`, as GTBench configures it).
//!
//! Black (`b`, player 0) starts on rows 8–7 and moves first, towards row 1; white (`w`, player 1) starts on rows
//! 1–2 and moves towards row 8. A piece moves one row forward, straight (only onto an empty cell) or diagonally
//! (onto an empty cell, or capturing an opponent piece there). Reaching the opponent's home row or capturing all
//! opponent pieces wins (+1/−1). Action = 3·cell + direction (0: towards column a, 1: straight, 2: towards
//! column c); label `<a7->b6>` (a `*` suffix marks a capture and is optional when parsing).
use crate::game::{mix, Action, Game, Turn};

const ROWS: usize = 8;
const COLS: usize = 3;

/// A Breakthrough position; `board[r * COLS + c]`, internal row 0 is printed as row 8 (black's home).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Breakthrough {
    board: [u8; ROWS * COLS],
    pieces: [u8; 2],
    to_move: u8,
    winner: i8,
}

impl Default for Breakthrough {
    fn default() -> Self {
        let mut board = [0; ROWS * COLS];
        for (i, b) in board.iter_mut().enumerate() {
            let r = i / COLS;
            *b = if r <= 1 {
                1
            } else if r >= ROWS - 2 {
                2
            } else {
                0
            };
        }
        Breakthrough {
            board,
            pieces: [6, 6],
            to_move: 0,
            winner: -1,
        }
    }
}

impl Breakthrough {
    fn target(cell: usize, dir: usize, player: u8) -> Option<usize> {
        let (r, c) = ((cell / COLS) as isize, (cell % COLS) as isize);
        let nr = if player == 0 { r + 1 } else { r - 1 };
        let nc = c + dir as isize - 1;
        if nr < 0 || nr >= ROWS as isize || nc < 0 || nc >= COLS as isize {
            None
        } else {
            Some(nr as usize * COLS + nc as usize)
        }
    }
    fn cell_name(cell: usize) -> String {
        format!(
            "{}{}",
            (b'a' + (cell % COLS) as u8) as char,
            ROWS - cell / COLS
        )
    }
    /// Builds a position from rows as printed (row 8 first), `b`/`w`/`.`, with `to_move` to play.
    pub fn from_rows(rows: &[&str; ROWS], to_move: usize) -> Self {
        let mut g = Breakthrough {
            board: [0; ROWS * COLS],
            pieces: [0, 0],
            to_move: to_move as u8,
            winner: -1,
        };
        for (r, line) in rows.iter().enumerate() {
            for (c, ch) in line.chars().take(COLS).enumerate() {
                let v = match ch {
                    'b' => 1,
                    'w' => 2,
                    _ => 0,
                };
                g.board[r * COLS + c] = v;
                if v > 0 {
                    g.pieces[v as usize - 1] += 1;
                }
            }
        }
        g
    }
}

impl Game for Breakthrough {
    fn turn(&self) -> Turn {
        if self.winner >= 0 {
            Turn::Terminal
        } else {
            Turn::Player(self.to_move as usize)
        }
    }
    fn legal_actions(&self, out: &mut Vec<Action>) {
        out.clear();
        if self.winner >= 0 {
            return;
        }
        let me = self.to_move + 1;
        for cell in 0..ROWS * COLS {
            if self.board[cell] != me {
                continue;
            }
            for dir in 0..3 {
                if let Some(t) = Self::target(cell, dir, self.to_move) {
                    let v = self.board[t];
                    if v == 0 || (dir != 1 && v != me) {
                        out.push((cell * 3 + dir) as Action);
                    }
                }
            }
        }
    }
    fn chance_outcomes(&self, out: &mut Vec<(Action, f64)>) {
        out.clear();
    }
    fn apply(&mut self, a: Action) {
        let (cell, dir) = (a as usize / 3, a as usize % 3);
        let p = self.to_move;
        let Some(t) = Self::target(cell, dir, p) else {
            return;
        };
        if self.board[t] != 0 {
            self.pieces[(1 - p) as usize] -= 1;
        }
        self.board[t] = p + 1;
        self.board[cell] = 0;
        let home_row = if p == 0 { ROWS - 1 } else { 0 };
        if t / COLS == home_row || self.pieces[(1 - p) as usize] == 0 {
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
        let mut s = String::new();
        for r in 0..ROWS {
            s.push_str(&format!("{} ", ROWS - r));
            for c in 0..COLS {
                s.push(match self.board[r * COLS + c] {
                    1 => 'b',
                    2 => 'w',
                    _ => '.',
                });
            }
            s.push('\n');
        }
        s.push_str("  abc\n");
        s.push_str(if player == 0 {
            "You play black ('b'), moving down towards row 1."
        } else {
            "You play white ('w'), moving up towards row 8."
        });
        s
    }
    fn action_label(&self, a: Action) -> String {
        let (cell, dir) = (a as usize / 3, a as usize % 3);
        let player = if self.board[cell] == 2 {
            1
        } else {
            self.to_move
        };
        match Self::target(cell, dir, player) {
            Some(t) => {
                let cap = if self.board[t] != 0 && self.board[t] != self.board[cell] {
                    "*"
                } else {
                    ""
                };
                format!("<{}->{}{}>", Self::cell_name(cell), Self::cell_name(t), cap)
            }
            None => format!("<{}->off-board-{}>", Self::cell_name(cell), dir),
        }
    }
    fn action_space(&self) -> std::ops::Range<Action> {
        0..(ROWS * COLS * 3) as Action
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
    use crate::game::legal;

    fn find(g: &Breakthrough, label: &str) -> Option<Action> {
        legal(g).into_iter().find(|&a| {
            g.action_label(a)
                .trim_end_matches('>')
                .trim_end_matches('*')
                == label.trim_end_matches('>')
        })
    }

    #[test]
    fn initial_position_matches_openspiel() {
        let g = Breakthrough::default();
        let labels: Vec<String> = legal(&g).iter().map(|&a| g.action_label(a)).collect();
        // OpenSpiel 1.4 lists a7a6 a7b6 b7a6 b7b6 b7c6 c7b6 c7c6 (black to move first).
        assert_eq!(
            labels,
            ["<a7->a6>", "<a7->b6>", "<b7->a6>", "<b7->b6>", "<b7->c6>", "<c7->b6>", "<c7->c6>"]
        );
    }

    #[test]
    fn captures_are_diagonal_only_and_reaching_home_row_wins() {
        let g =
            Breakthrough::from_rows(&["...", "...", "...", ".b.", ".w.", "...", "...", "w.."], 0);
        // Straight move blocked by the white piece, no capture straight ahead.
        assert!(find(&g, "<b5->b4").is_none());
        let g =
            Breakthrough::from_rows(&["...", "...", "...", ".b.", "w.w", "...", "...", "..."], 0);
        let cap = find(&g, "<b5->a4").expect("diagonal capture is legal");
        assert!(g.action_label(cap).ends_with("*>"));
        let mut g2 = g;
        g2.apply(cap);
        assert_eq!(g2.pieces, [1, 1]);
        assert!(!g2.is_terminal());
        let g =
            Breakthrough::from_rows(&["...", "...", "...", "...", "...", "...", ".b.", "w.."], 0);
        let mut g3 = g;
        g3.apply(find(&g, "<b2->b1").unwrap());
        assert_eq!(g3.returns(), [1.0, -1.0]);
    }

    #[test]
    fn capturing_the_last_piece_wins() {
        let mut g =
            Breakthrough::from_rows(&["...", "...", "...", ".b.", "w..", "...", "...", "..."], 1);
        let a = find(&g, "<a4->b5").unwrap();
        g.apply(a);
        assert_eq!(g.returns(), [-1.0, 1.0]);
    }
}
