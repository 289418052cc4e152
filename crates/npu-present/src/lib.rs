//! `npu-present`: results as people read them, shared by the front ends (the command
//! line and the Python package): a comparison as a terminal table, Markdown, HTML
//! (notebooks), CSV and SVG plots of accuracy against frames/s or energy per frame.
//! Strings only: the front ends write or show them. The application library below it
//! computes and does no presentation.

use npu_app::compare::{Comparison, Row};
use npu_data::metrics::Metric;

/// Everything that can go wrong presenting results.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A plot that cannot be drawn (nothing to draw, or the drawing backend failed).
    #[error("plot: {0}")]
    Plot(String),
    /// CSV that cannot be written.
    #[error("csv: {0}")]
    Csv(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `text` with HTML's special characters escaped.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn csv_err(e: csv::Error) -> Error {
    Error::Csv(e.to_string())
}

/// `1234567` as `1,234,567`.
fn thousands(v: u64) -> String {
    let s = v.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn pareto_text(r: &Row) -> &'static str {
    match (r.pareto_fps, r.pareto_energy) {
        (true, true) => "fps, energy",
        (true, false) => "fps",
        (false, true) => "energy",
        (false, false) => "",
    }
}

const HEADERS: [&str; 13] = [
    "scheme",
    "top-1 %",
    "Δ FP32",
    "cycles/frame",
    "frames/s",
    "latency µs",
    "µJ/frame",
    "mW",
    "weights B",
    "act. on-chip B",
    "act. SRAM B",
    "off-chip B/frame",
    "Pareto",
];

/// The score column's heading and the CSV column name for `m`.
pub fn score_names(m: Metric) -> (&'static str, &'static str) {
    use Metric;
    match m {
        Metric::Top1 => ("top-1 %", "top1_percent"),
        Metric::Top5 => ("top-5 %", "top5_percent"),
        Metric::Agreement => ("agree %", "agreement_percent"),
        Metric::Sqnr => ("SQNR dB", "sqnr_db"),
        Metric::Cosine => ("cosine", "cosine"),
        Metric::Mse => ("MSE", "mse"),
    }
}

/// A score as the table shows it.
fn score_text(m: Metric, v: f64) -> String {
    use Metric;
    match m {
        Metric::Cosine => format!("{v:.5}"),
        Metric::Mse => format!("{v:.6}"),
        _ => format!("{v:.2}"),
    }
}

/// The table's headings for a comparison scored by `m`.
fn headers(m: Metric) -> [String; 13] {
    let mut h = HEADERS.map(String::from);
    h[1] = score_names(m).0.to_string();
    h
}

/// A row as the table shows it.
trait Cells {
    /// The row's cells, its score under `metric`.
    fn cells(&self, metric: Metric) -> Vec<String>;
}

impl Cells for Row {
    fn cells(&self, metric: Metric) -> Vec<String> {
        let mut v = vec![self.label.clone()];
        if let Some(e) = &self.error {
            v.push("—".into());
            v.push("—".into());
            v.push(format!("cannot run: {e}"));
            v.resize(HEADERS.len(), String::new());
            return v;
        }
        v.push(score_text(metric, self.score));
        v.push(self.delta.map_or("—".into(), |d| {
            if self.key == "fp32" {
                "—".into()
            } else if metric == Metric::Mse || metric == Metric::Cosine {
                format!("{d:+.6}")
            } else {
                format!("{d:+.2}")
            }
        }));
        match &self.hw {
            Some(h) => {
                v.push(thousands(h.cycles));
                v.push(format!("{:.0}", h.fps));
                v.push(format!("{:.1}", h.latency_us));
                v.push(format!("{:.2}", h.energy_uj));
                v.push(format!("{:.1}", h.power_mw));
                v.push(thousands(h.weight_bytes));
                v.push(thousands(h.onchip_act_bytes));
                v.push(thousands(h.sram_act_bytes));
                v.push(thousands(h.offchip_bytes));
                v.push(pareto_text(self).into());
            }
            None => v.extend(std::iter::repeat_n("—".to_string(), HEADERS.len() - 4).chain([String::new()])),
        }
        v
    }
}

/// A comparison as people read it: a terminal table, Markdown and CSV.
pub trait Present {
    /// The heading line.
    fn title(&self) -> String;
    /// The terminal table.
    fn table(&self) -> String;
    /// The table in Markdown.
    fn markdown(&self) -> String;
    /// The rows as CSV.
    fn csv(&self) -> Result<Vec<u8>>;
    /// The table as an HTML `<table>` under its title (notebooks show it).
    fn html(&self) -> String;
}

