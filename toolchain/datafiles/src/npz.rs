//! NumPy `.npz` archives (`np.savez`, `np.savez_compressed`): a zip of `.npy` files,
//! opened with the `zip` crate.

use std::io::{Cursor, Read};

use npu_data::Array;

use crate::error::{file_err, Result};

/// The arrays of an `.npz`, by name (without `.npy`), in archive order. An entry larger
/// than the `inflated_bytes` limit ([`npu_data::limits`]) is refused, not expanded (a zip
/// bomb).
pub fn parse(bytes: &[u8], origin: &str) -> Result<Vec<(String, Array)>> {
    let mut z = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| file_err(origin, format!("not a .npz (zip) archive: {e}")))?;
    let limit = npu_data::limits::current().inflated_bytes;
    let too_large = |here: &str, size: &str| {
        file_err(here, format!("{size} uncompressed, more than {}", npu_data::limits::named("inflated_bytes", limit)))
    };
    let mut out = Vec::new();
    for i in 0..z.len() {
        let mut f = z.by_index(i).map_err(|e| file_err(origin, format!("entry {i}: {e}")))?;
        let name = f.name().map_err(|e| file_err(origin, format!("entry {i}: {e}")))?.to_string();
        let Some(key) = name.strip_suffix(".npy") else { continue };
        let here = format!("{origin}:{key}");
        if f.size() > limit {
            return Err(too_large(&here, &format!("{} bytes", f.size())));
        }
        // Room for what the entry declares, up to 64 MiB: beyond that the buffer grows
        // as data really inflates (a few bytes declaring 4 GiB allocated 4 GiB).
        let mut data = Vec::with_capacity(f.size().min(64 << 20) as usize);
        (&mut f).take(limit + 1).read_to_end(&mut data).map_err(|e| file_err(&here, format!("cannot inflate: {e}")))?;
        if data.len() as u64 > limit {
            return Err(too_large(&here, &format!("more than the {} bytes it declares", f.size())));
        }
        out.push((key.to_string(), crate::npy::parse(&data, &here)?));
    }
    if out.is_empty() {
        return Err(file_err(origin, "the archive holds no .npy arrays"));
    }
    Ok(out)
}

/// Names under which archives usually keep the inputs, in order of preference.
pub const INPUT_KEYS: [&str; 8] = ["x", "X", "inputs", "input", "data", "images", "x_test", "features"];
/// Names under which archives usually keep the labels or targets.
pub const LABEL_KEYS: [&str; 7] = ["y", "Y", "labels", "label", "targets", "y_test", "target"];

/// Picks the inputs and labels out of an archive's arrays: by the given keys, else by
/// the usual names, else — for a single array — that array without labels.
pub fn split(
    mut arrays: Vec<(String, Array)>,
    inputs: Option<&str>,
    labels: Option<&str>,
    origin: &str,
) -> Result<(Array, Option<Array>)> {
    let names: Vec<String> = arrays.iter().map(|(k, _)| k.clone()).collect();
    let mut take = |key: &str| arrays.iter().position(|(k, _)| k == key).map(|i| arrays.remove(i).1);
    let x = match inputs {
        Some(k) => take(k).ok_or_else(|| file_err(origin, format!("no array `{k}` (it has: {})", names.join(", "))))?,
        None if names.len() == 1 => take(&names[0].clone()).ok_or_else(|| file_err(origin, "empty archive"))?,
        None => INPUT_KEYS.iter().find_map(|k| take(k)).ok_or_else(|| {
            file_err(
                origin,
                format!(
                    "which array holds the inputs? it has: {}; name it in a data-set description (`inputs_key`)",
                    names.join(", ")
                ),
            )
        })?,
    };
    let y = match labels {
        Some(k) => {
            Some(take(k).ok_or_else(|| file_err(origin, format!("no array `{k}` (it has: {})", names.join(", "))))?)
        }
        None => LABEL_KEYS.iter().find_map(|k| take(k)),
    };
    Ok((x, y))
}
