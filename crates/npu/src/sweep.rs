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
use sha2::{Digest, Sha256};

use crate::load;

pub use npu_app::sweep::{expand, hardware_variant, measure, parse_shard, Plan, Point, Record, Values};

/// Parses and validates a plan file's text; `origin` names it in errors, with the line
/// and column of what is wrong. Models, scheme files and base hardware are read here;
/// nothing runs for a plan that fails.
pub fn plan_from_ron(text: &str, origin: &str) -> Result<Plan> {
    let p = Plan::parse(text, origin)?;
    p.check_counts(text, origin)?;
    let at = |needle: &str| npu_app::sweep::at(text, origin, needle);
    for m in &p.models {
        if let Some(name) = m.strip_prefix("zoo:") {
            npu_zoo::trained(name).map_err(|e| anyhow!("{}: model `{m}`: {e}", at(m)))?;
        } else if !Path::new(m).is_file() {
            bail!("{}: model `{m}`: no such file", at(m));
        }
    }
    for s in p.schemes.iter().filter(|s| s.ends_with(".ron")) {
        let t = load::read_text(s).map_err(|e| anyhow!("{}: scheme `{s}`: {e:#}", at(s)))?;
        ron::from_str::<npu_quant::Scheme>(&t)
            .map_err(|e| anyhow!("{}: scheme `{s}`: not a valid recipe: {e}", at(s)))?;
    }
    let mut bases = Vec::new();
    for h in &p.hw {
        bases.push((h.clone(), load::hardware(h).map_err(|e| anyhow!("{}: hw `{h}`: {e:#}", at(h)))?));
    }
    p.check_params(text, origin, &bases)?;
    Ok(p)
}

/// Version of the record format and of what a key covers; bump to invalidate caches.
/// Keys also hold the tool's version and a hash of every source that decides a result
/// ([`SOURCES`]), so a changed compiler, simulator or zoo never serves a stale point.
const FORMAT: &str = "npu-sweep-2";

/// SHA-256 (first 8 bytes) of the sources of the ISA, hardware descriptions, simulator,
/// toolchain (with the zoo and embedded data) and this crate, from `build.rs`.
pub const SOURCES: &str = env!("NPU_SOURCE_HASH");

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

// ---------------------------------------------------------------------------------------
// Records.

/// SHA-256 of `bytes`, hex.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
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
    let bytes = load::read_file(model)?;
    Ok(format!("sha256:{}", sha256_hex(&bytes)))
}

fn scheme_id(scheme: &str) -> Result<String> {
    if scheme.ends_with(".ron") {
        let bytes = load::read_file(scheme)?;
        return Ok(format!("recipe:{}", sha256_hex(&bytes)));
    }
    Ok(scheme.to_string())
}

type Quantized = Arc<npu_quant::QModel>;

/// A content identity of a data set (samples, labels, stated preprocessing), for cache keys.
fn data_id(d: &crate::data::Data) -> String {
    use npu_data::Elements;
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(format!("{:?} {} {:?} {:?} {:?}", d.ds.shape, d.ds.dtype, d.ds.layout, d.overrides, d.ds.classes));
    match &d.ds.elements {
        Elements::U8(v) => h.update(v),
        Elements::I8(v) => v.iter().for_each(|x| h.update(x.to_le_bytes())),
        Elements::I32(v) => v.iter().for_each(|x| h.update(x.to_le_bytes())),
        Elements::F32(v) => v.iter().for_each(|x| h.update(x.to_le_bytes())),
    }
    h.update(format!("{:?}", d.ds.targets));
    format!("{:x}", h.finalize())
}

fn quantize(
    model: &str,
    scheme: &str,
    calib: usize,
    calib_data: &crate::data::Data,
    test: Option<&crate::data::Data>,
) -> Result<Quantized> {
    let path = Path::new(model);
    let none = npu_data::Overrides::default();
    if scheme == npu_tflite::AS_SHIPPED || path.extension().is_some_and(|e| e == "npuq") {
        let mut q = load::quantized(path)?;
        if let Some(t) = test {
            q.preprocess = t.preprocess(&q.preprocess, &none)?;
        }
        return Ok(Arc::new(q));
    }
    let mut m = load::model(path)?;
    m.preprocess = calib_data.preprocess(&m.preprocess, &none)?;
    let train = &calib_data.ds;
    // Named schemes and composite recipes (`int8-per-channel-dfq`, `w4a8-2of4`, …) alike.
    let mut recipe = if scheme.ends_with(".ron") {
        let text = load::read_text(scheme)?;
        let s = ron::from_str(&text).map_err(|e| anyhow!("{scheme}: {e}"))?;
        npu_app::Recipe::from_scheme(scheme, scheme, s, calib)
    } else {
        npu_app::Recipe::named(scheme, calib)?
    };
    if let Err(e) = train.fit(m.input_shape(), &m.preprocess) {
        if !calib_data.embedded {
            return Err(anyhow::Error::new(e).context(format!("the plan's calib_data do not fit `{model}`")));
        }
        // A model that does not take the embedded images: ranges without data.
        recipe.ranges = npu_quant::RangeSource::DataFree;
    }
    Ok(Arc::new(recipe.quantize(&m, train)?))
}

