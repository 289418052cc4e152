//! `npu mixed`: the mixed-precision search of [`npu_app::mixed`] on a model and
//! hardware named on the command line.

use anyhow::Result;

pub use npu_app::mixed::{describe, pareto, Found, Point};

use crate::load;

/// Search options, with the model and hardware as the command line names them.
#[derive(Debug, Clone)]
pub struct Options {
    /// Model.
    pub model: String,
    /// Hardware preset or RON file.
    pub hw: String,
    /// Largest accuracy drop allowed against all-INT8, points.
    pub max_drop: f64,
    /// Minimize energy per frame instead of cycles.
    pub energy: bool,
    /// Validation images.
    pub val_images: usize,
    /// Calibration images.
    pub calib: usize,
    /// Training (calibration and validation) and test data.
    pub source: crate::data::Source,
}

/// Loads the model, hardware and training data (the embedded subset by default) and
/// runs the search.
pub fn search(o: &Options, progress: &mut dyn FnMut(&str)) -> Result<Found> {
    let mut model = load::model(std::path::Path::new(&o.model))?;
    let hw = load::hardware(&o.hw)?;
    let data = o.source.train()?;
    o.source.prepare(&mut model, &data)?;
    let train = data.ds;
    let opts =
        npu_app::mixed::Options { max_drop: o.max_drop, energy: o.energy, val_images: o.val_images, calib: o.calib };
    Ok(npu_app::mixed::search(&model, &hw, &train, &opts, progress)?)
}
