//! `npu compile` and `npu simulate`: programs, their per-layer reports, CSV and traces.

#[allow(unused_imports)]
use super::*;

pub(crate) fn compile(
    model: &Path,
    scheme: Option<&str>,
    hw: &str,
    dir: &Path,
    setup: (&CalibArgs, &npu_data::Overrides, &npu_compile::Options),
    ctx: Ctx,
    out: &mut dyn Write,
) -> Result<()> {
    let (calib, overrides, placement) = setup;
    let q = quantized_or_quantize(model, scheme, calib, overrides)?;
    let hwc = load::hardware(hw)?;
    let c = npu_app::Deployment::with_options(q.clone(), hwc.clone(), placement)?.compiled;
    let dram = c.program.data.first().map(|s| s.bytes.clone()).unwrap_or_default();
    // Built beside DIR and put in its place whole: never a mix of old and new files.
    let w = output::DirWriter::new(dir)?;
    w.file("program.bin", &c.program.to_bytes()?)?;
    w.file("program.s", c.listing().as_bytes())?;
    w.file("dram.bin", &dram)?;
    w.file("model.npuq", &npu_quant::npuq::encode(&q)?)?;
    w.file("hw.ron", hwc.to_ron().as_bytes())?;
    w.file("compiled.ron", c.manifest(&q, &hwc)?.to_ron()?.as_bytes())?;
    w.commit()?;
    if ctx.json {
        let body = serde_json::json!({
            "model": q.name, "scheme": q.scheme.name, "hw": hwc.name, "instructions": c.program.code.len(),
            "offchip_bytes": dram.len(), "layers": c.layers.len(), "output": dir.display().to_string(),
            "input": {"memory": c.input.space().name(), "addr": c.input.addr, "bytes": c.input.len},
            "output_tensor": {"memory": c.output.space().name(), "addr": c.output.addr, "bytes": c.output.len},
            "weights": c.coding.iter().map(|l| serde_json::json!({
                "layer": l.layer, "values": l.values, "packed_bytes": l.packed_bytes, "stored_bytes": l.stored_bytes,
                "encodings": l.encodings,
            })).collect::<Vec<_>>(),
            "host": host_json(&c),
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
    write!(out, "{}", host_lines(&c))?;
    Ok(())
}

/// The layers on the host CPU as JSON rows.
pub(crate) fn host_json(c: &npu_compile::Compiled) -> serde_json::Value {
    c.host.iter().map(|h| serde_json::json!({"layer": h.name, "reason": h.reason})).collect()
}

/// The layers on the host CPU, grouped by why (nothing when there are none).
pub(crate) fn host_lines(c: &npu_compile::Compiled) -> String {
    if c.host.is_empty() {
        return String::new();
    }
    let mut s = format!("\non the host CPU: {} layers (bound `cpu`)\n", c.host.len());
    // Grouped by reason, in order of first appearance.
    let mut reasons: Vec<&str> = Vec::new();
    for h in &c.host {
        if !reasons.contains(&h.reason.as_str()) {
            reasons.push(&h.reason);
        }
    }
    for r in reasons {
        let names: Vec<&str> = c.host.iter().filter(|h| h.reason == r).map(|h| h.name.as_str()).collect();
        s.push_str(&format!("  {r} ({}):\n", names.len()));
        for n in names {
            s.push_str(&format!("    {n}\n"));
        }
    }
    s
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
    pub(crate) data: DataArgs,
    pub(crate) calib: CalibArgs,
    pub(crate) limit: Option<usize>,
    pub(crate) metric: Option<npu_data::metrics::Metric>,
    pub(crate) timing_only: bool,
    pub(crate) jobs: Option<usize>,
    pub(crate) trace: Option<PathBuf>,
    pub(crate) csv: Option<PathBuf>,
    pub(crate) modified_program: bool,
    pub(crate) placement: crate::PlacementArgs,
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
        if a.calib.calib_data.is_some() {
            usage!("--calib-data: {} holds a compiled, quantized model", model.display());
        }
        if !a.placement.cpu.is_empty() || a.placement.no_cpu_fallback || a.placement.schedule.is_some() {
            usage!(
                "--cpu/--no-cpu-fallback/--schedule: {} was compiled already; give them to `npu compile`",
                model.display()
            );
        }
        load::compiled(model, a.modified_program)?
    } else {
        let q = quantized_or_quantize(model, a.scheme.as_deref(), &a.calib, &a.data.pre.overrides())?;
        if a.modified_program {
            usage!("--modified-program: {} is not a compiled directory", model.display());
        }
        let hw = load::hardware(a.hw.as_deref().unwrap_or(DEFAULT_HW))?;
        npu_app::Deployment::with_options(q, hw, &a.placement.options())?
    };
    let mut d = d;
    // Inputs: --input (no labels), test data, or none for timing only (it does not depend on them).
    let data = match &a.input {
        Some(p) => Some(data::load(Some(p), None, data::Purpose::Test)?),
        None if a.timing_only => None,
        None => {
            let all = data::load(a.data.data.as_deref(), a.data.labels.as_deref(), data::Purpose::Test)?;
            let n = a.limit.unwrap_or(100.min(all.ds.len()));
            Some(all.limit(Some(n), "--limit")?)
        }
    };
    if let Some(data) = &data {
        d.model.preprocess = data.preprocess(&d.model.preprocess, &a.data.pre.overrides())?;
    }
    let (q, hwc) = (&d.model, &d.hw);
    let origin = data.as_ref().map_or("no inputs (timing only)".to_string(), |x| x.origin.clone());
    let n = data.as_ref().map_or(0, |x| x.ds.len());
    let timing = d.timing()?;
    let mut outputs: Vec<Vec<i32>> = Vec::new();
    let mut correct = None;
    let mut scored = None;
    let mut replay = None;
    if let Some(data) = &data {
        let ds = &data.ds;
        let qin = q.int_inputs(ds, 0..n)?;
        let jobs = threads(a.jobs);
        let start = std::time::Instant::now();
        outputs = d.outputs(&timing, &qin, jobs, "simulating", &compare::Bars::new(ctx.quiet))?;
        replay = Some((start.elapsed().as_secs_f64(), jobs));
        let oq = q.values[q.output].q;
        let flat: Vec<f32> = outputs.iter().flatten().map(|v| oq.dequantize(*v)).collect();
        if let Some(l) = ds.labels() {
            let per = flat.len() / n.max(1);
            if per > 1 {
                ds.check_classes(per, &format!("model `{}`, with {per} outputs,", q.name))?;
            }
            correct = Some(outputs.iter().zip(l).filter(|(o, lab)| npu_app::argmax(o) == **lab as usize).count());
        }
        let metric = a.metric.unwrap_or_else(|| npu_data::metrics::Metric::default_for(ds));
        let reference = if metric.needs_reference() { Some(fp32_of_quantized(q, ds, n)?) } else { None };
        let inputs = (metric == npu_data::metrics::Metric::Mse).then(|| q.float_inputs(ds, 0..n)).transpose()?;
        let against = npu_data::metrics::Against { reference: reference.as_deref(), inputs: inputs.as_deref() };
        scored = Some((metric, npu_data::metrics::score(metric, &flat, n, ds, against)?));
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
        let vals: Vec<i32> = outputs.iter().flatten().copied().collect();
        write_file(p, &npu_datafiles::npy::write(&shape, &npu_data::Elements::I32(vals)))?;
    }
    let report = &timing.report;
    let mem = &d.compiled.memory;
    if ctx.json {
        let body = serde_json::json!({
            "model": q.name, "scheme": q.scheme.name, "hw": hwc.name, "images": n, "data": origin,
            "timing_only": a.timing_only, "trap": serde_json::Value::Null,
            "top1": correct.map(|c| c as f64 / n as f64), "correct": correct,
            "metric": scored.map(|s| s.0.name()), "value": scored.map(|s| s.1),
            "report": report, "layers": rows, "total": total_row,
            "roofline": {
                "macs": roof.macs, "compute_cycles": roof.compute_cycles, "offchip_bytes": roof.offchip_bytes,
                "forced_spill_bytes": roof.forced_spill_bytes,
                "offchip_cycles": roof.offchip_cycles, "sram_bytes": roof.sram_bytes, "sram_cycles": roof.sram_cycles,
                "floor": roof.floor(), "bound": roof.bound(),
                "ratio": report.total_cycles as f64 / roof.floor().max(1.0),
            },
            "memory": {
                "resident_bytes": mem.resident_bytes, "staging_bytes": mem.staging.1, "sram_bytes": mem.sram_bytes,
                "spill_bytes": mem.spill_bytes,
                "spilled": mem.spilled().map(|v| q.values[v].name.clone()).collect::<Vec<_>>(),
                "input": {"memory": d.compiled.input.space().name(), "addr": d.compiled.input.addr},
                "output": {"memory": d.compiled.output.space().name(), "addr": d.compiled.output.addr},
            },
            "host": host_json(&d.compiled),
            "replay": replay.map(|(seconds, threads)| serde_json::json!({
                "seconds": seconds, "threads": threads, "images_per_second": n as f64 / seconds.max(1e-9),
            })),
        });
        write!(out, "{}", output::json_text("simulate", body)?)?;
        return Ok(());
    }
    writeln!(out, "{} ({}) on {}", q.name, q.scheme.name, hwc.name)?;
    write!(out, "{}", report.render())?;
    write!(out, "{}", host_lines(&d.compiled))?;
    writeln!(
        out,
        "\nroofline floor {:.0} cycles ({}: {:.0} compute, {:.0} off-chip for {} bytes{}, {:.0} SRAM I/O); simulated / floor = {:.3}",
        roof.floor(),
        roof.bound(),
        roof.compute_cycles,
        roof.offchip_cycles,
        roof.offchip_bytes,
        match roof.forced_spill_bytes {
            0 => String::new(),
            b => format!(" with {b} bytes of activations too large for on-chip memory written and read back"),
        },
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
    let (input, output) = (d.compiled.input, d.compiled.output);
    if input.memory == npu_hw::IoMemory::Dram || output.memory == npu_hw::IoMemory::Dram {
        writeln!(
            out,
            "host I/O (`memories.io`: the system SRAM is the NPU's own): input {} bytes at {} {:#x}, output {} bytes at {} {:#x}",
            input.len,
            input.space().name(),
            input.addr,
            output.len,
            output.space().name(),
            output.addr,
        )?;
    }
    let spilled: Vec<&str> = mem.spilled().map(|v| q.values[v].name.as_str()).collect();
    if !spilled.is_empty() {
        writeln!(
            out,
            "spilled to off-chip memory (they do not fit system SRAM): {} value{} in {} bytes at its top: {}",
            spilled.len(),
            if spilled.len() == 1 { "" } else { "s" },
            mem.spill_bytes,
            spilled.join(", ")
        )?;
    }
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
    match (scored, correct) {
        (Some((npu_data::metrics::Metric::Top1, _)), Some(ok)) => writeln!(
            out,
            "\ntop-1 {:.2}% ({ok}/{n}) on {origin}, from the simulator's outputs",
            ok as f64 / n as f64 * 100.0
        )?,
        (Some((m, v)), _) => {
            let against = if m.needs_reference() { " against FP32" } else { "" };
            writeln!(
                out,
                "\n{} {}{against} on {n} inputs of {origin}, from the simulator's outputs",
                m.heading(),
                m.show(v)
            )?
        }
        (None, _) => writeln!(out, "\ntiming only: no outputs computed")?,
    }
    if let Some((seconds, jobs)) = replay {
        writeln!(
            out,
            "replayed {n} inputs bit-exactly in {seconds:.3} s ({:.0} images/s, {jobs} thread{})",
            n as f64 / seconds.max(1e-9),
            if jobs == 1 { "" } else { "s" }
        )?;
    }
    if let Some(p) = &a.csv {
        writeln!(out, "wrote {}", p.display())?;
    }
    Ok(())
}
