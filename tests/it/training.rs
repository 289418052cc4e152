//! The training engine: every backward pass against central finite differences, the
//! loss gradient, a smoke test that training lowers the loss, reproducibility from the
//! seed, the model file format and the zoo.

use npu_model::ir::{Activation, Graph, GraphBuilder, Op, Source, Tensor};
use npu_model::modelfile;
use npu_model::rng::Prng;

fn rand_tensor(rng: &mut Prng, shape: &[usize], scale: f32) -> Tensor {
    let n = shape.iter().product();
    Tensor::new(shape.to_vec(), (0..n).map(|_| rng.normal() * scale).collect()).expect("sized")
}

/// L = Σ out·R for a fixed random R; returns L.
fn loss(g: &mut Graph, x: &[f32], n: usize, r: &[f32], train_mode: bool) -> f64 {
    let tape = npu_train::forward(g, x, n, train_mode).expect("forward");
    let out = tape.vals[g.outputs[0]].as_deref().expect("output");
    out.iter().zip(r).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum()
}

/// Compares analytic gradients (input and every trainable constant) with central
/// differences on up to 12 elements each.
fn gradcheck(mut g: Graph, n: usize, train_mode: bool, what: &str) {
    let mut rng = Prng::new(99);
    let in_per: usize = g.values[g.inputs[0]].shape.iter().product();
    let x: Vec<f32> = (0..n * in_per).map(|_| rng.normal()).collect();
    let out_len = n * g.values[g.outputs[0]].shape.iter().product::<usize>();
    let r: Vec<f32> = (0..out_len).map(|_| rng.normal()).collect();
    let tape = npu_train::forward(&mut g, &x, n, train_mode).expect("forward");
    let (pgrads, dx) = npu_train::backward(&g, &tape, r.clone());
    let eps = 1e-3f32;
    let close = |a: f64, num: f64, label: &str| {
        assert!(
            (a - num).abs() <= 2e-2 * num.abs().max(a.abs()) + 2e-3,
            "{what}: {label}: analytic {a} vs numeric {num}"
        );
    };
    for i in (0..x.len()).step_by((x.len() / 12).max(1)) {
        let (mut xp, mut xm) = (x.clone(), x.clone());
        xp[i] += eps;
        xm[i] -= eps;
        let num =
            (loss(&mut g, &xp, n, &r, train_mode) - loss(&mut g, &xm, n, &r, train_mode)) / (2.0 * f64::from(eps));
        close(f64::from(dx[i]), num, &format!("input[{i}]"));
    }
    for p in npu_train::trainable(&g) {
        let len = g.values[p].shape.iter().product::<usize>();
        let grad = pgrads.get(&p).unwrap_or_else(|| panic!("{what}: no gradient for `{}`", g.values[p].name)).clone();
        for i in (0..len).step_by((len / 12).max(1)) {
            let set = |g: &mut Graph, d: f32| {
                if let Source::Const(t) = &mut g.values[p].source {
                    t.data[i] += d;
                }
            };
            set(&mut g, eps);
            let lp = loss(&mut g, &x, n, &r, train_mode);
            set(&mut g, -2.0 * eps);
            let lm = loss(&mut g, &x, n, &r, train_mode);
            set(&mut g, eps);
            let name = g.values[p].name.clone();
            close(f64::from(grad[i]), (lp - lm) / (2.0 * f64::from(eps)), &format!("{name}[{i}]"));
        }
    }
}

fn one(op: Op, in_shape: Vec<usize>, consts: &[(&str, Vec<usize>)]) -> Graph {
    let mut rng = Prng::new(5);
    let mut b = GraphBuilder::new();
    let x = b.input("x", in_shape).expect("input");
    let mut ins = vec![x];
    for (name, shape) in consts {
        let t = if name.starts_with("var") {
            Tensor::new(shape.clone(), (0..shape.iter().product()).map(|_| 0.5 + rng.uniform()).collect()).expect("t")
        } else {
            rand_tensor(&mut rng, shape, 0.5)
        };
        ins.push(b.constant(name, t).expect("const"));
    }
    let y = b.node("op", op, &ins).expect("node");
    b.output(y).expect("out");
    b.finish().expect("graph")
}

fn conv(stride: usize, pad: usize, dilation: usize, groups: usize, act: Activation) -> Op {
    Op::Conv2d { stride: [stride; 2], pad: [pad; 4], dilation: [dilation; 2], groups, act }
}

