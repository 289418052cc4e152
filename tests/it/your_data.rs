//! Your model, your data: models and data sets npu did not make (fixtures written by
//! `tests/fixtures/data/generate.py` with ONNX Runtime, scikit-learn and Pillow, and the
//! TFLite interpreter's int8 fixtures) through every command, checked against the
//! reference implementations' committed outputs.

use std::path::PathBuf;

use crate::cli::npu;

fn fixture(name: &str) -> PathBuf {
    crate::repo_root().join("tests/fixtures/data").join(name)
}

fn p(path: &std::path::Path) -> &str {
    path.to_str().expect("utf-8 path")
}

fn npy(path: &std::path::Path) -> npu_data::Array {
    crate::read_npy(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())), "npy")
}

const MEAN: &str = "0.49,0.48,0.45";
const STD: &str = "0.25,0.24,0.26";

/// Largest absolute difference between two float arrays of the same length.
fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn argmax(v: &[f32]) -> usize {
    v.iter().enumerate().fold((0, f32::MIN), |b, (i, x)| if *x > b.1 { (i, *x) } else { b }).0
}

/// An RGB CNN on channels-last uint8 images with per-channel normalisation: npu's FP32
/// outputs are ONNX Runtime's.
#[test]
fn rgb_nhwc_uint8_with_per_channel_mean_std_gives_onnx_runtime_outputs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let y = dir.path().join("y.npy");
    let (model, x) = (fixture("rgb_cnn.onnx"), fixture("rgb_nhwc.npy"));
    let args = ["infer", p(&model), "--input", p(&x), "--layout", "nhwc", "--mean", MEAN, "--std", STD, "-o", p(&y)];
    let (code, _, err) = npu(&args);
    assert_eq!(code, 0, "{err}");
    let (got, want) = (npy(&y), npy(&fixture("rgb_cnn.ort.npy")));
    assert_eq!(got.shape, vec![64, 4]);
    let d = max_diff(&got.to_f32(), &want.to_f32());
    assert!(d < 1e-4, "largest difference from ONNX Runtime {d}");
    // The same data without --layout: refused, naming the flag that fixes it.
    let (code, _, err) = npu(&["infer", p(&model), "--input", p(&x), "-o", p(&y)]);
    assert_eq!(code, 1);
    assert!(err.contains("32×32×3 uint8") && err.contains("3×32×32") && err.contains("--layout nhwc"), "{err}");
    // Two means for three channels: refused.
    let (code, _, err) =
        npu(&["infer", p(&model), "--input", p(&x), "--layout", "nhwc", "--mean", "0.5,0.5", "-o", p(&y)]);
    assert_eq!(code, 1);
    assert!(err.contains("2 per-channel means/stds, but the model input 3×32×32 has 3 channels"), "{err}");
}

