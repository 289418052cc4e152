//! `npu compare`: quantization schemes side by side on modeled hardware. For every
//! scheme the model is quantized, compiled and run through the simulator: top-1 accuracy
//! comes from the simulator's own outputs on every image, and cycles, frames/s, latency,
//! energy and traffic from the same compiled program (timing does not depend on the
//! data, so one traced run gives them, and the images replay its functional order).

use std::path::Path;

use anyhow::{bail, Result};

pub use npu_app::argmax;
pub use npu_app::compare::{Comparison, Row, RowSpec};
pub use npu_app::HwFigures;
pub use npu_present::{plot, score_names, Axis, Present, PLOT_COLLAPSED_POINTS};
use npu_quant::Scheme;

use crate::load;

/// The rows `npu compare` knows, in table order: `fp32`, then the named recipes.
pub fn row_keys() -> Vec<&'static str> {
    std::iter::once("fp32").chain(npu_app::RECIPES.iter().map(|(k, _)| *k)).collect()
}

/// What to compare.
#[derive(Debug, Clone)]
pub struct Options {
    /// Model (zoo:NAME, .onnx, .npum).
    pub model: String,
    /// Test and calibration data, preprocessing flags and the metric.
    pub source: DataSource,
    /// Hardware preset or RON file.
    pub hw: String,
    /// Row keys (from [`row_keys`]).
    pub schemes: Vec<String>,
    /// Images (default: the whole test set).
    pub limit: Option<usize>,
    /// Threads over images.
    pub jobs: usize,
    /// Calibration images (min/max, embedded training subset).
    pub calib: usize,
    /// No progress bars.
    pub quiet: bool,
    /// Further rows: recipes to quantize, or models already quantized (retrained ones).
    pub extra: Vec<Extra>,
    /// Only this shard of the test samples (`I`, `N`): the I-th of N contiguous blocks.
    pub shard: Option<(usize, usize)>,
}

/// Where a comparison's samples come from and how they are scored.
#[derive(Debug, Clone, Default)]
pub struct DataSource {
    /// Test data (`--data`); `None`: the embedded test set.
    pub data: Option<std::path::PathBuf>,
    /// Labels for a .npy or IDX test file.
    pub labels: Option<std::path::PathBuf>,
    /// Calibration data (`--calib-data`); `None`: the embedded training subset when the
    /// test data are the embedded set, else the test data themselves.
    pub calib_data: Option<std::path::PathBuf>,
    /// Labels for a .npy or IDX calibration file.
    pub calib_labels: Option<std::path::PathBuf>,
    /// Preprocessing flags.
    pub pre: npu_data::Overrides,
    /// The metric; `None`: the test data's default.
    pub metric: Option<npu_data::metrics::Metric>,
}

/// A row beyond the named schemes.
#[derive(Debug, Clone)]
pub enum Extra {
    /// A scheme or recipe to quantize with (calibrated like the named rows).
    Recipe {
        /// Row key.
        key: String,
        /// Row description.
        label: String,
        /// The scheme.
        scheme: Scheme,
    },
    /// A model already quantized (e.g. by `npu qat`).
    Quantized {
        /// Row key.
        key: String,
        /// Row description.
        label: String,
        /// The model.
        model: Box<npu_quant::QModel>,
    },
}

/// A row from a file: a RON recipe (`.ron`, quantized here) or a quantized model
/// (`.npuq`, e.g. from `npu qat`), keyed by the file's stem.
pub fn extra_from_file(path: &Path) -> Result<Extra> {
    let key = path.file_stem().map_or("extra".into(), |s| s.to_string_lossy().into_owned());
    if path.extension().is_some_and(|e| e == "npuq") {
        let q = load::quantized(path)?;
        let label =
            format!("{} ({})", q.scheme.name, path.file_name().map_or(key.clone(), |f| f.to_string_lossy().into()));
        return Ok(Extra::Quantized { key, label, model: Box::new(q) });
    }
    let text = load::read_text(path)?;
    let scheme: Scheme =
        ron::from_str(&text).map_err(|e| anyhow::anyhow!("{}: not a valid recipe: {e}", path.display()))?;
    Ok(Extra::Recipe { key, label: format!("recipe {}", scheme.name), scheme })
}

/// Parses `--schemes`: `all` or a comma-separated list of [`row_keys`].
pub fn parse_schemes(list: &str) -> Result<Vec<String>> {
    if list == "all" {
        return Ok(row_keys().into_iter().map(String::from).collect());
    }
    let mut out = Vec::new();
    for k in list.split(',').map(str::trim).filter(|k| !k.is_empty()) {
        let keys = row_keys();
        if !keys.contains(&k) {
            bail!("unknown scheme `{k}` in --schemes (expected `all` or some of: {})", keys.join(", "));
        }
        out.push(k.to_string());
    }
    if out.is_empty() {
        bail!("--schemes is empty (expected `all` or a comma-separated list)");
    }
    Ok(out)
}

/// Progress bars for the rows of a comparison, one per task, drawn from worker threads.
pub struct Bars {
    mp: indicatif::MultiProgress,
    bars: std::sync::Mutex<Vec<(String, indicatif::ProgressBar)>>,
    quiet: bool,
}

