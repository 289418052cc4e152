//! Golden values derived by hand (see each comment) and property tests against a
//! 128-bit integer model written from the mathematical definitions, not from the
//! bit tricks in the implementation.

use proptest::prelude::*;

use super::*;

const Q30: i32 = 1 << 30; // 0.5 in Q31

fn qm(m: i32, s: i32) -> QuantizedMultiplier {
    QuantizedMultiplier::new(m, s).unwrap()
}

#[test]
fn srdhm_golden() {
    // 0.5 · 0.5 = 0.25 = 2^29 in Q31.
    assert_eq!(saturating_rounding_doubling_high_mul(Q30, Q30), 1 << 29);
    // The only overflow: (−1)·(−1) = 1 is not representable in Q31.
    assert_eq!(saturating_rounding_doubling_high_mul(i32::MIN, i32::MIN), i32::MAX);
    // 1 · 0.5 = 0.5, a tie: rounds up to 1.
    assert_eq!(saturating_rounding_doubling_high_mul(1, Q30), 1);
    // −1 · 0.5 = −0.5, a negative tie: rounds up (toward +∞) to 0.
    assert_eq!(saturating_rounding_doubling_high_mul(-1, Q30), 0);
    // ±3 · 0.5 = ±1.5: 2 and −1.
    assert_eq!(saturating_rounding_doubling_high_mul(3, Q30), 2);
    assert_eq!(saturating_rounding_doubling_high_mul(-3, Q30), -1);
    // −2^31 · (2^31−1) / 2^31 = −2^31 + 1 exactly.
    assert_eq!(saturating_rounding_doubling_high_mul(i32::MIN, i32::MAX), i32::MIN + 1);
    // −2^31 · ±1 / 2^31 = ∓1.
    assert_eq!(saturating_rounding_doubling_high_mul(i32::MIN, 1), -1);
    assert_eq!(saturating_rounding_doubling_high_mul(i32::MIN, -1), 1);
}

#[test]
fn rounding_divide_by_pot_golden() {
    // Ties round away from zero.
    assert_eq!(rounding_divide_by_pot(5, 1), 3); // 2.5
    assert_eq!(rounding_divide_by_pot(-5, 1), -3); // −2.5
    assert_eq!(rounding_divide_by_pot(1, 1), 1); // 0.5
    assert_eq!(rounding_divide_by_pot(-1, 1), -1); // −0.5
    assert_eq!(rounding_divide_by_pot(12, 3), 2); // 1.5
    assert_eq!(rounding_divide_by_pot(-12, 3), -2); // −1.5
    assert_eq!(rounding_divide_by_pot(11, 3), 1); // 1.375
    assert_eq!(rounding_divide_by_pot(-11, 3), -1); // −1.375
    assert_eq!(rounding_divide_by_pot(-13, 3), -2); // −1.625
                                                    // Exact quotients and shift 0.
    assert_eq!(rounding_divide_by_pot(-4, 1), -2);
    assert_eq!(rounding_divide_by_pot(i32::MIN, 0), i32::MIN);
    assert_eq!(rounding_divide_by_pot(i32::MAX, 0), i32::MAX);
    // Shift 31: −2^31/2^31 = −1; (2^31−1)/2^31 ≈ 0.99999 → 1; ±2^30/2^31 = ±0.5 → ±1; 1/2^31 → 0.
    assert_eq!(rounding_divide_by_pot(i32::MIN, 31), -1);
    assert_eq!(rounding_divide_by_pot(i32::MAX, 31), 1);
    assert_eq!(rounding_divide_by_pot(1 << 30, 31), 1);
    assert_eq!(rounding_divide_by_pot(-(1 << 30), 31), -1);
    assert_eq!(rounding_divide_by_pot(1, 31), 0);
    // Beyond 31: −2^31/2^32 = −0.5 → −1; anything/2^33 → 0.
    assert_eq!(rounding_divide_by_pot(i32::MIN, 32), -1);
    assert_eq!(rounding_divide_by_pot(i32::MIN, 33), 0);
    assert_eq!(rounding_divide_by_pot(i32::MAX, 200), 0);
}

