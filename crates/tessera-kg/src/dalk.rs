//! DALK's inference side (Li et al. 2024, "DALK: Dynamic Co-Augmentation of LLMs and KG to answer Alzheimer's
//! Disease Questions with Scientific Literature", arXiv 2405.04819, §3.3 "Sample-based knowledge retrieval" and
//! the answer step; reference code `MindMap_revised.py` of David-Li0406/DALK; notes in
//! `shared/notes/papers/kg_safety_society.md` §1).
//!
//! Per question:
//! 1. **Entity listing** ([`entity_prompt`], [`parse_entity_list`]): the LLM lists the biomedical entities of the
//!    question and options, one numbered line each.
//! 2. **Linking** ([`link`]): each keyword goes to the most similar KG entity by encoder cosine; an entity already
//!    taken by an earlier keyword is never reused (the next best is taken).
//! 3. **Coarse-to-fine sampling**: path-based evidence ([`path_evidence`]: all shortest directed paths of at most
//!    5 hops between consecutive linked entities, at most 5 per pair; a path through a later candidate replaces
//!    that candidate's own segment; segments chained by Cartesian product; at most 5 chains overall, spread over
//!    start entities) and neighbour-based evidence ([`neighbour_evidence`]: 1-hop outgoing edges grouped by
//!    relation, `e -> rel -> n1, n2, ...`, the first 5 lines).
//! 4. **Self-aware knowledge retrieval** ([`rerank_prompt`], [`parse_rerank`]): the LLM picks the k (default 5)
//!    most useful facts, or in the `filter` variant drops the noisy ones.
//! 5. **Answer** ([`answer_letter`]): the kept evidence is verbalised and the two-step chain of thought of DALK
//!    ("Let's think step by step", then "The final answer (output the letter option) is:") yields a letter;
//!    [`answer_loglik`] instead scores each option's text by its log-likelihood under the model.
//!
//! Deviations from the reference code, documented in the crate README: greedy decoding (temperature 0, DALK used
//! 0.7) for reproducible evaluation; evidence is verbalised by a fixed template (`a rel b; b rel2 c.`) instead of an
//! extra LLM call per block; one rerank call over path and neighbour facts together; an optional minimum linking
//! similarity ([`DalkConfig::min_link_similarity`], 0 = DALK's plain argmax); the disease-neighbour expansion of
//! the reference is not done.
use crate::adqa::{Question, LETTERS};
use crate::encoder::TextEncoder;
use crate::error::{KgError, Result};
use crate::store::{EntityIndex, Graph, KgStore, Step};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use tessera_llm::{BlockingChat, ChatMessage, ChatParams, ChatRequest, ScoreRequest};

/// How the answer is read from the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Scoring {
    /// DALK's two-step chain of thought, then the option letter.
    #[default]
    Letter,
    /// The option whose text has the highest log-likelihood (lm-eval-harness multiple choice).
    Loglik,
}

impl std::str::FromStr for Scoring {
    type Err = KgError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "letter" => Ok(Scoring::Letter),
            "loglik" => Ok(Scoring::Loglik),
            _ => Err(KgError::invalid(format!(
                "scoring `{s}`: expected letter or loglik"
            ))),
        }
    }
}

impl std::fmt::Display for Scoring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Scoring::Letter => "letter",
            Scoring::Loglik => "loglik",
        })
    }
}

/// The self-aware retrieval prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RerankMode {
    /// Keep the k most useful facts, most useful first.
    #[default]
    Rerank,
    /// Drop the noisy facts, keep the rest (at most k).
    Filter,
}

impl std::str::FromStr for RerankMode {
    type Err = KgError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "rerank" => Ok(RerankMode::Rerank),
            "filter" => Ok(RerankMode::Filter),
            _ => Err(KgError::invalid(format!(
                "rerank mode `{s}`: expected rerank or filter"
            ))),
        }
    }
}

impl std::fmt::Display for RerankMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RerankMode::Rerank => "rerank",
            RerankMode::Filter => "filter",
        })
    }
}

/// Settings of the retrieval and answer steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DalkConfig {
    /// Facts kept by self-aware retrieval (DALK's k, best at 5).
    pub k: usize,
    /// Longest path in hops.
    pub max_hops: usize,
    /// Paths kept per entity pair and overall.
    pub max_paths: usize,
    /// Neighbour lines kept.
    pub max_neighbour_lines: usize,
    /// Tails shown per neighbour line.
    pub max_tails_per_line: usize,
    /// Keywords whose best entity is less similar than this stay unlinked (0: always link, as DALK).
    pub min_link_similarity: f32,
    /// Rerank or filter.
    pub rerank: RerankMode,
    /// Letter or log-likelihood answers.
    pub scoring: Scoring,
    /// Token budget of the chain of thought.
    pub cot_tokens: usize,
    /// Token budget of the entity list and of the rerank answer.
    pub list_tokens: usize,
}

