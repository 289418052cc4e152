//! The compiled artifact: what `npu compile` writes beside `program.bin` so that a host
//! (npu itself, a driver, a firmware test) can run exactly that program without the
//! compiler — where the input goes and the output is, their shapes and quantization, and
//! which layer every instruction belongs to. Serialized as RON (`compiled.ron`), a format
//! of its own with a version, not a dump of the compiler's structures.

use serde::{Deserialize, Serialize};

use npu_hw::{HwConfig, IoMemory};
use npu_isa::Program;
use npu_quant::{ActType, QModel, QValue};

use crate::error::{Error, Result};
use crate::{Compiled, Home, HostLayer, Io, LayerCoding, MemoryPlan};

/// Version of the manifest format.
pub const MANIFEST_VERSION: u32 = 2;

/// One tensor the host exchanges with the NPU: a region of system memory holding it as
/// `[H][W][C]` bytes, and how its integers map to real values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TensorIo {
    /// The memory holding it: system SRAM (`Sram`, the default) or off-chip memory
    /// (`Dram`, on hardware whose SRAM is the NPU's own).
    #[serde(default, skip_serializing_if = "IoMemory::is_sram")]
    pub memory: IoMemory,
    /// Byte address in that memory.
    pub addr: u32,
    /// Bytes (one per element).
    pub bytes: u32,
    /// Per-sample shape, `[C, H, W]` (or `[N]` for vectors), as the model states it.
    pub shape: Vec<usize>,
    /// Element type: `"i8"` or `"u8"`.
    pub dtype: String,
    /// Real value of one step.
    pub scale: f32,
    /// Integer of real zero.
    pub zero_point: i32,
}

/// Where a value of the model lives while it is live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ValueHome {
    /// Byte address in the NPU's activation buffer.
    Act(u32),
    /// Byte address in system SRAM.
    Sram(u32),
    /// Spilled: byte address in off-chip memory.
    Dram(u32),
}

/// How one layer's weights are stored off-chip.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightStorage {
    /// Layer name.
    pub layer: String,
    /// Weight values.
    pub values: u64,
    /// Bytes in the packed form.
    pub packed_bytes: u64,
    /// Bytes stored.
    pub stored_bytes: u64,
    /// Encodings of the layer's weight blocks.
    pub encodings: Vec<String>,
}

/// `compiled.ron`: everything about a compiled program but its instructions and data,
/// which are `program.bin`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_VERSION`].
    pub format: u32,
    /// Model name.
    pub model: String,
    /// Quantization scheme name.
    pub scheme: String,
    /// Name of the hardware description it was compiled for.
    pub hw: String,
    /// Instructions in the program.
    pub instructions: usize,
    /// The input tensor.
    pub input: TensorIo,
    /// The output tensor.
    pub output: TensorIo,
    /// Layer names, in program order.
    pub layers: Vec<String>,
    /// For every instruction, the index in `layers` of its layer.
    pub owner: Vec<usize>,
    /// Home of every value of the model.
    pub homes: Vec<ValueHome>,
    /// Bytes of the activation buffer holding resident values.
    pub resident_bytes: u32,
    /// Staging zone of the activation buffer: `(base, bytes)`.
    pub staging: (u32, u32),
    /// Peak bytes of system SRAM in use.
    pub sram_bytes: u32,
    /// Bytes of off-chip memory holding spilled activations (its last bytes).
    #[serde(default)]
    pub spill_bytes: u32,
    /// Weight storage per layer.
    pub weights: Vec<WeightStorage>,
    /// Layers the host CPU runs (`host id=` their index in the model's layers).
    #[serde(default)]
    pub host: Vec<HostEntry>,
    /// CRC-32 of the program's encoding (`program.bin`).
    pub program_crc32: u32,
    /// CRC-32 of the quantized model's encoding (`model.npuq`).
    pub model_crc32: u32,
    /// CRC-32 of the hardware description's RON text (`hw.ron`).
    pub hw_crc32: u32,
}

/// The CRC-32 of a program's encoding (what `program.bin` holds), as the manifest
/// records it.
pub fn program_crc32(program: &npu_isa::Program) -> Result<u32> {
    let bytes = program.to_bytes().map_err(|e| Error::Invalid(format!("cannot encode the program: {e}")))?;
    Ok(crc32fast::hash(&bytes))
}

/// The CRC-32s of what a compilation is made of: the program, the model and the hardware.
fn digests(program: &npu_isa::Program, q: &QModel, hw: &HwConfig) -> Result<(u32, u32, u32)> {
    let program = program_crc32(program)?;
    let model = crc32fast::hash(&npu_quant::npuq::encode(q)?);
    Ok((program, model, crc32fast::hash(hw.to_ron().as_bytes())))
}

