//! `npu sweep`: plan expansion, filters, hardware variants, shards (in separate
//! processes, as a scheduler runs them), merging, the cache, and accuracy points that
//! agree with the integer executor.

use std::collections::BTreeMap;
use std::path::Path;

use npu::sweep::{self, Plan, Values};

use crate::cli::npu;

fn plan(text: &str) -> Plan {
    sweep::plan_from_ron(text, "plan.ron").expect("valid plan")
}

#[test]
fn plans_expand_to_the_filtered_cartesian_product_in_order() {
    let p = plan(
        r#"(name: "t", models: ["zoo:cnn", "zoo:resnet"], schemes: ["int8-sym"], hw: ["edge-64", "edge-256"],
            params: { "mac.rows": List([4, 8]), "buffers.wgt.bytes": Doubling(from: 1024, to: 4096),
                      "clock_mhz": Range(from: 100, to: 300, step: 100) },
            filters: ["mac.rows * buffers.wgt.bytes <= 16384", "clock_mhz != 200"], timing_only: true)"#,
    );
    let pts = sweep::expand(&p).expect("expands");
    // Per model × hw: rows {4, 8} × wgt {1024, 2048, 4096} × clock {100, 300} = 12, minus
    // rows 8 with 4096 (32768 > 16384): 2 combinations → 10; × 2 models × 2 hw = 40.
    assert_eq!(pts.len(), 40);
    assert!(pts.iter().enumerate().all(|(i, p)| p.index == i));
    // Parameters in name order, the last (mac.rows) varying fastest.
    let first: Vec<(&str, f64)> = pts[0].params.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(first, [("buffers.wgt.bytes", 1024.0), ("clock_mhz", 100.0), ("mac.rows", 4.0)]);
    assert_eq!(pts[1].params["mac.rows"], 8.0);
    assert_eq!(pts[2].params["clock_mhz"], 300.0);
    assert_eq!((pts[0].model.as_str(), pts[0].hw.as_str()), ("zoo:cnn", "edge-64"));
    assert_eq!((pts[10].model.as_str(), pts[10].hw.as_str()), ("zoo:cnn", "edge-256"));
    assert_eq!(pts[20].model, "zoo:resnet");
    assert_eq!(Values::Range { from: 1.0, to: 2.0, step: 0.5 }, Values::Range { from: 1.0, to: 2.0, step: 0.5 });
}