#[test]
fn convolution_gradients() {
    let w = |co: usize, ci: usize, k: usize| ("w", vec![co, ci, k, k]);
    gradcheck(
        one(conv(1, 1, 1, 1, Activation::None), vec![2, 5, 5], &[w(3, 2, 3), ("b", vec![3])]),
        2,
        true,
        "conv 3×3",
    );
    gradcheck(
        one(conv(2, 1, 1, 1, Activation::Relu), vec![2, 6, 6], &[w(4, 2, 3), ("b", vec![4])]),
        2,
        true,
        "conv stride 2 + relu",
    );
    gradcheck(one(conv(1, 2, 2, 1, Activation::None), vec![1, 6, 6], &[w(2, 1, 3)]), 2, true, "dilated conv");
    gradcheck(
        one(conv(1, 1, 1, 2, Activation::None), vec![4, 4, 4], &[w(4, 2, 3), ("b", vec![4])]),
        2,
        true,
        "grouped conv",
    );
    gradcheck(
        one(conv(2, 1, 1, 3, Activation::Clip { lo: -0.5, hi: 0.5 }), vec![3, 5, 5], &[w(3, 1, 3), ("b", vec![3])]),
        2,
        true,
        "depthwise stride 2 + clip",
    );
    gradcheck(one(conv(1, 0, 1, 1, Activation::None), vec![3, 4, 4], &[w(5, 3, 1)]), 3, true, "pointwise");
}

#[test]
fn dense_batchnorm_and_activation_gradients() {
    gradcheck(
        one(Op::Dense { act: Activation::None }, vec![6], &[("w", vec![4, 6]), ("b", vec![4])]),
        3,
        true,
        "dense",
    );
    let bn = [("g", vec![3]), ("be", vec![3]), ("m", vec![3]), ("var", vec![3])];
    gradcheck(one(Op::BatchNorm { eps: 1e-5 }, vec![3, 2, 2], &bn), 4, true, "batchnorm (training)");
    gradcheck(one(Op::BatchNorm { eps: 1e-5 }, vec![3, 2, 2], &bn), 2, false, "batchnorm (inference)");
    for op in [Op::Relu, Op::Clip { lo: -0.3, hi: 0.6 }, Op::LeakyRelu { alpha: 0.1 }, Op::HardSwish, Op::Sigmoid] {
        let name = op.name();
        gradcheck(one(op, vec![2, 3, 3], &[]), 2, true, name);
    }
}

#[test]
fn pooling_add_and_reshape_gradients() {
    gradcheck(one(Op::MaxPool { kernel: [2, 2], stride: [2, 2], pad: [0; 4] }, vec![2, 4, 4], &[]), 2, true, "maxpool");
    gradcheck(
        one(Op::MaxPool { kernel: [3, 3], stride: [2, 2], pad: [1; 4] }, vec![1, 5, 5], &[]),
        2,
        true,
        "maxpool padded",
    );
    for inc in [false, true] {
        let op = Op::AvgPool { kernel: [3, 3], stride: [2, 2], pad: [1; 4], count_include_pad: inc };
        gradcheck(one(op, vec![2, 5, 5], &[]), 2, true, "avgpool");
    }
    gradcheck(one(Op::GlobalAvgPool, vec![3, 3, 3], &[]), 2, true, "global avgpool");
    gradcheck(one(Op::Add, vec![2, 3, 3], &[("c", vec![2, 1, 1])]), 2, true, "add constant");
    gradcheck(one(Op::Flatten, vec![2, 3, 3], &[]), 2, true, "flatten");
    // Two activations into one add (a residual): both paths receive the gradient.
    let mut b = GraphBuilder::new();
    let x = b.input("x", vec![2, 3, 3]).expect("input");
    let w = b.constant("w", rand_tensor(&mut Prng::new(3), &[2, 2, 3, 3], 0.5)).expect("w");
    let c = b.node("c", conv(1, 1, 1, 1, Activation::None), &[x, w]).expect("conv");
    let y = b.node("add", Op::Add, &[x, c]).expect("add");
    let y = b.node("r", Op::Relu, &[y]).expect("relu");
    b.output(y).expect("out");
    gradcheck(b.finish().expect("graph"), 2, true, "residual");
}

