//! Knowledge-graph construction from literature, DALK's two modes (Li et al. 2024, arXiv 2405.04819, §3.2
//! "Dynamic co-augmentation: LLMs for KG"; reference `llm2kg.py` and `llm2kg_s2s.py`; notes §1):
//!
//! - **Pair-wise** ([`BuildMode::Pair`]): entities typed gene / compound / disease (an LLM NER pass,
//!   [`ner_prompt`] / [`parse_ner`], or a supplied list); for every allowed type pair in a passage, DALK's
//!   multiple-choice relation prompt ([`relation_prompt`]) over the Hetionet relation set of that pair plus
//!   `no-relation` and "others (a short predicate of at most 5 words)"; answers parsed strictly
//!   ([`parse_relation`]); `no-relation` dropped; free-text predicates stored with `is_generated`.
//! - **Generative** ([`BuildMode::Generative`]): one prompt per passage ([`generative_prompt`]) returning
//!   `head | relation | tail` lines, parsed defensively ([`parse_triples`]).
//!
//! Normalisation: aliases that differ in case or whitespace are one entity from the start (the store keys them
//! by normalised text); after a build, entities whose encoder cosine exceeds [`DEFAULT_MERGE_THRESHOLD`] are
//! merged ([`merge_similar`]), keeping every alias and the provenance of every triple.
//!
//! Corpus: text files of a folder (`--corpus DIR`), or by default the four Alzheimer's-disease articles of
//! ADQA's QA4MRE subset, split into passages of about [`DEFAULT_PASSAGE_CHARS`] characters at sentence ends.
//! Passages run on up to `concurrency` threads; each passage's triples and its "done" mark are written in one
//! transaction, so a rerun skips finished passages.
//!
//! Deviations from the reference: no per-entity summary call and no chain of thought before the relation answer
//! (one call per pair: small local models gain nothing from them and calls dominate the cost); entity pairs per
//! passage are capped ([`BuildConfig::max_pairs`]); PubTator's concept ids are not available, so NER output is
//! kept only when the name occurs in the passage.
use crate::encoder::{open_encoder, EncoderKind, TextEncoder};
use crate::error::{KgError, Result};
use crate::store::{normalize, KgStore, Triple};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use tessera_llm::BlockingChat;

/// Characters per passage (split at sentence ends).
pub const DEFAULT_PASSAGE_CHARS: usize = 1000;
/// Cosine above which two entities are merged as aliases (MiniLM; names this close are spelling variants such as
/// `Aβ42` / `Aβ 42` / `abeta42`; 0.9 already merges distinct genes of one family in our checks).
pub const DEFAULT_MERGE_THRESHOLD: f32 = 0.95;
/// Largest entity count for the quadratic similarity merge.
pub const MAX_MERGE_ENTITIES: usize = 5000;

/// Extraction mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BuildMode {
    /// Pair-wise relation classification.
    Pair,
    /// Free generation of triples.
    #[default]
    Generative,
}

impl std::str::FromStr for BuildMode {
    type Err = KgError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "pair" => Ok(BuildMode::Pair),
            "generative" => Ok(BuildMode::Generative),
            _ => Err(KgError::invalid(format!(
                "mode `{s}`: expected pair or generative"
            ))),
        }
    }
}

impl std::fmt::Display for BuildMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BuildMode::Pair => "pair",
            BuildMode::Generative => "generative",
        })
    }
}

/// Entity types of pair-wise extraction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntityType {
    /// Genes and proteins.
    Gene,
    /// Compounds, chemicals, drugs.
    Compound,
    /// Diseases.
    Disease,
}

impl EntityType {
    /// Reads a type word (`gene`, `protein`, `compound`, `chemical`, `drug`, `disease`...).
    pub fn parse(s: &str) -> Option<EntityType> {
        let s = s
            .trim()
            .trim_matches(|c: char| !c.is_alphabetic())
            .to_lowercase();
        match s.as_str() {
            "gene" | "genes" | "protein" | "proteins" | "gene/protein" => Some(EntityType::Gene),
            "compound" | "compounds" | "chemical" | "chemicals" | "drug" | "drugs" => {
                Some(EntityType::Compound)
            }
            "disease" | "diseases" | "disorder" => Some(EntityType::Disease),
            _ => None,
        }
    }

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            EntityType::Gene => "gene",
            EntityType::Compound => "compound",
            EntityType::Disease => "disease",
        }
    }
}

