//! `npu compare`: the relations its rows must satisfy with the executors they come
//! from and with each other, its independence of the thread count, and its files.

use npu::compare::{compare, Comparison, Options};
use npu_quant::Scheme;

use crate::cli::npu;

const IMAGES: usize = 200;

fn options(schemes: &[&str], jobs: usize) -> Options {
    Options {
        model: "zoo:mobilenet".into(),
        source: Default::default(),
        hw: "edge-256".into(),
        schemes: schemes.iter().map(|s| s.to_string()).collect(),
        limit: Some(IMAGES),
        jobs,
        calib: 300,
        quiet: true,
        extra: Vec::new(),
        shard: None,
    }
}

fn row<'a>(c: &'a Comparison, key: &str) -> &'a npu::compare::Row {
    c.rows.iter().find(|r| r.key == key).unwrap_or_else(|| panic!("row {key}"))
}

#[test]
fn compare_rows_agree_with_the_executors_and_with_each_other() {
    let c =
        compare(&options(&["fp32", "int8-pow2", "int8-sym", "int8-per-channel", "binary-weights"], 2)).expect("runs");
    let m = npu_zoo::trained("mobilenet").expect("zoo");
    let test = npu_zoo::fashion_mnist_test().expect("embedded").take(IMAGES);
    // The FP32 row is the FP32 executor's accuracy on the same images.
    let (fp, _) = m.evaluate(&test, IMAGES, &mut |_| {}).expect("evaluates");
    assert_eq!((row(&c, "fp32").correct, row(&c, "fp32").images), (Some(fp.correct), IMAGES));
    // The per-channel INT8 row, from the simulator's outputs, is the integer reference
    // executor's accuracy for the same quantization on the same images.
    let train = npu_zoo::fashion_mnist_train_subset().expect("embedded");
    let source = npu_quant::RangeSource::Calibration { images: 300, method: npu_quant::calib::Method::MinMax };
    let q =
        npu_quant::quantize_model(&m, &Scheme::named("int8-per-channel").expect("scheme"), &train, source).expect("q");
    let (int, _) = q.evaluate_int(&test, IMAGES, &mut |_| {}).expect("evaluates");
    let pc = row(&c, "int8-per-channel");
    assert_eq!(pc.correct, Some(int.correct));
    assert_eq!(pc.delta, Some(pc.score - row(&c, "fp32").score));
    // Binary-weight layers cost less energy than INT8 ones; a shift-only
    // requantization is not slower than one with a multiplier.
    let hw = |k: &str| row(&c, k).hw.clone().expect("ran on the NPU");
    assert!(hw("binary-weights").energy_uj < hw("int8-per-channel").energy_uj);
    assert!(hw("int8-pow2").cycles <= hw("int8-sym").cycles);
    // Frames/s and latency are the cycles at the clock.
    let h = hw("int8-per-channel");
    assert!((h.fps - 500e6 / h.cycles as f64).abs() < 1e-6 * h.fps);
    assert!((h.latency_us * h.fps - 1e6).abs() < 1e-3);
    // Of the most accurate rows that ran (ties are possible on 200 images), one is on
    // each Pareto front: nothing is more accurate, so only an equally accurate row can
    // dominate it.
    let top = c.rows.iter().filter(|r| r.hw.is_some()).map(|r| r.score).fold(f64::MIN, f64::max);
    let best: Vec<_> = c.rows.iter().filter(|r| r.hw.is_some() && r.score == top).collect();
    assert!(best.iter().any(|r| r.pareto_fps) && best.iter().any(|r| r.pareto_energy), "{best:?}");
}

#[test]
fn compare_results_do_not_depend_on_the_number_of_jobs() {
    let strip = |mut c: Comparison| {
        for r in &mut c.rows {
            if let Some(h) = &mut r.hw {
                h.host_seconds = 0.0;
            }
        }
        c
    };
    let one = strip(compare(&options(&["int8-per-channel", "w4a8-per-channel"], 1)).expect("runs"));
    let three = strip(compare(&options(&["int8-per-channel", "w4a8-per-channel"], 3)).expect("runs"));
    assert_eq!(one, three);
}

