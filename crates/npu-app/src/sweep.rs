//! Design-space sweeps: plans (models × schemes × hardware parameters by field path,
//! with filters), their expansion into points, hardware variants and the measurement of
//! one point. Files — the cache, streamed results, summaries and plots — are the front
//! end's.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use npu_hw::HwConfig;

use crate::{Deployment, NoProgress, Recipe, Result};

macro_rules! err {
    ($($t:tt)*) => { crate::Error::Invalid(format!($($t)*)) };
}
macro_rules! fail {
    ($($t:tt)*) => { return Err(crate::Error::Invalid(format!($($t)*))) };
}

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
                    fail!("parameter `{name}`: Range needs finite bounds and a positive step");
                }
                let n = ((to - from) / step + 1e-9).floor();
                if n > 10_000.0 {
                    fail!("parameter `{name}`: Range has more than 10,000 values");
                }
                (0..=n.max(-1.0) as i64).map(|i| from + i as f64 * step).collect()
            }
            Values::Doubling { from, to } => {
                if !(*from > 0.0 && to.is_finite()) {
                    fail!("parameter `{name}`: Doubling needs a positive start and a finite end");
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
            fail!("parameter `{name}`: no values, or a value that is not a finite number");
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
    /// Test data for accuracy, in any form `--data` takes (docs/data.md); default: the
    /// embedded Fashion-MNIST test set.
    #[serde(default)]
    pub data: Option<String>,
    /// Calibration data, likewise; default: the embedded training subset.
    #[serde(default)]
    pub calib_data: Option<String>,
}

impl Plan {
    /// Parses a plan's RON text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Plan> {
        ron::from_str(text).map_err(|e| err!("{origin}: {e}"))
    }

    /// The checks that need nothing but the plan: it names models, schemes and
    /// hardware, and positive image and calibration counts. Errors give the plan's line
    /// and column.
    pub fn check_counts(&self, text: &str, origin: &str) -> Result<()> {
        let at = |needle: &str| at(text, origin, needle);
        if self.models.is_empty() || self.schemes.is_empty() || self.hw.is_empty() {
            fail!("{origin}: a plan needs at least one model, scheme and hardware");
        }
        if !self.timing_only && self.images == 0 {
            fail!(
                "{}: images: 0 test images measure no accuracy (set timing_only: true for throughput only)",
                at("images")
            );
        }
        if self.calib == 0 {
            fail!("{}: calib: 0 calibration images (at least 1)", at("calib"));
        }
        for s in &self.schemes {
            if !s.ends_with(".ron") && s != npu_tflite::AS_SHIPPED {
                Recipe::named(s, self.calib).map_err(|e| err!("{}: {e}", at(s)))?;
            }
        }
        Ok(())
    }

    /// Checks the parameters against the base hardware descriptions (`(name as the plan
    /// writes it, description)`): every path is a number in every base, value lists
    /// expand, filters parse and use only the plan's parameters.
    pub fn check_params(&self, text: &str, origin: &str, bases: &[(String, HwConfig)]) -> Result<()> {
        let at = |needle: &str| at(text, origin, needle);
        for (h, base) in bases {
            let v = serde_json::to_value(base).map_err(|e| err!("hw `{h}`: {e}"))?;
            for key in self.params.keys() {
                for path in key.split('+') {
                    let mut node = &v;
                    for part in path.split('.') {
                        node = node.get(part).ok_or_else(|| {
                            err!(
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
                        fail!("{}: parameter `{path}` is not a number in the hardware description `{h}`", at(key));
                    }
                }
            }
        }
        for (k, values) in &self.params {
            values.expand(k).map_err(|e| err!("{}: {e}", at(k)))?;
        }
        for f in &self.filters {
            let e = Expr::parse(f).map_err(|e| err!("{}: {e}", at(f)))?;
            let mut vars = Vec::new();
            e.vars(&mut vars);
            if let Some(v) = vars.iter().find(|v| !self.params.contains_key(*v)) {
                fail!(
                    "{}: filter `{f}`: `{v}` is not a parameter of the plan (parameters: {})",
                    at(f),
                    self.params.keys().cloned().collect::<Vec<_>>().join(", ")
                );
            }
        }
        Ok(())
    }
}

/// `origin:LINE:COL` of `needle` in the plan's text, or `origin`.
pub fn at(text: &str, origin: &str, needle: &str) -> String {
    match locate(text, needle) {
        Some((l, c)) => format!("{origin}:{l}:{c}"),
        None => origin.to_string(),
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
/// name order, the last varying fastest), filtered. A plan with more points before
/// filtering than the `sweep_points` limit ([`npu_data::limits`]) is refused.
pub fn expand(p: &Plan) -> Result<Vec<Point>> {
    let filters = p.filters.iter().map(|f| Expr::parse(f).map(|e| (f, e))).collect::<Result<Vec<_>>>()?;
    let names: Vec<&String> = p.params.keys().collect();
    let values: Vec<Vec<f64>> = p.params.iter().map(|(k, v)| v.expand(k)).collect::<Result<_>>()?;
    let sizes = values.iter().map(Vec::len).chain([p.models.len(), p.schemes.len(), p.hw.len()]);
    let total = sizes.clone().try_fold(1usize, |a, n| a.checked_mul(n));
    let limit = npu_data::limits::current().sweep_points;
    match total {
        Some(t) if t as u64 <= limit => {}
        _ => {
            let shown = sizes.map(|n| n.to_string()).collect::<Vec<_>>().join(" × ");
            fail!(
                "the plan has {shown} points before filtering, more than {}",
                npu_data::limits::named("sweep_points", limit)
            );
        }
    }
    // Within a product that did not overflow.
    let combos: usize = values.iter().map(Vec::len).product::<usize>();
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
                        if !e.holds(&params).map_err(|m| err!("filter `{text}`: {m}"))? {
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
        let toks = tokenize(text).map_err(|m| err!("filter `{text}`: {m}"))?;
        // The parser recurses once per parenthesis: bounded, so a long line is an error
        // rather than a stack overflow.
        let mut depth = 0usize;
        for t in &toks {
            depth = match t.as_str() {
                "(" => depth + 1,
                ")" => depth.saturating_sub(1),
                _ => depth,
            };
            if depth > MAX_FILTER_NESTING {
                fail!("filter `{text}`: parentheses nested more than {MAX_FILTER_NESTING} deep");
            }
        }
        let mut pos = 0;
        let e = parse_cmp(&toks, &mut pos).map_err(|m| err!("filter `{text}`: {m}"))?;
        if pos != toks.len() {
            fail!("filter `{text}`: unexpected `{}`", toks[pos]);
        }
        if !matches!(e, Expr::Cmp(..)) {
            fail!("filter `{text}`: needs a comparison (==, !=, <, <=, >, >=)");
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

/// Deepest nesting of parentheses in a filter.
const MAX_FILTER_NESTING: usize = 64;

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
pub fn hardware_variant(base: &HwConfig, params: &BTreeMap<String, f64>) -> Result<npu_hw::HwConfig> {
    let mut v = serde_json::to_value(base).map_err(|e| err!("hw `{}`: {e}", base.name))?;
    for (key, value) in params {
        for path in key.split('+') {
            let mut node = &mut v;
            for part in path.split('.') {
                node = node
                    .get_mut(part)
                    .ok_or_else(|| err!("hardware parameter `{path}`: `{part}` is not a field of the description"))?;
            }
            let new = if node.is_u64() || node.is_i64() {
                if value.fract() != 0.0 || *value < 0.0 {
                    fail!("hardware parameter `{path}` is a whole number; got {value}");
                }
                serde_json::Value::from(*value as u64)
            } else if node.is_f64() {
                serde_json::Value::from(*value)
            } else {
                fail!("hardware parameter `{path}` is not a number in the description");
            };
            *node = new;
        }
    }
    let mut hw: npu_hw::HwConfig = serde_json::from_value(v).map_err(|e| err!("hw `{}`: {e}", base.name))?;
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
/// Slurm job arrays (shard (`SLURM_ARRAY_TASK_ID` − `SLURM_ARRAY_TASK_MIN`) /
/// `SLURM_ARRAY_TASK_STEP` of `SLURM_ARRAY_TASK_COUNT`, so `--array=0-6:2` is shards 0–3
/// of 4; an array whose indices are not evenly stepped, such as `--array=1,2,7`, is
/// refused in every task before any work) or Kubernetes Indexed Jobs
/// (`JOB_COMPLETION_INDEX` of `NPU_SHARD_COUNT`, which the Job sets to its `completions`).
pub fn parse_shard(spec: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<(usize, usize)> {
    let num = |name: &str, v: String| -> Result<usize> {
        v.trim().parse().map_err(|_| err!("--shard auto: {name}=`{v}` is not a whole number"))
    };
    let (i, n) = if spec == "auto" {
        if let Some(id) = env("SLURM_ARRAY_TASK_ID") {
            let var = |name: &str| env(name).map(|v| num(name, v)).transpose();
            let id = num("SLURM_ARRAY_TASK_ID", id)?;
            let min = var("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
            let step = var("SLURM_ARRAY_TASK_STEP")?.unwrap_or(1);
            let count = var("SLURM_ARRAY_TASK_COUNT")?
                .ok_or_else(|| err!("--shard auto: SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not"))?;
            let max = var("SLURM_ARRAY_TASK_MAX")?;
            let even = step > 0
                && count > 0
                && max.is_none_or(|max| Some(max) == (count - 1).checked_mul(step).and_then(|s| s.checked_add(min)));
            if !even {
                let max = max.map_or("unset".to_string(), |m| m.to_string());
                fail!(
                    "--shard auto: the Slurm array's indices are not evenly stepped (SLURM_ARRAY_TASK_MIN {min}, \
                     MAX {max}, STEP {step}, COUNT {count}); submit it as --array=A-B or A-B:S, or give each task \
                     --shard I/N"
                );
            }
            let offset = id.checked_sub(min).filter(|o| o % step == 0).ok_or_else(|| {
                err!("--shard auto: task {id} is not one of the array's indices {min}, {min}+{step}, …")
            })?;
            (offset / step, count)
        } else if let Some(idx) = env("JOB_COMPLETION_INDEX") {
            let count = env("NPU_SHARD_COUNT").ok_or_else(|| {
                err!("--shard auto: JOB_COMPLETION_INDEX is set; set NPU_SHARD_COUNT to the Job's completions")
            })?;
            (num("JOB_COMPLETION_INDEX", idx)?, num("NPU_SHARD_COUNT", count)?)
        } else {
            fail!("--shard auto: neither SLURM_ARRAY_TASK_ID (Slurm job array) nor JOB_COMPLETION_INDEX (Kubernetes Indexed Job) is set");
        }
    } else {
        let (a, b) = spec.split_once('/').ok_or_else(|| err!("--shard {spec}: expected I/N (e.g. 0/4) or auto"))?;
        let p = |t: &str| t.trim().parse::<usize>().map_err(|_| err!("--shard {spec}: `{t}` is not a whole number"));
        (p(a)?, p(b)?)
    };
    if n == 0 || i >= n {
        fail!("shard {i} of {n}: the index must be below the count");
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
    /// Layers on the host CPU (those the point's hardware cannot run on the NPU).
    #[serde(default)]
    pub cpu_layers: Option<u64>,
    /// Top-1 accuracy, percent (not in timing-only sweeps).
    pub top1: Option<f64>,
    /// Images the accuracy is over.
    pub images: usize,
    /// Why the point could not run (invalid hardware, a missing MAC mode, …).
    pub error: Option<String>,
}

/// Measures one point: `q` (or why it could not be quantized) compiled for `hw` (or
/// why the variant is invalid), timed, and — with `test` — its accuracy from the
/// simulator's outputs, replayed in the current rayon pool. Failures are in the record.
pub fn measure(
    p: &Point,
    key: &str,
    q: &std::result::Result<std::sync::Arc<npu_quant::QModel>, String>,
    hw: &std::result::Result<npu_hw::HwConfig, String>,
    test: Option<&npu_data::Dataset>,
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
        cpu_layers: None,
        top1: None,
        images: 0,
        error: None,
    };
    let mut run = || -> std::result::Result<(), String> {
        let hw = hw.as_ref().map_err(Clone::clone)?;
        let q = q.as_ref().map_err(Clone::clone)?;
        r.hw = hw.name.clone();
        r.peak_macs = hw.peak_macs_per_cycle(npu_isa::MacMode::I8);
        let d = Deployment::new((**q).clone(), hw.clone()).map_err(|e| e.to_string())?;
        let timing = d.timing().map_err(|e| e.to_string())?;
        let f = &timing.figures;
        r.cycles = Some(f.cycles);
        r.fps = Some(f.fps);
        r.energy_uj = Some(f.energy_uj);
        r.power_mw = Some(f.power_mw);
        r.weight_bytes = Some(f.weight_bytes);
        r.offchip_bytes = Some(f.offchip_bytes);
        r.roofline_ratio = Some(f.roofline_ratio);
        r.cpu_layers = Some(f.cpu_layers);
        if let Some(t) = test {
            // Replayed in the sweep's own thread pool (jobs 0), beside the other points.
            let e = d.evaluate_labelled(&timing, t, 0, &p.scheme, &NoProgress).map_err(|e| e.to_string())?;
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
