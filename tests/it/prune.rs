//! Pruning: which weights each structure removes (on hand-made weights), that fine-tuning
//! keeps the zeros, and the command line.

use npu_model::ir::{Activation, Graph, GraphBuilder, Op, Tensor};
use npu_train::prune::{self, Prune, Scope, Structure};

use crate::cli::npu;

/// `x[4] → dense A [2, 4] → dense B [2, 2]`.
fn two_dense(a: &[f32], b: &[f32]) -> Graph {
    let mut g = GraphBuilder::new();
    let x = g.input("x", vec![4]).expect("input");
    let wa = g.constant("wa", Tensor::new(vec![2, 4], a.to_vec()).expect("t")).expect("c");
    let h = g.node("a", Op::Dense { act: Activation::None }, &[x, wa]).expect("node");
    let wb = g.constant("wb", Tensor::new(vec![2, 2], b.to_vec()).expect("t")).expect("c");
    let y = g.node("b", Op::Dense { act: Activation::None }, &[h, wb]).expect("node");
    g.output(y).expect("output");
    g.finish().expect("graph")
}

fn values(g: &Graph, name: &str) -> Vec<f32> {
    let v = g.values.iter().find(|v| v.name == name).expect("value");
    v.constant().expect("constant").data.clone()
}

fn pruned(g: &Graph, p: Prune) -> Graph {
    let mut g = g.clone();
    let m = prune::masks(&g, &p).expect("masks");
    prune::apply(&mut g, &m);
    g
}

#[test]
fn unstructured_pruning_zeroes_the_smallest_magnitudes_globally_or_per_layer() {
    let g = two_dense(&[0.1, -0.5, 0.3, 0.05, 2.0, -1.0, 0.2, 0.4], &[0.15, -3.0, 0.25, 1.0]);
    // 12 weights, 50 % → the 6 smallest |w| of all: 0.05, 0.1, 0.15, 0.2, 0.25, 0.3.
    let p = Prune { sparsity: 0.5, structure: Structure::Unstructured, scope: Scope::Global };
    let out = pruned(&g, p);
    assert_eq!(values(&out, "wa"), [0.0, -0.5, 0.0, 0.0, 2.0, -1.0, 0.0, 0.4]);
    assert_eq!(values(&out, "wb"), [0.0, -3.0, 0.0, 1.0]);
    // Per layer: 4 of A's 8 (0.05, 0.1, 0.2, 0.3) and 2 of B's 4 (0.15, 0.25) — here the same.
    let out = pruned(&g, Prune { scope: Scope::PerLayer, ..p });
    assert_eq!(values(&out, "wa"), [0.0, -0.5, 0.0, 0.0, 2.0, -1.0, 0.0, 0.4]);
    assert_eq!(values(&out, "wb"), [0.0, -3.0, 0.0, 1.0]);
    let p30 = Prune { sparsity: 0.3, structure: Structure::Unstructured, scope: Scope::PerLayer };
    // floor(0.3·8) = 2 of A (0.05, 0.1), floor(0.3·4) = 1 of B (0.15).
    let out = pruned(&g, p30);
    assert_eq!(values(&out, "wa"), [0.0, -0.5, 0.3, 0.0, 2.0, -1.0, 0.2, 0.4]);
    assert_eq!(values(&out, "wb"), [0.0, -3.0, 0.25, 1.0]);
    assert!(prune::masks(&g, &Prune { sparsity: 1.0, ..p }).is_err(), "sparsity must be below 1");
}

#[test]
fn channel_pruning_removes_whole_output_channels_by_mean_magnitude() {
    // A's channels: mean |w| 0.2375 and 0.9; B's: 1.575 and 0.625.
    let g = two_dense(&[0.1, -0.5, 0.3, 0.05, 2.0, -1.0, 0.2, 0.4], &[0.15, -3.0, 0.25, 1.0]);
    let p = Prune { sparsity: 0.5, structure: Structure::Channel, scope: Scope::PerLayer };
    let out = pruned(&g, p);
    assert_eq!(values(&out, "wa"), [0.0, 0.0, 0.0, 0.0, 2.0, -1.0, 0.2, 0.4]);
    assert_eq!(values(&out, "wb"), [0.15, -3.0, 0.0, 0.0]);
    // Globally, 2 of the 4 channels: the two smallest scores (0.2375 of A, 0.625 of B).
    let out = pruned(&g, Prune { scope: Scope::Global, ..p });
    assert_eq!(values(&out, "wa"), [0.0, 0.0, 0.0, 0.0, 2.0, -1.0, 0.2, 0.4]);
    assert_eq!(values(&out, "wb"), [0.15, -3.0, 0.0, 0.0]);
}

