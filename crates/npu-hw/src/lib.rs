//! `npu-hw`: the hardware description of an npu NPU.
//!
//! A [`HwConfig`] says how big and fast every part of the machine is — MAC array,
//! local buffers, system memories, DMA, requantization and vector units — and what each
//! operation costs in energy. The simulator times and costs programs with it and the
//! compiler tiles to it, so it lives in its own crate that both can depend on without
//! depending on each other.
//!
//! Configurations are RON files ([`HwConfig::from_ron`]); three presets ship with the
//! crate ([`preset`], [`PRESETS`]). [`HwConfig::validate`] rejects impossible ones with a
//! message naming the field and the rule it breaks.

#![deny(missing_docs)]

pub mod blocks;

use npu_isa::{MacMode, StoreSpace};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Errors reading or checking a hardware description.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum Error {
    /// The RON text does not parse or does not match the schema.
    #[error("{origin}: {message}")]
    Parse {
        /// File name or preset name.
        origin: String,
        /// Parser message with line and column.
        message: String,
    },
    /// A field breaks a rule.
    #[error("{origin}: invalid hardware description: `{field}` {rule} (got {value})")]
    Invalid {
        /// File name or preset name.
        origin: String,
        /// Dotted path of the field.
        field: String,
        /// The rule it breaks.
        rule: String,
        /// Its value.
        value: String,
    },
    /// No preset has this name.
    #[error("unknown hardware preset `{0}` (expected one of: {names}, or a .ron file)", names = preset_names())]
    UnknownPreset(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How the MAC array maps a layer onto its PEs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Dataflow {
    /// Weights stay in the PEs; activations stream through (rows = reduction, columns = output channels).
    WeightStationary,
    /// Partial sums stay in the PEs (rows = output pixels, columns = output channels).
    OutputStationary,
    /// Output blocks of micro-blocks, as Arm's Ethos-U computes (its timing in
    /// [`MacArray::blocks`]): `rows` input channels times `cols` outputs (a micro-block
    /// of height × width × channels) per cycle.
    Blocked,
}

/// The block-based MAC unit of an Arm Ethos-U as Vela's performance model describes it
/// (`architecture_features.py`, `npu_performance.py`): outputs are computed in blocks
/// chosen to fit the shared buffer (SHRAM), each block in micro-blocks of
/// `ublock` = (height, width, channels) outputs, `ifm_depth` input channels per step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Blocks {
    /// Output micro-block: height, width, channels (Ethos-U55-256: 2, 2, 8).
    pub ublock: (u32, u32, u32),
    /// Input channels of a micro-block step (8).
    pub ifm_depth: u32,
    /// Input channels an input block holds at most for 8-bit data (32); a convolution
    /// with more input channels makes several passes over each output block.
    pub ifm_block_depth: u32,
    /// Largest output block: height, width, channels (32, 64, 128).
    pub max_block: (u32, u32, u32),
    /// Cycles per micro-block and kernel element (4).
    pub ublock_cycles: u32,
    /// Least cycles per kernel element and micro-block channel slice: the weights of
    /// a slice are fetched once per block (32 per 8 channels).
    pub weight_cycles: u32,
    /// Pipeline delay per kernel step when a block is a single micro-block (2).
    pub delay: u32,
    /// Largest kernel a pass takes, height × width (8, 8); larger kernels run in parts.
    pub sub_kernel: (u32, u32),
    /// Shared buffer banks (48 on Ethos-U55-256) of `bank_bytes` each.
    pub shram_banks: u32,
    /// Bytes per bank (1024).
    pub bank_bytes: u32,
    /// Banks reserved for the output and for unused/LUT space (2 + 2).
    pub reserved_banks: u32,
    /// Bank granules of the input and accumulator areas (8 and 8 on 256-MAC variants).
    pub granules: (u32, u32),
    /// Cores sharing each operation (Ethos-U65-512: 2).
    pub cores: u32,
}

/// MACs each PE completes per cycle in each precision mode; 0 means the mode is absent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerMode<T> {
    /// 8-bit weights.
    pub i8: T,
    /// 4-bit weights.
    pub i4: T,
    /// Ternary weights.
    pub t2: T,
    /// Binary weights, 8-bit activations.
    pub b1: T,
    /// Binary weights and activations (XNOR-popcount).
    pub xnor: T,
}

