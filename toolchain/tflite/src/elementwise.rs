//! Elementwise int8 operators: activations as lookup tables, MUL and channel slices.
//!
//! An int8 activation function reads one byte and writes one byte, so whatever integer
//! algorithm a TFLite kernel uses, its result is a table of 256 entries. The tables here
//! are computed the way the reference kernels compute their outputs, so a [`QOp::Lut`]
//! reproduces them bit for bit:
//!
//! - LOGISTIC and TANH: TFLite's `PopulateLookupTable` (single-precision float: dequantize,
//!   the function, `round(y / s_out) + z_out`, clamped) — the reference kernels look their
//!   int8 outputs up in exactly this table;
//! - HARD_SWISH: the reference kernel's 16-bit fixed-point algorithm run on each of the
//!   256 inputs;
//! - LEAKY_RELU and standalone RELU/RELU6: their requantizations (`MultiplyByQuantizedMultiplier`
//!   with the identity or the alpha multiplier), likewise tabulated;
//! - MUL by a scalar constant: TFLite's MUL arithmetic with the constant fixed.

use super::{act_clamp, multiplier, Act, Build, Result, TOp};
use npu_isa::arith::{self, ElementwiseParams, OutputStage, QuantizedMultiplier, Rounding};
use npu_model::ir::{Activation, Lerp, Op, Step, Tensor};
use npu_quant::{LerpQ, QOp, QParams};

/// TFLite's `PopulateLookupTable` for an 8-bit type: every input integer dequantized,
/// transformed and quantized to the output in single precision, as the kernel does.
pub(crate) fn populate_table(qi: QParams, qo: QParams, f: impl Fn(f32) -> f32) -> Vec<i32> {
    let (lo, hi) = qi.dtype.range();
    let inverse = 1.0 / qo.scale;
    (lo..=hi)
        .map(|v| {
            let x = qi.scale * (v - qi.zero_point) as f32;
            let rescaled = (f(x) * inverse).round();
            // `static_cast<int32_t>(rescaled + zero_point)`: the float sum truncated.
            let q = (rescaled + qo.zero_point as f32) as i32;
            q.clamp(lo, hi)
        })
        .collect()
}

/// gemmlowp's 16-bit `SaturatingRoundingDoublingHighMul`.
fn srdhm16(a: i16, b: i16) -> i16 {
    if a == b && a == i16::MIN {
        return i16::MAX;
    }
    let ab = i32::from(a) * i32::from(b);
    let nudge = if ab >= 0 { 1 << 14 } else { 1 - (1 << 14) };
    ((ab + nudge) / (1 << 15)) as i16
}

/// TFLite's `SaturatingDoublingHighMul` (16-bit, rounding toward zero).
fn sdhm16(a: i16, b: i16) -> i16 {
    if a == b && a == i16::MIN {
        return i16::MAX;
    }
    ((i32::from(a) * i32::from(b)) / (1 << 15)) as i16
}

/// gemmlowp's `RoundingDivideByPOT` on 16 bits.
fn rdbpot16(x: i16, exponent: i32) -> i16 {
    let x = i32::from(x);
    let mask = (1i32 << exponent) - 1;
    let remainder = x & mask;
    let threshold = (mask >> 1) + i32::from(x < 0);
    ((x >> exponent) + i32::from(remainder > threshold)) as i16
}

fn saturating_left_shift16(v: i16, amount: i32) -> i16 {
    (i64::from(v) * (1i64 << amount)).clamp(i64::from(i16::MIN), i64::from(i16::MAX)) as i16
}

/// TFLite's `DownScaleInt32ToInt16Multiplier`.
fn downscale16(m: i32) -> i16 {
    const ROUND: i32 = 1 << 15;
    if m >= i32::MAX - ROUND {
        return i16::MAX;
    }
    ((m + ROUND) >> 16) as i16
}

/// The int8 HARD_SWISH of TFLite's reference kernel (`HardSwishPrepare` and
/// `reference_ops::HardSwish`), one entry per input integer.
pub(crate) fn hard_swish_table(qi: QParams, qo: QParams) -> std::result::Result<Vec<i32>, String> {
    // Prepare, in the kernel's single precision.
    let hires_input_scale = (1.0f32 / 128.0) * qi.scale;
    let reluish_scale = 3.0f32 / 32768.0;
    let out = multiplier(f64::from(hires_input_scale / qo.scale), "HARD_SWISH output multiplier")?;
    let relu = multiplier(f64::from(hires_input_scale / reluish_scale), "HARD_SWISH reluish multiplier")?;
    let (out_m, out_e) = (downscale16(out.0), out.1);
    let (relu_m, relu_e) = (downscale16(relu.0), relu.1);
    if out_e > 0 {
        return Err(format!(
            "HARD_SWISH output multiplier {} is above 1 (TFLite requires the output scale to be at least the input scale / 128)",
            hires_input_scale / qo.scale
        ));
    }
    let (lo, hi) = qi.dtype.range();
    Ok((lo..=hi)
        .map(|v| {
            let input = (v - qi.zero_point) as i16;
            let hires = input.wrapping_mul(1 << 7);
            let preshift_out = srdhm16(hires, out_m);
            let mut reluish = hires;
            if relu_e > 0 {
                reluish = saturating_left_shift16(reluish, relu_e - 1);
            }
            reluish = srdhm16(reluish, relu_m);
            if relu_e > 0 {
                reluish = saturating_left_shift16(reluish, 1);
            }
            if relu_e < 0 {
                reluish = rdbpot16(reluish, -relu_e);
            }
            let reluish = ((i32::from(reluish) + (1 << 15)) >> 1) as i16;
            let preshift = sdhm16(reluish, preshift_out);
            let o = i32::from(rdbpot16(preshift, -out_e)) + qo.zero_point;
            o.clamp(lo, hi)
        })
        .collect())
}

