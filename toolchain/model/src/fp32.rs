//! The FP32 reference executor: runs a [`Graph`] on a batch, in parallel over chunks
//! of samples (rayon). Convolutions and dense layers go through `matrixmultiply`'s
//! SGEMM (im2col for general convolutions, a direct loop for depthwise ones).

use crate::gemm::{col_major, row_major, sgemm};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::ir::{broadcast, Activation, Graph, Node, Op, Source, Tensor};

/// Samples per parallel work item.
const CHUNK: usize = 16;

/// Runs `graph` on `batch` samples. `inputs[i]` holds `batch` samples of graph input
/// `i`, each of its per-sample shape. Returns one buffer per graph output, `batch`
/// samples each.
pub fn run(graph: &Graph, inputs: &[&[f32]], batch: usize) -> Result<Vec<Vec<f32>>> {
    // `Graph`'s fields are public; the kernels index with its shapes, so they are checked.
    graph.verify()?;
    if inputs.len() != graph.inputs.len() {
        return Err(Error::Exec(format!("the graph has {} inputs, {} given", graph.inputs.len(), inputs.len())));
    }
    for (k, (&id, data)) in graph.inputs.iter().zip(inputs).enumerate() {
        let per: usize = graph.values[id].shape.iter().product();
        if data.len() != per * batch {
            return Err(Error::Exec(format!(
                "input {k} (`{}`) needs {batch} × {per} values, got {}",
                graph.values[id].name,
                data.len()
            )));
        }
    }
    let chunks: Vec<(usize, usize)> = (0..batch).step_by(CHUNK).map(|s| (s, CHUNK.min(batch - s))).collect();
    let results: Vec<Vec<Vec<f32>>> = chunks
        .par_iter()
        .map(|&(start, n)| {
            let slices: Vec<&[f32]> = graph
                .inputs
                .iter()
                .zip(inputs)
                .map(|(&id, d)| {
                    let per: usize = graph.values[id].shape.iter().product();
                    &d[start * per..(start + n) * per]
                })
                .collect();
            run_chunk(graph, &slices, n)
        })
        .collect();
    let mut outs: Vec<Vec<f32>> = graph
        .outputs
        .iter()
        .map(|&o| Vec::with_capacity(batch * graph.values[o].shape.iter().product::<usize>()))
        .collect();
    for r in results {
        for (o, part) in outs.iter_mut().zip(r) {
            o.extend_from_slice(&part);
        }
    }
    Ok(outs)
}

/// Runs the graph on `n` samples held in `inputs` (one slice per graph input).
pub fn run_chunk(graph: &Graph, inputs: &[&[f32]], n: usize) -> Vec<Vec<f32>> {
    let batched = graph.batched();
    let mut env = Env { graph, batched: &batched, vals: vec![None; graph.values.len()] };
    for (&id, d) in graph.inputs.iter().zip(inputs) {
        env.vals[id] = Some(d.to_vec());
    }
    // Free each batched value after its last use.
    let mut last_use = vec![usize::MAX; graph.values.len()];
    for (i, node) in graph.nodes.iter().enumerate() {
        for &v in &node.inputs {
            last_use[v] = i;
        }
    }
    for &o in &graph.outputs {
        last_use[o] = usize::MAX;
    }
    for (i, node) in graph.nodes.iter().enumerate() {
        let out = eval_node(&env, node, if batched[node.output] { n } else { 1 });
        env.vals[node.output] = Some(out);
        for &v in &node.inputs {
            if last_use[v] == i && batched[v] {
                env.vals[v] = None;
            }
        }
    }
    graph.outputs.iter().map(|&o| env.vals[o].take().unwrap_or_default()).collect()
}

/// A node input during evaluation: batched (one block per sample) or fixed (shared by
/// all samples: a constant, or a node computed from constants only).
enum Arg<'a> {
    Act(&'a [f32], &'a [usize]),
    Fixed(&'a [f32], &'a [usize]),
}

/// The values computed so far while running a graph on a chunk of samples.
pub struct Env<'a> {
    /// The graph.
    pub graph: &'a Graph,
    /// Per value: whether it is batched (see [`Graph::batched`]).
    pub batched: &'a [bool],
    /// Per value: its data, once computed (batched values hold `n` samples).
    pub vals: Vec<Option<Vec<f32>>>,
}

