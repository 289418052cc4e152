//! `npu-datafiles`: the files data sets are kept in, decoded into [`npu_data::Dataset`]s
//! and arrays — NumPy `.npy` ([`npy`], with `npyz`) and `.npz` ([`npz`], with `zip`),
//! image folders ([`images`], with `image`), and data-set descriptions ([`spec`], RON).
//! IDX files are decoded by `npu-data` itself. Like every library here it parses bytes;
//! the caller reads the files.
//!
//! Kept apart from `npu-data` so that the compiler and the quantizer do not build the
//! image codecs and archive readers.

#![deny(missing_docs)]

pub mod error;
pub mod images;
pub mod npy;
pub mod npz;
pub mod spec;

pub use error::{Error, Result};
