//! Calibration inputs synthesised from the network itself, for data-free quantization
//! of models whose BatchNorm statistics are gone (folded into the convolutions, as
//! `torch.onnx.export` in eval mode and every TFLite converter leave them).
//!
//! Two stages, after Haroush et al., "The Knowledge Within: Methods for Data-Free Model
//! Compression" (CVPR 2020, their "Inception scheme" for networks without BatchNorm):
//!
//! 1. **Image-like noise**: each sample starts as multi-scale value noise (octaves of
//!    bilinearly upsampled random grids, amplitude growing with scale, as the 1/f
//!    spectrum of natural images), stretched over the raw 8-bit range 0..=255 and
//!    preprocessed like data. Non-image inputs (no spatial dimensions) start uniform.
//! 2. **Inversion**: the samples are then optimised, each towards one class (classes in
//!    turn), by Adam on the input with the softmax cross-entropy of that class plus a
//!    total-variation prior, and kept inside the valid input range. This raises deep
//!    layers' activations to the magnitudes real inputs give them, which noise alone
//!    underestimates (the logits most: clipping the largest logit changes predictions).
//!
//! Stage 2 needs a backward pass for every operator ([`crate::supported`]) and one
//! output; a graph without them keeps the noise samples, and the outcome says so.

use npu_model::rng::Prng;
use npu_model::Model;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Float activation values (all samples, all values of the graph) synthesis may hold: 2²⁶
/// (256 MiB); a network larger per sample than this allows gets fewer samples (at least 2).
pub const ACTIVATION_BUDGET: usize = 1 << 26;

/// How many samples and how much optimisation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SynthConfig {
    /// Samples to synthesise.
    pub samples: usize,
    /// Adam steps of the inversion stage (0: noise only).
    pub steps: usize,
    /// Adam learning rate, in units of the normalized input's range.
    pub lr: f32,
    /// Weight of the total-variation prior.
    pub tv: f32,
    /// Upper bound on the multiply-accumulates the inversion may spend (forward and
    /// backward, all steps); fewer steps are run on a larger network.
    pub mac_budget: u64,
    /// Seed of the noise.
    pub seed: u64,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig { samples: 32, steps: 30, lr: 0.05, tv: 0.05, mac_budget: 20_000_000_000, seed: 0x5eed }
    }
}

/// What [`synthesize`] made.
#[derive(Debug, Clone, PartialEq)]
pub struct Synthesized {
    /// Preprocessed inputs, `samples × input elements`, channel-first.
    pub input: Vec<f32>,
    /// Number of samples.
    pub samples: usize,
    /// Inversion steps run (0 when the graph has no backward pass or no budget).
    pub steps: usize,
    /// Why fewer steps than asked were run, if so.
    pub limited: Option<String>,
    /// Share of samples whose top-1 class is the one they were optimised for.
    pub on_target: f32,
}

impl Synthesized {
    /// One line for reports: how the inputs were made.
    pub fn describe(&self) -> String {
        let mut s = format!("{} synthesised inputs", self.samples);
        if self.steps > 0 {
            s.push_str(&format!(
                " (noise, then {} inversion steps; {:.0} % reach their class)",
                self.steps,
                100.0 * self.on_target
            ));
        } else {
            s.push_str(" (image-like noise)");
        }
        s
    }
}

/// The valid range of each input channel after preprocessing, for raw values 0..=255.
fn channel_bounds(m: &Model) -> Result<Vec<(f32, f32)>> {
    let shape = m.input_shape();
    let (means, stds) = m.preprocess.per_channel(shape)?;
    let c = shape.first().copied().unwrap_or(1).max(1);
    Ok((0..c)
        .map(|ch| {
            let (mean, sd) = (means[ch % means.len()], stds[ch % stds.len()]);
            let a = (0.0 * m.preprocess.scale - mean) / sd;
            let b = (255.0 * m.preprocess.scale - mean) / sd;
            (a.min(b), a.max(b))
        })
        .collect())
}