/// The data-set description carries layout, per-channel normalisation and labels (ONNX
/// Runtime's classes): FP32 top-1 is 64 of 64, and `compare` runs every scheme with
/// accuracy from the simulator's outputs.
#[test]
fn compare_runs_the_whole_table_on_an_rgb_data_set_description() {
    let model = fixture("rgb_cnn.onnx");
    let desc = fixture("rgb.ron");
    let (code, out, err) = npu(&["eval", p(&model), "--data", p(&desc), "-q"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("top-1 100.00% (64/64)"), "{out}");
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, out, err) = npu(&["compare", p(&model), "--data", p(&desc), "--calib", "64", "-o", p(dir.path()), "-q"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("top-1 on 64 samples of") && out.contains("calibrated on"), "{out}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("compare.json")).expect("json")).expect("parses");
    assert_eq!(json["metric"], "top1");
    let rows = json["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), npu::compare::row_keys().len());
    assert_eq!(rows[0]["score"], 100.0, "FP32 reproduces ONNX Runtime's classes");
    // Every quantized row ran on the simulator, unless its hardware lacks the MAC mode.
    for r in &rows[1..] {
        assert!(r["hw"].is_object() || r["error"].is_string(), "{r}");
        assert_eq!(r["images"], if r["error"].is_string() { 0 } else { 64 }, "{r}");
    }
    let csv = std::fs::read_to_string(dir.path().join("compare.csv")).expect("csv");
    assert!(csv.lines().next().expect("header").contains("top1_percent"), "{csv}");
}

/// A scikit-learn MLP on tabular features (the UCI wine data), as float64 features and
/// int64 labels in an `.npz`: npu's FP32 top-1 is scikit-learn's; quantizing with the
/// data as calibration set, or with no data, works on a 13-feature input; simulation
/// agrees with the integer executor.
#[test]
fn tabular_mlp_with_npz_data_matches_scikit_learn() {
    let model = fixture("wine_mlp.onnx");
    let data = fixture("wine.npz");
    let want = std::fs::read_to_string(fixture("wine_sklearn_accuracy.txt")).expect("fixture");
    let (code, out, err) = npu(&["eval", p(&model), "--data", p(&data), "-q"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("({})", want.trim())), "scikit-learn: {want}; npu: {out}");
    // FP32 outputs are ONNX Runtime's.
    let dir = tempfile::tempdir().expect("tempdir");
    let y = dir.path().join("y.npy");
    assert_eq!(npu(&["infer", p(&model), "--input", p(&data), "-o", p(&y)]).0, 0);
    assert!(max_diff(&npy(&y).to_f32(), &npy(&fixture("wine_mlp.ort.npy")).to_f32()) < 1e-4);
    // Calibrated on the data, and data-free: both run on the 13-feature input.
    let q = dir.path().join("q.npuq");
    let (code, out, err) = npu(&["quantize", p(&model), "--calib-data", p(&data), "--calib", "50", "-o", p(&q)]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("50 calibration samples of"), "{out}");
    let q0 = dir.path().join("q0.npuq");
    let (code, out, err) = npu(&["quantize", p(&model), "--calib", "none", "-o", p(&q0)]);
    assert_eq!(code, 0, "{err}");
    // No BatchNorm in an MLP: ranges from synthesised inputs (which take the features to
    // be 8-bit values; docs/quantization.md says to calibrate tabular data instead).
    assert!(out.contains("(data-free: BatchNorm statistics where there are any, else 32 synthesised inputs"), "{out}");
    // The simulator's accuracy is the integer executor's.
    let (code, int, err) = npu(&["eval", p(&q), "--data", p(&data), "--json", "-q"]);
    assert_eq!(code, 0, "{err}");
    let (code, sim, err) = npu(&["simulate", p(&q), "--data", p(&data), "--limit", "50", "--json", "-q"]);
    assert_eq!(code, 0, "{err}");
    let (int, sim): (serde_json::Value, serde_json::Value) =
        (serde_json::from_str(&int).expect("json"), serde_json::from_str(&sim).expect("json"));
    assert_eq!(int["correct"], sim["correct"], "integer executor and simulator");
    // A transposed array is refused with both shapes named.
    let xt = dir.path().join("xt.npy");
    std::fs::write(&xt, crate::npy_f32(&[13, 50], &vec![0.0; 650])).expect("writes");
    let (code, _, err) = npu(&["infer", p(&model), "--input", p(&xt), "-o", p(&y)]);
    assert_eq!(code, 1);
    assert!(err.contains("samples of 50 float32") && err.contains("the model takes 13"), "{err}");
}

/// An image folder of PNGs (one subfolder per class): decoded channels-last, labelled by
/// folder, giving ONNX Runtime's outputs.
#[test]
fn image_folder_of_pngs_gives_onnx_runtime_outputs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let y = dir.path().join("y.npy");
    let (model, folder) = (fixture("rgb_cnn.onnx"), fixture("folder"));
    let (code, _, err) = npu(&["infer", p(&model), "--input", p(&folder), "--mean", MEAN, "--std", STD, "-o", p(&y)]);
    assert_eq!(code, 0, "{err}");
    let d = max_diff(&npy(&y).to_f32(), &npy(&fixture("folder.ort.npy")).to_f32());
    assert!(d < 1e-4, "largest difference from ONNX Runtime {d}");
    let (code, out, err) = npu(&["eval", p(&model), "--data", p(&folder), "--mean", MEAN, "--std", STD, "-q"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("12 images, 3 classes"), "{out}");
    // The folder's classes against ONNX Runtime's picks.
    let ort = npy(&fixture("folder.ort.npy")).to_f32();
    let correct = ort.chunks(4).enumerate().filter(|(i, o)| argmax(o) == i / 4).count();
    assert!(out.contains(&format!("({correct}/12)")), "{out}");
}

/// Without labels, the default metric is agreement with the FP32 model; SQNR on request.
/// The quantized model keeps the preprocessing it was quantized with (shown by
/// `inspect`), so the evaluation needs no flags.
#[test]
fn unlabelled_data_is_scored_against_fp32() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (model, x) = (fixture("rgb_cnn.onnx"), fixture("rgb_nhwc.npy"));
    let q = dir.path().join("q.npuq");
    let pre = ["--layout", "nhwc", "--mean", MEAN, "--std", STD];
    let mut args = vec!["quantize", p(&model), "--calib-data", p(&x), "--calib", "64", "-o", p(&q)];
    args.extend(pre);
    let (code, _, err) = npu(&args);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = npu(&["inspect", p(&q)]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("x = (v · 0.003922 − [0.49, 0.48, 0.45]) / [0.25, 0.24, 0.26], samples NHWC"), "{out}");
    let (code, out, err) = npu(&["eval", p(&q), "--data", p(&x), "--json", "-q"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["metric"], "agreement");
    // Agreement worked out from the integer executor's outputs (`infer`) and ONNX
    // Runtime's FP32 outputs.
    let y = dir.path().join("y.npy");
    assert_eq!(npu(&["infer", p(&q), "--input", p(&x), "--engine", "int", "-o", p(&y)]).0, 0);
    let (int, ort) = (npy(&y).to_f32(), npy(&fixture("rgb_cnn.ort.npy")).to_f32());
    let same = int.chunks(4).zip(ort.chunks(4)).filter(|(a, b)| argmax(a) == argmax(b)).count();
    assert_eq!(v["value"].as_f64(), Some(same as f64 / 64.0), "{out}");
    let (code, out, err) = npu(&["eval", p(&q), "--data", p(&x), "--metric", "sqnr", "-q"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("SQNR") && out.contains("dB against FP32"), "{out}");
    let (code, _, err) = npu(&["eval", p(&q), "--data", p(&x), "--metric", "top1", "-q"]);
    assert_eq!(code, 1);
    assert!(err.contains("needs class labels") && err.contains("has none"), "{err}");
}

/// An int8 TFLite model fed its own int8 inputs: the TFLite interpreter's int8 outputs,
/// from the integer executor and from the simulator.
#[test]
fn int8_tflite_fed_its_own_int8_inputs_gives_the_interpreters_outputs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = crate::repo_root().join("tests/fixtures/tflite");
    let (model, x) = (t.join("int8_cnn.tflite"), t.join("int8_cnn.input.npy"));
    let want: Vec<f64> = npy(&t.join("int8_cnn.output.npy")).to_f64();
    for cmd in ["infer", "simulate"] {
        let y = dir.path().join(format!("{cmd}.npy"));
        let mut args = vec![cmd, p(&model), "--input", p(&x), "-o", p(&y), "-q"];
        if cmd == "infer" {
            args.extend(["--engine", "int"]);
        }
        let (code, _, err) = npu(&args);
        assert_eq!(code, 0, "{cmd}: {err}");
        let got = npy(&y);
        assert_eq!((got.shape.clone(), got.to_f64()), (vec![32, 10], want.clone()), "{cmd}");
    }
}

/// Calibration data that do not fit the model are an error, not replaced.
#[test]
fn calibration_data_that_do_not_fit_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, _, err) = npu(&[
        "quantize",
        p(&fixture("rgb_cnn.onnx")),
        "--calib-data",
        p(&fixture("wine.npz")),
        "-o",
        p(&dir.path().join("q.npuq")),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("the calibration data do not fit model") && err.contains("13 float64"), "{err}");
}

/// The zoo architectures are built for the data: `mlp` for 13 tabular features and 3
/// classes, `cnn` for 3×32×32 images and 4 classes; without test data the per-epoch
/// accuracy is the training set's, and says so. Three-dimensional samples without a
/// stated layout are refused.
#[test]
fn training_takes_your_data_and_builds_the_zoo_architectures_for_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let w = dir.path().join("wine.npum");
    let (wine, rgb) = (fixture("wine.npz"), fixture("rgb.ron"));
    let args = ["train", "mlp", "--data", p(&wine), "--epochs", "2", "--batch", "10", "-q", "-o", p(&w)];
    let (code, out, err) = npu(&args);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("training mlp on 50 images of") && out.contains("train-set top-1"), "{out}");
    let (code, out, err) = npu(&["inspect", p(&w)]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("input 13 per sample") && out.contains("3 "), "{out}");
    let r = dir.path().join("rgb.npum");
    let args = ["train", "cnn", "--data", p(&rgb), "--epochs", "1", "--batch", "16", "-q", "-o", p(&r)];
    let (code, _, err) = npu(&args);
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = npu(&["inspect", p(&r)]);
    assert_eq!(code, 0);
    assert!(out.contains("input 3×32×32 per sample") && out.contains("samples NHWC"), "{out}");
    assert!(out.lines().any(|l| l.contains("Dense") && l.trim_end().ends_with("512") && l.contains(" 4 ")), "{out}");
    // The description's per-channel normalisation is kept with the model.
    assert!(out.contains("[0.49, 0.48, 0.45]"), "{out}");
    let (x, y) = (fixture("rgb_nhwc.npy"), fixture("rgb_labels.npy"));
    let (code, _, err) = npu(&["train", "cnn", "--data", p(&x), "--labels", p(&y), "--epochs", "1", "-o", p(&r)]);
    assert_eq!(code, 1);
    assert!(err.contains("could be channels first or last: pass --layout nchw or --layout nhwc"), "{err}");
}

