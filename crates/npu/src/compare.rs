//! `npu compare`: quantization schemes side by side on modeled hardware. For every
//! scheme the model is quantized, compiled and run through the simulator: top-1 accuracy
//! comes from the simulator's own outputs on every image, and cycles, frames/s, latency,
//! energy and traffic from the same compiled program (timing does not depend on the
//! data, so one traced run gives them, and the images replay its functional order).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use npu_toolchain::quant::{self, BiasCorrection, Fixes, RangeSource, Scheme};

use crate::load;

/// The rows `npu compare` knows, in table order: key and description.
pub const ROWS: &[(&str, &str)] = &[
    ("fp32", "FP32 reference"),
    ("int8-pow2", "INT8, power-of-two scales (shift-only)"),
    ("int8-sym", "INT8, symmetric per-tensor"),
    ("uint8-asym", "UINT8, asymmetric per-tensor"),
    ("int8-per-channel", "INT8, per-channel"),
    ("int8-per-channel-dfq", "INT8, per-channel, CLE + bias corr., no data"),
    ("w4a8-per-channel", "W4A8, per-channel"),
    ("binary-weights", "binary weights"),
    ("int8-per-channel-pruned50", "INT8, per-channel, 50% pruned, no fine-tuning"),
    ("w4a8-2of4", "W4A8, per-channel, 2:4 pruned, no fine-tuning"),
];

/// What to compare.
#[derive(Debug, Clone)]
pub struct Options {
    /// Model (zoo:NAME, .onnx, .npum).
    pub model: String,
    /// Directory with the t10k test files; `None`: the embedded test set.
    pub data: Option<std::path::PathBuf>,
    /// Hardware preset or RON file.
    pub hw: String,
    /// Row keys (from [`ROWS`]).
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
        model: Box<quant::QModel>,
    },
}

/// Hardware figures of one compiled scheme, per frame.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HwFigures {
    /// Simulated cycles of one inference.
    pub cycles: u64,
    /// Inferences per second at the clock.
    pub fps: f64,
    /// Latency of one inference, µs.
    pub latency_us: f64,
    /// Energy of one inference, µJ.
    pub energy_uj: f64,
    /// Average power, mW.
    pub power_mw: f64,
    /// Off-chip image: packed weights and tables, bytes.
    pub weight_bytes: u64,
    /// Activation-buffer bytes holding resident activations at peak.
    pub onchip_act_bytes: u64,
    /// System SRAM bytes for activations at peak.
    pub sram_act_bytes: u64,
    /// Off-chip bytes moved per inference.
    pub offchip_bytes: u64,
    /// Simulated cycles over the roofline floor.
    pub roofline_ratio: f64,
    /// Wall-clock seconds the functional runs of all images took (host speed).
    pub host_seconds: f64,
}

/// One row of the comparison.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Row {
    /// Key (`fp32` or a scheme).
    pub key: String,
    /// Description.
    pub label: String,
    /// Images evaluated.
    pub images: usize,
    /// Images classified correctly.
    pub correct: usize,
    /// Top-1 accuracy, percent.
    pub top1: f64,
    /// Accuracy minus the FP32 row's, points (0 for the FP32 row; `None` without it).
    pub delta: Option<f64>,
    /// Hardware figures (`None` for the FP32 row, which does not run on the NPU).
    pub hw: Option<HwFigures>,
    /// On the Pareto front of accuracy against frames/s.
    pub pareto_fps: bool,
    /// On the Pareto front of accuracy against energy per frame.
    pub pareto_energy: bool,
    /// Why the scheme could not run (e.g. a MAC mode the hardware lacks).
    pub error: Option<String>,
}

/// A whole comparison.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Comparison {
    /// Model name.
    pub model: String,
    /// Hardware name.
    pub hw: String,
    /// Clock, MHz.
    pub clock_mhz: f64,
    /// Where the images came from.
    pub data: String,
    /// Rows in table order.
    pub rows: Vec<Row>,
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
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let scheme: Scheme =
        ron::from_str(&text).map_err(|e| anyhow::anyhow!("{}: not a valid recipe: {e}", path.display()))?;
    Ok(Extra::Recipe { key, label: format!("recipe {}", scheme.name), scheme })
}

