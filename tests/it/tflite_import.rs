//! TFLite import: int8 models reproduce the TFLite reference interpreter's outputs
//! (committed as fixtures by `tests/fixtures/tflite/generate.py`) element for element on
//! the integer executor and on the simulator; float models give its predictions.

use npu_toolchain::compile::{compile, from_hwc_bytes};
use npu_toolchain::tflite;

fn fixture(name: &str) -> Vec<u8> {
    let p = crate::repo_root().join("tests/fixtures/tflite").join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn npy(name: &str) -> npu_toolchain::npy::Array {
    npu_toolchain::npy::parse(&fixture(name), name).expect("valid npy")
}

/// `[N, H, W, C]` samples to `[N, C, H, W]` (the IR's layout); other ranks unchanged.
fn nhwc_to_nchw(a: &npu_toolchain::npy::Array) -> Vec<i32> {
    let v: Vec<i32> = a.data.iter().map(|x| *x as i32).collect();
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
/// interpreter's integers to match (the output, or the logits before a final SOFTMAX).
fn int8_case(name: &str) -> (npu_toolchain::quant::QModel, Vec<i32>, Vec<i32>, usize) {
    let imported = tflite::import(&fixture(&format!("{name}.tflite")), name).expect("imports");
    let q = imported.quantized.expect("an int8 model gives its quantized form");
    assert_eq!(q.scheme.name, tflite::AS_SHIPPED);
    let x = npy(&format!("{name}.input.npy"));
    let n = x.shape[0];
    let ints = if x.dtype == npu_toolchain::npy::Dtype::I8 {
        nhwc_to_nchw(&x)
    } else {
        // Float input: the model's QUANTIZE, done by the host (one channel: NHWC = NCHW).
        q.quantize_input(&x.to_f32())
    };
    let want_file = if name == "int8_cnn" || name == "int8_residual" { "output" } else { "logits" };
    let y = npy(&format!("{name}.{want_file}.npy"));
    assert_eq!(y.dtype, npu_toolchain::npy::Dtype::I8, "{name}: the interpreter's int8s");
    (q, ints, nhwc_to_nchw(&y), n)
}

const INT8: [&str; 4] = ["int8_cnn", "int8_residual", "int8_float_io", "fmnist_int8"];

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
            let c = compile(&q, &hw).unwrap_or_else(|e| panic!("{name} on {preset}: {e}"));
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
            for i in 0..samples {
                let p = c.with_input(&q, &x[i * per_in..(i + 1) * per_in]);
                let o = npu_sim::run(&p, &hw, &npu_sim::RunOptions::default()).expect("loads");
                assert!(o.trap.is_none(), "{name} {preset}: {:?}", o.trap);
                let bytes = o
                    .machine
                    .read(npu_isa::Space::Sram, u64::from(c.output.addr), u64::from(c.output.len))
                    .expect("in range");
                let out = &q.values[q.output];
                assert_eq!(
                    from_hwc_bytes(bytes, &out.shape, out.q.dtype),
                    want[i * per_out..(i + 1) * per_out],
                    "{name} on {preset}, sample {i}"
                );
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
        let imported = tflite::import(&fixture(&format!("{name}.tflite")), name).expect("imports");
        assert_eq!(imported.quantized.is_some(), name.starts_with("int8"), "{name}");
        let x = npy(&format!("{name}.input.npy"));
        let y = npy(&format!("{name}.output.npy"));
        let n = x.shape[0];
        let input = x.to_f32(); // one channel: NHWC = NCHW
        let out = npu_toolchain::fp32::run(&imported.model.graph, &[&input], n).expect("runs").swap_remove(0);
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
fn int8_model_with_softmax_predicts_the_interpreter_classes() {
    // The quantized model ends at the logits; the class it picks is the interpreter's
    // (one of its maxima, where the int8 softmax ties).
    let (q, x, _, n) = int8_case("fmnist_int8");
    let got = q.run_int(&x, n).expect("runs");
    let probs = npy("fmnist_int8.output.npy");
    let labels = npu_toolchain::data::fashion_mnist_test().expect("embedded").labels;
    let mut correct = 0;
    for i in 0..n {
        let row = &got[i * 10..(i + 1) * 10];
        let pick = row.iter().enumerate().fold((0, i32::MIN), |b, (j, v)| if *v > b.1 { (j, *v) } else { b }).0;
        let p = &probs.data[i * 10..(i + 1) * 10];
        let best = p.iter().copied().fold(f64::MIN, f64::max);
        assert_eq!(p[pick], best, "image {i}: class {pick} is not among the interpreter's maxima {p:?}");
        correct += usize::from(pick == usize::from(labels[i]));
    }
    // A trained model: far above chance on the first 500 test images.
    assert!(correct > n * 8 / 10, "{correct} of {n} correct");
}

#[test]
fn unsupported_tflite_operators_are_listed_in_one_error() {
    let e = tflite::import(&fixture("unsupported.tflite"), "unsupported.tflite").expect_err("unsupported");
    insta::assert_snapshot!(e.to_string());
}

#[test]
fn corrupt_tflite_files_are_errors_not_panics() {
    let good = fixture("int8_residual.tflite");
    let e = tflite::import(&good[..good.len() / 2], "half.tflite").expect_err("truncated");
    assert!(e.to_string().starts_with("half.tflite: not a valid TFLite model"), "{e}");
    let e = tflite::import(b"\x00\x00\x00\x00NOPE and more bytes", "x.tflite").expect_err("no identifier");
    assert!(e.to_string().contains("no TFL3 file identifier"), "{e}");
    // Every single-byte corruption of the header and tables decodes to an error or a
    // model, never a panic.
    for at in (0..good.len()).step_by(7) {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut b = good.clone();
            b[at] ^= flip;
            let _ = tflite::import(&b, "flipped.tflite");
        }
    }
}
