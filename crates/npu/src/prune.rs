//! `npu prune`: prune a model (optionally fine-tuning the pruned network), or measure
//! its accuracy against sparsity.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};
use npu_app::prune::{CurvePoint, FineTune};
use npu_train::prune::{self, Prune, Scope, Structure};

use crate::compare::Bars;
use crate::load;

/// Options of `npu prune`.
pub struct Options {
    /// Model.
    pub model: PathBuf,
    /// Target sparsity (unstructured and channel).
    pub sparsity: f32,
    /// Structure (`unstructured`, `channel`, `N:M`).
    pub structure: String,
    /// `global` or `layer`.
    pub scope: String,
    /// Fine-tuning epochs (0: none).
    pub finetune: usize,
    /// Training and test data (default: the embedded subset and test set).
    pub source: crate::data::Source,
    /// Fine-tuning learning rate.
    pub lr: f32,
    /// Images per fine-tuning epoch (default: all).
    pub limit: Option<usize>,
    /// No progress bars.
    pub quiet: bool,
}

fn request(o: &Options, sparsity: f32) -> Result<Prune> {
    let structure = Structure::parse(&o.structure)?;
    let scope = match o.scope.as_str() {
        "global" => Scope::Global,
        "layer" => Scope::PerLayer,
        s => bail!("--scope {s}: expected global or layer"),
    };
    Ok(Prune { sparsity: structure.fixed_sparsity().unwrap_or(sparsity), structure, scope })
}

fn finetune(o: &Options) -> Option<FineTune> {
    (o.finetune > 0).then_some(FineTune { epochs: o.finetune, lr: o.lr })
}

/// The training set fine-tuning (and the curve's calibration) uses, cut to `--limit`.
fn train_set(o: &Options) -> Result<(npu_data::Dataset, String)> {
    let d = o.source.train()?.limit(o.limit, "--limit")?;
    Ok((d.ds, d.origin))
}

/// The model with the preprocessing the training data call for.
fn model_for(o: &Options) -> Result<npu_model::Model> {
    let mut m = load::model(&o.model)?;
    let d = o.source.train()?;
    o.source.prepare(&mut m, &d)?;
    Ok(m)
}

/// Prunes (and fine-tunes) `o.model` at `sparsity`; returns the pruned model.
pub fn pruned(o: &Options, sparsity: f32, out: &mut dyn Write) -> Result<npu_model::Model> {
    let m = model_for(o)?;
    let p = request(o, sparsity)?;
    let train = match finetune(o) {
        Some(f) => Some((f, train_set(o)?)),
        None => None,
    };
    let r = npu_app::prune::pruned(&m, &p, train.as_ref().map(|(f, (t, _))| (*f, t)), &Bars::new(o.quiet))?;
    let origin = train.as_ref().map_or("", |(_, (_, o))| o.as_str());
    for s in &r.epochs {
        writeln!(
            out,
            "fine-tune epoch {}/{}: loss {:.4}, train accuracy {:.2}% on {origin}",
            s.epoch,
            o.finetune,
            s.loss,
            s.accuracy * 100.0
        )?;
    }
    Ok(r.model)
}

/// Per layer: name, weights, zeros and the sparsity, as JSON values.
pub fn layer_sparsity(m: &npu_model::Model) -> Vec<serde_json::Value> {
    prune::sparsity(&m.graph)
        .iter()
        .map(|r| {
            serde_json::json!({"layer": r.name, "weights": r.weights, "zeros": r.zeros,
                "sparsity": r.zeros as f64 / r.weights.max(1) as f64})
        })
        .collect()
}

/// The per-layer sparsity table.
pub fn report(m: &npu_model::Model) -> String {
    let rows = prune::sparsity(&m.graph);
    let mut s = format!("{:<40} {:>10} {:>10} {:>9}\n", "layer", "weights", "zeros", "sparsity");
    let (mut w, mut z) = (0, 0);
    for r in &rows {
        s.push_str(&format!(
            "{:<40} {:>10} {:>10} {:>8.1}%\n",
            crate::output::shorten(&r.name, 40),
            r.weights,
            r.zeros,
            r.zeros as f64 / r.weights.max(1) as f64 * 100.0
        ));
        w += r.weights;
        z += r.zeros;
    }
    s.push_str(&format!("{:<40} {:>10} {:>10} {:>8.1}%\n", "total", w, z, z as f64 / w.max(1) as f64 * 100.0));
    s
}

