//! The NPU's integer arithmetic, defined once.
//!
//! Everything in the workspace that computes the integers the hardware computes — the
//! simulator's units, the toolchain's integer reference executor, the quantizer when it
//! derives multipliers — calls these functions, so the oracle and the machine cannot
//! disagree by construction; they are tested here against hand-derived values and a
//! 128-bit integer model.
//!
//! Semantics follow TFLite's reference kernels and gemmlowp's `fixedpoint.h`:
//!
//! * [`saturating_rounding_doubling_high_mul`]: `(a·b + 2^30) >> 31` with floor, i.e. round
//!   half **up** (toward +∞; gemmlowp's nudge `1 − 2^30` for negative products has that
//!   effect), saturating only for `INT32_MIN · INT32_MIN`.
//! * [`rounding_divide_by_pot`]: `x / 2^e` rounded half **away from zero**.
//! * [`multiply_by_quantized_multiplier`]: TFLite's `MultiplyByQuantizedMultiplier`, with
//!   [`Rounding::Double`] (the default: SRDHM then rounding right shift) or
//!   [`Rounding::Single`] (`TFLITE_SINGLE_ROUNDING`: one round-half-up of the 64-bit product).
//!
//! Where TFLite's C++ has undefined behaviour (int32 overflow of `x << left_shift`, or a
//! single-rounding result outside int32) this module saturates; in every defined case it is
//! bit-identical.

use bitvec::prelude::*;

use crate::error::{Error, Result};

/// Which of TFLite's two requantization roundings to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Rounding {
    /// SRDHM (round half up) then rounding divide by a power of two (half away from zero).
    #[default]
    Double,
    /// One rounding of the 64-bit product, half up (`TFLITE_SINGLE_ROUNDING`).
    Single,
}

/// Smallest accepted shift of a [`QuantizedMultiplier`].
pub const MIN_SHIFT: i32 = -31;
/// Largest accepted shift of a [`QuantizedMultiplier`].
pub const MAX_SHIFT: i32 = 30;

/// A real multiplier `M ≈ multiplier · 2^(shift − 31)` as the hardware holds it: a
/// non-negative Q31 `multiplier` and a `shift` in `MIN_SHIFT..=MAX_SHIFT` (positive
/// shifts left). Constructed only through [`QuantizedMultiplier::new`], which checks both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QuantizedMultiplier {
    multiplier: i32,
    shift: i32,
}

impl QuantizedMultiplier {
    /// Checks and wraps a multiplier and shift.
    pub fn new(multiplier: i32, shift: i32) -> Result<Self> {
        if multiplier < 0 {
            return Err(Error::Requant(format!("multiplier {multiplier} is negative (expected 0..=2147483647)")));
        }
        check_shift(shift)?;
        Ok(QuantizedMultiplier { multiplier, shift })
    }
    /// The Q31 multiplier.
    pub fn multiplier(self) -> i32 {
        self.multiplier
    }
    /// The shift (positive = left).
    pub fn shift(self) -> i32 {
        self.shift
    }
    /// The real number this represents.
    pub fn to_f64(self) -> f64 {
        f64::from(self.multiplier) * 2f64.powi(self.shift - 31)
    }
}

fn check_shift(shift: i32) -> Result<()> {
    if !(MIN_SHIFT..=MAX_SHIFT).contains(&shift) {
        return Err(Error::Requant(format!("shift {shift} is outside {MIN_SHIFT}..={MAX_SHIFT}")));
    }
    Ok(())
}

/// Saturates `x` to `lo..=hi` (requires `lo <= hi`).
#[inline]
pub fn saturate(x: i64, lo: i32, hi: i32) -> i32 {
    x.clamp(i64::from(lo), i64::from(hi)) as i32
}

/// Saturates to int32.
#[inline]
pub fn saturate_i32(x: i64) -> i32 {
    saturate(x, i32::MIN, i32::MAX)
}

/// gemmlowp's `SaturatingRoundingDoublingHighMul`: the high 32 bits of `2·a·b`, rounded.
#[inline]
pub fn saturating_rounding_doubling_high_mul(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    let ab = i64::from(a) * i64::from(b);
    let nudge = if ab >= 0 { 1i64 << 30 } else { 1 - (1i64 << 30) };
    // Division truncating toward zero, as in C.
    ((ab + nudge) / (1i64 << 31)) as i32
}

