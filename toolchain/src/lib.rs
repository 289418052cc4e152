//! `npu-toolchain`: the quantizing compiler of npu.
//!
//! What exists so far is the front of the pipeline: what users bring (FP32 ONNX models)
//! and the reference everything quantized is judged against.
//!
//! ```text
//!  .onnx ──[onnx::import]──▶ Model { Graph (ir), Preprocess } ──[passes::optimize]──▶ Graph
//!                                          │                         (BN folded, activations fused)
//!                                          └──[fp32::run]──▶ logits ──▶ Model::evaluate (top-1)
//!  IDX files ──[data::Dataset::from_idx]──▶ Dataset ──[Preprocess::apply]──▶ inputs
//! ```
//!
//! The quantizer, the integer reference executor and the compiler to the NPU's ISA
//! come next, each as its own stage with its own data structure. This crate depends on
//! `npu-isa` (for the NPU's integer arithmetic) and never on `npu-sim`; it does no I/O:
//! callers pass bytes in and get values out.

#![deny(missing_docs)]

pub mod compile;
pub mod data;
pub mod error;
pub mod fp32;
mod gemm;
pub mod ir;
pub mod model;
pub mod modelfile;
pub mod npy;
pub mod onnx;
pub mod passes;
pub mod prune;
pub mod quant;
pub mod tflite;
pub mod train;
pub mod zoo;

pub use error::{Error, Result};
pub use model::Model;

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
