//! The integer reference executor: runs a [`QModel`] with the NPU's arithmetic
//! (`npu_isa::arith`), in the same order of operations as the hardware — wrapping int32
//! accumulation of raw products, the weight zero-point correction, a saturating bias
//! add, requantization, output zero point and clamp. It is the oracle the compiled
//! programs on the simulator are checked against.

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::{ChannelRequant, QLayer, QModel, QOp, WeightedLayer};
use npu_isa::arith::{self, ElementwiseParams, OutputStage, QuantizedMultiplier};

impl QModel {
    /// Checks the model is one the integer executor and the compiler can run: values
    /// with sane shapes and quantization; layers in topological order, each writing a
    /// value of its own, each output's shape the one its operator infers from its inputs;
    /// every integer parameter within the hardware's ranges. Any model that passes can
    /// be executed and compiled without a panic (a mutation test over `.npuq` files
    /// holds this).
    pub fn validate(&self) -> Result<()> {
        let bad = |l: &QLayer, m: String| Error::Invalid(format!("quantized layer `{}`: {m}", l.name));
        if self.values.is_empty() || self.output >= self.values.len() {
            return Err(Error::Invalid("quantized model: no input value or output index out of range".into()));
        }
        // At most the `tensor_elements` limit (2²⁸ by default, a 16k×16k image of 1,024
        // channels); a larger shape in a model file is corruption unless the limit is raised.
        let limit = npu_data::limits::tensor_elements();
        for v in &self.values {
            let elems = v.shape.iter().try_fold(1usize, |a, d| a.checked_mul(*d)).filter(|n| *n <= limit);
            if v.shape.is_empty() || v.shape.contains(&0) || elems.is_none() {
                return Err(Error::Invalid(format!(
                    "quantized value `{}`: shape {:?} is empty or has more values than {}",
                    v.name,
                    v.shape,
                    npu_data::limits::named("tensor_elements", limit as u64)
                )));
            }
            let (lo, hi) = v.q.dtype.range();
            if !(v.q.scale.is_finite() && v.q.scale > 0.0 && (lo..=hi).contains(&v.q.zero_point)) {
                return Err(Error::Invalid(format!(
                    "quantized value `{}`: scale {} must be finite and positive and zero point {} within {lo}..={hi}",
                    v.name, v.q.scale, v.q.zero_point
                )));
            }
        }
        if self.value_map.iter().flatten().any(|v| *v >= self.values.len()) {
            return Err(Error::Invalid("quantized model: the value map refers to a value that does not exist".into()));
        }
        let mut defined = vec![false; self.values.len()];
        defined[0] = true;
        for l in &self.layers {
            if l.inputs.iter().chain([&l.output]).any(|v| *v >= self.values.len()) {
                return Err(bad(l, "refers to a value that does not exist".into()));
            }
            if let Some(i) = l.inputs.iter().find(|i| !defined[**i]) {
                return Err(bad(l, format!("reads `{}` before any layer writes it", self.values[*i].name)));
            }
            if defined[l.output] {
                return Err(bad(l, format!("writes `{}`, which is already written", self.values[l.output].name)));
            }
            defined[l.output] = true;
            let (tlo, thi) = self.values[l.output].q.dtype.range();
            if l.clamp.0 > l.clamp.1 || l.clamp.0 < tlo || l.clamp.1 > thi {
                return Err(bad(l, format!("clamp {:?} outside the output type's range", l.clamp)));
            }
            let check_m =
                |(m, s): (i32, i32)| QuantizedMultiplier::new(m, s).map(|_| ()).map_err(|e| bad(l, e.to_string()));
            match &l.op {
                QOp::Conv2d { layer, .. } | QOp::Dense { layer } => {
                    self.check_shapes(l).map_err(|m| bad(l, m))?;
                    let (lo, hi) = match layer.bits {
                        super::WeightBits::B8 => (-128, 127),
                        super::WeightBits::B4 => (-8, 7),
                        super::WeightBits::Ternary | super::WeightBits::Binary => (-1, 1),
                    };
                    if let Some(w) = layer.weights.iter().find(|w| **w < lo || **w > hi) {
                        return Err(bad(l, format!("weight {w} outside {lo}..={hi}")));
                    }
                    match &layer.requant {
                        super::Requant::Multiplier(v) | super::Requant::SingleRounding(v) => {
                            v.iter().try_for_each(|m| check_m(*m))?
                        }
                        super::Requant::Shift(v) => {
                            if let Some(s) = v.iter().find(|s| !(arith::MIN_SHIFT..=arith::MAX_SHIFT).contains(*s)) {
                                return Err(bad(l, format!("shift {s} out of range")));
                            }
                        }
                    }
                }
                QOp::Add { ma, mb, mo, .. } | QOp::Sub { ma, mb, mo, .. } => {
                    check_m(*ma)?;
                    check_m(*mb)?;
                    check_m(*mo)?;
                }
                QOp::Mul { mo } => check_m(*mo)?,
                QOp::Lut { table } => {
                    let (a, b) = (self.values[l.inputs[0]].q.dtype, self.values[l.output].q.dtype);
                    let (lo, hi) = b.range();
                    if a.storage() != b.storage() || table.len() != 256 || table.iter().any(|v| !(lo..=hi).contains(v))
                    {
                        return Err(bad(
                            l,
                            format!("a lookup table needs 256 entries of the output's type ({lo}..={hi}), stored as the input is"),
                        ));
                    }
                }
                QOp::Softmax { multiplier, left_shift, diff_min } => {
                    arith::SoftmaxParams::from_raw(*multiplier, *left_shift, *diff_min)
                        .map_err(|e| bad(l, e.to_string()))?;
                    let (a, o) = (self.values[l.inputs[0]].q, self.values[l.output].q);
                    if a.dtype != o.dtype || o.zero_point != o.dtype.range().0 || o.scale != 1.0 / 256.0 {
                        return Err(bad(
                            l,
                            format!(
                                "a softmax's output must be of its input's type with scale 1/256 and zero point {}",
                                a.dtype.range().0
                            ),
                        ));
                    }
                }
                QOp::Pad { value, .. } => {
                    let (lo, hi) = self.values[l.inputs[0]].q.dtype.range();
                    if self.values[l.inputs[0]].q != self.values[l.output].q || !(lo..=hi).contains(value) {
                        return Err(bad(
                            l,
                            format!("padding needs its input's quantization and a fill in {lo}..={hi}"),
                        ));
                    }
                }
                QOp::Concat => {
                    let out = &self.values[l.output];
                    let pixels = |s: &[usize]| s.iter().skip(1).product::<usize>();
                    let mut channels = 0;
                    for &i in &l.inputs {
                        let v = &self.values[i];
                        if v.q != out.q || v.shape.len() != out.shape.len() || pixels(&v.shape) != pixels(&out.shape) {
                            return Err(bad(l, format!("input `{}` cannot be concatenated into the output", v.name)));
                        }
                        channels += v.shape.first().copied().unwrap_or(0);
                    }
                    if out.shape.first() != Some(&channels) {
                        return Err(bad(l, format!("inputs have {channels} channels, the output {:?}", out.shape)));
                    }
                }
                _ => {}
            }
            let inferred = self.infer_shape(l).map_err(|m| bad(l, m))?;
            if inferred != self.values[l.output].shape {
                return Err(bad(
                    l,
                    format!(
                        "its output `{}` has shape {:?}; the operator gives {inferred:?}",
                        self.values[l.output].name, self.values[l.output].shape
                    ),
                ));
            }
        }
        if !defined[self.output] {
            return Err(Error::Invalid(format!(
                "quantized model: no layer writes the output `{}`",
                self.values[self.output].name
            )));
        }
        Ok(())
    }

