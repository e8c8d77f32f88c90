//! `tessera graph` glue: argument parsing only; the work is in `tessera-graph`.
use super::Ctx;
use anyhow::Context;
use clap::{Args, Subcommand};
use tessera_core::record::RunDir;
use tessera_graph::data::SbmConfig;
use tessera_graph::experiment::{BenchConfig, MogExperiment};
use tessera_graph::gnn::{ModelKind, TrainConfig};
use tessera_graph::mog::{FinalStage, MogConfig};
use tessera_graph::run;

/// `tessera graph` subcommands.
#[derive(Subcommand)]
pub enum GraphCmd {
    /// Train one GNN on the full graph.
    Train(TrainArgs),
    /// MoG vs dense, random and single-criterion sparsifiers over seeds.
    Mog(MogArgs),
}

/// Shared training options.
#[derive(Args, Clone)]
pub struct TrainOpts {
    /// Hidden width.
    #[arg(long, default_value_t = 64)]
    pub hidden: usize,
    /// Epoch limit.
    #[arg(long, default_value_t = 200)]
    pub epochs: usize,
    /// Early-stopping patience (epochs without a better validation accuracy).
    #[arg(long, default_value_t = 50)]
    pub patience: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 0.01)]
    pub lr: f64,
    /// Worker threads (default: 1 for graphs under 50k nodes, all cores otherwise).
    #[arg(long)]
    pub threads: Option<usize>,
}

impl TrainOpts {
    fn config(&self) -> TrainConfig {
        TrainConfig {
            hidden: self.hidden,
            max_epochs: self.epochs,
            patience: self.patience,
            lr: self.lr,
            ..TrainConfig::default()
        }
    }
}

/// `tessera graph train`.
#[derive(Args)]
pub struct TrainArgs {
    /// cora, citeseer, cora-gds (Cora from the graphdatascience Parquet files) or sbm:N[:DEGREE[:key=value,…]].
    #[arg(long, default_value = "cora")]
    pub dataset: String,
    /// gcn, sage or gin.
    #[arg(long, default_value = "gcn")]
    pub model: ModelKind,
    /// Seed (split, initialisation, dropout).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub opts: TrainOpts,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `tessera graph mog`.
#[derive(Args)]
pub struct MogArgs {
    /// cora, citeseer, cora-gds (Cora from the graphdatascience Parquet files) or sbm:N[:DEGREE[:key=value,…]].
    #[arg(long, default_value = "cora")]
    pub dataset: String,
    /// gcn, sage or gin.
    #[arg(long, default_value = "gcn")]
    pub model: ModelKind,
    /// Number of seeds.
    #[arg(long, default_value_t = 5)]
    pub seeds: u64,
    /// Expert keep levels of the headline run.
    #[arg(long, value_delimiter = ',', default_value = "0.7,0.5,0.3")]
    pub levels: Vec<f64>,
    /// Extra level sets for the accuracy-vs-sparsity curve, e.g. `0.9/0.7/0.5,0.5/0.3/0.2` (`none` for none).
    #[arg(long, default_value = "0.9/0.7/0.5,0.5/0.3/0.2,0.3/0.2/0.1")]
    pub curve: String,
    /// Global keep ratios of the baselines (`none` for none).
    #[arg(long, default_value = "0.7,0.5,0.3")]
    pub baselines: String,
    /// Skip the score-averaging ablation.
    #[arg(long)]
    pub no_ablation: bool,
    /// Add the label oracle to the baselines (diagnostic: it reads test labels).
    #[arg(long)]
    pub oracle: bool,
    /// Experts per node.
    #[arg(long, default_value_t = 2)]
    pub top_k: usize,
    /// Grassmann distance weight β.
    #[arg(long, default_value_t = 1.0)]
    pub beta: f64,
    /// Criteria of the experts (experts = criteria × levels).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "jaccard,degree,eff_resistance,grad_magnitude"
    )]
    pub criteria: Vec<tessera_graph::criteria::Criterion>,
    /// Weight λ of the router's load-balancing loss (CV² of importance and load).
    #[arg(long, default_value_t = 1e-2)]
    pub balance_weight: f64,
    /// Recompute the sparse structure every this many epochs.
    #[arg(long, default_value_t = 10)]
    pub refresh: usize,
    /// After joint training: `joint` (keep the best joint epoch), `finetune` (re-sparsify with the final router,
    /// fine-tune the GNN on it) or `retrain` (re-sparsify, train a fresh GNN on it).
    #[arg(long, default_value = "joint")]
    pub final_stage: FinalStage,
    /// Epoch limit of the fine-tune.
    #[arg(long, default_value_t = 50)]
    pub finetune_epochs: usize,
    #[command(flatten)]
    pub opts: TrainOpts,
    /// Run directory for result.json, report.md and the plot (default `runs/graph-mog-<time>`).
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

