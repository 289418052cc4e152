//! The compiler: a [`QModel`] to an ISA program for a given hardware description.
//!
//! ```text
//!  QModel
//!    │ memory::plan     liveness of every activation; first-fit over lifetimes
//!    ▼
//!  MemoryPlan           home of each value: resident in the activation buffer, in SRAM, or
//!    │                  spilled off-chip; the staging zone left for streamed tiles
//!    │ lower::lower     the chains of convolutions to cascade over stripes; per layer:
//!    │                  channel blocks × row tiles (in the cheaper loop order);
//!    ▼                  ring-allocated local buffers; weights packed (bitvec), records as
//!  Lowered              `rq` reads them; operations without dependencies, their layers,
//!    │                  the off-chip image
//!    │ schedule         footprints → off-chip loads hoisted (prefetch) → FIFO tokens
//!    ▼                  ([`Schedule`]: overlapped, or per-layer with barriers)
//!  Program              instructions with wait/signal tokens + data segment
//! ```
//!
//! Each stage has its own data structure and knows nothing of the next. Memory
//! planning decides *where* values live, lowering decides *what* runs and in which
//! local addresses, and scheduling decides *when*: it derives every dependency from
//! what the operations read and write, so overlap — weights streaming while earlier
//! layers compute, the next tile's accumulators filling while the previous ones are
//! requantized — follows from the allocation instead of being written by hand, and a
//! missing dependency cannot slip in (the differential tests check the results bit for
//! bit against the integer executor on every zoo model, scheme and preset).
//!
//! Layers the hardware cannot run — a MAC mode it lacks, a multiplier on shift-only
//! hardware, shapes beyond the ISA's fields or the buffers — are compile errors naming
//! the layer and the missing capability, or with [`Fallback::Cpu`] calls of the host
//! CPU (`host` instructions; their values are planned into SRAM, and the layer is
//! lowered again until every layer compiles or one cannot go to the CPU either), as
//! Vela leaves such operators to the CPU. [`Compiled::host`] lists them with the reason.

#![deny(missing_docs)]

pub mod artifact;
pub mod error;
pub mod lower;
pub mod memory;
pub mod schedule;

use npu_hw::{HwConfig, IoMemory};
use npu_isa::{Instr, MacMode, Op, Program, Segment, Space};

pub use artifact::{program_crc32, Manifest, MANIFEST_VERSION};
pub use lower::{LayerCoding, WeightCoding};
pub use memory::{Home, MemoryPlan};

pub use error::{Error, Result};

use npu_quant::{ActType, QModel, QOp, WeightBits};

/// A region of system memory the host writes or reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Io {
    /// The memory: system SRAM, or off-chip memory on hardware whose SRAM is the NPU's
    /// own (`memories.io`).
    pub memory: IoMemory,
    /// Byte address.
    pub addr: u32,
    /// Bytes (one per element, HWC order).
    pub len: u32,
}

/// A compiled model.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// Code and the off-chip memory image (weights and tables) as a data segment.
    pub program: Program,
    /// Where the quantized input goes (`[H][W][C]` bytes).
    pub input: Io,
    /// Where the quantized output is (`[H][W][C]` bytes; logits are `[classes]`).
    pub output: Io,
    /// Names of the compiled layers.
    pub layers: Vec<String>,
    /// For every instruction, the index in `layers` of the layer it belongs to (a
    /// prefetched weight load sits among an earlier layer's instructions but belongs
    /// to its own layer).
    pub owner: Vec<usize>,
    /// Where every activation lives.
    pub memory: MemoryPlan,
    /// How each layer's weights are stored off-chip (packed or compressed).
    pub coding: Vec<LayerCoding>,
    /// The layers the host CPU runs (`host id=` their index in the model's layers).
    pub host: Vec<HostLayer>,
}

/// A layer compiled as a call of the host CPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostLayer {
    /// Index in the model's layers (the `host` instruction's `id`).
    pub layer: usize,
    /// Layer name.
    pub name: String,
    /// Why the NPU does not run it.
    pub reason: String,
}

/// What to do with a layer the NPU cannot run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fallback {
    /// A compile error names the layer and what the hardware lacks.
    #[default]
    Refuse,
    /// The host CPU runs it (a `host` call), if it has at most two inputs.
    Cpu,
}

