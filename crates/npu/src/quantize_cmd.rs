//! `npu quantize`, and the quantized model every model command starts from.

#[allow(unused_imports)]
use super::*;

#[allow(clippy::too_many_arguments)]
pub(crate) fn quantize(
    model: &Path,
    s: npu_quant::Scheme,
    calib: Option<Calib>,
    method: CalibMethodArg,
    fixes: npu_quant::Fixes,
    (source, cli): (&CalibArgs, &npu_data::Overrides),
    output: &Path,
    ctx: Ctx,
    out: &mut dyn Write,
) -> Result<()> {
    use npu_quant::{calib::Method, RangeSource};
    let mut m = load::model(model)?;
    let names: Vec<&str> = m.graph.nodes.iter().map(|n| n.name.as_str()).collect();
    if let Some((bad, _)) = s.overrides.iter().find(|(n, _)| !names.contains(&n.as_str())) {
        bail!("no layer `{bad}` in {} (see `npu inspect`)", m.name);
    }
    // Data-free ranges read no data; calibration reads --calib-data (or the embedded set),
    // which must fit the model.
    let d = match calib {
        Some(Calib::None) => None,
        _ => Some(data::load(source.calib_data.as_deref(), source.calib_labels.as_deref(), data::Purpose::Train)?),
    };
    m.preprocess = match &d {
        Some(d) => d.preprocess(&m.preprocess, cli)?,
        None => {
            let p = cli.apply(&m.preprocess);
            p.validate()?;
            p
        }
    };
    if let Some(d) = &d {
        m.check_io()?;
        d.ds.fit(m.input_shape(), &m.preprocess).with_context(|| {
            format!("the calibration data do not fit model `{}`; give data that do with --calib-data", m.name)
        })?;
    }
    let empty = npu_data::Dataset {
        origin: "no data".into(),
        shape: m.input_shape().to_vec(),
        elements: npu_data::Elements::F32(Vec::new()),
        dtype: "float32".into(),
        targets: npu_data::Targets::None,
        classes: None,
        class_names: Vec::new(),
        layout: None,
    };
    let (ds, origin) = match &d {
        Some(d) => (&d.ds, d.origin.clone()),
        None => (&empty, String::new()),
    };
    // Without --calib: 500 samples, or every sample of a smaller set.
    let calib = match calib {
        Some(Calib::Images(n)) => Calib::Images(take_limit(Some(n), ds.len(), "--calib", &origin)?),
        Some(Calib::None) => Calib::None,
        None if ds.is_empty() => usage!("--calib-data: {origin} holds no samples"),
        None => Calib::Images(DEFAULT_CALIB.min(ds.len())),
    };
    let source = match calib {
        Calib::None => RangeSource::DataFree,
        Calib::Images(images) => {
            let method = match method {
                CalibMethodArg::Percentile => Method::Percentile(99.99),
                CalibMethodArg::Mse => Method::Mse,
                CalibMethodArg::Kl => Method::Kl,
                CalibMethodArg::Minmax => Method::MinMax,
            };
            RangeSource::Calibration { images, method }
        }
    };
    let (q, synthesized) = npu_app::quantize(&m, &s, ds, source, fixes)?;
    // The per-layer report compares FP32 and integer layer outputs on calibration samples
    // (none without data).
    let report = if ds.is_empty() {
        npu_quant::report::layers_without_data(&q)
    } else {
        npu_quant::report::layers(&q, ds, 200)?
    };
    let provenance = npu_quant::provenance(&m, &q, source, &fixes, synthesized.is_some());
    let report = npu_quant::report::with_provenance(report, &provenance);
    let mut how = match calib {
        Calib::None => match &synthesized {
            Some(syn) => format!("data-free: BatchNorm statistics where there are any, else {}", syn.describe()),
            None => "data-free: BatchNorm statistics".to_string(),
        },
        Calib::Images(n) => format!("{n} calibration samples of {origin}, {}", method.name()),
    };
    if fixes.cle {
        how.push_str(", cross-layer equalization");
    }
    if fixes.adaround.is_some() {
        how.push_str(", AdaRound");
    }
    match fixes.bias_correction {
        Some(npu_quant::BiasCorrection::Analytical) => how.push_str(", analytical bias correction"),
        Some(npu_quant::BiasCorrection::Empirical) => how.push_str(", empirical bias correction"),
        None => {}
    }
    // The file first: whatever is printed after it describes a file that exists.
    write_file(output, &npu_quant::npuq::encode(&q)?)?;
    if ctx.json {
        let body = serde_json::json!({
            "model": m.name, "scheme": s.name, "method": how, "layers": report,
            "output": output.display().to_string(),
        });
        write!(out, "{}", output::json_text("quantize", body)?)?;
        return Ok(());
    }
    writeln!(out, "{} quantized with {} ({how})", m.name, s.name)?;
    // Names cut to the column (TFLite names join every fused op's); JSON keeps them whole.
    let shown: Vec<_> = report
        .iter()
        .map(|r| npu_quant::report::LayerReport { name: output::shorten(&r.name, 28), ..r.clone() })
        .collect();
    write!(out, "{}", npu_quant::report::render(&shown))?;
    writeln!(out, "wrote {}", output.display())?;
    Ok(())
}

