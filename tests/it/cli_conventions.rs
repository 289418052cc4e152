//! The command line's conventions (docs/cli.md): exit status 2 for bad values and flags
//! that cannot apply, nothing clamped, atomic outputs, pure JSON with a schema, files
//! written before anything is printed about them, the per-layer CSV and the trace.

use std::path::Path;

use crate::cli::npu;
use crate::repo_root;

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn bad_values_exit_2_with_the_flag_named() {
    let cnn = repo_root().join("tests/fixtures/onnx/plain_cnn.onnx");
    let cnn = s(&cnn);
    let dot = repo_root().join("programs/dot.s");
    let dot = s(&dot);
    for (args, flag) in [
        (vec!["eval", cnn, "--limit", "0"], "--limit"),
        (vec!["eval", cnn, "--engine", "gpu"], "--engine"),
        (vec!["eval", cnn, "--std", "0"], "--std"),
        (vec!["eval", cnn, "--layout", "chw"], "--layout"),
        (vec!["train", "cnn", "--lr", "nan", "-o", "x.npum"], "--lr"),
        (vec!["train", "cnn", "--batch", "0", "-o", "x.npum"], "--batch"),
        (vec!["train", "cnn", "--schedule", "linear", "-o", "x.npum"], "--schedule"),
        (vec!["quantize", cnn, "--clip-sigma=-1", "-o", "x.npuq"], "--clip-sigma"),
        (vec!["quantize", cnn, "--calib", "0", "-o", "x.npuq"], "--calib"),
        (vec!["quantize", cnn, "--calib-method", "median", "-o", "x.npuq"], "--calib-method"),
        (vec!["quantize", cnn, "--layer", "conv=3", "-o", "x.npuq"], "--layer"),
        (vec!["quantize", cnn, "--scheme", "int7", "-o", "x.npuq"], "--scheme"),
        (vec!["prune", "zoo:cnn", "--sparsity", "1.5", "-o", "x.npum"], "--sparsity"),
        (vec!["prune", "zoo:cnn", "--structure", "4:2", "-o", "x.npum"], "--structure"),
        (vec!["compile", "zoo:cnn", "--hw", "edge-9", "-o", "x"], "--hw"),
        (vec!["compare", "--jobs", "0"], "--jobs"),
        (vec!["sweep", "plan.ron", "--shard", "4/4"], "--shard"),
        (vec!["run", dot, "--dump", "sram:zero:4"], "--dump"),
        (vec!["--log", "loud[", "zoo"], "--log"),
    ] {
        let (code, _, err) = npu(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(flag), "{args:?} names {flag}: {err}");
    }
}

