//! ADQA evaluation (`tessera kg eval`): [`KgEvalConfig`] → [`run`] → [`KgEvalResult`].
//!
//! Every question is answered three ways with the same model: no KG, the sampled evidence without self-aware
//! retrieval (all path and neighbour facts), and full DALK (the reranked k facts). One JSONL record per question
//! ([`QuestionRecord`]: keywords, linked entities, evidence, rerank, answers) goes to `transcript.jsonl` in the
//! output folder, which is also the checkpoint: a rerun skips the questions already there, and a folder written
//! with other settings is refused. An unreachable backend stops the run with an error; rerunning resumes it.
//!
//! Retrieval recall is answerer-independent: an option's entities are the KG aliases its text names
//! ([`KgStore::mentions`]); a sampler "mentions" an option when its evidence contains one of them.
use crate::adqa::{self, Question, Subset};
use crate::dalk::{self, Answer, DalkConfig, Fact, Kg, Retrieval, Scoring};
use crate::encoder::{open_encoder, EncoderKind};
use crate::error::{KgError, Result};
use crate::store::{normalize, KgStore};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use tessera_core::journal::{check_settings, Journal};
use tessera_llm::BlockingChat;

/// The paper's ADQA averages with gpt-3.5-turbo (from the authors' plot scripts).
pub const PAPER_NO_KG: f64 = 67.1;
/// DALK with the full 2011–2020 KG.
pub const PAPER_DALK: f64 = 72.6;
/// DALK without self-aware knowledge retrieval.
pub const PAPER_NO_RERANK: f64 = 70.6;

/// What to evaluate.
#[derive(Debug, Clone)]
pub struct KgEvalConfig {
    /// The knowledge-graph database.
    pub db: PathBuf,
    /// Folder of the ADQA files (default: `dalk/result_filter` in the shared data).
    pub data_dir: Option<PathBuf>,
    /// Subsets to run (default all four).
    pub subsets: Vec<Subset>,
    /// At most this many questions, taken round-robin over the subsets.
    pub limit: Option<usize>,
    /// Chat backend spec (`local:smollm2-135m`, `openai:URL#MODEL`, `replay:PATH`, `script:PATH`).
    pub backend: String,
    /// Keyword and entity encoder.
    pub encoder: EncoderKind,
    /// Retrieval and answer settings.
    pub dalk: DalkConfig,
    /// Output folder: `settings.json`, `transcript.jsonl`, `result.json`.
    pub out: PathBuf,
    /// Never download assets.
    pub offline: bool,
}

impl KgEvalConfig {
    /// The default output folder of an evaluation of `db` with `scoring`: `<db>.eval-<scoring>`.
    pub fn default_out(db: &Path, scoring: Scoring) -> PathBuf {
        let mut p = db.as_os_str().to_os_string();
        p.push(format!(".eval-{scoring}"));
        PathBuf::from(p)
    }
}

/// The settings a resumed run must share.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Settings {
    db: String,
    backend: String,
    encoder: EncoderKind,
    dalk: DalkConfig,
}

/// Whether each sampler's evidence mentions the options' entities.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Mention {
    /// The evidence mentions an entity of the gold option.
    pub gold: bool,
    /// Share of the wrong options with a mentioned entity.
    pub wrong: f64,
}

/// [`Mention`] per sampler.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Mentions {
    /// Path-based evidence.
    pub path: Mention,
    /// Neighbour-based evidence.
    pub neighbour: Mention,
    /// Both (what the no-rerank condition sees).
    pub sampled: Mention,
    /// After self-aware retrieval.
    pub reranked: Mention,
}

