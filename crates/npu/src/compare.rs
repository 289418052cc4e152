//! `npu compare`: quantization schemes side by side on modeled hardware. For every
//! scheme the model is quantized, compiled and run through the simulator: top-1 accuracy
//! comes from the simulator's own outputs on every image, and cycles, frames/s, latency,
//! energy and traffic from the same compiled program (timing does not depend on the
//! data, so one traced run gives them, and the images replay its functional order).

use std::path::Path;

use anyhow::{bail, Result};

pub use npu_app::argmax;
pub use npu_app::compare::{Comparison, Row, RowSpec};
pub use npu_app::HwFigures;
use npu_quant::Scheme;

use crate::load;

/// The rows `npu compare` knows, in table order: `fp32`, then the named recipes.
pub fn row_keys() -> Vec<&'static str> {
    std::iter::once("fp32").chain(npu_app::RECIPES.iter().map(|(k, _)| *k)).collect()
}

/// What to compare.
#[derive(Debug, Clone)]
pub struct Options {
    /// Model (zoo:NAME, .onnx, .npum).
    pub model: String,
    /// Test and calibration data, preprocessing flags and the metric.
    pub source: DataSource,
    /// Hardware preset or RON file.
    pub hw: String,
    /// Row keys (from [`row_keys`]).
    pub schemes: Vec<String>,
    /// Images (default: the whole test set).
    pub limit: Option<usize>,
    /// Threads over images.
    pub jobs: usize,
    /// Calibration images (min/max, embedded training subset).
    pub calib: usize,
    /// No progress bars.
    pub quiet: bool,
    /// Further rows: recipes to quantize, or models already quantized (retrained ones).
    pub extra: Vec<Extra>,
    /// Only this shard of the test samples (`I`, `N`): the I-th of N contiguous blocks.
    pub shard: Option<(usize, usize)>,
}

/// Where a comparison's samples come from and how they are scored.
#[derive(Debug, Clone, Default)]
pub struct DataSource {
    /// Test data (`--data`); `None`: the embedded test set.
    pub data: Option<std::path::PathBuf>,
    /// Labels for a .npy or IDX test file.
    pub labels: Option<std::path::PathBuf>,
    /// Calibration data (`--calib-data`); `None`: the embedded training subset when the
    /// test data are the embedded set, else the test data themselves.
    pub calib_data: Option<std::path::PathBuf>,
    /// Labels for a .npy or IDX calibration file.
    pub calib_labels: Option<std::path::PathBuf>,
    /// Preprocessing flags.
    pub pre: npu_data::Overrides,
    /// The metric; `None`: the test data's default.
    pub metric: Option<npu_data::metrics::Metric>,
}

/// A row beyond the named schemes.
#[derive(Debug, Clone)]
pub enum Extra {
    /// A scheme or recipe to quantize with (calibrated like the named rows).
    Recipe {
        /// Row key.
        key: String,
        /// Row description.
        label: String,
        /// The scheme.
        scheme: Scheme,
    },
    /// A model already quantized (e.g. by `npu qat`).
    Quantized {
        /// Row key.
        key: String,
        /// Row description.
        label: String,
        /// The model.
        model: Box<npu_quant::QModel>,
    },
}

/// A row from a file: a RON recipe (`.ron`, quantized here) or a quantized model
/// (`.npuq`, e.g. from `npu qat`), keyed by the file's stem.
pub fn extra_from_file(path: &Path) -> Result<Extra> {
    let key = path.file_stem().map_or("extra".into(), |s| s.to_string_lossy().into_owned());
    if path.extension().is_some_and(|e| e == "npuq") {
        let q = load::quantized(path)?;
        let label =
            format!("{} ({})", q.scheme.name, path.file_name().map_or(key.clone(), |f| f.to_string_lossy().into()));
        return Ok(Extra::Quantized { key, label, model: Box::new(q) });
    }
    let text = load::read_text(path)?;
    let scheme: Scheme =
        ron::from_str(&text).map_err(|e| anyhow::anyhow!("{}: not a valid recipe: {e}", path.display()))?;
    Ok(Extra::Recipe { key, label: format!("recipe {}", scheme.name), scheme })
}

