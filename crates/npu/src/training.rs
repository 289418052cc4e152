//! `npu train`, `npu qat`, `npu mixed`: training, quantization-aware training and the mixed-precision search.

#[allow(unused_imports)]
use super::*;

#[allow(clippy::too_many_arguments)]
pub(crate) fn train(
    spec: &str,
    source: &data::Source,
    config: npu_train::TrainConfig,
    limit: Option<usize>,
    quantized: Option<npu_quant::Scheme>,
    output: &Path,
    ctx: Ctx,
    out: &mut dyn Write,
) -> Result<()> {
    let train = source.train()?.limit(limit, "--limit")?;
    let test = source.test()?;
    let is_zoo = npu_zoo::ARCHITECTURES.iter().chain(npu_zoo::FEATURE_ARCHITECTURES).any(|(n, _)| *n == spec);
    let (mut model, arch) = if is_zoo {
        let layout = source.pre.layout.or(train.overrides.layout).or(train.ds.layout);
        (zoo_for(spec, config.seed, &train.ds, layout)?, spec.to_string())
    } else {
        output::not_the_input(output, Path::new(spec))?;
        let m = load::model(Path::new(spec))?;
        let name = m.name.clone();
        (m, name)
    };
    source.prepare(&mut model, &train)?;
    let (train_set, origin) = (train.ds, train.origin);
    // Without test data, the accuracy after each epoch is measured on the training data.
    let (test_set, test_what) = match &test {
        Some(t) => (&t.ds, "test"),
        None => (&train_set, "train-set"),
    };
    let command = std::iter::once("npu".to_string()).chain(std::env::args().skip(1)).collect::<Vec<_>>().join(" ");
    let optimizer = match config.optimizer {
        npu_train::optim::OptimizerKind::AdamW => "AdamW",
        npu_train::optim::OptimizerKind::SgdMomentum => "SGD with momentum",
    };
    let schedule = match config.schedule {
        npu_train::optim::Schedule::Cosine { warmup_steps } => {
            format!("cosine schedule after {warmup_steps} warm-up steps")
        }
        npu_train::optim::Schedule::OneCycle => "one-cycle schedule".into(),
        npu_train::optim::Schedule::Constant => "constant rate".into(),
    };
    let description = format!(
        "{arch} on {} images of {origin} for {} epoch{} (seed {}, batch {}, {optimizer}, lr {}, {schedule})",
        train_set.len(),
        config.epochs,
        if config.epochs == 1 { "" } else { "s" },
        config.seed,
        config.batch,
        config.lr,
    );
    if !ctx.json {
        writeln!(out, "training {description}")?;
    }
    let mut trainer = npu_train::Trainer::new(model, config.clone(), train_set.len())?;
    if let Some(s) = &quantized {
        if !ctx.json {
            writeln!(out, "with quantized operators: weights on the `{}` grid in every forward pass", s.name)?;
        }
        trainer = trainer.with_fake_quant(npu_train::qat::weight_fake_quant(s));
    }
    // What is evaluated and saved: the weights as the forward pass used them.
    let deployed = |t: &npu_train::Trainer| match &quantized {
        Some(s) => npu_model::Model { graph: npu_train::qat::quantized_weights(&t.model.graph, s), ..t.model.clone() },
        None => t.model.clone(),
    };
    let mut epochs = Vec::new();
    for epoch in 1..=config.epochs {
        let stats = epoch_with_progress(&mut trainer, &train_set, epoch, config.epochs, ctx.quiet)?;
        if !stats.loss.is_finite() {
            bail!("epoch {epoch}: the loss is {} — training diverged; try a smaller --lr", stats.loss);
        }
        let model_now = deployed(&trainer);
        let (acc, _) = model_now.evaluate(test_set, test_set.len(), &mut |_| {})?;
        let record = npu_model::modelfile::TrainRecord {
            arch: arch.clone(),
            config: description.clone(),
            epochs: epoch,
            test_accuracy: Some(acc.top1()),
            command: command.clone(),
        };
        write_file(output, &npu_model::modelfile::encode(&model_now, Some(&record))?)?;
        let line = format!(
            "epoch {epoch}: loss {:.4}, train acc {:.2}%, {test_what} top-1 {:.2}%, {:.0} images/s",
            stats.loss,
            stats.accuracy * 100.0,
            acc.top1() * 100.0,
            stats.images_per_second
        );
        if ctx.json {
            epochs.push(serde_json::json!({
                "epoch": epoch, "loss": stats.loss, "train_accuracy": stats.accuracy, "test_top1": acc.top1(),
                "images_per_second": stats.images_per_second,
            }));
        } else {
            writeln!(out, "{line}")?;
        }
    }
    if ctx.json {
        let body = serde_json::json!({
            "model": arch, "training": description, "epochs": epochs, "output": output.display().to_string(),
        });
        write!(out, "{}", output::json_text("train", body)?)?;
    } else {
        writeln!(out, "wrote {}", output.display())?;
    }
    Ok(())
}

