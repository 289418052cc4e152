//! The workspace's one integration-test binary. Each module tests one area end to end.

mod asm_diagnostics;
mod cli;
mod cli_conventions;
mod compare;
mod compiler;
mod compression;
mod coverage;
mod data_files;
mod docs;
mod ethos;
mod footprint;
mod fp32_ir;
mod fuzz;
mod host_fallback;
mod hw_config;
mod isa_roundtrip;
mod npuq_mutation;
mod onnx_import;
mod operators;
mod programs;
mod prune;
mod quantizer;
mod sim_programs;
mod sim_timing;
mod sim_traps;
mod sweep;
mod tflite_import;
mod tidy;
mod torchvision;
mod training;
mod your_data;
mod zoo_figures;

use std::path::PathBuf;

/// The model inputs `pre` makes of every sample of `ds` (channel-first `[1, 28, 28]`
/// images, as the embedded Fashion-MNIST and the zoo models have them).
pub fn inputs(pre: &npu_data::Preprocess, ds: &npu_data::Dataset) -> Vec<f32> {
    ds.inputs(&[1, 28, 28], pre, 0..ds.len()).expect("Fashion-MNIST images fit [1, 28, 28]")
}

/// A float32 `.npy` of `values` with `shape`.
pub fn npy_f32(shape: &[usize], values: &[f32]) -> Vec<u8> {
    npu_datafiles::npy::write(shape, &npu_data::Elements::F32(values.to_vec()))
}

/// The first `n` images of the embedded Fashion-MNIST test set as `images.npy`,
/// `labels.npy` and a `test.ron` describing them in `dir` (a small `--test-data` for
/// commands that would otherwise evaluate all 10,000); returns the description's path.
pub fn fmnist_test_set(dir: &std::path::Path, n: usize) -> PathBuf {
    let test = npu_zoo::fashion_mnist_test().expect("embedded").take(n);
    let mut shape = vec![test.len()];
    shape.extend(&test.shape);
    let npu_data::Targets::Classes(labels) = &test.targets else { panic!("Fashion-MNIST has labels") };
    let labels: Vec<i32> = labels.iter().map(|l| *l as i32).collect();
    let (x, y) = (dir.join("images.npy"), dir.join("labels.npy"));
    std::fs::write(&x, npu_datafiles::npy::write(&shape, &test.elements)).expect("writes");
    std::fs::write(&y, npu_datafiles::npy::write(&[labels.len()], &npu_data::Elements::I32(labels))).expect("writes");
    let ron = dir.join("test.ron");
    std::fs::write(&ron, "(inputs: \"images.npy\", labels: \"labels.npy\", classes: 10)").expect("writes");
    ron
}

/// A `.npy` file's array.
pub fn read_npy(bytes: &[u8], origin: &str) -> npu_data::Array {
    npu_datafiles::npy::parse(bytes, origin).expect("valid .npy")
}

/// xorshift64*: the fuzzer's small seeded generator, for tests that build random cases.
pub use npu_fuzz::Rng;

/// CRC-32 (IEEE: reflected polynomial 0xEDB88320, initial and final inversion), bit by
/// bit from its definition: the reference the files' checksums are checked against.
pub fn crc32_reference(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 == 1 { (c >> 1) ^ 0xEDB8_8320 } else { c >> 1 };
        }
    }
    !c
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs one quantized input sample (CHW integers) through a compiled model on the
/// simulator and returns the output integers (`Err` with the trap, if one).
pub fn simulate_sample(
    c: &npu_compile::Compiled,
    q: &npu_quant::QModel,
    hw: &npu_hw::HwConfig,
    input: &[i32],
) -> Result<Vec<i32>, String> {
    let o = npu_sim::run(&c.with_input(q, input), hw, &npu_sim::RunOptions::default()).map_err(|e| e.to_string())?;
    if let Some(t) = o.trap {
        return Err(t.to_string());
    }
    let b = o
        .machine
        .read(c.output.space(), u64::from(c.output.addr), u64::from(c.output.len))
        .ok_or("the output lies outside SRAM")?;
    let out = &q.values[q.output];
    Ok(npu_compile::from_hwc_bytes(b, &out.shape, out.q.dtype))
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
