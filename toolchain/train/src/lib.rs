//! The training engine: backward passes written over our own IR.
//!
//! Training runs the same graph the FP32 executor runs, with the same forward kernels
//! (convolutions and dense layers share `fp32`'s code), so a trained model computes in
//! `npu eval` exactly what it computed while training. Choice and reasons:
//! `docs/training.md`.
//!
//! One step: [`forward`] records every node's inputs (the tape) with BatchNorm in
//! training mode (batch statistics), the loss is softmax cross-entropy on the graph's
//! output, [`backward`] walks the tape in reverse and returns gradients for every
//! trainable constant (convolution and dense weights and biases, BatchNorm scale and
//! shift), and an [`optim::Optimizer`] updates them. BatchNorm running statistics are
//! updated with momentum 0.1 (PyTorch's convention, unbiased variance).

#![deny(missing_docs)]

pub mod error;
pub mod grad;
pub mod optim;
pub mod prune;
pub mod qat;
pub mod synth;

pub use error::{Error, Result};

use std::collections::HashMap;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use npu_data::Dataset;
use npu_model::fp32::{self, conv2d, ConvGeom, Env};
use npu_model::ir::{Activation, Graph, Op, Source, ValueId};
use npu_model::rng::Prng;
use npu_model::Model;
use optim::{Optimizer, OptimizerKind, Schedule};

/// Which constants train, and how each node's forward pass stored what backward needs.
#[derive(Debug, Clone)]
pub struct Tape {
    /// Batch size.
    pub n: usize,
    /// Value data for the batch (activations) — every node input and output.
    pub vals: Vec<Option<Vec<f32>>>,
    /// Per BatchNorm node: (normalized input x̂, 1/√(σ²+ε) per channel).
    pub bn: HashMap<usize, (Vec<f32>, Vec<f32>)>,
    /// Per value rounded to a [`Grid`]: which elements were inside its range (the
    /// straight-through estimator passes their gradient, and stops the others').
    pub masks: HashMap<ValueId, Vec<bool>>,
    /// Per value whose grid is learned ([`forward_learning`]): each element's
    /// derivatives of its rounded value with respect to the grid's scale and zero point.
    pub steps: HashMap<ValueId, StepDerivatives>,
}

/// Derivatives of fake-quantized values with respect to their grid (LSQ/LSQ+), one
/// entry per element, from [`Grid::derivatives`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepDerivatives {
    /// ∂x̂/∂scale.
    pub scale: Vec<f32>,
    /// ∂x̂/∂zero_point (the zero point taken as a real number).
    pub zero_point: Vec<f32>,
}

/// A quantization grid for fake quantization: `real = scale · (q − zero_point)` with
/// `q` in `lo..=hi`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Grid {
    /// Step.
    pub scale: f32,
    /// Integer that represents 0.
    pub zero_point: i32,
    /// Lowest integer.
    pub lo: i32,
    /// Highest integer.
    pub hi: i32,
}

impl Grid {
    /// Rounds `v` to the grid in place; returns which elements were in range.
    /// The arithmetic is the quantizer's (`QParams::quantize`, then `dequantize`).
    pub fn round(&self, v: &mut [f32]) -> Vec<bool> {
        v.iter_mut()
            .map(|x| {
                let q = (f64::from(*x) / f64::from(self.scale)).round() + f64::from(self.zero_point);
                let inside = q >= f64::from(self.lo) && q <= f64::from(self.hi);
                let q = q.clamp(f64::from(self.lo), f64::from(self.hi)) as i32;
                *x = self.scale * (q - self.zero_point) as f32;
                inside
            })
            .collect()
    }

