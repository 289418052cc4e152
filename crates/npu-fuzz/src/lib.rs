//! A fuzzer for every input npu reads, on stable Rust and in-process.
//!
//! Each [`Target`] makes inputs — structure-aware (random ONNX graphs of the operators
//! exporters emit, with extreme attributes and constants) or by mutating valid seeds
//! (ONNX and TFLite fixtures, `.npuq` and `.npum` models, assembly, program binaries, hardware
//! descriptions, quantization recipes, sweep plans, data-set descriptions, `.npy` and
//! `.npz` files, images) — and drives the library entry points a user's command
//! would: import → quantize → compile → simulate. An input may be refused with an
//! error; a panic, or a case slower than the budget, is a [`Finding`].
//!
//! ```text
//!   Corpus (seed files) ──► Target::input(rng) ──► bytes ──► exercise(target, bytes)
//!                                                              │ catch_unwind, timed
//!                                                              ▼
//!                                                  Summary { executions, findings }
//! ```
//!
//! `cargo test` runs a short seeded pass of every target (`tests/it/fuzz.rs`); the
//! `npu-fuzz` binary runs long passes (`--minutes N`) and saves findings to reproduce.

#![deny(missing_docs)]

pub mod onnx_gen;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

/// xorshift64*: small, seeded, reproducible.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
    /// Uniform in `[0, 1)`.
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// What is fuzzed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// Generated ONNX graphs, imported, quantized without data, compiled and simulated.
    OnnxGraph,
    /// Mutated ONNX fixture files, the same way.
    OnnxBytes,
    /// Mutated TFLite fixture files.
    Tflite,
    /// Mutated `.npuq` quantized models: decoded, executed, compiled, simulated.
    Npuq,
    /// Mutated `.npum` float models: decoded, then as a generated ONNX graph.
    Npum,
    /// Mutated assembly source: assembled and run.
    Asm,
    /// Mutated program binaries: decoded and run.
    Program,
    /// Mutated hardware descriptions (RON): parsed, validated, a program run on them.
    HwRon,
    /// Mutated `.npy` files.
    Npy,
    /// Mutated `.npz` archives: parsed, split into inputs and labels, made a data set.
    Npz,
    /// Mutated quantization recipes (RON `Scheme`s): parsed, then a small model quantized
    /// with them, compiled and simulated.
    Recipe,
    /// Mutated sweep plans (RON): parsed, expanded, each hardware variant built.
    Plan,
    /// Mutated data-set descriptions (RON): parsed, their preprocessing applied and checked.
    DataSpec,
    /// Mutated images (PNG): decoded as they are and resized and cropped.
    Image,
}

impl Target {
    /// Every target.
    pub const ALL: [Target; 14] = [
        Target::OnnxGraph,
        Target::OnnxBytes,
        Target::Tflite,
        Target::Npuq,
        Target::Npum,
        Target::Asm,
        Target::Program,
        Target::HwRon,
        Target::Npy,
        Target::Npz,
        Target::Recipe,
        Target::Plan,
        Target::DataSpec,
        Target::Image,
    ];

    /// The target's name (`--target`).
    pub fn name(self) -> &'static str {
        match self {
            Target::OnnxGraph => "onnx-graph",
            Target::OnnxBytes => "onnx-bytes",
            Target::Tflite => "tflite",
            Target::Npuq => "npuq",
            Target::Npum => "npum",
            Target::Asm => "asm",
            Target::Program => "program",
            Target::HwRon => "hw-ron",
            Target::Npy => "npy",
            Target::Npz => "npz",
            Target::Recipe => "recipe",
            Target::Plan => "plan",
            Target::DataSpec => "data-spec",
            Target::Image => "image",
        }
    }

    /// The target named `name`.
    pub fn from_name(name: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.name() == name)
    }

    /// File extension of its inputs (for saved findings).
    pub fn extension(self) -> &'static str {
        match self {
            Target::OnnxGraph | Target::OnnxBytes => "onnx",
            Target::Tflite => "tflite",
            Target::Npuq => "npuq",
            Target::Npum => "npum",
            Target::Asm => "s",
            Target::Program => "bin",
            Target::HwRon | Target::Recipe | Target::Plan | Target::DataSpec => "ron",
            Target::Npy => "npy",
            Target::Npz => "npz",
            Target::Image => "png",
        }
    }
}

