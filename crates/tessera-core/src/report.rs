//! Readable reports: Markdown with tables, and SVG plots drawn with `plotters` (no fonts or C libraries needed).
use crate::{Error, Result};
use plotters::prelude::*;
use std::path::Path;

/// A Markdown document built section by section.
#[derive(Debug, Default, Clone)]
pub struct Report {
    body: String,
}

impl Report {
    /// An empty report whose first line is `# title`.
    pub fn new(title: &str) -> Self {
        Report {
            body: format!("# {title}\n\n"),
        }
    }
    /// Starts a `##` section.
    pub fn section(&mut self, title: &str) -> &mut Self {
        self.body.push_str(&format!("## {title}\n\n"));
        self
    }
    /// Starts a `###` subsection.
    pub fn subsection(&mut self, title: &str) -> &mut Self {
        self.body.push_str(&format!("### {title}\n\n"));
        self
    }
    /// Appends a paragraph.
    pub fn para(&mut self, text: &str) -> &mut Self {
        self.body.push_str(text.trim_end());
        self.body.push_str("\n\n");
        self
    }
    /// Appends a fenced code block.
    pub fn code(&mut self, text: &str) -> &mut Self {
        self.body.push_str("```\n");
        self.body.push_str(text.trim_end());
        self.body.push_str("\n```\n\n");
        self
    }
    /// Appends a table. Cells containing `|` are escaped.
    pub fn table(&mut self, header: &[&str], rows: &[Vec<String>]) -> &mut Self {
        self.body.push_str(&markdown_table(header, rows));
        self.body.push('\n');
        self
    }
    /// Appends an image link (relative path, e.g. an SVG written beside the report).
    pub fn image(&mut self, alt: &str, rel_path: &str) -> &mut Self {
        self.body.push_str(&format!("![{alt}]({rel_path})\n\n"));
        self
    }
    /// Appends another report's body (its title line becomes a `##` section).
    pub fn include(&mut self, other: &Report) -> &mut Self {
        for line in other.body.lines() {
            if line.starts_with('#') {
                self.body.push('#');
            }
            self.body.push_str(line);
            self.body.push('\n');
        }
        self
    }
    /// The Markdown text.
    pub fn as_markdown(&self) -> &str {
        &self.body
    }
    /// Writes the report atomically.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        crate::fsx::write_atomic(path, self.body.as_bytes())
    }
}

/// One system's part of `tessera tour`: what every crate's `tour` function returns.
///
/// Convention: `pub fn tour(dir: &tessera_core::record::RunDir, offline: bool) -> Result<TourSection, CrateError>`
/// runs the system at small scale, writes its files (plots, JSON) into `dir` and returns the section; the CLI
/// includes `report` in `report.md` and puts `json` under `title` in `tour.json`.
#[derive(Debug, Clone)]
pub struct TourSection {
    /// Key of the section's results in `tour.json`.
    pub title: String,
    /// Markdown for the section (its `#` title becomes `##` in the tour report).
    pub report: Report,
    /// Machine-readable results.
    pub json: serde_json::Value,
}

impl TourSection {
    /// A section from its parts.
    pub fn new(title: impl Into<String>, report: Report, json: serde_json::Value) -> Self {
        TourSection {
            title: title.into(),
            report,
            json,
        }
    }
}

/// Renders a Markdown table.
pub fn markdown_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let esc = |s: &str| s.replace('|', "\\|").replace('\n', " ");
    let mut out = String::new();
    out.push_str(&format!(
        "| {} |\n",
        header
            .iter()
            .map(|h| esc(h))
            .collect::<Vec<_>>()
            .join(" | ")
    ));
    out.push_str(&format!("|{}\n", "---|".repeat(header.len())));
    for r in rows {
        out.push_str(&format!(
            "| {} |\n",
            r.iter().map(|c| esc(c)).collect::<Vec<_>>().join(" | ")
        ));
    }
    out
}

/// One named line of (x, y) points.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend label.
    pub label: String,
    /// The points, in drawing order.
    pub points: Vec<(f64, f64)>,
}

impl Series {
    /// A series from a label and points.
    pub fn new(label: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Series {
            label: label.into(),
            points,
        }
    }
}

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

fn plot_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::format(path, format!("plotting failed: {e}"))
}

fn range(vals: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in vals.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if (hi - lo).abs() < 1e-12 {
        return (lo - 0.5, hi + 0.5);
    }
    let pad = (hi - lo) * 0.05;
    (lo - pad, hi + pad)
}

/// Draws a line plot (with point markers) of several series to an SVG file.
pub fn line_plot_svg(
    path: impl AsRef<Path>,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> Result<()> {
    let path = path.as_ref();
    let (x0, x1) = range(series.iter().flat_map(|s| s.points.iter().map(|p| p.0)));
    let (y0, y1) = range(series.iter().flat_map(|s| s.points.iter().map(|p| p.1)));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 440)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(|e| plot_err(path, e))?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .draw()
            .map_err(|e| plot_err(path, e))?;
        for (i, s) in series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(
                    s.points.iter().copied(),
                    color.stroke_width(2),
                ))
                .map_err(|e| plot_err(path, e))?
                .label(s.label.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                });
            chart
                .draw_series(s.points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(|e| plot_err(path, e))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| plot_err(path, e))?;
        root.present().map_err(|e| plot_err(path, e))?;
    }
    crate::fsx::write_atomic(path, svg.as_bytes())
}

/// Draws a horizontal-category bar chart (one bar per label) to an SVG file.
pub fn bar_plot_svg(
    path: impl AsRef<Path>,
    title: &str,
    y_label: &str,
    bars: &[(String, f64)],
) -> Result<()> {
    let path = path.as_ref();
    let (mut y0, y1) = range(bars.iter().map(|b| b.1).chain(std::iter::once(0.0)));
    if y0 > 0.0 {
        y0 = 0.0;
    }
    let n = bars.len().max(1) as i32;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 440)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(60)
            .y_label_area_size(60)
            .build_cartesian_2d((0..n).into_segmented(), y0..y1)
            .map_err(|e| plot_err(path, e))?;
        let labels: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
        chart
            .configure_mesh()
            .y_desc(y_label)
            .x_labels(bars.len())
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => labels.get(*i as usize).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .draw()
            .map_err(|e| plot_err(path, e))?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, b)| {
                let color = PALETTE[i % PALETTE.len()];
                let i = i as i32;
                Rectangle::new(
                    [
                        (SegmentValue::Exact(i), 0.0f64.max(y0)),
                        (SegmentValue::Exact(i + 1), b.1),
                    ],
                    color.filled(),
                )
            }))
            .map_err(|e| plot_err(path, e))?;
        root.present().map_err(|e| plot_err(path, e))?;
    }
    crate::fsx::write_atomic(path, svg.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_escapes_pipes() {
        let t = markdown_table(&["a", "b"], &[vec!["x|y".into(), "1".into()]]);
        assert!(t.contains("x\\|y"));
        assert_eq!(t.lines().count(), 3);
    }

    #[test]
    fn plots_write_svg() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p.svg");
        line_plot_svg(
            &p,
            "t",
            "x",
            "y",
            &[Series::new("s", vec![(0.0, 1.0), (1.0, 2.0)])],
        )
        .unwrap();
        let s = std::fs::read_to_string(&p).unwrap();
        assert!(s.starts_with("<svg") && s.contains("polyline"));
        let q = dir.path().join("b.svg");
        bar_plot_svg(&q, "t", "y", &[("a".into(), 1.0), ("b".into(), -0.5)]).unwrap();
        assert!(std::fs::read_to_string(&q).unwrap().contains("<rect"));
    }
}
