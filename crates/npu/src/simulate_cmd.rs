//! `npu compile` and `npu simulate`: programs, their per-layer reports, CSV and traces.

#[allow(unused_imports)]
use super::*;

pub(crate) fn compile(
    model: &Path,
    scheme: Option<&str>,
    hw: &str,
    dir: &Path,
    ctx: Ctx,
    out: &mut dyn Write,
) -> Result<()> {
    let q = quantized_or_quantize(model, scheme)?;
    let hwc = load::hardware(hw)?;
    let c = npu_compile::compile(&q, &hwc)?;
    let dram = c.program.data.first().map(|s| s.bytes.clone()).unwrap_or_default();
    // Built beside DIR and put in its place whole: never a mix of old and new files.
    let w = output::DirWriter::new(dir)?;
    w.file("program.bin", &c.program.to_bytes()?)?;
    w.file("program.s", c.listing().as_bytes())?;
    w.file("dram.bin", &dram)?;
    w.file("model.npuq", &npu_quant::npuq::encode(&q)?)?;
    w.file("hw.ron", hwc.to_ron().as_bytes())?;
    w.file("compiled.ron", c.manifest(&q, &hwc).to_ron()?.as_bytes())?;
    w.commit()?;
    if ctx.json {
        let body = serde_json::json!({
            "model": q.name, "scheme": q.scheme.name, "hw": hwc.name, "instructions": c.program.code.len(),
            "offchip_bytes": dram.len(), "layers": c.layers.len(), "output": dir.display().to_string(),
            "input": {"addr": c.input.addr, "bytes": c.input.len}, "output_tensor": {"addr": c.output.addr, "bytes": c.output.len},
            "weights": c.coding.iter().map(|l| serde_json::json!({
                "layer": l.layer, "values": l.values, "packed_bytes": l.packed_bytes, "stored_bytes": l.stored_bytes,
                "encodings": l.encodings,
            })).collect::<Vec<_>>(),
        });
        write!(out, "{}", output::json_text("compile", body)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "{} ({}) for {}: {} instructions, {} bytes off-chip, {} layers -> {}",
        q.name,
        q.scheme.name,
        hwc.name,
        c.program.code.len(),
        dram.len(),
        c.layers.len(),
        dir.display()
    )?;
    write!(out, "{}", weight_coding_table(&c, &hwc))?;
    Ok(())
}

/// Per layer: weight values, packed and stored bytes, the ratio and the encodings.
pub(crate) fn weight_coding_table(c: &npu_compile::Compiled, hw: &npu_hw::HwConfig) -> String {
    let mut s = format!(
        "\nweights ({}):\n{:<28} {:>9} {:>10} {:>10} {:>7}  encodings\n",
        if hw.has_decompressor() {
            format!("smallest encoding per block; decompressor {} B/cycle", hw.dma.decompress_bytes_per_cycle)
        } else {
            "packed; the hardware has no decompressor".to_string()
        },
        "layer",
        "values",
        "packed B",
        "stored B",
        "ratio"
    );
    let (mut p, mut st) = (0, 0);
    for l in &c.coding {
        s.push_str(&format!(
            "{:<28} {:>9} {:>10} {:>10} {:>6.3}  {}\n",
            output::shorten(&l.layer, 28),
            l.values,
            l.packed_bytes,
            l.stored_bytes,
            l.stored_bytes as f64 / l.packed_bytes.max(1) as f64,
            l.encodings.join(", ")
        ));
        p += l.packed_bytes;
        st += l.stored_bytes;
    }
    s.push_str(&format!("{:<28} {:>9} {:>10} {:>10} {:>6.3}\n", "total", "", p, st, st as f64 / p.max(1) as f64));
    s
}

/// Options of `npu simulate`.
pub(crate) struct SimArgs {
    pub(crate) scheme: Option<String>,
    pub(crate) hw: Option<String>,
    pub(crate) input: Option<PathBuf>,
    pub(crate) output: Option<PathBuf>,
    pub(crate) data: Option<PathBuf>,
    pub(crate) limit: Option<usize>,
    pub(crate) timing_only: bool,
    pub(crate) trace: Option<PathBuf>,
    pub(crate) csv: Option<PathBuf>,
}

/// The per-layer CSV with a total row (written with the `csv` crate: names quoted
/// where they need it).
pub(crate) fn layer_csv(rows: &[npu_app::LayerRow], total: &npu_app::LayerRow) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "layer",
        "operator",
        "macs",
        "cycles",
        "share_percent",
        "span_cycles",
        "mac_utilization_percent",
        "bound",
        "busiest_unit",
        "offchip_bytes",
        "sram_bytes",
        "energy_uj",
    ])?;
    for r in rows.iter().chain([total]) {
        w.write_record([
            r.layer.clone(),
            r.operator.clone(),
            r.macs.to_string(),
            r.cycles.to_string(),
            format!("{:.2}", r.share_percent),
            r.span_cycles.to_string(),
            format!("{:.2}", r.mac_utilization_percent),
            r.bound.to_string(),
            r.busiest_unit.to_string(),
            r.offchip_bytes.to_string(),
            r.sram_bytes.to_string(),
            format!("{:.4}", r.energy_uj),
        ])?;
    }
    w.into_inner().map_err(|e| anyhow::anyhow!("csv: {e}"))
}

