//! Any `.npuq` the decoder accepts can be executed and compiled without a panic: seeded
//! one-byte mutations of committed quantized models (most in the first 4 KiB, where
//! names, shapes, geometry and parameters live; the rest anywhere) are either refused
//! with an error, or run on the integer executor and go through the compiler (and, for
//! some, the simulator) returning results or errors — never panicking.

use std::panic::{catch_unwind, AssertUnwindSafe};

use npu_toolchain::quant::QModel;

use crate::Rng;

fn elements(q: &QModel) -> usize {
    q.values.iter().map(|v| v.shape.iter().product::<usize>()).sum()
}

/// Runs everything a user's commands would run on an accepted model.
fn exercise(q: &QModel, hw: &npu_hw::HwConfig, simulate: bool) {
    let per_in: usize = q.values[0].shape.iter().product();
    let input: Vec<i32> = (0..per_in).map(|i| (i % 7) as i32 - 3).collect();
    let _ = q.run_int(&input, 1);
    if let Ok(c) = npu_toolchain::compile::compile(q, hw) {
        if simulate {
            let opts = npu_sim::RunOptions { timing_only: true, ..Default::default() };
            let _ = npu_sim::run(&c.program, hw, &opts);
        }
    }
}

fn mutate_file(file: &str, cases: usize, seed: u64) -> (usize, usize) {
    let path = crate::repo_root().join("toolchain/zoo").join(file);
    let bytes = std::fs::read(&path).expect("committed model");
    let original = npu_toolchain::modelfile::decode_quantized(&bytes, file).expect("decodes");
    let budget = 4 * elements(&original);
    let hw = npu_hw::preset("edge-256").expect("preset");
    let mut r = Rng(seed);
    let (mut accepted, mut refused) = (0, 0);
    for case in 0..cases {
        let mut m = bytes.clone();
        let at = if r.next_u64() % 10 < 7 {
            (r.next_u64() % 4096) as usize
        } else {
            (r.next_u64() % m.len() as u64) as usize
        };
        let old = m[at];
        m[at] = if r.next_u64().is_multiple_of(2) { r.next_u64() as u8 } else { old ^ (1 << (r.next_u64() % 8)) };
        let what = format!("{file}, case {case}: byte {at} {old:#04x} → {:#04x}", m[at]);
        let decoded = catch_unwind(|| npu_toolchain::modelfile::decode_quantized(&m, file))
            .unwrap_or_else(|_| panic!("{what}: decoding panicked"));
        let Ok(q) = decoded else {
            refused += 1;
            continue;
        };
        accepted += 1;
        // A mutation may legitimately grow a model (a larger input is still a model);
        // the executor's time is the only reason to skip running one.
        if elements(&q) > budget {
            continue;
        }
        let simulate = case % 4 == 0;
        if catch_unwind(AssertUnwindSafe(|| exercise(&q, &hw, simulate))).is_err() {
            panic!("{what}: the decoder accepted it and running or compiling it panicked");
        }
    }
    (accepted, refused)
}

#[test]
fn mutated_npuq_files_are_refused_or_run_without_panicking() {
    let (a1, r1) = mutate_file("mobilenet-qat-w4a8.npuq", 1500, 0x5eed_0001);
    let (a2, r2) = mutate_file("mobilenet-pruned50.npuq", 1500, 0x5eed_0002);
    // Both outcomes must occur, or the test exercises only one side.
    assert!(a1 + a2 > 500 && r1 + r2 > 500, "accepted {a1}+{a2}, refused {r1}+{r2}");
}
