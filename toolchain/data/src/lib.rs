//! `npu-data`: data sets as npu holds them and the one place where samples become a
//! model's input.
//!
//! A [`Dataset`] is `N` samples of any per-sample shape, with their element type as the
//! file had it ([`Elements`]), optional class labels or regression targets, and where
//! they came from. [`Dataset::inputs`] is the only conversion from samples to model
//! inputs: it checks the samples' shape against the model's (channel-first) input shape
//! and the declared [`Layout`], reorders channels-last samples, and applies the
//! [`Preprocess`]ing the element type calls for:
//!
//! | samples | meaning |
//! |---|---|
//! | `u8`, `i8`, `i16`, `i32`, `i64` | raw readings (pixels, ADC counts): `x = (v · scale − mean[c]) / std[c]` |
//! | `f16`, `f32`, `f64` | inputs already preprocessed: taken as they are |
//!
//! (A quantized model whose own interface is integer — an int8 TFLite model — takes
//! `i8` samples as its input values; that rule lives with the quantized model.)
//!
//! IDX files are decoded here (the embedded Fashion-MNIST is IDX); the other formats
//! (`.npy`, `.npz`, image folders, data-set descriptions) are in `npu-datafiles`.
//! Metrics ([`metrics`]) score a model's outputs against what a data set holds. The crate
//! parses bytes; callers do the file I/O.

#![deny(missing_docs)]

pub mod error;
pub mod limits;
pub mod metrics;

pub use error::{Error, Result};

use std::io::Read;
use std::ops::Range;

use serde::{Deserialize, Serialize};

/// Sample values as the file stored them (wider integers and floats are narrowed only
/// when exact: a value that does not fit is an error where the data set is built).
#[derive(Debug, Clone, PartialEq)]
pub enum Elements {
    /// Unsigned bytes (pixels).
    U8(Vec<u8>),
    /// Signed bytes.
    I8(Vec<i8>),
    /// 16-, 32- or 64-bit integers whose values fit an `i32`.
    I32(Vec<i32>),
    /// Floats (16-, 32- or 64-bit in the file), finite.
    F32(Vec<f32>),
}

impl Elements {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            Elements::U8(v) => v.len(),
            Elements::I8(v) => v.len(),
            Elements::I32(v) => v.len(),
            Elements::F32(v) => v.len(),
        }
    }
    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Whether the values are raw integer readings (preprocessed on the way in) rather
    /// than floats taken as they are.
    pub fn is_raw(&self) -> bool {
        !matches!(self, Elements::F32(_))
    }
    /// Every value as f64 (exact).
    pub fn to_f64(&self) -> Vec<f64> {
        match self {
            Elements::U8(v) => v.iter().map(|x| f64::from(*x)).collect(),
            Elements::I8(v) => v.iter().map(|x| f64::from(*x)).collect(),
            Elements::I32(v) => v.iter().map(|x| f64::from(*x)).collect(),
            Elements::F32(v) => v.iter().map(|x| f64::from(*x)).collect(),
        }
    }
    /// Every value as f32 (exact for all but `i32` beyond ±2²⁴).
    pub fn to_f32(&self) -> Vec<f32> {
        (0..self.len()).map(|i| self.get(i)).collect()
    }
    fn get(&self, i: usize) -> f32 {
        match self {
            Elements::U8(v) => f32::from(v[i]),
            Elements::I8(v) => f32::from(v[i]),
            Elements::I32(v) => v[i] as f32,
            Elements::F32(v) => v[i],
        }
    }
    /// The integer value at `i` (floats are not integers: `None`).
    pub fn int(&self, i: usize) -> Option<i32> {
        match self {
            Elements::U8(v) => Some(i32::from(v[i])),
            Elements::I8(v) => Some(i32::from(v[i])),
            Elements::I32(v) => Some(v[i]),
            Elements::F32(_) => None,
        }
    }
    fn slice(&self, r: Range<usize>) -> Elements {
        match self {
            Elements::U8(v) => Elements::U8(v[r].to_vec()),
            Elements::I8(v) => Elements::I8(v[r].to_vec()),
            Elements::I32(v) => Elements::I32(v[r].to_vec()),
            Elements::F32(v) => Elements::F32(v[r].to_vec()),
        }
    }
}

