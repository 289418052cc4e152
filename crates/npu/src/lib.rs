//! `npu`: the command line of the npu toolchain and simulator.
//!
//! This crate is the only place in the workspace that reads or writes files and prints;
//! the libraries return values and log through `tracing`. The binary (`main.rs`) only
//! installs the log subscriber and calls [`run`], which tests call in-process with
//! their own output buffers.
//!
//! Conventions every subcommand keeps (docs/cli.md): `-q/--quiet` (no progress bars),
//! `--json` (one JSON document on stdout with `schema` and `npu` version fields, nothing
//! else), `-o/--output` for what a command writes; values parsed and range-checked by
//! clap, so a bad value exits 2; a flag that cannot apply to the given input is a usage
//! error (exit 2) naming it; files written atomically before anything is printed about
//! them.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use compare::Present as _;
use compare_cmd::*;
use models::*;
use quantize_cmd::*;
use simulate_cmd::*;
use training::*;

pub mod compare;
mod compare_cmd;
mod data;
mod load;
pub mod mixed;
mod models;
pub mod output;
pub mod prune;
mod quantize_cmd;
mod simulate_cmd;
pub mod sweep;
mod training;

pub use output::write_file;

pub use npu_app::{DEFAULT_CALIB, DEFAULT_HW, DEFAULT_SCHEME};

/// Simulator and quantizing toolchain for edge NPUs.
#[derive(Parser)]
#[doc(hidden)]
#[command(name = "npu", version = output::VERSION, about, long_about = None)]
struct Cli {
    /// Diagnostics on stderr: error, warn, info, debug, trace, or a tracing filter
    /// (e.g. `npu_sim=debug`).
    #[arg(long, global = true, default_value = "warn", env = "NPU_LOG", value_parser = log_filter_arg)]
    log: String,
    /// No progress bars or status lines on stderr.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Print the result as one JSON document on stdout (with `schema` and `npu` version
    /// fields), nothing else.
    #[arg(long, global = true)]
    json: bool,
    /// Set a size limit, NAME=VALUE (repeatable, or comma-separated): file_bytes (bytes of
    /// one file read; 4Gi), inflated_bytes (bytes a gzip IDX file or .npz entry inflates
    /// to; 4Gi), tensor_elements (values of one tensor; 2^28), folded_elements (values of
    /// all constants computed while importing an ONNX model; 2^28), sweep_points (points of
    /// a sweep plan; 1000000). Values take Ki/Mi/Gi/Ti suffixes or 2^N.
    #[arg(
        long = "size-limit",
        global = true,
        env = "NPU_SIZE_LIMITS",
        value_delimiter = ',',
        value_name = "NAME=VALUE",
        value_parser = limit_arg
    )]
    limits: Vec<String>,
    #[command(subcommand)]
    command: Command,
}

fn limit_arg(s: &str) -> std::result::Result<String, String> {
    npu_data::limits::Limits::default().assign(s).map(|()| s.to_string()).map_err(|e| e.to_string())
}

/// The limit an error message says was exceeded ("the `NAME` limit (…)"), if any.
fn exceeded_limit(message: &str) -> Option<&'static str> {
    npu_data::limits::NAMES.iter().map(|n| n.0).find(|n| message.contains(&format!("the `{n}` limit (")))
}

/// What every command is told besides its own arguments.
#[derive(Debug, Clone, Copy)]
struct Ctx {
    quiet: bool,
    json: bool,
}

fn log_filter_arg(s: &str) -> std::result::Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(s)
        .map(|_| s.to_string())
        .map_err(|e| format!("not a log level or filter: {e}"))
}

/// A positive whole number (counts of images, epochs, threads…).
fn positive(s: &str) -> std::result::Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(v) => Ok(v),
        Err(_) => Err(format!("`{s}` is not a whole number")),
    }
}

/// A finite number greater than zero.
fn positive_f32(s: &str) -> std::result::Result<f32, String> {
    match s.parse::<f32>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        Ok(_) => Err("must be a finite number greater than 0".into()),
        Err(_) => Err(format!("`{s}` is not a number")),
    }
}

/// A finite number, zero or more.
fn non_negative_f32(s: &str) -> std::result::Result<f32, String> {
    match s.parse::<f32>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        Ok(_) => Err("must be a finite number, 0 or more".into()),
        Err(_) => Err(format!("`{s}` is not a number")),
    }
}

/// A finite number.
fn finite_f32(s: &str) -> std::result::Result<f32, String> {
    match s.parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err("must be a finite number".into()),
        Err(_) => Err(format!("`{s}` is not a number")),
    }
}

/// A finite number, zero or more (points of accuracy).
fn non_negative_f64(s: &str) -> std::result::Result<f64, String> {
    non_negative_f32(s).and_then(|_| s.parse::<f64>().map_err(|e| e.to_string()))
}

/// A fraction in [0, 1).
fn fraction(s: &str) -> std::result::Result<f32, String> {
    match s.parse::<f32>() {
        Ok(v) if (0.0..1.0).contains(&v) => Ok(v),
        Ok(_) => Err("must be at least 0 and below 1".into()),
        Err(_) => Err(format!("`{s}` is not a number")),
    }
}

/// `--timeout`: a positive, finite number of seconds.
fn seconds_arg(s: &str) -> std::result::Result<std::time::Duration, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 1e9 => Ok(std::time::Duration::from_secs_f64(v)),
        Ok(_) => Err("expected a number of seconds above 0 and at most 1e9".into()),
        Err(_) => Err(format!("`{s}` is not a number of seconds")),
    }
}

/// Hardware: a preset name or a RON file that loads.
fn hw_arg(s: &str) -> std::result::Result<String, String> {
    load::hardware(s).map(|_| s.to_string()).map_err(|e| format!("{e:#}"))
}

/// A named quantization scheme.
fn scheme_arg(s: &str) -> std::result::Result<String, String> {
    npu_quant::Scheme::named(s).map(|_| s.to_string()).map_err(|e| e.to_string())
}

/// A named scheme, or `as-shipped` (an int8 .tflite's own quantization).
fn scheme_or_shipped_arg(s: &str) -> std::result::Result<String, String> {
    if s == npu_tflite::AS_SHIPPED {
        return Ok(s.to_string());
    }
    scheme_arg(s).map_err(|e| format!("{e}, or {}", npu_tflite::AS_SHIPPED))
}

/// A named recipe (a scheme, or a composite such as `int8-per-channel-dfq` or
/// `w4a8-2of4`), or `as-shipped`.
fn recipe_or_shipped_arg(s: &str) -> std::result::Result<String, String> {
    if s == npu_tflite::AS_SHIPPED {
        return Ok(s.to_string());
    }
    npu_app::Recipe::named(s, DEFAULT_CALIB).map(|_| s.to_string()).map_err(|e| {
        format!(
            "{e}, or a composite recipe ({}), or {}",
            npu_app::RECIPES.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", "),
            npu_tflite::AS_SHIPPED
        )
    })
}

/// `--calib`: a number of images or `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Calib {
    /// Data-free ranges.
    None,
    /// This many calibration images.
    Images(usize),
}

fn calib_arg(s: &str) -> std::result::Result<Calib, String> {
    if s == "none" {
        return Ok(Calib::None);
    }
    match s.parse::<usize>() {
        Ok(0) => Err("0 images: use `none` for data-free ranges".into()),
        Ok(n) => Ok(Calib::Images(n)),
        Err(_) => Err("expected a number of images or `none`".into()),
    }
}

/// `--layer NAME=BITS`.
fn layer_bits_arg(s: &str) -> std::result::Result<(String, npu_quant::WeightBits), String> {
    use npu_quant::WeightBits;
    let (name, bits) = s.split_once('=').ok_or("expected NAME=BITS, e.g. conv2=4")?;
    let bits = match bits {
        "8" => WeightBits::B8,
        "4" => WeightBits::B4,
        "2" => WeightBits::Ternary,
        "1" => WeightBits::Binary,
        b => return Err(format!("bits `{b}`: expected 8, 4, 2 or 1")),
    };
    Ok((name.to_string(), bits))
}

