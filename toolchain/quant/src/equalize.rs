//! Cross-layer equalization and high-bias absorption (Nagel et al., "Data-Free
//! Quantization Through Weight Equalization and Bias Correction", ICCV 2019).
//!
//! For two layers in a row, `y = W2·f(W1·x + b1) + b2` with `f` positively homogeneous
//! (ReLU, or nothing), scaling output channel `i` of the first layer by `1/s_i` and input
//! channel `i` of the second by `s_i` leaves `y` unchanged. With `r1_i` and `r2_i` the
//! ranges of those channels' weights, `s_i = √(r1_i·r2_i) / r2_i` makes both ranges equal
//! to `√(r1_i·r2_i)`, which is what per-tensor quantization needs. Pairs are
//! conv→conv, conv→depthwise, depthwise→conv and dense→dense; chains
//! (conv→depthwise→conv) are equalized by iterating over the pairs. ReLU6 is not
//! positively homogeneous; as the paper does, it is replaced by ReLU in equalized pairs.

use std::collections::HashMap;

use crate::error::Result;
use npu_model::ir::{Activation, Graph, Op, Source, ValueId};

struct Pair {
    a: usize,
    b: usize,
}

fn pairs(g: &Graph) -> Vec<Pair> {
    let mut v = Vec::new();
    for (bi, b) in g.nodes.iter().enumerate() {
        if !matches!(b.op, Op::Conv2d { .. } | Op::Dense { .. }) {
            continue;
        }
        let Source::Node(ai) = g.values[b.inputs[0]].source else { continue };
        let a = &g.nodes[ai];
        let act_ok = match &a.op {
            Op::Conv2d { act, .. } | Op::Dense { act } => {
                matches!(act, Activation::None | Activation::Relu)
                    || matches!(act, Activation::Clip { lo, hi } if *lo == 0.0 && *hi == 6.0)
            }
            _ => false,
        };
        let kinds_ok =
            matches!((&a.op, &b.op), (Op::Conv2d { .. }, Op::Conv2d { .. }) | (Op::Dense { .. }, Op::Dense { .. }));
        if act_ok && kinds_ok && g.uses(a.output) == 1 {
            v.push(Pair { a: ai, b: bi });
        }
    }
    v
}

fn data_mut(g: &mut Graph, id: ValueId) -> &mut Vec<f32> {
    match &mut g.values[id].source {
        Source::Const(t) => &mut t.data,
        _ => unreachable!("weights are constants in an optimized graph"),
    }
}

fn data(g: &Graph, id: ValueId) -> &[f32] {
    g.values[id].constant().map_or(&[][..], |t| &t.data[..])
}

/// For the second layer of a pair, the weight indices that read input channel `i`.
fn input_channel_indices(g: &Graph, b: usize, i: usize) -> Vec<usize> {
    let n = &g.nodes[b];
    let shape = &g.values[n.inputs[1]].shape;
    let groups = if let Op::Conv2d { groups, .. } = n.op { groups } else { 1 };
    let co = shape[0];
    let per: usize = shape[1..].iter().product();
    let taps: usize = if shape.len() == 4 { shape[2] * shape[3] } else { 1 };
    let cig = shape[1];
    let cog = co / groups;
    let grp = i / cig;
    let local = i % cig;
    let mut v = Vec::new();
    for o in grp * cog..(grp + 1) * cog {
        for t in 0..taps {
            v.push(o * per + local * taps + t);
        }
    }
    v
}