impl<T: Copy> PerMode<T> {
    /// The value for `mode`.
    pub fn get(&self, mode: MacMode) -> T {
        match mode {
            MacMode::I8 => self.i8,
            MacMode::I4 => self.i4,
            MacMode::T2 => self.t2,
            MacMode::B1 => self.b1,
            MacMode::Xnor => self.xnor,
        }
    }
}

/// The MAC array.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MacArray {
    /// PE rows.
    pub rows: u32,
    /// PE columns.
    pub cols: u32,
    /// Mapping of layers onto the array.
    pub dataflow: Dataflow,
    /// MACs per PE per cycle in each mode (0 = the mode is not supported).
    pub macs_per_pe: PerMode<u32>,
    /// Clock gating of PEs that hold a zero weight: their multiply-accumulates spend no
    /// MAC energy (cycles are unchanged). Default `false`.
    #[serde(default)]
    pub zero_gating: bool,
    /// Largest stride (either axis) of a convolution that pads its input; a layer beyond
    /// it is not run by the NPU (Ethos-U: 3 — Vela takes larger strides only without
    /// padding). Default: no limit but the ISA's fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_padded_stride: Option<u32>,
    /// The block organisation of a `Blocked` MAC unit (required for it, refused otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocks: Option<Blocks>,
}

/// A local buffer inside the NPU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Buffer {
    /// Capacity in bytes.
    pub bytes: u32,
    /// Bytes the DMA can write or read per cycle.
    pub bytes_per_cycle: f64,
}

/// The local buffers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Buffers {
    /// Activation buffer.
    pub act: Buffer,
    /// Weight buffer.
    pub wgt: Buffer,
    /// Parameter buffer.
    pub par: Buffer,
    /// Accumulator buffer (bytes; 4 per int32 accumulator).
    pub acc: Buffer,
    /// Whether the activation buffer only stages tiles, every activation living in
    /// system SRAM between layers (Ethos-U's SHRAM holds blocks of one operation at a
    /// time). Default `false`: values that fit stay resident in the buffer.
    #[serde(default)]
    pub act_staging_only: bool,
}

/// A system memory outside the NPU, reached through one port shared by all DMA channels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Memory {
    /// What it is (for reports), e.g. "off-chip flash".
    pub kind: String,
    /// Capacity in bytes.
    pub bytes: u32,
    /// Sustained bandwidth in bytes per NPU cycle.
    pub bytes_per_cycle: f64,
    /// Cycles from a read request to its first data.
    pub read_latency: u32,
    /// Cycles from a write request to its completion.
    pub write_latency: u32,
    /// Burst length in bytes; each contiguous run is rounded up to whole bursts.
    pub burst: u32,
}

/// The system memories.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Memories {
    /// Off-chip memory (`dram` space).
    pub dram: Memory,
    /// System SRAM (`sram` space).
    pub sram: Memory,
    /// Where the host writes the network's input and reads its output. Default
    /// [`IoMemory::Sram`].
    #[serde(default, skip_serializing_if = "IoMemory::is_sram")]
    pub io: IoMemory,
}

/// The memory the host exchanges a network's input and output through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum IoMemory {
    /// System SRAM, shared by the host and the NPU (Vela's Shared_Sram and Sram_Only
    /// memory modes).
    #[default]
    Sram,
    /// Off-chip memory, the system SRAM being dedicated to the NPU as the home of
    /// intermediate values (Vela's Dedicated_Sram memory mode: the tensor arena in DRAM,
    /// the SRAM its cache). Layers on the host CPU still exchange their values through
    /// SRAM.
    Dram,
}

impl IoMemory {
    /// Whether this is [`IoMemory::Sram`] (the default, left out when serialised).
    pub fn is_sram(&self) -> bool {
        *self == IoMemory::Sram
    }