pub(crate) fn simulate(model: &Path, a: SimArgs, ctx: Ctx, out: &mut dyn Write) -> Result<()> {
    let d = if model.is_dir() {
        if let Some(h) = &a.hw {
            usage!(
                "--hw {h}: {} was compiled for the hardware in its hw.ron; compile again for another",
                model.display()
            );
        }
        if let Some(s) = &a.scheme {
            usage!("--scheme {s}: {} holds a compiled, quantized model", model.display());
        }
        load::compiled(model)?
    } else {
        let q = quantized_or_quantize(model, a.scheme.as_deref())?;
        npu_app::Deployment::new(q, load::hardware(a.hw.as_deref().unwrap_or(DEFAULT_HW))?)?
    };
    let (q, hwc) = (&d.model, &d.hw);
    let per_in = d.input_len();
    // Inputs: a .npy batch, or test images (none for timing only: it does not depend on them).
    let (inputs, labels, origin): (Vec<f32>, Option<Vec<u8>>, String) = match &a.input {
        Some(p) => {
            let bytes = std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?;
            let arr = npu_data::npy::parse(&bytes, &p.display().to_string())?;
            let v = arr.to_f32();
            if v.is_empty() || v.len() % per_in != 0 {
                bail!(
                    "{}: shape {} does not hold whole samples of {} (the model's input)",
                    p.display(),
                    dims(&arr.shape),
                    dims(&q.values[0].shape)
                );
            }
            (v, None, p.display().to_string())
        }
        None if a.timing_only => (Vec::new(), None, "no inputs (timing only)".to_string()),
        None => {
            let (ds, origin) = load::dataset(a.data.as_deref())?;
            let n = match a.limit {
                Some(l) => take_limit(Some(l), ds.len(), "--limit", &origin)?,
                None => 100.min(ds.len()),
            };
            let ds = ds.take(n);
            m_check(q, &ds)?;
            (q.preprocess.apply(&ds.pixels), Some(ds.labels.clone()), origin)
        }
    };
    let n = inputs.len() / per_in.max(1);
    let timing = d.timing()?;
    let mut outputs: Vec<Vec<i32>> = Vec::new();
    let mut correct = None;
    if !a.timing_only {
        let qin = q.quantize_input(&inputs);
        outputs = d.outputs(&timing, &qin, threads(None), "simulating", &compare::Bars::new(ctx.quiet))?;
        if let Some(l) = &labels {
            correct = Some(outputs.iter().zip(l).filter(|(o, lab)| npu_app::argmax(o) == usize::from(**lab)).count());
        }
    }
    let (rows, total_row, roof) = (&timing.layers, &timing.total, &timing.roofline);
    // Files first, then what is printed about them.
    if let Some(path) = &a.trace {
        let c = &d.compiled;
        let owner_names: Vec<&str> = c.owner.iter().map(|&i| c.layers.get(i).map_or("", String::as_str)).collect();
        write_file(path, npu_sim::chrome_trace(&timing.trace, hwc, &c.program.code, &owner_names).as_bytes())?;
    }
    if let Some(path) = &a.csv {
        write_file(path, &layer_csv(rows, total_row)?)?;
    }
    if let Some(p) = &a.output {
        let shape: Vec<usize> = std::iter::once(n).chain(q.values[q.output].shape.iter().copied()).collect();
        let vals: Vec<f64> = outputs.iter().flatten().map(|v| f64::from(*v)).collect();
        write_file(p, &npu_data::npy::write(&shape, npu_data::npy::Dtype::I32, &vals))?;
    }
    let report = &timing.report;
    let mem = &d.compiled.memory;
    if ctx.json {
        let body = serde_json::json!({
            "model": q.name, "scheme": q.scheme.name, "hw": hwc.name, "images": n, "data": origin,
            "timing_only": a.timing_only, "trap": serde_json::Value::Null,
            "top1": correct.map(|c| c as f64 / n as f64), "correct": correct,
            "report": report, "layers": rows, "total": total_row,
            "roofline": {
                "macs": roof.macs, "compute_cycles": roof.compute_cycles, "offchip_bytes": roof.offchip_bytes,
                "offchip_cycles": roof.offchip_cycles, "sram_bytes": roof.sram_bytes, "sram_cycles": roof.sram_cycles,
                "floor": roof.floor(), "bound": roof.bound(),
                "ratio": report.total_cycles as f64 / roof.floor().max(1.0),
            },
            "memory": {
                "resident_bytes": mem.resident_bytes, "staging_bytes": mem.staging.1, "sram_bytes": mem.sram_bytes,
            },
        });
        write!(out, "{}", output::json_text("simulate", body)?)?;
        return Ok(());
    }
    writeln!(out, "{} ({}) on {}", q.name, q.scheme.name, hwc.name)?;
    write!(out, "{}", report.render())?;
    writeln!(
        out,
        "\nroofline floor {:.0} cycles ({}: {:.0} compute, {:.0} off-chip for {} bytes, {:.0} SRAM I/O); simulated / floor = {:.3}",
        roof.floor(),
        roof.bound(),
        roof.compute_cycles,
        roof.offchip_cycles,
        roof.offchip_bytes,
        roof.sram_cycles,
        report.total_cycles as f64 / roof.floor().max(1.0)
    )?;
    let resident = mem.homes.iter().filter(|h| matches!(h, npu_compile::Home::Act(_))).count();
    writeln!(
        out,
        "activations: {resident} of {} values resident in the activation buffer ({} bytes at peak, {} left for staging), {} bytes of system SRAM at peak",
        mem.homes.len(),
        mem.resident_bytes,
        mem.staging.1,
        mem.sram_bytes
    )?;
    writeln!(
        out,
        "\n{:<28} {:<11} {:>10} {:>6} {:>10} {:>7} {:<9} {:>10} {:>10} {:>10}",
        "layer", "op", "cycles", "share", "span", "MAC", "bound", "DRAM B", "SRAM B", "energy µJ"
    )?;
    for r in rows.iter().chain([total_row]) {
        writeln!(
            out,
            "{:<28} {:<11} {:>10} {:>5.1}% {:>10} {:>6.1}% {:<9} {:>10} {:>10} {:>10.3}",
            output::shorten(&r.layer, 28),
            r.operator,
            r.cycles,
            r.share_percent,
            r.span_cycles,
            r.mac_utilization_percent,
            r.bound,
            r.offchip_bytes,
            r.sram_bytes,
            r.energy_uj
        )?;
    }
    match correct {
        Some(ok) => writeln!(
            out,
            "\ntop-1 {:.2}% ({ok}/{n}) on {origin}, from the simulator's outputs",
            ok as f64 / n as f64 * 100.0
        )?,
        None if a.timing_only => writeln!(out, "\ntiming only: no outputs computed")?,
        None => writeln!(out, "\n{n} inputs from {origin} simulated")?,
    }
    if let Some(p) = &a.csv {
        writeln!(out, "wrote {}", p.display())?;
    }
    Ok(())
}

/// The data set's images must be the model's input.
pub(crate) fn m_check(q: &npu_quant::QModel, ds: &npu_data::Dataset) -> Result<()> {
    let per: usize = q.values[0].shape.iter().product();
    if ds.rows * ds.cols != per {
        bail!(
            "the model takes inputs of {} ({per} values); the data set's images are {}×{}",
            dims(&q.values[0].shape),
            ds.rows,
            ds.cols
        );
    }
    Ok(())
}
