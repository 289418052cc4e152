//! Operators beyond the zoo's (issue #19): the repository's own exporter fixtures that
//! used to stop at an operator now quantize, compile and simulate bit for bit; softmax,
//! padding and the transpose before a classifier's flatten, each checked against an
//! independent oracle (ONNX Runtime's outputs, hand-derived integers, the FP32 graph
//! before a pass).

use npu_data::{Array, Dataset, Elements};
use npu_model::ir::{GraphBuilder, Op, Tensor};
use npu_quant::{QOp, Scheme};

/// A fixture model, its inputs and ONNX Runtime's / the TFLite interpreter's outputs.
fn fixture(dir: &str, file: &str) -> (npu_model::Model, Dataset, Vec<f32>) {
    let root = crate::repo_root().join("tests/fixtures").join(dir);
    let stem = file.rsplit_once('.').map_or(file, |(s, _)| s);
    let bytes = std::fs::read(root.join(file)).expect("fixture");
    let mut m = if file.ends_with(".tflite") {
        npu_tflite::import(&bytes, file).expect("imports").model
    } else {
        npu_onnx::import(&bytes, file).unwrap_or_else(|e| panic!("{file} imports: {e}"))
    };
    // The fixtures' inputs are the networks' own (no scaling), in the model's layout.
    m.preprocess = npu_data::Preprocess { scale: 1.0, mean: vec![0.0], std: vec![1.0], layout: m.preprocess.layout };
    let x = crate::read_npy(&std::fs::read(root.join(format!("{stem}.input.npy"))).expect("input"), "x");
    let y = crate::read_npy(&std::fs::read(root.join(format!("{stem}.output.npy"))).expect("output"), "y").to_f32();
    let x = Array { values: Elements::F32(x.to_f32()), dtype: "float32".into(), ..x };
    let ds = Dataset::from_arrays(x, None, "input.npy").expect("data");
    (m, ds, y)
}

fn model(b: GraphBuilder) -> npu_model::Model {
    let graph = b.finish().expect("graph");
    npu_model::Model { name: "m".into(), graph, preprocess: npu_data::Preprocess::default(), has_preprocess: false }
}

fn quantize(m: &npu_model::Model, xs: &Array, scheme: &str) -> npu_quant::QModel {
    let ds = Dataset::from_arrays(xs.clone(), None, "x").expect("data");
    let source = npu_quant::RangeSource::Calibration { images: ds.len(), method: npu_quant::calib::Method::MinMax };
    npu_quant::quantize_model(m, &Scheme::named(scheme).expect("scheme"), &ds, source).expect("quantizes")
}

fn argmax(r: &[f32]) -> usize {
    r.iter().enumerate().fold((0, f32::MIN), |b, (i, v)| if *v > b.1 { (i, *v) } else { b }).0
}

