//! The crate's one error type.

use thiserror::Error;

/// Everything that can go wrong in `npu-model`; each variant names the bad input and where
/// it is.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum Error {
    /// A malformed graph: the message names the node or value.
    #[error("invalid graph: {0}")]
    Graph(String),
    /// A request that cannot be carried out: the message says what and where, in the
    /// user's words.
    #[error("{0}")]
    Invalid(String),
    /// Running a graph failed (wrong input sizes).
    #[error("cannot run the graph: {0}")]
    Exec(String),
    /// A model file that cannot be read.
    #[error("{origin}: {message}")]
    File {
        /// File name.
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// A data set or preprocessing that cannot be read.
    #[error(transparent)]
    Data(#[from] npu_data::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
