//! `npu compare`: the comparison written as files and printed.

#[allow(unused_imports)]
use super::*;

pub(crate) fn compare_cmd(opts: &compare::Options, dir: Option<&Path>, ctx: Ctx, out: &mut dyn Write) -> Result<()> {
    let c = compare::compare(opts)?;
    show(&c, dir, opts.jobs, ctx, out)
}

/// `npu compare merge`: the shards' compare.json files read, merged and shown as one
/// comparison.
pub(crate) fn compare_merge_cmd(dirs: &[PathBuf], dir: &Path, ctx: Ctx, out: &mut dyn Write) -> Result<()> {
    let mut parts = Vec::new();
    for d in dirs {
        let path = d.join("compare.json");
        let text = load::read_text(&path)?;
        let c: compare::Comparison = serde_json::from_str(&text)
            .with_context(|| format!("{}: not the compare.json of `npu compare --shard`", path.display()))?;
        parts.push(c);
    }
    let c = npu_app::compare::merge(&parts)?;
    if !ctx.json {
        writeln!(out, "merged {} shards: {} samples", parts.len(), c.rows.first().map_or(0, |r| r.images))?;
    }
    show(&c, Some(dir), 0, ctx, out)
}

/// Writes a comparison's files into `dir` (when given), then prints it: the table, or
/// the JSON document.
fn show(c: &compare::Comparison, dir: Option<&Path>, jobs: usize, ctx: Ctx, out: &mut dyn Write) -> Result<()> {
    // Files first, then what is printed about them.
    let mut written = Vec::new();
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        write_file(&dir.join("compare.md"), c.markdown().as_bytes())?;
        write_file(&dir.join("compare.csv"), &c.csv()?)?;
        write_file(&dir.join("compare.json"), output::json_text("compare", serde_json::to_value(c)?)?.as_bytes())?;
        written.extend(["compare.md", "compare.csv", "compare.json"]);
        if c.rows.iter().any(|r| r.hw.is_some()) {
            write_file(&dir.join("accuracy_vs_fps.svg"), compare::plot(c, compare::Axis::Fps)?.as_bytes())?;
            write_file(&dir.join("accuracy_vs_energy.svg"), compare::plot(c, compare::Axis::Energy)?.as_bytes())?;
            written.extend(["accuracy_vs_fps.svg", "accuracy_vs_energy.svg"]);
        }
    }
    if ctx.json {
        let mut body = serde_json::to_value(c)?;
        if let (Some(dir), Some(m)) = (dir, body.as_object_mut()) {
            m.insert("output".into(), dir.display().to_string().into());
            m.insert("files".into(), serde_json::json!(written));
        }
        write!(out, "{}", output::json_text("compare", body)?)?;
        return Ok(());
    }
    write!(out, "{}", c.table())?;
    for r in &c.rows {
        if let Some(h) = &r.hw {
            let threads = match jobs {
                0 => " in all shards".to_string(),
                1 => ", 1 thread".to_string(),
                _ => format!(", {jobs} threads"),
            };
            writeln!(
                out,
                "{}: {} images through the simulator in {:.2} s ({:.0} images/s{threads}); {:.3}× the roofline floor",
                r.key,
                r.images,
                h.host_seconds,
                r.images as f64 / h.host_seconds.max(1e-9),
                h.roofline_ratio
            )?;
            if h.cpu_layers > 0 {
                writeln!(
                    out,
                    "{}: {} layers on the host CPU (the NPU cannot run them; `npu simulate` says why)",
                    r.key, h.cpu_layers
                )?;
            }
        }
    }
    if let Some(dir) = dir {
        writeln!(out, "wrote {} in {}", written.join(", "), dir.display())?;
    }
    Ok(())
}
