//! The compiler: a [`QModel`] to an ISA program for a given hardware description.
//!
//! ```text
//!  QModel ──[layout]──▶ SRAM address of every activation (HWC bytes), DRAM image of
//!     │                 packed weights, requantization tables and zero points
//!     └──[lower, per layer and tile]──▶ Vec<Instr> ──[emit]──▶ npu_isa::Program
//! ```
//!
//! This first version is built for exactness, not speed: activations go through system
//! SRAM between layers, each layer loads its weights and tables once per block of
//! output channels that fits the buffers, tiles output rows to fit the activation and
//! accumulator buffers, and the instructions run strictly one after another (each
//! waits for the token of the one before, [`Emitter::push`]). Overlap — double
//! buffering, weights kept resident, activations kept on-chip — is the next step; the
//! simulator's cycle counts for these programs are therefore upper bounds.
//!
//! Layers the hardware cannot run — a MAC mode it lacks, a multiplier on shift-only
//! hardware, shapes beyond the ISA's fields — are compile errors naming the layer and
//! the missing capability.

use npu_hw::HwConfig;
use npu_isa::arith::{pack, Packing};
use npu_isa::{
    ActType as IsaAct, Conv, ExtSpace, Instr, Ld, LocalSpace, Lut, MacMode, Mm, Op, OutType, Pool, PoolKind, Program,
    Rq, RqMode, Segment, Space, St, StoreSpace, Unit, UnitSet, Unpack, Vadd, Wzp,
};

use crate::error::{Error, Result};
use crate::quant::{ActType, QLayer, QModel, QOp, Requant, RoundingMode, WeightBits, WeightedLayer};

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
    /// Per layer: (name, index of its first instruction).
    pub layers: Vec<(String, usize)>,
}

impl Compiled {
    /// The program with one quantized input sample (CHW integers, as the integer
    /// executor takes them) placed in SRAM.
    pub fn with_input(&self, q: &QModel, input: &[i32]) -> Program {
        let mut p = self.program.clone();
        p.data.push(Segment {
            space: Space::Sram,
            addr: self.input.addr,
            bytes: to_hwc_bytes(input, &q.values[0].shape),
        });
        p
    }

