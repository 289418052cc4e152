//! Whole networks through the simulator, bit-exact, one thread: the images/s an
//! accuracy run gets (`npu simulate --jobs 1` reports the same replay).
//!
//! Run with `cargo bench -p npu-app`. The networks are the speed comparison's int8
//! TFLite models (`tests/fixtures/speed/`: MLPerf-Tiny-shaped ResNet-8, MobileNetV1
//! 0.25 at 96×96 and a VGG-style 3×3 network) as shipped, on `edge-256`, replaying 64
//! random inputs per iteration, with the fast kernels, with the AVX2 ones (as a CPU
//! without AVX-512 VNNI runs) and with the scalar loops.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const IMAGES: usize = 64;

fn bench(c: &mut Criterion) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/speed");
    let hw = npu_hw::preset("edge-256").expect("preset");
    let mut g = c.benchmark_group("replay");
    g.sample_size(10);
    g.throughput(Throughput::Elements(IMAGES as u64));
    for name in ["resnet8", "mobilenet", "vgg"] {
        let bytes = std::fs::read(dir.join(format!("{name}.tflite"))).expect("fixture");
        let q = npu_tflite::import(&bytes, name).expect("imports").quantized.expect("int8");
        let d = npu_app::Deployment::new(q, hw.clone()).expect("compiles");
        let t = d.timing().expect("timing");
        let per = d.input_len();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let x: Vec<i32> = (0..IMAGES * per)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed % 256) as i32 - 128
            })
            .collect();
        let replay = npu_sim::Replay::new(&d.compiled.program, &hw, &t.trace).expect("its trace");
        for (kernels, fast, vnni) in [("fast", true, true), ("avx2", true, false), ("scalar", false, false)] {
            let mut m = replay.machine().expect("loads");
            m.set_fast_kernels(fast);
            m.set_vnni_kernels(vnni);
            g.bench_function(format!("{name}/{kernels}"), |b| {
                b.iter(|| {
                    for i in 0..IMAGES {
                        let seg = d.compiled.input_segment(&d.model, &x[i * per..(i + 1) * per]);
                        assert!(replay.run(&mut m, &[seg]).expect("runs").is_none());
                    }
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