fn arg<'a>(env: &'a Env, id: usize) -> Arg<'a> {
    let shape = &env.graph.values[id].shape;
    let data = match &env.graph.values[id].source {
        Source::Const(t) => &t.data[..],
        _ => env.vals[id].as_deref().unwrap_or(&[]),
    };
    if env.batched[id] {
        Arg::Act(data, shape)
    } else {
        Arg::Fixed(data, shape)
    }
}

fn act_of<'a>(env: &'a Env, id: usize) -> (&'a [f32], &'a [usize]) {
    match arg(env, id) {
        Arg::Act(d, s) | Arg::Fixed(d, s) => (d, s),
    }
}

fn konst<'a>(env: &'a Env, id: usize) -> Option<&'a Tensor> {
    env.graph.values[id].constant()
}

/// Evaluates one node on `n` samples (1 for a node of constants only).
pub fn eval_node(env: &Env, node: &Node, n: usize) -> Vec<f32> {
    let graph = env.graph;
    let out_shape = &graph.values[node.output].shape;
    let out_per: usize = out_shape.iter().product();
    match &node.op {
        Op::Conv2d { stride, pad, dilation, groups, act } => {
            let (x, s) = act_of(env, node.inputs[0]);
            let w = konst(env, node.inputs[1]).map_or(&[][..], |t| &t.data[..]);
            let wshape = &graph.values[node.inputs[1]].shape;
            let b = node.inputs.get(2).and_then(|&i| konst(env, i)).map(|t| &t.data[..]);
            let geo = ConvGeom {
                c: s[0],
                h: s[1],
                w: s[2],
                co: wshape[0],
                kh: wshape[2],
                kw: wshape[3],
                oh: out_shape[1],
                ow: out_shape[2],
                stride: *stride,
                pad: *pad,
                dilation: *dilation,
                groups: *groups,
            };
            let mut out = vec![0f32; n * out_per];
            let in_per = s.iter().product::<usize>();
            for smp in 0..n {
                conv2d(
                    &geo,
                    &x[smp * in_per..(smp + 1) * in_per],
                    w,
                    b,
                    *act,
                    &mut out[smp * out_per..(smp + 1) * out_per],
                );
            }
            out
        }
        Op::Dense { act } => {
            let (x, s) = act_of(env, node.inputs[0]);
            let f = s[0];
            let w = konst(env, node.inputs[1]).map_or(&[][..], |t| &t.data[..]);
            let o = out_shape[0];
            let mut out = vec![0f32; n * o];
            // Y[n×o] = X[n×f] · Wᵀ, with W stored [o×f].
            sgemm((n, f, o), 1.0, x, row_major(f), w, col_major(f), 0.0, &mut out, row_major(o));
            let b = node.inputs.get(2).and_then(|&i| konst(env, i)).map(|t| &t.data[..]);
            for row in out.chunks_mut(o) {
                for (j, v) in row.iter_mut().enumerate() {
                    *v = act.apply(*v + b.map_or(0.0, |b| b[j]));
                }
            }
            out
        }
        Op::BatchNorm { eps } => {
            let (x, s) = act_of(env, node.inputs[0]);
            let p: Vec<&[f32]> = (1..5).map(|i| konst(env, node.inputs[i]).map_or(&[][..], |t| &t.data[..])).collect();
            let c = s[0];
            let inner: usize = s[1..].iter().product();
            let (scale, shift): (Vec<f32>, Vec<f32>) = (0..c)
                .map(|ch| {
                    let k = p[0][ch] / (p[3][ch] + eps).sqrt();
                    (k, p[1][ch] - p[2][ch] * k)
                })
                .unzip();
            let mut out = Vec::with_capacity(x.len());
            for (k, block) in x.chunks(inner).enumerate() {
                let ch = k % c;
                out.extend(block.iter().map(|v| v * scale[ch] + shift[ch]));
            }
            out
        }
        // Elementwise activations: `Op::unary`, the definition the quantizer's tables share.
        Op::Relu
        | Op::Clip { .. }
        | Op::LeakyRelu { .. }
        | Op::HardSwish
        | Op::Sigmoid
        | Op::Tanh
        | Op::HardSigmoid { .. }
        | Op::Silu
        | Op::Function { .. } => {
            let op = node.op.clone();
            map(env, node, |v| op.unary(v).unwrap_or(v))
        }
        Op::MaxPool { kernel, stride, pad } => pool(env, node, n, *kernel, *stride, *pad, None),
        Op::AvgPool { kernel, stride, pad, count_include_pad } => {
            pool(env, node, n, *kernel, *stride, *pad, Some(*count_include_pad))
        }
        Op::GlobalAvgPool => {
            let (x, s) = act_of(env, node.inputs[0]);
            let hw = s[1] * s[2];
            x.chunks(hw).map(|c| c.iter().sum::<f32>() / hw as f32).collect()
        }
        Op::Add => binary(env, node, n, |a, b| a + b),
        Op::Mul => binary(env, node, n, |a, b| a * b),
        Op::Concat { axis } => {
            let outer: usize = out_shape[..*axis].iter().product();
            let mut out = Vec::with_capacity(n * out_per);
            let parts: Vec<(&[f32], usize)> = node
                .inputs
                .iter()
                .map(|&i| {
                    let (d, s) = act_of(env, i);
                    (d, s[*axis..].iter().product::<usize>())
                })
                .collect();
            for smp in 0..n {
                for o in 0..outer {
                    for (d, block) in &parts {
                        let per = block * outer;
                        let start = smp * per + o * block;
                        out.extend_from_slice(&d[start..start + block]);
                    }
                }
            }
            out
        }
        Op::Pad { pads, value } => {
            let (x, s) = act_of(env, node.inputs[0]);
            let r = s.len();
            let in_per: usize = s.iter().product();
            let mut out = vec![*value; n * out_per];
            let mut idx = vec![0usize; r];
            for smp in 0..n {
                for (i, v) in x[smp * in_per..(smp + 1) * in_per].iter().enumerate() {
                    let mut rem = i;
                    for d in (0..r).rev() {
                        idx[d] = rem % s[d] + pads[d];
                        rem /= s[d];
                    }
                    let mut o = 0;
                    for d in 0..r {
                        o = o * out_shape[d] + idx[d];
                    }
                    out[smp * out_per + o] = *v;
                }
            }
            out
        }
        Op::Reshape { .. } | Op::Flatten => act_of(env, node.inputs[0]).0.to_vec(),
        Op::Transpose { perm } => {
            let (x, s) = act_of(env, node.inputs[0]);
            let r = s.len();
            // Input strides, taken in output order.
            let mut in_strides = vec![1usize; r];
            for d in (0..r.saturating_sub(1)).rev() {
                in_strides[d] = in_strides[d + 1] * s[d + 1];
            }
            let st: Vec<usize> = perm.iter().map(|&p| in_strides[p]).collect();
            let in_per: usize = s.iter().product();
            let mut out = Vec::with_capacity(n * out_per);
            for smp in 0..n {
                let base = &x[smp * in_per..(smp + 1) * in_per];
                for i in 0..out_per {
                    let (mut rem, mut src) = (i, 0);
                    for d in (0..r).rev() {
                        src += (rem % out_shape[d]) * st[d];
                        rem /= out_shape[d];
                    }
                    out.push(base[src]);
                }
            }
            out
        }
        Op::Dilate { stride } => {
            let (x, s) = act_of(env, node.inputs[0]);
            let (h, w) = (s[1], s[2]);
            let (oh, ow) = (out_shape[1], out_shape[2]);
            let mut out = vec![0.0; n * out_per];
            for (p, plane) in x.chunks(h * w).enumerate() {
                for y in 0..h {
                    for xx in 0..w {
                        out[p * oh * ow + y * stride[0] * ow + xx * stride[1]] = plane[y * w + xx];
                    }
                }
            }
            out
        }
        Op::ResizeNearest { rows, cols } => {
            let (x, s) = act_of(env, node.inputs[0]);
            let (c, h, w) = (s[0], s[1], s[2]);
            let mut out = Vec::with_capacity(n * out_per);
            for plane in x.chunks(h * w).take(n * c) {
                for &r in rows {
                    out.extend(cols.iter().map(|&q| plane[r * w + q]));
                }
            }
            out
        }
        Op::ResizeLinear { rows, cols } => {
            let (x, s) = act_of(env, node.inputs[0]);
            let (c, h, w) = (s[0], s[1], s[2]);
            let mut out = Vec::with_capacity(n * out_per);
            for plane in x.chunks(h * w).take(n * c) {
                for r in rows {
                    let (top, bottom) = (&plane[r.lo * w..(r.lo + 1) * w], &plane[r.hi * w..(r.hi + 1) * w]);
                    out.extend(cols.iter().map(|q| {
                        let at = |row: &[f32]| (1.0 - q.frac) * row[q.lo] + q.frac * row[q.hi];
                        (1.0 - r.frac) * at(top) + r.frac * at(bottom)
                    }));
                }
            }
            out
        }
        Op::Slice { .. } | Op::ChannelShuffle { .. } => {
            let (x, s) = act_of(env, node.inputs[0]);
            let (axis, src) = node.op.gather(s).unwrap_or_default();
            let outer: usize = s[..axis].iter().product();
            let inner: usize = s[axis + 1..].iter().product();
            let in_per: usize = s.iter().product();
            let mut out = Vec::with_capacity(n * out_per);
            for smp in 0..n {
                let base = &x[smp * in_per..(smp + 1) * in_per];
                for o in 0..outer {
                    for &j in &src {
                        let at = (o * s[axis] + j) * inner;
                        out.extend_from_slice(&base[at..at + inner]);
                    }
                }
            }
            out
        }
        Op::DynamicQuantize { asymmetric } => {
            let (x, s) = act_of(env, node.inputs[0]);
            let per = s.iter().product::<usize>().max(1);
            x.chunks(per).flat_map(|smp| dynamic_quantize(smp, *asymmetric).dequantized()).collect()
        }
        Op::Softmax { axis } => {
            let (x, s) = act_of(env, node.inputs[0]);
            let len = s[*axis];
            let inner: usize = s[axis + 1..].iter().product();
            let mut out = x.to_vec();
            for block in out.chunks_mut(len * inner) {
                for i in 0..inner {
                    let mx = (0..len).map(|k| block[k * inner + i]).fold(f32::NEG_INFINITY, f32::max);
                    let mut sum = 0.0;
                    for k in 0..len {
                        let e = (block[k * inner + i] - mx).exp();
                        block[k * inner + i] = e;
                        sum += e;
                    }
                    for k in 0..len {
                        block[k * inner + i] /= sum;
                    }
                }
            }
            out
        }
    }
}

