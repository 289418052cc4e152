//! Quantization-aware training: fine-tuning with the quantizer in the loop.
//!
//! 1. [`prepare`] folds BatchNorm and fuses activations ([`npu_model::passes::for_quantization`]),
//!    gives every convolution and dense layer a bias (so the fake-quant graph keeps the
//!    parameters' value ids) and calibrates activation ranges (min/max), which then stay
//!    fixed.
//! 2. Each training step, [`fake_quant`] quantizes the current float parameters with the
//!    real quantizer ([`super::quantize`]: the scheme's scales, power-of-two rounding,
//!    per-channel grids, 4/2/1-bit weights, zero points), runs the graph the integers
//!    represent ([`QModel::dequantized_graph`]) with every quantized activation rounded
//!    to its grid, and hands the gradients to the float parameters unchanged — the
//!    straight-through estimator; gradients of activations that fell outside their
//!    grid's range are stopped.
//! 3. [`finish`] quantizes the trained parameters with the same ranges: the model the
//!    training saw, as integers, ready to compile.

use crate::error::Result;
use crate::{FakeQuant, Grid};
use npu_data::Dataset;
use npu_model::ir::ValueId;
use npu_model::ir::{Op, Source, Tensor, Value};
use npu_model::Model;
use npu_quant::weights::QuantWeights;
use npu_quant::{calib, quantize, ActScheme, Kind, QModel, Ranges, Scheme, WeightBits, WeightScheme};
use std::collections::HashMap;

/// A model ready for quantization-aware training, and its fixed activation ranges.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The optimized FP32 model (BatchNorm folded, activations fused, every weighted
    /// layer with a bias): its constants are what training updates.
    pub model: Model,
    /// Activation ranges from calibration.
    pub ranges: Ranges,
}

/// Folds, completes and calibrates `m` for training under `scheme` (min/max ranges on
/// `images` images of `calib`).
pub fn prepare(m: &Model, scheme: &Scheme, calib_set: &Dataset, images: usize) -> Result<Prepared> {
    m.inputs(calib_set, 0..calib_set.len().min(1))?;
    let mut g = npu_model::passes::for_quantization(&m.graph)?;
    for ni in 0..g.nodes.len() {
        let node = &g.nodes[ni];
        if !matches!(node.op, Op::Conv2d { .. } | Op::Dense { .. }) || node.inputs.len() > 2 {
            continue;
        }
        let channels = g.values[node.inputs[1]].shape[0];
        let id = g.values.len();
        g.values.push(Value {
            name: format!("{}.bias", node.name),
            shape: vec![channels],
            source: Source::Const(Tensor::new(vec![channels], vec![0.0; channels])?),
        });
        g.nodes[ni].inputs.push(id);
    }
    g.verify()?;
    let n = images.min(calib_set.len()).max(1);
    let x = m.inputs(calib_set, 0..n)?;
    let ranges = calib::ranges(&g, &x, n, calib::Method::MinMax, scheme.act)?;
    Ok(Prepared { model: Model { graph: g, ..m.clone() }, ranges })
}

/// The graph the integers of `q` represent, and every value's grid.
fn fake_quant_graph(q: &QModel) -> (npu_model::ir::Graph, Vec<Option<Grid>>) {
    let gq = q.dequantized_graph();
    let mut grids = vec![None; gq.values.len()];
    for (v, qi) in q.value_map.iter().enumerate() {
        if let (Some(qi), Some(slot)) = (qi, grids.get_mut(v)) {
            let p = q.values[*qi].q;
            let (lo, hi) = p.dtype.range();
            *slot = Some(Grid { scale: p.scale, zero_point: p.zero_point, lo, hi });
        }
    }
    (gq, grids)
}

/// The fake-quantization step for [`crate::Trainer::with_fake_quant`].
pub fn fake_quant(p: &Prepared, scheme: &Scheme) -> FakeQuant {
    let (ranges, scheme, name, pre) =
        (p.ranges.clone(), scheme.clone(), p.model.name.clone(), p.model.preprocess.clone());
    Box::new(move |g| {
        let q = quantize(g, &ranges, &scheme, &name, pre.clone())?;
        Ok(fake_quant_graph(&q))
    })
}

