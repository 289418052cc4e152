//! The host CPU: `host` instructions (a barrier costed by the hardware description's
//! `cpu` figures), and layers the NPU cannot run — or that are placed there by name —
//! compiled as host calls and run on the integer reference kernels, bit for bit.

use npu_isa::{assemble, Host, Space};
use npu_quant::Scheme;
use npu_sim::{run, run_hosted, HostRuntime, Machine, RunOptions};

/// A host that adds 1 to every input byte.
struct PlusOne;

impl HostRuntime for PlusOne {
    fn call(&self, call: &Host, m: &mut Machine) -> Result<(), String> {
        let x: Vec<u8> = m.read(Space::Sram, u64::from(call.src), u64::from(call.sn)).ok_or("outside")?.to_vec();
        let y: Vec<u8> = x.iter().map(|b| b.wrapping_add(1)).collect();
        m.write(Space::Sram, u64::from(call.dst), &y).map_err(|e| e.to_string())
    }
}

#[test]
fn host_call_runs_the_runtime_as_a_barrier_costed_by_the_cpu_model() {
    let hw = npu_hw::preset("edge-256").expect("preset");
    // Two bytes copied into SRAM by the NPU, the host adds one, the NPU copies them on.
    let src = "ld ext=dram src=0 loc=act dst=0 elem=4 signal=st\n\
               st loc=act src=0 ext=sram dst=0x100 elem=4 wait=ld\n\
               host id=7 src=0x100 sn=4 dst=0x200 dn=4\n\
               ld ext=sram src=0x200 loc=act dst=64 elem=4 signal=st\n\
               st loc=act src=64 ext=sram dst=0x300 elem=4 wait=ld\n\
               .data dram 0\n.byte 1, 2, 3, 250\n";
    let p = assemble(src, "host.s").unwrap_or_else(|e| panic!("{e}"));
    let o = run_hosted(&p, &hw, &RunOptions { trace: true, ..Default::default() }, &PlusOne).expect("loads");
    assert!(o.trap.is_none(), "{:?}", o.trap);
    assert_eq!(o.machine.read(Space::Sram, 0x300, 4), Some(&[2u8, 3, 4, 251][..]));
    // edge-256's host: 400 MHz, 2,000 cycles a call, 4 per output element, 4 bytes a
    // cycle; 4 bytes in and 4 out: 2000 + 16 + 2 = 2,018 CPU cycles = 2,522.5 at 500 MHz.
    let cpu = o.report.units.iter().find(|u| u.unit == "cpu").expect("cpu row");
    assert_eq!((cpu.instructions, cpu.busy_cycles), (1, 2523));
    // A barrier: the call starts after the store before it ends, the load after it
    // starts after it ends.
    let ev = |i: usize| o.trace.iter().find(|e| e.index == i).expect("event");
    assert!(ev(2).start >= ev(1).end && ev(3).start >= ev(2).end, "{:?}", o.trace);
    // 20 pJ a CPU cycle over 2,018 CPU cycles.
    assert!((o.report.energy.host_pj - 2018.0 * 20.0).abs() < 20.0, "{}", o.report.energy.host_pj);
    // Without a runtime the call is a trap naming it; timing-only runs do not call it.
    let t = run(&p, &hw, &RunOptions::default()).expect("loads").trap.expect("traps");
    assert!(t.to_string().contains("host call: no host runtime is attached to run host operation 7"), "{t}");
    let timing = run(&p, &hw, &RunOptions { timing_only: true, ..Default::default() }).expect("loads");
    assert!(timing.trap.is_none());
    assert_eq!(timing.report.total_cycles, o.report.total_cycles);
}

#[test]
fn host_instructions_take_no_tokens_and_stay_in_sram() {
    let e = assemble("host id=0 src=0 sn=4 dst=16 dn=4 signal=ld\n", "t.s").expect_err("no tokens");
    assert!(e.to_string().contains("cannot wait for or signal tokens"), "{e}");
    let e = assemble("sync unit=vec wait=cpu\n", "t.s").expect_err("cpu is not a token unit");
    assert!(e.to_string().contains("ld, mac, rq, vec, st, ldw"), "{e}");
    let e = assemble("sync unit=cpu\n", "t.s").expect_err("the host has no queue");
    assert!(e.to_string().contains("`unit` = 6 is out of range (expected ld, mac, rq, vec, st, ldw)"), "{e}");
    // edge-64 has 1 MiB of SRAM: an output past it is a trap naming the operand.
    let hw = npu_hw::preset("edge-64").expect("preset");
    let p = assemble("host id=0 src=0 sn=4 dst=0xffffe dn=4\n", "t.s").expect("assembles");
    let t = run_hosted(&p, &hw, &RunOptions::default(), &PlusOne).expect("loads").trap.expect("traps");
    assert!(t.to_string().contains("dst accesses sram 0xffffe..0x100002"), "{t}");
}

