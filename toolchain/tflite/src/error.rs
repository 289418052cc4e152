//! The crate's one error type.

use thiserror::Error;

/// Everything that can go wrong in `npu-tflite`; each variant names the bad input and where
/// it is.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum Error {
    /// A file that is not a readable TFLite flatbuffer.
    #[error("{origin}: not a valid TFLite model: {message}")]
    Decode {
        /// File name.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// A TFLite model using operators or options npu does not support: every one listed.
    #[error(
        "{origin}: {} unsupported operator{}:\n{}\n(npu imports {})",
        .ops.len(),
        if .ops.len() == 1 { "" } else { "s" },
        .ops.join("\n"),
        crate::SUPPORTED_OPS.join(", ")
    )]
    Unsupported {
        /// File name.
        origin: String,
        /// One line per offending operator: index, op code, output tensor and the reason.
        ops: Vec<String>,
    },
    /// A TFLite model that decodes but is inconsistent (bad shapes, missing tensors).
    #[error("{origin}: {message}")]
    Model {
        /// File name.
        origin: String,
        /// What is wrong, naming the operator or tensor.
        message: String,
    },
    /// The imported graph is invalid or cannot run.
    #[error(transparent)]
    Graph(#[from] npu_model::Error),
    /// The imported quantized model is invalid.
    #[error(transparent)]
    Quant(#[from] npu_quant::Error),
    /// Preprocessing metadata that is invalid.
    #[error(transparent)]
    Data(#[from] npu_data::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
