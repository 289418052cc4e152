//! Pruning: zeroing the weights of convolutions and dense layers that matter least.
//!
//! ```text
//!  Graph ──[masks(Prune)]──▶ Masks (per weight tensor: keep or zero each weight)
//!    │                          │
//!    │                          ├──[apply]──▶ Graph with zeros (then quantize/compile as usual)
//!    │                          └──[masking]─▶ train::FakeQuant: fine-tuning sees the pruned
//!    │                                         network; gradients reach only kept weights' effect
//!    └──[sparsity]──▶ per-layer zero counts
//! ```
//!
//! - **Unstructured**: the weights of smallest magnitude, over all layers at once
//!   (`Scope::Global`) or each layer to the same sparsity (`Scope::PerLayer`).
//! - **Channel**: whole output channels, by L1 norm per weight (so layers of different
//!   fan-in compare), globally or per layer; the channel's output becomes its bias.
//! - **N:M**: in every group of M consecutive weights along the reduction (input-channel)
//!   axis, in the NPU's `[Cout, kh, kw, Cin]` order, the N largest survive (2:4 → 50 %).
//!
//! Zeros stay exact through quantization (symmetric weights quantize 0 to 0), so the
//! compiler and the hardware see the sparsity pruning made.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use npu_model::ir::{Graph, Op, Source, ValueId};

/// What is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Structure {
    /// Individual weights.
    Unstructured,
    /// Whole output channels.
    Channel,
    /// N of every M consecutive weights along the input channels are kept.
    NofM {
        /// Kept per group.
        n: usize,
        /// Group size.
        m: usize,
    },
}

impl Structure {
    /// Parses `unstructured`, `channel` or `N:M` (e.g. `2:4`).
    pub fn parse(s: &str) -> Result<Structure> {
        match s {
            "unstructured" => Ok(Structure::Unstructured),
            "channel" => Ok(Structure::Channel),
            _ => {
                let bad =
                    || Error::Invalid(format!("structure `{s}`: expected unstructured, channel or N:M (e.g. 2:4)"));
                let (a, b) = s.split_once(':').ok_or_else(bad)?;
                let (n, m) = (a.parse::<usize>().map_err(|_| bad())?, b.parse::<usize>().map_err(|_| bad())?);
                if n == 0 || n >= m || m > 64 {
                    return Err(Error::Invalid(format!("structure `{s}`: need 0 < N < M ≤ 64")));
                }
                Ok(Structure::NofM { n, m })
            }
        }
    }

    /// The sparsity an N:M pattern gives (`None` for the others, which take a target).
    pub fn fixed_sparsity(self) -> Option<f32> {
        match self {
            Structure::NofM { n, m } => Some(1.0 - n as f32 / m as f32),
            _ => None,
        }
    }
}

/// Over which weights a sparsity target is met.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Scope {
    /// All pruned layers together (a global magnitude threshold).
    Global,
    /// Every layer to the target.
    PerLayer,
}

/// A pruning request.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Prune {
    /// Fraction of weights (or channels) to zero, in `[0, 1)`; ignored by N:M.
    pub sparsity: f32,
    /// Structure.
    pub structure: Structure,
    /// Scope (unstructured and channel).
    pub scope: Scope,
}

/// Per weight tensor (by value id), whether each weight is kept.
pub type Masks = BTreeMap<ValueId, Vec<bool>>;

/// The weight tensors pruning applies to: the weights of every convolution and dense
/// layer, as `(node name, value id, [Cout, Cin/groups, kh, kw] or [Out, In])`.
pub fn prunable(g: &Graph) -> Vec<(String, ValueId, Vec<usize>)> {
    g.nodes
        .iter()
        .filter(|n| matches!(n.op, Op::Conv2d { .. } | Op::Dense { .. }))
        .filter_map(|n| {
            let w = *n.inputs.get(1)?;
            g.values[w].constant().map(|t| (n.name.clone(), w, t.shape.clone()))
        })
        .collect()
}

fn weights(g: &Graph, v: ValueId) -> &[f32] {
    g.values[v].constant().map_or(&[], |t| t.data.as_slice())
}

/// The k-th smallest of `v` (0-based), or `-inf` for k out of range.
fn kth(mut v: Vec<f32>, k: usize) -> f32 {
    if k >= v.len() {
        return f32::INFINITY;
    }
    let (_, x, _) = v.select_nth_unstable_by(k, f32::total_cmp);
    *x
}