impl Default for DalkConfig {
    fn default() -> Self {
        DalkConfig {
            k: 5,
            max_hops: 5,
            max_paths: 5,
            max_neighbour_lines: 5,
            max_tails_per_line: 8,
            min_link_similarity: 0.5,
            rerank: RerankMode::Rerank,
            scoring: Scoring::Letter,
            cot_tokens: 160,
            list_tokens: 96,
        }
    }
}

impl DalkConfig {
    /// Checks the ranges.
    pub fn validate(&self) -> Result<()> {
        if !(1..=50).contains(&self.k) {
            return Err(KgError::invalid(format!(
                "k {} out of range [1, 50]",
                self.k
            )));
        }
        if !(1..=10).contains(&self.max_hops) {
            return Err(KgError::invalid(format!(
                "max hops {} out of range [1, 10]",
                self.max_hops
            )));
        }
        if !self.min_link_similarity.is_finite()
            || !(-1.0..=1.0).contains(&self.min_link_similarity)
        {
            return Err(KgError::invalid(format!(
                "minimum link similarity {} out of range [-1, 1]",
                self.min_link_similarity
            )));
        }
        if !(1..=4096).contains(&self.cot_tokens) || !(1..=4096).contains(&self.list_tokens) {
            return Err(KgError::invalid("token budgets must be in [1, 4096]"));
        }
        Ok(())
    }
}

/// A question with its lettered options, as shown to the model.
pub fn render_question(q: &Question) -> String {
    let mut s = format!("Question: {}\n", q.question.trim());
    for (l, o) in LETTERS.iter().zip(&q.options) {
        s.push_str(&format!("{l}. {}\n", o.trim()));
    }
    s
}

/// Step 1: the entity-listing prompt.
pub fn entity_prompt(q: &Question) -> String {
    format!(
        "List every biomedical entity (diseases, genes, proteins, drugs, symptoms, anatomy) mentioned in the \
         question and its options below. Write one entity per line, numbered 1., 2., 3., ...\n\n{}",
        render_question(q)
    )
}

/// Drops an echoed option letter: `A. x`, `B) x`, `(C) x` → `x`.
fn strip_option_letter(l: &str) -> &str {
    let cs: Vec<char> = l.chars().take(3).collect();
    let is_letter = |c: &char| LETTERS.contains(c);
    match cs.as_slice() {
        [a, b, ' ', ..] | [a, b] if is_letter(a) && matches!(b, '.' | ')') => l[2..].trim(),
        ['(', a, ')', ..] if is_letter(a) => l[3..].trim(),
        _ => l,
    }
}

/// Parses a numbered (or bulleted, or comma-separated) entity list; drops empty items, duplicates (case-blind)
/// and items longer than 12 words.
pub fn parse_entity_list(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut seen = HashSet::new();
    for line in text.lines() {
        let l = line.trim();
        let l = l.trim_start_matches(|c: char| {
            c.is_ascii_digit() || matches!(c, '.' | ')' | '-' | '*' | '•')
        });
        let l = strip_option_letter(l.trim());
        let items: Vec<&str> = if l.contains(',') && !l.contains(' ') || l.matches(',').count() >= 2
        {
            l.split(',').collect()
        } else {
            vec![l]
        };
        for it in items {
            let it = it
                .trim()
                .trim_matches(|c: char| matches!(c, '"' | '\'' | '*' | '.' | ':' | ';'))
                .trim();
            if it.is_empty() || it.split_whitespace().count() > 12 {
                continue;
            }
            let lower = it.to_lowercase();
            if lower.starts_with("here are")
                || lower.starts_with("entities")
                || lower.ends_with(':')
            {
                continue;
            }
            if seen.insert(crate::store::normalize(it)) {
                out.push(it.to_string());
            }
        }
    }
    out
}

/// One keyword and the KG entity it was linked to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Linked {
    /// The keyword from the entity list.
    pub keyword: String,
    /// The KG entity id.
    pub entity_id: i64,
    /// The KG entity's name.
    pub entity: String,
    /// Cosine similarity of keyword and entity.
    pub similarity: f32,
}

