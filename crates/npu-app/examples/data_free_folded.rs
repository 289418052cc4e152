//! Data-free per-channel INT8 on BatchNorm-folded models: the table of
//! `docs/quantization.md` ("Data-free ranges without BatchNorm").
//!
//! ```sh
//! cargo run --release -p npu-app --example data_free_folded [-- IMAGES]
//! ```
//!
//! For each model — the three zoo models with BatchNorm folded into their convolutions
//! (as an export leaves them), the PyTorch export `tests/fixtures/onnx/res_tiny_folded.onnx`
//! and the Keras model converted to float TFLite `tests/fixtures/tflite/fmnist_bn_float.tflite`
//! — top-1 on the first IMAGES (default 10,000) embedded Fashion-MNIST test images: FP32,
//! data-free with propagated moments (what `--calib none` did before), data-free with
//! synthesised inputs (what it does now), and min/max calibration on 500 images of the
//! embedded training subset for reference.

use std::time::Instant;

use npu_quant::{calib::Method, RangeSource, Scheme};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn models() -> Res<Vec<(String, npu_model::Model)>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    let mut v = Vec::new();
    for name in ["cnn", "mobilenet", "resnet"] {
        let mut m = npu_zoo::trained(name)?;
        m.graph = npu_model::passes::fold_batchnorm(&m.graph)?;
        v.push((format!("zoo:{name}, BatchNorm folded"), m));
    }
    let onnx = std::fs::read(root.join("onnx/res_tiny_folded.onnx"))?;
    v.push(("res_tiny_folded.onnx (PyTorch export)".into(), npu_onnx::import(&onnx, "res_tiny_folded")?));
    let tfl = std::fs::read(root.join("tflite/fmnist_bn_float.tflite"))?;
    let mut m = npu_tflite::import(&tfl, "fmnist_bn_float")?.model;
    m.preprocess = npu_data::Preprocess { scale: 1.0 / 255.0, mean: vec![0.0], std: vec![1.0], ..m.preprocess };
    v.push(("fmnist_bn_float.tflite (Keras → TFLite)".into(), m));
    Ok(v)
}

fn main() -> Res<()> {
    let n: usize = std::env::args().nth(1).map(|s| s.parse()).transpose()?.unwrap_or(10_000);
    let test = npu_zoo::fashion_mnist_test()?;
    let train = npu_zoo::fashion_mnist_train_subset()?;
    let scheme = Scheme::named("int8-per-channel")?;
    let pct = |a: npu_model::Accuracy| format!("{:.2}", 100.0 * a.top1());
    println!("| model | FP32 | data-free, propagated moments | data-free, synthesised inputs | synthesis | calibrated (500 images) |");
    println!("|---|---|---|---|---|---|");
    for (label, m) in models()? {
        let fp = m.evaluate(&test, n, &mut |_| {})?.0;
        let before = npu_quant::quantize_model(&m, &scheme, &test, RangeSource::DataFree)?;
        let t = Instant::now();
        let (q, syn) = npu_app::quantize(&m, &scheme, &test, RangeSource::DataFree, Default::default())?;
        let secs = t.elapsed().as_secs_f64();
        let how = syn.map_or("none (BatchNorm statistics)".to_string(), |s| format!("{}, {secs:.1} s", s.describe()));
        let cal = RangeSource::Calibration { images: 500, method: Method::MinMax };
        let c = npu_quant::quantize_model(&m, &scheme, &train, cal)?;
        println!(
            "| {label} | {} | {} | {} | {how} | {} |",
            pct(fp),
            pct(before.evaluate_int(&test, n, &mut |_| {})?.0),
            pct(q.evaluate_int(&test, n, &mut |_| {})?.0),
            pct(c.evaluate_int(&test, n, &mut |_| {})?.0)
        );
    }
    Ok(())
}
