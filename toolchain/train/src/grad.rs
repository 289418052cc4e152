//! Backward kernels, one per operator. Each takes what the forward pass recorded and
//! the gradient of the output, and returns gradients of inputs and parameters.

use npu_model::gemm::{col_major, row_major, sgemm};
use rayon::prelude::*;

use npu_model::fp32::{im2col, ConvGeom};
use npu_model::ir::{broadcast, Activation};

/// Gradient through a fused activation, from the activation's output `y`.
pub fn activation_backward(act: Activation, y: &[f32], dy: Vec<f32>) -> Vec<f32> {
    match act {
        Activation::None => dy,
        Activation::Relu => y.iter().zip(dy).map(|(y, g)| if *y > 0.0 { g } else { 0.0 }).collect(),
        Activation::Clip { lo, hi } => {
            y.iter().zip(dy).map(|(y, g)| if *y > lo && *y < hi { g } else { 0.0 }).collect()
        }
    }
}

/// Scatter-adds a column matrix back onto one group of one sample (the adjoint of im2col).
fn col2im(g: &ConvGeom, col: &[f32], cig: usize, dxg: &mut [f32]) {
    let p = g.oh * g.ow;
    let (h, w) = (g.h as isize, g.w as isize);
    for ci in 0..cig {
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let row = (ci * g.kh + ky) * g.kw + kx;
                for oy in 0..g.oh {
                    let y = (oy * g.stride[0] + ky * g.dilation[0]) as isize - g.pad[0] as isize;
                    if y < 0 || y >= h {
                        continue;
                    }
                    for ox in 0..g.ow {
                        let x = (ox * g.stride[1] + kx * g.dilation[1]) as isize - g.pad[1] as isize;
                        if x >= 0 && x < w {
                            dxg[ci * g.h * g.w + (y * w + x) as usize] += col[row * p + oy * g.ow + ox];
                        }
                    }
                }
            }
        }
    }
}

/// Convolution backward over a batch: returns (dx, dw, db).
pub(crate) fn conv2d_backward(
    g: &ConvGeom,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    n: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (cig, cog) = (g.c / g.groups, g.co / g.groups);
    let k = cig * g.kh * g.kw;
    let p = g.oh * g.ow;
    let (in_per, out_per) = (g.c * g.h * g.w, g.co * p);
    let wlen = g.co * k;
    let mut dx = vec![0f32; n * in_per];
    let depthwise = cig == 1 && cog == 1;
    // Fixed groups of samples, each summing its own partial dW and db; the partials are
    // then added in group order, so results do not depend on thread scheduling.
    const GROUP: usize = 8;
    let partials: Vec<(Vec<f32>, Vec<f32>)> = dx
        .par_chunks_mut(in_per * GROUP)
        .zip(x.par_chunks(in_per * GROUP))
        .zip(dy.par_chunks(out_per * GROUP))
        .map(|((dxg, xg), dyg)| {
            let mut dw = vec![0f32; wlen];
            let mut db = vec![0f32; g.co];
            let mut scratch = vec![0f32; if depthwise { 0 } else { 2 * k * p }];
            for ((dxs, xs), dys) in dxg.chunks_mut(in_per).zip(xg.chunks(in_per)).zip(dyg.chunks(out_per)) {
                sample_backward(g, xs, w, dys, dxs, &mut dw, &mut db, &mut scratch, depthwise);
            }
            (dw, db)
        })
        .collect();
    let mut dw = vec![0f32; wlen];
    let mut db = vec![0f32; g.co];
    for (pw, pb) in partials {
        dw.iter_mut().zip(pw).for_each(|(a, b)| *a += b);
        db.iter_mut().zip(pb).for_each(|(a, b)| *a += b);
    }
    (dx, dw, db)
}

#[allow(clippy::too_many_arguments)]
fn sample_backward(
    g: &ConvGeom,
    xs: &[f32],
    w: &[f32],
    dys: &[f32],
    dxs: &mut [f32],
    dw: &mut [f32],
    db: &mut [f32],
    scratch: &mut [f32],
    depthwise: bool,
) {
    let (cig, cog) = (g.c / g.groups, g.co / g.groups);
    let k = cig * g.kh * g.kw;
    let p = g.oh * g.ow;
    for (co, d) in db.iter_mut().enumerate() {
        *d += dys[co * p..(co + 1) * p].iter().sum::<f32>();
    }
    if depthwise {
        depthwise_backward(g, xs, w, dys, dxs, dw);
        return;
    }
    // A 1×1 convolution with stride 1 and no padding reads its input as the column
    // matrix itself, and its column gradient is the input gradient.
    let direct = g.kh == 1 && g.kw == 1 && g.stride == [1, 1] && g.pad == [0; 4];
    let (col, dcol) = scratch.split_at_mut(k * p);
    for grp in 0..g.groups {
        let span = grp * cig * g.h * g.w..(grp + 1) * cig * g.h * g.w;
        let xg = &xs[span.clone()];
        if !direct {
            im2col(g, xg, cig, col);
        }
        let colr: &[f32] = if direct { xg } else { col };
        let dyg = &dys[grp * cog * p..(grp + 1) * cog * p];
        let wg = &w[grp * cog * k..(grp + 1) * cog * k];
        let dwg = &mut dw[grp * cog * k..(grp + 1) * cog * k];
        // dW_g[cog×k] += dY_g[cog×p] · colᵀ[p×k]
        sgemm((cog, p, k), 1.0, dyg, row_major(p), colr, col_major(p), 1.0, dwg, row_major(k));
        // dcol[k×p] = W_gᵀ[k×cog] · dY_g[cog×p] (directly into dx for 1×1 convolutions)
        let dxg = &mut dxs[span];
        if direct {
            sgemm((k, cog, p), 1.0, wg, col_major(k), dyg, row_major(p), 1.0, dxg, row_major(p));
        } else {
            sgemm((k, cog, p), 1.0, wg, col_major(k), dyg, row_major(p), 0.0, dcol, row_major(p));
            col2im(g, dcol, cig, dxg);
        }
    }
}

