//! Differential tests: the compiled program on the simulator produces, bit for bit, the
//! integers of the integer reference executor, for every model × scheme × hardware
//! preset, on test images and random inputs; and a timing-only run reports exactly what
//! the full run does (compressed `ldz` weights included), which is why `compare` and
//! `sweep` may take their figures from timing-only runs.

use npu_compile::{compile, compile_with_options, from_hwc_bytes, Options, Schedule};
use npu_model::Model;
use npu_quant::Scheme;

const SCHEMES: [&str; 8] = [
    "int8-pow2",
    "int8-sym",
    "uint8-asym",
    "int8-per-channel",
    "w4a8-per-channel",
    "w4a4-per-channel",
    "ternary-weights",
    "binary-weights",
];

/// The hardware of the differential check: npu's own presets, a `cramped` variant, and
/// the Ethos-U presets with the smallest shared buffer and with two cores (every value in
/// SRAM between layers, block-based MAC timing, column tiles for wide rows, the weight
/// queue, input tiles loaded once for every block of weights; the latter with its SRAM
/// dedicated to the NPU, the network's input and output in DRAM), each with npu's
/// overlapped schedule; and `cramped` and an Ethos-U55 with the per-layer schedule
/// (barriers between layers, prebuffered weights).
const PRESETS: [(&str, Schedule); 8] = [
    ("edge-64", Schedule::Overlapped),
    ("edge-256", Schedule::Overlapped),
    ("edge-1k", Schedule::Overlapped),
    ("cramped", Schedule::Overlapped),
    ("ethos-u55-64", Schedule::Overlapped),
    ("ethos-u65-512-dedicated", Schedule::Overlapped),
    ("cramped", Schedule::PerLayer),
    ("ethos-u55-128", Schedule::PerLayer),
];

/// Extra inputs beside the test images: uniform in [-3, 3) in the model's preprocessed
/// domain (a fixed linear congruential sequence), so values no image produces reach
/// the saturating and rounding paths.
const RANDOM_INPUTS: usize = 2;

/// A preset, or `cramped`: `edge-256` with local buffers so small that activations
/// live in SRAM, rows are tiled, weights split into many channel blocks and every ring
/// buffer wraps, and with 24 KiB of SRAM, so that the larger activations (the zoo CNN's
/// 32×28×28) spill to off-chip memory — the paths the presets' roomy buffers never take.
fn hardware(name: &str) -> npu_hw::HwConfig {
    if name != "cramped" {
        return npu_hw::preset(name).expect("preset");
    }
    let mut hw = npu_hw::preset("edge-256").expect("preset");
    hw.name = "cramped".into();
    hw.buffers.act.bytes = 12 * 1024;
    hw.buffers.wgt.bytes = 4 * 1024;
    hw.buffers.par.bytes = 1024;
    hw.buffers.acc.bytes = 8 * 1024;
    hw.memories.sram.bytes = 24 * 1024;
    hw.validate("cramped").expect("valid");
    hw
}

