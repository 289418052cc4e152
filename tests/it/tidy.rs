//! Architecture invariants from docs/ARCHITECTURE.md, checked on the source tree.

use std::path::Path;

use crate::repo_root;

fn manifest_deps(crate_dir: &str) -> Vec<String> {
    let text = std::fs::read_to_string(repo_root().join(crate_dir).join("Cargo.toml")).expect("manifest");
    let mut deps = Vec::new();
    let mut in_deps = false;
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with('[') {
            in_deps = l == "[dependencies]";
            continue;
        }
        if in_deps {
            if let Some(name) = l.split(['.', '=', ' ']).next().filter(|n| !n.is_empty()) {
                deps.push(name.to_string());
            }
        }
    }
    deps
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).expect("readable").flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The toolchain crates, by folder, with the workspace crates each may depend on
/// (directly or not): the layering drawn in docs/ARCHITECTURE.md.
const TOOLCHAIN: &[(&str, &[&str])] = &[
    ("toolchain/data", &[]),
    ("toolchain/datafiles", &["npu-data"]),
    ("toolchain/model", &["npu-data"]),
    ("toolchain/onnx", &["npu-data", "npu-model"]),
    ("toolchain/quant", &["npu-data", "npu-model", "npu-isa"]),
    ("toolchain/train", &["npu-data", "npu-model", "npu-quant", "npu-isa"]),
    ("toolchain/tflite", &["npu-data", "npu-model", "npu-quant", "npu-isa"]),
    ("toolchain/compile", &["npu-data", "npu-model", "npu-quant", "npu-isa", "npu-hw"]),
    ("toolchain/zoo", &["npu-data", "npu-model", "npu-quant", "npu-isa"]),
];

/// Folder of a workspace crate, from its package name.
fn crate_dir(name: &str) -> String {
    match name {
        "npu-isa" => "isa".into(),
        "npu-sim" => "sim".into(),
        "npu" | "npu-app" | "npu-hw" | "npu-fuzz" | "npu-present" | "npu-py" => format!("crates/{name}"),
        other => format!("toolchain/{}", other.trim_start_matches("npu-")),
    }
}

/// Every workspace crate `crate_dir` depends on, directly or through others.
fn workspace_closure(crate_dir_: &str) -> std::collections::BTreeSet<String> {
    let mut seen = std::collections::BTreeSet::new();
    let mut todo: Vec<String> = manifest_deps(crate_dir_).into_iter().filter(|d| d.starts_with("npu")).collect();
    while let Some(d) = todo.pop() {
        if seen.insert(d.clone()) {
            todo.extend(manifest_deps(&crate_dir(&d)).into_iter().filter(|d| d.starts_with("npu")));
        }
    }
    seen
}

#[test]
fn dependency_direction() {
    let isa = manifest_deps("isa");
    assert!(isa.iter().all(|d| !d.starts_with("npu")), "npu-isa depends on no workspace crate: {isa:?}");
    let sim = workspace_closure("sim");
    assert!(
        sim.iter().all(|d| d == "npu-isa" || d == "npu-hw"),
        "the simulator depends only on the ISA and the hardware description: {sim:?}"
    );
    for (dir, allowed) in TOOLCHAIN {
        let deps = workspace_closure(dir);
        let extra: Vec<_> = deps.iter().filter(|d| !allowed.contains(&d.as_str())).collect();
        assert!(extra.is_empty(), "{dir} depends on {extra:?}; its layer allows only {allowed:?}");
    }
    let hw = workspace_closure("crates/npu-hw");
    assert!(hw.iter().all(|d| d == "npu-isa"), "npu-hw is below the simulator and the toolchain: {hw:?}");
    let app = manifest_deps("crates/npu-app");
    assert!(
        !app.iter().any(|d| ["npu", "clap", "indicatif", "plotters", "anyhow"].contains(&d.as_str())),
        "the application library sits below the CLI and does no presentation: {app:?}"
    );
    let libs = ["isa", "sim", "crates/npu-hw", "crates/npu-app", "crates/npu-present"]
        .into_iter()
        .chain(TOOLCHAIN.iter().map(|(d, _)| *d));
    for lib in libs {
        assert!(!manifest_deps(lib).contains(&"anyhow".to_string()), "{lib}: anyhow only in the CLI");
    }
}

/// The regression guarded: compiling a model must not build the training engine, the
/// importers or the embedded data (the split of the old `npu-toolchain`).
#[test]
fn compiling_does_not_build_training_importers_or_data() {
    let deps = workspace_closure("toolchain/compile");
    for heavy in ["npu-train", "npu-onnx", "npu-tflite", "npu-zoo", "npu-sim", "npu-datafiles"] {
        assert!(!deps.contains(heavy), "npu-compile pulls in {heavy}");
    }
}

#[test]
fn libraries_do_no_io_and_do_not_print() {
    let toolchain = TOOLCHAIN.iter().map(|(d, _)| format!("{d}/src"));
    let libs = ["isa/src", "sim/src", "crates/npu-hw/src", "crates/npu-app/src", "crates/npu-present/src"]
        .map(String::from)
        .into_iter()
        .chain(toolchain);
    for lib in libs {
        let mut files = Vec::new();
        rust_files(&repo_root().join(lib), &mut files);
        for f in files {
            let text = std::fs::read_to_string(&f).expect("readable");
            for banned in ["println!", "eprintln!", "print!(", "eprint!(", "std::fs::", "std::io::stdout", "dbg!("] {
                assert!(!text.contains(banned), "{} uses `{banned}`; libraries log with tracing", f.display());
            }
        }
    }
    // The fuzzer's library too; its binary (main.rs) reads the seeds and saves findings.
    for f in ["crates/npu-fuzz/src/lib.rs", "crates/npu-fuzz/src/onnx_gen.rs"] {
        let text = std::fs::read_to_string(repo_root().join(f)).expect("readable");
        for banned in ["println!", "eprintln!", "std::fs::", "std::io::stdout", "dbg!("] {
            assert!(!text.contains(banned), "{f} uses `{banned}`");
        }
    }
}
