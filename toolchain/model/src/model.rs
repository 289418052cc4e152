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
        self.graph.values[self.graph.inputs[0]].shape.iter().product()
    }

    /// Checks that the model takes `rows × cols` one-channel images and gives one output.
    pub fn check_images(&self, ds: &Dataset) -> Result<()> {
        if self.graph.inputs.len() != 1 || self.graph.outputs.len() != 1 {
            return Err(Error::Exec(format!(
                "model `{}` has {} inputs and {} outputs; image classification needs one of each",
                self.name,
                self.graph.inputs.len(),
                self.graph.outputs.len()
            )));
        }
        if self.input_len() != ds.rows * ds.cols {
            let s = &self.graph.values[self.graph.inputs[0]].shape;
            return Err(Error::Exec(format!(
                "model `{}` takes inputs of shape {s:?}; the data set has {}×{} grayscale images",
                self.name, ds.rows, ds.cols
            )));
        }
        Ok(())
    }

    /// Runs the FP32 graph on images `start..start+n` of `ds` and returns the logits.
    pub fn logits(&self, ds: &Dataset, start: usize, n: usize) -> Result<Vec<f32>> {
        self.check_images(ds)?;
        let px = ds.rows * ds.cols;
        let input = self.preprocess.apply(&ds.pixels[start * px..(start + n) * px]);
        Ok(fp32::run(&self.graph, &[&input], n)?.swap_remove(0))
    }

    /// Top-1 accuracy of the FP32 graph on the first `limit` images, in batches;
    /// `progress` is called with the number of images done after each batch. The graph
    /// runs after [`crate::passes::optimize`] (BatchNorm folded, activations fused), which
    /// computes the same function to within float rounding.
    pub fn evaluate(
        &self,
        ds: &Dataset,
        limit: usize,
        progress: &mut dyn FnMut(usize),
    ) -> Result<(Accuracy, Vec<usize>)> {
        self.preprocess.validate()?;
        let fast = Model { graph: crate::passes::optimize(&self.graph)?, ..self.clone() };
        let total = limit.min(ds.len());
        let mut preds = Vec::with_capacity(total);
        const BATCH: usize = 500;
        let mut start = 0;
        while start < total {
            let n = BATCH.min(total - start);
            let logits = fast.logits(ds, start, n)?;
            preds.extend(fp32::argmax_rows(&logits, n));
            start += n;
            progress(start);
        }
        let correct = preds.iter().zip(&ds.labels).filter(|(p, l)| **p == usize::from(**l)).count();
        Ok((Accuracy { correct, total }, preds))
    }
}