#[test]
fn softmax_cross_entropy_by_hand_and_by_differences() {
    // Logits [0, ln 3] for label 1: p = [1/4, 3/4]; loss = −ln(3/4); grad = p − onehot.
    let (l, correct, g) = npu_train::softmax_cross_entropy(&[0.0, 3f32.ln()], &[1], 1);
    assert!((l - (4.0f32 / 3.0).ln()).abs() < 1e-6);
    assert_eq!(correct, 1);
    assert!((g[0] - 0.25).abs() < 1e-6 && (g[1] + 0.25).abs() < 1e-6);
    let logits = [0.3, -1.2, 2.0, 0.1, 0.5, -0.4];
    let (_, _, g) = npu_train::softmax_cross_entropy(&logits, &[2, 0], 2);
    for i in 0..6 {
        let (mut p, mut m) = (logits, logits);
        p[i] += 1e-3;
        m[i] -= 1e-3;
        let num = (npu_train::softmax_cross_entropy(&p, &[2, 0], 2).0
            - npu_train::softmax_cross_entropy(&m, &[2, 0], 2).0)
            / 2e-3;
        assert!((g[i] - num).abs() < 1e-3, "logit {i}: {} vs {num}", g[i]);
    }
}

#[test]
fn unsupported_operators_are_named() {
    let g = one(Op::Softmax { axis: 0 }, vec![4], &[]);
    let e = npu_train::check_trainable(&g).expect_err("no backward");
    assert_eq!(e.to_string(), "training has no backward pass for: `op` (Softmax)");
}

fn smoke(arch: &str, seed: u64) -> (Vec<f32>, Vec<u8>) {
    let ds = npu_zoo::fashion_mnist_train_subset().expect("embedded").take(512);
    let model = npu_zoo::build(arch, seed).expect("builds");
    let config = npu_train::TrainConfig { epochs: 2, batch: 32, seed, ..npu_train::TrainConfig::default() };
    let mut t = npu_train::Trainer::new(model, config, ds.len()).expect("trainer");
    let losses: Vec<f32> = (1..=2).map(|e| t.epoch(&ds, e, &mut |_| {}).expect("epoch").loss).collect();
    (losses, modelfile::encode(&t.model, None).expect("encodes"))
}

#[test]
fn training_lowers_the_loss_and_is_reproducible_from_its_seed() {
    let (losses, bytes) = smoke("cnn", 7);
    assert!(losses[1] < losses[0], "loss went from {} to {}", losses[0], losses[1]);
    assert!(losses[0] < 2.5, "a first epoch starts near ln 10 ≈ 2.30: {}", losses[0]);
    let (again, bytes2) = smoke("cnn", 7);
    assert_eq!(losses, again, "same seed, same losses");
    assert_eq!(bytes, bytes2, "same seed, same weights");
    let (other, _) = smoke("cnn", 8);
    assert_ne!(losses, other, "another seed, another run");
}

#[test]
fn zoo_architectures_have_the_documented_shape() {
    for (name, _) in npu_zoo::ARCHITECTURES {
        let m = npu_zoo::build(name, 1).expect("builds");
        m.graph.verify().expect("valid");
        npu_train::check_trainable(&m.graph).expect("trainable");
        let out = &m.graph.values[m.graph.outputs[0]].shape;
        assert_eq!(out, &vec![10], "{name}");
    }
    let mob = npu_zoo::build("mobilenet", 1).expect("builds");
    assert!(mob.graph.nodes.iter().any(|n| matches!(n.op, Op::Conv2d { groups, .. } if groups > 1)), "depthwise");
    assert!(mob.graph.nodes.iter().any(|n| matches!(n.op, Op::Clip { lo, hi } if lo == 0.0 && hi == 6.0)), "ReLU6");
    assert!(mob.graph.nodes.iter().any(|n| matches!(n.op, Op::Add)), "residual");
    let res = npu_zoo::build("resnet", 1).expect("builds");
    assert_eq!(res.graph.nodes.iter().filter(|n| matches!(n.op, Op::Add)).count(), 3, "three residual adds");
}