/// An int8 requantization chosen by sign (TFLite's `QuantizeLeakyRelu`; RELU and RELU6
/// are the same with the identity multiplier on both sides and a clamp).
fn requant_table(
    qi: QParams,
    qo: QParams,
    positive: (i32, i32),
    negative: (i32, i32),
    clamp: (i32, i32),
) -> std::result::Result<Vec<i32>, String> {
    let m = |(m, s): (i32, i32)| QuantizedMultiplier::new(m, s).map_err(|e| e.to_string());
    let (pos, neg) = (m(positive)?, m(negative)?);
    let (lo, hi) = qi.dtype.range();
    Ok((lo..=hi)
        .map(|v| {
            let x = v - qi.zero_point;
            let y = arith::multiply_by_quantized_multiplier(x, if x >= 0 { pos } else { neg }, Rounding::Double);
            (qo.zero_point + y).clamp(clamp.0, clamp.1)
        })
        .collect())
}

/// The float graph's operator and the int8 table of one activation operator.
pub(crate) fn activation_table(
    code: i32,
    alpha: f32,
    qi: QParams,
    qo: QParams,
) -> std::result::Result<(Op, Vec<i32>), String> {
    let range = qo.dtype.range();
    let identity = || multiplier(f64::from(qi.scale / qo.scale), "identity multiplier");
    Ok(match code {
        super::LOGISTIC => {
            if qo.scale != 1.0 / 256.0 || qo.zero_point != range.0 {
                return Err(format!(
                    "an 8-bit LOGISTIC output must have scale 1/256 and zero point {} (TFLite's rule); this one has {} and {}",
                    range.0, qo.scale, qo.zero_point
                ));
            }
            (Op::Sigmoid, populate_table(qi, qo, |x| 1.0 / (1.0 + (-x).exp())))
        }
        super::TANH => (Op::Tanh, populate_table(qi, qo, f32::tanh)),
        super::HARD_SWISH => (Op::HardSwish, hard_swish_table(qi, qo)?),
        super::LEAKY_RELU => {
            let a = multiplier(f64::from(qi.scale * alpha / qo.scale), "alpha multiplier")?;
            (Op::LeakyRelu { alpha }, requant_table(qi, qo, identity()?, a, range)?)
        }
        super::RELU | super::RELU6 => {
            let act = if code == super::RELU { Activation::Relu } else { Activation::Clip { lo: 0.0, hi: 6.0 } };
            let clamp = act_clamp(act, qo);
            let op = if code == super::RELU { Op::Relu } else { Op::Clip { lo: 0.0, hi: 6.0 } };
            let m = identity()?;
            (op, requant_table(qi, qo, m, m, clamp)?)
        }
        _ => return Err("not an activation".into()),
    })
}

/// Output shape of `a` broadcast with `b` by NumPy's rules, if `b` broadcasts over `a`.
fn broadcasts_over(a: &[usize], b: &[usize]) -> bool {
    b.len() <= a.len() && b.iter().rev().zip(a.iter().rev()).all(|(x, y)| x == y || *x == 1)
}

