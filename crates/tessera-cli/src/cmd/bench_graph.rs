//! `tessera bench graph` glue: argument parsing only; the benchmark is `tessera_graph::run::bench`.
use super::Ctx;
use clap::Args;
use tessera_core::record::RunDir;
use tessera_graph::data::SbmConfig;
use tessera_graph::experiment::BenchConfig;
use tessera_graph::gnn::{ModelKind, TrainConfig};
use tessera_graph::mog::{FinalStage, MogConfig};
use tessera_graph::run;

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
    /// Criteria of the experts (experts = criteria × levels; `agreement` is the opt-in fifth criterion).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "jaccard,degree,eff_resistance,grad_magnitude"
    )]
    pub criteria: Vec<tessera_graph::criteria::Criterion>,
    /// Experts per node.
    #[arg(long, default_value_t = 2)]
    pub top_k: usize,
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
    /// Run directory (default `runs/bench-graph-<time>`); a rerun with the same `--out` resumes from its
    /// `seeds.jsonl` (finished seeds are not trained again; other settings are refused).
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Runs `tessera bench graph`.
pub fn bench(_ctx: &Ctx, a: BenchGraphArgs) -> anyhow::Result<()> {
    let cfg = BenchConfig {
        sbm: SbmConfig::from_spec(&run::sbm_spec(a.nodes, a.degree, &a.sbm))?,
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
            criteria: a.criteria.clone(),
            top_k: a.top_k,
            ..MogConfig::default()
        },
        scaling_nodes: run::parse_scaling(&a.scaling)?,
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