/// One training epoch with a progress bar (loss and accuracy so far).
pub(crate) fn epoch_with_progress(
    trainer: &mut npu_train::Trainer,
    set: &npu_data::Dataset,
    epoch: usize,
    epochs: usize,
    quiet: bool,
) -> Result<npu_train::EpochStats> {
    let pb = progress_bar(set.len(), quiet, &format!("epoch {epoch}/{epochs}"));
    let stats = trainer.epoch(set, epoch, &mut |p| {
        pb.set_position(p.done as u64);
        pb.set_message(format!("epoch {epoch}/{epochs} loss {:.4} acc {:.2}%", p.loss, p.accuracy * 100.0));
    })?;
    pb.finish_and_clear();
    Ok(stats)
}

/// How QAT treats activation ranges and scales.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QatRanges {
    /// Calibrated once, then fixed.
    Fixed,
    /// Recalibrated after every epoch.
    Recalibrated,
    /// Learned with the weights (LSQ/LSQ+), weight scales too.
    Learned,
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn qat(
    spec: &str,
    scheme: npu_quant::Scheme,
    source: &data::Source,
    config: npu_train::TrainConfig,
    (calib, ranges): (usize, QatRanges),
    limit: Option<usize>,
    output: &Path,
    ctx: Ctx,
    out: &mut dyn Write,
) -> Result<()> {
    use npu_train::qat;
    let mut m = load::model(Path::new(spec))?;
    let train = source.train()?;
    take_limit(Some(calib), train.ds.len(), "--calib", &train.origin)?;
    let train = train.limit(limit, "--limit")?;
    let test = source.test()?;
    source.prepare(&mut m, &train)?;
    let (train_set, origin) = (train.ds, train.origin);
    let (test_set, test_what) = match &test {
        Some(t) => (&t.ds, "test"),
        None => (&train_set, "train-set"),
    };
    let mut prepared = qat::prepare(&m, &scheme, &train_set, calib)?;
    let before = qat::finish(&prepared, &prepared.model, &scheme)?;
    let (acc0, _) = before.evaluate_int(test_set, test_set.len(), &mut |_| {})?;
    if !ctx.json {
        writeln!(
            out,
            "QAT{} of {} under {} on {} images of {origin} for {} epoch{} (batch {}, lr {}); before: {test_what} top-1 {:.2}% (integer)",
            if ranges == QatRanges::Learned { " with learned step sizes" } else { "" },
            m.name,
            scheme.name,
            train_set.len(),
            config.epochs,
            if config.epochs == 1 { "" } else { "s" },
            config.batch,
            config.lr,
            acc0.top1() * 100.0
        )?;
    }
    let mut trainer = npu_train::Trainer::new(prepared.model.clone(), config.clone(), train_set.len())?
        .with_fake_quant(qat::fake_quant(&prepared, &scheme));
    if ranges == QatRanges::Learned {
        trainer = trainer.with_lsq(qat::Lsq::new(&prepared, &scheme)?);
    }
    let mut epochs = Vec::new();
    for epoch in 1..=config.epochs {
        let stats = epoch_with_progress(&mut trainer, &train_set, epoch, config.epochs, ctx.quiet)?;
        if !stats.loss.is_finite() {
            bail!("epoch {epoch}: the loss is {} — training diverged; try a smaller --lr", stats.loss);
        }
        if ranges == QatRanges::Recalibrated {
            qat::recalibrate(&mut prepared, &trainer.model, &scheme, &train_set, calib)?;
            trainer.set_fake_quant(qat::fake_quant(&prepared, &scheme));
        }
        let q = match trainer.lsq() {
            Some(lsq) => lsq.finish(&trainer.model)?,
            None => qat::finish(&prepared, &trainer.model, &scheme)?,
        };
        let (acc, _) = q.evaluate_int(test_set, test_set.len(), &mut |_| {})?;
        write_file(output, &npu_quant::npuq::encode(&q)?)?;
        if ctx.json {
            epochs.push(serde_json::json!({
                "epoch": epoch, "loss": stats.loss, "train_accuracy": stats.accuracy, "test_top1": acc.top1(),
                "images_per_second": stats.images_per_second,
            }));
        } else {
            writeln!(
                out,
                "epoch {epoch}: loss {:.4}, train acc {:.2}% (fake-quant), {test_what} top-1 {:.2}% (integer executor), {:.0} images/s -> {}",
                stats.loss,
                stats.accuracy * 100.0,
                acc.top1() * 100.0,
                stats.images_per_second,
                output.display()
            )?;
        }
    }
    if ctx.json {
        let body = serde_json::json!({
            "model": m.name, "scheme": scheme.name, "images": train_set.len(), "before_top1": acc0.top1(),
            "learned_step_sizes": ranges == QatRanges::Learned,
            "epochs": epochs, "output": output.display().to_string(),
        });
        write!(out, "{}", output::json_text("qat", body)?)?;
    }
    Ok(())
}

