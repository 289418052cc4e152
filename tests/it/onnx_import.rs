//! ONNX import against ONNX Runtime: the fixtures in `tests/fixtures/onnx/` were
//! exported by PyTorch (and TensorFlow via tf2onnx) and run by ONNX Runtime
//! (`generate.py` there); the importer and FP32 executor must reproduce ORT's outputs
//! within 1e-4 relative and its predictions on the whole test set image for image.

use std::path::PathBuf;

use npu_onnx::Error;

use crate::repo_root;

fn dir() -> PathBuf {
    repo_root().join("tests/fixtures/onnx")
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn models_with(suffix: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir())
        .expect("fixtures")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(suffix).map(str::to_string))
        .collect();
    v.sort();
    v
}

fn import(name: &str) -> npu_model::Model {
    npu_onnx::import(&read(&format!("{name}.onnx")), name).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_fixture_reproduces_onnx_runtime_outputs() {
    let names = models_with(".output.npy");
    assert!(names.len() >= 5, "{names:?}");
    for name in names {
        let m = import(&name);
        let x = crate::read_npy(&read(&format!("{name}.input.npy")), "input");
        let want = crate::read_npy(&read(&format!("{name}.output.npy")), "output");
        let n = x.shape[0];
        // The samples are the network's own inputs (no scaling), in the layout the model
        // declares or implies: through the data layer, as a user's samples go.
        let pre = npu_data::Preprocess { scale: 1.0, mean: vec![0.0], std: vec![1.0], layout: m.preprocess.layout };
        let array = npu_data::Array { values: npu_data::Elements::F32(x.to_f32()), dtype: "float32".into(), ..x };
        let ds = npu_data::Dataset::from_arrays(array, None, "input.npy").expect("data");
        let x = npu_model::Model { preprocess: pre, ..m.clone() }.inputs(&ds, 0..n).expect("fits the model");
        let got = npu_model::fp32::run(&m.graph, &[&x], n).expect("runs").swap_remove(0);
        assert_eq!(got.len(), want.to_f64().len(), "{name}");
        let mut worst = 0f64;
        for (g, w) in got.iter().zip(&want.to_f64()) {
            let rel = (f64::from(*g) - w).abs() / w.abs().max(1.0);
            worst = worst.max(rel);
        }
        assert!(worst <= 1e-4, "{name}: worst relative error {worst:e}");
        // The same after the optimization passes (BatchNorm folding, fusion).
        let opt = npu_model::passes::optimize(&m.graph).expect("optimizes");
        let got2 = npu_model::fp32::run(&opt, &[&x], n).expect("runs").swap_remove(0);
        for (a, b) in got2.iter().zip(&want.to_f64()) {
            assert!((f64::from(*a) - b).abs() <= 1e-4 * b.abs().max(1.0), "{name} optimized: {a} vs {b}");
        }
    }
}

#[test]
fn trained_models_predict_like_onnx_runtime_on_every_test_image() {
    let ds = npu_zoo::fashion_mnist_test().expect("embedded");
    let names = models_with(".predictions.npy");
    assert!(names.len() >= 3, "{names:?}");
    for name in names {
        let m = import(&name);
        assert!(m.has_preprocess, "{name} carries its preprocessing");
        let want = crate::read_npy(&read(&format!("{name}.predictions.npy")), "predictions");
        let (acc, preds) = m.evaluate(&ds, ds.len(), &mut |_| {}).expect("evaluates");
        let same = preds.iter().zip(&want.to_f64()).filter(|(p, w)| **p as f64 == **w).count();
        assert_eq!(same, ds.len(), "{name}: {same} of {} predictions agree with ONNX Runtime", ds.len());
        let labels = ds.labels().expect("labelled");
        let ort_correct = want.values.to_f64().iter().zip(labels).filter(|(p, l)| **p == f64::from(**l)).count();
        assert_eq!(acc.correct, ort_correct, "{name}");
    }
}

#[test]
fn exporter_variants_import_to_the_same_function() {
    // The same trained weights exported by the TorchScript exporter (opset 17, dynamic
    // batch, reshape via Shape/Gather/Unsqueeze/Concat) and the dynamo exporter (opset
    // 20, fixed batch, CastLike) compute the same logits.
    let a = import("mobile_res");
    let b = import("mobile_res_dynamo");
    let x = crate::read_npy(&read("mobile_res.input.npy"), "input").values.to_f32();
    let ya = npu_model::fp32::run(&a.graph, &[&x], 4).expect("runs").swap_remove(0);
    let yb = npu_model::fp32::run(&b.graph, &[&x], 4).expect("runs").swap_remove(0);
    for (p, q) in ya.iter().zip(&yb) {
        assert!((p - q).abs() <= 1e-4 * q.abs().max(1.0), "{p} vs {q}");
    }
}

#[test]
fn unsupported_operators_are_all_listed_in_one_error() {
    // The fixture's third node, a ceil-mode MaxPool, imports since issue #19, and so does
    // its Resize (nearest).
    let e = npu_onnx::import(&read("unsupported.onnx"), "unsupported.onnx").expect_err("unsupported");
    insta::assert_snapshot!("onnx_unsupported", e.to_string());
    assert!(matches!(e, Error::Unsupported { ref nodes, .. } if nodes.len() == 1));
}

#[test]
fn shape_mismatch_names_the_node() {
    let e = npu_onnx::import(&read("shape_mismatch.onnx"), "shape_mismatch.onnx").expect_err("mismatch");
    assert_eq!(
        e.to_string(),
        "shape_mismatch.onnx: invalid graph: node `classifier` (Dense): weight must be [Out, 784], got [10, 50]"
    );
}

#[test]
fn truncated_and_foreign_files_are_rejected() {
    let bytes = read("plain_cnn.onnx");
    let e = npu_onnx::import(&bytes[..bytes.len() / 2], "cut.onnx").expect_err("truncated");
    assert!(e.to_string().starts_with("cut.onnx: not a valid ONNX model: "), "{e}");
    let e = npu_onnx::import(b"this is a README, not a model\n", "README.md").expect_err("text");
    assert!(e.to_string().starts_with("README.md: not a valid ONNX model: "), "{e}");
    let e = npu_onnx::import(&[], "empty.onnx").expect_err("empty");
    assert_eq!(e.to_string(), "empty.onnx: not a valid ONNX model: it has no graph");
}

#[test]
fn channels_last_inputs_import_as_channel_first_images() {
    // tf2onnx's form: an NHWC input read through Transpose(0, 3, 1, 2), no metadata. The
    // IR's input is [C, H, W], the model's samples are channels-last, and the transposes
    // cancel before quantization. (Outputs: `every_fixture_reproduces_onnx_runtime_outputs`.)
    let m = import("nhwc_input");
    assert_eq!(m.input_shape(), &[3, 5, 6]);
    assert_eq!(m.preprocess.layout, npu_data::Layout::Nhwc);
    let opt = npu_model::passes::optimize(&m.graph).expect("optimizes");
    assert!(!opt.nodes.iter().any(|n| matches!(n.op, npu_model::ir::Op::Transpose { .. })), "{:?}", opt.nodes);
    // tf_cnn declares `layout=nhwc` for its [28, 28, 1] input, reshaped to [1, 28, 28]
    // by the exporter: the same input, and no reshape left.
    let t = import("tf_cnn");
    assert_eq!(t.input_shape(), &[1, 28, 28]);
    let opt = npu_model::passes::optimize(&t.graph).expect("optimizes");
    assert!(!opt
        .nodes
        .iter()
        .any(|n| matches!(n.op, npu_model::ir::Op::Transpose { .. } | npu_model::ir::Op::Reshape { .. })));
}
