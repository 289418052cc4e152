//! `npu-data`: data sets as npu reads them — labelled samples from IDX files (gzip or
//! raw) and NumPy arrays — and the preprocessing that maps raw samples to a model's
//! input. It parses bytes; callers do the file I/O.

#![deny(missing_docs)]

pub mod error;
pub mod npy;

pub use error::{Error, Result};

use std::io::Read;

use serde::{Deserialize, Serialize};

/// Labelled 8-bit grayscale images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    /// Image height.
    pub rows: usize,
    /// Image width.
    pub cols: usize,
    /// `len() · rows · cols` pixels, image after image, row-major.
    pub pixels: Vec<u8>,
    /// One label per image.
    pub labels: Vec<u8>,
}

impl Dataset {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// The pixels of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.rows * self.cols;
        &self.pixels[i * n..(i + 1) * n]
    }
    /// The first `n` images (all if fewer).
    pub fn take(&self, n: usize) -> Dataset {
        let n = n.min(self.len());
        Dataset {
            rows: self.rows,
            cols: self.cols,
            pixels: self.pixels[..n * self.rows * self.cols].to_vec(),
            labels: self.labels[..n].to_vec(),
        }
    }

    /// Images `start..start + n` (clipped to the set).
    pub fn slice(&self, start: usize, n: usize) -> Dataset {
        let start = start.min(self.len());
        let end = start.saturating_add(n).min(self.len());
        let px = self.rows * self.cols;
        Dataset {
            rows: self.rows,
            cols: self.cols,
            pixels: self.pixels[start * px..end * px].to_vec(),
            labels: self.labels[start..end].to_vec(),
        }
    }

    /// Pairs an images file and a labels file (IDX, gzip-compressed or raw).
    pub fn from_idx(images: &[u8], labels: &[u8], origin: &str) -> Result<Dataset> {
        let (dims, pixels) = parse_idx(images, &format!("{origin} (images)"))?;
        let (ldims, labels) = parse_idx(labels, &format!("{origin} (labels)"))?;
        let err = |m: String| Error::Data { origin: origin.into(), message: m };
        let [n, rows, cols] = dims[..] else {
            return Err(err(format!("images must have 3 dimensions (count, rows, cols), found {dims:?}")));
        };
        if ldims.len() != 1 {
            return Err(err(format!("labels must have 1 dimension, found {ldims:?}")));
        }
        if ldims[0] != n {
            return Err(err(format!("{n} images but {} labels", ldims[0])));
        }
        Ok(Dataset { rows, cols, pixels, labels })
    }
}

/// Decodes an IDX file of unsigned bytes (magic `0x0000_08_NN`), gunzipping it first
/// if it starts with the gzip magic. Returns the dimensions and the data.
pub fn parse_idx(bytes: &[u8], origin: &str) -> Result<(Vec<usize>, Vec<u8>)> {
    let err = |m: String| Error::Data { origin: origin.into(), message: m };
    let raw;
    let data: &[u8] = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .map_err(|e| err(format!("corrupt gzip stream: {e}")))?;
        raw = out;
        &raw
    } else {
        bytes
    };
    if data.len() < 4 {
        return Err(err(format!("file too short for an IDX header ({} bytes)", data.len())));
    }
    if data[0] != 0 || data[1] != 0 {
        return Err(err(format!("not an IDX file (magic {:02x?})", &data[..4])));
    }
    if data[2] != 0x08 {
        return Err(err(format!("IDX element type {:#04x} is not unsigned bytes (0x08)", data[2])));
    }
    let nd = usize::from(data[3]);
    let head = 4 + 4 * nd;
    if data.len() < head {
        return Err(err(format!("file ends inside the header of {nd} dimensions")));
    }
    let dims: Vec<usize> = (0..nd)
        .map(|i| u32::from_be_bytes([data[4 + 4 * i], data[5 + 4 * i], data[6 + 4 * i], data[7 + 4 * i]]) as usize)
        .collect();
    let n = dims
        .iter()
        .try_fold(1usize, |a, d| a.checked_mul(*d))
        .ok_or_else(|| err(format!("dimensions {dims:?} overflow")))?;
    if data.len() - head != n {
        return Err(err(format!("dimensions {dims:?} need {n} bytes of data, the file has {}", data.len() - head)));
    }
    Ok((dims, data[head..].to_vec()))
}

/// Encodes an IDX file of unsigned bytes (uncompressed).
pub fn write_idx(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        out.extend_from_slice(&(*d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

/// Memory layout of the model's input tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Layout {
    /// Channels first (PyTorch, ONNX): `[C, H, W]` per sample.
    #[default]
    Nchw,
    /// Channels last (TensorFlow): `[H, W, C]` per sample.
    Nhwc,
}

impl std::fmt::Display for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Layout::Nchw => "NCHW",
            Layout::Nhwc => "NHWC",
        })
    }
}

/// How pixels become model inputs: `x = (pixel · scale − mean) / std`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Preprocess {
    /// Multiplier applied to the raw 0..=255 pixel.
    pub scale: f32,
    /// Subtracted after scaling.
    pub mean: f32,
    /// Divided by after subtracting.
    pub std: f32,
    /// Input layout.
    pub layout: Layout,
}

impl Default for Preprocess {
    /// Fashion-MNIST's normalization for our reference models: x/255, then (x − 0.2860)/0.3530.
    fn default() -> Self {
        Preprocess { scale: 1.0 / 255.0, mean: 0.2860, std: 0.3530, layout: Layout::Nchw }
    }
}

impl Preprocess {
    /// Checks that the numbers are usable.
    pub fn validate(&self) -> Result<()> {
        if !(self.scale.is_finite() && self.mean.is_finite() && self.std.is_finite() && self.std != 0.0) {
            return Err(Error::Data {
                origin: "preprocessing".into(),
                message: format!(
                    "scale {}, mean {}, std {} must be finite with std ≠ 0",
                    self.scale, self.mean, self.std
                ),
            });
        }
        Ok(())
    }

    /// Converts grayscale pixels (one channel, so both layouts coincide) to inputs.
    pub fn apply(&self, pixels: &[u8]) -> Vec<f32> {
        pixels.iter().map(|&p| (f32::from(p) * self.scale - self.mean) / self.std).collect()
    }
}
