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
    /// A layer that cannot be compiled for the hardware (a missing capability, shapes
    /// beyond the ISA's fields or the buffers): the message names it and the reason.
    #[error("{message}")]
    Layer {
        /// Index of the layer in the model's layers.
        layer: usize,
        /// What is wrong, naming the layer.
        message: String,
    },
    /// The quantized model is invalid.
    #[error(transparent)]
    Quant(#[from] npu_quant::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