#[test]
fn bad_plans_filters_and_parameters_are_clear_errors() {
    let e = sweep::plan_from_ron("(name: \"x\", models: [], schemes: [\"int8-sym\"])", "p.ron").expect_err("no models");
    assert!(e.to_string().contains("at least one model"), "{e}");
    let e = sweep::plan_from_ron("(name: \"x\", models: [\"zoo:cnn\"], schemes: [\"a\"], colour: 3)", "p.ron")
        .expect_err("field");
    assert!(e.to_string().starts_with("p.ron:"), "{e}");
    // Filters are checked when the plan is read, before any point runs, with the
    // filter's line and column in the plan.
    for (filter, why) in [
        ("mac.rows <= ", "unexpected end"),
        ("mac.rows * 2", "needs a comparison"),
        ("mac.rows = 2", "must be followed by `=`"),
        ("mac.colz < 4", "`mac.colz` is not a parameter of the plan"),
        ("(mac.rows < 4", "missing `)`"),
    ] {
        let text = format!(
            "(name: \"t\", models: [\"zoo:cnn\"], schemes: [\"int8-sym\"],\n params: {{ \"mac.rows\": List([4]) }},\n filters: [\"{filter}\"])"
        );
        let e = sweep::plan_from_ron(&text, "p.ron").expect_err(filter);
        assert!(e.to_string().contains(why), "{filter}: {e}");
        assert!(e.to_string().starts_with("p.ron:3:12:"), "{filter}: {e}");
    }
    // A misspelt parameter path, unknown models and schemes, and empty ranges fail the
    // same way, naming their place.
    let bad = |params: &str, rest: &str| {
        let text =
            format!("(name: \"t\", models: [\"zoo:cnn\"], schemes: [\"int8-sym\"],\n params: {{ {params} }}{rest})");
        sweep::plan_from_ron(&text, "p.ron").expect_err(params).to_string()
    };
    let e = bad(r#""mac.rowz": List([4])"#, "");
    assert!(e.starts_with("p.ron:2:12:") && e.contains("`rowz` is not a field") && e.contains("rows"), "{e}");
    let e = bad(r#""mac": List([4])"#, "");
    assert!(e.contains("`mac` is not a number"), "{e}");
    let e = bad(r#""mac.rows": Range(from: 8, to: 4, step: 1)"#, "");
    assert!(e.starts_with("p.ron:2:12:") && e.contains("no values"), "{e}");
    let e = bad("", ", images: 0");
    assert!(e.contains("images: 0"), "{e}");
    let e =
        sweep::plan_from_ron(r#"(name: "t", models: ["zoo:cnm"], schemes: ["int8-sym"])"#, "p.ron").expect_err("model");
    assert!(e.to_string().contains("no zoo architecture `cnm`"), "{e}");
    let e =
        sweep::plan_from_ron(r#"(name: "t", models: ["zoo:cnn"], schemes: ["int7"])"#, "p.ron").expect_err("scheme");
    assert!(e.to_string().starts_with("p.ron:1:") && e.to_string().contains("unknown scheme `int7`"), "{e}");
    let base = npu_hw::preset("edge-256").expect("preset");
    let set = |k: &str, v: f64| sweep::hardware_variant(&base, &BTreeMap::from([(k.to_string(), v)]));
    assert!(set("mac.colour", 4.0).expect_err("no field").to_string().contains("`colour` is not a field"));
    assert!(set("mac.rows", 4.5).expect_err("fraction").to_string().contains("whole number"));
    assert!(set("mac.rows", 0.0).is_err(), "an empty MAC array is invalid hardware");
    let hw = sweep::hardware_variant(&base, &BTreeMap::from([("mac.rows+mac.cols".to_string(), 8.0)])).expect("valid");
    assert_eq!((hw.mac.rows, hw.mac.cols, hw.name.as_str()), (8, 8, "edge-256[mac.rows+mac.cols=8]"));
}

#[test]
fn shard_specs_read_slurm_and_kubernetes_variables() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    };
    assert_eq!(sweep::parse_shard("2/5", &env(&[])).expect("ok"), (2, 5));
    // Slurm arrays may start at any index (--array=1-3): the shard is ID − MIN.
    let slurm = env(&[("SLURM_ARRAY_TASK_ID", "3"), ("SLURM_ARRAY_TASK_MIN", "1"), ("SLURM_ARRAY_TASK_COUNT", "3")]);
    assert_eq!(sweep::parse_shard("auto", &slurm).expect("ok"), (2, 3));
    // A stepped array (--array=0-6:2, as Slurm 22.05 sets it): tasks 0, 2, 4, 6 are
    // shards 0–3 of 4 (issue #25: task 6 was "shard 4 of 4").
    for (id, shard) in [("0", 0), ("2", 1), ("4", 2), ("6", 3)] {
        let stepped = move |k: &str| {
            [
                ("SLURM_ARRAY_TASK_ID", id),
                ("SLURM_ARRAY_TASK_MIN", "0"),
                ("SLURM_ARRAY_TASK_MAX", "6"),
                ("SLURM_ARRAY_TASK_STEP", "2"),
                ("SLURM_ARRAY_TASK_COUNT", "4"),
            ]
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
        };
        assert_eq!(sweep::parse_shard("auto", &stepped).expect("stepped"), (shard, 4), "task {id}");
    }
    let k8s = env(&[("JOB_COMPLETION_INDEX", "0"), ("NPU_SHARD_COUNT", "4")]);
    assert_eq!(sweep::parse_shard("auto", &k8s).expect("ok"), (0, 4));
    // A list that is not evenly stepped (--array=1,2,7) is refused by every task, even
    // one whose index would fit.
    let listed = &[
        ("SLURM_ARRAY_TASK_ID", "1"),
        ("SLURM_ARRAY_TASK_MIN", "1"),
        ("SLURM_ARRAY_TASK_MAX", "7"),
        ("SLURM_ARRAY_TASK_STEP", "1"),
        ("SLURM_ARRAY_TASK_COUNT", "3"),
    ];
    let off_step = &[
        ("SLURM_ARRAY_TASK_ID", "3"),
        ("SLURM_ARRAY_TASK_MIN", "0"),
        ("SLURM_ARRAY_TASK_STEP", "2"),
        ("SLURM_ARRAY_TASK_COUNT", "4"),
    ];
    for (spec, e, why) in [
        ("auto", env(listed), "not evenly stepped (SLURM_ARRAY_TASK_MIN 1, MAX 7, STEP 1, COUNT 3)"),
        ("auto", env(off_step), "task 3 is not one of the array's indices 0, 0+2"),
        ("auto", env(&[]), "neither SLURM_ARRAY_TASK_ID"),
        ("auto", env(&[("JOB_COMPLETION_INDEX", "1")]), "set NPU_SHARD_COUNT"),
        ("3/3", env(&[]), "below the count"),
        ("1-3", env(&[]), "expected I/N"),
    ] {
        let err = sweep::parse_shard(spec, &e).expect_err(spec).to_string();
        assert!(err.contains(why), "{spec}: {err}");
    }
}

const SHARDED: &str = r#"(
    name: "sharded",
    models: ["zoo:cnn"],
    schemes: ["int8-per-channel", "w4a8-per-channel"],
    hw: ["edge-256"],
    params: { "mac.rows+mac.cols": Doubling(from: 8, to: 32), "memories.dram.bytes_per_cycle": List([0.5, 2]) },
    timing_only: true,
    calib: 100,
)"#;

/// When started by [`three_shards_in_separate_processes_merge_to_the_unsharded_result`]
/// as a child process, runs the `npu` command line it was given; otherwise does nothing.
#[test]
fn sweep_child_process() {
    let args: Vec<String> = if let Ok(json) = std::env::var("NPU_SWEEP_CHILD_ARGS") {
        serde_json::from_str(&json).expect("JSON args")
    } else if let Ok(lines) = std::env::var("NPU_SWEEP_CHILD_LINES") {
        // From the `npu` shell wrapper the recipe tests put on PATH.
        lines.lines().map(String::from).collect()
    } else {
        return;
    };
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, _, err) = npu(&argv);
    assert_eq!(code, 0, "{err}");
}

/// This test binary re-run as `npu ARGS` in a child process with `env` set (the
/// scheduler variables a shard reads), stdout discarded.
pub(crate) fn child(args: &[&str], env: &[(&str, String)]) -> std::process::Child {
    let mut c = std::process::Command::new(std::env::current_exe().expect("test binary"));
    c.args(["--exact", "sweep::sweep_child_process", "--quiet", "--test-threads", "1"])
        .env("NPU_SWEEP_CHILD_ARGS", serde_json::to_string(args).expect("json"))
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env_remove("JOB_COMPLETION_INDEX");
    for (k, v) in env {
        c.env(k, v);
    }
    c.stdout(std::process::Stdio::null()).spawn().expect("spawns")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8")
}

#[test]
fn three_shards_in_separate_processes_merge_to_the_unsharded_result() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plan_path = dir.path().join("plan.ron");
    std::fs::write(&plan_path, SHARDED).expect("write");
    // A Slurm job array of three tasks (--array=0-2), all running at once.
    let mut kids = Vec::new();
    for i in 0..3 {
        let out = dir.path().join(format!("shard-{i}"));
        let args = ["sweep", s(&plan_path), "--shard", "auto", "--out", s(&out), "--jobs", "1", "-q"];
        let env = [("SLURM_ARRAY_TASK_ID", i.to_string()), ("SLURM_ARRAY_TASK_COUNT", "3".to_string())];
        kids.push(child(&args, &env));
    }
    for mut k in kids {
        assert!(k.wait().expect("waits").success(), "a shard failed");
    }
    let merged = dir.path().join("merged");
    let shards: Vec<String> = (0..3).map(|i| s(&dir.path().join(format!("shard-{i}"))).to_string()).collect();
    let mut args = vec!["sweep", "merge"];
    args.extend(shards.iter().map(String::as_str));
    args.extend(["--out", s(&merged)]);
    let (code, out, err) = npu(&args);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("12 points"), "{out}");
    // The unsharded run, in this process.
    let whole = dir.path().join("whole");
    let (code, _, err) = npu(&["sweep", s(&plan_path), "--out", s(&whole), "--jobs", "2", "-q"]);
    assert_eq!(code, 0, "{err}");
    let mut unsharded = sweep::read_results(&whole.join("results.jsonl")).expect("reads");
    unsharded.sort_by_key(|r| r.index);
    let merged_records = sweep::read_results(&merged.join("results.jsonl")).expect("reads");
    assert_eq!(merged_records.len(), 12);
    assert_eq!(merged_records, unsharded);
    assert!(merged_records.iter().all(|r| r.error.is_none() && r.fps.is_some()), "{merged_records:?}");
    // Each shard ran exactly its points (index mod 3).
    for (i, d) in shards.iter().enumerate() {
        let rs = sweep::read_results(&Path::new(d).join("results.jsonl")).expect("reads");
        assert!(rs.iter().all(|r| r.index % 3 == i) && rs.len() == 4, "shard {i}");
    }
    // A missing shard is an error naming the points it lacks.
    let (code, _, err) = npu(&["sweep", "merge", &shards[0], &shards[2], "--out", s(&merged)]);
    assert_ne!(code, 0);
    assert!(err.contains("cover 8 of 12 points; missing 1, 4, 7, 10"), "{err}");
    // Kubernetes: an Indexed Job's pods read JOB_COMPLETION_INDEX (and NPU_SHARD_COUNT).
    let k8s = dir.path().join("k8s-1");
    let args = ["sweep", s(&plan_path), "--shard", "auto", "--out", s(&k8s), "--jobs", "1", "-q"];
    let env = [("JOB_COMPLETION_INDEX", "1".to_string()), ("NPU_SHARD_COUNT", "2".to_string())];
    assert!(child(&args, &env).wait().expect("waits").success());
    let rs = sweep::read_results(&k8s.join("results.jsonl")).expect("reads");
    assert_eq!(rs.iter().map(|r| r.index).collect::<Vec<_>>(), [1, 3, 5, 7, 9, 11]);
}

