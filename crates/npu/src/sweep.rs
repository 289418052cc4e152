//! `npu sweep`: design-space exploration over models × schemes × hardware parameters.
//!
//! ```text
//!  PLAN.ron ──[expand: cartesian product, filters]──▶ points (index, model, scheme, hw)
//!     │ --shard I/N: the points with index % N == I
//!     ▼
//!  per point: content key (SHA-256 of model, scheme, full hardware RON, mode, images)
//!     ├─ in the cache ─────────────────────────────▶ record
//!     └─ quantize (once per model × scheme) → compile → simulate (timing only, or every
//!        test image replayed for accuracy) ─────────▶ record → cache
//!  records stream to results.jsonl as they finish; summary.md/.csv and SVG plots at the end
//!  npu sweep merge DIR... : shard outputs → the same results as one unsharded run
//! ```
//!
//! Points run in parallel on `--jobs` threads. A record holds no wall-clock time, so a
//! point's record is the same whichever machine, shard or thread computed it.

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::load;

/// Version of the record format and of what a key covers; bump to invalidate caches.
/// Keys also hold the tool's version and a hash of every source that decides a result
/// ([`SOURCES`]), so a changed compiler, simulator or zoo never serves a stale point.
const FORMAT: &str = "npu-sweep-2";

/// SHA-256 (first 8 bytes) of the sources of the ISA, hardware descriptions, simulator,
/// toolchain (with the zoo and embedded data) and this crate, from `build.rs`.
pub const SOURCES: &str = env!("NPU_SOURCE_HASH");

/// Values of one swept parameter.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub enum Values {
    /// These values.
    List(Vec<f64>),
    /// `from, from + step, …` up to `to` inclusive.
    Range {
        /// First value.
        from: f64,
        /// Last value (included if reached).
        to: f64,
        /// Increment (positive).
        step: f64,
    },
    /// `from, 2·from, 4·from, …` up to `to` inclusive.
    Doubling {
        /// First value (positive).
        from: f64,
        /// Last value.
        to: f64,
    },
}

impl Values {
    fn expand(&self, name: &str) -> Result<Vec<f64>> {
        let v = match self {
            Values::List(v) => v.clone(),
            Values::Range { from, to, step } => {
                if !(*step > 0.0 && from.is_finite() && to.is_finite()) {
                    bail!("parameter `{name}`: Range needs finite bounds and a positive step");
                }
                let n = ((to - from) / step + 1e-9).floor();
                if n > 10_000.0 {
                    bail!("parameter `{name}`: Range has more than 10,000 values");
                }
                (0..=n.max(-1.0) as i64).map(|i| from + i as f64 * step).collect()
            }
            Values::Doubling { from, to } => {
                if !(*from > 0.0 && to.is_finite()) {
                    bail!("parameter `{name}`: Doubling needs a positive start and a finite end");
                }
                let mut v = Vec::new();
                let mut x = *from;
                while x <= *to * (1.0 + 1e-12) && v.len() < 64 {
                    v.push(x);
                    x *= 2.0;
                }
                v
            }
        };
        if v.is_empty() || v.iter().any(|x| !x.is_finite()) {
            bail!("parameter `{name}`: no values, or a value that is not a finite number");
        }
        Ok(v)
    }
}

fn default_hw() -> Vec<String> {
    vec!["edge-256".into()]
}
fn default_images() -> usize {
    1000
}
fn default_calib() -> usize {
    500
}

/// A sweep plan (`PLAN.ron`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Name (titles and the default output directory).
    pub name: String,
    /// Models: zoo:NAME, .onnx, .tflite, .npum, .npuq.
    pub models: Vec<String>,
    /// Schemes (named, `as-shipped` for an int8 .tflite, or a recipe .ron).
    pub schemes: Vec<String>,
    /// Base hardware: presets or RON files.
    #[serde(default = "default_hw")]
    pub hw: Vec<String>,
    /// Hardware parameters by field path (`mac.rows`, `buffers.wgt.bytes`); `a+b` sets
    /// both fields to each value (`mac.rows+mac.cols` for square arrays).
    #[serde(default)]
    pub params: BTreeMap<String, Values>,
    /// Conditions every point must satisfy, over parameter paths and numbers with
    /// `+ - * /`, parentheses and `== != < <= > >=` (e.g. `mac.rows * mac.cols <= 1024`).
    #[serde(default)]
    pub filters: Vec<String>,
    /// Throughput only: no accuracy, one timing-only run per point.
    #[serde(default)]
    pub timing_only: bool,
    /// Test images for accuracy (the embedded Fashion-MNIST test set).
    #[serde(default = "default_images")]
    pub images: usize,
    /// Calibration images for quantization (the embedded training subset).
    #[serde(default = "default_calib")]
    pub calib: usize,
}

impl Plan {
    /// Parses and validates a plan; `origin` names it in errors, with the line and
    /// column of what is wrong. Nothing runs for a plan that fails here.
    pub fn from_ron(text: &str, origin: &str) -> Result<Plan> {
        let p: Plan = ron::from_str(text).map_err(|e| anyhow!("{origin}: {e}"))?;
        p.validate(text, origin)?;
        Ok(p)
    }

