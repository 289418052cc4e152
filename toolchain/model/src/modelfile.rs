//! The npu model file (`.npum`): a model's graph, weights, preprocessing and training
//! record, serialized with serde (postcard) behind a magic number and a version, and
//! followed by a CRC-32 of everything before it (version 3).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::Model;

/// File magic.
pub const MAGIC: &[u8; 8] = b"NPUMODEL";
/// Format version: 3 is version 2 followed by a CRC-32 (a flipped byte is an error,
/// not a different model); 2 has per-channel means and standard deviations; version 1
/// files (one mean, one std) and version 2 files are still read.
pub const VERSION: u32 = 3;

/// Appends the CRC-32 (IEEE) of `out` to it, little-endian: the seal of npu's model
/// files (`.npum` version 3, `.npuq` version 3).
pub fn seal(out: &mut Vec<u8>) {
    let crc = crc32fast::hash(out);
    out.extend_from_slice(&crc.to_le_bytes());
}

/// Recomputes the seal of a sealed file in place (for tools that edit or mutate the body
/// on purpose, such as the fuzzer).
pub fn reseal(bytes: &mut [u8]) {
    if let Some(n) = bytes.len().checked_sub(4) {
        let crc = crc32fast::hash(&bytes[..n]);
        bytes[n..].copy_from_slice(&crc.to_le_bytes());
    }
}

/// Checks the seal of a file whose `header` bytes (magic and version) come first;
/// returns the body between them and the checksum, or a message saying why not.
pub fn unseal(bytes: &[u8], header: usize) -> std::result::Result<&[u8], String> {
    let Some(n) = bytes.len().checked_sub(4).filter(|n| *n >= header) else {
        return Err("too short for its checksum".into());
    };
    let stored = u32::from_le_bytes([bytes[n], bytes[n + 1], bytes[n + 2], bytes[n + 3]]);
    let actual = crc32fast::hash(&bytes[..n]);
    if stored != actual {
        return Err(format!(
            "checksum {actual:08x} does not match the stored {stored:08x} (the file changed after it was written)"
        ));
    }
    Ok(&bytes[header..n])
}

/// How a model was trained, kept with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TrainRecord {
    /// Architecture name.
    pub arch: String,
    /// The full training configuration, as RON.
    pub config: String,
    /// Epochs completed.
    pub epochs: usize,
    /// Test-set top-1 accuracy after the last epoch (0..1), if measured.
    pub test_accuracy: Option<f64>,
    /// The command that produced it.
    pub command: String,
}

#[derive(Serialize, Deserialize)]
struct FileV2 {
    model: Model,
    record: Option<TrainRecord>,
}

/// Version 1's preprocessing: one mean and one std.
#[derive(Deserialize)]
struct PreprocessV1 {
    scale: f32,
    mean: f32,
    std: f32,
    layout: npu_data::Layout,
}

#[derive(Deserialize)]
struct ModelV1 {
    name: String,
    graph: crate::ir::Graph,
    preprocess: PreprocessV1,
    has_preprocess: bool,
}

#[derive(Deserialize)]
struct FileV1 {
    model: ModelV1,
    record: Option<TrainRecord>,
}

impl From<FileV1> for FileV2 {
    fn from(f: FileV1) -> FileV2 {
        let ModelV1 { name, graph, preprocess: p, has_preprocess } = f.model;
        let preprocess =
            npu_data::Preprocess { scale: p.scale, mean: vec![p.mean], std: vec![p.std], layout: p.layout };
        FileV2 { model: Model { name, graph, preprocess, has_preprocess }, record: f.record }
    }
}

/// Serializes a model (and how it was trained).
pub fn encode(model: &Model, record: Option<&TrainRecord>) -> Result<Vec<u8>> {
    let body = postcard::to_stdvec(&FileV2 { model: model.clone(), record: record.cloned() })
        .map_err(|e| Error::File { origin: model.name.clone(), message: format!("cannot serialize: {e}") })?;
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&body);
    seal(&mut out);
    Ok(out)
}

/// Reads a model file, verifying its graph.
pub fn decode(bytes: &[u8], origin: &str) -> Result<Model> {
    decode_with_record(bytes, origin).map(|(m, _)| m)
}

/// Reads a model file and its training record.
pub fn decode_with_record(bytes: &[u8], origin: &str) -> Result<(Model, Option<TrainRecord>)> {
    let err = |m: String| Error::File { origin: origin.into(), message: m };
    if bytes.len() < 12 || &bytes[..8] != MAGIC {
        return Err(err("not an npu model file (missing NPUMODEL magic)".into()));
    }
    let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    let corrupt = |e: postcard::Error| err(format!("corrupt model file: {e}"));
    let f: FileV2 = match version {
        1 => postcard::from_bytes::<FileV1>(&bytes[12..]).map_err(corrupt)?.into(),
        2 => postcard::from_bytes(&bytes[12..]).map_err(corrupt)?,
        VERSION => {
            let body = unseal(bytes, 12).map_err(|m| err(format!("corrupt model file: {m}")))?;
            let (f, rest) = postcard::take_from_bytes(body).map_err(corrupt)?;
            if !rest.is_empty() {
                return Err(err(format!("corrupt model file: trailing data after the model ({} B)", rest.len())));
            }
            f
        }
        v => return Err(err(format!("model file version {v} is not supported (expected 1..={VERSION})"))),
    };
    f.model.graph.verify().map_err(|e| err(e.to_string()))?;
    f.model.preprocess.validate()?;
    Ok((f.model, f.record))
}
