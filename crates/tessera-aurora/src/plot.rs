//! SVG plots of the README: training loss per stage, perplexity per language across stages, refusal rates.
use crate::error::Result;
use crate::eval::EvalResult;
use std::path::Path;
use tessera_core::report::{bar_plot_svg, line_plot_svg, Series};

/// Training loss against steps, one series per run.
pub fn loss_plot(runs: &[(&str, &[f64])], path: &Path, title: &str) -> Result<()> {
    let series: Vec<Series> = runs
        .iter()
        .map(|(l, c)| {
            Series::new(
                *l,
                c.iter()
                    .enumerate()
                    .map(|(i, &y)| ((i + 1) as f64, y))
                    .collect(),
            )
        })
        .collect();
    Ok(line_plot_svg(
        path,
        title,
        "step",
        "loss (nats/token)",
        &series,
    )?)
}

/// Perplexity per language across stages (x: stage index in `stages` order), one series per language.
pub fn perplexity_plot(stages: &[(&str, &EvalResult)], path: &Path, title: &str) -> Result<()> {
    let langs: Vec<String> = stages
        .first()
        .map(|(_, r)| r.perplexity_by_language.keys().cloned().collect())
        .unwrap_or_default();
    let series: Vec<Series> = langs
        .iter()
        .map(|l| {
            Series::new(
                l.clone(),
                stages
                    .iter()
                    .enumerate()
                    .filter_map(|(i, (_, r))| {
                        r.perplexity_by_language.get(l).map(|p| (i as f64, p.ln()))
                    })
                    .collect(),
            )
        })
        .collect();
    let xl: Vec<&str> = stages.iter().map(|s| s.0).collect();
    Ok(line_plot_svg(
        path,
        title,
        &format!("stage ({})", xl.join(" → ")),
        "ln perplexity",
        &series,
    )?)
}

/// Refusal rate on harmful prompts and over-refusal on benign ones per stage (bars `stage: metric`); stages
/// evaluated without the safety part are left out.
pub fn refusal_plot(stages: &[(&str, &EvalResult)], path: &Path, title: &str) -> Result<()> {
    let mut bars = Vec::new();
    for (s, r) in stages.iter().filter(|(_, r)| r.refusal_rate.is_some()) {
        bars.push((
            format!("{s} refusal"),
            100.0 * r.refusal_rate.unwrap_or(0.0),
        ));
        bars.push((
            format!("{s} over-refusal"),
            100.0 * r.over_refusal_rate.unwrap_or(0.0),
        ));
    }
    Ok(bar_plot_svg(path, title, "% of prompts", &bars)?)
}
