//! Activation ranges from calibration data: run the FP32 graph over calibration images
//! and choose each activation's range by min/max, percentile, minimum quantization error
//! (MSE) or minimum KL divergence (entropy).

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::{act_params, ActScheme, Ranges};
use npu_model::fp32;
use npu_model::ir::{Graph, Source};

/// Range selection over calibration data.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Method {
    /// Smallest and largest value seen.
    MinMax,
    /// The given percentile of each tail (e.g. 99.99).
    Percentile(f32),
    /// The clipped range whose quantization has the least mean squared error.
    Mse,
    /// The clipped range whose quantized histogram is closest in KL divergence (TensorRT's entropy calibration).
    Kl,
}

const BINS: usize = 2048;

/// Every activation value's float samples from running `g` on `input` (`n` samples).
fn activations(g: &Graph, input: &[f32], n: usize) -> Result<Vec<Option<Vec<f32>>>> {
    let mut all = g.clone();
    let acts: Vec<usize> = (0..g.values.len()).filter(|&v| !matches!(g.values[v].source, Source::Const(_))).collect();
    let non_input: Vec<usize> = acts.iter().copied().filter(|v| !g.inputs.contains(v)).collect();
    all.outputs = non_input.clone();
    let outs = fp32::run(&all, &[input], n)?;
    let mut res: Vec<Option<Vec<f32>>> = vec![None; g.values.len()];
    res[g.inputs[0]] = Some(input.to_vec());
    for (v, o) in non_input.into_iter().zip(outs) {
        res[v] = Some(o);
    }
    Ok(res)
}

/// Every value's float samples from running `g` on `input` (`n` samples), constants
/// excepted: what AdaRound reconstructs.
pub fn all_activations(g: &Graph, input: &[f32], n: usize) -> Result<Vec<Option<Vec<f32>>>> {
    activations(g, input, n)
}

/// The mean of every activation value per channel (first per-sample dimension) over the
/// calibration batch: what empirical bias correction uses as `E[x]`.
pub fn channel_means(g: &Graph, input: &[f32], n: usize) -> Result<Vec<Option<Vec<f32>>>> {
    let vals = activations(g, input, n)?;
    Ok(vals
        .iter()
        .enumerate()
        .map(|(v, d)| {
            d.as_ref().map(|d| {
                let shape = &g.values[v].shape;
                let c = shape.first().copied().unwrap_or(1).max(1);
                let inner: usize = shape[1..].iter().product::<usize>().max(1);
                let mut m = vec![0f64; c];
                for (k, block) in d.chunks(inner).enumerate() {
                    m[k % c] += block.iter().map(|x| f64::from(*x)).sum::<f64>();
                }
                let count = (d.len() / c).max(1) as f64;
                m.iter().map(|s| (s / count) as f32).collect()
            })
        })
        .collect())
}

/// Chooses a range for every activation value of `g` from the calibration batch. The
/// graph's output (the logits) always keeps its min/max range: clipping the largest
/// logits changes predictions.
pub fn ranges(g: &Graph, input: &[f32], n: usize, method: Method, act: ActScheme) -> Result<Ranges> {
    let vals = activations(g, input, n)?;
    Ok(vals
        .iter()
        .enumerate()
        .map(|(v, d)| {
            let m = if g.outputs.contains(&v) { Method::MinMax } else { method };
            d.as_ref().map(|d| choose(d, m, act))
        })
        .collect())
}

fn min_max(d: &[f32]) -> (f32, f32) {
    d.iter().fold((0f32, 0f32), |(lo, hi), x| (lo.min(*x), hi.max(*x)))
}

