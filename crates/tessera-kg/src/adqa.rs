//! The ADQA benchmark of DALK (`dalk/result_filter/*.json`): four subsets, each with its own schema, read into one
//! [`Question`] type, and the Alzheimer's-disease articles of the QA4MRE subset as the demo construction corpus.
use crate::error::{KgError, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// One ADQA subset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Subset {
    /// MedQA (152 questions; `choices`, `answer` as the option text).
    Medqa,
    /// MedMCQA (210; `opa..opd`, `cop` 0-based).
    Medmcqa,
    /// MMLU (49; `choices`, `answer` 0-based).
    Mmlu,
    /// QA4MRE (35; `answer_options.answer_str`, `correct_answer_id` 1-based).
    Qa4mre,
}

impl Subset {
    /// Every subset, in report order.
    pub const ALL: [Subset; 4] = [Subset::Medqa, Subset::Medmcqa, Subset::Mmlu, Subset::Qa4mre];

    /// The file name under `dalk/result_filter/`.
    pub fn file(self) -> &'static str {
        match self {
            Subset::Medqa => "medqa_filter.json",
            Subset::Medmcqa => "medmcqa_filter.json",
            Subset::Mmlu => "mmlu_filter.json",
            Subset::Qa4mre => "qa4mre_filter.json",
        }
    }
}

impl std::fmt::Display for Subset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Subset::Medqa => "medqa",
            Subset::Medmcqa => "medmcqa",
            Subset::Mmlu => "mmlu",
            Subset::Qa4mre => "qa4mre",
        })
    }
}

impl std::str::FromStr for Subset {
    type Err = KgError;
    fn from_str(s: &str) -> Result<Self> {
        Subset::ALL
            .into_iter()
            .find(|x| x.to_string() == s)
            .ok_or_else(|| {
                KgError::invalid(format!(
                    "subset `{s}`: expected medqa, medmcqa, mmlu or qa4mre"
                ))
            })
    }
}

/// One multiple-choice question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Question {
    /// Its subset.
    pub subset: Subset,
    /// `subset:index` (stable across runs: the position in the file).
    pub id: String,
    /// The question text (MMLU's includes its passage).
    pub question: String,
    /// The options, in order (4, or 5 for QA4MRE).
    pub options: Vec<String>,
    /// Index of the correct option.
    pub gold: usize,
}

/// The option letters.
pub const LETTERS: [char; 8] = ['A', 'B', 'C', 'D', 'E', 'F', 'G', 'H'];

/// The folder holding the ADQA files: `dir` or `dalk/result_filter` under the shared data root.
pub fn data_dir(dir: Option<&Path>) -> Result<PathBuf> {
    match dir {
        Some(d) => Ok(d.to_path_buf()),
        None => Ok(tessera_core::assets::resolve_data("dalk/result_filter")?),
    }
}

fn read_array(path: &Path) -> Result<Vec<Value>> {
    let text = tessera_core::fsx::read_to_string(path)?;
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Array(a)) => Ok(a),
        Ok(_) => Err(KgError::Format {
            path: path.into(),
            msg: "expected a JSON array of questions".into(),
        }),
        Err(e) => Err(KgError::Format {
            path: path.into(),
            msg: format!("not JSON: {e}"),
        }),
    }
}

fn str_at<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

fn strings(v: Option<&Value>) -> Option<Vec<String>> {
    v?.as_array()?
        .iter()
        .map(|x| x.as_str().map(str::to_string))
        .collect()
}