/// Valid inputs to mutate (the caller reads them; this crate does no I/O).
#[derive(Debug, Clone, Default)]
pub struct Corpus {
    /// ONNX files.
    pub onnx: Vec<Vec<u8>>,
    /// TFLite files.
    pub tflite: Vec<Vec<u8>>,
    /// `.npuq` files.
    pub npuq: Vec<Vec<u8>>,
    /// `.npum` files.
    pub npum: Vec<Vec<u8>>,
    /// Assembly sources.
    pub asm: Vec<String>,
    /// `.npy` files.
    pub npy: Vec<Vec<u8>>,
    /// `.npz` archives.
    pub npz: Vec<Vec<u8>>,
    /// Quantization recipes (RON), e.g. [`scheme_seeds`] and `docs/recipes/*.ron`.
    pub recipes: Vec<String>,
    /// Sweep plans (RON).
    pub plans: Vec<String>,
    /// Data-set descriptions (RON).
    pub specs: Vec<String>,
    /// Images (PNG).
    pub images: Vec<Vec<u8>>,
}

/// Every named quantization scheme written as a recipe (RON), as seeds for the `recipe`
/// target beside the recipe files.
pub fn scheme_seeds() -> Vec<String> {
    npu_quant::SCHEMES
        .iter()
        .filter_map(|n| npu_quant::Scheme::named(n).ok())
        .filter_map(|s| ron::ser::to_string_pretty(&s, ron::ser::PrettyConfig::default()).ok())
        .collect()
}

/// One input that panicked or ran too long.
#[derive(Debug, Clone)]
pub struct Finding {
    /// Its target.
    pub target: Target,
    /// Case number within the run (with the seed, reproduces it).
    pub case: u64,
    /// The panic message and location, or how long it ran.
    pub message: String,
    /// The input.
    pub input: Vec<u8>,
}

/// One target's run.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The target.
    pub target: Target,
    /// Inputs run.
    pub executions: u64,
    /// Inputs accepted by the first reader (the rest were refused with an error).
    pub accepted: u64,
    /// Panics and slow cases.
    pub findings: Vec<Finding>,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// How long a run lasts and what counts as too slow.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Stop after this many cases.
    pub cases: u64,
    /// Or after this long.
    pub time: Duration,
    /// A case taking longer is a finding.
    pub slow: Duration,
}

/// Whether an input was accepted by the first reader.
enum Outcome {
    Accepted,
    Refused,
}

static PANIC: Mutex<Option<String>> = Mutex::new(None);
static HOOK: Once = Once::new();

thread_local! {
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Installs (once) a panic hook that records the message and location of a panic on a
/// fuzzing thread instead of printing it; other threads' panics print as before.
fn install_hook() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let text = match info.payload().downcast_ref::<&str>() {
                Some(s) => s.to_string(),
                None => info.payload().downcast_ref::<String>().cloned().unwrap_or_default(),
            };
            let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
            if let Ok(mut p) = PANIC.lock() {
                *p = Some(format!("{text}{at}"));
            }
            if !QUIET.with(|q| q.get()) {
                previous(info);
            }
        }));
    });
}

/// The case being run (see [`current_case`]).
static CURRENT_CASE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(u64::MAX);

/// The case [`fuzz`] is running now, if any: for a process-wide watchdog (the binary's
/// memory budget) that must name the case before the process dies.
pub fn current_case() -> Option<u64> {
    let c = CURRENT_CASE.load(std::sync::atomic::Ordering::Relaxed);
    (c != u64::MAX).then_some(c)
}

/// A watchdog's view of the running case: it is told, now and then, which case runs
/// (`(target index, case)`, or none between cases) and says when one case has been
/// running longer than `hang` — a hang the fuzzing loop itself cannot interrupt.
#[derive(Debug, Clone)]
pub struct Watch {
    hang: Duration,
    seen: Option<((u64, u64), Instant)>,
}

impl Watch {
    /// A watch that calls a case running longer than `hang` hung.
    pub fn new(hang: Duration) -> Watch {
        Watch { hang, seen: None }
    }