/// Step 2: links each keyword to its most similar entity, never reusing one; keywords below `min_similarity`
/// (or with every entity taken) are returned unlinked.
pub fn link(
    keywords: &[String],
    encoder: &dyn TextEncoder,
    index: &dyn EntityIndex,
    graph: &Graph,
    min_similarity: f32,
) -> Result<(Vec<Linked>, Vec<String>)> {
    if keywords.is_empty() {
        return Ok((vec![], vec![]));
    }
    let refs: Vec<&str> = keywords.iter().map(String::as_str).collect();
    let vecs = encoder.encode(&refs)?;
    let mut used = HashSet::new();
    let (mut linked, mut unlinked) = (Vec::new(), Vec::new());
    for (kw, v) in keywords.iter().zip(&vecs) {
        match index.nearest(v, &used) {
            Some((id, s)) if s >= min_similarity => {
                used.insert(id);
                linked.push(Linked {
                    keyword: kw.clone(),
                    entity_id: id,
                    entity: graph.name(id).to_string(),
                    similarity: s,
                });
            }
            _ => unlinked.push(kw.clone()),
        }
    }
    Ok((linked, unlinked))
}

/// Which sampler produced a fact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FactKind {
    /// A path between linked entities.
    Path,
    /// A 1-hop neighbour line.
    Neighbour,
}

/// One piece of evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fact {
    /// Its sampler.
    pub kind: FactKind,
    /// Arrow form, `a -> rel -> b -> rel2 -> c`.
    pub text: String,
    /// Verbalised form, `a rel b; b rel2 c.`
    pub sentence: String,
}

fn verbalise_path(g: &Graph, p: &[Step]) -> String {
    let parts: Vec<String> = p
        .iter()
        .map(|s| format!("{} {} {}", g.name(s.head), s.relation, g.name(s.tail)))
        .collect();
    format!("{}.", parts.join("; "))
}

/// Step 3a: path-based evidence between consecutive linked entities.
pub fn path_evidence(g: &Graph, linked: &[i64], cfg: &DalkConfig) -> Vec<Fact> {
    // Segments between consecutive candidates; a path passing through a later candidate is kept alone and the
    // candidate is dropped from the list (it is already on the path).
    let mut cands: Vec<i64> = linked.to_vec();
    let mut chains: Vec<Vec<Vec<Step>>> = Vec::new(); // chains of segments; each chain: current product
    let mut current: Vec<Vec<Step>> = Vec::new();
    let mut i = 0;
    while i + 1 < cands.len() {
        let (a, b) = (cands[i], cands[i + 1]);
        let mut paths = g.shortest_paths(a, b, cfg.max_hops, cfg.max_paths);
        if let Some(p) = paths.iter().find(|p| {
            p.iter()
                .any(|s| cands[i + 2..].contains(&s.tail) && s.tail != b)
        }) {
            let p = p.clone();
            let later: HashSet<i64> = p.iter().map(|s| s.tail).collect();
            cands = cands
                .iter()
                .enumerate()
                .filter(|(j, c)| *j <= i + 1 || !later.contains(c))
                .map(|(_, c)| *c)
                .collect();
            paths = vec![p];
        }
        if paths.is_empty() {
            if !current.is_empty() {
                chains.push(std::mem::take(&mut current));
            }
        } else if current.is_empty() {
            current = paths;
        } else {
            // Cartesian product of the chain so far with this segment's paths, bounded.
            let mut next = Vec::new();
            'outer: for c in &current {
                for p in &paths {
                    let mut x = c.clone();
                    x.extend(p.iter().cloned());
                    next.push(x);
                    if next.len() >= cfg.max_paths * cfg.max_paths {
                        break 'outer;
                    }
                }
            }
            current = next;
        }
        i += 1;
    }
    if !current.is_empty() {
        chains.push(current);
    }
    // At most max_paths overall, round-robin over chains (which start at different entities).
    let mut out = Vec::new();
    let mut round = 0;
    while out.len() < cfg.max_paths && chains.iter().any(|c| c.len() > round) {
        for c in &chains {
            if out.len() >= cfg.max_paths {
                break;
            }
            if let Some(p) = c.get(round) {
                out.push(Fact {
                    kind: FactKind::Path,
                    text: g.render_path(p),
                    sentence: verbalise_path(g, p),
                });
            }
        }
        round += 1;
    }
    out
}