/// The scheme a command uses when none is given: an int8 .tflite's own, else per-channel INT8.
pub(crate) fn default_scheme(model: &Path, scheme: Option<&str>) -> Result<String> {
    Ok(match scheme {
        Some(s) => s.to_string(),
        None if load::is_tflite(model) && load::is_quantized(model)? => npu_tflite::AS_SHIPPED.into(),
        None => DEFAULT_SCHEME.into(),
    })
}

/// A quantized model: read from a .npuq, an int8 .tflite as shipped (the default for
/// one), or any other model quantized with `scheme`. A scheme given for an .npuq is a
/// usage error: it is quantized already.
pub(crate) fn quantized_or_quantize(
    model: &Path,
    scheme: Option<&str>,
    calib: &CalibArgs,
    cli: &npu_data::Overrides,
) -> Result<npu_quant::QModel> {
    let is_npuq = model.extension().is_some_and(|e| e == "npuq");
    if let (true, Some(s)) = (is_npuq, scheme) {
        usage!("--scheme {s}: {} is quantized already (its scheme is in the file)", model.display());
    }
    let scheme = default_scheme(model, scheme)?;
    if is_npuq || scheme == npu_tflite::AS_SHIPPED {
        if scheme == npu_tflite::AS_SHIPPED && !load::is_tflite(model) {
            usage!(
                "--scheme {scheme}: it takes the quantization of an int8 .tflite model; {} is not one",
                model.display()
            );
        }
        if calib.calib_data.is_some() {
            usage!("--calib-data: {} is quantized already", model.display());
        }
        let mut q = load::quantized(model)?;
        q.preprocess = cli.apply(&q.preprocess);
        q.preprocess.validate()?;
        return Ok(q);
    }
    let mut m = load::model(model)?;
    let d = data::load(calib.calib_data.as_deref(), calib.calib_labels.as_deref(), data::Purpose::Train)?;
    m.preprocess = d.preprocess(&m.preprocess, cli)?;
    let mut recipe = npu_app::Recipe::named(&scheme, DEFAULT_CALIB.min(d.ds.len()))?;
    let fits = d.ds.fit(m.input_shape(), &m.preprocess);
    if let Err(e) = fits {
        if !d.embedded {
            return Err(anyhow::Error::new(e).context(format!(
                "the calibration data do not fit model `{}`; give data that do with --calib-data",
                m.name
            )));
        }
        // No data given, and the embedded images are not this model's input (a full-size
        // benchmark): quantized without data, from its BatchNorm statistics.
        tracing::warn!("{}: its input is not the embedded images; quantizing without data (give --calib-data)", m.name);
        recipe.ranges = npu_quant::RangeSource::DataFree;
    }
    Ok(recipe.quantize(&m, &d.ds)?)
}

/// A named scheme, or the RON recipe at `recipe`.
pub(crate) fn scheme_from(name: &str, recipe: Option<&Path>) -> Result<npu_quant::Scheme> {
    match recipe {
        Some(path) => {
            let text = load::read_text(path)?;
            ron::from_str::<npu_quant::Scheme>(&text)
                .map_err(|e| anyhow::anyhow!("{}: not a valid recipe: {e}", path.display()))
        }
        None => Ok(npu_quant::Scheme::named(name)?),
    }
}