/// The relation set of a (head, tail) type pair in DALK's (Hetionet's) direction, `None` when the pair is not
/// extracted.
pub fn relation_set(head: EntityType, tail: EntityType) -> Option<&'static [&'static str]> {
    use EntityType::*;
    match (head, tail) {
        (Gene, Gene) => Some(&["covaries", "interacts", "regulates"]),
        (Disease, Disease) | (Compound, Compound) => Some(&["resembles"]),
        (Gene, Disease) => Some(&["downregulates", "associates", "upregulates"]),
        (Compound, Gene) => Some(&["binds", "upregulates", "downregulates"]),
        (Compound, Disease) => Some(&["treats", "palliates"]),
        _ => None,
    }
}

/// Every relation of the fixed sets (anything else is `is_generated`).
pub const FIXED_RELATIONS: &[&str] = &[
    "covaries",
    "interacts",
    "regulates",
    "resembles",
    "downregulates",
    "associates",
    "upregulates",
    "binds",
    "treats",
    "palliates",
];

/// One passage of the corpus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Passage {
    /// Source (file name or `qa4mre:<document id>`) and index.
    pub source: String,
    /// The text.
    pub text: String,
}

/// Splits text into passages of about `max_chars` characters at sentence ends (a longer sentence is its own
/// passage).
pub fn split_passages(source: &str, text: &str, max_chars: usize) -> Vec<Passage> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let push = |cur: &mut String, out: &mut Vec<Passage>| {
        let t = cur.trim();
        if t.chars().count() >= 40 {
            out.push(Passage {
                source: format!("{source}#{}", out.len()),
                text: t.to_string(),
            });
        }
        cur.clear();
    };
    for para in text.split('\n') {
        let mut rest = para.trim();
        while !rest.is_empty() {
            // Next sentence: up to and including ". " / "? " / "! ".
            let end = rest
                .match_indices(['.', '?', '!'])
                .map(|(i, _)| i + 1)
                .find(|&i| rest[i..].starts_with(' ') || i == rest.len())
                .unwrap_or(rest.len());
            let (sent, tail) = rest.split_at(end);
            if !cur.is_empty() && cur.len() + sent.len() > max_chars {
                push(&mut cur, &mut out);
            }
            cur.push_str(sent.trim());
            cur.push(' ');
            rest = tail.trim_start();
        }
        if cur.len() >= max_chars / 2 {
            push(&mut cur, &mut out);
        }
    }
    push(&mut cur, &mut out);
    out
}

/// The corpus: `*.txt` / `*.md` files of `dir` (sorted), or the QA4MRE articles when `dir` is `None`.
pub fn load_corpus(
    dir: Option<&Path>,
    data_dir: Option<&Path>,
    max_chars: usize,
) -> Result<Vec<Passage>> {
    let mut out = Vec::new();
    match dir {
        Some(d) => {
            let rd = std::fs::read_dir(d).map_err(|e| tessera_core::Error::io(d, e))?;
            let mut files: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file()
                        && matches!(
                            p.extension().and_then(|e| e.to_str()),
                            Some("txt") | Some("md")
                        )
                })
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(KgError::invalid(format!(
                    "{}: no .txt or .md files",
                    d.display()
                )));
            }
            for f in files {
                let text = tessera_core::fsx::read_to_string(&f)?;
                let name = f
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                out.extend(split_passages(&name, &text, max_chars));
            }
        }
        None => {
            let dir = crate::adqa::data_dir(data_dir)?;
            for (id, text) in crate::adqa::ad_articles(&dir)? {
                out.extend(split_passages(&format!("qa4mre:{id}"), &text, max_chars));
            }
        }
    }
    Ok(out)
}

/// The generative prompt of one passage.
pub fn generative_prompt(passage: &str) -> String {
    format!(
        "Read the following passage and extract the relationships between the biomedical entities in it.\n\
         Choose each relation from (covaries, interacts, regulates, resembles, downregulates, upregulates, \
         associates, binds, treats, palliates), or write a new short predicate.\n\
         Write every triple on its own line in the format: head | relation | tail\n\n\
         Passage: {passage}\n\nTriples:"
    )
}

/// Counts of parsing LLM output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParseStats {
    /// Lines (or answers) that did not fit the format.
    pub unparsed: usize,
    /// Pair answers `no-relation`.
    pub no_relation: usize,
}

