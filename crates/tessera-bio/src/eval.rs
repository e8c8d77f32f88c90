//! The evaluation of `tessera bio eval`: every method on the first gene sets of the table, scored by the cosine
//! of the predicted and gold names' embeddings and the gold name's percentile among all GO BP names; resumable
//! per gene set (a JSONL journal under the output folder, guarded against a rerun with other settings).
//!
//! The over-representation baseline is reported twice. As the paper runs it, the best-matching of the top 15
//! terms is scored; these gene sets are GO terms' own annotations, so the gold term itself is usually among them
//! and the score is close to 1 — a leak, not skill. The fair number is `gsea_cosine_excluding_gold`: the gold
//! term, every term annotating exactly the same genes, and every term annotating exactly the query's genes are
//! left out of the test.
use crate::baselines::{self, Baseline, Example};
use crate::data::{self, DataPaths, GeneSet, Resources};
use crate::enrichment::{self, EnrichOptions};
use crate::error::{BioError, Result};
use crate::semantic::{cosine, Score};
use crate::thought_graph::{self, Cost, ThoughtGraphConfig};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;
use tessera_llm::ChatModel;

/// A method of the evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Method {
    /// Over-representation analysis (both variants).
    Gsea,
    /// An LLM baseline.
    Baseline(Baseline),
    /// The Thought Graph.
    ThoughtGraph,
}

impl Method {
    /// Every method.
    pub const ALL: [Method; 5] = [
        Method::Gsea,
        Method::Baseline(Baseline::ZeroShot),
        Method::Baseline(Baseline::FewShot),
        Method::Baseline(Baseline::ChainOfThought),
        Method::ThoughtGraph,
    ];

    /// True when the method calls a chat model.
    pub fn uses_llm(self) -> bool {
        self != Method::Gsea
    }

    /// The prefix of the method's keys in the result (`gsea`, `zero_shot`, `few_shot`, `cot`, `thought_graph`).
    pub fn key(self) -> &'static str {
        match self {
            Method::Gsea => "gsea",
            Method::Baseline(Baseline::ZeroShot) => "zero_shot",
            Method::Baseline(Baseline::FewShot) => "few_shot",
            Method::Baseline(Baseline::ChainOfThought) => "cot",
            Method::ThoughtGraph => "thought_graph",
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Method::Gsea => f.write_str("gsea"),
            Method::Baseline(b) => b.fmt(f),
            Method::ThoughtGraph => f.write_str("thought-graph"),
        }
    }
}

impl FromStr for Method {
    type Err = BioError;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "gsea" | "ora" | "enrichment" => Ok(Method::Gsea),
            "thought-graph" | "tg" => Ok(Method::ThoughtGraph),
            other => other.parse().map(Method::Baseline).map_err(|_| {
                BioError::invalid(format!(
                    "unknown method `{s}` (known: gsea, zero-shot, few-shot, cot, thought-graph)"
                ))
            }),
        }
    }
}

/// Settings of one evaluation.
#[derive(Debug, Clone)]
pub struct BioEvalConfig {
    /// The gene-set CSV (`None`: [`data::DEFAULT_GENE_SETS`] under the shared data root).
    pub gene_sets: Option<PathBuf>,
    /// Ontology and annotations (`None`: the `go-db` and `org-hs-eg-db` assets).
    pub data: Option<DataPaths>,
    /// Gene sets evaluated (from `offset`).
    pub limit: usize,
    /// First gene set evaluated.
    pub offset: usize,
    /// Methods run.
    pub methods: Vec<Method>,
    /// Chat backend spec (see `tessera_llm::spec`), used by every LLM method.
    pub backend: String,
    /// Thought Graph settings.
    pub thought_graph: ThoughtGraphConfig,
    /// Over-representation settings.
    pub enrich: EnrichOptions,
    /// Few-shot examples, taken from the last rows of the table (never evaluated).
    pub few_shot_examples: usize,
    /// Output folder for the journal (`None`: not resumable).
    pub out: Option<PathBuf>,
    /// Never download assets.
    pub offline: bool,
}