/// `compare` without labels scores agreement with FP32; on an int8 TFLite model fed its
/// own int8 inputs, its as-shipped row agrees with FP32 exactly where the TFLite
/// interpreter's outputs do.
#[test]
fn compare_without_labels_and_on_int8_inputs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (model, x) = (fixture("rgb_cnn.onnx"), fixture("rgb_nhwc.npy"));
    let args = [
        "compare",
        p(&model),
        "--data",
        p(&x),
        "--layout",
        "nhwc",
        "--mean",
        MEAN,
        "--std",
        STD,
        "--schemes",
        "fp32,int8-per-channel",
        "--calib",
        "64",
        "-o",
        p(dir.path()),
        "-q",
    ];
    let (code, out, err) = npu(&args);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("agreement against FP32 on 64 samples"), "{out}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("compare.json")).expect("json")).expect("parses");
    assert_eq!((json["metric"].as_str(), json["rows"][0]["score"].as_f64()), (Some("agreement"), Some(100.0)));

    let t = crate::repo_root().join("tests/fixtures/tflite");
    let (tfl, xi) = (t.join("int8_cnn.tflite"), t.join("int8_cnn.input.npy"));
    let out_dir = dir.path().join("tfl");
    let args = ["compare", p(&tfl), "--data", p(&xi), "--schemes", "fp32", "--calib", "32", "-o", p(&out_dir), "-q"];
    let (code, _, err) = npu(&args);
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("compare.json")).expect("json")).expect("parses");
    let shipped = json["rows"].as_array().expect("rows").iter().find(|r| r["key"] == "as-shipped").expect("row");
    // FP32 outputs of the float graph on the dequantized int8 inputs (`infer`), against the
    // interpreter's int8 outputs.
    let y = dir.path().join("fp32.npy");
    assert_eq!(npu(&["infer", p(&tfl), "--input", p(&xi), "-o", p(&y)]).0, 0);
    let fp32 = npy(&y).to_f32();
    let interp = npy(&t.join("int8_cnn.output.npy")).to_f32();
    let same = fp32.chunks(10).zip(interp.chunks(10)).filter(|(a, b)| argmax(a) == argmax(b)).count();
    assert_eq!(shipped["score"].as_f64(), Some(same as f64 / 32.0 * 100.0), "{shipped}");
}

