//! NumPy `.npy` files, read and written with the `npyz` crate: every integer and float
//! type NumPy writes (`bool`, `u1`…`u8`, `i1`…`i8`, `f2`, `f4`, `f8`; either byte
//! order; C or Fortran order), narrowed to [`Elements`] only where exact.

use std::io::Cursor;

use npu_data::{Array, Elements};
use npyz::{DType, NpyFile, NpyHeader, Order, TypeChar, WriterBuilder};

use crate::error::{file_err, Result};

fn ints<T: npyz::Deserialize + Copy>(
    f: NpyFile<&[u8]>,
    origin: &str,
    wide: impl Fn(T) -> Option<i32>,
) -> Result<Elements> {
    let v: Vec<T> = f.into_vec().map_err(|e| file_err(origin, format!("cannot read the data: {e}")))?;
    let mut out = Vec::with_capacity(v.len());
    for (i, x) in v.into_iter().enumerate() {
        out.push(wide(x).ok_or_else(|| {
            file_err(origin, format!("value {i} does not fit a 32-bit integer; integer data must lie within ±2³¹"))
        })?);
    }
    Ok(Elements::I32(out))
}

/// Parses a `.npy` file into an array (row-major, whatever order the file used).
pub fn parse(bytes: &[u8], origin: &str) -> Result<Array> {
    if !bytes.starts_with(b"\x93NUMPY") {
        return Err(file_err(origin, "not a .npy file (missing \\x93NUMPY magic)"));
    }
    let mut c = Cursor::new(bytes);
    let header = NpyHeader::from_reader(&mut c).map_err(|e| file_err(origin, format!("bad header: {e}")))?;
    let body = &bytes[c.position() as usize..];
    let DType::Plain(ts) = header.dtype() else {
        return Err(file_err(origin, "structured (record) arrays are not supported; save one plain array per file"));
    };
    let size = ts.size_field();
    let (name, ok) = match (ts.type_char(), size) {
        (TypeChar::Bool, 1) => ("bool", true),
        (TypeChar::Uint, 1) => ("uint8", true),
        (TypeChar::Uint, 2) => ("uint16", true),
        (TypeChar::Uint, 4) => ("uint32", true),
        (TypeChar::Uint, 8) => ("uint64", true),
        (TypeChar::Int, 1) => ("int8", true),
        (TypeChar::Int, 2) => ("int16", true),
        (TypeChar::Int, 4) => ("int32", true),
        (TypeChar::Int, 8) => ("int64", true),
        (TypeChar::Float, 2) => ("float16", true),
        (TypeChar::Float, 4) => ("float32", true),
        (TypeChar::Float, 8) => ("float64", true),
        _ => ("", false),
    };
    if !ok {
        return Err(file_err(
            origin,
            format!("element type `{ts}` is not supported (bool, unsigned and signed integers, float16/32/64)"),
        ));
    }
    let shape: Vec<usize> = header.shape().iter().map(|d| *d as usize).collect();
    let n = shape.iter().try_fold(1usize, |a, d| a.checked_mul(*d));
    let need = n.and_then(|n| n.checked_mul(size as usize));
    if need != Some(body.len()) {
        return Err(file_err(
            origin,
            match need {
                Some(b) => format!("shape {shape:?} of {name} needs {b} data bytes, the file has {}", body.len()),
                None => format!("shape {shape:?} is too large"),
            },
        ));
    }
    let fortran = header.order() == Order::Fortran;
    let f = NpyFile::with_header(header, body);
    let read = |e: std::io::Error| file_err(origin, format!("cannot read the data: {e}"));
    let values = match name {
        "bool" => Elements::U8(f.into_vec::<bool>().map_err(read)?.into_iter().map(u8::from).collect()),
        "uint8" => Elements::U8(f.into_vec::<u8>().map_err(read)?),
        "int8" => Elements::I8(f.into_vec::<i8>().map_err(read)?),
        "uint16" => ints::<u16>(f, origin, |x| Some(i32::from(x)))?,
        "uint32" => ints::<u32>(f, origin, |x| i32::try_from(x).ok())?,
        "uint64" => ints::<u64>(f, origin, |x| i32::try_from(x).ok())?,
        "int16" => ints::<i16>(f, origin, |x| Some(i32::from(x)))?,
        "int32" => ints::<i32>(f, origin, Some)?,
        "int64" => ints::<i64>(f, origin, |x| i32::try_from(x).ok())?,
        "float16" => Elements::F32(npu_data::finite(
            f.into_vec::<half::f16>().map_err(read)?.into_iter().map(f32::from),
            origin,
        )?),
        "float32" => Elements::F32(npu_data::finite(f.into_vec::<f32>().map_err(read)?.into_iter(), origin)?),
        _ => Elements::F32(npu_data::narrow(f.into_vec::<f64>().map_err(read)?.into_iter(), origin)?),
    };
    let values = if fortran && shape.len() > 1 { to_c_order(&shape, values) } else { values };
    Ok(Array { shape, values, dtype: name.into() })
}

/// Reorders Fortran-order (column-major) values to C order.
fn to_c_order(shape: &[usize], v: Elements) -> Elements {
    let n: usize = shape.iter().product();
    // Fortran strides: the first axis varies fastest.
    let mut fstride = vec![1usize; shape.len()];
    for k in 1..shape.len() {
        fstride[k] = fstride[k - 1] * shape[k - 1];
    }
    let src: Vec<usize> = (0..n)
        .map(|mut c| {
            let mut f = 0;
            for k in (0..shape.len()).rev() {
                f += (c % shape[k]) * fstride[k];
                c /= shape[k];
            }
            f
        })
        .collect();
    fn pick<T: Copy>(v: &[T], src: &[usize]) -> Vec<T> {
        src.iter().map(|i| v[*i]).collect()
    }
    match v {
        Elements::U8(x) => Elements::U8(pick(&x, &src)),
        Elements::I8(x) => Elements::I8(pick(&x, &src)),
        Elements::I32(x) => Elements::I32(pick(&x, &src)),
        Elements::F32(x) => Elements::F32(pick(&x, &src)),
    }
}

fn write_with<T: npyz::AutoSerialize + Copy>(shape: &[usize], data: &[T]) -> Vec<u8> {
    let shape: Vec<u64> = shape.iter().map(|d| *d as u64).collect();
    let mut buf = Vec::new();
    let written = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&shape)
        .writer(&mut buf)
        .begin_nd()
        .and_then(|mut w| w.extend(data.iter().copied()).and_then(|_| w.finish()));
    // Writing to a Vec cannot fail.
    debug_assert!(written.is_ok());
    buf
}

/// Writes a `.npy` (C order, little-endian) of `values` with `shape`.
pub fn write(shape: &[usize], values: &Elements) -> Vec<u8> {
    match values {
        Elements::U8(v) => write_with(shape, v),
        Elements::I8(v) => write_with(shape, v),
        Elements::I32(v) => write_with(shape, v),
        Elements::F32(v) => write_with(shape, v),
    }
}

/// Writes a float64 `.npy` (NumPy's default type).
pub fn write_f64(shape: &[usize], values: &[f64]) -> Vec<u8> {
    write_with(shape, values)
}