/// The range of one tensor's samples under a method.
pub fn choose(d: &[f32], method: Method, act: ActScheme) -> (f32, f32) {
    let (lo, hi) = min_max(d);
    if d.is_empty() || hi - lo <= 0.0 {
        return (lo, hi);
    }
    match method {
        Method::MinMax => (lo, hi),
        Method::Percentile(p) => {
            let mut s = d.to_vec();
            s.sort_by(f32::total_cmp);
            let at = |q: f32| s[(((s.len() - 1) as f32) * q).round() as usize];
            (at(1.0 - p / 100.0).min(0.0), at(p / 100.0).max(0.0))
        }
        Method::Mse => {
            // Shrink the range by factors and keep the one with the least error.
            let mut best = ((lo, hi), f64::INFINITY);
            for i in 0..=40 {
                let f = 1.0 - i as f32 * 0.02;
                let (l, h) = (lo * f, hi * f);
                let q = act_params(l, h, act);
                let err: f64 = d
                    .iter()
                    .step_by((d.len() / 20_000).max(1))
                    .map(|x| f64::from(q.dequantize(q.quantize(*x)) - x).powi(2))
                    .sum();
                if err < best.1 {
                    best = ((l, h), err);
                }
            }
            best.0
        }
        Method::Kl => kl_range(d, lo, hi),
    }
}

/// TensorRT-style entropy calibration on the magnitude histogram: the threshold whose
/// 128-level quantized distribution diverges least from the clipped original.
fn kl_range(d: &[f32], lo: f32, hi: f32) -> (f32, f32) {
    let m = lo.abs().max(hi);
    // Exact zeros (the spike ReLU leaves) are represented exactly by any range and would
    // dominate the divergence; they stay out of the histogram.
    let mut hist = vec![0f64; BINS];
    for x in d.iter().filter(|x| **x != 0.0) {
        let b = ((x.abs() / m) * BINS as f32) as usize;
        hist[b.min(BINS - 1)] += 1.0;
    }
    let levels = 128;
    let mut best = (BINS, f64::INFINITY);
    for t in (levels..=BINS).step_by(16) {
        // Reference: bins below t, with the outliers added to the last bin.
        let mut p: Vec<f64> = hist[..t].to_vec();
        p[t - 1] += hist[t..].iter().sum::<f64>();
        // Candidate: merge into `levels` groups, spread back over non-empty bins.
        let mut q = vec![0f64; t];
        let per = t as f64 / levels as f64;
        for l in 0..levels {
            let (s, e) = ((l as f64 * per) as usize, (((l + 1) as f64 * per) as usize).min(t));
            let total: f64 = hist[s..e].iter().sum();
            let nonzero = hist[s..e].iter().filter(|v| **v > 0.0).count();
            for i in s..e {
                if hist[i] > 0.0 {
                    q[i] = total / nonzero as f64;
                }
            }
        }
        let (ps, qs): (f64, f64) = (p.iter().sum(), q.iter().sum());
        let kl: f64 = p
            .iter()
            .zip(&q)
            .filter(|(a, _)| **a > 0.0)
            .map(|(a, b)| {
                let (a, b) = (a / ps, (b / qs).max(1e-12));
                a * (a / b).ln()
            })
            .sum();
        if kl < best.1 {
            best = (t, kl);
        }
    }
    let thr = m * best.0 as f32 / BINS as f32;
    (lo.max(-thr), hi.min(thr))
}

/// Standard normal CDF (Abramowitz–Stegun 7.1.26 for erf, error below 1.5e-7).
fn phi_cdf(x: f64) -> f64 {
    let z = x.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.3275911 * z);
    let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    let erf = 1.0 - poly * (-z * z).exp();
    0.5 * (1.0 + if x >= 0.0 { erf } else { -erf })
}

