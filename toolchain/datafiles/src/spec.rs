//! Data-set descriptions: a small RON file saying what a path cannot — which files hold
//! the samples and labels, their layout, channel order, scaling, per-channel
//! normalisation, resize/crop, and how many classes there are.
//!
//! ```ron
//! (
//!     inputs: "x_test.npy",         // .npy, .npz, IDX (raw or .gz), or a folder of class folders
//!     labels: "y_test.npy",         // .npy or IDX; for an .npz, the array's name
//!     layout: Nhwc,                 // Nchw (channels first) or Nhwc (channels last)
//!     scale: 0.00392156862745098,   // raw value × scale …
//!     mean: [0.4914, 0.4822, 0.4465],  // … − mean[c] …
//!     std: [0.2470, 0.2435, 0.2616],   // … / std[c]
//!     classes: 10,
//! )
//! ```
//!
//! Every field but `inputs` may be left out; paths are relative to the description.

use npu_data::{Layout, Overrides};
use serde::{Deserialize, Serialize};

use crate::error::{file_err, Result};
use crate::images::{Channels, ImageOptions};

/// A data-set description.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// The samples: a `.npy`, `.npz` or IDX file, or a folder of class subfolders.
    pub inputs: String,
    /// The labels or targets: a `.npy` or IDX file; for an `.npz`, the array's name.
    #[serde(default)]
    pub labels: Option<String>,
    /// For an `.npz`: the name of the inputs array.
    #[serde(default)]
    pub inputs_key: Option<String>,
    /// Order of the samples' values.
    #[serde(default)]
    pub layout: Option<Layout>,
    /// Image folders: channels to decode to.
    #[serde(default)]
    pub channels: Option<Channels>,
    /// Image folders: resize the shorter side to this.
    #[serde(default)]
    pub resize: Option<u32>,
    /// Image folders: cut the central square of this side.
    #[serde(default)]
    pub crop: Option<u32>,
    /// Multiplier for raw values.
    #[serde(default)]
    pub scale: Option<f32>,
    /// Mean(s), one or one per channel.
    #[serde(default)]
    pub mean: Option<Vec<f32>>,
    /// Standard deviation(s), one or one per channel.
    #[serde(default)]
    pub std: Option<Vec<f32>>,
    /// Number of classes (labels must be below it).
    #[serde(default)]
    pub classes: Option<usize>,
}

impl Spec {
    /// Parses a description (`Some(…)` may be written without `Some`).
    pub fn from_ron(text: &str, origin: &str) -> Result<Spec> {
        let opts = ron::Options::default().with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME);
        let s: Spec = opts.from_str(text).map_err(|e| file_err(origin, format!("{e}")))?;
        if s.inputs.trim().is_empty() {
            return Err(file_err(origin, "`inputs` names no file"));
        }
        if s.classes == Some(0) {
            return Err(file_err(origin, "`classes` must be at least 1"));
        }
        Ok(s)
    }

    /// The preprocessing the description states.
    pub fn overrides(&self) -> Overrides {
        Overrides { scale: self.scale, mean: self.mean.clone(), std: self.std.clone(), layout: self.layout }
    }

    /// How image folders are decoded under this description.
    pub fn image_options(&self) -> ImageOptions {
        ImageOptions { channels: self.channels, resize: self.resize, crop: self.crop }
    }
}
