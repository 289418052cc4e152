//! The seven torchvision families of issue #19 as `torch.onnx.export` writes them
//! (`tests/fixtures/torchvision/generate.py`): imported and run in FP32 as ONNX Runtime
//! runs them, quantized, and simulated bit for bit like the integer reference executor on
//! every preset.

use npu_data::{Array, Dataset};
use npu_quant::{QOp, Scheme};

const FAMILIES: [&str; 7] =
    ["mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0", "regnet_x", "shufflenet_v2", "squeezenet", "resnet"];

fn fixture(name: &str) -> (npu_model::Model, Dataset, Vec<f32>) {
    let root = crate::repo_root().join("tests/fixtures/torchvision");
    let m = npu_onnx::import(&std::fs::read(root.join(format!("{name}.onnx"))).expect("fixture"), name)
        .unwrap_or_else(|e| panic!("{name} imports: {e}"));
    let x = crate::read_npy(&std::fs::read(root.join("input.npy")).expect("fixture"), "x");
    let ort = crate::read_npy(&std::fs::read(root.join(format!("{name}.ort.npy"))).expect("fixture"), "y").to_f32();
    let ds = Dataset::from_arrays(Array { dtype: "float32".into(), ..x }, None, "input.npy").expect("data");
    (m, ds, ort)
}

#[test]
fn torchvision_exports_run_in_fp32_as_onnx_runtime_runs_them() {
    for name in FAMILIES {
        let (m, ds, ort) = fixture(name);
        let x = m.inputs(&ds, 0..ds.len()).expect("inputs");
        let y = npu_model::fp32::run(&m.graph, &[&x], ds.len()).expect("runs").remove(0);
        assert_eq!(y.len(), ort.len(), "{name}");
        let scale = ort.iter().fold(0f32, |a, v| a.max(v.abs()));
        for (i, (a, b)) in y.iter().zip(&ort).enumerate() {
            assert!((a - b).abs() <= 1e-4 * scale.max(1.0), "{name}: output {i} is {a}, ONNX Runtime {b}");
        }
    }
}

#[test]
fn torchvision_exports_quantize_and_simulate_bit_exactly_on_every_preset() {
    let kind = |op: &QOp| match op {
        QOp::Mul { .. } => "mul",
        QOp::Gather { .. } => "gather",
        QOp::Concat => "concat",
        QOp::Lut { .. } => "lut",
        QOp::Conv2d { groups, .. } if *groups > 1 => "grouped conv",
        _ => "",
    };
    let mut seen = std::collections::BTreeSet::new();
    for name in FAMILIES {
        let (m, ds, _) = fixture(name);
        let n = ds.len();
        let source = npu_quant::RangeSource::Calibration { images: n, method: npu_quant::calib::Method::MinMax };
        let q = npu_quant::quantize_model(&m, &Scheme::named("int8-per-channel").expect("scheme"), &ds, source)
            .unwrap_or_else(|e| panic!("{name} quantizes: {e}"));
        // The first layer of each new kind keeps the FP32 signal (before errors pile up
        // through a random network's depth).
        let report = npu_quant::report::layers(&q, &ds, n).expect("report");
        for (l, r) in q.layers.iter().zip(&report) {
            let k = kind(&l.op);
            if !k.is_empty() && seen.insert((name, k)) {
                let db = r.sqnr_db.expect("measured");
                assert!(db > 25.0, "{name}: first {k} layer `{}` at {db:.1} dB against FP32", l.name);
            }
        }
        let qin = q.int_inputs(&ds, 0..n).expect("inputs");
        let want = q.run_int(&qin, n).expect("int");
        for preset in ["edge-64", "edge-256", "edge-1k"] {
            let hw = npu_hw::preset(preset).expect("preset");
            let d =
                npu_app::Deployment::new(q.clone(), hw).unwrap_or_else(|e| panic!("{name} compiles on {preset}: {e}"));
            let t = d.timing().expect("times");
            let got = d.outputs(&t, &qin, 1, name, &npu_app::NoProgress).expect("runs");
            assert_eq!(got.concat(), want, "{name} on {preset}");
        }
    }
    let kinds: std::collections::BTreeSet<&str> = seen.iter().map(|(_, k)| *k).collect();
    for k in ["mul", "gather", "concat", "lut", "grouped conv"] {
        assert!(kinds.contains(k), "no family exercised {k}");
    }
}