/// Runs the differential check; returns how many values the `cramped` hardware spilled
/// to off-chip memory, summed over the schemes.
fn differential(m: &Model, label: &str, test_images: usize) -> usize {
    let mut spilled = 0;
    let train = npu_zoo::fashion_mnist_train_subset().expect("embedded");
    let test = npu_zoo::fashion_mnist_test().expect("embedded").take(test_images);
    let mut x = crate::inputs(&m.preprocess, &test);
    let per_sample = x.len() / test_images;
    let mut state = 0x2545_f491_u64;
    for _ in 0..RANDOM_INPUTS * per_sample {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        x.push(((state >> 40) as f32 / (1u64 << 24) as f32) * 6.0 - 3.0);
    }
    let images = test_images + RANDOM_INPUTS;
    for scheme in SCHEMES {
        let source = npu_quant::RangeSource::Calibration { images: 200, method: npu_quant::calib::Method::MinMax };
        let q =
            npu_quant::quantize_model(m, &Scheme::named(scheme).expect("scheme"), &train, source).expect("quantizes");
        let qin = q.quantize_input(&x);
        let per_in: usize = q.values[0].shape.iter().product();
        let want = q.run_int(&qin, images).expect("int");
        let per_out = want.len() / images;
        for (preset, schedule) in PRESETS {
            let hw = hardware(preset);
            let preset = &format!("{preset} ({})", schedule.name());
            let compiled = match compile_with_options(&q, &hw, &Options { schedule, ..Options::default() }) {
                Ok(c) => c,
                Err(e) => {
                    // Only a missing MAC mode may stop compilation: edge-64 has neither
                    // binary nor ternary weights.
                    let mode = match scheme {
                        "binary-weights" => npu_isa::MacMode::B1,
                        "ternary-weights" => npu_isa::MacMode::T2,
                        _ => panic!("{label} {scheme} {preset}: {e}"),
                    };
                    assert!(!hw.supports(mode), "{label} {scheme} {preset}: {e}");
                    assert!(e.to_string().contains(&format!("has no `{mode}` mode")), "{e}");
                    continue;
                }
            };
            if hw.name == "cramped" {
                spilled += compiled.memory.spilled().count();
            }
            let out = |m: &npu_sim::Machine| {
                let bytes = m
                    .read(compiled.output.space(), u64::from(compiled.output.addr), u64::from(compiled.output.len))
                    .expect("in range");
                from_hwc_bytes(bytes, &q.values[q.output].shape, q.values[q.output].q.dtype)
            };
            let mut trace = Vec::new();
            for i in 0..images {
                let p = compiled.with_input(&q, &qin[i * per_in..(i + 1) * per_in]);
                let opts = npu_sim::RunOptions { trace: i == 0, ..Default::default() };
                let o = npu_sim::run(&p, &hw, &opts).expect("loads");
                assert!(o.trap.is_none(), "{label} {scheme} {preset}: {:?}", o.trap);
                assert_eq!(
                    out(&o.machine),
                    want[i * per_out..(i + 1) * per_out],
                    "{label} {scheme} {preset} image {i}"
                );
                if i == 0 {
                    trace = o.trace;
                    // Timing only: the same report, counters, energy and gated MACs.
                    let fast = npu_sim::run(&p, &hw, &npu_sim::RunOptions { timing_only: true, ..Default::default() })
                        .expect("loads");
                    assert_eq!(fast.report, o.report, "{label} {scheme} {preset}: timing-only ≠ full run");
                }
            }
            // Replaying the first run's order on one reused machine gives the same integers
            // for every image (in reverse order, so each reset follows a different image),
            // and a machine without the fast kernels (`npu_sim::kernels`), or with only the
            // AVX2 ones, ends every image with the same bytes in every memory.
            let replay = npu_sim::Replay::new(&compiled.program, &hw, &trace).expect("its own trace");
            let mut m = replay.machine().expect("loads");
            let mut scalar = replay.machine().expect("loads");
            scalar.set_fast_kernels(false);
            // As on a CPU with AVX2 but not AVX-512 VNNI: the AVX2 kernels.
            let mut avx2 = replay.machine().expect("loads");
            avx2.set_vnni_kernels(false);
            for i in (0..images).rev() {
                let seg = compiled.input_segment(&q, &qin[i * per_in..(i + 1) * per_in]);
                assert!(replay.run(&mut m, std::slice::from_ref(&seg)).expect("runs").is_none());
                assert!(replay.run(&mut avx2, std::slice::from_ref(&seg)).expect("runs").is_none());
                assert!(replay.run(&mut scalar, &[seg]).expect("runs").is_none());
                assert_eq!(
                    out(&m),
                    want[i * per_out..(i + 1) * per_out],
                    "{label} {scheme} {preset} image {i}, replayed"
                );
                assert!(m == scalar, "{label} {scheme} {preset} image {i}: fast kernels ≠ scalar loops");
                assert!(avx2 == scalar, "{label} {scheme} {preset} image {i}: AVX2 kernels ≠ scalar loops");
            }
        }
    }
    spilled
}

#[test]
fn plain_cnn_fixture_matches_the_integer_executor_bit_for_bit() {
    let bytes = std::fs::read(crate::repo_root().join("tests/fixtures/onnx/plain_cnn.onnx")).expect("fixture");
    let m = npu_onnx::import(&bytes, "plain_cnn").expect("imports");
    differential(&m, "plain_cnn", 20);
}

#[test]
fn mobile_res_fixture_matches_the_integer_executor_bit_for_bit() {
    let bytes = std::fs::read(crate::repo_root().join("tests/fixtures/onnx/mobile_res.onnx")).expect("fixture");
    let m = npu_onnx::import(&bytes, "mobile_res").expect("imports");
    differential(&m, "mobile_res", 20);
}