/// Step 3b: neighbour-based evidence, the first `max_neighbour_lines` relation groups over the linked entities.
pub fn neighbour_evidence(
    store: &KgStore,
    g: &Graph,
    linked: &[i64],
    cfg: &DalkConfig,
) -> Result<Vec<Fact>> {
    let mut out = Vec::new();
    for &e in linked {
        for grp in store.neighbours(e)? {
            if out.len() >= cfg.max_neighbour_lines {
                return Ok(out);
            }
            let tails: Vec<&str> = grp
                .tails
                .iter()
                .take(cfg.max_tails_per_line)
                .map(String::as_str)
                .collect();
            out.push(Fact {
                kind: FactKind::Neighbour,
                text: format!("{} -> {} -> {}", g.name(e), grp.relation, tails.join(", ")),
                sentence: format!("{} {} {}.", g.name(e), grp.relation, tails.join(", ")),
            });
        }
    }
    Ok(out)
}

/// Step 4: the self-aware retrieval prompt over numbered facts.
pub fn rerank_prompt(q: &Question, facts: &[Fact], k: usize, mode: RerankMode) -> String {
    let mut s = String::from("Knowledge graph facts:\n");
    for (i, f) in facts.iter().enumerate() {
        s.push_str(&format!("{}. {}\n", i + 1, f.text));
    }
    s.push('\n');
    s.push_str(&render_question(q));
    s.push('\n');
    match mode {
        RerankMode::Rerank => s.push_str(&format!(
            "Rerank the knowledge graph facts above and output at most {k} important and relevant facts for \
             answering the question, most useful first. Output only their numbers, one per line."
        )),
        RerankMode::Filter => s.push_str(
            "Filter the noisy knowledge out of the facts above: output the numbers of the facts that are relevant \
             to the question, one per line.",
        ),
    }
    s
}

/// Parses the rerank answer: fact numbers (1-based, in range) in order of first appearance, at most `k`; a line
/// quoting a fact's text also counts. `None` when nothing usable was found.
pub fn parse_rerank(text: &str, facts: &[Fact], k: usize) -> Option<Vec<usize>> {
    let mut out: Vec<usize> = Vec::new();
    for line in text.lines() {
        let l = line.trim();
        if l.is_empty() {
            continue;
        }
        let quoted = facts
            .iter()
            .position(|f| l.contains(&f.text) || (l.len() > 12 && f.text.contains(l)));
        let number = {
            let d: String = l
                .trim_start_matches(['[', '(', '#', '-', '*', ' '])
                .trim_start_matches("Fact ")
                .trim_start_matches("fact ")
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            d.parse::<usize>()
                .ok()
                .filter(|n| (1..=facts.len()).contains(n))
                .map(|n| n - 1)
        };
        // "3. a -> b" from a model that echoes numbered facts: the number and the text agree or only one exists.
        let pick = quoted.or(number);
        if let Some(i) = pick {
            if !out.contains(&i) {
                out.push(i);
            }
        } else {
            // Several numbers on one line ("1, 3, 4").
            for tok in l.split(|c: char| !c.is_ascii_digit()) {
                if let Ok(n) = tok.parse::<usize>() {
                    if (1..=facts.len()).contains(&n) && !out.contains(&(n - 1)) {
                        out.push(n - 1);
                    }
                }
            }
        }
        if out.len() >= k {
            break;
        }
    }
    out.truncate(k);
    (!out.is_empty()).then_some(out)
}

/// The knowledge block of the answer prompt (empty without evidence).
pub fn knowledge_block(facts: &[Fact]) -> String {
    if facts.is_empty() {
        return String::new();
    }
    let mut s = String::from("Here is some knowledge that may help:\n");
    let (mut p, mut n) = (0, 0);
    for f in facts {
        match f.kind {
            FactKind::Path => {
                p += 1;
                s.push_str(&format!("Path-based Evidence {p}: {}\n", f.sentence));
            }
            FactKind::Neighbour => {
                n += 1;
                s.push_str(&format!("Neighbor-based Evidence {n}: {}\n", f.sentence));
            }
        }
    }
    s.push('\n');
    s
}

/// One answer of one condition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// The chosen option, `None` when the letter could not be read.
    pub choice: Option<usize>,
    /// The chain of thought (letter scoring).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reasoning: String,
    /// The raw final answer text (letter scoring).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub raw: String,
    /// Per-option log-likelihoods (loglik scoring).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scores: Vec<f64>,
}