#[test]
fn reruns_and_extended_plans_compute_only_new_points() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = |out: &str| sweep::RunOptions {
        out: dir.path().join(out),
        cache: Some(dir.path().join("cache")),
        shard: (0, 1),
        jobs: 2,
        quiet: true,
    };
    let mut p = plan(SHARDED);
    let first = sweep::run(&p, &o("a"), &mut Vec::new()).expect("runs");
    assert_eq!((first.points, first.cached), (12, 0));
    let again = sweep::run(&p, &o("b"), &mut Vec::new()).expect("runs");
    assert_eq!(again.cached, 12);
    assert_eq!(again.records, first.records);
    // One more array size: only its 4 points (2 schemes × 2 bandwidths) are new.
    p.params.insert("mac.rows+mac.cols".into(), Values::Doubling { from: 8.0, to: 64.0 });
    let extended = sweep::run(&p, &o("c"), &mut Vec::new()).expect("runs");
    assert_eq!((extended.points, extended.cached), (16, 12));
    // A larger array is not slower on the same model and memory.
    let fps = |rows: f64, scheme: &str, bw: f64| {
        extended
            .records
            .iter()
            .find(|r| {
                r.params["mac.rows+mac.cols"] == rows
                    && r.scheme == scheme
                    && r.params["memories.dram.bytes_per_cycle"] == bw
            })
            .and_then(|r| r.fps)
            .expect("ran")
    };
    assert!(fps(16.0, "int8-per-channel", 2.0) >= fps(8.0, "int8-per-channel", 2.0));
}

