//! AdaRound: learned rounding of weights (Nagel et al., "Up or Down? Adaptive Rounding
//! for Post-Training Quantization", ICML 2020).
//!
//! Rounding each weight to its nearest grid point minimises each weight's own error,
//! not the layer's output error. AdaRound chooses, per weight, the grid point below or
//! above (`⌊w/s⌋ + h`, `h ∈ {0, 1}`) to minimise the layer's output error on
//! calibration inputs, `‖W X − W̃ X‖²`, relaxed to a continuous `h(V)` (a rectified
//! sigmoid) with a regulariser that drives every `h` to 0 or 1 as its temperature β
//! anneals from 20 to 2.
//!
//! Per output channel `r`, the output error over the samples is `Δ_rᵀ H Δ_r` with
//! `Δ_r = w̃_r − w_r` and `H = X Xᵀ / N` the Gram matrix of the inputs the channel
//! reads (its group's im2col patches for a convolution), so the optimisation needs `H`
//! once per group and `K²` multiply-accumulates per channel and step. Scale and zero
//! point stay those of nearest rounding; a channel whose learned rounding does not
//! reduce its output error keeps nearest rounding.
//!
//! Layers after the first read the quantized network's activations `X̃`, not the float
//! network's `X`. Given both, a layer is fitted as AIMET and the AdaRound paper's
//! "asymmetric reconstruction" fit it: the quantized layer on its own inputs against
//! the float layer on the float inputs, `‖W X − W̃ X̃‖²`, so each layer also corrects the
//! error the layers before it left. Per channel that is
//! `Δᵀ H̃ Δ − 2 Δᵀ b + c` with `H̃ = X̃ X̃ᵀ / N`, `b = D w` for `D = X̃ (X − X̃)ᵀ / N`, and
//! `c = wᵀ E w` for `E` the Gram matrix of `X − X̃`: three `K × K` matrices per group.

use serde::{Deserialize, Serialize};

use crate::weights::QuantWeights;

/// AdaRound settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdaRound {
    /// Adam steps per layer.
    pub iterations: usize,
    /// Input vectors (im2col patches) sampled per group for the Gram matrix.
    pub samples: usize,
}

impl Default for AdaRound {
    fn default() -> Self {
        AdaRound { iterations: 1000, samples: 4096 }
    }
}

/// Multiply-accumulates one layer's optimisation may spend (`channels · K² · steps`).
pub const LAYER_BUDGET: u64 = 25_000_000_000;

const ZETA: f32 = 1.1;
const GAMMA: f32 = -0.1;

fn sigmoid(v: f32) -> f32 {
    1.0 / (1.0 + (-v).exp())
}

/// The rectified sigmoid `clip(σ(v)(ζ − γ) + γ, 0, 1)`.
fn h_of(v: f32) -> f32 {
    (sigmoid(v) * (ZETA - GAMMA) + GAMMA).clamp(0.0, 1.0)
}

/// The Gram matrix `X Xᵀ / N` of `n` vectors of length `k` (row-major `[n, k]`).
pub fn gram(x: &[f32], k: usize) -> Vec<f64> {
    let n = x.len() / k.max(1);
    let mut h = vec![0f64; k * k];
    for row in x.chunks(k) {
        for i in 0..k {
            let xi = f64::from(row[i]);
            if xi == 0.0 {
                continue;
            }
            let hrow = &mut h[i * k..(i + 1) * k];
            for (j, xj) in row.iter().enumerate().skip(i) {
                hrow[j] += xi * f64::from(*xj);
            }
        }
    }
    for i in 0..k {
        for j in i..k {
            let v = h[i * k + j] / n.max(1) as f64;
            h[i * k + j] = v;
            h[j * k + i] = v;
        }
    }
    h
}