#[test]
fn multiply_by_quantized_multiplier_golden() {
    // 0.75 · 2^−1 = 0.375; x = 1 → 0.375. Double rounding: SRDHM gives 0.75 → 1, then
    // 1/2 = 0.5 → 1. Single rounding: 0.375 → 0. The two modes differ here.
    let m = qm(3 << 29, -1);
    assert_eq!(multiply_by_quantized_multiplier(1, m, Rounding::Double), 1);
    assert_eq!(multiply_by_quantized_multiplier(1, m, Rounding::Single), 0);
    // 0.5 · 2^−1 = 0.25; x = −6 → −1.5. Double: SRDHM exact −3, then −1.5 → −2 (away from 0).
    // Single: −1.5 rounds half up → −1.
    let m = qm(Q30, -1);
    assert_eq!(multiply_by_quantized_multiplier(-6, m, Rounding::Double), -2);
    assert_eq!(multiply_by_quantized_multiplier(-6, m, Rounding::Single), -1);
    assert_eq!(multiply_by_quantized_multiplier(6, m, Rounding::Double), 2);
    assert_eq!(multiply_by_quantized_multiplier(6, m, Rounding::Single), 2);
    // Left shift: 0.5 · 2^2 = 2; 100 → 200 in both modes.
    let m = qm(Q30, 2);
    assert_eq!(multiply_by_quantized_multiplier(100, m, Rounding::Double), 200);
    assert_eq!(multiply_by_quantized_multiplier(100, m, Rounding::Single), 200);
    // Shift 0, multiplier 0.5: 3 → 1.5 → 2; −3 → −1.5 → −1 (both round half up here).
    let m = qm(Q30, 0);
    assert_eq!(multiply_by_quantized_multiplier(3, m, Rounding::Double), 2);
    assert_eq!(multiply_by_quantized_multiplier(-3, m, Rounding::Double), -1);
    assert_eq!(multiply_by_quantized_multiplier(-3, m, Rounding::Single), -1);
    // INT32_MIN with shift 31 to the right: −2^31 · 0.5 · 2^−31 = −0.5.
    // Double: SRDHM(−2^31, 2^30) = −2^30 exactly; −2^30 / 2^31 = −0.5 → −1.
    // Single: (−2^61 + 2^61) >> 62 = 0.
    let m = qm(Q30, -31);
    assert_eq!(multiply_by_quantized_multiplier(i32::MIN, m, Rounding::Double), -1);
    assert_eq!(multiply_by_quantized_multiplier(i32::MIN, m, Rounding::Single), 0);
    // Saturation where TFLite overflows: 2^31−1 shifted left saturates instead of wrapping.
    let m = qm(i32::MAX, 30);
    assert_eq!(multiply_by_quantized_multiplier(i32::MAX, m, Rounding::Single), i32::MAX);
    assert_eq!(multiply_by_quantized_multiplier(i32::MIN, m, Rounding::Single), i32::MIN);
    // Double: x<<30 saturates to 2^31−1; SRDHM(2^31−1, 2^31−1) = (2^31−1)^2 / 2^31 = 2^31 − 2 + 2^−31 → 2^31 − 2.
    assert_eq!(multiply_by_quantized_multiplier(i32::MAX, m, Rounding::Double), i32::MAX - 1);
}

#[test]
fn quantize_multiplier_golden() {
    // 0.5 = 0.5 · 2^0; 1.0 = 0.5 · 2^1; 0.75 = 0.75 · 2^0.
    assert_eq!(quantize_multiplier(0.5).unwrap(), qm(1 << 30, 0));
    assert_eq!(quantize_multiplier(1.0).unwrap(), qm(1 << 30, 1));
    assert_eq!(quantize_multiplier(0.75).unwrap(), qm(3 << 29, 0));
    // 0.01 = 0.64 · 2^−6; 0.64 · 2^31 = 1374389534.72 → 1374389535.
    assert_eq!(quantize_multiplier(0.01).unwrap(), qm(1_374_389_535, -6));
    // Just below 1: q · 2^31 rounds to 2^31, renormalized to (2^30, 1).
    assert_eq!(quantize_multiplier(1.0 - 1e-12).unwrap(), qm(1 << 30, 1));
    // Too small for any shift: zero. Zero: zero.
    assert_eq!(quantize_multiplier(2f64.powi(-40)).unwrap(), qm(0, 0));
    assert_eq!(quantize_multiplier(0.0).unwrap(), qm(0, 0));
    // Too large, negative, NaN: errors.
    assert!(quantize_multiplier(2f64.powi(31)).is_err());
    assert!(quantize_multiplier(-0.5).is_err());
    assert!(quantize_multiplier(f64::NAN).is_err());
}

