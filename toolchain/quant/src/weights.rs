//! Weight quantization: integer values and scales per type and granularity, and the
//! integer parameters of a layer (bias with zero points folded in, requantization).

use crate::error::{Error, Result};
use crate::{Kind, QParams, Requant, WeightBits, WeightScheme, WeightedLayer};
use npu_isa::arith;

/// Quantized weights of one layer.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantWeights {
    /// Integer values, same layout as the float weights.
    pub values: Vec<i32>,
    /// Shape.
    pub shape: Vec<usize>,
    /// Scale per channel (one entry when per-tensor).
    pub scale: Vec<f32>,
    /// Zero point per channel (one entry when per-tensor).
    pub zero: Vec<i32>,
    /// Precision.
    pub bits: WeightBits,
}

impl QuantWeights {
    /// The real value of element `i` (of output channel `i / per_channel`).
    pub fn dequantize(&self, i: usize) -> f32 {
        let per = self.values.len() / self.shape[0].max(1);
        let c = if self.scale.len() == 1 { 0 } else { i / per };
        self.scale[c] * (self.values[i] - self.zero[c]) as f32
    }
}

/// Clips to mean ± k·σ.
fn clip_sigma(v: &[f32], k: f32) -> Vec<f32> {
    let n = v.len().max(1) as f32;
    let mean = v.iter().sum::<f32>() / n;
    let std = (v.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / n).sqrt();
    v.iter().map(|x| x.clamp(mean - k * std, mean + k * std)).collect()
}

/// Quantizes one group of weights (a channel, or the whole tensor): (values, scale, zero).
pub fn quantize_group(w: &[f32], s: WeightScheme) -> (Vec<i32>, f32, i32) {
    let w = match s.clip_sigma {
        Some(k) => clip_sigma(w, k),
        None => w.to_vec(),
    };
    let tiny = 1e-12f32;
    let maxabs = w.iter().fold(0f32, |m, x| m.max(x.abs()));
    let round = |x: f32, lo: i32, hi: i32| -> i32 { (x.round() as i32).clamp(lo, hi) };
    match s.bits {
        WeightBits::Binary => {
            let alpha = (w.iter().map(|x| x.abs()).sum::<f32>() / w.len().max(1) as f32).max(tiny);
            (w.iter().map(|x| if *x >= 0.0 { 1 } else { -1 }).collect(), alpha, 0)
        }
        WeightBits::Ternary => {
            // Ternary weight networks: threshold 0.7·mean|w|, α = mean of the kept magnitudes.
            let delta = 0.7 * w.iter().map(|x| x.abs()).sum::<f32>() / w.len().max(1) as f32;
            let kept: Vec<f32> = w.iter().filter(|x| x.abs() > delta).map(|x| x.abs()).collect();
            let alpha = (kept.iter().sum::<f32>() / kept.len().max(1) as f32).max(tiny);
            (w.iter().map(|x| if x.abs() > delta { x.signum() as i32 } else { 0 }).collect(), alpha, 0)
        }
        WeightBits::B8 | WeightBits::B4 => {
            let qmax = if s.bits == WeightBits::B8 { 127 } else { 7 };
            match s.kind {
                Kind::Asymmetric => {
                    let (qlo, qhi) = if s.bits == WeightBits::B8 { (-128, 127) } else { (-8, 7) };
                    let lo = w.iter().fold(0f32, |m, x| m.min(*x));
                    let hi = w.iter().fold(0f32, |m, x| m.max(*x));
                    let scale = ((hi - lo) / (qhi - qlo) as f32).max(tiny);
                    let zero = round(qlo as f32 - lo / scale, qlo, qhi);
                    (w.iter().map(|x| round(x / scale + zero as f32, qlo, qhi)).collect(), scale, zero)
                }
                Kind::Symmetric | Kind::Pow2 => {
                    let mut scale = (maxabs / qmax as f32).max(tiny);
                    if s.kind == Kind::Pow2 {
                        scale = 2f32.powi(scale.log2().ceil() as i32);
                    }
                    (w.iter().map(|x| round(x / scale, -qmax, qmax)).collect(), scale, 0)
                }
            }
        }
    }
}