fn clean_field(s: &str) -> String {
    s.trim()
        .trim_matches(|c: char| {
            matches!(
                c,
                '"' | '\'' | '`' | '*' | '[' | ']' | '(' | ')' | '.' | ','
            )
        })
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Parses `head | relation | tail` lines: numbering and bullets are stripped, a header line and lines with
/// another number of fields, empty fields, a head equal to the tail, an entity over 12 words or a relation over 6
/// words are rejected (counted).
pub fn parse_triples(text: &str, provenance: &str) -> (Vec<Triple>, ParseStats) {
    let mut out: Vec<Triple> = Vec::new();
    let mut st = ParseStats::default();
    for line in text.lines() {
        let l = line.trim();
        if l.is_empty() || !l.contains('|') {
            if !l.is_empty() && l.len() > 3 && !l.ends_with(':') {
                st.unparsed += 1;
            }
            continue;
        }
        let l = l.trim_start_matches(|c: char| {
            c.is_ascii_digit() || matches!(c, '.' | ')' | '-' | '*' | '•' | ' ')
        });
        let l = l.trim_matches('|');
        let f: Vec<String> = l.split('|').map(clean_field).collect();
        if f.len() != 3 || f.iter().any(|x| x.is_empty()) {
            st.unparsed += 1;
            continue;
        }
        let (h, r, t) = (&f[0], &f[1], &f[2]);
        if normalize(h) == "head" && normalize(r) == "relation" {
            continue;
        }
        if normalize(h) == normalize(t)
            || h.split_whitespace().count() > 12
            || t.split_whitespace().count() > 12
            || r.split_whitespace().count() > 6
        {
            st.unparsed += 1;
            continue;
        }
        let tr = Triple {
            head: h.clone(),
            relation: r.clone(),
            tail: t.clone(),
            provenance: provenance.to_string(),
            is_generated: !FIXED_RELATIONS.contains(&normalize(r).as_str()),
        };
        if !out.iter().any(|x| {
            normalize(&x.head) == normalize(&tr.head)
                && normalize(&x.relation) == normalize(&tr.relation)
                && normalize(&x.tail) == normalize(&tr.tail)
        }) {
            out.push(tr);
        }
    }
    (out, st)
}

/// The NER prompt of pair-wise mode.
pub fn ner_prompt(passage: &str) -> String {
    format!(
        "List the genes (or proteins), compounds (drugs, chemicals) and diseases named in the passage below. \
         Write one per line as: name | type, where type is gene, compound or disease.\n\nPassage: {passage}\n\nEntities:"
    )
}

/// Parses NER output (`name | type`, `name (type)`, `name: type`); keeps names that occur in the passage.
pub fn parse_ner(text: &str, passage: &str) -> Vec<(String, EntityType)> {
    let lower = passage.to_lowercase();
    let mut out: Vec<(String, EntityType)> = Vec::new();
    for line in text.lines() {
        let l = line.trim().trim_start_matches(|c: char| {
            c.is_ascii_digit() || matches!(c, '.' | ')' | '-' | '*' | ' ')
        });
        let (name, ty) = if let Some((n, t)) = l.rsplit_once('|') {
            (n, t)
        } else if let Some((n, t)) = l.rsplit_once('(') {
            (n, t.trim_end_matches(')'))
        } else if let Some((n, t)) = l.rsplit_once(':') {
            (n, t)
        } else {
            continue;
        };
        let name = clean_field(name);
        let Some(ty) = EntityType::parse(ty) else {
            continue;
        };
        if name.len() < 2 || !lower.contains(&name.to_lowercase()) {
            continue;
        }
        if !out.iter().any(|(n, _)| normalize(n) == normalize(&name)) {
            out.push((name, ty));
        }
    }
    out
}

/// Entities of a supplied list (`name<TAB>type` lines) that occur in the passage.
pub fn find_listed(list: &[(String, EntityType)], passage: &str) -> Vec<(String, EntityType)> {
    let lower = passage.to_lowercase();
    list.iter()
        .filter(|(n, _)| n.len() >= 2 && lower.contains(&n.to_lowercase()))
        .cloned()
        .collect()
}

/// Reads an entity list file (`name<TAB>type`, `#` comments).
pub fn read_entity_list(path: &Path) -> Result<Vec<(String, EntityType)>> {
    let text = tessera_core::fsx::read_to_string(path)?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let (n, t) = l.split_once('\t').ok_or_else(|| KgError::Format {
            path: path.into(),
            msg: format!("line {}: expected name<TAB>type", i + 1),
        })?;
        let ty = EntityType::parse(t).ok_or_else(|| KgError::Format {
            path: path.into(),
            msg: format!(
                "line {}: type `{t}` is not gene, compound or disease",
                i + 1
            ),
        })?;
        out.push((n.trim().to_string(), ty));
    }
    Ok(out)
}