/// Accuracy (FP32 and per-channel INT8) of the model pruned to each sparsity, on the
/// first `images` test images (all of them by default).
pub fn curve(o: &Options, sparsities: &[f32], images: Option<usize>, out: &mut dyn Write) -> Result<Vec<CurvePoint>> {
    let m = model_for(o)?;
    let p = request(o, 0.0)?;
    let test = match o.source.test()? {
        Some(t) => t,
        None => bail!("--curve needs test data: give --test-data (or an IDX directory with t10k files)"),
    };
    let test = match images {
        Some(n) => test.limit(Some(n), "--images")?.ds,
        None => test.ds.take(2000),
    };
    let (train, _) = train_set(o)?;
    let mut lines = Vec::new();
    let points = npu_app::prune::curve(
        &m,
        p.structure,
        p.scope,
        finetune(o),
        sparsities,
        &test,
        &train,
        &Bars::new(o.quiet),
        &mut |p| {
            lines.push(format!(
                "sparsity {:.2} (achieved {:.3}): FP32 {:.2}%, INT8 per-channel {:.2}%",
                p.sparsity, p.achieved, p.fp32, p.int8
            ))
        },
    )?;
    for l in lines {
        writeln!(out, "{l}")?;
    }
    Ok(points)
}

/// The curve as CSV.
pub fn curve_csv(points: &[CurvePoint]) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["sparsity", "achieved", "fp32_top1_percent", "int8_top1_percent"])?;
    for p in points {
        w.write_record([
            format!("{}", p.sparsity),
            format!("{:.4}", p.achieved),
            format!("{:.2}", p.fp32),
            format!("{:.2}", p.int8),
        ])?;
    }
    w.into_inner().map_err(|e| anyhow!("csv: {e}"))
}

/// The curve as an SVG plot: top-1 against achieved sparsity, FP32 and INT8.
pub fn curve_svg(title: &str, points: &[CurvePoint]) -> Result<String> {
    use plotters::prelude::*;
    if points.is_empty() {
        bail!("no points to plot");
    }
    let lo = points.iter().flat_map(|p| [p.fp32, p.int8]).fold(f64::MAX, f64::min);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 440)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("plot: {e}"))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(0.0..1.0, (lo - 2.0).max(0.0)..100.0)
            .map_err(|e| anyhow!("plot: {e}"))?;
        chart
            .configure_mesh()
            .x_desc("weight sparsity (fraction of weights zero)")
            .y_desc("top-1 %")
            .draw()
            .map_err(|e| anyhow!("plot: {e}"))?;
        for (label, color, get) in [
            ("FP32", RGBColor(31, 119, 180), (|p: &CurvePoint| p.fp32) as fn(&CurvePoint) -> f64),
            ("INT8 per-channel (integer executor)", RGBColor(214, 39, 40), |p: &CurvePoint| p.int8),
        ] {
            let pts: Vec<(f64, f64)> = points.iter().map(|p| (p.achieved, get(p))).collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                .map_err(|e| anyhow!("plot: {e}"))?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2)));
            chart
                .draw_series(pts.iter().map(|p| Circle::new(*p, 3, color.filled())))
                .map_err(|e| anyhow!("plot: {e}"))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerLeft)
            .draw()
            .map_err(|e| anyhow!("plot: {e}"))?;
        root.present().map_err(|e| anyhow!("plot: {e}"))?;
    }
    Ok(svg)
}

/// Writes a curve's CSV and SVG into `dir`.
pub fn write_curve(dir: &Path, title: &str, points: &[CurvePoint]) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| anyhow!("cannot create {}: {e}", dir.display()))?;
    crate::write_file(&dir.join("prune_curve.csv"), &curve_csv(points)?)?;
    crate::write_file(&dir.join("prune_curve.svg"), curve_svg(title, points)?.as_bytes())?;
    Ok(())
}
