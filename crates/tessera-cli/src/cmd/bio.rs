//! `tessera bio` glue: argument parsing only; the work is in `tessera-bio`.
use super::{emit, Ctx};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use tessera_bio::data::DataPaths;
use tessera_bio::{BioEvalConfig, Method, NameConfig, ThoughtGraphConfig};

/// `tessera bio` subcommands.
#[derive(Subcommand)]
pub enum BioCmd {
    /// Name one gene set with the Thought Graph (prints the name and the graph).
    Name(NameArgs),
    /// Evaluate every method on the first gene sets of the Thought Graph table.
    Eval(EvalArgs),
    /// Time the Thought Graph's s samples as one request (n = s, one batch) against s single requests.
    BenchSamples(BenchArgs),
}

/// `tessera bio bench-samples` arguments.
#[derive(Args)]
pub struct BenchArgs {
    /// Chat backend.
    #[arg(long, default_value = "local:smollm2-135m")]
    pub backend: String,
    /// Gene symbols in the prompt, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "OGG1,ERCC5,XPA,ERCC4,NTHL1"
    )]
    pub genes: Vec<String>,
    /// Samples s.
    #[arg(long, default_value_t = 15)]
    pub samples: usize,
    /// Token limit per sample.
    #[arg(long, default_value_t = 48)]
    pub max_tokens: usize,
    /// Repetitions (best time kept).
    #[arg(long, default_value_t = 1)]
    pub repeats: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Data and Thought Graph options shared by both subcommands.
#[derive(Args)]
pub struct Common {
    /// Chat backend: local:NAME_OR_PATH, openai:URL#MODEL or replay:PATH.
    #[arg(long, default_value = "local:smollm2-135m")]
    pub backend: String,
    /// GO ontology: GO.sqlite or an .obo file (default: the go-db asset).
    #[arg(long, requires = "annotations")]
    pub ontology: Option<PathBuf>,
    /// Gene annotations: org.Hs.eg.sqlite or a .gaf file (default: the org-hs-eg-db asset).
    #[arg(long, requires = "ontology")]
    pub annotations: Option<PathBuf>,
    /// Thought Graph layers.
    #[arg(long, default_value_t = 5)]
    pub layers: usize,
    /// Thought Graph samples per parent (one request with n = samples).
    #[arg(long, default_value_t = 15)]
    pub samples: usize,
    /// Voting samples per layer.
    #[arg(long, default_value_t = 5)]
    pub voters: usize,
    /// Samples of the final pick (default: --samples).
    #[arg(long)]
    pub final_samples: Option<usize>,
    /// Stop expanding a node the model rates at least this specific (1-10).
    #[arg(long)]
    pub stop_specificity: Option<u8>,
    /// Token limit of one Thought Graph proposal.
    #[arg(long, default_value_t = 96)]
    pub max_tokens: usize,
    /// Sampling seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl Common {
    fn graph(&self) -> ThoughtGraphConfig {
        ThoughtGraphConfig {
            layers: self.layers,
            samples: self.samples,
            voters: self.voters,
            final_samples: self.final_samples.unwrap_or(self.samples),
            stop_specificity: self.stop_specificity,
            seed: self.seed,
            max_tokens: self.max_tokens,
            ..ThoughtGraphConfig::default()
        }
    }

    fn data(&self) -> Option<DataPaths> {
        Some(DataPaths {
            ontology: self.ontology.clone()?,
            annotations: self.annotations.clone()?,
        })
    }
}

/// `tessera bio name` arguments.
#[derive(Args)]
pub struct NameArgs {
    /// Gene symbols, comma-separated (unknown ones are reported and skipped).
    #[arg(long, value_delimiter = ',', required = true)]
    pub genes: Vec<String>,
    /// Also draw the graph as an SVG file.
    #[arg(long)]
    pub svg: Option<PathBuf>,
    #[command(flatten)]
    pub common: Common,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `tessera bio eval` arguments.
#[derive(Args)]
pub struct EvalArgs {
    /// Gene sets evaluated.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// First gene set evaluated.
    #[arg(long, default_value_t = 0)]
    pub offset: usize,
    /// Methods, comma-separated: gsea, zero-shot, few-shot, cot, thought-graph.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "gsea,zero-shot,few-shot,cot,thought-graph"
    )]
    pub methods: Vec<Method>,
    /// Gene-set CSV (default: shared/data/thought_graph/1000_selected_go_terms.csv).
    #[arg(long)]
    pub gene_sets: Option<PathBuf>,
    /// Over-representation: significance threshold on the BH-adjusted p-value.
    #[arg(long, default_value_t = 0.05)]
    pub alpha: f64,
    /// Over-representation: terms scored per gene set.
    #[arg(long, default_value_t = 15)]
    pub top: usize,
    /// Folder for the per-gene-set journal; a rerun with the same folder resumes.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub common: Common,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Runs `tessera bio ...`.
pub fn run(ctx: &Ctx, c: BioCmd) -> anyhow::Result<()> {
    match c {
        BioCmd::Name(a) => name(ctx, a),
        BioCmd::Eval(a) => eval(ctx, a),
        BioCmd::BenchSamples(a) => bench(ctx, a),
    }
}

fn bench(ctx: &Ctx, a: BenchArgs) -> anyhow::Result<()> {
    let model = tessera_llm::spec::open(&a.backend, ctx.offline)?;
    let r = tessera_bio::bench::bench_samples(
        model.as_ref(),
        &a.genes,
        a.samples,
        a.max_tokens,
        a.repeats,
    )?;
    emit(a.json, &r)
}

fn name(ctx: &Ctx, a: NameArgs) -> anyhow::Result<()> {
    let r = tessera_bio::name(&NameConfig {
        genes: a.genes,
        backend: a.common.backend.clone(),
        thought_graph: a.common.graph(),
        data: a.common.data(),
        offline: ctx.offline,
    })?;
    if let Some(p) = &a.svg {
        r.write_svg(p)?;
    }
    emit(a.json, &r)
}

fn eval(ctx: &Ctx, a: EvalArgs) -> anyhow::Result<()> {
    let r = tessera_bio::eval::run(&BioEvalConfig {
        gene_sets: a.gene_sets,
        data: a.common.data(),
        limit: a.limit,
        offset: a.offset,
        methods: a.methods,
        backend: a.common.backend.clone(),
        thought_graph: a.common.graph(),
        enrich: tessera_bio::enrichment::EnrichOptions {
            alpha: a.alpha,
            top: a.top,
            ..Default::default()
        },
        out: a.out,
        offline: ctx.offline,
        ..BioEvalConfig::default()
    })?;
    emit(a.json, &r)
}

/// The `bio` section of `tessera tour`.
pub fn tour(
    ctx: &Ctx,
    dir: &tessera_core::record::RunDir,
) -> anyhow::Result<Option<tessera_core::report::TourSection>> {
    Ok(Some(tessera_bio::tour::tour(dir, ctx.offline)?))
}
