//! The `npu` command line, run in-process through `npu::run`.

use std::path::Path;

use crate::repo_root;

/// Runs `npu ARGS…` and returns (exit status, stdout, stderr).
pub fn npu(args: &[&str]) -> (i32, String, String) {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let argv = std::iter::once("npu").chain(args.iter().copied());
    let code = npu::run(argv, &mut out, &mut err);
    (code, String::from_utf8_lossy(&out).into_owned(), String::from_utf8_lossy(&err).into_owned())
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn asm_then_disasm_then_asm_gives_identical_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = repo_root().join("programs/conv_relu.s");
    let bin = dir.path().join("a.bin");
    let (code, out, err) = npu(&["asm", s(&src), "-o", s(&bin)]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("7 instructions"), "{out}");
    let (code, listing, err) = npu(&["disasm", s(&bin)]);
    assert_eq!(code, 0, "{err}");
    let re = dir.path().join("re.s");
    std::fs::write(&re, listing).expect("write");
    let bin2 = dir.path().join("b.bin");
    assert_eq!(npu(&["asm", s(&re), "-o", s(&bin2)]).0, 0);
    assert_eq!(std::fs::read(&bin).expect("read"), std::fs::read(&bin2).expect("read"));
}

#[test]
fn malformed_assembly_exits_non_zero_with_located_diagnostics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("bad.s");
    std::fs::write(&src, "    nop\n    mm a=0\n").expect("write");
    let (code, _, err) = npu(&["asm", s(&src)]);
    assert_eq!(code, 1);
    assert!(err.contains("bad.s:2:5"), "{err}");
    assert!(err.contains("missing required operands"), "{err}");
    assert!(!dir.path().join("bad.bin").exists(), "no output on error");
}

#[test]
fn bad_files_are_errors_naming_the_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, _, err) = npu(&["disasm", s(&dir.path().join("missing.bin"))]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot read"), "{err}");

    let not_prog = dir.path().join("text.bin");
    std::fs::write(&not_prog, "hello world, not a program").expect("write");
    let (code, _, err) = npu(&["disasm", s(&not_prog)]);
    assert_eq!(code, 1);
    assert!(err.contains("not an npu program"), "{err}");

    // A valid program cut short in its second instruction.
    let good = dir.path().join("good.bin");
    assert_eq!(npu(&["asm", s(&repo_root().join("programs/dot.s")), "-o", s(&good)]).0, 0);
    let bytes = std::fs::read(&good).expect("read");
    let cut = dir.path().join("cut.bin");
    std::fs::write(&cut, &bytes[..16 + 32 + 10]).expect("write");
    let (code, _, err) = npu(&["disasm", s(&cut)]);
    assert_eq!(code, 1);
    assert!(err.contains("byte offset 48: file ends inside instruction 1"), "{err}");
}

#[test]
fn help_shows_an_example_for_each_subcommand() {
    for sub in ["asm", "disasm", "run", "inspect", "eval", "train", "zoo", "quantize", "infer"] {
        let (code, out, _) = npu(&[sub, "--help"]);
        assert_eq!(code, 0);
        assert!(out.contains("\nExample"), "{sub}: {out}");
    }
    let (code, _, err) = npu(&["frobnicate"]);
    assert_eq!(code, 2);
    assert!(err.contains("unrecognized subcommand"), "{err}");
}

#[test]
fn run_prints_the_report_and_dumps_memory() {
    let src = repo_root().join("programs/dot.s");
    let (code, out, err) = npu(&["run", s(&src), "--dump", "sram:0x100:4:i32", "--dump", "sram:0:2:i8"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("cycles on edge-256 at 500 MHz"), "{out}");
    assert!(out.contains("stalls: fetch"), "{out}");
    // The dot product of dot.s's vectors, computed by hand from its data section:
    // a = 37 −51 74 −104 −91 −80 59 −99 −19 −109 −84 94 86 −93 −5 −82,
    // b = 89 −98 −65 −14 −97 75 −103 −15 −105 −60 20 86 −55 −68 29 −36.
    let a = [37, -51, 74, -104, -91, -80, 59, -99, -19, -109, -84, 94, 86, -93, -5, -82];
    let b = [89, -98, -65, -14, -97, 75, -103, -15, -105, -60, 20, 86, -55, -68, 29, -36];
    let dot: i32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    assert!(out.contains(&format!("sram 0x100..0x104:\n  {dot}\n")), "{out}");
    assert!(out.contains("sram 0x0..0x2:\n  37 -51\n"), "{out}");
}

#[test]
fn run_writes_json_and_a_trace() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = repo_root().join("programs/conv_relu.s");
    let trace = dir.path().join("t.json");
    let (code, out, err) = npu(&["run", s(&src), "--hw", "edge-1k", "--json", "--trace", s(&trace)]);
    assert_eq!(code, 0, "{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).expect("pure JSON on stdout");
    assert_eq!(doc["schema"], "npu.run/1");
    assert!(doc["npu"].as_str().is_some_and(|v| v.starts_with(env!("CARGO_PKG_VERSION"))), "{out}");
    assert_eq!(doc["trap"], serde_json::Value::Null);
    let report = &doc["report"];
    assert_eq!(report["hw"], "edge-1k");
    assert_eq!(report["macs"]["total"], 576); // 4·4 pixels · 2 channels · 3·3·2 taps
    let t: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&trace).expect("trace written")).expect("JSON");
    assert!(t["traceEvents"].as_array().is_some_and(|a| a.len() > 5));
    // Timing-only gives the same report.
    let (code, fast, _) = npu(&["run", s(&src), "--hw", "edge-1k", "--json", "--timing-only"]);
    assert_eq!(code, 0);
    assert_eq!(fast, out);
}

