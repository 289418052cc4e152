//! `npu inspect`, `npu eval`, `npu infer`, `npu zoo`: looking at models and running them on the executors.

#[allow(unused_imports)]
use super::*;

pub(crate) fn inspect(model: &Path, ctx: Ctx, out: &mut dyn Write) -> Result<()> {
    // A quantized model: the float graph it was made from, and how it was quantized.
    let (m, quantized) = if model.extension().is_some_and(|e| e == "npuq") {
        let q = load::quantized(model)?;
        let m = npu_model::Model {
            name: q.name.clone(),
            graph: q.graph.clone(),
            preprocess: q.preprocess.clone(),
            has_preprocess: true,
        };
        (m, Some(q))
    } else {
        (load::model(model)?, None)
    };
    let layers = m.layers();
    let input = &m.graph.values[m.graph.inputs[0]].shape;
    let p = m.preprocess.clone();
    let params: u64 = layers.iter().map(|l| l.params).sum();
    let macs: u64 = layers.iter().map(|l| l.macs).sum();
    let tfl = if load::is_tflite(model) { Some(load::tflite(model)?) } else { None };
    if ctx.json {
        let body = serde_json::json!({
            "model": m.name, "input_shape": input,
            "preprocess": {"scale": p.scale, "mean": p.mean, "std": p.std, "layout": p.layout.to_string(), "stored": m.has_preprocess},
            "layers": layers, "parameters": params, "macs": macs,
            "quantized": quantized.as_ref().map(|q| serde_json::json!({
                "scheme": q.scheme.name, "integer_layers": q.layers.len(), "integer_input": q.integer_input,
            })),
            "tflite": tfl.as_ref().map(|t| serde_json::json!({
                "input_shape": t.input_shape, "output_shape": t.output_shape, "operators": t.operators,
                "quantized": t.quantized.is_some(), "hybrid": t.hybrid,
            })),
        });
        write!(out, "{}", output::json_text("inspect", body)?)?;
        return Ok(());
    }
    writeln!(out, "model {} — input {} per sample, {} nodes", m.name, dims(input), layers.len())?;
    writeln!(out, "preprocessing: {p}{}", if m.has_preprocess { "" } else { " (default; not in the model)" })?;
    if let Some(q) = &quantized {
        writeln!(
            out,
            "quantized with {} ({} integer layers); input {}",
            q.scheme.name,
            q.layers.len(),
            if q.integer_input {
                "taken as integers (int8 samples are its input values)"
            } else {
                "quantized from floats"
            }
        )?;
    }
    writeln!(out, "\n{:<32} {:<22} {:<16} {:>10} {:>12}", "layer", "op", "output", "params", "MACs")?;
    for l in &layers {
        writeln!(
            out,
            "{:<32} {:<22} {:<16} {:>10} {:>12}",
            output::shorten(&l.name, 32),
            l.op,
            dims(&l.shape),
            l.params,
            l.macs
        )?;
    }
    writeln!(out, "\ntotal: {params} parameters ({} bytes as FP32), {macs} MACs per image", params * 4)?;
    if let Some(t) = tfl {
        writeln!(
            out,
            "\nTFLite: input {}, output {} (H×W×C per sample); {} operators:",
            dims(&t.input_shape),
            dims(&t.output_shape),
            t.operators.len()
        )?;
        for o in &t.operators {
            writeln!(out, "  {o}")?;
        }
        match &t.quantized {
            Some(q) => {
                let (i, o) = (&q.values[0].q, &q.values[q.output].q);
                writeln!(
                    out,
                    "int8 as shipped ({}): {} integer layers; input scale {} zero point {}, output scale {} zero point {}",
                    npu_tflite::AS_SHIPPED,
                    q.layers.len(),
                    i.scale,
                    i.zero_point,
                    o.scale,
                    o.zero_point
                )?;
            }
            None if !t.hybrid.is_empty() => {
                writeln!(
                    out,
                    "hybrid (dynamic-range quantized): int8 weights, float activations in {} layers, each input \
                     quantized per sample from its own range as TFLite's hybrid kernels do:",
                    t.hybrid.len()
                )?;
                for l in &t.hybrid {
                    writeln!(out, "  {l}")?;
                }
                writeln!(out, "quantize it with any --scheme for a fully integer model")?;
            }
            None => writeln!(out, "float32: quantize it with any --scheme")?,
        }
    }
    Ok(())
}

/// FP32 outputs of the graph a quantized model was made from, on its float inputs.
pub(crate) fn fp32_of_quantized(q: &npu_quant::QModel, ds: &npu_data::Dataset, n: usize) -> Result<Vec<f32>> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < n {
        let k = 500.min(n - start);
        let x = q.float_inputs(ds, start..start + k)?;
        out.extend(npu_model::fp32::run(&q.graph, &[&x], k)?.swap_remove(0));
        start += k;
    }
    Ok(out)
}

