//! Compressed weights: every format decodes bit-exactly on the simulator (differential
//! against the integer executor), `ldz` traps on bad streams and on hardware without a
//! decompressor, and weight-bound layers speed up by the ratio the compiler reports.

use npu_compile::{compile_with, WeightCoding};
use npu_isa::{Codec, Op};
use npu_quant::Scheme;
use npu_train::prune::{self, Prune, Scope, Structure};

/// zoo:cnn pruned to `sparsity` (unstructured, global) and quantized with `scheme`.
fn pruned_cnn(sparsity: f32, scheme: &str) -> npu_quant::QModel {
    let mut m = npu_zoo::trained("cnn").expect("zoo");
    let p = Prune { sparsity, structure: Structure::Unstructured, scope: Scope::Global };
    let masks = prune::masks(&m.graph, &p).expect("masks");
    prune::apply(&mut m.graph, &masks);
    let train = npu_zoo::fashion_mnist_train_subset().expect("embedded");
    let source = npu_quant::RangeSource::Calibration { images: 200, method: npu_quant::calib::Method::MinMax };
    npu_quant::quantize_model(&m, &Scheme::named(scheme).expect("scheme"), &train, source).expect("quantizes")
}

#[test]
fn every_weight_format_decompresses_bit_exactly_on_the_simulator() {
    let hw = npu_hw::preset("edge-256").expect("preset");
    let test = npu_zoo::fashion_mnist_test().expect("embedded").take(4);
    for scheme in ["int8-per-channel", "w4a8-per-channel", "ternary-weights"] {
        let q = pruned_cnn(0.6, scheme);
        let x = q.quantize_input(&crate::inputs(&q.preprocess, &test));
        let want = q.run_int(&x, 4).expect("runs");
        let per_in = x.len() / 4;
        let per_out = want.len() / 4;
        for coding in [
            WeightCoding::Only(Codec::Bitmask),
            WeightCoding::Only(Codec::Zrl),
            WeightCoding::Only(Codec::Rice),
            WeightCoding::Smallest,
            WeightCoding::Packed,
        ] {
            let c = compile_with(&q, &hw, coding).unwrap_or_else(|e| panic!("{scheme} {coding:?}: {e}"));
            let ldz = c.program.code.iter().filter(|i| matches!(i.op, Op::Ldz(_))).count();
            assert_eq!(ldz > 0, coding != WeightCoding::Packed, "{scheme} {coding:?}: {ldz} ldz");
            if let WeightCoding::Only(codec) = coding {
                assert!(c.program.code.iter().all(|i| !matches!(i.op, Op::Ldz(l) if l.codec != codec)));
            }
            for i in 0..4 {
                let got = crate::simulate_sample(&c, &q, &hw, &x[i * per_in..(i + 1) * per_in])
                    .unwrap_or_else(|t| panic!("{scheme} {coding:?}: {t}"));
                assert_eq!(got, want[i * per_out..(i + 1) * per_out], "{scheme} {coding:?} image {i}");
            }
        }
    }
}

#[test]
fn ldz_traps_on_corrupt_streams_and_without_a_decompressor() {
    let text = "ldz src=0 dst=0 len=3 n=16 codec=bitmask\nhalt\n";
    let mut p = npu_isa::assemble(text, "t.s").expect("assembles");
    // Mask 0x01 0x00 says one value, but two value bytes follow.
    p.data.push(npu_isa::Segment { space: npu_isa::Space::Dram, addr: 0, bytes: vec![0x01, 0x00, 5] });
    let hw = npu_hw::preset("edge-256").expect("preset");
    let ok = npu_sim::run(&p, &hw, &npu_sim::RunOptions::default()).expect("loads");
    assert!(ok.trap.is_none(), "{:?}", ok.trap);
    assert_eq!(ok.machine.read(npu_isa::Space::Wgt, 0, 16).expect("wgt")[..2], [5, 0]);
    p.data[0].bytes = vec![0x03, 0x00, 5];
    let bad = npu_sim::run(&p, &hw, &npu_sim::RunOptions::default()).expect("loads");
    let t = bad.trap.expect("corrupt stream traps").to_string();
    assert!(t.contains("bitmask stream: ends before value 1"), "{t}");
    let none = npu_hw::preset("edge-64").expect("preset");
    let t = npu_sim::run(&p, &none, &npu_sim::RunOptions::default()).expect("loads").trap.expect("traps").to_string();
    assert!(t.contains("has no weight decompressor"), "{t}");
}

