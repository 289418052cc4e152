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

/// The longest error message an importer keeps, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 2048;

/// `m`, or when it is longer than [`MAX_MESSAGE_BYTES`] (a list of millions of values
/// from a file, printed whole), its beginning and end around a note of what was left out.
pub fn clip_message(m: String) -> String {
    if m.len() <= MAX_MESSAGE_BYTES {
        return m;
    }
    let mut head = MAX_MESSAGE_BYTES * 3 / 4;
    while !m.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = m.len() - MAX_MESSAGE_BYTES / 8;
    while !m.is_char_boundary(tail) {
        tail += 1;
    }
    format!("{} … [{} bytes left out] … {}", &m[..head], tail - head, &m[tail..])
}