#[test]
fn zoo_models_match_the_integer_executor_bit_for_bit() {
    for (name, _) in npu_zoo::ARCHITECTURES {
        let m = npu_zoo::trained(name).expect("zoo model");
        let spilled = differential(&m, name, 20);
        // The CNN's 32×28×28 activations (25,088 bytes) exceed `cramped`'s 24 KiB of SRAM:
        // spilled values are checked bit for bit too.
        if *name == "cnn" {
            assert!(spilled > 0, "cnn: nothing spilled on `cramped`");
        }
    }
}

#[test]
fn missing_capabilities_are_compile_errors_naming_the_layer() {
    let bytes = std::fs::read(crate::repo_root().join("tests/fixtures/onnx/plain_cnn.onnx")).expect("fixture");
    let m = npu_onnx::import(&bytes, "plain_cnn").expect("imports");
    let train = npu_zoo::fashion_mnist_train_subset().expect("embedded");
    let source = npu_quant::RangeSource::Calibration { images: 50, method: npu_quant::calib::Method::MinMax };
    let q =
        npu_quant::quantize_model(&m, &Scheme::named("int8-per-channel").expect("scheme"), &train, source).expect("q");
    let mut shift_only = npu_hw::preset("edge-256").expect("preset");
    shift_only.requant.multiplier = false;
    let e = compile(&q, &shift_only).expect_err("needs a multiplier");
    assert_eq!(
        e.to_string(),
        "cannot compile layer `/f/f.0/Conv`: the hardware `edge-256` has no requantization multiplier \
         (quantize with power-of-two scales)"
    );
    let p2 = npu_quant::quantize_model(&m, &Scheme::named("int8-pow2").expect("scheme"), &train, source).expect("q");
    compile(&p2, &shift_only).expect("power-of-two scales compile for shift-only hardware");
}

fn quantized_zoo(name: &str, scheme: &str) -> npu_quant::QModel {
    let m = npu_zoo::trained(name).expect("zoo model");
    let train = npu_zoo::fashion_mnist_train_subset().expect("embedded");
    let source = npu_quant::RangeSource::Calibration { images: 100, method: npu_quant::calib::Method::MinMax };
    npu_quant::quantize_model(&m, &Scheme::named(scheme).expect("scheme"), &train, source).expect("quantizes")
}

fn timing_cycles(c: &npu_compile::Compiled, hw: &npu_hw::HwConfig) -> u64 {
    let o =
        npu_sim::run(&c.program, hw, &npu_sim::RunOptions { timing_only: true, ..Default::default() }).expect("loads");
    assert!(o.trap.is_none(), "{:?}", o.trap);
    o.report.total_cycles
}

#[test]
fn schedule_quality_roofline_ratio_within_1_3_on_edge_256() {
    let hw = npu_hw::preset("edge-256").expect("preset");
    for name in ["cnn", "resnet", "mobilenet"] {
        let q = quantized_zoo(name, "int8-per-channel");
        let roof = npu_compile::roofline(&q, &hw);
        // The floor's off-chip bytes, counted here from the model: one byte per int8
        // weight and a 12-byte record per output channel of every weighted layer, 40
        // bytes per add.
        let mut bytes = 0u64;
        for l in &q.layers {
            match &l.op {
                npu_quant::QOp::Conv2d { layer, .. } | npu_quant::QOp::Dense { layer } => {
                    bytes += layer.weights.len() as u64 + 12 * layer.shape[0] as u64
                }
                npu_quant::QOp::Add { .. } => bytes += 40,
                _ => {}
            }
        }
        // Without a decompressor the floor counts the packed bytes; with edge-256's, each
        // layer's smallest encoding, never more.
        let mut plain = hw.clone();
        plain.dma.decompress_bytes_per_cycle = 0.0;
        assert_eq!(npu_compile::roofline(&q, &plain).offchip_bytes, bytes, "{name}");
        assert!(roof.offchip_bytes <= bytes, "{name}");
        let cycles = timing_cycles(&compile(&q, &hw).expect("compiles"), &hw) as f64;
        let ratio = cycles / roof.floor();
        // No schedule beats the floor; ours stays within 30% of it.
        assert!((1.0..=1.3).contains(&ratio), "{name}: {cycles} cycles / floor {} = {ratio}", roof.floor());
    }
}

