//! Graph-to-graph passes. Each takes a graph and returns a new, verified one whose
//! outputs equal the input graph's (within float rounding).

use std::collections::HashMap;

use crate::error::Result;
use crate::fp32::{eval_node, Env};
use crate::ir::{Activation, Graph, GraphBuilder, Op, Source, Step, Tensor, ValueId};

/// Rebuilds `g` keeping nodes for which `keep` returns true; `rename` maps a removed
/// node's output to the value that replaces it.
fn rebuild(
    g: &Graph,
    mut edit: impl FnMut(usize, &mut GraphBuilder, &HashMap<ValueId, ValueId>) -> Result<Option<ValueId>>,
) -> Result<Graph> {
    let mut b = GraphBuilder::new();
    let mut map: HashMap<ValueId, ValueId> = HashMap::new();
    for &i in &g.inputs {
        let v = &g.values[i];
        map.insert(i, b.input(&v.name, v.shape.clone())?);
    }
    // Constants used by any node, in value order.
    for (i, v) in g.values.iter().enumerate() {
        if let Source::Const(t) = &v.source {
            if g.nodes.iter().any(|n| n.inputs.contains(&i)) {
                map.insert(i, b.constant(&v.name, t.clone())?);
            }
        }
    }
    for (ni, n) in g.nodes.iter().enumerate() {
        if let Some(out) = edit(ni, &mut b, &map)? {
            map.insert(n.output, out);
        }
    }
    for &o in &g.outputs {
        b.output(map[&o])?;
    }
    let out = b.finish()?;
    out.verify()?;
    Ok(eliminate_dead(&out))
}

/// Rebuilds `g` with fused patterns: node `i` of `fused` becomes what `make` builds,
/// the nodes of `absorbed` disappear (their outputs replaced by the given value, which
/// only the fused node reads), every other node is copied.
fn rebuild_fusing<T>(
    g: &Graph,
    fused: &HashMap<usize, T>,
    absorbed: &HashMap<usize, ValueId>,
    mut make: impl FnMut(&crate::ir::Node, &T, &mut GraphBuilder, &HashMap<ValueId, ValueId>) -> Result<ValueId>,
) -> Result<Graph> {
    if fused.is_empty() {
        return Ok(g.clone());
    }
    rebuild(g, |ni, b, map| {
        if let Some(x) = absorbed.get(&ni) {
            return Ok(Some(map[x]));
        }
        match fused.get(&ni) {
            Some(t) => Ok(Some(make(&g.nodes[ni], t, b, map)?)),
            None => copy_node(g, ni, b, map),
        }
    })
}

fn copy_node(g: &Graph, ni: usize, b: &mut GraphBuilder, map: &HashMap<ValueId, ValueId>) -> Result<Option<ValueId>> {
    let n = &g.nodes[ni];
    let ins: Vec<ValueId> = n.inputs.iter().map(|i| map[i]).collect();
    Ok(Some(b.node(&n.name, n.op.clone(), &ins)?))
}

/// Folds every BatchNorm that directly follows a convolution or dense layer (and is
/// that layer's only consumer) into the layer's weights and bias.
pub fn fold_batchnorm(g: &Graph) -> Result<Graph> {
    // BatchNorm node index → producer node index.
    let mut fold: HashMap<usize, usize> = HashMap::new();
    for (ni, n) in g.nodes.iter().enumerate() {
        if let Op::BatchNorm { .. } = n.op {
            if let Some(Source::Node(pi)) = g.values.get(n.inputs[0]).map(|v| &v.source) {
                let p = &g.nodes[*pi];
                let plain =
                    matches!(p.op, Op::Conv2d { act: Activation::None, .. } | Op::Dense { act: Activation::None });
                if plain && g.uses(p.output) == 1 {
                    fold.insert(ni, *pi);
                }
            }
        }
    }
    let producers: HashMap<usize, usize> = fold.iter().map(|(bn, p)| (*p, *bn)).collect();
    rebuild(g, |ni, b, map| {
        let n = &g.nodes[ni];
        if let Some(&bn) = producers.get(&ni) {
            let bnn = &g.nodes[bn];
            let Op::BatchNorm { eps } = bnn.op else { return copy_node(g, ni, b, map) };
            let p: Vec<&Tensor> = (1..5).filter_map(|i| g.values[bnn.inputs[i]].constant()).collect();
            let w = g.values[n.inputs[1]].constant().cloned().unwrap_or(Tensor { shape: vec![], data: vec![] });
            let co = w.shape[0];
            let per = w.len() / co;
            let old_b =
                n.inputs.get(2).and_then(|&i| g.values[i].constant()).map(|t| t.data.clone()).unwrap_or(vec![0.0; co]);
            let mut nw = w.clone();
            let mut nb = vec![0f32; co];
            for c in 0..co {
                let k = p[0].data[c] / (p[3].data[c] + eps).sqrt();
                for v in &mut nw.data[c * per..(c + 1) * per] {
                    *v *= k;
                }
                nb[c] = (old_b[c] - p[2].data[c]) * k + p[1].data[c];
            }
            let wid = b.constant(&format!("{}.folded_weight", n.name), nw)?;
            let bid = b.constant(&format!("{}.folded_bias", n.name), Tensor { shape: vec![co], data: nb })?;
            let x = map[&n.inputs[0]];
            let out = b.node(&n.name, n.op.clone(), &[x, wid, bid])?;
            return Ok(Some(out));
        }
        if let Some(&p) = fold.get(&ni) {
            return Ok(Some(map[&g.nodes[p].output]));
        }
        copy_node(g, ni, b, map)
    })
}

