//! SVG plots: infection by hop and round, and attack loss curves (drawn with `tessera_core::report`).
use crate::attack::AttackResult;
use crate::error::Result;
use crate::society::SocietyResult;
use std::path::Path;
use tessera_core::report::{line_plot_svg, Series};

/// Infected fraction per round, one line per hop distance plus the overall fraction.
pub fn infection_plot(res: &SocietyResult, path: &Path) -> Result<()> {
    let mut series: Vec<Series> = res
        .infected_by_hop_round
        .iter()
        .map(|(d, v)| {
            Series::new(
                format!("hop {d}"),
                v.iter().enumerate().map(|(r, &x)| (r as f64, x)).collect(),
            )
        })
        .collect();
    series.push(Series::new(
        "all agents",
        res.infected_by_round
            .iter()
            .enumerate()
            .map(|(r, &x)| (r as f64, x))
            .collect(),
    ));
    line_plot_svg(
        path,
        &format!(
            "Infection by hop and round ({}, defence {}, operative joins at round {})",
            res.topology, res.defence, res.join_round
        ),
        "round",
        "infected fraction",
        &series,
    )?;
    Ok(())
}

/// Loss curves of several attacks, labelled.
pub fn loss_plot(runs: &[(String, &AttackResult)], path: &Path) -> Result<()> {
    let series: Vec<Series> = runs
        .iter()
        .filter(|(_, r)| !r.loss.is_empty())
        .map(|(label, r)| {
            Series::new(
                label.clone(),
                r.loss
                    .iter()
                    .enumerate()
                    .map(|(i, &l)| (i as f64 + 1.0, l))
                    .collect(),
            )
        })
        .collect();
    if series.is_empty() {
        return Ok(());
    }
    line_plot_svg(path, "Sheep target cross-entropy", "step", "loss", &series)?;
    Ok(())
}

/// A readable Markdown report of a society run (tables and the infection plot, `infection.svg` beside it).
pub fn society_report(res: &SocietyResult) -> tessera_core::report::Report {
    let mut rep = tessera_core::report::Report::new(&format!(
        "Society run: {} agents, {}, defence {}",
        res.agents, res.topology, res.defence
    ));
    rep.para(&format!(
        "Operative (agent 0) joins at round {} with: `{}`. Target: `{}`. Baseline infection before it joins: {:.2}.",
        res.join_round, res.injection, res.target, res.baseline_infected
    ));
    let rows: Vec<Vec<String>> = res
        .infected_by_hop_round
        .iter()
        .map(|(d, v)| {
            let mut r = vec![d.to_string(), format!("{:.2}", res.infected_by_hop[d])];
            r.extend(v.iter().map(|x| format!("{x:.2}")));
            r
        })
        .collect();
    let mut head: Vec<String> = vec!["hop".into(), "ever infected".into()];
    head.extend((0..res.rounds).map(|r| format!("round {r}")));
    let head: Vec<&str> = head.iter().map(String::as_str).collect();
    rep.table(&head, &rows);
    rep.image("infection by hop and round", "infection.svg");
    let f = |x: Option<f64>| x.map_or("n/a".to_string(), |v| format!("{v:.2}"));
    rep.para(&format!(
        "Defence {}: detection rate {}, false-positive rate {} ({:?}); perplexity threshold {}.",
        res.defence,
        f(res.detection_rate),
        f(res.false_positive_rate),
        res.defence_counts,
        f(res.ppl_threshold)
    ));
    let rows: Vec<Vec<String>> = res
        .infected_by_backend
        .iter()
        .map(|(k, v)| vec!["backend".into(), k.clone(), format!("{v:.2}")])
        .chain(
            res.infected_by_role
                .iter()
                .map(|(k, v)| vec!["role".into(), k.clone(), format!("{v:.2}")]),
        )
        .collect();
    rep.table(&["group", "name", "ever infected"], &rows);
    rep
}