#[test]
fn compare_writes_its_table_data_and_plots() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("cmp");
    let args = ["compare", "--limit", "40", "--schemes", "fp32,int8-per-channel,uint8-asym", "--jobs", "2", "-q"];
    let (code, text, err) = npu(&[&args[..], &["--out", out.to_str().expect("utf-8")]].concat());
    assert_eq!(code, 0, "{err}");
    assert!(text.contains("INT8, per-channel") && text.contains("frames/s"), "{text}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("compare.json")).expect("json")).expect("parses");
    assert_eq!(v["rows"].as_array().map(Vec::len), Some(3));
    let csv = std::fs::read_to_string(out.join("compare.csv")).expect("csv");
    assert_eq!(csv.lines().count(), 4, "{csv}");
    assert!(std::fs::read_to_string(out.join("compare.md")).expect("md").contains("| UINT8, asymmetric per-tensor |"));
    for svg in ["accuracy_vs_fps.svg", "accuracy_vs_energy.svg"] {
        let s = std::fs::read_to_string(out.join(svg)).expect("svg");
        // Human-readable names in a legend that numbers every point.
        assert!(s.starts_with("<svg") && s.contains("Pareto front") && s.contains("1  INT8, per-channel"), "{svg}");
    }
    // A scheme the hardware cannot run is a row saying why, not a failure.
    let (code, text, err) = npu(&["compare", "--limit", "10", "--hw", "edge-64", "-q", "--bench"]);
    assert_eq!(code, 0, "{err}");
    assert!(text.contains("INT8, per-channel"), "--bench runs per-channel INT8 only: {text}");
    let (code, _, err) = npu(&["compare", "--limit", "10", "--schemes", "binary-weights", "--bench"]);
    assert_eq!(code, 2, "--bench chooses its own scheme");
    assert!(err.contains("--schemes") && err.contains("--bench"), "{err}");
    let (code, text, _) = npu(&[
        "compare",
        "--limit",
        "10",
        "--schemes",
        "binary-weights",
        "--hw",
        "edge-64",
        "-q",
        "--out",
        out.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, 0);
    // edge-64 has no binary mode: the binary layers run on the host CPU, which the table's
    // notes say.
    let note = text.lines().find_map(|l| l.strip_prefix("binary-weights: ")?.split_once(" layers on the host CPU"));
    assert!(note.is_some_and(|(n, _)| n.parse::<usize>().is_ok_and(|n| n > 0)), "{text}");
    let (code, _, err) = npu(&["compare", "--schemes", "int9"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown scheme `int9`"), "{err}");
}

/// A comparison's JSON with what legitimately differs between runs (host seconds) zeroed.
fn without_host_time(path: &std::path::Path) -> serde_json::Value {
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("compare.json")).expect("parses");
    for r in v["rows"].as_array_mut().expect("rows") {
        if r["hw"].is_object() {
            r["hw"]["host_seconds"] = 0.into();
        }
    }
    v
}

#[test]
fn sharded_compare_merges_to_the_unsharded_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = |name: &str| dir.path().join(name).display().to_string();
    // 61 samples in 3 uneven blocks (20, 20, 21), top-1; then 2 blocks scored by SQNR,
    // whose sums are not integers.
    for (metric, shards) in [("top1", 3), ("sqnr", 2)] {
        let args = ["compare", "zoo:cnn", "--schemes", "fp32,int8-per-channel,w4a8-per-channel", "--limit", "61"];
        let args = [&args[..], &["--calib", "100", "--metric", metric, "-q"]].concat();
        let (code, _, err) = npu(&[&args[..], &["-o", &d(&format!("{metric}-whole"))]].concat());
        assert_eq!(code, 0, "{err}");
        let mut parts = Vec::new();
        for i in 0..shards {
            let out = d(&format!("{metric}-{i}"));
            let (code, text, err) = npu(&[&args[..], &["--shard", &format!("{i}/{shards}"), "-o", &out]].concat());
            assert_eq!(code, 0, "{err}");
            let (start, end) = (i * 61 / shards, (i + 1) * 61 / shards);
            assert!(text.contains(&format!("(shard {i} of {shards}: samples {start}..{end} of 61)")), "{text}");
            parts.push(out);
        }
        // Merged in any order.
        parts.reverse();
        let merged = d(&format!("{metric}-merged"));
        let (code, text, err) =
            npu(&[&["compare", "merge"][..], &parts.iter().map(String::as_str).collect::<Vec<_>>(), &["-o", &merged]]
                .concat());
        assert_eq!(code, 0, "{err}");
        assert!(text.contains(&format!("merged {shards} shards: 61 samples")), "{text}");
        let read = |p: String| std::fs::read_to_string(p).expect("file");
        let whole = d(&format!("{metric}-whole"));
        for f in ["compare.md", "compare.csv", "accuracy_vs_fps.svg", "accuracy_vs_energy.svg"] {
            assert_eq!(read(format!("{merged}/{f}")), read(format!("{whole}/{f}")), "{metric}: {f}");
        }
        let json = |p: &str| without_host_time(&std::path::Path::new(p).join("compare.json"));
        assert_eq!(json(&merged), json(&whole), "{metric}");
    }
    // What cannot be merged is refused, naming why.
    let p = |m: &str, i: usize| d(&format!("{m}-{i}"));
    let refused = |dirs: &[String], want: &str| {
        let dirs: Vec<&str> = dirs.iter().map(String::as_str).collect();
        let (code, _, err) = npu(&[&["compare", "merge"][..], &dirs, &["-o", &d("x")]].concat());
        assert!(code != 0 && err.contains(want), "{dirs:?}: {err}");
    };
    refused(&[p("top1", 0), p("top1", 2)], "1 of 3 shards missing (the first: shard 1)");
    refused(&[p("top1", 0), p("top1", 0), p("top1", 1)], "shard 0 of 3 is given twice");
    refused(&[p("top1", 0), p("sqnr", 1)], "shard 1 has another metric or clock than shard 0");
    refused(&[d("top1-whole")], "is not a shard");
    // A shard calibrated on other data quantized other models.
    let (code, _, err) = npu(&[
        "compare",
        "zoo:cnn",
        "--schemes",
        "fp32,int8-per-channel,w4a8-per-channel",
        "--limit",
        "61",
        "--calib",
        "90",
        "-q",
        "--shard",
        "1/3",
        "-o",
        &d("other"),
    ]);
    assert_eq!(code, 0, "{err}");
    refused(&[p("top1", 0), d("other"), p("top1", 2)], "row int8-per-channel: shard 1 quantized another model");
    // A split with an empty block, and --bench, are refused before any work.
    let (code, _, err) = npu(&["compare", "zoo:cnn", "--limit", "3", "--shard", "0/4", "-q", "-o", &d("y")]);
    assert!(code != 0 && err.contains("shard 0 of 4 holds no samples: the data hold 3"), "{err}");
    let (code, _, err) = npu(&["compare", "--bench", "--shard", "0/2"]);
    assert!(code == 2 && err.contains("--shard"), "{err}");
}

/// A child process per task of a stepped Slurm job array (`--array=0-4:2`: tasks 0, 2, 4,
/// shards 0–2 of 3), each `npu compare --shard auto`, as the scheduler would run them.
#[test]
fn stepped_slurm_array_shards_merge_to_the_unsharded_comparison() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = |name: &str| dir.path().join(name).display().to_string();
    let args = ["compare", "zoo:cnn", "--schemes", "fp32,int8-per-channel", "--limit", "50", "--calib", "100", "-q"];
    let mut kids = Vec::new();
    for task in [0, 2, 4] {
        let out = d(&format!("shard-{task}"));
        let env: Vec<(&str, String)> = [
            ("SLURM_ARRAY_TASK_ID", task),
            ("SLURM_ARRAY_TASK_MIN", 0),
            ("SLURM_ARRAY_TASK_MAX", 4),
            ("SLURM_ARRAY_TASK_STEP", 2),
            ("SLURM_ARRAY_TASK_COUNT", 3),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.to_string()))
        .collect();
        kids.push(crate::sweep::child(&[&args[..], &["--shard", "auto", "-o", &out]].concat(), &env));
    }
    for mut k in kids {
        assert!(k.wait().expect("waits").success(), "a shard failed");
    }
    // Task 2 ran shard 1: samples 16..33 of 50.
    let md = std::fs::read_to_string(dir.path().join("shard-2/compare.md")).expect("md");
    assert!(md.contains("(shard 1 of 3: samples 16..33 of 50)"), "{md}");
    let (code, _, err) = npu(&["compare", "merge", &d("shard-4"), &d("shard-0"), &d("shard-2"), "-o", &d("merged")]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = npu(&[&args[..], &["-o", &d("whole")]].concat());
    assert_eq!(code, 0, "{err}");
    let read = |p: &str| std::fs::read_to_string(dir.path().join(p)).expect("file");
    assert_eq!(read("merged/compare.md"), read("whole/compare.md"));
    assert_eq!(
        without_host_time(&dir.path().join("merged/compare.json")),
        without_host_time(&dir.path().join("whole/compare.json"))
    );
}

