//! `npu inspect`, `npu eval`, `npu infer`, `npu zoo`: looking at models and running them on the executors.

#[allow(unused_imports)]
use super::*;

pub(crate) fn inspect(model: &Path, ctx: Ctx, out: &mut dyn Write) -> Result<()> {
    let m = load::model(model)?;
    let layers = m.layers();
    let input = &m.graph.values[m.graph.inputs[0]].shape;
    let p = m.preprocess;
    let params: u64 = layers.iter().map(|l| l.params).sum();
    let macs: u64 = layers.iter().map(|l| l.macs).sum();
    let tfl = if load::is_tflite(model) { Some(load::tflite(model)?) } else { None };
    if ctx.json {
        let body = serde_json::json!({
            "model": m.name, "input_shape": input,
            "preprocess": {"scale": p.scale, "mean": p.mean, "std": p.std, "layout": p.layout.to_string(), "stored": m.has_preprocess},
            "layers": layers, "parameters": params, "macs": macs,
            "tflite": tfl.as_ref().map(|t| serde_json::json!({
                "input_shape": t.input_shape, "output_shape": t.output_shape, "operators": t.operators,
                "quantized": t.quantized.is_some(),
            })),
        });
        write!(out, "{}", output::json_text("inspect", body)?)?;
        return Ok(());
    }
    writeln!(out, "model {} — input {} per sample, {} nodes", m.name, dims(input), layers.len())?;
    writeln!(
        out,
        "preprocessing: x = (pixel · {:.6} − {}) / {}, {}{}",
        p.scale,
        p.mean,
        p.std,
        p.layout,
        if m.has_preprocess { "" } else { " (default; not in the model)" }
    )?;
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
            None => writeln!(out, "float32: quantize it with any --scheme")?,
        }
    }
    Ok(())
}

pub(crate) fn eval(
    model: &Path,
    engine: Option<EvalEngine>,
    args: &DataArgs,
    ctx: Ctx,
    out: &mut dyn Write,
) -> Result<()> {
    let quantized = load::is_quantized(model)?;
    if engine == Some(EvalEngine::Int) && !quantized {
        usage!("--engine int needs a quantized model (.npuq, int8 .tflite); `npu quantize` makes one");
    }
    let (ds, origin) = load::dataset(args.data.as_deref())?;
    let n = take_limit(args.limit, ds.len(), "--limit", &origin)?;
    let start = std::time::Instant::now();
    let (name, acc, how) = if quantized && engine != Some(EvalEngine::Fp32) {
        if let Some(l) = args.layout {
            usage!("--layout {}: a quantized model keeps the layout it was quantized with", value_name(l));
        }
        let mut q = load::quantized(model)?;
        let p = &mut q.preprocess;
        p.mean = args.mean.unwrap_or(p.mean);
        p.std = args.std.unwrap_or(p.std);
        p.scale = args.scale.unwrap_or(p.scale);
        let pb = progress_bar(n, ctx.quiet, "integer");
        let (acc, _) = q.evaluate_int(&ds, n, &mut |done| pb.set_position(done as u64))?;
        pb.finish_and_clear();
        (q.name, acc, format!("{} integer reference", q.scheme.name))
    } else {
        let mut m = if model.extension().is_some_and(|e| e == "npuq") {
            // The float graph a quantized model was made from.
            let q = load::quantized(model)?;
            npu_model::Model { name: q.name, graph: q.graph, preprocess: q.preprocess, has_preprocess: true }
        } else {
            load::model(model)?
        };
        if let Some(v) = args.mean {
            m.preprocess.mean = v;
        }
        if let Some(v) = args.std {
            m.preprocess.std = v;
        }
        if let Some(v) = args.scale {
            m.preprocess.scale = v;
        }
        if let Some(l) = args.layout {
            m.preprocess.layout = match l {
                LayoutArg::Nhwc => npu_data::Layout::Nhwc,
                LayoutArg::Nchw => npu_data::Layout::Nchw,
            };
        }
        let pb = progress_bar(n, ctx.quiet, "FP32");
        let (acc, _) = m.evaluate(&ds, n, &mut |done| pb.set_position(done as u64))?;
        pb.finish_and_clear();
        (m.name, acc, "FP32".to_string())
    };
    let rate = acc.total as f64 / start.elapsed().as_secs_f64().max(1e-9);
    if ctx.json {
        let body = serde_json::json!({
            "model": name, "engine": how, "data": origin, "images": acc.total, "correct": acc.correct,
            "top1": acc.top1(), "images_per_second": rate,
        });
        write!(out, "{}", output::json_text("eval", body)?)?;
    } else {
        writeln!(
            out,
            "{name}: top-1 {:.2}% ({}/{}) on {origin}, {how}, {rate:.0} images/s",
            acc.top1() * 100.0,
            acc.correct,
            acc.total,
        )?;
    }
    Ok(())
}

pub(crate) fn infer(
    model: &Path,
    input: &Path,
    output: &Path,
    engine: InferEngine,
    ctx: Ctx,
    out: &mut dyn Write,
) -> Result<()> {
    use npu_data::npy;
    if engine != InferEngine::Fp32 && !load::is_quantized(model)? {
        usage!(
            "--engine {}: it needs a quantized model (.npuq, int8 .tflite); `npu quantize` makes one",
            engine.name()
        );
    }
    let bytes = std::fs::read(input).with_context(|| format!("cannot read {}", input.display()))?;
    let x = npy::parse(&bytes, &input.display().to_string())?;
    let n =
        *x.shape.first().ok_or_else(|| anyhow::anyhow!("{}: a 0-dimensional array has no batch", input.display()))?;
    let data = x.to_f32();
    let is_q = load::is_quantized(model)?;
    let (shape, values, dtype): (Vec<usize>, Vec<f64>, npy::Dtype) = if is_q {
        let q = load::quantized(model)?;
        let per: usize = q.values[0].shape.iter().product();
        if data.len() != n * per {
            bail!(
                "{}: shape {} does not hold {n} samples of {} (the model's input)",
                input.display(),
                dims(&x.shape),
                dims(&q.values[0].shape)
            );
        }
        let oshape = q.values[q.output].shape.clone();
        match engine {
            InferEngine::Int => {
                let r = q.run_int(&q.quantize_input(&data), n)?;
                (oshape, r.iter().map(|v| f64::from(*v)).collect(), npy::Dtype::I32)
            }
            InferEngine::FakeQuant => {
                (oshape, q.run_fake(&data, n)?.iter().map(|v| f64::from(*v)).collect(), npy::Dtype::F32)
            }
            InferEngine::Fp32 => {
                let r = npu_model::fp32::run(&q.graph, &[&data], n)?.swap_remove(0);
                (oshape, r.iter().map(|v| f64::from(*v)).collect(), npy::Dtype::F32)
            }
        }
    } else {
        let m = load::model(model)?;
        let per = m.input_len();
        if data.len() != n * per {
            bail!(
                "{}: shape {} does not hold {n} samples of {} (the model's input)",
                input.display(),
                dims(&x.shape),
                dims(&m.graph.values[m.graph.inputs[0]].shape)
            );
        }
        let r = npu_model::fp32::run(&m.graph, &[&data], n)?.swap_remove(0);
        (m.graph.values[m.graph.outputs[0]].shape.clone(), r.iter().map(|v| f64::from(*v)).collect(), npy::Dtype::F32)
    };
    let full: Vec<usize> = std::iter::once(n).chain(shape).collect();
    write_file(output, &npy::write(&full, dtype, &values))?;
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