fn depthwise_backward(g: &ConvGeom, x: &[f32], w: &[f32], dy: &[f32], dx: &mut [f32], dw: &mut [f32]) {
    let p = g.oh * g.ow;
    let (h, wd) = (g.h as isize, g.w as isize);
    for ch in 0..g.co {
        let plane = &x[ch * g.h * g.w..(ch + 1) * g.h * g.w];
        let dplane = &mut dx[ch * g.h * g.w..(ch + 1) * g.h * g.w];
        let wk = &w[ch * g.kh * g.kw..(ch + 1) * g.kh * g.kw];
        let dwk = &mut dw[ch * g.kh * g.kw..(ch + 1) * g.kh * g.kw];
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let gy = dy[ch * p + oy * g.ow + ox];
                if gy == 0.0 {
                    continue;
                }
                for ky in 0..g.kh {
                    let y = (oy * g.stride[0] + ky * g.dilation[0]) as isize - g.pad[0] as isize;
                    if y < 0 || y >= h {
                        continue;
                    }
                    for kx in 0..g.kw {
                        let xx = (ox * g.stride[1] + kx * g.dilation[1]) as isize - g.pad[1] as isize;
                        if xx >= 0 && xx < wd {
                            let i = (y * wd + xx) as usize;
                            dwk[ky * g.kw + kx] += gy * plane[i];
                            dplane[i] += gy * wk[ky * g.kw + kx];
                        }
                    }
                }
            }
        }
    }
}

/// Dense backward: x `[n×f]`, w `[o×f]`, dy `[n×o]` → (dx, dw, db).
pub fn dense_backward(
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    n: usize,
    f: usize,
    o: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut dx = vec![0f32; n * f];
    let mut dw = vec![0f32; o * f];
    // dX[n×f] = dY[n×o] · W[o×f]; dW[o×f] = dYᵀ[o×n] · X[n×f]
    sgemm((n, o, f), 1.0, dy, row_major(o), w, row_major(f), 0.0, &mut dx, row_major(f));
    sgemm((o, n, f), 1.0, dy, col_major(o), x, row_major(f), 0.0, &mut dw, row_major(f));
    let mut db = vec![0f32; o];
    for row in dy.chunks(o) {
        db.iter_mut().zip(row).for_each(|(a, b)| *a += b);
    }
    (dx, dw, db)
}

/// BatchNorm backward in training mode (batch statistics): returns (dγ, dβ, dx).
pub fn batchnorm_train_backward(
    xhat: &[f32],
    inv: &[f32],
    gamma: &[f32],
    dy: &[f32],
    c: usize,
    inner: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut dg = vec![0f64; c];
    let mut db = vec![0f64; c];
    for (k, (xb, gb)) in xhat.chunks(inner).zip(dy.chunks(inner)).enumerate() {
        let ch = k % c;
        for (x, g) in xb.iter().zip(gb) {
            dg[ch] += f64::from(x * g);
            db[ch] += f64::from(*g);
        }
    }
    let m = (xhat.len() / c) as f64;
    let mut dx = vec![0f32; dy.len()];
    for (k, ((xb, gb), ob)) in xhat.chunks(inner).zip(dy.chunks(inner)).zip(dx.chunks_mut(inner)).enumerate() {
        let ch = k % c;
        let scale = f64::from(gamma[ch] * inv[ch]) / m;
        for ((x, g), o) in xb.iter().zip(gb).zip(ob.iter_mut()) {
            *o = (scale * (m * f64::from(*g) - db[ch] - f64::from(*x) * dg[ch])) as f32;
        }
    }
    (dg.iter().map(|v| *v as f32).collect(), db.iter().map(|v| *v as f32).collect(), dx)
}