/// Reads the option letter from a final answer: the first letter A..(options) that stands alone in the first
/// line (`C`, `(C)`, `C.`, `Answer: C`), else the first option whose text the answer repeats.
pub fn parse_letter(text: &str, options: &[String]) -> Option<usize> {
    let n = options.len();
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let chars: Vec<char> = first.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        if let Some(k) = LETTERS[..n].iter().position(|l| l == c) {
            let before = i == 0 || !chars[i - 1].is_alphanumeric();
            let after = i + 1 == chars.len() || !chars[i + 1].is_alphanumeric();
            if before && after {
                return Some(k);
            }
        }
    }
    let lower = text.to_lowercase();
    options
        .iter()
        .position(|o| o.trim().len() >= 3 && lower.contains(&o.trim().to_lowercase()))
}

fn chat(llm: &BlockingChat, messages: Vec<ChatMessage>, max_tokens: usize) -> Result<String> {
    let params = ChatParams {
        temperature: 0.0,
        max_tokens,
        ..ChatParams::default()
    };
    let req = ChatRequest::new(messages).with_params(params);
    Ok(llm.chat(&req)?.text().to_string())
}

/// One user turn.
pub fn user(text: impl Into<String>) -> ChatMessage {
    ChatMessage::new("user", text)
}

/// Asks for a short completion of one user message (greedy).
pub fn complete(llm: &BlockingChat, prompt: &str, max_tokens: usize) -> Result<String> {
    chat(llm, vec![user(prompt)], max_tokens)
}

/// Step 5, letter scoring: chain of thought, then the letter.
pub fn answer_letter(
    llm: &BlockingChat,
    q: &Question,
    facts: &[Fact],
    cfg: &DalkConfig,
) -> Result<Answer> {
    let prompt = format!(
        "{}{}Answer: Let's think step by step:",
        knowledge_block(facts),
        render_question(q)
    );
    let reasoning = chat(llm, vec![user(prompt.clone())], cfg.cot_tokens)?;
    let raw = chat(
        llm,
        vec![
            user(prompt),
            ChatMessage::new("assistant", reasoning.clone()),
            user("The final answer (output the letter option) is:"),
        ],
        8,
    )?;
    Ok(Answer {
        choice: parse_letter(&raw, &q.options),
        reasoning,
        raw,
        scores: vec![],
    })
}

/// Step 5, log-likelihood scoring: the option text with the highest summed log-probability as the reply.
pub fn answer_loglik(llm: &BlockingChat, q: &Question, facts: &[Fact]) -> Result<Answer> {
    let prompt = format!(
        "{}{}Answer with the text of the correct option.",
        knowledge_block(facts),
        render_question(q)
    );
    let req = ScoreRequest {
        messages: vec![user(prompt)],
        prefix: String::new(),
        continuations: q
            .options
            .iter()
            .map(|o| {
                let t = o.trim();
                if t.is_empty() {
                    "(empty)".to_string()
                } else {
                    t.to_string()
                }
            })
            .collect(),
    };
    let resp = llm.block_on(llm.model().score(&req))?;
    let scores: Vec<f64> = resp.scores.iter().map(|s| s.logprob).collect();
    let choice = scores
        .iter()
        .enumerate()
        .filter(|(_, s)| s.is_finite())
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i);
    Ok(Answer {
        choice,
        reasoning: String::new(),
        raw: String::new(),
        scores,
    })
}

/// Answers with the configured scoring.
pub fn answer(
    llm: &BlockingChat,
    q: &Question,
    facts: &[Fact],
    cfg: &DalkConfig,
) -> Result<Answer> {
    match cfg.scoring {
        Scoring::Letter => answer_letter(llm, q, facts, cfg),
        Scoring::Loglik => answer_loglik(llm, q, facts),
    }
}

/// Everything retrieval produced for one question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Retrieval {
    /// The LLM's raw entity list.
    #[serde(default)]
    pub entities_raw: String,
    /// The parsed entity list.
    pub keywords: Vec<String>,
    /// Linked keywords.
    pub linked: Vec<Linked>,
    /// Keywords that linked to nothing.
    pub unlinked: Vec<String>,
    /// Path-based facts.
    pub paths: Vec<Fact>,
    /// Neighbour-based facts.
    pub neighbours: Vec<Fact>,
    /// Indices (into paths ++ neighbours) kept by self-aware retrieval.
    pub kept: Vec<usize>,
    /// False when the rerank answer could not be parsed (the first k facts were kept).
    pub rerank_parsed: bool,
    /// The raw rerank answer.
    pub rerank_raw: String,
}

