//! `tessera graph mog` without the CLI (handy while other crates are mid-edit):
//! `... --example mog_table -- DATASET MODEL SEEDS OUT_DIR [BASELINE_KEEPS [EXTRA_LEVEL_SETS]]`
//! (e.g. `0.5` and `0.5/0.3/0.2`). Writes result.json, report.md and the plot.
use tessera_core::record::RunDir;
use tessera_graph::experiment::{run_mog_experiment, MogExperiment};
use tessera_graph::gnn::{ModelKind, TrainConfig};

fn main() -> tessera_graph::Result<()> {
    let a: Vec<String> = std::env::args().collect();
    let arg = |i: usize, d: &str| a.get(i).cloned().unwrap_or_else(|| d.to_string());
    let kind: ModelKind = arg(2, "gcn").parse()?;
    let mut cfg = MogExperiment::new(&arg(1, "cora"), kind);
    cfg.seeds = arg(3, "5").parse().unwrap_or(5);
    cfg.train = TrainConfig {
        patience: 30,
        ..TrainConfig::default()
    };
    if let Some(b) = a.get(5) {
        cfg.baseline_keeps = b.split(',').filter_map(|v| v.parse().ok()).collect();
    }
    if let Some(c) = a.get(6) {
        cfg.extra_level_sets = c
            .split(',')
            .map(|set| {
                set.split('/')
                    .filter_map(|v| v.parse().ok())
                    .collect::<Vec<f64>>()
            })
            .filter(|v| !v.is_empty())
            .collect();
    }
    let dir = RunDir::at(arg(4, "runs/mog"))?;
    let r = tessera_graph::with_threads(1, || {
        run_mog_experiment(&cfg, &mut |r| {
            eprintln!(
                "seed {} {:>18} {:>12}: sparsity {:.3} test {:.4} ({:.1}s)",
                r.seed, r.method, r.level, r.sparsity, r.test_accuracy, r.train_seconds
            )
        })
    })??;
    dir.write_json("result.json", &r)?;
    tessera_graph::report::mog_report(&r, &dir, "")?.write(dir.file("report.md"))?;
    Ok(())
}