    /// Derivatives of the rounded value `x̂ = s·(clamp(round(x/s) + z, lo, hi) − z)` with
    /// respect to the scale `s` and the zero point `z` (taken as a real number), with
    /// the straight-through estimator for the rounding — learned step size quantization
    /// (LSQ, Esser et al. 2020) and its offset (LSQ+, Bhalgat et al. 2020):
    /// inside the range `(round(x/s) − x/s, 0)`; clipped below `(lo − z, −s)`; clipped
    /// above `(hi − z, −s)`.
    pub fn derivatives(&self, x: f32) -> (f32, f32) {
        let v = f64::from(x) / f64::from(self.scale);
        let q = v.round() + f64::from(self.zero_point);
        let z = f64::from(self.zero_point);
        if q < f64::from(self.lo) {
            ((f64::from(self.lo) - z) as f32, -self.scale)
        } else if q > f64::from(self.hi) {
            ((f64::from(self.hi) - z) as f32, -self.scale)
        } else {
            ((v.round() - v) as f32, 0.0)
        }
    }
}

/// For the current parameters, the graph to run forward and backward (weights on their
/// quantization grid) and the grid of every value (`None`: not rounded). The graph must
/// keep the parameters' value ids, so that its gradients update them (the
/// straight-through estimator).
pub type FakeQuant = Box<dyn Fn(&Graph) -> Result<(Graph, Vec<Option<Grid>>)> + Send + Sync>;

/// Constants that training updates: weights and biases of convolutions and dense
/// layers, scale and shift of BatchNorm. Returns their value ids.
pub fn trainable(g: &Graph) -> Vec<ValueId> {
    let mut v = Vec::new();
    for n in &g.nodes {
        let idx: &[usize] = match n.op {
            Op::Conv2d { .. } | Op::Dense { .. } => &[1, 2],
            Op::BatchNorm { .. } => &[1, 2],
            _ => &[],
        };
        for &i in idx {
            if let Some(&id) = n.inputs.get(i) {
                if g.values[id].constant().is_some() && !v.contains(&id) {
                    v.push(id);
                }
            }
        }
    }
    v
}

/// Whether training can run `op` (it has a backward pass).
pub fn supported(op: &Op) -> bool {
    matches!(
        op,
        Op::Conv2d { .. }
            | Op::Dense { .. }
            | Op::BatchNorm { .. }
            | Op::Relu
            | Op::Clip { .. }
            | Op::LeakyRelu { .. }
            | Op::HardSwish
            | Op::Sigmoid
            | Op::MaxPool { .. }
            | Op::AvgPool { .. }
            | Op::GlobalAvgPool
            | Op::Add
            | Op::Reshape { .. }
            | Op::Flatten
            | Op::DynamicQuantize { .. }
    )
}

/// Checks that every node of `g` can be trained, naming those that cannot.
pub fn check_trainable(g: &Graph) -> Result<()> {
    let bad: Vec<String> =
        g.nodes.iter().filter(|n| !supported(&n.op)).map(|n| format!("`{}` ({})", n.name, n.op.name())).collect();
    if !bad.is_empty() {
        return Err(Error::Invalid(format!("training has no backward pass for: {}", bad.join(", "))));
    }
    if g.inputs.len() != 1 || g.outputs.len() != 1 {
        return Err(Error::Invalid("training needs one input and one output (the logits)".into()));
    }
    Ok(())
}

fn data<'a>(g: &'a Graph, vals: &'a [Option<Vec<f32>>], id: ValueId) -> &'a [f32] {
    match &g.values[id].source {
        Source::Const(t) => &t.data,
        _ => vals[id].as_deref().unwrap_or(&[]),
    }
}

fn conv_geom(g: &Graph, node: &npu_model::ir::Node) -> ConvGeom {
    let s = &g.values[node.inputs[0]].shape;
    let w = &g.values[node.inputs[1]].shape;
    let o = &g.values[node.output].shape;
    let Op::Conv2d { stride, pad, dilation, groups, .. } = node.op else { unreachable!("conv_geom on a convolution") };
    ConvGeom {
        c: s[0],
        h: s[1],
        w: s[2],
        co: w[0],
        kh: w[2],
        kw: w[3],
        oh: o[1],
        ow: o[2],
        stride,
        pad,
        dilation,
        groups,
    }
}

/// Runs the graph on a batch, recording the tape. With `train`, BatchNorm uses batch
/// statistics and updates the running ones in `g`.
pub fn forward(g: &mut Graph, x: &[f32], n: usize, train: bool) -> Result<Tape> {
    forward_with(g, x, n, train, &[])
}

