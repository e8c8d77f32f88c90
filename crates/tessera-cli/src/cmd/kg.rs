//! `tessera kg` glue: argument parsing only; the work is in `tessera-kg`.
use super::{emit, Ctx};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use tessera_kg::adqa::Subset;
use tessera_kg::construct::{BuildConfig, BuildMode};
use tessera_kg::dalk::{DalkConfig, RerankMode, Scoring};
use tessera_kg::encoder::EncoderKind;
use tessera_kg::eval::KgEvalConfig;
use tessera_kg::store::KgFormat;

/// `tessera kg` subcommands.
#[derive(Subcommand)]
pub enum KgCmd {
    /// Import triples (TSV `head<TAB>relation<TAB>tail` or JSONL) into a database.
    Import(ImportArgs),
    /// Export every triple of a database as TSV or JSONL.
    Export(ExportArgs),
    /// Build a graph from literature with an LLM (pair-wise or generative extraction); resumable.
    Build(BuildArgs),
    /// Answer one question with DALK: linked entities, evidence, reranked facts, answer.
    Ask(AskArgs),
    /// ADQA accuracy of no-KG, KG without reranking and DALK, with retrieval recall; resumable.
    Eval(EvalArgs),
}

/// `tessera kg import`.
#[derive(Args)]
pub struct ImportArgs {
    /// The triple file.
    pub file: PathBuf,
    /// The database (created when missing).
    #[arg(long)]
    pub db: PathBuf,
    /// tsv or jsonl (default: from the extension).
    #[arg(long)]
    pub format: Option<KgFormat>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `tessera kg export`.
#[derive(Args)]
pub struct ExportArgs {
    /// The output file.
    pub file: PathBuf,
    /// The database.
    #[arg(long)]
    pub db: PathBuf,
    /// tsv or jsonl (default: from the extension).
    #[arg(long)]
    pub format: Option<KgFormat>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Retrieval options shared by `ask` and `eval`.
#[derive(Args, Clone)]
pub struct RetrievalOpts {
    /// Chat backend: local:NAME, openai:URL#MODEL, replay:PATH or script:PATH.
    #[arg(long, default_value = "local:smollm2-135m")]
    pub backend: String,
    /// letter (DALK's two-step chain of thought) or loglik (option log-likelihoods).
    #[arg(long, default_value = "letter")]
    pub scoring: Scoring,
    /// rerank (keep the k most useful facts) or filter (drop the noisy ones).
    #[arg(long, default_value = "rerank")]
    pub rerank: RerankMode,
    /// Facts kept by self-aware retrieval.
    #[arg(long, default_value_t = 5)]
    pub k: usize,
    /// Keywords less similar than this to every entity stay unlinked (0 = always link).
    #[arg(long, default_value_t = 0.5)]
    pub min_link_similarity: f32,
    /// Chain-of-thought token budget.
    #[arg(long, default_value_t = 160)]
    pub cot_tokens: usize,
    /// minilm or hash (character trigrams, no model files).
    #[arg(long, default_value = "minilm")]
    pub encoder: EncoderKind,
}

impl RetrievalOpts {
    fn dalk(&self) -> DalkConfig {
        DalkConfig {
            k: self.k,
            min_link_similarity: self.min_link_similarity,
            rerank: self.rerank,
            scoring: self.scoring,
            cot_tokens: self.cot_tokens,
            ..DalkConfig::default()
        }
    }
}

/// `tessera kg build`.
#[derive(Args)]
pub struct BuildArgs {
    /// Folder of .txt/.md files (default: the four AD articles of ADQA's QA4MRE subset).
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// The database (created when missing; finished passages are skipped on a rerun).
    #[arg(long)]
    pub db: PathBuf,
    /// pair (typed entity pairs, multiple-choice relations) or generative (`head | relation | tail` lines).
    #[arg(long, default_value = "generative")]
    pub mode: BuildMode,
    /// Chat backend: local:NAME, openai:URL#MODEL, replay:PATH or script:PATH.
    #[arg(long, default_value = "local:smollm2-135m")]
    pub backend: String,
    /// Entity list for pair mode (`name<TAB>gene|compound|disease`); default: an LLM NER pass.
    #[arg(long)]
    pub entities: Option<PathBuf>,
    /// Only the first N passages.
    #[arg(long)]
    pub max_passages: Option<usize>,
    /// Characters per passage.
    #[arg(long, default_value_t = 1000)]
    pub passage_chars: usize,
    /// Entity pairs classified per passage (pair mode).
    #[arg(long, default_value_t = 12)]
    pub max_pairs: usize,
    /// Passages processed at once.
    #[arg(long, default_value_t = 2)]
    pub concurrency: usize,
    /// Merge entities whose embedding cosine exceeds this (1 disables).
    #[arg(long, default_value_t = 0.95)]
    pub merge_threshold: f32,
    /// minilm or hash.
    #[arg(long, default_value = "minilm")]
    pub encoder: EncoderKind,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `tessera kg ask`.
#[derive(Args)]
pub struct AskArgs {
    /// The question.
    pub question: String,
    /// The database.
    #[arg(long)]
    pub db: PathBuf,
    /// An answer option (repeat for each; none: a free-text answer).
    #[arg(long = "option")]
    pub options: Vec<String>,
    #[command(flatten)]
    pub opts: RetrievalOpts,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `tessera kg eval`.
#[derive(Args)]
pub struct EvalArgs {
    /// The database.
    #[arg(long)]
    pub db: PathBuf,
    /// At most N questions, round-robin over the subsets.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Subsets (comma-separated: medqa, medmcqa, mmlu, qa4mre; default all).
    #[arg(long, value_delimiter = ',')]
    pub subsets: Vec<Subset>,
    /// Folder of the ADQA files (default: dalk/result_filter in the shared data).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Output folder (transcript and checkpoint; default `<db>.eval-<scoring>`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub opts: RetrievalOpts,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Runs a `tessera kg` subcommand.
pub fn run(ctx: &Ctx, c: KgCmd) -> anyhow::Result<()> {
    match c {
        KgCmd::Import(a) => emit(a.json, &tessera_kg::import(&a.db, &a.file, a.format)?),
        KgCmd::Export(a) => emit(a.json, &tessera_kg::export(&a.db, &a.file, a.format)?),
        KgCmd::Build(a) => {
            let mut cfg = BuildConfig::new(&a.db, &a.backend);
            cfg.corpus = a.corpus;
            cfg.mode = a.mode;
            cfg.entities = a.entities;
            cfg.max_passages = a.max_passages;
            cfg.passage_chars = a.passage_chars;
            cfg.max_pairs = a.max_pairs;
            cfg.concurrency = a.concurrency;
            cfg.merge_threshold = (a.merge_threshold < 1.0).then_some(a.merge_threshold);
            cfg.encoder = a.encoder;
            cfg.offline = ctx.offline;
            let r = tessera_kg::construct::build(&cfg, |i, n| {
                eprintln!("tessera kg build: {i}/{n} passages")
            })?;
            emit(a.json, &r)
        }
        KgCmd::Ask(a) => {
            let cfg = tessera_kg::AskConfig {
                db: a.db,
                backend: a.opts.backend.clone(),
                question: a.question,
                options: a.options,
                encoder: a.opts.encoder,
                dalk: a.opts.dalk(),
                offline: ctx.offline,
            };
            emit(a.json, &tessera_kg::ask(&cfg)?)
        }
        KgCmd::Eval(a) => {
            let out = a
                .out
                .unwrap_or_else(|| KgEvalConfig::default_out(&a.db, a.opts.scoring));
            let cfg = KgEvalConfig {
                db: a.db,
                data_dir: a.data,
                subsets: a.subsets,
                limit: a.limit,
                backend: a.opts.backend.clone(),
                encoder: a.opts.encoder,
                dalk: a.opts.dalk(),
                out,
                offline: ctx.offline,
            };
            let r = tessera_kg::eval::run(&cfg, |i, n| {
                eprintln!("tessera kg eval: {i}/{n} questions")
            })?;
            emit(a.json, &r)
        }
    }
}

/// The tour section.
pub fn tour(
    ctx: &Ctx,
    dir: &tessera_core::record::RunDir,
) -> anyhow::Result<Option<crate::tour::Section>> {
    Ok(Some(tessera_kg::tour::tour(dir, ctx.offline)?))
}