#[test]
fn fixtures_that_stopped_at_an_operator_quantize_and_simulate_bit_exactly() {
    // ops_misc: Sub/Div input normalization, Pad, AvgPool counting its padding, Concat,
    // softmax; tf_cnn: NHWC input, Mul/Add BatchNorm, Transpose before the flatten;
    // res_tiny_folded: AvgPool with count_include_pad=1 and no padding; float_concat:
    // CONCATENATION and SOFTMAX from TensorFlow; resize, resize_modes: nearest Resize;
    // conv_transpose: ConvTranspose; pad_modes: reflect/edge/wrap Pad.
    for (dir, file) in [
        ("onnx", "ops_misc.onnx"),
        ("onnx", "tf_cnn.onnx"),
        ("onnx", "res_tiny_folded.onnx"),
        ("tflite", "float_concat.tflite"),
        // Resize (nearest): PyTorch's Upsample and interpolate; every ONNX coordinate and
        // rounding mode pair the importer maps.
        ("onnx", "resize.onnx"),
        ("onnx", "resize_modes.onnx"),
        // ConvTranspose as PyTorch writes it (DCGAN, output_padding, U-Net).
        ("onnx", "conv_transpose.onnx"),
        // Pad in reflect, edge and wrap modes (gathers of rows and columns).
        ("onnx", "pad_modes.onnx"),
        // Resize `linear` (PyTorch's bilinear interpolate, ONNX's modes): on the host CPU.
        ("onnx", "bilinear.onnx"),
        ("onnx", "bilinear_modes.onnx"),
        // Transpose of H and W and of C and H (PyTorch's permute): on the host CPU.
        ("onnx", "transpose.onnx"),
        // Div of two activations (a product with a reciprocal table), Add and Sub of a
        // [C, 1, 1] activation broadcast over the image.
        ("onnx", "elementwise.onnx"),
    ] {
        let (m, ds, reference) = fixture(dir, file);
        let n = ds.len();
        let source = npu_quant::RangeSource::Calibration { images: n, method: npu_quant::calib::Method::MinMax };
        let q = npu_quant::quantize_model(&m, &Scheme::named("int8-per-channel").expect("scheme"), &ds, source)
            .unwrap_or_else(|e| panic!("{file} quantizes: {e}"));
        let qin = q.int_inputs(&ds, 0..n).expect("inputs");
        let want = q.run_int(&qin, n).expect("int");
        // The integer model's outputs, dequantized, follow the reference runtime's.
        let qo = q.values[q.output].q;
        let per = reference.len() / n;
        let (mut agree, mut err) = (0, 0f32);
        let scale = reference.iter().fold(0f32, |a, v| a.max(v.abs()));
        for i in 0..n {
            let got: Vec<f32> = want[i * per..(i + 1) * per].iter().map(|v| qo.dequantize(*v)).collect();
            let r = &reference[i * per..(i + 1) * per];
            agree += usize::from(argmax(&got) == argmax(r));
            err = got.iter().zip(r).fold(err, |e, (a, b)| e.max((a - b).abs()));
        }
        assert!(err <= 0.1 * scale, "{file}: largest error {err} against outputs up to {scale}");
        // Classifiers pick the reference's classes (image outputs: the error bound only).
        let classifier = per <= 100;
        assert!(!classifier || agree * 10 >= n * 8, "{file}: {agree} of {n} classes agree with the reference runtime");
        for preset in ["edge-64", "edge-256", "edge-1k"] {
            let hw = npu_hw::preset(preset).expect("preset");
            let d =
                npu_app::Deployment::new(q.clone(), hw).unwrap_or_else(|e| panic!("{file} compiles on {preset}: {e}"));
            let t = d.timing().expect("times");
            let got = d.outputs(&t, &qin, 1, file, &npu_app::NoProgress).expect("runs");
            assert_eq!(got.concat(), want, "{file} on {preset}");
        }
    }
}

#[test]
fn a_quantized_softmax_outputs_probabilities_in_steps_of_1_256() {
    // Logits [2, 0, −1] at scale 1/16: softmax (0.8438, 0.1142, 0.0420) → 216, 29, 11
    // steps of 1/256 from −128: 88, −99, −117.
    let mut b = GraphBuilder::new();
    let x = b.input("x", vec![3]).expect("input");
    let s = b.node("sm", Op::Softmax { axis: 0 }, &[x]).expect("node");
    b.output(s).expect("output");
    let m = model(b);
    let xs = Array {
        shape: vec![2, 3],
        values: Elements::F32(vec![2.0, 0.0, -1.0, -1.0, 0.0, 2.0]),
        dtype: "float32".into(),
    };
    let ds = Dataset::from_arrays(xs.clone(), None, "x").expect("data");
    let q = quantize(&m, &xs, "int8-sym");
    assert!(matches!(q.layers[0].op, QOp::Softmax { .. }));
    let qo = q.values[q.output].q;
    assert_eq!((qo.scale, qo.zero_point), (1.0 / 256.0, -128));
    let qin = q.int_inputs(&ds, 0..2).expect("inputs");
    let got = q.run_int(&qin, 2).expect("runs");
    // Input scale (2 − (−1))/255 with a zero point: each integer within a step of the
    // real logit, so each probability within 2/256 of the exact one.
    let exact = |z: [f64; 3]| {
        let e: Vec<f64> = z.iter().map(|v| v.exp()).collect();
        let s: f64 = e.iter().sum();
        e.iter().map(|v| (v / s * 256.0).round() as i32 - 128).collect::<Vec<_>>()
    };
    let want = [exact([2.0, 0.0, -1.0]), exact([-1.0, 0.0, 2.0])].concat();
    assert_eq!(want, vec![88, -99, -117, -117, -99, 88]);
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() <= 2, "{got:?} vs {want:?}");
    }
}