/// Marks ReLU and Clip activations that directly follow a convolution or dense layer
/// (its only consumer) as fused into it.
pub fn fuse_activations(g: &Graph) -> Result<Graph> {
    let mut fuse: HashMap<usize, (usize, Activation)> = HashMap::new(); // activation node → (producer, act)
    for (ni, n) in g.nodes.iter().enumerate() {
        let act = match n.op {
            Op::Relu => Activation::Relu,
            Op::Clip { lo, hi } => Activation::Clip { lo, hi },
            _ => continue,
        };
        if let Source::Node(pi) = g.values[n.inputs[0]].source {
            let p = &g.nodes[pi];
            let plain = matches!(p.op, Op::Conv2d { act: Activation::None, .. } | Op::Dense { act: Activation::None });
            if plain && g.uses(p.output) == 1 {
                fuse.insert(ni, (pi, act));
            }
        }
    }
    let producers: HashMap<usize, Activation> = fuse.values().map(|(p, a)| (*p, *a)).collect();
    rebuild(g, |ni, b, map| {
        let n = &g.nodes[ni];
        if let Some((p, _)) = fuse.get(&ni) {
            return Ok(Some(map[&g.nodes[*p].output]));
        }
        if let Some(a) = producers.get(&ni) {
            let op = match &n.op {
                Op::Conv2d { stride, pad, dilation, groups, .. } => {
                    Op::Conv2d { stride: *stride, pad: *pad, dilation: *dilation, groups: *groups, act: *a }
                }
                _ => Op::Dense { act: *a },
            };
            let ins: Vec<ValueId> = n.inputs.iter().map(|i| map[i]).collect();
            return Ok(Some(b.node(&n.name, op, &ins)?));
        }
        copy_node(g, ni, b, map)
    })
}

/// Removes [`Op::DynamicQuantize`] nodes (a hybrid model's per-sample quantization of
/// layer inputs): a quantized model has its own activation scales, and training and
/// calibration see the float layers.
pub fn strip_dynamic_quantize(g: &Graph) -> Result<Graph> {
    if !g.nodes.iter().any(|n| matches!(n.op, Op::DynamicQuantize { .. })) {
        return Ok(g.clone());
    }
    rebuild(g, |ni, b, map| {
        let n = &g.nodes[ni];
        if matches!(n.op, Op::DynamicQuantize { .. }) {
            return Ok(Some(map[&n.inputs[0]]));
        }
        copy_node(g, ni, b, map)
    })
}

/// The graph quantization and training start from: [`optimize`] after
/// [`strip_dynamic_quantize`]. Unlike [`optimize`] it changes what a hybrid model
/// computes (its layers' inputs are no longer rounded to int8 per sample).
pub fn for_quantization(g: &Graph) -> Result<Graph> {
    optimize(&strip_dynamic_quantize(g)?)
}

/// Replaces nodes computed from constants only by constants holding their result.
pub fn constant_fold(g: &Graph) -> Result<Graph> {
    let batched = g.batched();
    if g.nodes.iter().all(|n| batched[n.output]) {
        return Ok(g.clone());
    }
    let mut env = Env { graph: g, batched: &batched, vals: vec![None; g.values.len()] };
    let mut folded: HashMap<ValueId, Tensor> = HashMap::new();
    for n in &g.nodes {
        if !batched[n.output] {
            let data = eval_node(&env, n, 1);
            folded.insert(n.output, Tensor { shape: g.values[n.output].shape.clone(), data: data.clone() });
            env.vals[n.output] = Some(data);
        }
    }
    rebuild(g, |ni, b, map| {
        let n = &g.nodes[ni];
        if let Some(t) = folded.get(&n.output) {
            return Ok(Some(b.constant(&format!("{}.folded", n.name), t.clone())?));
        }
        copy_node(g, ni, b, map)
    })
}