/// How layers follow one another in the program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Schedule {
    /// npu's own schedule: a layer's weights stream during the layer before, consecutive
    /// layers overlap wherever their data allow, and each convolution takes the cheaper
    /// loop order (weights outer, or input tiles outer with the tile loaded once).
    #[default]
    Overlapped,
    /// One layer at a time, as Vela's performance model sums them: every operation of a
    /// layer starts after the previous layer has completed (weights, too, load within
    /// their own layer), and convolutions loop weights outer. For comparing npu's cost
    /// model with Vela's on Vela's kind of schedule, and for runtimes that run a network
    /// layer by layer.
    PerLayer,
}

impl Schedule {
    /// Every schedule, in the order [`Schedule::name`] lists them.
    pub const ALL: [Schedule; 2] = [Schedule::Overlapped, Schedule::PerLayer];

    /// The name used on the command line (`overlapped`, `per-layer`).
    pub fn name(self) -> &'static str {
        match self {
            Schedule::Overlapped => "overlapped",
            Schedule::PerLayer => "per-layer",
        }
    }

    /// The schedule named `name`.
    pub fn from_name(name: &str) -> Option<Schedule> {
        Schedule::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// How to compile: weight encodings, the fallback, layers placed on the CPU by request,
/// and the schedule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// Weight encodings (used only on hardware with a weight decompressor).
    pub coding: WeightCoding,
    /// What to do with a layer the NPU cannot run.
    pub fallback: Fallback,
    /// Names of layers to run on the host CPU even though the NPU could.
    pub on_cpu: Vec<String>,
    /// How layers follow one another.
    pub schedule: Schedule,
}

impl Io {
    /// The ISA's memory space of the region.
    pub fn space(&self) -> Space {
        self.memory.space().into()
    }
}

impl Compiled {
    /// The program with one quantized input sample (CHW integers, as the integer
    /// executor takes them) placed where the host writes it ([`Compiled::input`]).
    pub fn with_input(&self, q: &QModel, input: &[i32]) -> Program {
        let mut p = self.program.clone();
        p.data.push(self.input_segment(q, input));
        p
    }

    /// The segment holding one quantized input sample (CHW integers, as the integer
    /// executor takes them), for runs that take inputs apart from the program.
    pub fn input_segment(&self, q: &QModel, input: &[i32]) -> Segment {
        Segment { space: self.input.space(), addr: self.input.addr, bytes: to_hwc_bytes(input, &q.values[0].shape) }
    }

    /// The assembly listing with a comment wherever the layer changes.
    pub fn listing(&self) -> String {
        let text = npu_isa::disassemble(&self.program);
        let mut out = String::new();
        let mut idx = 0usize;
        let mut in_code = false;
        let mut current = None;
        for line in text.lines() {
            if line == ".text" {
                in_code = true;
            } else if line.starts_with(".data") {
                in_code = false;
            } else if in_code && !line.trim().is_empty() && !line.trim_start().starts_with(';') {
                if let Some(&o) = self.owner.get(idx) {
                    if current != Some(o) {
                        out.push_str(&format!("    ; layer {}\n", self.layers[o]));
                        current = Some(o);
                    }
                }
                idx += 1;
            }
            out.push_str(line);
            out.push('\n');
        }
        out
    }
}

/// CHW integers to HWC bytes.
pub fn to_hwc_bytes(x: &[i32], shape: &[usize]) -> Vec<u8> {
    if shape.len() != 3 {
        return x.iter().map(|v| *v as u8).collect();
    }
    let (c, h, w) = (shape[0], shape[1], shape[2]);
    let mut out = vec![0u8; x.len()];
    if c == 0 || h * w == 0 {
        return out;
    }
    match c {
        1 => interleave::<1>(x, &mut out),
        2 => interleave::<2>(x, &mut out),
        3 => interleave::<3>(x, &mut out),
        4 => interleave::<4>(x, &mut out),
        _ => {
            // Channel plane by channel plane, each into every c-th byte.
            for (ch, plane) in x.chunks_exact(h * w).enumerate().take(c) {
                for (o, v) in out[ch..].iter_mut().step_by(c).zip(plane) {
                    *o = *v as u8;
                }
            }
        }
    }
    out
}