fn phi_pdf(x: f64) -> f64 {
    (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

/// Mean and variance of max(X, 0) for X ~ N(μ, σ²).
fn relu_moments(mu: f64, var: f64) -> (f64, f64) {
    let s = var.max(1e-12).sqrt();
    let a = mu / s;
    let m = mu * phi_cdf(a) + s * phi_pdf(a);
    let m2 = (mu * mu + var) * phi_cdf(a) + mu * s * phi_pdf(a);
    (m, (m2 - m * m).max(0.0))
}

/// Data-free ranges, from statistics instead of data. The input is taken as normalized
/// by its preprocessing (zero mean, unit variance). A convolution or dense layer that
/// BatchNorm followed in the original graph has channels distributed as N(β, γ²); other
/// layers propagate means and variances (`E[y] = Σ w·E[x] + b`, `Var[y] = Σ w²·Var[x]`,
/// inputs taken as independent); ReLU and ReLU6 map moments through the rectified
/// normal; adds sum moments. Each activation's range is `mean ± 6σ` over its channels,
/// clipped by its activation, widened to the representable input range at the input.
///
/// Propagated moments are loose bounds that grow with depth (on BatchNorm-folded exports
/// they are 10–40× the real ranges, and int8 collapses to chance); [`data_free_stats`]
/// with synthesised inputs replaces them.
pub fn data_free(raw: &Graph, opt: &Graph, pre: &npu_data::Preprocess) -> Result<Ranges> {
    data_free_stats(raw, opt, pre, None).map(|(r, _)| r)
}

/// The convolution and dense layers of `opt` that no BatchNorm followed in `raw`: the
/// layers whose data-free ranges have no statistics to come from.
pub fn without_batchnorm(raw: &Graph, opt: &Graph) -> Vec<String> {
    use npu_model::ir::Op;
    let bn = batchnorm_stats(raw);
    opt.nodes
        .iter()
        .filter(|n| matches!(n.op, Op::Conv2d { .. } | Op::Dense { .. }) && !bn.contains_key(n.name.as_str()))
        .map(|n| n.name.clone())
        .collect()
}

/// BatchNorm statistics (β, γ²) per channel, by the name of the layer they followed.
fn batchnorm_stats(raw: &Graph) -> std::collections::HashMap<&str, Vec<(f64, f64)>> {
    use npu_model::ir::Op;
    let mut bn = std::collections::HashMap::new();
    for n in &raw.nodes {
        if let Op::BatchNorm { .. } = n.op {
            if let Some(p) = raw.producer(n.inputs[0]) {
                if let (Some(g), Some(b)) = (raw.values[n.inputs[1]].constant(), raw.values[n.inputs[2]].constant()) {
                    let v = g.data.iter().zip(&b.data).map(|(g, b)| (f64::from(*b), f64::from(*g).powi(2))).collect();
                    bn.insert(p.name.as_str(), v);
                }
            }
        }
    }
    bn
}

/// Per-channel (mean, variance) of one value's samples (first per-sample dimension).
fn sample_moments(d: &[f32], shape: &[usize]) -> Vec<(f64, f64)> {
    let c = shape.first().copied().unwrap_or(1).max(1);
    let inner: usize = shape[1..].iter().product::<usize>().max(1);
    let mut acc = vec![(0f64, 0f64, 0usize); c];
    for (k, block) in d.chunks(inner).enumerate() {
        let a = &mut acc[k % c];
        for x in block {
            a.0 += f64::from(*x);
            a.1 += f64::from(*x).powi(2);
            a.2 += 1;
        }
    }
    acc.iter()
        .map(|(s, s2, n)| {
            let n = (*n).max(1) as f64;
            let m = s / n;
            (m, (s2 / n - m * m).max(0.0))
        })
        .collect()
}

/// Where a data-free range came from ([`data_free_origins`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The statistics of the BatchNorm after the layer (β ± 6γ through the activation).
    BatchNorm,
    /// Min/max of the FP32 graph run on synthesised inputs.
    Synthesised,
    /// Moments propagated from the input range and earlier layers' statistics.
    Propagated,
}

impl Origin {
    /// A word for reports.
    pub fn name(self) -> &'static str {
        match self {
            Origin::BatchNorm => "BatchNorm",
            Origin::Synthesised => "synthesised",
            Origin::Propagated => "propagated",
        }
    }
}

fn described_by_batchnorm(bn: &std::collections::HashMap<&str, Vec<(f64, f64)>>, n: &npu_model::ir::Node) -> bool {
    use npu_model::ir::Op;
    matches!(n.op, Op::Conv2d { .. } | Op::Dense { .. }) && bn.contains_key(n.name.as_str())
}