#[test]
fn flags_that_cannot_apply_are_refused_not_ignored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let q = dir.path().join("q.npuq");
    assert_eq!(npu(&["quantize", "zoo:cnn", "--calib", "50", "-q", "-o", s(&q)]).0, 0);
    let build = dir.path().join("build");
    assert_eq!(npu(&["compile", s(&q), "-o", s(&build)]).0, 0);
    let tfl = repo_root().join("tests/fixtures/tflite/fmnist_int8.tflite");
    let dot = repo_root().join("programs/dot.s");
    let dot = s(&dot);
    for (args, words) in [
        (vec!["simulate", s(&build), "--hw", "edge-1k"], vec!["--hw edge-1k", "compile again"]),
        (vec!["simulate", s(&build), "--scheme", "int8-sym"], vec!["--scheme int8-sym"]),
        (vec!["compile", s(&q), "--scheme", "int8-sym", "-o", "x"], vec!["--scheme int8-sym", "quantized already"]),
        (vec!["simulate", s(&q), "--scheme", "int8-sym"], vec!["quantized already"]),
        (vec!["quantize", s(&tfl), "--scheme", "as-shipped", "--cle", "-o", "y.npuq"], vec!["--cle", "as-shipped"]),
        (
            vec!["quantize", "zoo:cnn", "--calib", "none", "--calib-method", "kl", "-o", "y.npuq"],
            vec!["--calib-method"],
        ),
        (
            vec!["quantize", "zoo:cnn", "--calib", "none", "--bias-correction", "empirical", "-o", "y.npuq"],
            vec!["empirical"],
        ),
        (vec!["quantize", "zoo:cnn", "--scheme", "as-shipped", "-o", "y.npuq"], vec!["not one"]),
        (vec!["simulate", "zoo:cnn", "--timing-only", "--limit", "5"], vec!["--timing-only", "--limit"]),
        (vec!["prune", "zoo:cnn", "--structure", "2:4", "--sparsity", "0.3", "-o", "y.npum"], vec!["--sparsity"]),
        (vec!["disasm", dot, "--json"], vec!["--json"]),
        (vec!["run", dot, "--timing-only", "--dump", "sram:0:4"], vec!["--dump"]),
        (
            vec!["quantize", "zoo:cnn", "--calib", "none", "--calib-data", "d.npz", "-o", "y.npuq"],
            vec!["--calib-data", "without data"],
        ),
        (vec!["infer", "zoo:cnn", "--input", "x.npy", "-o", "y.npy", "--engine", "int"], vec!["--engine int"]),
    ] {
        let (code, _, err) = npu(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        for w in words {
            assert!(err.contains(w), "{args:?} says `{w}`: {err}");
        }
    }
    // Writing over the input is refused.
    let (code, _, err) = npu(&["quantize", s(&q), "-o", s(&q)]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("that is the input"), "{err}");
}

#[test]
fn more_than_there_is_is_an_error_not_a_clamp() {
    let (code, out, err) = npu(&["eval", "zoo:cnn", "--limit", "20000", "-q"]);
    assert_eq!((code, out.as_str()), (2, ""), "{err}");
    assert!(err.contains("--limit 20000") && err.contains("has 10000 samples"), "{err}");
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, _, err) = npu(&["quantize", "zoo:cnn", "--calib", "10001", "-o", s(&dir.path().join("q.npuq"))]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--calib 10001") && err.contains("has 10000 images"), "{err}");
    assert!(!dir.path().join("q.npuq").exists());
}

#[test]
fn json_is_pure_and_carries_schema_and_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let q = dir.path().join("q.npuq");
    let build = dir.path().join("b");
    let bin = dir.path().join("dot.bin");
    let dot = repo_root().join("programs/dot.s");
    let cnn = repo_root().join("tests/fixtures/onnx/plain_cnn.onnx");
    let cmp = dir.path().join("cmp");
    let runs: Vec<(Vec<&str>, &str)> = vec![
        (vec!["zoo"], "zoo"),
        (vec!["inspect", s(&cnn)], "inspect"),
        (vec!["eval", s(&cnn), "--limit", "20"], "eval"),
        (vec!["quantize", s(&cnn), "--calib", "20", "-o", s(&q)], "quantize"),
        (vec!["compile", s(&q), "-o", s(&build)], "compile"),
        (vec!["simulate", s(&q), "--timing-only"], "simulate"),
        (vec!["asm", s(&dot), "-o", s(&bin)], "asm"),
        (vec!["run", s(&bin)], "run"),
        (vec!["compare", s(&cnn), "--limit", "20", "--schemes", "fp32,int8-sym", "-o", s(&cmp)], "compare"),
    ];
    for (args, kind) in runs {
        let mut a = args.clone();
        a.push("--json");
        let (code, out, err) = npu(&a);
        assert_eq!(code, 0, "{a:?}: {err}");
        let v: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{a:?}: not pure JSON ({e}): {out}"));
        assert_eq!(v["schema"], format!("npu.{kind}/1"), "{a:?}");
        assert!(v["npu"].as_str().is_some_and(|n| n.contains("commit")), "{a:?}");
    }
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cmp.join("compare.json")).expect("file")).expect("json");
    assert_eq!(v["schema"], "npu.compare/1");
    // A trap is in the JSON, and the status is still 1.
    let bad = dir.path().join("bad.s");
    std::fs::write(&bad, "    ld ext=sram src=0x3ffff0 loc=act dst=0 elem=64\n    halt\n").expect("write");
    let (code, out, _) = npu(&["run", s(&bad), "--json"]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON even with a trap");
    assert!(v["trap"].as_str().is_some_and(|t| !t.is_empty()), "{out}");
}