/// [`to_hwc_bytes`] for `C` channels (the input's length a multiple of `C`): pixel by
/// pixel, the `C` planes' values side by side.
fn interleave<const C: usize>(x: &[i32], out: &mut [u8]) {
    let hw = x.len() / C;
    let planes: [&[i32]; C] = std::array::from_fn(|ch| &x[ch * hw..(ch + 1) * hw]);
    for (p, px) in out.chunks_exact_mut(C).enumerate() {
        for (o, plane) in px.iter_mut().zip(&planes) {
            *o = plane[p] as u8;
        }
    }
}

/// HWC output bytes back to CHW integers.
pub fn from_hwc_bytes(b: &[u8], shape: &[usize], dtype: ActType) -> Vec<i32> {
    let v = |byte: u8| match dtype {
        ActType::I8 | ActType::I4 => i32::from(byte as i8),
        ActType::U8 => i32::from(byte),
    };
    if shape.len() != 3 {
        return b.iter().map(|x| v(*x)).collect();
    }
    let (c, h, w) = (shape[0], shape[1], shape[2]);
    let mut out = vec![0i32; b.len()];
    for ch in 0..c {
        for y in 0..h {
            for xx in 0..w {
                out[(ch * h + y) * w + xx] = v(b[(y * w + xx) * c + ch]);
            }
        }
    }
    out
}

/// Compiles a quantized model for `hw`, every layer on the NPU.
pub fn compile(q: &QModel, hw: &HwConfig) -> Result<Compiled> {
    compile_with(q, hw, WeightCoding::Smallest)
}

/// [`compile`] with a choice of weight encodings (used only on hardware with a weight
/// decompressor; elsewhere weights are always packed).
pub fn compile_with(q: &QModel, hw: &HwConfig, coding: WeightCoding) -> Result<Compiled> {
    compile_with_options(q, hw, &Options { coding, ..Options::default() })
}

/// Whether the host CPU can take layer `k`: one that computes (not an alias) from at
/// most two inputs.
fn host_can_run(q: &QModel, k: usize) -> bool {
    let l = &q.layers[k];
    !memory::is_alias(q, l) && (1..=2).contains(&l.inputs.len())
}

/// The reason in a layer error's message, without the "cannot compile layer" prefix.
fn reason_of(message: &str) -> String {
    match message.split_once("`: ") {
        Some((head, rest)) if head.starts_with("cannot compile layer `") => rest.to_string(),
        _ => message.to_string(),
    }
}

