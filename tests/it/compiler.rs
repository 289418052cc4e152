//! Differential tests: the compiled program on the simulator produces, bit for bit, the
//! integers of the integer reference executor, for every model × scheme × hardware
//! preset, on test images.

use npu_toolchain::compile::{compile, from_hwc_bytes};
use npu_toolchain::quant::{self, Scheme};
use npu_toolchain::Model;

const SCHEMES: [&str; 6] =
    ["int8-pow2", "int8-sym", "uint8-asym", "int8-per-channel", "w4a8-per-channel", "binary-weights"];

fn differential(m: &Model, label: &str, images: usize) {
    let train = npu_toolchain::data::fashion_mnist_train_subset().expect("embedded");
    let test = npu_toolchain::data::fashion_mnist_test().expect("embedded").take(images);
    let x = m.preprocess.apply(&test.pixels);
    for scheme in SCHEMES {
        let source = quant::RangeSource::Calibration { images: 200, method: quant::calib::Method::MinMax };
        let q = quant::quantize_model(m, &Scheme::named(scheme).expect("scheme"), &train, source).expect("quantizes");
        let qin = q.quantize_input(&x);
        let per_in: usize = q.values[0].shape.iter().product();
        let want = q.run_int(&qin, images).expect("int");
        let per_out = want.len() / images;
        for preset in ["edge-64", "edge-256", "edge-1k"] {
            let hw = npu_hw::preset(preset).expect("preset");
            let compiled = match compile(&q, &hw) {
                Ok(c) => c,
                Err(e) => {
                    // Only a missing MAC mode may stop compilation (binary weights on edge-64).
                    assert!(preset == "edge-64" && scheme == "binary-weights", "{label} {scheme} {preset}: {e}");
                    assert!(e.to_string().contains("has no `b1` mode"), "{e}");
                    continue;
                }
            };
            for i in 0..images {
                let p = compiled.with_input(&q, &qin[i * per_in..(i + 1) * per_in]);
                let o = npu_sim::run(&p, &hw, &npu_sim::RunOptions::default()).expect("loads");
                assert!(o.trap.is_none(), "{label} {scheme} {preset}: {:?}", o.trap);
                let bytes = o
                    .machine
                    .read(npu_isa::Space::Sram, u64::from(compiled.output.addr), u64::from(compiled.output.len))
                    .expect("in range");
                let got = from_hwc_bytes(bytes, &q.values[q.output].shape, q.values[q.output].q.dtype);
                assert_eq!(got, want[i * per_out..(i + 1) * per_out], "{label} {scheme} {preset} image {i}");
            }
        }
    }
}

#[test]
fn plain_cnn_fixture_matches_the_integer_executor_bit_for_bit() {
    let bytes = std::fs::read(crate::repo_root().join("tests/fixtures/onnx/plain_cnn.onnx")).expect("fixture");
    let m = npu_toolchain::onnx::import(&bytes, "plain_cnn").expect("imports");
    differential(&m, "plain_cnn", 20);
}

#[test]
fn mobile_res_fixture_matches_the_integer_executor_bit_for_bit() {
    let bytes = std::fs::read(crate::repo_root().join("tests/fixtures/onnx/mobile_res.onnx")).expect("fixture");
    let m = npu_toolchain::onnx::import(&bytes, "mobile_res").expect("imports");
    differential(&m, "mobile_res", 20);
}

#[test]
fn zoo_models_match_the_integer_executor_bit_for_bit() {
    for (name, _) in npu_toolchain::zoo::ARCHITECTURES {
        let m = npu_toolchain::zoo::trained(name).expect("zoo model");
        differential(&m, name, 20);
    }
}

#[test]
fn missing_capabilities_are_compile_errors_naming_the_layer() {
    let bytes = std::fs::read(crate::repo_root().join("tests/fixtures/onnx/plain_cnn.onnx")).expect("fixture");
    let m = npu_toolchain::onnx::import(&bytes, "plain_cnn").expect("imports");
    let train = npu_toolchain::data::fashion_mnist_train_subset().expect("embedded");
    let source = quant::RangeSource::Calibration { images: 50, method: quant::calib::Method::MinMax };
    let q = quant::quantize_model(&m, &Scheme::named("int8-per-channel").expect("scheme"), &train, source).expect("q");
    let mut shift_only = npu_hw::preset("edge-256").expect("preset");
    shift_only.requant.multiplier = false;
    let e = compile(&q, &shift_only).expect_err("needs a multiplier");
    assert_eq!(
        e.to_string(),
        "invalid graph: cannot compile layer `/f/f.0/Conv`: the hardware `edge-256` has no requantization multiplier \
         (quantize with power-of-two scales)"
    );
    let p2 = quant::quantize_model(&m, &Scheme::named("int8-pow2").expect("scheme"), &train, source).expect("q");
    compile(&p2, &shift_only).expect("power-of-two scales compile for shift-only hardware");
}
