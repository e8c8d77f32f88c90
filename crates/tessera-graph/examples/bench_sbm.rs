//! `tessera bench graph` without the CLI (handy while other crates are mid-edit):
//! `cargo run -p tessera-graph --release --example bench_sbm -- NODES EPOCHS REFRESH LEVELS SCALING`.
use tessera_graph::experiment::{run_bench, BenchConfig};
use tessera_graph::gnn::{ModelKind, TrainConfig};
use tessera_graph::mog::MogConfig;

fn main() -> tessera_graph::Result<()> {
    let a: Vec<String> = std::env::args().collect();
    let arg = |i: usize, d: &str| a.get(i).cloned().unwrap_or_else(|| d.to_string());
    let levels: Vec<f64> = arg(4, "0.7,0.5,0.3")
        .split(',')
        .filter_map(|s| s.parse().ok())
        .collect();
    let scaling: Vec<usize> = arg(5, "")
        .split(',')
        .filter_map(|s| s.parse().ok())
        .collect();
    let epochs: usize = arg(2, "60").parse().unwrap_or(60);
    let cfg = BenchConfig {
        nodes: arg(1, "100000").parse().unwrap_or(100_000),
        degree: 50.0,
        model: ModelKind::Gcn,
        train: TrainConfig {
            max_epochs: epochs,
            patience: epochs,
            ..TrainConfig::default()
        },
        mog: MogConfig {
            keep_levels: levels,
            refresh_every: arg(3, "10").parse().unwrap_or(10),
            noisy_structure: arg(6, "1") == "1",
            ..MogConfig::default()
        },
        scaling_nodes: scaling,
        reps: 7,
        seed: 0,
    };
    let r = run_bench(&cfg, &mut |s| eprintln!("{s}"))?;
    println!("{}", serde_json::to_string(&r).unwrap_or_default());
    Ok(())
}