/// Parses `--schemes`: `all` or a comma-separated list of [`ROWS`] keys.
pub fn parse_schemes(list: &str) -> Result<Vec<String>> {
    if list == "all" {
        return Ok(ROWS.iter().map(|(k, _)| k.to_string()).collect());
    }
    let mut out = Vec::new();
    for k in list.split(',').map(str::trim).filter(|k| !k.is_empty()) {
        if !ROWS.iter().any(|(r, _)| *r == k) {
            let keys: Vec<&str> = ROWS.iter().map(|(r, _)| *r).collect();
            bail!("unknown scheme `{k}` in --schemes (expected `all` or some of: {})", keys.join(", "));
        }
        out.push(k.to_string());
    }
    if out.is_empty() {
        bail!("--schemes is empty (expected `all` or a comma-separated list)");
    }
    Ok(out)
}

fn bar(mp: &indicatif::MultiProgress, total: usize, quiet: bool, what: &str) -> indicatif::ProgressBar {
    if quiet {
        return indicatif::ProgressBar::hidden();
    }
    let pb = mp.add(indicatif::ProgressBar::new(total as u64));
    pb.set_style(
        indicatif::ProgressStyle::with_template("{msg:<46} [{bar:24}] {pos}/{len} images, {per_sec}, ETA {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

/// The index of the largest value; the first of equal ones (as NumPy's `argmax`).
pub fn argmax(v: &[i32]) -> usize {
    v.iter().enumerate().fold((0, i32::MIN), |b, (i, &x)| if x > b.1 { (i, x) } else { b }).0
}

/// Runs the comparison.
pub fn compare(o: &Options) -> Result<Comparison> {
    let m = load::model(Path::new(&o.model))?;
    let hw = load::hardware(&o.hw)?;
    let (test, origin) = load::dataset(o.data.as_deref())?;
    let test = test.take(o.limit.unwrap_or(usize::MAX));
    if test.is_empty() {
        bail!("no test images to compare on");
    }
    m.check_images(&test)?;
    let (train, _) = load::train_set(None)?;
    let n = test.len();
    let mp = if o.quiet {
        indicatif::MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::hidden())
    } else {
        indicatif::MultiProgress::new()
    };
    let pool = rayon::ThreadPoolBuilder::new().num_threads(o.jobs.max(1)).build().context("cannot start threads")?;
    let mut rows = Vec::new();
    for key in &o.schemes {
        let label = ROWS.iter().find(|(k, _)| k == key).map_or(key.as_str(), |(_, l)| *l).to_string();
        let row = if key == "fp32" {
            let pb = bar(&mp, n, o.quiet, &label);
            let (acc, _) = m.evaluate(&test, n, &mut |k| pb.set_position(k as u64))?;
            pb.finish();
            Row {
                key: key.clone(),
                label,
                images: acc.total,
                correct: acc.correct,
                top1: acc.top1() * 100.0,
                delta: None,
                hw: None,
                pareto_fps: false,
                pareto_energy: false,
                error: None,
            }
        } else {
            scheme_row(o, &m, &hw, &train, &test, key, label, &mp, &pool)?
        };
        rows.push(row);
    }
    // Retrained models committed with the zoo join a full comparison of their architecture.
    let mut extra = o.extra.clone();
    // An int8 TFLite model runs as shipped, beside the schemes applied to its float graph
    // (its int8 weights dequantized).
    if load::is_tflite(Path::new(&o.model)) {
        if let Some(q) = load::tflite(Path::new(&o.model))?.quantized {
            let key = npu_toolchain::tflite::AS_SHIPPED.to_string();
            extra.insert(0, Extra::Quantized { key, label: "int8 as shipped (.tflite)".into(), model: Box::new(q) });
        }
    }
    if o.schemes.len() == ROWS.len() {
        if let Some(arch) = o.model.strip_prefix("zoo:") {
            for (key, label, scheme) in npu_toolchain::zoo::recipes(arch)? {
                extra.push(Extra::Recipe { key, label, scheme });
            }
            for (key, label, q) in npu_toolchain::zoo::retrained(arch)? {
                extra.push(Extra::Quantized { key, label, model: Box::new(q) });
            }
        }
    }
    for e in &extra {
        let row = match e {
            Extra::Recipe { key, label, scheme } => {
                let calib = RangeSource::Calibration { images: o.calib, method: quant::calib::Method::MinMax };
                let q = quant::quantize_model(&m, scheme, &train, calib)?;
                run_row(o, &hw, &test, key, label.clone(), &q, &mp, &pool)?
            }
            Extra::Quantized { key, label, model } => run_row(o, &hw, &test, key, label.clone(), model, &mp, &pool)?,
        };
        rows.push(row);
    }
    if let Some(fp) = rows.iter().find(|r| r.key == "fp32").map(|r| r.top1) {
        for r in &mut rows {
            r.delta = Some(r.top1 - fp);
        }
    }
    mark_pareto(&mut rows);
    Ok(Comparison { model: m.name.clone(), hw: hw.name.clone(), clock_mhz: hw.clock_mhz, data: origin, rows })
}

#[allow(clippy::too_many_arguments)]
fn scheme_row(
    o: &Options,
    m: &npu_toolchain::Model,
    hw: &npu_hw::HwConfig,
    train: &npu_toolchain::data::Dataset,
    test: &npu_toolchain::data::Dataset,
    key: &str,
    label: String,
    mp: &indicatif::MultiProgress,
    pool: &rayon::ThreadPool,
) -> Result<Row> {
    let calib = RangeSource::Calibration { images: o.calib, method: quant::calib::Method::MinMax };
    // Pruned rows: the model's weights pruned (no fine-tuning), then quantized.
    let pruned = |structure, sparsity, scheme: &str| -> Result<quant::QModel> {
        use npu_toolchain::prune::{self, Prune, Scope};
        let mut pm = m.clone();
        let masks = prune::masks(&pm.graph, &Prune { sparsity, structure, scope: Scope::PerLayer })?;
        prune::apply(&mut pm.graph, &masks);
        Ok(quant::quantize_model(&pm, &Scheme::named(scheme)?, train, calib)?)
    };
    let q = match key {
        "int8-per-channel-dfq" => {
            let fixes = Fixes { cle: true, bias_correction: Some(BiasCorrection::Analytical) };
            quant::quantize_model_with(m, &Scheme::named("int8-per-channel")?, train, RangeSource::DataFree, fixes)?
        }
        "int8-per-channel-pruned50" => pruned(npu_toolchain::prune::Structure::Unstructured, 0.5, "int8-per-channel")?,
        "w4a8-2of4" => pruned(npu_toolchain::prune::Structure::NofM { n: 2, m: 4 }, 0.5, "w4a8-per-channel")?,
        _ => quant::quantize_model(m, &Scheme::named(key)?, train, calib)?,
    };
    run_row(o, hw, test, key, label, &q, mp, pool)
}

/// Compiles `q`, simulates its timing once and replays every test image.
#[allow(clippy::too_many_arguments)]
fn run_row(
    o: &Options,
    hw: &npu_hw::HwConfig,
    test: &npu_toolchain::data::Dataset,
    key: &str,
    label: String,
    q: &quant::QModel,
    mp: &indicatif::MultiProgress,
    pool: &rayon::ThreadPool,
) -> Result<Row> {
    let n = test.len();
    let failed = |e: String| Row {
        key: key.to_string(),
        label: label.clone(),
        images: 0,
        correct: 0,
        top1: f64::NAN,
        delta: None,
        hw: None,
        pareto_fps: false,
        pareto_energy: false,
        error: Some(e),
    };
    let c = match npu_toolchain::compile::compile(q, hw) {
        Ok(c) => c,
        Err(e) => return Ok(failed(e.to_string())),
    };
    let x = q.preprocess.apply(&test.pixels);
    let qin = q.quantize_input(&x);
    let per_in: usize = q.values[0].shape.iter().product();
    // Timing once: a traced timing-only run (the counters do not depend on the data; it
    // still copies the weights in, so a zero-gating array's gated MACs are counted).
    let opts = npu_sim::RunOptions { timing_only: true, trace: true, ..Default::default() };
    let first = npu_sim::run(&c.with_input(q, &qin[..per_in]), hw, &opts)?;
    if let Some(t) = &first.trap {
        return Ok(failed(t.to_string()));
    }
    let pb = bar(mp, n, o.quiet, &label);
    let start = std::time::Instant::now();
    let predictions =
        replay_predictions(q, &c, hw, &first.trace, &qin, n, o.jobs, pool, key, &|d| pb.set_position(d as u64))?;
    let host_seconds = start.elapsed().as_secs_f64();
    pb.finish();
    let correct = predictions.iter().zip(&test.labels).filter(|(p, l)| **p == usize::from(**l)).count();
    Ok(Row {
        key: key.to_string(),
        label,
        images: n,
        correct,
        top1: correct as f64 / n as f64 * 100.0,
        delta: None,
        hw: Some(figures(q, &c, hw, &first.report, host_seconds)),
        pareto_fps: false,
        pareto_energy: false,
        error: None,
    })
}

/// The hardware figures of one compiled model from a run's report.
pub(crate) fn figures(
    q: &quant::QModel,
    c: &npu_toolchain::compile::Compiled,
    hw: &npu_hw::HwConfig,
    r: &npu_sim::Report,
    host_seconds: f64,
) -> HwFigures {
    let mem = |space: &str| r.memory.iter().find(|x| x.space == space).map_or(0, |x| x.read_bytes + x.written_bytes);
    let roof = npu_toolchain::compile::roofline(q, hw);
    let seconds = r.total_cycles as f64 / (hw.clock_mhz * 1e6);
    HwFigures {
        cycles: r.total_cycles,
        fps: 1.0 / seconds,
        latency_us: seconds * 1e6,
        energy_uj: r.energy.total_pj / 1e6,
        power_mw: r.average_power_mw,
        weight_bytes: c.program.data.iter().map(|s| s.bytes.len() as u64).sum(),
        onchip_act_bytes: u64::from(c.memory.resident_bytes),
        sram_act_bytes: u64::from(c.memory.sram_bytes),
        offchip_bytes: mem("dram"),
        roofline_ratio: r.total_cycles as f64 / roof.floor().max(1.0),
        host_seconds,
    }
}

/// The predicted class of each of `n` quantized inputs, replaying a traced run's order
/// on the simulator in parallel (contiguous chunks, one machine each, so the result is
/// the same for any number of threads); `progress` gets the count done.
#[allow(clippy::too_many_arguments)]
pub(crate) fn replay_predictions(
    q: &quant::QModel,
    c: &npu_toolchain::compile::Compiled,
    hw: &npu_hw::HwConfig,
    trace: &[npu_sim::TraceEvent],
    qin: &[i32],
    n: usize,
    jobs: usize,
    pool: &rayon::ThreadPool,
    key: &str,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<Vec<usize>> {
    let replay = npu_sim::Replay::new(&c.program, trace);
    let per_in: usize = q.values[0].shape.iter().product();
    let out_shape = q.values[q.output].shape.clone();
    let dtype = q.values[q.output].q.dtype;
    let done = AtomicUsize::new(0);
    let chunk = n.div_ceil(jobs.max(1) * 8).max(1);
    let preds: Vec<Result<Vec<usize>>> = pool.install(|| {
        use rayon::prelude::*;
        (0..n.div_ceil(chunk))
            .into_par_iter()
            .map(|k| {
                let mut machine = replay.machine(hw)?;
                let mut out = Vec::with_capacity(chunk);
                for i in k * chunk..((k + 1) * chunk).min(n) {
                    let seg = c.input_segment(q, &qin[i * per_in..(i + 1) * per_in]);
                    if let Some(t) = replay.run(&mut machine, &[seg])? {
                        bail!("{key}, image {i}: {t}");
                    }
                    let b = machine
                        .read(npu_isa::Space::Sram, u64::from(c.output.addr), u64::from(c.output.len))
                        .context("output outside SRAM")?;
                    out.push(argmax(&npu_toolchain::compile::from_hwc_bytes(b, &out_shape, dtype)));
                    let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                    if d.is_multiple_of(64) || d == n {
                        progress(d);
                    }
                }
                Ok(out)
            })
            .collect()
    });
    let mut predictions = Vec::with_capacity(n);
    for p in preds {
        predictions.extend(p?);
    }
    Ok(predictions)
}

/// Marks the rows no other row beats in both accuracy and frames/s (and in accuracy
/// and energy per frame).
fn mark_pareto(rows: &mut [Row]) {
    let pts: Vec<Option<(f64, f64, f64)>> =
        rows.iter().map(|r| r.hw.as_ref().map(|h| (r.top1, h.fps, h.energy_uj))).collect();
    for i in 0..rows.len() {
        let Some((a, f, e)) = pts[i] else { continue };
        let dom_fps = pts
            .iter()
            .enumerate()
            .any(|(j, p)| j != i && p.is_some_and(|(a2, f2, _)| a2 >= a && f2 >= f && (a2 > a || f2 > f)));
        let dom_energy = pts
            .iter()
            .enumerate()
            .any(|(j, p)| j != i && p.is_some_and(|(a2, _, e2)| a2 >= a && e2 <= e && (a2 > a || e2 < e)));
        rows[i].pareto_fps = !dom_fps;
        rows[i].pareto_energy = !dom_energy;
    }
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

impl Row {
    /// The row's cells as the table shows them.
    fn cells(&self) -> Vec<String> {
        let mut v = vec![self.label.clone()];
        if let Some(e) = &self.error {
            v.push("—".into());
            v.push("—".into());
            v.push(format!("cannot run: {e}"));
            v.resize(HEADERS.len(), String::new());
            return v;
        }
        v.push(format!("{:.2}", self.top1));
        v.push(self.delta.map_or("—".into(), |d| if self.key == "fp32" { "—".into() } else { format!("{d:+.2}") }));
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

impl Comparison {
    fn title(&self) -> String {
        let images = self.rows.iter().map(|r| r.images).max().unwrap_or(0);
        format!("{} on {} ({} MHz), top-1 on {images} images of {}", self.model, self.hw, self.clock_mhz, self.data)
    }

    /// The terminal table.
    pub fn table(&self) -> String {
        let cells: Vec<Vec<String>> = self.rows.iter().map(Row::cells).collect();
        let widths: Vec<usize> = (0..HEADERS.len())
            .map(|i| {
                cells
                    .iter()
                    .filter(|c| !c[i].starts_with("cannot run"))
                    .map(|c| c[i].chars().count())
                    .chain([HEADERS[i].chars().count()])
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
        out.push_str(&line(&HEADERS.map(String::from)));
        out.push('\n');
        for c in &cells {
            out.push_str(&line(c));
            out.push('\n');
        }
        out
    }

    /// The table in Markdown.
    pub fn markdown(&self) -> String {
        let mut out = format!("{}\n\n| {} |\n|{}\n", self.title(), HEADERS.join(" | "), "---|".repeat(HEADERS.len()));
        for r in &self.rows {
            out.push_str(&format!("| {} |\n", r.cells().join(" | ")));
        }
        out
    }

    /// The rows as CSV (the `csv` crate quotes what needs it), numbers rounded to
    /// what the measurement supports.
    pub fn csv(&self) -> Result<Vec<u8>> {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record([
            "key",
            "label",
            "images",
            "correct",
            "top1_percent",
            "delta_points",
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
                r.correct.to_string(),
                if r.top1.is_finite() && r.error.is_none() { format!("{:.2}", r.top1) } else { String::new() },
                f(r.delta.filter(|d| d.is_finite() && r.error.is_none()).map(|d| format!("{d:.2}"))),
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
            Some((r, if axis == Axis::Fps { h.fps } else { h.energy_uj }, r.top1))
        })
        .enumerate()
        .map(|(i, (r, x, y))| (i + 1, r, x, y))
        .collect();
    if all.is_empty() {
        bail!("nothing ran on the NPU: no points to plot");
    }
    let fp32 = c.rows.iter().find(|r| r.key == "fp32" && r.error.is_none()).map(|r| r.top1);
    let best = all.iter().map(|p| p.3).chain(fp32).fold(f64::MIN, f64::max);
    let (shown, collapsed): (Vec<&(usize, &Row, f64, f64)>, Vec<_>) =
        all.iter().partition(|p| p.3 >= best - PLOT_COLLAPSED_POINTS);
    let (xlo, xhi) = shown.iter().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.2), b.max(p.2)));
    let (ylo, yhi) = shown.iter().map(|p| p.3).chain(fp32).fold((f64::MAX, f64::MIN), |(a, b), y| (a.min(y), b.max(y)));
    let (xpad, ypad) = (((xhi - xlo) * 0.08).max(xhi.abs() * 0.05).max(1e-3), ((yhi - ylo) * 0.12).max(0.25));
    let (xname, pareto): (&str, fn(&Row) -> bool) = match axis {
        Axis::Fps => ("frames/s (simulated)", |r| r.pareto_fps),
        Axis::Energy => ("energy per frame, µJ (simulated)", |r| r.pareto_energy),
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1180, 600)).into_drawing_area();
        root.fill(&WHITE).map_err(e)?;
        let title = match axis {
            Axis::Fps => format!("{} on {}: accuracy vs frames/s", c.model, c.hw),
            Axis::Energy => format!("{} on {}: accuracy vs energy per frame", c.model, c.hw),
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
            .y_desc("top-1 accuracy, % (from the simulator's outputs)")
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
        if fp32.is_some() {
            line(y, format!("FP32 reference ({:.2}%)", fp32.unwrap_or(0.0)), RGBColor(140, 140, 140), 1)?;
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
            line(y, format!("{n}  {}: {yv:.2}%, {v}", r.label), BLACK, 2)?;
            y += 20;
        }
        if !collapsed.is_empty() {
            y += 10;
            line(y, format!("not drawn: accuracy over {PLOT_COLLAPSED_POINTS:.0} points below the best"), BLACK, 2)?;
            y += 20;
            for (n, r, _, yv) in &collapsed {
                line(y, format!("{n}  {}: {yv:.2}%", r.label), RGBColor(110, 110, 110), 2)?;
                y += 20;
            }
        }
        root.present().map_err(e)?;
    }
    Ok(svg)
}