fn shard_arg(s: &str) -> std::result::Result<String, String> {
    if s == "auto" {
        return Ok(s.into());
    }
    sweep::parse_shard(s, &|_| None).map(|_| s.to_string()).map_err(|e| format!("{e:#}"))
}

fn structure_arg(s: &str) -> std::result::Result<String, String> {
    npu_train::prune::Structure::parse(s).map(|_| s.to_string()).map_err(|e| e.to_string())
}

fn region_arg(s: &str) -> std::result::Result<load::Region, String> {
    load::Region::parse(s).map_err(|e| format!("{e:#}"))
}

/// Executor of `npu eval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum EvalEngine {
    /// The float graph (an int8 .tflite's weights dequantized).
    Fp32,
    /// The integer reference executor (a quantized model).
    Int,
}

/// Engine of `npu infer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum InferEngine {
    /// The float graph.
    Fp32,
    /// The float graph with weights and activations rounded to the quantized grid.
    FakeQuant,
    /// The integer reference executor: the NPU's integers.
    Int,
}

impl InferEngine {
    fn name(self) -> &'static str {
        match self {
            InferEngine::Fp32 => "fp32",
            InferEngine::FakeQuant => "fake-quant",
            InferEngine::Int => "int",
        }
    }
}

/// Input layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LayoutArg {
    /// Channels first.
    Nchw,
    /// Channels last.
    Nhwc,
}

/// Optimizer of `npu train`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OptimizerArg {
    /// AdamW (decoupled weight decay).
    Adamw,
    /// SGD with momentum 0.9.
    Sgd,
}

/// Learning-rate schedule of `npu train`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ScheduleArg {
    /// Linear warm-up over 200 steps, then cosine decay.
    Cosine,
    /// One-cycle.
    Onecycle,
    /// Constant.
    Constant,
}

/// Range selection over calibration images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum CalibMethodArg {
    /// Smallest and largest value seen.
    Minmax,
    /// 99.99th percentile of magnitudes.
    Percentile,
    /// Range minimizing the mean squared quantization error.
    Mse,
    /// Range minimizing the KL divergence (TensorRT's entropy calibration).
    Kl,
}

impl CalibMethodArg {
    fn name(self) -> &'static str {
        match self {
            CalibMethodArg::Minmax => "min/max",
            CalibMethodArg::Percentile => "99.99th percentile",
            CalibMethodArg::Mse => "MSE",
            CalibMethodArg::Kl => "KL divergence",
        }
    }
}

/// Bias correction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BiasCorrectionArg {
    /// From the calibration images' mean error.
    Empirical,
    /// From BatchNorm statistics (no data).
    Analytical,
}

/// Pruning scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ScopeArg {
    /// One magnitude threshold over all layers.
    Global,
    /// The same sparsity in every layer.
    Layer,
}

