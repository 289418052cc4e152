//! The graph IR (builder checks, verifier), the FP32 executor on small cases worked
//! out by hand, and the graph passes (outputs unchanged within 1e-5).

use npu_model::fp32;
use npu_model::ir::{Activation, Graph, GraphBuilder, Op, Tensor};
use npu_model::passes;

fn t(shape: &[usize], data: &[f32]) -> Tensor {
    Tensor::new(shape.to_vec(), data.to_vec()).expect("consistent")
}

fn run1(g: &Graph, x: &[f32], n: usize) -> Vec<f32> {
    fp32::run(g, &[x], n).expect("runs").swap_remove(0)
}

#[test]
fn convolution_by_hand() {
    // 1×3×3 input 1..9, one 2×2 kernel [[1, 0], [0, −1]], bias 10, stride 1, no padding:
    // out[y][x] = in[y][x] − in[y+1][x+1] + 10 = −4 + 10 = 6 everywhere.
    let mut b = GraphBuilder::new();
    let x = b.input("x", vec![1, 3, 3]).expect("input");
    let w = b.constant("w", t(&[1, 1, 2, 2], &[1.0, 0.0, 0.0, -1.0])).expect("w");
    let bias = b.constant("b", t(&[1], &[10.0])).expect("b");
    let op = Op::Conv2d { stride: [1, 1], pad: [0; 4], dilation: [1, 1], groups: 1, act: Activation::None };
    let y = b.node("conv", op, &[x, w, bias]).expect("conv");
    b.output(y).expect("output");
    let g = b.finish().expect("graph");
    let input: Vec<f32> = (1..=9).map(|v| v as f32).collect();
    assert_eq!(run1(&g, &input, 1), vec![6.0; 4]);
    // With padding 1 all round and a ReLU6 fused: corners see fewer taps.
    // out[0][0] = 0 (pad) − in[0][0] + 10 = 9 → clipped to 6.
    let mut b = GraphBuilder::new();
    let x = b.input("x", vec![1, 3, 3]).expect("input");
    let w = b.constant("w", t(&[1, 1, 2, 2], &[1.0, 0.0, 0.0, -1.0])).expect("w");
    let bias = b.constant("b", t(&[1], &[10.0])).expect("b");
    let op = Op::Conv2d {
        stride: [2, 2],
        pad: [1; 4],
        dilation: [1, 1],
        groups: 1,
        act: Activation::Clip { lo: 0.0, hi: 6.0 },
    };
    let y = b.node("conv", op, &[x, w, bias]).expect("conv");
    b.output(y).expect("output");
    let g = b.finish().expect("graph");
    // Windows at (−1,−1), (−1,1), (1,−1), (1,1): 0−1, 0−3, 0−7, 5−9, plus 10: 9, 7, 3, 6,
    // clipped to [0, 6]: 6, 6, 3, 6.
    assert_eq!(run1(&g, &input, 1), vec![6.0, 6.0, 3.0, 6.0]);
}

#[test]
fn depthwise_and_grouped_convolution_match_per_channel_loops() {
    // Depthwise 3×3 on 2 channels with different kernels equals two single-channel convs.
    let mut b = GraphBuilder::new();
    let x = b.input("x", vec![2, 4, 4]).expect("input");
    let wv: Vec<f32> = (0..18).map(|i| (i as f32 - 9.0) / 4.0).collect();
    let w = b.constant("w", t(&[2, 1, 3, 3], &wv)).expect("w");
    let op = Op::Conv2d { stride: [1, 1], pad: [1; 4], dilation: [1, 1], groups: 2, act: Activation::None };
    let y = b.node("dw", op, &[x, w]).expect("dw");
    b.output(y).expect("out");
    let g = b.finish().expect("graph");
    let input: Vec<f32> = (0..32).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
    let got = run1(&g, &input, 1);
    for c in 0..2 {
        for oy in 0..4i32 {
            for ox in 0..4i32 {
                let mut want = 0.0;
                for ky in 0..3i32 {
                    for kx in 0..3i32 {
                        let (iy, ix) = (oy + ky - 1, ox + kx - 1);
                        if (0..4).contains(&iy) && (0..4).contains(&ix) {
                            want += input[c * 16 + (iy * 4 + ix) as usize] * wv[c * 9 + (ky * 3 + kx) as usize];
                        }
                    }
                }
                let g = got[c * 16 + (oy * 4 + ox) as usize];
                assert!((g - want).abs() < 1e-5, "c{c} ({oy},{ox}): {g} vs {want}");
            }
        }
    }
}