    /// Notes that `running` runs at `now`; returns it once it has run for longer than
    /// the hang budget since it was first seen.
    pub fn tick(&mut self, running: Option<(u64, u64)>, now: Instant) -> Option<(u64, u64)> {
        match (running, self.seen) {
            (None, _) => {
                self.seen = None;
                None
            }
            (Some(c), Some((s, since))) if c == s => (now.saturating_duration_since(since) > self.hang).then_some(c),
            (Some(c), _) => {
                self.seen = Some((c, now));
                None
            }
        }
    }
}

/// Runs `target` from `seed` within `budget`.
pub fn fuzz(target: Target, corpus: &Corpus, seed: u64, budget: Budget) -> Summary {
    install_hook();
    let start = Instant::now();
    let mut r = Rng(seed.max(1));
    let mut s = Summary { target, executions: 0, accepted: 0, findings: vec![], seconds: 0.0 };
    while s.executions < budget.cases && start.elapsed() < budget.time {
        let case = s.executions;
        let input = make_input(target, corpus, &mut r);
        tracing::debug!(target: "npu_fuzz", case, bytes = input.len(), "{}", target.name());
        let t0 = Instant::now();
        QUIET.with(|q| q.set(true));
        CURRENT_CASE.store(case, std::sync::atomic::Ordering::Relaxed);
        let result = catch_unwind(AssertUnwindSafe(|| exercise(target, &input)));
        CURRENT_CASE.store(u64::MAX, std::sync::atomic::Ordering::Relaxed);
        QUIET.with(|q| q.set(false));
        let took = t0.elapsed();
        s.executions += 1;
        match result {
            Ok(Outcome::Accepted) => s.accepted += 1,
            Ok(Outcome::Refused) => {}
            Err(_) => {
                let message = PANIC.lock().ok().and_then(|mut p| p.take()).unwrap_or_else(|| "panicked".into());
                s.findings.push(Finding { target, case, message: format!("panic: {message}"), input });
                continue;
            }
        }
        if took > budget.slow {
            s.findings.push(Finding {
                target,
                case,
                message: format!("slow: {:.1} s (budget {:.1} s)", took.as_secs_f64(), budget.slow.as_secs_f64()),
                input,
            });
        }
    }
    s.seconds = start.elapsed().as_secs_f64();
    s
}

/// The input [`fuzz`] makes for `case` of a run from `seed` (to save a case that hangs).
pub fn input(target: Target, corpus: &Corpus, seed: u64, case: u64) -> Vec<u8> {
    let mut r = Rng(seed.max(1));
    let mut input = make_input(target, corpus, &mut r);
    for _ in 0..case {
        input = make_input(target, corpus, &mut r);
    }
    input
}

/// Runs one saved input (a finding, or a regression fixture) the way `target` does:
/// `Err` with the panic message if it panics.
pub fn replay(target: Target, input: &[u8]) -> Result<bool, String> {
    install_hook();
    QUIET.with(|q| q.set(true));
    let result = catch_unwind(AssertUnwindSafe(|| exercise(target, input)));
    QUIET.with(|q| q.set(false));
    match result {
        Ok(o) => Ok(matches!(o, Outcome::Accepted)),
        Err(_) => Err(PANIC.lock().ok().and_then(|mut p| p.take()).unwrap_or_else(|| "panicked".into())),
    }
}

/// Shrinks `input` while `fails` still holds, trying at most `tries` candidates: spans
/// of half the input are removed, then of a quarter, down to single bytes, keeping each
/// removal after which it still fails (delta debugging, removal only). The result fails
/// too, and no single byte of it can be removed unless the budget ran out.
pub fn minimise(input: &[u8], fails: &mut dyn FnMut(&[u8]) -> bool, tries: usize) -> Vec<u8> {
    let mut cur = input.to_vec();
    let mut left = tries;
    let mut span = cur.len().div_ceil(2).max(1);
    loop {
        let mut removed = false;
        let mut at = 0;
        while at < cur.len() && left > 0 {
            let end = (at + span).min(cur.len());
            let mut candidate = cur[..at].to_vec();
            candidate.extend_from_slice(&cur[end..]);
            left -= 1;
            if fails(&candidate) {
                cur = candidate;
                removed = true;
            } else {
                at += span;
            }
        }
        if left == 0 || (span == 1 && !removed) {
            return cur;
        }
        if !removed {
            span = span.div_ceil(2);
        }
    }
}