    /// Checks everything a plan names before any point runs: models and schemes exist,
    /// base hardware loads, every parameter path is a number in every base description,
    /// value lists expand, filters parse and use only the plan's parameters.
    pub fn validate(&self, text: &str, origin: &str) -> Result<()> {
        let at = |needle: &str| match locate(text, needle) {
            Some((l, c)) => format!("{origin}:{l}:{c}"),
            None => origin.to_string(),
        };
        if self.models.is_empty() || self.schemes.is_empty() || self.hw.is_empty() {
            bail!("{origin}: a plan needs at least one model, scheme and hardware");
        }
        if !self.timing_only && self.images == 0 {
            bail!(
                "{}: images: 0 test images measure no accuracy (set timing_only: true for throughput only)",
                at("images")
            );
        }
        if self.calib == 0 {
            bail!("{}: calib: 0 calibration images (at least 1)", at("calib"));
        }
        for m in &self.models {
            if let Some(name) = m.strip_prefix("zoo:") {
                npu_toolchain::zoo::trained(name).map_err(|e| anyhow!("{}: model `{m}`: {e}", at(m)))?;
            } else if !Path::new(m).is_file() {
                bail!("{}: model `{m}`: no such file", at(m));
            }
        }
        for s in &self.schemes {
            if s.ends_with(".ron") {
                let t = std::fs::read_to_string(s).map_err(|e| anyhow!("{}: scheme `{s}`: cannot read: {e}", at(s)))?;
                ron::from_str::<npu_toolchain::quant::Scheme>(&t)
                    .map_err(|e| anyhow!("{}: scheme `{s}`: not a valid recipe: {e}", at(s)))?;
            } else if s != npu_toolchain::tflite::AS_SHIPPED {
                npu_app::Recipe::named(s, self.calib.max(1)).map_err(|e| anyhow!("{}: {e}", at(s)))?;
            }
        }
        for h in &self.hw {
            let base = load::hardware(h).map_err(|e| anyhow!("{}: hw `{h}`: {e:#}", at(h)))?;
            let v = serde_json::to_value(&base)?;
            for key in self.params.keys() {
                for path in key.split('+') {
                    let mut node = &v;
                    for part in path.split('.') {
                        node = node.get(part).ok_or_else(|| {
                            anyhow!(
                                "{}: parameter `{path}`: `{part}` is not a field of the hardware description `{h}` \
                                 (fields here: {})",
                                at(key),
                                node.as_object().map_or("none".into(), |o| o
                                    .keys()
                                    .cloned()
                                    .collect::<Vec<_>>()
                                    .join(", "))
                            )
                        })?;
                    }
                    if !node.is_number() {
                        bail!("{}: parameter `{path}` is not a number in the hardware description `{h}`", at(key));
                    }
                }
            }
        }
        for (k, values) in &self.params {
            values.expand(k).map_err(|e| anyhow!("{}: {e:#}", at(k)))?;
        }
        for f in &self.filters {
            let e = Expr::parse(f).map_err(|e| anyhow!("{}: {e:#}", at(f)))?;
            let mut vars = Vec::new();
            e.vars(&mut vars);
            if let Some(v) = vars.iter().find(|v| !self.params.contains_key(*v)) {
                bail!(
                    "{}: filter `{f}`: `{v}` is not a parameter of the plan (parameters: {})",
                    at(f),
                    self.params.keys().cloned().collect::<Vec<_>>().join(", ")
                );
            }
        }
        Ok(())
    }
}

/// Line and column (1-based) of the first `"needle"` (quoted, as RON writes strings)
/// or, failing that, of a bare `needle` (a field name).
fn locate(text: &str, needle: &str) -> Option<(usize, usize)> {
    let quoted = format!("\"{needle}\"");
    let pos = text.find(&quoted).or_else(|| text.find(needle))?;
    let line = text[..pos].matches('\n').count() + 1;
    let col = pos - text[..pos].rfind('\n').map_or(0, |i| i + 1) + 1;
    Some((line, col))
}

/// Exits non-zero when points failed: the results are written, but the run is not a
/// success.
pub fn failures(records: &[Record]) -> Result<()> {
    let failed: Vec<&Record> = records.iter().filter(|r| r.error.is_some()).collect();
    if let Some(first) = failed.first() {
        bail!(
            "{} of {} points could not run (see summary.md); the first, #{} ({} {} on {}): {}",
            failed.len(),
            records.len(),
            first.index,
            first.model,
            first.scheme,
            first.hw,
            first.error.as_deref().unwrap_or("")
        );
    }
    Ok(())
}

/// One point of a plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Position in the plan's full list of points.
    pub index: usize,
    /// Model.
    pub model: String,
    /// Scheme.
    pub scheme: String,
    /// Base hardware.
    pub hw: String,
    /// Parameter values (by parameter key as written in the plan).
    pub params: BTreeMap<String, f64>,
}

