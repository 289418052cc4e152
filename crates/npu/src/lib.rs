//! `npu`: the command line of the npu toolchain and simulator.
//!
//! This crate is the only place in the workspace that reads or writes files and prints;
//! the libraries return values and log through `tracing`. The binary (`main.rs`) only
//! installs the log subscriber and calls [`run`], which tests call in-process with
//! their own output buffers.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

pub mod compare;
mod load;
pub mod mixed;
pub mod prune;
pub mod sweep;

/// Simulator and quantizing toolchain for edge NPUs.
#[derive(Parser)]
#[doc(hidden)]
#[command(name = "npu", version, about, long_about = None)]
struct Cli {
    /// Log level for diagnostics on stderr (error, warn, info, debug, trace).
    #[arg(long, global = true, default_value = "warn", env = "NPU_LOG")]
    log: String,
    #[command(subcommand)]
    command: Command,
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
        /// Hardware: a preset (edge-64, edge-256, edge-1k) or a RON file.
        #[arg(long, default_value = "edge-256")]
        hw: String,
        /// Print the report as JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Write a Chrome/Perfetto trace (one track per unit) to this file.
        #[arg(long)]
        trace: Option<PathBuf>,
        /// Print memory after the run: SPACE:ADDR:LEN[:i8|u8|i32|hex] (repeatable).
        #[arg(long, value_name = "REGION")]
        dump: Vec<String>,
        /// Skip the arithmetic; same cycles and counters, faster.
        #[arg(long)]
        timing_only: bool,
        /// Stop after this many fetched instructions.
        #[arg(long, default_value_t = 1_000_000_000)]
        max_instructions: u64,
    },
    /// Show a model's layers, shapes, parameters and MACs.
    #[command(after_help = "Example:\n  npu inspect tests/fixtures/onnx/mobile_res.onnx")]
    Inspect {
        /// Model: zoo:NAME, an ONNX (.onnx) or TFLite (.tflite) file, or an npu model file (.npum).
        model: PathBuf,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Top-1 accuracy of a model on a labelled image set: its FP32 graph, or the integer
    /// reference executor for a quantized model (.npuq, int8 .tflite).
    #[command(after_help = "Examples:\n  npu eval tests/fixtures/onnx/plain_cnn.onnx\n  \
        npu eval tests/fixtures/tflite/fmnist_int8.tflite\n  \
        npu eval tests/fixtures/tflite/fmnist_int8.tflite --engine fp32\n  \
        npu eval model.onnx --data ../shared/datasets/fashion-mnist --limit 1000 --mean 0.5 --std 0.5")]
    Eval {
        /// Model: zoo:NAME, an ONNX (.onnx) or TFLite (.tflite) file, an npu model file
        /// (.npum) or a quantized model (.npuq).
        model: PathBuf,
        /// Executor: `int` (the integer reference; default for .npuq and int8 .tflite) or
        /// `fp32` (the float graph; an int8 .tflite's weights dequantized).
        #[arg(long, value_parser = ["fp32", "int"])]
        engine: Option<String>,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Train a zoo architecture (or continue training a model) on Fashion-MNIST-style data.
    #[command(
        after_help = "Example:\n  npu train mobilenet --data ../shared/datasets/fashion-mnist --epochs 15 --seed 1 -o mobilenet.npum"
    )]
    Train {
        /// A zoo architecture (cnn, mobilenet, resnet) or a model file to fine-tune.
        model: String,
        /// Directory with train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz]
        /// (and the t10k files, for the test accuracy after each epoch); default: the
        /// embedded 10,000-image training subset and test set.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Passes over the training set.
        #[arg(long, default_value_t = 10)]
        epochs: usize,
        /// Seed of initialization, shuffling and augmentation.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Images per step.
        #[arg(long, default_value_t = 64)]
        batch: usize,
        /// Peak learning rate.
        #[arg(long, default_value_t = 2e-3)]
        lr: f32,
        /// Weight decay (weights only).
        #[arg(long, default_value_t = 1e-4)]
        weight_decay: f32,
        /// Optimizer.
        #[arg(long, value_parser = ["adamw", "sgd"], default_value = "adamw")]
        optimizer: String,
        /// Learning-rate schedule.
        #[arg(long, value_parser = ["cosine", "onecycle", "constant"], default_value = "cosine")]
        schedule: String,
        /// No random horizontal flips.
        #[arg(long)]
        no_flip: bool,
        /// Random shifts of up to this many pixels.
        #[arg(long, default_value_t = 2)]
        shift: usize,
        /// Train on only the first N images.
        #[arg(long)]
        limit: Option<usize>,
        /// Train with quantized operators from the start: every layer's weights on the
        /// grid of this scheme in the forward pass (binary and ternary with per-channel
        /// scaling factors), float latent weights updated straight-through; the model
        /// written has its weights on the grid.
        #[arg(long)]
        quantized: Option<String>,
        /// Output model file (.npum); written after every epoch as a checkpoint.
        #[arg(short, long)]
        output: PathBuf,
        /// No progress bar.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Quantization-aware training: fine-tune a model with the quantizer in the loop
    /// (fake-quantized weights and activations, straight-through gradients, BatchNorm
    /// folded), then write the quantized model.
    #[command(
        after_help = "Examples:\n  npu qat zoo:mobilenet --scheme w4a8-per-channel --data ../shared/datasets/fashion-mnist -o mn-w4.npuq\n  \
        npu qat zoo:cnn --recipe mixed.ron --epochs 2 -o cnn-mixed.npuq"
    )]
    Qat {
        /// Model: zoo:NAME, .onnx or .npum (trained in FP32).
        model: String,
        /// Scheme (see `npu quantize --help`).
        #[arg(long, default_value = "int8-per-channel")]
        scheme: String,
        /// A RON recipe instead of a named scheme (per-layer bit widths).
        #[arg(long)]
        recipe: Option<PathBuf>,
        /// Directory with the train and t10k files; default: the embedded training subset
        /// and test set.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Passes over the training set.
        #[arg(long, default_value_t = 3)]
        epochs: usize,
        /// Images per step.
        #[arg(long, default_value_t = 64)]
        batch: usize,
        /// Peak learning rate (AdamW, cosine schedule with a short warm-up).
        #[arg(long, default_value_t = 2e-4)]
        lr: f32,
        /// Seed of shuffling and augmentation.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Calibration images for the (then fixed) activation ranges.
        #[arg(long, default_value_t = 500)]
        calib: usize,
        /// Train on only the first N images.
        #[arg(long)]
        limit: Option<usize>,
        /// Recalibrate activation ranges on the fake-quantized model after every epoch
        /// (helps when weights change a lot, as with binary weights).
        #[arg(long)]
        recalibrate: bool,
        /// Output quantized model (.npuq); written after every epoch.
        #[arg(short, long)]
        output: PathBuf,
        /// No progress bar.
        #[arg(long, short)]
        quiet: bool,
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
        #[arg(long, default_value = "edge-256")]
        hw: String,
        /// Largest accuracy drop against all-INT8 on the validation images, points.
        #[arg(long, default_value_t = 0.5)]
        max_drop: f64,
        /// Minimize energy per frame instead of cycles.
        #[arg(long)]
        energy: bool,
        /// Validation images (from the embedded training subset, after the calibration ones).
        #[arg(long, default_value_t = 2000)]
        val: usize,
        /// Calibration images.
        #[arg(long, default_value_t = 500)]
        calib: usize,
        /// Test images for the final comparison (default: all).
        #[arg(long)]
        limit: Option<usize>,
        /// Output recipe (.ron), for `npu quantize --recipe`, `npu qat --recipe`, `npu compare --add`.
        #[arg(short, long)]
        output: PathBuf,
        /// No progress output.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Quantize a model for the NPU and print a per-layer report.
    #[command(
        after_help = "Examples:\n  npu quantize zoo:mobilenet --scheme int8-per-channel -o mobilenet-pc.npuq\n  \
        npu quantize model.onnx --scheme uint8-asym --calib none -o model-u8.npuq"
    )]
    Quantize {
        /// Model: zoo:NAME, .onnx or .npum.
        model: PathBuf,
        /// Named scheme (int8-pow2, int8-sym, uint8-asym, int8-per-channel, w4a8-per-channel,
        /// ternary-weights, binary-weights), or `as-shipped` for an int8 .tflite's own.
        #[arg(long, default_value = "int8-per-channel")]
        scheme: String,
        /// Calibration images from the data set, or `none` for data-free ranges.
        #[arg(long, default_value = "500")]
        calib: String,
        /// Range selection over the calibration images.
        #[arg(long, value_parser = ["minmax", "percentile", "mse", "kl"], default_value = "minmax")]
        calib_method: String,
        /// Clip weights to mean ± K standard deviations first.
        #[arg(long)]
        clip_sigma: Option<f32>,
        /// A scheme as a RON file (a `Scheme`: activations, weights, per-layer overrides,
        /// pinning); replaces --scheme.
        #[arg(long)]
        recipe: Option<PathBuf>,
        /// Per-layer weight precision: NAME=8|4|2|1 (per-channel), repeatable.
        #[arg(long, value_name = "NAME=BITS")]
        layer: Vec<String>,
        /// Keep the first and last weighted layers at 8 bits.
        #[arg(long)]
        pin_first_last: bool,
        /// Cross-layer equalization and high-bias absorption first.
        #[arg(long)]
        cle: bool,
        /// Bias correction of the weight quantization error.
        #[arg(long, value_parser = ["empirical", "analytical"])]
        bias_correction: Option<String>,
        /// Calibration data: a directory with train-images-idx3-ubyte[.gz] and labels;
        /// default: the embedded training subset.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Override the model's preprocessing mean (kept in the quantized model).
        #[arg(long)]
        mean: Option<f32>,
        /// Override the model's preprocessing standard deviation (kept in the quantized model).
        #[arg(long)]
        std: Option<f32>,
        /// Output quantized model (.npuq).
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Run one batch from a NumPy file through a model and write the raw output.
    #[command(after_help = "Example:\n  npu infer model.npuq --input x.npy --output y.npy --engine int")]
    Infer {
        /// Model: zoo:NAME, .onnx, .npum or a quantized .npuq.
        model: PathBuf,
        /// Input batch (.npy, float32, shape [N, ...per-sample shape]); already preprocessed.
        #[arg(long)]
        input: PathBuf,
        /// Output (.npy): float32 logits, or int32 quantized integers with `--engine int`.
        #[arg(long)]
        output: PathBuf,
        /// Engine.
        #[arg(long, value_parser = ["fp32", "fake-quant", "int"], default_value = "fp32")]
        engine: String,
    },
    /// Design-space sweep: models × schemes × hardware parameters from a RON plan, each
    /// point quantized, compiled and simulated once (cached by content), in parallel and
    /// in shards; results as JSON Lines, a summary table and SVG plots.
    #[command(
        args_conflicts_with_subcommands = true,
        subcommand_negates_reqs = true,
        after_help = "Examples:\n  npu sweep docs/sweep/mac-array.ron --out target/npu-sweep/mac-array\n  \
        npu sweep plan.ron --shard 1/3 --out out/shard-1\n  \
        npu sweep plan.ron --shard auto --out out/shard-$SLURM_ARRAY_TASK_ID\n  \
        npu sweep merge out/shard-* --out out/merged"
    )]
    Sweep {
        #[command(subcommand)]
        merge: Option<SweepCommand>,
        /// The plan (RON): models, schemes, hw, params, filters, timing_only, images, calib.
        #[arg(required = true)]
        plan: Option<PathBuf>,
        /// Output directory: results.jsonl, summary.md, summary.csv, plots, plan.json, cache/.
        #[arg(long, default_value = "target/npu-sweep")]
        out: PathBuf,
        /// Run one shard: `I/N` (the points whose index is I modulo N) or `auto` (Slurm
        /// SLURM_ARRAY_TASK_ID/COUNT, or Kubernetes JOB_COMPLETION_INDEX with NPU_SHARD_COUNT).
        #[arg(long, default_value = "0/1")]
        shard: String,
        /// Points run in parallel (default: the available cores).
        #[arg(long)]
        jobs: Option<usize>,
        /// Cache of point results by content key (default: OUT/cache); share one between runs.
        #[arg(long)]
        cache: Option<PathBuf>,
        /// Throughput only, whatever the plan says.
        #[arg(long)]
        timing_only: bool,
        /// No progress bar.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Prune a model's convolution and dense weights (unstructured, whole channels or N:M),
    /// optionally fine-tuning the pruned network; or measure accuracy against sparsity.
    #[command(after_help = "Examples:\n  npu prune zoo:mobilenet --sparsity 0.5 -o mobilenet-50.npum\n  \
        npu prune zoo:mobilenet --structure 2:4 --finetune 1 -o mobilenet-2of4.npum\n  \
        npu prune zoo:cnn --curve 0,0.3,0.5,0.7,0.8,0.9 --out target/npu-prune")]
    Prune {
        /// Model: zoo:NAME, .onnx, .tflite or .npum.
        model: PathBuf,
        /// Fraction of weights (channel: of channels) to zero (N:M sets its own).
        #[arg(long, default_value_t = 0.5)]
        sparsity: f32,
        /// unstructured, channel, or N:M (e.g. 2:4: N of every M weights along the input channels).
        #[arg(long, default_value = "unstructured")]
        structure: String,
        /// Sparsity over all layers at once (global magnitude threshold) or per layer.
        #[arg(long, value_parser = ["global", "layer"], default_value = "global")]
        scope: String,
        /// Fine-tuning epochs of the pruned network (masked weights stay zero).
        #[arg(long, default_value_t = 0)]
        finetune: usize,
        /// Training data for fine-tuning (IDX directory); default: the embedded subset.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Fine-tuning learning rate.
        #[arg(long, default_value_t = 5e-4)]
        lr: f32,
        /// Fine-tune on the first N training images only.
        #[arg(long)]
        limit: Option<usize>,
        /// Instead of writing a model: FP32 and per-channel INT8 accuracy at each of these
        /// sparsities (comma-separated), as prune_curve.csv and prune_curve.svg in --out.
        #[arg(long, value_delimiter = ',', conflicts_with = "output")]
        curve: Vec<f32>,
        /// Test images for --curve.
        #[arg(long, default_value_t = 2000)]
        images: usize,
        /// Directory for --curve's files.
        #[arg(long, default_value = "target/npu-prune")]
        out: PathBuf,
        /// Pruned model (.npum).
        #[arg(short, long, required_unless_present = "curve")]
        output: Option<PathBuf>,
        /// No progress bars.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Compile a model to an NPU program: binary, listing with per-layer comments, off-chip image.
    #[command(
        after_help = "Examples:\n  npu compile mobilenet-pc.npuq --hw edge-256 -o build/mobilenet\n  npu compile zoo:mobilenetv2-224 --hw edge-1k -o build/mnv2"
    )]
    Compile {
        /// A quantized model (.npuq from `npu quantize`, or an int8 .tflite), or any model
        /// (zoo:NAME, .onnx, .tflite, .npum) to quantize with --scheme first.
        model: PathBuf,
        /// Scheme for a model that is not quantized yet (calibrated on 500 images of the
        /// embedded training subset, min/max; without data when the model does not take them);
        /// default: `as-shipped` for an int8 .tflite (its own quantization), else int8-per-channel.
        #[arg(long)]
        scheme: Option<String>,
        /// Hardware: a preset or a RON file.
        #[arg(long, default_value = "edge-256")]
        hw: String,
        /// Output directory: program.bin, program.s (listing), dram.bin, model.npuq, io.txt.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Run a compiled or quantized model on the simulator: per-layer cycles, utilization,
    /// bound, traffic and energy; with --data, top-1 accuracy from the simulator's outputs.
    #[command(after_help = "Examples:\n  npu simulate zoo:resnet --scheme int8-per-channel --limit 1000\n  \
        npu simulate build/mobilenet --limit 500\n  \
        npu simulate mobilenet-pc.npuq --hw edge-1k --input x.npy --output y.npy")]
    Simulate {
        /// A directory from `npu compile`, a quantized model (.npuq, an int8 .tflite), or any
        /// model (zoo:NAME, .onnx, .tflite, .npum) to quantize with --scheme and compile first.
        model: PathBuf,
        /// Scheme for a model that is not quantized yet (calibrated on 500 images of the
        /// embedded training subset, min/max); default: `as-shipped` for an int8 .tflite,
        /// else int8-per-channel.
        #[arg(long)]
        scheme: Option<String>,
        /// Hardware (for a .npuq; a compiled directory keeps its own).
        #[arg(long, default_value = "edge-256")]
        hw: String,
        /// Preprocessed float inputs (.npy, [N, ...]) to run.
        #[arg(long, conflicts_with = "data")]
        input: Option<PathBuf>,
        /// Write the raw output integers (.npy int32), as `npu infer --engine int` does.
        #[arg(long, requires = "input")]
        output: Option<PathBuf>,
        /// Directory with t10k test images for accuracy; default: the embedded test set.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Images to run for accuracy (default 100).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Skip the arithmetic: timing only (no accuracy).
        #[arg(long)]
        timing_only: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Write a Chrome/Perfetto trace of the first image.
        #[arg(long)]
        trace: Option<PathBuf>,
        /// No progress bar.
        #[arg(long, short)]
        quiet: bool,
    },
    /// List the zoo models with their accuracy, parameters and MACs.
    #[command(after_help = "Example:\n  npu zoo")]
    Zoo,
    /// Compare quantization schemes on modeled hardware: accuracy from the simulator's
    /// outputs, frames/s, latency, energy and memory from the same runs; writes a table
    /// (Markdown, CSV, JSON) and SVG plots with the Pareto fronts.
    #[command(
        after_help = "Examples:\n  npu compare\n  npu compare zoo:resnet --hw edge-1k --schemes fp32,int8-per-channel,w4a8-per-channel\n  \
        npu compare model.onnx --data ../shared/datasets/fashion-mnist --limit 2000 --jobs 2 --out results\n  \
        npu compare --bench"
    )]
    Compare {
        /// Model: zoo:NAME, .onnx or .npum.
        #[arg(default_value = "zoo:mobilenet")]
        model: String,
        /// Directory with the t10k test files; default: the embedded test set.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Hardware: a preset or a RON file.
        #[arg(long, default_value = "edge-256")]
        hw: String,
        /// Rows: `all`, or a comma-separated list of fp32, int8-pow2, int8-sym, uint8-asym,
        /// int8-per-channel, int8-per-channel-dfq, w4a8-per-channel, binary-weights,
        /// int8-per-channel-pruned50, w4a8-2of4 (pruned without fine-tuning).
        #[arg(long, default_value = "all")]
        schemes: String,
        /// Images (default: the whole test set).
        #[arg(long)]
        limit: Option<usize>,
        /// Threads over images (results are identical for any number); default: all cores.
        #[arg(long)]
        jobs: Option<usize>,
        /// Calibration images (min/max, embedded training subset).
        #[arg(long, default_value_t = 500)]
        calib: usize,
        /// Output directory for compare.md, compare.csv, compare.json and the SVG plots.
        #[arg(long, default_value = "target/npu-compare")]
        out: PathBuf,
        /// A further row: a RON recipe (quantized here) or a quantized model (.npuq, e.g.
        /// from `npu qat` or `npu mixed`); repeatable.
        #[arg(long)]
        add: Vec<PathBuf>,
        /// Host-speed measurement: only per-channel INT8, report images/s, write nothing.
        #[arg(long)]
        bench: bool,
        /// No progress bars.
        #[arg(short, long)]
        quiet: bool,
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
    match execute(cli.command, out) {
        Ok(()) => 0,
        // The reader went away (`npu … | head`): stop quietly, as Unix tools do.
        Err(e) if e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) => 0,
        Err(e) => {
            let _ = match e.downcast_ref::<load::Reported>() {
                Some(r) => write!(err, "{}", r.0),
                None => writeln!(err, "error: {e:#}"),
            };
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

fn execute(command: Command, out: &mut dyn Write) -> Result<()> {
    match command {
        Command::Asm { program, output } => {
            let prog = load::assemble_file(&program)?;
            let out_path = output.unwrap_or_else(|| program.with_extension("bin"));
            if out_path == program {
                bail!("output path {} is the input; pass -o", out_path.display());
            }
            let bytes = prog.to_bytes()?;
            write_file(&out_path, &bytes)?;
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
        Command::Run { program, hw, json, trace, dump, timing_only, max_instructions } => {
            let hw = load::hardware(&hw)?;
            let prog = load::read_program(&program)?;
            let regions = dump.iter().map(|d| load::Region::parse(d)).collect::<Result<Vec<_>>>()?;
            let opts = npu_sim::RunOptions { timing_only, trace: trace.is_some(), max_instructions };
            let outcome = npu_sim::run(&prog, &hw, &opts)
                .with_context(|| format!("cannot load {} on {}", program.display(), hw.name))?;
            if json {
                writeln!(out, "{}", outcome.report.to_json())?;
            } else {
                write!(out, "{}", outcome.report.render())?;
            }
            if let Some(path) = trace {
                write_file(&path, npu_sim::chrome_trace(&outcome.trace, &hw).as_bytes())?;
            }
            for r in &regions {
                write!(out, "{}", r.show(&outcome.machine)?)?;
            }
            if let Some(trap) = outcome.trap {
                bail!("{}: {trap}", program.display());
            }
        }
        Command::Inspect { model, json } => inspect(&model, json, out)?,
        Command::Train {
            model,
            data,
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
            quiet,
        } => {
            let config = npu_toolchain::train::TrainConfig {
                epochs,
                batch,
                optimizer: if optimizer == "sgd" {
                    npu_toolchain::train::optim::OptimizerKind::SgdMomentum
                } else {
                    npu_toolchain::train::optim::OptimizerKind::AdamW
                },
                lr,
                weight_decay,
                schedule: match schedule.as_str() {
                    "onecycle" => npu_toolchain::train::optim::Schedule::OneCycle,
                    "constant" => npu_toolchain::train::optim::Schedule::Constant,
                    _ => npu_toolchain::train::optim::Schedule::Cosine { warmup_steps: 200 },
                },
                seed,
                flip: !no_flip,
                shift,
            };
            let quantized = quantized.as_deref().map(npu_toolchain::quant::Scheme::named).transpose()?;
            train(&model, data.as_deref(), config, limit, quantized, &output, quiet, out)?
        }
        Command::Zoo => zoo(out)?,
        Command::Compare { model, data, hw, schemes, limit, jobs, calib, out: dir, add, bench, quiet } => {
            let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
            let schemes = if bench { vec!["int8-per-channel".to_string()] } else { compare::parse_schemes(&schemes)? };
            let extra = add.iter().map(|p| compare::extra_from_file(p)).collect::<Result<Vec<_>>>()?;
            let opts = compare::Options { model, data, hw, schemes, limit, jobs, calib, quiet, extra };
            compare_cmd(&opts, if bench { None } else { Some(dir.as_path()) }, out)?
        }
        Command::Sweep { merge: Some(SweepCommand::Merge { dirs, out: dir }), .. } => {
            let (plan, records) = sweep::merge(&dirs)?;
            let written = sweep::write_outputs(&dir, &plan, &records, true)?;
            writeln!(
                out,
                "merged {} shard outputs: {} points -> {} in {}",
                dirs.len(),
                records.len(),
                written.join(", "),
                dir.display()
            )?;
        }
        Command::Sweep { merge: None, plan, out: dir, shard, jobs, cache, timing_only, quiet } => {
            let path = plan.ok_or_else(|| anyhow::anyhow!("npu sweep: a plan file is required"))?;
            let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
            let mut plan = sweep::Plan::from_ron(&text, &path.display().to_string())?;
            plan.timing_only |= timing_only;
            let shard = sweep::parse_shard(&shard, &|k| std::env::var(k).ok())?;
            let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
            let start = std::time::Instant::now();
            let o = sweep::RunOptions { out: dir.clone(), cache, shard, jobs, quiet };
            let s = sweep::run(&plan, &o, out)?;
            let written = sweep::write_outputs(&dir, &plan, &s.records, false)?;
            let failed = s.records.iter().filter(|r| r.error.is_some()).count();
            writeln!(
                out,
                "{:.1} s on {jobs} threads; {failed} points could not run (see summary.md); wrote results.jsonl, {} in {}",
                start.elapsed().as_secs_f64(),
                written.join(", "),
                dir.display()
            )?;
        }
        Command::Prune {
            model,
            sparsity,
            structure,
            scope,
            finetune,
            data,
            lr,
            limit,
            curve,
            images,
            out: dir,
            output,
            quiet,
        } => {
            let o =
                prune::Options { model: model.clone(), sparsity, structure, scope, finetune, data, lr, limit, quiet };
            if !curve.is_empty() {
                let points = prune::curve(&o, &curve, images, out)?;
                let title = format!(
                    "{}: top-1 vs sparsity ({}, {} scope, {} fine-tuning epoch{})",
                    model.display(),
                    o.structure,
                    o.scope,
                    o.finetune,
                    if o.finetune == 1 { "" } else { "s" }
                );
                prune::write_curve(&dir, &title, &points)?;
                writeln!(out, "wrote prune_curve.csv, prune_curve.svg in {}", dir.display())?;
            } else {
                let output = output.ok_or_else(|| anyhow::anyhow!("npu prune: -o OUTPUT.npum is required"))?;
                let m = prune::pruned(&o, sparsity, out)?;
                write!(out, "{}", prune::report(&m))?;
                let record = npu_toolchain::modelfile::TrainRecord {
                    arch: m.name.clone(),
                    config: format!(
                        "prune: structure {}, scope {}, sparsity {sparsity}, fine-tune {finetune} epochs at lr {lr}",
                        o.structure, o.scope
                    ),
                    epochs: finetune,
                    test_accuracy: None,
                    command: std::env::args().collect::<Vec<_>>().join(" "),
                };
                write_file(&output, &npu_toolchain::modelfile::encode(&m, Some(&record))?)?;
                writeln!(out, "wrote {}", output.display())?;
            }
        }
        Command::Compile { model, scheme, hw, output } => compile(&model, scheme.as_deref(), &hw, &output, out)?,
        Command::Simulate { model, scheme, hw, input, output, data, limit, timing_only, json, trace, quiet } => {
            simulate(&model, &hw, SimArgs { scheme, input, output, data, limit, timing_only, json, trace, quiet }, out)?
        }
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
            data,
            mean,
            std,
            output,
        } => {
            if scheme == npu_toolchain::tflite::AS_SHIPPED {
                // An int8 .tflite's own quantization, kept as an .npuq.
                let q = quantized_or_quantize(&model, Some(&scheme))?;
                write_file(&output, &npu_toolchain::modelfile::encode_quantized(&q)?)?;
                writeln!(
                    out,
                    "{} ({}): {} integer layers -> {}",
                    q.name,
                    q.scheme.name,
                    q.layers.len(),
                    output.display()
                )?;
                return Ok(());
            }
            let mut s = scheme_from(&scheme, recipe.as_deref())?;
            if clip_sigma.is_some() {
                s.weights.clip_sigma = clip_sigma;
            }
            if pin_first_last {
                s.pin_first_last = true;
            }
            for spec in &layer {
                let (name, bits) =
                    spec.split_once('=').ok_or_else(|| anyhow::anyhow!("--layer {spec}: expected NAME=BITS"))?;
                let bits = match bits {
                    "8" => npu_toolchain::quant::WeightBits::B8,
                    "4" => npu_toolchain::quant::WeightBits::B4,
                    "2" => npu_toolchain::quant::WeightBits::Ternary,
                    "1" => npu_toolchain::quant::WeightBits::Binary,
                    b => bail!("--layer {spec}: bits `{b}` (expected 8, 4, 2 or 1)"),
                };
                let w = npu_toolchain::quant::WeightScheme {
                    kind: npu_toolchain::quant::Kind::Symmetric,
                    bits,
                    per_channel: true,
                    clip_sigma: s.weights.clip_sigma,
                };
                s.overrides.push((name.to_string(), w));
            }
            let fixes = npu_toolchain::quant::Fixes {
                cle,
                bias_correction: bias_correction.as_deref().map(|b| {
                    if b == "analytical" {
                        npu_toolchain::quant::BiasCorrection::Analytical
                    } else {
                        npu_toolchain::quant::BiasCorrection::Empirical
                    }
                }),
            };
            quantize(&model, s, &calib, &calib_method, fixes, (data.as_deref(), mean, std), &output, out)?
        }
        Command::Qat {
            model,
            scheme,
            recipe,
            data,
            epochs,
            batch,
            lr,
            seed,
            calib,
            limit,
            recalibrate,
            output,
            quiet,
        } => {
            let s = scheme_from(&scheme, recipe.as_deref())?;
            let config = npu_toolchain::train::TrainConfig {
                epochs,
                batch,
                lr,
                seed,
                schedule: npu_toolchain::train::optim::Schedule::Cosine { warmup_steps: 50 },
                ..Default::default()
            };
            qat(&model, s, data.as_deref(), config, (calib, recalibrate), limit, &output, quiet, out)?
        }
        Command::Mixed { model, hw, max_drop, energy, val, calib, limit, output, quiet } => {
            let o = mixed::Options { model: model.clone(), hw: hw.clone(), max_drop, energy, val_images: val, calib };
            mixed_cmd(&o, limit, &output, quiet, out)?
        }
        Command::Infer { model, input, output, engine } => infer(&model, &input, &output, &engine, out)?,
        Command::Eval { model, engine, data } => eval(&model, engine.as_deref(), &data, out)?,
        Command::Disasm { program } => {
            let prog = load::read_binary(&program)?;
            write!(out, "{}", npu_isa::disassemble(&prog))?;
        }
    }
    Ok(())
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
        #[arg(long, default_value = "target/npu-sweep/merged")]
        out: PathBuf,
    },
}

/// Where images come from and how they are preprocessed.
#[derive(clap::Args, Debug)]
pub struct DataArgs {
    /// Directory with t10k-images-idx3-ubyte[.gz] and t10k-labels-idx1-ubyte[.gz];
    /// default: the Fashion-MNIST test set embedded in npu.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Evaluate only the first N images.
    #[arg(long)]
    limit: Option<usize>,
    /// Override the model's preprocessing mean (after scaling pixels to 0..1).
    #[arg(long)]
    mean: Option<f32>,
    /// Override the model's preprocessing standard deviation.
    #[arg(long)]
    std: Option<f32>,
    /// Override the pixel scale (default 1/255).
    #[arg(long)]
    scale: Option<f32>,
    /// Override the input layout (nchw or nhwc).
    #[arg(long, value_parser = ["nchw", "nhwc"])]
    layout: Option<String>,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
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

fn inspect(model: &Path, json: bool, out: &mut dyn Write) -> Result<()> {
    let m = load::model(model)?;
    let layers = m.layers();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&layers)?)?;
        return Ok(());
    }
    let input = &m.graph.values[m.graph.inputs[0]].shape;
    writeln!(out, "model {} — input {:?} per sample, {} nodes", m.name, input, layers.len())?;
    let p = m.preprocess;
    writeln!(
        out,
        "preprocessing: x = (pixel · {:.6} − {}) / {}, {:?}{}",
        p.scale,
        p.mean,
        p.std,
        p.layout,
        if m.has_preprocess { "" } else { " (default; not in the model)" }
    )?;
    writeln!(out, "\n{:<32} {:<22} {:<16} {:>10} {:>12}", "layer", "op", "output", "params", "MACs")?;
    for l in &layers {
        writeln!(out, "{:<32} {:<22} {:<16} {:>10} {:>12}", l.name, l.op, format!("{:?}", l.shape), l.params, l.macs)?;
    }
    let params: u64 = layers.iter().map(|l| l.params).sum();
    let macs: u64 = layers.iter().map(|l| l.macs).sum();
    writeln!(out, "\ntotal: {params} parameters ({} bytes as FP32), {macs} MACs per image", params * 4)?;
    if load::is_tflite(model) {
        let t = load::tflite(model)?;
        writeln!(
            out,
            "\nTFLite: input {:?}, output {:?} (H, W, C per sample); {} operators:",
            t.input_shape,
            t.output_shape,
            t.operators.len()
        )?;
        for o in &t.operators {
            writeln!(out, "  {o}")?;
        }
        match &t.quantized {
            Some(q) => {
                let (i, o) = (&q.values[0].q, &q.values[q.output].q);
                writeln!(
                    out,
                    "int8 as shipped ({}): {} integer layers; input scale {} zero point {}, output scale {} zero point {}",
                    npu_toolchain::tflite::AS_SHIPPED,
                    q.layers.len(),
                    i.scale,
                    i.zero_point,
                    o.scale,
                    o.zero_point
                )?;
            }
            None => writeln!(out, "float32: quantize it with any --scheme")?,
        }
    }
    Ok(())
}