    /// The ISA's name of the space (`sram`, `dram`).
    pub fn space(self) -> npu_isa::ExtSpace {
        match self {
            IoMemory::Sram => npu_isa::ExtSpace::Sram,
            IoMemory::Dram => npu_isa::ExtSpace::Dram,
        }
    }
}

/// The DMA engines: how many transfers each may have in flight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dma {
    /// Outstanding transfers of DMA-in (`ld`); more hide memory latency.
    pub in_channels: u32,
    /// Outstanding transfers of DMA-out (`st`).
    pub out_channels: u32,
    /// Whether a DMA unit's channels move data at the same time (each limited by its
    /// external memory's port, so transfers on different memories overlap), instead of
    /// one transfer at a time with channels hiding only latency. Default `false`.
    #[serde(default)]
    pub concurrent: bool,
    /// Whether DMA-in has a second queue for weights (`ldw`, the `ldw` unit): weight and
    /// parameter streams then do not wait behind activation tiles in `ld`'s queue, nor
    /// tiles behind them (as Ethos-U's weight stream runs beside its input fetch). It has
    /// `in_channels` channels of its own and shares the memories' ports. Default `false`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub weight_queue: bool,
    /// Output bytes per cycle of the weight decompressor on the DMA-in path (`ldz`);
    /// 0 (the default) means the hardware has none.
    #[serde(default)]
    pub decompress_bytes_per_cycle: f64,
}

/// The requantization unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requant {
    /// Elements per cycle.
    pub lanes: u32,
    /// Pipeline latency in cycles, paid once per instruction.
    pub latency: u32,
    /// Whether it has a multiplier; without one only `mode=shift` (power-of-two) works.
    pub multiplier: bool,
}

/// The vector unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vector {
    /// Elements per cycle.
    pub lanes: u32,
    /// Pipeline latency in cycles, paid once per instruction.
    pub latency: u32,
    /// Cycles per element operation by kind, where the unit is not `lanes` uniform
    /// lanes (Ethos-U's output stage, at the rates Vela's performance model uses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cycles_per_op: Option<VectorCosts>,
    /// Whether vector instructions pass through the MAC unit's pipeline, so that they
    /// and MAC instructions run one at a time in program order (Ethos-U executes
    /// convolutions, elementwise operations and pooling as one command stream). Default
    /// `false`: the vector unit runs beside the MAC array.
    #[serde(default)]
    pub shares_mac_pipeline: bool,
}

/// Cycles per element operation of the vector unit, by kind of instruction.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VectorCosts {
    /// Per output element of `vadd`/`vsub`.
    pub add: f64,
    /// Per output element of `vmul`.
    pub mul: f64,
    /// Per window element of `pool` (a `kh × kw` window costs `kh · kw` of them).
    pub pool: f64,
    /// Per element of `lut`.
    pub lut: f64,
    /// Per element of each of `softmax`'s three passes.
    pub softmax: f64,
}

/// The kind of a vector-unit instruction, for [`VectorCosts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VectorOp {
    /// `vadd`, `vsub`.
    #[default]
    Add,
    /// `vmul`.
    Mul,
    /// `pool`.
    Pool,
    /// `lut`.
    Lut,
    /// `softmax`.
    Softmax,
}

impl Vector {
    /// Cycles of `ops` element operations of kind `op`, latency included.
    pub fn cycles(&self, op: VectorOp, ops: u64) -> u64 {
        let busy = match &self.cycles_per_op {
            None => ops.div_ceil(u64::from(self.lanes)),
            Some(c) => {
                let per = match op {
                    VectorOp::Add => c.add,
                    VectorOp::Mul => c.mul,
                    VectorOp::Pool => c.pool,
                    VectorOp::Lut => c.lut,
                    VectorOp::Softmax => c.softmax,
                };
                let v = (ops as f64 * per).ceil();
                if v >= u64::MAX as f64 {
                    u64::MAX
                } else {
                    v as u64
                }
            }
        };
        busy.saturating_add(u64::from(self.latency))
    }
}