/// An n-dimensional array as read from a file: the currency between file decoders and
/// [`Dataset::from_arrays`].
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub values: Elements,
    /// The element type as the file named it (`uint8`, `float64`, …), for messages.
    pub dtype: String,
}

impl Array {
    /// Every value as f32.
    pub fn to_f32(&self) -> Vec<f32> {
        self.values.to_f32()
    }
    /// Every value as f64 (exact).
    pub fn to_f64(&self) -> Vec<f64> {
        self.values.to_f64()
    }
}

/// What a data set says about each sample besides its input.
#[derive(Debug, Clone, PartialEq)]
pub enum Targets {
    /// Nothing: metrics compare against a reference model's outputs.
    None,
    /// One class per sample.
    Classes(Vec<u32>),
    /// A float vector per sample (regression), `len() · per` values.
    Values {
        /// Values per sample.
        per: usize,
        /// The values, sample after sample.
        data: Vec<f32>,
    },
}

/// Samples of any per-sample shape and element type, with their labels or targets.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Where the samples came from (a path, or the embedded set), for messages.
    pub origin: String,
    /// Per-sample shape as stored (e.g. `[28, 28]`, `[32, 32, 3]`, `[49, 10]`, `[20]`).
    pub shape: Vec<usize>,
    /// `len() · shape.product()` values, sample after sample.
    pub elements: Elements,
    /// The element type as the file named it.
    pub dtype: String,
    /// Labels or targets.
    pub targets: Targets,
    /// Number of classes, when known (labels are below it).
    pub classes: Option<usize>,
    /// Class names in label order, when the data names them (image folders).
    pub class_names: Vec<String>,
    /// The order the samples are stored in, when the data says (image files are
    /// channels-last; a data-set description may say either). `None`: the model's.
    pub layout: Option<Layout>,
}

fn data_err(origin: &str, m: impl Into<String>) -> Error {
    Error::Data { origin: origin.into(), message: m.into() }
}

/// `a×b×c` for messages (`scalar` for an empty shape).
pub fn dims(shape: &[usize]) -> String {
    if shape.is_empty() {
        return "scalar".into();
    }
    shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("×")
}

impl Dataset {
    /// Builds a data set from an inputs array (`[N, …per-sample shape]`) and an optional
    /// labels array: `[N]` (or `[N, 1]`) of non-negative integers gives classes, floats
    /// (any per-sample shape) give regression targets.
    pub fn from_arrays(inputs: Array, labels: Option<Array>, origin: &str) -> Result<Dataset> {
        let Some((&n, per)) = inputs.shape.split_first() else {
            return Err(data_err(origin, "the inputs are a scalar; expected an array [N, …] of N samples"));
        };
        if inputs.values.len() != n * per.iter().product::<usize>() {
            return Err(data_err(origin, "the inputs' values do not match their shape"));
        }
        let targets = match labels {
            None => Targets::None,
            Some(l) => {
                if l.shape.first() != Some(&n) {
                    return Err(data_err(
                        origin,
                        format!(
                            "{n} samples but the labels have shape {:?} ({} rows)",
                            l.shape,
                            l.shape.first().unwrap_or(&0)
                        ),
                    ));
                }
                let per_label: usize = l.shape[1..].iter().product();
                match &l.values {
                    Elements::F32(v) => Targets::Values { per: per_label, data: v.clone() },
                    ints => {
                        if per_label != 1 {
                            return Err(data_err(
                                origin,
                                format!(
                                    "integer labels must be one class per sample ([N] or [N, 1]); found shape {:?} \
                                     (store regression targets as floats)",
                                    l.shape
                                ),
                            ));
                        }
                        let mut out = Vec::with_capacity(n);
                        for i in 0..n {
                            let v = ints.int(i).unwrap_or(0);
                            let c = u32::try_from(v).map_err(|_| {
                                data_err(origin, format!("label {i} is {v}; class labels must be 0 or more"))
                            })?;
                            out.push(c);
                        }
                        Targets::Classes(out)
                    }
                }
            }
        };
        let ds = Dataset {
            origin: origin.into(),
            shape: per.to_vec(),
            elements: inputs.values,
            dtype: inputs.dtype,
            targets,
            classes: None,
            class_names: Vec::new(),
            layout: None,
        };
        Ok(ds)
    }