/// [`compile`] with [`Options`]: layers the NPU cannot run (or that `opts.on_cpu`
/// names) go to the host CPU under [`Fallback::Cpu`].
pub fn compile_with_options(q: &QModel, hw: &HwConfig, opts: &Options) -> Result<Compiled> {
    q.validate()?;
    let mut reasons: Vec<Option<String>> = vec![None; q.layers.len()];
    for name in &opts.on_cpu {
        let k = q.layers.iter().position(|l| &l.name == name).ok_or_else(|| {
            Error::Invalid(format!("the model `{}` has no layer `{name}` to place on the CPU", q.name))
        })?;
        if !host_can_run(q, k) {
            return Err(Error::Invalid(format!(
                "layer `{name}` cannot run on the host CPU: it is {}",
                if memory::is_alias(q, &q.layers[k]) {
                    "a reshape that moves no data"
                } else {
                    "a layer of more than two inputs"
                }
            )));
        }
        reasons[k] = Some("placed on the CPU by request".into());
    }
    let (plan, lowered) = loop {
        let on_host: Vec<bool> = reasons.iter().map(Option::is_some).collect();
        // Cascades need a chain's first input live through its last layer; planned for
        // where they matter (an activation buffer that only stages tiles), and only where
        // that costs no spill to off-chip memory (the lowering cascades only chains whose
        // homes allow it).
        let plain = || memory::plan(q, hw, &on_host, false);
        let plan = if opts.schedule == Schedule::Overlapped && hw.buffers.act_staging_only {
            let with = memory::plan(q, hw, &on_host, true)?;
            if with.spill_bytes > 0 {
                let without = plain()?;
                if without.spill_bytes < with.spill_bytes {
                    without
                } else {
                    with
                }
            } else {
                with
            }
        } else {
            plain()?
        };
        let failed = match lower::lower(q, hw, &plan, opts.coding, opts.schedule, &on_host) {
            Ok(lowered) => match check_lowered(&lowered, &plan, hw) {
                Ok(()) => break (plan, lowered),
                Err(e) => e,
            },
            Err(e) => e,
        };
        match failed {
            Error::Layer { layer, message }
                if opts.fallback == Fallback::Cpu && reasons[layer].is_none() && host_can_run(q, layer) =>
            {
                tracing::info!(layer = %q.layers[layer].name, %message, "layer placed on the host CPU");
                reasons[layer] = Some(reason_of(&message));
            }
            e => return Err(e),
        }
    };
    let host: Vec<HostLayer> = reasons
        .iter()
        .enumerate()
        .filter_map(|(k, r)| {
            r.as_ref().map(|r| HostLayer { layer: k, name: q.layers[k].name.clone(), reason: r.clone() })
        })
        .collect();
    let (code, owner) = schedule_lowered(&lowered, opts.schedule)?;
    tracing::debug!(instructions = code.len(), dram = lowered.dram.len(), "compiled");
    let len = |v: usize| q.values[v].shape.iter().product::<usize>() as u32;
    let io = |v: usize| match plan.homes[v] {
        Home::Sram(addr) => Ok(Io { memory: IoMemory::Sram, addr, len: len(v) }),
        Home::Dram(addr) => Ok(Io { memory: IoMemory::Dram, addr, len: len(v) }),
        Home::Act(_) => Err(Error::Invalid(format!("value `{}` is not in system memory", q.values[v].name))),
    };
    Ok(Compiled {
        program: Program { code, data: vec![Segment { space: Space::Dram, addr: 0, bytes: lowered.dram }] },
        input: io(0)?,
        output: io(q.output)?,
        layers: lowered.layers,
        owner,
        memory: plan,
        coding: lowered.coding,
        host,
    })
}

/// Stage 3 on a lowered program: prefetch order, tokens, a final `halt`, and the owner
/// (index into `lowered.layers`) of every instruction.
fn schedule_lowered(lowered: &lower::Lowered, how: Schedule) -> Result<(Vec<Instr>, Vec<usize>)> {
    let per_layer = how == Schedule::PerLayer;
    let schedule::Order { order, anchor } = schedule::prefetch(&lowered.ops, &lowered.owner, per_layer)?;
    let ops: Vec<Op> = order.iter().map(|&i| lowered.ops[i]).collect();
    let mut owner: Vec<usize> = order.iter().map(|&i| lowered.owner[i]).collect();
    // Anchors as positions in the program order.
    let mut position = vec![0; order.len()];
    for (at, &i) in order.iter().enumerate() {
        position[i] = at;
    }
    let anchor: Vec<Option<usize>> = order.iter().map(|&i| anchor[i].map(|a| position[a])).collect();
    let mut code = schedule::tokens(&ops, per_layer.then_some((owner.as_slice(), anchor.as_slice())))?;
    code.push(Instr::new(Op::Halt(npu_isa::Halt {})));
    owner.push(lowered.layers.len().saturating_sub(1));
    Ok((code, owner))
}

/// What a lowered program must satisfy beyond its layers: the weights fit off-chip
/// memory, and every operation fits the ISA's fields (lowering checks each operand as
/// it builds it; this holds the whole program to the ISA, as decoding a file would).
/// An operation that does not fit is its layer's error.
fn check_lowered(lowered: &lower::Lowered, plan: &MemoryPlan, hw: &HwConfig) -> Result<()> {
    let room = hw.memories.dram.bytes as usize - plan.spill_bytes as usize;
    if lowered.dram.len() > room {
        let spilled = match (plan.spill_bytes, hw.memories.io) {
            (0, _) => String::new(),
            (b, IoMemory::Sram) => format!(" beside {b} bytes of spilled activations"),
            (b, IoMemory::Dram) => {
                format!(" beside {b} bytes of activations (spilled, and the host's input and output)")
            }
        };
        return Err(Error::Invalid(format!(
            "the weights need {} bytes of off-chip memory{spilled}; `{}` has {}",
            lowered.dram.len(),
            hw.name,
            hw.memories.dram.bytes
        )));
    }
    for (i, op) in lowered.ops.iter().enumerate() {
        npu_isa::validate(&Instr::new(*op)).map_err(|e| {
            let k = lowered.owner[i];
            let name = lowered.layers.get(k).map_or("?", String::as_str);
            let message = format!("cannot compile layer `{name}`: an operation does not fit the ISA: {e}");
            match lowered.model_layers.get(k) {
                Some(&layer) => Error::Layer { layer, message },
                None => Error::Invalid(message),
            }
        })?;
    }
    Ok(())
}

