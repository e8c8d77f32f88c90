//! Accuracy-vs-steps plots of finished runs (`tessera zo plot`).
use crate::error::Result;
use crate::run::ZoResult;
use std::path::Path;
use tessera_core::report::{line_plot_svg, Series};

/// The legend label of a run: `optimizer scheme task (seed S)`.
pub fn label(r: &ZoResult) -> String {
    format!(
        "{} {} {} (seed {})",
        r.settings.optimizer, r.settings.scheme, r.settings.task, r.settings.seed
    )
}

/// Draws accuracy (%) against steps for every run into an SVG file.
pub fn accuracy_plot(runs: &[ZoResult], path: &Path, title: &str) -> Result<()> {
    let series: Vec<Series> = runs
        .iter()
        .map(|r| {
            Series::new(
                label(r),
                r.evals
                    .iter()
                    .map(|e| (e.step as f64, 100.0 * e.accuracy))
                    .collect(),
            )
        })
        .collect();
    Ok(line_plot_svg(
        path,
        title,
        "steps",
        "accuracy (%)",
        &series,
    )?)
}