#[test]
fn model_files_round_trip_and_reject_corruption() {
    let m = npu_zoo::build("resnet", 3).expect("builds");
    let rec = modelfile::TrainRecord { arch: "resnet".into(), epochs: 2, ..Default::default() };
    let bytes = modelfile::encode(&m, Some(&rec)).expect("encodes");
    let (back, r) = modelfile::decode_with_record(&bytes, "m.npum").expect("decodes");
    assert_eq!(back, m);
    assert_eq!(r, Some(rec));
    let e = modelfile::decode(&bytes[..bytes.len() / 2], "cut.npum").expect_err("truncated");
    assert!(e.to_string().starts_with("cut.npum: corrupt model file"), "{e}");
    let e = modelfile::decode(b"GARBAGE!\x01\x00\x00\x00", "g.npum").expect_err("magic");
    assert_eq!(e.to_string(), "g.npum: not an npu model file (missing NPUMODEL magic)");
}

/// Version 3 `.npum` files end in the CRC-32 of everything before it (#22: a flipped
/// weight byte loaded as a different model); versions 1 and 2 are still read.
#[test]
fn a_flipped_byte_in_an_npum_file_is_refused_by_its_checksum() {
    let path = crate::repo_root().join("toolchain/zoo/models/mobilenet.npum");
    let bytes = std::fs::read(&path).expect("committed model");
    assert_eq!(&bytes[8..12], &[3, 0, 0, 0], "the committed zoo models are version 3");
    let n = bytes.len() - 4;
    assert_eq!(bytes[n..], crate::crc32_reference(&bytes[..n]).to_le_bytes());
    let model = modelfile::decode(&bytes, "m.npum").expect("decodes");
    let mut r = crate::Rng(0xf11c);
    for _ in 0..200 {
        let mut m = bytes.clone();
        let at = (r.next_u64() % (m.len() as u64 - 12)) as usize + 12;
        m[at] ^= 1 << (r.next_u64() % 8);
        let e = modelfile::decode(&m, "m.npum").expect_err("flipped");
        assert!(e.to_string().starts_with("m.npum: corrupt model file: checksum"), "byte {at}: {e}");
        assert!(e.to_string().contains("does not match the stored"), "byte {at}: {e}");
    }
    // Version 2 is version 3 without the checksum.
    let mut v2 = bytes[..n].to_vec();
    v2[8] = 2;
    assert_eq!(modelfile::decode(&v2, "v2.npum").expect("version 2"), model);
    // A byte after the body, resealed: trailing data.
    let mut longer = bytes[..n].to_vec();
    longer.push(0);
    longer.extend_from_slice(&crate::crc32_reference(&longer).to_le_bytes());
    let e = modelfile::decode(&longer, "x.npum").expect_err("trailing");
    assert_eq!(e.to_string(), "x.npum: corrupt model file: trailing data after the model (1 B)");
    let e = modelfile::decode(&bytes[..13], "short.npum").expect_err("short");
    assert_eq!(e.to_string(), "short.npum: corrupt model file: too short for its checksum");
    let mut v4 = bytes;
    v4[8] = 4;
    let e = modelfile::decode(&v4, "x.npum").expect_err("version 4");
    assert_eq!(e.to_string(), "x.npum: model file version 4 is not supported (expected 1..=3)");
}

/// LSQ/LSQ+'s surrogate of a rounded value: `s·(clamp(x/s + r + z, lo, hi) − z)`, the
/// rounding offset `r = round(x/s₀) − x/s₀` frozen at the point where the gradient is
/// taken (the straight-through estimator), the zero point `z` real.
fn lsq_surrogate(x: f64, s: f64, z: f64, r: f64, lo: f64, hi: f64) -> f64 {
    s * ((x / s + r + z).clamp(lo, hi) - z)
}