fn eval(model: &Path, engine: Option<&str>, args: &DataArgs, out: &mut dyn Write) -> Result<()> {
    let quantized = load::is_quantized(model)?;
    if engine == Some("int") && !quantized {
        bail!("--engine int needs a quantized model (.npuq, int8 .tflite); `npu quantize` makes one");
    }
    if quantized && engine != Some("fp32") {
        let mut q = load::quantized(model)?;
        let p = &mut q.preprocess;
        p.mean = args.mean.unwrap_or(p.mean);
        p.std = args.std.unwrap_or(p.std);
        p.scale = args.scale.unwrap_or(p.scale);
        let (ds, origin) = load::dataset(args.data.as_deref())?;
        let n = args.limit.unwrap_or(ds.len()).min(ds.len());
        let pb = progress_bar(n, args.quiet, "integer");
        let start = std::time::Instant::now();
        let (acc, _) = q.evaluate_int(&ds, n, &mut |done| pb.set_position(done as u64))?;
        pb.finish_and_clear();
        writeln!(
            out,
            "{}: top-1 {:.2}% ({}/{}) on {origin}, {} integer reference, {:.0} images/s",
            q.name,
            acc.top1() * 100.0,
            acc.correct,
            acc.total,
            q.scheme.name,
            acc.total as f64 / start.elapsed().as_secs_f64().max(1e-9)
        )?;
        return Ok(());
    }
    let mut m = if model.extension().is_some_and(|e| e == "npuq") {
        // The float graph a quantized model was made from.
        let q = load::quantized(model)?;
        npu_toolchain::Model { name: q.name, graph: q.graph, preprocess: q.preprocess, has_preprocess: true }
    } else {
        load::model(model)?
    };
    if let Some(v) = args.mean {
        m.preprocess.mean = v;
    }
    if let Some(v) = args.std {
        m.preprocess.std = v;
    }
    if let Some(v) = args.scale {
        m.preprocess.scale = v;
    }
    if let Some(l) = &args.layout {
        m.preprocess.layout =
            if l == "nhwc" { npu_toolchain::data::Layout::Nhwc } else { npu_toolchain::data::Layout::Nchw };
    }
    let (ds, origin) = load::dataset(args.data.as_deref())?;
    let n = args.limit.unwrap_or(ds.len()).min(ds.len());
    let pb = progress_bar(n, args.quiet, "FP32");
    let start = std::time::Instant::now();
    let (acc, _) = m.evaluate(&ds, n, &mut |done| pb.set_position(done as u64))?;
    pb.finish_and_clear();
    writeln!(
        out,
        "{}: top-1 {:.2}% ({}/{}) on {origin}, FP32, {:.0} images/s",
        m.name,
        acc.top1() * 100.0,
        acc.correct,
        acc.total,
        acc.total as f64 / start.elapsed().as_secs_f64().max(1e-9)
    )?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn train(
    spec: &str,
    data: Option<&Path>,
    config: npu_toolchain::train::TrainConfig,
    limit: Option<usize>,
    quantized: Option<npu_toolchain::quant::Scheme>,
    output: &Path,
    quiet: bool,
    out: &mut dyn Write,
) -> Result<()> {
    use npu_toolchain::zoo;
    let (model, arch) = if zoo::ARCHITECTURES.iter().any(|(n, _)| *n == spec) {
        (zoo::build(spec, config.seed)?, spec.to_string())
    } else {
        let m = load::model(Path::new(spec))?;
        let name = m.name.clone();
        (m, name)
    };
    let (train_set, origin) = load::train_set(data)?;
    let train_set = match limit {
        Some(n) => train_set.take(n),
        None => train_set,
    };
    let (test_set, _) = load::dataset(data)?;
    let command = std::iter::once("npu".to_string()).chain(std::env::args().skip(1)).collect::<Vec<_>>().join(" ");
    writeln!(
        out,
        "training {arch} on {} images of {origin} for {} epochs (seed {}, batch {}, {:?}, lr {}, {:?})",
        train_set.len(),
        config.epochs,
        config.seed,
        config.batch,
        config.optimizer,
        config.lr,
        config.schedule
    )?;
    let mut trainer = npu_toolchain::train::Trainer::new(model, config.clone(), train_set.len())?;
    if let Some(s) = &quantized {
        writeln!(out, "with quantized operators: weights on the `{}` grid in every forward pass", s.name)?;
        trainer = trainer.with_fake_quant(npu_toolchain::quant::qat::weight_fake_quant(s));
    }
    // What is evaluated and saved: the weights as the forward pass used them.
    let deployed = |t: &npu_toolchain::train::Trainer| match &quantized {
        Some(s) => npu_toolchain::Model {
            graph: npu_toolchain::quant::qat::quantized_weights(&t.model.graph, s),
            ..t.model.clone()
        },
        None => t.model.clone(),
    };
    for epoch in 1..=config.epochs {
        let stats = epoch_with_progress(&mut trainer, &train_set, epoch, config.epochs, quiet)?;
        let model_now = deployed(&trainer);
        let (acc, _) = model_now.evaluate(&test_set, test_set.len(), &mut |_| {})?;
        writeln!(
            out,
            "epoch {epoch}: loss {:.4}, train acc {:.2}%, test top-1 {:.2}%, {:.0} images/s",
            stats.loss,
            stats.accuracy * 100.0,
            acc.top1() * 100.0,
            stats.images_per_second
        )?;
        let record = npu_toolchain::modelfile::TrainRecord {
            arch: arch.clone(),
            config: format!("{:?}", config),
            epochs: epoch,
            test_accuracy: Some(acc.top1()),
            command: command.clone(),
        };
        write_file(output, &npu_toolchain::modelfile::encode(&model_now, Some(&record))?)?;
    }
    writeln!(out, "wrote {}", output.display())?;
    Ok(())
}

/// One training epoch with a progress bar (loss and accuracy so far).
fn epoch_with_progress(
    trainer: &mut npu_toolchain::train::Trainer,
    set: &npu_toolchain::data::Dataset,
    epoch: usize,
    epochs: usize,
    quiet: bool,
) -> Result<npu_toolchain::train::EpochStats> {
    let pb = progress_bar(set.len(), quiet, &format!("epoch {epoch}/{epochs}"));
    let stats = trainer.epoch(set, epoch, &mut |p| {
        pb.set_position(p.done as u64);
        pb.set_message(format!("epoch {epoch}/{epochs} loss {:.4} acc {:.2}%", p.loss, p.accuracy * 100.0));
    })?;
    pb.finish_and_clear();
    Ok(stats)
}

#[allow(clippy::too_many_arguments)]
fn quantize(
    model: &Path,
    s: npu_toolchain::quant::Scheme,
    calib: &str,
    method: &str,
    fixes: npu_toolchain::quant::Fixes,
    (data, mean, std): (Option<&Path>, Option<f32>, Option<f32>),
    output: &Path,
    out: &mut dyn Write,
) -> Result<()> {
    use npu_toolchain::quant::{self, calib::Method, RangeSource};
    let mut m = load::model(model)?;
    if let Some(v) = mean {
        m.preprocess.mean = v;
    }
    if let Some(v) = std {
        m.preprocess.std = v;
    }
    m.preprocess.validate()?;
    let names: Vec<&str> = m.graph.nodes.iter().map(|n| n.name.as_str()).collect();
    if let Some((bad, _)) = s.overrides.iter().find(|(n, _)| !names.contains(&n.as_str())) {
        bail!("no layer `{bad}` in {} (see `npu inspect`)", m.name);
    }
    let source = if calib == "none" {
        RangeSource::DataFree
    } else {
        let images: usize =
            calib.parse().with_context(|| format!("--calib {calib}: expected a number of images or `none`"))?;
        if images == 0 {
            bail!("--calib 0: use `--calib none` for data-free ranges");
        }
        let method = match method {
            "percentile" => Method::Percentile(99.99),
            "mse" => Method::Mse,
            "kl" => Method::Kl,
            _ => Method::MinMax,
        };
        RangeSource::Calibration { images, method }
    };
    let (ds, _) = load::train_set(data)?;
    let q = quant::quantize_model_with(&m, &s, &ds, source, fixes)?;
    let report = npu_toolchain::quant::report::layers(&q, &m, &ds, 200)?;
    let mut how =
        if calib == "none" { "data-free".to_string() } else { format!("{calib} calibration images, {method}") };
    if fixes.cle {
        how.push_str(", cross-layer equalization");
    }
    if let Some(b) = fixes.bias_correction {
        how.push_str(&format!(", {b:?} bias correction").to_lowercase());
    }
    writeln!(out, "{} quantized with {} ({how})", m.name, s.name)?;
    write!(out, "{}", npu_toolchain::quant::report::render(&report))?;
    write_file(output, &npu_toolchain::modelfile::encode_quantized(&q)?)?;
    writeln!(out, "wrote {}", output.display())?;
    Ok(())
}

fn infer(model: &Path, input: &Path, output: &Path, engine: &str, out: &mut dyn Write) -> Result<()> {
    use npu_toolchain::npy;
    let bytes = std::fs::read(input).with_context(|| format!("cannot read {}", input.display()))?;
    let x = npy::parse(&bytes, &input.display().to_string())?;
    let n =
        *x.shape.first().ok_or_else(|| anyhow::anyhow!("{}: a 0-dimensional array has no batch", input.display()))?;
    let data = x.to_f32();
    let is_q = load::is_quantized(model)?;
    let (shape, values, dtype): (Vec<usize>, Vec<f64>, npy::Dtype) = if is_q {
        let q = load::quantized(model)?;
        let per: usize = q.values[0].shape.iter().product();
        if data.len() != n * per {
            bail!("{}: shape {:?} does not hold {n} samples of {:?}", input.display(), x.shape, q.values[0].shape);
        }
        let oshape = q.values[q.output].shape.clone();
        match engine {
            "int" => {
                let r = q.run_int(&q.quantize_input(&data), n)?;
                (oshape, r.iter().map(|v| f64::from(*v)).collect(), npy::Dtype::I32)
            }
            "fake-quant" => (oshape, q.run_fake(&data, n)?.iter().map(|v| f64::from(*v)).collect(), npy::Dtype::F32),
            _ => {
                let r = npu_toolchain::fp32::run(&q.graph, &[&data], n)?.swap_remove(0);
                (oshape, r.iter().map(|v| f64::from(*v)).collect(), npy::Dtype::F32)
            }
        }
    } else {
        if engine != "fp32" {
            bail!("--engine {engine} needs a quantized model (.npuq, int8 .tflite); `npu quantize` makes one");
        }
        let m = load::model(model)?;
        let per = m.input_len();
        if data.len() != n * per {
            bail!("{}: shape {:?} does not hold {n} samples of {per} values", input.display(), x.shape);
        }
        let r = npu_toolchain::fp32::run(&m.graph, &[&data], n)?.swap_remove(0);
        (m.graph.values[m.graph.outputs[0]].shape.clone(), r.iter().map(|v| f64::from(*v)).collect(), npy::Dtype::F32)
    };
    let full: Vec<usize> = std::iter::once(n).chain(shape).collect();
    write_file(output, &npy::write(&full, dtype, &values))?;
    writeln!(out, "{} samples through {} ({engine}) -> {} {:?}", n, model.display(), output.display(), full)?;
    Ok(())
}

/// The scheme a command uses when none is given: an int8 .tflite's own, else per-channel INT8.
fn default_scheme(model: &Path, scheme: Option<&str>) -> Result<String> {
    Ok(match scheme {
        Some(s) => s.to_string(),
        None if load::is_tflite(model) && load::is_quantized(model)? => npu_toolchain::tflite::AS_SHIPPED.into(),
        None => "int8-per-channel".into(),
    })
}

/// A quantized model: read from a .npuq, an int8 .tflite as shipped (the default for
/// one), or any other model quantized with `scheme`.
fn quantized_or_quantize(model: &Path, scheme: Option<&str>) -> Result<npu_toolchain::quant::QModel> {
    let scheme = default_scheme(model, scheme)?;
    if model.extension().is_some_and(|e| e == "npuq") || scheme == npu_toolchain::tflite::AS_SHIPPED {
        if scheme == npu_toolchain::tflite::AS_SHIPPED && !load::is_tflite(model) {
            bail!("--scheme {scheme} takes the quantization of an int8 .tflite model; {} is not one", model.display());
        }
        return load::quantized(model);
    }
    let scheme = scheme.as_str();
    let m = load::model(model)?;
    let (train, _) = load::train_set(None)?;
    // A model that does not take the data set's images (a full-size benchmark) is
    // quantized without data, from its BatchNorm statistics.
    let source = if m.check_images(&train).is_ok() {
        npu_toolchain::quant::RangeSource::Calibration {
            images: 500,
            method: npu_toolchain::quant::calib::Method::MinMax,
        }
    } else {
        tracing::info!("{}: inputs are not the data set's images; quantizing without data", m.name);
        npu_toolchain::quant::RangeSource::DataFree
    };
    Ok(npu_toolchain::quant::quantize_model(&m, &npu_toolchain::quant::Scheme::named(scheme)?, &train, source)?)
}

fn compile(model: &Path, scheme: Option<&str>, hw: &str, dir: &Path, out: &mut dyn Write) -> Result<()> {
    let q = quantized_or_quantize(model, scheme)?;
    let hwc = load::hardware(hw)?;
    let c = npu_toolchain::compile::compile(&q, &hwc)?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    write_file(&dir.join("program.bin"), &c.program.to_bytes()?)?;
    write_file(&dir.join("program.s"), c.listing().as_bytes())?;
    let dram = c.program.data.first().map(|s| s.bytes.clone()).unwrap_or_default();
    write_file(&dir.join("dram.bin"), &dram)?;
    write_file(&dir.join("model.npuq"), &npu_toolchain::modelfile::encode_quantized(&q)?)?;
    write_file(&dir.join("hw.ron"), hwc.to_ron().as_bytes())?;
    let io = format!(
        "input sram {:#x} {} bytes (HWC)\noutput sram {:#x} {} bytes\n",
        c.input.addr, c.input.len, c.output.addr, c.output.len
    );
    write_file(&dir.join("io.txt"), io.as_bytes())?;
    writeln!(
        out,
        "{} ({}) for {}: {} instructions, {} bytes off-chip, {} layers -> {}",
        q.name,
        q.scheme.name,
        hwc.name,
        c.program.code.len(),
        dram.len(),
        c.layers.len(),
        dir.display()
    )?;
    write!(out, "{}", weight_coding_table(&c, &hwc))?;
    Ok(())
}

/// Per layer: weight values, packed and stored bytes, the ratio and the encodings.
fn weight_coding_table(c: &npu_toolchain::compile::Compiled, hw: &npu_hw::HwConfig) -> String {
    let mut s = format!(
        "\nweights ({}):\n{:<28} {:>9} {:>10} {:>10} {:>7}  encodings\n",
        if hw.has_decompressor() {
            format!("smallest encoding per block; decompressor {} B/cycle", hw.dma.decompress_bytes_per_cycle)
        } else {
            "packed; the hardware has no decompressor".to_string()
        },
        "layer",
        "values",
        "packed B",
        "stored B",
        "ratio"
    );
    let (mut p, mut st) = (0, 0);
    for l in &c.coding {
        s.push_str(&format!(
            "{:<28} {:>9} {:>10} {:>10} {:>6.3}  {}\n",
            l.layer,
            l.values,
            l.packed_bytes,
            l.stored_bytes,
            l.stored_bytes as f64 / l.packed_bytes.max(1) as f64,
            l.encodings.join(", ")
        ));
        p += l.packed_bytes;
        st += l.stored_bytes;
    }
    s.push_str(&format!("{:<28} {:>9} {:>10} {:>10} {:>6.3}\n", "total", "", p, st, st as f64 / p.max(1) as f64));
    s
}

/// Options of `npu simulate`.
struct SimArgs {
    scheme: Option<String>,
    input: Option<PathBuf>,
    output: Option<PathBuf>,
    data: Option<PathBuf>,
    limit: usize,
    timing_only: bool,
    json: bool,
    trace: Option<PathBuf>,
    quiet: bool,
}

fn simulate(model: &Path, hw: &str, a: SimArgs, out: &mut dyn Write) -> Result<()> {
    let (q, hwc) = if model.is_dir() {
        let q = load::quantized(&model.join("model.npuq"))?;
        (q, load::hardware(&model.join("hw.ron").display().to_string())?)
    } else {
        (quantized_or_quantize(model, a.scheme.as_deref())?, load::hardware(hw)?)
    };
    let c = npu_toolchain::compile::compile(&q, &hwc)?;
    let run = |p: &npu_isa::Program, trace: bool, timing_only: bool| -> Result<npu_sim::Outcome> {
        let o = npu_sim::run(p, &hwc, &npu_sim::RunOptions { timing_only, trace, ..Default::default() })?;
        if let Some(t) = &o.trap {
            bail!("{}: {t}", model.display());
        }
        Ok(o)
    };
    let out_shape = q.values[q.output].shape.clone();
    let read_out = |o: &npu_sim::Outcome| -> Vec<i32> {
        let b = o.machine.read(npu_isa::Space::Sram, u64::from(c.output.addr), u64::from(c.output.len)).unwrap_or(&[]);
        npu_toolchain::compile::from_hwc_bytes(b, &out_shape, q.values[q.output].q.dtype)
    };
    // Inputs: a .npy batch, or test images.
    let (inputs, labels, origin): (Vec<f32>, Option<Vec<u8>>, String) = match &a.input {
        Some(p) => {
            let bytes = std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?;
            let arr = npu_toolchain::npy::parse(&bytes, &p.display().to_string())?;
            (arr.to_f32(), None, p.display().to_string())
        }
        None if a.timing_only && q.values[0].shape.iter().product::<usize>() != 28 * 28 => {
            // Timing does not depend on the data: one zero image of the model's shape.
            (vec![0.0; q.values[0].shape.iter().product()], None, "a zero input (timing only)".to_string())
        }
        None => {
            let (ds, origin) = load::dataset(a.data.as_deref())?;
            let ds = ds.take(if a.timing_only { 1 } else { a.limit.max(1) });
            (q.preprocess.apply(&ds.pixels), Some(ds.labels.clone()), origin)
        }
    };
    let per_in: usize = q.values[0].shape.iter().product();
    if inputs.len() % per_in != 0 || inputs.is_empty() {
        bail!("the input holds {} values, not a whole number of samples of {per_in}", inputs.len());
    }
    let n = inputs.len() / per_in;
    let qin = q.quantize_input(&inputs);
    // Timing does not depend on the data: the first image gives the report and trace.
    let first = run(&c.with_input(&q, &qin[..per_in]), true, a.timing_only)?;
    let layers = npu_sim::regions(&c.program, &hwc, &first.trace, &c.layers, &c.owner);
    let roof = npu_toolchain::compile::roofline(&q, &hwc);
    if let Some(path) = &a.trace {
        write_file(path, npu_sim::chrome_trace(&first.trace, &hwc).as_bytes())?;
    }
    let mut outputs: Vec<i32> = Vec::new();
    let mut correct = None;
    if !a.timing_only {
        let pb = progress_bar(n, a.quiet || a.json, "simulating");
        outputs.extend(read_out(&first));
        // The other images replay the first run's functional order (timing is the same),
        // in contiguous chunks over all cores, one reused machine per chunk; outputs keep
        // the image order.
        let replay = npu_sim::Replay::new(&c.program, &first.trace);
        let done = std::sync::atomic::AtomicUsize::new(1);
        let chunk = (n - 1).div_ceil(32).max(1);
        let parts: Vec<Result<Vec<i32>>> = {
            use rayon::prelude::*;
            (0..(n - 1).div_ceil(chunk))
                .into_par_iter()
                .map(|k| {
                    let mut m = replay.machine(&hwc)?;
                    let mut part = Vec::new();
                    for i in 1 + k * chunk..(1 + (k + 1) * chunk).min(n) {
                        let seg = c.input_segment(&q, &qin[i * per_in..(i + 1) * per_in]);
                        if let Some(t) = replay.run(&mut m, &[seg])? {
                            bail!("{}: image {i}: {t}", model.display());
                        }
                        let b = m
                            .read(npu_isa::Space::Sram, u64::from(c.output.addr), u64::from(c.output.len))
                            .context("output outside SRAM")?;
                        part.extend(npu_toolchain::compile::from_hwc_bytes(b, &out_shape, q.values[q.output].q.dtype));
                        let d = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                        if d.is_multiple_of(32) || d == n {
                            pb.set_position(d as u64);
                        }
                    }
                    Ok(part)
                })
                .collect()
        };
        for p in parts {
            outputs.extend(p?);
        }
        pb.finish_and_clear();
        if let Some(l) = &labels {
            let per = outputs.len() / n;
            let ok = outputs
                .chunks(per)
                .zip(l)
                .filter(|(r, lab)| {
                    r.iter().enumerate().fold((0, i32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b }).0
                        == usize::from(**lab)
                })
                .count();
            correct = Some(ok);
        }
    }
    if let Some(p) = &a.output {
        let shape: Vec<usize> = std::iter::once(n).chain(out_shape.iter().copied()).collect();
        let vals: Vec<f64> = outputs.iter().map(|v| f64::from(*v)).collect();
        write_file(p, &npu_toolchain::npy::write(&shape, npu_toolchain::npy::Dtype::I32, &vals))?;
    }
    if a.json {
        let v = serde_json::json!({
            "model": q.name, "scheme": q.scheme.name, "hw": hwc.name, "images": n,
            "top1": correct.map(|c| c as f64 / n as f64), "report": first.report, "layers": layers,
            "roofline": {
                "macs": roof.macs, "compute_cycles": roof.compute_cycles, "offchip_bytes": roof.offchip_bytes,
                "offchip_cycles": roof.offchip_cycles, "sram_bytes": roof.sram_bytes, "sram_cycles": roof.sram_cycles,
                "floor": roof.floor(), "bound": roof.bound(),
                "ratio": first.report.total_cycles as f64 / roof.floor().max(1.0),
            },
            "memory": {
                "resident_bytes": c.memory.resident_bytes, "staging_bytes": c.memory.staging.1,
                "sram_bytes": c.memory.sram_bytes,
            },
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(());
    }
    writeln!(out, "{} ({}) on {}", q.name, q.scheme.name, hwc.name)?;
    write!(out, "{}", first.report.render())?;
    writeln!(
        out,
        "\nroofline floor {:.0} cycles ({}: {:.0} compute, {:.0} off-chip for {} bytes, {:.0} SRAM I/O); simulated / floor = {:.3}",
        roof.floor(),
        roof.bound(),
        roof.compute_cycles,
        roof.offchip_cycles,
        roof.offchip_bytes,
        roof.sram_cycles,
        first.report.total_cycles as f64 / roof.floor().max(1.0)
    )?;
    let resident = c.memory.homes.iter().filter(|h| matches!(h, npu_toolchain::compile::Home::Act(_))).count();
    writeln!(
        out,
        "activations: {resident} of {} values resident in the activation buffer ({} bytes at peak, {} left for staging), {} bytes of system SRAM at peak",
        c.memory.homes.len(),
        c.memory.resident_bytes,
        c.memory.staging.1,
        c.memory.sram_bytes
    )?;
    writeln!(
        out,
        "\n{:<28} {:>10} {:>6} {:>10} {:>7} {:<10} {:>10} {:>10} {:>12}",
        "layer", "cycles", "share", "span", "MAC", "bound", "DRAM B", "SRAM B", "energy pJ"
    )?;
    let total = first.report.total_cycles.max(1) as f64;
    for r in &layers {
        let rep = &r.report;
        let busiest = rep.units.iter().max_by_key(|u| u.busy_cycles).map_or("—", |u| u.unit);
        let bound = match busiest {
            "mac" => "compute",
            "ld" | "st" => {
                let d = rep.memory.iter().find(|m| m.space == "dram").map_or(0, |m| m.read_bytes + m.written_bytes);
                let s = rep.memory.iter().find(|m| m.space == "sram").map_or(0, |m| m.read_bytes + m.written_bytes);
                if d as f64 / hwc.memories.dram.bytes_per_cycle >= s as f64 / hwc.memories.sram.bytes_per_cycle {
                    "off-chip"
                } else {
                    "sram"
                }
            }
            "rq" => "requant",
            "vec" => "vector",
            other => other,
        };
        let mem = |sp: &str| rep.memory.iter().find(|m| m.space == sp).map_or(0, |m| m.read_bytes + m.written_bytes);
        writeln!(
            out,
            "{:<28} {:>10} {:>5.1}% {:>10} {:>6.1}% {:<10} {:>10} {:>10} {:>12.1}",
            r.name,
            r.attributed,
            r.attributed as f64 / total * 100.0,
            rep.total_cycles,
            rep.macs.utilization * 100.0,
            bound,
            mem("dram"),
            mem("sram"),
            rep.energy.total_pj
        )?;
    }
    match correct {
        Some(ok) => writeln!(
            out,
            "\ntop-1 {:.2}% ({ok}/{n}) on {origin}, from the simulator's outputs",
            ok as f64 / n as f64 * 100.0
        )?,
        None if a.timing_only => writeln!(out, "\ntiming only: no outputs computed")?,
        None => writeln!(out, "\n{n} inputs from {origin} simulated")?,
    }
    Ok(())
}

/// A named scheme, or the RON recipe at `recipe`.
fn scheme_from(name: &str, recipe: Option<&Path>) -> Result<npu_toolchain::quant::Scheme> {
    match recipe {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            ron::from_str::<npu_toolchain::quant::Scheme>(&text)
                .map_err(|e| anyhow::anyhow!("{}: not a valid recipe: {e}", path.display()))
        }
        None => Ok(npu_toolchain::quant::Scheme::named(name)?),
    }
}

#[allow(clippy::too_many_arguments)]
fn qat(
    spec: &str,
    scheme: npu_toolchain::quant::Scheme,
    data: Option<&Path>,
    config: npu_toolchain::train::TrainConfig,
    (calib, recalibrate): (usize, bool),
    limit: Option<usize>,
    output: &Path,
    quiet: bool,
    out: &mut dyn Write,
) -> Result<()> {
    use npu_toolchain::quant::qat;
    let m = load::model(Path::new(spec))?;
    let (train_set, origin) = load::train_set(data)?;
    let train_set = match limit {
        Some(n) => train_set.take(n),
        None => train_set,
    };
    let (test_set, _) = load::dataset(data)?;
    let mut prepared = qat::prepare(&m, &scheme, &train_set, calib)?;
    let before = qat::finish(&prepared, &prepared.model, &scheme)?;
    let (acc0, _) = before.evaluate_int(&test_set, test_set.len(), &mut |_| {})?;
    writeln!(
        out,
        "QAT of {} under {} on {} images of {origin} for {} epochs (batch {}, lr {}); before: test top-1 {:.2}% (integer)",
        m.name,
        scheme.name,
        train_set.len(),
        config.epochs,
        config.batch,
        config.lr,
        acc0.top1() * 100.0
    )?;
    let mut trainer = npu_toolchain::train::Trainer::new(prepared.model.clone(), config.clone(), train_set.len())?
        .with_fake_quant(qat::fake_quant(&prepared, &scheme));
    for epoch in 1..=config.epochs {
        let stats = epoch_with_progress(&mut trainer, &train_set, epoch, config.epochs, quiet)?;
        if recalibrate {
            qat::recalibrate(&mut prepared, &trainer.model, &scheme, &train_set, calib)?;
            trainer.set_fake_quant(qat::fake_quant(&prepared, &scheme));
        }
        let q = qat::finish(&prepared, &trainer.model, &scheme)?;
        let (acc, _) = q.evaluate_int(&test_set, test_set.len(), &mut |_| {})?;
        write_file(output, &npu_toolchain::modelfile::encode_quantized(&q)?)?;
        writeln!(
            out,
            "epoch {epoch}: loss {:.4}, train acc {:.2}% (fake-quant), test top-1 {:.2}% (integer executor), {:.0} images/s -> {}",
            stats.loss,
            stats.accuracy * 100.0,
            acc.top1() * 100.0,
            stats.images_per_second,
            output.display()
        )?;
    }
    Ok(())
}

fn mixed_cmd(o: &mixed::Options, limit: Option<usize>, output: &Path, quiet: bool, out: &mut dyn Write) -> Result<()> {
    let found = mixed::search(o, &mut |m| {
        if !quiet {
            eprintln!("{m}");
        }
    })?;
    let cost = if o.energy { "µJ/frame" } else { "cycles" };
    writeln!(out, "sensitivity on {} validation images (points lost, {cost} saved, one layer alone):", o.val_images)?;
    for (layer, bits, drop, saved) in &found.sensitivity {
        writeln!(
            out,
            "  {layer:<28} {:>2} bits  {drop:+6.2}  {saved:>12.1}",
            match bits {
                npu_toolchain::quant::WeightBits::B8 => 8,
                npu_toolchain::quant::WeightBits::B4 => 4,
                npu_toolchain::quant::WeightBits::Ternary => 2,
                npu_toolchain::quant::WeightBits::Binary => 1,
            }
        )?;
    }
    writeln!(
        out,
        "Pareto front of the {} assignments evaluated (bits per weighted layer, in order):",
        found.explored.len()
    )?;
    for p in mixed::pareto(&found.explored, o.energy) {
        writeln!(
            out,
            "  {:.2}%  {:>10} cycles  {:>8.2} µJ  [{}]",
            p.accuracy,
            p.cycles,
            p.energy_uj,
            mixed::describe(&p)
        )?;
    }
    writeln!(
        out,
        "best within {:.2} points: [{}] {:.2}% vs {:.2}% all-INT8, {} vs {} cycles, {:.2} vs {:.2} µJ",
        o.max_drop,
        mixed::describe(&found.best),
        found.best.accuracy,
        found.baseline.accuracy,
        found.best.cycles,
        found.baseline.cycles,
        found.best.energy_uj,
        found.baseline.energy_uj
    )?;
    let text = ron::ser::to_string_pretty(&found.recipe, ron::ser::PrettyConfig::default())?;
    write_file(
        output,
        format!("// npu mixed {} --hw {} --max-drop {}\n{text}\n", o.model, o.hw, o.max_drop).as_bytes(),
    )?;
    writeln!(out, "wrote {}\n", output.display())?;
    // Its compare row, on the test set, beside all-INT8.
    let jobs = std::thread::available_parallelism().map_or(1, usize::from);
    let label =
        format!("mixed precision ({})", output.file_name().map_or(String::new(), |f| f.to_string_lossy().into()));
    let key = output.file_stem().map_or("mixed".into(), |s| s.to_string_lossy().into_owned());
    let copts = compare::Options {
        model: o.model.clone(),
        data: None,
        hw: o.hw.clone(),
        schemes: vec!["fp32".into(), "int8-per-channel".into()],
        limit,
        jobs,
        calib: o.calib,
        quiet,
        extra: vec![compare::Extra::Recipe { key, label, scheme: found.recipe.clone() }],
    };
    write!(out, "{}", compare::compare(&copts)?.table())?;
    Ok(())
}

fn compare_cmd(opts: &compare::Options, dir: Option<&Path>, out: &mut dyn Write) -> Result<()> {
    let c = compare::compare(opts)?;
    write!(out, "{}", c.table())?;
    for r in &c.rows {
        if let Some(h) = &r.hw {
            writeln!(
                out,
                "{}: {} images through the simulator in {:.2} s ({:.0} images/s, {} threads); {:.3}× the roofline floor",
                r.key,
                r.images,
                h.host_seconds,
                r.images as f64 / h.host_seconds.max(1e-9),
                opts.jobs,
                h.roofline_ratio
            )?;
        }
    }
    let Some(dir) = dir else { return Ok(()) };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    write_file(&dir.join("compare.md"), c.markdown().as_bytes())?;
    write_file(&dir.join("compare.csv"), c.csv().as_bytes())?;
    write_file(&dir.join("compare.json"), serde_json::to_string_pretty(&c)?.as_bytes())?;
    let mut written = vec!["compare.md", "compare.csv", "compare.json"];
    if c.rows.iter().any(|r| r.hw.is_some()) {
        write_file(&dir.join("accuracy_vs_fps.svg"), compare::plot(&c, compare::Axis::Fps)?.as_bytes())?;
        write_file(&dir.join("accuracy_vs_energy.svg"), compare::plot(&c, compare::Axis::Energy)?.as_bytes())?;
        written.extend(["accuracy_vs_fps.svg", "accuracy_vs_energy.svg"]);
    }
    writeln!(out, "wrote {} in {}", written.join(", "), dir.display())?;
    Ok(())
}

fn zoo(out: &mut dyn Write) -> Result<()> {
    writeln!(out, "{:<20} {:>10} {:>12} {:>9}  architecture", "model", "params", "MACs/image", "top-1")?;
    for (name, desc) in npu_toolchain::zoo::ARCHITECTURES {
        let m = npu_toolchain::zoo::trained(name)?;
        let layers = m.layers();
        let params: u64 = layers.iter().map(|l| l.params).sum();
        let macs: u64 = layers.iter().map(|l| l.macs).sum();
        let acc = npu_toolchain::zoo::record(name)?.and_then(|r| r.test_accuracy);
        let acc = acc.map_or("—".to_string(), |a| format!("{:.2}%", a * 100.0));
        writeln!(out, "{:<20} {params:>10} {macs:>12} {acc:>9}  {desc}", format!("zoo:{name}"))?;
    }
    for (name, desc) in npu_toolchain::zoo::BENCHMARKS {
        let m = npu_toolchain::zoo::trained(name)?;
        let layers = m.layers();
        let params: u64 = layers.iter().map(|l| l.params).sum();
        let macs: u64 = layers.iter().map(|l| l.macs).sum();
        writeln!(out, "{:<20} {params:>10} {macs:>12} {:>9}  {desc}", format!("zoo:{name}"), "random")?;
    }
    Ok(())
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}