/// One sample quantized as TFLite's hybrid kernels quantize their float inputs
/// ([`Op::DynamicQuantize`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Dynamic {
    /// The int8 values.
    pub q: Vec<i8>,
    /// Their scale (`1` for a sample of zeros).
    pub scale: f32,
    /// Their zero point (`0` when symmetric).
    pub zero_point: i32,
}

impl Dynamic {
    /// `(q − zero_point) · scale`, the values the layer after it multiplies.
    pub fn dequantized(&self) -> Vec<f32> {
        self.q.iter().map(|&q| (i32::from(q) - self.zero_point) as f32 * self.scale).collect()
    }
}

/// Quantizes one sample to int8 from its own range, with the arithmetic of TFLite's
/// `AsymmetricQuantizeFloats` (range widened to include 0, scale `(hi − lo) / 255` in
/// double precision, the zero point from whichever end has the smaller error, rounded half
/// away from zero and held within `[−128, 127]`) or `SymmetricQuantizeFloats` (scale
/// `max|x| / 127`, values within `[−127, 127]`). NaN values are ignored by the range.
pub fn dynamic_quantize(x: &[f32], asymmetric: bool) -> Dynamic {
    let lo = x.iter().copied().fold(f32::INFINITY, f32::min);
    let hi = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let zeros = |n| Dynamic { q: vec![0; n], scale: 1.0, zero_point: 0 };
    let clamp = |v: f32, lo: i32, hi: i32| (v.round() as i32).clamp(lo, hi) as i8;
    if asymmetric {
        let (rmin, rmax) = (f64::from(lo.min(0.0)), f64::from(hi.max(0.0)));
        if rmin == rmax || !(rmax - rmin).is_finite() {
            return zeros(x.len());
        }
        let (qmin, qmax) = (-128.0f64, 127.0f64);
        let scale = (rmax - rmin) / (qmax - qmin);
        let from_min = qmin - rmin / scale;
        let from_max = qmax - rmax / scale;
        let err_min = qmin.abs() + (rmin / scale).abs();
        let err_max = qmax.abs() + (rmax / scale).abs();
        let zp = if err_min < err_max { from_min } else { from_max };
        let zero_point = if zp <= qmin {
            -128
        } else if zp >= qmax {
            127
        } else {
            zp.round() as i32
        };
        let scale = scale as f32;
        let inv = 1.0 / scale;
        let q = x.iter().map(|&v| clamp(zero_point as f32 + v * inv, -128, 127)).collect();
        Dynamic { q, scale, zero_point }
    } else {
        let range = lo.abs().max(hi.abs());
        if range == 0.0 || !range.is_finite() {
            return zeros(x.len());
        }
        let (scale, inv) = (range / 127.0, 127.0 / range);
        let q = x.iter().map(|&v| clamp(v * inv, -127, 127)).collect();
        Dynamic { q, scale, zero_point: 0 }
    }
}