#[derive(Subcommand)]
enum Command {
    /// Assemble an ISA program into a binary.
    #[command(after_help = "Example:\n  npu asm programs/conv_relu.s -o conv_relu.bin")]
    Asm {
        /// Assembly source (.s).
        program: PathBuf,
        /// Output binary; defaults to the source path with extension `.bin`.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Run a program on the simulator and report cycles, utilization, stalls, traffic and energy.
    #[command(after_help = "Examples:\n  npu run programs/conv_relu.s --dump sram:0x100:32:i8\n  \
        npu run programs/dot.s --hw edge-1k --json --trace dot.trace.json")]
    Run {
        /// Program: assembly (.s) or binary (.bin).
        program: PathBuf,
        /// Hardware: a preset (edge-64, edge-256, edge-1k; ethos-u55-64/128/256, ethos-u55-256-deep, ethos-u55-256-sram-only, ethos-u65-256/512, ethos-u65-256/512-dedicated) or a RON file.
        #[arg(long, default_value = DEFAULT_HW, value_parser = hw_arg)]
        hw: String,
        /// Write a Chrome/Perfetto trace (one track per unit, token flows, bandwidth
        /// counters) to this file.
        #[arg(long)]
        trace: Option<PathBuf>,
        /// Print memory after the run: SPACE:ADDR:LEN[:i8|u8|i32|hex] (repeatable).
        #[arg(long, value_name = "REGION", value_parser = region_arg)]
        dump: Vec<load::Region>,
        /// Skip the arithmetic; same cycles and counters, faster.
        #[arg(long)]
        timing_only: bool,
        /// Stop after this many fetched instructions.
        #[arg(long, default_value_t = 1_000_000_000, value_parser = clap::value_parser!(u64).range(1..))]
        max_instructions: u64,
        /// Stop once the simulated clock passes this many cycles (default: no limit but
        /// the instruction limit).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        max_cycles: Option<u64>,
        /// Stop after this many seconds of wall-clock time.
        #[arg(long, value_name = "SECONDS", value_parser = seconds_arg)]
        timeout: Option<std::time::Duration>,
    },
    /// Show a model's layers, shapes, parameters and MACs.
    #[command(after_help = "Example:\n  npu inspect tests/fixtures/onnx/mobile_res.onnx")]
    Inspect {
        /// Model: zoo:NAME, an ONNX (.onnx) or TFLite (.tflite) file, an npu model file
        /// (.npum), or a quantized model (.npuq: its scheme and the preprocessing it keeps).
        model: PathBuf,
    },
    /// A model's accuracy (or another metric) on a data set: its FP32 graph, or the
    /// integer reference executor for a quantized model (.npuq, int8 .tflite).
    #[command(
        args_conflicts_with_subcommands = true,
        subcommand_negates_reqs = true,
        after_help = "Examples:\n  npu eval tests/fixtures/onnx/plain_cnn.onnx\n  \
        npu eval tests/fixtures/tflite/fmnist_int8.tflite\n  \
        npu eval tests/fixtures/tflite/fmnist_int8.tflite --engine fp32\n  \
        npu eval tests/fixtures/onnx/plain_cnn.onnx --limit 1000 --mean 0.5 --std 0.5\n  \
        npu eval q.npuq --data ../shared/datasets/fashion-mnist --shard auto --json > part-$SLURM_ARRAY_TASK_ID.json\n  \
        npu eval merge part-*.json"
    )]
    Eval {
        #[command(subcommand)]
        merge: Option<EvalCommand>,
        /// Model: zoo:NAME, an ONNX (.onnx) or TFLite (.tflite) file, an npu model file
        /// (.npum) or a quantized model (.npuq).
        #[arg(required = true)]
        model: Option<PathBuf>,
        /// Executor; default: `int` for a quantized model (.npuq, int8 .tflite), else `fp32`.
        #[arg(long, value_enum)]
        engine: Option<EvalEngine>,
        #[command(flatten)]
        data: DataArgs,
        /// Evaluate only the first N samples.
        #[arg(long, value_parser = positive)]
        limit: Option<usize>,
        /// top1, top5 (with labels), agreement, sqnr, cosine (against the FP32 model), mse
        /// (against float targets, or the input for an autoencoder); default: top1 with
        /// labels, mse with float targets, else agreement.
        #[arg(long, value_parser = metric_arg)]
        metric: Option<npu_data::metrics::Metric>,
        /// Evaluate one shard of the samples: `I/N` (the I-th of N contiguous blocks) or
        /// `auto` (Slurm or Kubernetes, as `npu sweep`); with --json, `npu eval merge`
        /// combines the shards' documents.
        #[arg(long, value_parser = shard_arg)]
        shard: Option<String>,
    },
    /// Train a zoo architecture (or continue training a model) on Fashion-MNIST-style data.
    #[command(
        after_help = "Examples:\n  npu train mobilenet --data ../shared/datasets/fashion-mnist --epochs 15 --seed 1 -o mobilenet.npum\n  \
        npu train cnn --epochs 1 --limit 2000 -o cnn-quick.npum"
    )]
    Train {
        /// A zoo architecture (cnn, mobilenet, resnet) or a model file to fine-tune.
        model: String,
        #[command(flatten)]
        source: TrainDataArgs,
        /// Passes over the training set.
        #[arg(long, default_value_t = 10, value_parser = positive)]
        epochs: usize,
        /// Seed of initialization, shuffling and augmentation.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Images per step.
        #[arg(long, default_value_t = 64, value_parser = positive)]
        batch: usize,
        /// Peak learning rate.
        #[arg(long, default_value_t = 2e-3, value_parser = positive_f32)]
        lr: f32,
        /// Weight decay (weights only).
        #[arg(long, default_value_t = 1e-4, value_parser = non_negative_f32)]
        weight_decay: f32,
        /// Optimizer.
        #[arg(long, value_enum, default_value_t = OptimizerArg::Adamw)]
        optimizer: OptimizerArg,
        /// Learning-rate schedule.
        #[arg(long, value_enum, default_value_t = ScheduleArg::Cosine)]
        schedule: ScheduleArg,
        /// No random horizontal flips.
        #[arg(long)]
        no_flip: bool,
        /// Random shifts of up to this many pixels.
        #[arg(long, default_value_t = 2)]
        shift: usize,
        /// Train on only the first N images.
        #[arg(long, value_parser = positive)]
        limit: Option<usize>,
        /// Train with quantized operators from the start: every layer's weights on the
        /// grid of this scheme in the forward pass (binary and ternary with per-channel
        /// scaling factors), float latent weights updated straight-through; the model
        /// written has its weights on the grid.
        #[arg(long, value_parser = scheme_arg)]
        quantized: Option<String>,
        /// Output model file (.npum); written after every epoch as a checkpoint.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Quantization-aware training: fine-tune a model with the quantizer in the loop
    /// (fake-quantized weights and activations, straight-through gradients, BatchNorm
    /// folded), then write the quantized model.
    #[command(
        after_help = "Examples:\n  npu qat zoo:mobilenet --scheme w4a8-per-channel --data ../shared/datasets/fashion-mnist -o mn-w4.npuq\n  \
        npu qat zoo:cnn --recipe docs/recipes/mixed-w4.ron --epochs 1 --limit 2000 -o cnn-mixed.npuq"
    )]
    Qat {
        /// Model: zoo:NAME, .onnx or .npum (trained in FP32).
        model: String,
        /// Scheme (see `npu quantize --help`); default: int8-per-channel.
        #[arg(long, value_parser = scheme_arg, conflicts_with = "recipe")]
        scheme: Option<String>,
        /// A RON recipe instead of a named scheme (per-layer bit widths).
        #[arg(long)]
        recipe: Option<PathBuf>,
        #[command(flatten)]
        source: TrainDataArgs,
        /// Passes over the training set.
        #[arg(long, default_value_t = 3, value_parser = positive)]
        epochs: usize,
        /// Images per step.
        #[arg(long, default_value_t = 64, value_parser = positive)]
        batch: usize,
        /// Peak learning rate (AdamW, cosine schedule with a short warm-up).
        #[arg(long, default_value_t = 2e-4, value_parser = positive_f32)]
        lr: f32,
        /// Seed of shuffling and augmentation.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Calibration images for the (then fixed) activation ranges.
        #[arg(long, default_value_t = DEFAULT_CALIB, value_parser = positive)]
        calib: usize,
        /// Train on only the first N images.
        #[arg(long, value_parser = positive)]
        limit: Option<usize>,
        /// Recalibrate activation ranges on the fake-quantized model after every epoch
        /// (helps when weights change a lot, as with binary weights).
        #[arg(long, conflicts_with = "lsq")]
        recalibrate: bool,
        /// Learned step sizes: train every weight and activation scale (LSQ) and
        /// asymmetric zero points (LSQ+) with the weights, from where calibration puts
        /// them; power-of-two scales stay powers of two.
        #[arg(long)]
        lsq: bool,
        /// Output quantized model (.npuq); written after every epoch.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Mixed-precision search: per-layer weight widths (8/4/2/1) on the Pareto front of
    /// accuracy against simulated cycles (or energy); writes the recipe and compares it
    /// with all-INT8 on the test set.
    #[command(after_help = "Examples:\n  npu mixed zoo:cnn --hw edge-256 --max-drop 0.5 -o cnn-mixed.ron\n  \
        npu mixed zoo:resnet --energy -o resnet-mixed.ron")]
    Mixed {
        /// Model: zoo:NAME, .onnx or .npum.
        model: String,
        /// Hardware: a preset or a RON file.
        #[arg(long, default_value = DEFAULT_HW, value_parser = hw_arg)]
        hw: String,
        /// Largest accuracy drop against all-INT8 on the validation images, points.
        #[arg(long, default_value_t = 0.5, value_parser = non_negative_f64)]
        max_drop: f64,
        /// Minimize energy per frame instead of cycles.
        #[arg(long)]
        energy: bool,
        /// Validation samples (from the training data, after the calibration ones).
        #[arg(long, default_value_t = 2000, value_parser = positive)]
        val: usize,
        #[command(flatten)]
        source: TrainDataArgs,
        /// Calibration images.
        #[arg(long, default_value_t = DEFAULT_CALIB, value_parser = positive)]
        calib: usize,
        /// Test images for the final comparison (default: all).
        #[arg(long, value_parser = positive)]
        limit: Option<usize>,
        /// Output recipe (.ron), for `npu quantize --recipe`, `npu qat --recipe`, `npu compare --add`.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Quantize a model for the NPU and print a per-layer report.
    #[command(
        after_help = "Examples:\n  npu quantize zoo:mobilenet --scheme int8-per-channel -o mobilenet-pc.npuq\n  \
        npu quantize tests/fixtures/onnx/plain_cnn.onnx --scheme uint8-asym --calib none -o model-u8.npuq\n  \
        npu quantize tests/fixtures/tflite/fmnist_int8.tflite --scheme as-shipped -o fmnist.npuq"
    )]
    Quantize {
        /// Model: zoo:NAME, .onnx, .tflite or .npum.
        model: PathBuf,
        /// Named scheme (int8-pow2, int8-sym, uint8-asym, int8-per-channel, w4a8-per-channel,
        /// w4a4-per-channel, ternary-weights, binary-weights), or `as-shipped` for an int8
        /// .tflite's own;
        /// default: int8-per-channel.
        #[arg(long, value_parser = scheme_or_shipped_arg, conflicts_with = "recipe")]
        scheme: Option<String>,
        /// Calibration samples from the data set, or `none` for data-free ranges (default:
        /// 500, or every sample of a smaller set).
        #[arg(long, value_parser = calib_arg)]
        calib: Option<Calib>,
        /// Range selection over the calibration images (default: minmax).
        #[arg(long, value_enum)]
        calib_method: Option<CalibMethodArg>,
        /// Clip weights to mean ± K standard deviations first.
        #[arg(long, value_parser = positive_f32)]
        clip_sigma: Option<f32>,
        /// A scheme as a RON file (a `Scheme`: activations, weights, per-layer overrides,
        /// pinning); replaces --scheme.
        #[arg(long)]
        recipe: Option<PathBuf>,
        /// Per-layer weight precision: NAME=8|4|2|1 (per-channel), repeatable.
        #[arg(long, value_name = "NAME=BITS", value_parser = layer_bits_arg)]
        layer: Vec<(String, npu_quant::WeightBits)>,
        /// Keep the first and last weighted layers at 8 bits.
        #[arg(long)]
        pin_first_last: bool,
        /// Cross-layer equalization and high-bias absorption first.
        #[arg(long)]
        cle: bool,
        /// Bias correction of the weight quantization error.
        #[arg(long, value_enum)]
        bias_correction: Option<BiasCorrectionArg>,
        /// AdaRound: learn each weight's rounding (up or down) to minimise the layer's
        /// output error on the calibration inputs (at most 256; with --calib none, on
        /// synthesised ones).
        #[arg(long)]
        adaround: bool,
        /// Calibration data, in any form `--data` takes elsewhere (an IDX directory's
        /// train-* files, an image folder, .npy, .npz, IDX, a RON description);
        /// default: the embedded Fashion-MNIST training subset.
        #[arg(long, visible_alias = "data")]
        calib_data: Option<PathBuf>,
        /// Labels for a .npy or IDX --calib-data file (not needed for calibration).
        #[arg(long, requires = "calib_data")]
        calib_labels: Option<PathBuf>,
        /// Preprocessing, kept in the quantized model.
        #[command(flatten)]
        pre: data::PreArgs,
        /// Output quantized model (.npuq).
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Run one batch from a NumPy file through a model and write the raw output.
    #[command(
        after_help = "Example:\n  npu infer mobilenet-pc.npuq --input tests/fixtures/onnx/plain_cnn.input.npy -o y.npy --engine int"
    )]
    Infer {
        /// Model: zoo:NAME, .onnx, .npum or a quantized .npuq.
        model: PathBuf,
        /// Input batch: a .npy [N, …per-sample shape] (or any form --data takes elsewhere).
        /// Float samples are inputs already preprocessed; integer samples raw values,
        /// preprocessed as (v · scale − mean[c]) / std[c]; int8 samples to a model whose own
        /// input is int8 (an int8 TFLite) its quantized input values.
        #[arg(long)]
        input: PathBuf,
        #[command(flatten)]
        pre: data::PreArgs,
        /// Output (.npy): float32 logits, or int32 quantized integers with `--engine int`.
        #[arg(short, long)]
        output: PathBuf,
        /// Engine.
        #[arg(long, value_enum, default_value_t = InferEngine::Fp32)]
        engine: InferEngine,
    },
    /// Design-space sweep: models × schemes × hardware parameters from a RON plan, each
    /// point quantized, compiled and simulated once (cached by content), in parallel and
    /// in shards; results as JSON Lines, a summary table and SVG plots.
    #[command(
        args_conflicts_with_subcommands = true,
        subcommand_negates_reqs = true,
        after_help = "Examples:\n  npu sweep docs/sweep/mac-array.ron -o target/npu-sweep/mac-array\n  \
        npu sweep docs/sweep/mac-array.ron --shard 1/3 -o out/shard-1\n  \
        npu sweep plan.ron --shard auto -o out/shard-$SLURM_ARRAY_TASK_ID\n  \
        npu sweep merge out/shard-* -o out/merged"
    )]
    Sweep {
        #[command(subcommand)]
        merge: Option<SweepCommand>,
        /// The plan (RON): models, schemes, hw, params, filters, timing_only, images, calib.
        #[arg(required = true)]
        plan: Option<PathBuf>,
        /// Output directory: results.jsonl, summary.md, summary.csv, plots, plan.json, cache/.
        #[arg(short, long, visible_alias = "out", default_value = "target/npu-sweep")]
        output: PathBuf,
        /// Run one shard: `I/N` (the points whose index is I modulo N) or `auto` (Slurm
        /// SLURM_ARRAY_TASK_ID/COUNT, or Kubernetes JOB_COMPLETION_INDEX with NPU_SHARD_COUNT).
        #[arg(long, default_value = "0/1", value_parser = shard_arg)]
        shard: String,
        /// Points run in parallel (default: the available cores).
        #[arg(long, value_parser = positive)]
        jobs: Option<usize>,
        /// Cache of point results by content key (default: OUTPUT/cache); share one between runs.
        #[arg(long)]
        cache: Option<PathBuf>,
        /// Throughput only, whatever the plan says.
        #[arg(long)]
        timing_only: bool,
    },
    /// Prune a model's convolution and dense weights (unstructured, whole channels or N:M),
    /// optionally fine-tuning the pruned network; or measure accuracy against sparsity.
    #[command(after_help = "Examples:\n  npu prune zoo:mobilenet --sparsity 0.5 -o mobilenet-50.npum\n  \
        npu prune zoo:mobilenet --structure 2:4 --finetune 1 --limit 2000 -o mobilenet-2of4.npum\n  \
        npu prune zoo:cnn --curve 0,0.3,0.5,0.7,0.8,0.9 --images 500 -o target/npu-prune")]
    Prune {
        /// Model: zoo:NAME, .onnx, .tflite or .npum.
        model: PathBuf,
        /// Fraction of weights (channel: of channels) to zero; default 0.5 (N:M sets its own).
        #[arg(long, value_parser = fraction)]
        sparsity: Option<f32>,
        /// unstructured, channel, or N:M (e.g. 2:4: N of every M weights along the input channels).
        #[arg(long, default_value = "unstructured", value_parser = structure_arg)]
        structure: String,
        /// Sparsity over all layers at once (global magnitude threshold) or per layer.
        #[arg(long, value_enum, default_value_t = ScopeArg::Global)]
        scope: ScopeArg,
        /// Fine-tuning epochs of the pruned network (masked weights stay zero).
        #[arg(long, default_value_t = 0)]
        finetune: usize,
        #[command(flatten)]
        source: TrainDataArgs,
        /// Fine-tuning learning rate.
        #[arg(long, default_value_t = 5e-4, value_parser = positive_f32)]
        lr: f32,
        /// Fine-tune on the first N training images only.
        #[arg(long, value_parser = positive)]
        limit: Option<usize>,
        /// Instead of writing a model: FP32 and per-channel INT8 accuracy at each of these
        /// sparsities (comma-separated), as prune_curve.csv and prune_curve.svg in the
        /// output directory.
        #[arg(long, value_delimiter = ',', value_parser = fraction, conflicts_with = "sparsity")]
        curve: Vec<f32>,
        /// Test images for --curve.
        #[arg(long, value_parser = positive, requires = "curve")]
        images: Option<usize>,
        /// The pruned model (.npum); with --curve, the directory for its files
        /// (default target/npu-prune).
        #[arg(short, long, visible_alias = "out")]
        output: Option<PathBuf>,
    },
    /// Compile a model to an NPU program: binary, listing with per-layer comments, off-chip image.
    #[command(
        after_help = "Examples:\n  npu compile zoo:mobilenet --hw edge-256 -o build/mobilenet\n  npu compile zoo:mobilenetv2-224 --hw edge-1k -o build/mnv2"
    )]
    Compile {
        /// A quantized model (.npuq from `npu quantize`, or an int8 .tflite), or any model
        /// (zoo:NAME, .onnx, .tflite, .npum) to quantize with --scheme first.
        model: PathBuf,
        /// Scheme for a model that is not quantized yet (calibrated on 500 images of the
        /// embedded training subset, min/max; without data when the model does not take them);
        /// default: `as-shipped` for an int8 .tflite (its own quantization), else int8-per-channel.
        #[arg(long, value_parser = recipe_or_shipped_arg)]
        scheme: Option<String>,
        /// Hardware: a preset or a RON file.
        #[arg(long, default_value = DEFAULT_HW, value_parser = hw_arg)]
        hw: String,
        /// Output directory: program.bin, program.s (listing), dram.bin, model.npuq, hw.ron,
        /// compiled.ron; replaced as a whole.
        #[arg(short, long)]
        output: PathBuf,
        #[command(flatten)]
        calib: CalibArgs,
        #[command(flatten)]
        pre: data::PreArgs,
        #[command(flatten)]
        placement: PlacementArgs,
    },
    /// Run a compiled or quantized model on the simulator: per-layer cycles, utilization,
    /// bound, traffic and energy; with test images, top-1 accuracy from the simulator's outputs.
    #[command(after_help = "Examples:\n  npu simulate zoo:resnet --scheme int8-per-channel --limit 1000\n  \
        npu simulate zoo:mobilenet --timing-only --csv layers.csv\n  \
        npu simulate build/mobilenet --limit 500\n  \
        npu simulate mobilenet-pc.npuq --hw edge-1k --input tests/fixtures/onnx/plain_cnn.input.npy -o y.npy")]
    Simulate {
        /// A directory from `npu compile`, a quantized model (.npuq, an int8 .tflite), or any
        /// model (zoo:NAME, .onnx, .tflite, .npum) to quantize with --scheme and compile first.
        model: PathBuf,
        /// Scheme for a model that is not quantized yet (calibrated on 500 images of the
        /// embedded training subset, min/max); default: `as-shipped` for an int8 .tflite,
        /// else int8-per-channel. Not for a compiled directory or an .npuq.
        #[arg(long, value_parser = recipe_or_shipped_arg)]
        scheme: Option<String>,
        /// Hardware, a preset or a RON file (default edge-256); a compiled directory keeps its own.
        #[arg(long, value_parser = hw_arg)]
        hw: Option<String>,
        /// Inputs to run, without labels: a .npy [N, …] (dtype rules as for --data).
        #[arg(long, conflicts_with_all = ["data", "limit"])]
        input: Option<PathBuf>,
        /// Write the raw output integers (.npy int32), as `npu infer --engine int` does.
        #[arg(short, long, requires = "input")]
        output: Option<PathBuf>,
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        calib: CalibArgs,
        /// Samples to run for accuracy (default 100).
        #[arg(long, value_parser = positive)]
        limit: Option<usize>,
        /// top1, top5 (with labels), agreement, sqnr, cosine (against the FP32 model), mse
        /// (against float targets, or the input for an autoencoder); default: top1 with
        /// labels, mse with float targets, else agreement.
        #[arg(long, value_parser = metric_arg)]
        metric: Option<npu_data::metrics::Metric>,
        /// Skip the arithmetic: timing only (no outputs, no accuracy).
        #[arg(long, conflicts_with_all = ["input", "data", "limit"])]
        timing_only: bool,
        /// Threads replaying the inputs (default: the available cores); the replay's
        /// images/s is printed (`replay` in --json).
        #[arg(long, value_parser = positive, conflicts_with = "timing_only")]
        jobs: Option<usize>,
        /// Write a Chrome/Perfetto trace of the first image: one track per unit, slices
        /// named by layer, dependency tokens as flows, bandwidth counters per memory.
        #[arg(long)]
        trace: Option<PathBuf>,
        /// Write the per-layer report as CSV (layer, operator, MACs, cycles, share,
        /// utilization, bound, off-chip and SRAM bytes, energy) with a total row.
        #[arg(long)]
        csv: Option<PathBuf>,
        /// A compiled directory whose program.bin was edited on purpose after compiling:
        /// run it although its checksum is not the manifest's (every other check stays).
        #[arg(long)]
        modified_program: bool,
        #[command(flatten)]
        placement: PlacementArgs,
    },
    /// List the zoo models with their accuracy, parameters and MACs.
    #[command(after_help = "Example:\n  npu zoo")]
    Zoo,
    /// Compare quantization schemes on modeled hardware: accuracy from the simulator's
    /// outputs, frames/s, latency, energy and memory from the same runs; writes a table
    /// (Markdown, CSV, JSON) and SVG plots with the Pareto fronts.
    #[command(
        args_conflicts_with_subcommands = true,
        subcommand_negates_reqs = true,
        after_help = "Examples:\n  npu compare\n  npu compare zoo:resnet --hw edge-1k --schemes fp32,int8-per-channel,w4a8-per-channel --limit 1000\n  \
        npu compare tests/fixtures/onnx/plain_cnn.onnx --limit 2000 --jobs 2 -o results\n  \
        npu compare --bench\n  \
        npu compare zoo:resnet --data ../shared/datasets/fashion-mnist --shard auto -o out/shard-$SLURM_ARRAY_TASK_ID\n  \
        npu compare merge out/shard-* -o out/merged"
    )]
    Compare {
        #[command(subcommand)]
        merge: Option<CompareCommand>,
        /// Model: zoo:NAME, .onnx, .tflite or .npum.
        #[arg(default_value = "zoo:mobilenet")]
        model: String,
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        calib_data: CalibArgs,
        /// top1, top5 (with labels), agreement, sqnr, cosine (against the FP32 model), mse
        /// (against float targets, or the input for an autoencoder); default: top1 with
        /// labels, mse with float targets, else agreement.
        #[arg(long, value_parser = metric_arg)]
        metric: Option<npu_data::metrics::Metric>,
        /// Hardware: a preset or a RON file.
        #[arg(long, default_value = DEFAULT_HW, value_parser = hw_arg)]
        hw: String,
        /// Rows: `all`, or a comma-separated list of fp32, int8-pow2, int8-sym, uint8-asym,
        /// int8-per-channel, int8-per-channel-dfq, w4a8-per-channel, binary-weights,
        /// int8-per-channel-pruned50, w4a8-2of4 (pruned without fine-tuning).
        #[arg(long, default_value = "all")]
        schemes: String,
        /// Images (default: the whole test set).
        #[arg(long, value_parser = positive)]
        limit: Option<usize>,
        /// Threads over images (results are identical for any number); default: all cores.
        #[arg(long, value_parser = positive)]
        jobs: Option<usize>,
        /// Calibration samples (min/max), at most as many as --calib-data holds.
        #[arg(long, default_value_t = DEFAULT_CALIB, value_parser = positive)]
        calib: usize,
        /// Output directory for compare.md, compare.csv, compare.json and the SVG plots.
        #[arg(short, long, visible_alias = "out", default_value = "target/npu-compare")]
        output: PathBuf,
        /// A further row: a RON recipe (quantized here) or a quantized model (.npuq, e.g.
        /// from `npu qat` or `npu mixed`); repeatable.
        #[arg(long)]
        add: Vec<PathBuf>,
        /// Host-speed measurement: only per-channel INT8, report images/s, write nothing.
        #[arg(long, conflicts_with_all = ["schemes", "add", "output", "shard"])]
        bench: bool,
        /// Run one shard of the test samples: `I/N` (the I-th of N contiguous blocks) or
        /// `auto` (Slurm SLURM_ARRAY_TASK_ID/COUNT, or Kubernetes JOB_COMPLETION_INDEX with
        /// NPU_SHARD_COUNT); `npu compare merge` combines the shards' output directories.
        #[arg(long, value_parser = shard_arg)]
        shard: Option<String>,
    },
    /// Disassemble a program binary to assembly text that reassembles to the same bytes.
    #[command(after_help = "Example:\n  npu disasm conv_relu.bin > conv_relu.s")]
    Disasm {
        /// Program binary (.bin).
        program: PathBuf,
    },
}

