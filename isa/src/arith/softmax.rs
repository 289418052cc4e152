//! TFLite's integer softmax (`reference_ops::Softmax` for 8-bit tensors), with the
//! gemmlowp fixed-point functions it is built from.
//!
//! Per row: the differences `x − max` (≤ 0) are rescaled by `input_beta_multiplier ·
//! 2^left_shift` into Q5.26, exponentiated by gemmlowp's `exp_on_negative_values` (Q0.31),
//! summed in Q12.19, the sum inverted by Newton–Raphson (`one_over_one_plus_x_for_x_in_0_1`)
//! and each exponential scaled by the inverse to `1/256` steps. Differences below
//! `diff_min` contribute nothing and output the type's minimum. The output is quantized
//! with scale 1/256 and zero point at the type's minimum (−128 for int8, 0 for uint8).

use super::{rounding_divide_by_pot, saturating_rounding_doubling_high_mul as srdhm};
use crate::error::{Error, Result};

/// Integer bits of the rescaled differences (TFLite's `kScaledDiffIntegerBits`).
const DIFF_INTEGER_BITS: u32 = 5;
/// Integer bits of the sum of exponentials (`kAccumulationIntegerBits`).
const ACCUM_INTEGER_BITS: u32 = 12;

/// The parameters of an integer softmax, as TFLite's `SoftmaxParams` holds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SoftmaxParams {
    /// `input_multiplier`: Q31 multiplier of `beta · input_scale · 2^26`.
    pub multiplier: i32,
    /// `input_left_shift` (0..=31).
    pub left_shift: i32,
    /// `diff_min` (≤ 0): differences from the row maximum below it give the minimum output.
    pub diff_min: i32,
}

impl SoftmaxParams {
    /// TFLite's `PreprocessSoftmaxScaling` and `CalculateInputRadius` for `beta ·
    /// input_scale` (both as the model stores them, converted to `f64`).
    pub fn new(beta: f64, input_scale: f64) -> Result<Self> {
        let real = beta * input_scale;
        if !real.is_finite() || real <= 0.0 {
            return Err(Error::Requant(format!("softmax beta · input scale {real} is not a finite positive number")));
        }
        let real = (real * f64::from(1u32 << (31 - DIFF_INTEGER_BITS))).min(2_147_483_647.0);
        // QuantizeMultiplierGreaterThanOne: frexp, round half away from zero.
        let (q, mut shift) = super::frexp(real);
        if shift < 0 {
            // The multiplier is below one: TFLite requires a non-negative shift.
            return Err(Error::Requant(format!(
                "softmax input scale {input_scale} (beta {beta}) is too small for TFLite's integer softmax"
            )));
        }
        let mut fixed = (q * f64::from(1u32 << 31)).round() as i64;
        if fixed == 1i64 << 31 {
            fixed /= 2;
            shift += 1;
        }
        let radius =
            f64::from((1u32 << DIFF_INTEGER_BITS) - 1) * 2f64.powi(31 - DIFF_INTEGER_BITS as i32) / 2f64.powi(shift);
        SoftmaxParams::from_raw(fixed as i32, shift, -(radius.floor() as i32))
    }

    /// Checks and wraps raw parameters (as stored in a model or an instruction record).
    pub fn from_raw(multiplier: i32, left_shift: i32, diff_min: i32) -> Result<Self> {
        if multiplier < 0 || !(0..=31).contains(&left_shift) || diff_min > 0 {
            return Err(Error::Requant(format!(
                "softmax parameters (multiplier {multiplier}, left shift {left_shift}, diff_min {diff_min}) out of range (multiplier ≥ 0, shift 0..=31, diff_min ≤ 0)"
            )));
        }
        Ok(SoftmaxParams { multiplier, left_shift, diff_min })
    }

    /// The difference `x − max` rescaled to Q5.26 (`MultiplyByQuantizedMultiplierGreaterThanOne`).
    fn rescale(self, diff: i32) -> i32 {
        let shifted = (i64::from(diff) << self.left_shift).clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
        srdhm(shifted, self.multiplier)
    }
}

/// gemmlowp's `SaturatingRoundingMultiplyByPOT`: `x · 2^e` saturating (e > 0) or rounded
/// half away from zero (e < 0).
fn mul_pot(x: i32, e: i32) -> i32 {
    if e >= 0 {
        (i64::from(x) << e).clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
    } else {
        rounding_divide_by_pot(x, e.unsigned_abs())
    }
}