/// A panicking input of `target` shrunk to one that panics with the same message and
/// location ([`minimise`], at most `tries` runs).
pub fn minimise_panic(target: Target, input: &[u8], tries: usize) -> Vec<u8> {
    let Err(message) = replay(target, input) else { return input.to_vec() };
    minimise(input, &mut |b| replay(target, b).err().as_ref() == Some(&message), tries)
}

fn pick<'a, T>(r: &mut Rng, v: &'a [T]) -> Option<&'a T> {
    if v.is_empty() {
        None
    } else {
        v.get(r.below(v.len() as u64) as usize)
    }
}

/// Byte mutations: flips, random bytes, interesting values, insertions, deletions and
/// duplicated spans; mostly near the start of the file, where headers and shapes live.
pub fn mutate(r: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut m = seed.to_vec();
    for _ in 0..1 + r.below(4) {
        if m.is_empty() {
            m.push(r.next_u64() as u8);
            continue;
        }
        let len = m.len() as u64;
        let at = if r.below(10) < 7 { r.below(len.min(4096)) } else { r.below(len) } as usize;
        match r.below(7) {
            0 => m[at] ^= 1 << r.below(8),
            1 => m[at] = r.next_u64() as u8,
            2 => m[at] = [0x00, 0xff, 0x7f, 0x80, 0x01, 0xfe][r.below(6) as usize],
            3 => {
                let b = r.next_u64() as u8;
                m.insert(at, b);
            }
            4 => {
                let end = (at + 1 + r.below(8) as usize).min(m.len());
                m.drain(at..end);
            }
            5 => {
                // A run of 0xff: varints and lengths become huge.
                let end = (at + 1 + r.below(8) as usize).min(m.len());
                m[at..end].iter_mut().for_each(|b| *b = 0xff);
            }
            _ => {
                let end = (at + 1 + r.below(32) as usize).min(m.len());
                let span = m[at..end].to_vec();
                let to = r.below(m.len() as u64) as usize;
                m.splice(to..to, span);
            }
        }
    }
    m
}

/// Text mutations for assembly and RON: byte mutations plus swapped tokens and numbers
/// replaced by extreme ones.
fn mutate_text(r: &mut Rng, seed: &str) -> Vec<u8> {
    if r.below(2) == 0 {
        return mutate(r, seed.as_bytes());
    }
    let numbers = ["0", "-1", "4294967296", "18446744073709551616", "1e-300", "1e300", "NaN", "inf", "-0.0"];
    let mut words: Vec<String> = seed.split_inclusive(|c: char| !c.is_alphanumeric()).map(String::from).collect();
    for _ in 0..1 + r.below(3) {
        let n = words.len() as u64;
        if n == 0 {
            break;
        }
        let i = r.below(n) as usize;
        match r.below(3) {
            0 => {
                let tail: String = words[i].chars().filter(|c| !c.is_alphanumeric()).collect();
                words[i] = format!("{}{tail}", numbers[r.below(numbers.len() as u64) as usize]);
            }
            1 => {
                let j = r.below(n) as usize;
                words.swap(i, j);
            }
            _ => {
                let deep = "(".repeat(1 + r.below(20_000) as usize);
                words.insert(i, deep);
            }
        }
    }
    words.concat().into_bytes()
}