/// Parses `--schemes`: `all` or a comma-separated list of [`row_keys`].
pub fn parse_schemes(list: &str) -> Result<Vec<String>> {
    if list == "all" {
        return Ok(row_keys().into_iter().map(String::from).collect());
    }
    let mut out = Vec::new();
    for k in list.split(',').map(str::trim).filter(|k| !k.is_empty()) {
        let keys = row_keys();
        if !keys.contains(&k) {
            bail!("unknown scheme `{k}` in --schemes (expected `all` or some of: {})", keys.join(", "));
        }
        out.push(k.to_string());
    }
    if out.is_empty() {
        bail!("--schemes is empty (expected `all` or a comma-separated list)");
    }
    Ok(out)
}

/// Progress bars for the rows of a comparison, one per task, drawn from worker threads.
pub struct Bars {
    mp: indicatif::MultiProgress,
    bars: std::sync::Mutex<Vec<(String, indicatif::ProgressBar)>>,
    quiet: bool,
}

impl Bars {
    /// Bars on stderr, or none when `quiet`.
    pub fn new(quiet: bool) -> Bars {
        let mp = if quiet {
            indicatif::MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::hidden())
        } else {
            indicatif::MultiProgress::new()
        };
        Bars { mp, bars: std::sync::Mutex::new(Vec::new()), quiet }
    }

    fn with(&self, label: &str, f: impl FnOnce(&indicatif::ProgressBar)) {
        if let Ok(bars) = self.bars.lock() {
            if let Some((_, b)) = bars.iter().rev().find(|(l, _)| l == label) {
                f(b);
            }
        }
    }
}

