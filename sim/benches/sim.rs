//! Simulated MACs per host-second, for full (bit-exact) and timing-only runs, and for
//! replays with the fast kernels (`npu_sim::kernels`) and with the scalar loops.
//!
//! Run with `cargo bench -p npu-sim`. The workload is one 3×3 convolution layer,
//! 28×28×32 → 28×28×32 with SAME padding (7,225,344 MACs), loaded by DMA, requantized
//! per channel and stored, on `edge-256`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use npu_isa::{assemble, Program};
use npu_sim::{run, Replay, RunOptions};

const MACS: u64 = 28 * 28 * 32 * 32 * 9;

fn program() -> Program {
    let mut src = String::from(".data sram 0\n");
    for i in 0..28 * 28 * 32 / 16 {
        let row: Vec<String> = (0..16).map(|j| ((i * 16 + j) * 37 % 255 - 127).to_string()).collect();
        src.push_str(&format!(".byte {}\n", row.join(", ")));
    }
    src.push_str(".data dram 0\n");
    for i in 0..32 * 9 * 32 / 16 {
        let row: Vec<String> = (0..16).map(|j| ((i * 16 + j) * 11 % 15 - 7).to_string()).collect();
        src.push_str(&format!(".byte {}\n", row.join(", ")));
    }
    src.push_str(".align 4\nparams:\n");
    for _ in 0..32 {
        src.push_str(".word 100, 1374389535, -8\n");
    }
    src.push_str(
        ".text
    ld ext=sram src=0 dst=0 n1=28 n0=28 elem=32 s1=896 s0=32 pt=1 pb=1 pl=1 pr=1
    ld src=0 loc=wgt dst=0 elem=9216
    ld src=params loc=par dst=0 elem=384 signal=mac|rq
    conv ifm=0 ih=30 iw=30 cin=32 wgt=0 kh=3 kw=3 cout=32 dst=0 wait=ld signal=rq
    rq src=0 n=784 c=32 par=0 dst=0x10000 wait=ld|mac signal=st
    st src=0x10000 ext=sram dst=0x20000 elem=25088 wait=rq
    halt
",
    );
    assemble(&src, "bench.s").expect("the benchmark program assembles")
}

fn bench(c: &mut Criterion) {
    let p = program();
    let hw = npu_hw::preset("edge-256").expect("preset");
    let mut g = c.benchmark_group("conv3x3_28x28x32");
    g.throughput(Throughput::Elements(MACS));
    g.sample_size(10);
    for (name, timing_only) in [("full", false), ("timing_only", true)] {
        let opts = RunOptions { timing_only, ..RunOptions::default() };
        g.bench_function(name, |b| {
            b.iter(|| {
                let o = run(&p, &hw, &opts).expect("loads");
                assert!(o.trap.is_none());
                o.report.total_cycles
            })
        });
    }
    // Replays (what accuracy runs use): the effects in the traced order, no timing model.
    let traced = run(&p, &hw, &RunOptions { timing_only: true, trace: true, ..RunOptions::default() }).expect("loads");
    let replay = Replay::new(&p, &hw, &traced.trace).expect("its own trace");
    for (name, fast) in [("replay_fast_kernels", true), ("replay_scalar", false)] {
        let mut m = replay.machine().expect("loads");
        m.set_fast_kernels(fast);
        g.bench_function(name, |b| {
            b.iter(|| {
                let t = replay.run(&mut m, &[]).expect("runs");
                assert!(t.is_none());
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
