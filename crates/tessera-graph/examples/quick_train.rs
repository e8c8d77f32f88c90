//! Trains one GNN on a dataset: `cargo run -p tessera-graph --release --example quick_train -- cora gcn`.
use std::sync::Arc;
use tessera_graph::{data::Dataset, gnn::*};

fn main() -> tessera_graph::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let name = args.get(1).map_or("cora", |s| s.as_str());
    let kind: ModelKind = args.get(2).map_or("gcn", |s| s.as_str()).parse()?;
    let t = std::time::Instant::now();
    let d = Dataset::by_name(name, 0)?;
    eprintln!(
        "loaded {} n={} E={} f={} c={} in {:.2}s",
        d.name,
        d.graph.n,
        d.graph.num_directed_edges(),
        d.num_features,
        d.num_classes,
        t.elapsed().as_secs_f64()
    );
    let split = d.standard_split(0);
    let x = feature_input(&d)?;
    let prop = Arc::new(Propagation::new(kind, full_pattern(&d.graph)?)?);
    let cfg = TrainConfig::default();
    let mut ps = Params::new(0);
    let model = Gnn::new(
        kind,
        &mut ps,
        &[d.num_features, cfg.hidden, d.num_classes],
        cfg.dropout,
    )?;
    let out = train(
        &model,
        ps.vars.clone(),
        &x,
        &d.labels,
        &split,
        &mut FixedGraph(prop.clone()),
        &cfg,
        0,
    )?;
    println!("{out:?}");
    let ti = time_inference(&model, &x, &prop, None, 5)?;
    println!("inference {ti:.4}s");
    Ok(())
}