#[test]
fn mobilenet_v2_224_compiles_and_simulates_in_timing_only_mode() {
    let m = npu_zoo::trained("mobilenetv2-224").expect("benchmark model");
    let train = npu_zoo::fashion_mnist_train_subset().expect("embedded");
    let q = npu_quant::quantize_model(
        &m,
        &Scheme::named("int8-per-channel").expect("scheme"),
        &train,
        npu_quant::RangeSource::DataFree,
    )
    .expect("quantizes without data");
    let hw = npu_hw::preset("edge-256").expect("preset");
    let roof = npu_compile::roofline(&q, &hw);
    // Sandler et al. 2018, table 3: MobileNetV2 (1.0, 224) has 300M multiply-adds.
    assert!((roof.macs as f64 / 300e6 - 1.0).abs() < 0.01, "{} MACs", roof.macs);
    let c = compile(&q, &hw).expect("compiles");
    // 112×112×96 activations (1.2 MB) fit the 2 MiB of SRAM only with liveness reuse.
    let total: usize = q.values.iter().map(|v| v.shape.iter().product::<usize>()).sum();
    assert!(total > hw.memories.sram.bytes as usize, "{total}");
    assert!(c.memory.sram_bytes <= hw.memories.sram.bytes as u32);
    let cycles = timing_cycles(&c, &hw) as f64;
    assert!(cycles >= roof.floor(), "{cycles} below the floor {}", roof.floor());
}

/// Regression (#22): a ResNeXt-50 export was refused — ``activation `/layer1/layer1.0/Add`
/// (802816 bytes) does not fit the 2097152 bytes of system SRAM`` — where it should
/// spill to off-chip memory and cost what that costs.
#[test]
fn activations_larger_than_system_sram_spill_to_off_chip_memory() {
    let m = npu_zoo::trained("mobilenetv2-224").expect("benchmark model");
    let train = npu_zoo::fashion_mnist_train_subset().expect("embedded");
    let scheme = Scheme::named("int8-per-channel").expect("scheme");
    let q = npu_quant::quantize_model(&m, &scheme, &train, npu_quant::RangeSource::DataFree).expect("quantizes");
    // edge-64 has 1 MiB of SRAM; MobileNetV2-224's first expanded activation, 112×112×96,
    // is 1,204,224 bytes on its own.
    let hw = npu_hw::preset("edge-64").expect("preset");
    let size = |v: usize| q.values[v].shape.iter().product::<usize>();
    let largest = (0..q.values.len()).map(size).max().expect("values");
    assert!(largest > hw.memories.sram.bytes as usize, "{largest}");
    let c = compile(&q, &hw).expect("compiles with spills");
    let spilled: Vec<usize> = c.memory.spilled().collect();
    assert!(!spilled.is_empty());
    assert!(spilled.iter().any(|&v| size(v) == largest), "the largest activation is spilled");
    // The spill region is the top of off-chip memory, above the weights.
    let dram = u64::from(hw.memories.dram.bytes);
    let base = dram - u64::from(c.memory.spill_bytes);
    assert!(c.program.data.iter().all(|s| s.end() <= base), "weights below the spill region");
    let mut roots = std::collections::BTreeMap::new();
    for &v in &spilled {
        let npu_compile::Home::Dram(a) = c.memory.homes[v] else { unreachable!() };
        assert!(u64::from(a) >= base && u64::from(a) + size(v) as u64 <= dram, "value {v} at {a}");
        roots.insert(a, size(v));
    }
    // Every spilled value is written to off-chip memory whole at least once (aliases
    // share their source's bytes: counted once per address).
    let run =
        npu_sim::run(&c.program, &hw, &npu_sim::RunOptions { timing_only: true, ..Default::default() }).expect("loads");
    assert!(run.trap.is_none(), "{:?}", run.trap);
    let written = run.report.memory.iter().find(|m| m.space == "dram").map_or(0, |m| m.written_bytes);
    let spilled_bytes: usize = roots.values().sum();
    assert!(written >= spilled_bytes as u64, "{written} bytes written off-chip, {spilled_bytes} spilled");
    // The roofline floor counts the activations no schedule can keep on chip (larger than
    // both the 64 KiB activation buffer and the 1 MiB of SRAM), written and read once;
    // the simulated run stays above that floor.
    let on_chip = (hw.buffers.act.bytes.max(hw.memories.sram.bytes)) as usize;
    let forced: usize = q.layers.iter().map(|l| size(l.output)).filter(|&b| b > on_chip).sum();
    assert!(forced >= largest, "{forced}");
    let roof = npu_compile::roofline(&q, &hw);
    assert_eq!(roof.forced_spill_bytes, forced as u64);
    let without = npu_compile::roofline(&q, &npu_hw::preset("edge-256").expect("preset"));
    assert_eq!(without.forced_spill_bytes, 0);
    assert!(run.report.total_cycles as f64 >= roof.floor(), "{} < {}", run.report.total_cycles, roof.floor());
    let weights_etc = roof.offchip_bytes - 2 * forced as u64;
    assert!(weights_etc > 0 && roof.offchip_cycles * hw.memories.dram.bytes_per_cycle > (2 * forced) as f64);
    // On edge-256 (2 MiB of SRAM) nothing spills, and nothing is written off-chip.
    let hw256 = npu_hw::preset("edge-256").expect("preset");
    let c256 = compile(&q, &hw256).expect("compiles");
    assert_eq!((c256.memory.spilled().count(), c256.memory.spill_bytes), (0, 0));
}

