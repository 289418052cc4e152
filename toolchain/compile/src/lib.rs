//! The compiler: a [`QModel`] to an ISA program for a given hardware description.
//!
//! ```text
//!  QModel
//!    │ memory::plan     liveness of every activation; first-fit over lifetimes
//!    ▼
//!  MemoryPlan           home of each value: resident in the activation buffer or in SRAM;
//!    │                  the staging zone left for streamed tiles
//!    │ lower::lower     per layer: channel blocks × row tiles; ring-allocated local buffers;
//!    ▼                  weights packed (bitvec), requantization records as `rq` reads them
//!  Lowered              operations without dependencies, their layers, the off-chip image
//!    │ schedule         footprints → off-chip loads hoisted (prefetch) → FIFO tokens
//!    ▼
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
//! the layer and the missing capability.

#![deny(missing_docs)]

pub mod artifact;
pub mod error;
pub mod lower;
pub mod memory;
pub mod schedule;

use npu_hw::HwConfig;
use npu_isa::{Instr, MacMode, Op, Program, Segment, Space};

pub use artifact::{Manifest, MANIFEST_VERSION};
pub use lower::{LayerCoding, WeightCoding};
pub use memory::{Home, MemoryPlan};

pub use error::{Error, Result};

use npu_quant::{ActType, QModel, QOp, WeightBits};

/// A region of system SRAM the host writes or reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Io {
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
}

impl Compiled {
    /// The program with one quantized input sample (CHW integers, as the integer
    /// executor takes them) placed in SRAM.
    pub fn with_input(&self, q: &QModel, input: &[i32]) -> Program {
        let mut p = self.program.clone();
        p.data.push(self.input_segment(q, input));
        p
    }

    /// The SRAM segment holding one quantized input sample (CHW integers, as the
    /// integer executor takes them), for runs that take inputs apart from the program.
    pub fn input_segment(&self, q: &QModel, input: &[i32]) -> Segment {
        Segment { space: Space::Sram, addr: self.input.addr, bytes: to_hwc_bytes(input, &q.values[0].shape) }
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
    for ch in 0..c {
        for y in 0..h {
            for xx in 0..w {
                out[(y * w + xx) * c + ch] = x[(ch * h + y) * w + xx] as u8;
            }
        }
    }
    out
}

/// HWC output bytes back to CHW integers.
pub fn from_hwc_bytes(b: &[u8], shape: &[usize], dtype: ActType) -> Vec<i32> {
    let v = |byte: u8| match dtype {
        ActType::I8 => i32::from(byte as i8),
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

/// Compiles a quantized model for `hw`.
pub fn compile(q: &QModel, hw: &HwConfig) -> Result<Compiled> {
    compile_with(q, hw, WeightCoding::Smallest)
}

/// [`compile`] with a choice of weight encodings (used only on hardware with a weight
/// decompressor; elsewhere weights are always packed).
pub fn compile_with(q: &QModel, hw: &HwConfig, coding: WeightCoding) -> Result<Compiled> {
    q.validate()?;
    let plan = memory::plan(q, hw)?;
    let lowered = lower::lower(q, hw, &plan, coding)?;
    if lowered.dram.len() > hw.memories.dram.bytes as usize {
        return Err(Error::Invalid(format!(
            "the weights need {} bytes of off-chip memory; `{}` has {}",
            lowered.dram.len(),
            hw.name,
            hw.memories.dram.bytes
        )));
    }
    let order = schedule::prefetch(&lowered.ops, &lowered.owner)?;
    let ops: Vec<Op> = order.iter().map(|&i| lowered.ops[i]).collect();
    let mut owner: Vec<usize> = order.iter().map(|&i| lowered.owner[i]).collect();
    let mut code = schedule::tokens(&ops)?;
    code.push(Instr::new(Op::Halt(npu_isa::Halt {})));
    owner.push(lowered.layers.len().saturating_sub(1));
    // Lowering checks each operand against its field as it builds it; this holds the
    // whole program to the ISA, as decoding a file would.
    for (i, instr) in code.iter().enumerate() {
        npu_isa::validate(instr).map_err(|e| {
            let layer = lowered.layers.get(owner[i]).map_or("?", String::as_str);
            Error::Invalid(format!("instruction {i} (layer `{layer}`) does not fit the ISA: {e}"))
        })?;
    }
    tracing::debug!(instructions = code.len(), dram = lowered.dram.len(), "compiled");
    let len = |v: usize| q.values[v].shape.iter().product::<usize>() as u32;
    let sram = |v: usize| match plan.homes[v] {
        Home::Sram(a) => Ok(a),
        Home::Act(_) => Err(Error::Invalid(format!("value `{}` is not in SRAM", q.values[v].name))),
    };
    Ok(Compiled {
        program: Program { code, data: vec![Segment { space: Space::Dram, addr: 0, bytes: lowered.dram }] },
        input: Io { addr: sram(0)?, len: len(0) },
        output: Io { addr: sram(q.output)?, len: len(q.output) },
        layers: lowered.layers,
        owner,
        memory: plan,
        coding: lowered.coding,
    })
}

/// The roofline floor of a model on a hardware description: no schedule can be
/// faster than its compute at the array's peak rate in each layer's mode, nor than
/// reading the weights and tables from off-chip memory once, nor than moving the
/// input and output through system SRAM.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Roofline {
    /// Multiply-accumulates of the model (convolutions and dense layers).
    pub macs: u64,
    /// Σ over layers of MACs / (rows · cols · MACs per PE in the layer's mode).
    pub compute_cycles: f64,
    /// Bytes every inference must read from off-chip memory: packed weights,
    /// 12-byte requantization records and 4-byte weight zero points per output
    /// channel, 40-byte add records, 256-byte clamp tables.
    pub offchip_bytes: u64,
    /// `offchip_bytes / dram bytes_per_cycle`.
    pub offchip_cycles: f64,
    /// Input and output bytes through system SRAM.
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
            let per_pe = f64::from(hw.mac.macs_per_pe.get(mode).max(1));
            macs += m;
            compute += m as f64 / (pes * per_pe);
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
    let sram_bytes = io(0) + io(q.output);
    Roofline {
        macs,
        compute_cycles: compute,
        offchip_bytes: bytes,
        offchip_cycles: bytes as f64 / hw.memories.dram.bytes_per_cycle,
        sram_bytes,
        sram_cycles: sram_bytes as f64 / hw.memories.sram.bytes_per_cycle,
    }
}
