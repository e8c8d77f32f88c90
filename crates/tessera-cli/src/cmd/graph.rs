//! `tessera graph` glue: argument parsing only; the work is in `tessera-graph`.
use super::Ctx;
use clap::{Args, Subcommand};
use tessera_core::record::RunDir;
use tessera_graph::experiment::MogExperiment;
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
    cfg.extra_level_sets = run::parse_curve(&a.curve)?;
    cfg.baseline_keeps = run::parse_keep_list(&a.baselines)?;
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

/// The tour's section: a small MoG run on Cora (one seed, GCN, baselines at keep 0.5).
pub fn tour(_ctx: &Ctx, dir: &RunDir) -> anyhow::Result<Option<crate::tour::Section>> {
    let s = run::tour(dir)?;
    Ok(Some(crate::tour::Section {
        title: s.title,
        report: s.report,
        json: s.json,
    }))
}