#[test]
fn accuracy_points_agree_with_the_integer_executor_and_cpu_layers_are_recorded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = plan(
        r#"(name: "acc", models: ["zoo:cnn"], schemes: ["int8-per-channel", "binary-weights"],
            hw: ["edge-64", "edge-256"], images: 150, calib: 200)"#,
    );
    let o = sweep::RunOptions { out: dir.path().to_path_buf(), cache: None, shard: (0, 1), jobs: 2, quiet: true };
    let s = sweep::run(&p, &o, &mut Vec::new()).expect("runs");
    let m = npu_zoo::trained("cnn").expect("zoo");
    let train = npu_zoo::fashion_mnist_train_subset().expect("embedded");
    let test = npu_zoo::fashion_mnist_test().expect("embedded").take(150);
    let source = npu_quant::RangeSource::Calibration { images: 200, method: npu_quant::calib::Method::MinMax };
    let scheme = npu_quant::Scheme::named("int8-per-channel").expect("scheme");
    let q = npu_quant::quantize_model(&m, &scheme, &train, source).expect("quantizes");
    let (acc, _) = q.evaluate_int(&test, 150, &mut |_| {}).expect("evaluates");
    for r in s.records.iter().filter(|r| r.scheme == "int8-per-channel") {
        assert_eq!(r.top1, Some(acc.correct as f64 / 150.0 * 100.0), "{}", r.hw);
        assert_eq!(r.images, 150);
    }
    // edge-64 has no binary MAC mode: the point runs its convolutions and dense layer on
    // the host CPU (recorded), with the integer executor's accuracy still.
    let bin64 = s.records.iter().find(|r| r.scheme == "binary-weights" && r.hw == "edge-64").expect("point");
    let bin256 = s.records.iter().find(|r| r.scheme == "binary-weights" && r.hw == "edge-256").expect("point");
    let binary = npu_quant::Scheme::named("binary-weights").expect("scheme");
    let qb = npu_quant::quantize_model(&m, &binary, &train, source).expect("quantizes");
    let (accb, _) = qb.evaluate_int(&test, 150, &mut |_| {}).expect("evaluates");
    let weighted = qb
        .layers
        .iter()
        .filter(|l| match &l.op {
            npu_quant::QOp::Conv2d { layer, .. } | npu_quant::QOp::Dense { layer } => {
                layer.bits == npu_quant::WeightBits::Binary
            }
            _ => false,
        })
        .count() as u64;
    assert_eq!((bin64.error.as_deref(), bin64.cpu_layers), (None, Some(weighted)), "{bin64:?}");
    assert_eq!(bin256.cpu_layers, Some(0), "{bin256:?}");
    for r in [bin64, bin256] {
        assert_eq!(r.top1, Some(accb.correct as f64 / 150.0 * 100.0), "{}", r.hw);
    }
    assert!(bin64.fps < bin256.fps, "{bin64:?} {bin256:?}");
    let written = sweep::write_outputs(dir.path(), &p, &s.records, false).expect("writes");
    assert!(written.contains(&"pareto_energy.svg".to_string()), "{written:?}");
    let md = std::fs::read_to_string(dir.path().join("summary.md")).expect("summary");
    assert!(md.contains("| 3 | zoo:cnn | binary-weights | edge-256 |"), "{md}");
}

