//! Quantization schemes side by side on modeled hardware: every row quantized, compiled
//! and run through the simulator; its metric (top-1, top-5, agreement with FP32, SQNR,
//! cosine, MSE) from the simulator's own outputs on every sample, and cycles, frames/s,
//! latency, energy and traffic from the same compiled program. Presentation (tables,
//! CSV, plots) is the front end's.

use serde::Serialize;

use npu_data::metrics::{Against, Metric};
use npu_data::Dataset;
use npu_hw::HwConfig;
use npu_model::Model;
use npu_quant::QModel;

use crate::{Deployment, Error, HwFigures, Progress, Recipe, Result, RECIPES};

/// One row to compare.
#[derive(Debug, Clone)]
pub enum RowSpec {
    /// The float model itself (the FP32 executor; it does not run on the NPU).
    Fp32,
    /// A recipe, quantized here on the calibration set.
    Recipe(Recipe),
    /// A model quantized already (retrained, shipped as int8).
    Quantized {
        /// Row key.
        key: String,
        /// Row description.
        label: String,
        /// The model.
        model: Box<QModel>,
    },
}

impl RowSpec {
    /// A row by key: `fp32` or a named recipe ([`RECIPES`]).
    pub fn named(key: &str, calib: usize) -> Result<RowSpec> {
        if key == "fp32" {
            return Ok(RowSpec::Fp32);
        }
        if !RECIPES.iter().any(|(k, _)| *k == key) {
            let keys: Vec<&str> = std::iter::once("fp32").chain(RECIPES.iter().map(|(k, _)| *k)).collect();
            return Err(Error::Invalid(format!("unknown row `{key}` (expected some of: {})", keys.join(", "))));
        }
        Ok(RowSpec::Recipe(Recipe::named(key, calib)?))
    }

    fn key_label(&self) -> (String, String) {
        match self {
            RowSpec::Fp32 => ("fp32".into(), "FP32 reference".into()),
            RowSpec::Recipe(r) => (r.key.clone(), r.label.clone()),
            RowSpec::Quantized { key, label, .. } => (key.clone(), label.clone()),
        }
    }
}

/// Every row of a full comparison: FP32, then [`RECIPES`].
pub fn all_rows(calib: usize) -> Result<Vec<RowSpec>> {
    std::iter::once("fp32").chain(RECIPES.iter().map(|(k, _)| *k)).map(|k| RowSpec::named(k, calib)).collect()
}

/// The rows a zoo architecture's committed retrained models and recipes add.
pub fn zoo_rows(arch: &str, calib: usize) -> Result<Vec<RowSpec>> {
    let mut rows = Vec::new();
    for (key, label, scheme) in npu_zoo::recipes(arch)? {
        rows.push(RowSpec::Recipe(Recipe::from_scheme(&key, &label, scheme, calib)));
    }
    for (key, label, q) in npu_zoo::retrained(arch)? {
        rows.push(RowSpec::Quantized { key, label, model: Box::new(q) });
    }
    Ok(rows)
}

/// One row of the comparison.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Row {
    /// Key (`fp32` or a recipe).
    pub key: String,
    /// Description.
    pub label: String,
    /// Samples evaluated.
    pub images: usize,
    /// Samples classified as labelled (with labels).
    pub correct: Option<usize>,
    /// The comparison's metric: percent for top-1, top-5 and agreement, dB for SQNR, as
    /// it is for cosine and MSE.
    pub score: f64,
    /// Score minus the FP32 row's (0 for the FP32 row; `None` without it).
    pub delta: Option<f64>,
    /// Hardware figures (`None` for the FP32 row, which does not run on the NPU).
    pub hw: Option<HwFigures>,
    /// On the Pareto front of accuracy against frames/s.
    pub pareto_fps: bool,
    /// On the Pareto front of accuracy against energy per frame.
    pub pareto_energy: bool,
    /// Why the row could not run (e.g. a MAC mode the hardware lacks).
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
    /// How rows are scored.
    pub metric: Metric,
    /// Rows in table order.
    pub rows: Vec<Row>,
}

/// What to compare, and on what.
pub struct Request<'a> {
    /// The float model.
    pub model: &'a Model,
    /// The hardware.
    pub hw: &'a HwConfig,
    /// Test samples.
    pub test: &'a Dataset,
    /// How rows are scored ([`Metric::default_for`] the test set, unless asked).
    pub metric: Metric,
    /// Where they came from, in words.
    pub origin: String,
    /// Calibration images.
    pub calib: &'a Dataset,
    /// The rows, in table order.
    pub rows: Vec<RowSpec>,
    /// Threads over images (the result is the same for any number).
    pub jobs: usize,
}

/// A metric value as the table shows it (percent for fractions).
fn shown(metric: Metric, v: f64) -> f64 {
    if metric.is_percent() {
        v * 100.0
    } else {
        v
    }
}