/// Options of the relation prompt: the relation set, then `no-relation`, then `others`.
pub fn relation_options(set: &[&str]) -> Vec<String> {
    let mut o: Vec<String> = set.iter().map(|s| s.to_string()).collect();
    o.push("no-relation".into());
    o.push("others, please specify by generating a short predicate in 5 words".into());
    o
}

/// DALK's multiple-choice relation prompt for one entity pair.
pub fn relation_prompt(
    passage: &str,
    head: (&str, EntityType),
    tail: (&str, EntityType),
    set: &[&str],
) -> String {
    let mut s = format!(
        "Read the following passage and answer the question.\n\nPassage: {passage}\n\nQuestion: What is the \
         relationship between the {} \"{}\" and the {} \"{}\"?\n",
        head.1.as_str(),
        head.0,
        tail.1.as_str(),
        tail.0
    );
    for (l, o) in crate::adqa::LETTERS.iter().zip(relation_options(set)) {
        s.push_str(&format!("{l}. {o}\n"));
    }
    s.push_str("Answer with the letter of one option. For the last option, write the letter and then the predicate.");
    s
}

/// The parsed answer to a relation prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelationAnswer {
    /// One relation of the set.
    Fixed(String),
    /// `others`: a generated predicate of at most 5 words.
    Generated(String),
    /// `no-relation`.
    NoRelation,
}

/// Parses a relation answer strictly: the first token must be an option letter (`C`, `C.`, `(C)`, `C:`) or the
/// answer must start with a relation name or `no-relation`; `others` needs a predicate of 1–5 words after it.
/// `None`: unusable.
pub fn parse_relation(text: &str, set: &[&str]) -> Option<RelationAnswer> {
    let t = text
        .trim()
        .trim_start_matches("Answer:")
        .trim_start_matches("answer:")
        .trim();
    let n = set.len() + 2;
    let first: String = t.chars().take_while(|c| !c.is_whitespace()).collect();
    let letter = first.trim_matches(|c: char| matches!(c, '(' | ')' | '.' | ':' | ',' | '*'));
    let mut idx = None;
    let mut rest = "";
    if letter.chars().count() == 1 {
        if let Some(k) = crate::adqa::LETTERS[..n]
            .iter()
            .position(|l| letter.starts_with(*l))
        {
            idx = Some(k);
            rest = t[first.len()..].trim();
        }
    }
    let lower = t.to_lowercase();
    if idx.is_none() {
        if lower.starts_with("no-relation") || lower.starts_with("no relation") {
            idx = Some(set.len());
        } else if let Some(k) = set.iter().position(|r| lower.starts_with(r)) {
            idx = Some(k);
        } else if lower.starts_with("others") {
            idx = Some(set.len() + 1);
            rest = t["others".len()..].trim();
        }
    }
    let k = idx?;
    if k < set.len() {
        return Some(RelationAnswer::Fixed(set[k].to_string()));
    }
    if k == set.len() {
        return Some(RelationAnswer::NoRelation);
    }
    // others: the predicate after the letter, without the option's own wording.
    let p = rest
        .trim_start_matches(['.', ':', '-', ',', ')', ' '])
        .trim_start_matches("others")
        .trim_start_matches(['.', ':', '-', ',', ' ']);
    let p = p.lines().next().unwrap_or("").trim().trim_end_matches('.');
    let p = clean_field(p);
    let words = p.split_whitespace().count();
    if (1..=5).contains(&words) && !p.to_lowercase().contains("please specify") {
        Some(RelationAnswer::Generated(p))
    } else {
        None
    }
}

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildConfig {
    /// The database (created when missing).
    pub db: PathBuf,
    /// Corpus folder; `None`: the QA4MRE AD articles.
    pub corpus: Option<PathBuf>,
    /// Folder of the ADQA files (for the default corpus).
    pub data_dir: Option<PathBuf>,
    /// Extraction mode.
    pub mode: BuildMode,
    /// Chat backend spec.
    pub backend: String,
    /// Entity list for pair-wise mode (else an LLM NER pass).
    pub entities: Option<PathBuf>,
    /// Only the first this-many passages.
    pub max_passages: Option<usize>,
    /// Characters per passage.
    pub passage_chars: usize,
    /// Entity pairs classified per passage (pair-wise mode).
    pub max_pairs: usize,
    /// Tokens of one generation.
    pub max_tokens: usize,
    /// Passages in flight at once.
    pub concurrency: usize,
    /// Cosine above which entities merge (`None`: no similarity merge).
    pub merge_threshold: Option<f32>,
    /// Encoder of the similarity merge.
    pub encoder: EncoderKind,
    /// Never download assets.
    pub offline: bool,
}