/// Recalibrates the activation ranges on the model as training runs it (weights on
/// their grid): after the weights move — and binary or ternary weights move the
/// activations far — the ranges follow, as moving-average ranges do in other QAT
/// implementations. Min/max on `images` images of `calib_set`.
pub fn recalibrate(
    p: &mut Prepared,
    trained: &Model,
    scheme: &Scheme,
    calib_set: &Dataset,
    images: usize,
) -> Result<()> {
    let q = quantize(&trained.graph, &p.ranges, scheme, &trained.name, trained.preprocess.clone())?;
    let g = q.dequantized_graph();
    let n = images.min(calib_set.len()).max(1);
    let x = trained.inputs(calib_set, 0..n)?;
    p.ranges = calib::ranges(&g, &x, n, calib::Method::MinMax, scheme.act)?;
    Ok(())
}

/// The trained model, quantized with the ranges it was trained with.
pub fn finish(p: &Prepared, trained: &Model, scheme: &Scheme) -> Result<QModel> {
    Ok(quantize(&trained.graph, &p.ranges, scheme, &trained.name, trained.preprocess.clone())?)
}

/// The weighted layers of `g` in order: (node index, name).
fn weighted_nodes(g: &npu_model::ir::Graph) -> Vec<(usize, String)> {
    g.nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| matches!(n.op, Op::Conv2d { .. } | Op::Dense { .. }))
        .map(|(i, n)| (i, n.name.clone()))
        .collect()
}

/// `g` with every convolution and dense weight on its grid under `scheme` (the layer's
/// width, per-channel or per-tensor scales, its scaling factor: `α·sign(w)` for binary,
/// `α·{−1, 0, 1}` for ternary), as the quantizer would give it.
pub fn quantized_weights(g: &npu_model::ir::Graph, scheme: &Scheme) -> npu_model::ir::Graph {
    let mut out = g.clone();
    let layers = weighted_nodes(g);
    for (k, (ni, name)) in layers.iter().enumerate() {
        let wid = g.nodes[*ni].inputs[1];
        let Some(t) = g.values[wid].constant() else { continue };
        let qw = npu_quant::weights::quantize(&t.data, &t.shape, scheme.weights_for(name, k, layers.len()));
        if let Source::Const(t) = &mut out.values[wid].source {
            for (i, v) in t.data.iter_mut().enumerate() {
                *v = qw.dequantize(i);
            }
        }
    }
    out
}

/// Training with quantized operators from the start (QKeras/Larq style): the forward
/// pass uses every layer's weights on its grid under `scheme` — binary and ternary
/// layers with their per-channel scaling factors — and the gradients update the float
/// "latent" weights (straight-through). BatchNorm trains as usual: with per-channel
/// grids, folding it later rescales each channel's grid and keeps every weight on it.
pub fn weight_fake_quant(scheme: &Scheme) -> FakeQuant {
    let scheme = scheme.clone();
    Box::new(move |g| Ok((quantized_weights(g, &scheme), Vec::new())))
}

/// The gradients of [`Lsq`]'s parameters ([`Lsq::gradients`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepGradients {
    /// Per learned activation grid: (∂L/∂θ, ∂L/∂zero point) (the latter 0 where the
    /// zero point is not learned).
    pub acts: Vec<(f32, f32)>,
    /// Per weighted layer, in graph order: ∂L/∂θ and ∂L/∂zero point of each group.
    pub layers: Vec<(Vec<f32>, Vec<f32>)>,
}

/// One learned activation grid: every graph value the quantizer maps to one quantized
/// value shares it.
#[derive(Debug, Clone)]
struct ActStep {
    /// Graph values rounded to this grid.
    values: Vec<ValueId>,
    /// log₂ of the scale (the scale is `2^⌈θ⌉` under a power-of-two scheme).
    log2: f32,
    /// The zero point as a real number (learned only when activations are asymmetric).
    zero: f32,
    /// The values' quantization (its type: 4-bit activations keep the network's input
    /// and output int8).
    act: ActScheme,
}