/// `compare` runs its whole table on the tabular `.npz` and on the image folder; an
/// `.npz` description naming an array it lacks lists the arrays it has.
#[test]
fn compare_runs_on_npz_features_and_on_an_image_folder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (wine, mlp) = (fixture("wine.npz"), fixture("wine_mlp.onnx"));
    let out1 = dir.path().join("wine");
    let (code, out, err) = npu(&["compare", p(&mlp), "--data", p(&wine), "--calib", "50", "-o", p(&out1), "-q"]);
    assert_eq!(code, 0, "{err}");
    let want = std::fs::read_to_string(fixture("wine_sklearn_accuracy.txt")).expect("fixture");
    let (ok, total) = want.trim().split_once('/').expect("n/m");
    let pct = ok.parse::<f64>().expect("n") / total.parse::<f64>().expect("m") * 100.0;
    assert!(out.lines().any(|l| l.starts_with("FP32 reference") && l.contains(&format!("{pct:.2}"))), "{out}");
    let rows = std::fs::read_to_string(out1.join("compare.csv")).expect("csv").lines().count();
    assert_eq!(rows, 1 + npu::compare::row_keys().len());
    let (model, folder) = (fixture("rgb_cnn.onnx"), fixture("folder"));
    let out2 = dir.path().join("folder");
    let args = [
        "compare",
        p(&model),
        "--data",
        p(&folder),
        "--mean",
        MEAN,
        "--std",
        STD,
        "--calib",
        "12",
        "-o",
        p(&out2),
        "-q",
    ];
    let (code, out, err) = npu(&args);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("top-1 on 12 samples of") && out.contains("3 classes"), "{out}");
    let desc = dir.path().join("bad.ron");
    std::fs::write(&desc, format!("(inputs: {:?}, inputs_key: \"z\")", p(&wine))).expect("writes");
    let (code, _, err) = npu(&["eval", p(&mlp), "--data", p(&desc)]);
    assert_eq!(code, 1);
    assert!(err.contains("no array `z` (it has: x, y)"), "{err}");
}