#[test]
fn memory_plan_never_shares_bytes_between_values_live_at_once() {
    use npu_compile::{memory, Home};
    let hw = npu_hw::preset("edge-64").expect("preset");
    for name in ["cnn", "resnet", "mobilenet"] {
        let q = quantized_zoo(name, "int8-sym");
        let plan = memory::plan(&q, &hw, &[], true).expect("plans");
        // Lifetimes recomputed here: defined by the producing layer, alive until the
        // last layer that reads it (or the value an alias of it feeds), the output forever.
        let n = q.values.len();
        let mut root: Vec<usize> = (0..n).collect();
        for l in &q.layers {
            if memory::is_alias(&q, l) {
                root[l.output] = root[l.inputs[0]];
            }
        }
        let (mut def, mut last) = (vec![0usize; n], vec![0usize; n]);
        for (k, l) in q.layers.iter().enumerate() {
            if root[l.output] == l.output {
                def[l.output] = k + 1;
            }
            for &i in l.inputs.iter().chain([&l.output]) {
                last[root[i]] = last[root[i]].max(k + 1);
            }
        }
        last[root[q.output]] = usize::MAX;
        let region = |v: usize| {
            let len = q.values[v].shape.iter().product::<usize>() as u64;
            match plan.homes[v] {
                Home::Act(a) => (0, u64::from(a), u64::from(a) + len),
                Home::Sram(a) => (1, u64::from(a), u64::from(a) + len),
                Home::Dram(a) => (2, u64::from(a), u64::from(a) + len),
            }
        };
        // An elementwise layer may write its output over the input it reads for the last
        // time (in place): the same bytes, handed over at that layer and nowhere else.
        let in_place = |a: usize, b: usize| {
            let l = &q.layers[def[b] - 1];
            use npu_quant::QOp;
            let elementwise = matches!(l.op, QOp::Add { .. } | QOp::Mul { .. } | QOp::Lut { .. } | QOp::Reshape);
            elementwise && def[b] == last[a] && l.inputs.contains(&a) && region(a) == region(b)
        };
        for a in (0..n).filter(|&v| root[v] == v) {
            for b in (a + 1..n).filter(|&v| root[v] == v) {
                let live = def[a] <= last[b] && def[b] <= last[a] && !in_place(a, b);
                let (ra, rb) = (region(a), region(b));
                let overlap = ra.0 == rb.0 && ra.1 < rb.2 && rb.1 < ra.2;
                assert!(!(live && overlap), "{name}: values {a} and {b} overlap while both live");
            }
        }
        assert!(matches!(plan.homes[0], Home::Sram(_)) && matches!(plan.homes[q.output], Home::Sram(_)));
    }
}

