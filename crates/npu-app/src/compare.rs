//! Quantization schemes side by side on modeled hardware: every row quantized, compiled
//! and run through the simulator; its metric (top-1, top-5, agreement with FP32, SQNR,
//! cosine, MSE) from the simulator's own outputs on every sample, and cycles, frames/s,
//! latency, energy and traffic from the same compiled program. Presentation (tables,
//! CSV, plots) is the front end's.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use npu_data::metrics::{Against, Metric, Tally};
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

    /// The row of an int8 TFLite's own quantization (`as-shipped`), run on samples
    /// preprocessed as `preprocess` says (the comparison's float model's).
    pub fn as_shipped(mut q: QModel, preprocess: &npu_data::Preprocess) -> RowSpec {
        q.preprocess = preprocess.clone();
        RowSpec::Quantized {
            key: npu_tflite::AS_SHIPPED.into(),
            label: "int8 as shipped (.tflite)".into(),
            model: Box::new(q),
        }
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
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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
    /// it is for cosine and MSE. JSON has no number for a non-finite score (the FP32
    /// row's SQNR against itself, a row that could not run): it is written `null` and
    /// read back as NaN (a merge recomputes scores from the tallies).
    #[serde(deserialize_with = "null_as_nan")]
    pub score: f64,
    /// Score minus the FP32 row's (0 for the FP32 row; `None` without it, or when the FP32
    /// row's score is not finite, as SQNR against FP32 is for the FP32 row).
    pub delta: Option<f64>,
    /// Hardware figures (`None` for the FP32 row, which does not run on the NPU).
    pub hw: Option<HwFigures>,
    /// On the Pareto front of accuracy against frames/s.
    pub pareto_fps: bool,
    /// On the Pareto front of accuracy against energy per frame.
    pub pareto_energy: bool,
    /// Why the row could not run (e.g. a MAC mode the hardware lacks).
    pub error: Option<String>,
    /// What the score is made of (`None` for a row that could not run): what shards'
    /// rows [`merge`] by.
    pub tally: Option<Tally>,
    /// SHA-256 of the model the row ran (its `.npuq`, or the float model's `.npum`
    /// bytes): shards merge only rows of the same model.
    pub digest: Option<String>,
}

/// A whole comparison.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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
    /// The shard of the samples this comparison covers (`None`: all of them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<Part>,
}

/// One shard of a comparison's samples: the contiguous block
/// `⌊shard·total/shards⌋ .. ⌊(shard+1)·total/shards⌋` of the whole set.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Part {
    /// Shard index, from 0.
    pub shard: usize,
    /// Shards in all.
    pub shards: usize,
    /// First sample.
    pub start: usize,
    /// One past the last sample.
    pub end: usize,
    /// Samples of the whole set.
    pub total: usize,
}

impl Part {
    /// Shard `shard` of `shards` over `total` samples; refused when it would hold none.
    pub fn of(shard: usize, shards: usize, total: usize) -> Result<Part> {
        if shards == 0 || shard >= shards {
            return Err(Error::Invalid(format!("shard {shard} of {shards}: the index must be below the count")));
        }
        let at = |i: usize| ((i as u128 * total as u128) / shards as u128) as usize;
        let (start, end) = (at(shard), at(shard + 1));
        if start == end {
            return Err(Error::Invalid(format!(
                "shard {shard} of {shards} holds no samples: the data hold {total}, fewer than the shards"
            )));
        }
        Ok(Part { shard, shards, start, end, total })
    }