/// [`forward`] with fake quantization: every value with a grid in `grids` (indexed by
/// value id) is rounded to it as it is computed (reshapes keep their input's grid).
pub fn forward_with(g: &mut Graph, x: &[f32], n: usize, train: bool, grids: &[Option<Grid>]) -> Result<Tape> {
    forward_learning(g, x, n, train, grids, &[])
}

/// [`forward_with`] that also records, for every value whose entry in `learn` is true,
/// the derivatives of its rounded elements with respect to its grid
/// ([`Tape::steps`]), from which [`backward_full`] gives the grid's gradients.
pub fn forward_learning(
    g: &mut Graph,
    x: &[f32],
    n: usize,
    train: bool,
    grids: &[Option<Grid>],
    learn: &[bool],
) -> Result<Tape> {
    check_trainable(g)?;
    let mut steps = HashMap::new();
    let mut vals: Vec<Option<Vec<f32>>> = vec![None; g.values.len()];
    let mut masks = HashMap::new();
    let mut input = x.to_vec();
    if let Some(Some(grid)) = grids.get(g.inputs[0]) {
        grid.round(&mut input);
    }
    vals[g.inputs[0]] = Some(input);
    let mut bn = HashMap::new();
    let batched = g.batched();
    for ni in 0..g.nodes.len() {
        let node = g.nodes[ni].clone();
        let out_per: usize = g.values[node.output].shape.iter().product();
        let out = match &node.op {
            Op::Conv2d { act, .. } => {
                let geo = conv_geom(g, &node);
                let xin = data(g, &vals, node.inputs[0]);
                let w = data(g, &vals, node.inputs[1]);
                let b = node.inputs.get(2).map(|&i| data(g, &vals, i));
                let in_per = geo.c * geo.h * geo.w;
                let mut out = vec![0f32; n * out_per];
                out.par_chunks_mut(out_per)
                    .zip(xin.par_chunks(in_per))
                    .for_each(|(o, xi)| conv2d(&geo, xi, w, b, *act, o));
                out
            }
            Op::BatchNorm { eps } if train => {
                let xin = data(g, &vals, node.inputs[0]);
                let s = &g.values[node.inputs[0]].shape;
                let (c, inner) = (s[0], s[1..].iter().product::<usize>());
                let gamma = data(g, &vals, node.inputs[1]).to_vec();
                let beta = data(g, &vals, node.inputs[2]).to_vec();
                let m = (n * inner) as f64;
                let mut mean = vec![0f64; c];
                let mut var = vec![0f64; c];
                for (k, block) in xin.chunks(inner).enumerate() {
                    let ch = k % c;
                    mean[ch] += block.iter().map(|v| f64::from(*v)).sum::<f64>();
                }
                mean.iter_mut().for_each(|v| *v /= m);
                for (k, block) in xin.chunks(inner).enumerate() {
                    let ch = k % c;
                    var[ch] += block.iter().map(|v| (f64::from(*v) - mean[ch]).powi(2)).sum::<f64>();
                }
                var.iter_mut().for_each(|v| *v /= m);
                let inv: Vec<f32> = var.iter().map(|v| (1.0 / (v + f64::from(*eps)).sqrt()) as f32).collect();
                let mut xhat = vec![0f32; xin.len()];
                let mut out = vec![0f32; xin.len()];
                for (k, (block, (xh, o))) in
                    xin.chunks(inner).zip(xhat.chunks_mut(inner).zip(out.chunks_mut(inner))).enumerate()
                {
                    let ch = k % c;
                    let mu = mean[ch] as f32;
                    for ((xv, hv), ov) in block.iter().zip(xh.iter_mut()).zip(o.iter_mut()) {
                        *hv = (xv - mu) * inv[ch];
                        *ov = gamma[ch] * *hv + beta[ch];
                    }
                }
                // Running statistics (unbiased variance), momentum 0.1.
                let unbias = if m > 1.0 { m / (m - 1.0) } else { 1.0 };
                for (slot, new) in [(3usize, &mean), (4usize, &var)] {
                    let id = node.inputs[slot];
                    if let Source::Const(t) = &mut g.values[id].source {
                        for (r, v) in t.data.iter_mut().zip(new.iter()) {
                            let v = if slot == 4 { v * unbias } else { *v };
                            *r = 0.9 * *r + 0.1 * v as f32;
                        }
                    }
                }
                bn.insert(ni, (xhat, inv));
                out
            }
            _ => {
                let env = Env { graph: g, batched: &batched, vals: std::mem::take(&mut vals) };
                let out = fp32::eval_node(&env, &node, n);
                vals = env.vals;
                out
            }
        };
        let mut out = out;
        if let Some(Some(grid)) = grids.get(node.output) {
            if !matches!(node.op, Op::Reshape { .. } | Op::Flatten) {
                if learn.get(node.output).copied().unwrap_or(false) {
                    let (scale, zero_point) = out.iter().map(|v| grid.derivatives(*v)).unzip();
                    steps.insert(node.output, StepDerivatives { scale, zero_point });
                }
                masks.insert(node.output, grid.round(&mut out));
            }
        }
        vals[node.output] = Some(out);
    }
    Ok(Tape { n, vals, bn, masks, steps })
}

