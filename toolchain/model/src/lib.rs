//! `npu-model`: the FP32 model of npu — what users bring and the reference everything
//! quantized is judged against.
//!
//! ```text
//!  importers (npu-onnx, npu-tflite), npu-zoo, .npum files
//!        │
//!        ▼
//!  Model { Graph (ir), Preprocess } ──[passes::optimize]──▶ Graph (BN folded, activations fused)
//!        │
//!        └──[fp32::run]──▶ logits ──▶ Model::evaluate (top-1)
//! ```
//!
//! This crate depends on `npu-data` (preprocessing, data sets) and on nothing of the
//! quantizer, the compiler or the simulator; it does no I/O: callers pass bytes in and
//! get values out.

#![deny(missing_docs)]

pub mod error;
pub mod fp32;
pub mod gemm;
pub mod ir;
mod model;
pub mod modelfile;
pub mod passes;
pub mod rng;

pub use error::{Error, Result};
pub use model::{Accuracy, LayerInfo, Model};

/// The index of the largest value; the first of equal ones (NumPy's `argmax`). The one
/// definition of "predicted class" in npu: the FP32 executor, the integer executor and
/// the simulator's outputs are all read through it.
pub fn argmax<T: PartialOrd + Copy>(v: &[T]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}
