//! Typed entry points behind `tessera graph train`, `tessera graph mog`, `tessera bench graph` and the tour's
//! graph section: each takes a config, runs, and returns a typed result that serialises to the command's
//! documented JSON (the CLI only parses arguments and prints).
use crate::data::Dataset;
use crate::error::Result;
use crate::experiment::{self, BenchConfig, BenchResult, MogExperiment, MogResult, RunRecord};
use crate::gnn::{self, ModelKind, Propagation, TrainConfig};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;
use tessera_core::journal::{check_settings, Journal};
use tessera_core::record::RunDir;
use tessera_core::report::Report;

/// Worker threads for a dataset spec when none are given: 1 for the citation graphs (rayon's hand-offs cost more
/// than the work on a graph this small), all cores (0) for SBM graphs.
pub fn default_threads(dataset: &str) -> usize {
    if dataset.starts_with("sbm:") {
        0
    } else {
        1
    }
}

/// Settings of `tessera graph train`: one GNN on the full graph.
#[derive(Debug, Clone, Serialize)]
pub struct TrainRun {
    /// Dataset spec (`cora`, `citeseer`, `cora-gds`, `sbm:N[:DEGREE[:key=value,…]]`).
    pub dataset: String,
    /// Backbone.
    pub model: ModelKind,
    /// Seed (split, initialisation, dropout).
    pub seed: u64,
    /// Training settings.
    pub train: TrainConfig,
    /// Worker threads (`None`: [`default_threads`]).
    pub threads: Option<usize>,
}

/// Result of [`train`] (the JSON of `tessera graph train --json`).
#[derive(Debug, Clone, Serialize)]
pub struct TrainSummary {
    /// Dataset name.
    pub dataset: String,
    /// Backbone.
    pub model: ModelKind,
    /// Nodes.
    pub nodes: usize,
    /// Directed edges.
    pub edges: usize,
    /// Test accuracy at the best validation epoch.
    pub test_accuracy: f64,
    /// Best validation accuracy.
    pub val_accuracy: f64,
    /// Best validation epoch.
    pub best_epoch: usize,
    /// Epochs run.
    pub epochs: usize,
    /// Training seconds.
    pub train_seconds: f64,
    /// Median inference seconds (11 passes).
    pub inference_seconds: f64,
}

/// Trains one GNN on the full graph.
pub fn train(cfg: &TrainRun) -> Result<TrainSummary> {
    let threads = cfg.threads.unwrap_or(default_threads(&cfg.dataset));
    crate::with_threads(threads, || {
        let d = Dataset::by_name(&cfg.dataset, cfg.seed)?;
        let p = experiment::Prepared::new(&d, cfg.seed)?;
        let prop = Arc::new(Propagation::new(cfg.model, gnn::full_pattern(&d.graph)?)?);
        let (_, out, t) = experiment::train_fixed(&p, cfg.model, prop, &cfg.train, cfg.seed, 11)?;
        Ok(TrainSummary {
            dataset: d.name.clone(),
            model: cfg.model,
            nodes: d.graph.n,
            edges: d.graph.num_directed_edges(),
            test_accuracy: out.test_accuracy,
            val_accuracy: out.val_accuracy,
            best_epoch: out.best_epoch,
            epochs: out.epochs,
            train_seconds: out.train_seconds,
            inference_seconds: t,
        })
    })?
}

/// The JSON of `tessera graph mog --json`: the headline numbers, the baselines and the MoG curve.
#[derive(Debug, Clone, Serialize)]
pub struct MogSummary {
    /// Dataset name.
    pub dataset: String,
    /// Backbone.
    pub model: ModelKind,
    /// Seeds.
    pub seeds: u64,
    /// Mean dense test accuracy.
    pub dense_accuracy: f64,
    /// Its std over seeds.
    pub dense_accuracy_std: f64,
    /// Mean MoG test accuracy (headline levels).
    pub mog_accuracy: f64,
    /// Its std over seeds.
    pub mog_accuracy_std: f64,
    /// Mean MoG sparsity (headline levels).
    pub sparsity: f64,
    /// Dense / MoG inference time.
    pub inference_speedup: f64,
    /// Every non-MoG, non-dense summary row.
    pub baselines: Vec<experiment::SummaryRow>,
    /// MoG's summary rows (one per level set).
    pub mog_curve: Vec<experiment::SummaryRow>,
    /// Per method: highest sparsity within one point of dense.
    pub max_sparsity_within_1pt: serde_json::Map<String, serde_json::Value>,
    /// Per method: accuracy at [`experiment::MATCHED_SPARSITY`].
    pub accuracy_at_matched_sparsity: serde_json::Map<String, serde_json::Value>,
    /// The sparsity of the comparison above.
    pub matched_sparsity: f64,
    /// Run directory.
    pub dir: PathBuf,
}