fn make_input(target: Target, c: &Corpus, r: &mut Rng) -> Vec<u8> {
    let bytes = |r: &mut Rng, v: &[Vec<u8>]| pick(r, v).map(|s| mutate(r, s)).unwrap_or_default();
    match target {
        Target::OnnxGraph => onnx_gen::model(r),
        Target::OnnxBytes => {
            // Half the time a generated graph's bytes, mutated.
            if r.below(2) == 0 || c.onnx.is_empty() {
                let g = onnx_gen::model(r);
                mutate(r, &g)
            } else {
                bytes(r, &c.onnx)
            }
        }
        Target::Tflite => bytes(r, &c.tflite),
        Target::Npuq => {
            // Mostly resealed, so that changes reach the decoder behind the checksum.
            let mut m = bytes(r, &c.npuq);
            if r.below(8) != 0 {
                npu_quant::npuq::reseal(&mut m);
            }
            m
        }
        Target::Npum => {
            let mut m = bytes(r, &c.npum);
            if r.below(8) != 0 && m.get(8..12) == Some(&npu_model::modelfile::VERSION.to_le_bytes()[..]) {
                npu_model::modelfile::reseal(&mut m);
            }
            m
        }
        Target::Asm => pick(r, &c.asm).map(|s| mutate_text(r, s)).unwrap_or_default(),
        Target::Program => {
            let program = pick(r, &c.asm)
                .and_then(|s| npu_isa::asm::assemble(s, "seed.s").ok())
                .and_then(|p| p.to_bytes().ok())
                .unwrap_or_default();
            mutate(r, &program)
        }
        Target::HwRon => {
            let (_, text) = npu_hw::PRESETS[r.below(npu_hw::PRESETS.len() as u64) as usize];
            mutate_text(r, text)
        }
        Target::Npy => bytes(r, &c.npy),
        Target::Npz => bytes(r, &c.npz),
        Target::Recipe => pick(r, &c.recipes).map(|s| mutate_text(r, s)).unwrap_or_default(),
        Target::Plan => pick(r, &c.plans).map(|s| mutate_text(r, s)).unwrap_or_default(),
        Target::DataSpec => pick(r, &c.specs).map(|s| mutate_text(r, s)).unwrap_or_default(),
        Target::Image => {
            // Mostly with every chunk's CRC recomputed, so that changes reach the decoder.
            let mut png = bytes(r, &c.images);
            if r.below(8) != 0 {
                reseal_png(&mut png);
            }
            png
        }
    }
}

/// Recomputes the CRC-32 of every whole chunk of a PNG file (over its type and data),
/// leaving anything after the first chunk that runs past the end as it is.
pub fn reseal_png(png: &mut [u8]) {
    let mut at = 8;
    while at + 12 <= png.len() {
        let len = u32::from_be_bytes([png[at], png[at + 1], png[at + 2], png[at + 3]]) as usize;
        let Some(end) = (at + 8).checked_add(len).filter(|e| e + 4 <= png.len()) else { break };
        let crc = crc32fast::hash(&png[at + 4..end]);
        png[end..end + 4].copy_from_slice(&crc.to_be_bytes());
        at = end + 4;
    }
}

/// A small float model (2×6×6 input, a 3×3 convolution to 4 channels with ReLU, global
/// pooling, a dense layer to 3 classes) for recipes to quantize.
fn tiny_model() -> Option<npu_model::Model> {
    use npu_model::ir::{Activation, GraphBuilder, Op, Tensor};
    let wave = |n: usize, k: f32| (0..n).map(|i| (i as f32 * k).sin() * 0.5).collect::<Vec<f32>>();
    let mut b = GraphBuilder::new();
    let x = b.input("x", vec![2, 6, 6]).ok()?;
    let w = b.constant("w", Tensor::new(vec![4, 2, 3, 3], wave(72, 0.7)).ok()?).ok()?;
    let bias = b.constant("b", Tensor::new(vec![4], wave(4, 1.3)).ok()?).ok()?;
    let conv = Op::Conv2d { stride: [1, 1], pad: [1, 1, 1, 1], dilation: [1, 1], groups: 1, act: Activation::Relu };
    let c = b.node("conv", conv, &[x, w, bias]).ok()?;
    let p = b.node("pool", Op::GlobalAvgPool, &[c]).ok()?;
    let f = b.node("flatten", Op::Flatten, &[p]).ok()?;
    let d = b.constant("d", Tensor::new(vec![3, 4], wave(12, 0.9)).ok()?).ok()?;
    let y = b.node("dense", Op::Dense { act: Activation::None }, &[f, d]).ok()?;
    b.output(y).ok()?;
    Some(npu_model::Model {
        name: "tiny".into(),
        graph: b.finish().ok()?,
        preprocess: npu_data::Preprocess::default(),
        has_preprocess: false,
    })
}

static TINY: std::sync::OnceLock<Option<npu_model::Model>> = std::sync::OnceLock::new();

/// Values (over every tensor) above which a model is not run (the executor's time).
const MAX_RUN_ELEMENTS: usize = 1 << 20;