    /// The output shape of `l` from its inputs' shapes, checking the operator's
    /// constraints (input count and rank, windows that fit, equal shapes to add).
    fn infer_shape(&self, l: &QLayer) -> std::result::Result<Vec<usize>, String> {
        let shape = |i: usize| &self.values[l.inputs[i]].shape;
        let arity = |lo: usize, hi: usize| {
            if l.inputs.len() < lo || l.inputs.len() > hi {
                return Err(format!("takes {lo}..={hi} inputs, has {}", l.inputs.len()));
            }
            Ok(())
        };
        let chw = || match shape(0).as_slice() {
            [c, h, w] => Ok([*c, *h, *w]),
            s => Err(format!("expects a [C, H, W] input, has {s:?}")),
        };
        let window = |h: usize, w: usize, k: [usize; 2], st: [usize; 2], pad: [usize; 4], d: [usize; 2]| match (
            npu_model::ir::window_out(h, pad[0] + pad[2], k[0], st[0], d[0]),
            npu_model::ir::window_out(w, pad[1] + pad[3], k[1], st[1], d[1]),
        ) {
            (Some(oh), Some(ow)) => Ok([oh, ow]),
            _ => Err(format!("the {k:?} window (stride {st:?}, padding {pad:?}) does not fit the {h}×{w} input")),
        };
        match &l.op {
            QOp::Conv2d { stride, pad, dilation, groups, layer } => {
                arity(1, 1)?;
                let [c, h, w] = chw()?;
                let (co, ci) = (layer.shape.first().copied().unwrap_or(0), layer.shape.get(1).copied().unwrap_or(0));
                if layer.shape.len() != 4 || *groups == 0 || co % groups != 0 || ci * groups != c {
                    return Err(format!(
                        "weights {:?} in {groups} groups do not fit the {c}-channel input",
                        layer.shape
                    ));
                }
                let [oh, ow] = window(h, w, [layer.shape[2], layer.shape[3]], *stride, *pad, *dilation)?;
                Ok(vec![co, oh, ow])
            }
            QOp::Dense { layer } => {
                arity(1, 1)?;
                match layer.shape.as_slice() {
                    [o, k] if shape(0).iter().product::<usize>() == *k => Ok(vec![*o]),
                    s => Err(format!("weights {s:?} do not fit the input {:?}", shape(0))),
                }
            }
            QOp::Add { .. } | QOp::Sub { .. } => {
                arity(2, 2)?;
                if broadcast_index(shape(0), shape(1)).is_none() {
                    return Err(format!("adds {:?} to {:?}, which does not broadcast over it", shape(1), shape(0)));
                }
                Ok(shape(0).clone())
            }
            QOp::MaxPool { kernel, stride, pad } | QOp::AvgPool { kernel, stride, pad } => {
                arity(1, 1)?;
                let [c, h, w] = chw()?;
                if pad[0] >= kernel[0] || pad[2] >= kernel[0] || pad[1] >= kernel[1] || pad[3] >= kernel[1] {
                    return Err(format!("padding {pad:?} must be smaller than the {kernel:?} window"));
                }
                let [oh, ow] = window(h, w, *kernel, *stride, *pad, [1, 1])?;
                Ok(vec![c, oh, ow])
            }
            QOp::GlobalAvgPool => {
                arity(1, 1)?;
                let [c, _, _] = chw()?;
                Ok(vec![c, 1, 1])
            }
            QOp::Lut { .. } => {
                arity(1, 1)?;
                Ok(shape(0).to_vec())
            }
            QOp::Softmax { .. } => {
                arity(1, 1)?;
                Ok(shape(0).to_vec())
            }
            QOp::Pad { pads, .. } => {
                arity(1, 1)?;
                let [c, h, w] = chw()?;
                Ok(vec![c, pads[0] + h + pads[2], pads[1] + w + pads[3]])
            }
            QOp::Dilate { stride } => {
                arity(1, 1)?;
                let [c, h, w] = chw()?;
                let dim = |n: usize, s: usize| n.saturating_sub(1).checked_mul(s).and_then(|v| v.checked_add(1));
                match (dim(h, stride[0]), dim(w, stride[1])) {
                    (Some(oh), Some(ow)) if stride[0] > 0 && stride[1] > 0 => Ok(vec![c, oh, ow]),
                    _ => Err(format!("dilates by {stride:?}; strides must be positive and the output's size finite")),
                }
            }
            QOp::ResizeNearest { rows, cols } => {
                arity(1, 1)?;
                let [c, h, w] = chw()?;
                if rows.is_empty() || cols.is_empty() || rows.iter().any(|r| *r >= h) || cols.iter().any(|x| *x >= w) {
                    return Err(format!(
                        "resizes to {}×{} picking rows or columns outside the {h}×{w} input",
                        rows.len(),
                        cols.len()
                    ));
                }
                Ok(vec![c, rows.len(), cols.len()])
            }
            QOp::Transpose { perm } => {
                arity(1, 1)?;
                let s = chw()?;
                let mut seen = [false; 3];
                for &p in perm {
                    if p >= 3 || std::mem::replace(&mut seen[p], true) {
                        return Err(format!("transposes by {perm:?}, not a permutation of the 3 axes"));
                    }
                }
                Ok(vec![s[perm[0]], s[perm[1]], s[perm[2]]])
            }
            QOp::ResizeLinear { rows, cols } => {
                arity(1, 1)?;
                let [c, h, w] = chw()?;
                let bad = |m: &[crate::LerpQ], n: usize| {
                    m.is_empty() || m.iter().any(|l| l.lo >= n || l.hi >= n || !(-1024..=1024).contains(&l.frac))
                };
                if bad(rows, h) || bad(cols, w) {
                    return Err(format!(
                        "resizes to {}×{} interpolating rows or columns outside the {h}×{w} input or with weights outside ±1024",
                        rows.len(),
                        cols.len()
                    ));
                }
                Ok(vec![c, rows.len(), cols.len()])
            }
            QOp::Gather { map } => {
                arity(1, 1)?;
                let x = shape(0);
                let c = x.first().copied().unwrap_or(0);
                if let Some(bad) = map.iter().find(|&&i| i >= c) {
                    return Err(format!("picks channel {bad} of {c}"));
                }
                let mut out = x.clone();
                if let Some(first) = out.first_mut() {
                    *first = map.len();
                }
                Ok(out)
            }
            QOp::Mul { .. } => {
                arity(2, 2)?;
                if broadcast_index(shape(0), shape(1)).is_none() {
                    return Err(format!(
                        "multiplies {:?} by {:?}, which does not broadcast over it",
                        shape(0),
                        shape(1)
                    ));
                }
                Ok(shape(0).clone())
            }
            QOp::Reshape => {
                arity(1, 1)?;
                let out = &self.values[l.output].shape;
                if out.iter().product::<usize>() != shape(0).iter().product::<usize>() {
                    return Err(format!("reshapes {:?} to {out:?}, a different number of elements", shape(0)));
                }
                Ok(out.clone())
            }
            QOp::Concat => {
                arity(1, usize::MAX)?;
                Ok(self.values[l.output].shape.clone())
            }
        }
    }