/// Removes nodes and constants that no graph output depends on.
pub fn eliminate_dead(g: &Graph) -> Graph {
    let mut live = vec![false; g.values.len()];
    for &o in &g.outputs {
        live[o] = true;
    }
    for n in g.nodes.iter().rev() {
        if live[n.output] {
            for &i in &n.inputs {
                live[i] = true;
            }
        }
    }
    for &i in &g.inputs {
        live[i] = true;
    }
    let mut remap = vec![usize::MAX; g.values.len()];
    let mut out = Graph::default();
    let mut node_remap = vec![usize::MAX; g.nodes.len()];
    let kept: Vec<usize> = g.nodes.iter().enumerate().filter(|(_, n)| live[n.output]).map(|(i, _)| i).collect();
    for (new, &old) in kept.iter().enumerate() {
        node_remap[old] = new;
    }
    for (i, v) in g.values.iter().enumerate() {
        if live[i] {
            remap[i] = out.values.len();
            let mut nv = v.clone();
            if let Source::Node(ni) = v.source {
                nv.source = Source::Node(node_remap[ni]);
            }
            out.values.push(nv);
        }
    }
    for &old in &kept {
        let n = &g.nodes[old];
        let mut nn = n.clone();
        nn.inputs = n.inputs.iter().map(|&i| remap[i]).collect();
        nn.output = remap[n.output];
        out.nodes.push(nn);
    }
    out.inputs = g.inputs.iter().map(|&i| remap[i]).collect();
    out.outputs = g.outputs.iter().map(|&i| remap[i]).collect();
    out
}

/// Attributes that cannot matter, dropped so that later stages see one form: an average
/// pooling without padding counts no padded positions, whatever `count_include_pad` says
/// (PyTorch exports `count_include_pad=1` by default).
pub fn canonicalize(g: &Graph) -> Graph {
    let mut g = g.clone();
    for n in &mut g.nodes {
        if let Op::AvgPool { pad, count_include_pad, .. } = &mut n.op {
            if pad.iter().all(|p| *p == 0) {
                *count_include_pad = false;
            }
        }
    }
    g
}

/// `base`, or `base#k` with the first `k` that no value of `b` is named yet.
fn fresh(b: &GraphBuilder, base: &str) -> String {
    let mut name = base.to_string();
    let mut k = 1;
    while b.lookup(&name).is_some() {
        name = format!("{base}#{k}");
        k += 1;
    }
    name
}

/// The `C` values of a constant that broadcasts against an activation of per-sample shape
/// `s` as one value per channel (the first dimension) or one value for all.
fn per_channel(t: &Tensor, s: &[usize]) -> Option<Vec<f32>> {
    let c = *s.first()?;
    if t.len() == 1 {
        return Some(vec![t.data[0]; c]);
    }
    if t.shape.len() > s.len() || t.len() != c {
        return None;
    }
    // Right-aligned: the constant's dimension over the channels holds them, the rest are 1.
    let lead = s.len() - t.shape.len();
    let ok = t.shape.iter().enumerate().all(|(i, d)| if i + lead == 0 { *d == c } else { *d == 1 });
    ok.then(|| t.data.clone())
}

/// Rewrites `Mul` and `Add` of an activation and a constant holding one value per channel
/// (or one for all) — BatchNorm exported as `Mul`/`Add`, input normalization, scalar
/// scaling — as a BatchNorm with mean 0, variance 1 and ε 0 (exactly `x·s + b`), which
/// [`fold_batchnorm`] then folds into the layer before it where it can.
pub fn affine_to_batchnorm(g: &Graph) -> Result<Graph> {
    let affine = |ni: usize| -> Option<(ValueId, Vec<f32>, Vec<f32>)> {
        let n = &g.nodes[ni];
        if !matches!(n.op, Op::Mul | Op::Add) || n.inputs.len() != 2 {
            return None;
        }
        let (x, k) = match (g.values[n.inputs[0]].constant(), g.values[n.inputs[1]].constant()) {
            (None, Some(k)) => (n.inputs[0], k),
            (Some(k), None) => (n.inputs[1], k),
            _ => return None,
        };
        let s = &g.values[x].shape;
        if g.values[n.output].shape != *s {
            return None;
        }
        let v = per_channel(k, s)?;
        let c = v.len();
        Some(match n.op {
            Op::Mul => (x, v, vec![0.0; c]),
            _ => (x, vec![1.0; c], v),
        })
    };
    rebuild(g, |ni, b, map| {
        let n = &g.nodes[ni];
        let Some((x, scale, bias)) = affine(ni) else { return copy_node(g, ni, b, map) };
        let c = scale.len();
        let mut k = |what: &str, data: Vec<f32>| {
            let name = fresh(b, &format!("{}.{what}", n.name));
            b.constant(&name, Tensor { shape: vec![c], data })
        };
        let ins = [map[&x], k("scale", scale)?, k("bias", bias)?, k("mean", vec![0.0; c])?, k("var", vec![1.0; c])?];
        Ok(Some(b.node(&n.name, Op::BatchNorm { eps: 0.0 }, &ins)?))
    })
}

