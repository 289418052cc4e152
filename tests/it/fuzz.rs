//! The fuzzer's short seeded pass (every input kind; a panic or a case slower than its
//! budget fails), and regression tests for what fuzzing found, each built by hand.

use std::time::Duration;

use npu_fuzz::onnx_gen::{float, ints as attr_ints, string, tensor_info};
use npu_fuzz::{Budget, Corpus, Target};
use npu_onnx::proto::{
    tensor_proto::DataType, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
};
use prost::Message;

fn corpus() -> Corpus {
    let root = crate::repo_root();
    let read_dir = |dir: &str, ext: &str| -> Vec<Vec<u8>> {
        let mut ps: Vec<_> = std::fs::read_dir(root.join(dir))
            .expect("fixture dir")
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == ext))
            .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.len() < 1 << 20))
            .collect();
        ps.sort();
        ps.iter().map(|p| std::fs::read(p).expect("fixture")).collect()
    };
    Corpus {
        onnx: read_dir("tests/fixtures/onnx", "onnx"),
        tflite: read_dir("tests/fixtures/tflite", "tflite"),
        npuq: read_dir("toolchain/zoo/models", "npuq"),
        npum: read_dir("toolchain/zoo/models", "npum"),
        asm: read_dir("programs", "s").into_iter().map(|b| String::from_utf8(b).expect("utf-8")).collect(),
        npy: read_dir("tests/fixtures/tflite", "npy").into_iter().take(6).collect(),
        npz: read_dir("tests/fixtures/data", "npz"),
        recipes: npu_fuzz::scheme_seeds().into_iter().chain(text(read_dir("docs/recipes", "ron"))).collect(),
        plans: text(read_dir("docs/sweep", "ron")),
        specs: text(read_dir("tests/fixtures/data", "ron")),
        images: ["a_red", "b_green", "c_blue"]
            .iter()
            .flat_map(|c| read_dir(&format!("tests/fixtures/data/folder/{c}"), "png"))
            .collect(),
    }
}

fn text(files: Vec<Vec<u8>>) -> Vec<String> {
    files.into_iter().map(|b| String::from_utf8(b).expect("utf-8")).collect()
}

#[test]
fn a_short_fuzzing_pass_of_every_input_kind_finds_nothing() {
    let corpus = corpus();
    assert!(!corpus.onnx.is_empty() && !corpus.tflite.is_empty() && !corpus.npuq.is_empty() && !corpus.asm.is_empty());
    assert_eq!(corpus.npum.len(), 2, "the zoo's mobilenet and resnet (cnn is over 1 MiB)");
    let mut report = Vec::new();
    for (target, cases) in [
        (Target::OnnxGraph, 3000),
        (Target::OnnxBytes, 3000),
        (Target::Tflite, 3000),
        (Target::Npuq, 800),
        (Target::Npum, 300),
        (Target::Asm, 3000),
        (Target::Program, 3000),
        (Target::HwRon, 3000),
        (Target::Npy, 3000),
        (Target::Npz, 3000),
        (Target::Recipe, 1000),
        (Target::Plan, 3000),
        (Target::DataSpec, 3000),
        (Target::Image, 3000),
    ] {
        let budget = Budget { cases, time: Duration::from_secs(600), slow: Duration::from_secs(20) };
        let s = npu_fuzz::fuzz(target, &corpus, 0x5eed, budget);
        assert_eq!(s.executions, cases, "{}", target.name());
        // Both outcomes occur, or the pass exercises only one side.
        assert!(s.accepted > 0 && s.accepted < s.executions, "{}: {} of {} accepted", target.name(), s.accepted, cases);
        for f in &s.findings {
            report.push(format!("{} case {}: {}", target.name(), f.case, f.message));
        }
    }
    assert!(
        report.is_empty(),
        "findings (reproduce with `npu-fuzz --target T --seed 24301 --dump CASE FILE`):\n{}",
        report.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// Hand-built regressions.

fn ints(name: &str, values: Vec<i64>) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: vec![values.len() as i64],
        data_type: Some(DataType::Int64 as i32),
        int64_data: values,
        ..Default::default()
    }
}

fn node(op: &str, name: &str, inputs: &[&str], output: &str, attrs: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        op_type: Some(op.into()),
        name: Some(name.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        attribute: attrs,
        ..Default::default()
    }
}