impl Build<'_> {
    /// LOGISTIC, TANH, HARD_SWISH, LEAKY_RELU, RELU, RELU6.
    pub(crate) fn activation(
        &mut self,
        k: usize,
        op: &TOp,
        name: &str,
        out_shape: &[usize],
        qout: Option<QParams>,
    ) -> Result<()> {
        let x = self.act(k, op, 0)?;
        let x = self.plain(k, op, &x)?;
        let (fop, table) = match qout {
            Some(qo) => {
                let xq = self.qin(k, op, &x)?;
                let qi = self.qvalues[xq].q;
                if qi.dtype != qo.dtype {
                    return Err(self.op_err(k, op, "input and output types differ"));
                }
                let (fop, table) =
                    activation_table(op.code, op.opts.alpha, qi, qo).map_err(|m| self.op_err(k, op, m))?;
                (fop, Some((xq, qo, table)))
            }
            None => {
                // A float model: only the operator matters (any valid parameters).
                let q = QParams { scale: 1.0 / 256.0, zero_point: -128, dtype: npu_quant::ActType::I8 };
                let (fop, _) = activation_table(op.code, op.opts.alpha, q, q).map_err(|m| self.op_err(k, op, m))?;
                (fop, None)
            }
        };
        let id = self.add_node(name, fop, &[x.id])?;
        let mut qv = None;
        if let Some((xq, qo, table)) = table {
            let out = self.add_qvalue(name, out_shape.to_vec(), qo);
            self.push_layer(name, QOp::Lut { table }, vec![xq], out, qo.dtype.range());
            qv = Some(out);
        }
        self.set(op, Act { id, qv, hwc_flat: x.hwc_flat, pad: None });
        Ok(())
    }

    /// MUL of two activations (either broadcasting over the other) or of an activation
    /// and a scalar constant.
    pub(crate) fn mul(
        &mut self,
        k: usize,
        op: &TOp,
        name: &str,
        out_shape: &[usize],
        act: Activation,
        qout: Option<QParams>,
    ) -> Result<()> {
        let is_act = |i: usize| {
            op.inputs
                .get(i)
                .and_then(|&t| super::to_usize(t))
                .is_some_and(|t| self.acts.get(t).is_some_and(Option::is_some))
        };
        match (is_act(0), is_act(1)) {
            (true, true) => self.mul_activations(k, op, name, out_shape, act, qout),
            (true, false) => self.mul_constant(k, op, 0, 1, name, out_shape, act, qout),
            (false, true) => self.mul_constant(k, op, 1, 0, name, out_shape, act, qout),
            (false, false) => Err(self.op_err(k, op, "multiplies two constants")),
        }
    }

    fn mul_activations(
        &mut self,
        k: usize,
        op: &TOp,
        name: &str,
        out_shape: &[usize],
        act: Activation,
        qout: Option<QParams>,
    ) -> Result<()> {
        let a = self.act(k, op, 0)?;
        let a = self.plain(k, op, &a)?;
        let b = self.act(k, op, 1)?;
        let b = self.plain(k, op, &b)?;
        let (sa, sb) = (self.shape_of(a.id), self.shape_of(b.id));
        // The integer layer broadcasts its second input; the product is symmetric.
        let (a, b) = if broadcasts_over(&sa, &sb) {
            (a, b)
        } else if broadcasts_over(&sb, &sa) {
            (b, a)
        } else {
            return Err(self.op_err(k, op, format!("inputs {sa:?} and {sb:?} do not broadcast (C, H, W order)")));
        };
        if self.shape_of(a.id) != out_shape || (b.hwc_flat.is_some() && b.hwc_flat != a.hwc_flat) {
            return Err(self.op_err(k, op, format!("output {out_shape:?} is not the broadcast of {sa:?} and {sb:?}")));
        }
        let prod = self.add_node(name, Op::Mul, &[a.id, b.id])?;
        let id = self.float_act(name, prod, act)?;
        let mut qv = None;
        if let Some(qo) = qout {
            let (qa, qb) = (self.qin(k, op, &a)?, self.qin(k, op, &b)?);
            let real = f64::from(self.qvalues[qa].q.scale) * f64::from(self.qvalues[qb].q.scale) / f64::from(qo.scale);
            let mo = multiplier(real, "output multiplier").map_err(|m| self.op_err(k, op, m))?;
            let out = self.add_qvalue(name, out_shape.to_vec(), qo);
            self.push_layer(name, QOp::Mul { mo }, vec![qa, qb], out, act_clamp(act, qo));
            qv = Some(out);
        }
        self.set(op, Act { id, qv, hwc_flat: a.hwc_flat, pad: None });
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn mul_constant(
        &mut self,
        k: usize,
        op: &TOp,
        xi: usize,
        ci: usize,
        name: &str,
        out_shape: &[usize],
        act: Activation,
        qout: Option<QParams>,
    ) -> Result<()> {
        let x = self.act(k, op, xi)?;
        let x = self.plain(k, op, &x)?;
        let (vals, _) = self.constant(k, op, ci)?.ok_or_else(|| self.op_err(k, op, "has no second input"))?;
        if vals.len() != 1 {
            return Err(self.op_err(
                k,
                op,
                format!("MUL by a constant of {} elements (a scalar constant is supported)", vals.len()),
            ));
        }
        if self.shape_of(x.id) != out_shape {
            return Err(self.op_err(k, op, "output shape differs from the input's"));
        }
        let c = self.add_const(
            &format!("{name}/constant"),
            Tensor::new(vec![1], vals.clone()).map_err(|e| self.op_err(k, op, e))?,
        )?;
        let prod = self.add_node(name, Op::Mul, &[x.id, c])?;
        let id = self.float_act(name, prod, act)?;
        let mut qv = None;
        if let Some(qo) = qout {
            let xq = self.qin(k, op, &x)?;
            let qi = self.qvalues[xq].q;
            let t = self.tensor(op.inputs[ci]).ok_or_else(|| self.op_err(k, op, "constant tensor missing"))?;
            let qc = self.qparams(t).map_err(|m| self.op_err(k, op, m))?;
            // The constant's integer: its dequantized value back on its own grid.
            let cq = qc.quantize(vals[0]);
            let real = f64::from(qi.scale) * f64::from(qc.scale) / f64::from(qo.scale);
            let mo = multiplier(real, "output multiplier").map_err(|m| self.op_err(k, op, m))?;
            let (lo, hi) = act_clamp(act, qo);
            let p = ElementwiseParams {
                za: qi.zero_point,
                zb: qc.zero_point,
                zo: qo.zero_point,
                left_shift: 0,
                ma: QuantizedMultiplier::new(0, 0).map_err(|e| self.op_err(k, op, e))?,
                mb: QuantizedMultiplier::new(0, 0).map_err(|e| self.op_err(k, op, e))?,
                mo: QuantizedMultiplier::new(mo.0, mo.1).map_err(|e| self.op_err(k, op, e))?,
                out: OutputStage::new(qo.zero_point, lo, hi).map_err(|e| self.op_err(k, op, e))?,
            };
            let (tlo, thi) = qi.dtype.range();
            let table = (tlo..=thi).map(|v| arith::mul_rescaled(v, cq, &p)).collect();
            let out = self.add_qvalue(name, out_shape.to_vec(), qo);
            self.push_layer(name, QOp::Lut { table }, vec![xq], out, qo.dtype.range());
            qv = Some(out);
        }
        self.set(op, Act { id, qv, hwc_flat: x.hwc_flat, pad: None });
        Ok(())
    }

    /// ADD or SUB of an activation and a scalar constant: TFLite's arithmetic with the
    /// constant fixed, tabulated.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn add_sub_constant(
        &mut self,
        k: usize,
        op: &TOp,
        xi: usize,
        ci: usize,
        name: &str,
        out_shape: &[usize],
        act: Activation,
        qout: Option<QParams>,
    ) -> Result<()> {
        let sub = op.code == super::SUB;
        let x = self.act(k, op, xi)?;
        let x = self.plain(k, op, &x)?;
        let (vals, _) = self.constant(k, op, ci)?.ok_or_else(|| self.op_err(k, op, "has no second input"))?;
        if vals.len() != 1 {
            return Err(self.op_err(
                k,
                op,
                format!("ADD/SUB of a constant of {} elements (a scalar constant is supported)", vals.len()),
            ));
        }
        if self.shape_of(x.id) != out_shape {
            return Err(self.op_err(k, op, "output shape differs from the input's"));
        }
        // Float graph: x + c, x − c, or c − x.
        let c = if sub && xi == 0 { -vals[0] } else { vals[0] };
        let steps = if sub && xi == 1 {
            vec![Step::Const(c), Step::X, Step::Sub]
        } else {
            vec![Step::X, Step::Const(c), Step::Add]
        };
        let f = self.add_node(name, Op::Function { name: "Function".into(), steps }, &[x.id])?;
        let id = self.float_act(name, f, act)?;
        let mut qv = None;
        if let Some(qo) = qout {
            let xq = self.qin(k, op, &x)?;
            let qi = self.qvalues[xq].q;
            let t = self.tensor(op.inputs[ci]).ok_or_else(|| self.op_err(k, op, "constant tensor missing"))?;
            let qc = self.qparams(t).map_err(|m| self.op_err(k, op, m))?;
            let cq = qc.quantize(vals[0]);
            // Inputs in the file's order.
            let (q0, q1) = if xi == 0 { (qi, qc) } else { (qc, qi) };
            let twice = f64::from(2.0 * q0.scale.max(q1.scale));
            let ls = 20u32;
            let m = |r: f64, w: &str| {
                multiplier(r, w)
                    .and_then(|(m, s)| QuantizedMultiplier::new(m, s).map_err(|e| e.to_string()))
                    .map_err(|e| self.op_err(k, op, e))
            };
            let (lo, hi) = act_clamp(act, qo);
            let p = ElementwiseParams {
                za: q0.zero_point,
                zb: q1.zero_point,
                zo: qo.zero_point,
                left_shift: ls,
                ma: m(f64::from(q0.scale) / twice, "first input")?,
                mb: m(f64::from(q1.scale) / twice, "second input")?,
                mo: m(twice / f64::from((1u32 << ls) as f32 * qo.scale), "output")?,
                out: OutputStage::new(qo.zero_point, lo, hi).map_err(|e| self.op_err(k, op, e))?,
            };
            let (tlo, thi) = qi.dtype.range();
            let table = (tlo..=thi)
                .map(
                    |v| if xi == 0 { arith::add_rescaled(v, cq, &p, sub) } else { arith::add_rescaled(cq, v, &p, sub) },
                )
                .collect();
            let out = self.add_qvalue(name, out_shape.to_vec(), qo);
            self.push_layer(name, QOp::Lut { table }, vec![xq], out, qo.dtype.range());
            qv = Some(out);
        }
        self.set(op, Act { id, qv, hwc_flat: x.hwc_flat, pad: None });
        Ok(())
    }

    /// STRIDED_SLICE along channels (or along the elements of a `[1, N]` vector), other
    /// axes whole.
    pub(crate) fn strided_slice(
        &mut self,
        k: usize,
        op: &TOp,
        name: &str,
        out_shape: &[usize],
        qout: Option<QParams>,
    ) -> Result<()> {
        let x = self.act(k, op, 0)?;
        let x = self.plain(k, op, &x)?;
        if x.hwc_flat.is_some() {
            return Err(self.op_err(k, op, "slices a flattened spatial tensor"));
        }
        let dims: Vec<i64> =
            self.tensor(op.inputs[0]).map(|t| t.shape.iter().map(|d| i64::from(*d)).collect()).unwrap_or_default();
        let ints = |i: usize| -> Result<Vec<i64>> {
            self.ints(k, op, i)?.ok_or_else(|| self.op_err(k, op, format!("input {i} must be a constant")))
        };
        let (begin, end) = (ints(1)?, ints(2)?);
        let strides = if op.inputs.len() > 3 { ints(3)? } else { vec![1; dims.len()] };
        let o = &op.opts;
        if o.ellipsis_mask != 0 || o.new_axis_mask != 0 || o.shrink_axis_mask != 0 || o.offset {
            return Err(self.op_err(k, op, "ellipsis, new-axis, shrink-axis masks and offset are not supported"));
        }
        if begin.len() != dims.len() || end.len() != dims.len() || strides.len() != dims.len() {
            return Err(self.op_err(k, op, format!("begin/end/strides must have {} entries", dims.len())));
        }
        let mut picked = Vec::new();
        for (d, &n) in dims.iter().enumerate() {
            let s = strides[d];
            if s <= 0 {
                return Err(self.op_err(k, op, format!("stride {s} on axis {d} (positive strides are supported)")));
            }
            let norm = |v: i64| if v < 0 { v + n } else { v }.clamp(0, n);
            let b = if o.begin_mask >> d & 1 == 1 { 0 } else { norm(begin[d]) };
            let e = if o.end_mask >> d & 1 == 1 { n } else { norm(end[d]) };
            let idx: Vec<usize> = (b..e).step_by(s as usize).map(|v| v as usize).collect();
            let whole = idx.len() as i64 == n;
            let last = d + 1 == dims.len();
            if !whole && !last {
                return Err(self.op_err(
                    k,
                    op,
                    format!("slices axis {d} of {dims:?}; slices along the last (channel) axis are supported"),
                ));
            }
            if last {
                picked = idx;
            }
        }
        if picked.is_empty() {
            return Err(self.op_err(k, op, "the slice is empty"));
        }
        let xs = self.shape_of(x.id);
        let mut expect = xs.clone();
        expect[0] = picked.len();
        if expect != out_shape {
            return Err(self.op_err(k, op, format!("output {out_shape:?} is not the slice {expect:?}")));
        }
        let step = if picked.len() > 1 { picked[1] - picked[0] } else { 1 };
        let slice = Op::Slice { axis: 0, start: picked[0], end: picked[picked.len() - 1] + 1, step };
        let id = self.add_node(name, slice, &[x.id])?;
        let mut qv = None;
        if let Some(qo) = qout {
            let xq = self.qin(k, op, &x)?;
            self.same_q(k, op, xq, qo)?;
            let out = self.add_qvalue(name, out_shape.to_vec(), qo);
            self.push_layer(name, QOp::Gather { map: picked }, vec![xq], out, qo.dtype.range());
            qv = Some(out);
        }
        self.set(op, Act { id, qv, hwc_flat: None, pad: None });
        Ok(())
    }
}