/// Quantizes a weight tensor (first dimension = output channels).
pub fn quantize(w: &[f32], shape: &[usize], s: WeightScheme) -> QuantWeights {
    let channels = shape[0].max(1);
    let per = w.len() / channels;
    if s.per_channel {
        let mut values = Vec::with_capacity(w.len());
        let (mut scale, mut zero) = (Vec::new(), Vec::new());
        for c in 0..channels {
            let (v, sc, z) = quantize_group(&w[c * per..(c + 1) * per], s);
            values.extend(v);
            scale.push(sc);
            zero.push(z);
        }
        QuantWeights { values, shape: shape.to_vec(), scale, zero, bits: s.bits }
    } else {
        let (values, sc, z) = quantize_group(w, s);
        QuantWeights { values, shape: shape.to_vec(), scale: vec![sc], zero: vec![z], bits: s.bits }
    }
}

/// The integer parameters of a convolution or dense layer.
///
/// With `K` the reduction length, the layer computes per output channel `c`
/// `Σ (a − z_in)(w − z_w) = Σ a·w − z_w·Σ a − z_in·Σ w + K·z_in·z_w`; the MAC array gives
/// `Σ a·w`, the zero-point correction `−z_w·Σ a`, and everything constant goes into the
/// int32 bias with `round(b / (s_in·s_w))`. Requantization multiplies by
/// `s_in·s_w / s_out` (Q31 multiplier and shift), or shifts when all three are powers of
/// two (`pow2`).
pub fn integer_layer(
    name: &str,
    qw: QuantWeights,
    bias: Option<&[f32]>,
    qin: QParams,
    qout: QParams,
    _scheme: WeightScheme,
    pow2: bool,
) -> Result<WeightedLayer> {
    let channels = qw.shape[0];
    let k = qw.values.len() / channels.max(1);
    let mut ibias = Vec::with_capacity(channels);
    let mut mults = Vec::with_capacity(channels);
    let mut shifts = Vec::with_capacity(channels);
    for c in 0..channels {
        let ci = if qw.scale.len() == 1 { 0 } else { c };
        let (sw, zw) = (qw.scale[ci], qw.zero[ci]);
        let sum_w: i64 = qw.values[c * k..(c + 1) * k].iter().map(|v| i64::from(*v)).sum();
        let b = bias.map_or(0.0, |b| f64::from(b[c])) / (f64::from(qin.scale) * f64::from(sw));
        // In i128: a bias far beyond int32 (a tiny input or weight scale) saturates
        // rather than overflowing, and is reported.
        if b.is_nan() {
            return Err(Error::Invalid(format!(
                "layer `{name}`: channel {c}'s bias cannot be quantized (input scale {} × weight scale {sw})",
                qin.scale
            )));
        }
        let total = b.round().clamp(-1e30, 1e30) as i128 - i128::from(qin.zero_point) * i128::from(sum_w)
            + (k as i128) * i128::from(qin.zero_point) * i128::from(zw);
        let clamped = total.clamp(i128::from(i32::MIN), i128::from(i32::MAX)) as i32;
        if i128::from(clamped) != total {
            tracing::warn!("layer `{name}`: channel {c}'s integer bias {total} saturates to {clamped} (int32)");
        }
        ibias.push(clamped);
        let real = f64::from(qin.scale) * f64::from(sw) / f64::from(qout.scale);
        if pow2 {
            let e = real.log2().round() as i32;
            if (2f64.powi(e) - real).abs() > 1e-9 * real {
                return Err(Error::Invalid(format!("layer `{name}`: scale ratio {real} is not a power of two")));
            }
            if !(arith::MIN_SHIFT..=arith::MAX_SHIFT).contains(&e) {
                return Err(Error::Invalid(format!("layer `{name}`: shift {e} is outside the barrel shifter's range")));
            }
            shifts.push(e);
        } else {
            let q = arith::quantize_multiplier(real).map_err(|e| Error::Invalid(format!("layer `{name}`: {e}")))?;
            mults.push((q.multiplier(), q.shift()));
        }
    }
    let zero_per_channel: Vec<i32> = (0..channels).map(|c| qw.zero[if qw.zero.len() == 1 { 0 } else { c }]).collect();
    Ok(WeightedLayer {
        weights: qw.values,
        shape: qw.shape,
        bits: qw.bits,
        w_scale: qw.scale,
        w_zero: zero_per_channel,
        bias: ibias,
        requant: if pow2 { Requant::Shift(shifts) } else { Requant::Multiplier(mults) },
    })
}