/// Runs the command line with `args` (the first is the program name), writing normal
/// output to `out` and errors to `err`. Returns the process exit status: 0 on success,
/// 1 on any error, 2 on a usage error.
pub fn run<I, T>(args: I, out: &mut dyn Write, err: &mut dyn Write) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let text = e.render().to_string();
            let _ = if code == 0 { out.write_all(text.as_bytes()) } else { err.write_all(text.as_bytes()) };
            return code;
        }
    };
    let mut limits = npu_data::limits::Limits::default();
    for a in &cli.limits {
        // Checked by the parser already.
        if let Err(e) = limits.assign(a) {
            let _ = writeln!(err, "error: {e}");
            return 2;
        }
    }
    npu_data::limits::set(limits);
    let ctx = Ctx { quiet: cli.quiet, json: cli.json };
    match execute(cli.command, ctx, out) {
        Ok(()) => 0,
        // The reader went away (`npu … | head`): stop quietly, as Unix tools do. Files
        // are written before anything is printed about them, so nothing is lost.
        Err(e) if e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) => 0,
        Err(e) => {
            if let Some(u) = e.downcast_ref::<output::Usage>() {
                let _ = writeln!(err, "error: {u}\n\nFor more information, try '--help'.");
                return 2;
            }
            let _ = match e.downcast_ref::<load::Reported>() {
                Some(r) => write!(err, "{}", r.0),
                None => writeln!(err, "error: {e:#}"),
            };
            if let Some(name) = exceeded_limit(&format!("{e:#}")) {
                let _ = writeln!(err, "hint: a larger input can be allowed with --size-limit {name}=VALUE");
            }
            1
        }
    }
}