    /// Pairs an images file and a labels file (IDX, gzip-compressed or raw; any rank and
    /// element type).
    pub fn from_idx(images: &[u8], labels: &[u8], origin: &str) -> Result<Dataset> {
        let x = parse_idx(images, &format!("{origin} (images)"))?;
        let y = parse_idx(labels, &format!("{origin} (labels)"))?;
        if y.shape.len() != 1 {
            return Err(data_err(origin, format!("labels must have 1 dimension, found {:?}", y.shape)));
        }
        if y.shape.first() != x.shape.first() {
            return Err(data_err(
                origin,
                format!("{} images but {} labels", x.shape.first().unwrap_or(&0), y.shape[0]),
            ));
        }
        Dataset::from_arrays(x, Some(y), origin)
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        let per: usize = self.shape.iter().product();
        self.elements.len().checked_div(per).unwrap_or(0)
    }
    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Values per sample.
    pub fn sample_len(&self) -> usize {
        self.shape.iter().product()
    }
    /// Class labels, if the data set has them.
    pub fn labels(&self) -> Option<&[u32]> {
        match &self.targets {
            Targets::Classes(c) => Some(c),
            _ => None,
        }
    }
    /// The raw bytes of sample `i` when the samples are `u8` (images), else `None`.
    pub fn image(&self, i: usize) -> Option<&[u8]> {
        let n = self.sample_len();
        match &self.elements {
            Elements::U8(v) => v.get(i * n..(i + 1) * n),
            _ => None,
        }
    }
    /// The first `n` samples (all if fewer).
    pub fn take(&self, n: usize) -> Dataset {
        self.slice(0, n)
    }

    /// Samples `start..start + n` (clipped to the set).
    pub fn slice(&self, start: usize, n: usize) -> Dataset {
        let start = start.min(self.len());
        let end = start.saturating_add(n).min(self.len());
        let per = self.sample_len();
        let targets = match &self.targets {
            Targets::None => Targets::None,
            Targets::Classes(c) => Targets::Classes(c[start..end].to_vec()),
            Targets::Values { per, data } => Targets::Values { per: *per, data: data[start * per..end * per].to_vec() },
        };
        Dataset {
            origin: self.origin.clone(),
            shape: self.shape.clone(),
            elements: self.elements.slice(start * per..end * per),
            dtype: self.dtype.clone(),
            targets,
            classes: self.classes,
            class_names: self.class_names.clone(),
            layout: self.layout,
        }
    }

