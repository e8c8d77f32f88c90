//! The `bio` section of `tessera tour`: three gene sets, every method, a small Thought Graph (3 layers, 3
//! samples) on SmolLM2, and one graph drawn as an SVG.
use crate::error::Result;
use crate::eval::{self, BioEvalConfig, Method};
use crate::thought_graph::{self, ThoughtGraph, ThoughtGraphConfig};
use tessera_core::record::RunDir;
use tessera_core::report::{Report, TourSection};

/// The tour's Thought Graph settings.
pub fn tour_graph_config() -> ThoughtGraphConfig {
    ThoughtGraphConfig {
        layers: 3,
        samples: 3,
        voters: 3,
        final_samples: 3,
        max_tokens: 64,
        ..ThoughtGraphConfig::default()
    }
}

/// Runs the section, writing `bio.json` and `bio_graph.svg` into `dir`.
pub fn tour(dir: &RunDir, offline: bool) -> Result<TourSection> {
    let cfg = BioEvalConfig {
        limit: 3,
        methods: Method::ALL.to_vec(),
        thought_graph: tour_graph_config(),
        offline,
        ..BioEvalConfig::default()
    };
    let r = eval::run(&cfg)?;
    let json = serde_json::to_value(&r).map_err(tessera_core::Error::from)?;
    dir.write_json("bio.json", &json)?;
    let mut svg_note = String::new();
    if let Some(rec) = r.records.first() {
        if let Some(o) = rec.outcomes.get("thought_graph") {
            if let Ok(g) = serde_json::from_value::<ThoughtGraph>(o.detail.clone()) {
                let svg =
                    thought_graph::render_svg(&g, &format!("{} (gold: {})", rec.go_id, rec.gold));
                std::fs::write(dir.file("bio_graph.svg"), svg)
                    .map_err(|e| tessera_core::Error::io(dir.file("bio_graph.svg"), e))?;
                svg_note = " The first gene set's graph is drawn in `bio_graph.svg`.".into();
            }
        }
    }
    let mut rep = Report::new("Bio (gene-set naming over GO, Thought Graph)");
    rep.para(&format!(
        "The first {} gene sets of `1000_selected_go_terms.csv`, every method, backend `{}`, Thought Graph with \
         3 layers and 3 samples per parent. Scores are MiniLM cosines to the gold GO name (SapBERT, the paper's \
         embedder, is not obtainable).{svg_note}",
        r.gene_sets,
        r.backend.clone().unwrap_or_default()
    ));
    let f = |x: Option<f64>| x.map(|v| format!("{v:.3}")).unwrap_or_else(|| "-".into());
    let mut rows = vec![
        vec![
            "over-representation, best of top 15 (gold leaks in)".into(),
            f(r.gsea_cosine),
            f(r.gsea_percentile),
        ],
        vec![
            "over-representation, gold and same-gene terms excluded".into(),
            f(r.gsea_cosine_excluding_gold),
            f(r.gsea_percentile_excluding_gold),
        ],
        vec![
            "zero-shot".into(),
            f(r.zero_shot_cosine),
            f(r.zero_shot_percentile),
        ],
        vec![
            "few-shot".into(),
            f(r.few_shot_cosine),
            f(r.few_shot_percentile),
        ],
        vec![
            "chain of thought".into(),
            f(r.cot_cosine),
            f(r.cot_percentile),
        ],
        vec![
            "Thought Graph, final".into(),
            f(r.thought_graph_cosine),
            f(r.thought_graph_percentile),
        ],
        vec![
            "Thought Graph, best node".into(),
            f(r.thought_graph_best_cosine),
            f(r.thought_graph_best_percentile),
        ],
    ];
    rep.table(&["method", "cosine", "percentile"], &rows);
    rows.clear();
    for rec in &r.records {
        let p = |k: &str| {
            rec.outcomes
                .get(k)
                .map(|o| o.prediction.clone())
                .unwrap_or_default()
        };
        rows.push(vec![
            rec.gold.clone(),
            p("gsea_excluding_gold"),
            p("zero_shot"),
            p("thought_graph"),
        ]);
    }
    rep.table(
        &[
            "gold",
            "over-representation (excl. gold)",
            "zero-shot",
            "Thought Graph",
        ],
        &rows,
    );
    Ok(TourSection::new("bio", rep, json))
}