/// One weighted layer's learned weight grids (per output channel, or one per tensor).
#[derive(Debug, Clone)]
struct WeightStep {
    /// Node name.
    name: String,
    /// The weight tensor's value id.
    weight: ValueId,
    /// How the scheme quantizes the layer.
    scheme: WeightScheme,
    /// log₂ of each group's scale.
    log2: Vec<f32>,
    /// Each group's zero point as a real number (asymmetric weights only).
    zero: Vec<f32>,
}

/// Quantization-aware training with learned step sizes: LSQ (Esser et al., 2020) for
/// every weight and activation scale, and LSQ+'s learned offset (Bhalgat et al., 2020)
/// for asymmetric grids' zero points.
///
/// The step sizes start where the quantizer puts them (weights: the scheme's scales
/// from the trained weights — max-magnitude for 8/4 bits, the TWN and XNOR-Net factors
/// for ternary and binary; activations: the calibrated ranges) and are trained with
/// the network. Each scale is learned as `θ = log₂ s` with its own Adam state, which
/// makes an update a relative change of the step whatever its size (LSQ's gradient
/// scaling exists to tame plain SGD on `s` itself); where the scheme is shift-only the
/// scale used is `2^⌈θ⌉` with the straight-through estimator across the ceiling (as
/// TQT trains power-of-two thresholds). Gradients: [`crate::Grid::derivatives`];
/// weights clipped by their grid get no gradient.
///
/// Every step, [`Lsq::graph`] hands the quantizer ([`npu_quant::quantize_given`]) the
/// weights on the learned grids and the activation ranges the learned steps imply, and
/// trains the graph its integers represent; [`Lsq::finish`] makes the same call, so the
/// model written is the model trained.
#[derive(Debug, Clone)]
pub struct Lsq {
    scheme: Scheme,
    name: String,
    preprocess: npu_data::Preprocess,
    /// Calibrated ranges: the input's, and a starting point for the rest.
    ranges: Ranges,
    acts: Vec<ActStep>,
    /// For each graph value, its entry in `acts`.
    act_of: Vec<Option<usize>>,
    layers: Vec<WeightStep>,
    opt: crate::optim::Optimizer,
}

/// The real range `[lo, hi]` from which [`npu_quant::act_params`] gives scale `s` and
/// zero point `round(z)` under `act`.
pub fn range_for(s: f32, z: f32, act: ActScheme) -> (f32, f32) {
    let (qmin, qmax) = act.dtype.range();
    match (act.kind, act.dtype) {
        (Kind::Asymmetric, _) => (s * (qmin as f32 - z), s * (qmax as f32 - z)),
        (_, npu_quant::ActType::I8) => (-127.0 * s, 127.0 * s),
        (_, npu_quant::ActType::U8) => (0.0, 255.0 * s),
        (_, npu_quant::ActType::I4) => (-7.0 * s, 7.0 * s),
    }
}

/// The integer range of `s`'s weights on their grid (asymmetric grids use the whole
/// type, symmetric ones keep it symmetric, as [`npu_quant::weights::quantize_group`]).
fn weight_levels(s: WeightScheme) -> (i32, i32) {
    match (s.bits, s.kind) {
        (WeightBits::B8, Kind::Asymmetric) => (-128, 127),
        (WeightBits::B8, _) => (-127, 127),
        (WeightBits::B4, Kind::Asymmetric) => (-8, 7),
        (WeightBits::B4, _) => (-7, 7),
        (WeightBits::Ternary | WeightBits::Binary, _) => (-1, 1),
    }
}

/// How much faster zero points learn than log₂ steps: a zero point is counted in
/// levels (up to 255 of them), a log₂ step in octaves; with Adam's unit-sized updates
/// this moves a zero point by about a level every hundred steps at learning rate 10⁻³.
pub const ZERO_POINT_LR: f32 = 10.0;

/// θ for a starting scale `s`: `log₂ s`, or under a power-of-two scheme the middle of
/// the interval that still rounds up to it (`log₂ s − ½`), so that the first small
/// update does not double or halve the step.
fn start(s: f32, pow2: bool) -> f32 {
    if pow2 {
        s.log2().round() - 0.5
    } else {
        s.log2()
    }
}