impl Default for BioEvalConfig {
    fn default() -> Self {
        BioEvalConfig {
            gene_sets: None,
            data: None,
            limit: 100,
            offset: 0,
            methods: Method::ALL.to_vec(),
            backend: "local:smollm2-135m".into(),
            thought_graph: ThoughtGraphConfig::default(),
            enrich: EnrichOptions::default(),
            few_shot_examples: 3,
            out: None,
            offline: false,
        }
    }
}

/// What must not change between a run and its resumption.
#[derive(Serialize)]
struct Settings<'a> {
    gene_sets: String,
    data: Option<&'a DataPaths>,
    methods: &'a [Method],
    backend: &'a str,
    thought_graph: &'a ThoughtGraphConfig,
    enrich: &'a EnrichOptions,
    few_shot_examples: usize,
}

/// One method's answer on one gene set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// The predicted name ("" for none).
    pub prediction: String,
    /// Its score.
    pub score: Score,
    /// The best-scoring name anywhere in the method's output (Thought Graph nodes), with its score.
    pub best: Option<(String, Score)>,
    /// Requests and tokens spent.
    pub cost: Cost,
    /// Method-specific detail (top terms, the graph).
    pub detail: serde_json::Value,
}

/// Everything recorded for one gene set (one journal line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeneSetRecord {
    /// Row of the table (0-based).
    pub index: usize,
    /// The GO id the set came from.
    pub go_id: String,
    /// The gold name.
    pub gold: String,
    /// Symbols given.
    pub genes: usize,
    /// Symbols that matched no gene (reported and skipped).
    pub unknown: Vec<String>,
    /// Outcomes by result key (`gsea`, `gsea_excluding_gold`, `zero_shot`, ...).
    pub outcomes: BTreeMap<String, Outcome>,
}

/// Mean cost of a method per gene set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct CostPerSet {
    /// Chat requests.
    pub calls: f64,
    /// Completions.
    pub completions: f64,
    /// Prompt tokens.
    pub prompt_tokens: f64,
    /// Completion tokens.
    pub completion_tokens: f64,
}

/// The paper's numbers (gpt-3.5-turbo, SapBERT cosines; from the authors' notebooks, 200 gene sets).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Reference {
    /// g:Profiler, best of the top 15 terms.
    pub gprofiler: f64,
    /// Thought Graph, final answer.
    pub thought_graph_final: f64,
    /// Thought Graph, best node.
    pub thought_graph_best: f64,
}

/// The reference numbers.
pub const REFERENCE: Reference = Reference {
    gprofiler: 0.3065,
    thought_graph_final: 0.4454,
    thought_graph_best: 0.6400,
};