fn parse_list(s: &str) -> anyhow::Result<Vec<f64>> {
    if s == "none" || s.is_empty() {
        return Ok(Vec::new());
    }
    s.split([',', '/'])
        .map(|v| {
            v.trim()
                .parse::<f64>()
                .with_context(|| format!("bad number {v:?}"))
        })
        .collect()
}

/// Runs a `tessera graph` subcommand.
pub fn run(_ctx: &Ctx, cmd: GraphCmd) -> anyhow::Result<()> {
    match cmd {
        GraphCmd::Train(a) => train(a),
        GraphCmd::Mog(a) => mog(a),
    }
}

fn train(a: TrainArgs) -> anyhow::Result<()> {
    let out = run::train(&run::TrainRun {
        dataset: a.dataset.clone(),
        model: a.model,
        seed: a.seed,
        train: a.opts.config(),
        threads: a.opts.threads,
    })?;
    if a.json {
        super::print_json(&serde_json::to_value(&out)?);
    } else {
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(())
}

fn mog(a: MogArgs) -> anyhow::Result<()> {
    let mut cfg = MogExperiment::new(&a.dataset, a.model);
    cfg.seeds = a.seeds;
    cfg.train = a.opts.config();
    cfg.mog = MogConfig {
        keep_levels: a.levels.clone(),
        top_k: a.top_k,
        beta: a.beta,
        refresh_every: a.refresh,
        criteria: a.criteria.clone(),
        balance_weight: a.balance_weight,
        final_stage: a.final_stage,
        finetune_epochs: a.finetune_epochs,
        ..MogConfig::default()
    };
    cfg.extra_level_sets = if a.curve == "none" {
        Vec::new()
    } else {
        a.curve
            .split(',')
            .map(parse_list)
            .collect::<anyhow::Result<_>>()?
    };
    cfg.baseline_keeps = parse_list(&a.baselines)?;
    cfg.ablation = !a.no_ablation;
    cfg.oracle = a.oracle;
    let dir = match &a.out {
        Some(p) => RunDir::at(p)?,
        None => RunDir::fresh("runs", "graph-mog")?,
    };
    let out = run::mog(&cfg, &dir, a.opts.threads, &mut |r| {
        eprintln!(
            "seed {} {:>18} {:>12}: sparsity {:.3} test {:.4} ({:.1}s)",
            r.seed, r.method, r.level, r.sparsity, r.test_accuracy, r.train_seconds
        )
    })?;
    if out.resumed_runs > 0 {
        eprintln!(
            "tessera graph mog: resumed ({} runs were already done)",
            out.resumed_runs
        );
    }
    eprintln!("tessera graph mog: wrote {}", dir.path().display());
    if a.json {
        super::print_json(&serde_json::to_value(&out.summary)?);
    } else {
        println!("{}", out.report.as_markdown());
    }
    Ok(())
}

/// `tessera bench graph` arguments.
#[derive(Args)]
pub struct BenchGraphArgs {
    /// SBM nodes for the dense-vs-MoG comparison.
    #[arg(long, default_value_t = 100_000)]
    pub nodes: usize,
    /// Average degree.
    #[arg(long, default_value_t = 50.0)]
    pub degree: f64,
    /// gcn, sage or gin.
    #[arg(long, default_value = "gcn")]
    pub model: ModelKind,
    /// Node counts of the scaling curve (`none` to skip).
    #[arg(long, default_value = "10000,30000,100000,300000,1000000")]
    pub scaling: String,
    /// Expert keep levels.
    #[arg(long, value_delimiter = ',', default_value = "0.7,0.5,0.3")]
    pub levels: Vec<f64>,
    /// Recompute the MoG structure every this many epochs.
    #[arg(long, default_value_t = 20)]
    pub refresh: usize,
    /// After joint training: joint, finetune or retrain (see `graph mog --help`).
    #[arg(long, default_value = "joint")]
    pub final_stage: FinalStage,
    /// Interleaved timing repetitions after a warm-up (median and range reported).
    #[arg(long, default_value_t = 7)]
    pub reps: usize,
    /// Epoch limit.
    #[arg(long, default_value_t = 100)]
    pub epochs: usize,
    /// Early-stopping patience.
    #[arg(long, default_value_t = 20)]
    pub patience: usize,
    /// First seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Seeds `seed..seed + seeds` (each its own graph, split and initialisation).
    #[arg(long, default_value_t = 1)]
    pub seeds: u64,
    /// SBM generator options `key=value,…` (blocks, ratio, homophily, noise, label_noise, spread, dim; see
    /// crates/tessera-graph/README.md), or a full `sbm:N:DEGREE[:key=value,…]` spec overriding --nodes/--degree.
    #[arg(long, default_value = "")]
    pub sbm: String,
    /// Run directory (default `runs/bench-graph-<time>`).
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Runs `tessera bench graph`.
pub fn bench(_ctx: &Ctx, a: BenchGraphArgs) -> anyhow::Result<()> {
    let scaling = if a.scaling == "none" {
        Vec::new()
    } else {
        a.scaling
            .split(',')
            .map(|s| {
                s.trim()
                    .parse::<usize>()
                    .with_context(|| format!("bad node count {s:?}"))
            })
            .collect::<anyhow::Result<_>>()?
    };
    let spec = if a.sbm.starts_with("sbm:") {
        a.sbm.clone()
    } else {
        format!("sbm:{}:{}:{}", a.nodes, a.degree, a.sbm)
    };
    let cfg = BenchConfig {
        sbm: SbmConfig::from_spec(&spec)?,
        model: a.model,
        train: TrainConfig {
            max_epochs: a.epochs,
            patience: a.patience,
            ..TrainConfig::default()
        },
        mog: MogConfig {
            keep_levels: a.levels.clone(),
            refresh_every: a.refresh,
            final_stage: a.final_stage,
            ..MogConfig::default()
        },
        scaling_nodes: scaling,
        reps: a.reps,
        seed: a.seed,
        seeds: a.seeds,
    };
    let dir = match &a.out {
        Some(p) => RunDir::at(p)?,
        None => RunDir::fresh("runs", "bench-graph")?,
    };
    let out = run::bench(&cfg, &dir, &mut |s| eprintln!("bench graph: {s}"))?;
    if a.json {
        super::print_json(&serde_json::to_value(&out)?);
    } else {
        println!("{}", out.report.as_markdown());
    }
    Ok(())
}

/// The tour's section: a small MoG run on Cora (one seed, GCN, baselines at keep 0.5).
pub fn tour(_ctx: &Ctx, dir: &RunDir) -> anyhow::Result<Option<crate::tour::Section>> {
    let s = run::tour(dir)?;
    Ok(Some(crate::tour::Section {
        title: s.title,
        report: s.report,
        json: s.json,
    }))
}
