//! The crate's one error type.

use thiserror::Error;

/// Everything that can go wrong in `npu-toolchain`; each variant describes bad input
/// and names where it is.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum Error {
    /// A malformed graph: the message names the node or value.
    #[error("invalid graph: {0}")]
    Graph(String),
    /// A request that cannot be carried out: an unknown scheme or architecture, an
    /// operator a stage cannot handle, a model that does not fit the hardware, a corrupt
    /// quantized model. The message says what and where, in the user's words.
    #[error("{0}")]
    Invalid(String),
    /// Running a graph failed (wrong input sizes).
    #[error("cannot run the graph: {0}")]
    Exec(String),
    /// An ONNX file that cannot be decoded.
    #[error("{origin}: not a valid ONNX model: {message}")]
    OnnxDecode {
        /// File name.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// An ONNX model using operators or attributes npu does not support: every one listed.
    #[error("{origin}: {} unsupported node{}:\n{}", .nodes.len(), if .nodes.len() == 1 { "" } else { "s" }, .nodes.join("\n"))]
    OnnxUnsupported {
        /// File name.
        origin: String,
        /// One line per offending node: op type, node name and the reason.
        nodes: Vec<String>,
    },
    /// An ONNX model that is well encoded but inconsistent (missing inputs, bad shapes).
    #[error("{origin}: {message}")]
    OnnxModel {
        /// File name.
        origin: String,
        /// What is wrong, naming the node.
        message: String,
    },
    /// A file that is not a readable TFLite flatbuffer.
    #[error("{origin}: not a valid TFLite model: {message}")]
    TfliteDecode {
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
        crate::tflite::SUPPORTED_OPS.join(", ")
    )]
    TfliteUnsupported {
        /// File name.
        origin: String,
        /// One line per offending operator: index, op code, output tensor and the reason.
        ops: Vec<String>,
    },
    /// A TFLite model that decodes but is inconsistent (bad shapes, missing tensors).
    #[error("{origin}: {message}")]
    TfliteModel {
        /// File name.
        origin: String,
        /// What is wrong, naming the operator or tensor.
        message: String,
    },
    /// A data set file that cannot be read.
    #[error("{origin}: {message}")]
    Data {
        /// File name.
        origin: String,
        /// What is wrong.
        message: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