/// Runs this shard's points of `plan`; streams records to `out/results.jsonl` in plan
/// order (by point index), whatever order they finish in.
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
    // The plan's data (the embedded Fashion-MNIST unless it names its own), and their
    // identities in the cache keys.
    let (test_data, calib_data) = {
        use crate::data::{load as load_data, Purpose};
        let test = if plan.timing_only {
            None
        } else {
            Some(load_data(plan.data.as_deref().map(Path::new), None, Purpose::Test)?)
        };
        (test, load_data(plan.calib_data.as_deref().map(Path::new), None, Purpose::Train)?)
    };
    let test_id = test_data.as_ref().map(data_id);
    let calib_id = data_id(&calib_data);
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
            "data": test_id,
            "calib_data": calib_id,
        });
        jobs.push(Job { point: p, hw, key: sha256_hex(ident.to_string().as_bytes()) });
    }

    let results_path = o.out.join("results.jsonl");
    let file =
        std::fs::File::create(&results_path).with_context(|| format!("cannot create {}", results_path.display()))?;
    // Lines are written in plan order whatever order the points finish in (and whatever
    // `--jobs`): a record that arrives early waits in `early` for the ones before it.
    let order: Vec<usize> = mine.iter().map(|p| p.index).collect();
    struct Sink {
        w: std::io::BufWriter<std::fs::File>,
        records: Vec<Record>,
        early: BTreeMap<usize, String>,
        next: usize,
    }
    let sink =
        Mutex::new(Sink { w: std::io::BufWriter::new(file), records: Vec::new(), early: BTreeMap::new(), next: 0 });
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
        g.early.insert(r.index, line);
        g.records.push(r);
        while let Some(line) = order.get(g.next).and_then(|i| g.early.remove(i)) {
            writeln!(g.w, "{line}")?;
            g.next += 1;
        }
        g.w.flush()?;
        Ok(())
    };
    let mut todo = Vec::new();
    let mut cached = 0;
    for j in jobs {
        let path = cache.join(format!("{}.json", j.key));
        let hit = load::read_file(&path).ok().and_then(|b| serde_json::from_slice::<Record>(&b).ok());
        match hit {
            Some(mut r) => {
                r.index = j.point.index;
                emit(r, true)?;
                cached += 1;
            }
            None => todo.push(j),
        }
    }
    let test = test_data.as_ref().map(|d| d.ds.take(plan.images));
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
                    quantize(&j.point.model, &j.point.scheme, plan.calib, &calib_data, test_data.as_ref())
                        .map_err(|e| format!("{e:#}"))
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
    let Sink { mut w, mut records, early, .. } = sink.into_inner().map_err(|_| anyhow!("a sweep thread panicked"))?;
    if !early.is_empty() {
        bail!("sweep: {} records were never written (points before them did not finish)", early.len());
    }
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

// ---------------------------------------------------------------------------------------
// Output: results, merge, summary and plots.

/// Reads a `results.jsonl`.
pub fn read_results(path: &Path) -> Result<Vec<Record>> {
    let text = load::read_text(path)?;
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
        let meta: serde_json::Value = serde_json::from_slice(&load::read_file(&meta_path)?)
            .with_context(|| format!("{}: not a sweep's plan.json", meta_path.display()))?;
        let p: Plan = serde_json::from_value(meta["plan"].clone())
            .with_context(|| format!("{}: no plan in it", meta_path.display()))?;
        let points = meta["points"].as_u64().ok_or_else(|| anyhow!("{}: no point count", meta_path.display()))?;
        // The count is the plan's (bounded by `expand`), not a number to trust: a
        // `points: 1e12` would otherwise list a trillion missing points.
        let expected = expand(&p).with_context(|| format!("{}: its plan", meta_path.display()))?.len();
        if points != expected as u64 {
            bail!("{}: says {points} points, but its plan has {expected}", meta_path.display());
        }
        let points = expected;
        match &plan {
            None => plan = Some((p, points)),
            Some((q, n)) if *q != p || *n != points => {
                bail!("{}: a different plan from {}'s", d.display(), dirs[0].display())
            }
            Some(_) => {}
        }
        for r in read_results(&d.join("results.jsonl"))? {
            if r.index >= points {
                bail!("{}: a result for point {}, but the plan has {points} points", d.display(), r.index);
            }
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
            "cpu_layers",
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
            u(r.cpu_layers),
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
