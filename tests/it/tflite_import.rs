//! TFLite import: int8 models reproduce the TFLite reference interpreter's outputs
//! (committed as fixtures by `tests/fixtures/tflite/generate.py`) element for element on
//! the integer executor and on the simulator; float models give its predictions.

fn fixture(name: &str) -> Vec<u8> {
    let p = crate::repo_root().join("tests/fixtures/tflite").join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn npy(name: &str) -> npu_data::Array {
    crate::read_npy(&fixture(name), name)
}

/// `[N, H, W, C]` samples to `[N, C, H, W]` (the IR's layout); other ranks unchanged.
fn nhwc_to_nchw(a: &npu_data::Array) -> Vec<i32> {
    let v: Vec<i32> = a.values.to_f64().iter().map(|x| *x as i32).collect();
    let [n, h, w, c] = match a.shape.as_slice() {
        [n, h, w, c] => [*n, *h, *w, *c],
        _ => return v,
    };
    let mut out = vec![0; v.len()];
    for i in 0..n {
        for y in 0..h {
            for x in 0..w {
                for ch in 0..c {
                    out[((i * c + ch) * h + y) * w + x] = v[((i * h + y) * w + x) * c + ch];
                }
            }
        }
    }
    out
}

/// An int8 fixture: the quantized model, its integer inputs (`[N, C, H, W]`) and the
/// interpreter's output integers to match (a final SOFTMAX included).
fn int8_case(name: &str) -> (npu_quant::QModel, Vec<i32>, Vec<i32>, usize) {
    let imported = npu_tflite::import(&fixture(&format!("{name}.tflite")), name).expect("imports");
    let q = imported.quantized.expect("an int8 model gives its quantized form");
    assert_eq!(q.scheme.name, npu_tflite::AS_SHIPPED);
    let x = npy(&format!("{name}.input.npy"));
    let n = x.shape[0];
    let ints = if x.dtype == "int8" {
        nhwc_to_nchw(&x)
    } else {
        // Float input: the model's QUANTIZE, done by the host (one channel: NHWC = NCHW).
        q.quantize_input(&x.values.to_f32())
    };
    let y = npy(&format!("{name}.output.npy"));
    let want = if y.dtype == "float32" {
        // A DEQUANTIZE at the end: its floats are exact multiples of the output's scale.
        let qo = q.values[q.output].q;
        y.to_f32().iter().map(|v| qo.quantize(*v)).collect()
    } else {
        assert_eq!(y.dtype, "int8", "{name}: the interpreter's int8s");
        nhwc_to_nchw(&y)
    };
    (q, ints, want, n)
}

const INT8: [&str; 17] = [
    "int8_cnn",
    "int8_residual",
    "int8_float_io",
    "int8_concat",
    "int8_requant",
    "fmnist_int8",
    // generate_ops.py: LOGISTIC, TANH, HARD_SWISH, LEAKY_RELU, MUL (two activations,
    // broadcast, scalar constant), STRIDED_SLICE, large AVERAGE_POOL_2D windows,
    // RESIZE_NEAREST_NEIGHBOR, TRANSPOSE_CONV, SUB, MIRROR_PAD, shape arithmetic, Keras 3's
    // UpSampling2D (5-D RESHAPE and TILE), RESIZE_BILINEAR and TRANSPOSE (on the host CPU).
    "int8_activations",
    "int8_squeeze_excite",
    "int8_slices",
    "int8_large_pool",
    "int8_resize",
    "int8_transpose_conv",
    "int8_sub_pad",
    "int8_dynamic_flatten",
    "int8_upsampling",
    "int8_bilinear",
    "int8_transpose",
];

#[test]
fn int8_tflite_fixtures_match_the_interpreter_on_the_integer_executor() {
    for name in INT8 {
        let (q, x, want, n) = int8_case(name);
        let got = q.run_int(&x, n).expect("runs");
        assert_eq!(got.len(), want.len(), "{name}");
        let diff = got.iter().zip(&want).filter(|(a, b)| a != b).count();
        assert_eq!(diff, 0, "{name}: {diff} of {} outputs differ", want.len());
    }
}

#[test]
fn int8_tflite_fixtures_match_the_interpreter_on_the_simulator() {
    for name in INT8 {
        let (q, x, want, n) = int8_case(name);
        let per_in = x.len() / n;
        let per_out = want.len() / n;
        for preset in ["edge-64", "edge-256", "edge-1k"] {
            let hw = npu_hw::preset(preset).expect("preset");
            // With the host CPU for what the NPU cannot run (RESIZE_BILINEAR): its layers
            // are exactly those.
            let d = npu_app::Deployment::new(q.clone(), hw).unwrap_or_else(|e| panic!("{name} on {preset}: {e}"));
            let hosted: Vec<&str> = d.compiled.host.iter().map(|h| h.name.as_str()).collect();
            let bilinear: Vec<&str> = q
                .layers
                .iter()
                .filter(|l| matches!(l.op, npu_quant::QOp::ResizeLinear { .. } | npu_quant::QOp::Transpose { .. }))
                .map(|l| l.name.as_str())
                .collect();
            assert_eq!(hosted, bilinear, "{name} on {preset}");
            // Every sample of the small fixtures; 100 of the trained model's 500 on edge-256.
            let samples = if name == "fmnist_int8" {
                if preset == "edge-256" {
                    100
                } else {
                    10
                }
            } else {
                n
            };
            let t = d.timing().unwrap_or_else(|e| panic!("{name} {preset}: {e}"));
            let got = d
                .outputs(&t, &x[..samples * per_in], 1, name, &npu_app::NoProgress)
                .unwrap_or_else(|e| panic!("{name} {preset}: {e}"));
            for (i, g) in got.iter().enumerate() {
                assert_eq!(g[..], want[i * per_out..(i + 1) * per_out], "{name} on {preset}, sample {i}");
            }
        }
    }
}

fn argmax(r: &[f32]) -> usize {
    r.iter().enumerate().fold((0, f32::MIN), |b, (i, v)| if *v > b.1 { (i, *v) } else { b }).0
}

#[test]
fn float_tflite_fixtures_give_the_interpreter_outputs_and_predictions() {
    for name in ["float_cnn", "float_concat", "int8_float_io"] {
        let imported = npu_tflite::import(&fixture(&format!("{name}.tflite")), name).expect("imports");
        assert_eq!(imported.quantized.is_some(), name.starts_with("int8"), "{name}");
        let x = npy(&format!("{name}.input.npy"));
        let y = npy(&format!("{name}.output.npy"));
        let n = x.shape[0];
        let input = x.to_f32(); // one channel: NHWC = NCHW
        let out = npu_model::fp32::run(&imported.model.graph, &[&input], n).expect("runs").swap_remove(0);
        let want = y.to_f32();
        let per = want.len() / n;
        // int8_float_io's float graph has the int8 weights dequantized: the same predictions
        // as the interpreter's integers up to quantization error, checked loosely.
        let tol = if name.starts_with("int8") { 0.1 } else { 1e-4 };
        let mut agree = 0;
        for i in 0..n {
            let (a, b) = (&out[i * per..(i + 1) * per], &want[i * per..(i + 1) * per]);
            agree += usize::from(argmax(a) == argmax(b));
            for (u, v) in a.iter().zip(b) {
                assert!((u - v).abs() <= tol * (1.0 + v.abs()), "{name} sample {i}: {u} vs {v}");
            }
        }
        if name.starts_with("float") {
            assert_eq!(agree, n, "{name}: every prediction is the interpreter's");
        }
    }
}

#[test]
fn int8_softmax_outputs_are_the_reference_interpreters_probabilities() {
    // TFLite's fixed-point softmax reproduced bit for bit on 500 test images of a trained
    // model (the probabilities in 1/256 steps from −128), and the classes they pick.
    let (q, x, want, n) = int8_case("fmnist_int8");
    assert!(matches!(q.layers.last().map(|l| &l.op), Some(npu_quant::QOp::Softmax { .. })));
    let got = q.run_int(&x, n).expect("runs");
    assert_eq!(got, want);
    let test = npu_zoo::fashion_mnist_test().expect("embedded");
    let labels = test.labels().expect("labelled");
    let mut correct = 0;
    for i in 0..n {
        let row = &got[i * 10..(i + 1) * 10];
        // Probabilities of one image sum to about one: 10 values of 1/256 steps from −128.
        let total: i32 = row.iter().map(|v| v + 128).sum();
        assert!((246..=266).contains(&total), "image {i}: {row:?} sums to {total}/256");
        let pick = row.iter().enumerate().fold((0, i32::MIN), |b, (j, v)| if *v > b.1 { (j, *v) } else { b }).0;
        correct += usize::from(pick == labels[i] as usize);
    }
    // A trained model: far above chance on the first 500 test images.
    assert!(correct > n * 8 / 10, "{correct} of {n} correct");
}

#[test]
fn unsupported_tflite_operators_are_listed_in_one_error() {
    let e = npu_tflite::import(&fixture("unsupported.tflite"), "unsupported.tflite").expect_err("unsupported");
    insta::assert_snapshot!(e.to_string());
}

#[test]
fn corrupt_tflite_files_are_errors_not_panics() {
    let good = fixture("int8_residual.tflite");
    let e = npu_tflite::import(&good[..good.len() / 2], "half.tflite").expect_err("truncated");
    assert!(e.to_string().starts_with("half.tflite: not a valid TFLite model"), "{e}");
    let e = npu_tflite::import(b"\x00\x00\x00\x00NOPE and more bytes", "x.tflite").expect_err("no identifier");
    assert!(e.to_string().contains("no TFL3 file identifier"), "{e}");
    // Every single-byte corruption of the header and tables decodes to an error or a
    // model, never a panic.
    for at in (0..good.len()).step_by(7) {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut b = good.clone();
            b[at] ^= flip;
            let _ = npu_tflite::import(&b, "flipped.tflite");
        }
    }
}