fn plain_cnn(scheme: &str) -> npu_quant::QModel {
    let bytes = std::fs::read(crate::repo_root().join("tests/fixtures/onnx/plain_cnn.onnx")).expect("fixture");
    let m = npu_onnx::import(&bytes, "plain_cnn").expect("imports");
    let train = npu_zoo::fashion_mnist_train_subset().expect("embedded");
    let source = npu_quant::RangeSource::Calibration { images: 50, method: npu_quant::calib::Method::MinMax };
    npu_quant::quantize_model(&m, &Scheme::named(scheme).expect("scheme"), &train, source).expect("quantizes")
}

/// The simulator's outputs for the first `n` test images against the integer executor's.
fn assert_bit_exact(d: &npu_app::Deployment, n: usize) -> npu_app::Timing {
    let test = npu_zoo::fashion_mnist_test().expect("embedded").take(n);
    let qin = d.model.int_inputs(&test, 0..n).expect("inputs");
    let timing = d.timing().expect("runs");
    let sim = d.outputs(&timing, &qin, 1, "t", &npu_app::NoProgress).expect("simulates");
    let per = d.input_len();
    for (i, out) in sim.iter().enumerate() {
        assert_eq!(out, &d.model.run_sample(&qin[i * per..(i + 1) * per]), "image {i}");
    }
    timing
}

#[test]
fn layers_shift_only_hardware_cannot_run_fall_back_to_the_cpu_bit_exactly() {
    let q = plain_cnn("int8-per-channel");
    let mut shift_only = npu_hw::preset("edge-256").expect("preset");
    shift_only.requant.multiplier = false;
    // Refused by default in the compiler library, run by the host in a deployment.
    assert!(npu_compile::compile(&q, &shift_only).is_err());
    let d = npu_app::Deployment::new(q.clone(), shift_only).expect("compiles with a fallback");
    let weighted: Vec<&str> = q
        .layers
        .iter()
        .filter(|l| matches!(l.op, npu_quant::QOp::Conv2d { .. } | npu_quant::QOp::Dense { .. }))
        .map(|l| l.name.as_str())
        .collect();
    let on_cpu: Vec<&str> = d.compiled.host.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(on_cpu, weighted, "every layer needing a multiplier, and only those");
    assert!(d.compiled.host.iter().all(|h| h.reason.contains("no requantization multiplier")), "{:?}", d.compiled.host);
    let timing = assert_bit_exact(&d, 8);
    for row in &timing.layers {
        let hosted = on_cpu.contains(&row.layer.as_str());
        assert_eq!(row.bound == "cpu", hosted, "{row:?}");
        if hosted {
            let l = q.layers.iter().find(|l| l.name == row.layer).expect("layer");
            assert_eq!(row.macs, npu_compile::lower::layer_macs(&q, l));
        }
    }
}

#[test]
fn any_layer_placed_on_the_cpu_gives_the_same_outputs_and_costs_its_cpu_time() {
    let q = plain_cnn("int8-per-channel");
    let hw = npu_hw::preset("edge-256").expect("preset");
    let npu_only = npu_app::Deployment::new(q.clone(), hw.clone()).expect("compiles");
    assert!(npu_only.compiled.host.is_empty());
    let base = npu_only.timing().expect("runs").report.total_cycles;
    for (k, l) in q.layers.iter().enumerate() {
        if npu_compile::memory::is_alias(&q, l) {
            continue;
        }
        let opts = npu_compile::Options { on_cpu: vec![l.name.clone()], ..Default::default() };
        let d = npu_app::Deployment::with_options(q.clone(), hw.clone(), &opts).expect("compiles");
        assert_eq!(d.compiled.host.len(), 1);
        assert_eq!((d.compiled.host[0].layer, d.compiled.host[0].reason.as_str()), (k, "placed on the CPU by request"));
        let t = assert_bit_exact(&d, 4);
        // At least the call's fixed cost (2,000 CPU cycles = 2,500 NPU cycles) more.
        assert!(t.report.total_cycles > base, "{}: {} vs {base}", l.name, t.report.total_cycles);
        let cpu = t.report.units.iter().find(|u| u.unit == "cpu").expect("cpu row");
        assert!(cpu.busy_cycles >= 2500, "{}: {}", l.name, cpu.busy_cycles);
    }
    let e = npu_compile::compile_with_options(
        &q,
        &hw,
        &npu_compile::Options { on_cpu: vec!["nope".into()], ..Default::default() },
    )
    .expect_err("unknown layer");
    assert_eq!(e.to_string(), "the model `main_graph` has no layer `nope` to place on the CPU");
}