#[test]
fn n_of_m_pruning_keeps_the_largest_n_of_every_m_input_channels() {
    // A 1×1 convolution, 1 output channel, 8 input channels: two groups of 4.
    let mut b = GraphBuilder::new();
    let x = b.input("x", vec![8, 2, 2]).expect("input");
    let w = [0.4, -0.1, 0.3, 0.2, -0.05, 0.9, 0.6, -0.7];
    let wt = b.constant("w", Tensor::new(vec![1, 8, 1, 1], w.to_vec()).expect("t")).expect("c");
    let op = Op::Conv2d { stride: [1, 1], pad: [0; 4], dilation: [1, 1], groups: 1, act: Activation::None };
    let y = b.node("conv", op, &[x, wt]).expect("node");
    b.output(y).expect("out");
    let g = b.finish().expect("graph");
    let s = Structure::parse("2:4").expect("2:4");
    assert_eq!(s.fixed_sparsity(), Some(0.5));
    let out = pruned(&g, Prune { sparsity: 0.0, structure: s, scope: Scope::Global });
    assert_eq!(values(&out, "w"), [0.4, 0.0, 0.3, 0.0, 0.0, 0.9, 0.0, -0.7]);
    for bad in ["4:4", "0:4", "x:4", "2-4"] {
        assert!(Structure::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn fine_tuning_a_pruned_model_keeps_its_zeros_and_trains_the_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("cnn-60.npum");
    let out_s = out.to_str().expect("utf-8");
    let (code, text, err) =
        npu(&["prune", "zoo:cnn", "--sparsity", "0.6", "--finetune", "1", "--limit", "512", "-q", "-o", out_s]);
    assert_eq!(code, 0, "{err}");
    assert!(text.contains("fine-tune epoch 1/1") && text.contains("60.0%"), "{text}");
    let tuned = npu_model::modelfile::decode(&std::fs::read(&out).expect("written"), "m").expect("decodes");
    let orig = npu_zoo::trained("cnn").expect("zoo");
    let mut plain = orig.clone();
    let m =
        prune::masks(&plain.graph, &Prune { sparsity: 0.6, structure: Structure::Unstructured, scope: Scope::Global })
            .expect("masks");
    prune::apply(&mut plain.graph, &m);
    let (mut changed, mut zeros_kept) = (0, true);
    for (_, v, _) in prune::prunable(&plain.graph) {
        let name = &plain.graph.values[v].name;
        for (x, y) in values(&plain.graph, name).iter().zip(&values(&tuned.graph, name)) {
            if *x == 0.0 {
                zeros_kept &= *y == 0.0;
            } else {
                changed += usize::from(x != y);
            }
        }
    }
    assert!(zeros_kept, "every pruned weight is still zero");
    assert!(changed > 1000, "fine-tuning moved the kept weights ({changed})");
    // The CLI rejects a malformed structure with the reason.
    let (code, _, err) = npu(&["prune", "zoo:cnn", "--structure", "3:3", "-o", out_s]);
    assert_ne!(code, 0);
    assert!(err.contains("0 < N < M"), "{err}");
}

/// The curve of the application library: at sparsity 0 the model is the zoo model
/// (its FP32 top-1 on these images is the model's own evaluation, and per-channel INT8
/// stays within a point of it); at 0.5 unstructured half the weights are zero, and a
/// CNN pruned by half without fine-tuning loses accuracy but stays far above chance.
#[test]
fn the_prune_curve_measures_each_sparsity_from_the_model_it_is_given() {
    let model = npu_zoo::trained("cnn").expect("zoo");
    let test = npu_zoo::fashion_mnist_test().expect("test set").take(300);
    let train = npu_zoo::fashion_mnist_train_subset().expect("train subset").take(600);
    let mut seen = Vec::new();
    let points = npu_app::prune::curve(
        &model,
        Structure::Unstructured,
        Scope::Global,
        None,
        &[0.0, 0.5],
        &test,
        &train,
        &npu_app::NoProgress,
        &mut |p| seen.push(p.sparsity),
    )
    .expect("curve");
    assert_eq!(seen, [0.0, 0.5], "each point is reported as it is measured");
    let (own, _) = model.evaluate(&test, test.len(), &mut |_| {}).expect("evaluates");
    assert!(points[0].achieved < 0.01, "the zoo model is dense ({})", points[0].achieved);
    assert!((points[0].fp32 - own.top1() * 100.0).abs() < 1e-9);
    assert!((points[0].int8 - points[0].fp32).abs() <= 1.0, "{:?}", points[0]);
    assert!((points[1].achieved - 0.5).abs() < 0.001, "{:?}", points[1]);
    assert!(points[1].fp32 > 50.0 && points[1].fp32 <= points[0].fp32 + 1.0, "{:?}", points[1]);
}
