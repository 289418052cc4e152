//! FP32 reference executor speed: the 10,000 Fashion-MNIST test images through small
//! CNNs (the ONNX fixtures), on all cores. Run with `cargo bench -p npu-toolchain`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use npu_toolchain::{data, onnx};

fn bench(c: &mut Criterion) {
    let ds = data::fashion_mnist_test().expect("embedded test set");
    let models: [(&str, &[u8]); 2] = [
        ("plain_cnn", include_bytes!("../../tests/fixtures/onnx/plain_cnn.onnx")),
        ("mobile_res", include_bytes!("../../tests/fixtures/onnx/mobile_res.onnx")),
    ];
    let mut g = c.benchmark_group("fp32_eval_10k");
    g.throughput(Throughput::Elements(ds.len() as u64));
    g.sample_size(10);
    for (name, bytes) in models {
        let m = onnx::import(bytes, name).expect("imports");
        g.bench_function(name, |b| {
            b.iter(|| m.evaluate(&ds, ds.len(), &mut |_| {}).expect("runs").0.correct);
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