pub(crate) fn bits_number(b: npu_quant::WeightBits) -> u32 {
    match b {
        npu_quant::WeightBits::B8 => 8,
        npu_quant::WeightBits::B4 => 4,
        npu_quant::WeightBits::Ternary => 2,
        npu_quant::WeightBits::Binary => 1,
    }
}

pub(crate) fn mixed_cmd(
    o: &mixed::Options,
    limit: Option<usize>,
    output: &Path,
    ctx: Ctx,
    out: &mut dyn Write,
) -> Result<()> {
    let found = mixed::search(o, &mut |m| {
        if !ctx.quiet {
            eprintln!("{m}");
        }
    })?;
    let text = ron::ser::to_string_pretty(&found.recipe, ron::ser::PrettyConfig::default())?;
    write_file(
        output,
        format!("// npu mixed {} --hw {} --max-drop {}\n{text}\n", o.model, o.hw, o.max_drop).as_bytes(),
    )?;
    // Its compare row, on the test set, beside all-INT8.
    let label =
        format!("mixed precision ({})", output.file_name().map_or(String::new(), |f| f.to_string_lossy().into()));
    let key = output.file_stem().map_or("mixed".into(), |s| s.to_string_lossy().into_owned());
    let copts = compare::Options {
        model: o.model.clone(),
        source: compare::DataSource {
            data: o.source.test_data.clone().or_else(|| o.source.data.clone()),
            labels: if o.source.test_data.is_some() { None } else { o.source.labels.clone() },
            calib_data: o.source.data.clone(),
            calib_labels: o.source.labels.clone(),
            pre: o.source.pre.clone(),
            ..Default::default()
        },
        hw: o.hw.clone(),
        schemes: vec!["fp32".into(), DEFAULT_SCHEME.into()],
        limit,
        jobs: threads(None),
        calib: o.calib,
        quiet: ctx.quiet,
        extra: vec![compare::Extra::Recipe { key, label, scheme: found.recipe.clone() }],
        shard: None,
    };
    let cmp = compare::compare(&copts)?;
    let front = mixed::pareto(&found.explored, o.energy);
    if ctx.json {
        let point = |p: &mixed::Point| serde_json::json!({"bits": mixed::describe(p), "accuracy": p.accuracy, "cycles": p.cycles, "energy_uj": p.energy_uj});
        let body = serde_json::json!({
            "model": o.model, "hw": o.hw, "max_drop": o.max_drop, "objective": if o.energy { "energy" } else { "cycles" },
            "sensitivity": found.sensitivity.iter().map(|(l, b, d, s)| serde_json::json!({
                "layer": l, "bits": bits_number(*b), "drop_points": d, "saved": s,
            })).collect::<Vec<_>>(),
            "explored": found.explored.len(), "pareto": front.iter().map(point).collect::<Vec<_>>(),
            "best": point(&found.best), "baseline": point(&found.baseline), "output": output.display().to_string(),
            "comparison": cmp,
        });
        write!(out, "{}", output::json_text("mixed", body)?)?;
        return Ok(());
    }
    let cost = if o.energy { "µJ/frame" } else { "cycles" };
    writeln!(out, "sensitivity on {} validation images (points lost, {cost} saved, one layer alone):", o.val_images)?;
    for (layer, bits, drop, saved) in &found.sensitivity {
        writeln!(
            out,
            "  {:<28} {:>2} bits  {drop:+6.2}  {saved:>12.1}",
            output::shorten(layer, 28),
            bits_number(*bits)
        )?;
    }
    writeln!(
        out,
        "Pareto front of the {} assignments evaluated (bits per weighted layer, in order):",
        found.explored.len()
    )?;
    for p in &front {
        writeln!(
            out,
            "  {:.2}%  {:>10} cycles  {:>8.2} µJ  [{}]",
            p.accuracy,
            p.cycles,
            p.energy_uj,
            mixed::describe(p)
        )?;
    }
    writeln!(
        out,
        "best within {:.2} points: [{}] {:.2}% vs {:.2}% all-INT8, {} vs {} cycles, {:.2} vs {:.2} µJ",
        o.max_drop,
        mixed::describe(&found.best),
        found.best.accuracy,
        found.baseline.accuracy,
        found.best.cycles,
        found.baseline.cycles,
        found.best.energy_uj,
        found.baseline.energy_uj
    )?;
    writeln!(out, "wrote {}\n", output.display())?;
    write!(out, "{}", cmp.table())?;
    Ok(())
}