/// Cross-layer scaling only (the function of the graph is unchanged, up to float
/// rounding, except that equalized ReLU6 become ReLU).
pub fn cross_layer_scale(g: &Graph) -> Result<(Graph, HashMap<String, Vec<f32>>)> {
    let mut g = g.clone();
    let ps = pairs(&g);
    // Cumulative 1/s of every first-layer output channel, by node name.
    let mut scales: HashMap<String, Vec<f32>> = HashMap::new();
    for p in &ps {
        if let Op::Conv2d { act, .. } | Op::Dense { act } = &mut g.nodes[p.a].op {
            if matches!(act, Activation::Clip { .. }) {
                *act = Activation::Relu;
            }
        }
    }
    for _round in 0..16 {
        for p in &ps {
            let (wa, wb) = (g.nodes[p.a].inputs[1], g.nodes[p.b].inputs[1]);
            let ba = g.nodes[p.a].inputs.get(2).copied();
            let ca = g.values[wa].shape[0];
            let per_a = data(&g, wa).len() / ca;
            for i in 0..ca {
                let idx = input_channel_indices(&g, p.b, i);
                let r1 = data(&g, wa)[i * per_a..(i + 1) * per_a].iter().fold(0f32, |m, x| m.max(x.abs()));
                let r2 = idx.iter().map(|&k| data(&g, wb)[k].abs()).fold(0f32, f32::max);
                if r1 <= 0.0 || r2 <= 0.0 {
                    continue;
                }
                let s = (r1 * r2).sqrt() / r2;
                data_mut(&mut g, wa)[i * per_a..(i + 1) * per_a].iter_mut().for_each(|v| *v /= s);
                if let Some(b) = ba {
                    data_mut(&mut g, b)[i] /= s;
                }
                for &k in &idx {
                    data_mut(&mut g, wb)[k] *= s;
                }
                let name = g.nodes[p.a].name.clone();
                let e = scales.entry(name).or_insert_with(|| vec![1.0; ca]);
                e[i] /= s;
            }
        }
    }
    g.verify()?;
    Ok((g, scales))
}

/// Cross-layer equalization followed by high-bias absorption: where BatchNorm told us
/// the first layer's channel `i` is (after ReLU) at least `c_i = max(0, β_i − 3|γ_i|)`
/// almost always, `c_i` moves from its bias into the next layer's bias
/// (`b2 += Σ W2[:, i]·c_i`), shrinking the activation range.
pub fn equalize(raw: &Graph, g: &Graph) -> Result<Graph> {
    let (mut g, scales) = cross_layer_scale(g)?;
    // BatchNorm (β, γ) of each layer's output, by layer name.
    let mut bn: HashMap<String, (Vec<f32>, Vec<f32>)> = HashMap::new();
    for n in &raw.nodes {
        if let Op::BatchNorm { .. } = n.op {
            if let Some(p) = raw.producer(n.inputs[0]) {
                if let (Some(gm), Some(bt)) = (raw.values[n.inputs[1]].constant(), raw.values[n.inputs[2]].constant()) {
                    bn.insert(p.name.clone(), (bt.data.clone(), gm.data.clone()));
                }
            }
        }
    }
    for p in pairs(&g) {
        let a = &g.nodes[p.a];
        let relu = matches!(a.op, Op::Conv2d { act: Activation::Relu, .. } | Op::Dense { act: Activation::Relu });
        let (Some(&ba), Some(&bb)) = (a.inputs.get(2), g.nodes[p.b].inputs.get(2)) else { continue };
        let Some((beta, gamma)) = bn.get(&a.name) else { continue };
        if !relu {
            continue;
        }
        let sc = scales.get(&a.name).cloned().unwrap_or_else(|| vec![1.0; beta.len()]);
        let wb = g.nodes[p.b].inputs[1];
        let ca = beta.len();
        for i in 0..ca {
            let c = (beta[i] * sc[i] - 3.0 * gamma[i].abs() * sc[i]).max(0.0);
            if c <= 0.0 {
                continue;
            }
            data_mut(&mut g, ba)[i] -= c;
            let shape = g.values[wb].shape.clone();
            let per: usize = shape[1..].iter().product();
            for k in input_channel_indices(&g, p.b, i) {
                let o = k / per;
                let w = data(&g, wb)[k];
                data_mut(&mut g, bb)[o] += w * c;
            }
        }
    }
    g.verify()?;
    Ok(g)
}
