//! Quantization schemes side by side on modeled hardware: every row quantized, compiled
//! and run through the simulator; top-1 accuracy from the simulator's own outputs on
//! every image, and cycles, frames/s, latency, energy and traffic from the same compiled
//! program. Presentation (tables, CSV, plots) is the front end's.

use serde::Serialize;

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
    /// Rows in table order.
    pub rows: Vec<Row>,
}

/// What to compare, and on what.
pub struct Request<'a> {
    /// The float model.
    pub model: &'a Model,
    /// The hardware.
    pub hw: &'a HwConfig,
    /// Test images (their labels give accuracy).
    pub test: &'a Dataset,
    /// Where they came from, in words.
    pub origin: String,
    /// Calibration images.
    pub calib: &'a Dataset,
    /// The rows, in table order.
    pub rows: Vec<RowSpec>,
    /// Threads over images (the result is the same for any number).
    pub jobs: usize,
}

/// Runs the comparison.
pub fn compare(req: &Request, progress: &dyn Progress) -> Result<Comparison> {
    let (m, test) = (req.model, req.test);
    if test.is_empty() {
        return Err(Error::Invalid("no test images to compare on".into()));
    }
    m.check_images(test)?;
    let mut rows = Vec::new();
    for spec in &req.rows {
        let (key, label) = spec.key_label();
        let row = match spec {
            RowSpec::Fp32 => {
                progress.begin(&label, test.len());
                let (acc, _) = m.evaluate(test, test.len(), &mut |k| progress.advance(&label, k))?;
                progress.end(&label);
                Row {
                    key,
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
            }
            RowSpec::Recipe(r) => run_row(req, key, label, r.quantize(m, req.calib)?, progress)?,
            RowSpec::Quantized { model, .. } => run_row(req, key, label, (**model).clone(), progress)?,
        };
        rows.push(row);
    }
    if let Some(fp) = rows.iter().find(|r| r.key == "fp32").map(|r| r.top1) {
        for r in &mut rows {
            r.delta = Some(r.top1 - fp);
        }
    }
    mark_pareto(&mut rows);
    Ok(Comparison {
        model: m.name.clone(),
        hw: req.hw.name.clone(),
        clock_mhz: req.hw.clock_mhz,
        data: req.origin.clone(),
        rows,
    })
}

/// Compiles `q`, times it once and replays every test image; a row that cannot run on
/// the hardware says why.
fn run_row(req: &Request, key: String, label: String, q: QModel, progress: &dyn Progress) -> Result<Row> {
    let failed = |e: String| Row {
        key: key.clone(),
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
    let mut figures = timing.figures.clone();
    figures.host_seconds = e.host_seconds;
    Ok(Row {
        key,
        label,
        images: e.images,
        correct: e.correct,
        top1: e.top1() * 100.0,
        delta: None,
        hw: Some(figures),
        pareto_fps: false,
        pareto_energy: false,
        error: None,
    })
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