#[test]
fn padding_fills_the_border_with_the_fill_integer() {
    // A 1×2×2 plane [[1, 2], [3, 4]] padded (top 1, left 0, bottom 0, right 2) with the
    // integer 9: rows [9 9 9 9], [1 2 9 9], [3 4 9 9].
    let mut b = GraphBuilder::new();
    let x = b.input("x", vec![1, 2, 2]).expect("input");
    let p = b.node("pad", Op::Pad { pads: vec![0, 1, 0, 0, 0, 2], value: 0.0 }, &[x]).expect("pad");
    b.output(p).expect("out");
    let m = model(b);
    let xs =
        Array { shape: vec![1, 1, 2, 2], values: Elements::F32(vec![-1.0, 0.0, 0.5, 1.0]), dtype: "float32".into() };
    let mut q = quantize(&m, &xs, "int8-sym");
    let QOp::Pad { pads, value } = &mut q.layers[0].op else { panic!("{:?}", q.layers[0].op) };
    assert_eq!(*pads, [1, 0, 0, 2]);
    // The float fill 0 is the zero point.
    assert_eq!(*value, q.values[0].q.zero_point);
    *value = 9;
    let got = q.run_int(&[1, 2, 3, 4], 1).expect("runs");
    assert_eq!(got, vec![9, 9, 9, 9, 1, 2, 9, 9, 3, 4, 9, 9]);
}

#[test]
fn a_transpose_before_the_flatten_folds_into_the_dense_weights() {
    // [2, 2, 3] → Transpose [1, 2, 0] (H, W, C order) → Flatten → Dense 12 → 2.
    let mut b = GraphBuilder::new();
    let x = b.input("x", vec![2, 2, 3]).expect("input");
    let t = b.node("t", Op::Transpose { perm: vec![1, 2, 0] }, &[x]).expect("t");
    let f = b.node("f", Op::Flatten, &[t]).expect("f");
    let w: Vec<f32> = (0..24).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
    let w = b.constant("w", Tensor { shape: vec![2, 12], data: w }).expect("w");
    let d = b.node("d", Op::Dense { act: npu_model::ir::Activation::None }, &[f, w]).expect("d");
    b.output(d).expect("out");
    let g = b.finish().expect("graph");
    let folded = npu_model::passes::fold_flatten_transpose(&g).expect("pass");
    assert!(!folded.nodes.iter().any(|n| matches!(n.op, Op::Transpose { .. })), "the transpose is gone");
    let xs: Vec<f32> = (0..24).map(|i| (i as f32 * 0.37).sin()).collect();
    let before = npu_model::fp32::run(&g, &[&xs], 2).expect("runs").remove(0);
    let after = npu_model::fp32::run(&folded, &[&xs], 2).expect("runs").remove(0);
    for (a, b) in before.iter().zip(&after) {
        assert!((a - b).abs() < 1e-5, "{before:?} vs {after:?}");
    }
}