/// The log level requested by `--log` or `NPU_LOG` in `args`, for the binary to install.
pub fn log_filter<I, T>(args: I) -> String
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    Cli::try_parse_from(args).map(|c| c.log).unwrap_or_else(|_| "warn".to_string())
}

/// Refuses `--json` for a command whose output is not a report.
fn no_json(ctx: Ctx, what: &str) -> Result<()> {
    if ctx.json {
        usage!("--json: {what}");
    }
    Ok(())
}

fn threads(jobs: Option<usize>) -> usize {
    jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
}

fn execute(command: Command, ctx: Ctx, out: &mut dyn Write) -> Result<()> {
    match command {
        Command::Asm { program, output } => {
            let prog = load::assemble_file(&program)?;
            let out_path = output.unwrap_or_else(|| program.with_extension("bin"));
            output::not_the_input(&out_path, &program)?;
            let bytes = prog.to_bytes()?;
            write_file(&out_path, &bytes)?;
            if ctx.json {
                let body = serde_json::json!({
                    "program": program.display().to_string(), "instructions": prog.code.len(),
                    "data_segments": prog.data.len(), "bytes": bytes.len(), "output": out_path.display().to_string(),
                });
                write!(out, "{}", output::json_text("asm", body)?)?;
            } else {
                writeln!(
                    out,
                    "{}: {} instructions, {} data segments ({} bytes) -> {}",
                    program.display(),
                    prog.code.len(),
                    prog.data.len(),
                    bytes.len(),
                    out_path.display()
                )?;
            }
        }
        Command::Run { program, hw, trace, dump, timing_only, max_instructions, max_cycles, timeout } => {
            if timing_only && !dump.is_empty() {
                usage!("--dump: a --timing-only run computes no values to print");
            }
            let hw = load::hardware(&hw)?;
            let prog = load::read_program(&program)?;
            let opts = npu_sim::RunOptions {
                timing_only,
                trace: trace.is_some(),
                max_instructions,
                max_cycles: max_cycles.unwrap_or(u64::MAX),
                time_limit: timeout,
            };
            let outcome = npu_sim::run(&prog, &hw, &opts)
                .with_context(|| format!("cannot load {} on {}", program.display(), hw.name))?;
            if let Some(path) = &trace {
                write_file(path, npu_sim::chrome_trace(&outcome.trace, &hw, &prog.code, &[]).as_bytes())?;
            }
            let dumps = dump.iter().map(|r| r.show(&outcome.machine)).collect::<Result<Vec<_>>>()?;
            if ctx.json {
                let body = serde_json::json!({
                    "program": program.display().to_string(), "hw": hw.name,
                    "trap": outcome.trap.as_ref().map(|t| t.to_string()),
                    "report": outcome.report,
                    "dumps": dump.iter().zip(&dumps).map(|(r, text)| serde_json::json!({"region": r.spec(), "text": text})).collect::<Vec<_>>(),
                });
                write!(out, "{}", output::json_text("run", body)?)?;
            } else {
                write!(out, "{}", outcome.report.render())?;
                for d in &dumps {
                    write!(out, "{d}")?;
                }
            }
            if let Some(trap) = outcome.trap {
                bail!("{}: {trap}", program.display());
            }
        }
        Command::Inspect { model } => inspect(&model, ctx, out)?,
        Command::Train {
            model,
            source,
            epochs,
            seed,
            batch,
            lr,
            weight_decay,
            optimizer,
            schedule,
            no_flip,
            shift,
            limit,
            quantized,
            output,
        } => {
            use npu_train::optim::{OptimizerKind, Schedule};
            let config = npu_train::TrainConfig {
                epochs,
                batch,
                optimizer: match optimizer {
                    OptimizerArg::Sgd => OptimizerKind::SgdMomentum,
                    OptimizerArg::Adamw => OptimizerKind::AdamW,
                },
                lr,
                weight_decay,
                schedule: match schedule {
                    ScheduleArg::Onecycle => Schedule::OneCycle,
                    ScheduleArg::Constant => Schedule::Constant,
                    ScheduleArg::Cosine => Schedule::Cosine { warmup_steps: 200 },
                },
                seed,
                flip: !no_flip,
                shift,
            };
            let quantized = quantized.as_deref().map(npu_quant::Scheme::named).transpose()?;
            train(&model, &source.source(), config, limit, quantized, &output, ctx, out)?
        }
        Command::Zoo => zoo(ctx, out)?,
        Command::Compare { merge: Some(CompareCommand::Merge { dirs, output: dir }), .. } => {
            compare_merge_cmd(&dirs, &dir, ctx, out)?
        }
        Command::Compare {
            merge: None,
            model,
            data,
            calib_data,
            metric,
            hw,
            schemes,
            limit,
            jobs,
            calib,
            output: dir,
            add,
            bench,
            shard,
        } => {
            let jobs = threads(jobs);
            let shard = shard.map(|s| sweep::parse_shard(&s, &|k| std::env::var(k).ok())).transpose()?;
            let schemes = if bench {
                vec![DEFAULT_SCHEME.to_string()]
            } else {
                compare::parse_schemes(&schemes).map_err(to_usage)?
            };
            let extra = add.iter().map(|p| compare::extra_from_file(p)).collect::<Result<Vec<_>>>()?;
            let source = compare::DataSource {
                data: data.data,
                labels: data.labels,
                calib_data: calib_data.calib_data,
                calib_labels: calib_data.calib_labels,
                pre: data.pre.overrides(),
                metric,
            };
            let opts =
                compare::Options { model, source, hw, schemes, limit, jobs, calib, quiet: ctx.quiet, extra, shard };
            compare_cmd(&opts, if bench { None } else { Some(dir.as_path()) }, ctx, out)?
        }
        Command::Sweep { merge: Some(SweepCommand::Merge { dirs, output: dir }), .. } => {
            let (plan, records) = sweep::merge(&dirs)?;
            let written = sweep::write_outputs(&dir, &plan, &records, true)?;
            if ctx.json {
                let body = serde_json::json!({
                    "plan": plan.name, "shards": dirs.len(), "points": records.len(),
                    "output": dir.display().to_string(), "files": written, "records": records,
                });
                write!(out, "{}", output::json_text("sweep", body)?)?;
            } else {
                writeln!(
                    out,
                    "merged {} shard outputs: {} points -> {} in {}",
                    dirs.len(),
                    records.len(),
                    written.join(", "),
                    dir.display()
                )?;
            }
            sweep::failures(&records)?;
        }
        Command::Sweep { merge: None, plan, output: dir, shard, jobs, cache, timing_only } => {
            let path = plan.ok_or_else(|| anyhow::anyhow!("npu sweep: a plan file is required"))?;
            let text = load::read_text(&path)?;
            let mut plan = sweep::plan_from_ron(&text, &path.display().to_string())?;
            plan.timing_only |= timing_only;
            let shard = sweep::parse_shard(&shard, &|k| std::env::var(k).ok())?;
            let jobs = threads(jobs);
            let start = std::time::Instant::now();
            let o = sweep::RunOptions { out: dir.clone(), cache, shard, jobs, quiet: ctx.quiet };
            let mut log = Vec::new();
            let s = sweep::run(&plan, &o, &mut log)?;
            let written = sweep::write_outputs(&dir, &plan, &s.records, false)?;
            let failed = s.records.iter().filter(|r| r.error.is_some()).count();
            if ctx.json {
                let body = serde_json::json!({
                    "plan": plan.name, "points": s.points, "shard": [shard.0, shard.1], "shard_points": s.shard_points,
                    "cached": s.cached, "failed": failed, "output": dir.display().to_string(), "files": written,
                    "records": s.records,
                });
                write!(out, "{}", output::json_text("sweep", body)?)?;
            } else {
                out.write_all(&log)?;
                writeln!(
                    out,
                    "{:.1} s on {jobs} threads; wrote results.jsonl, {} in {}",
                    start.elapsed().as_secs_f64(),
                    written.join(", "),
                    dir.display()
                )?;
            }
            sweep::failures(&s.records)?;
        }
        Command::Prune { model, sparsity, structure, scope, finetune, source, lr, limit, curve, images, output } => {
            let fixed = npu_train::prune::Structure::parse(&structure)?.fixed_sparsity();
            if let (Some(s), Some(_)) = (sparsity, fixed) {
                usage!("--sparsity {s}: --structure {structure} sets its own sparsity");
            }
            if !curve.is_empty() && fixed.is_some() {
                usage!("--curve: --structure {structure} has one sparsity; a curve needs unstructured or channel");
            }
            let scope_name = match scope {
                ScopeArg::Global => "global",
                ScopeArg::Layer => "layer",
            };
            let o = prune::Options {
                model: model.clone(),
                sparsity: sparsity.unwrap_or(0.5),
                structure,
                scope: scope_name.into(),
                finetune,
                source: source.source(),
                lr,
                limit,
                quiet: ctx.quiet,
            };
            if !curve.is_empty() {
                let dir = output.unwrap_or_else(|| PathBuf::from("target/npu-prune"));
                let mut log = Vec::new();
                let points = prune::curve(&o, &curve, images, &mut log)?;
                let title = format!(
                    "{}: top-1 vs sparsity ({}, {} scope, {} fine-tuning epoch{})",
                    model.display(),
                    o.structure,
                    o.scope,
                    o.finetune,
                    if o.finetune == 1 { "" } else { "s" }
                );
                prune::write_curve(&dir, &title, &points)?;
                if ctx.json {
                    let body = serde_json::json!({
                        "model": model.display().to_string(), "structure": o.structure, "scope": o.scope,
                        "finetune_epochs": o.finetune, "points": points, "output": dir.display().to_string(),
                    });
                    write!(out, "{}", output::json_text("prune-curve", body)?)?;
                } else {
                    out.write_all(&log)?;
                    writeln!(out, "wrote prune_curve.csv, prune_curve.svg in {}", dir.display())?;
                }
            } else {
                let Some(output) = output else { usage!("npu prune: -o OUTPUT.npum is required (or --curve)") };
                output::not_the_input(&output, &model)?;
                let mut log = Vec::new();
                let sparsity = o.sparsity;
                let m = prune::pruned(&o, sparsity, &mut log)?;
                let record = npu_model::modelfile::TrainRecord {
                    arch: m.name.clone(),
                    config: format!(
                        "prune: structure {}, scope {}, sparsity {sparsity}, fine-tune {finetune} epochs at lr {lr}",
                        o.structure, o.scope
                    ),
                    epochs: finetune,
                    test_accuracy: None,
                    command: std::env::args().collect::<Vec<_>>().join(" "),
                };
                write_file(&output, &npu_model::modelfile::encode(&m, Some(&record))?)?;
                if ctx.json {
                    let body = serde_json::json!({
                        "model": m.name, "structure": o.structure, "scope": o.scope, "sparsity": sparsity,
                        "finetune_epochs": finetune, "layers": prune::layer_sparsity(&m),
                        "output": output.display().to_string(),
                    });
                    write!(out, "{}", output::json_text("prune", body)?)?;
                } else {
                    out.write_all(&log)?;
                    write!(out, "{}", prune::report(&m))?;
                    writeln!(out, "wrote {}", output.display())?;
                }
            }
        }
        Command::Compile { model, scheme, hw, output, calib, pre, placement } => compile(
            &model,
            scheme.as_deref(),
            &hw,
            &output,
            (&calib, &pre.overrides(), &placement.options()),
            ctx,
            out,
        )?,
        Command::Simulate {
            model,
            scheme,
            hw,
            input,
            output,
            data,
            calib,
            limit,
            metric,
            timing_only,
            jobs,
            trace,
            csv,
            modified_program,
            placement,
        } => simulate(
            &model,
            SimArgs {
                scheme,
                hw,
                input,
                output,
                data,
                calib,
                limit,
                metric,
                timing_only,
                jobs,
                trace,
                csv,
                modified_program,
                placement,
            },
            ctx,
            out,
        )?,
        Command::Quantize {
            model,
            scheme,
            calib,
            calib_method,
            clip_sigma,
            recipe,
            layer,
            pin_first_last,
            cle,
            bias_correction,
            adaround,
            calib_data,
            calib_labels,
            pre,
            output,
        } => {
            output::not_the_input(&output, &model)?;
            if scheme.as_deref() == Some(npu_tflite::AS_SHIPPED) {
                // An int8 .tflite's own quantization, kept as an .npuq: nothing to choose.
                let set: Vec<&str> = [
                    (calib.is_some(), "--calib"),
                    (calib_method.is_some(), "--calib-method"),
                    (clip_sigma.is_some(), "--clip-sigma"),
                    (!layer.is_empty(), "--layer"),
                    (pin_first_last, "--pin-first-last"),
                    (cle, "--cle"),
                    (bias_correction.is_some(), "--bias-correction"),
                    (adaround, "--adaround"),
                    (calib_data.is_some(), "--calib-data"),
                    (pre.mean.is_some(), "--mean"),
                    (pre.std.is_some(), "--std"),
                    (pre.scale.is_some(), "--scale"),
                    (pre.layout.is_some(), "--layout"),
                ]
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, f)| *f)
                .collect();
                if let Some(f) = set.first() {
                    usage!("{f}: --scheme as-shipped keeps the model's own quantization; there is nothing to choose");
                }
                let q = quantized_or_quantize(&model, scheme.as_deref(), &CalibArgs::default(), &Default::default())?;
                write_file(&output, &npu_quant::npuq::encode(&q)?)?;
                if ctx.json {
                    let body = serde_json::json!({
                        "model": q.name, "scheme": q.scheme.name, "layers": q.layers.len(),
                        "output": output.display().to_string(),
                    });
                    write!(out, "{}", output::json_text("quantize", body)?)?;
                } else {
                    writeln!(
                        out,
                        "{} ({}): {} integer layers -> {}",
                        q.name,
                        q.scheme.name,
                        q.layers.len(),
                        output.display()
                    )?;
                }
                return Ok(());
            }
            if calib == Some(Calib::None) {
                if calib_data.is_some() {
                    usage!("--calib-data: --calib none chooses ranges without data");
                }
                if let Some(m) = calib_method {
                    usage!("--calib-method {}: --calib none chooses ranges without data", m.name());
                }
                if bias_correction == Some(BiasCorrectionArg::Empirical) {
                    usage!("--bias-correction empirical: it needs calibration images (not --calib none); analytical needs none");
                }
            }
            let mut s = scheme_from(scheme.as_deref().unwrap_or(DEFAULT_SCHEME), recipe.as_deref())?;
            if clip_sigma.is_some() {
                s.weights.clip_sigma = clip_sigma;
            }
            if pin_first_last {
                s.pin_first_last = true;
            }
            for (name, bits) in &layer {
                let w = npu_quant::WeightScheme {
                    kind: npu_quant::Kind::Symmetric,
                    bits: *bits,
                    per_channel: true,
                    clip_sigma: s.weights.clip_sigma,
                };
                s.overrides.push((name.clone(), w));
            }
            let fixes = npu_quant::Fixes {
                cle,
                bias_correction: bias_correction.map(|b| match b {
                    BiasCorrectionArg::Analytical => npu_quant::BiasCorrection::Analytical,
                    BiasCorrectionArg::Empirical => npu_quant::BiasCorrection::Empirical,
                }),
                adaround: adaround.then(npu_quant::adaround::AdaRound::default),
            };
            let method = calib_method.unwrap_or(CalibMethodArg::Minmax);
            let source = CalibArgs { calib_data, calib_labels };
            quantize(&model, s, calib, method, fixes, (&source, &pre.overrides()), &output, ctx, out)?
        }
        Command::Qat {
            model,
            scheme,
            recipe,
            source,
            epochs,
            batch,
            lr,
            seed,
            calib,
            limit,
            recalibrate,
            lsq,
            output,
        } => {
            let source = source.source();
            output::not_the_input(&output, Path::new(&model))?;
            let s = scheme_from(scheme.as_deref().unwrap_or(DEFAULT_SCHEME), recipe.as_deref())?;
            let config = npu_train::TrainConfig {
                epochs,
                batch,
                lr,
                seed,
                schedule: npu_train::optim::Schedule::Cosine { warmup_steps: 50 },
                ..Default::default()
            };
            let ranges = if lsq {
                QatRanges::Learned
            } else if recalibrate {
                QatRanges::Recalibrated
            } else {
                QatRanges::Fixed
            };
            qat(&model, s, &source, config, (calib, ranges), limit, &output, ctx, out)?
        }
        Command::Mixed { model, hw, max_drop, energy, val, source, calib, limit, output } => {
            let source = source.source();
            let o = mixed::Options {
                model: model.clone(),
                hw: hw.clone(),
                max_drop,
                energy,
                val_images: val,
                calib,
                source,
            };
            mixed_cmd(&o, limit, &output, ctx, out)?
        }
        Command::Infer { model, input, pre, output, engine } => {
            output::not_the_input(&output, &model)?;
            infer(&model, &input, &pre.overrides(), &output, engine, ctx, out)?
        }
        Command::Eval { merge: Some(EvalCommand::Merge { files }), .. } => eval_merge(&files, ctx, out)?,
        Command::Eval { merge: None, model, engine, data, limit, metric, shard } => {
            let model = model.ok_or_else(|| anyhow::anyhow!("npu eval: a model is required"))?;
            let shard = shard.map(|s| sweep::parse_shard(&s, &|k| std::env::var(k).ok())).transpose()?;
            eval(&model, engine, &data, limit, metric, shard, ctx, out)?
        }
        Command::Disasm { program } => {
            no_json(ctx, "npu disasm prints assembly text; it has no JSON form")?;
            let prog = load::read_binary(&program)?;
            write!(out, "{}", npu_isa::disassemble(&prog))?;
        }
    }
    Ok(())
}