/// gemmlowp's `RoundingDivideByPOT`: `x / 2^exponent`, rounded half away from zero.
/// Exact for every exponent (for `exponent ≥ 63` the quotient rounds to 0).
#[inline]
pub fn rounding_divide_by_pot(x: i32, exponent: u32) -> i32 {
    if exponent >= 63 {
        return 0;
    }
    let x = i64::from(x);
    let mask = (1i64 << exponent) - 1;
    let remainder = x & mask;
    let threshold = (mask >> 1) + i64::from(x < 0);
    ((x >> exponent) + i64::from(remainder > threshold)) as i32
}

/// `x · 2^shift` for `shift ≥ 0` saturating to int32, or `x / 2^−shift` rounded half away
/// from zero for `shift < 0`: the barrel shifter of the shift-only (power-of-two) path.
#[inline]
pub fn rounding_shift(x: i32, shift: i32) -> Result<i32> {
    check_shift(shift)?;
    Ok(if shift >= 0 { saturate_i32(i64::from(x) << shift) } else { rounding_divide_by_pot(x, shift.unsigned_abs()) })
}

/// TFLite's `MultiplyByQuantizedMultiplier(x, multiplier, shift)`.
#[inline]
pub fn multiply_by_quantized_multiplier(x: i32, qm: QuantizedMultiplier, rounding: Rounding) -> i32 {
    let (m, shift) = (qm.multiplier, qm.shift);
    match rounding {
        Rounding::Double => {
            let left = shift.max(0) as u32;
            let right = (-shift).max(0) as u32;
            let shifted = saturate_i32(i64::from(x) << left);
            rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, m), right)
        }
        Rounding::Single => {
            let total = (31 - shift) as u32; // 1..=62
            let round = 1i64 << (total - 1);
            saturate_i32((i64::from(x) * i64::from(m) + round) >> total)
        }
    }
}

/// Output stage of a requantization: zero point and clamp bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OutputStage {
    /// Added after scaling.
    pub zero_point: i32,
    /// Lowest output (inclusive).
    pub lo: i32,
    /// Highest output (inclusive).
    pub hi: i32,
}

impl OutputStage {
    /// Checks `lo <= hi`.
    pub fn new(zero_point: i32, lo: i32, hi: i32) -> Result<Self> {
        if lo > hi {
            return Err(Error::Requant(format!("clamp lower bound {lo} exceeds upper bound {hi}")));
        }
        Ok(OutputStage { zero_point, lo, hi })
    }
    #[inline]
    fn finish(self, scaled: i32) -> i32 {
        saturate(i64::from(scaled) + i64::from(self.zero_point), self.lo, self.hi)
    }
}

/// Full requantization of an int32 accumulator (bias already added):
/// `clamp(MBQM(acc) + zero_point, lo, hi)`.
#[inline]
pub fn requantize(acc: i32, qm: QuantizedMultiplier, rounding: Rounding, out: OutputStage) -> i32 {
    out.finish(multiply_by_quantized_multiplier(acc, qm, rounding))
}

/// The requantization unit's lanes: `dst[i] = requantize(add_bias(acc[i], bias[i]), qm[i],
/// Rounding::Double, out)` for every lane — the same integers as those scalar functions
/// (property-tested against them), written without branches so that compilers
/// vectorize it. The rounding-divide runs in 32 bits: after the high multiply the value
/// fits, and the exponent is at most 31.
#[inline]
pub fn requantize_double_lanes(
    acc: &[i32],
    bias: &[i32],
    qm: &[QuantizedMultiplier],
    out: OutputStage,
    dst: &mut [i32],
) {
    for (((d, &a), &b), q) in dst.iter_mut().zip(acc).zip(bias).zip(qm) {
        let x = a.saturating_add(b);
        let left = q.shift.max(0) as u32;
        let right = (-q.shift).max(0) as u32;
        let shifted = (i64::from(x) << left).clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
        // Saturating rounding doubling high multiply; the multiplier is never negative,
        // so the one saturating case (i32::MIN · i32::MIN) cannot occur. (Both factors
        // are int32, which lets compilers use a 32×32→64 multiply.)
        let ab = i64::from(shifted) * i64::from(q.multiplier);
        let t = ab + if ab >= 0 { 1i64 << 30 } else { 1 - (1i64 << 30) };
        let high = ((t + ((t >> 63) & ((1i64 << 31) - 1))) >> 31) as i32;
        // Rounding divide by 2^right, half away from zero.
        let mask = 1i32.wrapping_shl(right).wrapping_sub(1);
        let threshold = (mask >> 1) + i32::from(high < 0);
        let scaled = (high >> right) + i32::from((high & mask) > threshold);
        *d = scaled.saturating_add(out.zero_point).clamp(out.lo, out.hi);
    }
}