/// Softmax cross-entropy of `logits` (`n` rows) against `labels`: the mean loss, the
/// number of correct top-1 predictions, and the gradient with respect to the logits.
pub fn softmax_cross_entropy(logits: &[f32], labels: &[u32], n: usize) -> (f32, usize, Vec<f32>) {
    let k = logits.len() / n.max(1);
    let mut grad = vec![0f32; logits.len()];
    let mut loss = 0f64;
    let mut correct = 0;
    for i in 0..n {
        let row = &logits[i * k..(i + 1) * k];
        let mx = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f64 = row.iter().map(|v| f64::from(v - mx).exp()).sum();
        let label = labels[i] as usize;
        loss += sum.ln() - f64::from(row[label] - mx);
        let best = row.iter().enumerate().fold((0, f32::NEG_INFINITY), |b, (j, &v)| if v > b.1 { (j, v) } else { b }).0;
        correct += usize::from(best == label);
        for j in 0..k {
            let p = (f64::from(row[j] - mx).exp() / sum) as f32;
            grad[i * k + j] = (p - if j == label { 1.0 } else { 0.0 }) / n as f32;
        }
    }
    ((loss / n as f64) as f32, correct, grad)
}

/// Adds a parameter gradient into the running sums.
fn accumulate(pgrads: &mut HashMap<ValueId, Vec<f32>>, id: ValueId, g: Vec<f32>) {
    match pgrads.get_mut(&id) {
        Some(acc) => acc.iter_mut().zip(g).for_each(|(a, b)| *a += b),
        None => {
            pgrads.insert(id, g);
        }
    }
}

/// Back-propagates `dout` (gradient of the loss with respect to the graph output)
/// through the tape. Returns the gradient of every trainable constant, and of the
/// graph input.
pub fn backward(g: &Graph, tape: &Tape, dout: Vec<f32>) -> (HashMap<ValueId, Vec<f32>>, Vec<f32>) {
    let b = backward_full(g, tape, dout);
    (b.params, b.input)
}

/// Everything [`backward_full`] computes.
#[derive(Debug, Clone, Default)]
pub struct Gradients {
    /// Of every trainable constant.
    pub params: HashMap<ValueId, Vec<f32>>,
    /// Of the graph input.
    pub input: Vec<f32>,
    /// Of every learned grid ([`Tape::steps`]): (∂L/∂scale, ∂L/∂zero_point).
    pub grids: HashMap<ValueId, (f64, f64)>,
}