/// Checks labels against the model's outputs per sample (when they are class scores).
fn check_labels(ds: &npu_data::Dataset, outputs: usize, n: usize, model: &str) -> Result<()> {
    let per = outputs.checked_div(n).unwrap_or(0);
    if per > 1 {
        ds.check_classes(per, &format!("model `{model}`, with {per} outputs,"))?;
    }
    Ok(())
}

/// What `npu eval` measured: printed, or written as JSON (which `npu eval merge` reads
/// back to combine shards).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Evaluated {
    model: String,
    engine: String,
    data: String,
    images: usize,
    metric: npu_data::metrics::Metric,
    /// The metric's value (`null` in JSON when it is not finite).
    #[serde(deserialize_with = "npu_app::compare::null_as_nan")]
    value: f64,
    correct: Option<usize>,
    top1: Option<f64>,
    images_per_second: f64,
    /// Wall-clock seconds of the evaluation (of every shard, when merged).
    seconds: f64,
    /// What the value is made of; shards' tallies merge into the whole set's.
    tally: npu_data::metrics::Tally,
    /// SHA-256 of the model file (of the name, for a zoo model).
    digest: String,
    /// The shard of the samples evaluated (absent: all of them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    part: Option<npu_app::compare::Part>,
}

/// SHA-256 of a model file's bytes, or of its name when it is not a file (zoo:NAME).
fn model_digest(model: &Path) -> Result<String> {
    let bytes = if model.is_file() { load::read_file(model)? } else { model.display().to_string().into_bytes() };
    Ok(crate::sweep::sha256_hex(&bytes))
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn eval(
    model: &Path,
    engine: Option<EvalEngine>,
    args: &DataArgs,
    limit: Option<usize>,
    metric: Option<npu_data::metrics::Metric>,
    shard: Option<(usize, usize)>,
    ctx: Ctx,
    out: &mut dyn Write,
) -> Result<()> {
    use npu_data::metrics::{tally, Against, Metric};
    let quantized = load::is_quantized(model)?;
    if engine == Some(EvalEngine::Int) && !quantized {
        usage!("--engine int needs a quantized model (.npuq, int8 .tflite); `npu quantize` makes one");
    }
    let mut d =
        data::load(args.data.as_deref(), args.labels.as_deref(), data::Purpose::Test)?.limit(limit, "--limit")?;
    let metric = metric.unwrap_or_else(|| Metric::default_for(&d.ds));
    let part = shard.map(|(i, k)| npu_app::compare::Part::of(i, k, d.ds.len())).transpose()?;
    if let Some(p) = part {
        d.ds = d.ds.slice(p.start, p.end - p.start);
    }
    let (n, cli) = (d.ds.len(), args.pre.overrides());
    let start = std::time::Instant::now();
    // Outputs of the engine asked for, the FP32 reference when the metric needs it, and
    // the model's float inputs for an autoencoder's MSE.
    let (name, outputs, reference, inputs, how) = if quantized && engine != Some(EvalEngine::Fp32) {
        let ds = &d.ds;
        let mut q = load::quantized(model)?;
        q.preprocess = d.preprocess(&q.preprocess, &cli)?;
        let pb = progress_bar(n, ctx.quiet, "integer");
        let oq = q.values[q.output].q;
        let mut outputs = Vec::new();
        let mut done = 0;
        while done < n {
            let k = 500.min(n - done);
            outputs.extend(q.outputs_int(ds, done, k)?.iter().map(|v| oq.dequantize(*v)));
            done += k;
            pb.set_position(done as u64);
        }
        pb.finish_and_clear();
        let reference = if metric.needs_reference() { Some(fp32_of_quantized(&q, ds, n)?) } else { None };
        let inputs = (metric == Metric::Mse).then(|| q.float_inputs(ds, 0..n)).transpose()?;
        let how = if q.takes_as_integers(ds) {
            format!("{} integer reference, int8 samples as its input", q.scheme.name)
        } else {
            format!("{} integer reference", q.scheme.name)
        };
        (q.name, outputs, reference, inputs, how)
    } else {
        let mut m = if model.extension().is_some_and(|e| e == "npuq") {
            // The float graph a quantized model was made from.
            let q = load::quantized(model)?;
            npu_model::Model { name: q.name, graph: q.graph, preprocess: q.preprocess, has_preprocess: true }
        } else {
            load::model(model)?
        };
        m.preprocess = d.preprocess(&m.preprocess, &cli)?;
        if quantized {
            // An int8 TFLite's own int8 inputs: the float graph takes the values they stand for.
            let q = load::quantized(model)?;
            data::dequantize_for(&q, &mut d);
        }
        let ds = &d.ds;
        let pb = progress_bar(n, ctx.quiet, "FP32");
        let outputs = m.outputs(ds, n, &mut |done| pb.set_position(done as u64))?;
        pb.finish_and_clear();
        let inputs = (metric == Metric::Mse).then(|| m.inputs(ds, 0..n)).transpose()?;
        // The FP32 engine is its own reference.
        let reference = metric.needs_reference().then(|| outputs.clone());
        (m.name, outputs, reference, inputs, "FP32".to_string())
    };
    let ds = &d.ds;
    check_labels(ds, outputs.len(), n, &name)?;
    let t = tally(metric, &outputs, n, ds, Against { reference: reference.as_deref(), inputs: inputs.as_deref() })?;
    let correct = match ds.labels() {
        Some(l) => {
            let per = outputs.len() / n.max(1);
            Some(outputs.chunks(per.max(1)).zip(l).filter(|(o, c)| npu_model::argmax(o) == **c as usize).count())
        }
        None => None,
    };
    let seconds = start.elapsed().as_secs_f64();
    let e = Evaluated {
        model: name,
        engine: how,
        data: d.origin.clone(),
        images: n,
        metric,
        value: t.value(),
        correct,
        top1: correct.map(|c| c as f64 / n.max(1) as f64),
        images_per_second: n as f64 / seconds.max(1e-9),
        seconds,
        tally: t,
        digest: model_digest(model)?,
        part,
    };
    show_evaluated(&e, ctx, out)
}

/// `npu eval merge`: the JSON documents of an evaluation's shards combined into the
/// whole set's result, printed as `npu eval` prints it.
pub(crate) fn eval_merge(files: &[PathBuf], ctx: Ctx, out: &mut dyn Write) -> Result<()> {
    let mut parts: Vec<Evaluated> = Vec::new();
    for f in files {
        let text = load::read_text(f)?;
        let v: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{}: not a JSON document", f.display()))?;
        if !v["schema"].as_str().is_some_and(|s| s.starts_with("npu.eval/")) {
            bail!("{}: not the output of `npu eval --json` (schema {})", f.display(), v["schema"]);
        }
        let e: Evaluated = serde_json::from_value(v)
            .with_context(|| format!("{}: not the output of `npu eval --shard … --json`", f.display()))?;
        if e.part.is_none() {
            bail!("{}: an evaluation of all the samples, not of one shard (run it with --shard I/N)", f.display());
        }
        parts.push(e);
    }
    let first = parts.first().ok_or_else(|| anyhow::anyhow!("npu eval merge: no files"))?.clone();
    npu_app::compare::Part::check_cover(&parts.iter().filter_map(|e| e.part).collect::<Vec<_>>())?;
    let mut all = Evaluated { images: 0, correct: first.correct.map(|_| 0), seconds: 0.0, part: None, ..first.clone() };
    all.tally = npu_data::metrics::Tally::new(first.metric);
    parts.sort_by_key(|e| e.part.map_or(0, |p| p.shard));
    for e in &parts {
        let shard = e.part.map_or(0, |p| p.shard);
        for (what, a, b) in [
            ("model", &first.model, &e.model),
            ("model file", &first.digest, &e.digest),
            ("engine", &first.engine, &e.engine),
            ("data", &first.data, &e.data),
        ] {
            if a != b {
                bail!("shard {shard} has another {what} than the others: `{b}`, not `{a}`");
            }
        }
        all.tally.merge(&e.tally)?;
        all.images += e.images;
        all.correct = all.correct.zip(e.correct).map(|(a, b)| a + b);
        all.seconds += e.seconds;
    }
    all.value = all.tally.value();
    all.top1 = all.correct.map(|c| c as f64 / all.images.max(1) as f64);
    all.images_per_second = all.images as f64 / all.seconds.max(1e-9);
    show_evaluated(&all, ctx, out)
}

/// Prints an evaluation: a line, or the JSON document.
fn show_evaluated(e: &Evaluated, ctx: Ctx, out: &mut dyn Write) -> Result<()> {
    use npu_data::metrics::Metric;
    if ctx.json {
        write!(out, "{}", output::json_text("eval", serde_json::to_value(e)?)?)?;
        return Ok(());
    }
    let (name, origin, how, n, rate) = (&e.model, &e.data, &e.engine, e.images, e.images_per_second);
    let shard = e.part.map_or(String::new(), |p| {
        format!(" (shard {} of {}: samples {}..{} of {})", p.shard, p.shards, p.start, p.end, p.total)
    });
    if e.metric == Metric::Top1 {
        writeln!(
            out,
            "{name}: top-1 {:.2}% ({}/{n}){shard} on {origin}, {how}, {rate:.0} images/s",
            e.value * 100.0,
            e.correct.unwrap_or(0),
        )?;
    } else {
        let against = if e.metric.needs_reference() { " against FP32" } else { "" };
        writeln!(
            out,
            "{name}: {} {}{against}{shard} on {origin}, {how}, {rate:.0} samples/s",
            e.metric.heading(),
            e.metric.show(e.value)
        )?;
    }
    Ok(())
}

pub(crate) fn infer(
    model: &Path,
    input: &Path,
    cli: &npu_data::Overrides,
    output: &Path,
    engine: InferEngine,
    ctx: Ctx,
    out: &mut dyn Write,
) -> Result<()> {
    use npu_data::Elements;
    if engine != InferEngine::Fp32 && !load::is_quantized(model)? {
        usage!(
            "--engine {}: it needs a quantized model (.npuq, int8 .tflite); `npu quantize` makes one",
            engine.name()
        );
    }
    let d = data::load(Some(input), None, data::Purpose::Test)?;
    let (ds, n) = (&d.ds, d.ds.len());
    let (shape, values): (Vec<usize>, Elements) = if load::is_quantized(model)? {
        let mut q = load::quantized(model)?;
        q.preprocess = d.preprocess(&q.preprocess, cli)?;
        let oshape = q.values[q.output].shape.clone();
        match engine {
            InferEngine::Int => (oshape, Elements::I32(q.outputs_int(ds, 0, n)?)),
            InferEngine::FakeQuant => (oshape, Elements::F32(q.run_fake(&q.float_inputs(ds, 0..n)?, n)?)),
            InferEngine::Fp32 => {
                let x = q.float_inputs(ds, 0..n)?;
                (oshape, Elements::F32(npu_model::fp32::run(&q.graph, &[&x], n)?.swap_remove(0)))
            }
        }
    } else {
        let mut m = load::model(model)?;
        m.preprocess = d.preprocess(&m.preprocess, cli)?;
        (m.graph.values[m.graph.outputs[0]].shape.clone(), Elements::F32(m.logits(ds, 0, n)?))
    };
    let full: Vec<usize> = std::iter::once(n).chain(shape).collect();
    write_file(output, &npu_datafiles::npy::write(&full, &values))?;
    if ctx.json {
        let body = serde_json::json!({
            "model": model.display().to_string(), "engine": engine.name(), "samples": n, "output_shape": full,
            "output": output.display().to_string(),
        });
        write!(out, "{}", output::json_text("infer", body)?)?;
    } else {
        writeln!(
            out,
            "{n} sample{} through {} ({}) -> {} [{}]",
            if n == 1 { "" } else { "s" },
            model.display(),
            engine.name(),
            output.display(),
            dims(&full)
        )?;
    }
    Ok(())
}

pub(crate) fn zoo(ctx: Ctx, out: &mut dyn Write) -> Result<()> {
    let mut models = Vec::new();
    for (name, desc, trained) in npu_zoo::ARCHITECTURES
        .iter()
        .map(|(n, d)| (*n, *d, true))
        .chain(npu_zoo::BENCHMARKS.iter().map(|(n, d)| (*n, *d, false)))
    {
        let m = npu_zoo::trained(name)?;
        let layers = m.layers();
        let params: u64 = layers.iter().map(|l| l.params).sum();
        let macs: u64 = layers.iter().map(|l| l.macs).sum();
        let acc = if trained { npu_zoo::record(name)?.and_then(|r| r.test_accuracy) } else { None };
        models.push((format!("zoo:{name}"), desc, params, macs, acc, trained));
    }
    if ctx.json {
        let body = serde_json::json!({
            "models": models.iter().map(|(n, d, p, m, a, t)| serde_json::json!({
                "name": n, "architecture": d, "parameters": p, "macs": m, "top1": a, "trained": t,
            })).collect::<Vec<_>>(),
        });
        write!(out, "{}", output::json_text("zoo", body)?)?;
        return Ok(());
    }
    writeln!(out, "{:<20} {:>10} {:>12} {:>9}  architecture", "model", "params", "MACs/image", "top-1")?;
    for (name, desc, params, macs, acc, trained) in &models {
        let acc = match (acc, trained) {
            (Some(a), _) => format!("{:.2}%", a * 100.0),
            (None, false) => "random".into(),
            (None, true) => "—".into(),
        };
        writeln!(out, "{name:<20} {params:>10} {macs:>12} {acc:>9}  {desc}")?;
    }
    Ok(())
}