/// `X Yᵀ / N` for `n` vectors `x` and `y` of length `k` each (row-major `[n, k]`, the
/// same samples in the same order): row `i`, column `j` is the mean of `x_i · y_j`.
pub fn cross(x: &[f32], y: &[f32], k: usize) -> Vec<f64> {
    let n = x.len() / k.max(1);
    let mut c = vec![0f64; k * k];
    for (xr, yr) in x.chunks(k).zip(y.chunks(k)) {
        for (i, xi) in xr.iter().enumerate() {
            let xi = f64::from(*xi);
            if xi == 0.0 {
                continue;
            }
            for (cij, yj) in c[i * k..(i + 1) * k].iter_mut().zip(yr) {
                *cij += xi * f64::from(*yj);
            }
        }
    }
    c.iter_mut().for_each(|v| *v /= n.max(1) as f64);
    c
}

/// One channel's reconstruction target: its output error for weights off by `Δ` is
/// `Δᵀ H Δ − 2 Δᵀ b + c` (`b = 0`, `c = 0` when the layer reads the float inputs).
struct Target<'a> {
    h: &'a [f64],
    b: Vec<f64>,
    c: f64,
}

impl Target<'_> {
    fn error(&self, d: &[f64]) -> f64 {
        output_error(self.h, d) - 2.0 * d.iter().zip(&self.b).map(|(d, b)| d * b).sum::<f64>() + self.c
    }
}

/// `Δᵀ H Δ`: the mean squared output error of one channel whose weights are off by `d`.
pub fn output_error(h: &[f64], d: &[f64]) -> f64 {
    let k = d.len();
    let mut e = 0.0;
    for i in 0..k {
        let row = &h[i * k..(i + 1) * k];
        e += d[i] * row.iter().zip(d).map(|(a, b)| a * b).sum::<f64>();
    }
    e
}

/// Learns the rounding of one output channel (its float weights `w`, on the integer grid
/// `lo..=hi` with `scale` and `zero`) for the output error `target`; returns its new
/// integers when they have a smaller output error than `current` (nearest rounding,
/// or a ternary threshold's choice).
fn channel(
    w: &[f32],
    current: &[i32],
    (scale, zero): (f32, i32),
    (lo, hi): (i32, i32),
    target: &Target,
    cfg: &AdaRound,
) -> Option<Vec<i32>> {
    let h = target.h;
    let k = w.len();
    let x: Vec<f32> = w.iter().map(|v| v / scale + zero as f32).collect();
    let fl: Vec<f32> = x.iter().map(|v| v.floor()).collect();
    let nearest = current;
    let err_of = |q: &[f32]| -> f64 {
        let d: Vec<f64> = q.iter().zip(w).map(|(q, w)| f64::from(scale * (q - zero as f32)) - f64::from(*w)).collect();
        target.error(&d)
    };
    let base = err_of(&nearest.iter().map(|v| *v as f32).collect::<Vec<_>>());
    if base <= 0.0 || !base.is_finite() {
        return None;
    }
    // V with h(V) = the fractional part: the relaxation starts at the float weights.
    let mut v: Vec<f32> = x
        .iter()
        .zip(&fl)
        .map(|(x, f)| {
            let p = ((x - f - GAMMA) / (ZETA - GAMMA)).clamp(1e-4, 1.0 - 1e-4);
            (p / (1.0 - p)).ln()
        })
        .collect();
    let (mut m1, mut m2) = (vec![0f32; k], vec![0f32; k]);
    let (lr, b1, b2) = (0.02f32, 0.9f32, 0.999f32);
    let warm = cfg.iterations / 5;
    // The reconstruction term is normalised by nearest rounding's error; the regulariser
    // is a mean over the channel's weights.
    let lambda = 0.01f64;
    let mut d = vec![0f64; k];
    let mut hd = vec![0f64; k];
    for t in 0..cfg.iterations {
        let hv: Vec<f32> = v.iter().map(|v| h_of(*v)).collect();
        for i in 0..k {
            let q = (fl[i] + hv[i]).clamp(lo as f32, hi as f32);
            d[i] = f64::from(scale * (q - zero as f32)) - f64::from(w[i]);
        }
        for i in 0..k {
            hd[i] = h[i * k..(i + 1) * k].iter().zip(&d).map(|(a, b)| a * b).sum();
        }
        let beta = if t < warm { 0.0 } else { 20.0 - 18.0 * (t - warm) as f32 / (cfg.iterations - warm).max(1) as f32 };
        let step = t as i32 + 1;
        let (c1, c2) = (1.0 - b1.powi(step), 1.0 - b2.powi(step));
        for i in 0..k {
            let q = fl[i] + hv[i];
            let inside = q > lo as f32 && q < hi as f32 && hv[i] > 0.0 && hv[i] < 1.0;
            if !inside {
                continue;
            }
            // d(loss)/dh: reconstruction 2·s·(HΔ − b)_i / base, regulariser −λβ|2h−1|^(β−1)·2·sign(2h−1) / k.
            let mut g = 2.0 * f64::from(scale) * (hd[i] - target.b[i]) / base;
            if t >= warm {
                let u = 2.0 * hv[i] - 1.0;
                g -= lambda
                    * f64::from(beta)
                    * f64::from(u.abs()).powf(f64::from(beta) - 1.0)
                    * 2.0
                    * f64::from(u.signum())
                    / k as f64;
            }
            let s = sigmoid(v[i]);
            let gv = (g as f32) * s * (1.0 - s) * (ZETA - GAMMA);
            m1[i] = b1 * m1[i] + (1.0 - b1) * gv;
            m2[i] = b2 * m2[i] + (1.0 - b2) * gv * gv;
            v[i] -= lr * (m1[i] / c1) / ((m2[i] / c2).sqrt() + 1e-8);
        }
    }
    let learned: Vec<i32> =
        fl.iter().zip(&v).map(|(f, v)| ((*f as i32) + i32::from(h_of(*v) >= 0.5)).clamp(lo, hi)).collect();
    let err = err_of(&learned.iter().map(|v| *v as f32).collect::<Vec<_>>());
    (err < base && learned != nearest).then_some(learned)
}