    /// Checks that `parts` are every shard of one split, each once.
    pub fn check_cover(parts: &[Part]) -> Result<()> {
        let bad = |m: String| Error::Invalid(m);
        let p0 = *parts.first().ok_or_else(|| bad("no shards to merge".into()))?;
        let mut seen = std::collections::BTreeSet::new();
        for p in parts {
            if (p.shards, p.total) != (p0.shards, p0.total) {
                return Err(bad(format!(
                    "shard {} is one of {} over {} samples; shard {} is one of {} over {}",
                    p0.shard, p0.shards, p0.total, p.shard, p.shards, p.total
                )));
            }
            if p.shard >= p.shards || Part::of(p.shard, p.shards, p.total)? != *p {
                return Err(bad(format!(
                    "shard {} of {}: samples {}..{} are not its block",
                    p.shard, p.shards, p.start, p.end
                )));
            }
            if !seen.insert(p.shard) {
                return Err(bad(format!("shard {} of {} is given twice", p.shard, p.shards)));
            }
        }
        if seen.len() < p0.shards {
            let missing = (0..p0.shards).find(|i| !seen.contains(i)).unwrap_or(0);
            return Err(bad(format!(
                "{} of {} shards missing (the first: shard {missing})",
                p0.shards - seen.len(),
                p0.shards
            )));
        }
        Ok(())
    }
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
    /// Run only this shard of the test samples (`shard`, `shards`); the calibration set
    /// is the same in every shard.
    pub shard: Option<(usize, usize)>,
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
    let (m, metric) = (req.model, req.metric);
    if req.test.is_empty() {
        return Err(Error::Invalid("no test samples to compare on".into()));
    }
    m.check_io()?;
    req.test.fit(m.input_shape(), &m.preprocess)?;
    let part = req.shard.map(|(i, n)| Part::of(i, n, req.test.len())).transpose()?;
    let shard_set = part.map(|p| req.test.slice(p.start, p.end - p.start));
    let test = shard_set.as_ref().unwrap_or(req.test);
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
                let tally = npu_data::metrics::tally(metric, out, n, test, against)?;
                Row {
                    key,
                    label,
                    images: n,
                    correct,
                    score: shown(metric, tally.value()),
                    delta: None,
                    hw: None,
                    pareto_fps: false,
                    pareto_energy: false,
                    error: None,
                    tally: Some(tally),
                    digest: Some(digest(&npu_model::modelfile::encode(m, None)?)),
                }
            }
            RowSpec::Recipe(r) => run_row(req, test, key, label, r.quantize(m, req.calib)?, against, progress)?,
            RowSpec::Quantized { model, .. } => run_row(req, test, key, label, (**model).clone(), against, progress)?,
        };
        rows.push(row);
    }
    finish(&mut rows, metric);
    Ok(Comparison {
        model: m.name.clone(),
        hw: req.hw.name.clone(),
        clock_mhz: req.hw.clock_mhz,
        data: req.origin.clone(),
        metric,
        rows,
        part,
    })
}

/// Deltas against the FP32 row and the Pareto marks, from the rows' scores.
fn finish(rows: &mut [Row], metric: Metric) {
    if let Some(fp) = rows.iter().find(|r| r.key == "fp32").map(|r| r.score).filter(|v| v.is_finite()) {
        for r in rows.iter_mut() {
            r.delta = Some(r.score - fp);
        }
    }
    mark_pareto(rows, metric.higher_is_better());
}