/// The result of [`run`] (the JSON of `tessera bio eval --json`). Means over the evaluated gene sets; a method
/// that was not run has `null` keys.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BioEvalResult {
    /// Gene sets evaluated.
    pub gene_sets: usize,
    /// First row evaluated.
    pub offset: usize,
    /// Methods run.
    pub methods: Vec<String>,
    /// The chat backend (when an LLM method ran).
    pub backend: Option<String>,
    /// The embedder scoring names (SapBERT is not obtainable; MiniLM stands in).
    pub embedder: String,
    /// Thought Graph samples per parent.
    pub samples: usize,
    /// Over-representation, best of the top terms (the paper's setting; the gold term leaks in).
    pub gsea_cosine: Option<f64>,
    /// Its percentile.
    pub gsea_percentile: Option<f64>,
    /// Gene sets with no significant term (scored 0).
    pub gsea_no_enrichment: Option<usize>,
    /// Over-representation with the gold term and same-gene terms excluded (the fair number).
    pub gsea_cosine_excluding_gold: Option<f64>,
    /// Its percentile.
    pub gsea_percentile_excluding_gold: Option<f64>,
    /// Zero-shot baseline.
    pub zero_shot_cosine: Option<f64>,
    /// Its percentile.
    pub zero_shot_percentile: Option<f64>,
    /// Few-shot baseline.
    pub few_shot_cosine: Option<f64>,
    /// Its percentile.
    pub few_shot_percentile: Option<f64>,
    /// Chain-of-thought baseline.
    pub cot_cosine: Option<f64>,
    /// Its percentile.
    pub cot_percentile: Option<f64>,
    /// Thought Graph, final answer.
    pub thought_graph_cosine: Option<f64>,
    /// Its percentile.
    pub thought_graph_percentile: Option<f64>,
    /// Thought Graph, best node of the graph.
    pub thought_graph_best_cosine: Option<f64>,
    /// Its percentile.
    pub thought_graph_best_percentile: Option<f64>,
    /// Mean cost per gene set, by method key.
    pub cost_per_set: BTreeMap<String, CostPerSet>,
    /// Gene sets for which an LLM method produced no readable name (each scored 0), by method key.
    pub no_answer: BTreeMap<String, usize>,
    /// Unknown gene symbols in all evaluated sets (reported per set in the records, and skipped).
    pub unknown_genes: usize,
    /// Gene sets with at least one unknown symbol.
    pub gene_sets_with_unknown_genes: usize,
    /// The journal, when resumable.
    pub journal: Option<PathBuf>,
    /// Gene sets answered from the journal instead of run again.
    pub resumed: usize,
    /// The paper's numbers, for comparison (different model and embedder).
    pub reference: Reference,
    /// Per gene set records, in row order.
    pub records: Vec<GeneSetRecord>,
}

/// Scores several names against the gold in one embedding call.
fn score_many(res: &Resources, names: &[&str], gold: &str) -> Result<Vec<Score>> {
    let mut texts: Vec<&str> = names.to_vec();
    texts.push(gold);
    let v = res.embedder.embed(&texts)?;
    let g = &v[names.len()];
    Ok(names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            if n.trim().is_empty() {
                return Score::NONE;
            }
            let c = cosine(&v[i], g);
            Score {
                cosine: c as f64,
                percentile: res.index.percentile(&v[i], c),
            }
        })
        .collect())
}

fn gsea_outcome(
    res: &Resources,
    genes: &[usize],
    set: &GeneSet,
    opts: &EnrichOptions,
) -> Result<Outcome> {
    let e = enrichment::enrich(&res.ontology, &res.annotations, genes, opts)?;
    let names: Vec<&str> = e.terms.iter().map(|t| t.name.as_str()).collect();
    let scores = score_many(res, &names, &set.name)?;
    let best = scores
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.cosine.total_cmp(&b.1.cosine))
        .map(|(i, s)| (names[i].to_string(), *s));
    let (prediction, score) = best.clone().unwrap_or((String::new(), Score::NONE));
    Ok(Outcome {
        prediction,
        score,
        best: None,
        cost: Cost::default(),
        detail: serde_json::json!({
            "query_size": e.query_size, "tested": e.tested, "excluded": opts.exclude.len(),
            "top": e.terms.iter().map(|t| serde_json::json!({
                "id": t.id, "name": t.name, "overlap": t.overlap, "term_size": t.term_size,
                "p_value": t.p_value, "q_value": t.q_value})).collect::<Vec<_>>(),
        }),
    })
}