#[test]
fn sqnr_comparison_plots_with_the_fp32_row_off_the_scale() {
    // The FP32 row's SQNR against itself is +∞; plotting it once hung the command.
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("cmp");
    let args = ["compare", "zoo:cnn", "--schemes", "fp32,int8-per-channel", "--limit", "20", "--metric", "sqnr", "-q"];
    let (code, text, err) = npu(&[&args[..], &["-o", out.to_str().expect("utf-8")]].concat());
    assert_eq!(code, 0, "{err}");
    // No Δ against an infinite reference.
    let fp = text.lines().find(|l| l.starts_with("INT8, per-channel")).expect("row");
    assert_eq!(fp.split_whitespace().nth(3), Some("—"), "{text}");
    let svg = std::fs::read_to_string(out.join("accuracy_vs_fps.svg")).expect("svg");
    assert!(svg.contains("not drawn: off the scale") && svg.contains("FP32 reference: inf dB"), "{svg}");
    assert!(svg.contains(" dB, ") && !svg.contains("%"), "SQNR is in dB, not percent");
}

#[test]
fn plot_draws_rows_that_all_fall_far_below_the_fp32_line() {
    // Every row more than 15 points below FP32 once left nothing on the axes, and
    // plotters' tick computation looped forever on the empty range.
    use npu_app::compare::{Comparison, Row};
    let row = |key: &str, score: f64, fps: f64| Row {
        key: key.into(),
        label: format!("row {key}"),
        images: 32,
        correct: None,
        score,
        delta: Some(score - 100.0),
        hw: (key != "fp32").then(|| npu_app::HwFigures {
            cycles: (5e8 / fps) as u64,
            fps,
            latency_us: 1e6 / fps,
            energy_uj: 50.0,
            power_mw: 50.0 * fps / 1000.0,
            weight_bytes: 1000,
            onchip_act_bytes: 0,
            sram_act_bytes: 0,
            offchip_bytes: 1000,
            roofline_ratio: 1.0,
            cpu_layers: 0,
            host_seconds: 0.0,
        }),
        pareto_fps: true,
        pareto_energy: false,
        error: None,
        tally: None,
        digest: None,
    };
    let c = Comparison {
        model: "m".into(),
        hw: "edge-256".into(),
        clock_mhz: 500.0,
        data: "32 samples".into(),
        metric: npu_data::metrics::Metric::Agreement,
        rows: vec![row("fp32", 100.0, 0.0), row("a", 53.1, 1385.8), row("b", 15.6, 2372.0)],
        part: None,
    };
    let svg = npu_present::plot(&c, npu_present::Axis::Fps).expect("plots");
    // Both rows are drawn (the legend lists them with their frames/s); b, over 15 points
    // below the best row, is listed as not drawn.
    assert!(svg.contains("row a: 53.10%, 1386 fps"), "{svg}");
    assert!(svg.contains("not drawn") && svg.contains("row b: 15.60%"), "{svg}");
}