/// Keep-masks for `p` over `g`'s prunable weights.
pub fn masks(g: &Graph, p: &Prune) -> Result<Masks> {
    if !(0.0..1.0).contains(&p.sparsity) {
        return Err(Error::Invalid(format!("sparsity {} must be in [0, 1)", p.sparsity)));
    }
    let layers = prunable(g);
    if layers.is_empty() {
        return Err(Error::Invalid("the model has no convolution or dense weights to prune".into()));
    }
    let mut out = Masks::new();
    match p.structure {
        Structure::Unstructured => {
            let prune_count = |n: usize| ((n as f64) * f64::from(p.sparsity)).floor() as usize;
            let global = if p.scope == Scope::Global {
                let all: Vec<f32> =
                    layers.iter().flat_map(|(_, v, _)| weights(g, *v).iter().map(|w| w.abs())).collect();
                let k = prune_count(all.len());
                Some(if k == 0 { f32::NEG_INFINITY } else { kth(all, k - 1) })
            } else {
                None
            };
            for (_, v, _) in &layers {
                let w = weights(g, *v);
                let t = global.unwrap_or_else(|| {
                    let k = prune_count(w.len());
                    if k == 0 {
                        f32::NEG_INFINITY
                    } else {
                        kth(w.iter().map(|x| x.abs()).collect(), k - 1)
                    }
                });
                out.insert(*v, w.iter().map(|x| x.abs() > t).collect());
            }
        }
        Structure::Channel => {
            // Score: mean |w| of the channel.
            let scores: Vec<Vec<f32>> = layers
                .iter()
                .map(|(_, v, s)| {
                    let w = weights(g, *v);
                    let per = w.len() / s[0].max(1);
                    w.chunks(per.max(1)).map(|c| c.iter().map(|x| x.abs()).sum::<f32>() / per.max(1) as f32).collect()
                })
                .collect();
            let count = |n: usize| ((n as f64) * f64::from(p.sparsity)).floor() as usize;
            let global = if p.scope == Scope::Global {
                let all: Vec<f32> = scores.iter().flatten().copied().collect();
                let k = count(all.len());
                Some(if k == 0 { f32::NEG_INFINITY } else { kth(all, k - 1) })
            } else {
                None
            };
            for ((_, v, s), sc) in layers.iter().zip(&scores) {
                let mut t = global.unwrap_or_else(|| {
                    let k = count(sc.len());
                    if k == 0 {
                        f32::NEG_INFINITY
                    } else {
                        kth(sc.clone(), k - 1)
                    }
                });
                // Never remove every channel of a layer.
                if sc.iter().all(|x| *x <= t) {
                    t = sc.iter().copied().fold(f32::NEG_INFINITY, f32::max) - f32::EPSILON.max(t.abs() * 1e-6);
                }
                let per = weights(g, *v).len() / s[0].max(1);
                out.insert(*v, sc.iter().flat_map(|x| std::iter::repeat_n(*x > t, per)).collect());
            }
        }
        Structure::NofM { n, m } => {
            for (_, v, s) in &layers {
                let w = weights(g, *v);
                let mut keep = vec![true; w.len()];
                // Index of weight (co, ci, ky, kx) in the graph's layout, visited in
                // [co, ky, kx, ci] order so groups run along the input channels.
                let (co, ci, kh, kw) = match s.as_slice() {
                    [co, ci, kh, kw] => (*co, *ci, *kh, *kw),
                    [o, i] => (*o, *i, 1, 1),
                    _ => continue,
                };
                for o in 0..co {
                    let mut order = Vec::with_capacity(ci * kh * kw);
                    for y in 0..kh {
                        for x in 0..kw {
                            for c in 0..ci {
                                order.push(((o * ci + c) * kh + y) * kw + x);
                            }
                        }
                    }
                    for group in order.chunks(m) {
                        if group.len() < m {
                            continue; // a short tail keeps all its weights
                        }
                        let mut idx: Vec<usize> = group.to_vec();
                        idx.sort_by(|a, b| w[*b].abs().total_cmp(&w[*a].abs()).then(a.cmp(b)));
                        for &i in &idx[n..] {
                            keep[i] = false;
                        }
                    }
                }
                out.insert(*v, keep);
            }
        }
    }
    Ok(out)
}

/// Zeroes the masked weights of `g`.
pub fn apply(g: &mut Graph, masks: &Masks) {
    for (v, keep) in masks {
        if let Some(Source::Const(t)) = g.values.get_mut(*v).map(|x| &mut x.source) {
            for (w, k) in t.data.iter_mut().zip(keep) {
                if !k {
                    *w = 0.0;
                }
            }
        }
    }
}

/// A fine-tuning step that trains the pruned network: the forward pass sees the masked
/// weights (through [`crate::Trainer::with_fake_quant`]); apply the masks again
/// after training.
pub fn masking(masks: Masks) -> crate::FakeQuant {
    Box::new(move |g: &Graph| {
        let mut gq = g.clone();
        apply(&mut gq, &masks);
        Ok((gq, vec![None; g.values.len()]))
    })
}

/// One row of [`sparsity`].
#[derive(Debug, Clone, PartialEq)]
pub struct LayerSparsity {
    /// Node name.
    pub name: String,
    /// Weights.
    pub weights: usize,
    /// Of which zero.
    pub zeros: usize,
}

/// Zero weights per prunable layer.
pub fn sparsity(g: &Graph) -> Vec<LayerSparsity> {
    prunable(g)
        .into_iter()
        .map(|(name, v, _)| {
            let w = weights(g, v);
            LayerSparsity { name, weights: w.len(), zeros: w.iter().filter(|x| **x == 0.0).count() }
        })
        .collect()
}