/// Every point of the plan, in order (models, schemes, hardware, then parameters in
/// name order, the last varying fastest), filtered.
pub fn expand(p: &Plan) -> Result<Vec<Point>> {
    let filters = p.filters.iter().map(|f| Expr::parse(f).map(|e| (f, e))).collect::<Result<Vec<_>>>()?;
    let names: Vec<&String> = p.params.keys().collect();
    let values: Vec<Vec<f64>> = p.params.iter().map(|(k, v)| v.expand(k)).collect::<Result<_>>()?;
    let combos: usize = values.iter().map(Vec::len).product();
    let total = combos * p.models.len() * p.schemes.len() * p.hw.len();
    if total > 1_000_000 {
        bail!("the plan has {total} points before filtering (at most 1,000,000)");
    }
    let mut out = Vec::new();
    for model in &p.models {
        for scheme in &p.schemes {
            for hw in &p.hw {
                for c in 0..combos {
                    let mut rest = c;
                    let mut params = BTreeMap::new();
                    for (i, vs) in values.iter().enumerate().rev() {
                        params.insert(names[i].clone(), vs[rest % vs.len()]);
                        rest /= vs.len();
                    }
                    let mut keep = true;
                    for (text, e) in &filters {
                        if !e.holds(&params).map_err(|m| anyhow!("filter `{text}`: {m}"))? {
                            keep = false;
                            break;
                        }
                    }
                    if keep {
                        let index = out.len();
                        out.push(Point { index, model: model.clone(), scheme: scheme.clone(), hw: hw.clone(), params });
                    }
                }
            }
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Filters: a small expression language.

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Num(f64),
    Var(String),
    Bin(char, Box<Expr>, Box<Expr>),
    Cmp(&'static str, Box<Expr>, Box<Expr>),
}

impl Expr {
    fn parse(text: &str) -> Result<Expr> {
        let toks = tokenize(text).map_err(|m| anyhow!("filter `{text}`: {m}"))?;
        let mut pos = 0;
        let e = parse_cmp(&toks, &mut pos).map_err(|m| anyhow!("filter `{text}`: {m}"))?;
        if pos != toks.len() {
            bail!("filter `{text}`: unexpected `{}`", toks[pos]);
        }
        if !matches!(e, Expr::Cmp(..)) {
            bail!("filter `{text}`: needs a comparison (==, !=, <, <=, >, >=)");
        }
        Ok(e)
    }

    /// The parameter names the expression reads.
    fn vars(&self, out: &mut Vec<String>) {
        match self {
            Expr::Num(_) => {}
            Expr::Var(v) => out.push(v.clone()),
            Expr::Bin(_, a, b) | Expr::Cmp(_, a, b) => {
                a.vars(out);
                b.vars(out);
            }
        }
    }

    fn value(&self, vars: &BTreeMap<String, f64>) -> std::result::Result<f64, String> {
        Ok(match self {
            Expr::Num(v) => *v,
            Expr::Var(name) => {
                // A variable is a parameter key or one of the paths a `a+b` key sets.
                let hit = vars.iter().find(|(k, _)| *k == name || k.split('+').any(|p| p == name));
                *hit.ok_or_else(|| format!("`{name}` is not a swept parameter"))?.1
            }
            Expr::Bin(op, a, b) => {
                let (x, y) = (a.value(vars)?, b.value(vars)?);
                match op {
                    '+' => x + y,
                    '-' => x - y,
                    '*' => x * y,
                    _ => x / y,
                }
            }
            Expr::Cmp(..) => return Err("a comparison is not a number".into()),
        })
    }

    fn holds(&self, vars: &BTreeMap<String, f64>) -> std::result::Result<bool, String> {
        let Expr::Cmp(op, a, b) = self else { return Err("not a comparison".into()) };
        let (x, y) = (a.value(vars)?, b.value(vars)?);
        Ok(match *op {
            "==" => x == y,
            "!=" => x != y,
            "<" => x < y,
            "<=" => x <= y,
            ">" => x > y,
            _ => x >= y,
        })
    }
}

fn tokenize(s: &str) -> std::result::Result<Vec<String>, String> {
    let c: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        if ch.is_whitespace() {
            i += 1;
        } else if ch.is_ascii_alphanumeric() || ch == '_' || ch == '.' {
            let start = i;
            while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '_' || c[i] == '.') {
                i += 1;
            }
            out.push(c[start..i].iter().collect());
        } else if "<>=!".contains(ch) {
            if i + 1 < c.len() && c[i + 1] == '=' {
                out.push(format!("{ch}="));
                i += 2;
            } else if ch == '<' || ch == '>' {
                out.push(ch.to_string());
                i += 1;
            } else {
                return Err(format!("`{ch}` must be followed by `=`"));
            }
        } else if "+-*/()".contains(ch) {
            out.push(ch.to_string());
            i += 1;
        } else {
            return Err(format!("unexpected character `{ch}`"));
        }
    }
    Ok(out)
}

fn parse_cmp(t: &[String], pos: &mut usize) -> std::result::Result<Expr, String> {
    let a = parse_sum(t, pos)?;
    let op = match t.get(*pos).map(String::as_str) {
        Some("==") => "==",
        Some("!=") => "!=",
        Some("<") => "<",
        Some("<=") => "<=",
        Some(">") => ">",
        Some(">=") => ">=",
        _ => return Ok(a),
    };
    *pos += 1;
    let b = parse_sum(t, pos)?;
    Ok(Expr::Cmp(op, Box::new(a), Box::new(b)))
}

fn parse_sum(t: &[String], pos: &mut usize) -> std::result::Result<Expr, String> {
    let mut a = parse_prod(t, pos)?;
    while let Some(op @ ("+" | "-")) = t.get(*pos).map(String::as_str) {
        *pos += 1;
        let b = parse_prod(t, pos)?;
        a = Expr::Bin(op.chars().next().unwrap_or('+'), Box::new(a), Box::new(b));
    }
    Ok(a)
}

fn parse_prod(t: &[String], pos: &mut usize) -> std::result::Result<Expr, String> {
    let mut a = parse_atom(t, pos)?;
    while let Some(op @ ("*" | "/")) = t.get(*pos).map(String::as_str) {
        *pos += 1;
        let b = parse_atom(t, pos)?;
        a = Expr::Bin(op.chars().next().unwrap_or('*'), Box::new(a), Box::new(b));
    }
    Ok(a)
}

fn parse_atom(t: &[String], pos: &mut usize) -> std::result::Result<Expr, String> {
    let tok = t.get(*pos).ok_or("unexpected end")?;
    *pos += 1;
    if tok == "(" {
        let e = parse_sum(t, pos)?;
        if t.get(*pos).map(String::as_str) != Some(")") {
            return Err("missing `)`".into());
        }
        *pos += 1;
        return Ok(e);
    }
    if let Ok(v) = tok.parse::<f64>() {
        return Ok(Expr::Num(v));
    }
    if tok.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_') {
        return Ok(Expr::Var(tok.clone()));
    }
    Err(format!("unexpected `{tok}`"))
}

// ---------------------------------------------------------------------------------------
// Hardware variants.