/// Multi-scale value noise on an `h × w` plane, in 0..=1.
fn value_noise(h: usize, w: usize, rng: &mut Prng) -> Vec<f32> {
    let mut out = vec![0f32; h * w];
    let mut cell = 1usize;
    while cell <= h.max(w) {
        // A random grid with one point every `cell` pixels, bilinearly interpolated.
        let (gh, gw) = (h / cell + 2, w / cell + 2);
        let grid: Vec<f32> = (0..gh * gw).map(|_| rng.normal()).collect();
        let amp = cell as f32;
        for y in 0..h {
            let fy = y as f32 / cell as f32;
            let (y0, ty) = (fy.floor() as usize, fy.fract());
            for x in 0..w {
                let fx = x as f32 / cell as f32;
                let (x0, tx) = (fx.floor() as usize, fx.fract());
                let at = |yy: usize, xx: usize| grid[yy * gw + xx];
                let top = at(y0, x0) * (1.0 - tx) + at(y0, x0 + 1) * tx;
                let bot = at(y0 + 1, x0) * (1.0 - tx) + at(y0 + 1, x0 + 1) * tx;
                out[y * w + x] += amp * (top * (1.0 - ty) + bot * ty);
            }
        }
        cell *= 2;
    }
    let (lo, hi) = out.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), v| (a.min(*v), b.max(*v)));
    let span = (hi - lo).max(f32::MIN_POSITIVE);
    out.iter_mut().for_each(|v| *v = (*v - lo) / span);
    out
}

/// Stage 1: image-like noise, preprocessed.
fn noise(m: &Model, bounds: &[(f32, f32)], n: usize, rng: &mut Prng) -> Vec<f32> {
    let shape = m.input_shape();
    let per: usize = shape.iter().product();
    let c = bounds.len();
    let plane = per / c;
    let spatial = shape.len() == 3 && shape[1] > 1 && shape[2] > 1;
    let mut x = Vec::with_capacity(n * per);
    for _ in 0..n {
        for &(a, b) in bounds {
            let unit = if spatial {
                value_noise(shape[1], shape[2], rng)
            } else {
                (0..plane).map(|_| rng.uniform()).collect()
            };
            x.extend(unit.into_iter().map(|u| a + u * (b - a)));
        }
    }
    x
}

/// Total variation of each spatial plane (squared neighbour differences) and its gradient.
fn tv_grad(x: &[f32], planes: usize, h: usize, w: usize, weight: f32, grad: &mut [f32]) {
    let k = weight / (planes * h * w) as f32;
    for p in 0..planes {
        let off = p * h * w;
        for y in 0..h {
            for xx in 0..w {
                let i = off + y * w + xx;
                if xx + 1 < w {
                    let d = x[i] - x[i + 1];
                    grad[i] += 2.0 * k * d;
                    grad[i + 1] -= 2.0 * k * d;
                }
                if y + 1 < h {
                    let d = x[i] - x[i + w];
                    grad[i] += 2.0 * k * d;
                    grad[i + w] -= 2.0 * k * d;
                }
            }
        }
    }
}