impl MogSummary {
    /// The summary of a finished experiment written to `dir`.
    pub fn new(res: &MogResult, dir: PathBuf) -> Self {
        let by_method = |pairs: &[(String, f64)]| -> serde_json::Map<String, serde_json::Value> {
            pairs
                .iter()
                .map(|(m, v)| (m.clone(), serde_json::json!(v)))
                .collect()
        };
        MogSummary {
            dataset: res.dataset.clone(),
            model: res.model,
            seeds: res.config.seeds,
            dense_accuracy: res.dense_accuracy,
            dense_accuracy_std: res.dense_accuracy_std,
            mog_accuracy: res.mog_accuracy,
            mog_accuracy_std: res.mog_accuracy_std,
            sparsity: res.sparsity,
            inference_speedup: res.inference_speedup,
            baselines: res
                .summary
                .iter()
                .filter(|s| s.method != "mog" && s.method != "dense")
                .cloned()
                .collect(),
            mog_curve: res
                .summary
                .iter()
                .filter(|s| s.method == "mog")
                .cloned()
                .collect(),
            max_sparsity_within_1pt: by_method(&res.max_sparsity_within_1pt),
            accuracy_at_matched_sparsity: by_method(&res.accuracy_at_matched_sparsity),
            matched_sparsity: experiment::MATCHED_SPARSITY,
            dir,
        }
    }
}

/// What [`mog`] hands back: the full result, its report and the JSON summary.
pub struct MogOutput {
    /// Every run and summary row.
    pub result: MogResult,
    /// The markdown report (also written to `report.md`).
    pub report: Report,
    /// The `--json` object.
    pub summary: MogSummary,
    /// Runs taken from an earlier, interrupted invocation.
    pub resumed_runs: usize,
}

/// `tessera graph mog` in `dir`, resumable: every finished training is appended to `runs.jsonl`; a rerun with the
/// same settings (more seeds allowed) trains only what is missing, one with other settings is refused
/// (`settings.json`). Writes `result.json`, `report.md` and the plot; `progress` sees every new run.
pub fn mog(
    cfg: &MogExperiment,
    dir: &RunDir,
    threads: Option<usize>,
    progress: &mut (dyn FnMut(&RunRecord) + Send),
) -> Result<MogOutput> {
    let mut settings = serde_json::to_value(cfg).map_err(tessera_core::Error::from)?;
    if let Some(o) = settings.as_object_mut() {
        o.remove("seeds");
    }
    check_settings(&dir.file("settings.json"), &settings)?;
    let (journal, done) = Journal::open::<RunRecord>(dir.file("runs.jsonl"))?;
    let threads = threads.unwrap_or(default_threads(&cfg.dataset));
    let mut write_err = None;
    let result = crate::with_threads(threads, || {
        experiment::run_mog_experiment_resuming(cfg, &done, &mut |r| {
            if let Err(e) = journal.append(r) {
                write_err.get_or_insert(e);
            }
            progress(r)
        })
    })??;
    if let Some(e) = write_err {
        return Err(e.into());
    }
    dir.write_json("result.json", &result)?;
    let report = crate::report::mog_report(&result, dir, "")?;
    report.write(dir.file("report.md"))?;
    Ok(MogOutput {
        summary: MogSummary::new(&result, dir.path().to_path_buf()),
        result,
        report,
        resumed_runs: done.len(),
    })
}

/// The JSON of `tessera bench graph --json`: the result plus its directory.
#[derive(Debug, Clone, Serialize)]
pub struct BenchOutput {
    /// The benchmark result.
    #[serde(flatten)]
    pub result: BenchResult,
    /// Run directory.
    pub dir: PathBuf,
    /// The markdown report (also written to `report.md`).
    #[serde(skip)]
    pub report: Report,
}

/// `tessera bench graph` in `dir` (all cores), resumable per seed: every finished seed is appended to
/// `seeds.jsonl`; a rerun with the same settings (other seed counts allowed) benchmarks only the missing seeds, one
/// with other settings is refused (`settings.json`). Writes `result.json`, `report.md` and the scaling plot.
pub fn bench(cfg: &BenchConfig, dir: &RunDir, log: &mut dyn FnMut(&str)) -> Result<BenchOutput> {
    let mut settings = serde_json::to_value(cfg).map_err(tessera_core::Error::from)?;
    if let Some(o) = settings.as_object_mut() {
        o.remove("seeds");
        o.remove("seed");
        o.remove("scaling_nodes");
    }
    check_settings(&dir.file("settings.json"), &settings)?;
    let (journal, done) = Journal::open::<(experiment::BenchSeed, usize)>(dir.file("seeds.jsonl"))?;
    let result = experiment::run_bench_resuming(
        cfg,
        &done,
        &mut |r| journal.append(r).map_err(Into::into),
        log,
    )?;
    dir.write_json("result.json", &result)?;
    let report = crate::report::bench_report(&result, dir)?;
    report.write(dir.file("report.md"))?;
    Ok(BenchOutput {
        result,
        dir: dir.path().to_path_buf(),
        report,
    })
}