impl Bars {
    /// Bars on stderr, or none when `quiet`.
    pub fn new(quiet: bool) -> Bars {
        let mp = if quiet {
            indicatif::MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::hidden())
        } else {
            indicatif::MultiProgress::new()
        };
        Bars { mp, bars: std::sync::Mutex::new(Vec::new()), quiet }
    }

    fn with(&self, label: &str, f: impl FnOnce(&indicatif::ProgressBar)) {
        if let Ok(bars) = self.bars.lock() {
            if let Some((_, b)) = bars.iter().rev().find(|(l, _)| l == label) {
                f(b);
            }
        }
    }
}

impl npu_app::Progress for Bars {
    fn begin(&self, label: &str, total: usize) {
        if self.quiet {
            return;
        }
        let pb = self.mp.add(indicatif::ProgressBar::new(total as u64));
        pb.set_style(
            indicatif::ProgressStyle::with_template("{msg:<46} [{bar:24}] {pos}/{len} images, {per_sec}, ETA {eta}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        pb.set_message(label.to_string());
        if let Ok(mut bars) = self.bars.lock() {
            bars.push((label.to_string(), pb));
        }
    }
    fn advance(&self, label: &str, done: usize) {
        self.with(label, |b| b.set_position(done as u64));
    }
    fn end(&self, label: &str) {
        self.with(label, |b| b.finish());
    }
}

/// Runs the comparison `o` describes: the model, hardware and images loaded, the rows
/// resolved (a full comparison of a zoo architecture adds its committed retrained models
/// and recipes; an int8 .tflite adds its own quantization), then [`npu_app::compare`].
pub fn compare(o: &Options) -> Result<Comparison> {
    use crate::data::{load as load_data, Purpose};
    let src = &o.source;
    let mut m = load::model(Path::new(&o.model))?;
    let hw = load::hardware(&o.hw)?;
    let mut test = load_data(src.data.as_deref(), src.labels.as_deref(), Purpose::Test)?.limit(o.limit, "--limit")?;
    m.preprocess = test.preprocess(&m.preprocess, &src.pre)?;
    // An int8 TFLite given its own int8 inputs: every row, the float ones too, sees the
    // values they stand for.
    let shipped =
        if load::is_tflite(Path::new(&o.model)) { load::tflite(Path::new(&o.model))?.quantized } else { None };
    if let Some(q) = &shipped {
        crate::data::dequantize_for(q, &mut test);
    }
    // Calibration: --calib-data; the embedded training subset beside the embedded test
    // set; an IDX directory's train-* files beside its t10k-* ones; else the test data
    // themselves (said in the title).
    let idx_train = src.data.as_deref().filter(|d| crate::data::has_idx(d, Purpose::Train));
    let (calib, calib_origin) = match (&src.calib_data, test.embedded) {
        (None, false) if idx_train.is_some() => {
            let c = load_data(idx_train, None, Purpose::Train)?;
            let origin = c.origin.clone();
            (c.ds, Some(origin))
        }
        (Some(p), _) => {
            let mut c = load_data(Some(p), src.calib_labels.as_deref(), Purpose::Train)?;
            if let Some(q) = &shipped {
                crate::data::dequantize_for(q, &mut c);
            }
            let origin = c.origin.clone();
            (c.ds, Some(origin))
        }
        (None, true) => (load_data(None, None, Purpose::Train)?.ds, None),
        (None, false) => (test.ds.clone(), Some("the same samples".to_string())),
    };
    if o.calib > calib.len() {
        crate::usage!("--calib {}: the calibration data have {} samples", o.calib, calib.len());
    }
    let metric = src.metric.unwrap_or_else(|| npu_data::metrics::Metric::default_for(&test.ds));
    let origin = match &calib_origin {
        Some(c) => format!("{}, calibrated on {c}", test.origin),
        None => test.origin.clone(),
    };
    let mut rows = o.schemes.iter().map(|k| RowSpec::named(k, o.calib)).collect::<npu_app::Result<Vec<_>>>()?;
    if let Some(q) = shipped {
        rows.push(RowSpec::as_shipped(q, &m.preprocess));
    }
    if o.schemes.len() == row_keys().len() {
        if let Some(arch) = o.model.strip_prefix("zoo:") {
            rows.extend(npu_app::compare::zoo_rows(arch, o.calib)?);
        }
    }
    for e in &o.extra {
        rows.push(match e {
            Extra::Recipe { key, label, scheme } => {
                RowSpec::Recipe(npu_app::Recipe::from_scheme(key, label, scheme.clone(), o.calib))
            }
            Extra::Quantized { key, label, model } => {
                RowSpec::Quantized { key: key.clone(), label: label.clone(), model: model.clone() }
            }
        });
    }
    let req = npu_app::compare::Request {
        model: &m,
        hw: &hw,
        test: &test.ds,
        metric,
        origin,
        calib: &calib,
        rows,
        jobs: o.jobs,
        shard: o.shard,
    };
    Ok(npu_app::compare::compare(&req, &Bars::new(o.quiet))?)
}
