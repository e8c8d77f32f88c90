//! Prompt-based classification tasks scored by the label words' log-likelihood (MeZO / ZO-Bench, section 3 of
//! the paper notes):
//!
//! - **SST-2** (`sst2/train.tsv`, `sst2/dev.tsv`: `sentence<TAB>label`): prompt `"<sentence> It was"`, candidates
//!   `" terrible"` (label 0) and `" great"` (label 1), MeZO's template. Training examples come from `train.tsv`,
//!   evaluation from `dev.tsv` (the test split's labels are not used).
//! - **COPA** (`copa/copa-dev.xml`): prompt = the premise without its final period followed by `" because"`
//!   (asks-for cause) or `" so"` (effect); candidates are the two alternatives with a leading space and a lowercase
//!   first letter. Ids 1–400 train, 401–500 validation (the SuperGLUE split).
//!
//! Lines or items that cannot be parsed are skipped and counted ([`TaskData::skipped`]); a file with no usable
//! example is an error. `k` training examples are drawn by seed; the evaluation set is a fixed (seed-independent)
//! subset, so runs of different seeds are scored on the same examples.
use crate::error::{Result, ZoError};
use rand::seq::SliceRandom as _;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// A benchmark task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// Stanford Sentiment Treebank, binary.
    Sst2,
    /// Choice of Plausible Alternatives.
    Copa,
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Task::Sst2 => "sst2",
            Task::Copa => "copa",
        })
    }
}

impl FromStr for Task {
    type Err = ZoError;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "sst2" | "sst-2" => Ok(Task::Sst2),
            "copa" => Ok(Task::Copa),
            o => Err(ZoError::invalid(format!(
                "unknown task `{o}` (expected sst2 or copa)"
            ))),
        }
    }
}

impl Task {
    /// Default number of training examples (MeZO's 1000 for SST-2; all 400 for COPA).
    pub fn default_train_examples(self) -> usize {
        match self {
            Task::Sst2 => 1000,
            Task::Copa => 400,
        }
    }
    /// Default number of evaluation examples (all 872 of SST-2 dev; the 100 COPA validation items).
    pub fn default_eval_examples(self) -> usize {
        match self {
            Task::Sst2 => 872,
            Task::Copa => 100,
        }
    }
    /// The task's files relative to the data root.
    fn files(self) -> (&'static str, &'static str) {
        match self {
            Task::Sst2 => ("sst2/train.tsv", "sst2/dev.tsv"),
            Task::Copa => ("copa/copa-dev.xml", "copa/copa-dev.xml"),
        }
    }
}

/// One prompt with its candidate continuations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Example {
    /// The prompt text.
    pub prompt: String,
    /// Candidate continuations (label words or alternatives), each starting with a space.
    pub candidates: Vec<String>,
    /// Index of the correct candidate.
    pub label: usize,
}

/// A task's training and evaluation examples.
#[derive(Debug, Clone)]
pub struct TaskData {
    /// The task.
    pub task: Task,
    /// The `k` training examples drawn by seed.
    pub train: Vec<Example>,
    /// The evaluation examples.
    pub eval: Vec<Example>,
    /// Examples available to draw the training set from.
    pub train_pool: usize,
    /// Malformed lines / items skipped while reading.
    pub skipped: usize,
}

/// `path` when it exists under `dir`, else the shared data root's copy of `rel`.
fn resolve(dir: Option<&Path>, rel: &str) -> Result<PathBuf> {
    match dir {
        Some(d) => {
            let name = Path::new(rel).file_name().unwrap_or_default();
            let p = d.join(name);
            if p.is_file() {
                Ok(p)
            } else {
                Err(ZoError::Data {
                    path: p,
                    msg: "task file not found".into(),
                })
            }
        }
        None => Ok(tessera_core::assets::resolve_data(rel)?),
    }
}

/// Parses SST-2 TSV text: `(examples, skipped lines)`. Empty lines are ignored, not counted.
pub fn parse_sst2(text: &str) -> (Vec<Example>, usize) {
    let (mut out, mut skipped) = (Vec::new(), 0);
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let mut f = line.split('\t');
        let (s, l, rest) = (f.next(), f.next(), f.next());
        let label = match l.map(str::trim) {
            Some("0") => 0,
            Some("1") => 1,
            _ => {
                skipped += 1;
                continue;
            }
        };
        match (s.map(str::trim), rest) {
            (Some(s), None) if !s.is_empty() => out.push(sst2_example(s, label)),
            _ => skipped += 1,
        }
    }
    (out, skipped)
}