#[test]
fn run_reports_bad_input_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = repo_root().join("programs/dot.s");
    let (code, _, err) = npu(&["run", s(&src), "--hw", "edge-9"]);
    assert_eq!(code, 2, "a bad flag value is a usage error");
    assert!(err.contains("unknown hardware preset `edge-9`"), "{err}");
    let bad = dir.path().join("bad.ron");
    let text = npu_hw::preset("edge-256").expect("preset").to_ron().replace("rows: 16", "rows: 0");
    std::fs::write(&bad, text).expect("write");
    let (code, _, err) = npu(&["run", s(&src), "--hw", s(&bad)]);
    assert_eq!(code, 2);
    assert!(err.contains("`mac.rows` must be in 1..=1024 (got 0)"), "{err}");
    let (code, _, err) = npu(&["run", s(&src), "--dump", "flash:0:4"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown memory `flash`"), "{err}");
    let (code, _, err) = npu(&["run", s(&src), "--dump", "sram:0x1ffffe:4"]);
    assert_eq!(code, 1);
    assert!(err.contains("outside the 2097152-byte sram memory"), "{err}");
}

#[test]
fn run_exits_non_zero_on_a_trap_after_reporting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("trap.s");
    std::fs::write(&src, "mm mode=xnor a=0 b=0 c=0 m=1 k=1 n=1\n").expect("write");
    let (code, out, err) = npu(&["run", s(&src), "--hw", "edge-64"]);
    assert_eq!(code, 1);
    assert!(out.contains("cycles on edge-64"), "the report up to the trap is printed: {out}");
    assert!(
        err.contains("trap at instruction 0 (`mm` on mac, dispatch #0): the hardware `edge-64` has no `xnor` mode"),
        "{err}"
    );
}

#[test]
fn inspect_lists_layers_and_totals() {
    let model = repo_root().join("tests/fixtures/onnx/plain_cnn.onnx");
    let (code, out, err) = npu(&["inspect", s(&model)]);
    assert_eq!(code, 0, "{err}");
    // Conv 1→16 3×3 on 28×28: 28·28·16·9 = 112,896 MACs, 16·9 + 16 = 160 parameters.
    assert!(out.contains("112896"), "{out}");
    assert!(out.lines().any(|l| l.contains("Conv2d") && l.contains("160")), "{out}");
    // Conv 16→32 3×3 on 14×14: 14·14·32·144 = 903,168; Dense 1568→64: 100,352; 64→10: 640.
    let total = 112_896 + 903_168 + 100_352 + 640;
    assert!(out.contains(&format!("{total} MACs per image")), "{out}");
    insta::assert_snapshot!("inspect_plain_cnn", out);
}

#[test]
fn eval_reports_top1_on_the_embedded_test_set() {
    let model = repo_root().join("tests/fixtures/onnx/plain_cnn.onnx");
    let (code, out, err) = npu(&["eval", s(&model), "--limit", "1000", "-q"]);
    assert_eq!(code, 0, "{err}");
    // ONNX Runtime's predictions for the first 1,000 test images (fixture), against the labels.
    let preds = crate::read_npy(
        &std::fs::read(repo_root().join("tests/fixtures/onnx/plain_cnn.predictions.npy")).expect("fixture"),
        "predictions",
    )
    .values
    .to_f64();
    let ds = npu_zoo::fashion_mnist_test().expect("embedded");
    let labels = ds.labels().expect("labelled");
    let correct = (0..1000).filter(|&i| preds[i] == f64::from(labels[i])).count();
    assert!(out.contains(&format!("({correct}/1000)")), "{out}");
}

#[test]
fn eval_reads_a_data_directory_and_rejects_bad_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = repo_root().join("tests/fixtures/onnx/plain_cnn.onnx");
    let (code, _, err) = npu(&["eval", s(&model), "--data", s(dir.path())]);
    assert_eq!(code, 1);
    assert!(err.contains("neither IDX files (t10k-/train-images-idx3-ubyte[.gz]) nor class subfolders"), "{err}");
    // Two images in raw IDX: all zeros labelled 0 and 1.
    let images = npu_data::write_idx(&[2, 28, 28], &[0; 2 * 784]);
    std::fs::write(dir.path().join("t10k-images-idx3-ubyte"), images).expect("write");
    std::fs::write(dir.path().join("t10k-labels-idx1-ubyte"), npu_data::write_idx(&[2], &[0, 1])).expect("write");
    let (code, out, err) = npu(&["eval", s(&model), "--data", s(dir.path()), "-q"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("/2) on") && out.contains("t10k-images-idx3-ubyte (2 images)"), "{out}");
    // With train-* files beside them, compare calibrates on those, not on the test images.
    let train = npu_data::write_idx(&[3, 28, 28], &[9; 3 * 784]);
    std::fs::write(dir.path().join("train-images-idx3-ubyte"), train).expect("write");
    std::fs::write(dir.path().join("train-labels-idx1-ubyte"), npu_data::write_idx(&[3], &[0, 1, 2])).expect("write");
    let out_dir = dir.path().join("cmp");
    let args = ["compare", s(&model), "--data", s(dir.path()), "--schemes", "fp32,int8-sym", "--calib", "3"];
    let (code, out, err) = npu(&[&args[..], &["-o", s(&out_dir), "-q"]].concat());
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("calibrated on") && out.contains("train-images-idx3-ubyte (3 images)"), "{out}");
    let (code, _, err) = npu(&["eval", s(&dir.path().join("x.txt"))]);
    assert_eq!(code, 1);
    assert!(err.contains("unknown model format"), "{err}");
}