/// `base` with each parameter path set (through the description's serde form), renamed
/// and validated.
pub fn hardware_variant(base: &npu_hw::HwConfig, params: &BTreeMap<String, f64>) -> Result<npu_hw::HwConfig> {
    let mut v = serde_json::to_value(base)?;
    for (key, value) in params {
        for path in key.split('+') {
            let mut node = &mut v;
            for part in path.split('.') {
                node = node.get_mut(part).ok_or_else(|| {
                    anyhow!("hardware parameter `{path}`: `{part}` is not a field of the description")
                })?;
            }
            let new = if node.is_u64() || node.is_i64() {
                if value.fract() != 0.0 || *value < 0.0 {
                    bail!("hardware parameter `{path}` is a whole number; got {value}");
                }
                serde_json::Value::from(*value as u64)
            } else if node.is_f64() {
                serde_json::Value::from(*value)
            } else {
                bail!("hardware parameter `{path}` is not a number in the description");
            };
            *node = new;
        }
    }
    let mut hw: npu_hw::HwConfig = serde_json::from_value(v)?;
    if !params.is_empty() {
        let tag: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        hw.name = format!("{}[{}]", base.name, tag.join(","));
    }
    hw.validate(&hw.name)?;
    Ok(hw)
}

// ---------------------------------------------------------------------------------------
// Shards.