/// The tour's graph section.
pub struct TourSection {
    /// Section title.
    pub title: String,
    /// Markdown.
    pub report: Report,
    /// Machine-readable results: `dense_accuracy`, `mog_accuracy`, `sparsity`, `inference_speedup`, `summary`.
    pub json: serde_json::Value,
}

/// The tour's section: a small MoG run on Cora (one seed, GCN, baselines at keep 0.5), written to `dir` as
/// `graph_mog.json` and `graph_accuracy_vs_sparsity.svg`.
pub fn tour(dir: &RunDir) -> Result<TourSection> {
    let mut cfg = MogExperiment::new("cora", ModelKind::Gcn);
    cfg.seeds = 1;
    cfg.baseline_keeps = vec![0.5];
    cfg.extra_level_sets = Vec::new();
    cfg.train = TrainConfig {
        max_epochs: 150,
        patience: 30,
        ..TrainConfig::default()
    };
    let res = crate::with_threads(1, || experiment::run_mog_experiment(&cfg, &mut |_| {}))??;
    dir.write_json("graph_mog.json", &res)?;
    let mut report = crate::report::mog_report(&res, dir, "graph_")?;
    report.para(
        "Small scale: one seed, baselines at keep 0.5 only. Inference times on a graph this small are dominated by \
         the dense feature transform and by noise; speed is measured on large SBM graphs by `tessera bench graph`. \
         Full tables: `tessera graph mog --dataset cora --model gcn --seeds 5` (see crates/tessera-graph/README.md).",
    );
    Ok(TourSection {
        title: "Graph sparsification (MoG)".into(),
        report,
        json: serde_json::json!({
            "dense_accuracy": res.dense_accuracy, "mog_accuracy": res.mog_accuracy,
            "sparsity": res.sparsity, "inference_speedup": res.inference_speedup, "summary": res.summary,
        }),
    })
}

/// Parses a list of keep ratios written `0.7,0.5,0.3` (or with `/` between them); `none` or an empty string is
/// the empty list.
pub fn parse_keep_list(s: &str) -> Result<Vec<f64>> {
    if s == "none" || s.is_empty() {
        return Ok(Vec::new());
    }
    s.split([',', '/'])
        .map(|v| {
            v.trim()
                .parse::<f64>()
                .map_err(|_| crate::error::GraphError::Invalid(format!("bad number {v:?}")))
        })
        .collect()
}

/// Parses a sparsity curve: level sets separated by `,`, levels within a set by `/`
/// (`0.9/0.7/0.5,0.5/0.3/0.2`); `none` is no curve.
pub fn parse_curve(s: &str) -> Result<Vec<Vec<f64>>> {
    if s == "none" {
        return Ok(Vec::new());
    }
    s.split(',').map(parse_keep_list).collect()
}

/// Parses the node counts of a scaling study (`10000,30000`); `none` is no study.
pub fn parse_scaling(s: &str) -> Result<Vec<usize>> {
    if s == "none" {
        return Ok(Vec::new());
    }
    s.split(',')
        .map(|v| {
            v.trim()
                .parse::<usize>()
                .map_err(|_| crate::error::GraphError::Invalid(format!("bad node count {v:?}")))
        })
        .collect()
}

/// The SBM spec of a benchmark: `extra` itself when it is a whole `sbm:` spec, else `sbm:NODES:DEGREE:extra`
/// (see [`crate::data::SbmConfig::from_spec`]).
pub fn sbm_spec(nodes: usize, degree: f64, extra: &str) -> String {
    if extra.starts_with("sbm:") {
        extra.to_string()
    } else {
        format!("sbm:{nodes}:{degree}:{extra}")
    }
}

#[cfg(test)]
mod parse_tests {
    use super::*;

    #[test]
    fn lists_curves_and_specs_parse() {
        assert_eq!(
            parse_keep_list("0.7, 0.5/0.3").unwrap(),
            vec![0.7, 0.5, 0.3]
        );
        assert!(parse_keep_list("none").unwrap().is_empty());
        assert!(parse_keep_list("0.7,x").is_err());
        assert_eq!(
            parse_curve("0.9/0.7,0.5").unwrap(),
            vec![vec![0.9, 0.7], vec![0.5]]
        );
        assert!(parse_curve("none").unwrap().is_empty());
        assert_eq!(parse_scaling("10,20").unwrap(), vec![10, 20]);
        assert!(parse_scaling("-1").is_err());
        assert_eq!(sbm_spec(100, 5.0, ""), "sbm:100:5:");
        assert_eq!(sbm_spec(100, 5.0, "sbm:7:2"), "sbm:7:2");
    }
}
