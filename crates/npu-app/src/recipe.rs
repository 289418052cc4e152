//! Recipes: everything that decides how a float model becomes an integer one, as data —
//! a scheme (per-layer widths included), where activation ranges come from, accuracy
//! fixes and pruning before quantization. The composite rows of `npu compare`
//! (data-free with CLE and bias correction, pruned 50 %, 2:4) are recipes like any
//! other, so sweeps and searches can use them by name too.

use serde::{Deserialize, Serialize};

use npu_data::Dataset;
use npu_model::Model;
use npu_quant::{calib::Method, BiasCorrection, Fixes, QModel, RangeSource, Scheme};
use npu_train::prune::{Prune, Scope, Structure};

use crate::{Error, Result};

/// The named recipes, in `npu compare`'s table order: key and description.
pub const RECIPES: &[(&str, &str)] = &[
    ("int8-pow2", "INT8, power-of-two scales (shift-only)"),
    ("int8-sym", "INT8, symmetric per-tensor"),
    ("uint8-asym", "UINT8, asymmetric per-tensor"),
    ("int8-per-channel", "INT8, per-channel"),
    ("int8-per-channel-dfq", "INT8, per-channel, CLE + bias corr., no data"),
    ("w4a8-per-channel", "W4A8, per-channel"),
    ("w4a8-adaround", "W4A8, per-channel, AdaRound"),
    ("binary-weights", "binary weights"),
    ("int8-per-channel-pruned50", "INT8, per-channel, 50% pruned, no fine-tuning"),
    ("w4a8-2of4", "W4A8, per-channel, 2:4 pruned, no fine-tuning"),
];

/// How to quantize a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recipe {
    /// Short name (a table key, a file stem).
    pub key: String,
    /// Description for people.
    pub label: String,
    /// Activations, weights, per-layer overrides and pinning.
    pub scheme: Scheme,
    /// Where activation ranges come from.
    pub ranges: RangeSource,
    /// Cross-layer equalization and bias correction.
    pub fixes: Fixes,
    /// Weights pruned (without fine-tuning) before quantizing.
    pub prune: Option<Prune>,
}

impl Recipe {
    /// A named recipe ([`RECIPES`], or any scheme `npu quantize --scheme` knows), with
    /// `calib` calibration images (min/max) where it calibrates.
    pub fn named(key: &str, calib: usize) -> Result<Recipe> {
        let label = RECIPES.iter().find(|(k, _)| *k == key).map_or(key, |(_, l)| *l).to_string();
        let calibrated = RangeSource::Calibration { images: calib, method: Method::MinMax };
        let pruned = |structure, scheme: &str| -> Result<Recipe> {
            Ok(Recipe {
                key: key.into(),
                label: label.clone(),
                scheme: Scheme::named(scheme)?,
                ranges: calibrated,
                fixes: Fixes::default(),
                prune: Some(Prune { sparsity: 0.5, structure, scope: Scope::PerLayer }),
            })
        };
        match key {
            "int8-per-channel-dfq" => Ok(Recipe {
                key: key.into(),
                label,
                scheme: Scheme::named("int8-per-channel")?,
                ranges: RangeSource::DataFree,
                fixes: Fixes { cle: true, bias_correction: Some(BiasCorrection::Analytical), adaround: None },
                prune: None,
            }),
            "w4a8-adaround" => Ok(Recipe {
                key: key.into(),
                label,
                scheme: Scheme::named("w4a8-per-channel")?,
                ranges: calibrated,
                // AdaRound on the quantized network's inputs corrects what bias
                // correction would (measured with it too: MobileNet 92.11 % against
                // 92.10 %, ResNet 92.63 % against 92.86 %; docs/quantization.md).
                fixes: Fixes {
                    cle: false,
                    bias_correction: None,
                    adaround: Some(npu_quant::adaround::AdaRound::default()),
                },
                prune: None,
            }),
            "int8-per-channel-pruned50" => pruned(Structure::Unstructured, "int8-per-channel"),
            "w4a8-2of4" => pruned(Structure::NofM { n: 2, m: 4 }, "w4a8-per-channel"),
            _ => Ok(Recipe::from_scheme(key, &label, Scheme::named(key)?, calib)),
        }
    }

    /// A recipe of one scheme (e.g. a RON recipe file's), calibrated on `calib` images.
    pub fn from_scheme(key: &str, label: &str, scheme: Scheme, calib: usize) -> Recipe {
        Recipe {
            key: key.into(),
            label: label.into(),
            scheme,
            ranges: RangeSource::Calibration { images: calib, method: Method::MinMax },
            fixes: Fixes::default(),
            prune: None,
        }
    }

    /// Quantizes `model` (pruned first, if the recipe prunes), calibrating on `calib`.
    pub fn quantize(&self, model: &Model, calib: &Dataset) -> Result<QModel> {
        if let RangeSource::Calibration { images, .. } = self.ranges {
            if images == 0 || images > calib.len() {
                return Err(Error::Invalid(format!(
                    "recipe `{}` calibrates on {images} images; the calibration set has {}",
                    self.key,
                    calib.len()
                )));
            }
            model.check_io()?;
            calib.fit(model.input_shape(), &model.preprocess)?;
        }
        let pruned;
        let m = match &self.prune {
            Some(p) => {
                let mut pm = model.clone();
                let masks = npu_train::prune::masks(&pm.graph, p)?;
                npu_train::prune::apply(&mut pm.graph, &masks);
                pruned = pm;
                &pruned
            }
            None => model,
        };
        Ok(quantize(m, &self.scheme, calib, self.ranges, self.fixes)?.0)
    }
}

/// Quantizes `m` with activation ranges from `source`. Data-free ranges of layers without
/// BatchNorm statistics (a BatchNorm-folded export) come from calibration inputs
/// synthesised from the network itself ([`npu_train::synth`]); the outcome is returned
/// when synthesis ran, and a warning names the layers whose estimate is weak (inversion
/// impossible or cut short, or most samples not reaching their class).
pub fn quantize(
    m: &Model,
    scheme: &Scheme,
    calib: &Dataset,
    source: RangeSource,
    fixes: Fixes,
) -> Result<(QModel, Option<npu_train::synth::Synthesized>)> {
    let loose = match source {
        RangeSource::DataFree => {
            npu_quant::calib::without_batchnorm(&m.graph, &npu_model::passes::for_quantization(&m.graph)?)
        }
        RangeSource::Calibration { .. } => Vec::new(),
    };
    if loose.is_empty() {
        return Ok((npu_quant::quantize_model_with(m, scheme, calib, source, fixes)?, None));
    }
    let s = npu_train::synth::synthesize(m, &npu_train::synth::SynthConfig::default())?;
    if s.limited.is_some() || (s.steps > 0 && s.on_target < 0.5) {
        let why = s.limited.clone().unwrap_or_else(|| {
            format!("only {:.0} % of the synthesised inputs reach their class", 100.0 * s.on_target)
        });
        tracing::warn!(
            "{}: data-free ranges of {} may be weak ({why}); give calibration data for better ones",
            m.name,
            npu_quant::report::name_list(&loose)
        );
    }
    let q = npu_quant::quantize_model_synthesized(m, scheme, calib, source, fixes, Some((&s.input, s.samples)))?;
    Ok((q, Some(s)))
}