    /// Checks the labels against a class count (the model's outputs, or the data set
    /// description's `classes`).
    pub fn check_classes(&self, classes: usize, what: &str) -> Result<()> {
        if let Some(l) = self.labels() {
            if let Some((i, c)) = l.iter().enumerate().find(|(_, c)| **c as usize >= classes) {
                return Err(data_err(
                    &self.origin,
                    format!(
                        "label {i} is class {c}, but {what} has {classes} classes (0..{})",
                        classes.saturating_sub(1)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// How samples map onto a model input of per-sample, channel-first shape `input`
    /// under `pre`: the source index of every input position. Errors say what was
    /// expected, what was given and which flag fixes it.
    pub fn fit(&self, input: &[usize], pre: &Preprocess) -> Result<Vec<usize>> {
        let squeeze = |s: &[usize]| s.iter().copied().filter(|d| *d != 1).collect::<Vec<_>>();
        let total: usize = input.iter().product();
        let want_chw = squeeze(input);
        let hwc: Option<Vec<usize>> = (input.len() == 3).then(|| vec![input[1], input[2], input[0]]);
        let have = squeeze(&self.shape);
        let model =
            format!("{} ({})", dims(input), if input.len() == 3 { "C×H×W, channels first" } else { "per sample" });
        let given = format!("samples of {} {}", dims(&self.shape), self.dtype);
        let here = self.origin.as_str();
        match pre.layout {
            Layout::Nchw => {
                if have == want_chw {
                    return Ok((0..total).collect());
                }
                if let Some(h) = &hwc {
                    if have == squeeze(h) {
                        return Err(data_err(
                            here,
                            format!(
                                "{given}: the model takes {model}; these look channels-last (H×W×C) — \
                                 pass --layout nhwc (or `layout: Nhwc` in the data set description)"
                            ),
                        ));
                    }
                }
            }
            Layout::Nhwc => {
                let Some(h) = &hwc else {
                    return Err(data_err(
                        here,
                        format!(
                            "layout NHWC describes images, but the model takes {model}; \
                             pass --layout nchw for samples in the model's own order"
                        ),
                    ));
                };
                if have == squeeze(h) {
                    let (c, hh, w) = (input[0], input[1], input[2]);
                    let mut map = Vec::with_capacity(total);
                    for ci in 0..c {
                        for y in 0..hh {
                            for x in 0..w {
                                map.push((y * w + x) * c + ci);
                            }
                        }
                    }
                    return Ok(map);
                }
                if have == want_chw {
                    return Err(data_err(
                        here,
                        format!(
                            "{given}: the model takes {model} and these are in that order already, \
                             but layout NHWC was asked for — pass --layout nchw"
                        ),
                    ));
                }
            }
        }
        let same = self.sample_len() == total;
        let hint = if same {
            "; same number of values, different shape: reshape the array to the model's shape"
        } else if !self.class_names.is_empty() {
            "; image folders: set `resize` and `crop` in a data-set description (docs/data.md)"
        } else {
            ""
        };
        Err(data_err(here, format!("{given}, but the model takes {model}{hint}")))
    }

    /// The model inputs for samples `range`: checked with [`Dataset::fit`], reordered to
    /// the model's channel-first order and preprocessed as the element type calls for
    /// (raw integers through `pre`, floats as they are).
    pub fn inputs(&self, input: &[usize], pre: &Preprocess, range: Range<usize>) -> Result<Vec<f32>> {
        let map = self.fit(input, pre)?;
        self.inputs_with(&map, input, pre, range)
    }

    /// [`Dataset::inputs`] with a mapping from [`Dataset::fit`].
    pub fn inputs_with(
        &self,
        map: &[usize],
        input: &[usize],
        pre: &Preprocess,
        range: Range<usize>,
    ) -> Result<Vec<f32>> {
        if range.end > self.len() || range.start > range.end {
            return Err(data_err(&self.origin, format!("samples {range:?} are beyond the {} there are", self.len())));
        }
        let per = self.sample_len();
        let total = map.len();
        let mut out = Vec::with_capacity(range.len() * total);
        if self.elements.is_raw() {
            let (mean, std) = pre.per_channel(input)?;
            let plane = total / mean.len().max(1);
            for s in range {
                let base = s * per;
                for (j, src) in map.iter().enumerate() {
                    let c = j / plane.max(1);
                    out.push((self.elements.get(base + src) * pre.scale - mean[c]) / std[c]);
                }
            }
        } else {
            for s in range {
                let base = s * per;
                out.extend(map.iter().map(|src| self.elements.get(base + src)));
            }
        }
        Ok(out)
    }

    /// The integer samples `range` reordered to the model's order, without
    /// preprocessing (for a model that takes integers). `None` for float samples.
    pub fn integers(&self, map: &[usize], range: Range<usize>) -> Option<Vec<i32>> {
        let per = self.sample_len();
        let mut out = Vec::with_capacity(range.len() * map.len());
        for s in range {
            for src in map {
                out.push(self.elements.int(s * per + src)?);
            }
        }
        Some(out)
    }
}

const IDX_TYPES: [(u8, &str, usize); 6] = [
    (0x08, "uint8", 1),
    (0x09, "int8", 1),
    (0x0B, "int16", 2),
    (0x0C, "int32", 4),
    (0x0D, "float32", 4),
    (0x0E, "float64", 8),
];

/// Inflates a gzip-compressed IDX file: its header first, then exactly the data the
/// header declares, refusing a declared size over the `inflated_bytes` limit
/// ([`limits`]) and a stream that holds more than the header declares (a small file
/// that inflates without end is an error, not an allocation of all memory).
fn gunzip_idx(bytes: &[u8], origin: &str) -> Result<Vec<u8>> {
    let err = |m: String| data_err(origin, m);
    let corrupt = |e: std::io::Error| err(format!("corrupt gzip stream: {e}"));
    let mut z = flate2::read::GzDecoder::new(bytes);
    let mut out = Vec::new();
    (&mut z).take(4).read_to_end(&mut out).map_err(corrupt)?;
    if out.len() < 4 || out[0] != 0 || out[1] != 0 {
        // Not an IDX header: let the caller's checks name the problem.
        return Ok(out);
    }
    let nd = u64::from(out[3]);
    (&mut z).take(4 * nd).read_to_end(&mut out).map_err(corrupt)?;
    if (out.len() as u64) < 4 + 4 * nd {
        return Ok(out);
    }
    let size = IDX_TYPES.iter().find(|t| t.0 == out[2]).map_or(1, |t| t.2) as u64;
    let declared = out[4..]
        .chunks(4)
        .try_fold(size, |a, c| a.checked_mul(u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]]))));
    let limit = limits::current().inflated_bytes;
    let declared = match declared {
        Some(d) if d <= limit => d,
        _ => {
            return Err(err(format!(
                "the header declares more bytes of data than {} of what a gzip stream may inflate to",
                limits::named("inflated_bytes", limit)
            )))
        }
    };
    // One byte past the declared size tells a stream that holds more.
    (&mut z).take(declared + 1).read_to_end(&mut out).map_err(corrupt)?;
    let body = out.len() as u64 - 4 - 4 * nd;
    if body > declared {
        return Err(err(format!(
            "the gzip stream holds more than the {declared} bytes of data its IDX header declares"
        )));
    }
    Ok(out)
}

/// Decodes an IDX file (any rank; unsigned/signed bytes, 16/32-bit integers, 32/64-bit
/// floats, big-endian as the format defines), gunzipping it first if it starts with the
/// gzip magic.
pub fn parse_idx(bytes: &[u8], origin: &str) -> Result<Array> {
    let err = |m: String| data_err(origin, m);
    let raw;
    let data: &[u8] = if bytes.starts_with(&[0x1f, 0x8b]) {
        raw = gunzip_idx(bytes, origin)?;
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
    let Some(&(_, name, size)) = IDX_TYPES.iter().find(|t| t.0 == data[2]) else {
        return Err(err(format!(
            "IDX element type {:#04x} is not one the format defines (0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32, 0x0D f32, 0x0E f64)",
            data[2]
        )));
    };
    let nd = usize::from(data[3]);
    let head = 4 + 4 * nd;
    if data.len() < head {
        return Err(err(format!("file ends inside the header of {nd} dimensions")));
    }
    let shape: Vec<usize> = (0..nd)
        .map(|i| u32::from_be_bytes([data[4 + 4 * i], data[5 + 4 * i], data[6 + 4 * i], data[7 + 4 * i]]) as usize)
        .collect();
    let n = shape
        .iter()
        .try_fold(1usize, |a, d| a.checked_mul(*d))
        .ok_or_else(|| err(format!("dimensions {shape:?} overflow")))?;
    let body = &data[head..];
    if Some(body.len()) != n.checked_mul(size) {
        return Err(err(format!(
            "dimensions {shape:?} of {name} need {} bytes of data, the file has {}",
            n * size,
            body.len()
        )));
    }
    let values = match data[2] {
        0x08 => Elements::U8(body.to_vec()),
        0x09 => Elements::I8(body.iter().map(|b| *b as i8).collect()),
        0x0B => Elements::I32(body.chunks(2).map(|c| i32::from(i16::from_be_bytes([c[0], c[1]]))).collect()),
        0x0C => Elements::I32(body.chunks(4).map(|c| i32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect()),
        0x0D => Elements::F32(finite(body.chunks(4).map(|c| f32::from_be_bytes([c[0], c[1], c[2], c[3]])), origin)?),
        _ => Elements::F32(narrow(
            body.chunks(8).map(|c| f64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])),
            origin,
        )?),
    };
    Ok(Array { shape, values, dtype: name.into() })
}

/// Collects floats, refusing NaN and infinities (naming the first one's index).
pub fn finite(values: impl Iterator<Item = f32>, origin: &str) -> Result<Vec<f32>> {
    values
        .enumerate()
        .map(|(i, v)| {
            if v.is_finite() {
                Ok(v)
            } else {
                Err(data_err(origin, format!("value {i} is {v}; data must be finite")))
            }
        })
        .collect()
}

/// Narrows f64 values to f32, refusing NaN, infinities and values beyond f32's range.
pub fn narrow(values: impl Iterator<Item = f64>, origin: &str) -> Result<Vec<f32>> {
    values
        .enumerate()
        .map(|(i, v)| {
            let f = v as f32;
            if f.is_finite() {
                Ok(f)
            } else {
                Err(data_err(origin, format!("value {i} is {v}; data must be finite and within float32's range")))
            }
        })
        .collect()
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

/// Order of a sample's values as they are stored; the model's graph is always
/// channel-first, so channels-last samples are reordered on the way in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Layout {
    /// Channels first (PyTorch, ONNX): `[C, H, W]` per sample.
    #[default]
    Nchw,
    /// Channels last (TensorFlow, image files, most `.npy` image sets): `[H, W, C]`.
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

/// How raw integer samples become model inputs: `x = (v · scale − mean[c]) / std[c]`,
/// with one mean/std for all channels or one per channel (the model input's first
/// axis), and the layout the samples are stored in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preprocess {
    /// Multiplier applied to the raw value (1/255 maps pixels to 0..1).
    pub scale: f32,
    /// Subtracted after scaling: one value, or one per channel.
    pub mean: Vec<f32>,
    /// Divided by after subtracting: one value, or one per channel.
    pub std: Vec<f32>,
    /// Order of the samples' values.
    pub layout: Layout,
}

impl Default for Preprocess {
    /// Fashion-MNIST's normalization for our reference models: x/255, then (x − 0.2860)/0.3530.
    fn default() -> Self {
        Preprocess { scale: 1.0 / 255.0, mean: vec![0.2860], std: vec![0.3530], layout: Layout::Nchw }
    }
}

impl std::fmt::Display for Preprocess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |v: &[f32]| {
            if v.len() == 1 {
                v[0].to_string()
            } else {
                format!("[{}]", v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", "))
            }
        };
        write!(f, "x = (v · {:.6} − {}) / {}, samples {}", self.scale, list(&self.mean), list(&self.std), self.layout)
    }
}