#[test]
fn lsq_step_derivatives_match_finite_differences_of_the_straight_through_surrogate() {
    let mut rng = Prng::new(41);
    let mut seen = [0usize; 3];
    for grid in [
        npu_train::Grid { scale: 0.25, zero_point: -3, lo: -8, hi: 7 },
        npu_train::Grid { scale: 0.013, zero_point: 0, lo: -128, hi: 127 },
        npu_train::Grid { scale: 0.5, zero_point: 0, lo: -1, hi: 1 },
    ] {
        let (s, z, lo, hi) =
            (f64::from(grid.scale), f64::from(grid.zero_point), f64::from(grid.lo), f64::from(grid.hi));
        for _ in 0..200 {
            // Inside and well outside the range, away from its edges (where the
            // surrogate has a kink).
            let x = rng.normal() * grid.scale * (grid.hi - grid.lo) as f32;
            let u = f64::from(x) / s;
            let r = u.round() - u;
            let q = u.round() + z;
            if (q - lo).abs() < 1.0 || (q - hi).abs() < 1.0 {
                continue;
            }
            seen[if q < lo {
                0
            } else if q > hi {
                2
            } else {
                1
            }] += 1;
            let (ds, dz) = grid.derivatives(x);
            let e = 1e-6;
            let f = |s: f64, z: f64| lsq_surrogate(f64::from(x), s, z, r, lo, hi);
            let num_s = (f(s + e, z) - f(s - e, z)) / (2.0 * e);
            let num_z = (f(s, z + e) - f(s, z - e)) / (2.0 * e);
            assert!((f64::from(ds) - num_s).abs() < 1e-4, "x {x} grid {grid:?}: ∂/∂s {ds} vs {num_s}");
            assert!((f64::from(dz) - num_z).abs() < 1e-4, "x {x} grid {grid:?}: ∂/∂z {dz} vs {num_z}");
            // And the surrogate's value at the point is the rounded value.
            let mut v = [x];
            grid.round(&mut v);
            assert!((f64::from(v[0]) - f(s, z)).abs() < 1e-6);
        }
    }
    assert!(seen.iter().all(|c| *c > 20), "below / inside / above: {seen:?}");
}

#[test]
fn lsq_activation_step_gradient_matches_finite_differences_where_the_loss_is_smooth() {
    // Every output of a dense layer clipped by its grid: the rounded values are
    // s·(lo − z) or s·(hi − z), smooth in s, so the loss's true derivative is LSQ's.
    let mut rng = Prng::new(7);
    let mut b = GraphBuilder::new();
    let x = b.input("x", vec![5]).expect("input");
    let w = b.constant("w", rand_tensor(&mut rng, &[6, 5], 1.0)).expect("w");
    let y = b.node("fc", Op::Dense { act: Activation::None }, &[x, w]).expect("fc");
    b.output(y).expect("out");
    let mut g = b.finish().expect("graph");
    let n = 3;
    let xs: Vec<f32> = (0..n * 5).map(|_| rng.normal() * 4.0).collect();
    let r: Vec<f32> = (0..n * 6).map(|_| rng.normal()).collect();
    let tape = npu_train::forward(&mut g, &xs, n, false).expect("forward");
    let raw = tape.vals[y].clone().expect("y");
    // A step small enough that every |y| is beyond the range by more than a step.
    let smallest = raw.iter().fold(f32::INFINITY, |m, v| m.min(v.abs()));
    let grid = npu_train::Grid { scale: smallest / 20.0, zero_point: 2, lo: -8, hi: 7 };
    let run = |g: &mut Graph, grid: npu_train::Grid| {
        let mut grids = vec![None; g.values.len()];
        grids[y] = Some(grid);
        let mut learn = vec![false; g.values.len()];
        learn[y] = true;
        let tape = npu_train::forward_learning(g, &xs, n, false, &grids, &learn).expect("forward");
        let out = tape.vals[y].clone().expect("y");
        let l: f64 = out.iter().zip(&r).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum();
        (l, tape)
    };
    let (_, tape) = run(&mut g, grid);
    assert!(tape.masks[&y].iter().all(|inside| !inside), "every output clipped");
    let grads = npu_train::backward_full(&g, &tape, r.clone());
    let (ds, dz) = grads.grids[&y];
    let e = grid.scale * 1e-3;
    let (lp, _) = run(&mut g, npu_train::Grid { scale: grid.scale + e, ..grid });
    let (lm, _) = run(&mut g, npu_train::Grid { scale: grid.scale - e, ..grid });
    let num = (lp - lm) / (2.0 * f64::from(e));
    assert!((ds - num).abs() <= 1e-3 * num.abs().max(1.0), "∂L/∂s {ds} vs {num}");
    // By hand: ∂L/∂z = Σ R·(−s) over every clipped element.
    let by_hand: f64 = r.iter().map(|v| -f64::from(*v) * f64::from(grid.scale)).sum();
    assert!((dz - by_hand).abs() <= 1e-6 * by_hand.abs().max(1.0), "∂L/∂z {dz} vs {by_hand}");
}

