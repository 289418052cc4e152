//! The crate's one error type.

use thiserror::Error;

/// Everything that can go wrong reading data-set files; each variant names the file.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum Error {
    /// A data set that cannot be built (shapes, labels, values).
    #[error(transparent)]
    Data(#[from] npu_data::Error),
    /// A file that cannot be decoded.
    #[error("{origin}: {message}")]
    File {
        /// File name (and entry, for archives).
        origin: String,
        /// What is wrong.
        message: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn file_err(origin: &str, m: impl Into<String>) -> Error {
    Error::File { origin: origin.into(), message: m.into() }
}
