//! Metrics: a model's outputs scored against what a data set holds (labels, regression
//! targets) or against a reference model's outputs (the FP32 model) when it holds
//! neither.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::{Dataset, Targets};

/// How outputs are scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Fraction of samples whose largest output is the label.
    Top1,
    /// Fraction of samples whose label is among the five largest outputs.
    Top5,
    /// Fraction of samples whose largest output is the reference model's largest output.
    Agreement,
    /// Signal-to-quantization-noise ratio of the outputs against the reference
    /// outputs, in dB: `10·log10(Σ ref² / Σ (out − ref)²)`.
    Sqnr,
    /// Mean over samples of the cosine similarity of the output and reference vectors.
    Cosine,
    /// Mean squared error against the targets (regression) or, without targets, against
    /// the model's own input (autoencoders: reconstruction error).
    Mse,
}

impl Metric {
    /// Every metric, in the order `--metric` lists them.
    pub const ALL: [Metric; 6] =
        [Metric::Top1, Metric::Top5, Metric::Agreement, Metric::Sqnr, Metric::Cosine, Metric::Mse];

    /// The name used on the command line and in tables.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Top1 => "top1",
            Metric::Top5 => "top5",
            Metric::Agreement => "agreement",
            Metric::Sqnr => "sqnr",
            Metric::Cosine => "cosine",
            Metric::Mse => "mse",
        }
    }

    /// Parses a name from [`Metric::name`].
    pub fn from_name(s: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.name() == s)
    }

    /// Whether larger values are better (all but MSE).
    pub fn higher_is_better(self) -> bool {
        self != Metric::Mse
    }

    /// Whether the metric is a fraction shown as a percentage.
    pub fn is_percent(self) -> bool {
        matches!(self, Metric::Top1 | Metric::Top5 | Metric::Agreement)
    }

    /// Whether the metric compares against a reference model's outputs.
    pub fn needs_reference(self) -> bool {
        matches!(self, Metric::Agreement | Metric::Sqnr | Metric::Cosine)
    }

    /// The metric a data set gets when none is asked for: top-1 with labels, MSE with
    /// regression targets, agreement with the FP32 model without either.
    pub fn default_for(ds: &Dataset) -> Metric {
        match ds.targets {
            Targets::Classes(_) => Metric::Top1,
            Targets::Values { .. } => Metric::Mse,
            Targets::None => Metric::Agreement,
        }
    }

    /// A value of this metric for people: `92.49 %`, `31.20 dB`, `0.99871`, `0.001234`.
    pub fn show(self, v: f64) -> String {
        match self {
            m if m.is_percent() => format!("{:.2} %", 100.0 * v),
            Metric::Sqnr => format!("{v:.2} dB"),
            Metric::Cosine => format!("{v:.5}"),
            _ => format!("{v:.6}"),
        }
    }

    /// The column heading for this metric.
    pub fn heading(self) -> &'static str {
        match self {
            Metric::Top1 => "top-1",
            Metric::Top5 => "top-5",
            Metric::Agreement => "agreement",
            Metric::Sqnr => "SQNR",
            Metric::Cosine => "cosine",
            Metric::Mse => "MSE",
        }
    }
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What outputs are scored against, beside the data set's own targets.
#[derive(Debug, Clone, Copy, Default)]
pub struct Against<'a> {
    /// The reference (FP32) model's outputs for the same samples.
    pub reference: Option<&'a [f32]>,
    /// The model's inputs for the same samples (for an autoencoder's MSE).
    pub inputs: Option<&'a [f32]>,
}

/// Index of the largest value (the first on ties; 0 for an empty slice).
fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}

fn err(m: String) -> Error {
    Error::Data { origin: "metric".into(), message: m }
}

/// Scores `n` samples' outputs (`outputs.len() / n` values each) — samples `0..n` of
/// `ds` — under `metric`.
pub fn score(metric: Metric, outputs: &[f32], n: usize, ds: &Dataset, against: Against) -> Result<f64> {
    Ok(tally(metric, outputs, n, ds, against)?.value())
}

/// What a score is made of: a numerator and a denominator summed over samples (hits and
/// samples; Σ ref² and Σ (out − ref)² for SQNR; cosines and samples; squared errors and
/// values for MSE), each summed exactly. Tallies of disjoint parts of a data set
/// [`merge`](Tally::merge) into the tally of the whole — the same value, bit for bit,
/// however the samples were split between shards or threads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tally {
    /// The metric.
    pub metric: Metric,
    /// Samples scored.
    pub samples: usize,
    /// Numerator.
    pub num: ExactSum,
    /// Denominator.
    pub den: ExactSum,
}

impl Tally {
    /// Nothing scored yet.
    pub fn new(metric: Metric) -> Tally {
        Tally { metric, samples: 0, num: ExactSum::default(), den: ExactSum::default() }
    }