impl Retrieval {
    /// Paths then neighbours (what the no-rerank condition sees).
    pub fn all_facts(&self) -> Vec<Fact> {
        self.paths.iter().chain(&self.neighbours).cloned().collect()
    }

    /// The facts kept by self-aware retrieval.
    pub fn kept_facts(&self) -> Vec<Fact> {
        let all = self.all_facts();
        self.kept
            .iter()
            .filter_map(|&i| all.get(i).cloned())
            .collect()
    }
}

/// What retrieval reads: the store, its graph and the entity index.
pub struct Kg<'a> {
    /// The store (neighbour queries).
    pub store: &'a KgStore,
    /// The adjacency (path search, names).
    pub graph: &'a Graph,
    /// Entity embeddings.
    pub index: &'a dyn EntityIndex,
    /// The encoder of keywords (same as the index's).
    pub encoder: &'a dyn TextEncoder,
}

/// Steps 1–4 for one question.
pub fn retrieve(
    llm: &BlockingChat,
    kg: &Kg<'_>,
    q: &Question,
    cfg: &DalkConfig,
) -> Result<Retrieval> {
    let listed = complete(llm, &entity_prompt(q), cfg.list_tokens)?;
    let keywords = parse_entity_list(&listed);
    let (linked, unlinked) = link(
        &keywords,
        kg.encoder,
        kg.index,
        kg.graph,
        cfg.min_link_similarity,
    )?;
    let ids: Vec<i64> = linked.iter().map(|l| l.entity_id).collect();
    let paths = path_evidence(kg.graph, &ids, cfg);
    let neighbours = neighbour_evidence(kg.store, kg.graph, &ids, cfg)?;
    let mut r = Retrieval {
        entities_raw: listed,
        keywords,
        linked,
        unlinked,
        paths,
        neighbours,
        kept: vec![],
        rerank_parsed: true,
        rerank_raw: String::new(),
    };
    let all = r.all_facts();
    if all.is_empty() {
        return Ok(r);
    }
    if all.len() <= 1 {
        r.kept = vec![0];
        return Ok(r);
    }
    r.rerank_raw = complete(
        llm,
        &rerank_prompt(q, &all, cfg.k, cfg.rerank),
        cfg.list_tokens,
    )?;
    match parse_rerank(&r.rerank_raw, &all, cfg.k) {
        Some(k) => r.kept = k,
        None => {
            r.rerank_parsed = false;
            r.kept = (0..all.len().min(cfg.k)).collect();
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_parse_strictly() {
        let o: Vec<String> = ["Dementia", "Delirium", "Delusion", "All of the above"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(parse_letter("C", &o), Some(2));
        assert_eq!(parse_letter("(B) Delirium", &o), Some(1));
        assert_eq!(parse_letter("Answer: D.", &o), Some(3));
        assert_eq!(parse_letter("The answer is dementia", &o), Some(0));
        assert_eq!(parse_letter("E", &o), None, "E is not an option of four");
        assert_eq!(parse_letter("I think so", &o), None);
    }

    #[test]
    fn entity_lists_parse_from_messy_output() {
        let got = parse_entity_list(
            "Here are the entities:\n1. APOE\n2) amyloid beta.\n- Tau\n3. apoe\n\n4.",
        );
        assert_eq!(got, vec!["APOE", "amyloid beta", "Tau"]);
        let got = parse_entity_list("A. APOE\n(B) insulin\nC) BRCA1\nDementia\nA.B. Smith");
        assert_eq!(
            got,
            vec!["APOE", "insulin", "BRCA1", "Dementia", "A.B. Smith"]
        );
        let got = parse_entity_list("donepezil, memantine, Alzheimer's disease");
        assert_eq!(got.len(), 3);
    }

    #[test]
    fn rerank_answers_parse_defensively() {
        let facts: Vec<Fact> = (0..6)
            .map(|i| Fact {
                kind: FactKind::Neighbour,
                text: format!("e{i} -> r -> t{i}"),
                sentence: String::new(),
            })
            .collect();
        assert_eq!(parse_rerank("3\n1\n9\n3", &facts, 5), Some(vec![2, 0]));
        assert_eq!(
            parse_rerank("Facts 2, 4 and 5 matter", &facts, 2),
            Some(vec![1, 3])
        );
        assert_eq!(parse_rerank("- e5 -> r -> t5", &facts, 5), Some(vec![5]));
        assert_eq!(parse_rerank("none of them", &facts, 5), None);
    }
}