/// Instructions a fuzzed program may run.
const MAX_INSTRUCTIONS: u64 = 200_000;

/// A float model read (run through [`float_pipeline`]) or refused (its message built).
fn float_outcome<E: std::fmt::Display>(read: Result<npu_model::Model, E>) -> Outcome {
    match read {
        Ok(m) => {
            float_pipeline(&m);
            Outcome::Accepted
        }
        Err(e) => {
            let _ = e.to_string();
            Outcome::Refused
        }
    }
}

fn exercise(target: Target, input: &[u8]) -> Outcome {
    match target {
        Target::OnnxGraph | Target::OnnxBytes => float_outcome(npu_onnx::import(input, "fuzz.onnx")),
        Target::Tflite => match npu_tflite::import(input, "fuzz.tflite") {
            Ok(imp) => {
                match &imp.quantized {
                    Some(q) => quantized_pipeline(q),
                    None => float_pipeline(&imp.model),
                }
                Outcome::Accepted
            }
            Err(_) => Outcome::Refused,
        },
        Target::Npuq => match npu_quant::npuq::decode(input, "fuzz.npuq") {
            Ok(q) => {
                quantized_pipeline(&q);
                Outcome::Accepted
            }
            Err(_) => Outcome::Refused,
        },
        Target::Npum => float_outcome(npu_model::modelfile::decode(input, "fuzz.npum")),
        Target::Asm => {
            let Ok(text) = std::str::from_utf8(input) else { return Outcome::Refused };
            match npu_isa::asm::assemble(text, "fuzz.s") {
                Ok(p) => {
                    run_program(&p);
                    Outcome::Accepted
                }
                Err(e) => {
                    let _ = e.to_string();
                    Outcome::Refused
                }
            }
        }
        Target::Program => match npu_isa::Program::from_bytes(input) {
            Ok(p) => {
                run_program(&p);
                Outcome::Accepted
            }
            Err(_) => Outcome::Refused,
        },
        Target::HwRon => {
            let Ok(text) = std::str::from_utf8(input) else { return Outcome::Refused };
            match npu_hw::HwConfig::from_ron(text, "fuzz.ron") {
                Ok(hw) => {
                    if let Ok(p) = npu_isa::asm::assemble(SMALL_PROGRAM, "small.s") {
                        let opts = npu_sim::RunOptions { max_instructions: MAX_INSTRUCTIONS, ..Default::default() };
                        let _ = npu_sim::run(&p, &hw, &opts);
                    }
                    Outcome::Accepted
                }
                Err(_) => Outcome::Refused,
            }
        }
        Target::Npy => match npu_datafiles::npy::parse(input, "fuzz.npy") {
            Ok(a) => {
                let _ = npu_data::Dataset::from_arrays(a, None, "fuzz.npy");
                Outcome::Accepted
            }
            Err(_) => Outcome::Refused,
        },
        Target::Npz => match npu_datafiles::npz::parse(input, "fuzz.npz") {
            Ok(arrays) => {
                if let Ok((x, y)) = npu_datafiles::npz::split(arrays, None, None, "fuzz.npz") {
                    let _ = npu_data::Dataset::from_arrays(x, y, "fuzz.npz");
                }
                Outcome::Accepted
            }
            Err(_) => Outcome::Refused,
        },
        Target::Recipe => {
            let Ok(text) = std::str::from_utf8(input) else { return Outcome::Refused };
            match ron::from_str::<npu_quant::Scheme>(text) {
                Ok(scheme) => {
                    if let Some(m) = TINY.get_or_init(tiny_model) {
                        let per: usize = m.graph.values[m.graph.inputs[0]].shape.iter().product();
                        let arr = npu_data::Array {
                            shape: vec![2, 2, 6, 6],
                            values: npu_data::Elements::F32((0..2 * per).map(|i| (i % 9) as f32 * 0.2 - 0.8).collect()),
                            dtype: "float32".into(),
                        };
                        if let Ok(ds) = npu_data::Dataset::from_arrays(arr, None, "fuzz") {
                            let calib = npu_quant::RangeSource::Calibration {
                                images: 2,
                                method: npu_quant::calib::Method::MinMax,
                            };
                            for source in [npu_quant::RangeSource::DataFree, calib] {
                                if let Ok(q) = npu_quant::quantize_model(m, &scheme, &ds, source) {
                                    quantized_pipeline(&q);
                                }
                            }
                        }
                    }
                    Outcome::Accepted
                }
                Err(e) => {
                    let _ = e.to_string();
                    Outcome::Refused
                }
            }
        }
        Target::Plan => {
            let Ok(text) = std::str::from_utf8(input) else { return Outcome::Refused };
            match npu_app::sweep::Plan::parse(text, "fuzz.ron") {
                Ok(plan) => {
                    if let Ok(points) = npu_app::sweep::expand(&plan) {
                        for p in points.iter().take(16) {
                            if let Ok(base) = npu_hw::preset(&p.hw) {
                                let _ = npu_app::sweep::hardware_variant(&base, &p.params);
                            }
                        }
                    }
                    Outcome::Accepted
                }
                Err(_) => Outcome::Refused,
            }
        }
        Target::DataSpec => {
            let Ok(text) = std::str::from_utf8(input) else { return Outcome::Refused };
            match npu_datafiles::spec::Spec::from_ron(text, "fuzz.ron") {
                Ok(spec) => {
                    let p = spec.overrides().apply(&npu_data::Preprocess::default());
                    let _ = p.validate();
                    Outcome::Accepted
                }
                Err(_) => Outcome::Refused,
            }
        }
        Target::Image => {
            let plain = npu_datafiles::images::ImageOptions::default();
            match npu_datafiles::images::decode(input, &plain, "fuzz.png") {
                Ok(_) => {
                    let cut = npu_datafiles::images::ImageOptions { resize: Some(9), crop: Some(7), ..plain };
                    let _ = npu_datafiles::images::decode(input, &cut, "fuzz.png");
                    Outcome::Accepted
                }
                Err(_) => Outcome::Refused,
            }
        }
    }
}