/// A library error about a command-line value, reported as a usage error.
fn to_usage(e: anyhow::Error) -> anyhow::Error {
    anyhow::Error::new(output::Usage(format!("{e:#}")))
}

/// `npu sweep merge`.
#[derive(Subcommand)]
enum SweepCommand {
    /// Combine the outputs of a sweep's shards into one result (same as an unsharded run).
    Merge {
        /// Shard output directories.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Output directory for the merged results, summary and plots.
        #[arg(short, long, visible_alias = "out", default_value = "target/npu-sweep/merged")]
        output: PathBuf,
    },
}

/// `npu eval merge`.
#[derive(Subcommand)]
enum EvalCommand {
    /// Combine the JSON documents of an evaluation's shards (`npu eval --shard I/N --json`)
    /// into the whole data set's result (the same as an unsharded run).
    Merge {
        /// The shards' JSON documents.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// `npu compare merge`.
#[derive(Subcommand)]
enum CompareCommand {
    /// Combine the output directories of a comparison's shards into the comparison of
    /// the whole data set (the same table as an unsharded run).
    Merge {
        /// Shard output directories (each holds the compare.json `--shard` wrote).
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Output directory for the merged compare.md, compare.csv, compare.json and plots.
        #[arg(short, long, visible_alias = "out", default_value = "target/npu-compare/merged")]
        output: PathBuf,
    },
}

/// Where layers run: the host CPU takes what the NPU cannot run, unless refused.
#[derive(clap::Args, Debug, Clone, Default)]
pub(crate) struct PlacementArgs {
    /// Run this layer on the host CPU (integer reference kernels, costed by the hardware
    /// description's `cpu` figures) even though the NPU could; repeatable.
    #[arg(long = "cpu", value_name = "LAYER")]
    pub(crate) cpu: Vec<String>,
    /// Refuse layers the NPU cannot run (a compile error naming the layer) instead of
    /// running them on the host CPU.
    #[arg(long)]
    pub(crate) no_cpu_fallback: bool,
    /// How layers follow one another: `overlapped` (npu's schedule: weights stream during
    /// the layer before, layers overlap, each convolution takes its cheaper loop order) or
    /// `per-layer` (one layer at a time, as Vela's performance model sums them) [default:
    /// overlapped].
    #[arg(long, value_name = "SCHEDULE", value_parser = ["overlapped", "per-layer"])]
    pub(crate) schedule: Option<String>,
}

impl PlacementArgs {
    /// The compiler's options for this placement.
    pub(crate) fn options(&self) -> npu_compile::Options {
        npu_compile::Options {
            fallback: if self.no_cpu_fallback { npu_compile::Fallback::Refuse } else { npu_compile::Fallback::Cpu },
            on_cpu: self.cpu.clone(),
            schedule: self.schedule.as_deref().and_then(npu_compile::Schedule::from_name).unwrap_or_default(),
            ..Default::default()
        }
    }
}

/// Where samples come from and how they are preprocessed.
#[derive(clap::Args, Debug, Clone, Default)]
struct DataArgs {
    /// Data: an IDX directory (t10k-/train-images-idx3-ubyte[.gz] with labels), an image
    /// folder (one subfolder of PNG/JPEG per class), a .npy (labels with --labels), an
    /// .npz (arrays x and y), an IDX file, or a RON data-set description (docs/data.md);
    /// default: the embedded Fashion-MNIST. uint8 and other integer samples are raw values,
    /// preprocessed as (v · scale − mean[c]) / std[c]; float samples are inputs already
    /// preprocessed; a model whose own input is int8 (an int8 TFLite) takes int8 samples
    /// as its quantized input values.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Labels (or regression targets) for a .npy or IDX --data file: a .npy or IDX file.
    #[arg(long, requires = "data")]
    labels: Option<PathBuf>,
    #[command(flatten)]
    pre: data::PreArgs,
}

/// Training data, the test data beside it, and how samples are preprocessed (train, qat,
/// prune, mixed).
#[derive(clap::Args, Debug, Clone, Default)]
struct TrainDataArgs {
    /// Training data: an IDX directory (train-* files; its t10k-* files are the test
    /// set), an image folder, a .npy (with --labels), an .npz, or a RON description
    /// (docs/data.md); default: the embedded 10,000-image training subset.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Labels for a .npy or IDX --data file.
    #[arg(long, requires = "data")]
    labels: Option<PathBuf>,
    /// Test data (accuracy after each epoch, --curve, mixed's final comparison), in any
    /// form --data takes; default: an IDX directory's t10k files, the embedded test set,
    /// or else none (train and qat then report the training set's accuracy).
    #[arg(long)]
    test_data: Option<PathBuf>,
    #[command(flatten)]
    pre: data::PreArgs,
}

impl TrainDataArgs {
    fn source(self) -> data::Source {
        data::Source { data: self.data, labels: self.labels, test_data: self.test_data, pre: self.pre.overrides() }
    }
}

/// Calibration data, apart from the evaluation data.
#[derive(clap::Args, Debug, Clone, Default)]
struct CalibArgs {
    /// Calibration data, in any form --data takes; default: the embedded Fashion-MNIST
    /// training subset when the model takes its images, else ranges without data.
    #[arg(long)]
    calib_data: Option<PathBuf>,
    /// Labels for a .npy or IDX --calib-data file (not needed for calibration).
    #[arg(long, requires = "calib_data")]
    calib_labels: Option<PathBuf>,
}

/// `--metric`.
fn metric_arg(s: &str) -> std::result::Result<npu_data::metrics::Metric, String> {
    npu_data::metrics::Metric::from_name(s).ok_or_else(|| {
        format!(
            "expected one of {}",
            npu_data::metrics::Metric::ALL.iter().map(|m| m.name()).collect::<Vec<_>>().join(", ")
        )
    })
}

/// The first `limit` items of a set of `len`, or all of them; more than it holds is an error.
fn take_limit(limit: Option<usize>, len: usize, flag: &str, origin: &str) -> Result<usize> {
    match limit {
        Some(n) if n > len => usage!("{flag} {n}: {origin} has {len} images"),
        Some(n) => Ok(n),
        None => Ok(len),
    }
}

fn progress_bar(total: usize, quiet: bool, what: &str) -> indicatif::ProgressBar {
    if quiet {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(total as u64);
    pb.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} images, {per_sec}, ETA {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

/// A shape as `28×28×1`.
fn dims(shape: &[usize]) -> String {
    shape.iter().map(usize::to_string).collect::<Vec<_>>().join("×")
}

#[cfg(test)]
mod tests {
    /// clap's own consistency checks over every subcommand (a global flag whose name a
    /// subcommand also uses, like the size limits' `--size-limit` beside the sample
    /// count `--limit`, panics only when that subcommand is parsed).
    #[test]
    fn the_command_line_definition_passes_clap_checks() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