/// One question's transcript line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuestionRecord {
    /// `subset:index`.
    pub id: String,
    /// Its subset.
    pub subset: Subset,
    /// Correct option.
    pub gold: usize,
    /// Whether the gold option names any KG entity (recall is only meaningful then).
    pub gold_has_entity: bool,
    /// Retrieval details.
    pub retrieval: Retrieval,
    /// No-KG answer.
    pub no_kg: Answer,
    /// All sampled evidence, no reranking.
    pub no_rerank: Answer,
    /// Full DALK.
    pub dalk: Answer,
    /// Recall per sampler.
    pub mentions: Mentions,
    /// Errors of calls that failed for this question only (e.g. a prompt longer than the model's context).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// Accuracy with a 95% Wilson interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Accuracy {
    /// Correct answers.
    pub correct: usize,
    /// Questions.
    pub n: usize,
    /// correct / n, in percent.
    pub accuracy: f64,
    /// 95% Wilson score interval, in percent.
    pub ci95: [f64; 2],
}

impl Accuracy {
    /// From counts.
    pub fn new(correct: usize, n: usize) -> Self {
        let (lo, hi) = wilson(correct, n);
        Accuracy {
            correct,
            n,
            accuracy: if n == 0 {
                0.0
            } else {
                100.0 * correct as f64 / n as f64
            },
            ci95: [100.0 * lo, 100.0 * hi],
        }
    }
}

/// The 95% Wilson score interval of a binomial proportion.
pub fn wilson(k: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let z = 1.959964f64;
    let (n, p) = (n as f64, k as f64 / n as f64);
    let d = 1.0 + z * z / n;
    let c = (p + z * z / (2.0 * n)) / d;
    let h = z * ((p * (1.0 - p) + z * z / (4.0 * n)) / n).sqrt() / d;
    ((c - h).max(0.0), (c + h).min(1.0))
}

/// Accuracies of one subset (or all).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConditionAccuracies {
    /// Questions.
    pub questions: usize,
    /// No KG, percent.
    pub no_kg_accuracy: f64,
    /// KG without reranking, percent.
    pub no_rerank_accuracy: f64,
    /// Full DALK, percent.
    pub dalk_accuracy: f64,
    /// Details with intervals.
    pub no_kg: Accuracy,
    /// Details with intervals.
    pub no_rerank: Accuracy,
    /// Details with intervals.
    pub dalk: Accuracy,
}

/// Recall of one sampler: share of questions (whose gold option names a KG entity) whose evidence mentions the
/// gold option, and mean share of wrong options mentioned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Recall {
    /// Gold-option recall, percent.
    pub gold: f64,
    /// Wrong-option mention rate, percent.
    pub wrong: f64,
    /// Questions counted.
    pub questions: usize,
}

/// Recall per sampler.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RetrievalRecall {
    /// Path-based.
    pub path: Recall,
    /// Neighbour-based.
    pub neighbour: Recall,
    /// Both.
    pub sampled: Recall,
    /// After self-aware retrieval.
    pub reranked: Recall,
}

/// The JSON of `tessera kg eval --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KgEvalResult {
    /// Backend spec.
    pub backend: String,
    /// Answer scoring.
    pub scoring: Scoring,
    /// Questions evaluated.
    pub questions: usize,
    /// Overall no-KG accuracy, percent.
    pub no_kg_accuracy: f64,
    /// Overall accuracy without self-aware retrieval, percent.
    pub no_rerank_accuracy: f64,
    /// Overall DALK accuracy, percent.
    pub dalk_accuracy: f64,
    /// Overall details with 95% intervals.
    pub overall: ConditionAccuracies,
    /// Per subset.
    pub per_subset: BTreeMap<String, ConditionAccuracies>,
    /// Retrieval recall per sampler.
    pub retrieval_recall: RetrievalRecall,
    /// Questions with no linked entity (answered without evidence).
    pub unlinked_questions: usize,
    /// Questions with no evidence at all.
    pub no_evidence_questions: usize,
    /// Answers whose letter could not be read, per condition `[no_kg, no_rerank, dalk]`.
    pub unparsed_answers: [usize; 3],
    /// Rerank answers that could not be parsed (the first k facts were kept).
    pub rerank_parse_failures: usize,
    /// Questions with at least one failed call.
    pub questions_with_errors: usize,
    /// The paper's gpt-3.5-turbo averages `{no_kg, no_rerank, dalk}`.
    pub paper: BTreeMap<String, f64>,
    /// The transcript (one JSON line per question).
    pub transcript: PathBuf,
    /// Questions answered in this invocation (the rest came from the checkpoint).
    pub answered_now: usize,
    /// Wall-clock seconds of this invocation.
    pub seconds: f64,
}

