//! The workspace's one integration-test binary. Each module tests one area end to end.

mod asm_diagnostics;
mod cli;
mod compare;
mod compiler;
mod compression;
mod data_files;
mod docs;
mod fp32_ir;
mod hw_config;
mod isa_roundtrip;
mod onnx_import;
mod programs;
mod prune;
mod quantizer;
mod sim_programs;
mod sim_timing;
mod sim_traps;
mod sweep;
mod tflite_import;
mod tidy;
mod training;

use std::path::PathBuf;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `programs/*.s` file, sorted.
pub fn program_paths() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo_root().join("programs"))
        .expect("programs/ exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "s"))
        .collect();
    v.sort();
    v
}