/// Rewrites every BatchNorm left over `[C, H, W]` activations (nothing to fold it into) as
/// the depthwise 1×1 convolution it is: weight `γ/√(σ²+ε)`, bias `β − μ·γ/√(σ²+ε)`.
pub fn batchnorm_to_depthwise(g: &Graph) -> Result<Graph> {
    rebuild(g, |ni, b, map| {
        let n = &g.nodes[ni];
        let Op::BatchNorm { eps } = n.op else { return copy_node(g, ni, b, map) };
        let p: Vec<&Tensor> = n.inputs[1..].iter().filter_map(|&i| g.values[i].constant()).collect();
        let s = &g.values[n.inputs[0]].shape;
        if s.len() != 3 || p.len() != 4 || p.iter().any(|t| t.len() != s[0]) {
            return copy_node(g, ni, b, map);
        }
        let c = s[0];
        let k: Vec<f32> = (0..c).map(|i| p[0].data[i] / (p[3].data[i] + eps).sqrt()).collect();
        let bias: Vec<f32> = (0..c).map(|i| p[1].data[i] - p[2].data[i] * k[i]).collect();
        let w = b.constant(&fresh(b, &format!("{}.weight", n.name)), Tensor { shape: vec![c, 1, 1, 1], data: k })?;
        let bi = b.constant(&fresh(b, &format!("{}.bias", n.name)), Tensor { shape: vec![c], data: bias })?;
        let op = Op::Conv2d { stride: [1, 1], pad: [0; 4], dilation: [1, 1], groups: c, act: Activation::None };
        Ok(Some(b.node(&n.name, op, &[map[&n.inputs[0]], w, bi])?))
    })
}

/// Fuses `Mul(x, Sigmoid(x))` (how PyTorch exports SiLU/Swish) into one [`Op::Silu`] when
/// the sigmoid feeds nothing else.
pub fn fuse_silu(g: &Graph) -> Result<Graph> {
    // Mul node → its x; the sigmoid nodes absorbed.
    let mut fused: HashMap<usize, ValueId> = HashMap::new();
    let mut absorbed: HashMap<usize, ValueId> = HashMap::new();
    for (ni, n) in g.nodes.iter().enumerate() {
        if !matches!(n.op, Op::Mul) || n.inputs.len() != 2 {
            continue;
        }
        for (a, s) in [(n.inputs[0], n.inputs[1]), (n.inputs[1], n.inputs[0])] {
            if let Source::Node(si) = g.values[s].source {
                let sig = &g.nodes[si];
                if matches!(sig.op, Op::Sigmoid) && sig.inputs[0] == a && g.uses(s) == 1 {
                    fused.insert(ni, a);
                    absorbed.insert(si, a);
                    break;
                }
            }
        }
    }
    rebuild_fusing(g, &fused, &absorbed, |n, x, b, map| b.node(&n.name, Op::Silu, &[map[x]]))
}