#[test]
fn sharded_eval_merges_to_the_unsharded_value() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = crate::repo_root().join("tests/fixtures/tflite/fmnist_int8.tflite");
    let model = model.to_str().expect("utf-8");
    for metric in ["top1", "cosine"] {
        let args = ["eval", model, "--limit", "250", "--metric", metric, "--json", "-q"];
        let (code, whole, err) = npu(&args);
        assert_eq!(code, 0, "{err}");
        let mut files = Vec::new();
        for i in 0..3 {
            let (code, text, err) = npu(&[&args[..], &["--shard", &format!("{i}/3")]].concat());
            assert_eq!(code, 0, "{err}");
            let f = dir.path().join(format!("{metric}-{i}.json"));
            std::fs::write(&f, text).expect("writes");
            files.push(f.display().to_string());
        }
        let files: Vec<&str> = files.iter().map(String::as_str).collect();
        let (code, merged, err) = npu(&[&["eval", "merge"][..], &files, &["--json"]].concat());
        assert_eq!(code, 0, "{err}");
        let v = |t: &str| serde_json::from_str::<serde_json::Value>(t).expect("json");
        let (w, m) = (v(&whole), v(&merged));
        for k in ["value", "images", "correct", "tally", "digest", "model", "data"] {
            assert_eq!(m[k], w[k], "{metric}: {k}");
        }
        assert_eq!(m["images"], 250);
        let (code, _, err) = npu(&["eval", "merge", files[0], files[2]]);
        assert!(code != 0 && err.contains("1 of 3 shards missing (the first: shard 1)"), "{err}");
    }
    // The top-1 is the integer executor's (the same as the unsharded line).
    let (code, text, _) = npu(&["eval", model, "--limit", "250", "-q"]);
    assert_eq!(code, 0);
    let (code, merged, err) = npu(&[
        "eval",
        "merge",
        &dir.path().join("top1-0.json").display().to_string(),
        &dir.path().join("top1-1.json").display().to_string(),
        &dir.path().join("top1-2.json").display().to_string(),
    ]);
    assert_eq!(code, 0, "{err}");
    let pct = |t: &str| t.split(" top-1 ").nth(1).and_then(|r| r.split(" on ").next()).map(str::to_string);
    assert_eq!(pct(&merged), pct(&text));
}

