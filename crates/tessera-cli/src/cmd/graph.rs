//! `tessera graph` glue: argument parsing only; the work is in `tessera-graph`.
use super::Ctx;
use anyhow::Context;
use clap::{Args, Subcommand};
use std::sync::Arc;
use tessera_core::journal::Journal;
use tessera_core::record::RunDir;
use tessera_graph::data::Dataset;
use tessera_graph::experiment::{self, BenchConfig, MogExperiment};
use tessera_graph::gnn::{self, ModelKind, Propagation, TrainConfig};
use tessera_graph::mog::MogConfig;

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
    /// cora, citeseer, cora-gds (Cora from the graphdatascience Parquet files) or sbm:N[:DEGREE].
    #[arg(long, default_value = "cora")]
    pub dataset: String,
    /// gcn, sage or gin.
    #[arg(long, default_value = "gcn")]
    pub model: String,
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
    /// cora, citeseer, cora-gds (Cora from the graphdatascience Parquet files) or sbm:N[:DEGREE].
    #[arg(long, default_value = "cora")]
    pub dataset: String,
    /// gcn, sage or gin.
    #[arg(long, default_value = "gcn")]
    pub model: String,
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
    pub criteria: Vec<String>,
    /// Weight λ of the router's load-balancing loss (CV² of importance and load).
    #[arg(long, default_value_t = 1e-2)]
    pub balance_weight: f64,
    /// Recompute the sparse structure every this many epochs.
    #[arg(long, default_value_t = 10)]
    pub refresh: usize,
    #[command(flatten)]
    pub opts: TrainOpts,
    /// Run directory for result.json, report.md and the plot (default runs/graph-mog-<time>).
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

fn with_threads<T: Send>(
    threads: Option<usize>,
    nodes_hint: usize,
    f: impl FnOnce() -> T + Send,
) -> anyhow::Result<T> {
    let n = threads.unwrap_or(if nodes_hint < 50_000 { 1 } else { 0 });
    Ok(tessera_graph::with_threads(n, f)?)
}

fn nodes_hint(dataset: &str) -> usize {
    dataset.strip_prefix("sbm:").map_or(3000, |_| 1_000_000)
}

/// Runs a `tessera graph` subcommand.
pub fn run(_ctx: &Ctx, cmd: GraphCmd) -> anyhow::Result<()> {
    match cmd {
        GraphCmd::Train(a) => train(a),
        GraphCmd::Mog(a) => mog(a),
    }
}

