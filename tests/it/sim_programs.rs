//! Every program in `programs/` runs on the simulator, and its outputs equal values
//! computed here from the program's own input data by plain reference code (integer
//! loops written from the definitions, `npu_isa::arith` for requantization — the
//! oracle — and float arithmetic as a sanity bound), never copied from a run.

use std::collections::BTreeMap;

use npu_isa::arith::{self, quantize_multiplier, OutputStage, Rounding};
use npu_isa::{assemble_with_symbols, Program, Space};
use npu_sim::{run, Outcome, RunOptions};

use crate::{program_paths, repo_root};

/// A program with its symbols.
pub struct Loaded {
    pub program: Program,
    pub symbols: BTreeMap<String, i64>,
}

impl Loaded {
    pub fn sym(&self, name: &str) -> u64 {
        *self.symbols.get(name).unwrap_or_else(|| panic!("symbol {name}")) as u64
    }
    /// `len` bytes of initial data at `addr` of `space`.
    pub fn data(&self, space: Space, addr: u64, len: usize) -> Vec<u8> {
        for seg in &self.program.data {
            let a = u64::from(seg.addr);
            if seg.space == space && a <= addr && addr + len as u64 <= seg.end() {
                let s = (addr - a) as usize;
                return seg.bytes[s..s + len].to_vec();
            }
        }
        panic!("no data at {space} {addr:#x}+{len}");
    }
    pub fn i8s(&self, space: Space, name: &str, len: usize) -> Vec<i32> {
        self.data(space, self.sym(name), len).iter().map(|b| i32::from(*b as i8)).collect()
    }
    pub fn words(&self, space: Space, addr: u64, n: usize) -> Vec<i32> {
        self.data(space, addr, 4 * n).chunks(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
    }
}

pub fn load(name: &str) -> Loaded {
    let path = repo_root().join("programs").join(name);
    let text = std::fs::read_to_string(&path).expect("program exists");
    let (program, symbols) = assemble_with_symbols(&text, name).unwrap_or_else(|e| panic!("{e}"));
    Loaded { program, symbols }
}

pub fn run_on(p: &Program, hw: &str) -> Outcome {
    let hw = npu_hw::preset(hw).expect("preset");
    let o = run(p, &hw, &RunOptions::default()).expect("loads");
    assert!(o.trap.is_none(), "trap: {:?}", o.trap);
    o
}

fn out_i8(o: &Outcome, space: Space, addr: u64, n: usize) -> Vec<i32> {
    o.machine.read(space, addr, n as u64).expect("in range").iter().map(|b| i32::from(*b as i8)).collect()
}

fn out_i32(o: &Outcome, space: Space, addr: u64, n: usize) -> Vec<i32> {
    o.machine
        .read(space, addr, 4 * n as u64)
        .expect("in range")
        .chunks(4)
        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// `x / 2^n` rounded half away from zero, from the definition.
fn round_shift(x: i64, n: u32) -> i64 {
    let d = 1i64 << n;
    let q = (x.abs() * 2 + d) / (2 * d);
    x.signum() * q
}

#[test]
fn dot_product() {
    let p = load("dot.s");
    let a = p.i8s(Space::Sram, "a", 16);
    let b = p.i8s(Space::Dram, "b", 16);
    let want: i32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
    let o = run_on(&p.program, "edge-256");
    assert_eq!(out_i32(&o, Space::Sram, p.sym("result"), 1), vec![want]);
}

#[test]
fn conv_relu_per_channel() {
    conv_relu_reference("conv_relu.s");
}

#[test]
fn conv_padding_in_the_array_equals_padding_by_dma() {
    conv_relu_reference("conv_pad.s");
}

/// Runs a program built like `conv_relu.s` and checks its output against the reference.
fn conv_relu_reference(name: &str) {
    let p = load(name);
    let x = p.i8s(Space::Sram, "input", 32); // 4×4×2 HWC
    let w = p.i8s(Space::Dram, "weights", 36); // [co][ky][kx][ci]
    let (z_in, z_out) = (-5, -10);
    let bias = [100, -50]; // before folding the input zero point
    let scales = [0.05, 0.03];
    // The program's records must be exactly these multipliers with the folded bias.
    let rec = p.words(Space::Dram, p.sym("params"), 6);
    for c in 0..2 {
        let q = quantize_multiplier(scales[c]).expect("valid");
        assert_eq!((rec[3 * c + 1], rec[3 * c + 2]), (q.multiplier(), q.shift()), "channel {c} record");
    }
    let mut want = Vec::new();
    for oy in 0..4i32 {
        for ox in 0..4i32 {
            for (co, b) in bias.iter().enumerate() {
                // Σ (x − z_in)·w over the 3×3 window, SAME padding (padding is x = z_in).
                let mut acc: i32 = *b;
                for ky in 0..3 {
                    for kx in 0..3 {
                        let (iy, ix) = (oy + ky - 1, ox + kx - 1);
                        for ci in 0..2 {
                            let xv = if (0..4).contains(&iy) && (0..4).contains(&ix) {
                                x[((iy * 4 + ix) * 2 + ci) as usize]
                            } else {
                                z_in
                            };
                            let wv = w[co * 18 + ((ky * 3 + kx) * 2 + ci) as usize];
                            acc += (xv - z_in) * wv;
                        }
                    }
                }
                let q = quantize_multiplier(scales[co]).expect("valid");
                let out = OutputStage::new(z_out, z_out, 127).expect("valid");
                let v = arith::requantize(acc, q, Rounding::Double, out);
                // Float sanity: within one step of the real value.
                let real = (f64::from(acc) * scales[co]).round() + f64::from(z_out);
                assert!((f64::from(v) - real.clamp(f64::from(z_out), 127.0)).abs() <= 1.0);
                want.push(v);
            }
        }
    }
    let o = run_on(&p.program, "edge-256");
    assert_eq!(out_i8(&o, Space::Sram, p.sym("out"), 32), want);
    assert!(want.iter().any(|v| *v > z_out) && want.contains(&z_out), "test covers ReLU and positive outputs");
}

#[test]
fn power_of_two_requantization() {
    let p = load("pow2_requant.s");
    let a = p.i8s(Space::Sram, "a", 16); // 2×8
    let bt = p.i8s(Space::Dram, "bt", 32); // 4×8
    let mut want = Vec::new();
    for i in 0..2 {
        for j in 0..4 {
            let acc: i64 = (0..8).map(|k| i64::from(a[i * 8 + k] * bt[j * 8 + k])).sum::<i64>() + 32;
            want.push(round_shift(acc, 8).clamp(-128, 127) as i32);
        }
    }
    let o = run_on(&p.program, "edge-256");
    assert_eq!(out_i8(&o, Space::Sram, 0x100, 8), want);
    assert!(want.iter().all(|v| (-127..127).contains(v)), "no output saturates, so rounding is what is tested");
}

#[test]
fn residual_add_with_rescale() {
    let p = load("residual_add.s");
    let a = p.i8s(Space::Sram, "a", 16);
    let b = p.i8s(Space::Sram, "b", 16);
    let params = arith::ElementwiseParams {
        za: 3,
        zb: -2,
        zo: 1,
        left_shift: 20,
        ma: quantize_multiplier(0.25).expect("valid"),
        mb: quantize_multiplier(0.5).expect("valid"),
        mo: quantize_multiplier(0.08 / (f64::from(1 << 20) * 0.05)).expect("valid"),
        out: OutputStage::new(1, 1, 127).expect("valid"),
    };
    let o = run_on(&p.program, "edge-256");
    let got = out_i8(&o, Space::Sram, 0x100, 16);
    for i in 0..16 {
        let want = arith::add_rescaled(a[i], b[i], &params, false);
        assert_eq!(got[i], want, "element {i}");
        let real = (f64::from(a[i] - 3) * 0.02 + f64::from(b[i] + 2) * 0.04) / 0.05 + 1.0;
        assert!((f64::from(got[i]) - real.round().clamp(1.0, 127.0)).abs() <= 1.0, "element {i}: {} vs {real}", got[i]);
    }
}

/// Decodes 4-bit two's-complement values, low nibble first (written from the format's definition).
fn nibbles(bytes: &[u8], n: usize) -> Vec<i32> {
    (0..n)
        .map(|i| {
            let nib = (bytes[i / 2] >> (4 * (i % 2))) & 0xf;
            if nib >= 8 {
                i32::from(nib) - 16
            } else {
                i32::from(nib)
            }
        })
        .collect()
}

#[test]
fn int4_matmul() {
    let p = load("int4_matmul.s");
    let a = p.i8s(Space::Sram, "a", 16);
    let w = nibbles(&p.data(Space::Dram, p.sym("w4"), 12), 24);
    let bias = [0, -10, 10];
    let scales = [0.01, 0.02, 0.04];
    let mut want = Vec::new();
    for i in 0..2 {
        for j in 0..3 {
            let acc: i32 = (0..8).map(|k| a[i * 8 + k] * w[j * 8 + k]).sum::<i32>() + bias[j];
            let q = quantize_multiplier(scales[j]).expect("valid");
            want.push(arith::requantize(acc, q, Rounding::Double, OutputStage::new(0, -128, 127).expect("valid")));
        }
    }
    let o = run_on(&p.program, "edge-256");
    assert_eq!(out_i8(&o, Space::Sram, 0x100, 6), want);
}

#[test]
fn binary_xnor_matmul() {
    let p = load("binary_matmul.s");
    let a = p.i8s(Space::Sram, "a", 32); // 2×16 of ±1
    let bits = p.data(Space::Dram, p.sym("wb"), 8);
    let w: Vec<i32> = (0..64).map(|i| if bits[i / 8] >> (i % 8) & 1 == 1 { 1 } else { -1 }).collect();
    let mut want = Vec::new();
    for i in 0..2 {
        for j in 0..4 {
            want.push((0..16).map(|k| a[i * 16 + k] * w[j * 16 + k]).sum::<i32>());
        }
    }
    let o = run_on(&p.program, "edge-256");
    assert_eq!(out_i32(&o, Space::Sram, 0x100, 8), want);
}

#[test]
fn depthwise_pool_and_loop() {
    let p = load("dw_pool_loop.s");
    let x = p.i8s(Space::Sram, "x", 48); // 4×4×3
    let w = p.i8s(Space::Dram, "w", 27); // [ky][kx][c]
    let mut map = vec![0i32; 48];
    for oy in 0..4i32 {
        for ox in 0..4i32 {
            for c in 0..3usize {
                let mut acc = 0i64;
                for ky in 0..3i32 {
                    for kx in 0..3i32 {
                        let (iy, ix) = (oy + ky - 1, ox + kx - 1);
                        if (0..4).contains(&iy) && (0..4).contains(&ix) {
                            acc += i64::from(x[((iy * 4 + ix) * 3) as usize + c] * w[((ky * 3 + kx) * 3) as usize + c]);
                        }
                    }
                }
                // One pass, then the loop accumulates two more: three times the convolution.
                map[((oy * 4 + ox) * 3) as usize + c] = round_shift(3 * acc, 5).clamp(-128, 127) as i32;
            }
        }
    }
    let pooled: Vec<i32> = (0..3)
        .map(|c| {
            let s: i32 = (0..16).map(|i| map[i * 3 + c]).sum();
            // TFLite: (s ± 8) / 16, truncating toward zero.
            if s > 0 {
                (s + 8) / 16
            } else {
                (s - 8) / 16
            }
        })
        .collect();
    let o = run_on(&p.program, "edge-256");
    assert_eq!(out_i8(&o, Space::Sram, 0x200, 48), map);
    assert_eq!(out_i8(&o, Space::Sram, 0x100, 3), pooled);
    // One pass, the loop body twice, and the `sync` queued on the MAC unit.
    assert_eq!(o.report.units[1].instructions, 4);
}

#[test]
fn every_program_runs_on_every_preset_it_fits() {
    for path in program_paths() {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("").to_string();
        let p = load(&name);
        for hw in ["edge-64", "edge-256", "edge-1k"] {
            let cfg = npu_hw::preset(hw).expect("preset");
            let o = run(&p.program, &cfg, &RunOptions::default()).expect("loads");
            let binary_modes = name.starts_with("binary");
            match (&o.trap, binary_modes && hw == "edge-64") {
                (None, false) => {}
                (Some(t), true) => assert!(t.to_string().contains("`xnor` mode"), "{name} on {hw}: {t}"),
                (t, _) => panic!("{name} on {hw}: {t:?}"),
            }
        }
    }
}

#[test]
fn results_do_not_depend_on_the_hardware_timing() {
    // The same program on three machines with different arrays, clocks and memories
    // leaves identical memory contents.
    for name in ["conv_relu.s", "dw_pool_loop.s", "residual_add.s", "int4_matmul.s"] {
        let p = load(name);
        let a = run_on(&p.program, "edge-64");
        let b = run_on(&p.program, "edge-1k");
        assert_eq!(a.machine.bytes(Space::Sram)[..1024], b.machine.bytes(Space::Sram)[..1024], "{name}");
        assert_ne!(a.report.total_cycles, b.report.total_cycles, "{name}: the timing does differ");
    }
}

#[test]
fn cycle_reports() {
    for path in program_paths() {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("").to_string();
        let p = load(&name);
        let o = run_on(&p.program, "edge-256");
        insta::assert_snapshot!(format!("report_{}", name.trim_end_matches(".s")), o.report.render());
    }
}