/// The shift-only lanes: `dst[i] = shift_requantize(add_bias(acc[i], bias[i]), shift[i], out)`
/// for every lane (shifts must be in `MIN_SHIFT..=MAX_SHIFT`, as
/// [`shift_requantize`] checks) — the same integers, property-tested, without branches.
#[inline]
pub fn shift_requantize_lanes(acc: &[i32], bias: &[i32], shift: &[i32], out: OutputStage, dst: &mut [i32]) {
    for (((d, &a), &b), &s) in dst.iter_mut().zip(acc).zip(bias).zip(shift) {
        let x = a.saturating_add(b);
        let left = (i64::from(x) << s.max(0) as u32).clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
        let right = (-s).max(0) as u32;
        let mask = 1i32.wrapping_shl(right).wrapping_sub(1);
        let threshold = (mask >> 1) + i32::from(x < 0);
        let down = (x >> right) + i32::from((x & mask) > threshold);
        let scaled = if s >= 0 { left } else { down };
        *d = scaled.saturating_add(out.zero_point).clamp(out.lo, out.hi);
    }
}

/// Shift-only (power-of-two) requantization: `clamp(rounding_shift(acc, shift) + zero_point, lo, hi)`.
#[inline]
pub fn shift_requantize(acc: i32, shift: i32, out: OutputStage) -> Result<i32> {
    Ok(out.finish(rounding_shift(acc, shift)?))
}

/// The requantization unit's bias add (saturating int32).
#[inline]
pub fn add_bias(acc: i32, bias: i32) -> i32 {
    acc.saturating_add(bias)
}

/// TFLite's `QuantizeMultiplier`: the Q31 multiplier and shift closest to a real
/// multiplier `real ≥ 0` (rounding half away from zero). Multipliers too small for
/// any shift become 0; too large ones (≥ 2^30) and negative or non-finite ones are errors.
pub fn quantize_multiplier(real: f64) -> Result<QuantizedMultiplier> {
    if !real.is_finite() || real < 0.0 {
        return Err(Error::Requant(format!("real multiplier {real} is not a finite non-negative number")));
    }
    if real == 0.0 {
        return QuantizedMultiplier::new(0, 0);
    }
    let (q, mut shift) = frexp(real);
    let mut q_fixed = (q * (1u64 << 31) as f64).round() as i64; // f64::round is half away from zero
    if q_fixed == 1i64 << 31 {
        q_fixed /= 2;
        shift += 1;
    }
    if shift < MIN_SHIFT {
        return QuantizedMultiplier::new(0, 0);
    }
    if shift > MAX_SHIFT {
        return Err(Error::Requant(format!("real multiplier {real} is too large (shift {shift} > {MAX_SHIFT})")));
    }
    QuantizedMultiplier::new(q_fixed as i32, shift)
}

/// `x = q · 2^e` with `q ∈ [0.5, 1)` for finite positive `x`.
fn frexp(x: f64) -> (f64, i32) {
    let bits = x.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    if exp == 0 {
        // Subnormal: scale into the normal range first.
        let (q, e) = frexp(x * 2f64.powi(64));
        return (q, e - 64);
    }
    let q = f64::from_bits((bits & !(0x7ffu64 << 52)) | (1022u64 << 52));
    (q, exp - 1022)
}

/// The value a weight byte takes in a MAC precision mode, or `None` if the byte is
/// outside the mode's range (`i4`: −8..=7; `t2`: −1, 0, 1). Binary modes read the sign:
/// a byte ≥ 0 is +1, < 0 is −1.
#[inline]
pub fn weight_value(mode: crate::fields::MacMode, byte: u8) -> Option<i32> {
    use crate::fields::MacMode;
    let v = i32::from(byte as i8);
    match mode {
        MacMode::I8 => Some(v),
        MacMode::I4 => (-8..=7).contains(&v).then_some(v),
        MacMode::T2 => (-1..=1).contains(&v).then_some(v),
        MacMode::B1 | MacMode::Xnor => Some(if v >= 0 { 1 } else { -1 }),
    }
}