/// Runs every requested method on one gene set.
pub fn evaluate_set(
    index: usize,
    set: &GeneSet,
    res: &Resources,
    methods: &[Method],
    model: Option<&dyn ChatModel>,
    cfg: &BioEvalConfig,
    examples: &[Example],
) -> Result<GeneSetRecord> {
    let r = res.annotations.resolve(&set.genes);
    let mut outcomes = BTreeMap::new();
    let need_model =
        || model.ok_or_else(|| BioError::invalid("an LLM method needs a chat backend"));
    for &m in methods {
        match m {
            Method::Gsea => {
                outcomes.insert(
                    "gsea".into(),
                    gsea_outcome(res, &r.genes, set, &cfg.enrich)?,
                );
                let mut ex = cfg.enrich.clone();
                if let Some(t) = res.ontology.find(&set.go_id) {
                    ex.exclude.extend(enrichment::same_gene_terms(
                        &res.annotations,
                        &res.ontology,
                        t,
                    ));
                }
                let mut q: Vec<u32> = r
                    .genes
                    .iter()
                    .filter(|&&g| res.annotations.is_annotated(g))
                    .map(|&g| g as u32)
                    .collect();
                q.sort_unstable();
                if !q.is_empty() {
                    ex.exclude.extend(
                        (0..res.ontology.len())
                            .filter(|&t| res.annotations.term_genes(t) == q.as_slice()),
                    );
                }
                ex.exclude.sort_unstable();
                ex.exclude.dedup();
                outcomes.insert(
                    "gsea_excluding_gold".into(),
                    gsea_outcome(res, &r.genes, set, &ex)?,
                );
            }
            Method::Baseline(b) => {
                if r.symbols.is_empty() {
                    outcomes.insert(m.key().into(), empty_outcome());
                    continue;
                }
                let a = baselines::run(b, &r.symbols, examples, need_model()?)?;
                let s = score_many(res, &[&a.name], &set.name)?[0];
                outcomes.insert(
                    m.key().into(),
                    Outcome {
                        prediction: a.name,
                        score: s,
                        best: None,
                        cost: a.cost,
                        detail: serde_json::json!({ "reply": a.reply }),
                    },
                );
            }
            Method::ThoughtGraph => {
                if r.symbols.is_empty() {
                    outcomes.insert(m.key().into(), empty_outcome());
                    continue;
                }
                let g = thought_graph::run(
                    &cfg.thought_graph,
                    &r.symbols,
                    need_model()?,
                    res.embedder.as_ref(),
                    &res.ontology,
                    &res.index,
                )?;
                let mut names: Vec<&str> = vec![&g.final_name];
                names.extend(g.nodes.iter().map(|n| n.name.as_str()));
                let scores = score_many(res, &names, &set.name)?;
                let best = (1..names.len())
                    .max_by(|&a, &b| scores[a].cosine.total_cmp(&scores[b].cosine))
                    .map(|i| (names[i].to_string(), scores[i]));
                outcomes.insert(
                    m.key().into(),
                    Outcome {
                        prediction: g.final_name.clone(),
                        score: scores[0],
                        best: Some(best.unwrap_or((String::new(), Score::NONE))),
                        cost: g.cost,
                        detail: serde_json::to_value(&g).map_err(tessera_core::Error::from)?,
                    },
                );
            }
        }
    }
    Ok(GeneSetRecord {
        index,
        go_id: set.go_id.clone(),
        gold: set.name.clone(),
        genes: set.genes.len(),
        unknown: r.unknown,
        outcomes,
    })
}

fn empty_outcome() -> Outcome {
    Outcome {
        prediction: String::new(),
        score: Score::NONE,
        best: None,
        cost: Cost::default(),
        detail: serde_json::json!({ "skipped": "no known gene" }),
    }
}

/// Runs the evaluation, loading the data and backend named in `cfg`.
pub fn run(cfg: &BioEvalConfig) -> Result<BioEvalResult> {
    validate(cfg)?;
    let paths = match &cfg.data {
        Some(p) => p.clone(),
        None => DataPaths::from_assets(cfg.offline)?,
    };
    let res = Resources::load(&paths, cfg.offline)?;
    let model = if cfg.methods.iter().any(|m| m.uses_llm()) {
        Some(tessera_llm::spec::open(&cfg.backend, cfg.offline)?)
    } else {
        None
    };
    run_with(cfg, &res, model.as_deref())
}