/// Which shard of how many: `I/N` (0-based), or `auto` from a scheduler's environment —
/// Slurm job arrays (`SLURM_ARRAY_TASK_ID`, minus `SLURM_ARRAY_TASK_MIN`, of
/// `SLURM_ARRAY_TASK_COUNT`) or Kubernetes Indexed Jobs (`JOB_COMPLETION_INDEX` of
/// `NPU_SHARD_COUNT`, which the Job sets to its `completions`).
pub fn parse_shard(spec: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<(usize, usize)> {
    let num = |name: &str, v: String| -> Result<usize> {
        v.trim().parse().map_err(|_| anyhow!("--shard auto: {name}=`{v}` is not a whole number"))
    };
    let (i, n) = if spec == "auto" {
        if let Some(id) = env("SLURM_ARRAY_TASK_ID") {
            let id = num("SLURM_ARRAY_TASK_ID", id)?;
            let min = env("SLURM_ARRAY_TASK_MIN").map(|v| num("SLURM_ARRAY_TASK_MIN", v)).transpose()?.unwrap_or(0);
            let count = env("SLURM_ARRAY_TASK_COUNT")
                .ok_or_else(|| anyhow!("--shard auto: SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not"))?;
            (
                id.checked_sub(min).ok_or_else(|| anyhow!("--shard auto: task {id} below SLURM_ARRAY_TASK_MIN"))?,
                num("SLURM_ARRAY_TASK_COUNT", count)?,
            )
        } else if let Some(idx) = env("JOB_COMPLETION_INDEX") {
            let count = env("NPU_SHARD_COUNT").ok_or_else(|| {
                anyhow!("--shard auto: JOB_COMPLETION_INDEX is set; set NPU_SHARD_COUNT to the Job's completions")
            })?;
            (num("JOB_COMPLETION_INDEX", idx)?, num("NPU_SHARD_COUNT", count)?)
        } else {
            bail!("--shard auto: neither SLURM_ARRAY_TASK_ID (Slurm job array) nor JOB_COMPLETION_INDEX (Kubernetes Indexed Job) is set");
        }
    } else {
        let (a, b) = spec.split_once('/').ok_or_else(|| anyhow!("--shard {spec}: expected I/N (e.g. 0/4) or auto"))?;
        let p = |t: &str| t.trim().parse::<usize>().map_err(|_| anyhow!("--shard {spec}: `{t}` is not a whole number"));
        (p(a)?, p(b)?)
    };
    if n == 0 || i >= n {
        bail!("shard {i} of {n}: the index must be below the count");
    }
    Ok((i, n))
}

// ---------------------------------------------------------------------------------------
// Records.

/// The result of one point (no wall-clock time: the same wherever it was computed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Position in the plan.
    pub index: usize,
    /// Content key (SHA-256, hex) of everything the result depends on.
    pub key: String,
    /// Model.
    pub model: String,
    /// Scheme.
    pub scheme: String,
    /// Hardware name (the base and its parameters).
    pub hw: String,
    /// Parameter values.
    pub params: BTreeMap<String, f64>,
    /// Peak INT8 MACs per cycle of the hardware.
    pub peak_macs: u64,
    /// Cycles per frame.
    pub cycles: Option<u64>,
    /// Frames per second.
    pub fps: Option<f64>,
    /// Energy per frame, µJ.
    pub energy_uj: Option<f64>,
    /// Average power, mW.
    pub power_mw: Option<f64>,
    /// Weight bytes off-chip.
    pub weight_bytes: Option<u64>,
    /// Off-chip bytes per frame.
    pub offchip_bytes: Option<u64>,
    /// Cycles over the roofline floor.
    pub roofline_ratio: Option<f64>,
    /// Top-1 accuracy, percent (not in timing-only sweeps).
    pub top1: Option<f64>,
    /// Images the accuracy is over.
    pub images: usize,
    /// Why the point could not run (invalid hardware, a missing MAC mode, …).
    pub error: Option<String>,
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Options of a sweep run.
pub struct RunOptions {
    /// Output directory.
    pub out: PathBuf,
    /// Cache directory (default: `out/cache`).
    pub cache: Option<PathBuf>,
    /// Shard `(i, n)`.
    pub shard: (usize, usize),
    /// Threads.
    pub jobs: usize,
    /// No progress bar.
    pub quiet: bool,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Points of the whole plan.
    pub points: usize,
    /// Points of this shard.
    pub shard_points: usize,
    /// Of those, taken from the cache.
    pub cached: usize,
    /// Records of this shard, by index.
    pub records: Vec<Record>,
}

/// A model's identity for keys: zoo name and tool version, or the file's hash.
fn model_id(model: &str) -> Result<String> {
    if model.starts_with("zoo:") {
        return Ok(format!("{model}@{}", env!("CARGO_PKG_VERSION")));
    }
    let bytes = std::fs::read(model).with_context(|| format!("cannot read {model}"))?;
    Ok(format!("sha256:{}", sha256_hex(&bytes)))
}

fn scheme_id(scheme: &str) -> Result<String> {
    if scheme.ends_with(".ron") {
        let bytes = std::fs::read(scheme).with_context(|| format!("cannot read {scheme}"))?;
        return Ok(format!("recipe:{}", sha256_hex(&bytes)));
    }
    Ok(scheme.to_string())
}

type Quantized = Arc<npu_toolchain::quant::QModel>;

fn quantize(model: &str, scheme: &str, calib: usize) -> Result<Quantized> {
    let path = Path::new(model);
    if scheme == npu_toolchain::tflite::AS_SHIPPED || path.extension().is_some_and(|e| e == "npuq") {
        return Ok(Arc::new(load::quantized(path)?));
    }
    let m = load::model(path)?;
    let (train, _) = load::train_set(None)?;
    // Named schemes and composite recipes (`int8-per-channel-dfq`, `w4a8-2of4`, …) alike.
    let mut recipe = if scheme.ends_with(".ron") {
        let text = std::fs::read_to_string(scheme).with_context(|| format!("cannot read {scheme}"))?;
        let s = ron::from_str(&text).map_err(|e| anyhow!("{scheme}: {e}"))?;
        npu_app::Recipe::from_scheme(scheme, scheme, s, calib)
    } else {
        npu_app::Recipe::named(scheme, calib)?
    };
    if m.check_images(&train).is_err() {
        // A model that does not take the data set's images: ranges without data.
        recipe.ranges = npu_toolchain::quant::RangeSource::DataFree;
    }
    Ok(Arc::new(recipe.quantize(&m, &train)?))
}

/// Runs this shard's points of `plan`; streams records to `out/results.jsonl`.
pub fn run(plan: &Plan, o: &RunOptions, log: &mut dyn std::io::Write) -> Result<Summary> {
    let points = expand(plan)?;
    let (si, sn) = o.shard;
    let mine: Vec<&Point> = points.iter().filter(|p| p.index % sn == si).collect();
    std::fs::create_dir_all(&o.out).with_context(|| format!("cannot create {}", o.out.display()))?;
    let cache = o.cache.clone().unwrap_or_else(|| o.out.join("cache"));
    std::fs::create_dir_all(&cache).with_context(|| format!("cannot create {}", cache.display()))?;
    let meta = serde_json::json!({ "plan": plan, "points": points.len(), "shard": [si, sn] });
    crate::write_file(&o.out.join("plan.json"), serde_json::to_string_pretty(&meta)?.as_bytes())?;

    // Identities and hardware variants first (bad plans fail before any work).
    let mut ids = HashMap::new();
    for m in &plan.models {
        ids.insert(m.clone(), model_id(m)?);
    }
    let mut scheme_ids = HashMap::new();
    for s in &plan.schemes {
        scheme_ids.insert(s.clone(), scheme_id(s)?);
    }
    let mut bases = HashMap::new();
    for h in &plan.hw {
        bases.insert(h.clone(), load::hardware(h)?);
    }
    struct Job<'a> {
        point: &'a Point,
        hw: std::result::Result<npu_hw::HwConfig, String>,
        key: String,
    }
    let mut jobs = Vec::with_capacity(mine.len());
    for p in &mine {
        let hw = hardware_variant(&bases[&p.hw], &p.params).map_err(|e| format!("{e:#}"));
        let hw_text = hw.as_ref().map_or_else(|e| format!("invalid: {e}"), npu_hw::HwConfig::to_ron);
        let ident = serde_json::json!({
            "format": FORMAT,
            "tool": env!("CARGO_PKG_VERSION"),
            "sources": SOURCES,
            "model": ids[&p.model],
            "scheme": scheme_ids[&p.scheme],
            "hw": hw_text,
            "timing_only": plan.timing_only,
            "images": if plan.timing_only { 0 } else { plan.images },
            "calib": plan.calib,
        });
        jobs.push(Job { point: p, hw, key: sha256_hex(ident.to_string().as_bytes()) });
    }

    let results_path = o.out.join("results.jsonl");
    let file =
        std::fs::File::create(&results_path).with_context(|| format!("cannot create {}", results_path.display()))?;
    let sink = Mutex::new((std::io::BufWriter::new(file), Vec::<Record>::new()));
    let emit = |r: Record, cached: bool| -> Result<()> {
        let line = serde_json::to_string(&r)?;
        if !cached {
            let mut c = r.clone();
            c.index = 0;
            // Written whole then renamed: shards sharing a cache never read half a record.
            let tmp = cache.join(format!("{}.json.{}.tmp", r.key, std::process::id()));
            crate::write_file(&tmp, serde_json::to_string(&c)?.as_bytes())?;
            std::fs::rename(&tmp, cache.join(format!("{}.json", r.key)))
                .with_context(|| format!("cannot rename {}", tmp.display()))?;
        }
        let mut g = sink.lock().map_err(|_| anyhow!("a sweep thread panicked"))?;
        writeln!(g.0, "{line}")?;
        g.0.flush()?;
        g.1.push(r);
        Ok(())
    };
    let mut todo = Vec::new();
    let mut cached = 0;
    for j in jobs {
        let path = cache.join(format!("{}.json", j.key));
        let hit = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice::<Record>(&b).ok());
        match hit {
            Some(mut r) => {
                r.index = j.point.index;
                emit(r, true)?;
                cached += 1;
            }
            None => todo.push(j),
        }
    }
    let test = if plan.timing_only { None } else { Some(npu_toolchain::data::fashion_mnist_test()?.take(plan.images)) };
    let quantized: HashMap<(String, String), OnceLock<std::result::Result<Quantized, String>>> =
        todo.iter().map(|j| ((j.point.model.clone(), j.point.scheme.clone()), OnceLock::new())).collect();
    let pb = if o.quiet { indicatif::ProgressBar::hidden() } else { indicatif::ProgressBar::new(todo.len() as u64) };
    pb.set_style(
        indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} points, {elapsed} (ETA {eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_prefix(format!("sweep {}", plan.name));
    let pool = rayon::ThreadPoolBuilder::new().num_threads(o.jobs.max(1)).build().context("cannot start threads")?;
    let outcome: Vec<Result<()>> = pool.install(|| {
        use rayon::prelude::*;
        todo.par_iter()
            .map(|j| {
                let q = quantized[&(j.point.model.clone(), j.point.scheme.clone())].get_or_init(|| {
                    quantize(&j.point.model, &j.point.scheme, plan.calib).map_err(|e| format!("{e:#}"))
                });
                let r = measure(j.point, &j.key, q, &j.hw, test.as_ref());
                pb.inc(1);
                emit(r, false)
            })
            .collect()
    });
    pb.finish_and_clear();
    for r in outcome {
        r?;
    }
    let (mut w, mut records) = sink.into_inner().map_err(|_| anyhow!("a sweep thread panicked"))?;
    w.flush()?;
    records.sort_by_key(|r| r.index);
    writeln!(
        log,
        "sweep {}: {} of {} points in shard {si}/{sn}, {cached} from the cache, {} computed",
        plan.name,
        mine.len(),
        points.len(),
        mine.len() - cached
    )?;
    Ok(Summary { points: points.len(), shard_points: mine.len(), cached, records })
}

fn measure(
    p: &Point,
    key: &str,
    q: &std::result::Result<Quantized, String>,
    hw: &std::result::Result<npu_hw::HwConfig, String>,
    test: Option<&npu_toolchain::data::Dataset>,
) -> Record {
    let mut r = Record {
        index: p.index,
        key: key.to_string(),
        model: p.model.clone(),
        scheme: p.scheme.clone(),
        hw: p.hw.clone(),
        params: p.params.clone(),
        peak_macs: 0,
        cycles: None,
        fps: None,
        energy_uj: None,
        power_mw: None,
        weight_bytes: None,
        offchip_bytes: None,
        roofline_ratio: None,
        top1: None,
        images: 0,
        error: None,
    };
    let mut run = || -> std::result::Result<(), String> {
        let hw = hw.as_ref().map_err(Clone::clone)?;
        let q = q.as_ref().map_err(Clone::clone)?;
        r.hw = hw.name.clone();
        r.peak_macs = hw.peak_macs_per_cycle(npu_isa::MacMode::I8);
        let d = npu_app::Deployment::new((**q).clone(), hw.clone()).map_err(|e| e.to_string())?;
        let timing = d.timing().map_err(|e| e.to_string())?;
        let f = &timing.figures;
        r.cycles = Some(f.cycles);
        r.fps = Some(f.fps);
        r.energy_uj = Some(f.energy_uj);
        r.power_mw = Some(f.power_mw);
        r.weight_bytes = Some(f.weight_bytes);
        r.offchip_bytes = Some(f.offchip_bytes);
        r.roofline_ratio = Some(f.roofline_ratio);
        if let Some(t) = test {
            // Replayed in the sweep's own thread pool (jobs 0), beside the other points.
            let e = d.evaluate_labelled(&timing, t, 0, &p.scheme, &npu_app::NoProgress).map_err(|e| e.to_string())?;
            r.top1 = Some(e.top1() * 100.0);
            r.images = e.images;
        }
        Ok(())
    };
    if let Err(e) = run() {
        r.error = Some(e);
    }
    r
}

// ---------------------------------------------------------------------------------------
// Output: results, merge, summary and plots.

/// Reads a `results.jsonl`.
pub fn read_results(path: &Path) -> Result<Vec<Record>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| format!("{}:{}: not a sweep record", path.display(), i + 1))
        })
        .collect()
}