/// BatchNorm backward in inference mode (fixed statistics): returns (dγ, dβ, dx).
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_eval_backward(
    x: &[f32],
    mean: &[f32],
    var: &[f32],
    gamma: &[f32],
    eps: f32,
    dy: &[f32],
    c: usize,
    inner: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let inv: Vec<f32> = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
    let (mut dg, mut db) = (vec![0f32; c], vec![0f32; c]);
    let mut dx = vec![0f32; dy.len()];
    for (k, ((xb, gb), ob)) in x.chunks(inner).zip(dy.chunks(inner)).zip(dx.chunks_mut(inner)).enumerate() {
        let ch = k % c;
        for ((xv, g), o) in xb.iter().zip(gb).zip(ob.iter_mut()) {
            dg[ch] += g * (xv - mean[ch]) * inv[ch];
            db[ch] += g;
            *o = g * gamma[ch] * inv[ch];
        }
    }
    (dg, db, dx)
}

/// Max pooling backward: the gradient goes to the first maximum of each window.
#[allow(clippy::too_many_arguments)]
pub fn maxpool_backward(
    x: &[f32],
    s: &[usize],
    o: &[usize],
    k: [usize; 2],
    st: [usize; 2],
    pad: [usize; 4],
    dy: &[f32],
    n: usize,
) -> Vec<f32> {
    let (h, w) = (s[1] as isize, s[2] as isize);
    let (oh, ow) = (o[1], o[2]);
    let plane = s[1] * s[2];
    let mut dx = vec![0f32; x.len()];
    for (pi, (xp, dxp)) in x.chunks(plane).zip(dx.chunks_mut(plane)).enumerate().take(n * s[0]) {
        for oy in 0..oh {
            for ox in 0..ow {
                let y0 = (oy * st[0]) as isize - pad[0] as isize;
                let x0 = (ox * st[1]) as isize - pad[1] as isize;
                let mut best = (usize::MAX, f32::NEG_INFINITY);
                for yy in y0.max(0)..(y0 + k[0] as isize).min(h) {
                    for xx in x0.max(0)..(x0 + k[1] as isize).min(w) {
                        let i = (yy * w + xx) as usize;
                        if xp[i] > best.1 {
                            best = (i, xp[i]);
                        }
                    }
                }
                if best.0 != usize::MAX {
                    dxp[best.0] += dy[pi * oh * ow + oy * ow + ox];
                }
            }
        }
    }
    dx
}

/// Average pooling backward.
#[allow(clippy::too_many_arguments)]
pub fn avgpool_backward(
    s: &[usize],
    o: &[usize],
    k: [usize; 2],
    st: [usize; 2],
    pad: [usize; 4],
    include_pad: bool,
    dy: &[f32],
    n: usize,
) -> Vec<f32> {
    let (h, w) = (s[1] as isize, s[2] as isize);
    let (oh, ow) = (o[1], o[2]);
    let plane = s[1] * s[2];
    let mut dx = vec![0f32; n * s[0] * plane];
    for (pi, dxp) in dx.chunks_mut(plane).enumerate() {
        for oy in 0..oh {
            for ox in 0..ow {
                let y0 = (oy * st[0]) as isize - pad[0] as isize;
                let x0 = (ox * st[1]) as isize - pad[1] as isize;
                let (ys, ye) = (y0.max(0), (y0 + k[0] as isize).min(h));
                let (xs, xe) = (x0.max(0), (x0 + k[1] as isize).min(w));
                let count = if include_pad {
                    ((y0 + k[0] as isize).min(h + pad[2] as isize) - y0)
                        * ((x0 + k[1] as isize).min(w + pad[3] as isize) - x0)
                } else {
                    (ye - ys) * (xe - xs)
                };
                let gv = dy[pi * oh * ow + oy * ow + ox] / count.max(1) as f32;
                for yy in ys..ye {
                    for xx in xs..xe {
                        dxp[(yy * w + xx) as usize] += gv;
                    }
                }
            }
        }
    }
    dx
}

/// Sums a batched gradient of shape `out` down to a batched operand of shape `target`
/// that was broadcast to it.
pub fn reduce_to(dy: &[f32], out: &[usize], target: &[usize], n: usize) -> Vec<f32> {
    if out == target {
        return dy.to_vec();
    }
    let per_out: usize = out.iter().product();
    let per_t: usize = target.iter().product();
    let shape = broadcast(target, out).unwrap_or_default();
    let r = shape.len();
    let off = r - target.len();
    let mut res = vec![0f32; n * per_t];
    for smp in 0..n {
        for i in 0..per_out {
            let (mut rem, mut ti, mut mul) = (i, 0usize, 1usize);
            for d in (0..r).rev() {
                let k = rem % out[d];
                rem /= out[d];
                if d >= off {
                    let td = target[d - off];
                    ti += if td == 1 { 0 } else { k * mul };
                    mul *= td;
                }
            }
            res[smp * per_t + ti] += dy[smp * per_out + i];
        }
    }
    res
}