/// gemmlowp's `exp_on_interval_between_negative_one_quarter_and_0_excl` on Q0.31.
fn exp_quarter(a: i32) -> i32 {
    const EXP_MINUS_ONE_EIGHTH: i32 = 1_895_147_668;
    const ONE_THIRD: i32 = 715_827_883;
    let x = a.wrapping_add(1 << 28);
    let x2 = srdhm(x, x);
    let x3 = srdhm(x2, x);
    let x4 = srdhm(x2, x2);
    let x4_over_4 = mul_pot(x4, -2);
    let poly = mul_pot(srdhm(x4_over_4.wrapping_add(x3), ONE_THIRD).wrapping_add(x2), -1);
    EXP_MINUS_ONE_EIGHTH.wrapping_add(srdhm(EXP_MINUS_ONE_EIGHTH, x.wrapping_add(poly)))
}

/// gemmlowp's `exp_on_negative_values` for Q5.26 input `a ≤ 0`: `exp(a)` in Q0.31.
pub fn exp_on_negative_values(a: i32) -> i32 {
    const FRAC: u32 = 31 - DIFF_INTEGER_BITS;
    let quarter = 1i32 << (FRAC - 2);
    let a_mod = (a & (quarter - 1)).wrapping_sub(quarter);
    let mut result = exp_quarter(mul_pot(a_mod, DIFF_INTEGER_BITS as i32));
    let remainder = a_mod.wrapping_sub(a);
    // exp(−2^k) for k = −2..=4, applied for each bit of the remainder.
    const BARREL: [(i32, i32); 7] = [
        (-2, 1_672_461_947),
        (-1, 1_302_514_674),
        (0, 790_015_084),
        (1, 290_630_308),
        (2, 39_332_535),
        (3, 720_401),
        (4, 242),
    ];
    for (exponent, multiplier) in BARREL {
        if (DIFF_INTEGER_BITS as i32) > exponent && remainder & (1 << (FRAC as i32 + exponent)) != 0 {
            result = srdhm(result, multiplier);
        }
    }
    if a == 0 {
        i32::MAX
    } else {
        result
    }
}

/// gemmlowp's `one_over_one_plus_x_for_x_in_0_1` on Q0.31.
fn one_over_one_plus_x(a: i32) -> i32 {
    // RoundingHalfSum(a, One).
    let sum = i64::from(a) + i64::from(i32::MAX);
    let half_denominator = ((sum + if sum >= 0 { 1 } else { -1 }) / 2) as i32;
    const C48_OVER_17: i32 = 1_515_870_810; // Q2.29
    const CNEG32_OVER_17: i32 = -1_010_580_540; // Q2.29
    const ONE_Q2: i32 = 1 << 29;
    let mut x = C48_OVER_17.wrapping_add(srdhm(half_denominator, CNEG32_OVER_17));
    for _ in 0..3 {
        let hdx = srdhm(half_denominator, x);
        let one_minus = ONE_Q2.wrapping_sub(hdx);
        x = x.wrapping_add(mul_pot(srdhm(x, one_minus), 2));
    }
    // ExactMulByPot<−1> (Q2 → Q1, same raw) then Rescale<0> (× 2, saturating).
    mul_pot(x, 1)
}

/// TFLite's `GetReciprocal`: the inverse of a Q12.19 sum as a Q0.31 value and the
/// number of bits the sum lies above one.
fn reciprocal(x: i32) -> (i32, i32) {
    let headroom_plus_one = (x as u32).leading_zeros() as i32;
    let bits_over_unit = ACCUM_INTEGER_BITS as i32 - headroom_plus_one;
    let shifted_minus_one = ((x as u32).wrapping_shl(headroom_plus_one as u32)).wrapping_sub(1u32 << 31) as i32;
    (one_over_one_plus_x(shifted_minus_one), bits_over_unit)
}