impl npu_app::Progress for Bars {
    fn begin(&self, label: &str, total: usize) {
        if self.quiet {
            return;
        }
        let pb = self.mp.add(indicatif::ProgressBar::new(total as u64));
        pb.set_style(
            indicatif::ProgressStyle::with_template("{msg:<46} [{bar:24}] {pos}/{len} images, {per_sec}, ETA {eta}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        pb.set_message(label.to_string());
        if let Ok(mut bars) = self.bars.lock() {
            bars.push((label.to_string(), pb));
        }
    }
    fn advance(&self, label: &str, done: usize) {
        self.with(label, |b| b.set_position(done as u64));
    }
    fn end(&self, label: &str) {
        self.with(label, |b| b.finish());
    }
}

/// Runs the comparison `o` describes: the model, hardware and images loaded, the rows
/// resolved (a full comparison of a zoo architecture adds its committed retrained models
/// and recipes; an int8 .tflite adds its own quantization), then [`npu_app::compare`].
pub fn compare(o: &Options) -> Result<Comparison> {
    use crate::data::{load as load_data, Purpose};
    let src = &o.source;
    let mut m = load::model(Path::new(&o.model))?;
    let hw = load::hardware(&o.hw)?;
    let mut test = load_data(src.data.as_deref(), src.labels.as_deref(), Purpose::Test)?.limit(o.limit, "--limit")?;
    m.preprocess = test.preprocess(&m.preprocess, &src.pre)?;
    // An int8 TFLite given its own int8 inputs: every row, the float ones too, sees the
    // values they stand for.
    let shipped =
        if load::is_tflite(Path::new(&o.model)) { load::tflite(Path::new(&o.model))?.quantized } else { None };
    if let Some(q) = &shipped {
        crate::data::dequantize_for(q, &mut test);
    }
    // Calibration: --calib-data; the embedded training subset beside the embedded test
    // set; an IDX directory's train-* files beside its t10k-* ones; else the test data
    // themselves (said in the title).
    let idx_train = src.data.as_deref().filter(|d| crate::data::has_idx(d, Purpose::Train));
    let (calib, calib_origin) = match (&src.calib_data, test.embedded) {
        (None, false) if idx_train.is_some() => {
            let c = load_data(idx_train, None, Purpose::Train)?;
            let origin = c.origin.clone();
            (c.ds, Some(origin))
        }
        (Some(p), _) => {
            let mut c = load_data(Some(p), src.calib_labels.as_deref(), Purpose::Train)?;
            if let Some(q) = &shipped {
                crate::data::dequantize_for(q, &mut c);
            }
            let origin = c.origin.clone();
            (c.ds, Some(origin))
        }
        (None, true) => (load_data(None, None, Purpose::Train)?.ds, None),
        (None, false) => (test.ds.clone(), Some("the same samples".to_string())),
    };
    if o.calib > calib.len() {
        crate::usage!("--calib {}: the calibration data have {} samples", o.calib, calib.len());
    }
    let metric = src.metric.unwrap_or_else(|| npu_data::metrics::Metric::default_for(&test.ds));
    let origin = match &calib_origin {
        Some(c) => format!("{}, calibrated on {c}", test.origin),
        None => test.origin.clone(),
    };
    let mut rows = o.schemes.iter().map(|k| RowSpec::named(k, o.calib)).collect::<npu_app::Result<Vec<_>>>()?;
    if let Some(mut q) = shipped {
        let key = npu_tflite::AS_SHIPPED.to_string();
        q.preprocess = m.preprocess.clone();
        rows.push(RowSpec::Quantized { key, label: "int8 as shipped (.tflite)".into(), model: Box::new(q) });
    }
    if o.schemes.len() == row_keys().len() {
        if let Some(arch) = o.model.strip_prefix("zoo:") {
            rows.extend(npu_app::compare::zoo_rows(arch, o.calib)?);
        }
    }
    for e in &o.extra {
        rows.push(match e {
            Extra::Recipe { key, label, scheme } => {
                RowSpec::Recipe(npu_app::Recipe::from_scheme(key, label, scheme.clone(), o.calib))
            }
            Extra::Quantized { key, label, model } => {
                RowSpec::Quantized { key: key.clone(), label: label.clone(), model: model.clone() }
            }
        });
    }
    let req = npu_app::compare::Request {
        model: &m,
        hw: &hw,
        test: &test.ds,
        metric,
        origin,
        calib: &calib,
        rows,
        jobs: o.jobs,
        shard: o.shard,
    };
    Ok(npu_app::compare::compare(&req, &Bars::new(o.quiet))?)
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
pub fn score_names(m: npu_data::metrics::Metric) -> (&'static str, &'static str) {
    use npu_data::metrics::Metric;
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
fn score_text(m: npu_data::metrics::Metric, v: f64) -> String {
    use npu_data::metrics::Metric;
    match m {
        Metric::Cosine => format!("{v:.5}"),
        Metric::Mse => format!("{v:.6}"),
        _ => format!("{v:.2}"),
    }
}

/// The table's headings for a comparison scored by `m`.
fn headers(m: npu_data::metrics::Metric) -> [String; 13] {
    let mut h = HEADERS.map(String::from);
    h[1] = score_names(m).0.to_string();
    h
}

/// A row as the table shows it.
trait Cells {
    /// The row's cells, its score under `metric`.
    fn cells(&self, metric: npu_data::metrics::Metric) -> Vec<String>;
}

impl Cells for Row {
    fn cells(&self, metric: npu_data::metrics::Metric) -> Vec<String> {
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
            } else if metric == npu_data::metrics::Metric::Mse || metric == npu_data::metrics::Metric::Cosine {
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
        ])?;
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
            ])?;
        }
        w.into_inner().map_err(|e| anyhow::anyhow!("csv: {e}"))
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
    let e = |e: plotters::drawing::DrawingAreaErrorKind<std::io::Error>| anyhow::anyhow!("plot: {e}");
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
        bail!("nothing ran on the NPU: no points to plot");
    }
    // Scores a scale cannot hold (the FP32 row's SQNR against itself is +∞) are named in
    // the legend, not drawn.
    let fp32_row = c.rows.iter().find(|r| r.key == "fp32" && r.error.is_none()).map(|r| r.score);
    let fp32 = fp32_row.filter(|v| v.is_finite());
    let (all, infinite): (Vec<_>, Vec<_>) = all.into_iter().partition(|p| p.3.is_finite());
    if all.is_empty() {
        bail!("no finite scores to plot");
    }
    let percent = c.metric.is_percent();
    let value = |v: f64| if percent { format!("{v:.2}%") } else { c.metric.show(v) };
    let best = all.iter().map(|p| p.3).chain(fp32).fold(f64::MIN, f64::max);
    // Collapsed rows are left out only on a percentage scale.
    let (shown, collapsed): (Vec<&(usize, &Row, f64, f64)>, Vec<_>) =
        all.iter().partition(|p| !percent || p.3 >= best - PLOT_COLLAPSED_POINTS);
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