#[test]
fn requantize_golden() {
    // acc 1000 · 0.01 = 10, + zero point 5 = 15.
    let m = quantize_multiplier(0.01).unwrap();
    let out = OutputStage::new(5, -128, 127).unwrap();
    assert_eq!(requantize(1000, m, Rounding::Double, out), 15);
    // −1000 · 0.01 − 128 = −138 saturates to −128.
    let out = OutputStage::new(-128, -128, 127).unwrap();
    assert_eq!(requantize(-1000, m, Rounding::Double, out), -128);
    // Fused ReLU6 on uint8 with scale 6/255 would clamp at 255; here clamp [0, 6]: 15 → 6.
    let out = OutputStage::new(5, 0, 6).unwrap();
    assert_eq!(requantize(1000, m, Rounding::Single, out), 6);
    assert!(OutputStage::new(0, 1, 0).is_err());
}

#[test]
fn shift_requantize_golden() {
    let out = OutputStage::new(0, -128, 127).unwrap();
    assert_eq!(shift_requantize(100, -3, out).unwrap(), 13); // 12.5 → 13
    assert_eq!(shift_requantize(-100, -3, out).unwrap(), -13); // −12.5 → −13
    assert_eq!(shift_requantize(-20, -3, out).unwrap(), -3); // −2.5 → −3
    assert_eq!(shift_requantize(-19, -3, out).unwrap(), -2); // −2.375 → −2
    assert_eq!(shift_requantize(100, 4, out).unwrap(), 127); // 1600 saturates
    assert_eq!(shift_requantize(5, 0, out).unwrap(), 5);
    let out = OutputStage::new(-3, -8, 7).unwrap(); // int4 with zero point −3
    assert_eq!(shift_requantize(1000, -31, out).unwrap(), -3);
    assert!(shift_requantize(1, 31, out).is_err());
    assert!(shift_requantize(1, -32, out).is_err());
    assert_eq!(rounding_shift(i32::MIN, 30).unwrap(), i32::MIN);
}

#[test]
fn parameters_are_checked() {
    assert!(QuantizedMultiplier::new(-1, 0).is_err());
    assert!(QuantizedMultiplier::new(1, MAX_SHIFT + 1).is_err());
    assert!(QuantizedMultiplier::new(1, MIN_SHIFT - 1).is_err());
    assert!(QuantizedMultiplier::new(i32::MAX, MAX_SHIFT).is_ok());
}

#[test]
fn packing_golden() {
    // i4: 1 → 0x1 (low nibble), −1 → 0xF (high nibble): 0xF1; 7, −8: 0x87; odd count pads with 0.
    assert_eq!(pack(&[1, -1, 7, -8, 3], Packing::I4).unwrap(), vec![0xF1, 0x87, 0x03]);
    // t2: 0→00, 1→01, −1→11, low bits first: [1, −1, 0, 1] = 01 | 11<<2 | 00<<4 | 01<<6 = 0x4D.
    assert_eq!(pack(&[1, -1, 0, 1], Packing::T2).unwrap(), vec![0x4D]);
    // b1: 1→1, −1→0, LSB first: [1, −1, −1, 1, 1, 1, −1, 1, −1] = 0b1011_1001, then 0.
    assert_eq!(pack(&[1, -1, -1, 1, 1, 1, -1, 1, -1], Packing::B1).unwrap(), vec![0xB9, 0x00]);
    assert_eq!(unpack(&[0xF1, 0x87], 4, Packing::I4).unwrap(), vec![1, -1, 7, -8]);
    assert_eq!(unpack(&[0x4D], 4, Packing::T2).unwrap(), vec![1, -1, 0, 1]);
    assert_eq!(unpack(&[0xB9], 8, Packing::B1).unwrap(), vec![1, -1, -1, 1, 1, 1, -1, 1]);
}

#[test]
fn packing_rejects_bad_input() {
    let e = pack(&[0, 8], Packing::I4).unwrap_err();
    assert_eq!(e.to_string(), "value 8 at index 1 does not fit i4 packing (expected -8..=7)");
    assert!(pack(&[2], Packing::T2).is_err());
    assert!(pack(&[0], Packing::B1).is_err());
    let e = unpack(&[0b10], 1, Packing::T2).unwrap_err();
    assert_eq!(e.to_string(), "cannot unpack t2: invalid code 0b10 for value 0");
    assert!(unpack(&[0], 3, Packing::I4).is_err());
}

