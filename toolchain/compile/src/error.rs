//! The crate's one error type.

use thiserror::Error;

/// Everything that can go wrong in `npu-compile`; each variant names the bad input and where
/// it is.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum Error {
    /// A request that cannot be carried out: the message says what and where, in the
    /// user's words.
    #[error("{0}")]
    Invalid(String),
    /// The quantized model is invalid.
    #[error(transparent)]
    Quant(#[from] npu_quant::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