/// TFLite's 8-bit integer softmax of one row, output with scale 1/256 and zero point
/// `out_min` (−128 for int8, 0 for uint8), saturated to `out_min..=out_max`. `out` must
/// be as long as `row`.
pub fn softmax(row: &[i32], p: SoftmaxParams, out_min: i32, out_max: i32, out: &mut [i32]) {
    let Some(&max) = row.iter().max() else { return };
    let mut sum: i32 = 0;
    for &x in row {
        let diff = x - max;
        if diff >= p.diff_min {
            let e = exp_on_negative_values(p.rescale(diff));
            sum = sum.wrapping_add(rounding_divide_by_pot(e, ACCUM_INTEGER_BITS));
        }
    }
    let (scale, bits_over_unit) = reciprocal(sum);
    let exponent = (bits_over_unit + 31 - 8).max(0) as u32;
    for (o, &x) in out.iter_mut().zip(row) {
        let diff = x - max;
        *o = if diff >= p.diff_min {
            let e = exp_on_negative_values(p.rescale(diff));
            let unsat = rounding_divide_by_pot(srdhm(scale, e), exponent);
            (i64::from(unsat) + i64::from(out_min)).clamp(i64::from(out_min), i64::from(out_max)) as i32
        } else {
            out_min
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(x: f64, frac: u32) -> i32 {
        (x * f64::from(1u32 << frac)).round() as i32
    }

    #[test]
    fn exp_on_negative_values_matches_exp() {
        assert_eq!(exp_on_negative_values(0), i32::MAX);
        for k in 1..=400 {
            let a = -f64::from(k) * 0.05; // down to −20
            let got = f64::from(exp_on_negative_values(q(a, 26))) / 2f64.powi(31);
            assert!((got - a.exp()).abs() < 2e-8 + 1e-6 * a.exp(), "exp({a}) = {} got {got}", a.exp());
        }
    }

    #[test]
    fn reciprocal_matches_division() {
        for s in [1.0f64, 1.25, 2.0, 3.7, 10.0, 255.5, 4000.0] {
            let raw = q(s, 19);
            let (inv, bits) = reciprocal(raw);
            let got = f64::from(inv) / 2f64.powi(31) / 2f64.powi(bits);
            let want = 2f64.powi(19) / f64::from(raw);
            assert!((got - want).abs() < 1e-8 * want, "1/{s}: {got} vs {want}");
        }
    }

    #[test]
    fn params_follow_tflite_preprocessing() {
        // beta · scale · 2^26 = 0.1 · 2^26 = 6710886.4 = 0.8 · 2^23: shift 23,
        // multiplier round(0.8 · 2^31) = 1717986918; radius floor(31 · 2^26 / 2^23) = 248.
        let p = SoftmaxParams::new(1.0, 0.1).expect("params");
        assert_eq!(p, SoftmaxParams { multiplier: 1_717_986_918, left_shift: 23, diff_min: -248 });
        assert!(SoftmaxParams::new(1.0, f64::NAN).is_err());
        assert!(SoftmaxParams::from_raw(1, 32, 0).is_err());
    }

    #[test]
    fn equal_inputs_share_the_probability() {
        // Every element of a row of d equal inputs is 1/d: 256/d steps above the minimum.
        let p = SoftmaxParams::new(1.0, 0.1).expect("params");
        for (d, want) in [(1usize, 127), (2, 0), (4, -64), (8, -96), (256, -127)] {
            let row = vec![5; d];
            let mut out = vec![0; d];
            softmax(&row, p, -128, 127, &mut out);
            assert!(out.iter().all(|&o| o == want), "d = {d}: {out:?}");
        }
        // uint8 output: the same steps from 0; one element saturates at 255.
        let mut out = vec![0; 4];
        softmax(&[9, 9, 9, 9], p, 0, 255, &mut out);
        assert_eq!(out, vec![64; 4]);
    }

    #[test]
    fn far_below_the_maximum_gives_the_minimum() {
        // scale 0.1: a difference of −30 (−3.0) has exp ≈ 0.0474 of the maximum's; a
        // difference beyond diff_min (−248 ≈ −24.8) contributes nothing.
        let p = SoftmaxParams::new(1.0, 0.1).expect("params");
        let mut out = vec![0; 3];
        softmax(&[100, 70, -200], p, -128, 127, &mut out);
        // p0 = 1/(1 + e^−3) = 0.95257 → 243.86 steps → 244 − 128 = 116;
        // p1 = e^−3/(1 + e^−3) = 0.04743 → 12.14 → 12 − 128 = −116.
        assert_eq!(out, vec![116, -116, -128]);
    }
}