/// Synthesises calibration inputs for `m` (see the module documentation).
pub fn synthesize(m: &Model, cfg: &SynthConfig) -> Result<Synthesized> {
    // One input to synthesise and one output (the logits) to aim at, before either is read.
    m.check_io()?;
    if cfg.samples == 0 {
        return Err(Error::Invalid("synthesising calibration inputs needs at least one sample".into()));
    }
    if !(cfg.lr.is_finite() && cfg.lr > 0.0 && cfg.tv.is_finite() && cfg.tv >= 0.0) {
        return Err(Error::Invalid(format!(
            "input synthesis: learning rate {} must be positive and TV weight {} not negative",
            cfg.lr, cfg.tv
        )));
    }
    // Every value of every sample is kept (the tape, the ranges): at most
    // `ACTIVATION_BUDGET` floats, so a full-size network gets fewer samples.
    let per_sample: usize = m
        .graph
        .values
        .iter()
        .filter(|v| !matches!(v.source, npu_model::ir::Source::Const(_)))
        .map(|v| v.shape.iter().product::<usize>())
        .sum::<usize>()
        .max(1);
    let n = cfg.samples.min((ACTIVATION_BUDGET / per_sample).max(2));
    let mut limited = (n < cfg.samples)
        .then(|| format!("{n} of {} samples within {ACTIVATION_BUDGET} activation values", cfg.samples));
    let bounds = channel_bounds(m)?;
    let mut rng = Prng::new(cfg.seed);
    let mut x = noise(m, &bounds, n, &mut rng);
    let shape = m.input_shape().to_vec();
    let per: usize = shape.iter().product();
    let plane = per / bounds.len();
    let mut steps = cfg.steps;
    if let Err(e) = crate::check_trainable(&m.graph) {
        limited = Some(format!("no inversion: {e}"));
        steps = 0;
    }
    let macs = m.graph.nodes.iter().map(|nd| m.graph.macs(nd)).sum::<u64>().max(1);
    // Forward and backward cost about three forward passes.
    let per_step = 3 * macs * n as u64;
    if steps > 0 && per_step.saturating_mul(steps as u64) > cfg.mac_budget {
        let fit = (cfg.mac_budget / per_step) as usize;
        // A few steps move the samples little: noise alone, then, at a fraction of the cost.
        steps = if fit * 3 < cfg.steps { 0 } else { fit };
        let why = format!(
            "{steps} of {} inversion steps within the budget of {:.1e} multiply-accumulates",
            cfg.steps, cfg.mac_budget as f64
        );
        limited = Some(match limited {
            Some(first) => format!("{first}; {why}"),
            None => why,
        });
    }
    let mut g = m.graph.clone();
    let classes = g.values[g.outputs[0]].shape.iter().product::<usize>().max(1);
    let targets: Vec<u32> = (0..n).map(|i| (i % classes) as u32).collect();
    let (mut m1, mut m2) = (vec![0f32; x.len()], vec![0f32; x.len()]);
    let span: Vec<f32> = bounds.iter().map(|(a, b)| b - a).collect();
    let spatial = shape.len() == 3 && shape[1] > 1 && shape[2] > 1;
    for t in 1..=steps {
        let tape = crate::forward(&mut g, &x, n, false)?;
        let logits = tape.vals[g.outputs[0]].as_deref().unwrap_or(&[]);
        let (_, _, dlogits) = crate::softmax_cross_entropy(logits, &targets, n);
        let (_, mut dx) = crate::backward(&g, &tape, dlogits);
        if dx.len() != x.len() {
            return Err(Error::Invalid("input synthesis: the backward pass gave no input gradient".into()));
        }
        if spatial && cfg.tv > 0.0 {
            tv_grad(&x, n * bounds.len(), shape[1], shape[2], cfg.tv * n as f32, &mut dx);
        }
        let (b1, b2) = (0.9f32, 0.999f32);
        let (c1, c2) = (1.0 - b1.powi(t as i32), 1.0 - b2.powi(t as i32));
        for i in 0..x.len() {
            m1[i] = b1 * m1[i] + (1.0 - b1) * dx[i];
            m2[i] = b2 * m2[i] + (1.0 - b2) * dx[i] * dx[i];
            let ch = (i % per) / plane;
            let step = cfg.lr * span[ch] * (m1[i] / c1) / ((m2[i] / c2).sqrt() + 1e-8);
            x[i] = (x[i] - step).clamp(bounds[ch].0, bounds[ch].1);
        }
    }
    let on_target = if steps > 0 {
        let tape = crate::forward(&mut g, &x, n, false)?;
        let logits = tape.vals[g.outputs[0]].as_deref().unwrap_or(&[]);
        let (_, correct, _) = crate::softmax_cross_entropy(logits, &targets, n);
        correct as f32 / n as f32
    } else {
        0.0
    };
    tracing::info!(samples = n, steps, on_target, "synthesised calibration inputs");
    Ok(Synthesized { input: x, samples: n, steps, limited, on_target })
}

#[cfg(test)]
mod tests {
    use super::*;
    use npu_model::ir::{Activation, GraphBuilder, Op, Tensor};

    /// A random conv → ReLU → flatten → dense network on `[1, 6, 6]` inputs, 3 classes;
    /// with `tanh`, a Tanh (no backward pass) before the dense layer.
    fn tiny(tanh: bool) -> Model {
        let mut rng = Prng::new(7);
        let mut rand = |n: usize, s: f32| (0..n).map(|_| s * rng.normal()).collect::<Vec<f32>>();
        let mut b = GraphBuilder::new();
        let x = b.input("x", vec![1, 6, 6]).unwrap();
        let w = b.constant("w", Tensor::new(vec![4, 1, 3, 3], rand(36, 0.5)).unwrap()).unwrap();
        let cb = b.constant("b", Tensor::new(vec![4], rand(4, 0.1)).unwrap()).unwrap();
        let conv = Op::Conv2d { stride: [1, 1], pad: [1; 4], dilation: [1, 1], groups: 1, act: Activation::None };
        let y = b.node("conv", conv, &[x, w, cb]).unwrap();
        let mut y = b.node("relu", Op::Relu, &[y]).unwrap();
        if tanh {
            y = b.node("tanh", Op::Tanh, &[y]).unwrap();
        }
        let y = b.node("flatten", Op::Flatten, &[y]).unwrap();
        let dw = b.constant("dw", Tensor::new(vec![3, 144], rand(432, 0.2)).unwrap()).unwrap();
        let y = b.node("fc", Op::Dense { act: Activation::None }, &[y, dw]).unwrap();
        b.output(y).unwrap();
        Model {
            name: "tiny".into(),
            graph: b.finish().unwrap(),
            preprocess: npu_data::Preprocess::default(),
            has_preprocess: true,
        }
    }