fn step(log2: f32, pow2: bool) -> f32 {
    if pow2 {
        2f32.powi(log2.ceil() as i32)
    } else {
        log2.exp2()
    }
}

impl WeightStep {
    fn pow2(&self) -> bool {
        self.scheme.kind == Kind::Pow2
    }

    fn groups(&self, len: usize) -> usize {
        if self.log2.len() == 1 {
            len
        } else {
            len / self.log2.len()
        }
    }

    /// The grid of group `c`.
    fn grid(&self, c: usize) -> Grid {
        let (lo, hi) = weight_levels(self.scheme);
        Grid { scale: step(self.log2[c], self.pow2()), zero_point: self.zero[c].round() as i32, lo, hi }
    }

    /// `w` on the learned grids.
    fn quantize(&self, w: &[f32], shape: &[usize]) -> QuantWeights {
        let per = self.groups(w.len()).max(1);
        let mut values = Vec::with_capacity(w.len());
        for (c, chunk) in w.chunks(per).enumerate() {
            let grid = self.grid(c);
            values.extend(chunk.iter().map(|x| {
                if self.scheme.bits == WeightBits::Binary {
                    if *x >= 0.0 {
                        1
                    } else {
                        -1
                    }
                } else {
                    let q = (f64::from(*x) / f64::from(grid.scale)).round() + f64::from(grid.zero_point);
                    q.clamp(f64::from(grid.lo), f64::from(grid.hi)) as i32
                }
            }));
        }
        let groups = self.log2.len();
        QuantWeights {
            values,
            shape: shape.to_vec(),
            scale: (0..groups).map(|c| self.grid(c).scale).collect(),
            zero: (0..groups).map(|c| self.grid(c).zero_point).collect(),
            bits: self.scheme.bits,
        }
    }

    /// For latent weight `x` in group `c`: (∂x̂/∂s, ∂x̂/∂z, whether its gradient passes).
    fn derivatives(&self, x: f32, c: usize) -> (f32, f32, bool) {
        let grid = self.grid(c);
        if self.scheme.bits == WeightBits::Binary {
            // x̂ = s·sign(x); the latent weight's gradient passes unchanged (the identity
            // straight-through estimator of XNOR-Net and Bi-Real: a clip at |x| ≤ s
            // would freeze the ~40 % of weights beyond the mean magnitude s starts at).
            let sign = if x >= 0.0 { 1.0 } else { -1.0 };
            return (sign, 0.0, true);
        }
        let (ds, dz) = grid.derivatives(x);
        let q = (f64::from(x) / f64::from(grid.scale)).round() + f64::from(grid.zero_point);
        (ds, dz, q >= f64::from(grid.lo) && q <= f64::from(grid.hi))
    }
}

impl Lsq {
    /// Learned step sizes for `p` under `scheme`, starting where the quantizer puts them.
    pub fn new(p: &Prepared, scheme: &Scheme) -> Result<Lsq> {
        let g = &p.model.graph;
        let q = quantize(g, &p.ranges, scheme, &p.model.name, p.model.preprocess.clone())?;
        let mut acts: Vec<ActStep> = Vec::new();
        let mut act_of = vec![None; g.values.len()];
        let mut by_qvalue: Vec<Option<usize>> = vec![None; q.values.len()];
        for (v, qi) in q.value_map.iter().enumerate() {
            let Some(qi) = *qi else { continue };
            if g.inputs.contains(&v) {
                continue;
            }
            let k = *by_qvalue[qi].get_or_insert_with(|| {
                let qp = q.values[qi].q;
                acts.push(ActStep {
                    values: Vec::new(),
                    log2: start(qp.scale, scheme.act.kind == Kind::Pow2),
                    zero: qp.zero_point as f32,
                    act: ActScheme { kind: scheme.act.kind, dtype: qp.dtype },
                });
                acts.len() - 1
            });
            acts[k].values.push(v);
            act_of[v] = Some(k);
        }
        let weighted = weighted_nodes(g);
        let count = weighted.len();
        let layers: Vec<WeightStep> = weighted
            .iter()
            .enumerate()
            .filter_map(|(k, (ni, name))| {
                let weight = g.nodes[*ni].inputs[1];
                let t = g.values[weight].constant()?;
                let ws = scheme.weights_for(name, k, count);
                let qw = npu_quant::weights::quantize(&t.data, &t.shape, ws);
                Some(WeightStep {
                    name: name.clone(),
                    weight,
                    scheme: ws,
                    log2: qw.scale.iter().map(|s| start(*s, ws.kind == Kind::Pow2)).collect(),
                    zero: qw.zero.iter().map(|z| *z as f32).collect(),
                })
            })
            .collect();
        let mut sizes = vec![1; 2 * acts.len()];
        for l in &layers {
            sizes.push(l.log2.len());
            sizes.push(l.zero.len());
        }
        let opt = crate::optim::Optimizer::new(crate::optim::OptimizerKind::AdamW, &sizes);
        Ok(Lsq {
            scheme: scheme.clone(),
            name: p.model.name.clone(),
            preprocess: p.model.preprocess.clone(),
            ranges: p.ranges.clone(),
            acts,
            act_of,
            layers,
            opt,
        })
    }