    /// Checks that a weighted layer's parameter vectors agree with its weight shape and
    /// its input, so that a corrupted model file is an error rather than an index panic.
    fn check_shapes(&self, l: &QLayer) -> std::result::Result<(), String> {
        let (layer, rank, geometry_ok) = match &l.op {
            QOp::Conv2d { layer, stride, dilation, groups, .. } => {
                (layer, 4, *groups > 0 && stride.iter().chain(dilation).all(|v| *v > 0))
            }
            QOp::Dense { layer } => (layer, 2, true),
            _ => return Ok(()),
        };
        if !geometry_ok {
            return Err("zero stride, dilation or groups".into());
        }
        if layer.shape.len() != rank || layer.shape.contains(&0) {
            return Err(format!("weight shape {:?} is not a non-empty rank-{rank} shape", layer.shape));
        }
        let n: usize = layer.shape.iter().product();
        if layer.weights.len() != n {
            return Err(format!("{} weights for shape {:?} ({n} expected)", layer.weights.len(), layer.shape));
        }
        let cout = layer.shape[0];
        let per_channel = |what: &str, len: usize, one_ok: bool| {
            if len == cout || (one_ok && len == 1) {
                Ok(())
            } else {
                Err(format!("{len} {what} entries for {cout} output channels"))
            }
        };
        per_channel("bias", layer.bias.len(), false)?;
        per_channel("weight zero-point", layer.w_zero.len(), false)?;
        per_channel("weight scale", layer.w_scale.len(), true)?;
        let rq = match &layer.requant {
            super::Requant::Multiplier(v) | super::Requant::SingleRounding(v) => v.len(),
            super::Requant::Shift(v) => v.len(),
        };
        per_channel("requantization", rq, true)?;
        let Some(input) = l.inputs.first().map(|i| &self.values[*i].shape) else {
            return Err("has no input".into());
        };
        match &l.op {
            QOp::Conv2d { groups, .. } if input.len() != 3 || input[0] != layer.shape[1] * groups => {
                Err(format!("input shape {input:?} does not match weights {:?} in {groups} groups", layer.shape))
            }
            QOp::Dense { .. } if input.iter().product::<usize>() != layer.shape[1] => {
                Err(format!("input shape {input:?} does not match weights {:?}", layer.shape))
            }
            _ => Ok(()),
        }
    }