#[test]
fn mac_operand_values_per_mode() {
    use crate::fields::{ActType, MacMode};
    assert_eq!(weight_value(MacMode::I8, 0x80), Some(-128));
    assert_eq!(weight_value(MacMode::I4, 0xF8), Some(-8));
    assert_eq!(weight_value(MacMode::I4, 0x08), None); // 8 is not an int4
    assert_eq!(weight_value(MacMode::T2, 0xFF), Some(-1));
    assert_eq!(weight_value(MacMode::T2, 0x02), None);
    assert_eq!(weight_value(MacMode::B1, 0x00), Some(1)); // sign of 0 is +
    assert_eq!(weight_value(MacMode::B1, 0x85), Some(-1));
    assert_eq!(activation_value(MacMode::I8, ActType::U8, 0xFF), 255);
    assert_eq!(activation_value(MacMode::I8, ActType::I8, 0xFF), -1);
    assert_eq!(activation_value(MacMode::Xnor, ActType::I8, 0xFF), -1);
    assert_eq!(activation_value(MacMode::Xnor, ActType::U8, 0xFF), 1);
    // Accumulation wraps like a 32-bit adder: (2^31 − 1) + 1 = −2^31.
    assert_eq!(mac(i32::MAX, 1, 1), i32::MIN);
    assert_eq!(mac(10, -3, 4), -2);
}

#[test]
fn xnor_popcount_golden() {
    // a = [+,+,−,−], w = [+,−,+,−]: products +1, −1, −1, +1 → 0; 2·2 − 4 = 0.
    let a = [0b0011u8];
    let w = [0b0101u8];
    assert_eq!(xnor_popcount(&a.view_bits::<Lsb0>()[..4], &w.view_bits::<Lsb0>()[..4]), 0);
    // All agree over 8: 8.
    assert_eq!(xnor_popcount(&[0xA5u8].view_bits::<Lsb0>()[..8], &[0xA5u8].view_bits::<Lsb0>()[..8]), 8);
    // All disagree over 5: −5.
    assert_eq!(xnor_popcount(&[0x00u8].view_bits::<Lsb0>()[..5], &[0xFFu8].view_bits::<Lsb0>()[..5]), -5);
}

#[test]
fn average_rounds_half_away_from_zero() {
    assert_eq!(average(10, 4), 3); // 2.5 → 3
    assert_eq!(average(-10, 4), -3); // −2.5 → −3
    assert_eq!(average(9, 4), 2); // 2.25
    assert_eq!(average(-9, 4), -2);
    assert_eq!(average(11, 4), 3); // 2.75
    assert_eq!(average(0, 9), 0);
    assert_eq!(average(-128 * 49, 49), -128);
}

#[test]
fn elementwise_golden() {
    // residual_add.s parameters: scales a 0.02, b 0.04, out 0.05; zero points 3, −2, 1.
    // a = 53 → real (53−3)·0.02 = 1.0; b = 23 → (23+2)·0.04 = 1.0; sum 2.0 → 2.0/0.05 = 40 → +1 = 41.
    let p = ElementwiseParams {
        za: 3,
        zb: -2,
        zo: 1,
        left_shift: 20,
        ma: qm(1 << 30, -1),
        mb: qm(1 << 30, 0),
        mo: qm(1_717_986_918, -19),
        out: OutputStage::new(1, -128, 127).unwrap(),
    };
    assert_eq!(add_rescaled(53, 23, &p, false), 41);
    // Difference 0.0 → zero point.
    assert_eq!(add_rescaled(53, 23, &p, true), 1);
    // Saturation: 127 and 127 → (124·0.02 + 129·0.04)/0.05 = 152.8 + 1 → 127.
    assert_eq!(add_rescaled(127, 127, &p, false), 127);
    // MUL: (53−3)·(23+2) = 1250; with mo = 2^−8 (0.5·2^−7): 1250/256 = 4.88 → 5, + 1 = 6.
    let pm = ElementwiseParams { mo: qm(1 << 30, -7), ..p };
    assert_eq!(mul_rescaled(53, 23, &pm), 6);
}

// ---- 128-bit model -------------------------------------------------------------------

fn floor_div(a: i128, b: i128) -> i128 {
    a.div_euclid(b)
}

