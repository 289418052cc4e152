//! The committed models are the ones the README and docs describe: each trained zoo
//! model, retrained `.npuq` file and searched recipe is loaded and evaluated on the
//! 10,000 embedded test images, and its top-1 must be the published figure to the
//! hundredth of a point. The quantized figures were measured on the simulator, which
//! agrees with the integer reference executor bit for bit (the differential suite), so
//! the executor reproduces them exactly.

use npu_zoo::fashion_mnist_test;

/// Top-1 in percent, rounded to two decimals as the docs print it.
fn percent(top1: f64) -> String {
    format!("{:.2}", top1 * 100.0)
}

#[test]
fn zoo_models_reach_the_readme_top1() {
    let test = fashion_mnist_test().expect("embedded");
    // README, "Zoo" table.
    for (name, published) in [("cnn", "93.43"), ("mobilenet", "92.42"), ("resnet", "93.00")] {
        let m = npu_zoo::trained(name).expect("zoo");
        let (acc, _) = m.evaluate(&test, test.len(), &mut |_| {}).expect("evaluates");
        assert_eq!(percent(acc.top1()), published, "zoo:{name}");
    }
}

#[test]
fn retrained_models_and_recipes_reach_their_published_top1() {
    let test = fashion_mnist_test().expect("embedded");
    // README's compare table (mobilenet rows) and docs/retraining.md (cnn from scratch).
    let published = [
        ("mobilenet", "qat-w4a8-per-channel", "92.35"),
        ("mobilenet", "qat-binary-weights", "88.26"),
        ("mobilenet", "qat-binary-pointwise", "90.56"),
        ("mobilenet", "pruned50-finetuned", "90.91"),
        ("cnn", "scratch-binary-weights", "92.11"),
    ];
    for (arch, key, want) in published {
        let (_, _, q) = npu_zoo::retrained(arch)
            .expect("decodes")
            .into_iter()
            .find(|(k, _, _)| k == key)
            .unwrap_or_else(|| panic!("zoo:{arch} has no retrained model `{key}`"));
        let (acc, _) = q.evaluate_int(&test, test.len(), &mut |_| {}).expect("evaluates");
        assert_eq!(percent(acc.top1()), want, "zoo:{arch} {key}");
    }
    assert_eq!(npu_zoo::RETRAINED.len(), published.len(), "every committed .npuq is checked");
    // docs/retraining.md: the searched recipe, calibrated as `npu compare` does (min/max
    // on the first 500 training images).
    let (_, _, scheme) = npu_zoo::recipes("cnn").expect("parses").into_iter().next().expect("a recipe");
    let recipe = npu_app::Recipe::from_scheme("mixed", "mixed", scheme, npu_app::DEFAULT_CALIB);
    let model = npu_zoo::trained("cnn").expect("zoo");
    let train = npu_zoo::fashion_mnist_train_subset().expect("embedded");
    let q = recipe.quantize(&model, &train).expect("quantizes");
    let (acc, _) = q.evaluate_int(&test, test.len(), &mut |_| {}).expect("evaluates");
    assert_eq!(percent(acc.top1()), "93.19", "zoo:cnn mixed-precision recipe");
}
