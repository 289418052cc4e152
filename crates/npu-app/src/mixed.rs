//! Mixed precision: a search for per-layer weight bit widths on the Pareto front of
//! accuracy against simulated cycles (or energy) on the target hardware.
//!
//! 1. **Baseline**: every layer INT8 per-channel; accuracy from the integer reference
//!    executor on validation images (held out of calibration: images of the embedded
//!    training subset after the calibration ones), cost from a timing-only simulation of
//!    the compiled model.
//! 2. **Sensitivity**: each weighted layer alone at 4, 2 (ternary) and 1 (binary) bits —
//!    the accuracy it costs and the cycles (or energy) it saves.
//! 3. **Greedy search**: from the baseline, repeatedly take the move (one layer one step
//!    lower) with the most cost saved per point of accuracy its sensitivity predicts,
//!    evaluate the whole assignment, and keep it when the accuracy drop against the
//!    baseline stays within `max_drop`. Every assignment evaluated is a point; the ones no
//!    other point beats on both axes form the Pareto front.

use npu_quant::{Kind, QModel, Scheme, WeightBits, WeightScheme};

use crate::{Error, Result};

/// Search options.
#[derive(Debug, Clone)]
pub struct Options {
    /// Largest accuracy drop allowed against all-INT8, points.
    pub max_drop: f64,
    /// Minimize energy per frame instead of cycles.
    pub energy: bool,
    /// Validation images.
    pub val_images: usize,
    /// Calibration images.
    pub calib: usize,
}

/// One evaluated assignment.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Per weighted layer: name and bits.
    pub bits: Vec<(String, WeightBits)>,
    /// Validation top-1, percent.
    pub accuracy: f64,
    /// Simulated cycles per frame.
    pub cycles: u64,
    /// Simulated energy per frame, µJ.
    pub energy_uj: f64,
}

/// What the search found.
#[derive(Debug, Clone)]
pub struct Found {
    /// All-INT8.
    pub baseline: Point,
    /// Per layer and width: (layer, bits, accuracy drop, cost saved).
    pub sensitivity: Vec<(String, WeightBits, f64, f64)>,
    /// Every assignment evaluated, in order.
    pub explored: Vec<Point>,
    /// The cheapest assignment within the allowed drop.
    pub best: Point,
    /// The recipe of `best`.
    pub recipe: Scheme,
}

fn bits_name(b: WeightBits) -> &'static str {
    match b {
        WeightBits::B8 => "8",
        WeightBits::B4 => "4",
        WeightBits::Ternary => "2",
        WeightBits::Binary => "1",
    }
}

/// `4/8/2/1` per layer, for messages.
pub fn describe(p: &Point) -> String {
    p.bits.iter().map(|(_, b)| bits_name(*b)).collect::<Vec<_>>().join(" ")
}

fn lower(b: WeightBits) -> Option<WeightBits> {
    match b {
        WeightBits::B8 => Some(WeightBits::B4),
        WeightBits::B4 => Some(WeightBits::Ternary),
        WeightBits::Ternary => Some(WeightBits::Binary),
        WeightBits::Binary => None,
    }
}

fn recipe(name: &str, bits: &[(String, WeightBits)]) -> Result<Scheme> {
    let mut s = Scheme::named("int8-per-channel")?;
    s.name = name.to_string();
    for (layer, b) in bits {
        if *b != WeightBits::B8 {
            s.overrides.push((
                layer.clone(),
                WeightScheme { kind: Kind::Symmetric, bits: *b, per_channel: true, clip_sigma: None },
            ));
        }
    }
    Ok(s)
}

struct Ctx {
    graph: npu_model::ir::Graph,
    ranges: npu_quant::Ranges,
    model: npu_model::Model,
    hw: npu_hw::HwConfig,
    val: npu_data::Dataset,
}

impl Ctx {
    fn quantize(&self, bits: &[(String, WeightBits)]) -> Result<QModel> {
        let s = recipe("search", bits)?;
        Ok(npu_quant::quantize(&self.graph, &self.ranges, &s, &self.model.name, self.model.preprocess.clone())?)
    }

    fn evaluate(&self, bits: &[(String, WeightBits)]) -> Result<Option<Point>> {
        let q = self.quantize(bits)?;
        let Ok(c) = npu_compile::compile(&q, &self.hw) else { return Ok(None) };
        let opts = npu_sim::RunOptions { timing_only: true, ..Default::default() };
        let o = npu_sim::run(&c.program, &self.hw, &opts)?;
        if o.trap.is_some() {
            return Ok(None);
        }
        let (acc, _) = q.evaluate_int(&self.val, self.val.len(), &mut |_| {})?;
        Ok(Some(Point {
            bits: bits.to_vec(),
            accuracy: acc.top1() * 100.0,
            cycles: o.report.total_cycles,
            energy_uj: o.report.energy.total_pj / 1e6,
        }))
    }
}