impl BuildConfig {
    /// Defaults for `db` and `backend`.
    pub fn new(db: impl Into<PathBuf>, backend: impl Into<String>) -> Self {
        BuildConfig {
            db: db.into(),
            corpus: None,
            data_dir: None,
            mode: BuildMode::Generative,
            backend: backend.into(),
            entities: None,
            max_passages: None,
            passage_chars: DEFAULT_PASSAGE_CHARS,
            max_pairs: 12,
            max_tokens: 256,
            concurrency: 2,
            merge_threshold: Some(DEFAULT_MERGE_THRESHOLD),
            encoder: EncoderKind::Minilm,
            offline: false,
        }
    }
}

/// The JSON of `tessera kg build --json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BuildResult {
    /// Extraction mode.
    pub mode: String,
    /// Passages selected.
    pub passages: usize,
    /// Passages processed in this invocation.
    pub processed_now: usize,
    /// Passages skipped because an earlier run finished them.
    pub already_done: usize,
    /// Passages whose calls failed (not marked done; a rerun retries them).
    pub failed: usize,
    /// LLM calls made.
    pub llm_calls: usize,
    /// Triples added in this invocation.
    pub triples_added: usize,
    /// Of those, with a generated (free-text) relation.
    pub generated_added: usize,
    /// LLM output lines or answers that did not fit the format.
    pub unparsed: usize,
    /// Pair answers `no-relation` (dropped).
    pub no_relation: usize,
    /// Entities merged by embedding similarity.
    pub merged_entities: usize,
    /// Triples in the database.
    pub triples: usize,
    /// Entities in the database.
    pub entities: usize,
    /// Wall-clock seconds.
    pub seconds: f64,
}

fn passage_key(mode: BuildMode, p: &Passage) -> String {
    let mut h = Sha256::new();
    h.update(mode.to_string().as_bytes());
    h.update([0]);
    h.update(p.source.as_bytes());
    h.update([0]);
    h.update(p.text.as_bytes());
    let d = h.finalize();
    d.iter().take(12).map(|b| format!("{b:02x}")).collect()
}

struct Extracted {
    triples: Vec<Triple>,
    types: Vec<(String, EntityType)>,
    stats: ParseStats,
    calls: usize,
}

fn extract(
    llm: &BlockingChat,
    cfg: &BuildConfig,
    list: Option<&[(String, EntityType)]>,
    p: &Passage,
) -> Result<Extracted> {
    let prov = format!("{}:{}", cfg.mode, p.source);
    match cfg.mode {
        BuildMode::Generative => {
            let text = crate::dalk::complete(llm, &generative_prompt(&p.text), cfg.max_tokens)?;
            let (triples, stats) = parse_triples(&text, &prov);
            Ok(Extracted {
                triples,
                types: vec![],
                stats,
                calls: 1,
            })
        }
        BuildMode::Pair => {
            let mut calls = 0;
            let ents = match list {
                Some(l) => find_listed(l, &p.text),
                None => {
                    calls += 1;
                    parse_ner(
                        &crate::dalk::complete(llm, &ner_prompt(&p.text), cfg.max_tokens)?,
                        &p.text,
                    )
                }
            };
            let mut pairs = Vec::new();
            for (i, a) in ents.iter().enumerate() {
                for (j, b) in ents.iter().enumerate() {
                    let same = a.1 == b.1;
                    if i == j || (same && j < i) {
                        continue;
                    }
                    if let Some(set) = relation_set(a.1, b.1) {
                        pairs.push((a, b, set));
                    }
                }
            }
            pairs.truncate(cfg.max_pairs);
            let mut triples = Vec::new();
            let mut stats = ParseStats::default();
            for (a, b, set) in pairs {
                calls += 1;
                let ans = crate::dalk::complete(
                    llm,
                    &relation_prompt(&p.text, (&a.0, a.1), (&b.0, b.1), set),
                    24,
                )?;
                let (rel, generated) = match parse_relation(&ans, set) {
                    Some(RelationAnswer::Fixed(r)) => (r, false),
                    Some(RelationAnswer::Generated(r)) => (r, true),
                    Some(RelationAnswer::NoRelation) => {
                        stats.no_relation += 1;
                        continue;
                    }
                    None => {
                        stats.unparsed += 1;
                        continue;
                    }
                };
                triples.push(Triple {
                    head: a.0.clone(),
                    relation: rel,
                    tail: b.0.clone(),
                    provenance: prov.clone(),
                    is_generated: generated,
                });
            }
            Ok(Extracted {
                triples,
                types: ents,
                stats,
                calls,
            })
        }
    }
}