fn sat32(x: i128) -> i32 {
    x.clamp(i128::from(i32::MIN), i128::from(i32::MAX)) as i32
}

/// round(a·b / 2^31) with ties toward +∞, saturated.
fn model_srdhm(a: i32, b: i32) -> i32 {
    sat32(floor_div(i128::from(a) * i128::from(b) * 2 + (1 << 31), 1i128 << 32))
}

/// round(x / 2^e) with ties away from zero.
fn model_rdbpot(x: i32, e: u32) -> i32 {
    let x = i128::from(x);
    let d = 1i128 << e;
    let q = (x.abs() * 2 + d) / (2 * d); // |x|/d rounded half up
    (x.signum() * q) as i32
}

fn model_mbqm(x: i32, m: i32, shift: i32, rounding: Rounding) -> i32 {
    match rounding {
        Rounding::Double => {
            let left = shift.max(0) as u32;
            let right = (-shift).max(0) as u32;
            let shifted = sat32(i128::from(x) * (1i128 << left));
            model_rdbpot(model_srdhm(shifted, m), right)
        }
        Rounding::Single => {
            let total = 31 - shift;
            sat32(floor_div(i128::from(x) * i128::from(m) * 2 + (1i128 << total), 1i128 << (total + 1)))
        }
    }
}

fn any_rounding() -> impl Strategy<Value = Rounding> {
    prop_oneof![Just(Rounding::Double), Just(Rounding::Single)]
}