#[test]
fn train_writes_a_checkpoint_that_eval_and_inspect_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_path = dir.path().join("tiny.npum");
    let test = crate::fmnist_test_set(dir.path(), 500);
    let (code, out, err) = npu(&[
        "train",
        "resnet",
        "--epochs",
        "1",
        "--limit",
        "256",
        "--batch",
        "32",
        "--test-data",
        s(&test),
        "-q",
        "-o",
        s(&out_path),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("training resnet on 256 images"), "{out}");
    assert!(out.contains("epoch 1: loss"), "{out}");
    let (code, out, err) = npu(&["eval", s(&out_path), "--limit", "200", "-q"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("/200) on the embedded Fashion-MNIST test set"), "{out}");
    let (code, out, _) = npu(&["inspect", s(&out_path)]);
    assert_eq!(code, 0);
    assert!(out.contains("GlobalAvgPool"), "{out}");
    let (code, _, err) = npu(&["train", "transformer", "-o", s(&out_path)]);
    assert_eq!(code, 1);
    assert!(err.contains("unknown model format"), "{err}");
}

#[test]
fn zoo_models_are_available_by_name() {
    let (code, out, err) = npu(&["zoo"]);
    assert_eq!(code, 0, "{err}");
    for name in ["zoo:cnn", "zoo:mobilenet", "zoo:resnet", "zoo:mobilenetv2-224"] {
        assert!(out.contains(name), "{out}");
    }
    let (code, out, err) = npu(&["inspect", "zoo:mobilenet"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("DepthwiseConv2d"), "{out}");
    let (code, _, err) = npu(&["eval", "zoo:lenet"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("no zoo architecture `lenet` (expected one of: cnn, mobilenet, resnet, mobilenetv2-224)"),
        "{err}"
    );
}

#[test]
fn quantize_report_cuts_long_tflite_layer_names_to_their_column() {
    // A Keras export: TFLite names a fused convolution by every op folded into it
    // (`functional_1_1/functional_1/re_lu_1/Relu;…/batchnorm/sub1`, 200+ characters).
    let dir = tempfile::tempdir().expect("tempdir");
    let model = repo_root().join("tests/fixtures/tflite/fmnist_bn_float.tflite");
    let q = dir.path().join("q.npuq");
    let (code, out, err) = npu(&["quantize", s(&model), "--calib", "8", "-o", s(&q)]);
    assert_eq!(code, 0, "{err}");
    let header = out.lines().find(|l| l.starts_with("layer ")).expect("header");
    let rows: Vec<&str> = out.lines().filter(|l| l.contains(" w8/ch ") || l.contains(" input's ")).collect();
    assert!(rows.len() >= 5, "{out}");
    for row in &rows {
        // Every row as wide as the header: the name is cut to the 28-character column,
        // its start and end kept around an ellipsis.
        assert_eq!(row.chars().count(), header.chars().count(), "{row}");
    }
    assert!(rows.iter().any(|r| r.starts_with("functional_1_…batchnorm/sub1 conv")), "{out}");
    // JSON keeps names whole.
    let (code, out, err) = npu(&["quantize", s(&model), "--calib", "8", "-o", s(&q), "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("functional_1_1/functional_1/re_lu_1/Relu;"), "{out}");
}

#[test]
fn quantize_eval_and_infer_with_every_engine() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = repo_root().join("tests/fixtures/onnx/plain_cnn.onnx");
    let q = dir.path().join("q.npuq");
    let (code, out, err) = npu(&["quantize", s(&model), "--scheme", "int8-per-channel", "--calib", "100", "-o", s(&q)]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("quantized with int8-per-channel (100 calibration samples of the embedded Fashion-MNIST training subset, min/max)"), "{out}");
    assert!(out.contains("SQNR dB") && out.contains("conv w8/ch"), "{out}");
    // Each layer says where its range came from and how its weights were rounded.
    assert!(out.contains("range from") && out.lines().any(|l| l.contains("calibration  nearest")), "{out}");
    let (code, out, err) = npu(&["eval", s(&q), "--limit", "300", "-q"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("int8-per-channel integer reference"), "{out}");
    // Four preprocessed test images, through each engine.
    let ds = npu_zoo::fashion_mnist_test().expect("embedded").take(4);
    let x = crate::inputs(&npu_data::Preprocess::default(), &ds);
    let xin = dir.path().join("x.npy");
    std::fs::write(&xin, crate::npy_f32(&[4, 1, 28, 28], &x)).expect("write");
    for engine in ["fp32", "fake-quant", "int"] {
        let y = dir.path().join(format!("{engine}.npy"));
        let (code, _, err) = npu(&["infer", s(&q), "--input", s(&xin), "--output", s(&y), "--engine", engine]);
        assert_eq!(code, 0, "{engine}: {err}");
        let arr = crate::read_npy(&std::fs::read(&y).expect("written"), "y");
        assert_eq!(arr.shape, vec![4, 10]);
        let want = if engine == "int" { "int32" } else { "float32" };
        assert_eq!(arr.dtype, want);
        if engine == "int" {
            assert!(arr.values.to_f64().iter().all(|v| (-128.0..=127.0).contains(v)), "int8 outputs");
        }
    }
    let (code, _, err) =
        npu(&["infer", s(&model), "--input", s(&xin), "--output", s(&dir.path().join("z.npy")), "--engine", "int"]);
    assert_eq!(code, 2);
    assert!(err.contains("--engine int: it needs a quantized model"), "{err}");
    let (code, _, err) = npu(&["quantize", s(&model), "--scheme", "int7", "-o", s(&q)]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown scheme `int7`"), "{err}");
}

#[test]
fn binary_pointwise_recipe_binarizes_the_pointwise_layers_and_keeps_depthwise_at_8_bits() {
    // docs/recipes/binary-pointwise.ron, as retraining.md uses it on the zoo MobileNet.
    let dir = tempfile::tempdir().expect("tempdir");
    let q = dir.path().join("q.npuq");
    let recipe = repo_root().join("docs/recipes/binary-pointwise.ron");
    let (code, out, err) = npu(&["quantize", "zoo:mobilenet", "--recipe", s(&recipe), "--calib", "16", "-o", s(&q)]);
    assert_eq!(code, 0, "{err}");
    let kinds: Vec<(&str, &str)> = out
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 2 && ["conv", "dwconv", "dense"].contains(&f[1])).then(|| (f[1], f[2]))
        })
        .collect();
    // conv1 (a 3x3 on the image, pinned), 5 depthwise, 11 pointwise, fc20 (pinned).
    assert_eq!(kinds.len(), 18, "{out}");
    for (i, (op, bits)) in kinds.iter().enumerate() {
        let want = if i == 0 || *op != "conv" { "w8/ch" } else { "w1/ch" };
        assert_eq!(*bits, want, "layer {i} ({op}): {out}");
    }
    assert_eq!(kinds.iter().filter(|(op, _)| *op == "dwconv").count(), 5, "{out}");
}

#[test]
fn quantize_recipes_layer_flags_and_fixes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = repo_root().join("tests/fixtures/onnx/plain_cnn.onnx");
    let q = dir.path().join("q.npuq");
    let recipe = repo_root().join("docs/recipes/mixed-w4.ron");
    let (code, out, err) = npu(&["quantize", s(&model), "--recipe", s(&recipe), "--calib", "64", "-o", s(&q)]);
    assert_eq!(code, 0, "{err}");
    // First conv pinned to 8 bits, the second overridden to 8, the hidden dense at 4, the last pinned.
    let kinds: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("/f/") && (l.contains(" conv ") || l.contains(" dense ")))
        .map(|l| l.split_whitespace().nth(2).unwrap_or(""))
        .collect();
    assert_eq!(kinds, vec!["w8/ch", "w8/ch", "w4/ch", "w8/ch"], "{out}");
    let (code, out, err) = npu(&[
        "quantize",
        s(&model),
        "--scheme",
        "int8-sym",
        "--layer",
        "/f/f.9/Gemm=2",
        "--cle",
        "--bias-correction",
        "analytical",
        "--calib",
        "none",
        "-o",
        s(&q),
    ]);
    assert_eq!(code, 0, "{err}");
    // Its dense layers have no BatchNorm statistics: their ranges come from synthesised inputs.
    assert!(out.contains("(data-free: BatchNorm statistics where there are any, else 32 synthesised inputs (noise, then 30 inversion steps;"), "{out}");
    assert!(out.contains("), cross-layer equalization, analytical bias correction)"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("/f/f.9/Gemm") && l.contains("dense w2t/ch")), "{out}");
    let (code, _, err) = npu(&["quantize", s(&model), "--layer", "nope=4", "-o", s(&q)]);
    assert_eq!(code, 1);
    assert!(err.contains("no layer `nope`"), "{err}");
    let bad = dir.path().join("bad.ron");
    std::fs::write(&bad, "(name: \"x\")").expect("write");
    let (code, _, err) = npu(&["quantize", s(&model), "--recipe", s(&bad), "-o", s(&q)]);
    assert_eq!(code, 1);
    assert!(err.contains("not a valid recipe"), "{err}");
}

#[test]
fn compile_and_simulate_report_per_layer_and_accuracy_from_the_simulator() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = repo_root().join("tests/fixtures/onnx/plain_cnn.onnx");
    let q = dir.path().join("q.npuq");
    assert_eq!(npu(&["quantize", s(&model), "--calib", "100", "-o", s(&q)]).0, 0);
    let build = dir.path().join("build");
    let (code, out, err) = npu(&["compile", s(&q), "--hw", "edge-64", "-o", s(&build)]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("for edge-64"), "{out}");
    for f in ["program.bin", "program.s", "dram.bin", "model.npuq", "hw.ron", "compiled.ron"] {
        assert!(build.join(f).is_file(), "{f}");
    }
    let listing = std::fs::read_to_string(build.join("program.s")).expect("listing");
    assert!(listing.contains("; layer /f/f.0/Conv"), "{listing}");
    // The listing reassembles to the program binary.
    let (code, _, err) = npu(&["asm", s(&build.join("program.s")), "-o", s(&dir.path().join("re.bin"))]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read(build.join("program.bin")).expect("bin"),
        std::fs::read(dir.path().join("re.bin")).expect("bin")
    );
    let (code, out, err) = npu(&["simulate", s(&build), "--limit", "30", "-q"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("cycles on edge-64"), "{out}");
    assert!(out.contains("/f/f.9/Gemm") && out.contains("off-chip"), "{out}");
    // Accuracy from the simulator equals the integer reference on the same images.
    let (_, int_out, _) = npu(&["eval", s(&q), "--limit", "30", "-q"]);
    let frac = |t: &str| {
        let line = t.lines().find(|l| l.contains("top-1")).unwrap_or("");
        line.split('(').nth(1).and_then(|r| r.split(')').next()).map(str::to_string)
    };
    assert_eq!(frac(&out), frac(&int_out), "{out}\n{int_out}");
    let (code, json, _) = npu(&["simulate", s(&q), "--hw", "edge-1k", "--timing-only", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(v["hw"], "edge-1k");
    assert_eq!(v["layers"].as_array().map(Vec::len), Some(6));
    // Layers overlap; the cycles attributed to them sum to the run's total.
    let attributed: u64 = v["layers"].as_array().expect("layers").iter().filter_map(|l| l["cycles"].as_u64()).sum();
    assert_eq!(attributed, v["report"]["total_cycles"].as_u64().expect("total"));
    let ratio = v["roofline"]["ratio"].as_f64().expect("ratio");
    assert!(ratio >= 1.0, "{ratio}");
    // Any model compiles directly, quantized on the way.
    let build = dir.path().join("resnet");
    let (code, out, err) = npu(&["compile", "zoo:resnet", "--scheme", "w4a8-per-channel", "-o", s(&build)]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("resnet (w4a8-per-channel) for edge-256"), "{out}");
}

#[test]
fn qat_with_learned_step_sizes_writes_a_shift_only_model_that_simulates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let q = dir.path().join("lsq.npuq");
    let test_data = crate::fmnist_test_set(dir.path(), 300);
    let args = [
        "qat",
        "zoo:cnn",
        "--test-data",
        s(&test_data),
        "--scheme",
        "int8-pow2",
        "--lsq",
        "--epochs",
        "1",
        "--limit",
        "256",
        "--calib",
        "100",
        "-q",
        "-o",
        s(&q),
    ];
    let (code, out, err) = npu(&args);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("QAT with learned step sizes of cnn under int8-pow2"), "{out}");
    assert!(out.contains("epoch 1:") && out.contains("(integer executor)"), "{out}");
    // Power-of-two scales stayed powers of two: the model compiles to shifts and runs.
    let (code, out, err) = npu(&["simulate", s(&q), "--limit", "20", "-q"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("top-1"), "{out}");
    // Learned ranges and per-epoch recalibration exclude each other.
    let (code, _, err) = npu(&[&args[..], &["--recalibrate"]].concat());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--recalibrate") && err.contains("--lsq"), "{err}");
}

#[test]
fn qat_and_quantized_training_write_models_that_compile_and_simulate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let q = dir.path().join("qat.npuq");
    // Accuracy before and after the epoch on 500 test images, not 10,000.
    let test_data = crate::fmnist_test_set(dir.path(), 500);
    let (code, out, err) = npu(&[
        "qat",
        "zoo:resnet",
        "--test-data",
        s(&test_data),
        "--scheme",
        "w4a8-per-channel",
        "--epochs",
        "1",
        "--limit",
        "256",
        "--calib",
        "100",
        "-q",
        "-o",
        s(&q),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("before: test top-1") && out.contains("epoch 1:") && out.contains("(integer executor)"),
        "{out}"
    );
    let (code, out, err) = npu(&["simulate", s(&q), "--limit", "20", "-q"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("top-1"), "{out}");
    // From scratch with binary weights: the saved weights are on the binary grid, so
    // quantizing them again with binary-weights changes no weight (the per-channel
    // scaling factor, a mean recomputed in f32, to within rounding).
    let m = dir.path().join("bin.npum");
    let (code, out, err) = npu(&[
        "train",
        "cnn",
        "--quantized",
        "binary-weights",
        "--epochs",
        "1",
        "--limit",
        "256",
        "--test-data",
        s(&test_data),
        "-q",
        "-o",
        s(&m),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("with quantized operators"), "{out}");
    let model = npu_model::modelfile::decode(&std::fs::read(&m).expect("model"), "bin.npum").expect("decodes");
    // BatchNorm's running statistics are learned under fake quantization too (regression:
    // they were updated in the per-step fake-quant graph and lost).
    let mean = model.graph.values.iter().find(|v| v.name == "conv1.bn.mean").and_then(|v| v.constant()).expect("bn");
    assert!(mean.data.iter().any(|v| *v != 0.0), "running mean never updated");
    let scheme = npu_quant::Scheme::named("binary-weights").expect("scheme");
    let again = npu_train::qat::quantized_weights(&model.graph, &scheme);
    for (a, b) in model.graph.values.iter().zip(&again.values) {
        if let (Some(x), Some(y)) = (a.constant(), b.constant()) {
            for (u, v) in x.data.iter().zip(&y.data) {
                assert!(
                    u.signum() == v.signum() && (u - v).abs() <= 1e-4 * u.abs().max(1e-6),
                    "{}: {u} vs {v}",
                    a.name
                );
            }
        }
    }
    let (code, _, err) = npu(&["train", "cnn", "--quantized", "int3", "--epochs", "1", "-o", s(&m)]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown scheme `int3`"), "{err}");
}

#[test]
fn simulate_output_is_the_integer_executors_tensor_byte_for_byte() {
    let dir = tempfile::tempdir().expect("tempdir");
    let q = dir.path().join("m.npuq");
    assert_eq!(npu(&["quantize", "zoo:resnet", "--scheme", "uint8-asym", "--calib", "100", "-o", s(&q)]).0, 0);
    // Five preprocessed test images as a float .npy batch.
    let m = npu_zoo::trained("resnet").expect("zoo");
    let test = npu_zoo::fashion_mnist_test().expect("embedded").take(5);
    let x = crate::inputs(&m.preprocess, &test);
    let input = dir.path().join("x.npy");
    std::fs::write(&input, crate::npy_f32(&[5, 1, 28, 28], &x)).expect("writes");
    let (sim, int) = (dir.path().join("sim.npy"), dir.path().join("int.npy"));
    let (code, _, err) = npu(&["simulate", s(&q), "--input", s(&input), "--output", s(&sim), "-q"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = npu(&["infer", s(&q), "--input", s(&input), "--output", s(&int), "--engine", "int"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(&sim).expect("sim"), std::fs::read(&int).expect("int"));
}

/// `npu simulate --jobs N` replays on N threads and says how fast (`replay` in --json:
/// the images, threads and seconds it reports agree); the outputs do not depend on N.
#[test]
fn simulate_jobs_report_the_replay_speed_and_change_no_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    let speed = crate::repo_root().join("tests/fixtures/speed");
    let (model, input) = (speed.join("resnet8.tflite"), speed.join("resnet8.input.npy"));
    let mut outputs = Vec::new();
    for jobs in ["1", "2"] {
        let y = dir.path().join(format!("y{jobs}.npy"));
        let (code, json, err) =
            npu(&["simulate", s(&model), "--input", s(&input), "--jobs", jobs, "-o", s(&y), "--json", "-q"]);
        assert_eq!(code, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(&json).expect("json");
        let r = &v["replay"];
        assert_eq!(r["threads"].as_u64(), Some(jobs.parse().unwrap()), "{r}");
        let (rate, seconds) = (r["images_per_second"].as_f64().unwrap(), r["seconds"].as_f64().unwrap());
        assert!(seconds > 0.0 && (rate * seconds - 4.0).abs() < 1e-6, "{r}");
        outputs.push(std::fs::read(&y).expect("written"));
    }
    assert_eq!(outputs[0], outputs[1]);
    let (code, out, _) = npu(&["simulate", s(&model), "--input", s(&input), "--jobs", "1", "-q"]);
    assert_eq!(code, 0);
    assert!(out.contains("replayed 4 inputs bit-exactly in ") && out.contains("images/s, 1 thread)"), "{out}");
    let (code, _, err) = npu(&["simulate", s(&model), "--timing-only", "--jobs", "2"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--jobs") && err.contains("--timing-only"), "{err}");
}

/// The regression guarded: `npu simulate DIR` recompiled `model.npuq` instead of running
/// the `program.bin` that `npu compile` wrote. A program whose weights were edited after
/// compiling must run as edited (with `--modified-program`; without it the checksum
/// refuses it); a program or manifest that does not match is refused, naming the file.
#[test]
fn simulate_dir_runs_the_program_compile_wrote() {
    let dir = tempfile::tempdir().expect("tempdir");
    let build = dir.path().join("build");
    let (code, _, err) = npu(&["compile", "zoo:cnn", "--scheme", "int8-sym", "--hw", "edge-64", "-o", s(&build)]);
    assert_eq!(code, 0, "{err}");
    // The manifest describes the input and output as the model does.
    let manifest = std::fs::read_to_string(build.join("compiled.ron")).expect("manifest");
    let q = npu_quant::npuq::decode(&std::fs::read(build.join("model.npuq")).expect("npuq"), "m").expect("decodes");
    for needle in
        ["format: 2", "hw: \"edge-64\"", "shape: [\n            1,\n            28,\n            28,\n        ]"]
    {
        assert!(manifest.contains(needle), "{needle} not in\n{manifest}");
    }
    let m = npu_zoo::trained("cnn").expect("zoo");
    let test = npu_zoo::fashion_mnist_test().expect("embedded").take(4);
    let x = crate::inputs(&m.preprocess, &test);
    let input = dir.path().join("x.npy");
    std::fs::write(&input, crate::npy_f32(&[4, 1, 28, 28], &x)).expect("writes");
    let run = |name: &str| {
        let out = dir.path().join(name);
        let (code, _, err) =
            npu(&["simulate", s(&build), "--input", s(&input), "--output", s(&out), "--modified-program", "-q"]);
        assert_eq!(code, 0, "{err}");
        let a = crate::read_npy(&std::fs::read(&out).expect("output"), name);
        a.values.to_f32().chunks(a.shape[1..].iter().product()).map(<[f32]>::to_vec).collect::<Vec<_>>()
    };
    let before = run("before.npy");
    assert_ne!(before[0], before[1], "different images give different logits");
    // Zero the off-chip image in program.bin (packed weights, biases and requantization
    // records; edge-64 has no decompressor, so every weight is a plain byte): every layer
    // then computes the same integers for every input.
    let bin = build.join("program.bin");
    let original = std::fs::read(&bin).expect("bin");
    let mut p = npu_isa::Program::from_bytes(&original).expect("program");
    let weights: usize = q
        .layers
        .iter()
        .map(|l| match &l.op {
            npu_quant::QOp::Conv2d { layer, .. } | npu_quant::QOp::Dense { layer } => layer.weights.len(),
            _ => 0,
        })
        .sum();
    assert!(p.data[0].bytes.len() >= weights);
    let last = q
        .layers
        .iter()
        .rev()
        .find_map(|l| match &l.op {
            npu_quant::QOp::Dense { layer } => Some(layer.weights.len()),
            _ => None,
        })
        .expect("a dense classifier");
    assert!(last > 0);
    for b in p.data[0].bytes.iter_mut() {
        *b = 0;
    }
    std::fs::write(&bin, p.to_bytes().expect("encodes")).expect("writes");
    // Only when the user says the edit is deliberate.
    let (code, _, err) = npu(&["simulate", s(&build), "-q", "--limit", "2"]);
    assert_eq!(code, 1);
    assert!(err.contains("the program has checksum") && err.contains("compile again"), "{err}");
    let after = run("after.npy");
    assert!(after.iter().all(|o| *o == after[0]), "zeroed weights: every input gives the same logits");
    assert_ne!(after[0], before[0]);
    // A program that does not match its manifest, and a corrupt one, are refused by name.
    let (code, _, err) = npu(&["asm", s(&repo_root().join("programs/dot.s")), "-o", s(&bin)]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = npu(&["simulate", s(&build), "-q", "--limit", "2"]);
    assert_eq!(code, 1);
    assert!(err.contains("compiled.ron") && err.contains("instructions"), "{err}");
    std::fs::write(&bin, b"not a program").expect("writes");
    let (code, _, err) = npu(&["simulate", s(&build), "-q", "--limit", "2"]);
    assert_eq!(code, 1);
    assert!(err.contains("program.bin"), "{err}");
    std::fs::write(&bin, &original).expect("writes");
    std::fs::write(build.join("compiled.ron"), manifest.replace("format: 2", "format: 7")).expect("writes");
    let (code, _, err) = npu(&["simulate", s(&build), "-q", "--limit", "2"]);
    assert_eq!(code, 1);
    assert!(err.contains("compiled.ron") && err.contains("format 7"), "{err}");
    std::fs::write(build.join("compiled.ron"), manifest.replace("hw: \"edge-64\"", "hw: \"edge-1k\"")).expect("writes");
    let (code, _, err) = npu(&["simulate", s(&build), "-q", "--limit", "2"]);
    assert_eq!(code, 1);
    assert!(err.contains("compiled for hardware `edge-1k`"), "{err}");
}

#[test]
fn run_budgets_stop_a_long_program_with_a_trap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("long.s");
    // 65,535² loads of 4 KiB: years of simulated time without a budget.
    std::fs::write(
        &src,
        ".data dram 0x0\nx:\n.zero 4096\n.text\nloop n=65535\nloop n=65535\nld ext=dram src=x loc=act dst=0 elem=4096\nendloop\nendloop\n",
    )
    .expect("write");
    let (code, out, err) = npu(&["run", s(&src), "--max-cycles", "100000"]);
    assert_eq!(code, 1, "{err}");
    assert!(out.contains("cycles on edge-256"), "the report up to the trap is printed: {out}");
    assert!(err.contains("cycle limit of 100000 cycles reached"), "{err}");
    let (code, _, err) = npu(&["run", s(&src), "--timeout", "0.2"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("time limit of 0.2 s reached"), "{err}");
    let (code, _, err) = npu(&["run", s(&src), "--timeout", "0"]);
    assert_eq!(code, 2);
    assert!(err.contains("expected a number of seconds above 0"), "{err}");
}

/// When started by [`npu_in_child`], runs the command line it was given and writes
/// `[status, stdout, stderr]` as JSON to the file `NPU_CHILD_RESULT` names; otherwise
/// does nothing.
#[test]
fn cli_child_process() {
    let (Ok(args), Ok(result)) = (std::env::var("NPU_CHILD_ARGS"), std::env::var("NPU_CHILD_RESULT")) else {
        return;
    };
    let args: Vec<String> = serde_json::from_str(&args).expect("JSON args");
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = npu(&argv);
    std::fs::write(result, serde_json::to_string(&(code, out, err)).expect("json")).expect("write result");
}

/// Runs `npu ARGS` with `env` in a child process (this test binary, running
/// [`cli_child_process`]): for runs that change process-wide state (`--size-limit`), which
/// in-process runs would leak into the tests beside them.
pub fn npu_in_child(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    npu_in_child_within(args, env, None)
}

/// [`npu_in_child`] with the child's address space limited to `kib` KiB (`ulimit -v`):
/// an allocation past it fails, and the child aborts, where the machine running the
/// tests might simply have had the memory.
pub fn npu_in_child_within(args: &[&str], env: &[(&str, &str)], kib: Option<u64>) -> (i32, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let result = dir.path().join("result.json");
    let exe = std::env::current_exe().expect("test binary");
    let mut c = match kib {
        Some(kib) => {
            let mut c = std::process::Command::new("sh");
            c.arg("-c").arg(format!("ulimit -v {kib} && exec \"$0\" \"$@\"")).arg(exe);
            c
        }
        None => std::process::Command::new(exe),
    };
    c.args(["--exact", "cli::cli_child_process", "--quiet", "--test-threads", "1"])
        .env("NPU_CHILD_ARGS", serde_json::to_string(args).expect("json"))
        .env("NPU_CHILD_RESULT", &result)
        .env_remove("NPU_SIZE_LIMITS")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    let status = c.status().expect("runs the test binary");
    assert!(status.success(), "the child test failed: {status}");
    serde_json::from_slice(&std::fs::read(&result).expect("the child wrote its result")).expect("result JSON")
}

/// Size limits can be lowered and raised from the command line or `NPU_SIZE_LIMITS`; an input
/// past one is refused naming the limit and how to raise it (issue #22: limits are
/// defaults a user can raise; `/dev/zero` was read until memory ran out).
#[test]
fn size_limits_are_named_when_exceeded_and_can_be_raised() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = dir.path().join("conv_relu.bin");
    let (code, _, err) = npu(&["asm", s(&repo_root().join("programs/conv_relu.s")), "-o", s(&bin)]);
    assert_eq!(code, 0, "{err}");
    let size = std::fs::metadata(&bin).expect("size").len();
    assert!(size > 64, "{size} bytes");
    // A regular file is refused by its size before it is read...
    let (code, _, err) = npu_in_child(&["run", s(&bin), "--size-limit", "file_bytes=64"], &[]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        err,
        format!(
            "error: cannot read {}: {size} bytes, more than the `file_bytes` limit (64)\n\
             hint: a larger input can be allowed with --size-limit file_bytes=VALUE\n",
            bin.display()
        )
    );
    // ...and a file without a size by reading no further than the limit.
    #[cfg(unix)]
    {
        let (code, _, err) = npu_in_child(&["run", "/dev/zero", "--size-limit", "file_bytes=64Ki"], &[]);
        assert_eq!(code, 1, "{err}");
        assert!(
            err.starts_with("error: cannot read /dev/zero: more bytes than the `file_bytes` limit (65536)\n"),
            "{err}"
        );
    }
    // At the limit, the file is read.
    let exact = format!("file_bytes={size}");
    let (code, _, err) = npu_in_child(&["run", s(&bin), "--size-limit", &exact], &[]);
    assert_eq!(code, 0, "{err}");
    // The zoo CNN's input is 1×28×28 = 784 values: a lower limit from the environment
    // refuses it, naming the input; the command line raises it again.
    let out = dir.path().join("cnn.npuq");
    let quantize = ["quantize", "zoo:cnn", "--calib", "none", "-o", s(&out)];
    let (code, _, err) = npu_in_child(&quantize, &[("NPU_SIZE_LIMITS", "tensor_elements=783,file_bytes=1Gi")]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(
            "input `image` of shape [1, 28, 28] has more values per sample than the `tensor_elements` limit (783)"
        ) && err.contains("--size-limit tensor_elements=VALUE"),
        "{err}"
    );
    let mut raised = quantize.to_vec();
    raised.extend(["--size-limit", "tensor_elements=2^28"]);
    let (code, _, err) = npu_in_child(&raised, &[("NPU_SIZE_LIMITS", "tensor_elements=783")]);
    assert_eq!(code, 0, "{err}");
    assert!(out.is_file());
    // A bad limit is a usage error naming it.
    let (code, _, err) = npu(&["run", s(&bin), "--size-limit", "file_size=1"]);
    assert_eq!(code, 2);
    assert!(err.contains("no limit is called `file_size`"), "{err}");
}

/// An `.npz` entry of a few bytes that declares 4 GiB − 1 uncompressed (within the
/// `inflated_bytes` limit) is refused without reserving the 4 GiB it declares: found by
/// `npu-fuzz --target npz --seed 5` (case 40,926, over the fuzzer's memory budget). The
/// run is held to 1.5 GiB of address space, so reserving the declared size fails.
#[test]
#[cfg(unix)]
fn an_npz_entry_declaring_gigabytes_is_refused_without_reserving_them() {
    let root = repo_root();
    let bomb = root.join("tests/fixtures/data/fuzz/entry-declares-4gib.npz");
    assert!(std::fs::metadata(&bomb).expect("fixture").len() < 8 << 10);
    let model = root.join("tests/fixtures/data/wine_mlp.onnx");
    let (code, _, err) = npu_in_child_within(&["eval", s(&model), "--data", s(&bomb)], &[], Some(1536 << 10));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("entry-declares-4gib.npz"), "the error names the file: {err}");
    // The same archive's real entries, for comparison, load in the same budget.
    let wine = root.join("tests/fixtures/data/wine.npz");
    let (code, out, err) = npu_in_child_within(&["eval", s(&model), "--data", s(&wine)], &[], Some(1536 << 10));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("top-1"), "{out}");
}