/// [`backward`], with the gradients of the learned grids too.
pub fn backward_full(g: &Graph, tape: &Tape, dout: Vec<f32>) -> Gradients {
    let n = tape.n;
    let mut grids = HashMap::new();
    let mut d: Vec<Option<Vec<f32>>> = vec![None; g.values.len()];
    d[g.outputs[0]] = Some(dout);
    let mut pgrads: HashMap<ValueId, Vec<f32>> = HashMap::new();
    let add_into = |slot: &mut Option<Vec<f32>>, v: Vec<f32>| match slot {
        Some(acc) => acc.iter_mut().zip(v).for_each(|(a, b)| *a += b),
        None => *slot = Some(v),
    };
    for ni in (0..g.nodes.len()).rev() {
        let node = &g.nodes[ni];
        let Some(mut dy) = d[node.output].take() else { continue };
        if let Some(st) = tape.steps.get(&node.output) {
            let dot = |c: &[f32]| dy.iter().zip(c).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum::<f64>();
            grids.insert(node.output, (dot(&st.scale), dot(&st.zero_point)));
        }
        if let Some(mask) = tape.masks.get(&node.output) {
            dy.iter_mut().zip(mask).filter(|(_, m)| !**m).for_each(|(g, _)| *g = 0.0);
        }
        let x0 = node.inputs[0];
        let xin = data(g, &tape.vals, x0);
        let y = data(g, &tape.vals, node.output);
        let mut dx: Option<Vec<f32>> = None;
        match &node.op {
            Op::Conv2d { act, .. } => {
                let dy = grad::activation_backward(*act, y, dy);
                let geo = conv_geom(g, node);
                let w = data(g, &tape.vals, node.inputs[1]);
                let (ddx, dw, db) = grad::conv2d_backward(&geo, xin, w, &dy, n);
                accumulate(&mut pgrads, node.inputs[1], dw);
                if let Some(&bid) = node.inputs.get(2) {
                    accumulate(&mut pgrads, bid, db);
                }
                dx = Some(ddx);
            }
            Op::Dense { act } => {
                let dy = grad::activation_backward(*act, y, dy);
                let w = data(g, &tape.vals, node.inputs[1]);
                let (f, o) = (g.values[x0].shape[0], g.values[node.output].shape[0]);
                let (ddx, dw, db) = grad::dense_backward(xin, w, &dy, n, f, o);
                accumulate(&mut pgrads, node.inputs[1], dw);
                if let Some(&bid) = node.inputs.get(2) {
                    accumulate(&mut pgrads, bid, db);
                }
                dx = Some(ddx);
            }
            Op::BatchNorm { eps } => {
                let s = &g.values[x0].shape;
                let (c, inner) = (s[0], s[1..].iter().product::<usize>());
                let gamma = data(g, &tape.vals, node.inputs[1]);
                let (dg, dbeta, ddx) = match tape.bn.get(&ni) {
                    Some((xhat, inv)) => grad::batchnorm_train_backward(xhat, inv, gamma, &dy, c, inner),
                    None => {
                        // Inference mode: a fixed affine map per channel.
                        let mean = data(g, &tape.vals, node.inputs[3]);
                        let var = data(g, &tape.vals, node.inputs[4]);
                        grad::batchnorm_eval_backward(xin, mean, var, gamma, *eps, &dy, c, inner)
                    }
                };
                accumulate(&mut pgrads, node.inputs[1], dg);
                accumulate(&mut pgrads, node.inputs[2], dbeta);
                dx = Some(ddx);
            }
            Op::Relu => dx = Some(grad::activation_backward(Activation::Relu, y, dy)),
            Op::Clip { lo, hi } => {
                dx = Some(xin.iter().zip(dy).map(|(x, g)| if *x > *lo && *x < *hi { g } else { 0.0 }).collect())
            }
            Op::LeakyRelu { alpha } => {
                dx = Some(xin.iter().zip(dy).map(|(x, g)| if *x >= 0.0 { g } else { alpha * g }).collect())
            }
            Op::HardSwish => {
                dx = Some(
                    xin.iter()
                        .zip(dy)
                        .map(|(x, g)| {
                            if *x <= -3.0 {
                                0.0
                            } else if *x >= 3.0 {
                                g
                            } else {
                                g * (2.0 * x + 3.0) / 6.0
                            }
                        })
                        .collect(),
                )
            }
            Op::Sigmoid => dx = Some(y.iter().zip(dy).map(|(s, g)| g * s * (1.0 - s)).collect()),
            Op::MaxPool { kernel, stride, pad } => {
                dx = Some(grad::maxpool_backward(
                    xin,
                    &g.values[x0].shape,
                    &g.values[node.output].shape,
                    *kernel,
                    *stride,
                    *pad,
                    &dy,
                    n,
                ))
            }
            Op::AvgPool { kernel, stride, pad, count_include_pad } => {
                dx = Some(grad::avgpool_backward(
                    &g.values[x0].shape,
                    &g.values[node.output].shape,
                    *kernel,
                    *stride,
                    *pad,
                    *count_include_pad,
                    &dy,
                    n,
                ))
            }
            Op::GlobalAvgPool => {
                let s = &g.values[x0].shape;
                let hw = s[1] * s[2];
                dx = Some(dy.iter().flat_map(|v| std::iter::repeat_n(v / hw as f32, hw)).collect());
            }
            Op::Add => {
                for &inp in &node.inputs {
                    if g.values[inp].constant().is_none() {
                        let target = &g.values[inp].shape;
                        let out_shape = &g.values[node.output].shape;
                        let gsum = grad::reduce_to(&dy, out_shape, target, n);
                        add_into(&mut d[inp], gsum);
                    }
                }
            }
            // A hybrid model's input quantization: the straight-through estimator.
            Op::Reshape { .. } | Op::Flatten | Op::DynamicQuantize { .. } => dx = Some(dy),
            _ => {}
        }
        if let Some(v) = dx {
            if g.values[x0].constant().is_none() {
                add_into(&mut d[x0], v);
            }
        }
    }
    let input = d[g.inputs[0]].take().unwrap_or_default();
    Gradients { params: pgrads, input, grids }
}

