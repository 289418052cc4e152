//! Pruning as a flow: masks, optional fine-tuning with the masks held, and the
//! accuracy-against-sparsity curve.

use npu_data::Dataset;
use npu_model::Model;
use npu_train::prune::{self, Prune, Scope, Structure};
use npu_train::{optim::Schedule, EpochStats, TrainConfig, Trainer};

use crate::{Progress, Recipe, Result, DEFAULT_CALIB, DEFAULT_SCHEME};

/// Fine-tuning after pruning: the pruned weights stay zero (the masks are re-applied
/// after every step).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FineTune {
    /// Epochs over the training set.
    pub epochs: usize,
    /// Peak learning rate (cosine schedule after 50 warm-up steps).
    pub lr: f32,
}

/// A model pruned and possibly fine-tuned, with the statistics of each epoch.
#[derive(Debug, Clone)]
pub struct Pruned {
    /// The model, its pruned weights exactly zero.
    pub model: Model,
    /// One entry per fine-tuning epoch.
    pub epochs: Vec<EpochStats>,
}

/// Prunes a copy of `model` as `p` asks; with `finetune`, trains it on its data set with
/// the masks held. `progress` sees one task per epoch (`epoch E/N`, one step per image).
pub fn pruned(
    model: &Model,
    p: &Prune,
    finetune: Option<(FineTune, &Dataset)>,
    progress: &dyn Progress,
) -> Result<Pruned> {
    let mut m = model.clone();
    let masks = prune::masks(&m.graph, p)?;
    prune::apply(&mut m.graph, &masks);
    let mut epochs = Vec::new();
    if let Some((ft, train)) = finetune.filter(|(f, _)| f.epochs > 0) {
        let config = TrainConfig {
            epochs: ft.epochs,
            lr: ft.lr,
            schedule: Schedule::Cosine { warmup_steps: 50 },
            ..Default::default()
        };
        let mut trainer = Trainer::new(m, config, train.len())?.with_fake_quant(prune::masking(masks.clone()));
        for e in 1..=ft.epochs {
            let label = format!("epoch {e}/{}", ft.epochs);
            progress.begin(&label, train.len());
            let stats = trainer.epoch(train, e, &mut |s| progress.advance(&label, s.done));
            progress.end(&label);
            tracing::info!(epoch = e, loss = stats.as_ref().map_or(f32::NAN, |s| s.loss), "fine-tuned");
            epochs.push(stats?);
        }
        m = trainer.model;
        prune::apply(&mut m.graph, &masks);
    }
    Ok(Pruned { model: m, epochs })
}

/// One point of an accuracy-against-sparsity curve.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CurvePoint {
    /// Requested sparsity.
    pub sparsity: f32,
    /// Zero weights / weights after pruning.
    pub achieved: f64,
    /// FP32 top-1, percent.
    pub fp32: f64,
    /// Top-1 of the model quantized with [`DEFAULT_SCHEME`] and [`DEFAULT_CALIB`]
    /// calibration images (integer reference executor), percent.
    pub int8: f64,
}

/// Fraction of weights that are zero.
pub fn achieved_sparsity(model: &Model) -> f64 {
    let (w, z) = prune::sparsity(&model.graph).iter().fold((0, 0), |(a, b), r| (a + r.weights, b + r.zeros));
    z as f64 / w.max(1) as f64
}

/// Accuracy of `model` pruned (`structure`, `scope`) to each of `sparsities` and
/// fine-tuned as `finetune` says: FP32 and quantized ([`DEFAULT_SCHEME`], calibrated on
/// the first [`DEFAULT_CALIB`] images of `train`, or all of a smaller set), on `test`. `on_point` sees each point
/// as it is measured.
#[allow(clippy::too_many_arguments)]
pub fn curve(
    model: &Model,
    structure: Structure,
    scope: Scope,
    finetune: Option<FineTune>,
    sparsities: &[f32],
    test: &Dataset,
    train: &Dataset,
    progress: &dyn Progress,
    on_point: &mut dyn FnMut(&CurvePoint),
) -> Result<Vec<CurvePoint>> {
    let recipe = Recipe::named(DEFAULT_SCHEME, DEFAULT_CALIB.min(train.len()))?;
    let mut points = Vec::with_capacity(sparsities.len());
    for &sparsity in sparsities {
        let p = Prune { sparsity: structure.fixed_sparsity().unwrap_or(sparsity), structure, scope };
        let m = pruned(model, &p, finetune.map(|f| (f, train)), progress)?.model;
        let (fp, _) = m.evaluate(test, test.len(), &mut |_| {})?;
        let q = recipe.quantize(&m, train)?;
        let (int, _) = q.evaluate_int(test, test.len(), &mut |_| {})?;
        let point =
            CurvePoint { sparsity, achieved: achieved_sparsity(&m), fp32: fp.top1() * 100.0, int8: int.top1() * 100.0 };
        on_point(&point);
        points.push(point);
    }
    Ok(points)
}