/// The host CPU that runs, on the integer reference kernels, the layers the NPU cannot
/// (`host` instructions): a cost model in its own clock. A call of `macs` multiply-
/// accumulates writing `elements` outputs and moving `bytes` takes
/// `call_cycles + macs·cycles_per_mac + elements·cycles_per_element + bytes/bytes_per_cycle`
/// CPU cycles, i.e. that times `clock_mhz` of the NPU over the CPU's `clock_mhz` NPU cycles;
/// its weights come from off-chip memory at that memory's bandwidth (the simulator's
/// timing model adds them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cpu {
    /// What the figures model, e.g. "Cortex-M55 with Helium, CMSIS-NN kernels".
    pub model: String,
    /// CPU clock in MHz.
    pub clock_mhz: f64,
    /// Fixed cycles per operator call (dispatch, setup, cache effects).
    pub call_cycles: f64,
    /// Cycles per multiply-accumulate.
    pub cycles_per_mac: f64,
    /// Cycles per output element (elementwise, pooling, resize, lookup work).
    pub cycles_per_element: f64,
    /// Bytes per cycle the CPU moves between system SRAM and its registers.
    pub bytes_per_cycle: f64,
    /// Energy per CPU cycle, in picojoules.
    pub pj_per_cycle: f64,
}

impl Default for Cpu {
    /// A Cortex-M55-class host with Helium running CMSIS-NN-style int8 kernels at
    /// 400 MHz: 2 MACs per cycle, 4 cycles per output element of other kernels, a
    /// 32-bit bus, 2,000 cycles of per-operator overhead and 20 pJ per cycle (about
    /// 8 mW at 400 MHz). Assumptions, documented in `docs/hardware.md`.
    fn default() -> Cpu {
        Cpu {
            model: "Cortex-M55-class host, Helium, CMSIS-NN-style int8 kernels (npu's assumption)".into(),
            clock_mhz: 400.0,
            call_cycles: 2000.0,
            cycles_per_mac: 0.5,
            cycles_per_element: 4.0,
            bytes_per_cycle: 4.0,
            pj_per_cycle: 20.0,
        }
    }
}

impl Cpu {
    /// CPU cycles of one call.
    pub fn cycles(&self, macs: u64, elements: u64, bytes: u64) -> f64 {
        self.call_cycles
            + macs as f64 * self.cycles_per_mac
            + elements as f64 * self.cycles_per_element
            + bytes as f64 / self.bytes_per_cycle
    }
}

/// Energy per operation, in picojoules, and static power.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Energy {
    /// Where the figures come from.
    pub source: String,
    /// Per MAC, by mode.
    pub mac_pj: PerMode<f64>,
    /// Per byte read or written in a local buffer.
    pub local_byte_pj: f64,
    /// Per byte moved to or from system SRAM.
    pub sram_byte_pj: f64,
    /// Per byte moved to or from off-chip memory.
    pub dram_byte_pj: f64,
    /// Per 32-bit shift (barrel shifter).
    pub shift_pj: f64,
    /// Per 32-bit multiply (requantization multiplier).
    pub multiply_pj: f64,
    /// Per 32-bit add (bias, zero point, vector ops).
    pub add_pj: f64,
    /// Static (leakage) power of the NPU in milliwatts.
    pub static_mw: f64,
    /// Per byte the weight decompressor outputs (0 when absent).
    #[serde(default)]
    pub decompress_byte_pj: f64,
}

/// A complete hardware description.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HwConfig {
    /// Name, e.g. `edge-256`.
    pub name: String,
    /// One-line description.
    pub description: String,
    /// NPU clock in MHz.
    pub clock_mhz: f64,
    /// Instruction queue entries per unit.
    pub queue_depth: u32,
    /// The MAC array.
    pub mac: MacArray,
    /// Local buffers.
    pub buffers: Buffers,
    /// System memories.
    pub memories: Memories,
    /// DMA engines.
    pub dma: Dma,
    /// Requantization unit.
    pub requant: Requant,
    /// Vector unit.
    pub vector: Vector,
    /// Energy table.
    pub energy: Energy,
    /// The host CPU (a Cortex-M55-class default when absent).
    #[serde(default)]
    pub cpu: Cpu,
}