/// Training hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Passes over the training set.
    pub epochs: usize,
    /// Images per step.
    pub batch: usize,
    /// Optimizer.
    pub optimizer: OptimizerKind,
    /// Peak learning rate.
    pub lr: f32,
    /// Weight decay (not applied to biases and BatchNorm parameters).
    pub weight_decay: f32,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Seed of initialization, shuffling and augmentation.
    pub seed: u64,
    /// Random horizontal flips.
    pub flip: bool,
    /// Random shifts of up to this many pixels (padding with the background).
    pub shift: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 10,
            batch: 64,
            optimizer: OptimizerKind::AdamW,
            lr: 2e-3,
            weight_decay: 1e-4,
            schedule: Schedule::Cosine { warmup_steps: 200 },
            seed: 1,
            flip: true,
            shift: 2,
        }
    }
}

/// What one epoch measured.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EpochStats {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean training loss.
    pub loss: f32,
    /// Training top-1 accuracy (on augmented images, in training mode).
    pub accuracy: f32,
    /// Images per second.
    pub images_per_second: f32,
}

/// Progress of the current epoch, for progress bars.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepProgress {
    /// Images done in this epoch.
    pub done: usize,
    /// Images in the epoch.
    pub total: usize,
    /// Mean loss so far.
    pub loss: f32,
    /// Accuracy so far.
    pub accuracy: f32,
}

/// Trains a model, epoch by epoch.
pub struct Trainer {
    /// The model being trained (its graph's constants are the parameters).
    pub model: Model,
    /// Hyper-parameters.
    pub config: TrainConfig,
    params: Vec<ValueId>,
    decay: Vec<bool>,
    opt: Optimizer,
    rng: Prng,
    step: usize,
    total_steps: usize,
    fake: Option<FakeQuant>,
    lsq: Option<qat::Lsq>,
}

impl Trainer {
    /// Trains with fake quantization (quantization-aware training): each step runs the
    /// graph `fake` gives for the current parameters, and its gradients update the
    /// float parameters as they are (straight-through estimator).
    pub fn with_fake_quant(mut self, fake: FakeQuant) -> Trainer {
        self.fake = Some(fake);
        self
    }

    /// Trains with learned step sizes ([`qat::Lsq`]): each step runs the graph the
    /// learned grids give, and updates the grids with the parameters.
    pub fn with_lsq(mut self, lsq: qat::Lsq) -> Trainer {
        self.lsq = Some(lsq);
        self
    }

