//! `npu-fuzz`: long fuzzing passes over every input kind, from the repository's seed
//! files; findings are saved to reproduce (`--save DIR`) and reported, and the exit
//! status is 1 when there are any.
//!
//! ```text
//! cargo run --release -p npu-fuzz -- --minutes 10               # every target, 10 min each
//! cargo run --release -p npu-fuzz -- --target onnx-graph --cases 100000 --seed 7
//! cargo run --release -p npu-fuzz -- --replay onnx-graph finding.onnx
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;
use npu_fuzz::{Budget, Corpus, Target};

#[derive(Parser)]
#[command(name = "npu-fuzz", about = "Fuzz every input npu reads; report panics and slow cases")]
struct Args {
    /// Targets (repeatable): onnx-graph, onnx-bytes, tflite, npuq, npum, asm, program, hw-ron, npy; default all.
    #[arg(long)]
    target: Vec<String>,
    /// Minutes per target.
    #[arg(long, default_value_t = 1.0)]
    minutes: f64,
    /// At most this many cases per target.
    #[arg(long, default_value_t = u64::MAX)]
    cases: u64,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Seconds after which a case is reported as slow.
    #[arg(long, default_value_t = 5.0)]
    slow: f64,
    /// Save findings' inputs here.
    #[arg(long)]
    save: Option<PathBuf>,
    /// Repository root (where the seed files are).
    #[arg(long, default_value = ".")]
    root: PathBuf,
    /// Diagnostics on stderr (`debug` names every case before it runs).
    #[arg(long, default_value = "error")]
    log: String,
    /// Write case N of the run (with --seed and one --target) to FILE instead of running.
    #[arg(long, num_args = 2, value_names = ["N", "FILE"])]
    dump: Option<Vec<String>>,
    /// Run one saved input: TARGET FILE.
    #[arg(long, num_args = 2, value_names = ["TARGET", "FILE"])]
    replay: Option<Vec<String>>,
}

fn files(dir: &Path, ext: &str) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    Ok(v)
}

fn corpus(root: &Path) -> Result<Corpus> {
    let read = |ps: Vec<PathBuf>| -> Result<Vec<Vec<u8>>> {
        ps.iter().map(|p| std::fs::read(p).with_context(|| format!("reading {}", p.display()))).collect()
    };
    let fx = root.join("tests/fixtures");
    let mut onnx = files(&fx.join("onnx"), "onnx")?;
    onnx.retain(|p| std::fs::metadata(p).is_ok_and(|m| m.len() < 2 << 20));
    Ok(Corpus {
        onnx: read(onnx)?,
        tflite: read(files(&fx.join("tflite"), "tflite")?)?,
        npuq: read(files(&root.join("toolchain/zoo/models"), "npuq")?)?,
        npum: read(files(&root.join("toolchain/zoo/models"), "npum")?)?,
        asm: files(&root.join("programs"), "s")?
            .iter()
            .map(|p| std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display())))
            .collect::<Result<_>>()?,
        npy: read(files(&fx.join("tflite"), "npy")?.into_iter().take(8).collect())?,
    })
}

fn main() -> Result<()> {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log).context("--log")?;
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    if let Some(r) = &args.replay {
        let target = Target::from_name(&r[0]).with_context(|| format!("unknown target `{}`", r[0]))?;
        let input = std::fs::read(&r[1]).with_context(|| format!("reading {}", r[1]))?;
        match npu_fuzz::replay(target, &input) {
            Ok(accepted) => println!("{}: {}", r[1], if accepted { "accepted, ran" } else { "refused" }),
            Err(m) => bail!("{}: panicked: {m}", r[1]),
        }
        return Ok(());
    }
    if !(args.minutes > 0.0 && args.minutes.is_finite() && args.slow > 0.0 && args.slow.is_finite()) {
        bail!("--minutes and --slow must be positive numbers");
    }
    let targets: Vec<Target> = if args.target.is_empty() {
        Target::ALL.to_vec()
    } else {
        args.target
            .iter()
            .map(|t| Target::from_name(t).with_context(|| format!("unknown target `{t}`")))
            .collect::<Result<_>>()?
    };
    let corpus = corpus(&args.root)?;
    if let Some(d) = &args.dump {
        let case: u64 = d[0].parse().with_context(|| format!("--dump: case `{}`", d[0]))?;
        let [t] = targets[..] else { bail!("--dump needs one --target") };
        std::fs::write(&d[1], npu_fuzz::input(t, &corpus, args.seed, case))
            .with_context(|| format!("writing {}", d[1]))?;
        return Ok(());
    }
    let budget = Budget {
        cases: args.cases,
        time: Duration::from_secs_f64(args.minutes * 60.0),
        slow: Duration::from_secs_f64(args.slow),
    };
    let mut total = 0;
    for t in targets {
        let s = npu_fuzz::fuzz(t, &corpus, args.seed, budget);
        println!(
            "{:<11} {:>9} executions ({:>7.0}/s), {:>8} accepted, {} findings",
            t.name(),
            s.executions,
            s.executions as f64 / s.seconds.max(1e-9),
            s.accepted,
            s.findings.len()
        );
        for f in &s.findings {
            println!("  case {}: {}", f.case, f.message);
            if let Some(dir) = &args.save {
                std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
                let path = dir.join(format!("{}-{}-{}.{}", t.name(), args.seed, f.case, t.extension()));
                std::fs::write(&path, &f.input).with_context(|| format!("writing {}", path.display()))?;
                println!("    saved {}", path.display());
            }
        }
        total += s.findings.len();
    }
    if total > 0 {
        std::process::exit(1);
    }
    Ok(())
}