#[test]
fn pooling_dense_softmax_by_hand() {
    let mut b = GraphBuilder::new();
    let x = b.input("x", vec![1, 2, 2]).expect("input");
    // Max 2×2 of [1, 5, 3, 2] = 5; average with padding 1, window 2, stride 2, excluding
    // padding: corners each see one value: 1, 5, 3, 2; including padding: /4.
    let mx = b.node("max", Op::MaxPool { kernel: [2, 2], stride: [2, 2], pad: [0; 4] }, &[x]).expect("max");
    let avg_ex = b
        .node("avg_ex", Op::AvgPool { kernel: [2, 2], stride: [2, 2], pad: [1; 4], count_include_pad: false }, &[x])
        .expect("avg");
    let avg_in = b
        .node("avg_in", Op::AvgPool { kernel: [2, 2], stride: [2, 2], pad: [1; 4], count_include_pad: true }, &[x])
        .expect("avg");
    for v in [mx, avg_ex, avg_in] {
        b.output(v).expect("out");
    }
    let g = b.finish().expect("graph");
    let outs = fp32::run(&g, &[&[1.0, 5.0, 3.0, 2.0]], 1).expect("runs");
    assert_eq!(outs[0], vec![5.0]);
    assert_eq!(outs[1], vec![1.0, 5.0, 3.0, 2.0]);
    assert_eq!(outs[2], vec![0.25, 1.25, 0.75, 0.5]);

    // Dense [2] → [2] with W = [[1, 2], [3, 4]], b = [0.5, −0.5], then softmax.
    let mut b = GraphBuilder::new();
    let x = b.input("x", vec![2]).expect("input");
    let w = b.constant("w", t(&[2, 2], &[1.0, 2.0, 3.0, 4.0])).expect("w");
    let bb = b.constant("b", t(&[2], &[0.5, -0.5])).expect("b");
    let d = b.node("fc", Op::Dense { act: Activation::None }, &[x, w, bb]).expect("fc");
    let s = b.node("sm", Op::Softmax { axis: 0 }, &[d]).expect("sm");
    b.output(d).expect("out");
    b.output(s).expect("out");
    let g = b.finish().expect("graph");
    // Two samples: [1, 1] → [3.5, 6.5]; [0, −1] → [−1.5, −4.5].
    let outs = fp32::run(&g, &[&[1.0, 1.0, 0.0, -1.0]], 2).expect("runs");
    assert_eq!(outs[0], vec![3.5, 6.5, -1.5, -4.5]);
    let e = (-3.0f32).exp();
    let want = [e / (1.0 + e), 1.0 / (1.0 + e), 1.0 / (1.0 + e), e / (1.0 + e)];
    for (g, w) in outs[1].iter().zip(want) {
        assert!((g - w).abs() < 1e-6);
    }
}