/// The SST-2 example of `sentence` with `label` (0 negative, 1 positive).
pub fn sst2_example(sentence: &str, label: usize) -> Example {
    Example {
        prompt: format!("{sentence} It was"),
        candidates: vec![" terrible".into(), " great".into()],
        label,
    }
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("{name}=\"");
    let i = tag.find(&key)? + key.len();
    let j = tag[i..].find('"')?;
    Some(&tag[i..i + j])
}

fn element<'a>(body: &'a str, name: &str) -> Option<&'a str> {
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    let i = body.find(&open)? + open.len();
    let j = body[i..].find(&close)?;
    Some(body[i..i + j].trim())
}

/// Parses COPA XML text: `((id, example) pairs, skipped items)`.
pub fn parse_copa(text: &str) -> (Vec<(u32, Example)>, usize) {
    let (mut out, mut skipped) = (Vec::new(), 0);
    let mut rest = text;
    while let Some(i) = rest.find("<item") {
        let after = &rest[i..];
        let Some(end) = after.find("</item>") else {
            skipped += 1;
            break;
        };
        let item = &after[..end];
        rest = &after[end + 7..];
        let Some(tag_end) = item.find('>') else {
            skipped += 1;
            continue;
        };
        let (tag, body) = (&item[..tag_end], &item[tag_end + 1..]);
        let parsed = (|| {
            let id: u32 = attr(tag, "id")?.parse().ok()?;
            let asks = attr(tag, "asks-for")?;
            let label: usize = match attr(tag, "most-plausible-alternative")? {
                "1" => 0,
                "2" => 1,
                _ => return None,
            };
            let (p, a1, a2) = (
                element(body, "p")?,
                element(body, "a1")?,
                element(body, "a2")?,
            );
            if p.is_empty() || a1.is_empty() || a2.is_empty() {
                return None;
            }
            let conn = match asks {
                "cause" => "because",
                "effect" => "so",
                _ => return None,
            };
            let premise = unescape(p);
            let premise = premise.trim_end_matches(['.', '!', '?']).to_string();
            let alt = |a: &str| {
                let a = unescape(a);
                let mut c = a.chars();
                match c.next() {
                    Some(f) => format!(" {}{}", f.to_lowercase(), c.as_str()),
                    None => String::new(),
                }
            };
            Some((
                id,
                Example {
                    prompt: format!("{premise} {conn}"),
                    candidates: vec![alt(a1), alt(a2)],
                    label,
                },
            ))
        })();
        match parsed {
            Some(x) => out.push(x),
            None => skipped += 1,
        }
    }
    (out, skipped)
}

fn read(path: &Path) -> Result<String> {
    Ok(tessera_core::fsx::read_to_string(path)?)
}

/// Reads `task` from `data_dir` (a folder holding the task's files; default: the shared data root, see
/// [`tessera_core::assets::resolve_data`]), draws `k` training examples with `seed` and keeps `eval_n`
/// evaluation examples.
pub fn load(
    task: Task,
    data_dir: Option<&Path>,
    k: usize,
    eval_n: usize,
    seed: u64,
) -> Result<TaskData> {
    if k == 0 || eval_n == 0 {
        return Err(ZoError::invalid(
            "the training and evaluation sets need at least one example each",
        ));
    }
    let (tr, ev) = task.files();
    let (train_all, eval_all, skipped, path) = match task {
        Task::Sst2 => {
            let (tp, ep) = (resolve(data_dir, tr)?, resolve(data_dir, ev)?);
            let (a, sa) = parse_sst2(&read(&tp)?);
            let (b, sb) = parse_sst2(&read(&ep)?);
            (a, b, sa + sb, tp)
        }
        Task::Copa => {
            let p = resolve(data_dir, tr)?;
            let (items, s) = parse_copa(&read(&p)?);
            let (mut a, mut b) = (Vec::new(), Vec::new());
            for (id, e) in items {
                match id {
                    1..=400 => a.push(e),
                    401..=500 => b.push(e),
                    _ => {}
                }
            }
            (a, b, s, p)
        }
    };
    if train_all.is_empty() || eval_all.is_empty() {
        return Err(ZoError::Data {
            path,
            msg: format!(
                "no usable {task} example ({} training, {} evaluation; {skipped} malformed entries skipped)",
                train_all.len(),
                eval_all.len()
            ),
        });
    }
    let pool = train_all.len();
    let mut train = train_all;
    train.shuffle(&mut tessera_core::rng::derived(seed, "zo/train-sample"));
    train.truncate(k);
    let mut eval = eval_all;
    eval.shuffle(&mut tessera_core::rng::derived(0, "zo/eval-subset"));
    eval.truncate(eval_n);
    Ok(TaskData {
        task,
        train,
        eval,
        train_pool: pool,
        skipped,
    })
}