impl Present for Comparison {
    fn title(&self) -> String {
        let images = self.rows.iter().map(|r| r.images).max().unwrap_or(0);
        let against = if self.metric.needs_reference() { " against FP32" } else { "" };
        let shard = self.part.map_or(String::new(), |p| {
            format!(" (shard {} of {}: samples {}..{} of {})", p.shard, p.shards, p.start, p.end, p.total)
        });
        format!(
            "{} on {} ({} MHz), {}{against} on {images} samples{shard} of {}",
            self.model,
            self.hw,
            self.clock_mhz,
            self.metric.heading(),
            self.data
        )
    }

    fn table(&self) -> String {
        let heads = headers(self.metric);
        let cells: Vec<Vec<String>> = self.rows.iter().map(|r| r.cells(self.metric)).collect();
        let widths: Vec<usize> = (0..HEADERS.len())
            .map(|i| {
                cells
                    .iter()
                    .filter(|c| !c[i].starts_with("cannot run"))
                    .map(|c| c[i].chars().count())
                    .chain([heads[i].chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |c: &[String]| {
            let mut s = String::new();
            for (i, cell) in c.iter().enumerate() {
                let pad = widths[i].saturating_sub(cell.chars().count());
                if i == 0 || i == HEADERS.len() - 1 || cell.starts_with("cannot run") {
                    s.push_str(cell);
                    s.push_str(&" ".repeat(pad));
                } else {
                    s.push_str(&" ".repeat(pad));
                    s.push_str(cell);
                }
                s.push_str("  ");
            }
            s.trim_end().to_string()
        };
        let mut out = format!("{}\n\n", self.title());
        out.push_str(&line(&heads));
        out.push('\n');
        for c in &cells {
            out.push_str(&line(c));
            out.push('\n');
        }
        out
    }

    fn markdown(&self) -> String {
        let heads = headers(self.metric);
        let mut out = format!("{}\n\n| {} |\n|{}\n", self.title(), heads.join(" | "), "---|".repeat(HEADERS.len()));
        for r in &self.rows {
            out.push_str(&format!("| {} |\n", r.cells(self.metric).join(" | ")));
        }
        out
    }

    fn html(&self) -> String {
        let heads = headers(self.metric);
        let cell = |tag: &str, i: usize, text: &str| {
            let align =
                if i == 0 || i == HEADERS.len() - 1 || text.starts_with("cannot run") { "left" } else { "right" };
            format!("<{tag} style=\"text-align:{align}\">{}</{tag}>", escape_html(text))
        };
        let mut out =
            format!("<div class=\"npu-comparison\"><p><b>{}</b></p>\n<table>\n<thead><tr>", escape_html(&self.title()));
        for (i, h) in heads.iter().enumerate() {
            out.push_str(&cell("th", i, h));
        }
        out.push_str("</tr></thead>\n<tbody>\n");
        for r in &self.rows {
            out.push_str("<tr>");
            let cells = r.cells(self.metric);
            // A row that could not run spans the figures' columns with its reason.
            if let Some(k) = cells.iter().position(|c| c.starts_with("cannot run")) {
                for (i, c) in cells[..k].iter().enumerate() {
                    out.push_str(&cell("td", i, c));
                }
                out.push_str(&format!(
                    "<td colspan=\"{}\" style=\"text-align:left\">{}</td>",
                    HEADERS.len() - k,
                    escape_html(&cells[k])
                ));
            } else {
                for (i, c) in cells.iter().enumerate() {
                    out.push_str(&cell("td", i, c));
                }
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</tbody>\n</table></div>\n");
        out
    }

    // The `csv` crate quotes what needs it; numbers rounded to what the measurement
    // supports.
    fn csv(&self) -> Result<Vec<u8>> {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record([
            "key",
            "label",
            "images",
            "correct",
            score_names(self.metric).1,
            "delta",
            "cycles",
            "fps",
            "latency_us",
            "energy_uj",
            "power_mw",
            "weight_bytes",
            "onchip_act_bytes",
            "sram_act_bytes",
            "offchip_bytes",
            "roofline_ratio",
            "cpu_layers",
            "pareto_fps",
            "pareto_energy",
            "error",
        ])
        .map_err(csv_err)?;
        for r in &self.rows {
            let h = r.hw.as_ref();
            let f = |v: Option<String>| v.unwrap_or_default();
            w.write_record([
                r.key.clone(),
                r.label.clone(),
                r.images.to_string(),
                r.correct.map(|c| c.to_string()).unwrap_or_default(),
                if r.score.is_finite() && r.error.is_none() { score_text(self.metric, r.score) } else { String::new() },
                f(r.delta.filter(|d| d.is_finite() && r.error.is_none()).map(|d| score_text(self.metric, d))),
                f(h.map(|h| h.cycles.to_string())),
                f(h.map(|h| format!("{:.1}", h.fps))),
                f(h.map(|h| format!("{:.2}", h.latency_us))),
                f(h.map(|h| format!("{:.3}", h.energy_uj))),
                f(h.map(|h| format!("{:.2}", h.power_mw))),
                f(h.map(|h| h.weight_bytes.to_string())),
                f(h.map(|h| h.onchip_act_bytes.to_string())),
                f(h.map(|h| h.sram_act_bytes.to_string())),
                f(h.map(|h| h.offchip_bytes.to_string())),
                f(h.map(|h| format!("{:.4}", h.roofline_ratio))),
                f(h.map(|h| h.cpu_layers.to_string())),
                r.pareto_fps.to_string(),
                r.pareto_energy.to_string(),
                r.error.clone().unwrap_or_default(),
            ])
            .map_err(csv_err)?;
        }
        w.into_inner().map_err(|e| Error::Csv(e.to_string()))
    }
}

/// Which figure goes on the x axis of a plot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    /// Frames per second (more is better).
    Fps,
    /// Energy per frame in µJ (less is better).
    Energy,
}

/// How far below the best row's accuracy a row may fall and still be drawn: rows below
/// it (a collapsed scheme, 10 % on ten classes) would squash the others into a strip, so
/// they are listed beside the chart instead.
pub const PLOT_COLLAPSED_POINTS: f64 = 15.0;

/// An SVG plot of accuracy against frames/s or energy per frame: one numbered point per
/// scheme, the Pareto front through the points on it, a legend naming every point, and
/// the rows left out of the axes (collapsed accuracy) listed under the legend.
pub fn plot(c: &Comparison, axis: Axis) -> Result<String> {
    use plotters::prelude::*;
    let e = |e: plotters::drawing::DrawingAreaErrorKind<std::io::Error>| Error::Plot(e.to_string());
    let all: Vec<(usize, &Row, f64, f64)> = c
        .rows
        .iter()
        .filter_map(|r| {
            let h = r.hw.as_ref()?;
            Some((r, if axis == Axis::Fps { h.fps } else { h.energy_uj }, r.score))
        })
        .enumerate()
        .map(|(i, (r, x, y))| (i + 1, r, x, y))
        .collect();
    if all.is_empty() {
        return Err(Error::Plot("nothing ran on the NPU: no points to plot".into()));
    }
    // Scores a scale cannot hold (the FP32 row's SQNR against itself is +∞) are named in
    // the legend, not drawn.
    let fp32_row = c.rows.iter().find(|r| r.key == "fp32" && r.error.is_none()).map(|r| r.score);
    let fp32 = fp32_row.filter(|v| v.is_finite());
    let (all, infinite): (Vec<_>, Vec<_>) = all.into_iter().partition(|p| p.3.is_finite());
    if all.is_empty() {
        return Err(Error::Plot("no finite scores to plot".into()));
    }
    let percent = c.metric.is_percent();
    let value = |v: f64| if percent { format!("{v:.2}%") } else { c.metric.show(v) };
    // Collapsed rows are left out only on a percentage scale, measured from the best row
    // the NPU ran: the FP32 line may be far above all of them, and they are all drawn
    // then (measured from it, none was left and plotting hung).
    let best_run = all.iter().map(|p| p.3).fold(f64::MIN, f64::max);
    let (shown, collapsed): (Vec<&(usize, &Row, f64, f64)>, Vec<_>) =
        all.iter().partition(|p| !percent || p.3 >= best_run - PLOT_COLLAPSED_POINTS);
    let (xlo, xhi) = shown.iter().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.2), b.max(p.2)));
    let (ylo, yhi) = shown.iter().map(|p| p.3).chain(fp32).fold((f64::MAX, f64::MIN), |(a, b), y| (a.min(y), b.max(y)));
    let ymin_pad = if percent { 0.25 } else { (yhi.abs() * 1e-3).max(1e-9) };
    let (xpad, ypad) = (((xhi - xlo) * 0.08).max(xhi.abs() * 0.05).max(1e-3), ((yhi - ylo) * 0.12).max(ymin_pad));
    let (xname, pareto): (&str, fn(&Row) -> bool) = match axis {
        Axis::Fps => ("frames/s (simulated)", |r| r.pareto_fps),
        Axis::Energy => ("energy per frame, µJ (simulated)", |r| r.pareto_energy),
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1180, 600)).into_drawing_area();
        root.fill(&WHITE).map_err(e)?;
        let title = match axis {
            Axis::Fps => format!("{} on {}: {} vs frames/s", c.model, c.hw, c.metric.heading()),
            Axis::Energy => format!("{} on {}: {} vs energy per frame", c.model, c.hw, c.metric.heading()),
        };
        let root = root.titled(&title, ("sans-serif", 22)).map_err(e)?;
        let (left, right) = root.split_horizontally(760);
        let mut chart = ChartBuilder::on(&left)
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(60)
            .build_cartesian_2d((xlo - xpad).max(0.0)..xhi + xpad, ylo - ypad..yhi + ypad)
            .map_err(e)?;
        let xspan = xhi - xlo;
        chart
            .configure_mesh()
            .light_line_style(WHITE)
            .x_label_formatter(&|v| {
                if axis == Axis::Fps || xspan >= 20.0 {
                    format!("{v:.0}")
                } else if xspan >= 2.0 {
                    format!("{v:.1}")
                } else {
                    format!("{v:.2}")
                }
            })
            .y_label_formatter(&|v| if yhi - ylo >= 5.0 { format!("{v:.0}") } else { format!("{v:.1}") })
            .x_desc(xname)
            .y_desc(format!("{} (from the simulator's outputs)", score_names(c.metric).0))
            .draw()
            .map_err(e)?;
        if let Some(fp) = fp32 {
            chart
                .draw_series(LineSeries::new(
                    [((xlo - xpad).max(0.0), fp), (xhi + xpad, fp)],
                    BLACK.mix(0.4).stroke_width(1),
                ))
                .map_err(e)?;
        }
        let mut front: Vec<(f64, f64)> = shown.iter().filter(|p| pareto(p.1)).map(|p| (p.2, p.3)).collect();
        front.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart.draw_series(LineSeries::new(front, RED.stroke_width(2))).map_err(e)?;
        // Numbers beside the points; points that (nearly) coincide stack their numbers.
        let (xs, ys) = ((xhi - xlo).max(1e-9), (yhi - ylo).max(1e-9));
        for (k, (n, r, x, y)) in shown.iter().enumerate() {
            let color = if pareto(r) { RED } else { BLUE };
            let near =
                shown[..k].iter().filter(|p| ((p.2 - x) / xs).abs() < 0.03 && ((p.3 - y) / ys).abs() < 0.04).count();
            let label = Text::new(n.to_string(), (8 + 16 * near as i32, -6), ("sans-serif", 14).into_font());
            chart
                .draw_series([EmptyElement::at((*x, *y)) + Circle::new((0, 0), 5, color.filled()) + label])
                .map_err(e)?;
        }
        // The legend: every mark, then every point by number, then what is not drawn.
        let font = ("sans-serif", 14).into_font();
        let mut y = 30;
        let line = |y: i32, text: String, color: RGBColor, mark: u8| -> Result<()> {
            match mark {
                0 => right.draw(&Circle::new((14, y), 5, color.filled())).map_err(e)?,
                1 => right.draw(&PathElement::new([(6, y), (24, y)], color.stroke_width(2))).map_err(e)?,
                _ => {}
            }
            right.draw(&Text::new(text, (32, y - 8), font.clone())).map_err(e)?;
            Ok(())
        };
        if let Some(fp) = fp32 {
            line(y, format!("FP32 reference ({})", value(fp)), RGBColor(140, 140, 140), 1)?;
            y += 20;
        }
        line(y, "Pareto front".into(), RED, 1)?;
        y += 20;
        line(y, "on the front".into(), RED, 0)?;
        y += 20;
        line(y, "dominated".into(), BLUE, 0)?;
        y += 30;
        for (n, r, x, yv) in &shown {
            let v = if axis == Axis::Fps { format!("{x:.0} fps") } else { format!("{x:.2} µJ") };
            line(y, format!("{n}  {}: {}, {v}", r.label, value(*yv)), BLACK, 2)?;
            y += 20;
        }
        if !collapsed.is_empty() {
            y += 10;
            line(y, format!("not drawn: accuracy over {PLOT_COLLAPSED_POINTS:.0} points below the best"), BLACK, 2)?;
            y += 20;
            for (n, r, _, yv) in &collapsed {
                line(y, format!("{n}  {}: {}", r.label, value(*yv)), RGBColor(110, 110, 110), 2)?;
                y += 20;
            }
        }
        let off_scale: Vec<String> = fp32_row
            .filter(|v| !v.is_finite())
            .map(|v| format!("FP32 reference: {}", value(v)))
            .into_iter()
            .chain(infinite.iter().map(|(n, r, _, yv)| format!("{n}  {}: {}", r.label, value(*yv))))
            .collect();
        if !off_scale.is_empty() {
            y += 10;
            line(y, "not drawn: off the scale".into(), BLACK, 2)?;
            y += 20;
            for t in off_scale {
                line(y, t, RGBColor(110, 110, 110), 2)?;
                y += 20;
            }
        }
        root.present().map_err(e)?;
    }
    Ok(svg)
}