    /// Adds another part's tally (same metric).
    pub fn merge(&mut self, other: &Tally) -> Result<()> {
        if other.metric != self.metric {
            return Err(err(format!("cannot merge a {} tally into a {} one", other.metric, self.metric)));
        }
        self.samples += other.samples;
        self.num.merge(&other.num);
        self.den.merge(&other.den);
        Ok(())
    }

    /// The metric's value: the ratio (10·log10 of it for SQNR; +∞ without noise), 0 for
    /// no samples.
    pub fn value(&self) -> f64 {
        let (num, den) = (self.num.value(), self.den.value());
        match self.metric {
            Metric::Sqnr if den == 0.0 => f64::INFINITY,
            Metric::Sqnr => 10.0 * (num / den).log10(),
            _ if self.samples == 0 || den == 0.0 => 0.0,
            _ => num / den,
        }
    }
}

/// The [`Tally`] of `n` samples' outputs (`outputs.len() / n` values each) — samples
/// `0..n` of `ds` — under `metric`.
pub fn tally(metric: Metric, outputs: &[f32], n: usize, ds: &Dataset, against: Against) -> Result<Tally> {
    let mut t = Tally::new(metric);
    if n == 0 {
        return Ok(t);
    }
    t.samples = n;
    let per = outputs.len() / n;
    if per * n != outputs.len() || per == 0 {
        return Err(err(format!("{} outputs do not divide into {n} samples", outputs.len())));
    }
    let rows = || outputs.chunks(per);
    let need_ref = || -> Result<&[f32]> {
        let r = against.reference.ok_or_else(|| err(format!("{metric} needs the reference model's outputs")))?;
        if r.len() != outputs.len() {
            return Err(err(format!("{} reference outputs for {} outputs", r.len(), outputs.len())));
        }
        Ok(r)
    };
    let labels = || -> Result<&[u32]> {
        let l = ds.labels().ok_or_else(|| {
            err(format!("{metric} needs class labels; {} has none (try --metric agreement or sqnr)", ds.origin))
        })?;
        l.get(..n).ok_or_else(|| err(format!("{n} outputs but {} labels", l.len())))
    };
    let mut count = |hits: usize| {
        t.num.add(hits as f64);
        t.den.add(n as f64);
    };
    match metric {
        Metric::Top1 => {
            let l = labels()?;
            count(rows().zip(l).filter(|(o, c)| argmax(o) == **c as usize).count());
        }
        Metric::Top5 => {
            let l = labels()?;
            let hit = |o: &[f32], c: usize| c < o.len() && o.iter().filter(|v| **v > o[c]).count() < 5;
            count(rows().zip(l).filter(|(o, c)| hit(o, **c as usize)).count());
        }
        Metric::Agreement => {
            let r = need_ref()?;
            count(rows().zip(r.chunks(per)).filter(|(o, f)| argmax(o) == argmax(f)).count());
        }
        Metric::Sqnr => {
            let r = need_ref()?;
            for (o, f) in outputs.iter().zip(r) {
                t.num.add(f64::from(*f) * f64::from(*f));
                t.den.add((f64::from(*o) - f64::from(*f)).powi(2));
            }
        }
        Metric::Cosine => {
            let r = need_ref()?;
            for (o, f) in rows().zip(r.chunks(per)) {
                let dot: f64 = o.iter().zip(f).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum();
                let na: f64 = o.iter().map(|a| f64::from(*a).powi(2)).sum::<f64>().sqrt();
                let nb: f64 = f.iter().map(|b| f64::from(*b).powi(2)).sum::<f64>().sqrt();
                t.num.add(if na == 0.0 && nb == 0.0 {
                    1.0
                } else if na == 0.0 || nb == 0.0 {
                    0.0
                } else {
                    dot / (na * nb)
                });
            }
            t.den.add(n as f64);
        }
        Metric::Mse => {
            let target: &[f32] = match &ds.targets {
                Targets::Values { per: tp, data } => {
                    if *tp != per {
                        return Err(err(format!("the model gives {per} outputs per sample; the targets have {tp}")));
                    }
                    &data[..n * per]
                }
                _ => {
                    let x = against.inputs.ok_or_else(|| err("mse without targets needs the model's inputs".into()))?;
                    if x.len() != outputs.len() {
                        return Err(err(format!(
                            "mse without targets compares the output with the input (an autoencoder), but the model \
                             gives {per} values per sample for {} inputs",
                            x.len() / n
                        )));
                    }
                    x
                }
            };
            for (o, v) in outputs.iter().zip(target) {
                t.num.add((f64::from(*o) - f64::from(*v)).powi(2));
            }
            t.den.add(outputs.len() as f64);
        }
    }
    Ok(t)
}

