//! The per-layer quantization report: parameters and how far each layer's integer
//! output is from FP32 (SQNR), on a few images.

use serde::Serialize;

use crate::error::Result;
use crate::{QModel, QOp, WeightBits};
use npu_data::Dataset;

/// One row of the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerReport {
    /// Layer name.
    pub name: String,
    /// Operator and weight format.
    pub what: String,
    /// Float range of the output.
    pub range: (f32, f32),
    /// Output scale.
    pub scale: f32,
    /// Output zero point.
    pub zero_point: i32,
    /// Signal-to-quantization-noise ratio of the integer output against FP32, in dB
    /// (`None` without data to measure it on).
    pub sqnr_db: Option<f64>,
    /// Where the output range came from ([`crate::Provenance`]; `None` when not known,
    /// e.g. for a model read from a file).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range_from: Option<&'static str>,
    /// How the weights were rounded ([`crate::Provenance`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rounding: Option<&'static str>,
}

/// The rows with each layer's [`crate::Provenance`] (matched by name).
pub fn with_provenance(mut rows: Vec<LayerReport>, prov: &[crate::Provenance]) -> Vec<LayerReport> {
    for r in &mut rows {
        if let Some(p) = prov.iter().find(|p| p.layer == r.name) {
            r.range_from = Some(p.range);
            r.rounding = Some(p.rounding);
        }
    }
    rows
}

/// A layer's operator and weight format in a few words: `conv W8/ch`, `dwconv W4`,
/// `dense W8/ch`, `add`, `maxpool`, …
pub fn describe(l: &crate::QLayer) -> String {
    match &l.op {
        QOp::Conv2d { layer, groups, .. } => format!(
            "{} {}{}",
            if *groups > 1 { "dwconv" } else { "conv" },
            bits(layer.bits),
            if layer.w_scale.len() > 1 { "/ch" } else { "" }
        ),
        QOp::Dense { layer } => {
            format!("dense {}{}", bits(layer.bits), if layer.w_scale.len() > 1 { "/ch" } else { "" })
        }
        QOp::Add { .. } => "add".into(),
        QOp::MaxPool { .. } => "maxpool".into(),
        QOp::AvgPool { .. } => "avgpool".into(),
        QOp::GlobalAvgPool => "gap".into(),
        QOp::Reshape => "reshape".into(),
        QOp::Concat => "concat".into(),
        QOp::Lut { .. } => "lut".into(),
        QOp::Mul { .. } => "mul".into(),
        QOp::Gather { .. } => "gather".into(),
        QOp::ResizeNearest { .. } => "resize".into(),
        QOp::ResizeLinear { .. } => "bilinear".into(),
        QOp::Transpose { .. } => "transpose".into(),
        QOp::Dilate { .. } => "dilate".into(),
        QOp::Sub { .. } => "sub".into(),
        QOp::Softmax { .. } => "softmax".into(),
        QOp::Pad { .. } => "pad".into(),
    }
}

/// Runs FP32 and the integer model on `images` images and compares every layer output.
pub fn layers(q: &QModel, ds: &Dataset, images: usize) -> Result<Vec<LayerReport>> {
    let n = images.min(ds.len()).max(1);
    let xi = q.int_inputs(ds, 0..n)?;
    let x = q.float_inputs(ds, 0..n)?;
    // FP32 values of every node output of the optimized graph.
    let mut all = q.graph.clone();
    all.outputs = q.graph.nodes.iter().map(|nd| nd.output).collect();
    let fl = npu_model::fp32::run(&all, &[&x], n)?;
    let mut fvals: Vec<Option<&Vec<f32>>> = vec![None; q.graph.values.len()];
    for (nd, v) in q.graph.nodes.iter().zip(&fl) {
        fvals[nd.output] = Some(v);
    }
    // Integer values of every layer output.
    let per_in: usize = q.values[0].shape.iter().product();
    let mut ivals: Vec<Vec<i32>> = vec![Vec::new(); q.values.len()];
    for s in 0..n {
        let all = q.run_sample_all(&xi[s * per_in..(s + 1) * per_in]);
        for (v, d) in all.into_iter().enumerate() {
            ivals[v].extend(d);
        }
    }
    let mut rows = Vec::new();
    for l in &q.layers {
        let graph_value = q.value_map.iter().position(|m| *m == Some(l.output));
        let qp = q.values[l.output].q;
        let Some(f) = graph_value.and_then(|g| fvals[g]) else { continue };
        let (mut sig, mut noise) = (0f64, 0f64);
        for (a, b) in f.iter().zip(&ivals[l.output]) {
            let d = f64::from(qp.dequantize(*b));
            sig += f64::from(*a).powi(2);
            noise += (f64::from(*a) - d).powi(2);
        }
        let what = describe(l);
        let lo = qp.dequantize(qp.dtype.range().0);
        let hi = qp.dequantize(qp.dtype.range().1);
        rows.push(LayerReport {
            name: l.name.clone(),
            what,
            range: (lo, hi),
            scale: qp.scale,
            zero_point: qp.zero_point,
            sqnr_db: Some(if noise == 0.0 { f64::INFINITY } else { 10.0 * (sig / noise).log10() }),
            range_from: None,
            rounding: None,
        });
    }
    Ok(rows)
}

/// The report's rows without data: formats, ranges, scales and zero points, no SQNR.
pub fn layers_without_data(q: &QModel) -> Vec<LayerReport> {
    q.layers
        .iter()
        .filter(|l| q.value_map.contains(&Some(l.output)))
        .map(|l| {
            let qp = q.values[l.output].q;
            LayerReport {
                name: l.name.clone(),
                what: describe(l),
                range: (qp.dequantize(qp.dtype.range().0), qp.dequantize(qp.dtype.range().1)),
                scale: qp.scale,
                zero_point: qp.zero_point,
                sqnr_db: None,
                range_from: None,
                rounding: None,
            }
        })
        .collect()
}

fn bits(b: WeightBits) -> &'static str {
    match b {
        WeightBits::B8 => "w8",
        WeightBits::B4 => "w4",
        WeightBits::Ternary => "w2t",
        WeightBits::Binary => "w1",
    }
}

/// The report as a table; with provenance, the range's source and the rounding in two
/// more columns.
pub fn render(rows: &[LayerReport]) -> String {
    let prov = rows.iter().any(|r| r.range_from.is_some() || r.rounding.is_some());
    let mut s = format!("{:<28} {:<12} ", "layer", "kind");
    if prov {
        s.push_str(&format!("{:<12} {:<22} ", "range from", "rounding"));
    }
    s.push_str(&format!("{:>22} {:>11} {:>5} {:>9}\n", "output range", "scale", "zp", "SQNR dB"));
    for r in rows {
        s.push_str(&format!("{:<28} {:<12} ", r.name, r.what));
        if prov {
            s.push_str(&format!("{:<12} {:<22} ", r.range_from.unwrap_or("—"), r.rounding.unwrap_or("—")));
        }
        s.push_str(&format!(
            "{:>22} {:>11.3e} {:>5} {:>9}\n",
            format!("[{:.3}, {:.3}]", r.range.0, r.range.1),
            r.scale,
            r.zero_point,
            r.sqnr_db.map_or("—".to_string(), |v| format!("{v:.1}"))
        ));
    }
    s
}

/// Names in backquotes, comma-separated, the first six and a count of the rest.
pub fn name_list(names: &[String]) -> String {
    let mut s = names.iter().take(6).map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
    if names.len() > 6 {
        s.push_str(&format!(" and {} more", names.len() - 6));
    }
    s
}