    #[test]
    fn total_variation_gradient_matches_finite_differences() {
        let (h, w) = (3, 4);
        let mut rng = Prng::new(1);
        let x: Vec<f32> = (0..2 * h * w).map(|_| rng.normal()).collect();
        // TV by its definition: weight/(planes·h·w) · Σ squared neighbour differences.
        let tv = |x: &[f32]| -> f64 {
            let mut s = 0f64;
            for p in 0..2 {
                for y in 0..h {
                    for xx in 0..w {
                        let i = p * h * w + y * w + xx;
                        if xx + 1 < w {
                            s += f64::from(x[i] - x[i + 1]).powi(2);
                        }
                        if y + 1 < h {
                            s += f64::from(x[i] - x[i + w]).powi(2);
                        }
                    }
                }
            }
            0.5 * s / (2 * h * w) as f64
        };
        let mut g = vec![0f32; x.len()];
        tv_grad(&x, 2, h, w, 0.5, &mut g);
        for i in 0..x.len() {
            let (mut up, mut down) = (x.clone(), x.clone());
            up[i] += 1e-2;
            down[i] -= 1e-2;
            let fd = (tv(&up) - tv(&down)) / 2e-2;
            assert!((fd - f64::from(g[i])).abs() < 1e-3, "element {i}: analytic {} finite difference {fd}", g[i]);
        }
    }

    #[test]
    fn noise_spans_the_valid_input_range_and_stays_inside_it() {
        let m = tiny(false);
        // Fashion-MNIST's preprocessing: raw 0 → −0.2860/0.3530, raw 255 → 0.7140/0.3530.
        let (a, b) = (-0.2860f32 / 0.3530, 0.7140f32 / 0.3530);
        let s = synthesize(&m, &SynthConfig { samples: 8, steps: 0, ..SynthConfig::default() }).unwrap();
        assert_eq!(s.input.len(), 8 * 36);
        for sample in s.input.chunks(36) {
            let (lo, hi) = sample.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), v| (l.min(*v), h.max(*v)));
            assert!((lo - a).abs() < 1e-5 && (hi - b).abs() < 1e-5, "sample spans [{lo}, {hi}], not [{a}, {b}]");
        }
    }

    #[test]
    fn inversion_moves_samples_to_their_classes_within_the_input_range() {
        let m = tiny(false);
        let (a, b) = (-0.2860f32 / 0.3530, 0.7140f32 / 0.3530);
        let s = synthesize(&m, &SynthConfig { samples: 9, steps: 40, ..SynthConfig::default() }).unwrap();
        assert_eq!((s.steps, s.limited.as_deref()), (40, None));
        assert!(s.on_target >= 8.0 / 9.0, "{} of the samples reach their class", s.on_target);
        assert!(s.input.iter().all(|v| *v >= a - 1e-6 && *v <= b + 1e-6));
        // The same seed's noise, before inversion, is another batch.
        let noise = synthesize(&m, &SynthConfig { samples: 9, steps: 0, ..SynthConfig::default() }).unwrap();
        assert_ne!(noise.input, s.input);
    }

    #[test]
    fn graphs_without_a_backward_pass_keep_the_noise_and_say_why() {
        let s = synthesize(&tiny(true), &SynthConfig { samples: 4, ..SynthConfig::default() }).unwrap();
        assert_eq!(s.steps, 0);
        let why = s.limited.expect("a reason");
        assert!(why.contains("`tanh` (Tanh)"), "{why}");
        // A budget smaller than one step (3 × 36·4·9 + 3·144 MACs × 4 samples) runs none.
        let s =
            synthesize(&tiny(false), &SynthConfig { samples: 4, mac_budget: 1000, ..SynthConfig::default() }).unwrap();
        assert_eq!(s.steps, 0);
        assert!(s.limited.expect("a reason").starts_with("0 of 30 inversion steps"));
    }

    #[test]
    fn synthesis_refuses_zero_samples_and_bad_rates() {
        let m = tiny(false);
        assert!(synthesize(&m, &SynthConfig { samples: 0, ..SynthConfig::default() }).is_err());
        assert!(synthesize(&m, &SynthConfig { lr: f32::NAN, ..SynthConfig::default() }).is_err());
    }

    #[test]
    fn synthesis_for_a_graph_without_one_output_is_an_error_not_a_panic() {
        let mut m = tiny(false);
        m.graph.outputs.clear();
        let err = synthesize(&m, &SynthConfig::default()).expect_err("no logits to aim at").to_string();
        assert!(err.contains("0 outputs"), "{err}");
    }
}