#[test]
fn lsq_weight_step_gradients_match_finite_differences_for_8_4_2_and_1_bit_layers() {
    use npu_quant::{Kind, Scheme, WeightBits, WeightScheme};
    use npu_train::qat;
    let m = npu_zoo::trained("cnn").expect("zoo");
    let train = npu_zoo::fashion_mnist_train_subset().expect("embedded").take(64);
    let mut scheme = Scheme::named("int8-per-channel").expect("scheme");
    let names: Vec<String> = npu_model::passes::for_quantization(&m.graph)
        .expect("optimizes")
        .nodes
        .iter()
        .filter(|n| matches!(n.op, Op::Conv2d { .. } | Op::Dense { .. }))
        .map(|n| n.name.clone())
        .collect();
    let ws = |kind, bits, per_channel| WeightScheme { kind, bits, per_channel, clip_sigma: None };
    // Layer by layer: INT8 per-channel (the scheme's), INT4 power-of-two per-channel,
    // ternary per-channel, binary per-tensor, INT4 per-tensor.
    let chosen = [
        None,
        Some(ws(Kind::Pow2, WeightBits::B4, true)),
        Some(ws(Kind::Symmetric, WeightBits::Ternary, true)),
        Some(ws(Kind::Symmetric, WeightBits::Binary, false)),
        Some(ws(Kind::Symmetric, WeightBits::B4, false)),
    ];
    assert_eq!(names.len(), chosen.len());
    for (name, w) in names.iter().zip(chosen) {
        if let Some(w) = w {
            scheme.overrides.push((name.clone(), w));
        }
    }
    let p = qat::prepare(&m, &scheme, &train, 64).expect("prepares");
    let lsq = qat::Lsq::new(&p, &scheme).expect("lsq");
    let latent = &p.model.graph;
    let (mut gq, _, _) = lsq.graph(latent).expect("graph");
    let n = 4;
    let x = crate::inputs(&m.preprocess, &train.take(n));
    let mut rng = Prng::new(3);
    let r: Vec<f32> = (0..n * 10).map(|_| rng.normal()).collect();
    let tape = npu_train::forward(&mut gq, &x, n, false).expect("forward");
    let mut grads = npu_train::backward_full(&gq, &tape, r.clone());
    let sg = lsq.gradients(latent, &mut grads);
    let given = lsq.weights(latent);
    let mut largest = 0f64;
    for (k, name) in names.iter().enumerate() {
        let qw = &given[name];
        let node = latent.nodes.iter().find(|nd| &nd.name == name).expect("node");
        let wid = node.inputs[1];
        let w = latent.values[wid].constant().expect("weights").data.clone();
        let (lo, hi) = match qw.bits {
            WeightBits::B8 => (-127.0, 127.0),
            WeightBits::B4 => (-7.0, 7.0),
            _ => (-1.0, 1.0),
        };
        let groups = qw.scale.len();
        let per = w.len() / groups;
        for c in (0..groups).step_by((groups / 4).max(1)) {
            let s0 = f64::from(qw.scale[c]);
            // L with group c's weights on the surrogate at step s (others as trained);
            // whether a weight is clipped is frozen too (a weight that rounds to the
            // last level sits on the surrogate's kink).
            let loss_at = |s: f64| {
                let mut g2 = gq.clone();
                if let Source::Const(t) = &mut g2.values[wid].source {
                    let group = c * per..(c + 1) * per;
                    for (slot, latent) in t.data[group.clone()].iter_mut().zip(&w[group]) {
                        let v = f64::from(*latent);
                        *slot = if qw.bits == WeightBits::Binary {
                            (s * if v >= 0.0 { 1.0 } else { -1.0 }) as f32
                        } else {
                            let q = (v / s0).round();
                            let inside = (lo..=hi).contains(&q);
                            (if inside { v + s * (q - v / s0) } else { s * q.clamp(lo, hi) }) as f32
                        };
                    }
                }
                loss(&mut g2, &x, n, &r, false)
            };
            let e = 2e-3;
            // θ = log₂ s: the difference quotient in θ (for power-of-two steps the
            // straight-through estimator's continuous θ).
            let num = (loss_at(s0 * 2f64.powf(e)) - loss_at(s0 * 2f64.powf(-e))) / (2.0 * e);
            let got = f64::from(sg.layers[k].0[c]);

            // ReLU and max-pool kinks downstream and f32 sums bound the agreement.
            assert!(
                (got - num).abs() <= 5e-2 * num.abs().max(got.abs()) + 2e-3,
                "{name} ({:?}) group {c}: ∂L/∂θ {got} vs {num}",
                qw.bits
            );
            largest = largest.max(num.abs());
        }
    }
    assert!(largest > 1.0, "a gradient large enough to test the scale factors: {largest}");
}