/// Merges a region of elementwise operators whose only activation input is one value `x`
/// — chains of activations and scalar-constant Add/Mul, `Erf`, `Pow`… and products or sums
/// of two such chains of the same `x` — into one [`Op::Function`], quantized as one lookup
/// table instead of a chain of requantizations. This is how exporters' GELU
/// (`x·0.5·(1 + erf(x/√2))`, and the tanh form with `x³`), Mish and similar arrive. A
/// region is merged only where it computes something the named operators do not (a
/// step such as `Erf`/`Pow`/`Exp`, or `x` combined with a function of itself); values read
/// outside the region, and graph outputs, stay.
pub fn fuse_functions(g: &Graph) -> Result<Graph> {
    let mut uses = vec![0usize; g.values.len()];
    for n in &g.nodes {
        for &i in &n.inputs {
            uses[i] += 1;
        }
    }
    for &o in &g.outputs {
        uses[o] += 1;
    }
    let scalar = |v: ValueId| match &g.values[v].source {
        Source::Const(t) if t.len() == 1 => Some(t.data[0]),
        _ => None,
    };
    let step_of = |op: &Op| if matches!(op, Op::Add) { Step::Add } else { Step::Mul };
    // A node as a program over its one activation input.
    let unary = |ni: usize| -> Option<(ValueId, Vec<Step>)> {
        let n = &g.nodes[ni];
        match &n.op {
            Op::Function { steps, .. } => Some((n.inputs[0], steps.clone())),
            Op::Add | Op::Mul if n.inputs.len() == 2 => match (scalar(n.inputs[0]), scalar(n.inputs[1])) {
                (None, Some(c)) => Some((n.inputs[0], vec![Step::X, Step::Const(c), step_of(&n.op)])),
                (Some(c), None) => Some((n.inputs[1], vec![Step::Const(c), Step::X, step_of(&n.op)])),
                _ => None,
            },
            op if op.unary(0.0).is_some() => Some((n.inputs[0], vec![Step::X, Step::Apply(Box::new(op.clone()))])),
            _ => None,
        }
    };
    // (root, program, nodes, combines x with itself)
    type Region = (ValueId, Vec<Step>, Vec<usize>, bool);
    // Regions stop growing at this many nodes deep: it bounds the recursion and keeps
    // the pass linear in long chains (a table of more steps gains nothing).
    const MAX_DEPTH: usize = 32;
    fn expand(
        g: &Graph,
        ni: usize,
        uses: &[usize],
        unary: &dyn Fn(usize) -> Option<(ValueId, Vec<Step>)>,
        depth: usize,
    ) -> Option<Region> {
        let inner = |v: ValueId| -> Region {
            if let Source::Node(p) = g.values[v].source {
                if depth < MAX_DEPTH && uses[v] == 1 && !g.outputs.contains(&v) {
                    if let Some(r) = expand(g, p, uses, unary, depth + 1) {
                        return r;
                    }
                }
            }
            (v, vec![Step::X], Vec::new(), false)
        };
        let n = &g.nodes[ni];
        if let Some((x, steps)) = unary(ni) {
            let (root, prog, mut nodes, selfish) = inner(x);
            nodes.push(ni);
            return Some((root, substitute(steps, &prog), nodes, selfish));
        }
        let activation = |v: ValueId| !matches!(g.values[v].source, Source::Const(_));
        if matches!(n.op, Op::Add | Op::Mul) && n.inputs.len() == 2 && n.inputs.iter().all(|&v| activation(v)) {
            let same = g.values[n.inputs[0]].shape == g.values[n.inputs[1]].shape;
            let (ra, mut pa, mut na, _) = inner(n.inputs[0]);
            let (rb, pb, nb, _) = inner(n.inputs[1]);
            if same && ra == rb {
                pa.extend(pb);
                pa.push(if matches!(n.op, Op::Add) { Step::Add } else { Step::Mul });
                na.extend(nb);
                na.push(ni);
                return Some((ra, pa, na, true));
            }
        }
        None
    }
    let mut fused: HashMap<usize, (ValueId, Vec<Step>)> = HashMap::new();
    let mut absorbed: HashMap<usize, ValueId> = HashMap::new();
    for ni in (0..g.nodes.len()).rev() {
        if absorbed.contains_key(&ni) || fused.contains_key(&ni) {
            continue;
        }
        let Some((root, steps, nodes, selfish)) = expand(g, ni, &uses, &unary, 0) else { continue };
        let exotic = steps.iter().any(|s| {
            matches!(
                s,
                Step::Erf
                    | Step::Exp
                    | Step::Log
                    | Step::Sqrt
                    | Step::Pow
                    | Step::Div
                    | Step::Neg
                    | Step::Abs
                    | Step::Sub
            )
        });
        if nodes.len() < 2 || !(exotic || selfish) || !Step::valid(&steps) {
            continue;
        }
        for &m in &nodes {
            if m != ni {
                absorbed.insert(m, root);
            }
        }
        fused.insert(ni, (root, steps));
    }
    rebuild_fusing(g, &fused, &absorbed, |n, (x, steps), b, map| {
        let op = Op::Function { name: function_name(steps).into(), steps: steps.clone() };
        b.node(&n.name, op, &[map[x]])
    })
}