/// The roofline floor of a model on a hardware description: no schedule can be
/// faster than its compute at the array's peak rate in each layer's mode, nor than
/// reading the weights and tables from off-chip memory once (and writing and reading
/// back once every activation too large for both the activation buffer and system SRAM,
/// which every schedule must spill), nor than moving the input and output through system
/// SRAM.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Roofline {
    /// Multiply-accumulates of the model (convolutions and dense layers).
    pub macs: u64,
    /// Σ over layers of MACs / (rows · cols · MACs per PE in the layer's mode).
    pub compute_cycles: f64,
    /// Bytes every inference must read from off-chip memory: packed weights,
    /// 12-byte requantization records and 4-byte weight zero points per output
    /// channel, 40-byte add records, 256-byte clamp tables; plus
    /// [`Roofline::forced_spill_bytes`] twice (written, then read); and the model's input
    /// and output where the host exchanges them through off-chip memory (`memories.io`).
    pub offchip_bytes: u64,
    /// Bytes of the activations larger than both the activation buffer and system SRAM:
    /// any schedule keeps them in off-chip memory.
    pub forced_spill_bytes: u64,
    /// `offchip_bytes / dram bytes_per_cycle`.
    pub offchip_cycles: f64,
    /// Input and output bytes through system SRAM (unless `memories.io` puts them
    /// off-chip), and with a staging-only activation
    /// buffer every intermediate activation written and read back once.
    pub sram_bytes: u64,
    /// `sram_bytes / sram bytes_per_cycle`.
    pub sram_cycles: f64,
}

impl Roofline {
    /// The floor: the largest of the three bounds.
    pub fn floor(&self) -> f64 {
        self.compute_cycles.max(self.offchip_cycles).max(self.sram_cycles)
    }

    /// Which bound is the floor.
    pub fn bound(&self) -> &'static str {
        if self.compute_cycles >= self.offchip_cycles && self.compute_cycles >= self.sram_cycles {
            "compute"
        } else if self.offchip_cycles >= self.sram_cycles {
            "off-chip memory"
        } else {
            "system SRAM"
        }
    }
}