/// A layer the host CPU runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostEntry {
    /// Index in the quantized model's layers.
    pub layer: usize,
    /// Layer name.
    pub name: String,
    /// Why the NPU does not run it.
    pub reason: String,
}

fn tensor_io(io: Io, v: &QValue) -> TensorIo {
    TensorIo {
        memory: io.memory,
        addr: io.addr,
        bytes: io.len,
        shape: v.shape.clone(),
        dtype: dtype_name(v.q.dtype).into(),
        scale: v.q.scale,
        zero_point: v.q.zero_point,
    }
}

fn dtype_name(t: ActType) -> &'static str {
    match t {
        ActType::I8 => "i8",
        ActType::U8 => "u8",
        ActType::I4 => "i4",
    }
}

impl Compiled {
    /// The manifest of this compilation of `q` for `hw`.
    pub fn manifest(&self, q: &QModel, hw: &HwConfig) -> Result<Manifest> {
        let (program_crc32, model_crc32, hw_crc32) = digests(&self.program, q, hw)?;
        Ok(Manifest {
            program_crc32,
            model_crc32,
            hw_crc32,
            format: MANIFEST_VERSION,
            model: q.name.clone(),
            scheme: q.scheme.name.clone(),
            hw: hw.name.clone(),
            instructions: self.program.code.len(),
            input: tensor_io(self.input, &q.values[0]),
            output: tensor_io(self.output, &q.values[q.output]),
            layers: self.layers.clone(),
            owner: self.owner.clone(),
            homes: self
                .memory
                .homes
                .iter()
                .map(|h| match *h {
                    Home::Act(a) => ValueHome::Act(a),
                    Home::Sram(a) => ValueHome::Sram(a),
                    Home::Dram(a) => ValueHome::Dram(a),
                })
                .collect(),
            resident_bytes: self.memory.resident_bytes,
            staging: self.memory.staging,
            sram_bytes: self.memory.sram_bytes,
            spill_bytes: self.memory.spill_bytes,
            weights: self
                .coding
                .iter()
                .map(|c| WeightStorage {
                    layer: c.layer.clone(),
                    values: c.values,
                    packed_bytes: c.packed_bytes,
                    stored_bytes: c.stored_bytes,
                    encodings: c.encodings.clone(),
                })
                .collect(),
            host: self
                .host
                .iter()
                .map(|h| HostEntry { layer: h.layer, name: h.name.clone(), reason: h.reason.clone() })
                .collect(),
        })
    }