/// TFLite's `GetNearestNeighbor`: the input index of each of `out` positions along an
/// axis of `len` (single precision, as the reference kernel computes it).
pub(crate) fn nearest_neighbor(len: usize, out: usize, align_corners: bool, half_pixel_centers: bool) -> Vec<usize> {
    let scale = if align_corners && out > 1 { (len - 1) as f32 / (out - 1) as f32 } else { len as f32 / out as f32 };
    let offset = if half_pixel_centers { 0.5f32 } else { 0.0 };
    (0..out)
        .map(|i| {
            let v = (i as f32 + offset) * scale;
            let v = if align_corners { v.round() } else { v.floor() } as i64;
            v.clamp(0, len as i64 - 1) as usize
        })
        .collect()
}

/// TFLite's float RESIZE_BILINEAR along an axis of `len` resized to `out`
/// (`ComputeInterpolationValues`): the scaled coordinate between its floor, clamped at 0,
/// and its ceiling, clamped at the last position, weighted by the distance from the floor.
pub(crate) fn bilinear_float(len: usize, out: usize, align_corners: bool, half_pixel_centers: bool) -> Vec<Lerp> {
    let scale = if align_corners && out > 1 { (len - 1) as f32 / (out - 1) as f32 } else { len as f32 / out as f32 };
    (0..out)
        .map(|i| {
            let v = if half_pixel_centers { (i as f32 + 0.5) * scale - 0.5 } else { i as f32 * scale };
            let lo = (v.floor() as i64).clamp(0, len as i64 - 1);
            let hi = (v.ceil() as i64).clamp(0, len as i64 - 1);
            Lerp { lo: lo as usize, hi: hi as usize, frac: v - lo as f32 }
        })
        .collect()
}