/// A directory with an `npu` on it that runs this test binary's CLI (the child mode).
fn npu_on_path(dir: &Path) -> String {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    let exe = std::env::current_exe().expect("test binary");
    let script = format!(
        "#!/bin/sh\nargs=''\nfor a in \"$@\"; do args=\"$args$a\n\"; done\n\
         NPU_SWEEP_CHILD_LINES=\"$args\" exec '{}' --exact sweep::sweep_child_process --quiet --test-threads 1 >/dev/null\n",
        exe.display()
    );
    let path = bin.join("npu");
    std::fs::write(&path, script).expect("write wrapper");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default())
}

#[test]
#[cfg(unix)]
fn slurm_and_kubernetes_recipes_run_their_shards_and_merge() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plan_path = dir.path().join("plan.ron");
    std::fs::write(&plan_path, SHARDED).expect("write");
    let path = npu_on_path(dir.path());
    let root = crate::repo_root();
    // Slurm: the batch script as each task of `--array=0-2` runs it.
    let sbatch = root.join("docs/sweep/slurm.sbatch");
    let out = dir.path().join("slurm");
    let tasks: Vec<std::process::Child> = (0..3)
        .map(|i| {
            std::process::Command::new("bash")
                .arg(&sbatch)
                .env("PATH", &path)
                .env("PLAN", &plan_path)
                .env("OUT", &out)
                .env("SLURM_ARRAY_TASK_ID", i.to_string())
                .env("SLURM_ARRAY_TASK_MIN", "0")
                .env("SLURM_ARRAY_TASK_COUNT", "3")
                .env("SLURM_CPUS_PER_TASK", "1")
                .env_remove("JOB_COMPLETION_INDEX")
                .spawn()
                .expect("bash")
        })
        .collect();
    for mut t in tasks {
        assert!(t.wait().expect("waits").success(), "an array task failed");
    }
    // Kubernetes: the container's `sh -c` command, with the Job's NPU_SHARD_COUNT, in
    // each of its indexed pods.
    let yaml = std::fs::read_to_string(root.join("docs/sweep/k8s-indexed-job.yaml")).expect("recipe");
    let completions = yaml.lines().find_map(|l| l.trim().strip_prefix("completions:")).expect("completions").trim();
    let count = yaml
        .lines()
        .find(|l| l.contains("name: NPU_SHARD_COUNT"))
        .and_then(|l| l.split("value:").nth(1))
        .map(|v| v.trim().trim_end_matches('}').trim().trim_matches('"').to_string())
        .expect("NPU_SHARD_COUNT");
    assert_eq!(count, completions, "NPU_SHARD_COUNT must equal the Job's completions");
    let cmd = yaml
        .lines()
        .find_map(|l| l.trim().strip_prefix("args: ['"))
        .and_then(|l| l.strip_suffix("']"))
        .expect("the container's command");
    let k8s = dir.path().join("k8s");
    // Three pods stand for the Job's completions (the plan has 12 points).
    let pods: Vec<std::process::Child> = (0..3)
        .map(|i| {
            std::process::Command::new("sh")
                .args(["-c", cmd])
                .env("PATH", &path)
                .env("PLAN", &plan_path)
                .env("RESULTS", &k8s)
                .env("JOB_COMPLETION_INDEX", i.to_string())
                .env("NPU_SHARD_COUNT", "3")
                .env_remove("SLURM_ARRAY_TASK_ID")
                .spawn()
                .expect("sh")
        })
        .collect();
    for mut p in pods {
        assert!(p.wait().expect("waits").success(), "a pod failed");
    }
    let mut merged = Vec::new();
    for base in [&out, &k8s] {
        let dirs: Vec<String> = (0..3).map(|i| s(&base.join(format!("shard-{i}"))).to_string()).collect();
        let m = base.join("merged");
        let mut args = vec!["sweep", "merge"];
        args.extend(dirs.iter().map(String::as_str));
        args.extend(["--out", s(&m)]);
        let (code, _, err) = npu(&args);
        assert_eq!(code, 0, "{err}");
        merged.push(sweep::read_results(&m.join("results.jsonl")).expect("reads"));
    }
    assert_eq!(merged[0].len(), 12);
    assert_eq!(merged[0], merged[1], "both schedulers give the same results");
}