fn map(env: &Env, node: &Node, f: impl Fn(f32) -> f32) -> Vec<f32> {
    act_of(env, node.inputs[0]).0.iter().map(|v| f(*v)).collect()
}

/// Strides of `shape` broadcast to `out` (right-aligned; 0 where broadcast).
fn bstrides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let mut st = vec![0; out.len()];
    let mut acc = 1;
    for d in (0..shape.len()).rev() {
        let od = d + out.len() - shape.len();
        st[od] = if shape[d] == 1 && out[od] != 1 { 0 } else { acc };
        acc *= shape[d];
    }
    st
}

fn binary(env: &Env, node: &Node, n: usize, f: impl Fn(f32, f32) -> f32) -> Vec<f32> {
    let a = arg(env, node.inputs[0]);
    let b = arg(env, node.inputs[1]);
    let parts = |x: &Arg| -> (Vec<usize>, usize, bool) {
        match x {
            Arg::Act(_, s) => (s.to_vec(), s.iter().product(), true),
            Arg::Fixed(_, s) => (s.to_vec(), 0, false),
        }
    };
    let (sa, pa, _) = parts(&a);
    let (sb, pb, _) = parts(&b);
    let out = broadcast(&sa, &sb).unwrap_or_default();
    let per: usize = out.iter().product();
    let data = |x: &Arg| -> Vec<f32> {
        match x {
            Arg::Act(d, _) | Arg::Fixed(d, _) => d.to_vec(),
        }
    };
    let (da, db) = (data(&a), data(&b));
    let mut res = Vec::with_capacity(n * per);
    if sa == out && sb == out {
        for smp in 0..n {
            let (oa, ob) = (smp * pa, smp * pb);
            res.extend((0..per).map(|i| f(da[oa + i], db[ob + i])));
        }
        return res;
    }
    let (ta, tb) = (bstrides(&sa, &out), bstrides(&sb, &out));
    let r = out.len();
    for smp in 0..n {
        let (oa, ob) = (smp * pa, smp * pb);
        for i in 0..per {
            let (mut rem, mut ia, mut ib) = (i, 0, 0);
            for d in (0..r).rev() {
                let k = rem % out[d];
                rem /= out[d];
                ia += k * ta[d];
                ib += k * tb[d];
            }
            res.push(f(da[oa + ia], db[ob + ib]));
        }
    }
    res
}