/// Combines shard outputs: every shard must come from the same plan, and together they
/// must cover it; returns the records in plan order.
pub fn merge(dirs: &[PathBuf]) -> Result<(Plan, Vec<Record>)> {
    if dirs.is_empty() {
        bail!("sweep merge: no directories given");
    }
    let mut plan: Option<(Plan, usize)> = None;
    let mut by_index: BTreeMap<usize, Record> = BTreeMap::new();
    for d in dirs {
        let meta_path = d.join("plan.json");
        let meta: serde_json::Value = serde_json::from_slice(
            &std::fs::read(&meta_path).with_context(|| format!("cannot read {}", meta_path.display()))?,
        )
        .with_context(|| format!("{}: not a sweep's plan.json", meta_path.display()))?;
        let p: Plan = serde_json::from_value(meta["plan"].clone())
            .with_context(|| format!("{}: no plan in it", meta_path.display()))?;
        let points =
            meta["points"].as_u64().ok_or_else(|| anyhow!("{}: no point count", meta_path.display()))? as usize;
        match &plan {
            None => plan = Some((p, points)),
            Some((q, n)) if *q != p || *n != points => {
                bail!("{}: a different plan from {}'s", d.display(), dirs[0].display())
            }
            Some(_) => {}
        }
        for r in read_results(&d.join("results.jsonl"))? {
            if let Some(old) = by_index.get(&r.index) {
                if *old != r {
                    bail!("point {} has different results in two shards ({})", r.index, d.display());
                }
            }
            by_index.insert(r.index, r);
        }
    }
    let (plan, points) = plan.ok_or_else(|| anyhow!("no plan"))?;
    let missing: Vec<usize> = (0..points).filter(|i| !by_index.contains_key(i)).collect();
    if !missing.is_empty() {
        let shown: Vec<String> = missing.iter().take(10).map(usize::to_string).collect();
        bail!(
            "the shards cover {} of {points} points; missing {}{}",
            points - missing.len(),
            shown.join(", "),
            if missing.len() > 10 { ", …" } else { "" }
        );
    }
    Ok((plan, by_index.into_values().collect()))
}

fn param_text(r: &Record) -> String {
    r.params.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
}