/// Runs the comparison.
pub fn compare(req: &Request, progress: &dyn Progress) -> Result<Comparison> {
    let (m, test, metric) = (req.model, req.test, req.metric);
    if test.is_empty() {
        return Err(Error::Invalid("no test samples to compare on".into()));
    }
    m.check_io()?;
    test.fit(m.input_shape(), &m.preprocess)?;
    let n = test.len();
    // The FP32 outputs: the FP32 row, and the reference of agreement, SQNR and cosine.
    let needs_fp32 = metric.needs_reference() || req.rows.iter().any(|r| matches!(r, RowSpec::Fp32));
    let fp32 = if needs_fp32 {
        let label = "FP32 reference";
        progress.begin(label, n);
        let out = m.outputs(test, n, &mut |k| progress.advance(label, k))?;
        progress.end(label);
        Some(out)
    } else {
        None
    };
    let inputs = if metric == Metric::Mse && matches!(test.targets, npu_data::Targets::None) {
        Some(m.inputs(test, 0..n)?)
    } else {
        None
    };
    let against = Against { reference: fp32.as_deref(), inputs: inputs.as_deref() };
    let mut rows = Vec::new();
    // A hybrid model's float row runs its hybrid kernels (int8 weights, inputs quantized
    // per sample), as the interpreter does: said in its label.
    let hybrid = m.graph.nodes.iter().any(|nd| matches!(nd.op, npu_model::ir::Op::DynamicQuantize { .. }));
    for spec in &req.rows {
        let (key, mut label) = spec.key_label();
        if hybrid && matches!(spec, RowSpec::Fp32) {
            label = "FP32 reference, hybrid kernels as shipped".into();
        }
        let row = match spec {
            RowSpec::Fp32 => {
                let out = fp32.as_deref().unwrap_or(&[]);
                let correct =
                    test.labels().map(|_| npu_model::Accuracy::of(out, n, test)).transpose()?.map(|a| a.0.correct);
                let score = npu_data::metrics::score(metric, out, n, test, against)?;
                Row {
                    key,
                    label,
                    images: n,
                    correct,
                    score: shown(metric, score),
                    delta: None,
                    hw: None,
                    pareto_fps: false,
                    pareto_energy: false,
                    error: None,
                }
            }
            RowSpec::Recipe(r) => run_row(req, key, label, r.quantize(m, req.calib)?, against, progress)?,
            RowSpec::Quantized { model, .. } => run_row(req, key, label, (**model).clone(), against, progress)?,
        };
        rows.push(row);
    }
    if let Some(fp) = rows.iter().find(|r| r.key == "fp32").map(|r| r.score) {
        for r in &mut rows {
            r.delta = Some(r.score - fp);
        }
    }
    mark_pareto(&mut rows, metric.higher_is_better());
    Ok(Comparison {
        model: m.name.clone(),
        hw: req.hw.name.clone(),
        clock_mhz: req.hw.clock_mhz,
        data: req.origin.clone(),
        metric,
        rows,
    })
}

/// Compiles `q`, times it once and replays every test sample; a row that cannot run on
/// the hardware says why.
fn run_row(
    req: &Request,
    key: String,
    label: String,
    q: QModel,
    against: Against,
    progress: &dyn Progress,
) -> Result<Row> {
    let failed = |e: String| Row {
        key: key.clone(),
        label: label.clone(),
        images: 0,
        correct: None,
        score: f64::NAN,
        delta: None,
        hw: None,
        pareto_fps: false,
        pareto_energy: false,
        error: Some(e),
    };
    let d = match Deployment::new(q, req.hw.clone()) {
        Ok(d) => d,
        Err(e) => return Ok(failed(e.to_string())),
    };
    let timing = match d.timing() {
        Ok(t) => t,
        Err(Error::Trap(t)) => return Ok(failed(t)),
        Err(e) => return Err(e),
    };
    let e = d.evaluate_labelled(&timing, req.test, req.jobs, &label, progress)?;
    let score = e.score(req.metric, req.test, against)?;
    let mut figures = timing.figures.clone();
    figures.host_seconds = e.host_seconds;
    Ok(Row {
        key,
        label,
        images: e.images,
        correct: req.test.labels().map(|_| e.correct),
        score: shown(req.metric, score),
        delta: None,
        hw: Some(figures),
        pareto_fps: false,
        pareto_energy: false,
        error: None,
    })
}

/// Marks the rows no other row beats in both score and frames/s (and in score and
/// energy per frame); for MSE lower scores are better.
fn mark_pareto(rows: &mut [Row], higher_is_better: bool) {
    let sign = if higher_is_better { 1.0 } else { -1.0 };
    let pts: Vec<Option<(f64, f64, f64)>> =
        rows.iter().map(|r| r.hw.as_ref().map(|h| (sign * r.score, h.fps, h.energy_uj))).collect();
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