/// The integer grid AdaRound chooses on for a weight type (`None`: binary weights have
/// no rounding to choose).
pub fn grid(bits: crate::WeightBits, kind: crate::Kind) -> Option<(i32, i32)> {
    use crate::{Kind, WeightBits};
    match (bits, kind) {
        (WeightBits::B8, Kind::Asymmetric) => Some((-128, 127)),
        (WeightBits::B8, _) => Some((-127, 127)),
        (WeightBits::B4, Kind::Asymmetric) => Some((-8, 7)),
        (WeightBits::B4, _) => Some((-7, 7)),
        (WeightBits::Ternary, _) => Some((-1, 1)),
        (WeightBits::Binary, _) => None,
    }
}

/// A convolution's geometry: stride, padding (top, left, bottom, right), dilation, groups.
pub type ConvGeometry = ([usize; 2], [usize; 4], [usize; 2], usize);

/// Input vectors of a convolution (`[C, H, W]` input `x` of `n` samples, weights
/// `[co, C/groups, kh, kw]`) as its output channels read them: for each group, up to
/// `count` im2col patches at positions drawn with `seed`, each `[C/groups · kh · kw]` in
/// the weights' order (zeros where the window covers padding). A dense layer's inputs
/// are its `n` input vectors (one group).
#[allow(clippy::too_many_arguments)]
pub fn patches(
    x: &[f32],
    n: usize,
    in_shape: &[usize],
    w_shape: &[usize],
    out_shape: &[usize],
    conv: Option<ConvGeometry>,
    count: usize,
    seed: u64,
) -> Vec<Vec<f32>> {
    let Some((stride, pad, dil, groups)) = conv else {
        return vec![x.to_vec()];
    };
    let (c, h, w) = (in_shape[0], in_shape[1], in_shape[2]);
    let (kh, kw) = (w_shape[2], w_shape[3]);
    let (oh, ow) = (out_shape[1], out_shape[2]);
    let cig = c / groups.max(1);
    let total = n * oh * ow;
    let mut rng = npu_model::rng::Prng::new(seed);
    let picks: Vec<usize> =
        if total <= count { (0..total).collect() } else { (0..count).map(|_| rng.below(total)).collect() };
    (0..groups)
        .map(|g| {
            let mut v = Vec::with_capacity(picks.len() * cig * kh * kw);
            for &p in &picks {
                let (img, oy, ox) = (p / (oh * ow), (p / ow) % oh, p % ow);
                for ci in 0..cig {
                    let plane = &x[(img * c + g * cig + ci) * h * w..][..h * w];
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let iy = (oy * stride[0] + ky * dil[0]) as isize - pad[0] as isize;
                            let ix = (ox * stride[1] + kx * dil[1]) as isize - pad[1] as isize;
                            let inside = iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w;
                            v.push(if inside { plane[iy as usize * w + ix as usize] } else { 0.0 });
                        }
                    }
                }
            }
            v
        })
        .collect()
}