/// For each node output of `opt`, where [`data_free_stats`] takes its range from (the
/// same rule): BatchNorm statistics for a convolution or dense layer that had BatchNorm
/// after it in `raw`; else the synthesised inputs' values when there are any; else
/// propagated moments.
pub fn data_free_origins(raw: &Graph, opt: &Graph, synthesized: bool) -> Vec<Option<Origin>> {
    let bn = batchnorm_stats(raw);
    let mut out = vec![None; opt.values.len()];
    for n in &opt.nodes {
        out[n.output] = Some(if described_by_batchnorm(&bn, n) {
            Origin::BatchNorm
        } else if synthesized {
            Origin::Synthesised
        } else {
            Origin::Propagated
        });
    }
    out
}

/// [`data_free`]'s ranges and, per value, its modelled per-channel means (what
/// analytical bias correction uses as `E[x]`). With `synthesized` inputs (`(input,
/// samples)`, e.g. from `npu_train::synth`), every value that BatchNorm statistics do not
/// describe takes its range (min/max) and moments from the FP32 graph run on them
/// instead of propagated moments.
pub fn data_free_stats(
    raw: &Graph,
    opt: &Graph,
    pre: &npu_data::Preprocess,
    synthesized: Option<(&[f32], usize)>,
) -> Result<(Ranges, Vec<Option<Vec<f32>>>)> {
    use npu_model::ir::{Activation, Op};
    let k = 6.0f64;
    let bn = batchnorm_stats(raw);
    let sampled = match synthesized {
        Some((x, n)) => Some(activations(opt, x, n)?),
        None => None,
    };
    // Per value: (mean, variance) per channel (first per-sample dimension).
    let mut stats: Vec<Option<Vec<(f64, f64)>>> = vec![None; opt.values.len()];
    let mut r: Ranges = vec![None; opt.values.len()];
    let inp = opt.inputs[0];
    let c_in = opt.values[inp].shape.first().copied().unwrap_or(1);
    stats[inp] = Some(vec![(0.0, 1.0); c_in]);
    // The inputs raw bytes 0..=255 map to, over every channel's mean and std.
    let (means, stds) = pre.per_channel(&opt.values[inp].shape)?;
    let (mut a, mut b) = (f32::INFINITY, f32::NEG_INFINITY);
    for (m, sd) in means.iter().zip(stds.iter().cycle()) {
        for v in [(0.0 * pre.scale - m) / sd, (255.0 * pre.scale - m) / sd] {
            (a, b) = (a.min(v), b.max(v));
        }
    }
    r[inp] = Some((a, b));
    let act_moments = |act: Activation, st: Vec<(f64, f64)>| -> Vec<(f64, f64)> {
        match act {
            Activation::None => st,
            Activation::Relu | Activation::Clip { .. } => st.into_iter().map(|(m, v)| relu_moments(m, v)).collect(),
        }
    };
    let range_of = |st: &[(f64, f64)], act: Activation| -> (f32, f32) {
        let lo = st.iter().map(|(m, v)| m - k * v.sqrt()).fold(f64::INFINITY, f64::min) as f32;
        let hi = st.iter().map(|(m, v)| m + k * v.sqrt()).fold(f64::NEG_INFINITY, f64::max) as f32;
        match act {
            Activation::None => (lo, hi),
            Activation::Relu => (lo.max(0.0), hi.max(0.0)),
            Activation::Clip { lo: l, hi: h } => (lo.clamp(l, h), hi.clamp(l, h)),
        }
    };
    for n in &opt.nodes {
        let x = n.inputs[0];
        let described = described_by_batchnorm(&bn, n);
        if let (Some(vals), false) = (&sampled, described) {
            if let Some(d) = &vals[n.output] {
                stats[n.output] = Some(sample_moments(d, &opt.values[n.output].shape));
                r[n.output] = Some(min_max(d));
                continue;
            }
        }
        let sx = stats[x].clone().unwrap_or_else(|| vec![(0.0, 1.0)]);
        let in_shape = &opt.values[x].shape;
        let (st, act): (Vec<(f64, f64)>, Activation) = match &n.op {
            Op::Conv2d { act, .. } | Op::Dense { act } if bn.contains_key(n.name.as_str()) => {
                (bn[n.name.as_str()].clone(), *act)
            }
            Op::Conv2d { act, .. } | Op::Dense { act } => {
                let groups = if let Op::Conv2d { groups, .. } = n.op { groups } else { 1 };
                let w = opt.values[n.inputs[1]].constant();
                let bias = n.inputs.get(2).and_then(|&i| opt.values[i].constant());
                let mut out = Vec::new();
                if let Some(w) = w {
                    let co = w.shape[0];
                    let per = w.len() / co;
                    let g = groups;
                    let taps = if w.shape.len() == 4 { w.shape[2] * w.shape[3] } else { 1 };
                    let cig = per / taps;
                    for c in 0..co {
                        let grp = c / (co / g).max(1);
                        let (mut m, mut sd, mut var) = (bias.map_or(0.0, |b| f64::from(b.data[c])), 0.0, 0.0);
                        for (i, wv) in w.data[c * per..(c + 1) * per].iter().enumerate() {
                            // Input channel (conv) or feature (dense) this weight reads.
                            let ch = if w.shape.len() == 4 { grp * cig + i / taps } else { i };
                            let (mi, vi) = sx.get(ch).copied().unwrap_or((0.0, 1.0));
                            m += f64::from(*wv) * mi;
                            sd += f64::from(*wv).abs() * vi.sqrt();
                            var += f64::from(*wv).powi(2) * vi;
                        }
                        // Inputs of one layer are neither independent (which underestimates
                        // the spread) nor fully correlated (which overestimates it): take the
                        // geometric mean of the two standard deviations.
                        out.push((m, sd * var.sqrt()));
                    }
                }
                (out, *act)
            }
            Op::Add => {
                let sy = stats[n.inputs[1]].clone().unwrap_or_else(|| vec![(0.0, 1.0)]);
                let len = sx.len().max(sy.len());
                let at = |s: &[(f64, f64)], i: usize| s[i.min(s.len() - 1)];
                (
                    (0..len).map(|i| (at(&sx, i).0 + at(&sy, i).0, at(&sx, i).1 + at(&sy, i).1)).collect(),
                    Activation::None,
                )
            }
            Op::Relu => (sx, Activation::Relu),
            Op::Clip { lo, hi } => (sx, Activation::Clip { lo: *lo, hi: *hi }),
            Op::Flatten | Op::Reshape { .. } => {
                // Per-channel statistics become per-feature statistics.
                let per: usize = in_shape[1..].iter().product::<usize>().max(1);
                let total: usize = in_shape.iter().product();
                ((0..total).map(|i| sx[(i / per).min(sx.len() - 1)]).collect(), Activation::None)
            }
            _ => (sx, Activation::None),
        };
        let pre_act = st.clone();
        let st = act_moments(act, st);
        let rg = match &n.op {
            Op::Conv2d { act, .. } | Op::Dense { act } => {
                // The range of the pre-activation distribution, clipped by the activation.
                range_of(&pre_act, *act)
            }
            Op::Relu => range_of(stats[x].as_deref().unwrap_or(&[(0.0, 1.0)]), Activation::Relu),
            Op::Clip { lo, hi } => {
                range_of(stats[x].as_deref().unwrap_or(&[(0.0, 1.0)]), Activation::Clip { lo: *lo, hi: *hi })
            }
            Op::MaxPool { .. } | Op::AvgPool { .. } | Op::GlobalAvgPool | Op::Flatten | Op::Reshape { .. } => {
                r[x].unwrap_or((0.0, 0.0))
            }
            _ => range_of(&st, Activation::None),
        };
        stats[n.output] = Some(st);
        r[n.output] = Some(rg);
    }
    let means = stats.iter().map(|s| s.as_ref().map(|v| v.iter().map(|(m, _)| *m as f32).collect())).collect();
    Ok((r, means))
}