/// A writer whose reader has gone away (`npu … | head -0`).
struct ClosedPipe;

impl std::io::Write for ClosedPipe {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn files_are_written_before_anything_is_printed_and_atomically() {
    let dir = tempfile::tempdir().expect("tempdir");
    let q = dir.path().join("q.npuq");
    let mut err = Vec::new();
    let code = npu::run(["npu", "quantize", "zoo:cnn", "--calib", "20", "-o", s(&q)], &mut ClosedPipe, &mut err);
    assert_eq!(code, 0, "a closed pipe is not an error: {}", String::from_utf8_lossy(&err));
    let written = std::fs::read(&q).expect("the model was written before the report was printed");
    assert!(npu_quant::npuq::decode(&written, "q.npuq").is_ok());

    // A failed command leaves the old file untouched; a finished one leaves no temporary files.
    std::fs::write(&q, b"old").expect("write");
    let (code, _, _) = npu(&["quantize", "zoo:cnn", "--layer", "nosuch=4", "-o", s(&q)]);
    assert_eq!(code, 1);
    assert_eq!(std::fs::read(&q).expect("read"), b"old");
    npu::write_file(&q, b"new").expect("write");
    assert_eq!(std::fs::read(&q).expect("read"), b"new");
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into())
        .collect();
    assert_eq!(names, ["q.npuq"], "no temporary files left");
    assert!(npu::write_file(dir.path(), b"x").is_err(), "a directory is not overwritten by a file");

