//! The npu model file (`.npum`): a model's graph, weights, preprocessing and training
//! record, serialized with serde (postcard) behind a magic number and a version.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::Model;

/// File magic.
pub const MAGIC: &[u8; 8] = b"NPUMODEL";
/// Format version.
pub const VERSION: u32 = 1;

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
struct FileV1 {
    model: Model,
    record: Option<TrainRecord>,
}

/// Serializes a model (and how it was trained).
pub fn encode(model: &Model, record: Option<&TrainRecord>) -> Result<Vec<u8>> {
    let body = postcard::to_stdvec(&FileV1 { model: model.clone(), record: record.cloned() })
        .map_err(|e| Error::File { origin: model.name.clone(), message: format!("cannot serialize: {e}") })?;
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&body);
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
    if version != VERSION {
        return Err(err(format!("model file version {version} is not supported (expected {VERSION})")));
    }
    let f: FileV1 = postcard::from_bytes(&bytes[12..]).map_err(|e| err(format!("corrupt model file: {e}")))?;
    f.model.graph.verify().map_err(|e| err(e.to_string()))?;
    f.model.preprocess.validate()?;
    Ok((f.model, f.record))
}