    /// Quantizes a preprocessed float input batch with the input's parameters.
    pub fn quantize_input(&self, x: &[f32]) -> Vec<i32> {
        let q = self.values[0].q;
        x.iter().map(|v| q.quantize(*v)).collect()
    }

    /// Runs the integer model on `n` quantized input samples; returns the output
    /// integers (`n` samples of the output value).
    pub fn run_int(&self, input: &[i32], n: usize) -> Result<Vec<i32>> {
        let per_in: usize = self.values[0].shape.iter().product();
        if input.len() != n * per_in {
            return Err(Error::Exec(format!("the model takes {n} × {per_in} input values, got {}", input.len())));
        }
        let per_out: usize = self.values[self.output].shape.iter().product();
        let mut out = vec![0i32; n * per_out];
        out.par_chunks_mut(per_out).zip(input.par_chunks(per_in)).for_each(|(o, x)| {
            let r = self.run_sample(x);
            o.copy_from_slice(&r);
        });
        Ok(out)
    }

    /// Runs one sample and returns every value (index = [`QModel::values`]).
    pub fn run_sample_all(&self, input: &[i32]) -> Vec<Vec<i32>> {
        let mut vals: Vec<Option<Vec<i32>>> = vec![None; self.values.len()];
        vals[0] = Some(input.to_vec());
        for l in &self.layers {
            let out = self.layer(l, &vals);
            vals[l.output] = Some(out);
        }
        vals.into_iter().map(Option::unwrap_or_default).collect()
    }

    /// Runs one sample.
    pub fn run_sample(&self, input: &[i32]) -> Vec<i32> {
        let mut vals: Vec<Option<Vec<i32>>> = vec![None; self.values.len()];
        vals[0] = Some(input.to_vec());
        for l in &self.layers {
            let out = self.layer(l, &vals);
            vals[l.output] = Some(out);
        }
        vals[self.output].take().unwrap_or_default()
    }

