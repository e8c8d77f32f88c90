//! Accuracy-vs-steps plots of finished runs (`tessera zo plot`).
use crate::error::Result;
use crate::run::ZoResult;
use std::path::{Path, PathBuf};
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

/// Reads finished runs (each a `result.json` or a run folder holding one) and draws [`accuracy_plot`] of them.
pub fn plot_files(results: &[PathBuf], path: &Path, title: &str) -> Result<()> {
    let mut runs = Vec::with_capacity(results.len());
    for p in results {
        let f = if p.is_dir() {
            p.join("result.json")
        } else {
            p.clone()
        };
        let text = tessera_core::fsx::read_to_string(&f)?;
        runs.push(serde_json::from_str::<ZoResult>(&text).map_err(|e| {
            tessera_core::Error::Format {
                path: f.clone(),
                msg: format!("not a `tessera zo train` result: {e}"),
            }
        })?);
    }
    accuracy_plot(&runs, path, title)
}
