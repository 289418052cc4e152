//! The fake-quant executor: the FP32 graph with weights and biases replaced by their
//! quantized values (dequantized) and every quantized activation rounded to its grid.
//! It matches the integer executor to within a quantization step and is what
//! calibration-free analyses and retraining use.

use crate::error::Result;
use crate::{QModel, QOp};
use npu_model::fp32;
use npu_model::ir::{Graph, Op, Source, Tensor};

impl QModel {
    /// The FP32 graph with weights and biases as the integers represent them.
    pub fn dequantized_graph(&self) -> Graph {
        let mut g = self.graph.clone();
        for l in &self.layers {
            let layer = match &l.op {
                QOp::Conv2d { layer, .. } | QOp::Dense { layer } => layer,
                _ => continue,
            };
            let Some(node) = g.nodes.iter().find(|n| n.name == l.name).cloned() else { continue };
            let qin = self.values[l.inputs[0]].q;
            let channels = layer.shape[0];
            let per = layer.weights.len() / channels.max(1);
            let sc = |c: usize| layer.w_scale[if layer.w_scale.len() == 1 { 0 } else { c }];
            let w: Vec<f32> = layer
                .weights
                .iter()
                .enumerate()
                .map(|(i, v)| sc(i / per) * (v - layer.w_zero[i / per]) as f32)
                .collect();
            if let Source::Const(t) = &mut g.values[node.inputs[1]].source {
                t.data = w;
            }
            // Bias back to real units; the folded zero-point terms cancel in real arithmetic.
            let b: Vec<f32> = (0..channels)
                .map(|c| {
                    let sum_w: i64 = layer.weights[c * per..(c + 1) * per].iter().map(|v| i64::from(*v)).sum();
                    let k = per as i64;
                    let raw = i64::from(layer.bias[c]) + i64::from(qin.zero_point) * sum_w
                        - k * i64::from(qin.zero_point) * i64::from(layer.w_zero[c]);
                    raw as f32 * qin.scale * sc(c)
                })
                .collect();
            match node.inputs.get(2) {
                Some(&bi) => {
                    if let Source::Const(t) = &mut g.values[bi].source {
                        t.data = b;
                    }
                }
                None => {
                    // Add a bias constant.
                    let id = g.values.len();
                    g.values.push(npu_model::ir::Value {
                        name: format!("{}.fq_bias", node.name),
                        shape: vec![channels],
                        source: Source::Const(Tensor { shape: vec![channels], data: b }),
                    });
                    if let Some(n) = g.nodes.iter_mut().find(|n| n.name == l.name) {
                        n.inputs.push(id);
                    }
                }
            }
        }
        g
    }

    /// Runs the fake-quant simulation on a preprocessed float batch; returns the
    /// dequantized output.
    pub fn run_fake(&self, x: &[f32], n: usize) -> Result<Vec<f32>> {
        let g = self.dequantized_graph();
        // Evaluate node by node, rounding every quantized value to its grid.
        let batched = g.batched();
        let mut env = fp32::Env { graph: &g, batched: &batched, vals: vec![None; g.values.len()] };
        let round = |q: crate::QParams, d: &mut [f32]| d.iter_mut().for_each(|v| *v = q.dequantize(q.quantize(*v)));
        let mut input = x.to_vec();
        round(self.values[0].q, &mut input);
        env.vals[g.inputs[0]] = Some(input);
        for node in &g.nodes {
            let mut out = fp32::eval_node(&env, node, if batched[node.output] { n } else { 1 });
            if let Some(Some(qv)) = self.value_map.get(node.output) {
                // Pools and reshapes keep their input's grid; rounding is idempotent there.
                if !matches!(node.op, Op::Flatten | Op::Reshape { .. }) {
                    round(self.values[*qv].q, &mut out);
                }
            }
            env.vals[node.output] = Some(out);
        }
        Ok(env.vals[g.outputs[0]].take().unwrap_or_default())
    }
}
