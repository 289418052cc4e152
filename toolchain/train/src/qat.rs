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
use npu_model::ir::{Op, Source, Tensor, Value};
use npu_model::Model;
use npu_quant::{calib, quantize, QModel, Ranges, Scheme};

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

/// The fake-quantization step for [`crate::Trainer::with_fake_quant`].
pub fn fake_quant(p: &Prepared, scheme: &Scheme) -> FakeQuant {
    let (ranges, scheme, name, pre) =
        (p.ranges.clone(), scheme.clone(), p.model.name.clone(), p.model.preprocess.clone());
    Box::new(move |g| {
        let q = quantize(g, &ranges, &scheme, &name, pre.clone())?;
        let gq = q.dequantized_graph();
        let mut grids = vec![None; gq.values.len()];
        for (v, qi) in q.value_map.iter().enumerate() {
            if let (Some(qi), Some(slot)) = (qi, grids.get_mut(v)) {
                let p = q.values[*qi].q;
                let (lo, hi) = p.dtype.range();
                *slot = Some(Grid { scale: p.scale, zero_point: p.zero_point, lo, hi });
            }
        }
        Ok((gq, grids))
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