/// The presets shipped with npu: (name, RON text). The `edge-*` presets are npu's own
/// NPU designs; the `ethos-u*` ones model Arm's Ethos-U as Vela 5.2 does.
pub const PRESETS: &[(&str, &str)] = &[
    ("edge-64", include_str!("../presets/edge-64.ron")),
    ("edge-256", include_str!("../presets/edge-256.ron")),
    ("edge-1k", include_str!("../presets/edge-1k.ron")),
    ("ethos-u55-64", include_str!("../presets/ethos-u55-64.ron")),
    ("ethos-u55-128", include_str!("../presets/ethos-u55-128.ron")),
    ("ethos-u55-256", include_str!("../presets/ethos-u55-256.ron")),
    ("ethos-u55-256-deep", include_str!("../presets/ethos-u55-256-deep.ron")),
    ("ethos-u55-256-sram-only", include_str!("../presets/ethos-u55-256-sram-only.ron")),
    ("ethos-u65-256", include_str!("../presets/ethos-u65-256.ron")),
    ("ethos-u65-512", include_str!("../presets/ethos-u65-512.ron")),
    ("ethos-u65-256-dedicated", include_str!("../presets/ethos-u65-256-dedicated.ron")),
    ("ethos-u65-512-dedicated", include_str!("../presets/ethos-u65-512-dedicated.ron")),
];

impl Blocks {
    fn validate(&self, c: &Check<'_>, mac: &MacArray) -> Result<()> {
        let (h, w, d) = self.ublock;
        for (name, v) in [("ublock.0", h), ("ublock.1", w), ("ublock.2", d)] {
            c.count(&format!("mac.blocks.{name}"), v, 1, 64)?;
        }
        if mac.cols != h * w * d {
            return Err(c.fail(
                "mac.cols",
                "must equal the micro-block's outputs (height × width × channels)",
                mac.cols,
            ));
        }
        c.count("mac.blocks.ifm_depth", self.ifm_depth, 1, 64)?;
        if mac.rows != self.ifm_depth {
            return Err(c.fail("mac.rows", "must equal `mac.blocks.ifm_depth` (input channels per step)", mac.rows));
        }
        c.count("mac.blocks.ifm_block_depth", self.ifm_block_depth, self.ifm_depth, 4096)?;
        let (mh, mw, md) = self.max_block;
        c.count("mac.blocks.max_block.0", mh, h, 4096)?;
        c.count("mac.blocks.max_block.1", mw, w, 4096)?;
        c.count("mac.blocks.max_block.2", md, d, 4096)?;
        c.count("mac.blocks.ublock_cycles", self.ublock_cycles, 1, 1024)?;
        c.count("mac.blocks.weight_cycles", self.weight_cycles, 0, 4096)?;
        c.count("mac.blocks.delay", self.delay, 0, 1024)?;
        c.count("mac.blocks.sub_kernel.0", self.sub_kernel.0, 1, 64)?;
        c.count("mac.blocks.sub_kernel.1", self.sub_kernel.1, 1, 64)?;
        c.count("mac.blocks.shram_banks", self.shram_banks, 1, 1024)?;
        c.count("mac.blocks.bank_bytes", self.bank_bytes, 1, 1 << 20)?;
        c.count("mac.blocks.reserved_banks", self.reserved_banks, 0, self.shram_banks.saturating_sub(1))?;
        c.count("mac.blocks.granules.0", self.granules.0, 1, 1024)?;
        c.count("mac.blocks.granules.1", self.granules.1, 1, 1024)?;
        c.count("mac.blocks.cores", self.cores, 1, 16)?;
        Ok(())
    }
}

/// Smallest bandwidth a description may give (bytes per cycle).
pub const MIN_BYTES_PER_CYCLE: f64 = 1e-3;