#[test]
fn average_pooling_that_counts_its_padding_pools_explicit_zeros() {
    // A 3×3 average with padding 1 counted, over a 1×2×2 plane of ones: every window
    // holds the 4 ones and 5 zeros of padding — 4/9 everywhere.
    let mut b = GraphBuilder::new();
    let x = b.input("x", vec![1, 2, 2]).expect("input");
    let op = Op::AvgPool { kernel: [3, 3], stride: [1, 1], pad: [1, 1, 1, 1], count_include_pad: true };
    let p = b.node("p", op, &[x]).expect("p");
    b.output(p).expect("out");
    let g = npu_model::passes::explicit_pool_padding(&b.finish().expect("graph")).expect("pass");
    assert!(g.nodes.iter().any(|n| matches!(n.op, Op::Pad { .. })));
    let y = npu_model::fp32::run(&g, &[&[1.0; 4]], 1).expect("runs").remove(0);
    assert_eq!(y.len(), 4);
    for v in y {
        assert!((v - 4.0 / 9.0).abs() < 1e-6, "{v}");
    }
}

#[test]
fn layout_plumbing_reduces_to_what_moves_data() {
    // [3, 4, 5] → Transpose (1, 2, 0) → Transpose (2, 0, 1): the identity, removed.
    // [1, 4, 5] → Transpose (1, 2, 0) → [4, 5, 1] → Reshape [1, 4, 5]: removed too.
    // [3, 4, 5] → Transpose (0, 2, 1): data moves, kept.
    let mut b = GraphBuilder::new();
    let x = b.input("x", vec![3, 4, 5]).expect("input");
    let t1 = b.node("t1", Op::Transpose { perm: vec![1, 2, 0] }, &[x]).expect("t1");
    let t2 = b.node("t2", Op::Transpose { perm: vec![2, 0, 1] }, &[t1]).expect("t2");
    let t3 = b.node("t3", Op::Transpose { perm: vec![0, 2, 1] }, &[t2]).expect("t3");
    b.output(t3).expect("out");
    let g = npu_model::passes::simplify_layout(&b.finish().expect("graph")).expect("pass");
    assert_eq!(g.nodes.len(), 1);
    assert_eq!(g.nodes[0].op, Op::Transpose { perm: vec![0, 2, 1] });
    assert_eq!(g.nodes[0].inputs, g.inputs);

    let mut b = GraphBuilder::new();
    let x = b.input("x", vec![1, 4, 5]).expect("input");
    let t = b.node("t", Op::Transpose { perm: vec![1, 2, 0] }, &[x]).expect("t");
    let r = b.node("r", Op::Reshape { shape: vec![1, 4, 5] }, &[t]).expect("r");
    let y = b.node("y", Op::Relu, &[r]).expect("relu");
    b.output(y).expect("out");
    let g = npu_model::passes::simplify_layout(&b.finish().expect("graph")).expect("pass");
    assert_eq!(g.nodes.len(), 1, "{:?}", g.nodes);
    assert_eq!(g.nodes[0].inputs, g.inputs);
}

