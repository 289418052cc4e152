//! `npu-toolchain`: the quantizing compiler of npu (model IR, FP32 reference executor,
//! quantizer, integer reference executor, lowering to the ISA).
//!
//! Not built yet: this crate holds no functionality until the IR, quantizer and
//! compiler issues land. It exists so that the workspace layout and the dependency
//! rule (`npu-isa` ← `npu-toolchain`, never `npu-sim`) are in place from the start.

#![deny(missing_docs)]