/// The value an activation takes in a MAC precision mode: the byte read as `at`, or in
/// `xnor` mode its sign (≥ 0 → +1, < 0 → −1, after reading it as `at`).
#[inline]
pub fn activation_value(mode: crate::fields::MacMode, at: crate::fields::ActType, byte: u8) -> i32 {
    let v = at.read(byte);
    match mode {
        crate::fields::MacMode::Xnor => {
            if v >= 0 {
                1
            } else {
                -1
            }
        }
        _ => v,
    }
}

/// One multiply-accumulate of the array: `acc + a·w` in wrapping int32, as the
/// hardware's adder tree does.
#[inline]
pub fn mac(acc: i32, a: i32, w: i32) -> i32 {
    acc.wrapping_add(a.wrapping_mul(w))
}

/// `acc + Σ a[i]·w[i]` over the pairs of `a` and `w`, in wrapping int32: [`mac`]
/// folded over a row of the array (wrapping addition is associative, so the adder
/// tree's order does not matter).
#[inline]
pub fn dot(acc: i32, a: &[i32], w: &[i32]) -> i32 {
    a.iter().zip(w).fold(acc, |s, (x, y)| s.wrapping_add(x.wrapping_mul(*y)))
}

/// `acc[i] = mac(acc[i], a[i], w[i])` for every lane (the depthwise datapath: one
/// channel per column).
#[inline]
pub fn mac_lanes(acc: &mut [i32], a: &[i32], w: &[i32]) {
    for ((s, x), y) in acc.iter_mut().zip(a).zip(w) {
        *s = s.wrapping_add(x.wrapping_mul(*y));
    }
}

/// A binary dot product as the XNOR-popcount datapath computes it: with `k` operand
/// pairs of signs packed as bits (1 = +1, 0 = −1), `2·popcount(XNOR(a, w)) − k`.
pub fn xnor_popcount(a_bits: &BitSlice<u8, Lsb0>, w_bits: &BitSlice<u8, Lsb0>) -> i32 {
    let k = a_bits.len().min(w_bits.len());
    let agree = a_bits.iter().by_vals().zip(w_bits.iter().by_vals()).filter(|(a, w)| a == w).count();
    2 * agree as i32 - k as i32
}

/// Average pooling's integer divide (TFLite `AVERAGE_POOL_2D`): `sum / count` rounded
/// half away from zero. `count` must be positive.
pub fn average(sum: i32, count: i32) -> i32 {
    let (s, c) = (i64::from(sum), i64::from(count.max(1)));
    let r = if s > 0 { (s + c / 2) / c } else { (s - c / 2) / c };
    r as i32
}

/// Parameters of an elementwise add, subtract or multiply with per-input rescale,
/// as TFLite's integer ADD/SUB/MUL kernels hold them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElementwiseParams {
    /// Zero point of the first input.
    pub za: i32,
    /// Zero point of the second input.
    pub zb: i32,
    /// Output zero point.
    pub zo: i32,
    /// Left shift applied to both inputs before rescaling (TFLite uses 20).
    pub left_shift: u32,
    /// First input's multiplier (add/sub only).
    pub ma: QuantizedMultiplier,
    /// Second input's multiplier (add/sub only).
    pub mb: QuantizedMultiplier,
    /// Output multiplier.
    pub mo: QuantizedMultiplier,
    /// Output range after the zero point: the type's range intersected with the clamp.
    pub out: OutputStage,
}

/// Largest left shift accepted by [`ElementwiseParams`].
pub const MAX_ELEMENTWISE_LEFT_SHIFT: u32 = 24;

/// TFLite integer ADD (`subtract = false`) or SUB (`true`):
/// `MBQM(MBQM((a−za)<<ls, ma) ± MBQM((b−zb)<<ls, mb), mo) + zo`, clamped; double rounding.
pub fn add_rescaled(a: i32, b: i32, p: &ElementwiseParams, subtract: bool) -> i32 {
    let shift = p.left_shift.min(MAX_ELEMENTWISE_LEFT_SHIFT);
    let sa = saturate_i32(i64::from(a - p.za) << shift);
    let sb = saturate_i32(i64::from(b - p.zb) << shift);
    let xa = multiply_by_quantized_multiplier(sa, p.ma, Rounding::Double);
    let xb = multiply_by_quantized_multiplier(sb, p.mb, Rounding::Double);
    let sum = if subtract { i64::from(xa) - i64::from(xb) } else { i64::from(xa) + i64::from(xb) };
    p.out.finish(multiply_by_quantized_multiplier(saturate_i32(sum), p.mo, Rounding::Double))
}

