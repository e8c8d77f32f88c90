//! The tournament report: a leaderboard per game and overall, head-to-head NRA, error profile, SVG plots.
use crate::metrics::{Leaderboard, Metrics};
use crate::Result;
use std::path::Path;
use tessera_core::report::{bar_plot_svg, Report};

fn f(x: f64, d: usize) -> String {
    format!("{x:.d$}")
}

fn board_table(r: &mut Report, b: &Leaderboard, regret: bool) {
    let mut header = vec![
        "agent",
        "NRA (mean vs opponents)",
        "Elo",
        "Bradley–Terry [95% CI]",
        "matches",
        "forfeit rate",
        "mean return",
    ];
    if regret {
        header.push("regret");
    }
    let rows: Vec<Vec<String>> = b
        .agents
        .iter()
        .map(|a| {
            let mut row = vec![
                a.agent.clone(),
                f(a.nra, 3),
                f(a.elo, 0),
                format!("{} [{}, {}]", f(a.bt, 0), f(a.bt_ci.0, 0), f(a.bt_ci.1, 0)),
                a.matches.to_string(),
                f(a.forfeit_rate, 3),
                if a.mean_return.is_finite() {
                    f(a.mean_return, 3)
                } else {
                    "–".into()
                },
            ];
            if regret {
                row.push(a.regret.map(|x| f(x, 3)).unwrap_or_else(|| "–".into()));
            }
            row
        })
        .collect();
    r.table(&header, &rows);
}

/// NRA of each agent per game (rows: games; columns: agents).
pub fn nra_matrix(m: &Metrics) -> (Vec<String>, Vec<Vec<String>>) {
    let agents: Vec<String> = m.overall.agents.iter().map(|a| a.agent.clone()).collect();
    let mut rows = Vec::new();
    for b in &m.games {
        let mut row = vec![b.game.map(|g| g.id().to_string()).unwrap_or_default()];
        for a in &agents {
            row.push(
                b.agents
                    .iter()
                    .find(|x| &x.agent == a)
                    .map(|x| f(x.nra, 3))
                    .unwrap_or_else(|| "–".into()),
            );
        }
        rows.push(row);
    }
    let mut overall = vec!["**mean over games**".to_string()];
    overall.extend(m.overall.agents.iter().map(|a| f(a.nra, 3)));
    rows.push(overall);
    (agents, rows)
}

/// Builds the report and writes `report.md`, `leaderboard.svg` and `nra_by_game.svg` into `dir`; image links
/// are `img_prefix` + file name (empty when the report sits beside the plots).
pub fn write_report(
    m: &Metrics,
    dir: &Path,
    title: &str,
    intro: &str,
    img_prefix: &str,
) -> Result<Report> {
    let mut r = Report::new(title);
    r.para(intro);
    r.para(&format!(
        "{} scored matches; completion rate {:.3} (matches finished without a forfeit). NRA = (Σfs(A) − Σfs(B)) / (Σfs(A) + Σfs(B)) per pairing (paper §2.2); a forfeit counts as a loss for the offender.",
        m.matches, m.completion_rate
    ));
    r.section("Overall leaderboard");
    board_table(&mut r, &m.overall, false);
    let (agents, rows) = nra_matrix(m);
    let mut header = vec!["game"];
    header.extend(agents.iter().map(|s| s.as_str()));
    r.subsection("NRA per game");
    r.table(&header, &rows);
    let bars: Vec<(String, f64)> = m
        .overall
        .agents
        .iter()
        .map(|a| (a.agent.clone(), a.nra))
        .collect();
    bar_plot_svg(
        dir.join("leaderboard.svg"),
        "Mean NRA over games",
        "NRA",
        &bars,
    )?;
    r.image(
        "overall leaderboard",
        &format!("{img_prefix}leaderboard.svg"),
    );
    if let Some(best) = m.overall.agents.first() {
        let per_game: Vec<(String, f64)> = m
            .games
            .iter()
            .filter_map(|b| {
                b.agents
                    .iter()
                    .find(|a| a.agent == best.agent)
                    .map(|a| (b.game.map(|g| g.id()).unwrap_or("?").to_string(), a.nra))
            })
            .collect();
        bar_plot_svg(
            dir.join("nra_by_game.svg"),
            &format!("NRA of {} per game", best.agent),
            "NRA",
            &per_game,
        )?;
        r.image(
            "NRA per game of the top agent",
            &format!("{img_prefix}nra_by_game.svg"),
        );
    }
    for b in &m.games {
        let Some(g) = b.game else { continue };
        r.section(&format!(
            "{} ({})",
            g.id(),
            if g.zero_sum() {
                "zero-sum: fs = 1/0.5/0"
            } else {
                "general-sum: fs = reward"
            }
        ));
        board_table(
            &mut r,
            b,
            matches!(
                g,
                crate::GameId::BlindAuction | crate::GameId::PrisonersDilemma
            ),
        );
        let rows: Vec<Vec<String>> = b
            .pairs
            .iter()
            .map(|(a, o, p)| {
                vec![
                    a.clone(),
                    o.clone(),
                    f(p.nra, 3),
                    format!("{}/{}/{}", p.wins, p.draws, p.losses),
                    format!("{} vs {}", f(p.score, 1), f(p.opponent_score, 1)),
                    p.forfeits.to_string(),
                ]
            })
            .collect();
        r.table(
            &["agent", "opponent", "NRA", "W/D/L", "Σfs", "forfeits"],
            &rows,
        );
    }
    r.section("Error profile (forfeits by kind)");
    if m.error_profile.is_empty() {
        r.para("No forfeits.");
    } else {
        let rows: Vec<Vec<String>> = m
            .error_profile
            .iter()
            .flat_map(|(a, kinds)| {
                kinds
                    .iter()
                    .map(move |(k, n)| vec![a.clone(), k.clone(), n.to_string()])
            })
            .collect();
        r.table(&["agent", "kind", "forfeits"], &rows);
    }
    r.write(dir.join("report.md"))?;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tournament::{read_records, run_tournament, scored, TournamentConfig};
    use crate::GameId;

    #[test]
    fn report_tables_are_well_formed_and_plots_exist() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = TournamentConfig::new(
            vec![GameId::Nim, GameId::BlindAuction, GameId::PrisonersDilemma],
            ["random", "mcts:sims=30", "tft"]
                .iter()
                .map(|s| s.parse().unwrap())
                .collect(),
        );
        cfg.matches = 4;
        let s = run_tournament(&cfg, dir.path(), &|_| {}).unwrap();
        assert!(s
            .skipped
            .iter()
            .any(|x| x.contains("tft does not play nim")));
        let m = crate::metrics::compute(&scored(&read_records(&s.records).unwrap()), 0, 20);
        let r = write_report(&m, dir.path(), "t", "intro", "").unwrap();
        let md = r.as_markdown();
        // Every table row has as many cells as its header.
        let mut cols = 0;
        for line in md.lines() {
            if line.starts_with('|') {
                let n = line.matches('|').count();
                if cols == 0 {
                    cols = n;
                }
                assert_eq!(n, cols, "ragged table row: {line}");
            } else {
                cols = 0;
            }
        }
        assert!(md.contains("regret"));
        assert!(
            dir.path().join("leaderboard.svg").exists()
                && dir.path().join("nra_by_game.svg").exists()
        );
        let ipd = m
            .games
            .iter()
            .find(|b| b.game == Some(GameId::PrisonersDilemma))
            .unwrap();
        assert_eq!(ipd.agents.len(), 3);
    }
}