/// A score from JSON, where `null` stands for a value JSON cannot hold (read as NaN).
pub fn null_as_nan<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// SHA-256 of `bytes`, hex.
fn digest(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Combines the comparisons of every shard of one run into the comparison of the whole
/// set — the same, value for value, as the unsharded run (host seconds add up). Refused
/// unless the shards are all of one split, each once, of the same model, hardware,
/// data, metric and rows, and each row ran the same model with the same hardware
/// figures.
pub fn merge(parts: &[Comparison]) -> Result<Comparison> {
    let bad = |m: String| Error::Invalid(m);
    let first = parts.first().ok_or_else(|| bad("no shard comparisons to merge".into()))?;
    let part_of = |c: &Comparison| {
        c.part.ok_or_else(|| bad(format!("the comparison of {} on {} is not a shard (no `part`)", c.model, c.data)))
    };
    let p0 = part_of(first)?;
    let mut sorted: Vec<(Part, &Comparison)> = Vec::new();
    for c in parts {
        let p = part_of(c)?;
        for (what, a, b) in
            [("model", &first.model, &c.model), ("hardware", &first.hw, &c.hw), ("data", &first.data, &c.data)]
        {
            if a != b {
                return Err(bad(format!("shard {} has {what} `{b}`, shard {} `{a}`", p.shard, p0.shard)));
            }
        }
        if c.metric != first.metric || c.clock_mhz != first.clock_mhz {
            return Err(bad(format!("shard {} has another metric or clock than shard {}", p.shard, p0.shard)));
        }
        let keys = |c: &Comparison| c.rows.iter().map(|r| r.key.clone()).collect::<Vec<_>>();
        if keys(c) != keys(first) {
            return Err(bad(format!(
                "shard {} has rows {} but shard {} has {}",
                p.shard,
                keys(c).join(","),
                p0.shard,
                keys(first).join(",")
            )));
        }
        sorted.push((p, c));
    }
    Part::check_cover(&sorted.iter().map(|(p, _)| *p).collect::<Vec<_>>())?;
    sorted.sort_by_key(|(p, _)| p.shard);
    let mut rows = Vec::new();
    for (i, r0) in first.rows.iter().enumerate() {
        let mut row = r0.clone();
        row.images = 0;
        row.correct = r0.correct.map(|_| 0);
        row.tally = None;
        if let Some(h) = &mut row.hw {
            h.host_seconds = 0.0;
        }
        for (p, c) in &sorted {
            let r = &c.rows[i];
            if r.digest != r0.digest {
                return Err(bad(format!(
                    "row {}: shard {} quantized another model than shard {} (calibrated on other data?)",
                    r.key, p.shard, p0.shard
                )));
            }
            if r.error != r0.error {
                return Err(bad(format!("row {}: it ran in some shards and not in others", r.key)));
            }
            let same_hw = match (&r.hw, &r0.hw) {
                (Some(a), Some(b)) => {
                    HwFigures { host_seconds: 0.0, ..a.clone() } == HwFigures { host_seconds: 0.0, ..b.clone() }
                }
                (a, b) => a.is_none() && b.is_none(),
            };
            if !same_hw {
                return Err(bad(format!(
                    "row {}: shards {} and {} report other hardware figures",
                    r.key, p.shard, p0.shard
                )));
            }
            row.images += r.images;
            row.correct = match (row.correct, r.correct) {
                (Some(a), Some(b)) => Some(a + b),
                _ => None,
            };
            if let (Some(h), Some(rh)) = (&mut row.hw, &r.hw) {
                h.host_seconds += rh.host_seconds;
            }
            if r.tally.is_some() != r0.tally.is_some() {
                return Err(bad(format!(
                    "row {}: shard {} has no tally of its score where shard {} has one (not written by `npu compare --shard`?)",
                    r.key, if r.tally.is_none() { p.shard } else { p0.shard }, if r.tally.is_none() { p0.shard } else { p.shard }
                )));
            }
            match (&mut row.tally, &r.tally) {
                (Some(t), Some(rt)) => t.merge(rt)?,
                (t @ None, Some(rt)) => *t = Some(rt.clone()),
                (_, None) => {}
            }
        }
        if let Some(t) = &row.tally {
            row.score = shown(first.metric, t.value());
        }
        rows.push(row);
    }
    finish(&mut rows, first.metric);
    Ok(Comparison { rows, part: None, ..first.clone() })
}

/// Compiles `q`, times it once and replays every test sample; a row that cannot run on
/// the hardware says why.
fn run_row(
    req: &Request,
    test: &npu_data::Dataset,
    key: String,
    label: String,
    q: QModel,
    against: Against,
    progress: &dyn Progress,
) -> Result<Row> {
    let model_digest = digest(&npu_quant::npuq::encode(&q)?);
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
        tally: None,
        digest: Some(model_digest.clone()),
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
    let e = d.evaluate_labelled(&timing, test, req.jobs, &label, progress)?;
    let tally = e.tally(req.metric, test, against)?;
    let mut figures = timing.figures.clone();
    figures.host_seconds = e.host_seconds;
    Ok(Row {
        key,
        label,
        images: e.images,
        correct: test.labels().map(|_| e.correct),
        score: shown(req.metric, tally.value()),
        delta: None,
        hw: Some(figures),
        pareto_fps: false,
        pareto_energy: false,
        error: None,
        tally: Some(tally),
        digest: Some(model_digest),
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