fn train(a: TrainArgs) -> anyhow::Result<()> {
    let kind: ModelKind = a.model.parse()?;
    let cfg = a.opts.config();
    let out = with_threads(
        a.opts.threads,
        nodes_hint(&a.dataset),
        || -> anyhow::Result<serde_json::Value> {
            let d = Dataset::by_name(&a.dataset, a.seed)?;
            let p = experiment::Prepared::new(&d, a.seed)?;
            let prop = Arc::new(Propagation::new(kind, gnn::full_pattern(&d.graph)?)?);
            let (_, out, t) = experiment::train_fixed(&p, kind, prop, &cfg, a.seed, 11)?;
            Ok(serde_json::json!({
                "dataset": d.name, "model": kind, "nodes": d.graph.n, "edges": d.graph.num_directed_edges(),
                "test_accuracy": out.test_accuracy, "val_accuracy": out.val_accuracy, "best_epoch": out.best_epoch,
                "epochs": out.epochs, "train_seconds": out.train_seconds, "inference_seconds": t,
            }))
        },
    )??;
    if a.json {
        super::print_json(&out);
    } else {
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(())
}

fn mog(a: MogArgs) -> anyhow::Result<()> {
    let kind: ModelKind = a.model.parse()?;
    let mut cfg = MogExperiment::new(&a.dataset, kind);
    cfg.seeds = a.seeds;
    cfg.train = a.opts.config();
    cfg.mog = MogConfig {
        keep_levels: a.levels.clone(),
        top_k: a.top_k,
        beta: a.beta,
        refresh_every: a.refresh,
        criteria: a
            .criteria
            .iter()
            .map(|c| c.trim().parse())
            .collect::<Result<_, _>>()?,
        balance_weight: a.balance_weight,
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
    let dir = match &a.out {
        Some(p) => RunDir::at(p)?,
        None => RunDir::fresh("runs", "graph-mog")?,
    };
    // Checkpoint: every finished run goes to runs.jsonl; rerunning with the same --out resumes (more seeds may be
    // added; any other setting must match settings.json).
    let mut settings = serde_json::to_value(&cfg)?;
    if let Some(o) = settings.as_object_mut() {
        o.remove("seeds");
    }
    tessera_core::journal::check_settings(&dir.file("settings.json"), &settings)?;
    let (journal, done) = Journal::open::<experiment::RunRecord>(dir.file("runs.jsonl"))?;
    if !done.is_empty() {
        eprintln!(
            "tessera graph mog: resuming {} ({} runs already done)",
            dir.path().display(),
            done.len()
        );
    }
    let res = with_threads(a.opts.threads, nodes_hint(&a.dataset), || {
        experiment::run_mog_experiment_resuming(&cfg, &done, &mut |r| {
            if let Err(e) = journal.append(r) {
                eprintln!("tessera graph mog: warning: checkpoint not written: {e}");
            }
            eprintln!(
                "seed {} {:>18} {:>12}: sparsity {:.3} test {:.4} ({:.1}s)",
                r.seed, r.method, r.level, r.sparsity, r.test_accuracy, r.train_seconds
            )
        })
    })??;
    dir.write_json("result.json", &res)?;
    let rep = tessera_graph::report::mog_report(&res, &dir, "")?;
    rep.write(dir.file("report.md"))?;
    eprintln!("tessera graph mog: wrote {}", dir.path().display());
    if a.json {
        let baselines: Vec<_> = res
            .summary
            .iter()
            .filter(|s| s.method != "mog" && s.method != "dense")
            .collect();
        let curve: Vec<_> = res.summary.iter().filter(|s| s.method == "mog").collect();
        let by_method = |pairs: &[(String, f64)]| -> serde_json::Map<String, serde_json::Value> {
            pairs
                .iter()
                .map(|(m, v)| (m.clone(), serde_json::json!(v)))
                .collect()
        };
        let within = by_method(&res.max_sparsity_within_1pt);
        let matched = by_method(&res.accuracy_at_matched_sparsity);
        super::print_json(&serde_json::json!({
            "dataset": res.dataset, "model": res.model, "seeds": a.seeds,
            "dense_accuracy": res.dense_accuracy, "dense_accuracy_std": res.dense_accuracy_std,
            "mog_accuracy": res.mog_accuracy, "mog_accuracy_std": res.mog_accuracy_std,
            "sparsity": res.sparsity, "inference_speedup": res.inference_speedup,
            "baselines": baselines, "mog_curve": curve, "max_sparsity_within_1pt": within,
            "accuracy_at_matched_sparsity": matched,
            "matched_sparsity": tessera_graph::experiment::MATCHED_SPARSITY,
            "dir": dir.path(),
        }));
    } else {
        println!("{}", rep.as_markdown());
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
    pub model: String,
    /// Node counts of the scaling curve (`none` to skip).
    #[arg(long, default_value = "10000,30000,100000,300000,1000000")]
    pub scaling: String,
    /// Expert keep levels.
    #[arg(long, value_delimiter = ',', default_value = "0.7,0.5,0.3")]
    pub levels: Vec<f64>,
    /// Recompute the MoG structure every this many epochs.
    #[arg(long, default_value_t = 20)]
    pub refresh: usize,
    /// Timing repetitions (median reported).
    #[arg(long, default_value_t = 7)]
    pub reps: usize,
    /// Epoch limit.
    #[arg(long, default_value_t = 100)]
    pub epochs: usize,
    /// Early-stopping patience.
    #[arg(long, default_value_t = 20)]
    pub patience: usize,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Run directory (default runs/bench-graph-<time>).
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
    let cfg = BenchConfig {
        nodes: a.nodes,
        degree: a.degree,
        model: a.model.parse()?,
        train: TrainConfig {
            max_epochs: a.epochs,
            patience: a.patience,
            ..TrainConfig::default()
        },
        mog: MogConfig {
            keep_levels: a.levels.clone(),
            refresh_every: a.refresh,
            ..MogConfig::default()
        },
        scaling_nodes: scaling,
        reps: a.reps,
        seed: a.seed,
    };
    let dir = match &a.out {
        Some(p) => RunDir::at(p)?,
        None => RunDir::fresh("runs", "bench-graph")?,
    };
    let res = experiment::run_bench(&cfg, &mut |s| eprintln!("bench graph: {s}"))?;
    dir.write_json("result.json", &res)?;
    let rep = tessera_graph::report::bench_report(&res, &dir)?;
    rep.write(dir.file("report.md"))?;
    if a.json {
        let mut v = serde_json::to_value(&res)?;
        if let Some(o) = v.as_object_mut() {
            o.insert("dir".into(), serde_json::json!(dir.path()));
        }
        super::print_json(&v);
    } else {
        println!("{}", rep.as_markdown());
    }
    Ok(())
}

/// The tour's section: a small MoG run on Cora (one seed, GCN, baselines at keep 0.5).
pub fn tour(_ctx: &Ctx, dir: &RunDir) -> anyhow::Result<Option<crate::tour::Section>> {
    let mut cfg = MogExperiment::new("cora", ModelKind::Gcn);
    cfg.seeds = 1;
    cfg.baseline_keeps = vec![0.5];
    cfg.extra_level_sets = Vec::new();
    cfg.train = TrainConfig {
        max_epochs: 150,
        patience: 30,
        ..TrainConfig::default()
    };
    let res = with_threads(Some(1), 3000, || {
        experiment::run_mog_experiment(&cfg, &mut |_| {})
    })??;
    dir.write_json("graph_mog.json", &res)?;
    let mut rep = tessera_graph::report::mog_report(&res, dir, "graph_")?;
    rep.para(
        "Small scale: one seed, baselines at keep 0.5 only. Inference times on a graph this small are dominated by \
         the dense feature transform and by noise; speed is measured on large SBM graphs by `tessera bench graph`. Full tables: `tessera graph mog --dataset cora --model gcn --seeds 5` \
         (see crates/tessera-graph/README.md).",
    );
    let json = serde_json::json!({
        "dense_accuracy": res.dense_accuracy, "mog_accuracy": res.mog_accuracy,
        "sparsity": res.sparsity, "inference_speedup": res.inference_speedup, "summary": res.summary,
    });
    Ok(Some(crate::tour::Section {
        title: "Graph sparsification (MoG)".into(),
        report: rep,
        json,
    }))
}
