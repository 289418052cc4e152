//! NumPy `.npy` files (format 1.0 and 2.0) of little-endian float32, int8, uint8 or
//! int32 in C order: parsing and writing bytes (the caller does the file I/O).

use crate::error::{Error, Result};

/// Element type of an array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    /// `<f4`
    F32,
    /// `|i1`
    I8,
    /// `|u1`
    U8,
    /// `<i4`
    I32,
}

impl Dtype {
    fn descr(self) -> &'static str {
        match self {
            Dtype::F32 => "<f4",
            Dtype::I8 => "|i1",
            Dtype::U8 => "|u1",
            Dtype::I32 => "<i4",
        }
    }
    fn size(self) -> usize {
        match self {
            Dtype::F32 | Dtype::I32 => 4,
            Dtype::I8 | Dtype::U8 => 1,
        }
    }
}

/// An array read from or written to a `.npy` file.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Element type in the file.
    pub dtype: Dtype,
    /// The values, widened to f64 (exact for every supported type).
    pub data: Vec<f64>,
}

impl Array {
    /// The values as f32.
    pub fn to_f32(&self) -> Vec<f32> {
        self.data.iter().map(|v| *v as f32).collect()
    }
}

fn err(origin: &str, m: impl Into<String>) -> Error {
    Error::Data { origin: origin.into(), message: m.into() }
}

/// Parses a `.npy` file.
pub fn parse(bytes: &[u8], origin: &str) -> Result<Array> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(err(origin, "not a .npy file (missing \\x93NUMPY magic)"));
    }
    let (hlen, start) = match bytes[6] {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        v => return Err(err(origin, format!(".npy format version {v} is not supported"))),
    };
    let header = bytes.get(start..start + hlen).ok_or_else(|| err(origin, "file ends inside the header"))?;
    let header = std::str::from_utf8(header).map_err(|_| err(origin, "header is not text"))?;
    let field = |key: &str| -> Option<&str> {
        let i = header.find(&format!("'{key}'"))?;
        Some(header[i + key.len() + 2..].trim_start().trim_start_matches(':').trim_start())
    };
    let descr = field("descr").and_then(|s| s.split('\'').nth(1)).ok_or_else(|| err(origin, "header lacks 'descr'"))?;
    let dtype = match descr {
        "<f4" => Dtype::F32,
        "|i1" | "<i1" => Dtype::I8,
        "|u1" | "<u1" => Dtype::U8,
        "<i4" => Dtype::I32,
        d => return Err(err(origin, format!("element type `{d}` is not supported (float32, int8, uint8, int32)"))),
    };
    if field("fortran_order").is_some_and(|s| s.starts_with("True")) {
        return Err(err(origin, "Fortran-order arrays are not supported"));
    }
    let shape_txt = field("shape")
        .and_then(|s| s.strip_prefix('('))
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| err(origin, "header lacks 'shape'"))?;
    let shape: Vec<usize> = shape_txt
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| err(origin, format!("bad dimension `{s}` in shape"))))
        .collect::<Result<_>>()?;
    let n = shape
        .iter()
        .try_fold(1usize, |a, d| a.checked_mul(*d))
        .ok_or_else(|| err(origin, format!("shape {shape:?} is too large")))?;
    let body = &bytes[start + hlen..];
    if Some(body.len()) != n.checked_mul(dtype.size()) {
        return Err(err(
            origin,
            format!("shape {shape:?} of {descr} needs {} data bytes, the file has {}", n * dtype.size(), body.len()),
        ));
    }
    let data = match dtype {
        Dtype::F32 => body.chunks(4).map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]]))).collect(),
        Dtype::I32 => body.chunks(4).map(|c| f64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]]))).collect(),
        Dtype::I8 => body.iter().map(|b| f64::from(*b as i8)).collect(),
        Dtype::U8 => body.iter().map(|b| f64::from(*b)).collect(),
    };
    Ok(Array { shape, dtype, data })
}

/// Writes a `.npy` (format 1.0) file. Values are converted to `dtype` (integers must
/// already be in range; they are written as `as` casts of the f64 values).
pub fn write(shape: &[usize], dtype: Dtype, data: &[f64]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_txt = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut header = format!("{{'descr': '{}', 'fortran_order': False, 'shape': {shape_txt}, }}", dtype.descr());
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        match dtype {
            Dtype::F32 => out.extend_from_slice(&(*v as f32).to_le_bytes()),
            Dtype::I32 => out.extend_from_slice(&(*v as i32).to_le_bytes()),
            Dtype::I8 => out.push(*v as i8 as u8),
            Dtype::U8 => out.push(*v as u8),
        }
    }
    out
}