/// Runs the search for `model` on `hw`, calibrating and validating on images of
/// `train` (validation: the images after the calibration ones); `progress` hears about
/// every evaluation.
pub fn search(
    model: &npu_model::Model,
    hw: &npu_hw::HwConfig,
    train: &npu_data::Dataset,
    o: &Options,
    progress: &mut dyn FnMut(&str),
) -> Result<Found> {
    let (model, hw) = (model.clone(), hw.clone());
    let graph = npu_model::passes::for_quantization(&model.graph)?;
    let n = o.calib.min(train.len()).max(1);
    let x = model.inputs(train, 0..n)?;
    let base_scheme = Scheme::named("int8-per-channel")?;
    let ranges = npu_quant::calib::ranges(&graph, &x, n, npu_quant::calib::Method::MinMax, base_scheme.act)?;
    // Validation: the images after the calibration ones.
    let val = train.slice(n, o.val_images);
    if val.is_empty() {
        return Err(Error::Invalid(format!("no validation images left after {n} calibration images")));
    }
    let ctx = Ctx { graph, ranges, model, hw, val };
    let q0 = ctx.quantize(&[])?;
    let layers: Vec<String> = q0
        .layers
        .iter()
        .filter(|l| matches!(l.op, npu_quant::QOp::Conv2d { .. } | npu_quant::QOp::Dense { .. }))
        .map(|l| l.name.clone())
        .collect();
    let cost = |p: &Point| if o.energy { p.energy_uj } else { p.cycles as f64 };
    let all8: Vec<(String, WeightBits)> = layers.iter().map(|l| (l.clone(), WeightBits::B8)).collect();
    let baseline = ctx
        .evaluate(&all8)?
        .ok_or_else(|| Error::Invalid("the all-INT8 model does not run on this hardware".into()))?;
    progress(&format!("baseline all-INT8: {:.2}%, {} cycles", baseline.accuracy, baseline.cycles));
    let mut explored = vec![baseline.clone()];
    let mut sensitivity = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        for b in [WeightBits::B4, WeightBits::Ternary, WeightBits::Binary] {
            let mut bits = all8.clone();
            bits[i].1 = b;
            if let Some(p) = ctx.evaluate(&bits)? {
                progress(&format!("{layer} at {} bits: {:+.2} points", bits_name(b), p.accuracy - baseline.accuracy));
                sensitivity.push((layer.clone(), b, baseline.accuracy - p.accuracy, cost(&baseline) - cost(&p)));
                explored.push(p);
            }
        }
    }
    let sens = |layer: &str, b: WeightBits| sensitivity.iter().find(|s| s.0 == layer && s.1 == b).map(|s| (s.2, s.3));
    let mut current = baseline.clone();
    let mut rejected: Vec<(usize, WeightBits)> = Vec::new();
    loop {
        let mut moves: Vec<(f64, usize, WeightBits)> = Vec::new();
        for (i, (layer, b)) in current.bits.iter().enumerate() {
            let Some(nb) = lower(*b) else { continue };
            if rejected.contains(&(i, nb)) {
                continue;
            }
            let (Some((d_new, s_new)), old) = (sens(layer, nb), sens(layer, *b).unwrap_or((0.0, 0.0))) else {
                continue;
            };
            let saved = s_new - old.1;
            if saved <= 0.0 {
                continue;
            }
            let lost = (d_new - old.0).max(0.0) + 0.01;
            moves.push((saved / lost, i, nb));
        }
        moves.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut accepted = false;
        for (_, i, nb) in moves {
            let mut bits = current.bits.clone();
            bits[i].1 = nb;
            let Some(p) = ctx.evaluate(&bits)? else {
                rejected.push((i, nb));
                continue;
            };
            let drop = baseline.accuracy - p.accuracy;
            progress(&format!("try {}: {:.2}% ({:+.2}), {} cycles", describe(&p), p.accuracy, -drop, p.cycles));
            explored.push(p.clone());
            if drop <= o.max_drop && cost(&p) < cost(&current) {
                current = p;
                accepted = true;
                break;
            }
            rejected.push((i, nb));
        }
        if !accepted {
            break;
        }
    }
    let best = explored
        .iter()
        .filter(|p| baseline.accuracy - p.accuracy <= o.max_drop)
        .min_by(|a, b| cost(a).total_cmp(&cost(b)))
        .cloned()
        .unwrap_or(current);
    let recipe = recipe(&format!("mixed-{}", ctx.model.name), &best.bits)?;
    Ok(Found { baseline, sensitivity, explored, best, recipe })
}

/// The explored points no other point beats in both accuracy and cost.
pub fn pareto(points: &[Point], energy: bool) -> Vec<Point> {
    let cost = |p: &Point| if energy { p.energy_uj } else { p.cycles as f64 };
    let mut front: Vec<Point> = points
        .iter()
        .filter(|p| {
            !points.iter().any(|q| {
                q.accuracy >= p.accuracy && cost(q) <= cost(p) && (q.accuracy > p.accuracy || cost(q) < cost(p))
            })
        })
        .cloned()
        .collect();
    front.sort_by(|a, b| cost(a).total_cmp(&cost(b)));
    front.dedup_by(|a, b| a.bits == b.bits);
    front
}
