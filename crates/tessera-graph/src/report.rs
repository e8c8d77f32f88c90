//! Markdown + SVG reports for MoG experiments and the inference benchmark.
use crate::error::Result;
use crate::experiment::{BenchResult, MogResult};
use tessera_core::record::RunDir;
use tessera_core::report::{line_plot_svg, Report, Series};

/// Accuracy-vs-sparsity table and plot (`<prefix>accuracy_vs_sparsity.svg` in `dir`).
pub fn mog_report(r: &MogResult, dir: &RunDir, prefix: &str) -> Result<Report> {
    let mut rep = Report::new(&format!("MoG on {} with {}", r.dataset, r.model));
    rep.para(&format!(
        "{} nodes, {} directed edges, {} seed(s). Test accuracy at the best validation epoch, mean ± std over seeds; \
         sparsity = fraction of directed edges removed. Headline: dense {:.2} ± {:.2}, MoG {:.2} ± {:.2} at sparsity \
         {:.3}; inference speedup {:.2}×.",
        r.nodes,
        r.edges,
        r.config.seeds,
        100.0 * r.dense_accuracy,
        100.0 * r.dense_accuracy_std,
        100.0 * r.mog_accuracy,
        100.0 * r.mog_accuracy_std,
        r.sparsity,
        r.inference_speedup
    ));
    let rows: Vec<Vec<String>> = r
        .summary
        .iter()
        .map(|s| {
            vec![
                s.method.clone(),
                s.level.clone(),
                format!("{:.3}", s.sparsity),
                format!(
                    "{:.2} ± {:.2}",
                    100.0 * s.accuracy_mean,
                    100.0 * s.accuracy_std
                ),
                format!("{:.2}", 1e3 * s.inference_seconds),
            ]
        })
        .collect();
    rep.table(
        &[
            "method",
            "level (keep)",
            "sparsity",
            "test acc. %",
            "inference ms",
        ],
        &rows,
    );
    rep.para(&format!(
        "Methods compared two ways: the highest sparsity each reaches while staying within {} point of dense \
         accuracy, and its accuracy at sparsity {} (both by linear interpolation along its curve; a curve that \
         never drops shows its largest measured sparsity, one that does not reach {} shows —).",
        crate::experiment::TOLERANCE_POINTS,
        crate::experiment::MATCHED_SPARSITY,
        crate::experiment::MATCHED_SPARSITY,
    ));
    let tol_rows: Vec<Vec<String>> = r
        .max_sparsity_within_1pt
        .iter()
        .map(|(m, s)| {
            let at = r
                .accuracy_at_matched_sparsity
                .iter()
                .find(|(mm, _)| mm == m)
                .map_or("—".to_string(), |(_, a)| format!("{:.2}", 100.0 * a));
            vec![m.clone(), format!("{s:.3}"), at]
        })
        .collect();
    let at_head = format!(
        "test acc. % at sparsity {}",
        crate::experiment::MATCHED_SPARSITY
    );
    rep.table(
        &["method", "max sparsity within 1 pt", at_head.as_str()],
        &tol_rows,
    );
    let mut methods: Vec<String> = Vec::new();
    for s in &r.summary {
        if !methods.contains(&s.method) && s.method != "dense" {
            methods.push(s.method.clone());
        }
    }
    let dense = r.summary.iter().find(|s| s.method == "dense");
    let mut series = Vec::new();
    if let Some(d) = dense {
        series.push(Series::new(
            "dense",
            vec![
                (0.0, 100.0 * d.accuracy_mean),
                (0.8, 100.0 * d.accuracy_mean),
            ],
        ));
    }
    for m in methods {
        let mut pts: Vec<(f64, f64)> = r
            .summary
            .iter()
            .filter(|s| s.method == m)
            .map(|s| (s.sparsity, 100.0 * s.accuracy_mean))
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        series.push(Series::new(m, pts));
    }
    let name = format!("{prefix}accuracy_vs_sparsity.svg");
    line_plot_svg(
        dir.file(&name),
        &format!("{} / {}: accuracy vs sparsity", r.dataset, r.model),
        "sparsity",
        "test accuracy (%)",
        &series,
    )?;
    rep.image("accuracy vs sparsity", &name);
    Ok(rep)
}

/// Benchmark table and scaling plot (`graph_scaling.svg` in `dir`).
pub fn bench_report(b: &BenchResult, dir: &RunDir) -> Result<Report> {
    let mut rep = Report::new(&format!(
        "GNN inference, dense vs MoG-sparsified, {}",
        b.dataset
    ));
    rep.table(
        &["graph", "edges", "test acc. %", "inference s", "speedup"],
        &[
            vec![
                "dense".into(),
                b.edges.to_string(),
                format!("{:.2}", 100.0 * b.dense_accuracy),
                format!("{:.4}", b.dense_inference_seconds),
                "1.00×".into(),
            ],
            vec![
                format!("MoG (sparsity {:.3})", b.sparsity),
                format!("{:.0}", b.edges as f64 * (1.0 - b.sparsity)),
                format!("{:.2}", 100.0 * b.mog_accuracy),
                format!("{:.4}", b.mog_inference_seconds),
                format!("{:.2}×", b.inference_speedup),
            ],
        ],
    );
    if !b.scaling.is_empty() {
        let rows: Vec<Vec<String>> = b
            .scaling
            .iter()
            .map(|p| {
                vec![
                    p.nodes.to_string(),
                    p.dense_edges.to_string(),
                    p.sparse_edges.to_string(),
                    format!("{:.4}", p.dense_seconds),
                    format!("{:.4}", p.sparse_seconds),
                    format!("{:.2}×", p.speedup),
                ]
            })
            .collect();
        rep.table(
            &[
                "nodes",
                "dense edges",
                "sparse edges",
                "dense s",
                "sparse s",
                "speedup",
            ],
            &rows,
        );
        let dense: Vec<(f64, f64)> = b
            .scaling
            .iter()
            .map(|p| ((p.dense_edges as f64).log10(), p.dense_seconds.log10()))
            .collect();
        let sparse: Vec<(f64, f64)> = b
            .scaling
            .iter()
            .map(|p| ((p.sparse_edges as f64).log10(), p.sparse_seconds.log10()))
            .collect();
        line_plot_svg(
            dir.file("graph_scaling.svg"),
            "GNN inference time vs edges",
            "log10(directed edges)",
            "log10(seconds)",
            &[
                Series::new("dense", dense),
                Series::new("sparsified", sparse),
            ],
        )?;
        rep.image("inference time vs edges", "graph_scaling.svg");
    }
    Ok(rep)
}