#[allow(clippy::too_many_arguments)]
fn pool(
    env: &Env,
    node: &Node,
    n: usize,
    k: [usize; 2],
    st: [usize; 2],
    pad: [usize; 4],
    avg: Option<bool>,
) -> Vec<f32> {
    let (x, s) = act_of(env, node.inputs[0]);
    let out = &env.graph.values[node.output].shape;
    let (c, h, w, oh, ow) = (s[0], s[1] as isize, s[2] as isize, out[1], out[2]);
    let mut res = Vec::with_capacity(n * c * oh * ow);
    for plane in x.chunks((h * w) as usize).take(n * c) {
        for oy in 0..oh {
            for ox in 0..ow {
                let y0 = (oy * st[0]) as isize - pad[0] as isize;
                let x0 = (ox * st[1]) as isize - pad[1] as isize;
                let (mut best, mut sum, mut cnt) = (f32::NEG_INFINITY, 0.0f32, 0usize);
                for y in y0.max(0)..(y0 + k[0] as isize).min(h) {
                    for xx in x0.max(0)..(x0 + k[1] as isize).min(w) {
                        let v = plane[(y * w + xx) as usize];
                        best = best.max(v);
                        sum += v;
                        cnt += 1;
                    }
                }
                res.push(match avg {
                    None => best,
                    Some(true) => {
                        // Count padded positions inside the padded input.
                        let ye = (y0 + k[0] as isize).min(h + pad[2] as isize);
                        let xe = (x0 + k[1] as isize).min(w + pad[3] as isize);
                        sum / ((ye - y0) * (xe - x0)) as f32
                    }
                    Some(false) => sum / cnt.max(1) as f32,
                });
            }
        }
    }
    res
}