/// Largest bandwidth a description may give (bytes per cycle).
pub const MAX_BYTES_PER_CYCLE: f64 = 1e6;

/// Largest local buffer the ISA can address (20-bit byte addresses).
pub const MAX_LOCAL_BYTES: u32 = 1 << 20;

/// The presets' names, comma-separated (for messages).
pub fn preset_names() -> String {
    PRESETS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
}

/// A preset by name, parsed and validated.
pub fn preset(name: &str) -> Result<HwConfig> {
    let (_, text) = PRESETS.iter().find(|(n, _)| *n == name).ok_or_else(|| Error::UnknownPreset(name.into()))?;
    HwConfig::from_ron(text, name)
}

struct Check<'a> {
    origin: &'a str,
}

impl Check<'_> {
    fn fail(&self, field: &str, rule: &str, value: impl std::fmt::Display) -> Error {
        Error::Invalid { origin: self.origin.into(), field: field.into(), rule: rule.into(), value: value.to_string() }
    }
    fn count(&self, field: &str, v: u32, lo: u32, hi: u32) -> Result<()> {
        if v < lo || v > hi {
            return Err(self.fail(field, &format!("must be in {lo}..={hi}"), v));
        }
        Ok(())
    }
    fn positive(&self, field: &str, v: f64) -> Result<()> {
        if !(v.is_finite() && v > 0.0) {
            return Err(self.fail(field, "must be a finite number greater than 0", v));
        }
        Ok(())
    }
    /// A bandwidth in bytes per cycle: positive, and within 0.001..=1e6 so that the
    /// timing model's cycle counts stay far from overflowing (a 1e-300 made them wrap).
    fn bandwidth(&self, field: &str, v: f64) -> Result<()> {
        self.positive(field, v)?;
        if !(MIN_BYTES_PER_CYCLE..=MAX_BYTES_PER_CYCLE).contains(&v) {
            return Err(self.fail(field, "must be in 0.001..=1000000 bytes per cycle", format!("{v:e}")));
        }
        Ok(())
    }
    fn non_negative(&self, field: &str, v: f64) -> Result<()> {
        if !(v.is_finite() && v >= 0.0) {
            return Err(self.fail(field, "must be a finite number at least 0", v));
        }
        Ok(())
    }
}

impl HwConfig {
    /// Parses and validates RON text; `origin` names it in messages.
    pub fn from_ron(text: &str, origin: &str) -> Result<HwConfig> {
        let cfg: HwConfig =
            ron::from_str(text).map_err(|e| Error::Parse { origin: origin.into(), message: e.to_string() })?;
        cfg.validate(origin)?;
        Ok(cfg)
    }

    /// The description as RON text.
    pub fn to_ron(&self) -> String {
        ron::ser::to_string_pretty(self, ron::ser::PrettyConfig::default()).unwrap_or_default()
    }