/// TFLite integer MUL: `MBQM((a−za)·(b−zb), mo) + zo`, clamped; double rounding.
pub fn mul_rescaled(a: i32, b: i32, p: &ElementwiseParams) -> i32 {
    let prod = saturate_i32(i64::from(a - p.za) * i64::from(b - p.zb));
    p.out.finish(multiply_by_quantized_multiplier(prod, p.mo, Rounding::Double))
}

/// A packed low-bit weight format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Packing {
    /// 4-bit two's complement, two per byte, low nibble first.
    I4,
    /// 2-bit ternary codes, four per byte, low bits first: `00`→0, `01`→+1, `11`→−1.
    T2,
    /// 1-bit binary, eight per byte, least significant bit first: `1`→+1, `0`→−1.
    B1,
}

impl Packing {
    /// Bits per value.
    pub fn bits(self) -> usize {
        match self {
            Packing::I4 => 4,
            Packing::T2 => 2,
            Packing::B1 => 1,
        }
    }
    /// Name used in messages and assembly.
    pub fn name(self) -> &'static str {
        match self {
            Packing::I4 => "i4",
            Packing::T2 => "t2",
            Packing::B1 => "b1",
        }
    }
    fn range_text(self) -> &'static str {
        match self {
            Packing::I4 => "-8..=7",
            Packing::T2 => "-1, 0 or 1",
            Packing::B1 => "-1 or 1",
        }
    }
    /// Bytes taken by `n` packed values.
    pub fn packed_len(self, n: usize) -> usize {
        (n * self.bits()).div_ceil(8)
    }
    fn code(self, v: i64) -> Option<u8> {
        match (self, v) {
            (Packing::I4, -8..=7) => Some((v & 0xf) as u8),
            (Packing::T2, 0) => Some(0b00),
            (Packing::T2, 1) => Some(0b01),
            (Packing::T2, -1) => Some(0b11),
            (Packing::B1, 1) => Some(1),
            (Packing::B1, -1) => Some(0),
            _ => None,
        }
    }
    fn value(self, code: u8) -> Option<i8> {
        match self {
            Packing::I4 => Some(((code << 4) as i8) >> 4),
            Packing::T2 => match code {
                0b00 => Some(0),
                0b01 => Some(1),
                0b11 => Some(-1),
                _ => None,
            },
            Packing::B1 => Some(if code == 1 { 1 } else { -1 }),
        }
    }
}

/// Packs values; unused high bits of the last byte are zero.
pub fn pack(values: &[i64], packing: Packing) -> Result<Vec<u8>> {
    let bits = packing.bits();
    let mut out: BitVec<u8, Lsb0> = BitVec::with_capacity(values.len() * bits);
    for (index, &value) in values.iter().enumerate() {
        let code = packing.code(value).ok_or(Error::PackValue {
            index,
            value,
            width: packing.name(),
            range: packing.range_text(),
        })?;
        for b in 0..bits {
            out.push(code >> b & 1 == 1);
        }
    }
    Ok(out.into_vec())
}

/// Unpacks `count` values from `bytes`.
pub fn unpack(bytes: &[u8], count: usize, packing: Packing) -> Result<Vec<i8>> {
    let need = packing.packed_len(count);
    if bytes.len() < need {
        return Err(Error::Unpack {
            width: packing.name(),
            what: format!("{count} values need {need} bytes, only {} given", bytes.len()),
        });
    }
    // Widths divide 8, so value i is bits (i·w mod 8).. of byte i·w / 8, least
    // significant first — the layout `pack` writes with bitvec's `Lsb0` order.
    let w = packing.bits();
    let per_byte = 8 / w;
    let mask = (1u8 << w) - 1;
    let table: Vec<Option<i8>> = (0..=mask).map(|code| packing.value(code)).collect();
    (0..count)
        .map(|i| {
            let code = (bytes[i / per_byte] >> ((i % per_byte) * w)) & mask;
            table[usize::from(code)].ok_or_else(|| Error::Unpack {
                width: packing.name(),
                what: format!("invalid code {code:#04b} for value {i}"),
            })
        })
        .collect()
}

mod softmax;
pub use softmax::{exp_on_negative_values, softmax, SoftmaxParams};

#[cfg(test)]
mod tests;
