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

#[test]
fn dependency_direction() {
    let isa = manifest_deps("isa");
    assert!(isa.iter().all(|d| !d.starts_with("npu")), "npu-isa depends on no workspace crate: {isa:?}");
    let sim = manifest_deps("sim");
    assert!(!sim.contains(&"npu-toolchain".to_string()), "the simulator never depends on the toolchain");
    let tc = manifest_deps("toolchain");
    assert!(!tc.contains(&"npu-sim".to_string()), "the toolchain never depends on the simulator");
    let hw = manifest_deps("crates/npu-hw");
    assert!(!hw.iter().any(|d| d == "npu-sim" || d == "npu-toolchain"), "npu-hw is below both: {hw:?}");
    let app = manifest_deps("crates/npu-app");
    assert!(
        !app.iter().any(|d| ["npu", "clap", "indicatif", "plotters", "anyhow"].contains(&d.as_str())),
        "the application library sits below the CLI and does no presentation: {app:?}"
    );
    for lib in ["isa", "sim", "toolchain", "crates/npu-hw", "crates/npu-app"] {
        assert!(!manifest_deps(lib).contains(&"anyhow".to_string()), "{lib}: anyhow only in the CLI");
    }
}

#[test]
fn libraries_do_no_io_and_do_not_print() {
    for lib in ["isa/src", "sim/src", "toolchain/src", "crates/npu-hw/src", "crates/npu-app/src"] {
        let mut files = Vec::new();
        rust_files(&repo_root().join(lib), &mut files);
        for f in files {
            let text = std::fs::read_to_string(&f).expect("readable");
            for banned in ["println!", "eprintln!", "print!(", "eprint!(", "std::fs::", "std::io::stdout", "dbg!("] {
                assert!(!text.contains(banned), "{} uses `{banned}`; libraries log with tracing", f.display());
            }
        }
    }
}
