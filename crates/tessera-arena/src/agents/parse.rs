//! Action parsing for LLM answers: one documented format per game (the action labels, see
//! [`crate::GameId::action_format`]).
//!
//! Only the text after the last `Action:` is read when it is present (so reasoning may mention other moves).
//! Matching ignores case, whitespace, a capture `*`, and Unicode dashes/arrows. Several *different* moves, no
//! move, or a move that is not legal are errors that the agent feeds back to the model (GTBench instead takes
//! the last regex match and aborts the match on an illegal move).
use crate::game::{Action, Game};

/// Why an answer did not yield a legal move.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum ParseError {
    /// No move in the documented format.
    NoMove,
    /// Several different moves.
    MultipleMoves(Vec<String>),
    /// A well-formed move that is not legal now.
    Illegal(String),
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParseError::NoMove => write!(f, "no move in the required format was found"),
            ParseError::MultipleMoves(m) => write!(
                f,
                "several different moves were given ({}); give exactly one",
                m.join(", ")
            ),
            ParseError::Illegal(m) => write!(f, "{m} is not a legal move now"),
        }
    }
}

/// Lower-cases and strips whitespace, `*`, quotes and backticks; maps Unicode dashes and arrows to ASCII.
pub fn normalize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            c if c.is_whitespace() => {}
            '*' | '"' | '\'' | '`' => {}
            '\u{2212}' | '\u{2013}' | '\u{2014}' | '\u{2010}' | '\u{2011}' => out.push('-'),
            '\u{2192}' | '\u{27f6}' => out.push_str("->"),
            c => out.extend(c.to_lowercase()),
        }
    }
    out
}

/// Parses one move of the player to move at `g` from an LLM answer.
pub fn parse_action<G: Game>(g: &G, text: &str) -> Result<Action, ParseError> {
    // ASCII lower-casing keeps byte offsets valid in `text` (full Unicode lower-casing can change lengths).
    let lower = text.to_ascii_lowercase();
    let segment = match lower.rfind("action:") {
        Some(i) => &text[i + "action:".len()..],
        None => text,
    };
    let norm = normalize(segment);
    let mut found: Vec<(usize, Action)> = Vec::new();
    for a in g.action_space() {
        let label = normalize(&g.action_label(a));
        let mut from = 0;
        while let Some(i) = norm[from..].find(&label) {
            found.push((from + i, a));
            // Step one character (not one byte) past the match start, so a label may start with any character.
            from += i + norm[from + i..].chars().next().map_or(1, char::len_utf8);
        }
    }
    if found.is_empty() {
        // Fallback: the whole answer segment is exactly one label without its angle brackets ("Action: C2R3").
        let bare =
            norm.trim_matches(|c: char| matches!(c, '.' | ',' | ';' | ':' | '<' | '>' | '[' | ']'));
        if !bare.is_empty() {
            for a in g.action_space() {
                let label = normalize(&g.action_label(a));
                if label.trim_matches(|c| c == '<' || c == '>') == bare {
                    found.push((0, a));
                }
            }
        }
    }
    found.sort_unstable();
    let mut distinct: Vec<Action> = Vec::new();
    for &(_, a) in &found {
        if !distinct.contains(&a) {
            distinct.push(a);
        }
    }
    match distinct.as_slice() {
        [] => Err(ParseError::NoMove),
        [a] => {
            let mut legal = Vec::new();
            g.legal_actions(&mut legal);
            if legal.contains(a) {
                Ok(*a)
            } else {
                Err(ParseError::Illegal(g.action_label(*a)))
            }
        }
        many => Err(ParseError::MultipleMoves(
            many.iter().map(|&a| g.action_label(a)).collect(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GameId;

    #[test]
    fn parses_one_move_and_rejects_several_none_or_illegal() {
        let mut g = GameId::TicTacToe.initial();
        assert_eq!(
            parse_action(&g, "I think the centre. Action: <C2R2>"),
            Ok(4)
        );
        assert_eq!(
            parse_action(&g, "<C1R1> is bad, <C3R3> too.\nAction: < c2r2 >"),
            Ok(4)
        );
        assert_eq!(parse_action(&g, "Action: C2R2."), Ok(4));
        assert_eq!(
            parse_action(&g, "<C1R1> or <C3R3>"),
            Err(ParseError::MultipleMoves(vec![
                "<C1R1>".into(),
                "<C3R3>".into()
            ]))
        );
        assert_eq!(parse_action(&g, "I resign!!"), Err(ParseError::NoMove));
        assert_eq!(
            parse_action(&g, "\u{0}\u{7f}<<>>>"),
            Err(ParseError::NoMove)
        );
        // Multi-byte text around and before the marker (İ lower-cases to two chars in full Unicode).
        assert_eq!(
            parse_action(&g, "İİ ß Ω — ACTİON: x. Ω Action: <C2R2> ✓"),
            Ok(4)
        );
        assert_eq!(parse_action(&g, "İ\u{301}ACTION:<c2r2>"), Ok(4));
        g.apply(4);
        assert_eq!(
            parse_action(&g, "Action: <C2R2>"),
            Err(ParseError::Illegal("<C2R2>".into()))
        );
    }

    #[test]
    fn breakthrough_and_bids_with_unicode_and_capture_marks() {
        let g = GameId::Breakthrough.initial();
        let a = parse_action(&g, "Action: <a7\u{2212}>b6*>").unwrap();
        assert_eq!(g.action_label(a), "<a7->b6>");
        let mut a = GameId::BlindAuction.initial();
        a.apply(10);
        a.apply(3);
        assert_eq!(parse_action(&a, "Action: <9>"), Ok(9));
        assert_eq!(
            parse_action(&a, "Action: <10>"),
            Err(ParseError::NoMove),
            "10 is outside the bid space"
        );
    }
}