/// A zoo architecture for the training data: its input shape and class count.
fn zoo_for(
    arch: &str,
    seed: u64,
    ds: &npu_data::Dataset,
    layout: Option<npu_data::Layout>,
) -> Result<npu_model::Model> {
    let classes = match (ds.classes, ds.labels()) {
        (Some(c), _) => c,
        (None, Some(l)) => l.iter().max().map_or(1, |m| *m as usize + 1),
        (None, None) => bail!("{}: training needs class labels", ds.origin),
    };
    let (input, layout) = chw_of(&ds.shape, layout)?;
    let mut m = npu_zoo::build_for(arch, seed, &input, classes)?;
    m.preprocess.layout = layout;
    Ok(m)
}

/// The channel-first input shape of samples stored as `shape` in `layout` (which a
/// three-dimensional sample must have: it is not guessed).
fn chw_of(shape: &[usize], layout: Option<npu_data::Layout>) -> Result<(Vec<usize>, npu_data::Layout)> {
    use npu_data::Layout;
    Ok(match (shape, layout) {
        ([h, w], l) => (vec![1, *h, *w], l.unwrap_or(Layout::Nchw)),
        ([c, h, w], Some(Layout::Nchw)) => (vec![*c, *h, *w], Layout::Nchw),
        ([h, w, c], Some(Layout::Nhwc)) => (vec![*c, *h, *w], Layout::Nhwc),
        ([_, _, _], None) => {
            bail!("samples of {} could be channels first or last: pass --layout nchw or --layout nhwc", dims(shape))
        }
        (s, l) => (s.to_vec(), l.unwrap_or(Layout::Nchw)),
    })
}