#[test]
fn composite_recipes_are_sweep_schemes_too() {
    // The compare rows that are more than a scheme (data-free with CLE and bias
    // correction; 2:4-pruned W4A8) are named recipes, so a plan can sweep them.
    let p =
        plan(r#"(name: "c", models: ["zoo:cnn"], schemes: ["int8-per-channel-dfq", "w4a8-2of4"], timing_only: true)"#);
    let dir = tempfile::tempdir().expect("tempdir");
    let o = sweep::RunOptions { out: dir.path().to_path_buf(), cache: None, shard: (0, 1), jobs: 2, quiet: true };
    let s = sweep::run(&p, &o, &mut Vec::new()).expect("runs");
    assert!(s.records.iter().all(|r| r.error.is_none()), "{:?}", s.records);
    let bytes = |i: usize| s.records[i].weight_bytes.expect("ran");
    // Half the weights zero and 4 bits for the rest: well under half the INT8 bytes.
    assert!(bytes(1) * 2 < bytes(0), "{} vs {}", bytes(1), bytes(0));
    let e = sweep::plan_from_ron(r#"(name: "c", models: ["zoo:cnn"], schemes: ["w4a8-3of4"])"#, "p.ron")
        .expect_err("unknown");
    assert!(e.to_string().contains("unknown scheme `w4a8-3of4`"), "{e}");
}

#[test]
fn plans_past_a_million_points_are_refused_without_overflow() {
    // 10,000⁵ points overflow a 64-bit count; the product is checked factor by factor.
    let r = "Range(from: 1, to: 10000, step: 1)";
    let text = format!(
        r#"(name: "t", models: ["zoo:cnn"], schemes: ["int8-sym"], params: {{ "mac.rows": {r}, "mac.cols": {r},
            "clock_mhz": {r}, "buffers.wgt.bytes": {r}, "buffers.act.bytes": {r} }}, timing_only: true)"#
    );
    let e = match sweep::plan_from_ron(&text, "p.ron") {
        Ok(p) => sweep::expand(&p).expect_err("too many points").to_string(),
        Err(e) => e.to_string(),
    };
    assert!(
        e.contains(
            "the plan has 10000 × 10000 × 10000 × 10000 × 10000 × 1 × 1 × 1 points before filtering, more than the `sweep_points` limit (1000000)"
        ),
        "{e}"
    );
}