    fn act_pow2(&self) -> bool {
        self.scheme.act.kind == Kind::Pow2
    }

    /// The activation ranges the learned steps imply (the input keeps its calibrated one).
    pub fn ranges(&self) -> Ranges {
        let mut r = self.ranges.clone();
        for a in &self.acts {
            let range = range_for(step(a.log2, self.act_pow2()), a.zero, a.act);
            for &v in &a.values {
                if let Some(slot) = r.get_mut(v) {
                    *slot = Some(range);
                }
            }
        }
        r
    }

    /// Every weighted layer's weights of `g` on its learned grid, by layer name.
    pub fn weights(&self, g: &npu_model::ir::Graph) -> HashMap<String, QuantWeights> {
        self.layers
            .iter()
            .filter_map(|l| {
                let t = g.values.get(l.weight)?.constant()?;
                Some((l.name.clone(), l.quantize(&t.data, &t.shape)))
            })
            .collect()
    }

    /// The trained model `trained` (the prepared graph, trained) quantized with the
    /// learned steps: the integers training saw.
    pub fn finish(&self, trained: &Model) -> Result<QModel> {
        let g = &trained.graph;
        Ok(npu_quant::quantize_given(
            g,
            &self.ranges(),
            &self.scheme,
            &self.name,
            self.preprocess.clone(),
            &self.weights(g),
        )?)
    }

    /// For the current latent parameters `g`: the graph to train (weights on their
    /// learned grids), every value's grid, and which grids learn.
    pub fn graph(&self, g: &npu_model::ir::Graph) -> Result<(npu_model::ir::Graph, Vec<Option<Grid>>, Vec<bool>)> {
        let q = npu_quant::quantize_given(
            g,
            &self.ranges(),
            &self.scheme,
            &self.name,
            self.preprocess.clone(),
            &self.weights(g),
        )?;
        let (gq, grids) = fake_quant_graph(&q);
        let learn = (0..gq.values.len()).map(|v| self.act_of.get(v).copied().flatten().is_some()).collect();
        Ok((gq, grids, learn))
    }