    /// A compilation read back: `program` (from `program.bin`) with its manifest, checked
    /// against the quantized model and hardware it claims — versions, instruction count,
    /// layer map, value homes, and the input and output tensors (shape, type, scale,
    /// zero point, and a region inside system SRAM). `origin` names the manifest in
    /// messages.
    pub fn from_artifact(program: Program, m: Manifest, q: &QModel, hw: &HwConfig, origin: &str) -> Result<Compiled> {
        let bad = |msg: String| Error::Invalid(format!("{origin}: {msg}"));
        if m.format != MANIFEST_VERSION {
            return Err(bad(format!("manifest format {} is not supported (expected {MANIFEST_VERSION})", m.format)));
        }
        q.validate()?;
        if m.hw != hw.name {
            return Err(bad(format!("compiled for hardware `{}`, but the description given is `{}`", m.hw, hw.name)));
        }
        if m.model != q.name {
            return Err(bad(format!(
                "compiled from model `{}`, but the quantized model given is `{}`",
                m.model, q.name
            )));
        }
        let n = program.code.len();
        if m.instructions != n || m.owner.len() != n {
            return Err(bad(format!(
                "describes {} instructions ({} layer owners); the program has {n}",
                m.instructions,
                m.owner.len()
            )));
        }
        if let Some((i, o)) = m.owner.iter().enumerate().find(|(_, o)| **o >= m.layers.len()) {
            return Err(bad(format!("instruction {i} belongs to layer {o}, but there are {} layers", m.layers.len())));
        }
        if m.homes.len() != q.values.len() {
            return Err(bad(format!("gives homes for {} values; the model has {}", m.homes.len(), q.values.len())));
        }
        let io_values = [("input", &m.input, &q.values[0], 0), ("output", &m.output, &q.values[q.output], q.output)];
        for (what, io, v, value) in io_values {
            let want = tensor_io(Io { memory: io.memory, addr: io.addr, len: io.bytes }, v);
            if *io != want {
                return Err(bad(format!("its {what} tensor {io:?} does not match the model's ({want:?})")));
            }
            let elems: usize = v.shape.iter().product();
            if io.bytes as usize != elems {
                return Err(bad(format!("its {what} is {} bytes; the tensor has {elems} elements", io.bytes)));
            }
            let (room, memory) = match io.memory {
                IoMemory::Sram => (hw.memories.sram.bytes, "system SRAM"),
                IoMemory::Dram => (hw.memories.dram.bytes, "off-chip memory"),
            };
            if u64::from(io.addr) + u64::from(io.bytes) > u64::from(room) {
                return Err(bad(format!(
                    "its {what} [{:#x}, +{}) lies outside the {room} bytes of {memory}",
                    io.addr, io.bytes
                )));
            }
            // The program reads the input and writes the output at their homes.
            let home = match io.memory {
                IoMemory::Sram => ValueHome::Sram(io.addr),
                IoMemory::Dram => ValueHome::Dram(io.addr),
            };
            if m.homes[value] != home {
                return Err(bad(format!(
                    "its {what} is at {home:?}, but the program has it at {:?} (`homes`)",
                    m.homes[value]
                )));
            }
        }
        for h in &m.host {
            if q.layers.get(h.layer).is_none_or(|l| l.name != h.name) {
                return Err(bad(format!(
                    "places layer {} (`{}`) on the host CPU, but the model's layer {} is {}",
                    h.layer,
                    h.name,
                    h.layer,
                    q.layers.get(h.layer).map_or("missing".to_string(), |l| format!("`{}`", l.name))
                )));
            }
        }
        for (i, instr) in program.code.iter().enumerate() {
            if let npu_isa::Op::Host(c) = &instr.op {
                if !m.host.iter().any(|h| h.layer == c.id as usize) {
                    return Err(bad(format!(
                        "instruction {i} calls host operation {}, which the manifest does not place on the host CPU",
                        c.id
                    )));
                }
            }
        }
        // Checksums last: a program or manifest that does not fit is named by what is
        // wrong; one that fits but changed by a byte, by its checksum.
        let (program_crc32, model_crc32, hw_crc32) = digests(&program, q, hw)?;
        for (what, stored, actual, advice) in [
            ("the program", m.program_crc32, program_crc32, "it changed after it was compiled"),
            ("the quantized model", m.model_crc32, model_crc32, "it is not the model the program was compiled from"),
            ("the hardware description", m.hw_crc32, hw_crc32, "it is not the one the program was compiled for"),
        ] {
            if stored != actual {
                return Err(bad(format!(
                    "{what} has checksum {actual:08x}, the manifest {stored:08x}: {advice}; compile again"
                )));
            }
        }
        Ok(Compiled {
            host: m
                .host
                .iter()
                .map(|h| HostLayer { layer: h.layer, name: h.name.clone(), reason: h.reason.clone() })
                .collect(),
            program,
            input: Io { memory: m.input.memory, addr: m.input.addr, len: m.input.bytes },
            output: Io { memory: m.output.memory, addr: m.output.addr, len: m.output.bytes },
            layers: m.layers,
            owner: m.owner,
            memory: MemoryPlan {
                homes: m
                    .homes
                    .iter()
                    .map(|h| match *h {
                        ValueHome::Act(a) => Home::Act(a),
                        ValueHome::Sram(a) => Home::Sram(a),
                        ValueHome::Dram(a) => Home::Dram(a),
                    })
                    .collect(),
                resident_bytes: m.resident_bytes,
                staging: m.staging,
                sram_bytes: m.sram_bytes,
                spill_bytes: m.spill_bytes,
                io: crate::memory::io_values(q),
            },
            coding: m
                .weights
                .into_iter()
                .map(|w| LayerCoding {
                    layer: w.layer,
                    values: w.values,
                    packed_bytes: w.packed_bytes,
                    stored_bytes: w.stored_bytes,
                    encodings: w.encodings,
                })
                .collect(),
        })
    }
}

impl Manifest {
    /// The manifest as RON text.
    pub fn to_ron(&self) -> Result<String> {
        ron::ser::to_string_pretty(self, ron::ser::PrettyConfig::new().struct_names(true))
            .map_err(|e| Error::Invalid(format!("cannot write the manifest of {}: {e}", self.model)))
    }

    /// Parses a manifest; errors name `origin`, line and column.
    pub fn from_ron(text: &str, origin: &str) -> Result<Manifest> {
        ron::from_str(text)
            .map_err(|e| Error::Invalid(format!("{origin}:{}:{}: {}", e.span.start.line, e.span.start.col, e.code)))
    }
}