#[test]
fn merge_takes_the_point_count_from_the_plan_not_from_plan_json() {
    // Regression (#22): `points: 1e12` in a shard's plan.json listed a trillion missing
    // points (past 1.8 GB before it was stopped).
    let p = plan(
        r#"(name: "t", models: ["zoo:cnn"], schemes: ["int8-sym"], hw: ["edge-64", "edge-256"], timing_only: true)"#,
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |points: serde_json::Value, results: &str| {
        let meta = serde_json::json!({ "plan": p, "points": points, "shard": [0, 1] });
        std::fs::write(dir.path().join("plan.json"), meta.to_string()).expect("write");
        std::fs::write(dir.path().join("results.jsonl"), results).expect("write");
        sweep::merge(&[dir.path().to_path_buf()]).map(|(_, r)| r.len())
    };
    let e = write(serde_json::json!(1_000_000_000_000u64), "").expect_err("count");
    assert!(e.to_string().ends_with("plan.json: says 1000000000000 points, but its plan has 2"), "{e}");
    let e = write(serde_json::json!(2), "").expect_err("missing");
    assert_eq!(e.to_string(), "the shards cover 0 of 2 points; missing 0, 1");
    // A record for a point the plan does not have.
    let record = serde_json::json!({"index": 7, "key": "k", "model": "zoo:cnn", "scheme": "int8-sym", "hw": "edge-64",
        "params": {}, "peak_macs": 1, "cycles": null, "fps": null, "energy_uj": null, "power_mw": null,
        "weight_bytes": null, "offchip_bytes": null, "roofline_ratio": null, "top1": null, "images": 0, "error": "x"});
    let e = write(serde_json::json!(2), &format!("{record}\n")).expect_err("index");
    assert!(e.to_string().ends_with("a result for point 7, but the plan has 2 points"), "{e}");
}

/// The files a command wrote under `dir` (recursively, but not the sweep cache), by
/// relative path.
fn files_under(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("reads").flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n != "cache") {
                    stack.push(p);
                }
            } else {
                let rel = p.strip_prefix(dir).expect("under").to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).expect("reads"));
            }
        }
    }
    out
}

