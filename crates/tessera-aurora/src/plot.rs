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

/// Reads `LABEL=FILE` arguments, each FILE one JSON value of type `T`.
fn read_labelled<T: serde::de::DeserializeOwned>(v: &[String]) -> Result<Vec<(String, T)>> {
    v.iter()
        .map(|s| {
            let (k, f) = s.split_once('=').ok_or_else(|| {
                crate::error::AuroraError::invalid(format!("`{s}` is not LABEL=FILE"))
            })?;
            let t = tessera_core::fsx::read_to_string(f)?;
            let x = serde_json::from_str(&t)
                .map_err(|e| crate::error::AuroraError::data(f, e.to_string()))?;
            Ok((k.to_string(), x))
        })
        .collect()
}

/// `tessera aurora plot`: the loss curves of `runs` (`LABEL=result.json` of cap/cat) into `loss.svg` and the
/// perplexity and refusal bars of `evals` (`LABEL=eval.json`) into `perplexity.svg` and `refusal.svg` in `out`.
pub fn plot_files(runs: &[String], evals: &[String], out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|e| tessera_core::Error::io(out, e))?;
    let runs: Vec<(String, serde_json::Value)> = read_labelled(runs)?;
    let curves: Vec<(String, Vec<f64>)> = runs
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                serde_json::from_value(v["train"]["loss_curve"].clone()).unwrap_or_default(),
            )
        })
        .collect();
    if !curves.is_empty() {
        let r: Vec<(&str, &[f64])> = curves
            .iter()
            .map(|(k, c)| (k.as_str(), c.as_slice()))
            .collect();
        loss_plot(&r, &out.join("loss.svg"), "Training loss")?;
    }
    let evals: Vec<(String, EvalResult)> = read_labelled(evals)?;
    if !evals.is_empty() {
        let e: Vec<(&str, &EvalResult)> = evals.iter().map(|(k, v)| (k.as_str(), v)).collect();
        perplexity_plot(
            &e,
            &out.join("perplexity.svg"),
            "Held-out perplexity per stream",
        )?;
        refusal_plot(&e, &out.join("refusal.svg"), "Refusal and over-refusal")?;
    }
    Ok(())
}
