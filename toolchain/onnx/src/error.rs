//! The crate's one error type.

use thiserror::Error;

/// Everything that can go wrong in `npu-onnx`; each variant names the bad input and where
/// it is.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum Error {
    /// An ONNX file that cannot be decoded.
    #[error("{origin}: not a valid ONNX model: {message}")]
    Decode {
        /// File name.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// An ONNX model using operators or attributes npu does not support: every one listed.
    #[error("{origin}: {} unsupported node{}:\n{}", .nodes.len(), if .nodes.len() == 1 { "" } else { "s" }, .nodes.join("\n"))]
    Unsupported {
        /// File name.
        origin: String,
        /// One line per offending node: op type, node name and the reason.
        nodes: Vec<String>,
    },
    /// An ONNX model that is well encoded but inconsistent (missing inputs, bad shapes).
    #[error("{origin}: {message}")]
    Model {
        /// File name.
        origin: String,
        /// What is wrong, naming the node.
        message: String,
    },
    /// The imported graph is invalid or cannot run.
    #[error(transparent)]
    Graph(#[from] npu_model::Error),
    /// Preprocessing metadata that is invalid.
    #[error(transparent)]
    Data(#[from] npu_data::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