/// Determinism (#22): what a command writes does not depend on how many threads run it —
/// `sweep --jobs`, and the global thread pool (`RAYON_NUM_THREADS`) behind quantization,
/// compilation and simulation — and sweep JSON Lines are in plan order.
#[test]
fn outputs_are_byte_identical_for_any_number_of_threads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plan_path = dir.path().join("plan.ron");
    std::fs::write(&plan_path, SHARDED).expect("write");
    let mut sweeps = Vec::new();
    for jobs in ["1", "3"] {
        let out = dir.path().join(format!("sweep-{jobs}"));
        let (code, _, err) = npu(&["sweep", s(&plan_path), "--out", s(&out), "--jobs", jobs, "-q"]);
        assert_eq!(code, 0, "{err}");
        let text = std::fs::read_to_string(out.join("results.jsonl")).expect("results");
        let indices: Vec<u64> = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json")["index"].as_u64().expect("index"))
            .collect();
        assert_eq!(indices, (0..12).collect::<Vec<u64>>(), "--jobs {jobs}: lines in plan order");
        sweeps.push(files_under(&out));
    }
    assert!(sweeps[0].contains_key("results.jsonl") && sweeps[0].len() > 2, "{:?}", sweeps[0].keys());
    assert_eq!(sweeps[0], sweeps[1], "sweep --jobs 1 and --jobs 3 wrote different files");
    // quantize → compile → simulate in processes whose thread pools differ.
    let mut runs = Vec::new();
    for threads in ["1", "2"] {
        let out = dir.path().join(format!("threads-{threads}"));
        std::fs::create_dir_all(&out).expect("mkdir");
        let (q, c, o, csv) = (out.join("m.npuq"), out.join("compiled"), out.join("out.npy"), out.join("layers.csv"));
        let env = [("RAYON_NUM_THREADS", threads.to_string())];
        let steps: [Vec<&str>; 3] = [
            vec!["quantize", "zoo:cnn", "--scheme", "w4a8-per-channel", "--calib", "64", "-q", "-o", s(&q)],
            vec!["compile", s(&q), "--hw", "edge-64", "-o", s(&c), "-q"],
            vec!["simulate", s(&c), "--limit", "24", "-o", s(&o), "-q", "--csv", s(&csv)],
        ];
        for args in steps {
            assert!(child(&args, &env).wait().expect("waits").success(), "{args:?} with {threads} threads");
        }
        runs.push(files_under(&out));
    }
    assert!(runs[0].len() >= 5, "{:?}", runs[0].keys());
    assert_eq!(runs[0].keys().collect::<Vec<_>>(), runs[1].keys().collect::<Vec<_>>());
    for (name, bytes) in &runs[0] {
        assert!(runs[1][name] == *bytes, "{name} differs between 1 and 2 threads");
    }
}