#[test]
fn weight_bound_layers_speed_up_by_the_reported_ratio() {
    // cnn's 401,408-weight dense layer streams from flash at 1 B/cycle on edge-256:
    // its cycles follow its off-chip bytes.
    let hw = npu_hw::preset("edge-256").expect("preset");
    for sparsity in [0.5, 0.7, 0.8] {
        let q = pruned_cnn(sparsity, "int8-per-channel");
        let x = vec![q.values[0].q.zero_point; q.values[0].shape.iter().product()];
        let cycles = |coding| {
            let c = compile_with(&q, &hw, coding).expect("compiles");
            let opts = npu_sim::RunOptions { timing_only: true, trace: true, ..Default::default() };
            let o = npu_sim::run(&c.with_input(&q, &x), &hw, &opts).expect("runs");
            let regions = npu_sim::regions(&c.program, &hw, &o.trace, &c.layers, &c.owner);
            let r = regions.iter().find(|r| r.name == "fc4").expect("fc4");
            (r.attributed, c)
        };
        let (dense, _) = cycles(WeightCoding::Packed);
        let (packed, c) = cycles(WeightCoding::Smallest);
        let fc4 = c.coding.iter().find(|l| l.layer == "fc4").expect("reported");
        let predicted = fc4.stored_bytes as f64 / fc4.packed_bytes as f64;
        let measured = packed as f64 / dense as f64;
        assert!(
            (measured / predicted - 1.0).abs() <= 0.10,
            "sparsity {sparsity}: fc4 {dense} → {packed} cycles ({measured:.3}), bytes ratio {predicted:.3} ({:?})",
            fc4.encodings
        );
    }
}

#[test]
fn hardware_descriptions_check_the_decompressor() {
    let mut hw = npu_hw::preset("edge-256").expect("preset");
    hw.dma.decompress_bytes_per_cycle = -1.0;
    let e = hw.validate("x.ron").expect_err("negative").to_string();
    assert!(e.contains("dma.decompress_bytes_per_cycle"), "{e}");
}

#[test]
fn zero_gating_energy_follows_each_layers_zero_weights() {
    let hw = npu_hw::preset("edge-256").expect("preset");
    assert!(hw.mac.zero_gating);
    let q = pruned_cnn(0.7, "int8-per-channel");
    let c = npu_compile::compile(&q, &hw).expect("compiles");
    let x = vec![q.values[0].q.zero_point; q.values[0].shape.iter().product()];
    let o = npu_sim::run(&c.with_input(&q, &x), &hw, &npu_sim::RunOptions { trace: true, ..Default::default() })
        .expect("runs");
    let regions = npu_sim::regions(&c.program, &hw, &o.trace, &c.layers, &c.owner);
    let mut total = 0;
    for l in &q.layers {
        // Expected from the model alone: every zero weight meets every output pixel once.
        let (layer, pixels) = match &l.op {
            npu_quant::QOp::Conv2d { layer, .. } => (layer, q.values[l.output].shape[1] * q.values[l.output].shape[2]),
            npu_quant::QOp::Dense { layer } => (layer, 1),
            _ => continue,
        };
        let zeros = layer.weights.iter().filter(|w| **w == 0).count();
        let want = (zeros * pixels) as u64;
        let r = regions.iter().find(|r| r.name == l.name).expect("region");
        assert_eq!(r.report.macs.gated, want, "{}", l.name);
        // The layer's MAC energy counts only the MACs that were not gated (0.3 pJ each).
        let e = (r.report.macs.total - want) as f64 * 0.3;
        assert!(
            (r.report.energy.mac_pj - e).abs() < 1e-6 * e.max(1.0),
            "{}: {} vs {e}",
            l.name,
            r.report.energy.mac_pj
        );
        total += want;
    }
    assert_eq!(o.report.macs.gated, total);
    assert!(total > 0);
    // Without gating the same run spends energy on every MAC.
    let mut plain = hw.clone();
    plain.mac.zero_gating = false;
    let o2 = npu_sim::run(&c.with_input(&q, &x), &plain, &npu_sim::RunOptions::default()).expect("runs");
    assert_eq!(o2.report.macs.gated, 0);
    assert!((o2.report.energy.mac_pj - o.report.energy.mac_pj - total as f64 * 0.3).abs() < 1e-3);
    assert_eq!(o2.report.total_cycles, o.report.total_cycles, "gating does not change cycles");
}