/// im2col of one group of one sample: `[cig·kh·kw × oh·ow]`.
pub fn im2col(g: &ConvGeom, xg: &[f32], cig: usize, col: &mut [f32]) {
    let p = g.oh * g.ow;
    let (h, w) = (g.h as isize, g.w as isize);
    for ci in 0..cig {
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let row = (ci * g.kh + ky) * g.kw + kx;
                for oy in 0..g.oh {
                    let y = (oy * g.stride[0] + ky * g.dilation[0]) as isize - g.pad[0] as isize;
                    for ox in 0..g.ow {
                        let x = (ox * g.stride[1] + kx * g.dilation[1]) as isize - g.pad[1] as isize;
                        col[row * p + oy * g.ow + ox] = if y >= 0 && y < h && x >= 0 && x < w {
                            xg[ci * g.h * g.w + (y * w + x) as usize]
                        } else {
                            0.0
                        };
                    }
                }
            }
        }
    }
}

/// Geometry of one convolution.
#[derive(Debug, Clone, Copy)]
pub struct ConvGeom {
    /// Input channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output channels.
    pub co: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Output height.
    pub oh: usize,
    /// Output width.
    pub ow: usize,
    /// Stride (rows, columns).
    pub stride: [usize; 2],
    /// Padding (top, left, bottom, right).
    pub pad: [usize; 4],
    /// Dilation (rows, columns).
    pub dilation: [usize; 2],
    /// Groups (channels / groups per group).
    pub groups: usize,
}

/// One convolution of one sample, `x` `[c, h, w]` to `out` `[co, oh, ow]`, with the
/// activation fused; the kernel the FP32 executor and training share. Panics if a
/// slice is shorter than the geometry says (callers derive both from a verified graph).
pub fn conv2d(g: &ConvGeom, x: &[f32], w: &[f32], b: Option<&[f32]>, act: Activation, out: &mut [f32]) {
    let cig = g.c / g.groups;
    let cog = g.co / g.groups;
    let k = cig * g.kh * g.kw;
    let p = g.oh * g.ow;
    let (h, wd) = (g.h as isize, g.w as isize);
    if cig == 1 && cog == 1 {
        // Depthwise: direct loop.
        for ch in 0..g.co {
            let plane = &x[ch * g.h * g.w..(ch + 1) * g.h * g.w];
            let wk = &w[ch * g.kh * g.kw..(ch + 1) * g.kh * g.kw];
            let bias = b.map_or(0.0, |b| b[ch]);
            for oy in 0..g.oh {
                let y0 = (oy * g.stride[0]) as isize - g.pad[0] as isize;
                for ox in 0..g.ow {
                    let x0 = (ox * g.stride[1]) as isize - g.pad[1] as isize;
                    let mut acc = 0.0f32;
                    let inside = y0 >= 0
                        && x0 >= 0
                        && y0 + (((g.kh - 1) * g.dilation[0]) as isize) < h
                        && x0 + (((g.kw - 1) * g.dilation[1]) as isize) < wd;
                    if inside {
                        for ky in 0..g.kh {
                            let row = (y0 as usize + ky * g.dilation[0]) * g.w + x0 as usize;
                            for kx in 0..g.kw {
                                acc += plane[row + kx * g.dilation[1]] * wk[ky * g.kw + kx];
                            }
                        }
                    } else {
                        for ky in 0..g.kh {
                            let y = y0 + (ky * g.dilation[0]) as isize;
                            if y < 0 || y >= h {
                                continue;
                            }
                            for kx in 0..g.kw {
                                let xx = x0 + (kx * g.dilation[1]) as isize;
                                if xx >= 0 && xx < wd {
                                    acc += plane[(y * wd + xx) as usize] * wk[ky * g.kw + kx];
                                }
                            }
                        }
                    }
                    out[ch * p + oy * g.ow + ox] = act.apply(acc + bias);
                }
            }
        }
        return;
    }
    let direct = g.kh == 1 && g.kw == 1 && g.stride == [1, 1] && g.pad == [0; 4];
    let mut col = if direct { Vec::new() } else { vec![0f32; k * p] };
    for grp in 0..g.groups {
        let xg = &x[grp * cig * g.h * g.w..(grp + 1) * cig * g.h * g.w];
        if !direct {
            im2col(g, xg, cig, &mut col);
        }
        let src: &[f32] = if direct { xg } else { &col };
        let wg = &w[grp * cog * k..(grp + 1) * cog * k];
        let og = &mut out[grp * cog * p..(grp + 1) * cog * p];
        // O[cog×p] = W[cog×k] · col[k×p]
        sgemm((cog, k, p), 1.0, wg, row_major(k), src, row_major(p), 0.0, og, row_major(p));
        for oc in 0..cog {
            let bias = b.map_or(0.0, |b| b[grp * cog + oc]);
            for v in &mut og[oc * p..(oc + 1) * p] {
                *v = act.apply(*v + bias);
            }
        }
    }
}

