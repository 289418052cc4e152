//! The crate's one error type.

use thiserror::Error;

/// Everything that can go wrong in `npu-train`; each variant names the bad input and where
/// it is.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum Error {
    /// A request that cannot be carried out: the message says what and where, in the
    /// user's words.
    #[error("{0}")]
    Invalid(String),
    /// Running a graph failed (wrong input sizes).
    #[error("cannot run the graph: {0}")]
    Exec(String),
    /// The model is invalid or cannot run.
    #[error(transparent)]
    Model(#[from] npu_model::Error),
    /// Quantization failed.
    #[error(transparent)]
    Quant(#[from] npu_quant::Error),
    /// A data set that cannot be used.
    #[error(transparent)]
    Data(#[from] npu_data::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