    /// The learned step sizes, when training with them.
    pub fn lsq(&self) -> Option<&qat::Lsq> {
        self.lsq.as_ref()
    }

    /// Replaces the fake-quantization step (e.g. after recalibrating ranges).
    pub fn set_fake_quant(&mut self, fake: FakeQuant) {
        self.fake = Some(fake);
    }

    /// Prepares to train `model` on `train_len` images.
    pub fn new(model: Model, config: TrainConfig, train_len: usize) -> Result<Trainer> {
        check_trainable(&model.graph)?;
        if config.batch == 0 || config.epochs == 0 {
            return Err(Error::Exec("batch size and epochs must be at least 1".into()));
        }
        let params = trainable(&model.graph);
        // Decay only weights of convolutions and dense layers (rank ≥ 2).
        let decay = params.iter().map(|&p| model.graph.values[p].shape.len() >= 2).collect();
        let sizes: Vec<usize> = params.iter().map(|&p| model.graph.values[p].shape.iter().product()).collect();
        let opt = Optimizer::new(config.optimizer, &sizes);
        let total_steps = config.epochs * train_len.div_ceil(config.batch);
        let rng = Prng::new(config.seed ^ 0x5eed);
        Ok(Trainer { model, config, params, decay, opt, rng, step: 0, total_steps, fake: None, lsq: None })
    }

    /// Runs one epoch over `ds` (shuffled), calling `progress` after every step.
    pub fn epoch(&mut self, ds: &Dataset, epoch: usize, progress: &mut dyn FnMut(StepProgress)) -> Result<EpochStats> {
        self.model.check_io()?;
        let shape = self.model.input_shape().to_vec();
        let map = ds.fit(&shape, &self.model.preprocess)?;
        let all_labels = ds
            .labels()
            .ok_or_else(|| Error::Invalid(format!("training needs class labels; {} has none", ds.origin)))?;
        let classes = self.model.graph.values[self.model.graph.outputs[0]].shape.iter().product::<usize>();
        ds.check_classes(classes, &format!("model `{}`", self.model.name))?;
        let start = std::time::Instant::now();
        let mut order: Vec<usize> = (0..ds.len()).collect();
        self.rng.shuffle(&mut order);
        let (px, b) = (map.len(), self.config.batch);
        // Flips and shifts move pixels within each channel's H×W plane (image inputs only).
        let image = (shape.len() == 3).then(|| (shape[0], shape[1], shape[2]));
        let (mut loss_sum, mut correct, mut seen) = (0f64, 0usize, 0usize);
        for chunk in order.chunks(b) {
            let n = chunk.len();
            let mut x = Vec::with_capacity(n * px);
            let mut labels = Vec::with_capacity(n);
            for &i in chunk {
                let sample = ds.inputs_with(&map, &shape, &self.model.preprocess, i..i + 1)?;
                match image {
                    Some((c, h, w)) => {
                        let (flip, shift) = (self.config.flip, self.config.shift);
                        let planes: Vec<&[f32]> = sample.chunks(h * w).take(c).collect();
                        x.extend(augment_planes(&planes, h, w, flip, shift, &mut self.rng));
                    }
                    None => x.extend(sample),
                }
                labels.push(all_labels[i]);
            }
            let lr = self.config.schedule.lr(self.config.lr, self.step, self.total_steps);
            let (loss, ok, grads) = match (&mut self.lsq, &self.fake) {
                (Some(lsq), _) => {
                    let (mut gq, grids, learn) = lsq.graph(&self.model.graph)?;
                    let tape = forward_learning(&mut gq, &x, n, true, &grids, &learn)?;
                    copy_running_statistics(&gq, &mut self.model.graph);
                    let logits = tape.vals[gq.outputs[0]].as_deref().unwrap_or(&[]);
                    let (loss, ok, dlogits) = softmax_cross_entropy(logits, &labels, n);
                    let mut grads = backward_full(&gq, &tape, dlogits);
                    lsq.learn(&self.model.graph, &mut grads, lr);
                    (loss, ok, grads.params)
                }
                (None, Some(fake)) => {
                    let (mut gq, grids) = fake(&self.model.graph)?;
                    let tape = forward_with(&mut gq, &x, n, true, &grids)?;
                    copy_running_statistics(&gq, &mut self.model.graph);
                    let logits = tape.vals[gq.outputs[0]].as_deref().unwrap_or(&[]);
                    let (loss, ok, dlogits) = softmax_cross_entropy(logits, &labels, n);
                    (loss, ok, backward(&gq, &tape, dlogits).0)
                }
                (None, None) => {
                    let tape = forward(&mut self.model.graph, &x, n, true)?;
                    let logits = tape.vals[self.model.graph.outputs[0]].as_deref().unwrap_or(&[]);
                    let (loss, ok, dlogits) = softmax_cross_entropy(logits, &labels, n);
                    (loss, ok, backward(&self.model.graph, &tape, dlogits).0)
                }
            };
            for (k, &p) in self.params.iter().enumerate() {
                let Some(gr) = grads.get(&p) else { continue };
                let wd = if self.decay[k] { self.config.weight_decay } else { 0.0 };
                if let Source::Const(t) = &mut self.model.graph.values[p].source {
                    self.opt.step(k, &mut t.data, gr, lr, wd);
                }
            }
            self.opt.advance();
            self.step += 1;
            loss_sum += f64::from(loss) * n as f64;
            correct += ok;
            seen += n;
            progress(StepProgress {
                done: seen,
                total: ds.len(),
                loss: (loss_sum / seen as f64) as f32,
                accuracy: correct as f32 / seen as f32,
            });
        }
        let secs = start.elapsed().as_secs_f32().max(1e-6);
        tracing::info!(epoch, loss = loss_sum / seen as f64, "epoch done");
        Ok(EpochStats {
            epoch,
            loss: (loss_sum / seen.max(1) as f64) as f32,
            accuracy: correct as f32 / seen.max(1) as f32,
            images_per_second: seen as f32 / secs,
        })
    }
}