#[test]
fn every_model_command_takes_a_tflite_file() {
    use crate::cli::npu;
    let int8 = crate::repo_root().join("tests/fixtures/tflite/fmnist_int8.tflite");
    let int8 = int8.to_str().expect("utf-8");
    let float = crate::repo_root().join("tests/fixtures/tflite/float_cnn.tflite");
    let float = float.to_str().expect("utf-8");
    // eval: the integer executor by default for int8, the float graph with --engine fp32.
    let (code, out, err) = npu(&["eval", int8, "--limit", "500", "-q"]);
    assert_eq!(code, 0, "{err}");
    let (q, x, _, n) = int8_case("fmnist_int8");
    let test = npu_zoo::fashion_mnist_test().expect("embedded");
    let labels = test.labels().expect("labelled");
    let got = q.run_int(&x, n).expect("runs");
    let correct = (0..n)
        .filter(|&i| {
            let r = &got[i * 10..(i + 1) * 10];
            r.iter().enumerate().fold((0, i32::MIN), |b, (j, v)| if *v > b.1 { (j, *v) } else { b }).0
                == labels[i] as usize
        })
        .count();
    assert!(out.contains(&format!("({correct}/500)")) && out.contains("as-shipped integer reference"), "{out}");
    let (code, out, err) = npu(&["eval", int8, "--limit", "100", "--engine", "fp32", "-q"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("FP32"), "{out}");
    let (code, _, err) = npu(&["eval", float, "--engine", "int", "--limit", "10", "-q"]);
    assert_ne!(code, 0);
    assert!(err.contains("--engine int needs a quantized model"), "{err}");
    // inspect lists the TFLite operators and the shipped quantization.
    let (code, out, err) = npu(&["inspect", int8]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("#0 CONV_2D") && out.contains("int8 as shipped"), "{out}");
    // compile and simulate use the shipped quantization of an int8 model; simulate's
    // accuracy from the simulator's outputs is the integer executor's.
    let dir = tempfile::tempdir().expect("tempdir");
    let build = dir.path().join("b");
    let (code, out, err) = npu(&["compile", int8, "-o", build.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("(as-shipped)"), "{out}");
    let (code, out, err) = npu(&["simulate", int8, "--limit", "500", "-q"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("({correct}/500)")), "{out}");
    // A float model compiles with a scheme; `as-shipped` names what it lacks.
    let (code, _, err) = npu(&["compile", float, "-o", dir.path().join("f").to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = npu(&["simulate", float, "--scheme", "as-shipped"]);
    assert_ne!(code, 0);
    assert!(err.contains("float32 TFLite model has no quantization of its own"), "{err}");
    // quantize --scheme as-shipped keeps the model's integers in an .npuq.
    let npuq = dir.path().join("m.npuq");
    let (code, _, err) = npu(&["quantize", int8, "--scheme", "as-shipped", "-o", npuq.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{err}");
    let bytes = std::fs::read(&npuq).expect("written");
    let back = npu_quant::npuq::decode(&bytes, "m.npuq").expect("decodes");
    assert_eq!(back, q);
}

#[test]
fn compare_runs_an_int8_tflite_as_shipped_beside_the_schemes() {
    let o = npu::compare::Options {
        model: crate::repo_root().join("tests/fixtures/tflite/fmnist_int8.tflite").display().to_string(),
        source: Default::default(),
        hw: "edge-256".into(),
        schemes: vec!["fp32".into(), "int8-per-channel".into()],
        limit: Some(300),
        jobs: 2,
        calib: 200,
        quiet: true,
        extra: Vec::new(),
        shard: None,
    };
    let c = npu::compare::compare(&o).expect("runs");
    let keys: Vec<&str> = c.rows.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["fp32", "int8-per-channel", npu_tflite::AS_SHIPPED]);
    // The as-shipped row, from the simulator's outputs, is the integer executor's accuracy.
    let (q, _, _, _) = int8_case("fmnist_int8");
    let test = npu_zoo::fashion_mnist_test().expect("embedded").take(300);
    let (acc, _) = q.evaluate_int(&test, 300, &mut |_| {}).expect("evaluates");
    let shipped = &c.rows[2];
    assert_eq!((shipped.correct, shipped.images), (Some(acc.correct), 300));
    // The same architecture in the same precision: the same cycles as per-channel INT8.
    let cycles = |i: usize| c.rows[i].hw.as_ref().expect("ran").cycles;
    assert_eq!(cycles(2), cycles(1));
}

#[test]
fn a_batchnorm_folded_float_tflite_model_quantizes_without_data_within_a_point() {
    // `generate_folded.py`: a Keras CNN with BatchNorm after every convolution, converted
    // to float TFLite (the converter folds every BatchNorm away). Data-free per-channel
    // INT8 used to give 14.3 % (propagated moments); now within a point of the TFLite
    // interpreter's own top-1 on the same 1,000 test images (committed by the script).
    let mut m = npu_tflite::import(&fixture("fmnist_bn_float.tflite"), "fmnist_bn_float").expect("imports").model;
    m.preprocess = npu_data::Preprocess { scale: 1.0 / 255.0, mean: vec![0.0], std: vec![1.0], ..m.preprocess };
    let test = npu_zoo::fashion_mnist_test().expect("test set");
    let n = 1000;
    // The import computes what the interpreter computed.
    let want = npy("fmnist_bn_float.output.npy").to_f32();
    let got = m.outputs(&test, n, &mut |_| {}).expect("fp32");
    assert_eq!(got.len(), want.len());
    for (i, (a, b)) in got.iter().zip(&want).enumerate() {
        assert!((a - b).abs() <= 1e-3 * b.abs().max(1.0), "logit {i}: {a}, interpreter {b}");
    }
    let text = String::from_utf8(fixture("fmnist_bn_float.top1.txt")).expect("utf-8");
    let reference: f64 = text.trim().parse().expect("a percentage");
    let scheme = npu_quant::Scheme::named("int8-per-channel").expect("scheme");
    let (q, syn) = npu_app::quantize(&m, &scheme, &test, npu_quant::RangeSource::DataFree, Default::default())
        .expect("quantizes without data");
    assert!(syn.is_some_and(|s| s.steps > 0), "no statistics left: inputs are synthesised");
    let top1 = q.evaluate_int(&test, n, &mut |_| {}).expect("int").0.top1() * 100.0;
    assert!(top1 >= reference - 1.0, "data-free int8 {top1:.2} % against the interpreter's {reference:.2} %");
}

#[test]
fn a_hybrid_tflite_model_is_recognised_and_runs_as_the_interpreters_hybrid_kernels() {
    // `generate_hybrid.py`: TensorFlow's dynamic-range quantization — int8 weights (two
    // convolutions and the dense layer, the layers of 1,024 weights or more), float
    // activations. Read as a float model with dequantized weights it missed the hybrid
    // kernels' per-sample input quantization, silently.
    let imp = npu_tflite::import(&fixture("fmnist_hybrid.tflite"), "fmnist_hybrid").expect("imports");
    assert!(imp.quantized.is_none(), "not an integer model");
    assert_eq!(imp.hybrid.len(), 3, "two convolutions and the dense layer: {:?}", imp.hybrid);
    assert!(imp.hybrid[..2].iter().all(|n| n.contains("conv2d_")), "{:?}", imp.hybrid);
    let m = imp.model;
    let test = npu_zoo::fashion_mnist_test().expect("test set");
    let n = 1000;
    let want = npy("fmnist_hybrid.output.npy").to_f32();
    let float = npy("fmnist_hybrid.float.npy").to_f32();
    let got = m.outputs(&test, n, &mut |_| {}).expect("runs");
    assert_eq!(got.len(), want.len());
    let max_err = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    let mean_err = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>() / a.len() as f32;
    // The interpreter scales exact int32 sums; the float engine sums dequantized products
    // in f32. Rounding apart, the same numbers — except where a value lands within that
    // rounding of an int8 step of the next layer's input quantization (a few % of the
    // samples, each off by one step). Without the input quantization the logits are the
    // float network's, every sample off.
    let (err, mean) = (max_err(&got, &want), mean_err(&got, &want));
    let off = |a: &[f32]| a.chunks(10).zip(want.chunks(10)).filter(|(x, y)| max_err(x, y) > 1e-4).count();
    assert!(mean < 1e-4 && err < 0.02, "|npu - interpreter|: mean {mean}, max {err}");
    assert!(off(&got) <= n / 10, "{} of {n} samples differ by more than 1e-4", off(&got));
    let argmax = |r: &[f32]| (0..r.len()).fold(0, |b, i| if r[i] > r[b] { i } else { b });
    let same = got.chunks(10).zip(want.chunks(10)).filter(|(a, b)| argmax(a) == argmax(b)).count();
    assert!(same >= n - 2, "top-1 agrees on {same} of {n}");
    assert!(
        mean_err(&float, &want) > 100.0 * mean && off(&float) == n,
        "the fixture's hybrid kernels differ from float"
    );
    let mut stripped = m.clone();
    stripped.graph = npu_model::passes::strip_dynamic_quantize(&m.graph).expect("strips");
    let plain = stripped.outputs(&test, n, &mut |_| {}).expect("runs");
    assert!(mean_err(&plain, &want) > 100.0 * mean, "dequantized weights alone are not the hybrid model");
    // Re-quantized to a fully integer model, calibrated: within a point of the interpreter.
    let text = String::from_utf8(fixture("fmnist_hybrid.top1.txt")).expect("utf-8");
    let reference: f64 = text.trim().parse().expect("a percentage");
    let scheme = npu_quant::Scheme::named("int8-per-channel").expect("scheme");
    let source = npu_quant::RangeSource::Calibration { images: 200, method: npu_quant::calib::Method::MinMax };
    let (q, _) = npu_app::quantize(&m, &scheme, &test, source, Default::default()).expect("quantizes");
    assert!(q.graph.nodes.iter().all(|n| !matches!(n.op, npu_model::ir::Op::DynamicQuantize { .. })));
    let top1 = q.evaluate_int(&test, n, &mut |_| {}).expect("int").0.top1() * 100.0;
    assert!((top1 - reference).abs() <= 1.0, "integer {top1:.2} % against the interpreter's {reference:.2} %");
}

/// The dense-heavy and 1-D audio networks of the Vela fixtures (`tests/fixtures/vela/`,
/// made by TensorFlow's converter): an autoencoder of FULLY_CONNECTED layers on 640
/// features, and a raw-waveform Conv1D network, which the converter writes as CONV_2D
/// on `[1, 1, W, C]` between RESHAPEs to and from `[1, W, C]`, with a MEAN over axis 1
/// of the sequence. Through the command line as a user runs it, samples as stored
/// (`[N, 640]`, `[N, 4000, 1]`), without a `--layout`: the simulator's outputs equal
/// X
#[test]
fn tflite_dense_and_conv1d_networks_simulate_like_litert_without_layout_flags() {
    let dir = crate::repo_root().join("tests/fixtures/vela");
    let tmp = tempfile::tempdir().expect("tempdir");
    for name in ["dense", "audio1d"] {
        let model = dir.join(format!("{name}.tflite"));
        let input = dir.join(format!("{name}.input.npy"));
        let want = std::fs::read(dir.join(format!("{name}.output.npy"))).expect("fixture");
        let ints = |a: npu_data::Array| (0..a.values.len()).map(|i| a.values.int(i).expect("integers")).collect();
        let want: Vec<i32> = ints(crate::read_npy(&want, name));
        // The Ethos-U presets take audio1d's 4,000-sample rows in column tiles and run its
        // first convolution (stride 4 with padding) on the host CPU, as Vela does.
        for hw in ["edge-256", "edge-64", "ethos-u55-64", "ethos-u55-256", "ethos-u65-512"] {
            let out = tmp.path().join(format!("{name}-{hw}.npy"));
            let args = ["simulate", model.to_str().expect("utf-8"), "--input", input.to_str().expect("utf-8")];
            let (code, _, err) =
                crate::cli::npu(&[&args[..], &["--hw", hw, "-q", "-o", out.to_str().expect("utf-8")]].concat());
            assert_eq!(code, 0, "{name} on {hw}: {err}");
            let got: Vec<i32> = ints(crate::read_npy(&std::fs::read(&out).expect("written"), name));
            assert_eq!(got, want, "{name} on {hw}");
        }
    }
}

/// The speed comparison's networks (`tests/fixtures/speed/`, MLPerf-Tiny-shaped
/// ResNet-8, depthwise-separable MobileNet and VGG-style, int8 as TensorFlow converts
/// them): the simulator gives LiteRT's reference outputs with its fast kernels, with
/// only the AVX2 kernels and without kernels, and the runs leave every memory
/// of the machine byte-identical — every intermediate activation, accumulator and DMA
/// buffer, not only the outputs.
#[test]
fn speed_networks_replay_bit_exactly_with_and_without_the_fast_kernels() {
    let dir = crate::repo_root().join("tests/fixtures/speed");
    for name in ["resnet8", "mobilenet", "vgg"] {
        let read = |f: String| std::fs::read(dir.join(&f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        let imported = npu_tflite::import(&read(format!("{name}.tflite")), name).expect("imports");
        let q = imported.quantized.expect("int8");
        let x = nhwc_to_nchw(&crate::read_npy(&read(format!("{name}.input.npy")), name));
        let want = nhwc_to_nchw(&crate::read_npy(&read(format!("{name}.output.npy")), name));
        let n = 4;
        let (per_in, per_out) = (x.len() / n, want.len() / n);
        assert_eq!(q.run_int(&x, n).expect("runs"), want, "{name}: integer executor");
        for preset in ["edge-256", "edge-1k", "ethos-u55-256", "ethos-u65-512"] {
            let hw = npu_hw::preset(preset).expect("preset");
            let d = npu_app::Deployment::new(q.clone(), hw.clone()).expect("compiles");
            let t = d.timing().expect("timing");
            let replay = npu_sim::Replay::new(&d.compiled.program, &hw, &t.trace).expect("its trace");
            let (mut fast, mut scalar) = (replay.machine().expect("loads"), replay.machine().expect("loads"));
            scalar.set_fast_kernels(false);
            let mut avx2 = replay.machine().expect("loads");
            avx2.set_vnni_kernels(false);
            assert_eq!(fast.fast_kernels(), npu_sim::kernels::available());
            assert!(!scalar.fast_kernels() && !scalar.any_kernels() && !avx2.fast_kernels());
            assert_eq!(avx2.any_kernels(), npu_sim::kernels::avx2_available());
            let out = &q.values[q.output];
            for i in 0..n {
                let seg = d.compiled.input_segment(&q, &x[i * per_in..(i + 1) * per_in]);
                for m in [&mut fast, &mut avx2, &mut scalar] {
                    assert!(replay.run(m, std::slice::from_ref(&seg)).expect("runs").is_none(), "{name} {preset}");
                    let c = &d.compiled.output;
                    let bytes = m.read(npu_isa::Space::Sram, u64::from(c.addr), u64::from(c.len)).expect("in range");
                    let got = npu_compile::from_hwc_bytes(bytes, &out.shape, out.q.dtype);
                    assert_eq!(got[..], want[i * per_out..(i + 1) * per_out], "{name} on {preset}, sample {i}");
                }
                assert!(fast == scalar, "{name} on {preset}, sample {i}: the machines' memories differ");
                assert!(avx2 == scalar, "{name} on {preset}, sample {i}: the AVX2 machine's memories differ");
            }
        }
    }
}