#[test]
fn reshapes_that_reorder_stored_bytes_simulate_like_the_integer_executor() {
    // [2, 4, 6] (stored pixel-major, HWC) reshaped to [1, 8, 6] (stored in CHW order)
    // and back to [2, 4, 6]: each a transposing DMA copy on the NPU, a no-op on the
    // integer executor's CHW arrays — the oracle.
    let mut rng = crate::Rng(0x5eed_0817);
    let mut b = GraphBuilder::new();
    let x = b.input("x", vec![1, 4, 6]).expect("input");
    let w1: Vec<f32> = (0..18).map(|_| rng.uniform() - 0.5).collect();
    let w1 = b.constant("w1", Tensor { shape: vec![2, 1, 3, 3], data: w1 }).expect("w1");
    let conv = |b: &mut GraphBuilder, name: &str, x, w| {
        let op = Op::Conv2d {
            stride: [1, 1],
            pad: [1; 4],
            dilation: [1, 1],
            groups: 1,
            act: npu_model::ir::Activation::None,
        };
        b.node(name, op, &[x, w]).expect("conv")
    };
    let c1 = conv(&mut b, "c1", x, w1);
    let r1 = b.node("r1", Op::Reshape { shape: vec![1, 8, 6] }, &[c1]).expect("r1");
    let w2: Vec<f32> = (0..9).map(|_| rng.uniform() - 0.5).collect();
    let w2 = b.constant("w2", Tensor { shape: vec![1, 1, 3, 3], data: w2 }).expect("w2");
    let c2 = conv(&mut b, "c2", r1, w2);
    let r2 = b.node("r2", Op::Reshape { shape: vec![2, 4, 6] }, &[c2]).expect("r2");
    b.output(r2).expect("out");
    let m = model(b);
    let xs: Vec<f32> = (0..4 * 24).map(|_| rng.uniform()).collect();
    let xs = Array { shape: vec![4, 1, 4, 6], values: Elements::F32(xs), dtype: "float32".into() };
    let q = quantize(&m, &xs, "int8-per-channel");
    assert_eq!(q.layers.iter().filter(|l| matches!(l.op, QOp::Reshape)).count(), 2);
    let ds = Dataset::from_arrays(xs, None, "x").expect("data");
    let qin = q.int_inputs(&ds, 0..4).expect("inputs");
    let want = q.run_int(&qin, 4).expect("int");
    for preset in ["edge-64", "edge-256", "edge-1k"] {
        let hw = npu_hw::preset(preset).expect("preset");
        let d = npu_app::Deployment::new(q.clone(), hw).expect("compiles");
        let t = d.timing().expect("times");
        let got = d.outputs(&t, &qin, 1, "reshape", &npu_app::NoProgress).expect("runs");
        assert_eq!(got.concat(), want, "{preset}");
    }
}

#[test]
fn a_flattened_image_read_by_more_than_a_dense_layer_is_in_chw_order() {
    // [2, 4, 6] flattened as the model's output, and flattened into a softmax: the
    // simulator's vector is the integer executor's (C, H, W order), not the HWC bytes.
    for softmax in [false, true] {
        let mut rng = crate::Rng(0x5eed_f1a7);
        let mut b = GraphBuilder::new();
        let x = b.input("x", vec![1, 4, 6]).expect("input");
        let w: Vec<f32> = (0..18).map(|_| rng.uniform() - 0.5).collect();
        let w = b.constant("w", Tensor { shape: vec![2, 1, 3, 3], data: w }).expect("w");
        let op = Op::Conv2d {
            stride: [1, 1],
            pad: [1; 4],
            dilation: [1, 1],
            groups: 1,
            act: npu_model::ir::Activation::None,
        };
        let c = b.node("c", op, &[x, w]).expect("conv");
        let mut y = b.node("f", Op::Flatten, &[c]).expect("flatten");
        if softmax {
            y = b.node("sm", Op::Softmax { axis: 0 }, &[y]).expect("softmax");
        }
        b.output(y).expect("out");
        let m = model(b);
        let xs: Vec<f32> = (0..4 * 24).map(|_| rng.uniform()).collect();
        let xs = Array { shape: vec![4, 1, 4, 6], values: Elements::F32(xs), dtype: "float32".into() };
        let q = quantize(&m, &xs, "int8-per-channel");
        let ds = Dataset::from_arrays(xs, None, "x").expect("data");
        let qin = q.int_inputs(&ds, 0..4).expect("inputs");
        let want = q.run_int(&qin, 4).expect("int");
        for preset in ["edge-64", "edge-256"] {
            let hw = npu_hw::preset(preset).expect("preset");
            let d = npu_app::Deployment::new(q.clone(), hw).expect("compiles");
            let t = d.timing().expect("times");
            let got = d.outputs(&t, &qin, 1, "flatten", &npu_app::NoProgress).expect("runs");
            assert_eq!(got.concat(), want, "softmax {softmax} on {preset}");
        }
    }
}