    /// Runs layer `k` alone on the integers of its inputs (one slice per input, CHW, in
    /// the order of [`QLayer::inputs`]): what a host CPU running that layer computes.
    pub fn run_layer(&self, k: usize, inputs: &[&[i32]]) -> Result<Vec<i32>> {
        let l = self.layers.get(k).ok_or_else(|| Error::Exec(format!("the model has no layer {k}")))?;
        if inputs.len() != l.inputs.len() {
            return Err(Error::Exec(format!(
                "layer `{}` takes {} inputs, got {}",
                l.name,
                l.inputs.len(),
                inputs.len()
            )));
        }
        let mut vals: Vec<Option<Vec<i32>>> = vec![None; self.values.len()];
        for (&v, x) in l.inputs.iter().zip(inputs) {
            let want: usize = self.values[v].shape.iter().product();
            if x.len() != want {
                return Err(Error::Exec(format!(
                    "input `{}` of layer `{}` has {want} values, got {}",
                    self.values[v].name,
                    l.name,
                    x.len()
                )));
            }
            vals[v] = Some(x.to_vec());
        }
        Ok(self.layer(l, &vals))
    }

    fn layer(&self, l: &QLayer, vals: &[Option<Vec<i32>>]) -> Vec<i32> {
        let x = vals[l.inputs[0]].as_deref().unwrap_or(&[]);
        let xin = &self.values[l.inputs[0]];
        let qo = self.values[l.output].q;
        let clamp = |v: i32| v.clamp(l.clamp.0, l.clamp.1);
        match &l.op {
            QOp::Conv2d { stride, pad, dilation, groups, layer } => {
                let (c, h, w) = (xin.shape[0], xin.shape[1], xin.shape[2]);
                let os = &self.values[l.output].shape;
                conv(
                    x,
                    [c, h, w],
                    os,
                    *stride,
                    *pad,
                    *dilation,
                    *groups,
                    layer,
                    xin.q.zero_point,
                    qo.zero_point,
                    l.clamp,
                    self.scheme.rounding.arith(),
                )
            }
            QOp::Dense { layer } => {
                let o = layer.shape[0];
                let k = layer.shape[1];
                (0..o)
                    .map(|oc| {
                        let wr = &layer.weights[oc * k..(oc + 1) * k];
                        let mut acc = 0i32;
                        let mut sum = 0i32;
                        for (a, wv) in x.iter().zip(wr) {
                            acc = arith::mac(acc, *a, *wv);
                            sum = arith::mac(sum, *a, 1);
                        }
                        let rq = layer.requant.channel(oc, self.scheme.rounding.arith());
                        finish(acc, sum, oc, layer, rq, qo.zero_point, l.clamp)
                    })
                    .collect()
            }
            QOp::Add { left_shift, ma, mb, mo } | QOp::Sub { left_shift, ma, mb, mo } => {
                let y = vals[l.inputs[1]].as_deref().unwrap_or(&[]);
                let qb = self.values[l.inputs[1]].q;
                let mk = |(m, s): (i32, i32)| QuantizedMultiplier::new(m, s).unwrap_or_else(|_| zero_multiplier());
                let p = ElementwiseParams {
                    za: xin.q.zero_point,
                    zb: qb.zero_point,
                    zo: qo.zero_point,
                    left_shift: *left_shift,
                    ma: mk(*ma),
                    mb: mk(*mb),
                    mo: mk(*mo),
                    out: OutputStage { zero_point: qo.zero_point, lo: l.clamp.0, hi: l.clamp.1 },
                };
                let sub = matches!(l.op, QOp::Sub { .. });
                let yshape = &self.values[l.inputs[1]].shape;
                if *yshape == xin.shape {
                    x.iter().zip(y).map(|(a, b)| arith::add_rescaled(*a, *b, &p, sub)).collect()
                } else {
                    let at = broadcast_index(&xin.shape, yshape).unwrap_or_default();
                    x.iter().zip(at).map(|(a, j)| arith::add_rescaled(*a, y[j], &p, sub)).collect()
                }
            }
            QOp::MaxPool { kernel, stride, pad } | QOp::AvgPool { kernel, stride, pad } => {
                let avg = matches!(l.op, QOp::AvgPool { .. });
                let (c, h, w) = (xin.shape[0], xin.shape[1] as isize, xin.shape[2] as isize);
                let os = &self.values[l.output].shape;
                let (oh, ow) = (os[1], os[2]);
                let mut out = Vec::with_capacity(c * oh * ow);
                for ch in 0..c {
                    let plane = &x[ch * (h * w) as usize..(ch + 1) * (h * w) as usize];
                    for oy in 0..oh {
                        for ox in 0..ow {
                            let y0 = (oy * stride[0]) as isize - pad[0] as isize;
                            let x0 = (ox * stride[1]) as isize - pad[1] as isize;
                            let (mut best, mut sum, mut cnt) = (i32::MIN, 0i32, 0i32);
                            for yy in y0.max(0)..(y0 + kernel[0] as isize).min(h) {
                                for xx in x0.max(0)..(x0 + kernel[1] as isize).min(w) {
                                    let v = plane[(yy * w + xx) as usize];
                                    best = best.max(v);
                                    sum += v;
                                    cnt += 1;
                                }
                            }
                            out.push(clamp(if avg { arith::average(sum, cnt) } else { best }));
                        }
                    }
                }
                out
            }
            QOp::GlobalAvgPool => {
                let hw = xin.shape[1] * xin.shape[2];
                x.chunks(hw).map(|p| clamp(arith::average(p.iter().sum(), hw as i32))).collect()
            }
            QOp::Reshape => x.iter().map(|v| clamp(*v)).collect(),
            QOp::Lut { table } => {
                let min = xin.q.dtype.storage().range().0;
                x.iter().map(|v| table[(v - min).clamp(0, 255) as usize]).collect()
            }
            QOp::Mul { mo } => {
                let y = vals[l.inputs[1]].as_deref().unwrap_or(&[]);
                let qb = &self.values[l.inputs[1]];
                let p = ElementwiseParams {
                    za: xin.q.zero_point,
                    zb: qb.q.zero_point,
                    zo: qo.zero_point,
                    left_shift: 0,
                    ma: zero_multiplier(),
                    mb: zero_multiplier(),
                    mo: QuantizedMultiplier::new(mo.0, mo.1).unwrap_or_else(|_| zero_multiplier()),
                    out: OutputStage { zero_point: qo.zero_point, lo: l.clamp.0, hi: l.clamp.1 },
                };
                let at = broadcast_index(&xin.shape, &qb.shape).unwrap_or_default();
                x.iter().zip(at).map(|(a, j)| arith::mul_rescaled(*a, y[j], &p)).collect()
            }
            QOp::Dilate { stride } => {
                let (h, w) = (xin.shape[1], xin.shape[2]);
                let (oh, ow) = ((h - 1) * stride[0] + 1, (w - 1) * stride[1] + 1);
                let mut out = vec![xin.q.zero_point; xin.shape[0] * oh * ow];
                for (p, plane) in x.chunks(h * w).enumerate() {
                    for y in 0..h {
                        for xx in 0..w {
                            out[p * oh * ow + y * stride[0] * ow + xx * stride[1]] = clamp(plane[y * w + xx]);
                        }
                    }
                }
                out
            }
            QOp::ResizeNearest { rows, cols } => {
                let (h, w) = (xin.shape[1], xin.shape[2]);
                let mut out = Vec::with_capacity(xin.shape[0] * rows.len() * cols.len());
                for plane in x.chunks(h * w) {
                    for &r in rows {
                        out.extend(cols.iter().map(|&q| clamp(plane[r * w + q])));
                    }
                }
                out
            }
            QOp::Transpose { perm } => {
                let s = [xin.shape[0], xin.shape[1], xin.shape[2]];
                let strides = [s[1] * s[2], s[2], 1];
                let os = [s[perm[0]], s[perm[1]], s[perm[2]]];
                let mut out = Vec::with_capacity(x.len());
                for a in 0..os[0] {
                    for b in 0..os[1] {
                        for c in 0..os[2] {
                            let at = a * strides[perm[0]] + b * strides[perm[1]] + c * strides[perm[2]];
                            out.push(clamp(x[at]));
                        }
                    }
                }
                out
            }
            QOp::ResizeLinear { rows, cols } => {
                let (h, w) = (xin.shape[1], xin.shape[2]);
                let mut out = Vec::with_capacity(xin.shape[0] * rows.len() * cols.len());
                for plane in x.chunks(h * w) {
                    for r in rows {
                        let (top, bottom) = (&plane[r.lo * w..(r.lo + 1) * w], &plane[r.hi * w..(r.hi + 1) * w]);
                        let (wt, wb) = (i64::from(1024 - r.frac), i64::from(r.frac));
                        out.extend(cols.iter().map(|q| {
                            let (wl, wr) = (i64::from(1024 - q.frac), i64::from(q.frac));
                            let px = |row: &[i32], k: usize| i64::from(row[k]);
                            let sum = px(top, q.lo) * wt * wl
                                + px(bottom, q.lo) * wb * wl
                                + px(top, q.hi) * wt * wr
                                + px(bottom, q.hi) * wb * wr;
                            // TFLite's ResizeBilinearInteger: ÷2²⁰, half away from zero.
                            let half = if sum > 0 { 1 << 19 } else { -(1 << 19) };
                            clamp(((sum + half) / (1 << 20)) as i32)
                        }));
                    }
                }
                out
            }
            QOp::Gather { map } => {
                let plane: usize = xin.shape.iter().skip(1).product();
                map.iter().flat_map(|&c| x[c * plane..(c + 1) * plane].iter().map(|v| clamp(*v))).collect()
            }
            QOp::Softmax { multiplier, left_shift, diff_min } => {
                let Ok(p) = arith::SoftmaxParams::from_raw(*multiplier, *left_shift, *diff_min) else {
                    return vec![qo.dtype.range().0; x.len()];
                };
                let c = xin.shape.first().copied().unwrap_or(1).max(1);
                let plane = x.len() / c;
                let (lo, hi) = qo.dtype.range();
                let mut out = vec![0; x.len()];
                let (mut row, mut res) = (vec![0; c], vec![0; c]);
                for px in 0..plane {
                    for (ch, r) in row.iter_mut().enumerate() {
                        *r = x[ch * plane + px];
                    }
                    arith::softmax(&row, p, lo, hi, &mut res);
                    for (ch, v) in res.iter().enumerate() {
                        out[ch * plane + px] = clamp(*v);
                    }
                }
                out
            }
            QOp::Pad { pads, value } => {
                let (c, h, w) = (xin.shape[0], xin.shape[1], xin.shape[2]);
                let (oh, ow) = (pads[0] + h + pads[2], pads[1] + w + pads[3]);
                let mut out = vec![*value; c * oh * ow];
                for ch in 0..c {
                    for y in 0..h {
                        let from = &x[(ch * h + y) * w..(ch * h + y + 1) * w];
                        let at = (ch * oh + y + pads[0]) * ow + pads[1];
                        out[at..at + w].copy_from_slice(from);
                    }
                }
                out
            }
            // Channel planes one after another (`[C, H, W]` per sample).
            QOp::Concat => {
                l.inputs.iter().flat_map(|&i| vals[i].as_deref().unwrap_or(&[]).iter().map(|v| clamp(*v))).collect()
            }
        }
    }
}