/// The summary table (Markdown).
pub fn markdown(plan: &Plan, records: &[Record]) -> String {
    let mut s = format!("# Sweep `{}`: {} points\n\n", plan.name, records.len());
    s.push_str("| # | model | scheme | hardware | parameters | peak MACs/cycle | cycles | frames/s | µJ/frame | mW | off-chip B/frame | top-1 % | error |\n");
    s.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    let f = |v: Option<f64>, d: usize| v.map_or("—".to_string(), |x| format!("{x:.d$}"));
    for r in records {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.index,
            r.model,
            r.scheme,
            r.hw.split('[').next().unwrap_or(&r.hw),
            param_text(r),
            r.peak_macs,
            r.cycles.map_or("—".into(), |c| c.to_string()),
            f(r.fps, 1),
            f(r.energy_uj, 2),
            f(r.power_mw, 1),
            r.offchip_bytes.map_or("—".into(), |c| c.to_string()),
            f(r.top1, 2),
            r.error.as_deref().unwrap_or("")
        ));
    }
    s
}

/// The records as CSV (the `csv` crate quotes what needs it).
pub fn csv(records: &[Record]) -> Result<Vec<u8>> {
    let names: Vec<String> = {
        let mut v: Vec<String> = records.iter().flat_map(|r| r.params.keys().cloned()).collect();
        v.sort();
        v.dedup();
        v
    };
    let mut w = ::csv::Writer::from_writer(Vec::new());
    let mut header: Vec<String> = ["index", "model", "scheme", "hw"].map(String::from).to_vec();
    header.extend(names.iter().cloned());
    header.extend(
        [
            "peak_macs",
            "cycles",
            "fps",
            "energy_uj",
            "power_mw",
            "weight_bytes",
            "offchip_bytes",
            "roofline_ratio",
            "top1_percent",
            "images",
            "error",
        ]
        .map(String::from),
    );
    w.write_record(&header)?;
    let o = |v: Option<f64>, d: usize| v.map_or(String::new(), |x| format!("{x:.d$}"));
    let u = |v: Option<u64>| v.map_or(String::new(), |x| x.to_string());
    for r in records {
        let mut row = vec![r.index.to_string(), r.model.clone(), r.scheme.clone(), r.hw.clone()];
        row.extend(names.iter().map(|n| r.params.get(n).map_or(String::new(), |v| v.to_string())));
        row.extend([
            r.peak_macs.to_string(),
            u(r.cycles),
            o(r.fps, 1),
            o(r.energy_uj, 3),
            o(r.power_mw, 2),
            u(r.weight_bytes),
            u(r.offchip_bytes),
            o(r.roofline_ratio, 4),
            o(r.top1, 2),
            r.images.to_string(),
            r.error.clone().unwrap_or_default(),
        ]);
        w.write_record(&row)?;
    }
    w.into_inner().map_err(|e| anyhow!("csv: {e}"))
}

fn series_label(r: &Record, multi_model: bool) -> String {
    if multi_model {
        format!("{} {}", r.model, r.scheme)
    } else {
        r.scheme.clone()
    }
}

const COLORS: [plotters::style::RGBColor; 10] = [
    plotters::style::RGBColor(31, 119, 180),
    plotters::style::RGBColor(214, 39, 40),
    plotters::style::RGBColor(44, 160, 44),
    plotters::style::RGBColor(255, 127, 14),
    plotters::style::RGBColor(148, 103, 189),
    plotters::style::RGBColor(140, 86, 75),
    plotters::style::RGBColor(227, 119, 194),
    plotters::style::RGBColor(127, 127, 127),
    plotters::style::RGBColor(188, 189, 34),
    plotters::style::RGBColor(23, 190, 207),
];

/// Frames/s against one parameter: every point as a marker, a line through each
/// series' best at each value.
pub fn plot_param(plan: &Plan, records: &[Record], param: &str) -> Result<String> {
    use plotters::prelude::*;
    let multi = plan.models.len() > 1;
    let ok: Vec<&Record> = records.iter().filter(|r| r.fps.is_some() && r.params.contains_key(param)).collect();
    let xs: Vec<f64> = ok.iter().map(|r| r.params[param]).collect();
    let ys: Vec<f64> = ok.iter().filter_map(|r| r.fps).collect();
    if ok.is_empty() {
        bail!("no point ran, nothing to plot against `{param}`");
    }
    // Doubling parameters (and any positive range spanning 8× or more) on a log2 axis.
    let doubling = matches!(plan.params.get(param), Some(Values::Doubling { .. }));
    let log_x = xs.iter().all(|x| *x > 0.0)
        && (doubling
            || xs.iter().copied().fold(f64::MIN, f64::max) / xs.iter().copied().fold(f64::MAX, f64::min) >= 8.0);
    let tx = |x: f64| if log_x { x.log2() } else { x };
    let (x0, x1) = xs.iter().fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(tx(*x)), b.max(tx(*x))));
    let y1 = ys.iter().copied().fold(0.0, f64::max) * 1.08;
    let pad = if log_x { 0.5 } else { ((x1 - x0) * 0.05).max(0.5) };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 460)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("plot: {e}"))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("{}: frames/s vs {param}", plan.name), ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d((x0 - pad)..(x1 + pad), 0.0..y1.max(1.0))
            .map_err(|e| anyhow!("plot: {e}"))?;
        let steps = (x1 - x0).round() as usize + 2;
        chart
            .configure_mesh()
            .x_desc(if log_x { format!("{param} (log2 scale)") } else { param.to_string() })
            .y_desc("frames/s")
            .x_labels(if log_x { steps } else { 10 })
            .x_label_formatter(&|x| {
                if !log_x {
                    format!("{x}")
                } else if (x - x.round()).abs() < 1e-6 {
                    format!("{}", 2f64.powf(x.round()))
                } else {
                    String::new()
                }
            })
            .y_label_formatter(&|y| format!("{y:.0}"))
            .draw()
            .map_err(|e| anyhow!("plot: {e}"))?;
        let mut labels: Vec<String> = ok.iter().map(|r| series_label(r, multi)).collect();
        labels.sort();
        labels.dedup();
        for (si, label) in labels.iter().enumerate() {
            let color = COLORS[si % COLORS.len()];
            let pts: Vec<(f64, f64)> = ok
                .iter()
                .filter(|r| series_label(r, multi) == *label)
                .map(|r| (tx(r.params[param]), r.fps.unwrap_or(0.0)))
                .collect();
            chart
                .draw_series(pts.iter().map(|p| Circle::new(*p, 3, color.mix(0.45).filled())))
                .map_err(|e| anyhow!("plot: {e}"))?;
            let mut best: BTreeMap<i64, (f64, f64)> = BTreeMap::new();
            for (x, y) in &pts {
                let k = (x * 1e6) as i64;
                let e = best.entry(k).or_insert((*x, *y));
                if *y > e.1 {
                    *e = (*x, *y);
                }
            }
            chart
                .draw_series(LineSeries::new(best.values().copied(), color.stroke_width(2)))
                .map_err(|e| anyhow!("plot: {e}"))?
                .label(label.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(|e| anyhow!("plot: {e}"))?;
        root.present().map_err(|e| anyhow!("plot: {e}"))?;
    }
    Ok(svg)
}