/// Runs the evaluation on loaded resources and an optional backend (needed by the LLM methods).
pub fn run_with(
    cfg: &BioEvalConfig,
    res: &Resources,
    model: Option<&dyn ChatModel>,
) -> Result<BioEvalResult> {
    validate(cfg)?;
    let path = match &cfg.gene_sets {
        Some(p) => p.clone(),
        None => tessera_core::assets::resolve_data(data::DEFAULT_GENE_SETS)?,
    };
    let sets = data::read_gene_sets(&path)?;
    let wants_few = cfg.methods.contains(&Method::Baseline(Baseline::FewShot));
    let k = if wants_few {
        cfg.few_shot_examples.max(1)
    } else {
        0
    };
    if k >= sets.len() {
        return Err(BioError::invalid(format!(
            "{} gene sets leave none to evaluate after {k} few-shot examples",
            sets.len()
        )));
    }
    let evaluable = sets.len() - k;
    let examples: Vec<Example> = sets[evaluable..]
        .iter()
        .map(|s| Example {
            genes: s.genes.clone(),
            name: s.name.clone(),
        })
        .collect();
    if cfg.offset >= evaluable {
        return Err(BioError::invalid(format!(
            "offset {} is past the {evaluable} evaluable gene sets",
            cfg.offset
        )));
    }
    let end = cfg.offset.saturating_add(cfg.limit).min(evaluable);
    let mut methods = cfg.methods.clone();
    methods.sort();
    methods.dedup();
    let (journal, mut done) = match &cfg.out {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| tessera_core::Error::io(dir, e))?;
            let settings = Settings {
                gene_sets: path.display().to_string(),
                data: cfg.data.as_ref(),
                methods: &methods,
                backend: &cfg.backend,
                thought_graph: &cfg.thought_graph,
                enrich: &cfg.enrich,
                few_shot_examples: k,
            };
            tessera_core::journal::check_settings(&dir.join("settings.json"), &settings)?;
            let (j, recs) =
                tessera_core::journal::Journal::open::<GeneSetRecord>(dir.join("records.jsonl"))?;
            (Some(j), recs)
        }
        None => (None, Vec::new()),
    };
    done.retain(|r| (cfg.offset..end).contains(&r.index));
    let mut by_index: BTreeMap<usize, GeneSetRecord> =
        done.into_iter().map(|r| (r.index, r)).collect();
    let resumed = by_index.len();
    let quiet = std::env::var_os("TESSERA_QUIET").is_some();
    for (i, set) in sets.iter().enumerate().take(end).skip(cfg.offset) {
        if by_index.contains_key(&i) {
            continue;
        }
        let t0 = std::time::Instant::now();
        let rec = evaluate_set(i, set, res, &methods, model, cfg, &examples)?;
        if let Some(j) = &journal {
            j.append(&rec)?;
        }
        if !quiet {
            eprintln!(
                "tessera bio eval: [{}/{}] {} `{}` in {:.1}s",
                i + 1 - cfg.offset,
                end - cfg.offset,
                rec.go_id,
                rec.gold,
                t0.elapsed().as_secs_f64()
            );
        }
        by_index.insert(i, rec);
    }
    let records: Vec<GeneSetRecord> = by_index.into_values().collect();
    Ok(summarise(
        cfg,
        &methods,
        model,
        records,
        journal.map(|j| j.path().to_path_buf()),
        resumed,
    ))
}

fn validate(cfg: &BioEvalConfig) -> Result<()> {
    if cfg.methods.is_empty() {
        return Err(BioError::invalid("no methods to run"));
    }
    if cfg.limit == 0 {
        return Err(BioError::invalid("limit must be at least 1"));
    }
    if !(cfg.enrich.top >= 1 && cfg.enrich.alpha > 0.0 && cfg.enrich.alpha <= 1.0) {
        return Err(BioError::invalid(
            "enrichment needs top >= 1 and alpha in (0, 1]",
        ));
    }
    cfg.thought_graph.validate()
}