fn option_entities(store: &KgStore, q: &Question) -> Result<Vec<Vec<String>>> {
    q.options
        .iter()
        .map(|o| {
            let ids = store.mentions(o)?;
            let mut names = Vec::new();
            for id in ids {
                for a in store.aliases(id)? {
                    names.push(normalize(&a));
                }
            }
            Ok(names)
        })
        .collect()
}

fn mention(facts: &[Fact], opts: &[Vec<String>], gold: usize) -> Mention {
    let text = normalize(
        &facts
            .iter()
            .map(|f| f.text.as_str())
            .collect::<Vec<_>>()
            .join(" \n "),
    );
    let hit = |names: &Vec<String>| names.iter().any(|n| contains_word(&text, n));
    let wrong: Vec<bool> = opts
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != gold)
        .map(|(_, n)| hit(n))
        .collect();
    Mention {
        gold: opts.get(gold).is_some_and(hit),
        wrong: if wrong.is_empty() {
            0.0
        } else {
            wrong.iter().filter(|x| **x).count() as f64 / wrong.len() as f64
        },
    }
}

/// `needle` occurs in `hay` on word boundaries.
fn contains_word(hay: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return false;
    }
    let mut start = 0;
    while let Some(i) = hay[start..].find(needle) {
        let a = start + i;
        let b = a + needle.len();
        let ok_a = hay[..a]
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_alphanumeric());
        let ok_b = hay[b..].chars().next().is_none_or(|c| !c.is_alphanumeric());
        if ok_a && ok_b {
            return true;
        }
        start = a + needle.chars().next().map_or(1, char::len_utf8);
    }
    false
}

/// Runs a call; a non-infrastructure failure is recorded and replaced by `fallback`, an infrastructure one stops.
fn soft<T>(r: Result<T>, errors: &mut Vec<String>, fallback: impl FnOnce() -> T) -> Result<T> {
    match r {
        Ok(v) => Ok(v),
        Err(e) if e.is_infrastructure() => Err(e),
        Err(e) => {
            errors.push(e.to_string());
            Ok(fallback())
        }
    }
}

fn failed_answer() -> Answer {
    Answer {
        choice: None,
        reasoning: String::new(),
        raw: String::new(),
        scores: vec![],
    }
}