#[test]
fn broadcasting_concat_pad_and_batchnorm() {
    let mut b = GraphBuilder::new();
    let x = b.input("x", vec![2, 1, 2]).expect("input");
    let c = b.constant("c", t(&[2, 1, 1], &[10.0, 20.0])).expect("c");
    let add = b.node("add", Op::Add, &[x, c]).expect("add");
    let cat = b.node("cat", Op::Concat { axis: 0 }, &[x, add]).expect("cat");
    let pad = b.node("pad", Op::Pad { pads: vec![0, 0, 1, 0, 0, 0], value: -1.0 }, &[x]).expect("pad");
    let p: Vec<usize> = ["g", "be", "m", "v"]
        .iter()
        .zip([[2.0, 1.0], [0.0, 1.0], [1.0, 0.0], [3.0, 0.0]])
        .map(|(n, d)| b.constant(n, t(&[2], &d)).expect("p"))
        .collect();
    let bn = b.node("bn", Op::BatchNorm { eps: 1.0 }, &[x, p[0], p[1], p[2], p[3]]).expect("bn");
    for v in [add, cat, pad, bn] {
        b.output(v).expect("out");
    }
    let g = b.finish().expect("graph");
    let outs = fp32::run(&g, &[&[1.0, 2.0, 3.0, 4.0]], 1).expect("runs");
    assert_eq!(outs[0], vec![11.0, 12.0, 23.0, 24.0]);
    assert_eq!(outs[1], vec![1.0, 2.0, 3.0, 4.0, 11.0, 12.0, 23.0, 24.0]);
    assert_eq!(outs[2], vec![-1.0, 1.0, 2.0, -1.0, 3.0, 4.0]);
    // Channel 0: (x − 1)/√(3+1)·2 + 0 = x − 1; channel 1: (x − 0)/√(0+1)·1 + 1 = x + 1.
    assert_eq!(outs[3], vec![0.0, 1.0, 4.0, 5.0]);
}

#[test]
fn builder_rejects_malformed_nodes_naming_them() {
    let mut b = GraphBuilder::new();
    let x = b.input("x", vec![3, 8, 8]).expect("input");
    let w = b.constant("w", t(&[4, 2, 3, 3], &[0.0; 72])).expect("w");
    let op = Op::Conv2d { stride: [1, 1], pad: [0; 4], dilation: [1, 1], groups: 1, act: Activation::None };
    let e = b.node("conv1", op, &[x, w]).expect_err("3 channels, weight for 2");
    assert_eq!(
        e.to_string(),
        "invalid graph: node `conv1` (Conv2d): weight has 2 input channels per group, the input has 3/1"
    );
    let e = b.node("fc", Op::Dense { act: Activation::None }, &[x, w]).expect_err("not flat");
    assert!(e.to_string().contains("node `fc` (Dense): expects a flat [F] input, got [3, 8, 8]"), "{e}");
    let big = Op::MaxPool { kernel: [9, 9], stride: [1, 1], pad: [0; 4] };
    let e = b.node("pool", big, &[x]).expect_err("window too big");
    assert!(e.to_string().contains("node `pool` (MaxPool): the [9, 9] window does not fit the 8×8 input"), "{e}");
    let e = b.node("r", Op::Reshape { shape: vec![5, 5] }, &[x]).expect_err("elements");
    assert!(e.to_string().contains("cannot reshape [3, 8, 8] (192 elements) to [5, 5] (25 elements)"), "{e}");
}

#[test]
fn verifier_catches_a_corrupted_graph() {
    let mut b = GraphBuilder::new();
    let x = b.input("x", vec![4]).expect("input");
    let r = b.node("relu", Op::Relu, &[x]).expect("relu");
    b.output(r).expect("out");
    let mut g = b.finish().expect("graph");
    g.verify().expect("valid");
    g.values[r].shape = vec![5];
    let e = g.verify().expect_err("shape edited");
    assert!(e.to_string().contains("node `relu` (Relu): output shape [5] should be [4]"), "{e}");
}

