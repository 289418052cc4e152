//! A model: a graph with its preprocessing, and what one can ask of it.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fp32;
use crate::ir::{Graph, Op};
use npu_data::{Dataset, Preprocess};

/// A model ready to run: its graph and how raw pixels become its input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// Name (the graph's, or the file's).
    pub name: String,
    /// The graph: one input of per-sample shape `[C, H, W]` (or `[H, W, C]`), logits out.
    pub graph: Graph,
    /// Pixel to input mapping.
    pub preprocess: Preprocess,
    /// Whether `preprocess` came with the model (otherwise it is the default).
    pub has_preprocess: bool,
}

/// One row of [`Model::layers`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerInfo {
    /// Node name.
    pub name: String,
    /// Operator name.
    pub op: String,
    /// Per-sample output shape.
    pub shape: Vec<usize>,
    /// Constant parameters.
    pub params: u64,
    /// MACs per sample.
    pub macs: u64,
}

/// Top-1 accuracy over a data set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Accuracy {
    /// Images classified correctly.
    pub correct: usize,
    /// Images evaluated.
    pub total: usize,
}

impl Accuracy {
    /// Fraction correct, 0..=1.
    pub fn top1(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.correct as f64 / self.total as f64
        }
    }
}

impl Model {
    /// One row per node: shape, parameters, MACs.
    pub fn layers(&self) -> Vec<LayerInfo> {
        let g = &self.graph;
        g.nodes
            .iter()
            .map(|n| {
                let mut op = n.op.name().to_string();
                if let Op::Conv2d { act, .. } | Op::Dense { act } = &n.op {
                    match act {
                        crate::ir::Activation::None => {}
                        crate::ir::Activation::Relu => op.push_str("+Relu"),
                        crate::ir::Activation::Clip { lo, hi } => op.push_str(&format!("+Clip({lo},{hi})")),
                    }
                }
                LayerInfo {
                    name: n.name.clone(),
                    op,
                    shape: g.values[n.output].shape.clone(),
                    params: g.params(n),
                    macs: g.macs(n),
                }
            })
            .collect()
    }

    /// Per-sample input size.
    pub fn input_len(&self) -> usize {
        self.input_shape().iter().product()
    }

    /// Per-sample shape of the graph's input (channel-first for images).
    pub fn input_shape(&self) -> &[usize] {
        &self.graph.values[self.graph.inputs[0]].shape
    }

    /// Checks that the model has one input and one output (what evaluation runs).
    pub fn check_io(&self) -> Result<()> {
        if self.graph.inputs.len() != 1 || self.graph.outputs.len() != 1 {
            return Err(Error::Exec(format!(
                "model `{}` has {} inputs and {} outputs; evaluation needs one of each",
                self.name,
                self.graph.inputs.len(),
                self.graph.outputs.len()
            )));
        }
        Ok(())
    }

    /// The model's inputs for samples `range` of `ds`, through its preprocessing (the
    /// shape, layout and element type checked by [`Dataset::fit`]).
    pub fn inputs(&self, ds: &Dataset, range: std::ops::Range<usize>) -> Result<Vec<f32>> {
        self.check_io()?;
        Ok(ds.inputs(self.input_shape(), &self.preprocess, range)?)
    }

    /// Runs the FP32 graph on samples `start..start+n` of `ds` and returns the outputs.
    pub fn logits(&self, ds: &Dataset, start: usize, n: usize) -> Result<Vec<f32>> {
        let input = self.inputs(ds, start..start + n)?;
        Ok(fp32::run(&self.graph, &[&input], n)?.swap_remove(0))
    }

    /// Outputs of the FP32 graph for the first `limit` samples, in batches; `progress`
    /// is called with the number of samples done after each batch. The graph runs after
    /// [`crate::passes::optimize`] (BatchNorm folded, activations fused), which computes
    /// the same function to within float rounding.
    pub fn outputs(&self, ds: &Dataset, limit: usize, progress: &mut dyn FnMut(usize)) -> Result<Vec<f32>> {
        self.preprocess.validate()?;
        let fast = Model { graph: crate::passes::optimize(&self.graph)?, ..self.clone() };
        let total = limit.min(ds.len());
        ds.fit(self.input_shape(), &self.preprocess)?;
        let mut out = Vec::new();
        const BATCH: usize = 500;
        let mut start = 0;
        while start < total {
            let n = BATCH.min(total - start);
            out.extend(fast.logits(ds, start, n)?);
            start += n;
            progress(start);
        }
        Ok(out)
    }

    /// Top-1 accuracy of the FP32 graph on the first `limit` samples (which must be
    /// labelled), with the predictions; see [`Model::outputs`].
    pub fn evaluate(
        &self,
        ds: &Dataset,
        limit: usize,
        progress: &mut dyn FnMut(usize),
    ) -> Result<(Accuracy, Vec<usize>)> {
        let out = self.outputs(ds, limit, progress)?;
        let total = limit.min(ds.len());
        Accuracy::of(&out, total, ds)
    }
}

impl Accuracy {
    /// Top-1 accuracy and predictions of `n` samples' outputs against `ds`'s labels.
    pub fn of(outputs: &[f32], n: usize, ds: &Dataset) -> Result<(Accuracy, Vec<usize>)> {
        let labels = ds.labels().ok_or_else(|| {
            Error::Exec(format!(
                "{} has no class labels; top-1 accuracy needs them (choose another --metric)",
                ds.origin
            ))
        })?;
        let per = outputs.len().checked_div(n).unwrap_or(0).max(1);
        let preds: Vec<usize> = outputs.chunks(per).map(crate::argmax).collect();
        let correct = preds.iter().zip(labels).filter(|(p, l)| **p == **l as usize).count();
        Ok((Accuracy { correct, total: n }, preds))
    }
}