/// A sum of `f64` values kept exactly, as Shewchuk's non-overlapping partials (the
/// algorithm of Python's `math.fsum`): its [`value`](ExactSum::value) is the exact sum
/// correctly rounded, whatever order the values were added or merged in. Infinite and
/// NaN values are summed apart and dominate the value. Two sums are equal, and
/// serialize alike, when they hold the same exact sum (however it was reached).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(into = "Expansion", from = "Expansion")]
pub struct ExactSum {
    /// Non-overlapping partial sums, increasing in magnitude.
    partials: Vec<f64>,
    /// The sum of non-finite values.
    special: Option<f64>,
}

/// An [`ExactSum`] as written: its canonical expansion — the sum rounded, then the
/// rest rounded, and so on (largest first) — and its non-finite part.
#[derive(Serialize, Deserialize)]
struct Expansion {
    /// The exact sum as `f64` terms, largest first.
    terms: Vec<f64>,
    /// The sum of non-finite values ("inf", "-inf", "nan"; absent when none).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "special")]
    special: Option<f64>,
}

impl From<ExactSum> for Expansion {
    fn from(s: ExactSum) -> Expansion {
        Expansion { terms: s.expansion(), special: s.special }
    }
}

impl From<Expansion> for ExactSum {
    fn from(e: Expansion) -> ExactSum {
        let mut s = ExactSum::default();
        e.terms.iter().for_each(|t| s.add(*t));
        s.special = e.special;
        s
    }
}

impl PartialEq for ExactSum {
    fn eq(&self, other: &ExactSum) -> bool {
        let special = |s: &ExactSum| s.special.map(f64::to_bits);
        special(self) == special(other) && self.expansion() == other.expansion()
    }
}

impl ExactSum {
    /// Adds `x` exactly.
    pub fn add(&mut self, x: f64) {
        if !x.is_finite() {
            self.special = Some(self.special.unwrap_or(0.0) + x);
            return;
        }
        let mut x = x;
        let mut i = 0;
        for j in 0..self.partials.len() {
            let mut y = self.partials[j];
            if x.abs() < y.abs() {
                std::mem::swap(&mut x, &mut y);
            }
            let hi = x + y;
            if !hi.is_finite() {
                // Overflow: the sum is beyond f64 whatever follows.
                self.special = Some(self.special.unwrap_or(0.0) + hi);
                return;
            }
            let lo = y - (hi - x);
            if lo != 0.0 {
                self.partials[i] = lo;
                i += 1;
            }
            x = hi;
        }
        self.partials.truncate(i);
        self.partials.push(x);
    }

    /// Adds every value another sum holds.
    pub fn merge(&mut self, other: &ExactSum) {
        for p in &other.partials {
            self.add(*p);
        }
        if let Some(s) = other.special {
            self.add(s);
        }
    }

    /// The exact sum as `f64` terms, largest first: the sum rounded, then what remains
    /// rounded, until nothing remains — the same terms for the same exact sum.
    fn expansion(&self) -> Vec<f64> {
        let mut rest = ExactSum { partials: self.partials.clone(), special: None };
        let mut terms = Vec::new();
        loop {
            let v = rest.value();
            // A non-zero exact sum of doubles rounds to a non-zero double, and each step
            // leaves a remainder below half an ulp of the last: a few dozen steps at most.
            if v == 0.0 || terms.len() > 64 {
                return terms;
            }
            terms.push(v);
            rest.add(-v);
        }
    }

    /// The exact sum rounded to the nearest `f64` (ties to even).
    pub fn value(&self) -> f64 {
        if let Some(s) = self.special {
            return s;
        }
        let p = &self.partials;
        let Some(mut n) = p.len().checked_sub(1) else { return 0.0 };
        let mut hi = p[n];
        let mut lo = 0.0;
        while n > 0 {
            let x = hi;
            n -= 1;
            let y = p[n];
            hi = x + y;
            lo = y - (hi - x);
            if lo != 0.0 {
                break;
            }
        }
        // Round half-even: when the rest below `lo` has `lo`'s sign, a tie is no tie.
        if n > 0 && ((lo < 0.0 && p[n - 1] < 0.0) || (lo > 0.0 && p[n - 1] > 0.0)) {
            let y = lo * 2.0;
            let x = hi + y;
            if y == x - hi {
                hi = x;
            }
        }
        hi
    }
}

/// Non-finite sums in JSON, which has no numbers for them: "inf", "-inf", "nan".
mod special {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(x) if x.is_nan() => s.serialize_str("nan"),
            Some(x) if *x > 0.0 => s.serialize_str("inf"),
            Some(_) => s.serialize_str("-inf"),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        let t = Option::<String>::deserialize(d)?;
        t.map(|t| match t.as_str() {
            "nan" => Ok(f64::NAN),
            "inf" => Ok(f64::INFINITY),
            "-inf" => Ok(f64::NEG_INFINITY),
            other => Err(serde::de::Error::custom(format!("`{other}` is not inf, -inf or nan"))),
        })
        .transpose()
    }
}