/// A small network with everything the passes touch: Conv+BN+ReLU, Dense+BN+ReLU6,
/// a dead branch and a constant subexpression.
fn net() -> Graph {
    let mut b = GraphBuilder::new();
    let x = b.input("x", vec![2, 6, 6]).expect("input");
    let wv: Vec<f32> = (0..4 * 2 * 9).map(|i| ((i * 37 % 17) as f32 - 8.0) / 10.0).collect();
    let w = b.constant("w", t(&[4, 2, 3, 3], &wv)).expect("w");
    let cb = b.constant("cb", t(&[4], &[0.1, -0.2, 0.3, 0.0])).expect("cb");
    let op = Op::Conv2d { stride: [1, 1], pad: [1; 4], dilation: [1, 1], groups: 1, act: Activation::None };
    let c = b.node("conv", op, &[x, w, cb]).expect("conv");
    let bn: Vec<usize> = [
        ("g", [1.5, 0.5, 1.0, 2.0]),
        ("be", [0.1, 0.2, -0.3, 0.0]),
        ("m", [0.2, -0.1, 0.0, 0.5]),
        ("v", [1.0, 2.0, 0.5, 0.25]),
    ]
    .iter()
    .map(|(n, d)| b.constant(n, t(&[4], d)).expect("bn p"))
    .collect();
    let c = b.node("bn", Op::BatchNorm { eps: 1e-5 }, &[c, bn[0], bn[1], bn[2], bn[3]]).expect("bn");
    let c = b.node("relu", Op::Relu, &[c]).expect("relu");
    let _dead = b.node("dead", Op::Sigmoid, &[c]).expect("dead");
    let f = b.node("flat", Op::Flatten, &[c]).expect("flat");
    let dw: Vec<f32> = (0..3 * 144).map(|i| ((i * 13 % 29) as f32 - 14.0) / 50.0).collect();
    let dwt = b.constant("dw", t(&[3, 144], &dw)).expect("dw");
    // A constant subexpression: bias = k + k.
    let k = b.constant("k", t(&[3], &[0.5, -1.0, 0.25])).expect("k");
    let kk = b.node("kk", Op::Add, &[k, k]).expect("kk");
    let d = b.node("fc", Op::Dense { act: Activation::None }, &[f, dwt]).expect("fc");
    let d = b.node("fc_bias", Op::Add, &[d, kk]).expect("bias");
    let d = b.node("clip", Op::Clip { lo: 0.0, hi: 6.0 }, &[d]).expect("clip");
    b.output(d).expect("out");
    b.finish().expect("graph")
}

fn assert_close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol * (1.0 + y.abs()), "element {i}: {x} vs {y}");
    }
}

#[test]
fn passes_keep_outputs_and_do_their_job() {
    let g = net();
    let input: Vec<f32> = (0..3 * 72).map(|i| ((i * 31 % 23) as f32 - 11.0) / 7.0).collect();
    let want = run1(&g, &input, 3);

    let folded = passes::constant_fold(&g).expect("fold");
    assert_close(&run1(&folded, &input, 3), &want, 1e-5);
    assert!(folded.nodes.iter().all(|n| n.name != "kk"), "the constant add is folded");

    let bn = passes::fold_batchnorm(&g).expect("bn");
    assert_close(&run1(&bn, &input, 3), &want, 1e-5);
    assert!(!bn.nodes.iter().any(|n| matches!(n.op, Op::BatchNorm { .. })));

    let fused = passes::fuse_activations(&bn).expect("fuse");
    assert_close(&run1(&fused, &input, 3), &want, 1e-5);
    assert!(fused.nodes.iter().any(|n| matches!(n.op, Op::Conv2d { act: Activation::Relu, .. })));
    assert!(!fused.nodes.iter().any(|n| n.name == "relu"));

    let live = passes::eliminate_dead(&g);
    assert_close(&run1(&live, &input, 3), &want, 1e-5);
    assert!(!live.nodes.iter().any(|n| n.name == "dead"));
    live.verify().expect("valid");

    let all = passes::optimize(&g).expect("optimize");
    assert_close(&run1(&all, &input, 3), &want, 1e-5);
    // conv (+relu fused), flatten, fc: the constant add after fc is a per-feature bias
    // (a BatchNorm with scale 1) folded into fc's bias, and the clip then fuses into fc.
    let names: Vec<&str> = all.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, vec!["conv", "flat", "fc"]);
    assert!(matches!(all.nodes[2].op, Op::Dense { act: Activation::Clip { .. } }));
}

#[test]
fn batch_size_and_chunking_do_not_change_results() {
    let g = net();
    let input: Vec<f32> = (0..37 * 72).map(|i| ((i * 31 % 23) as f32 - 11.0) / 7.0).collect();
    let all = run1(&g, &input, 37);
    for (k, chunk) in input.chunks(72).enumerate() {
        assert_eq!(run1(&g, chunk, 1), all[k * 3..(k + 1) * 3].to_vec());
    }
    let e = fp32::run(&g, &[&input[..100]], 2).expect_err("wrong size");
    assert!(e.to_string().contains("needs 2 × 72 values, got 100"), "{e}");
}