#[test]
fn activations_whose_range_collapses_are_named() {
    // A convolution with negative weights and a ReLU over positive inputs: every output
    // is 0, its range collapses to the smallest scale, and the quantizer names it — for
    // the scale-multiplier and the power-of-two schemes alike.
    let mut b = GraphBuilder::new();
    let x = b.input("x", vec![1, 2, 2]).expect("input");
    let w = b.constant("w", Tensor { shape: vec![1, 1, 1, 1], data: vec![-1.0] }).expect("w");
    let op =
        Op::Conv2d { stride: [1, 1], pad: [0; 4], dilation: [1, 1], groups: 1, act: npu_model::ir::Activation::Relu };
    let c = b.node("dead", op, &[x, w]).expect("conv");
    b.output(c).expect("out");
    let m = model(b);
    let xs = Array { shape: vec![2, 1, 2, 2], values: Elements::F32(vec![0.5; 8]), dtype: "float32".into() };
    for scheme in ["int8-per-channel", "int8-pow2"] {
        let q = quantize(&m, &xs, scheme);
        assert_eq!(q.collapsed_values(), vec![q.values[q.output].name.clone()], "{scheme}");
        assert_eq!(q.values[q.output].name, "dead", "{scheme}");
    }
}

#[test]
fn a_depthwise_window_over_the_whole_input_beyond_the_conv_fields_is_summed_in_chunks() {
    // A 40×37 depthwise window (TFLite's MEAN over a large map, or a global depthwise
    // convolution) exceeds the `conv` instruction's 15×15 kernel fields: the compiler sums
    // its 1,480 pixels in accumulating chunks. Oracle: the integer executor, with random
    // weights (so each chunk must read its own slice of them) and asymmetric weights (the
    // zero-point correction per chunk).
    let mut rng = crate::Rng(0x0915_0b41);
    let (c, h, w) = (24, 40, 37);
    let mut b = GraphBuilder::new();
    let x = b.input("x", vec![c, h, w]).expect("input");
    let wt: Vec<f32> = (0..c * h * w).map(|_| rng.uniform() - 0.3).collect();
    let wt = b.constant("w", Tensor { shape: vec![c, 1, h, w], data: wt }).expect("w");
    let op =
        Op::Conv2d { stride: [1, 1], pad: [0; 4], dilation: [1, 1], groups: c, act: npu_model::ir::Activation::None };
    let y = b.node("global", op, &[x, wt]).expect("conv");
    let f = b.node("flat", Op::Flatten, &[y]).expect("flatten");
    b.output(f).expect("out");
    let m = model(b);
    let xs: Vec<f32> = (0..3 * c * h * w).map(|_| rng.uniform()).collect();
    let xs = Array { shape: vec![3, c, h, w], values: Elements::F32(xs), dtype: "float32".into() };
    for scheme in ["int8-per-channel", "uint8-asym"] {
        let q = quantize(&m, &xs, scheme);
        let QOp::Conv2d { layer, .. } = &q.layers[0].op else { panic!("{scheme}: a convolution") };
        assert_eq!(layer.shape, [c, 1, h, w]);
        assert_eq!(layer.w_zero.iter().any(|z| *z != 0), scheme == "uint8-asym", "{scheme}: weight zero points");
        let ds = Dataset::from_arrays(xs.clone(), None, "x").expect("data");
        let qin = q.int_inputs(&ds, 0..3).expect("inputs");
        let want = q.run_int(&qin, 3).expect("int");
        // The sums must not be degenerate: the outputs differ between channels.
        assert!(want[..c].iter().any(|v| *v != want[0]), "{scheme}: {:?}", &want[..c]);
        for preset in ["edge-64", "edge-256", "edge-1k"] {
            let hw = npu_hw::preset(preset).expect("preset");
            let d = npu_app::Deployment::new(q.clone(), hw).expect("compiles");
            let t = d.timing().expect("times");
            let got = d.outputs(&t, &qin, 1, "global", &npu_app::NoProgress).expect("runs");
            assert_eq!(got.concat(), want, "{scheme} on {preset}");
        }
    }
}