/// TFLite's integer RESIZE_BILINEAR along an axis of `len` resized to `out`
/// (`ComputeInterpolationValuesInteger`): 10-bit fixed-point coordinates, the weight of
/// the upper position in 1/1024 (C++'s truncating division, as the kernel computes it).
pub(crate) fn bilinear_integer(len: usize, out: usize, align_corners: bool, half_pixel_centers: bool) -> Vec<LerpQ> {
    let (len_i, out_i) = (len as i64, out as i64);
    let scale_10 = if align_corners && out > 1 {
        ((1 << 10) * (len_i - 1) + (out_i - 1) / 2) / (out_i - 1)
    } else {
        ((1 << 10) * len_i + out_i / 2) / out_i
    };
    (0..out_i)
        .map(|i| {
            let v = if half_pixel_centers { i * scale_10 + scale_10 / 2 - (1 << 9) } else { i * scale_10 };
            // `/` truncates toward zero in Rust as in C++.
            let lo = (v / (1 << 10)).max(0);
            let hi = ((v + (1 << 10) - 1) / (1 << 10)).min(len_i - 1);
            LerpQ { lo: lo as usize, hi: hi as usize, frac: (v - (1 << 10) * lo) as i32 }
        })
        .collect()
}

/// MIRROR_PAD's source index of each position of an axis of `n` padded by `before` and
/// `after`: REFLECT excludes the border pixel, SYMMETRIC repeats it.
pub(crate) fn mirror_map(n: usize, before: usize, after: usize, symmetric: bool) -> Option<Vec<usize>> {
    let (n, b, a, s) = (n as i64, before as i64, after as i64, i64::from(symmetric));
    if b > n - 1 + s || a > n - 1 + s {
        return None;
    }
    Some(
        (-b..n + a)
            .map(|i| {
                (if i < 0 {
                    -i - s
                } else if i >= n {
                    2 * n - 2 + s - i
                } else {
                    i
                }) as usize
            })
            .collect(),
    )
}