/// The roofline floor of `q` on `hw`, computed from the model alone (not from a
/// compiled program).
pub fn roofline(q: &QModel, hw: &HwConfig) -> Roofline {
    let pes = f64::from(hw.mac.rows) * f64::from(hw.mac.cols);
    let (mut macs, mut compute, mut bytes) = (0u64, 0f64, 0u64);
    for l in &q.layers {
        let out: usize = q.values[l.output].shape.iter().product();
        let weighted = match &l.op {
            QOp::Conv2d { layer, .. } => {
                let (co, k) = (layer.shape[0], layer.shape[1] * layer.shape[2] * layer.shape[3]);
                Some((layer, (out * k) as u64, co))
            }
            QOp::Dense { layer } => Some((layer, (layer.shape[0] * layer.shape[1]) as u64, layer.shape[0])),
            QOp::Add { .. } | QOp::Sub { .. } | QOp::Mul { .. } => {
                bytes += npu_isa::EwRecord::BYTES;
                None
            }
            QOp::Lut { .. } => {
                bytes += npu_isa::LUT_BYTES;
                None
            }
            QOp::Softmax { .. } => {
                bytes += npu_isa::SOFTMAX_RECORD_BYTES;
                None
            }
            QOp::Reshape if !memory::is_alias(q, l) => {
                bytes += npu_isa::LUT_BYTES;
                None
            }
            _ => None,
        };
        if let Some((layer, m, channels)) = weighted {
            let mode = match layer.bits {
                WeightBits::B8 => MacMode::I8,
                WeightBits::B4 => MacMode::I4,
                WeightBits::Ternary => MacMode::T2,
                WeightBits::Binary => MacMode::B1,
            };
            // The peak rate counts every core of a block-based unit.
            let peak = (hw.peak_macs_per_cycle(mode) as f64).max(pes);
            macs += m;
            compute += m as f64 / peak;
            let bits = match layer.bits {
                WeightBits::B8 => 8,
                WeightBits::B4 => 4,
                WeightBits::Ternary => 2,
                WeightBits::Binary => 1,
            };
            let packed = (layer.weights.len() as u64 * bits).div_ceil(8);
            bytes += if hw.has_decompressor() {
                let v: Vec<i8> = layer.weights.iter().map(|w| *w as i8).collect();
                npu_isa::Codec::ALL.iter().map(|c| npu_isa::codec::encode(&v, *c).len() as u64).fold(packed, u64::min)
            } else {
                packed
            };
            let zp = if layer.w_zero.iter().any(|z| *z != 0) { 4 } else { 0 };
            bytes += channels as u64 * (npu_isa::RqRecord::BYTES + zp);
        }
    }
    let io = |v: usize| q.values[v].shape.iter().product::<usize>() as u64;
    // An activation buffer that only stages tiles keeps nothing between layers: every
    // intermediate activation is written to SRAM and read back at least once — except
    // one a cascade may keep on chip (a convolution's output read only by the
    // convolution after it, `memory::cascade_target`).
    let staged: u64 = if hw.buffers.act_staging_only {
        (0..q.layers.len())
            .filter(|&k| {
                let l = &q.layers[k];
                !memory::is_alias(q, l) && l.output != q.output && memory::cascade_target(q, k).is_none()
            })
            .map(|k| 2 * io(q.layers[k].output))
            .sum()
    } else {
        0
    };
    // The host's input and output: in SRAM, or off-chip where the SRAM is the NPU's own.
    let (io_sram, io_offchip) = match hw.memories.io {
        IoMemory::Sram => (io(0) + io(q.output), 0),
        IoMemory::Dram => (0, io(0) + io(q.output)),
    };
    bytes += io_offchip;
    let sram_bytes = io_sram + staged;
    // A layer's output (not an alias of its input) that fits no on-chip memory.
    let on_chip = u64::from(hw.buffers.act.bytes).max(u64::from(hw.memories.sram.bytes));
    let forced: u64 = q
        .layers
        .iter()
        .filter(|l| !memory::is_alias(q, l) && l.output != q.output)
        .map(|l| io(l.output))
        .filter(|&b| b > on_chip)
        .sum();
    let bytes = bytes.saturating_add(forced.saturating_mul(2));
    Roofline {
        macs,
        compute_cycles: compute,
        offchip_bytes: bytes,
        forced_spill_bytes: forced,
        offchip_cycles: bytes as f64 / hw.memories.dram.bytes_per_cycle,
        sram_bytes,
        sram_cycles: sram_bytes as f64 / hw.memories.sram.bytes_per_cycle,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hwc_bytes_put_each_pixels_channels_side_by_side() {
        // Three 1×2 planes: pixel 0 holds (1, 3, 5), pixel 1 holds (2, 4, −6).
        assert_eq!(to_hwc_bytes(&[1, 2, 3, 4, 5, -6], &[3, 1, 2]), vec![1, 3, 5, 2, 4, 250]);
        // Every channel count, the specialised and the general path, back and forth.
        for c in 1..=7 {
            let (h, w) = (3, 5);
            let x: Vec<i32> = (0..c * h * w).map(|i| (i as i32 * 37 % 256) - 128).collect();
            let b = to_hwc_bytes(&x, &[c, h, w]);
            for ch in 0..c {
                for p in 0..h * w {
                    assert_eq!(b[p * c + ch], x[ch * h * w + p] as u8, "c {c}: channel {ch}, pixel {p}");
                }
            }
            assert_eq!(from_hwc_bytes(&b, &[c, h, w], ActType::I8), x, "c {c}");
        }
    }
}