    /// The assembly listing with a comment before each layer's instructions.
    pub fn listing(&self) -> String {
        let text = npu_isa::disassemble(&self.program);
        let mut out = String::new();
        let mut idx = 0usize;
        let mut in_code = false;
        for line in text.lines() {
            if line == ".text" {
                in_code = true;
                out.push_str(line);
                out.push('\n');
                continue;
            }
            if line.starts_with(".data") {
                in_code = false;
            }
            if in_code {
                for (name, at) in &self.layers {
                    if *at == idx {
                        out.push_str(&format!("    ; layer {name}\n"));
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

/// Builds the instruction stream, chaining every instruction to the one before.
struct Emitter {
    code: Vec<Instr>,
    dram: Vec<u8>,
}

fn unit_of(op: &Op) -> Option<Unit> {
    match op {
        Op::Ld(_) => Some(Unit::Ld),
        Op::St(_) => Some(Unit::St),
        Op::Conv(_) | Op::Mm(_) | Op::Wzp(_) => Some(Unit::Mac),
        Op::Rq(_) => Some(Unit::Rq),
        Op::Vadd(_) | Op::Vsub(_) | Op::Vmul(_) | Op::Pool(_) | Op::Lut(_) => Some(Unit::Vector),
        Op::SyncOp(s) => Some(s.unit),
        _ => None,
    }
}

impl Emitter {
    /// Appends `op`; it waits for the previous instruction when that ran on another unit
    /// (which signals it), so the program runs in order whatever the timing.
    fn push(&mut self, op: Op) {
        let u = unit_of(&op);
        let mut wait = UnitSet::NONE;
        if let (Some(prev), Some(u)) = (self.code.last_mut(), u) {
            if let Some(pu) = unit_of(&prev.op) {
                if pu != u {
                    prev.signal = prev.signal.with(u);
                    wait = UnitSet::one(pu);
                }
            }
        }
        self.code.push(Instr { op, wait, signal: UnitSet::NONE });
    }

    /// Appends bytes to the DRAM image, 4-byte aligned; returns their address.
    fn constant(&mut self, bytes: &[u8]) -> u32 {
        while !self.dram.len().is_multiple_of(4) {
            self.dram.push(0);
        }
        let at = self.dram.len() as u32;
        self.dram.extend_from_slice(bytes);
        at
    }

    fn load(&mut self, ext: ExtSpace, src: u32, loc: LocalSpace, dst: u32, elems: u32, unpack: Unpack) {
        self.push(Op::Ld(Ld {
            ext,
            src,
            loc,
            dst,
            n2: 1,
            n1: 1,
            n0: 1,
            elem: elems,
            s2: 0,
            s1: 0,
            s0: 0,
            pt: 0,
            pb: 0,
            pl: 0,
            pr: 0,
            pv: 0,
            unpack,
        }));
    }

    fn store(&mut self, src: u32, dst: u32, elems: u32) {
        self.push(Op::St(St {
            loc: StoreSpace::Act,
            src,
            ext: ExtSpace::Sram,
            dst,
            n2: 1,
            n1: 1,
            n0: 1,
            elem: elems,
            s2: 0,
            s1: 0,
            s0: 0,
        }));
    }
}

fn err(layer: &str, msg: impl std::fmt::Display) -> Error {
    Error::Graph(format!("cannot compile layer `{layer}`: {msg}"))
}

fn field(v: usize, max: usize, layer: &str, what: &str) -> Result<u32> {
    if v > max {
        return Err(err(layer, format!("{what} {v} exceeds the ISA's limit of {max}")));
    }
    Ok(v as u32)
}

fn mac_mode(bits: WeightBits) -> (MacMode, Option<Packing>, Unpack) {
    match bits {
        WeightBits::B8 => (MacMode::I8, None, Unpack::None),
        WeightBits::B4 => (MacMode::I4, Some(Packing::I4), Unpack::I4),
        WeightBits::Ternary => (MacMode::T2, Some(Packing::T2), Unpack::T2),
        WeightBits::Binary => (MacMode::B1, Some(Packing::B1), Unpack::B1),
    }
}

fn isa_types(t: ActType) -> (IsaAct, OutType) {
    match t {
        ActType::I8 => (IsaAct::I8, OutType::I8),
        ActType::U8 => (IsaAct::U8, OutType::U8),
    }
}

fn rq_mode(r: &Requant, rounding: RoundingMode) -> RqMode {
    match (r, rounding) {
        (Requant::Shift(_), _) => RqMode::Shift,
        (_, RoundingMode::Double) => RqMode::Mul,
        (_, RoundingMode::Single) => RqMode::Mul1,
    }
}

/// Requantization records (bias, multiplier, shift; 12 bytes) of channels `c0..c1`.
fn rq_records(layer: &WeightedLayer, c0: usize, c1: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity((c1 - c0) * 12);
    for c in c0..c1 {
        let (m, s) = match &layer.requant {
            Requant::Multiplier(v) => v[c.min(v.len() - 1)],
            Requant::Shift(v) => (0, v[c.min(v.len() - 1)]),
        };
        for word in [layer.bias[c], m, s] {
            out.extend_from_slice(&word.to_le_bytes());
        }
    }
    out
}

fn weight_bytes(values: &[i32], packing: Option<Packing>, layer: &str) -> Result<Vec<u8>> {
    match packing {
        None => Ok(values.iter().map(|v| *v as i8 as u8).collect()),
        Some(p) => {
            let v: Vec<i64> = values.iter().map(|x| i64::from(*x)).collect();
            pack(&v, p).map_err(|e| err(layer, e))
        }
    }
}

/// The hardware checks every weighted layer needs.
fn check_weighted(
    hw: &HwConfig,
    name: &str,
    layer: &WeightedLayer,
    rounding: RoundingMode,
) -> Result<(MacMode, Option<Packing>, Unpack, RqMode)> {
    let (mode, packing, unpack) = mac_mode(layer.bits);
    if !hw.supports(mode) {
        return Err(err(name, format!("the hardware `{}` has no `{mode}` mode in its MAC array", hw.name)));
    }
    let rq = rq_mode(&layer.requant, rounding);
    if rq != RqMode::Shift && !hw.requant.multiplier {
        return Err(err(
            name,
            format!("the hardware `{}` has no requantization multiplier (quantize with power-of-two scales)", hw.name),
        ));
    }
    Ok((mode, packing, unpack, rq))
}

/// Compiles a quantized model for `hw`.
pub fn compile(q: &QModel, hw: &HwConfig) -> Result<Compiled> {
    q.validate()?;
    // SRAM layout: one region per value; a reshape without clamp aliases its input.
    let alias = |l: &QLayer| matches!(l.op, QOp::Reshape) && l.clamp == q.values[l.output].q.dtype.range();
    let mut addr = vec![0u32; q.values.len()];
    let mut next = 0usize;
    for (i, v) in q.values.iter().enumerate() {
        if let Some(l) = q.layers.iter().find(|l| l.output == i && alias(l)) {
            addr[i] = addr[l.inputs[0]];
            continue;
        }
        addr[i] = next as u32;
        next = (next + v.shape.iter().product::<usize>()).next_multiple_of(16);
    }
    if next > hw.memories.sram.bytes as usize {
        return Err(Error::Graph(format!(
            "the activations need {next} bytes of system SRAM; `{}` has {}",
            hw.name, hw.memories.sram.bytes
        )));
    }
    let mut e = Emitter { code: Vec::new(), dram: Vec::new() };
    let mut layers = Vec::new();
    for l in q.layers.iter().filter(|l| !alias(l)) {
        layers.push((l.name.clone(), e.code.len()));
        lower(&mut e, q, hw, l, &addr)?;
    }
    if e.dram.len() > hw.memories.dram.bytes as usize {
        return Err(Error::Graph(format!(
            "the weights need {} bytes of off-chip memory; `{}` has {}",
            e.dram.len(),
            hw.name,
            hw.memories.dram.bytes
        )));
    }
    e.code.push(Instr::new(Op::Halt(npu_isa::Halt {})));
    tracing::debug!(instructions = e.code.len(), dram = e.dram.len(), "compiled");
    let len = |v: usize| q.values[v].shape.iter().product::<usize>() as u32;
    Ok(Compiled {
        program: Program { code: e.code, data: vec![Segment { space: Space::Dram, addr: 0, bytes: e.dram }] },
        input: Io { addr: addr[0], len: len(0) },
        output: Io { addr: addr[q.output], len: len(q.output) },
        layers,
    })
}

/// For a flat value made by flattening a `[C, H, W]` tensor (stored HWC), the CHW
/// shape it came from.
fn flattened_from(q: &QModel, v: usize) -> Option<Vec<usize>> {
    let l = q.layers.iter().find(|l| l.output == v)?;
    if !matches!(l.op, QOp::Reshape) {
        return None;
    }
    let src = &q.values[l.inputs[0]].shape;
    if src.len() == 3 {
        Some(src.clone())
    } else {
        flattened_from(q, l.inputs[0])
    }
}

fn lower(e: &mut Emitter, q: &QModel, hw: &HwConfig, l: &QLayer, addr: &[u32]) -> Result<()> {
    let name = l.name.as_str();
    let xin = &q.values[l.inputs[0]];
    let out = &q.values[l.output];
    let (at, _) = isa_types(xin.q.dtype);
    let (ty, ot) = isa_types(out.q.dtype);
    let (lo, hi) = l.clamp;
    let act = hw.buffers.act.bytes as usize;
    let acc_words = hw.buffers.acc.bytes as usize / 4;
    let wgt = hw.buffers.wgt.bytes as usize;
    let par = hw.buffers.par.bytes as usize;
    let x_addr = addr[l.inputs[0]] as usize;
    let o_addr = addr[l.output] as usize;
    match &l.op {
        QOp::Conv2d { stride, pad, dilation, groups, layer } => {
            let (c, h, w) = (xin.shape[0], xin.shape[1], xin.shape[2]);
            let (co, oh, ow) = (out.shape[0], out.shape[1], out.shape[2]);
            let (kh, kw) = (layer.shape[2], layer.shape[3]);
            let depthwise = *groups > 1 && *groups == c && co == c && layer.shape[1] == 1;
            if *groups > 1 && !depthwise {
                return Err(err(name, format!("grouped convolution ({groups} groups) other than depthwise")));
            }
            if pad.iter().any(|p| *p > 15) || kh > 15 || kw > 15 || stride.iter().chain(dilation).any(|s| *s > 7) {
                return Err(err(name, "kernel, stride, dilation or padding beyond the ISA's fields"));
            }
            let (mode, packing, unpack, rqm) = check_weighted(hw, name, layer, q.scheme.rounding)?;
            let needs_wzp = layer.w_zero.iter().any(|z| *z != 0);
            let k = if depthwise { kh * kw } else { kh * kw * c };
            // Output channels per block: weights, records and zero points must fit.
            let mut cb = co;
            while cb > 1 && (cb * k > wgt || cb * 16 > par) {
                cb = cb.div_ceil(2);
            }
            if cb * k > wgt {
                return Err(err(
                    name,
                    format!("one output channel needs {k} weight bytes; the weight buffer has {wgt}"),
                ));
            }
            // Output rows per tile: the padded input rows and the output tile share the
            // activation buffer; the accumulators must fit too.
            let pw = w + pad[1] + pad[3];
            let eff = dilation[0] * (kh - 1) + 1;
            let in_c = c;
            let fits = |th: usize, nb: usize| {
                let rows = (th - 1) * stride[0] + eff;
                rows * pw * in_c + th * ow * nb <= act && th * ow * nb <= acc_words
            };
            let mut th = oh;
            while th > 1 && !fits(th, cb) {
                th -= 1;
            }
            if !fits(th, cb) {
                return Err(err(name, "one output row does not fit the local buffers"));
            }
            for c0 in (0..co).step_by(cb) {
                let c1 = (c0 + cb).min(co);
                let nb = c1 - c0;
                // ISA weight layout: [co][ky][kx][ci], depthwise [ky][kx][c].
                let mut wv = Vec::with_capacity(nb * k);
                if depthwise {
                    for ky in 0..kh {
                        for kx in 0..kw {
                            for o in c0..c1 {
                                wv.push(layer.weights[(o * kh + ky) * kw + kx]);
                            }
                        }
                    }
                } else {
                    for o in c0..c1 {
                        for ky in 0..kh {
                            for kx in 0..kw {
                                for ci in 0..c {
                                    wv.push(layer.weights[((o * c + ci) * kh + ky) * kw + kx]);
                                }
                            }
                        }
                    }
                }
                let wsrc = e.constant(&weight_bytes(&wv, packing, name)?);
                e.load(ExtSpace::Dram, wsrc, LocalSpace::Wgt, 0, wv.len() as u32, unpack);
                let psrc = e.constant(&rq_records(layer, c0, c1));
                e.load(ExtSpace::Dram, psrc, LocalSpace::Par, 0, (nb * 12) as u32, Unpack::None);
                let zp_at = (nb * 12) as u32;
                if needs_wzp {
                    let zb: Vec<u8> = layer.w_zero[c0..c1].iter().flat_map(|z| z.to_le_bytes()).collect();
                    let zsrc = e.constant(&zb);
                    e.load(ExtSpace::Dram, zsrc, LocalSpace::Par, zp_at, (nb * 4) as u32, Unpack::None);
                }
                for r0 in (0..oh).step_by(th) {
                    let r1 = (r0 + th).min(oh);
                    let rows = r1 - r0;
                    let top = (r0 * stride[0]) as isize - pad[0] as isize;
                    let bot = ((r1 - 1) * stride[0] + eff) as isize - pad[0] as isize;
                    let (s_top, s_bot) = (top.max(0) as usize, bot.min(h as isize).max(0) as usize);
                    let (pt, pb) = ((s_top as isize - top) as usize, (bot - s_bot as isize) as usize);
                    let in_rows = pt + (s_bot - s_top) + pb;
                    if pt > 15 || pb > 15 {
                        return Err(err(name, "padding beyond the ISA's fields"));
                    }
                    e.push(Op::Ld(Ld {
                        ext: ExtSpace::Sram,
                        src: (x_addr + s_top * w * c) as u32,
                        loc: LocalSpace::Act,
                        dst: 0,
                        n2: 1,
                        n1: field(s_bot - s_top, 4095, name, "input rows")?,
                        n0: field(w, 4095, name, "input width")?,
                        elem: field(c, 1 << 20, name, "channels")?,
                        s2: 0,
                        s1: (w * c) as u32,
                        s0: field(c, (1 << 24) - 1, name, "channels")?,
                        pt: pt as u32,
                        pb: pb as u32,
                        pl: pad[1] as u32,
                        pr: pad[3] as u32,
                        pv: xin.q.zero_point,
                        unpack: Unpack::None,
                    }));
                    let conv = Conv {
                        mode,
                        accum: 0,
                        at,
                        dw: u32::from(depthwise),
                        ifm: if depthwise { c0 as u32 } else { 0 },
                        ih: field(in_rows, 4095, name, "tile height")?,
                        iw: field(pw, 4095, name, "tile width")?,
                        cin: field(if depthwise { nb } else { c }, 4095, name, "channels")?,
                        ps: if depthwise { field(c, 4095, name, "pixel stride")? } else { 0 },
                        wgt: 0,
                        kh: kh as u32,
                        kw: kw as u32,
                        sy: stride[0] as u32,
                        sx: stride[1] as u32,
                        dy: dilation[0] as u32,
                        dx: dilation[1] as u32,
                        cout: field(nb, 4095, name, "output channels")?,
                        dst: 0,
                    };
                    e.push(Op::Conv(conv));
                    if needs_wzp {
                        e.push(Op::Wzp(Wzp {
                            at,
                            dw: conv.dw,
                            ifm: conv.ifm,
                            ih: conv.ih,
                            iw: conv.iw,
                            cin: conv.cin,
                            ps: conv.ps,
                            kh: conv.kh,
                            kw: conv.kw,
                            sy: conv.sy,
                            sx: conv.sx,
                            dy: conv.dy,
                            dx: conv.dx,
                            cout: conv.cout,
                            zp: zp_at,
                            dst: 0,
                        }));
                    }
                    let out_at = (act - rows * ow * nb) as u32;
                    e.push(Op::Rq(Rq {
                        mode: rqm,
                        pc: 1,
                        ot,
                        src: 0,
                        n: field(rows * ow, 65535, name, "pixels per tile")?,
                        c: nb as u32,
                        par: 0,
                        dst: out_at,
                        ps: 0,
                        zo: out.q.zero_point,
                        lo,
                        hi,
                    }));
                    e.push(Op::St(St {
                        loc: StoreSpace::Act,
                        src: out_at,
                        ext: ExtSpace::Sram,
                        dst: (o_addr + r0 * ow * co + c0) as u32,
                        n2: 1,
                        n1: rows as u32,
                        n0: ow as u32,
                        elem: nb as u32,
                        s2: 0,
                        s1: (ow * co) as u32,
                        s0: co as u32,
                    }));
                }
            }
            Ok(())
        }
        QOp::Dense { layer } => {
            let (kin, n_out) = (layer.shape[1], layer.shape[0]);
            let (mode, packing, unpack, rqm) = check_weighted(hw, name, layer, q.scheme.rounding)?;
            // Weights are [out][in] over the CHW flattening; activations are stored HWC.
            let perm: Vec<usize> = match flattened_from(q, l.inputs[0]) {
                Some(s) if s[1] * s[2] > 1 => {
                    let (c, h, w) = (s[0], s[1], s[2]);
                    (0..kin).map(|i| (i % c) * h * w + i / c).collect()
                }
                _ => (0..kin).collect(),
            };
            if kin > 65535 || kin > act / 2 {
                return Err(err(name, format!("{kin} inputs do not fit the activation buffer or the ISA")));
            }
            let needs_wzp = layer.w_zero.iter().any(|z| *z != 0);
            let mut nb = n_out;
            while nb > 1 && (nb * kin > wgt || nb * 16 > par) {
                nb = nb.div_ceil(2);
            }
            if nb * kin > wgt {
                return Err(err(name, format!("one output needs {kin} weight bytes; the weight buffer has {wgt}")));
            }
            e.load(ExtSpace::Sram, x_addr as u32, LocalSpace::Act, 0, kin as u32, Unpack::None);
            for c0 in (0..n_out).step_by(nb) {
                let c1 = (c0 + nb).min(n_out);
                let cnt = c1 - c0;
                let wv: Vec<i32> = (c0..c1)
                    .flat_map(|o| perm.iter().map(move |&p| (o, p)))
                    .map(|(o, p)| layer.weights[o * kin + p])
                    .collect();
                let wsrc = e.constant(&weight_bytes(&wv, packing, name)?);
                e.load(ExtSpace::Dram, wsrc, LocalSpace::Wgt, 0, wv.len() as u32, unpack);
                let psrc = e.constant(&rq_records(layer, c0, c1));
                e.load(ExtSpace::Dram, psrc, LocalSpace::Par, 0, (cnt * 12) as u32, Unpack::None);
                e.push(Op::Mm(Mm { mode, accum: 0, at, a: 0, b: 0, c: 0, m: 1, k: kin as u32, n: cnt as u32 }));
                if needs_wzp {
                    let zb: Vec<u8> = layer.w_zero[c0..c1].iter().flat_map(|z| z.to_le_bytes()).collect();
                    let zsrc = e.constant(&zb);
                    let zp_at = (cnt * 12) as u32;
                    e.load(ExtSpace::Dram, zsrc, LocalSpace::Par, zp_at, (cnt * 4) as u32, Unpack::None);
                    e.push(Op::Wzp(Wzp {
                        at,
                        dw: 0,
                        ifm: 0,
                        ih: 1,
                        iw: 1,
                        cin: kin as u32,
                        ps: 0,
                        kh: 1,
                        kw: 1,
                        sy: 1,
                        sx: 1,
                        dy: 1,
                        dx: 1,
                        cout: cnt as u32,
                        zp: zp_at,
                        dst: 0,
                    }));
                }
                let out_at = (act - cnt) as u32;
                e.push(Op::Rq(Rq {
                    mode: rqm,
                    pc: 1,
                    ot,
                    src: 0,
                    n: 1,
                    c: cnt as u32,
                    par: 0,
                    dst: out_at,
                    ps: 0,
                    zo: out.q.zero_point,
                    lo,
                    hi,
                }));
                e.store(out_at, (o_addr + c0) as u32, cnt as u32);
            }
            Ok(())
        }
        QOp::Add { left_shift, ma, mb, mo } => {
            let b = &q.values[l.inputs[1]];
            let n: usize = out.shape.iter().product();
            let mut rec = Vec::with_capacity(40);
            for v in [
                xin.q.zero_point,
                b.q.zero_point,
                out.q.zero_point,
                *left_shift as i32,
                ma.0,
                ma.1,
                mb.0,
                mb.1,
                mo.0,
                mo.1,
            ] {
                rec.extend_from_slice(&v.to_le_bytes());
            }
            let psrc = e.constant(&rec);
            e.load(ExtSpace::Dram, psrc, LocalSpace::Par, 0, 40, Unpack::None);
            let chunk = act / 3;
            for s in (0..n).step_by(chunk) {
                let len = chunk.min(n - s);
                e.load(ExtSpace::Sram, (x_addr + s) as u32, LocalSpace::Act, 0, len as u32, Unpack::None);
                e.load(
                    ExtSpace::Sram,
                    addr[l.inputs[1]] + s as u32,
                    LocalSpace::Act,
                    chunk as u32,
                    len as u32,
                    Unpack::None,
                );
                let dst = (2 * chunk) as u32;
                e.push(Op::Vadd(Vadd { ty, a: 0, b: chunk as u32, dst, n: len as u32, par: 0, lo, hi }));
                e.store(dst, (o_addr + s) as u32, len as u32);
            }
            Ok(())
        }
        QOp::MaxPool { kernel, stride, pad } | QOp::AvgPool { kernel, stride, pad } => {
            let (c, h, w) = (xin.shape[0], xin.shape[1], xin.shape[2]);
            let (oh, ow) = (out.shape[1], out.shape[2]);
            if h * w * c + oh * ow * c > act
                || kernel.iter().any(|k| *k > 255)
                || stride.iter().any(|s| *s > 15)
                || pad.iter().any(|p| *p > 15)
            {
                return Err(err(name, "the pooling tile exceeds the activation buffer or the ISA's fields"));
            }
            let kind = if matches!(l.op, QOp::MaxPool { .. }) { PoolKind::Max } else { PoolKind::Avg };
            e.load(ExtSpace::Sram, x_addr as u32, LocalSpace::Act, 0, (h * w * c) as u32, Unpack::None);
            let dst = (h * w * c) as u32;
            e.push(Op::Pool(Pool {
                kind,
                ty: at,
                src: 0,
                ih: h as u32,
                iw: w as u32,
                c: c as u32,
                kh: kernel[0] as u32,
                kw: kernel[1] as u32,
                sy: stride[0] as u32,
                sx: stride[1] as u32,
                pt: pad[0] as u32,
                pb: pad[2] as u32,
                pl: pad[1] as u32,
                pr: pad[3] as u32,
                dst,
            }));
            e.store(dst, o_addr as u32, (oh * ow * c) as u32);
            Ok(())
        }
        QOp::GlobalAvgPool => {
            let (c, h, w) = (xin.shape[0], xin.shape[1], xin.shape[2]);
            if h * w * c + c > act || h > 255 || w > 255 {
                return Err(err(name, "the pooling tile exceeds the activation buffer or the ISA's fields"));
            }
            e.load(ExtSpace::Sram, x_addr as u32, LocalSpace::Act, 0, (h * w * c) as u32, Unpack::None);
            let dst = (h * w * c) as u32;
            e.push(Op::Pool(Pool {
                kind: PoolKind::Avg,
                ty: at,
                src: 0,
                ih: h as u32,
                iw: w as u32,
                c: c as u32,
                kh: h as u32,
                kw: w as u32,
                sy: 1,
                sx: 1,
                pt: 0,
                pb: 0,
                pl: 0,
                pr: 0,
                dst,
            }));
            e.store(dst, o_addr as u32, c as u32);
            Ok(())
        }
        QOp::Reshape => {
            let n: usize = out.shape.iter().product();
            let (tlo, thi) = out.q.dtype.range();
            if (lo, hi) == (tlo, thi) {
                // Aliased in the layout (HWC order is kept; a following dense layer
                // permutes its weights instead): nothing to do.
                return Ok(());
            }
            // A standalone ReLU or clip: a lookup table that clamps.
            let table: Vec<u8> = (0..256)
                .map(|i| {
                    let v = match out.q.dtype {
                        ActType::U8 => i,
                        ActType::I8 => i - 128,
                    };
                    v.clamp(lo, hi) as u8
                })
                .collect();
            let tsrc = e.constant(&table);
            e.load(ExtSpace::Dram, tsrc, LocalSpace::Par, 0, 256, Unpack::None);
            let half = act / 2;
            for s in (0..n).step_by(half) {
                let len = half.min(n - s);
                e.load(ExtSpace::Sram, (x_addr + s) as u32, LocalSpace::Act, 0, len as u32, Unpack::None);
                e.push(Op::Lut(Lut { ty, src: 0, dst: half as u32, n: len as u32, table: 0 }));
                e.store(half as u32, (o_addr + s) as u32, len as u32);
            }
            Ok(())
        }
    }
}