#[test]
fn scheduler_tokens_follow_conflicts_and_skip_covered_ones() {
    use npu_compile::schedule::tokens;
    use npu_isa::{assemble, Op, Unit, UnitSet};
    // 0 ld act[0..16); 1 ld wgt; 2 conv reads act[0..16) and wgt, writes acc;
    // 3 rq reads acc, writes act[0x100..); 4 conv reads act[0..16) again (covered by the
    // token of 2: same unit, later); 5 ld overwrites act[0..16) (must wait for the last
    // reader on mac, 4).
    let src = "ld ext=sram src=0 loc=act dst=0 elem=16\n\
               ld ext=dram src=0 loc=wgt dst=0 elem=16\n\
               conv ifm=0 ih=1 iw=1 cin=16 wgt=0 cout=1 dst=0\n\
               rq src=0 n=1 c=1 par=0 dst=0x100\n\
               conv ifm=0 ih=1 iw=1 cin=16 wgt=0 cout=1 dst=4\n\
               ld ext=sram src=0 loc=act dst=0 elem=16\n";
    let ops: Vec<Op> = assemble(src, "t.s").expect("assembles").code.iter().map(|i| i.op).collect();
    let code = tokens(&ops, None).unwrap();
    let sets: Vec<(UnitSet, UnitSet)> = code.iter().map(|i| (i.wait, i.signal)).collect();
    let none = UnitSet::NONE;
    let one = UnitSet::one;
    assert_eq!(sets[0], (none, none), "covered by the later ld's token (in-order completion)");
    assert_eq!(sets[1], (none, one(Unit::Mac)));
    assert_eq!(sets[2], (one(Unit::Ld), one(Unit::Rq)));
    assert_eq!(sets[3], (one(Unit::Mac), none));
    assert_eq!(sets[4], (none, one(Unit::Ld)), "the ld→mac dependency is covered by 2's token");
    assert_eq!(sets[5], (one(Unit::Mac), none));
}

/// The regression guarded: a keyword-spotting network's last pooling, a 25×5 average over
/// a 25×5 input with stride 25×5 (PyTorch's default `count_include_pad=1`, no padding),
/// was refused as "beyond the ISA's fields" (strides hold 15) and as an average counting
/// padding. With one output the stride cannot matter; it compiles, and the simulator's
/// outputs are the integer executor's on every preset.
#[test]
fn pooling_with_one_output_compiles_whatever_its_stride() {
    use npu_data::{Array, Dataset, Elements, Layout, Preprocess};
    use npu_model::ir::{Activation, GraphBuilder, Op, Tensor};
    let mut rng = crate::Rng(0x5eed_2505);
    let mut b = GraphBuilder::new();
    let x = b.input("mfcc", vec![8, 25, 5]).expect("input");
    let pool = Op::AvgPool { kernel: [25, 5], stride: [25, 5], pad: [0; 4], count_include_pad: true };
    let p = b.node("pool", pool, &[x]).expect("pool");
    let f = b.node("flatten", Op::Flatten, &[p]).expect("flatten");
    let wv: Vec<f32> = (0..32).map(|_| rng.next_u64() as f32 / u64::MAX as f32 - 0.5).collect();
    let w = b.constant("fc.weight", Tensor::new(vec![4, 8], wv).expect("tensor")).expect("w");
    let bias = b.constant("fc.bias", Tensor::new(vec![4], vec![0.1, -0.1, 0.2, 0.0]).expect("tensor")).expect("b");
    let y = b.node("fc", Op::Dense { act: Activation::None }, &[f, w, bias]).expect("fc");
    b.output(y).expect("output");
    let pre = Preprocess { scale: 1.0, mean: vec![0.0], std: vec![1.0], layout: Layout::Nchw };
    let m = Model { name: "kws-pool".into(), graph: b.finish().expect("graph"), preprocess: pre, has_preprocess: true };
    let n = 6;
    let xs: Vec<f32> = (0..n * 8 * 125).map(|_| rng.next_u64() as f32 / u64::MAX as f32 * 4.0 - 2.0).collect();
    let arr = Array { shape: vec![n, 8, 25, 5], values: Elements::F32(xs), dtype: "float32".into() };
    let ds = Dataset::from_arrays(arr, None, "mfcc").expect("data");
    let source = npu_quant::RangeSource::Calibration { images: n, method: npu_quant::calib::Method::MinMax };
    let q = npu_quant::quantize_model(&m, &Scheme::named("int8-per-channel").expect("scheme"), &ds, source).expect("q");
    let qin = q.int_inputs(&ds, 0..n).expect("inputs");
    let want = q.run_int(&qin, n).expect("int");
    for preset in ["edge-64", "edge-256", "edge-1k"] {
        let d = npu_app::Deployment::new(q.clone(), hardware(preset)).expect("compiles");
        let t = d.timing().expect("times");
        let got = d.outputs(&t, &qin, 1, "pool", &npu_app::NoProgress).expect("runs");
        assert_eq!(got.concat(), want, "{preset}");
    }
}