#[test]
fn exporters_elementwise_chains_quantize_as_one_table_each() {
    // PyTorch's GELU (erf and tanh forms), Mish, PReLU (one slope, per-channel slopes),
    // x − sigmoid(x) and 1 − sigmoid(x), as the TorchScript exporter writes them. Oracles:
    // ONNX Runtime's outputs (FP32), the integer executor (simulator), and the functions'
    // formulas (the fused programs).
    let (m, ds, reference) = fixture("onnx", "functions.onnx");
    let n = ds.len();
    let x = ds.inputs(&m.graph.values[m.graph.inputs[0]].shape, &m.preprocess, 0..n).expect("inputs");
    let out = npu_model::fp32::run(&m.graph, &[&x], n).expect("runs").swap_remove(0);
    for (a, b) in out.iter().zip(&reference) {
        assert!((a - b).abs() <= 1e-4, "FP32 {a} vs ONNX Runtime {b}");
    }
    let g = npu_model::passes::optimize(&m.graph).expect("optimizes");
    let named =
        |name: &str| g.nodes.iter().filter(|n| matches!(&n.op, Op::Function { name: f, .. } if f == name)).count();
    assert_eq!(named("Gelu"), 2, "both GELU forms recognised");
    assert_eq!(named("Mish"), 1);
    // Nothing of the chains is left but their functions.
    assert!(!g.nodes.iter().any(|n| matches!(&n.op, Op::Function { name, .. } if name == "Erf")));
    let gelu = g.nodes.iter().find_map(|n| match &n.op {
        Op::Function { name, steps } if name == "Gelu" => Some(steps.clone()),
        _ => None,
    });
    let gelu = gelu.expect("a GELU");
    for (x, want) in [(1.0f32, 0.841_344_7f32), (-1.0, -0.158_655_3), (2.5, 2.484_470_1)] {
        let y = npu_model::ir::Step::eval(&gelu, x).expect("evaluates");
        assert!((y - want).abs() < 1e-3, "gelu({x}) = {y}, want {want}");
    }
    let source = npu_quant::RangeSource::Calibration { images: n, method: npu_quant::calib::Method::MinMax };
    let q = npu_quant::quantize_model(&m, &Scheme::named("int8-per-channel").expect("scheme"), &ds, source)
        .expect("quantizes");
    // Two GELUs, Mish, PReLU (one slope), PReLU's ReLU(−x), x − σ(x), 1 − σ(…): one table
    // each (a concatenation's input rescale aside).
    let luts: Vec<&str> = q
        .layers
        .iter()
        .filter(|l| matches!(l.op, QOp::Lut { .. }) && !l.name.contains(".rescale"))
        .map(|l| l.name.as_str())
        .collect();
    assert_eq!(luts.len(), 7, "{luts:?}");
    let qin = q.int_inputs(&ds, 0..n).expect("inputs");
    let want = q.run_int(&qin, n).expect("int");
    let qo = q.values[q.output].q;
    let scale = reference.iter().fold(0f32, |a, v| a.max(v.abs()));
    for (v, r) in want.iter().zip(&reference) {
        assert!((qo.dequantize(*v) - r).abs() <= 0.05 * scale, "{} vs {r}", qo.dequantize(*v));
    }
    for preset in ["edge-64", "edge-256", "edge-1k"] {
        let hw = npu_hw::preset(preset).expect("preset");
        let d = npu_app::Deployment::new(q.clone(), hw).expect("compiles");
        let t = d.timing().expect("times");
        let got = d.outputs(&t, &qin, 1, "functions", &npu_app::NoProgress).expect("runs");
        assert_eq!(got.concat(), want, "{preset}");
    }
}

