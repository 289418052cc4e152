//! Toolchain speed: the FP32 reference executor over the 10,000 Fashion-MNIST test
//! images (the ONNX fixtures), and training throughput of the zoo architectures, on all
//! cores. Run with `cargo bench -p npu-train`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn bench(c: &mut Criterion) {
    let ds = npu_zoo::fashion_mnist_test().expect("embedded test set");
    let models: [(&str, &[u8]); 2] = [
        ("plain_cnn", include_bytes!("../../../tests/fixtures/onnx/plain_cnn.onnx")),
        ("mobile_res", include_bytes!("../../../tests/fixtures/onnx/mobile_res.onnx")),
    ];
    let mut g = c.benchmark_group("fp32_eval_10k");
    g.throughput(Throughput::Elements(ds.len() as u64));
    g.sample_size(10);
    for (name, bytes) in models {
        let m = npu_onnx::import(bytes, name).expect("imports");
        g.bench_function(name, |b| {
            b.iter(|| m.evaluate(&ds, ds.len(), &mut |_| {}).expect("runs").0.correct);
        });
    }
    g.finish();
}

criterion_group!(benches, bench);

/// One training step (forward, loss, backward, AdamW update) of the MobileNetV2-style
/// zoo architecture on a batch of 64 images; throughput in images per second.
fn train_step(c: &mut Criterion) {
    use npu_train::{TrainConfig, Trainer};
    let ds = npu_zoo::fashion_mnist_train_subset().expect("embedded").take(64 * 32);
    let mut g = c.benchmark_group("train_epoch_2048_images");
    g.throughput(Throughput::Elements(ds.len() as u64));
    g.sample_size(10);
    for arch in ["cnn", "mobilenet", "resnet"] {
        let model = npu_zoo::build(arch, 1).expect("builds");
        let config = TrainConfig { epochs: 1000, batch: 64, ..TrainConfig::default() };
        let mut t = Trainer::new(model, config, ds.len()).expect("trainer");
        g.bench_function(arch, |b| b.iter(|| t.epoch(&ds, 1, &mut |_| {}).expect("epoch").loss));
    }
    g.finish();
}

criterion_group!(training, train_step);
criterion_main!(benches, training);