impl Preprocess {
    /// Checks that the numbers are usable.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(data_err("preprocessing", m));
        if !self.scale.is_finite() {
            return bad(format!("scale {} must be finite", self.scale));
        }
        if self.mean.is_empty() || self.std.is_empty() {
            return bad("mean and std need at least one value".into());
        }
        if let Some(m) = self.mean.iter().find(|m| !m.is_finite()) {
            return bad(format!("mean {m} must be finite"));
        }
        if let Some(s) = self.std.iter().find(|s| !s.is_finite() || **s == 0.0) {
            return bad(format!("std {s} must be finite and ≠ 0"));
        }
        if self.mean.len() != self.std.len() && self.mean.len() != 1 && self.std.len() != 1 {
            return bad(format!("{} means but {} standard deviations", self.mean.len(), self.std.len()));
        }
        Ok(())
    }

    /// Mean and std per channel of a model input of shape `input` (first axis =
    /// channels), broadcasting single values.
    pub fn per_channel(&self, input: &[usize]) -> Result<(Vec<f32>, Vec<f32>)> {
        self.validate()?;
        let k = self.mean.len().max(self.std.len());
        if k == 1 {
            return Ok((self.mean.clone(), self.std.clone()));
        }
        let c = input.first().copied().unwrap_or(1);
        if k != c {
            return Err(data_err(
                "preprocessing",
                format!("{k} per-channel means/stds, but the model input {} has {c} channels", dims(input)),
            ));
        }
        let get = |v: &[f32]| if v.len() == 1 { vec![v[0]; k] } else { v.to_vec() };
        Ok((get(&self.mean), get(&self.std)))
    }
}

/// Preprocessing stated by the user (flags, a data-set description) on top of the
/// model's own; each field replaces the model's when set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Overrides {
    /// Multiplier for raw values.
    pub scale: Option<f32>,
    /// Mean(s).
    pub mean: Option<Vec<f32>>,
    /// Standard deviation(s).
    pub std: Option<Vec<f32>>,
    /// Sample layout.
    pub layout: Option<Layout>,
}

impl Overrides {
    /// `self` where set, `lower` elsewhere.
    pub fn or(&self, lower: &Overrides) -> Overrides {
        Overrides {
            scale: self.scale.or(lower.scale),
            mean: self.mean.clone().or_else(|| lower.mean.clone()),
            std: self.std.clone().or_else(|| lower.std.clone()),
            layout: self.layout.or(lower.layout),
        }
    }
    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        *self == Overrides::default()
    }
    /// `p` with the set fields replaced.
    pub fn apply(&self, p: &Preprocess) -> Preprocess {
        Preprocess {
            scale: self.scale.unwrap_or(p.scale),
            mean: self.mean.clone().unwrap_or_else(|| p.mean.clone()),
            std: self.std.clone().unwrap_or_else(|| p.std.clone()),
            layout: self.layout.unwrap_or(p.layout),
        }
    }
}
