//! TRANSPOSE_CONV: zero-point insertion, then a stride-1 convolution of the flipped
//! kernel. TFLite's reference kernel scatters `(x − z_in)·w` into an int32 scratch per
//! output, adds the bias and requantizes per channel; gathering the same products over
//! the dilated input (inserted and padded positions read `z_in`, contributing nothing
//! once `z_in·Σw` is folded into the bias) gives the same accumulators, so the same
//! integers.

use super::{act_clamp, multiplier, to_usize, Act, Build, Result, TOp};
use npu_model::ir::{Activation, Op, Tensor};
use npu_quant::{QOp, QParams, Requant, WeightBits, WeightedLayer};

/// TFLite's `ComputePaddingHeightWidth` for a transposed convolution: the padding before
/// the output, computed as for a forward convolution from the output to the input.
pub(crate) fn padding_before(out: usize, k: usize, stride: usize, same: bool) -> usize {
    let n = if same { out.div_ceil(stride) } else { (out + 1).saturating_sub(k).div_ceil(stride) };
    ((n.max(1) - 1) * stride + k).saturating_sub(out) / 2
}

impl Build<'_> {
    pub(crate) fn transpose_conv(
        &mut self,
        k: usize,
        op: &TOp,
        name: &str,
        out_shape: &[usize],
        act: Activation,
        qout: Option<QParams>,
    ) -> Result<()> {
        let x = self.act(k, op, 2)?;
        let x = self.plain(k, op, &x)?;
        let xs = self.shape_of(x.id);
        let (&[c, h, w], &[co, oh, ow]) = (xs.as_slice(), out_shape) else {
            return Err(self.op_err(k, op, format!("input {xs:?} and output {out_shape:?} must be images")));
        };
        let hybrid = op.inputs.get(1).and_then(|&i| self.tensor(i)).is_some_and(|t| {
            qout.is_none() && t.data.is_some() && matches!(t.dtype, super::DType::I8 | super::DType::U8)
        });
        if hybrid {
            return Err(self.op_err(
                k,
                op,
                "int8 weights with float activations (hybrid TRANSPOSE_CONV) are not supported",
            ));
        }
        let (fv, fshape) = self.constant(k, op, 1)?.ok_or_else(|| self.op_err(k, op, "has no filter"))?;
        let &[fo, kh, kw, fi] = fshape.as_slice() else {
            return Err(self.op_err(k, op, format!("filter shape {fshape:?} is not [Cout, kh, kw, Cin]")));
        };
        if fo != co || fi != c {
            return Err(self.op_err(k, op, format!("filter {fshape:?} does not map {c} to {co} channels")));
        }
        let stride = [to_usize(op.opts.stride[0]).unwrap_or(0), to_usize(op.opts.stride[1]).unwrap_or(0)];
        if stride.contains(&0) {
            return Err(self.op_err(k, op, format!("stride {stride:?} must be positive")));
        }
        // The equivalent convolution's padding over the dilated input.
        let (dh, dw) = ((h - 1) * stride[0] + 1, (w - 1) * stride[1] + 1);
        let (pt, pl) =
            (padding_before(oh, kh, stride[0], op.opts.same), padding_before(ow, kw, stride[1], op.opts.same));
        let conv_pad = |p: usize, k: usize, o: usize, d: usize| -> Option<(usize, usize)> {
            let before = (k - 1).checked_sub(p)?;
            let after = (o + k - 1).checked_sub(d + before)?;
            Some((before, after))
        };
        let (Some((t, b)), Some((l, r))) = (conv_pad(pt, kh, oh, dh), conv_pad(pl, kw, ow, dw)) else {
            return Err(self.op_err(k, op, "padding that crops the output is not supported"));
        };
        let pad = [t, l, b, r];
        // [Cout, kh, kw, Cin] → [Cout, Cin, kh, kw], flipped.
        let mut order = Vec::with_capacity(co * c * kh * kw);
        for o in 0..co {
            for i in 0..c {
                for y in 0..kh {
                    for xx in 0..kw {
                        order.push(((o * kh + (kh - 1 - y)) * kw + (kw - 1 - xx)) * c + i);
                    }
                }
            }
        }
        let d = self.add_node(&format!("{name}/dilated"), Op::Dilate { stride }, &[x.id])?;
        let wt = Tensor::new(vec![co, c, kh, kw], order.iter().map(|&j| fv[j]).collect())
            .map_err(|e| self.op_err(k, op, e))?;
        let wid = self.add_const(&format!("{name}/weights"), wt)?;
        let mut ins = vec![d, wid];
        if let Some((bv, _)) = self.constant(k, op, 3)? {
            let bt = Tensor::new(vec![co], bv).map_err(|e| self.op_err(k, op, e))?;
            ins.push(self.add_const(&format!("{name}/bias"), bt)?);
        }
        let conv = Op::Conv2d { stride: [1, 1], pad, dilation: [1, 1], groups: 1, act };
        let id = self.add_node(name, conv, &ins)?;
        if self.shape_of(id) != out_shape {
            return Err(self.op_err(
                k,
                op,
                format!("computed output {:?} differs from {out_shape:?}", self.shape_of(id)),
            ));
        }
        let mut qv = None;
        if let Some(qo) = qout {
            let xq = self.qin(k, op, &x)?;
            let qi = self.qvalues[xq].q;
            let dq = self.add_qvalue(&format!("{name}/dilated"), vec![c, dh, dw], qi);
            self.push_layer(&format!("{name}/dilated"), QOp::Dilate { stride }, vec![xq], dq, qi.dtype.range());
            self.map.push((d, dq));
            let wi = self.ints(k, op, 1)?.unwrap_or_default();
            let weights: Vec<i64> = order.iter().map(|&j| wi[j]).collect();
            let scales = self.weight_scales(k, op, 1, co)?;
            let bias = self.folded_bias_at(k, op, 3, &weights, co, qi.zero_point)?;
            let rq = (0..co)
                .map(|ch| {
                    let sw = f64::from(scales[ch.min(scales.len() - 1)]);
                    multiplier(f64::from(qi.scale) * sw / f64::from(qo.scale), &format!("channel {ch}"))
                        .map_err(|m| self.op_err(k, op, m))
                })
                .collect::<Result<Vec<_>>>()?;
            let layer = WeightedLayer {
                weights: weights.iter().map(|v| *v as i32).collect(),
                shape: vec![co, c, kh, kw],
                bits: WeightBits::B8,
                w_scale: scales,
                w_zero: vec![0; co],
                bias,
                requant: Requant::Multiplier(rq),
            };
            let out = self.add_qvalue(name, out_shape.to_vec(), qo);
            let qop = QOp::Conv2d { stride: [1, 1], pad, dilation: [1, 1], groups: 1, layer };
            self.push_layer(name, qop, vec![dq], out, act_clamp(act, qo));
            qv = Some(out);
        }
        self.set(op, Act { id, qv, hwc_flat: None, pad: None });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::padding_before;

    #[test]
    fn transposed_padding_is_the_forward_convolutions() {
        // SAME, stride 2, 3×3, 4 → 8: forward 8 → 4 pads total (3·2 + 3 − 8) = 1, before 0.
        assert_eq!(padding_before(8, 3, 2, true), 0);
        // SAME, stride 2, 4×4: total (3·2 + 4 − 8) = 2, before 1.
        assert_eq!(padding_before(8, 4, 2, true), 1);
        // VALID, stride 2, 3×3, 4 → 9: no padding.
        assert_eq!(padding_before(9, 3, 2, false), 0);
    }
}