/// A model with input `x` `[1, 1, 4, 4]`, `nodes`, `inits`, and output `out`.
fn model(nodes: Vec<NodeProto>, inits: Vec<TensorProto>, out: &str) -> Vec<u8> {
    ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(13) }],
        graph: Some(GraphProto {
            node: nodes,
            name: Some("g".into()),
            initializer: inits,
            input: vec![tensor_info("x", &[1, 1, 4, 4])],
            output: vec![tensor_info(out, &[1, 16])],
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

fn import_err(bytes: &[u8]) -> String {
    match npu_onnx::import(bytes, "m.onnx") {
        Ok(_) => panic!("imported"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn constant_of_shape_beyond_the_limit_is_refused_before_allocating() {
    // 2^31 × 2^31 values (was: an abort allocating 2^64 bytes) and [0, 2^63 − 1] (was: a
    // 2^63-iteration loop, the constant being empty) alike.
    for shape in [vec![1 << 31, 1 << 31], vec![0, i64::MAX], vec![-4, 2]] {
        let m = model(
            vec![node("ConstantOfShape", "big", &["s"], "c", vec![]), node("Add", "add", &["x", "c"], "y", vec![])],
            vec![ints("s", shape.clone())],
            "y",
        );
        let e = import_err(&m);
        assert!(e.contains("`big`"), "{shape:?}: {e}");
        assert!(
            e.contains("more values than the `tensor_elements` limit (268435456)") || e.contains("negative dimension"),
            "{shape:?}: {e}"
        );
    }
}

#[test]
fn integer_shape_arithmetic_that_overflows_is_an_error() {
    // i64::MIN / −1 (was: a panic), and a product past i64.
    for (op, a, b) in [("Div", i64::MIN, -1), ("Mul", 1 << 62, 4), ("Div", 5, 0), ("Add", i64::MAX, 1)] {
        let m = model(
            vec![
                node(op, "shape_math", &["a", "b"], "s", vec![]),
                node("Reshape", "reshape", &["x", "s"], "y", vec![]),
            ],
            vec![ints("a", vec![a]), ints("b", vec![b])],
            "y",
        );
        let e = import_err(&m);
        assert!(e.contains(&format!("integer `{op}` of {a} and {b} overflows or divides by zero")), "{e}");
    }
}

#[test]
fn nan_attributes_and_weights_are_errors_naming_them() {
    // A NaN Clip bound (was: the layout pass looping forever, NaN never equal to itself).
    let m = model(vec![node("Clip", "clip", &["x"], "y", vec![float("min", f32::NAN)])], vec![], "y");
    let e = import_err(&m);
    assert!(e.contains("clip bounds NaN and") && e.contains("not an interval"), "{e}");
    // Reversed bounds.
    let m = model(vec![node("Clip", "clip", &["x"], "y", vec![float("min", 2.0), float("max", 1.0)])], vec![], "y");
    assert!(import_err(&m).contains("clip bounds 2 and 1 are not an interval"));
    // A weight that is infinite.
    let w = TensorProto {
        name: Some("w".into()),
        dims: vec![1, 1, 1, 1],
        data_type: Some(DataType::Float as i32),
        float_data: vec![f32::INFINITY],
        ..Default::default()
    };
    let m = model(vec![node("Conv", "conv", &["x", "w"], "y", vec![])], vec![w], "y");
    let e = import_err(&m);
    assert!(e.contains("constant `w` holds inf at index 0: weights must be finite numbers"), "{e}");
}

#[test]
fn resize_scales_past_the_output_limit_are_refused_before_allocating() {
    // Found by the long `onnx-bytes` run (seed 2026, case 12007): a scale of 1e30 made
    // the resize maps 2⁶⁴ positions long and the process was killed at 24 GB.
    let scales = |v: Vec<f32>| TensorProto {
        name: Some("sc".into()),
        dims: vec![4],
        data_type: Some(DataType::Float as i32),
        float_data: v,
        ..Default::default()
    };
    for mode in ["nearest", "linear"] {
        for big in [1e30, 20000.0] {
            let m = model(
                vec![node("Resize", "up", &["x", "", "sc"], "y", vec![string("mode", mode)])],
                vec![scales(vec![1.0, 1.0, 2.0, big])],
                "y",
            );
            let e = import_err(&m);
            assert!(e.contains("resizes 4×4 to 8×"), "{mode} {big}: {e}");
            assert!(e.contains("each output dimension must be 1..=65536"), "{mode} {big}: {e}");
        }
    }
}

#[test]
fn chains_of_computed_constants_are_bounded_in_all() {
    // Found by the long `onnx-bytes` run (seed 2026, case 317,217): one constant of 2²⁶
    // values, each within the per-constant limit, copied by Concat, Reshape, Slice,
    // Transpose, Reshape and Cast took 4.2 GB and 10 s from a 150 KB file. Here: 2²⁴
    // zeros cast 16 times — the 17th constant passes the 2²⁸ values allowed in all.
    let mut nodes = vec![node("ConstantOfShape", "zeros", &["s"], "c0", vec![])];
    for i in 1..=16 {
        let (from, to) = (format!("c{}", i - 1), format!("c{i}"));
        nodes.push(node("Cast", &format!("cast{i}"), &[&from], &to, vec![npu_fuzz::onnx_gen::int("to", 1)]));
    }
    nodes.push(node("Add", "add", &["x", "c16"], "y", vec![]));
    let m = model(nodes, vec![ints("s", vec![1 << 24])], "y");
    assert_eq!(
        import_err(&m),
        "m.onnx: `cast16` (Cast): the constants computed while importing have more values in all than the `folded_elements` limit (268435456)"
    );
    assert_eq!(npu_data::limits::Limits::default().folded_elements, 1 << 28);
    // A message naming millions of values is cut to its beginning and end.
    let pads = vec![0; 1 << 16];
    let m = model(vec![node("Pad", "pad", &["x", "p"], "y", vec![])], vec![ints("p", pads)], "y");
    let e = import_err(&m);
    assert!(e.len() <= npu_model::error::MAX_MESSAGE_BYTES + 100, "{} bytes", e.len());
    assert!(e.contains("bytes left out") && e.ends_with("must be 8 non-negative values"), "{e}");
}

#[test]
fn a_duplicated_transpose_permutation_of_a_constant_is_refused() {
    let c = TensorProto {
        name: Some("c".into()),
        dims: vec![2, 3],
        data_type: Some(DataType::Float as i32),
        float_data: vec![0.0; 6],
        ..Default::default()
    };
    let perm = attr_ints("perm", vec![1, 1]);
    let m = model(
        vec![node("Transpose", "t", &["c"], "ct", vec![perm]), node("Add", "add", &["x", "ct"], "y", vec![])],
        vec![c],
        "y",
    );
    assert!(import_err(&m).contains("bad permutation [1, 1] for rank 2"));
}

#[test]
fn long_chains_and_shared_node_names_import_in_linear_time() {
    // 20,000 activations in a row, all named `same` (was: quadratic name uniquing, and a
    // recursion as deep as the chain when fusing elementwise functions).
    let n = 20_000;
    let mut nodes = Vec::new();
    let mut prev = "x".to_string();
    for i in 0..n {
        let out = format!("t{i}");
        let op = if i % 2 == 0 { "Relu" } else { "Sigmoid" };
        nodes.push(node(op, "same", &[&prev], &out, vec![]));
        prev = out;
    }
    let reshape = ints("shape", vec![1, 16]);
    nodes.push(node("Reshape", "same", &[&prev, "shape"], "y", vec![]));
    // A thread with a small stack: the import must not recurse per node.
    let bytes = model(nodes, vec![reshape], "y");
    let m = std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(move || npu_onnx::import(&bytes, "chain.onnx").map(|m| m.graph.nodes.len()))
        .expect("thread")
        .join()
        .expect("no stack overflow");
    let nodes = m.expect("imports");
    assert!(nodes >= 1, "{nodes}");
}

#[test]
fn deeply_nested_assembly_expressions_are_a_diagnostic() {
    let deep = format!(".equ x, {}1{}\n", "(".repeat(5000), ")".repeat(5000));
    let e = npu_isa::asm::assemble(&deep, "deep.s").expect_err("too deep");
    assert!(e.to_string().contains("expression nested more than 64 deep"), "{e}");
    // 64 levels are fine.
    let ok = format!(".equ x, {}1{}\n", "(".repeat(63), ")".repeat(63));
    assert!(npu_isa::asm::assemble(&ok, "ok.s").is_ok());
}

#[test]
fn deeply_nested_sweep_filters_are_an_error() {
    let filter = format!("{}clock_mhz{} > 1", "(".repeat(10_000), ")".repeat(10_000));
    let text = format!(
        r#"(name: "t", models: ["zoo:cnn"], schemes: ["int8-sym"], hw: ["edge-64"], filters: ["{filter}"], timing_only: true)"#
    );
    let e = match npu::sweep::plan_from_ron(&text, "plan.ron") {
        Ok(p) => npu::sweep::expand(&p).map(|_| ()).expect_err("too deep").to_string(),
        Err(e) => format!("{e:#}"),
    };
    assert!(e.to_string().contains("parentheses nested more than 64 deep"), "{e}");
}

/// The fuzzer's watchdog calls a case hung once the same case (target and number) has run
/// longer than the budget, counting from when it was first seen; a new case, another
/// target's case of the same number, or a pause between cases starts the clock again
/// (issue #22: a time budget per case, as well as a memory budget).
#[test]
fn the_fuzzers_watchdog_names_a_case_running_past_the_hang_budget() {
    let t0 = std::time::Instant::now();
    let at = |s: u64| t0 + Duration::from_secs(s);
    let mut w = npu_fuzz::Watch::new(Duration::from_secs(10));
    assert_eq!(w.tick(Some((0, 5)), at(0)), None);
    assert_eq!(w.tick(Some((0, 5)), at(10)), None, "exactly the budget is not over it");
    assert_eq!(w.tick(Some((0, 5)), at(11)), Some((0, 5)));
    assert_eq!(w.tick(Some((0, 6)), at(12)), None);
    assert_eq!(w.tick(Some((0, 6)), at(22)), None);
    assert_eq!(w.tick(Some((1, 6)), at(23)), None, "another target's case 6");
    assert_eq!(w.tick(Some((1, 6)), at(34)), Some((1, 6)));
    assert_eq!(w.tick(None, at(35)), None);
    assert_eq!(w.tick(Some((1, 6)), at(50)), None, "seen again after a pause: a new start");
    assert_eq!(w.tick(Some((1, 6)), at(61)), Some((1, 6)));
}

/// The `image` target's resealing leaves a valid PNG valid (every chunk's CRC-32 is the
/// one the file had: the fixture was written by a PNG encoder) and makes a changed
/// chunk's CRC match its new bytes, so that mutations reach the decoder.
#[test]
fn resealing_a_png_recomputes_exactly_the_chunk_checksums() {
    let png = std::fs::read(crate::repo_root().join("tests/fixtures/data/folder/a_red/img0.png")).expect("fixture");
    let mut same = png.clone();
    npu_fuzz::reseal_png(&mut same);
    assert_eq!(same, png);
    // The IHDR chunk's width (bytes 16..20) changed: its CRC (bytes 29..33), and only
    // it, is recomputed over "IHDR" and the 13 data bytes (the span the PNG
    // specification names), and the image decoder accepts it as a checksum.
    let mut wide = png.clone();
    wide[19] ^= 0x01;
    npu_fuzz::reseal_png(&mut wide);
    assert_eq!(&wide[12..16], b"IHDR");
    assert_ne!(wide[29..33], png[29..33]);
    assert_eq!(wide[29..33], crc32fast::hash(&wide[12..29]).to_be_bytes());
    assert_eq!(wide[33..], png[33..], "later chunks untouched");
    let opts = npu_datafiles::images::ImageOptions::default();
    let (_, w0, _, _) = npu_datafiles::images::decode(&png, &opts, "a.png").expect("decodes");
    match npu_datafiles::images::decode(&wide, &opts, "b.png") {
        Ok((_, w1, _, _)) => assert_ne!(w0, w1),
        Err(e) => assert!(!e.to_string().to_lowercase().contains("crc"), "{e}"),
    }
}

/// The minimiser keeps exactly what the failure needs: with "fails when the bytes X, Y, Z
/// occur in this order", a 200-byte input holding them scattered shrinks to "XYZ"; an
/// input that fails only whole is left whole; the try budget is kept.
#[test]
fn findings_are_minimised_to_what_the_failure_needs() {
    let mut input: Vec<u8> = (0..200u8).map(|i| b'a' + i % 20).collect();
    (input[17], input[90], input[181]) = (b'X', b'Y', b'Z');
    let mut runs = 0;
    let mut in_order = |b: &[u8]| {
        runs += 1;
        let mut want = b"XYZ".iter().peekable();
        for c in b {
            if want.peek() == Some(&c) {
                want.next();
            }
        }
        want.peek().is_none()
    };
    assert!(in_order(&input));
    assert_eq!(npu_fuzz::minimise(&input, &mut in_order, 10_000), b"XYZ");
    assert!(runs < 2_000, "{runs} runs");
    let whole = b"abcdef".to_vec();
    assert_eq!(npu_fuzz::minimise(&whole, &mut |b: &[u8]| b == b"abcdef", 1000), whole);
    let mut count = 0;
    let _ = npu_fuzz::minimise(
        &input,
        &mut |_: &[u8]| {
            count += 1;
            false
        },
        25,
    );
    assert_eq!(count, 25);
    // A target input that does not panic is returned as it is.
    assert_eq!(npu_fuzz::minimise_panic(Target::Npy, b"not npy", 100), b"not npy");
}

#[test]
fn a_requantizing_quantize_is_checked_before_its_output_shape_sizes_anything() {
    // Found by `npu-fuzz --target tflite --seed 2040` (case 104,784): one byte of
    // int8_activations.tflite turns a requantizing QUANTIZE's output shape [1, 16, 16, 4]
    // into [1, 16, 16, 889192452]; the importer allocated 3.5 GB of per-channel weights
    // and biases before the graph check refused the shape.
    let path = crate::repo_root().join("tests/fixtures/tflite/int8_activations.tflite");
    let mut bytes = std::fs::read(path).expect("fixture");
    assert_eq!(bytes[3632..3636], [4, 0, 0, 0], "the fixture's channel count");
    bytes[3635] = 0x35;
    let err = npu_tflite::import(&bytes, "mutated").expect_err("an inconsistent shape").to_string();
    assert!(err.contains("QUANTIZE") && err.contains("889192452"), "{err}");
    assert!(err.contains("requantizes [4, 16, 16]"), "{err}");
}
