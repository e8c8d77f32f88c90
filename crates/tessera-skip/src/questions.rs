//! Factoid questions: JSONL, one `{"question": "...", "answers": ["...", ...]}` object per line. The project's set
//! (`data/factoid.jsonl`, written for Tessera) is compiled in; any file of the same format can be loaded.
use crate::error::{Result, SkipError};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The project's factoid set (`data/factoid.jsonl` at the repository root).
pub const FACTOID_JSONL: &str = include_str!("../../../data/factoid.jsonl");
/// The name the built-in set is reported under.
pub const FACTOID_NAME: &str = "data/factoid.jsonl";

/// One question with its accepted answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Question {
    /// The question.
    pub question: String,
    /// Accepted answers (any one, found case-insensitively as a whole word or phrase, counts as correct).
    pub answers: Vec<String>,
}

/// Parses JSONL text; `path` names the source in errors (each error carries the 1-based line number).
/// Blank lines are skipped.
pub fn parse(text: &str, path: &Path) -> Result<Vec<Question>> {
    let err = |line: usize, msg: String| SkipError::Questions {
        path: path.to_path_buf(),
        line,
        msg,
    };
    let mut out = vec![];
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let q: Question = serde_json::from_str(line).map_err(|e| {
            err(
                i + 1,
                format!("expected {{\"question\": \"...\", \"answers\": [\"...\"]}} ({e})"),
            )
        })?;
        if q.question.trim().is_empty() {
            return Err(err(i + 1, "the question is empty".into()));
        }
        if q.answers.is_empty() || q.answers.iter().any(|a| a.trim().is_empty()) {
            return Err(err(
                i + 1,
                "`answers` must hold at least one non-empty answer".into(),
            ));
        }
        out.push(q);
    }
    if out.is_empty() {
        return Err(SkipError::invalid(format!(
            "{}: no questions",
            path.display()
        )));
    }
    Ok(out)
}

/// Loads a questions file, or the built-in set when `path` is `None`.
pub fn load(path: Option<&Path>) -> Result<Vec<Question>> {
    match path {
        None => parse(FACTOID_JSONL, Path::new(FACTOID_NAME)),
        Some(p) => parse(&tessera_core::fsx::read_to_string(p)?, p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_set_has_at_least_150_questions() {
        let q = load(None).unwrap();
        assert!(q.len() >= 150, "{}", q.len());
        let mut seen = std::collections::HashSet::new();
        for x in &q {
            assert!(
                seen.insert(x.question.to_lowercase()),
                "duplicate: {}",
                x.question
            );
        }
    }

    #[test]
    fn malformed_lines_are_named() {
        let p = Path::new("q.jsonl");
        let good = r#"{"question": "Capital of Peru?", "answers": ["Lima"]}"#;
        let e = parse(&format!("{good}\n\n{{\"question\": 3}}\n"), p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("q.jsonl: line 3"), "{e}");
        let e = parse(
            &format!("{good}\n{{\"question\": \"x\", \"answers\": []}}"),
            p,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("line 2"), "{e}");
        let e = parse("not json", p).unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
        assert!(parse("\n\n", p).is_err());
        assert_eq!(parse(good, p).unwrap()[0].answers, vec!["Lima"]);
    }
}