fn index(v: Option<&Value>) -> Option<usize> {
    match v? {
        Value::Number(n) => n.as_u64().map(|x| x as usize),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Parses one item of a subset (`None`: the item does not fit the subset's schema).
pub fn parse_item(subset: Subset, i: usize, v: &Value) -> Option<Question> {
    let (question, options, gold) = match subset {
        Subset::Medqa => {
            let options = strings(v.get("choices"))?;
            let ans = strings(v.get("answer"))?.into_iter().next()?;
            let gold = options.iter().position(|o| o.trim() == ans.trim())?;
            (str_at(v, "question")?.to_string(), options, gold)
        }
        Subset::Medmcqa => {
            let options = ["opa", "opb", "opc", "opd"]
                .iter()
                .map(|k| str_at(v, k).map(str::to_string))
                .collect::<Option<Vec<_>>>()?;
            (
                str_at(v, "question")?.to_string(),
                options,
                index(v.get("cop"))?,
            )
        }
        Subset::Mmlu => (
            str_at(v, "question")?.to_string(),
            strings(v.get("choices"))?,
            index(v.get("answer"))?,
        ),
        Subset::Qa4mre => {
            let options = strings(v.get("answer_options")?.get("answer_str"))?;
            let id = index(v.get("correct_answer_id"))?;
            (
                str_at(v, "question_str")?.to_string(),
                options,
                id.checked_sub(1)?,
            )
        }
    };
    (gold < options.len() && options.len() <= LETTERS.len() && options.len() >= 2).then(|| {
        Question {
            subset,
            id: format!("{subset}:{i}"),
            question,
            options,
            gold,
        }
    })
}

/// Loads one subset; an item that does not fit the schema is an error naming it.
pub fn load_subset(dir: &Path, subset: Subset) -> Result<Vec<Question>> {
    let path = dir.join(subset.file());
    read_array(&path)?
        .iter()
        .enumerate()
        .map(|(i, v)| {
            parse_item(subset, i, v).ok_or_else(|| KgError::Format {
                path: path.clone(),
                msg: format!("item {i} does not fit the {subset} schema"),
            })
        })
        .collect()
}

/// Loads `subsets` and interleaves them round-robin (so `--limit N` samples every subset), keeping each file's
/// order; the first `limit` questions.
pub fn load(dir: &Path, subsets: &[Subset], limit: Option<usize>) -> Result<Vec<Question>> {
    let mut lists: Vec<std::collections::VecDeque<Question>> = subsets
        .iter()
        .map(|s| load_subset(dir, *s).map(Into::into))
        .collect::<Result<_>>()?;
    let mut out = Vec::new();
    let cap = limit.unwrap_or(usize::MAX);
    while out.len() < cap && lists.iter().any(|l| !l.is_empty()) {
        for l in lists.iter_mut() {
            if out.len() >= cap {
                break;
            }
            if let Some(q) = l.pop_front() {
                out.push(q);
            }
        }
    }
    Ok(out)
}

/// The distinct articles (`document_str`) of the QA4MRE subset, `(document_id, text)`, in file order.
pub fn ad_articles(dir: &Path) -> Result<Vec<(String, String)>> {
    let path = dir.join(Subset::Qa4mre.file());
    let mut out: Vec<(String, String)> = Vec::new();
    for v in read_array(&path)? {
        let id = match v.get("document_id") {
            Some(Value::String(s)) => s.clone(),
            Some(x) => x.to_string(),
            None => continue,
        };
        if let Some(d) = str_at(&v, "document_str") {
            if !out.iter().any(|(i, _)| *i == id) {
                out.push((id, d.to_string()));
            }
        }
    }
    if out.is_empty() {
        return Err(KgError::Format {
            path,
            msg: "no document_str in any item".into(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_schema_parses_and_bad_items_are_refused() {
        let q = parse_item(
            Subset::Medqa,
            0,
            &json!({"question": "q", "choices": ["a", "b"], "answer": ["b"]}),
        )
        .unwrap();
        assert_eq!(q.gold, 1);
        let q = parse_item(
            Subset::Medmcqa,
            1,
            &json!({"question": "q", "opa": "a", "opb": "b", "opc": "c", "opd": "d", "cop": 2}),
        )
        .unwrap();
        assert_eq!((q.gold, q.id.as_str()), (2, "medmcqa:1"));
        let q = parse_item(
            Subset::Qa4mre,
            0,
            &json!({"question_str": "q", "answer_options": {"answer_str": ["a","b","c","d","e"]}, "correct_answer_id": "5"}),
        )
        .unwrap();
        assert_eq!(q.gold, 4);
        assert!(parse_item(
            Subset::Mmlu,
            0,
            &json!({"question": "q", "choices": ["a"], "answer": 3})
        )
        .is_none());
        assert!(parse_item(
            Subset::Medqa,
            0,
            &json!({"question": "q", "choices": ["a", "b"], "answer": ["z"]})
        )
        .is_none());
    }
}
