//! Draws accuracy-vs-sparsity series from JSON (`{"title": .., "series": [{"label": .., "points": [[x, y], ..]}]}`)
//! with the shared plotting code: `... --example plot_series -- IN.json OUT.svg`.
use tessera_core::report::{line_plot_svg, Series};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().collect();
    let (inp, out) = (
        a.get(1).ok_or("need IN.json")?,
        a.get(2).ok_or("need OUT.svg")?,
    );
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(inp)?)?;
    let mut series = Vec::new();
    for s in v["series"].as_array().ok_or("no series")? {
        let pts = s["points"].as_array().ok_or("no points")?;
        let pts: Vec<(f64, f64)> = pts
            .iter()
            .map(|p| (p[0].as_f64().unwrap_or(0.0), p[1].as_f64().unwrap_or(0.0)))
            .collect();
        series.push(Series::new(s["label"].as_str().unwrap_or("?"), pts));
    }
    line_plot_svg(
        out,
        v["title"].as_str().unwrap_or(""),
        "sparsity (fraction of edges removed)",
        "test accuracy (%)",
        &series,
    )?;
    Ok(())
}
