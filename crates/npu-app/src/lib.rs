//! `npu-app`: the application library between the toolchain and simulator libraries and
//! the command line (as tract's `libcli` is to its `cli`). It composes them into typed
//! steps so that a Rust program — the CLI, a test, a notebook binding — needs no file
//! paths, no knowledge of SRAM addresses, byte layouts or the trace-then-replay
//! protocol:
//!
//! ```text
//!  Model ──[Recipe::quantize: scheme, ranges, fixes, pruning — a recipe is data]──▶ QModel
//!    QModel + HwConfig ──[Deployment::new: compile; what the NPU cannot run goes to the
//!                         host CPU, run by LayerRuntime on the integer kernels]──▶ Deployment
//!    Deployment ──[timing: one traced timing-only run]──▶ Timing (report, per-layer rows
//!                                                          with their bound, figures)
//!    Deployment + Timing + Dataset ──[evaluate: every input replayed bit-exactly on the
//!                                     simulator, in parallel]──▶ Evaluation (top-1, …)
//!  compare::compare: rows of recipes / quantized models through all of the above
//!  mixed::search: per-layer bit widths on the accuracy/cost Pareto front
//!  sweep: plans expanded into points (models × schemes × hardware parameters), measured
//! ```
//!
//! It does no file I/O and prints nothing; it logs through `tracing` and reports progress
//! through [`Progress`]. The defaults every front end shares are named here
//! ([`DEFAULT_HW`], [`DEFAULT_SCHEME`], [`DEFAULT_CALIB`]).
//!
//! The whole flow, from a model to accuracy and cycles on modeled hardware:
//!
//! ```
//! use npu_app::{Deployment, Recipe};
//! let model = npu_zoo::trained("cnn")?;
//! let calib = npu_zoo::fashion_mnist_train_subset()?;
//! let test = npu_zoo::fashion_mnist_test()?.take(64);
//! let q = Recipe::named("int8-per-channel", 100)?.quantize(&model, &calib)?;
//! let d = Deployment::new(q, npu_hw::preset("edge-256")?)?;
//! let timing = d.timing()?;
//! let eval = d.evaluate(&timing, &test, 2, &npu_app::NoProgress)?;
//! assert!(eval.top1() > 0.8 && timing.figures.fps > 1000.0);
//! let summary = format!("{:.2}% at {:.0} frames/s", eval.top1() * 100.0, timing.figures.fps);
//! assert!(summary.ends_with("frames/s"));
//! # Ok::<(), npu_app::Error>(())
//! ```

pub mod compare;
mod host;
pub mod mixed;
mod pipeline;
pub mod prune;
mod recipe;
mod report;
pub mod sweep;

pub use host::LayerRuntime;
pub use pipeline::{Deployment, Evaluation, Timing};
pub use recipe::{quantize, Recipe, RECIPES};
pub use report::{bound_of, figures, layer_rows, HwFigures, LayerRow};

/// Hardware the front ends use when none is given.
pub const DEFAULT_HW: &str = "edge-256";
/// Scheme the front ends use for a model that is not quantized yet.
pub const DEFAULT_SCHEME: &str = "int8-per-channel";
/// Calibration images (min/max) when a front end quantizes on its own.
pub const DEFAULT_CALIB: usize = 500;

/// Everything that can go wrong in the application library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A data set that cannot be read or used.
    #[error(transparent)]
    Data(#[from] npu_data::Error),
    /// An FP32 model that is invalid or cannot run.
    #[error(transparent)]
    Model(#[from] npu_model::Error),
    /// An imported TFLite model that cannot be used.
    #[error(transparent)]
    Tflite(#[from] npu_tflite::Error),
    /// Quantization failed or a quantized model is invalid.
    #[error(transparent)]
    Quant(#[from] npu_quant::Error),
    /// Training or pruning failed.
    #[error(transparent)]
    Train(#[from] npu_train::Error),
    /// The model cannot be compiled for the hardware.
    #[error(transparent)]
    Compile(#[from] npu_compile::Error),
    /// A zoo model or embedded data set that cannot be loaded.
    #[error(transparent)]
    Zoo(#[from] npu_zoo::Error),
    /// From the simulator (a program that cannot be loaded).
    #[error(transparent)]
    Sim(#[from] npu_sim::Error),
    /// From a hardware description.
    #[error(transparent)]
    Hw(#[from] npu_hw::Error),
    /// The simulator trapped: what, and on which input.
    #[error("{0}")]
    Trap(String),
    /// A request that cannot be carried out, in the user's words.
    #[error("{0}")]
    Invalid(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub use npu_model::argmax;

/// Progress of long work (the CLI draws bars; tests and bindings may ignore it).
/// Called from worker threads.
pub trait Progress: Sync {
    /// A task named `label` of `total` steps begins.
    fn begin(&self, label: &str, total: usize);
    /// `done` of its steps are done.
    fn advance(&self, label: &str, done: usize);
    /// It has ended.
    fn end(&self, label: &str);
}

/// Progress nobody watches.
pub struct NoProgress;

impl Progress for NoProgress {
    fn begin(&self, _: &str, _: usize) {}
    fn advance(&self, _: &str, _: usize) {}
    fn end(&self, _: &str) {}
}

#[cfg(test)]
mod tests {
    #[test]
    fn argmax_takes_the_first_of_equal_values() {
        assert_eq!(super::argmax(&[1, 5, 5, 2]), 1);
        assert_eq!(super::argmax(&[-3]), 0);
        assert_eq!(super::argmax(&[0.5f32, -1.0, 0.75]), 2);
    }
}
