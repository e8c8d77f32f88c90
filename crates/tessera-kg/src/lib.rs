//! Knowledge-graph-augmented question answering after DALK (Li et al. 2024, "DALK: Dynamic Co-Augmentation of
//! LLMs and KG to answer Alzheimer's Disease Questions with Scientific Literature", EMNLP Findings 2024).
//!
//! - [`store`]: the SQLite triple store (entities, aliases, triples with provenance, embeddings, checkpoints);
//!   TSV/JSONL import and export.
//! - [`construct`]: graph construction from literature, pair-wise and generative ([`construct::build`]).
//! - [`dalk`]: entity linking, coarse-to-fine sampling, self-aware retrieval and the answer step.
//! - [`eval`]: ADQA evaluation ([`eval::KgEvalConfig`] → [`eval::run`] → [`eval::KgEvalResult`]).
//! - [`ask`]: one question ([`AskConfig`] → [`ask()`] → [`AskResult`]).
//! - [`adqa`]: the benchmark files; [`encoder`]: MiniLM or hashed-trigram text vectors; [`testing`]: a scripted
//!   chat backend (`script:PATH`); [`tour`]: the `tessera tour` section.
#![deny(missing_docs)]
pub mod adqa;
pub mod construct;
pub mod dalk;
mod display;
pub mod encoder;
pub mod error;
pub mod eval;
pub mod store;
pub mod testing;
pub mod tour;

pub use error::{KgError, Result};

use crate::adqa::{Question, Subset, LETTERS};
use crate::dalk::{DalkConfig, Fact, Kg, Linked};
use crate::encoder::{open_encoder, EncoderKind};
use crate::store::{ImportReport, KgFormat, KgStore};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Imports a triple file into the database `db` (created when missing); `format` defaults to the extension's.
pub fn import(db: &Path, file: &Path, format: Option<KgFormat>) -> Result<ImportReport> {
    KgStore::open(db)?.import(file, format)
}

/// The JSON of `tessera kg export --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportReport {
    /// Triples written.
    pub triples: usize,
    /// The file written.
    pub file: PathBuf,
    /// Its format.
    pub format: KgFormat,
}

/// Writes every triple of `db` to `file`; `format` defaults to the extension's.
pub fn export(db: &Path, file: &Path, format: Option<KgFormat>) -> Result<ExportReport> {
    let format = format.unwrap_or_else(|| KgFormat::from_path(file));
    let triples = KgStore::open(db)?.export(file, format)?;
    Ok(ExportReport {
        triples,
        file: file.to_path_buf(),
        format,
    })
}

/// One question for [`ask()`].
#[derive(Debug, Clone)]
pub struct AskConfig {
    /// The database.
    pub db: PathBuf,
    /// Chat backend spec.
    pub backend: String,
    /// The question.
    pub question: String,
    /// Options (none: a free-text answer).
    pub options: Vec<String>,
    /// Keyword and entity encoder.
    pub encoder: EncoderKind,
    /// Retrieval and answer settings.
    pub dalk: DalkConfig,
    /// Never download assets.
    pub offline: bool,
}

/// The JSON of `tessera kg ask --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AskResult {
    /// Keywords the LLM listed.
    pub keywords: Vec<String>,
    /// Their KG entities.
    pub linked: Vec<Linked>,
    /// Keywords that linked to nothing.
    pub unlinked: Vec<String>,
    /// Every sampled fact.
    pub evidence: Vec<Fact>,
    /// The facts kept by self-aware retrieval.
    pub kept: Vec<Fact>,
    /// The model's reasoning (or its free-text answer).
    pub reasoning: String,
    /// The chosen option letter, when options were given and a letter was read.
    pub choice: Option<String>,
    /// The chosen option's text.
    pub answer: String,
}

/// Answers one question with DALK.
pub fn ask(cfg: &AskConfig) -> Result<AskResult> {
    cfg.dalk.validate()?;
    if cfg.question.trim().is_empty() {
        return Err(KgError::invalid("the question is empty"));
    }
    if cfg.options.len() > LETTERS.len() {
        return Err(KgError::invalid(format!(
            "at most {} options",
            LETTERS.len()
        )));
    }
    if !cfg.db.is_file() {
        return Err(KgError::invalid(format!(
            "{}: no such database",
            cfg.db.display()
        )));
    }
    let mut store = KgStore::open(&cfg.db)?;
    let encoder = open_encoder(cfg.encoder, cfg.offline)?;
    store.ensure_embeddings(encoder.as_ref())?;
    let index = store.embedding_index()?;
    let graph = store.graph()?;
    let llm = tessera_llm::BlockingChat::new(testing::open_backend(&cfg.backend, cfg.offline)?)?;
    let kg = Kg {
        store: &store,
        graph: &graph,
        index: &index,
        encoder: encoder.as_ref(),
    };
    let q = Question {
        subset: Subset::Medqa,
        id: "ask".into(),
        question: cfg.question.clone(),
        options: cfg.options.clone(),
        gold: 0,
    };
    let r = dalk::retrieve(&llm, &kg, &q, &cfg.dalk)?;
    let kept = r.kept_facts();
    let (reasoning, choice, answer) = if cfg.options.is_empty() {
        let prompt = format!(
            "{}Question: {}\nAnswer: Let's think step by step:",
            dalk::knowledge_block(&kept),
            cfg.question.trim()
        );
        let text = dalk::complete(&llm, &prompt, cfg.dalk.cot_tokens)?;
        (text.clone(), None, text)
    } else {
        let a = dalk::answer(&llm, &q, &kept, &cfg.dalk)?;
        let letter = a.choice.map(|i| LETTERS[i].to_string());
        let text = a.choice.map(|i| q.options[i].clone()).unwrap_or_default();
        (a.reasoning, letter, text)
    };
    Ok(AskResult {
        keywords: r.keywords.clone(),
        linked: r.linked.clone(),
        unlinked: r.unlinked.clone(),
        evidence: r.all_facts(),
        kept,
        reasoning,
        choice,
        answer,
    })
}
