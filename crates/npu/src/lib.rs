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

mod load;

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
        /// Model: an ONNX file (.onnx).
        model: PathBuf,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Top-1 accuracy of a model's FP32 graph on a labelled image set.
    #[command(after_help = "Examples:\n  npu eval tests/fixtures/onnx/plain_cnn.onnx\n  \
        npu eval model.onnx --data ../shared/datasets/fashion-mnist --limit 1000 --mean 0.5 --std 0.5")]
    Eval {
        /// Model: an ONNX file (.onnx).
        model: PathBuf,
        #[command(flatten)]
        data: DataArgs,
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
        Command::Eval { model, data } => eval(&model, &data, out)?,
        Command::Disasm { program } => {
            let prog = load::read_binary(&program)?;
            write!(out, "{}", npu_isa::disassemble(&prog))?;
        }
    }
    Ok(())
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
    Ok(())
}

fn eval(model: &Path, args: &DataArgs, out: &mut dyn Write) -> Result<()> {
    let mut m = load::model(model)?;
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

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}
