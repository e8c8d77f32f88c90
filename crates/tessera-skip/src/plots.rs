//! SVG plots of an evaluation (through `tessera_core::report`'s plot writer): quality and decode speedup against
//! the skipped fraction, one point per variant.
use crate::error::Result;
use crate::eval::{SkipEvalResult, VariantResult};
use crate::ffn_skip::SkipMode;
use std::path::{Path, PathBuf};
use tessera_core::report::{line_plot_svg, Series};

fn points(vs: &[&VariantResult], y: impl Fn(&VariantResult) -> f64) -> Vec<(f64, f64)> {
    let mut p: Vec<(f64, f64)> = vs
        .iter()
        .map(|v| (100.0 * v.skipped_fraction, y(v)))
        .collect();
    p.sort_by(|a, b| a.0.total_cmp(&b.0));
    p
}

/// Writes `quality_vs_skipped.svg` and `speedup_vs_skipped.svg` into `dir`; returns their paths.
pub fn write_plots(r: &SkipEvalResult, dir: &Path) -> Result<Vec<PathBuf>> {
    let cos: Vec<&VariantResult> = r
        .variants
        .iter()
        .filter(|v| v.mode == SkipMode::Cosine)
        .collect();
    let rnd: Vec<&VariantResult> = r
        .variants
        .iter()
        .filter(|v| v.mode == SkipMode::RandomSpan)
        .collect();
    let full = |x: f64| {
        vec![
            (0.0, x),
            (
                100.0
                    * r.variants
                        .iter()
                        .map(|v| v.skipped_fraction)
                        .fold(0.0, f64::max),
                x,
            ),
        ]
    };
    let mut q = vec![
        Series::new(
            "factoid accuracy, full model",
            full(r.factoid_accuracy_full),
        ),
        Series::new(
            "factoid accuracy, cosine rule",
            points(&cos, |v| v.factoid_accuracy_skip),
        ),
        Series::new("ROUGE-L vs full, cosine rule", points(&cos, |v| v.rouge_l)),
        Series::new(
            "token exact match, cosine rule",
            points(&cos, |v| v.exact_match),
        ),
    ];
    if !rnd.is_empty() {
        q.push(Series::new(
            "factoid accuracy, random span",
            points(&rnd, |v| v.factoid_accuracy_skip),
        ));
        q.push(Series::new(
            "ROUGE-L vs full, random span",
            points(&rnd, |v| v.rouge_l),
        ));
    }
    let a = dir.join("quality_vs_skipped.svg");
    line_plot_svg(
        &a,
        &format!("FFN skipping on {} ({} questions)", r.model, r.questions),
        "decode FFN blocks skipped (%)",
        "score",
        &q,
    )?;
    let mut s = vec![Series::new(
        "cosine rule",
        points(&cos, |v| v.decode_speedup),
    )];
    if !rnd.is_empty() {
        s.push(Series::new(
            "random span",
            points(&rnd, |v| v.decode_speedup),
        ));
    }
    let b = dir.join("speedup_vs_skipped.svg");
    line_plot_svg(
        &b,
        &format!("Decode speedup vs full, {}", r.model),
        "decode FFN blocks skipped (%)",
        "speedup (x)",
        &s,
    )?;
    Ok(vec![a, b])
}