/// The steps of [`refine`] a layer of `channels` output channels and `k` weights per
/// channel gets within [`LAYER_BUDGET`] (`channels·k²` per step): `iterations`, or fewer;
/// `None` (nearest rounding kept) when fewer than a quarter would fit.
pub fn steps_within_budget(channels: usize, k: usize, iterations: usize) -> Option<usize> {
    let per_step = (channels as u64) * (k as u64) * (k as u64);
    let fit = (LAYER_BUDGET / per_step.max(1)) as usize;
    (fit * 4 >= iterations).then(|| iterations.min(fit))
}

/// Re-rounds the integers of `qw` (the nearest-rounded weights `w` of a convolution or
/// dense layer, `groups` groups) to minimise the output error on `inputs`: per group,
/// `samples` vectors of the `k` inputs each output channel of the group reads, row-major
/// `[samples, k]`. With `quantized` (the same samples as the quantized network gives
/// them to the layer), the error is that of the quantized layer on those against the
/// float layer on `inputs` (asymmetric reconstruction). The grid is `lo..=hi`. Returns
/// how many channels changed.
pub fn refine(
    w: &[f32],
    qw: &mut QuantWeights,
    groups: usize,
    inputs: &[Vec<f32>],
    quantized: Option<&[Vec<f32>]>,
    (lo, hi): (i32, i32),
    cfg: &AdaRound,
) -> usize {
    let co = qw.shape[0].max(1);
    let k = w.len() / co;
    // K² per channel and step: a layer over the budget gets fewer steps, and none (nearest
    // rounding kept) when fewer than a quarter would fit.
    let Some(fit) = steps_within_budget(co, k, cfg.iterations) else {
        tracing::info!(channels = co, k, "AdaRound: layer over the budget, nearest rounding kept");
        return 0;
    };
    let cfg = &AdaRound { iterations: fit, ..*cfg };
    let per_group = co / groups.max(1);
    // Per group: the Gram matrix of the inputs the quantized layer reads and, for
    // asymmetric reconstruction, D = X̃ (X − X̃)ᵀ / N and E = Gram(X − X̃).
    struct Group {
        h: Vec<f64>,
        shift: Option<(Vec<f64>, Vec<f64>)>,
    }
    let stats: Vec<Group> = match quantized {
        Some(q) if q.len() == inputs.len() => inputs
            .iter()
            .zip(q)
            .map(|(x, xq)| {
                let diff: Vec<f32> = x.iter().zip(xq).map(|(a, b)| a - b).collect();
                Group { h: gram(xq, k), shift: Some((cross(xq, &diff, k), gram(&diff, k))) }
            })
            .collect(),
        _ => inputs.iter().map(|x| Group { h: gram(x, k), shift: None }).collect(),
    };
    let mut changed = 0;
    for c in 0..co {
        let g = (c / per_group.max(1)).min(stats.len().saturating_sub(1));
        let Some(st) = stats.get(g) else { continue };
        let wc = &w[c * k..(c + 1) * k];
        let target = match &st.shift {
            None => Target { h: &st.h, b: vec![0.0; k], c: 0.0 },
            Some((d, e)) => {
                let wd: Vec<f64> = wc.iter().map(|v| f64::from(*v)).collect();
                let b = (0..k).map(|i| d[i * k..(i + 1) * k].iter().zip(&wd).map(|(a, b)| a * b).sum()).collect();
                Target { h: &st.h, b, c: output_error(e, &wd) }
            }
        };
        let ci = if qw.scale.len() == 1 { 0 } else { c };
        let (scale, zero) = (qw.scale[ci], qw.zero[ci]);
        let current = qw.values[c * k..(c + 1) * k].to_vec();
        if let Some(v) = channel(wc, &current, (scale, zero), (lo, hi), &target, cfg) {
            qw.values[c * k..(c + 1) * k].copy_from_slice(&v);
            changed += 1;
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use npu_model::rng::Prng;

    #[test]
    fn gram_matrix_by_hand() {
        // Rows [1, 2] and [3, 4]: ([1 2; 2 4] + [9 12; 12 16]) / 2.
        assert_eq!(gram(&[1.0, 2.0, 3.0, 4.0], 2), vec![5.0, 7.0, 7.0, 10.0]);
    }

    #[test]
    fn output_error_is_the_mean_squared_output_difference() {
        let mut rng = Prng::new(3);
        let (k, n) = (5, 40);
        let x: Vec<f32> = (0..k * n).map(|_| rng.normal()).collect();
        let d: Vec<f64> = (0..k).map(|_| f64::from(rng.normal())).collect();
        let direct: f64 =
            x.chunks(k).map(|row| row.iter().zip(&d).map(|(x, d)| f64::from(*x) * d).sum::<f64>().powi(2)).sum::<f64>()
                / n as f64;
        let via = output_error(&gram(&x, k), &d);
        assert!((direct - via).abs() < 1e-9 * direct.max(1.0), "{direct} vs {via}");
    }

    #[test]
    fn the_grid_of_each_weight_type() {
        use crate::{Kind, WeightBits};
        assert_eq!(grid(WeightBits::B8, Kind::Symmetric), Some((-127, 127)));
        assert_eq!(grid(WeightBits::B8, Kind::Asymmetric), Some((-128, 127)));
        assert_eq!(grid(WeightBits::B4, Kind::Pow2), Some((-7, 7)));
        assert_eq!(grid(WeightBits::B4, Kind::Asymmetric), Some((-8, 7)));
        assert_eq!(grid(WeightBits::Ternary, Kind::Symmetric), Some((-1, 1)));
        assert_eq!(grid(WeightBits::Binary, Kind::Symmetric), None);
    }

    #[test]
    fn patches_follow_the_weight_layout_with_zeros_for_padding() {
        // One 3×3 plane 1..9, a 2×2 kernel, stride 1, padding 1 on every side: output
        // 4×4; every position is taken (16 ≤ count), in order.
        let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        let p = patches(&x, 1, &[1, 3, 3], &[1, 1, 2, 2], &[1, 4, 4], Some(([1, 1], [1; 4], [1, 1], 1)), 100, 0);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].len(), 16 * 4);
        assert_eq!(&p[0][..4], &[0.0, 0.0, 0.0, 1.0], "top-left: only x[0][0] is inside");
        assert_eq!(&p[0][5 * 4..6 * 4], &[1.0, 2.0, 4.0, 5.0], "output (1, 1) reads rows 0-1, columns 0-1");
        assert_eq!(&p[0][15 * 4..], &[9.0, 0.0, 0.0, 0.0], "bottom-right");
        // Two groups of one channel each read their own channel.
        let x2: Vec<f32> = (0..18).map(|v| v as f32).collect();
        let p = patches(&x2, 1, &[2, 3, 3], &[2, 1, 3, 3], &[2, 1, 1], Some(([1, 1], [0; 4], [1, 1], 2)), 100, 0);
        assert_eq!(p[1], (9..18).map(|v| v as f32).collect::<Vec<_>>());
    }

    #[test]
    fn learned_rounding_beats_nearest_rounding_on_the_layer_output_error() {
        // A 4-bit layer, 6 channels × 24 weights, on correlated inputs (x = A·z): the
        // output error, measured directly as mean over samples and channels of
        // (Σ (w̃ − w)·x)², drops below nearest rounding's.
        let mut rng = Prng::new(11);
        let (co, k, n) = (6, 24, 512);
        let x = correlated_inputs(&mut rng, k, n);
        let (w, nearest) = four_bit_layer(&mut rng, co, k);
        let mut learned = nearest.clone();
        let changed = refine(&w, &mut learned, 1, std::slice::from_ref(&x), None, (-7, 7), &AdaRound::default());
        let mse = |q: &QuantWeights| -> f64 {
            let mut e = 0f64;
            for row in x.chunks(k) {
                for c in 0..co {
                    let d: f64 =
                        (0..k).map(|i| f64::from(q.dequantize(c * k + i) - w[c * k + i]) * f64::from(row[i])).sum();
                    e += d * d;
                }
            }
            e / (n * co) as f64
        };
        let (before, after) = (mse(&nearest), mse(&learned));
        assert!(changed > 0, "no channel changed");
        assert!(after < 0.8 * before, "output MSE {after} against nearest rounding's {before}");
        // Every integer stays on the grid, one step from the float weight at most.
        for (i, v) in learned.values.iter().enumerate() {
            let x = w[i] / learned.scale[i / k];
            assert!((-7..=7).contains(v) && (*v as f32 - x).abs() < 1.0, "weight {i}: {v} for {x}");
        }
    }

    /// Correlated inputs `x = A·z`, `n` samples of `k`.
    fn correlated_inputs(rng: &mut Prng, k: usize, n: usize) -> Vec<f32> {
        let a: Vec<f32> = (0..k * k).map(|_| rng.normal()).collect();
        let mut x = Vec::with_capacity(n * k);
        for _ in 0..n {
            let z: Vec<f32> = (0..k).map(|_| rng.normal()).collect();
            x.extend((0..k).map(|i| (0..k).map(|j| a[i * k + j] * z[j]).sum::<f32>()));
        }
        x
    }

    /// Random weights of `co` channels × `k`, and their nearest 4-bit per-channel rounding.
    fn four_bit_layer(rng: &mut Prng, co: usize, k: usize) -> (Vec<f32>, QuantWeights) {
        let w: Vec<f32> = (0..co * k).map(|_| 0.3 * rng.normal()).collect();
        let scheme = crate::WeightScheme {
            kind: crate::Kind::Symmetric,
            bits: crate::WeightBits::B4,
            per_channel: true,
            clip_sigma: None,
        };
        let nearest = crate::weights::quantize(&w, &[co, k], scheme);
        (w, nearest)
    }

    /// [`correlated_inputs`], and the same with noise: what the quantized network gives
    /// a layer whose earlier layers are rounded.
    fn inputs_and_perturbed(rng: &mut Prng, k: usize, n: usize, noise: f32) -> (Vec<f32>, Vec<f32>) {
        let x = correlated_inputs(rng, k, n);
        // A systematic error (a shrunk copy, as a rounded layer's output often is) and noise.
        let xq = x.iter().map(|v| 0.95 * v + noise * rng.normal()).collect();
        (x, xq)
    }

    /// `mean over samples and channels of (Σ w·x − Σ w̃·x̃)²`, straight from the definition.
    fn asymmetric_mse(w: &[f32], q: &QuantWeights, x: &[f32], xq: &[f32], k: usize) -> f64 {
        let co = w.len() / k;
        let mut e = 0f64;
        for (xr, qr) in x.chunks(k).zip(xq.chunks(k)) {
            for c in 0..co {
                let float: f64 = (0..k).map(|i| f64::from(w[c * k + i]) * f64::from(xr[i])).sum();
                let quant: f64 = (0..k).map(|i| f64::from(q.dequantize(c * k + i)) * f64::from(qr[i])).sum();
                e += (float - quant).powi(2);
            }
        }
        e / (x.len() / k * co) as f64
    }

    #[test]
    fn asymmetric_error_is_the_mean_squared_difference_of_float_and_quantized_outputs() {
        // Δᵀ H̃ Δ − 2 Δᵀ D w + wᵀ E w against the direct mean of (wᵀx − w̃ᵀx̃)².
        let mut rng = Prng::new(5);
        let (k, n) = (7, 60);
        let (x, xq) = inputs_and_perturbed(&mut rng, k, n, 0.3);
        let w: Vec<f32> = (0..k).map(|_| rng.normal()).collect();
        let q = QuantWeights {
            values: w.iter().map(|v| (v / 0.25).round() as i32).collect(),
            scale: vec![0.25],
            zero: vec![0],
            shape: vec![1, k],
            bits: crate::WeightBits::B4,
        };
        let diff: Vec<f32> = x.iter().zip(&xq).map(|(a, b)| a - b).collect();
        let (h, dm, em) = (gram(&xq, k), cross(&xq, &diff, k), gram(&diff, k));
        let wd: Vec<f64> = w.iter().map(|v| f64::from(*v)).collect();
        let b = (0..k).map(|i| dm[i * k..(i + 1) * k].iter().zip(&wd).map(|(a, b)| a * b).sum()).collect();
        let target = Target { h: &h, b, c: output_error(&em, &wd) };
        let d: Vec<f64> = (0..k).map(|i| f64::from(q.dequantize(i)) - wd[i]).collect();
        let (via, direct) = (target.error(&d), asymmetric_mse(&w, &q, &x, &xq, k));
        // x − x̃ is formed in f32: agreement to f32's precision.
        assert!((via - direct).abs() < 1e-6 * direct.max(1.0), "{via} vs {direct}");
    }

    #[test]
    fn reconstructing_on_the_quantized_inputs_corrects_the_error_they_bring() {
        // A 4-bit layer reading inputs that earlier rounded layers shrank and blurred: its
        // output against the float layer's on the float inputs. Rounding learned on those
        // inputs (asymmetric) beats rounding learned on the float inputs, which beats
        // nearest rounding — all three measured directly.
        let mut rng = Prng::new(17);
        let (co, k, n) = (6, 24, 512);
        let (x, xq) = inputs_and_perturbed(&mut rng, k, n, 0.2);
        let (w, nearest) = four_bit_layer(&mut rng, co, k);
        let (mut float_fit, mut quant_fit) = (nearest.clone(), nearest.clone());
        refine(&w, &mut float_fit, 1, std::slice::from_ref(&x), None, (-7, 7), &AdaRound::default());
        refine(
            &w,
            &mut quant_fit,
            1,
            std::slice::from_ref(&x),
            Some(std::slice::from_ref(&xq)),
            (-7, 7),
            &AdaRound::default(),
        );
        let [e_near, e_float, e_quant] = [&nearest, &float_fit, &quant_fit].map(|q| asymmetric_mse(&w, q, &x, &xq, k));
        assert!(
            e_quant < 0.9 * e_float && e_float < e_near,
            "asymmetric {e_quant}, on float inputs {e_float}, nearest {e_near}"
        );
    }
}