impl Build<'_> {
    /// MIRROR_PAD of H and W: a gather of rows and columns (same quantization in and out).
    pub(crate) fn mirror_pad(
        &mut self,
        k: usize,
        op: &TOp,
        name: &str,
        out_shape: &[usize],
        qout: Option<QParams>,
    ) -> Result<()> {
        let x = self.act(k, op, 0)?;
        let x = self.plain(k, op, &x)?;
        let xs = self.shape_of(x.id);
        let p = self.ints(k, op, 1)?.ok_or_else(|| self.op_err(k, op, "has no paddings"))?;
        let (&[_, h, w], true) = (xs.as_slice(), p.len() == 8) else {
            return Err(self.op_err(k, op, "MIRROR_PAD is supported on [1, H, W, C] tensors with [4, 2] paddings"));
        };
        if p[0] != 0 || p[1] != 0 || p[6] != 0 || p[7] != 0 || p.iter().any(|v| *v < 0) {
            return Err(self.op_err(k, op, format!("paddings {p:?}: only non-negative H and W padding is supported")));
        }
        let sym = op.opts.symmetric;
        let (Some(rows), Some(cols)) =
            (mirror_map(h, p[2] as usize, p[3] as usize, sym), mirror_map(w, p[4] as usize, p[5] as usize, sym))
        else {
            return Err(self.op_err(k, op, format!("paddings {p:?} exceed what mirroring {h}×{w} allows")));
        };
        if [xs[0], rows.len(), cols.len()] != out_shape {
            return Err(self.op_err(k, op, format!("output {out_shape:?} is not the padded input")));
        }
        self.gather_pixels(k, op, name, &x, rows, cols, out_shape, qout)
    }

    /// RESIZE_NEAREST_NEIGHBOR: an exact gather of pixels (same quantization in and out).
    pub(crate) fn resize_nearest(
        &mut self,
        k: usize,
        op: &TOp,
        name: &str,
        out_shape: &[usize],
        qout: Option<QParams>,
    ) -> Result<()> {
        let x = self.act(k, op, 0)?;
        let x = self.plain(k, op, &x)?;
        let [h, w, oh, ow] = self.resize_sizes(k, op, &self.shape_of(x.id), out_shape)?;
        let (ac, hp) = (op.opts.align_corners, op.opts.half_pixel_centers);
        let rows = nearest_neighbor(h, oh, ac, hp);
        let cols = nearest_neighbor(w, ow, ac, hp);
        self.gather_pixels(k, op, name, &x, rows, cols, out_shape, qout)
    }

    /// RESIZE_BILINEAR: TFLite's integer interpolation of four pixels (same quantization
    /// in and out), which the host CPU runs; the float graph follows the float kernel.
    pub(crate) fn resize_bilinear(
        &mut self,
        k: usize,
        op: &TOp,
        name: &str,
        out_shape: &[usize],
        qout: Option<QParams>,
    ) -> Result<()> {
        let x = self.act(k, op, 0)?;
        let x = self.plain(k, op, &x)?;
        let [h, w, oh, ow] = self.resize_sizes(k, op, &self.shape_of(x.id), out_shape)?;
        let (ac, hp) = (op.opts.align_corners, op.opts.half_pixel_centers);
        let ir = Op::ResizeLinear { rows: bilinear_float(h, oh, ac, hp), cols: bilinear_float(w, ow, ac, hp) };
        let qop = QOp::ResizeLinear { rows: bilinear_integer(h, oh, ac, hp), cols: bilinear_integer(w, ow, ac, hp) };
        self.data_movement(k, op, name, &x, ir, qop, out_shape, qout)
    }

    /// TRANSPOSE of an image `[1, H, W, C]` keeping the batch first: a permutation of the
    /// `[C, H, W]` axes (same quantization in and out), which the host CPU runs.
    pub(crate) fn transpose(
        &mut self,
        k: usize,
        op: &TOp,
        name: &str,
        out_shape: &[usize],
        qout: Option<QParams>,
    ) -> Result<()> {
        let x = self.act(k, op, 0)?;
        let x = self.plain(k, op, &x)?;
        let xs = self.shape_of(x.id);
        let p = self.ints(k, op, 1)?.ok_or_else(|| self.op_err(k, op, "has no constant permutation"))?;
        let (&[_, _, _], &[0, p1, p2, p3]) = (xs.as_slice(), p.as_slice()) else {
            return Err(self.op_err(
                k,
                op,
                format!("permutation {p:?} of {xs:?}: images [1, H, W, C] with the batch kept first are supported"),
            ));
        };
        // TFLite's axes 1, 2, 3 (H, W, C) are npu's 1, 2, 0; the output's (H', W', C') are
        // the input's axes p1, p2, p3, so npu's output (C', H', W') takes (p3, p1, p2).
        let ours = |a: i64| match a {
            1 => Some(1),
            2 => Some(2),
            3 => Some(0),
            _ => None,
        };
        let (Some(c), Some(h), Some(w)) = (ours(p3), ours(p1), ours(p2)) else {
            return Err(self.op_err(k, op, format!("permutation {p:?} is not one of the axes 0..4 with 0 first")));
        };
        let perm = [c, h, w];
        if [xs[perm[0]], xs[perm[1]], xs[perm[2]]] != out_shape || {
            let mut s = perm;
            s.sort_unstable();
            s != [0, 1, 2]
        } {
            return Err(self.op_err(k, op, format!("permutation {p:?} of {xs:?} does not give {out_shape:?}")));
        }
        self.data_movement(
            k,
            op,
            name,
            &x,
            Op::Transpose { perm: perm.to_vec() },
            QOp::Transpose { perm },
            out_shape,
            qout,
        )
    }

    /// Output pixel `(y, x)` = input pixel `(rows[y], cols[x])` (same quantization in and
    /// out): resizes, mirror padding, Keras's UpSampling2D.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn gather_pixels(
        &mut self,
        k: usize,
        op: &TOp,
        name: &str,
        x: &Act,
        rows: Vec<usize>,
        cols: Vec<usize>,
        out_shape: &[usize],
        qout: Option<QParams>,
    ) -> Result<()> {
        let ir = Op::ResizeNearest { rows: rows.clone(), cols: cols.clone() };
        self.data_movement(k, op, name, x, ir, QOp::ResizeNearest { rows, cols }, out_shape, qout)
    }

    /// An operator that only moves or mixes an image's values with the same quantization
    /// in and out: `ir` in the float graph and, for an int8 model, `qop` as its layer.
    #[allow(clippy::too_many_arguments)]
    fn data_movement(
        &mut self,
        k: usize,
        op: &TOp,
        name: &str,
        x: &Act,
        ir: Op,
        qop: QOp,
        out_shape: &[usize],
        qout: Option<QParams>,
    ) -> Result<()> {
        let id = self.add_node(name, ir, &[x.id])?;
        let mut qv = None;
        if let Some(qo) = qout {
            let xq = self.qin(k, op, x)?;
            self.same_q(k, op, xq, qo)?;
            let out = self.add_qvalue(name, out_shape.to_vec(), qo);
            self.push_layer(name, qop, vec![xq], out, qo.dtype.range());
            qv = Some(out);
        }
        self.set(op, Act { id, qv, hwc_flat: None, pad: None });
        Ok(())
    }

    /// The sizes of a resize of `[C, H, W]` `xs` to `out_shape`: `(h, w, oh, ow)`, channels
    /// kept and every size in 1..=65536.
    fn resize_sizes(&self, k: usize, op: &TOp, xs: &[usize], out_shape: &[usize]) -> Result<[usize; 4]> {
        let (&[c, h, w], &[oc, oh, ow]) = (xs, out_shape) else {
            return Err(self.op_err(k, op, format!("resizes {xs:?} to {out_shape:?} (images [1, H, W, C] expected)")));
        };
        let size = 1..=1 << 16;
        if c != oc || ![h, w, oh, ow].iter().all(|n| size.contains(n)) {
            return Err(self.op_err(
                k,
                op,
                format!("resizes {xs:?} to {out_shape:?}: channels must stay, sizes in 1..=65536"),
            ));
        }
        Ok([h, w, oh, ow])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use npu_quant::ActType;

    fn q(scale: f32, zero_point: i32) -> QParams {
        QParams { scale, zero_point, dtype: ActType::I8 }
    }

    #[test]
    fn logistic_table_is_the_rounded_sigmoid() {
        // Input scale 1/16, zero point 0: entry v is round(256·σ(v/16)) − 128.
        let t = populate_table(q(1.0 / 16.0, 0), q(1.0 / 256.0, -128), |x| 1.0 / (1.0 + (-x).exp()));
        assert_eq!(t[128], 0); // σ(0) = 1/2 → 128 − 128
        assert_eq!(t[0], -128); // σ(−8) = 0.000335 → 0.086 → 0
        assert_eq!(t[255], 127); // σ(127/16) · 256 = 255.9 → 256, clamped
        assert_eq!(t[128 + 16], (256.0f64 / (1.0 + (-1.0f64).exp())).round() as i32 - 128);
        // σ(1)
    }

    #[test]
    fn hard_swish_table_follows_x_relu6_x_plus_3_over_6() {
        // Input scale 0.05 (−6.4..6.35), output scale 0.05: the fixed-point table is
        // within one step of the real function everywhere and exact at the corners.
        let (qi, qo) = (q(0.05, 0), q(0.05, 0));
        let t = hard_swish_table(qi, qo).unwrap();
        for (i, v) in t.iter().enumerate() {
            let x = (i as f64 - 128.0) * 0.05;
            let want = x * (x + 3.0).clamp(0.0, 6.0) / 6.0 / 0.05;
            assert!((f64::from(*v) - want).abs() <= 1.0, "x = {x}: {v} vs {want}");
        }
        assert_eq!(t[128], 0); // 0
        assert_eq!(t[128 - 60], 0); // x = −3
        assert_eq!(t[128 + 100], 100); // x = 5 ≥ 3: identity
    }

    #[test]
    fn leaky_relu_table_scales_negatives_by_alpha() {
        let (op, t) = activation_table(super::super::LEAKY_RELU, 0.25, q(0.1, 0), q(0.1, 0)).unwrap();
        assert_eq!(op, Op::LeakyRelu { alpha: 0.25 });
        assert_eq!(t[128 + 40], 40);
        assert_eq!(t[128 - 40], -10);
        assert_eq!(t[128 - 2], -1); // −0.5 rounds away from zero
    }

    #[test]
    fn nearest_neighbor_follows_tflites_coordinate_rules() {
        // 3 → 6, plain: floor(i/2); align_corners: round(i·2/5); half-pixel: floor((i+.5)/2).
        assert_eq!(nearest_neighbor(3, 6, false, false), [0, 0, 1, 1, 2, 2]);
        assert_eq!(nearest_neighbor(3, 6, true, false), [0, 0, 1, 1, 2, 2]);
        assert_eq!(nearest_neighbor(4, 3, true, false), [0, 2, 3]); // round(1.5) = 2
        assert_eq!(nearest_neighbor(4, 6, false, true), [0, 1, 1, 2, 3, 3]);
    }

    #[test]
    fn bilinear_integer_coordinates_follow_tflites_fixed_point_rules() {
        // 2 → 4 with half-pixel centers: scale_10 = (2048 + 2) / 4 = 512; coordinates
        // 512·y + 256 − 512 = −256, 256, 768, 1280 (C++ division truncates toward zero).
        let l = |lo, hi, frac| LerpQ { lo, hi, frac };
        assert_eq!(bilinear_integer(2, 4, false, true), [l(0, 0, -256), l(0, 1, 256), l(0, 1, 768), l(1, 1, 256)]);
        // 3 → 5 with align_corners: scale_10 = (2048 + 2) / 4 = 512: 0, 512, 1024, 1536, 2048.
        assert_eq!(
            bilinear_integer(3, 5, true, false),
            [l(0, 0, 0), l(0, 1, 512), l(1, 1, 0), l(1, 2, 512), l(2, 2, 0)]
        );
        // Float: 2 → 4 half-pixel: (i + .5)/2 − .5 = −.25, .25, .75, 1.25.
        let f = bilinear_float(2, 4, false, true);
        assert_eq!((f[0].lo, f[0].hi, f[0].frac), (0, 0, -0.25));
        assert_eq!((f[3].lo, f[3].hi, f[3].frac), (1, 1, 0.25));
    }

    #[test]
    fn mirror_padding_reflects_or_repeats_the_border() {
        // [a b c] padded 2 before, 1 after: REFLECT c b | a b c | b; SYMMETRIC b a | a b c | c.
        assert_eq!(mirror_map(3, 2, 1, false).unwrap(), [2, 1, 0, 1, 2, 1]);
        assert_eq!(mirror_map(3, 2, 1, true).unwrap(), [1, 0, 0, 1, 2, 2]);
        assert!(mirror_map(3, 3, 0, false).is_none());
    }

    #[test]
    fn hard_swish_rejects_an_output_scale_finer_than_tflite_allows() {
        let e = hard_swish_table(q(1.0, 0), q(1e-4, 0)).unwrap_err();
        assert!(e.contains("HARD_SWISH"), "{e}");
    }
}