/// `outer` with each `X` replaced by the program `inner`: `outer ∘ inner`.
fn substitute(outer: Vec<Step>, inner: &[Step]) -> Vec<Step> {
    outer.into_iter().flat_map(|s| if s == Step::X { inner.to_vec() } else { vec![s] }).collect()
}

/// `Gelu` or `Mish` where a program computes one of them (within 1e-4 on [−8, 8]),
/// else `Function`.
pub fn function_name(steps: &[Step]) -> &'static str {
    let gelu = |x: f32| 0.5 * x * (1.0 + crate::ir::erf(x / std::f32::consts::SQRT_2));
    let gelu_tanh = |x: f32| 0.5 * x * (1.0 + (0.797_884_6 * (x + 0.044_715 * x * x * x)).tanh());
    let mish = |x: f32| x * x.exp().ln_1p().tanh();
    let close = |f: &dyn Fn(f32) -> f32| {
        (-160..=160).all(|i| {
            let x = i as f32 / 20.0;
            Step::eval(steps, x).is_some_and(|y| (y - f(x)).abs() <= 1e-4 * (1.0 + f(x).abs()))
        })
    };
    if close(&gelu) || close(&gelu_tanh) {
        "Gelu"
    } else if close(&mish) {
        "Mish"
    } else {
        "Function"
    }
}

/// Recognises ShuffleNet's channel shuffle — `Reshape` of `[C, H, W]` to `[g, C/g, H, W]`,
/// `Transpose` of the first two axes, `Reshape` back — as one [`Op::ChannelShuffle`].
pub fn fuse_channel_shuffle(g: &Graph) -> Result<Graph> {
    let producer = |v: ValueId| match g.values[v].source {
        Source::Node(i) if g.uses(v) == 1 => Some(i),
        _ => None,
    };
    // Last Reshape node → (first Reshape's input, groups); the two nodes before it.
    let mut fused: HashMap<usize, (ValueId, usize)> = HashMap::new();
    let mut absorbed: HashMap<usize, ValueId> = HashMap::new();
    for (ni, n) in g.nodes.iter().enumerate() {
        let Op::Reshape { shape } = &n.op else { continue };
        let Some(ti) = producer(n.inputs[0]) else { continue };
        let t = &g.nodes[ti];
        if !matches!(&t.op, Op::Transpose { perm } if perm[..] == [1, 0, 2, 3]) {
            continue;
        }
        let Some(ri) = producer(t.inputs[0]) else { continue };
        let r = &g.nodes[ri];
        let x = r.inputs[0];
        let (xs, mid) = (&g.values[x].shape, &g.values[r.output].shape);
        let shuffle = matches!(r.op, Op::Reshape { .. })
            && xs.len() == 3
            && shape == xs
            && mid.len() == 4
            && mid[0] * mid[1] == xs[0]
            && mid[2..] == xs[1..];
        if shuffle {
            fused.insert(ni, (x, mid[0]));
            absorbed.insert(ti, x);
            absorbed.insert(ri, x);
        }
    }
    rebuild_fusing(g, &fused, &absorbed, |n, (x, groups), b, map| {
        b.node(&n.name, Op::ChannelShuffle { groups: *groups }, &[map[x]])
    })
}

/// Layout plumbing reduced to what moves data: two transposes in a row become one (none
/// when they cancel, as the transpose added for a channels-last input and an exporter's
/// transpose to NCHW do), a transpose that moves only size-1 dimensions becomes a
/// reshape, a reshape of a reshape one reshape, and a reshape to its input's own shape
/// disappears. Repeated until nothing changes.
pub fn simplify_layout(g: &Graph) -> Result<Graph> {
    let mut g = g.clone();
    loop {
        let next = simplify_layout_once(&g)?;
        if next.nodes.len() == g.nodes.len() && next.nodes.iter().zip(&g.nodes).all(|(a, b)| a.op == b.op) {
            return Ok(next);
        }
        g = next;
    }
}