/// BatchNorm's running statistics, updated in the fake-quant graph `from`, copied to
/// the parameters' graph `to`.
fn copy_running_statistics(from: &Graph, to: &mut Graph) {
    for node in from.nodes.iter().filter(|nd| matches!(nd.op, Op::BatchNorm { .. })) {
        for &id in &node.inputs[3..5] {
            if let (Source::Const(src), Source::Const(dst)) = (&from.values[id].source, &mut to.values[id].source) {
                dst.data.clone_from(&src.data);
            }
        }
    }
}

/// Random horizontal flip and shift of one grayscale image; the background (the
/// top-left pixel's value, 0 for Fashion-MNIST) fills what is shifted in.
pub fn augment(img: &[u8], rows: usize, cols: usize, flip: bool, shift: usize, rng: &mut Prng) -> Vec<u8> {
    augment_planes(&[img], rows, cols, flip, shift, rng)
}

/// [`augment`] over the channels of one sample (`[C][rows × cols]`), all moved alike;
/// each channel's uncovered pixels take that channel's first value.
pub fn augment_planes<T: Copy>(
    planes: &[&[T]],
    rows: usize,
    cols: usize,
    flip: bool,
    shift: usize,
    rng: &mut Prng,
) -> Vec<T> {
    let do_flip = flip && rng.below(2) == 1;
    let (dy, dx) = if shift > 0 {
        let s = 2 * shift + 1;
        (rng.below(s) as isize - shift as isize, rng.below(s) as isize - shift as isize)
    } else {
        (0, 0)
    };
    let mut all = Vec::with_capacity(planes.len() * rows * cols);
    for img in planes {
        let Some(&bg) = img.first() else { continue };
        let mut out = vec![bg; rows * cols];
        for y in 0..rows as isize {
            for x in 0..cols as isize {
                let (sy, sx) = (y - dy, x - dx);
                if sy < 0 || sx < 0 || sy >= rows as isize || sx >= cols as isize {
                    continue;
                }
                let sx = if do_flip { cols as isize - 1 - sx } else { sx };
                out[(y as usize) * cols + x as usize] = img[(sy as usize) * cols + sx as usize];
            }
        }
        all.extend(out);
    }
    all
}
