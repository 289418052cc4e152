//! `npu-fuzz`: long fuzzing passes over every input kind, from the repository's seed
//! files; findings are saved to reproduce (`--save DIR`) and reported, and the exit
//! status is 1 when there are any.
//!
//! ```text
//! cargo run --release -p npu-fuzz -- --minutes 10               # every target, 10 min each
//! cargo run --release -p npu-fuzz -- --target onnx-graph --cases 100000 --seed 7
//! cargo run --release -p npu-fuzz -- --replay onnx-graph finding.onnx
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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
    /// Seconds after which a running case is a hang: the run stops, naming the case and
    /// the `--dump` command that writes it.
    #[arg(long, default_value_t = 300.0)]
    hang: f64,
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
    /// Heap budget in GiB (beyond the seed files): an allocation that takes the live heap
    /// past it stops the run,
    /// naming the case (a case that would exhaust memory is a finding, not a killed
    /// process).
    #[arg(long, default_value_t = 4.0)]
    memory: f64,
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

fn subdirectories(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    Ok(v)
}

fn text(ps: Vec<PathBuf>) -> Result<Vec<String>> {
    ps.iter().map(|p| std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))).collect()
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
        asm: text(files(&root.join("programs"), "s")?)?,
        npy: read(files(&fx.join("tflite"), "npy")?.into_iter().take(8).collect())?,
        npz: read(files(&fx.join("data"), "npz")?)?,
        recipes: npu_fuzz::scheme_seeds().into_iter().chain(text(files(&root.join("docs/recipes"), "ron")?)?).collect(),
        plans: text(files(&root.join("docs/sweep"), "ron")?)?,
        specs: text(files(&fx.join("data"), "ron")?)?,
        images: read(
            subdirectories(&fx.join("data/folder"))?
                .iter()
                .map(|class| files(class, "png"))
                .collect::<Result<Vec<_>>>()?
                .concat(),
        )?,
    })
}

/// The system allocator, counting live bytes against a budget: past it, the case being
/// run is named on stderr (without allocating) and the process aborts.
struct Budgeted;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);
/// The target's index in `Target::ALL` and the seed, for the message.
static RUNNING: AtomicU64 = AtomicU64::new(0);
static SEED: AtomicU64 = AtomicU64::new(0);

fn charge(add: usize) {
    let live = LIVE.fetch_add(add, Ordering::Relaxed) + add;
    let limit = LIMIT.load(Ordering::Relaxed);
    if live > limit {
        LIMIT.store(usize::MAX, Ordering::Relaxed);
        over_budget(add, live, limit);
    }
}

/// Writes the finding without allocating, then aborts.
fn over_budget(asked: usize, live: usize, limit: usize) -> ! {
    let mut buf = [0u8; 512];
    let mut w = std::io::Cursor::new(&mut buf[..]);
    let target = Target::ALL.get(RUNNING.load(Ordering::Relaxed) as usize).map_or("?", |t| t.name());
    let seed = SEED.load(Ordering::Relaxed);
    let _ = match npu_fuzz::current_case() {
        Some(case) => writeln!(
            w,
            "npu-fuzz: {target} case {case} asked for {asked} bytes with {live} live, over the --memory budget of \
             {limit} bytes; write it with `--target {target} --seed {seed} --dump {case} FILE`"
        ),
        None => writeln!(w, "npu-fuzz: {asked} bytes with {live} live, over the --memory budget of {limit} bytes"),
    };
    let n = w.position() as usize;
    let _ = std::io::stderr().write_all(&buf[..n]);
    std::process::abort()
}

/// Stops the process once a case has run longer than `hang`, naming it (the fuzzing loop
/// cannot interrupt a case; a hang would otherwise be a run that never ends).
fn watchdog(hang: Duration) {
    let mut watch = npu_fuzz::Watch::new(hang);
    let step = Duration::from_millis(200).min(hang);
    loop {
        std::thread::sleep(step);
        let running = npu_fuzz::current_case().map(|c| (RUNNING.load(Ordering::Relaxed), c));
        if let Some((t, case)) = watch.tick(running, std::time::Instant::now()) {
            let target = Target::ALL.get(t as usize).map_or("?", |t| t.name());
            let seed = SEED.load(Ordering::Relaxed);
            eprintln!(
                "npu-fuzz: {target} case {case} has run for more than {} s, over the --hang budget: a hang; \
                 write it with `--target {target} --seed {seed} --dump {case} FILE`",
                hang.as_secs_f64()
            );
            std::process::exit(3);
        }
    }
}

// SAFETY: every call is forwarded to the system allocator unchanged; only a counter is
// kept beside it.
unsafe impl GlobalAlloc for Budgeted {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        charge(layout.size());
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        charge(layout.size());
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() {
            charge(new_size - layout.size());
        } else {
            LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
        }
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Budgeted = Budgeted;

fn main() -> Result<()> {
    let args = Args::parse();
    if !(args.memory > 0.0 && args.memory.is_finite()) {
        bail!("--memory must be a positive number of GiB");
    }
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
    if ![args.minutes, args.slow, args.hang].iter().all(|v| *v > 0.0 && v.is_finite()) {
        bail!("--minutes, --slow and --hang must be positive numbers");
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
    SEED.store(args.seed, Ordering::Relaxed);
    // On top of what is live now (the corpus).
    let budget_bytes = (args.memory * (1u64 << 30) as f64) as usize;
    LIMIT.store(LIVE.load(Ordering::Relaxed).saturating_add(budget_bytes), Ordering::Relaxed);
    let hang = Duration::from_secs_f64(args.hang);
    std::thread::spawn(move || watchdog(hang));
    for t in targets {
        RUNNING.store(Target::ALL.iter().position(|x| *x == t).unwrap_or(0) as u64, Ordering::Relaxed);
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
                if f.message.starts_with("panic:") {
                    // The smallest input that panics the same way: the regression fixture.
                    let min = npu_fuzz::minimise_panic(t, &f.input, 4000);
                    let path = dir.join(format!("{}-{}-{}.min.{}", t.name(), args.seed, f.case, t.extension()));
                    std::fs::write(&path, &min).with_context(|| format!("writing {}", path.display()))?;
                    println!("    minimised to {} of {} bytes: {}", min.len(), f.input.len(), path.display());
                }
            }
        }
        total += s.findings.len();
    }
    if total > 0 {
        std::process::exit(1);
    }
    Ok(())
}