fn simplify_layout_once(g: &Graph) -> Result<Graph> {
    let producer = |v: ValueId| match g.values[v].source {
        Source::Node(i) => Some(&g.nodes[i]),
        _ => None,
    };
    rebuild(g, |ni, b, map| {
        let n = &g.nodes[ni];
        let out_shape = &g.values[n.output].shape;
        let (x, op) = match &n.op {
            Op::Transpose { perm } => match producer(n.inputs[0]).map(|p| (p, &p.op)) {
                Some((p, Op::Transpose { perm: first })) => {
                    (p.inputs[0], Op::Transpose { perm: perm.iter().map(|&i| first[i]).collect() })
                }
                _ => (n.inputs[0], n.op.clone()),
            },
            Op::Reshape { .. } => match producer(n.inputs[0]) {
                Some(p) if matches!(p.op, Op::Reshape { .. }) => (p.inputs[0], n.op.clone()),
                _ => (n.inputs[0], n.op.clone()),
            },
            _ => return copy_node(g, ni, b, map),
        };
        let in_shape = &g.values[x].shape;
        let identity = match &op {
            Op::Transpose { perm } => perm.iter().enumerate().all(|(i, p)| i == *p),
            _ => in_shape == out_shape,
        };
        if identity {
            return Ok(Some(map[&x]));
        }
        let op = match op {
            Op::Transpose { perm } => {
                // Only size-1 dimensions move: the elements keep their order.
                let order: Vec<usize> = perm.iter().copied().filter(|&p| in_shape[p] != 1).collect();
                if order.windows(2).all(|w| w[0] < w[1]) {
                    Op::Reshape { shape: out_shape.clone() }
                } else {
                    Op::Transpose { perm }
                }
            }
            other => other,
        };
        Ok(Some(b.node(&n.name, op, &[map[&x]])?))
    })
}

/// Folds a `Transpose` whose result is only flattened for a dense layer — how
/// TensorFlow-exported models turn `[C, H, W]` back into their `H, W, C` flattening order
/// before the classifier — into the dense layer's weights: `Transpose → Flatten → Dense`
/// becomes `Flatten → Dense` with the weight columns permuted, the same products summed.
pub fn fold_flatten_transpose(g: &Graph) -> Result<Graph> {
    let single = |v: ValueId| match g.values[v].source {
        Source::Node(i) if g.uses(v) == 1 => Some(i),
        _ => None,
    };
    // Dense node → (the transpose's input, permuted weight); the two nodes it absorbs.
    let mut fused: HashMap<usize, (ValueId, Tensor)> = HashMap::new();
    let mut absorbed: HashMap<usize, ValueId> = HashMap::new();
    for (ni, n) in g.nodes.iter().enumerate() {
        if !matches!(n.op, Op::Dense { .. }) {
            continue;
        }
        let Some(fi) = single(n.inputs[0]) else { continue };
        let f = &g.nodes[fi];
        let flat = matches!(&f.op, Op::Flatten) || matches!(&f.op, Op::Reshape { shape } if shape.len() == 1);
        let Some(ti) = single(f.inputs[0]).filter(|_| flat) else { continue };
        let Op::Transpose { perm } = &g.nodes[ti].op else { continue };
        let x = g.nodes[ti].inputs[0];
        let Some(w) = g.values[n.inputs[1]].constant() else { continue };
        let xs = &g.values[x].shape;
        let count: usize = xs.iter().product();
        if w.shape.len() != 2 || w.shape[1] != count {
            continue;
        }
        // Input strides taken in the transpose's output order: flat index j of the
        // transposed tensor reads element src(j) of x.
        let r = xs.len();
        let mut strides = vec![1usize; r];
        for d in (0..r.saturating_sub(1)).rev() {
            strides[d] = strides[d + 1] * xs[d + 1];
        }
        let ts: Vec<usize> = perm.iter().map(|&p| xs[p]).collect();
        let mut data = vec![0f32; w.data.len()];
        for j in 0..count {
            let (mut rem, mut src) = (j, 0);
            for d in (0..r).rev() {
                src += (rem % ts[d]) * strides[perm[d]];
                rem /= ts[d];
            }
            for o in 0..w.shape[0] {
                data[o * count + src] = w.data[o * count + j];
            }
        }
        fused.insert(ni, (x, Tensor { shape: w.shape.clone(), data }));
        absorbed.insert(ti, x);
        absorbed.insert(fi, x);
    }
    rebuild_fusing(g, &fused, &absorbed, |n, (x, w), b, map| {
        let flat = b.node(&fresh(b, &format!("{}.flatten", n.name)), Op::Flatten, &[map[x]])?;
        let wv = b.constant(&fresh(b, &format!("{}.weight", n.name)), w.clone())?;
        let mut ins = vec![flat, wv];
        ins.extend(n.inputs[2..].iter().map(|i| map[i]));
        b.node(&n.name, n.op.clone(), &ins)
    })
}