    /// Checks every field against its rule; the error names the first field that breaks one.
    pub fn validate(&self, origin: &str) -> Result<()> {
        let c = Check { origin };
        if self.name.trim().is_empty() {
            return Err(c.fail("name", "must not be empty", "\"\""));
        }
        c.positive("clock_mhz", self.clock_mhz)?;
        if self.clock_mhz > 10_000.0 {
            return Err(c.fail("clock_mhz", "must be at most 10000", self.clock_mhz));
        }
        c.count("queue_depth", self.queue_depth, 1, 1024)?;
        c.count("mac.rows", self.mac.rows, 1, 1024)?;
        c.count("mac.cols", self.mac.cols, 1, 1024)?;
        let m = &self.mac.macs_per_pe;
        c.count("mac.macs_per_pe.i8", m.i8, 1, 64)?;
        if let Some(m) = self.mac.max_padded_stride {
            c.count("mac.max_padded_stride", m, 1, 1024)?;
        }
        match (&self.mac.dataflow, &self.mac.blocks) {
            (Dataflow::Blocked, None) => {
                return Err(c.fail("mac.blocks", "must describe the block unit of a `Blocked` MAC array", "none"))
            }
            (Dataflow::Blocked, Some(b)) => b.validate(&c, &self.mac)?,
            (_, Some(_)) => {
                return Err(c.fail("mac.blocks", "is only for `dataflow: Blocked`", format!("{:?}", self.mac.dataflow)))
            }
            (_, None) => {}
        }
        for (name, v) in [("i4", m.i4), ("t2", m.t2), ("b1", m.b1), ("xnor", m.xnor)] {
            c.count(&format!("mac.macs_per_pe.{name}"), v, 0, 1024)?;
        }
        for (name, b) in [("act", &self.buffers.act), ("wgt", &self.buffers.wgt), ("par", &self.buffers.par)] {
            c.count(&format!("buffers.{name}.bytes"), b.bytes, 1, MAX_LOCAL_BYTES)?;
            c.bandwidth(&format!("buffers.{name}.bytes_per_cycle"), b.bytes_per_cycle)?;
        }
        c.count("buffers.acc.bytes", self.buffers.acc.bytes, 4, 4 * MAX_LOCAL_BYTES)?;
        if !self.buffers.acc.bytes.is_multiple_of(4) {
            return Err(c.fail(
                "buffers.acc.bytes",
                "must be a multiple of 4 (int32 accumulators)",
                self.buffers.acc.bytes,
            ));
        }
        c.bandwidth("buffers.acc.bytes_per_cycle", self.buffers.acc.bytes_per_cycle)?;
        for (name, mem) in [("dram", &self.memories.dram), ("sram", &self.memories.sram)] {
            c.count(&format!("memories.{name}.bytes"), mem.bytes, 1, u32::MAX)?;
            c.bandwidth(&format!("memories.{name}.bytes_per_cycle"), mem.bytes_per_cycle)?;
            c.count(&format!("memories.{name}.read_latency"), mem.read_latency, 0, 100_000)?;
            c.count(&format!("memories.{name}.write_latency"), mem.write_latency, 0, 100_000)?;
            if !mem.burst.is_power_of_two() || mem.burst > 4096 {
                return Err(c.fail(&format!("memories.{name}.burst"), "must be a power of two up to 4096", mem.burst));
            }
        }
        c.count("dma.in_channels", self.dma.in_channels, 1, 16)?;
        c.count("dma.out_channels", self.dma.out_channels, 1, 16)?;
        c.non_negative("dma.decompress_bytes_per_cycle", self.dma.decompress_bytes_per_cycle)?;
        if self.dma.decompress_bytes_per_cycle > 0.0 {
            c.bandwidth("dma.decompress_bytes_per_cycle", self.dma.decompress_bytes_per_cycle)?;
        }
        c.count("requant.lanes", self.requant.lanes, 1, 4096)?;
        c.count("requant.latency", self.requant.latency, 0, 1000)?;
        c.count("vector.lanes", self.vector.lanes, 1, 4096)?;
        c.count("vector.latency", self.vector.latency, 0, 1000)?;
        if let Some(v) = &self.vector.cycles_per_op {
            for (name, x) in [("add", v.add), ("mul", v.mul), ("pool", v.pool), ("lut", v.lut), ("softmax", v.softmax)]
            {
                let field = format!("vector.cycles_per_op.{name}");
                c.positive(&field, x)?;
                if x > 1e6 {
                    return Err(c.fail(&field, "must be at most 1000000", x));
                }
            }
        }
        let cpu = &self.cpu;
        if !(1.0..=10_000.0).contains(&cpu.clock_mhz) {
            return Err(c.fail("cpu.clock_mhz", "must be in 1..=10000", cpu.clock_mhz));
        }
        c.bandwidth("cpu.bytes_per_cycle", cpu.bytes_per_cycle)?;
        for (name, v) in [
            ("call_cycles", cpu.call_cycles),
            ("cycles_per_mac", cpu.cycles_per_mac),
            ("cycles_per_element", cpu.cycles_per_element),
            ("pj_per_cycle", cpu.pj_per_cycle),
        ] {
            c.non_negative(&format!("cpu.{name}"), v)?;
            if v > 1e6 {
                return Err(c.fail(&format!("cpu.{name}"), "must be at most 1000000", v));
            }
        }
        let e = &self.energy;
        if e.source.trim().is_empty() {
            return Err(c.fail("energy.source", "must cite where the figures come from", "\"\""));
        }
        for (name, v) in [
            ("i8", e.mac_pj.i8),
            ("i4", e.mac_pj.i4),
            ("t2", e.mac_pj.t2),
            ("b1", e.mac_pj.b1),
            ("xnor", e.mac_pj.xnor),
        ] {
            c.non_negative(&format!("energy.mac_pj.{name}"), v)?;
        }
        for (name, v) in [
            ("local_byte_pj", e.local_byte_pj),
            ("sram_byte_pj", e.sram_byte_pj),
            ("dram_byte_pj", e.dram_byte_pj),
            ("shift_pj", e.shift_pj),
            ("multiply_pj", e.multiply_pj),
            ("add_pj", e.add_pj),
            ("static_mw", e.static_mw),
            ("decompress_byte_pj", e.decompress_byte_pj),
        ] {
            c.non_negative(&format!("energy.{name}"), v)?;
        }
        Ok(())
    }