fn edge_i32() -> impl Strategy<Value = i32> {
    prop_oneof![any::<i32>(), -1000i32..1000, Just(i32::MIN), Just(i32::MAX), Just(0), Just(1 << 30), Just(-(1 << 30)),]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn requantize_lanes_equal_the_scalar_path(
            lanes in proptest::collection::vec((edge_i32(), edge_i32(), prop_oneof![0..=i32::MAX, Just(i32::MAX), Just(1 << 30)],
                                                MIN_SHIFT..=MAX_SHIFT), 1..24),
            zp in -128i32..=127, lo in -128i32..=0, hi in 0i32..=127) {
        let out = OutputStage::new(zp, lo, hi).expect("valid");
        let acc: Vec<i32> = lanes.iter().map(|l| l.0).collect();
        let bias: Vec<i32> = lanes.iter().map(|l| l.1).collect();
        let qms: Vec<QuantizedMultiplier> = lanes.iter().map(|l| qm(l.2, l.3)).collect();
        let mut got = vec![0; lanes.len()];
        requantize_double_lanes(&acc, &bias, &qms, out, &mut got);
        for i in 0..lanes.len() {
            prop_assert_eq!(got[i], requantize(add_bias(acc[i], bias[i]), qms[i], Rounding::Double, out), "lane {}", i);
        }
    }

    #[test]
    fn shift_requantize_lanes_equal_the_scalar_path(
            lanes in proptest::collection::vec((edge_i32(), edge_i32(), MIN_SHIFT..=MAX_SHIFT), 1..24),
            zp in -128i32..=255, lo in -128i32..=0, hi in 0i32..=255) {
        let out = OutputStage::new(zp, lo, hi).expect("valid");
        let acc: Vec<i32> = lanes.iter().map(|l| l.0).collect();
        let bias: Vec<i32> = lanes.iter().map(|l| l.1).collect();
        let shift: Vec<i32> = lanes.iter().map(|l| l.2).collect();
        let mut got = vec![0; lanes.len()];
        shift_requantize_lanes(&acc, &bias, &shift, out, &mut got);
        for i in 0..lanes.len() {
            let want = shift_requantize(add_bias(acc[i], bias[i]), shift[i], out).expect("valid shift");
            prop_assert_eq!(got[i], want, "lane {}", i);
        }
    }

    #[test]
    fn dot_and_mac_lanes_equal_the_i128_sum_wrapped(acc in edge_i32(),
            pairs in proptest::collection::vec((edge_i32(), -128i32..=255), 0..40)) {
        let (a, w): (Vec<i32>, Vec<i32>) = pairs.iter().copied().unzip();
        // Model: the exact sum in i128, reduced modulo 2^32 (two's complement wrap).
        let exact = i128::from(acc) + pairs.iter().map(|(x, y)| i128::from(*x) * i128::from(*y)).sum::<i128>();
        prop_assert_eq!(dot(acc, &a, &w), exact as u32 as i32);
        let mut lanes = vec![acc; a.len()];
        mac_lanes(&mut lanes, &a, &w);
        for (i, v) in lanes.iter().enumerate() {
            let e = i128::from(acc) + i128::from(a[i]) * i128::from(w[i]);
            prop_assert_eq!(*v, e as u32 as i32);
        }
    }

    #[test]
    fn srdhm_matches_model(a in edge_i32(), b in edge_i32()) {
        prop_assert_eq!(saturating_rounding_doubling_high_mul(a, b), model_srdhm(a, b));
    }

    #[test]
    fn rdbpot_matches_model(x in edge_i32(), e in 0u32..=40) {
        prop_assert_eq!(rounding_divide_by_pot(x, e), model_rdbpot(x, e));
    }

    #[test]
    fn mbqm_matches_model(x in edge_i32(), m in prop_oneof![0..=i32::MAX, Just(i32::MAX), Just(1 << 30)],
                          shift in MIN_SHIFT..=MAX_SHIFT, r in any_rounding()) {
        prop_assert_eq!(multiply_by_quantized_multiplier(x, qm(m, shift), r), model_mbqm(x, m, shift, r));
    }

    #[test]
    fn single_and_double_rounding_differ_by_at_most_one(x in -(1i32 << 24)..(1 << 24),
            m in (1 << 30)..=i32::MAX, shift in -20i32..=0) {
        let a = multiply_by_quantized_multiplier(x, qm(m, shift), Rounding::Double);
        let b = multiply_by_quantized_multiplier(x, qm(m, shift), Rounding::Single);
        prop_assert!((a - b).abs() <= 1, "{a} vs {b}");
    }

    #[test]
    fn mbqm_is_within_one_of_the_real_product(x in -(1i32 << 24)..(1 << 24),
            m in (1 << 30)..=i32::MAX, shift in -20i32..=0, r in any_rounding()) {
        let exact = f64::from(x) * f64::from(m) * 2f64.powi(shift - 31);
        let got = f64::from(multiply_by_quantized_multiplier(x, qm(m, shift), r));
        prop_assert!((got - exact).abs() <= 1.0, "{got} vs {exact}");
    }

    #[test]
    fn shift_requantize_matches_model(acc in edge_i32(), shift in MIN_SHIFT..=MAX_SHIFT,
            zp in -256i32..=255, lo in -256i32..=0, hi in 0i32..=255) {
        let out = OutputStage::new(zp, lo, hi).unwrap();
        let shifted = if shift >= 0 {
            sat32(i128::from(acc) << shift)
        } else {
            model_rdbpot(acc, shift.unsigned_abs())
        };
        let want = (i128::from(shifted) + i128::from(zp)).clamp(i128::from(lo), i128::from(hi)) as i32;
        prop_assert_eq!(shift_requantize(acc, shift, out).unwrap(), want);
    }

    #[test]
    fn quantize_multiplier_is_within_half_an_lsb(real in 1e-9f64..1e8) {
        let q = quantize_multiplier(real).unwrap();
        prop_assert!(q.multiplier() >= 1 << 30, "normalized: {q:?}");
        prop_assert!(((q.to_f64() - real) / real).abs() <= 2f64.powi(-31), "{q:?} for {real}");
    }

    #[test]
    fn pack_unpack_round_trip(vals in proptest::collection::vec(-8i64..=7, 0..64)) {
        let packed = pack(&vals, Packing::I4).unwrap();
        prop_assert_eq!(packed.len(), vals.len().div_ceil(2));
        let back: Vec<i64> = unpack(&packed, vals.len(), Packing::I4).unwrap().into_iter().map(i64::from).collect();
        prop_assert_eq!(back, vals);
    }

    #[test]
    fn ternary_and_binary_round_trip(t in proptest::collection::vec(-1i64..=1, 0..64),
                                     b in proptest::collection::vec(prop_oneof![Just(-1i64), Just(1)], 0..64)) {
        let back: Vec<i64> = unpack(&pack(&t, Packing::T2).unwrap(), t.len(), Packing::T2).unwrap().into_iter().map(i64::from).collect();
        prop_assert_eq!(back, t);
        let back: Vec<i64> = unpack(&pack(&b, Packing::B1).unwrap(), b.len(), Packing::B1).unwrap().into_iter().map(i64::from).collect();
        prop_assert_eq!(back, b);
    }
}