    /// The gradients of the learned parameters from those of a pass over
    /// [`Lsq::graph`] (with [`crate::forward_learning`] and [`crate::backward_full`]),
    /// with respect to each `θ = log₂ s` and zero point; the weights' gradients in
    /// `grads` are stopped where the latent weights were clipped by their grid.
    pub fn gradients(&self, g: &npu_model::ir::Graph, grads: &mut crate::Gradients) -> StepGradients {
        let ln2 = std::f64::consts::LN_2;
        let pow2 = self.act_pow2();
        let asym = self.scheme.act.kind == Kind::Asymmetric;
        let acts = self
            .acts
            .iter()
            .map(|a| {
                let (mut ds, mut dz) = (0f64, 0f64);
                for v in &a.values {
                    if let Some((s, z)) = grads.grids.get(v) {
                        ds += s;
                        dz += z;
                    }
                }
                let s = f64::from(step(a.log2, pow2));
                ((ds * s * ln2) as f32, if asym { dz as f32 } else { 0.0 })
            })
            .collect();
        let layers = self
            .layers
            .iter()
            .map(|l| {
                let (mut ds, mut dz) = (vec![0f64; l.log2.len()], vec![0f64; l.zero.len()]);
                if let (Some(t), Some(dw)) = (g.values[l.weight].constant(), grads.params.get_mut(&l.weight)) {
                    let per = l.groups(t.data.len()).max(1);
                    for (i, (x, d)) in t.data.iter().zip(dw.iter_mut()).enumerate() {
                        let c = i / per;
                        let (s_, z_, pass) = l.derivatives(*x, c);
                        ds[c] += f64::from(*d) * f64::from(s_);
                        dz[c] += f64::from(*d) * f64::from(z_);
                        if !pass {
                            *d = 0.0;
                        }
                    }
                }
                let learn_zero = l.scheme.kind == Kind::Asymmetric
                    && !matches!(l.scheme.bits, WeightBits::Ternary | WeightBits::Binary);
                (
                    ds.iter()
                        .enumerate()
                        .map(|(c, d)| (d * f64::from(step(l.log2[c], l.pow2())) * ln2) as f32)
                        .collect(),
                    dz.iter().map(|d| if learn_zero { *d as f32 } else { 0.0 }).collect(),
                )
            })
            .collect();
        StepGradients { acts, layers }
    }

    /// One step of the learned grids from the gradients of a pass over [`Lsq::graph`]
    /// ([`Lsq::gradients`]): the step sizes (and zero points) move by Adam at learning
    /// rate `lr` (zero points [`ZERO_POINT_LR`] times faster).
    pub fn learn(&mut self, g: &npu_model::ir::Graph, grads: &mut crate::Gradients, lr: f32) {
        let sg = self.gradients(g, grads);
        for (k, (a, (dt, dz))) in self.acts.iter_mut().zip(&sg.acts).enumerate() {
            let (qmin, qmax) = a.act.dtype.range();
            let (mut t, mut z) = ([a.log2], [a.zero]);
            self.opt.step(2 * k, &mut t, &[*dt], lr, 0.0);
            self.opt.step(2 * k + 1, &mut z, &[*dz], lr * ZERO_POINT_LR, 0.0);
            a.log2 = t[0];
            // The zero point stays in the type's range (so the range contains 0).
            a.zero = z[0].clamp(qmin as f32, qmax as f32);
        }
        let base = 2 * self.acts.len();
        for (k, (l, (dt, dz))) in self.layers.iter_mut().zip(&sg.layers).enumerate() {
            self.opt.step(base + 2 * k, &mut l.log2, dt, lr, 0.0);
            self.opt.step(base + 2 * k + 1, &mut l.zero, dz, lr * ZERO_POINT_LR, 0.0);
            let (lo, hi) = weight_levels(l.scheme);
            l.zero.iter_mut().for_each(|z| *z = z.clamp(lo as f32, hi as f32));
        }
        self.opt.advance();
    }

    /// The learned `θ = log₂ s` of each weight group of layer `name` (per channel, or
    /// one per tensor).
    pub fn weight_log2_steps(&self, name: &str) -> Option<&[f32]> {
        self.layers.iter().find(|l| l.name == name).map(|l| l.log2.as_slice())
    }

    /// Sets the learned `θ = log₂ s` of layer `name`'s weight groups.
    pub fn set_weight_log2_steps(&mut self, name: &str, log2: &[f32]) -> Result<()> {
        let l = self
            .layers
            .iter_mut()
            .find(|l| l.name == name)
            .ok_or_else(|| crate::Error::Invalid(format!("no weighted layer `{name}`")))?;
        if l.log2.len() != log2.len() {
            return Err(crate::Error::Invalid(format!(
                "layer `{name}` has {} weight scales, not {}",
                l.log2.len(),
                log2.len()
            )));
        }
        l.log2.copy_from_slice(log2);
        Ok(())
    }
}