/// A program that touches every unit, run on fuzzed hardware descriptions.
const SMALL_PROGRAM: &str = include_str!("../../../programs/conv_relu.s");

fn run_program(p: &npu_isa::Program) {
    let Ok(hw) = npu_hw::preset("edge-64") else { return };
    let opts = npu_sim::RunOptions { max_instructions: MAX_INSTRUCTIONS, ..Default::default() };
    let _ = npu_sim::run(p, &hw, &opts);
}

fn float_pipeline(m: &npu_model::Model) {
    let total: usize = m.graph.values.iter().map(|v| v.shape.iter().product::<usize>()).sum();
    if total > MAX_RUN_ELEMENTS {
        return;
    }
    let shape = &m.graph.values[m.graph.inputs[0]].shape;
    let per: usize = shape.iter().product();
    let mut dims = vec![1];
    dims.extend(shape);
    let arr = npu_data::Array {
        shape: dims,
        values: npu_data::Elements::F32((0..per).map(|i| (i % 5) as f32 * 0.25).collect()),
        dtype: "float32".into(),
    };
    let Ok(ds) = npu_data::Dataset::from_arrays(arr, None, "fuzz") else { return };
    let _ = m.evaluate(&ds, 1, &mut |_| {});
    for (scheme, source) in [
        ("int8-per-channel", npu_quant::RangeSource::DataFree),
        (
            "w4a8-per-channel",
            npu_quant::RangeSource::Calibration { images: 1, method: npu_quant::calib::Method::MinMax },
        ),
    ] {
        let Ok(scheme) = npu_quant::Scheme::named(scheme) else { continue };
        if let Ok(q) = npu_quant::quantize_model(m, &scheme, &ds, source) {
            quantized_pipeline(&q);
        }
    }
}

fn quantized_pipeline(q: &npu_quant::QModel) {
    let total: usize = q.values.iter().map(|v| v.shape.iter().product::<usize>()).sum();
    if total > MAX_RUN_ELEMENTS {
        return;
    }
    let per: usize = q.values[0].shape.iter().product();
    let input: Vec<i32> = (0..per).map(|i| (i % 7) as i32 - 3).collect();
    let _ = q.run_int(&input, 1);
    let Ok(hw) = npu_hw::preset("edge-64") else { return };
    if let Ok(d) = npu_app::Deployment::new(q.clone(), hw) {
        let _ = d.timing();
    }
}