    // A compiled directory is replaced whole: no stale files, and a failed compile keeps the old one.
    let build = dir.path().join("build");
    std::fs::create_dir(&build).expect("mkdir");
    std::fs::write(build.join("stale.txt"), b"from an older compile").expect("write");
    assert_eq!(npu(&["compile", "zoo:cnn", "-q", "-o", s(&build)]).0, 0);
    assert!(!build.join("stale.txt").exists() && build.join("program.bin").is_file());
    let before = std::fs::read(build.join("program.bin")).expect("read");
    let (code, _, err) = npu(&[
        "compile",
        "zoo:cnn",
        "--scheme",
        "binary-weights",
        "--hw",
        "edge-64",
        "--no-cpu-fallback",
        "-o",
        s(&build),
    ]);
    assert_eq!(code, 1, "edge-64 has no binary mode: {err}");
    assert!(err.contains("has no `b1` mode"), "{err}");
    assert_eq!(std::fs::read(build.join("program.bin")).expect("old program kept"), before);
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into())
        .filter(|n: &String| n.starts_with(".npu-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn simulate_dir_verifies_the_program_model_and_hardware_it_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let build = dir.path().join("build");
    assert_eq!(npu(&["compile", "zoo:cnn", "-q", "-o", s(&build)]).0, 0);
    let (code, _, err) = npu(&["simulate", s(&build), "--limit", "2", "-q"]);
    assert_eq!(code, 0, "{err}");
    // The manifest's checksums are the CRC-32s of the files as written.
    let manifest = std::fs::read_to_string(build.join("compiled.ron")).expect("manifest");
    let program = std::fs::read(build.join("program.bin")).expect("program");
    let hex = |name: &str| {
        let at = manifest.find(&format!("{name}: ")).expect("field") + name.len() + 2;
        manifest[at..].split(|c: char| !c.is_ascii_digit()).next().expect("digits").parse::<u32>().expect("u32")
    };
    let crc32 = crate::crc32_reference;
    assert_eq!(hex("program_crc32"), crc32(&program));
    assert_eq!(hex("hw_crc32"), crc32(&std::fs::read(build.join("hw.ron")).expect("hw")));
    // One changed byte in the program (a weight, an operand): refused, naming the file's role.
    let mut changed = program.clone();
    let at = changed.len() / 2;
    changed[at] ^= 0x10;
    std::fs::write(build.join("program.bin"), &changed).expect("write");
    let (code, _, err) = npu(&["simulate", s(&build), "--limit", "2", "-q"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("the program has checksum") || err.contains("program.bin"),
        "a changed program must not run: {err}"
    );
    std::fs::write(build.join("program.bin"), &program).expect("restore");
    // A hardware description edited after compiling.
    let hw = std::fs::read_to_string(build.join("hw.ron")).expect("hw");
    std::fs::write(build.join("hw.ron"), hw.replacen("clock_mhz: ", "clock_mhz: 1", 1)).expect("write");
    let (code, _, err) = npu(&["simulate", s(&build), "--limit", "2", "-q"]);
    assert_eq!(code, 1);
    assert!(err.contains("the hardware description has checksum") && err.contains("compile again"), "{err}");
}

#[test]
fn version_names_the_commit_and_sources() {
    let (code, out, _) = npu(&["--version"]);
    assert_eq!(code, 0);
    assert!(out.contains("commit ") && out.contains(&format!("sources {}", npu::sweep::SOURCES)), "{out}");
    assert_eq!(npu::sweep::SOURCES.len(), 16);
}

#[test]
fn simulate_writes_a_per_layer_csv_whose_rows_add_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv_path = dir.path().join("layers.csv");
    let cnn = repo_root().join("tests/fixtures/onnx/plain_cnn.onnx");
    let (code, out, err) = npu(&["simulate", s(&cnn), "--timing-only", "--csv", s(&csv_path)]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("wrote {}", csv_path.display())), "{out}");
    let text = std::fs::read_to_string(&csv_path).expect("csv");
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(
        rows[0],
        [
            "layer",
            "operator",
            "macs",
            "cycles",
            "share_percent",
            "span_cycles",
            "mac_utilization_percent",
            "bound",
            "busiest_unit",
            "offchip_bytes",
            "sram_bytes",
            "energy_uj"
        ]
    );
    let body = &rows[1..rows.len() - 1];
    let total = rows.last().expect("total row");
    assert_eq!(total[0], "total");
    let sum = |col: usize| body.iter().map(|r| r[col].parse::<u64>().expect("number")).sum::<u64>();
    assert_eq!(sum(3), total[3].parse::<u64>().expect("cycles"), "attributed cycles add up to the run");
    // MACs per layer from the model's geometry (npu inspect's column, computed from the
    // graph's shapes): conv 16·28·28·9 = 112,896; conv 32·14·14·144 = 903,168; dense
    // 1568·64 = 100,352; dense 64·10 = 640.
    let macs: Vec<(&str, u64)> =
        body.iter().filter(|r| r[2] != "0").map(|r| (r[1], r[2].parse().expect("n"))).collect();
    assert_eq!(
        macs,
        [("conv w8/ch", 112_896), ("conv w8/ch", 903_168), ("dense w8/ch", 100_352), ("dense w8/ch", 640)]
    );
    assert_eq!(total[2].parse::<u64>().expect("macs"), 112_896 + 903_168 + 100_352 + 640);
    for r in body {
        assert!(["compute", "off-chip", "sram", "other"].contains(&r[7]), "{r:?}");
    }
    // JSON carries the same rows with their bound.
    let (_, json, _) = npu(&["simulate", s(&cnn), "--timing-only", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(v["layers"].as_array().map(Vec::len), Some(body.len()));
    assert!(v["layers"].as_array().expect("layers").iter().all(|l| l["bound"].is_string()));
}

#[test]
fn long_layer_names_are_shortened_in_tables_and_whole_in_csv() {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv_path = dir.path().join("layers.csv");
    let model = repo_root().join("tests/fixtures/tflite/int8_cnn.tflite");
    let (code, out, err) = npu(&["simulate", s(&model), "--timing-only", "--csv", s(&csv_path)]);
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&csv_path).expect("csv");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let names: Vec<String> = reader.records().map(|r| r.expect("row")[0].to_string()).collect();
    let long = names.iter().find(|n| n.chars().count() > 28).expect("TFLite names are long");
    assert!(!out.contains(long.as_str()), "the table shortens {long}");
    assert!(out.lines().any(|l| l.contains('…')), "{out}");
}

#[test]
fn traces_name_layers_draw_token_flows_and_bandwidth_counters() {
    let q = npu_quant::quantize_model(
        &npu_zoo::trained("cnn").expect("zoo"),
        &npu_quant::Scheme::named("int8-per-channel").expect("scheme"),
        &npu_zoo::fashion_mnist_train_subset().expect("data"),
        npu_quant::RangeSource::DataFree,
    )
    .expect("quantize");
    let hw = npu_hw::preset("edge-256").expect("preset");
    let c = npu_compile::compile(&q, &hw).expect("compile");
    let opts = npu_sim::RunOptions { timing_only: true, trace: true, ..Default::default() };
    let o = npu_sim::run(&c.with_input(&q, &vec![0; 784]), &hw, &opts).expect("run");
    let names: Vec<&str> = c.owner.iter().map(|&i| c.layers[i].as_str()).collect();
    let t: serde_json::Value =
        serde_json::from_str(&npu_sim::chrome_trace(&o.trace, &hw, &c.program.code, &names)).expect("JSON");
    let ev = t["traceEvents"].as_array().expect("events");
    let count = |ph: &str| ev.iter().filter(|e| e["ph"] == ph).count();
    // One flow per token taken: the executed instructions' wait sets, summed.
    let taken: usize = o.trace.iter().map(|e| c.program.code[e.index].wait.iter().count()).sum();
    assert!(taken > 0);
    assert_eq!(count("s"), taken);
    assert_eq!(count("f"), taken);
    assert_eq!(count("X"), o.trace.len());
    let slices: Vec<&serde_json::Value> = ev.iter().filter(|e| e["ph"] == "X").collect();
    assert!(slices.iter().all(|e| e["args"]["layer"].as_str().is_some_and(|l| c.layers.iter().any(|n| n == l))));
    // Counters: each instruction's bytes over its busy cycles, summed over those in
    // flight; never negative, and back to 0 when the last transfer ends.
    let dram: Vec<f64> = ev
        .iter()
        .filter(|e| e["ph"] == "C" && e["name"].as_str().is_some_and(|n| n.starts_with("dram")))
        .map(|e| e["args"]["B/cycle"].as_f64().expect("value"))
        .collect();
    assert!(!dram.is_empty());
    assert_eq!(*dram.last().expect("last"), 0.0);
    assert!(dram.iter().all(|v| *v >= 0.0));
}

#[test]
fn a_sweep_with_failed_points_writes_its_results_and_exits_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = dir.path().join("plan.ron");
    std::fs::write(
        &plan,
        r#"(name: "f", models: ["zoo:cnn"], schemes: ["int8-per-channel"], hw: ["edge-64"],
            params: {"memories.sram.bytes": List([512, 1048576])}, timing_only: true)"#,
    )
    .expect("write");
    let out = dir.path().join("out");
    let (code, _, err) = npu(&["sweep", s(&plan), "-o", s(&out), "-q"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("1 of 2 points could not run") && err.contains("does not fit"), "{err}");
    assert_eq!(std::fs::read_to_string(out.join("results.jsonl")).expect("results").lines().count(), 2);
    // A misspelt parameter fails before any point runs.
    std::fs::write(
        &plan,
        "(name: \"f\", models: [\"zoo:cnn\"], schemes: [\"int8-sym\"],\n params: { \"mac.rowz\": List([4, 8]) }, timing_only: true)",
    )
    .expect("write");
    let out2 = dir.path().join("out2");
    let (code, _, err) = npu(&["sweep", s(&plan), "-o", s(&out2), "-q"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("plan.ron:2:12:") && err.contains("`rowz` is not a field"), "{err}");
    assert!(!out2.exists(), "nothing ran");
}