/// Accuracy (or, timing-only, frames/s) against energy per frame, with the Pareto front.
pub fn plot_pareto(plan: &Plan, records: &[Record]) -> Result<String> {
    use plotters::prelude::*;
    let accuracy = records.iter().any(|r| r.top1.is_some());
    let y_of = |r: &Record| if accuracy { r.top1 } else { r.fps };
    let ok: Vec<&Record> = records.iter().filter(|r| r.energy_uj.is_some() && y_of(r).is_some()).collect();
    if ok.is_empty() {
        bail!("no point ran, nothing to plot");
    }
    let pts: Vec<(f64, f64)> = ok.iter().map(|r| (r.energy_uj.unwrap_or(0.0), y_of(r).unwrap_or(0.0))).collect();
    // Front: lower energy and higher y.
    let mut front: Vec<(f64, f64)> = pts
        .iter()
        .filter(|(e, y)| !pts.iter().any(|(e2, y2)| e2 <= e && y2 >= y && (e2 < e || y2 > y)))
        .copied()
        .collect();
    front.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (e0, e1) = pts.iter().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (y0, y1) = pts.iter().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    let (ep, yp) = (((e1 - e0) * 0.06).max(0.01), ((y1 - y0) * 0.08).max(0.1));
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 460)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("plot: {e}"))?;
        let title = if accuracy { "top-1 vs energy" } else { "frames/s vs energy" };
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("{}: {title} (Pareto front)", plan.name), ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d((e0 - ep).max(0.0)..(e1 + ep), (y0 - yp)..(y1 + yp))
            .map_err(|e| anyhow!("plot: {e}"))?;
        chart
            .configure_mesh()
            .x_desc("µJ per frame")
            .y_desc(if accuracy { "top-1 %" } else { "frames/s" })
            .y_label_formatter(&|y| if accuracy { format!("{y:.1}") } else { format!("{y:.0}") })
            .draw()
            .map_err(|e| anyhow!("plot: {e}"))?;
        let multi = plan.models.len() > 1;
        let mut labels: Vec<String> = ok.iter().map(|r| series_label(r, multi)).collect();
        labels.sort();
        labels.dedup();
        for (si, label) in labels.iter().enumerate() {
            let color = COLORS[si % COLORS.len()];
            chart
                .draw_series(ok.iter().filter(|r| series_label(r, multi) == *label).map(|r| {
                    Circle::new((r.energy_uj.unwrap_or(0.0), y_of(r).unwrap_or(0.0)), 3, color.mix(0.6).filled())
                }))
                .map_err(|e| anyhow!("plot: {e}"))?
                .label(label.clone())
                .legend(move |(x, y)| Circle::new((x + 8, y), 3, color.filled()));
        }
        chart
            .draw_series(front.iter().map(|p| Circle::new(*p, 6, BLACK.stroke_width(1))))
            .map_err(|e| anyhow!("plot: {e}"))?;
        chart
            .draw_series(LineSeries::new(front, BLACK.stroke_width(1)))
            .map_err(|e| anyhow!("plot: {e}"))?
            .label("Pareto front (ringed)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLACK));
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerRight)
            .draw()
            .map_err(|e| anyhow!("plot: {e}"))?;
        root.present().map_err(|e| anyhow!("plot: {e}"))?;
    }
    Ok(svg)
}

/// Writes `results.jsonl` (plan order), `summary.md`, `summary.csv` and the plots into
/// `dir`; returns the file names.
pub fn write_outputs(dir: &Path, plan: &Plan, records: &[Record], rewrite_results: bool) -> Result<Vec<String>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut written = Vec::new();
    if rewrite_results {
        let mut text = String::new();
        for r in records {
            text.push_str(&serde_json::to_string(r)?);
            text.push('\n');
        }
        crate::write_file(&dir.join("results.jsonl"), text.as_bytes())?;
        written.push("results.jsonl".to_string());
    }
    crate::write_file(&dir.join("summary.md"), markdown(plan, records).as_bytes())?;
    crate::write_file(&dir.join("summary.csv"), &csv(records)?)?;
    written.extend(["summary.md".to_string(), "summary.csv".to_string()]);
    if records.iter().any(|r| r.fps.is_some()) {
        for name in plan.params.keys() {
            let distinct: std::collections::BTreeSet<i64> =
                records.iter().filter_map(|r| r.params.get(name)).map(|v| (v * 1e6) as i64).collect();
            if distinct.len() > 1 {
                let file = format!("fps_vs_{}.svg", name.replace(['.', '+'], "_"));
                crate::write_file(&dir.join(&file), plot_param(plan, records, name)?.as_bytes())?;
                written.push(file);
            }
        }
        crate::write_file(&dir.join("pareto_energy.svg"), plot_pareto(plan, records)?.as_bytes())?;
        written.push("pareto_energy.svg".to_string());
    }
    Ok(written)
}
