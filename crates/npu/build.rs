//! Build facts for `npu --version`, JSON outputs and the sweep cache key: the git commit
//! the binary was built from (`unknown` outside a checkout, `+dirty` with uncommitted
//! changes to tracked files) and a SHA-256 over the sources of every crate that decides a
//! result (ISA, hardware descriptions, simulator, the toolchain crates with the zoo and
//! embedded data, the application library, this crate), so a changed compiler or timing model never serves a stale cached
//! sweep point.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest.join("../..");
    let dirs = [
        "isa/src",
        "sim/src",
        "toolchain/data/src",
        "toolchain/datafiles/src",
        "toolchain/model/src",
        "toolchain/onnx/src",
        "toolchain/tflite/src",
        "toolchain/quant/src",
        "toolchain/train/src",
        "toolchain/compile/src",
        "toolchain/zoo/src",
        "toolchain/zoo/models",
        "toolchain/zoo/data",
        "crates/npu-app/src",
        "crates/npu-hw/src",
        "crates/npu-hw/presets",
        "crates/npu/src",
    ];
    let mut files = Vec::new();
    for d in dirs {
        let p = root.join(d);
        println!("cargo:rerun-if-changed={}", p.display());
        collect(&p, &mut files);
    }
    files.sort();
    let mut h = Sha256::new();
    for f in &files {
        let rel = f.strip_prefix(&root).unwrap_or(f);
        h.update(rel.to_string_lossy().as_bytes());
        h.update([0]);
        h.update(std::fs::read(f).unwrap_or_default());
        h.update([0]);
    }
    let digest: String = h.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect();
    println!("cargo:rustc-env=NPU_SOURCE_HASH={digest}");

    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(&root)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    println!("cargo:rustc-env=NPU_GIT_COMMIT={commit}{}", if dirty { "+dirty" } else { "" });
    if let Some(git_dir) = git(&["rev-parse", "--git-dir"]) {
        let g = root.join(git_dir);
        for f in ["HEAD", "index", "packed-refs", "refs/heads"] {
            println!("cargo:rerun-if-changed={}", g.join(f).display());
        }
    }
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out);
        } else {
            out.push(p);
        }
    }
}