    /// Peak MACs per cycle in `mode` (0 if the mode is absent).
    pub fn peak_macs_per_cycle(&self, mode: MacMode) -> u64 {
        let cores = self.mac.blocks.as_ref().map_or(1, |b| u64::from(b.cores));
        u64::from(self.mac.rows) * u64::from(self.mac.cols) * u64::from(self.mac.macs_per_pe.get(mode)) * cores
    }

    /// Whether the hardware has a weight decompressor on the DMA-in path.
    pub fn has_decompressor(&self) -> bool {
        self.dma.decompress_bytes_per_cycle > 0.0
    }

    /// Whether the MAC array supports `mode`.
    pub fn supports(&self, mode: MacMode) -> bool {
        self.mac.macs_per_pe.get(mode) > 0
    }

    /// The buffer behind a local space.
    pub fn buffer(&self, space: npu_isa::LocalSpace) -> &Buffer {
        match space {
            npu_isa::LocalSpace::Act => &self.buffers.act,
            npu_isa::LocalSpace::Wgt => &self.buffers.wgt,
            npu_isa::LocalSpace::Par => &self.buffers.par,
            npu_isa::LocalSpace::Acc => &self.buffers.acc,
        }
    }

    /// The buffer a store reads.
    pub fn store_buffer(&self, space: StoreSpace) -> &Buffer {
        match space {
            StoreSpace::Act => &self.buffers.act,
            StoreSpace::Acc => &self.buffers.acc,
        }
    }

    /// The system memory behind an external space.
    pub fn memory(&self, space: npu_isa::ExtSpace) -> &Memory {
        match space {
            npu_isa::ExtSpace::Dram => &self.memories.dram,
            npu_isa::ExtSpace::Sram => &self.memories.sram,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_parse_validate_and_round_trip() {
        for (name, _) in PRESETS {
            let cfg = preset(name).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(&cfg.name, name);
            assert_eq!(HwConfig::from_ron(&cfg.to_ron(), "again").as_ref(), Ok(&cfg));
        }
    }

    #[test]
    fn edge_256_matches_its_specification() {
        // 256 INT8 MACs/cycle at 500 MHz; the memory system of Vela's
        // Ethos_U55_High_End_Embedded system config (vela.ini): an 8-byte AXI port times
        // the memory's clock scale, flash 0.125 → 1 B/cycle, SRAM 1.0 → 8 B/cycle.
        let c = preset("edge-256").unwrap();
        assert_eq!(c.peak_macs_per_cycle(MacMode::I8), 256);
        assert_eq!(c.clock_mhz, 500.0);
        assert_eq!(c.memories.dram.bytes_per_cycle, 8.0 * 0.125);
        assert_eq!(c.memories.sram.bytes_per_cycle, 8.0 * 1.0);
    }
}
