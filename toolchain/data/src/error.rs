//! The crate's one error type.

use thiserror::Error;

/// Everything that can go wrong in `npu-data`; each variant names the bad input and where
/// it is.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum Error {
    /// A data set file that cannot be read.
    #[error("{origin}: {message}")]
    Data {
        /// File name.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// A limit assignment that cannot be applied (see [`crate::limits`]).
    #[error("{0}")]
    Limit(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