#[test]
fn bilinear_resizes_follow_onnx_runtime_and_run_on_the_host_cpu() {
    // PyTorch's bilinear interpolate (pytorch_half_pixel, align_corners, a downsizing)
    // and ONNX Resize `linear` with half-pixel and asymmetric coordinates. Oracles: ONNX
    // Runtime's outputs for the FP32 executor; the integer executor for the simulator,
    // which runs the resizes on the host CPU (the NPU has no interpolation).
    for file in ["bilinear.onnx", "bilinear_modes.onnx"] {
        let (m, ds, reference) = fixture("onnx", file);
        let n = ds.len();
        let x = ds.inputs(&m.graph.values[m.graph.inputs[0]].shape, &m.preprocess, 0..n).expect("inputs");
        let out = npu_model::fp32::run(&m.graph, &[&x], n).expect("runs").swap_remove(0);
        assert_eq!(out.len(), reference.len(), "{file}");
        for (a, b) in out.iter().zip(&reference) {
            assert!((a - b).abs() <= 1e-4, "{file}: FP32 {a} vs ONNX Runtime {b}");
        }
        let resizes = m.graph.nodes.iter().filter(|n| matches!(n.op, Op::ResizeLinear { .. })).count();
        assert_eq!(resizes, if file == "bilinear.onnx" { 3 } else { 2 }, "{file}");
        let source = npu_quant::RangeSource::Calibration { images: n, method: npu_quant::calib::Method::MinMax };
        let q = npu_quant::quantize_model(&m, &Scheme::named("int8-per-channel").expect("scheme"), &ds, source)
            .expect("quantizes");
        let hw = npu_hw::preset("edge-256").expect("preset");
        let e = npu_compile::compile(&q, &hw).expect_err("no interpolation on the NPU");
        assert!(e.to_string().contains("the NPU has no bilinear interpolation"), "{e}");
        let d = npu_app::Deployment::new(q.clone(), hw).expect("compiles");
        let on_cpu: Vec<&str> = d.compiled.host.iter().map(|h| h.name.as_str()).collect();
        let bilinear: Vec<&str> =
            q.layers.iter().filter(|l| matches!(l.op, QOp::ResizeLinear { .. })).map(|l| l.name.as_str()).collect();
        assert_eq!(on_cpu, bilinear, "{file}");
    }
}

#[test]
fn float_tflite_resize_transpose_neg_exp_follow_the_interpreter_and_run_quantized() {
    // A float32 TFLite model (TensorFlow's converter) with RESIZE_BILINEAR, TRANSPOSE, NEG
    // and EXP. Oracles: the float interpreter's outputs (reference kernels) for the FP32
    // executor; the integer executor for the simulator.
    let (m, ds, reference) = fixture("tflite", "float_ops.tflite");
    let n = ds.len();
    let x = ds.inputs(&m.graph.values[m.graph.inputs[0]].shape, &m.preprocess, 0..n).expect("inputs");
    let out = npu_model::fp32::run(&m.graph, &[&x], n).expect("runs").swap_remove(0);
    assert_eq!(out.len(), reference.len());
    for (a, b) in out.iter().zip(&reference) {
        assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "FP32 {a} vs TFLite {b}");
    }
    let source = npu_quant::RangeSource::Calibration { images: n, method: npu_quant::calib::Method::MinMax };
    let q = npu_quant::quantize_model(&m, &Scheme::named("int8-per-channel").expect("scheme"), &ds, source)
        .expect("quantizes");
    // NEG and EXP become tables on the NPU; the resize and the transpose go to the CPU.
    let hw = npu_hw::preset("edge-256").expect("preset");
    let d = npu_app::Deployment::new(q.clone(), hw).expect("compiles");
    let hosted: Vec<&QOp> = d.compiled.host.iter().map(|h| &q.layers[h.layer].op).collect();
    assert!(matches!(hosted[..], [QOp::ResizeLinear { .. }, QOp::Transpose { .. }]), "{:?}", d.compiled.host);
    let qin = q.int_inputs(&ds, 0..n).expect("inputs");
    let want = q.run_int(&qin, n).expect("int");
    let t = d.timing().expect("times");
    let got = d.outputs(&t, &qin, 1, "float_ops", &npu_app::NoProgress).expect("runs");
    assert_eq!(got.concat(), want);
}