fn mean(xs: impl Iterator<Item = f64>) -> Option<f64> {
    let (mut s, mut n) = (0.0, 0usize);
    for x in xs {
        s += x;
        n += 1;
    }
    (n > 0).then(|| s / n as f64)
}

fn summarise(
    cfg: &BioEvalConfig,
    methods: &[Method],
    model: Option<&dyn ChatModel>,
    records: Vec<GeneSetRecord>,
    journal: Option<PathBuf>,
    resumed: usize,
) -> BioEvalResult {
    let outs = |key: &str| -> Vec<&Outcome> {
        records.iter().filter_map(|r| r.outcomes.get(key)).collect()
    };
    let m = |key: &str, f: fn(&Outcome) -> f64| mean(outs(key).into_iter().map(f));
    let cos = |o: &Outcome| o.score.cosine;
    let pct = |o: &Outcome| o.score.percentile;
    let best_cos = |o: &Outcome| o.best.as_ref().map_or(0.0, |b| b.1.cosine);
    let best_pct = |o: &Outcome| o.best.as_ref().map_or(0.0, |b| b.1.percentile);
    let mut cost_per_set = BTreeMap::new();
    let mut no_answer = BTreeMap::new();
    for k in ["zero_shot", "few_shot", "cot", "thought_graph"] {
        let o = outs(k);
        if o.is_empty() {
            continue;
        }
        no_answer.insert(
            k.to_string(),
            o.iter().filter(|x| x.prediction.trim().is_empty()).count(),
        );
        let n = o.len() as f64;
        let sum = |f: fn(&Cost) -> usize| o.iter().map(|x| f(&x.cost) as f64).sum::<f64>() / n;
        cost_per_set.insert(
            k.to_string(),
            CostPerSet {
                calls: sum(|c| c.calls),
                completions: sum(|c| c.completions),
                prompt_tokens: sum(|c| c.prompt_tokens),
                completion_tokens: sum(|c| c.completion_tokens),
            },
        );
    }
    BioEvalResult {
        gene_sets: records.len(),
        offset: cfg.offset,
        methods: methods.iter().map(|m| m.to_string()).collect(),
        backend: model.map(|m| m.name()),
        embedder: format!(
            "{} (SapBERT is not obtainable here)",
            tessera_embed::DEFAULT_MODEL
        ),
        samples: cfg.thought_graph.samples,
        gsea_cosine: m("gsea", cos),
        gsea_percentile: m("gsea", pct),
        gsea_no_enrichment: methods.contains(&Method::Gsea).then(|| {
            outs("gsea")
                .iter()
                .filter(|o| o.prediction.is_empty())
                .count()
        }),
        gsea_cosine_excluding_gold: m("gsea_excluding_gold", cos),
        gsea_percentile_excluding_gold: m("gsea_excluding_gold", pct),
        zero_shot_cosine: m("zero_shot", cos),
        zero_shot_percentile: m("zero_shot", pct),
        few_shot_cosine: m("few_shot", cos),
        few_shot_percentile: m("few_shot", pct),
        cot_cosine: m("cot", cos),
        cot_percentile: m("cot", pct),
        thought_graph_cosine: m("thought_graph", cos),
        thought_graph_percentile: m("thought_graph", pct),
        thought_graph_best_cosine: m("thought_graph", best_cos),
        thought_graph_best_percentile: m("thought_graph", best_pct),
        cost_per_set,
        no_answer,
        unknown_genes: records.iter().map(|r| r.unknown.len()).sum(),
        gene_sets_with_unknown_genes: records.iter().filter(|r| !r.unknown.is_empty()).count(),
        journal,
        resumed,
        reference: REFERENCE,
        records,
    }
}