/// For every element of a row-major `out` shape, the index of the element of `b` that
/// NumPy broadcasting pairs with it (shapes right-aligned, `b`'s dimensions equal or 1);
/// `None` when `b` does not broadcast to `out`.
pub fn broadcast_index(out: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    if b.len() > out.len() {
        return None;
    }
    let lead = out.len() - b.len();
    let dims: Vec<usize> = (0..out.len()).map(|i| if i < lead { 1 } else { b[i - lead] }).collect();
    if dims.iter().zip(out).any(|(d, o)| *d != *o && *d != 1) {
        return None;
    }
    // Strides of b in the output's rank; 0 along broadcast dimensions.
    let mut strides = vec![0usize; out.len()];
    let mut s = 1;
    for i in (0..out.len()).rev() {
        strides[i] = if dims[i] == 1 { 0 } else { s };
        s *= dims[i];
    }
    let n: usize = out.iter().product();
    let mut idx = vec![0usize; out.len()];
    let mut at = Vec::with_capacity(n);
    for _ in 0..n {
        at.push(idx.iter().zip(&strides).map(|(i, s)| i * s).sum());
        for d in (0..out.len()).rev() {
            idx[d] += 1;
            if idx[d] < out[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    Some(at)
}

fn zero_multiplier() -> QuantizedMultiplier {
    match QuantizedMultiplier::new(0, 0) {
        Ok(q) => q,
        Err(_) => unreachable!("0 with shift 0 is a valid multiplier"),
    }
}

/// Bias, requantization, zero point and clamp of one accumulator of channel `c`
/// (whose scaling is `rq`); `sum` is the window sum of the raw inputs (for the weight
/// zero-point correction).
#[inline]
fn finish(acc: i32, sum: i32, c: usize, layer: &WeightedLayer, rq: ChannelRequant, zo: i32, clamp: (i32, i32)) -> i32 {
    let zw = layer.w_zero[c];
    let acc = if zw != 0 { arith::mac(acc, sum, zw.wrapping_neg()) } else { acc };
    let acc = arith::add_bias(acc, layer.bias[c]);
    let scaled = rq.apply(acc);
    arith::saturate(i64::from(scaled) + i64::from(zo), clamp.0, clamp.1)
}

#[allow(clippy::too_many_arguments)]
fn conv(
    x: &[i32],
    [c, h, w]: [usize; 3],
    os: &[usize],
    stride: [usize; 2],
    pad: [usize; 4],
    dil: [usize; 2],
    groups: usize,
    layer: &WeightedLayer,
    zin: i32,
    zo: i32,
    clamp: (i32, i32),
    rounding: arith::Rounding,
) -> Vec<i32> {
    let (co, oh, ow) = (os[0], os[1], os[2]);
    // Padded input: taps outside the tile read the input zero point, as the DMA pads.
    let (ph, pw) = (h + pad[0] + pad[2], w + pad[1] + pad[3]);
    let mut padded = vec![zin; c * ph * pw];
    for ch in 0..c {
        for y in 0..h {
            let dst = ch * ph * pw + (y + pad[0]) * pw + pad[1];
            padded[dst..dst + w].copy_from_slice(&x[ch * h * w + y * w..ch * h * w + (y + 1) * w]);
        }
    }
    let geometry = ConvGeometry { c, ph, pw, co, oh, ow, stride, dil, groups };
    let fits16 = |v: &i32| i16::try_from(*v).is_ok();
    let out = if padded.iter().all(fits16) && layer.weights.iter().all(fits16) {
        // Values of 16 bits or fewer (every 8-bit scheme): the same wrapping int32 sums
        // from 16-bit operands, whose products are exact and vectorise twice as wide.
        let padded: Vec<i16> = padded.iter().map(|v| *v as i16).collect();
        let weights: Vec<i16> = layer.weights.iter().map(|v| *v as i16).collect();
        conv_accumulate(&padded, &weights, &geometry, layer)
    } else {
        conv_accumulate(&padded, &layer.weights, &geometry, layer)
    };
    let mut res = Vec::with_capacity(out.len());
    for (oc, chunk) in out.chunks((oh * ow).max(1)).enumerate() {
        let rq = layer.requant.channel(oc, rounding);
        res.extend(chunk.iter().map(|&(acc, sum)| finish(acc, sum, oc, layer, rq, zo, clamp)));
    }
    res
}

/// The shape of a convolution on a padded input.
struct ConvGeometry {
    c: usize,
    ph: usize,
    pw: usize,
    co: usize,
    oh: usize,
    ow: usize,
    stride: [usize; 2],
    dil: [usize; 2],
    groups: usize,
}

/// A convolution's int32 accumulators and raw-input window sums (wrapping, as the
/// MAC array adds), output channel-major, over a padded input of `T` values.
fn conv_accumulate<T: Copy + Default + Into<i32>>(
    padded: &[T],
    weights: &[T],
    g: &ConvGeometry,
    layer: &WeightedLayer,
) -> Vec<(i32, i32)> {
    let (kh, kw) = (layer.shape[2], layer.shape[3]);
    let (cig, cog) = (g.c / g.groups, g.co / g.groups);
    let k = cig * kh * kw;
    let p = g.oh * g.ow;
    let (ph, pw) = (g.ph, g.pw);
    let needs_sum = layer.w_zero.iter().any(|z| *z != 0);
    let mut out = vec![(0i32, 0i32); g.co * p];
    let mut col = vec![T::default(); k * p];
    let mut acc = vec![0i32; p];
    for grp in 0..g.groups {
        for ci in 0..cig {
            let plane = &padded[(grp * cig + ci) * ph * pw..(grp * cig + ci + 1) * ph * pw];
            for ky in 0..kh {
                for kx in 0..kw {
                    let row = &mut col[((ci * kh + ky) * kw + kx) * p..((ci * kh + ky) * kw + kx + 1) * p];
                    for oy in 0..g.oh {
                        let src = (oy * g.stride[0] + ky * g.dil[0]) * pw + kx * g.dil[1];
                        for (ox, r) in row[oy * g.ow..(oy + 1) * g.ow].iter_mut().enumerate() {
                            *r = plane[src + ox * g.stride[1]];
                        }
                    }
                }
            }
        }
        // Window sums of the raw inputs, for the weight zero-point correction.
        let mut sums = vec![0i32; if needs_sum { p } else { 0 }];
        if needs_sum {
            for row in col.chunks(p) {
                for (s, a) in sums.iter_mut().zip(row) {
                    *s = arith::mac(*s, (*a).into(), 1);
                }
            }
        }
        for oc in grp * cog..(grp + 1) * cog {
            acc.iter_mut().for_each(|a| *a = 0);
            let wk = &weights[oc * k..(oc + 1) * k];
            for (kk, &wv) in wk.iter().enumerate() {
                let wv: i32 = wv.into();
                if wv == 0 {
                    continue;
                }
                for (a, v) in acc.iter_mut().zip(&col[kk * p..(kk + 1) * p]) {
                    *a = arith::mac(*a, (*v).into(), wv);
                }
            }
            for (i, a) in acc.iter().enumerate() {
                out[oc * p + i] = (*a, if needs_sum { sums[i] } else { 0 });
            }
        }
    }
    out
}