/// Sigmoid, tanh, hard-sigmoid, hard-swish and leaky ReLU (an ONNX model, ONNX Runtime's
/// outputs committed) quantize to lookup tables whose every entry is the exact
/// quantization of the function at the value its input integer stands for (worked out
/// here from the formulas), run on the NPU's vector unit with the integer executor's
/// results bit for bit, and stay close to ONNX Runtime's FP32 outputs.
#[test]
fn lookup_table_activations_quantize_exactly_and_run_on_the_npu() {
    use npu_data::{Array, Dataset};
    let root = crate::repo_root().join("tests/fixtures/onnx");
    let m = npu_onnx::import(&std::fs::read(root.join("activations.onnx")).expect("fixture"), "activations")
        .expect("imports");
    let x = crate::read_npy(&std::fs::read(root.join("activations.input.npy")).expect("fixture"), "x");
    let ort = crate::read_npy(&std::fs::read(root.join("activations.output.npy")).expect("fixture"), "y").to_f32();
    let n = x.shape[0];
    let ds = Dataset::from_arrays(Array { dtype: "float32".into(), ..x }, None, "x").expect("data");
    let formula = |name: &str, v: f64| -> f64 {
        match name {
            "Sigmoid" => 1.0 / (1.0 + (-v).exp()),
            "Tanh" => v.tanh(),
            "HardSigmoid" => (0.2 * v + 0.5).clamp(0.0, 1.0),
            "HardSwish" => v * (v + 3.0).clamp(0.0, 6.0) / 6.0,
            _ => {
                if v >= 0.0 {
                    v
                } else {
                    0.1 * v
                }
            }
        }
    };
    for scheme in ["int8-per-channel", "uint8-asym"] {
        let source = npu_quant::RangeSource::Calibration { images: n, method: npu_quant::calib::Method::MinMax };
        let q = npu_quant::quantize_model(&m, &Scheme::named(scheme).expect("scheme"), &ds, source).expect("q");
        let luts: Vec<_> = q.layers.iter().filter(|l| matches!(l.op, npu_quant::QOp::Lut { .. })).collect();
        assert_eq!(luts.len(), 5, "{scheme}: one table per activation");
        for (l, name) in luts.iter().zip(["Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "LeakyRelu"]) {
            let npu_quant::QOp::Lut { table } = &l.op else { unreachable!() };
            let (qi, qo) = (q.values[l.inputs[0]].q, q.values[l.output].q);
            let (lo, hi) = qo.dtype.range();
            for (k, got) in table.iter().enumerate() {
                let v = qi.dtype.range().0 + k as i32;
                let real = f64::from(qi.scale) * f64::from(v - qi.zero_point);
                let want = ((formula(name, real) / f64::from(qo.scale)).round() as i32 + qo.zero_point).clamp(lo, hi);
                assert_eq!(*got, want, "{scheme} {name}: entry {k}");
            }
        }
        let qin = q.int_inputs(&ds, 0..n).expect("inputs");
        let want = q.run_int(&qin, n).expect("int");
        for preset in ["edge-64", "edge-256", "edge-1k", "cramped"] {
            let d = npu_app::Deployment::new(q.clone(), hardware(preset)).expect("compiles");
            let t = d.timing().expect("times");
            let got = d.outputs(&t, &qin, 1, "luts", &npu_app::NoProgress).expect("runs");
            assert_eq!(got.concat(), want, "{scheme} on {preset}");
        }
        let oq = q.values[q.output].q;
        let (mut sig, mut noise) = (0f64, 0f64);
        for (i, r) in want.iter().zip(&ort) {
            let y = f64::from(oq.scale) * f64::from(i - oq.zero_point);
            sig += f64::from(*r).powi(2);
            noise += (y - f64::from(*r)).powi(2);
        }
        let sqnr = 10.0 * (sig / noise.max(1e-30)).log10();
        assert!(sqnr > 20.0, "{scheme}: SQNR {sqnr:.1} dB against ONNX Runtime");
    }
}
