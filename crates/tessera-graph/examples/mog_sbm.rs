//! One-seed MoG experiment on an SBM graph: `... --example mog_sbm -- NODES EPOCHS KEEP`.
use tessera_graph::experiment::{run_mog_experiment, MogExperiment};
use tessera_graph::gnn::{ModelKind, TrainConfig};

fn main() -> tessera_graph::Result<()> {
    let a: Vec<String> = std::env::args().collect();
    let nodes = a.get(1).cloned().unwrap_or_else(|| "20000".into());
    let epochs: usize = a.get(2).and_then(|s| s.parse().ok()).unwrap_or(30);
    let keep: f64 = a.get(3).and_then(|s| s.parse().ok()).unwrap_or(0.6);
    let mut cfg = MogExperiment::new(&format!("sbm:{nodes}:50"), ModelKind::Gcn);
    cfg.seeds = 1;
    cfg.baseline_keeps = vec![keep];
    cfg.extra_level_sets = vec![];
    cfg.train = TrainConfig {
        max_epochs: epochs,
        patience: epochs,
        ..TrainConfig::default()
    };
    cfg.timing_reps = 3;
    let r = run_mog_experiment(&cfg, &mut |r| {
        eprintln!(
            "{} {} sparsity {:.3} test {:.4} ({:.1}s)",
            r.method, r.level, r.sparsity, r.test_accuracy, r.train_seconds
        )
    })?;
    println!("{}", serde_json::to_string(&r.summary).unwrap_or_default());
    Ok(())
}