/// Merges entities whose encoder cosine exceeds `threshold` (later ids into earlier ones); skipped above
/// [`MAX_MERGE_ENTITIES`] entities. Returns how many entities were merged away.
pub fn merge_similar(
    store: &mut KgStore,
    encoder: &dyn TextEncoder,
    threshold: f32,
) -> Result<usize> {
    if store.entity_count()? > MAX_MERGE_ENTITIES {
        return Ok(0);
    }
    store.ensure_embeddings(encoder)?;
    let idx = store.embedding_index()?;
    let ids = idx.ids().to_vec();
    let mut target: Vec<Option<usize>> = vec![None; ids.len()];
    for i in 0..ids.len() {
        if target[i].is_some() {
            continue;
        }
        let vi = idx.vector(i);
        for (j, t) in target.iter_mut().enumerate().skip(i + 1) {
            if t.is_none() && tessera_embed::cosine(vi, idx.vector(j)) > threshold {
                *t = Some(i);
            }
        }
    }
    let mut merged = 0;
    for (j, t) in target.iter().enumerate() {
        if let Some(i) = t {
            store.merge_entities(ids[*i], ids[j])?;
            merged += 1;
        }
    }
    Ok(merged)
}

/// Builds (or resumes building) a graph from a corpus.
pub fn build(cfg: &BuildConfig, mut progress: impl FnMut(usize, usize)) -> Result<BuildResult> {
    let t0 = std::time::Instant::now();
    if cfg.passage_chars < 100 || cfg.passage_chars > 20_000 {
        return Err(KgError::invalid(format!(
            "passage length {} out of range [100, 20000]",
            cfg.passage_chars
        )));
    }
    if !(1..=64).contains(&cfg.concurrency) {
        return Err(KgError::invalid(format!(
            "concurrency {} out of range [1, 64]",
            cfg.concurrency
        )));
    }
    if !(1..=4096).contains(&cfg.max_tokens) || cfg.max_pairs > 1000 {
        return Err(KgError::invalid(
            "max tokens must be in [1, 4096] and max pairs at most 1000",
        ));
    }
    if let Some(t) = cfg.merge_threshold {
        if !t.is_finite() || !(0.0..=1.0).contains(&t) {
            return Err(KgError::invalid(format!(
                "merge threshold {t} out of range [0, 1]"
            )));
        }
    }
    let list = match &cfg.entities {
        Some(p) => Some(read_entity_list(p)?),
        None => None,
    };
    let mut passages = load_corpus(
        cfg.corpus.as_deref(),
        cfg.data_dir.as_deref(),
        cfg.passage_chars,
    )?;
    if let Some(m) = cfg.max_passages {
        passages.truncate(m);
    }
    let mut store = KgStore::open(&cfg.db)?;
    let done = store.done_passages()?;
    let todo: Vec<(String, &Passage)> = passages
        .iter()
        .map(|p| (passage_key(cfg.mode, p), p))
        .filter(|(k, _)| !done.contains(k))
        .collect();
    let mut res = BuildResult {
        mode: cfg.mode.to_string(),
        passages: passages.len(),
        already_done: passages.len() - todo.len(),
        ..Default::default()
    };
    let mut stop_err: Option<KgError> = None;
    if !todo.is_empty() {
        let llm = BlockingChat::new(crate::testing::open_backend(&cfg.backend, cfg.offline)?)?;
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let (tx, rx) = std::sync::mpsc::channel::<(usize, Result<Extracted>)>();
        let first_err: Mutex<Option<KgError>> = Mutex::new(None);
        std::thread::scope(|s| {
            for _ in 0..cfg.concurrency.min(todo.len()) {
                let tx = tx.clone();
                let (llm, next, stop, todo, list) = (&llm, &next, &stop, &todo, list.as_deref());
                s.spawn(move || loop {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some((_, p)) = todo.get(i) else { break };
                    let r = extract(llm, cfg, list, p);
                    if tx.send((i, r)).is_err() {
                        break;
                    }
                });
            }
            drop(tx);
            let total = todo.len();
            let mut seen = 0;
            for (i, r) in rx {
                seen += 1;
                match r {
                    Ok(x) => {
                        let write = (|| -> Result<()> {
                            let st = store.insert_passage(&todo[i].0, &x.triples)?;
                            for (name, ty) in &x.types {
                                if let Some(id) = store.entity_id(name)? {
                                    store.set_type(id, ty.as_str())?;
                                }
                            }
                            res.triples_added += st.added;
                            Ok(())
                        })();
                        if let Err(e) = write {
                            stop.store(true, Ordering::SeqCst);
                            first_err
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .get_or_insert(e);
                            continue;
                        }
                        res.generated_added += x.triples.iter().filter(|t| t.is_generated).count();
                        res.unparsed += x.stats.unparsed;
                        res.no_relation += x.stats.no_relation;
                        res.llm_calls += x.calls;
                        res.processed_now += 1;
                    }
                    Err(e) if e.is_infrastructure() => {
                        stop.store(true, Ordering::SeqCst);
                        res.failed += 1;
                        first_err
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .get_or_insert(e);
                    }
                    Err(_) => res.failed += 1,
                }
                progress(seen, total);
            }
        });
        stop_err = first_err.into_inner().unwrap_or_else(|e| e.into_inner());
    }
    if let Some(e) = stop_err {
        return Err(KgError::invalid(format!(
            "{e}; {} passage(s) of this run are saved in {}: rerun the same command to resume",
            res.processed_now,
            cfg.db.display()
        )));
    }
    if let Some(t) = cfg.merge_threshold {
        if res.processed_now > 0 {
            let enc = open_encoder(cfg.encoder, cfg.offline)?;
            res.merged_entities = merge_similar(&mut store, enc.as_ref(), t)?;
        }
    }
    res.triples = store.triple_count()?;
    res.entities = store.entity_count()?;
    res.seconds = t0.elapsed().as_secs_f64();
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relation_answers_parse_strictly() {
        let set = relation_set(EntityType::Gene, EntityType::Gene).unwrap();
        assert_eq!(
            parse_relation("C", set),
            Some(RelationAnswer::Fixed("regulates".into()))
        );
        assert_eq!(
            parse_relation("(B) interacts", set),
            Some(RelationAnswer::Fixed("interacts".into()))
        );
        assert_eq!(parse_relation("D.", set), Some(RelationAnswer::NoRelation));
        assert_eq!(
            parse_relation("no relation", set),
            Some(RelationAnswer::NoRelation)
        );
        assert_eq!(
            parse_relation("E. is cleaved by", set),
            Some(RelationAnswer::Generated("is cleaved by".into()))
        );
        assert_eq!(parse_relation("E", set), None, "others without a predicate");
        assert_eq!(parse_relation("E. one two three four five six", set), None);
        assert_eq!(parse_relation("F", set), None, "no sixth option");
        assert_eq!(parse_relation("I am not sure", set), None);
    }

    #[test]
    fn passages_split_at_sentences() {
        let text = "First sentence here is long enough. Second one follows it. ".repeat(40);
        let ps = split_passages("doc", &text, 300);
        assert!(ps.len() > 5);
        assert!(
            ps.iter()
                .all(|p| p.text.len() <= 360 && p.text.ends_with('.')),
            "{ps:?}"
        );
        assert_eq!(ps[1].source, "doc#1");
    }

    #[test]
    fn ner_keeps_names_in_the_passage() {
        let p = "BACE1 cleaves APP; donepezil treats Alzheimer's disease.";
        let got = parse_ner("1. BACE1 | gene\n2. donepezil (drug)\n3. Alzheimer's disease: disease\n4. insulin | gene\nfoo", p);
        assert_eq!(got.len(), 3);
        assert_eq!(got[1].1, EntityType::Compound);
    }
}