/// Average pooling that counts padded positions (`count_include_pad=1` with padding,
/// PyTorch's default) as what it is: zero padding, then pooling without padding.
pub fn explicit_pool_padding(g: &Graph) -> Result<Graph> {
    let counted =
        |op: &Op| matches!(op, Op::AvgPool { pad, count_include_pad: true, .. } if pad.iter().any(|p| *p > 0));
    if !g.nodes.iter().any(|n| counted(&n.op)) {
        return Ok(g.clone());
    }
    rebuild(g, |ni, b, map| {
        let n = &g.nodes[ni];
        let Op::AvgPool { kernel, stride, pad, count_include_pad: true } = n.op else {
            return copy_node(g, ni, b, map);
        };
        if pad.iter().all(|p| *p == 0) {
            return copy_node(g, ni, b, map);
        }
        let pads = vec![0, pad[0], pad[1], 0, pad[2], pad[3]];
        let padded =
            b.node(&fresh(b, &format!("{}.pad", n.name)), Op::Pad { pads, value: 0.0 }, &[map[&n.inputs[0]]])?;
        let op = Op::AvgPool { kernel, stride, pad: [0; 4], count_include_pad: false };
        Ok(Some(b.node(&n.name, op, &[padded])?))
    })
}

/// Folds zero padding of the spatial dimensions into the convolutions that read it (an
/// explicit `Pad` before a `VALID` convolution, as TensorFlow exports `SAME` with odd
/// padding): the convolution pads with the same zeros itself.
pub fn fold_pad(g: &Graph) -> Result<Graph> {
    // Pad node → its spatial pads, when every consumer is a convolution reading it as data.
    let mut folded: HashMap<ValueId, (ValueId, [usize; 4])> = HashMap::new();
    for n in &g.nodes {
        let Op::Pad { pads, value } = &n.op else { continue };
        if *value != 0.0 || pads.len() != 6 || pads[0] != 0 || pads[3] != 0 {
            continue;
        }
        let consumers: Vec<&crate::ir::Node> = g.nodes.iter().filter(|m| m.inputs.contains(&n.output)).collect();
        let convs =
            consumers.iter().all(|m| matches!(m.op, Op::Conv2d { .. }) && m.inputs[1..].iter().all(|i| *i != n.output));
        if convs && !consumers.is_empty() && !g.outputs.contains(&n.output) {
            folded.insert(n.output, (n.inputs[0], [pads[1], pads[2], pads[4], pads[5]]));
        }
    }
    if folded.is_empty() {
        return Ok(g.clone());
    }
    rebuild(g, |ni, b, map| {
        let n = &g.nodes[ni];
        if let Some((x, _)) = folded.get(&n.output) {
            return Ok(Some(map[x]));
        }
        match (&n.op, folded.get(&n.inputs[0])) {
            (Op::Conv2d { stride, pad, dilation, groups, act }, Some((_, extra))) => {
                let pad = [pad[0] + extra[0], pad[1] + extra[1], pad[2] + extra[2], pad[3] + extra[3]];
                let op = Op::Conv2d { stride: *stride, pad, dilation: *dilation, groups: *groups, act: *act };
                let ins: Vec<ValueId> = n.inputs.iter().map(|i| map[i]).collect();
                Ok(Some(b.node(&n.name, op, &ins)?))
            }
            _ => copy_node(g, ni, b, map),
        }
    })
}

/// The standard pipeline before quantization: canonical attributes, constant folding,
/// layout plumbing simplified, zero padding folded into convolutions (and made explicit for pooling that counts it),
/// a transpose before a classifier's flatten folded into its weights, per-channel
/// `Mul`/`Add` by constants as BatchNorm, BatchNorm folding (repeated for chains), what
/// is left of BatchNorm as depthwise 1×1 convolutions, SiLU and channel-shuffle fusion,
/// activation fusion, dead-node elimination.
pub fn optimize(g: &Graph) -> Result<Graph> {
    let g = canonicalize(g);
    let g = constant_fold(&g)?;
    let g = simplify_layout(&g)?;
    let g = fold_pad(&g)?;
    let g = explicit_pool_padding(&g)?;
    let g = fold_flatten_transpose(&g)?;
    // Before scalar Mul/Add become BatchNorm: elementwise regions read them.
    let g = fuse_silu(&g)?;
    let g = fuse_functions(&g)?;
    let mut g = affine_to_batchnorm(&g)?;
    loop {
        let folded = fold_batchnorm(&g)?;
        let done = folded.nodes.len() == g.nodes.len();
        g = folded;
        if done {
            break;
        }
    }
    let g = batchnorm_to_depthwise(&g)?;
    let g = fuse_channel_shuffle(&g)?;
    fuse_activations(&g)
}
