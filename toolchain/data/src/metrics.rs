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
    if n == 0 {
        return Ok(0.0);
    }
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
    Ok(match metric {
        Metric::Top1 => {
            let l = labels()?;
            rows().zip(l).filter(|(o, c)| argmax(o) == **c as usize).count() as f64 / n as f64
        }
        Metric::Top5 => {
            let l = labels()?;
            let hit = |o: &[f32], c: usize| c < o.len() && o.iter().filter(|v| **v > o[c]).count() < 5;
            rows().zip(l).filter(|(o, c)| hit(o, **c as usize)).count() as f64 / n as f64
        }
        Metric::Agreement => {
            let r = need_ref()?;
            rows().zip(r.chunks(per)).filter(|(o, f)| argmax(o) == argmax(f)).count() as f64 / n as f64
        }
        Metric::Sqnr => {
            let r = need_ref()?;
            let (mut sig, mut noise) = (0f64, 0f64);
            for (o, f) in outputs.iter().zip(r) {
                sig += f64::from(*f) * f64::from(*f);
                noise += (f64::from(*o) - f64::from(*f)).powi(2);
            }
            if noise == 0.0 {
                f64::INFINITY
            } else {
                10.0 * (sig / noise).log10()
            }
        }
        Metric::Cosine => {
            let r = need_ref()?;
            let mut total = 0f64;
            for (o, f) in rows().zip(r.chunks(per)) {
                let dot: f64 = o.iter().zip(f).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum();
                let na: f64 = o.iter().map(|a| f64::from(*a).powi(2)).sum::<f64>().sqrt();
                let nb: f64 = f.iter().map(|b| f64::from(*b).powi(2)).sum::<f64>().sqrt();
                total += if na == 0.0 && nb == 0.0 {
                    1.0
                } else if na == 0.0 || nb == 0.0 {
                    0.0
                } else {
                    dot / (na * nb)
                };
            }
            total / n as f64
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
            outputs.iter().zip(target).map(|(o, t)| (f64::from(*o) - f64::from(*t)).powi(2)).sum::<f64>()
                / outputs.len() as f64
        }
    })
}
