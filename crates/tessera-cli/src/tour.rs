//! `tessera tour`: runs every finished system at small scale and writes `report.md` + JSON under `runs/`.
use crate::cmd::{self, Ctx};
use clap::Args;
use tessera_core::record::RunDir;
use tessera_core::report::Report;

/// `tessera tour` arguments.
#[derive(Args)]
pub struct TourArgs {
    /// Where to write the run (default `runs/tour-<time>`).
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
    /// Only run these systems (comma-separated, e.g. `lm,arena`).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// One system's part of the tour (every crate's `tour` function returns one).
pub type Section = tessera_core::report::TourSection;

type SectionFn = fn(&Ctx, &RunDir) -> anyhow::Result<Option<Section>>;

/// Every system, in report order.
const SYSTEMS: &[(&str, SectionFn)] = &[
    ("lm", |c, d| Ok(Some(tessera_lm::tour::tour(d, c.offline)?))),
    ("serve", cmd::serve::tour),
    ("arena", cmd::arena::tour),
    ("graph", cmd::graph::tour),
    ("skip", |c, d| {
        Ok(Some(tessera_skip::tour::tour(d, c.offline)?))
    }),
    ("zo", cmd::zo::tour),
    ("kg", cmd::kg::tour),
    ("society", cmd::society::tour),
    ("qnewton", |c, d| {
        Ok(Some(tessera_qnewton::tour::tour(d, c.offline)?))
    }),
    ("prune", |c, d| {
        Ok(Some(tessera_prune::tour::tour(d, c.offline)?))
    }),
    ("bio", cmd::bio::tour),
    ("aurora", |c, d| {
        Ok(Some(tessera_aurora::tour::tour(d, c.offline)?))
    }),
    ("vlm", |c, d| {
        Ok(Some(tessera_vision::tour::tour(d, c.offline)?))
    }),
];

/// Runs the tour.
pub fn run(ctx: &Ctx, a: TourArgs) -> anyhow::Result<()> {
    let dir = match a.out {
        Some(p) => RunDir::at(p)?,
        None => RunDir::fresh("runs", "tour")?,
    };
    let mut report = Report::new("Tessera tour");
    report.para(&format!(
        "Each finished system ran once at small scale on its default model and data. Outputs are in `{}`.",
        dir.path().display()
    ));
    let mut summary = serde_json::Map::new();
    for (name, f) in SYSTEMS {
        if !a.only.is_empty() && !a.only.iter().any(|o| o == name) {
            continue;
        }
        eprintln!("tessera tour: {name} ...");
        let t0 = std::time::Instant::now();
        match f(ctx, &dir) {
            Ok(Some(s)) => {
                report.include(&s.report);
                summary.insert(s.title, s.json);
            }
            Ok(None) => {}
            Err(e) => {
                eprintln!("tessera tour: {name} failed: {e:#}");
                report.section(name).para(&format!("**Failed:** {e:#}"));
                summary.insert(
                    name.to_string(),
                    serde_json::json!({ "error": format!("{e:#}") }),
                );
            }
        }
        eprintln!(
            "tessera tour: {name} done in {:.1}s",
            t0.elapsed().as_secs_f64()
        );
    }
    let summary = serde_json::Value::Object(summary);
    dir.write_json("tour.json", &summary)?;
    report.write(dir.file("report.md"))?;
    eprintln!(
        "tessera tour: report at {}",
        dir.file("report.md").display()
    );
    if a.json {
        cmd::print_json(&serde_json::json!({ "dir": dir.path(), "results": summary }));
    }
    Ok(())
}