/// Index of the largest value in each row of `n` rows.
pub fn argmax_rows(data: &[f32], n: usize) -> Vec<usize> {
    if n == 0 {
        return Vec::new();
    }
    let per = data.len() / n;
    data.chunks(per.max(1)).map(crate::argmax).collect()
}

#[cfg(test)]
mod tests {
    use super::dynamic_quantize;

    #[test]
    fn asymmetric_dynamic_quantization_follows_tflites_arithmetic() {
        // [0, 2.55]: scale 2.55/255 = 0.01; both ends give zero point −128.
        let d = dynamic_quantize(&[0.0, 1.0, 2.55], true);
        assert_eq!((d.zero_point, d.q.clone()), (-128, vec![-128, -28, 127]));
        assert!((d.scale - 0.01).abs() < 1e-9);
        // [−1, 3]: scale 4/255; zero point −128 + 1/scale = −64.25 → −64;
        // −1 → −127.75 → −128, 0.5 → −32.125 → −32, 3 → 127.25 → 127.
        let d = dynamic_quantize(&[-1.0, 0.5, 3.0], true);
        assert_eq!((d.zero_point, d.q.clone()), (-64, vec![-128, -32, 127]));
        // [−1, 1]: both ends give −0.5, rounded half away from zero (C's `round`) to −1.
        assert_eq!(dynamic_quantize(&[-1.0, 1.0], true).zero_point, -1);
        // Positive values only: the range still includes 0 (zero point −128, 0 exact).
        let d = dynamic_quantize(&[2.0, 4.0], true);
        assert_eq!(d.zero_point, -128);
        assert_eq!(d.dequantized()[1], 4.0);
    }

    #[test]
    fn symmetric_dynamic_quantization_uses_max_abs_over_127() {
        // Range 2: scale 2/127, 1/scale 63.5; 1.0 → 63.5 → 64 (half away from zero).
        let d = dynamic_quantize(&[-2.0, 0.5, 1.0], false);
        assert_eq!((d.zero_point, d.q.clone()), (0, vec![-127, 32, 64]));
        assert!((d.scale - 2.0 / 127.0).abs() < 1e-9);
    }

    #[test]
    fn a_sample_of_zeros_stays_zeros() {
        for asym in [true, false] {
            let d = dynamic_quantize(&[0.0; 4], asym);
            assert_eq!((d.q.clone(), d.scale, d.zero_point), (vec![0; 4], 1.0, 0));
            assert_eq!(d.dequantized(), vec![0.0; 4]);
        }
    }
}