#[test]
fn four_bit_activations_quantize_every_family_through_lookup_tables_and_simulate_bit_exactly() {
    // W4A4: lookup tables (HardSwish, SiLU's sigmoid, a concatenation's rescale) read
    // 4-bit inputs from int8 bytes; the network's output stays int8.
    let mut luts = 0;
    for name in FAMILIES {
        let (m, ds, _) = fixture(name);
        let n = ds.len();
        let source = npu_quant::RangeSource::Calibration { images: n, method: npu_quant::calib::Method::MinMax };
        let q = npu_quant::quantize_model(&m, &Scheme::named("w4a4-per-channel").expect("scheme"), &ds, source)
            .unwrap_or_else(|e| panic!("{name} quantizes: {e}"));
        let out = q.layers.last().expect("layers").output;
        assert_eq!(q.values[out].q.dtype, npu_quant::ActType::I8, "{name}: the output stays int8");
        for l in &q.layers {
            if matches!(l.op, QOp::Lut { .. }) && q.values[l.inputs[0]].q.dtype == npu_quant::ActType::I4 {
                luts += 1;
            }
        }
        let qin = q.int_inputs(&ds, 0..n).expect("inputs");
        let want = q.run_int(&qin, n).expect("int");
        assert!(
            q.layers
                .iter()
                .all(|l| q.values[l.output].q.dtype != npu_quant::ActType::I4 || (l.clamp.0 >= -8 && l.clamp.1 <= 7)),
            "{name}: every 4-bit value is clamped to 4 bits"
        );
        let hw = npu_hw::preset("edge-256").expect("preset");
        let d = npu_app::Deployment::new(q.clone(), hw).unwrap_or_else(|e| panic!("{name} compiles: {e}"));
        let t = d.timing().expect("times");
        let got = d.outputs(&t, &qin, 1, name, &npu_app::NoProgress).expect("runs");
        assert_eq!(got.concat(), want, "{name}");
    }
    assert!(luts >= 3, "lookup tables on 4-bit inputs: {luts}");
}

#[test]
fn torchvision_exports_quantize_without_data_and_simulate_bit_exactly() {
    // Data-free ranges of BatchNorm-folded exports (interval bounds from the input range)
    // give some layers nearly empty ranges; their output scales are widened until the
    // requantization multipliers fit the hardware (they used to stop MobileNetV2,
    // MobileNetV3 and EfficientNet with "real multiplier ... too large"). Oracle: the
    // integer executor.
    for name in FAMILIES {
        let (m, ds, _) = fixture(name);
        let n = ds.len();
        let q = npu_quant::quantize_model(
            &m,
            &Scheme::named("int8-per-channel").expect("scheme"),
            &ds,
            npu_quant::RangeSource::DataFree,
        )
        .unwrap_or_else(|e| panic!("{name} quantizes without data: {e}"));
        q.validate().unwrap_or_else(|e| panic!("{name}: {e}"));
        let qin = q.int_inputs(&ds, 0..n).expect("inputs");
        let want = q.run_int(&qin, n).expect("int");
        let hw = npu_hw::preset("edge-256").expect("preset");
        let d = npu_app::Deployment::new(q.clone(), hw).unwrap_or_else(|e| panic!("{name} compiles: {e}"));
        assert!(d.compiled.host.is_empty(), "{name}: {:?}", d.compiled.host);
        let t = d.timing().expect("times");
        let got = d.outputs(&t, &qin, 1, name, &npu_app::NoProgress).expect("runs");
        assert_eq!(got.concat(), want, "{name}");
    }
}

#[test]
fn channel_products_pair_elements_as_numpy_broadcasting_does() {
    use npu_quant::int::broadcast_index;
    // By hand, row-major over [2, 2, 3].
    assert_eq!(broadcast_index(&[2, 2, 3], &[2, 1, 1]), Some(vec![0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1]));
    assert_eq!(broadcast_index(&[2, 2, 3], &[2, 3]), Some(vec![0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5]));
    assert_eq!(broadcast_index(&[2, 2, 3], &[1, 2, 1]), Some(vec![0, 0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1]));
    assert_eq!(broadcast_index(&[2, 2, 3], &[1]), Some(vec![0; 12]));
    assert_eq!(broadcast_index(&[2, 2, 3], &[3, 1, 1]), None);
    assert_eq!(broadcast_index(&[2, 3], &[1, 2, 3]), None);
}

#[test]
fn slices_and_shuffles_pick_the_channels_onnx_defines() {
    use npu_model::ir::Op;
    // ShuffleNet's shuffle of 6 channels in 2 groups: [g0: 0 1 2 | g1: 3 4 5] viewed as
    // 2×3, transposed to 3×2 and read row by row.
    assert_eq!(Op::ChannelShuffle { groups: 2 }.gather(&[6, 4, 4]), Some((0, vec![0, 3, 1, 4, 2, 5])));
    assert_eq!(Op::ChannelShuffle { groups: 3 }.gather(&[6, 1, 1]), Some((0, vec![0, 2, 4, 1, 3, 5])));
    assert_eq!(Op::Slice { axis: 0, start: 1, end: 6, step: 2 }.gather(&[6]), Some((0, vec![1, 3, 5])));
    assert_eq!(Op::Slice { axis: 2, start: 0, end: 2, step: 1 }.gather(&[6, 4, 4]), Some((2, vec![0, 1])));
}

#[test]
fn quantize_calibrates_on_every_sample_of_a_set_smaller_than_the_default() {
    let dir = tempfile::tempdir().expect("tmp");
    let root = crate::repo_root().join("tests/fixtures/torchvision");
    let out = dir.path().join("s.npuq");
    let (m, x, o) = (root.join("shufflenet_v2.onnx"), root.join("input.npy"), out.to_str().expect("utf-8"));
    let args = ["quantize", m.to_str().expect("utf-8"), "--calib-data", x.to_str().expect("utf-8"), "-o", o, "-q"];
    let (code, stdout, stderr) = crate::cli::npu(&args);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("4 calibration samples of"), "{stdout}");
    // Asking for more than the set holds is still an error, naming both numbers.
    let (code, _, stderr) = crate::cli::npu(&[&args[..], &["--calib", "5"]].concat());
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--calib 5") && stderr.contains("4 images"), "{stderr}");
}