/// Answers one question in all three conditions.
pub fn evaluate_question(
    llm: &BlockingChat,
    kg: &Kg<'_>,
    q: &Question,
    cfg: &DalkConfig,
) -> Result<QuestionRecord> {
    let t0 = std::time::Instant::now();
    let mut errors = Vec::new();
    let retrieval = soft(dalk::retrieve(llm, kg, q, cfg), &mut errors, || Retrieval {
        entities_raw: String::new(),
        keywords: vec![],
        linked: vec![],
        unlinked: vec![],
        paths: vec![],
        neighbours: vec![],
        kept: vec![],
        rerank_parsed: false,
        rerank_raw: String::new(),
    })?;
    let all = retrieval.all_facts();
    let kept = retrieval.kept_facts();
    let no_kg = soft(dalk::answer(llm, q, &[], cfg), &mut errors, failed_answer)?;
    let (no_rerank, dalk_answer) = if all.is_empty() {
        (no_kg.clone(), no_kg.clone())
    } else {
        let a = soft(dalk::answer(llm, q, &all, cfg), &mut errors, failed_answer)?;
        let b = if kept == all {
            a.clone()
        } else {
            soft(dalk::answer(llm, q, &kept, cfg), &mut errors, failed_answer)?
        };
        (a, b)
    };
    let opts = option_entities(kg.store, q)?;
    let mentions = Mentions {
        path: mention(&retrieval.paths, &opts, q.gold),
        neighbour: mention(&retrieval.neighbours, &opts, q.gold),
        sampled: mention(&all, &opts, q.gold),
        reranked: mention(&kept, &opts, q.gold),
    };
    Ok(QuestionRecord {
        id: q.id.clone(),
        subset: q.subset,
        gold: q.gold,
        gold_has_entity: !opts[q.gold].is_empty(),
        retrieval,
        no_kg,
        no_rerank,
        dalk: dalk_answer,
        mentions,
        errors,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

fn accuracies(recs: &[&QuestionRecord]) -> ConditionAccuracies {
    let count = |f: fn(&QuestionRecord) -> &Answer| {
        recs.iter().filter(|r| f(r).choice == Some(r.gold)).count()
    };
    let n = recs.len();
    let (a, b, c) = (
        Accuracy::new(count(|r| &r.no_kg), n),
        Accuracy::new(count(|r| &r.no_rerank), n),
        Accuracy::new(count(|r| &r.dalk), n),
    );
    ConditionAccuracies {
        questions: n,
        no_kg_accuracy: a.accuracy,
        no_rerank_accuracy: b.accuracy,
        dalk_accuracy: c.accuracy,
        no_kg: a,
        no_rerank: b,
        dalk: c,
    }
}

fn recall(recs: &[&QuestionRecord], f: fn(&Mentions) -> Mention) -> Recall {
    let rs: Vec<&&QuestionRecord> = recs.iter().filter(|r| r.gold_has_entity).collect();
    let n = rs.len();
    if n == 0 {
        return Recall::default();
    }
    Recall {
        gold: 100.0 * rs.iter().filter(|r| f(&r.mentions).gold).count() as f64 / n as f64,
        wrong: 100.0 * rs.iter().map(|r| f(&r.mentions).wrong).sum::<f64>() / n as f64,
        questions: n,
    }
}

/// Summarises transcript records.
pub fn summarise(
    recs: &[QuestionRecord],
    backend: &str,
    scoring: Scoring,
    transcript: PathBuf,
    answered_now: usize,
    seconds: f64,
) -> KgEvalResult {
    let all: Vec<&QuestionRecord> = recs.iter().collect();
    let mut per_subset = BTreeMap::new();
    for s in Subset::ALL {
        let rs: Vec<&QuestionRecord> = recs.iter().filter(|r| r.subset == s).collect();
        if !rs.is_empty() {
            per_subset.insert(s.to_string(), accuracies(&rs));
        }
    }
    let overall = accuracies(&all);
    let unparsed =
        |f: fn(&QuestionRecord) -> &Answer| recs.iter().filter(|r| f(r).choice.is_none()).count();
    KgEvalResult {
        backend: backend.to_string(),
        scoring,
        questions: recs.len(),
        no_kg_accuracy: overall.no_kg_accuracy,
        no_rerank_accuracy: overall.no_rerank_accuracy,
        dalk_accuracy: overall.dalk_accuracy,
        overall,
        per_subset,
        retrieval_recall: RetrievalRecall {
            path: recall(&all, |m| m.path),
            neighbour: recall(&all, |m| m.neighbour),
            sampled: recall(&all, |m| m.sampled),
            reranked: recall(&all, |m| m.reranked),
        },
        unlinked_questions: recs
            .iter()
            .filter(|r| r.retrieval.linked.is_empty())
            .count(),
        no_evidence_questions: recs
            .iter()
            .filter(|r| r.retrieval.paths.is_empty() && r.retrieval.neighbours.is_empty())
            .count(),
        unparsed_answers: [
            unparsed(|r| &r.no_kg),
            unparsed(|r| &r.no_rerank),
            unparsed(|r| &r.dalk),
        ],
        rerank_parse_failures: recs
            .iter()
            .filter(|r| !r.retrieval.rerank_parsed && r.retrieval.all_facts().len() > 1)
            .count(),
        questions_with_errors: recs.iter().filter(|r| !r.errors.is_empty()).count(),
        paper: BTreeMap::from([
            ("no_kg".to_string(), PAPER_NO_KG),
            ("no_rerank".to_string(), PAPER_NO_RERANK),
            ("dalk".to_string(), PAPER_DALK),
        ]),
        transcript,
        answered_now,
        seconds,
    }
}

/// Runs (or resumes) an evaluation.
pub fn run(cfg: &KgEvalConfig, mut progress: impl FnMut(usize, usize)) -> Result<KgEvalResult> {
    let t0 = std::time::Instant::now();
    cfg.dalk.validate()?;
    if cfg.limit == Some(0) {
        return Err(KgError::invalid("--limit must be at least 1"));
    }
    if !cfg.db.is_file() {
        return Err(KgError::invalid(format!(
            "{}: no such database (create it with `tessera kg import` or `tessera kg build`)",
            cfg.db.display()
        )));
    }
    let subsets = if cfg.subsets.is_empty() {
        Subset::ALL.to_vec()
    } else {
        cfg.subsets.clone()
    };
    let dir = adqa::data_dir(cfg.data_dir.as_deref())?;
    let questions = adqa::load(&dir, &subsets, cfg.limit)?;
    std::fs::create_dir_all(&cfg.out).map_err(|e| tessera_core::Error::io(&cfg.out, e))?;
    let settings = Settings {
        db: cfg.db.display().to_string(),
        backend: cfg.backend.clone(),
        encoder: cfg.encoder,
        dalk: cfg.dalk.clone(),
    };
    check_settings(&cfg.out.join("settings.json"), &settings)?;
    let tpath = cfg.out.join("transcript.jsonl");
    let (journal, mut done): (Journal, Vec<QuestionRecord>) = Journal::open(&tpath)?;
    let ids: HashSet<String> = done.iter().map(|r| r.id.clone()).collect();
    let todo: Vec<&Question> = questions.iter().filter(|q| !ids.contains(&q.id)).collect();
    let mut store = KgStore::open(&cfg.db)?;
    let mut answered_now = 0;
    if !todo.is_empty() {
        let encoder = open_encoder(cfg.encoder, cfg.offline)?;
        store.ensure_embeddings(encoder.as_ref())?;
        let index = store.embedding_index()?;
        let graph = store.graph()?;
        let llm = BlockingChat::new(crate::testing::open_backend(&cfg.backend, cfg.offline)?)?;
        let kg = Kg {
            store: &store,
            graph: &graph,
            index: &index,
            encoder: encoder.as_ref(),
        };
        let total = todo.len();
        for q in todo {
            let rec = evaluate_question(&llm, &kg, q, &cfg.dalk).map_err(|e| {
                if e.is_infrastructure() {
                    KgError::invalid(format!(
                        "{e}; stopped after {answered_now} new question(s), {} in total are kept in {}: rerun the \
                         same command to resume",
                        done.len(),
                        tpath.display()
                    ))
                } else {
                    e
                }
            })?;
            journal.append(&rec)?;
            done.push(rec);
            answered_now += 1;
            progress(answered_now, total);
        }
    }
    // Only the questions of this selection count (a larger earlier run may hold more).
    let wanted: HashSet<&str> = questions.iter().map(|q| q.id.as_str()).collect();
    let recs: Vec<QuestionRecord> = done
        .into_iter()
        .filter(|r| wanted.contains(r.id.as_str()))
        .collect();
    let res = summarise(
        &recs,
        &cfg.backend,
        cfg.dalk.scoring,
        tpath,
        answered_now,
        t0.elapsed().as_secs_f64(),
    );
    tessera_core::fsx::write_json_atomic(cfg.out.join("result.json"), &res)?;
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_interval_brackets_the_rate() {
        let (lo, hi) = wilson(67, 100);
        assert!(
            lo < 0.67 && hi > 0.67 && lo > 0.55 && hi < 0.78,
            "{lo} {hi}"
        );
        assert_eq!(wilson(0, 0), (0.0, 1.0));
        let (lo, hi) = wilson(0, 10);
        assert_eq!(lo, 0.0);
        assert!(hi > 0.2 && hi < 0.35);
    }

    #[test]
    fn word_boundaries() {
        assert!(contains_word("apoe regulates tau", "tau"));
        assert!(!contains_word("tautology", "tau"));
        assert!(contains_word("x -> binds -> abeta", "abeta"));
    }
}