#[test]
fn mixed_precision_search_finds_a_cheaper_assignment_within_the_allowed_drop() {
    use npu::mixed::{pareto, search, Options as MixedOptions};
    let o = MixedOptions {
        model: "zoo:cnn".into(),
        hw: "edge-256".into(),
        max_drop: 0.5,
        energy: false,
        val_images: 300,
        calib: 200,
        source: Default::default(),
    };
    let found = search(&o, &mut |_| {}).expect("searches");
    // All-INT8 is the baseline; the best assignment costs fewer cycles within 0.5 points.
    assert!(found.baseline.bits.iter().all(|(_, b)| *b == npu_quant::WeightBits::B8));
    assert!(found.best.cycles < found.baseline.cycles, "{:?}", found.best);
    assert!(found.baseline.accuracy - found.best.accuracy <= 0.5);
    // The recipe names exactly the layers the best assignment lowers.
    let lowered: Vec<&String> =
        found.best.bits.iter().filter(|(_, b)| *b != npu_quant::WeightBits::B8).map(|(l, _)| l).collect();
    let named: Vec<&String> = found.recipe.overrides.iter().map(|(l, _)| l).collect();
    assert_eq!(lowered, named);
    // The front: no explored point is better in both accuracy and cycles than a front point.
    let front = pareto(&found.explored, false);
    for f in &front {
        assert!(!found.explored.iter().any(|p| p.accuracy > f.accuracy && p.cycles < f.cycles));
    }
    // Lowering the 3136→128 dense layer, which holds 87% of the weights streamed from
    // flash, saves the most cycles of any single layer at 4 bits.
    let best4 = found
        .sensitivity
        .iter()
        .filter(|s| s.1 == npu_quant::WeightBits::B4)
        .max_by(|a, b| a.3.total_cmp(&b.3))
        .expect("sensitivities");
    assert_eq!(best4.0, "fc4");
}

#[test]
fn compare_adds_rows_from_recipes_and_quantized_models() {
    let dir = tempfile::tempdir().expect("tempdir");
    let recipe = crate::repo_root().join("docs/recipes/mixed-w4.ron");
    let q = dir.path().join("pc.npuq");
    assert_eq!(npu(&["quantize", "zoo:resnet", "--calib", "100", "-o", q.to_str().expect("utf-8")]).0, 0);
    let (code, text, err) = npu(&[
        "compare",
        "zoo:resnet",
        "--limit",
        "30",
        "--schemes",
        "int8-per-channel",
        "--add",
        recipe.to_str().expect("utf-8"),
        "--add",
        q.to_str().expect("utf-8"),
        "-o",
        dir.path().join("cmp").to_str().expect("utf-8"),
        "-q",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(text.contains("recipe mixed-w4") && text.contains("int8-per-channel (pc.npuq)"), "{text}");
}
