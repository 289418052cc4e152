//! Stage 2: lowering every layer to operations, with local-buffer addresses.
//!
//! Per layer, weights are split into blocks of output channels that fit half the
//! weight buffer and output rows into tiles whose accumulators fit half the
//! accumulator buffer (and, for values in SRAM, whose streamed rows fit a quarter of the
//! staging zone). Local addresses come from ring allocators — one over the weight
//! buffer, one over the parameter buffer, one over the accumulators, one over the
//! staging zone of the activation buffer — so consecutive blocks and tiles land in
//! different places and the scheduler can overlap them (double buffering). Loop order
//! is channel blocks outside, row tiles inside: each weight byte leaves off-chip memory
//! exactly once per inference (the off-chip floor); an input in SRAM is re-read per
//! block, one resident in the activation buffer costs nothing to re-read.
//!
//! Operations carry no dependencies here; the scheduler derives them from what each
//! operation reads and writes.

use npu_hw::HwConfig;
use npu_isa::arith::{pack, Packing};
use npu_isa::{
    ActType as IsaAct, Conv, EwRecord, ExtSpace, Host, Ld, LocalSpace, Lut, MacMode, Mm, Op, OutType, Pool, PoolKind,
    Rq, RqMode, RqRecord, Softmax, St, StoreSpace, Unpack, Vadd, Vsub, Wzp, LUT_BYTES,
};

use super::memory::{chw_ordered, is_alias, Home, MemoryPlan};

/// Where the lowering finds a value: resident in the activation buffer, or at a
/// *system address* of external memory — SRAM at `[0, 2³²)`, off-chip memory at
/// [`DRAM_BASE`] + its address — that [`ext_address`] splits into a DMA transfer's
/// space and address. Within one value, offsets never cross from one to the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Act(u32),
    Ext(u64),
}

/// Where off-chip memory starts in the lowering's system addresses.
const DRAM_BASE: u64 = 1 << 32;

impl From<Home> for Place {
    fn from(h: Home) -> Place {
        match h {
            Home::Act(a) => Place::Act(a),
            Home::Sram(a) => Place::Ext(u64::from(a)),
            Home::Dram(a) => Place::Ext(DRAM_BASE + u64::from(a)),
        }
    }
}

/// The DMA space and address of system address `a` (see [`Place`]).
fn ext_address(a: usize, layer: &str, what: &str) -> Result<(ExtSpace, u32)> {
    let (space, addr) = match (a as u64).checked_sub(DRAM_BASE) {
        Some(d) => (ExtSpace::Dram, d),
        None => (ExtSpace::Sram, a as u64),
    };
    Ok((space, field(addr as usize, u32::MAX, layer, what)?))
}
use crate::error::{Error, Result};
use crate::Schedule;
use npu_hw::blocks::{blocked_cycles, MacKind, MacShape};
use npu_quant::{ActType, QLayer, QModel, QOp, Requant, RoundingMode, WeightBits, WeightedLayer};

/// The lowered program: operations in order, the layer each belongs to, and the
/// off-chip memory image.
pub struct Lowered {
    /// Operations in program order.
    pub ops: Vec<Op>,
    /// Index into `layers` of the layer each operation belongs to.
    pub owner: Vec<usize>,
    /// Names of the lowered layers (aliases need no code and are left out).
    pub layers: Vec<String>,
    /// For each of `layers`, its index in the model's layers.
    pub model_layers: Vec<usize>,
    /// Off-chip memory image: packed weights, requantization records, tables.
    pub dram: Vec<u8>,
    /// How each layer's weights are stored off-chip.
    pub coding: Vec<LayerCoding>,
}

/// Which weight encodings the compiler may use (with a decompressor in the hardware).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightCoding {
    /// The smallest of the packed form and every codec, per weight block.
    #[default]
    Smallest,
    /// Only this codec (for tests of each format), whatever its size.
    Only(npu_isa::Codec),
    /// The packed form only (no decompressor use).
    Packed,
}

/// How one layer's weights are stored off-chip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerCoding {
    /// Layer name.
    pub layer: String,
    /// Weight values.
    pub values: u64,
    /// Bytes in the packed form (`ld` with unpacking: one byte per 8-bit value).
    pub packed_bytes: u64,
    /// Bytes stored (packed, or the compressed streams).
    pub stored_bytes: u64,
    /// Encodings used by the layer's weight blocks (`packed`, `bitmask`, `zrl`, `rice`).
    pub encodings: Vec<String>,
}

/// A ring allocator over `[base, base + size)` of a local buffer.
struct Ring {
    base: usize,
    size: usize,
    next: usize,
}

impl Ring {
    fn new(base: usize, size: usize) -> Ring {
        Ring { base, size, next: base }
    }

    /// `n` bytes at an `align`-aligned address, after the previous allocation or,
    /// when they do not fit before the end, at the start again.
    fn alloc(&mut self, n: usize, align: usize, layer: &str, what: &str) -> Result<u32> {
        let end = self.base + self.size;
        let mut at = self.next.next_multiple_of(align);
        if at + n > end {
            at = self.base.next_multiple_of(align);
        }
        if at + n > end {
            return Err(err(layer, format!("{what} needs {n} bytes; its local buffer region has {}", self.size)));
        }
        self.next = at + n;
        Ok(at as u32)
    }
}

struct Lowerer<'a> {
    q: &'a QModel,
    hw: &'a HwConfig,
    homes: Vec<Place>,
    ops: Vec<Op>,
    owner: Vec<usize>,
    layer: usize,
    dram: Vec<u8>,
    wgt: Ring,
    par: Ring,
    acc: Ring,
    stg: Ring,
    coding: WeightCoding,
    schedule: Schedule,
    stats: Vec<LayerCoding>,
}

/// Lowers every layer of `q` for `hw` with the homes of `plan`; the layers marked in
/// `on_host` (indices of `q.layers`) become `host` calls. A layer that cannot be
/// lowered is an [`Error::Layer`] naming it.
pub fn lower(
    q: &QModel,
    hw: &HwConfig,
    plan: &MemoryPlan,
    coding: WeightCoding,
    schedule: Schedule,
    on_host: &[bool],
) -> Result<Lowered> {
    let b = &hw.buffers;
    let mut lw = Lowerer {
        coding: if hw.has_decompressor() { coding } else { WeightCoding::Packed },
        schedule,
        stats: Vec::new(),
        q,
        hw,
        homes: plan.homes.iter().map(|&h| Place::from(h)).collect(),
        ops: Vec::new(),
        owner: Vec::new(),
        layer: 0,
        dram: Vec::new(),
        wgt: Ring::new(0, b.wgt.bytes as usize),
        par: Ring::new(0, b.par.bytes as usize),
        acc: Ring::new(0, b.acc.bytes as usize),
        stg: Ring::new(plan.staging.0 as usize, plan.staging.1 as usize),
    };
    let mut layers = Vec::new();
    let mut model_layers = Vec::new();
    let order: Vec<usize> = (0..q.layers.len()).filter(|&k| !is_alias(q, &q.layers[k])).collect();
    let host = |k: usize| on_host.get(k).copied().unwrap_or(false);
    let pick = cascades(&mut lw, q, &order, &host)?;
    let mut next = 0;
    while next < order.len() {
        let k = order[next];
        let l = &q.layers[k];
        lw.layer = layers.len();
        layers.push(l.name.clone());
        model_layers.push(k);
        next += 1;
        // The chain of convolutions chosen to run over stripes from here (below).
        let len = pick[next - 1];
        if len >= 2 {
            let chain: Vec<&QLayer> = order[next - 1..next - 1 + len].iter().map(|&j| &q.layers[j]).collect();
            let at = layers.len() - 1;
            lw.cascade(&chain, at, true)
                .map_err(|e| match e {
                    Error::Invalid(message) => Error::Layer { layer: k, message },
                    other => other,
                })?
                .ok_or_else(|| Error::Layer {
                    layer: k,
                    message: format!("cannot compile layer `{}`: its cascade no longer fits", l.name),
                })?;
            for &j in &order[next..next - 1 + len] {
                layers.push(q.layers[j].name.clone());
                model_layers.push(j);
            }
            next += len - 1;
            continue;
        }
        let done = if host(k) { lw.host_call(l, k) } else { lw.lower_layer(l) };
        done.map_err(|e| match e {
            Error::Invalid(message) => Error::Layer { layer: k, message },
            other => other,
        })?;
    }
    Ok(Lowered { ops: lw.ops, owner: lw.owner, layers, model_layers, dram: lw.dram, coding: lw.stats })
}

/// The cascades to lower: for each position in `order`, the length of the chain of
/// convolutions that runs over stripes from there (each after the first the only reader
/// of the one before's output, [`super::memory::cascade_target`], up to
/// [`super::memory::CASCADE_MAX`] layers; 0 for none). Of every chain that fits and pays
/// ([`Lowerer::cascade`]), the disjoint ones with the most modeled cycles saved (on equal
/// savings the earlier).
fn cascades(lw: &mut Lowerer, q: &QModel, order: &[usize], host: &dyn Fn(usize) -> bool) -> Result<Vec<usize>> {
    let m = order.len();
    let mut options: Vec<Vec<(usize, f64)>> = vec![Vec::new(); m];
    for (s, opts) in options.iter_mut().enumerate() {
        let mut chain = vec![order[s]];
        while chain.len() < super::memory::CASCADE_MAX && !host(order[s]) {
            match super::memory::cascade_target(q, chain[chain.len() - 1]) {
                Some(k2) if !host(k2) && order.get(s + chain.len()) == Some(&k2) => chain.push(k2),
                _ => break,
            }
        }
        for len in 2..=chain.len() {
            let ls: Vec<&QLayer> = chain[..len].iter().map(|&j| &q.layers[j]).collect();
            // A layer that cannot be lowered at all is reported by its own lowering.
            if let Ok(Some(saving)) = lw.cascade(&ls, 0, false) {
                opts.push((len, saving));
            }
        }
    }
    let mut best = vec![0f64; m + 1];
    let mut pick = vec![0usize; m];
    for s in (0..m).rev() {
        best[s] = best[s + 1];
        for &(len, saving) in &options[s] {
            if saving + best[s + len] >= best[s] {
                best[s] = saving + best[s + len];
                pick[s] = len;
            }
        }
    }
    Ok(pick)
}

/// Multiply-accumulates of layer `l` (convolutions and dense layers; 0 otherwise).
pub fn layer_macs(q: &QModel, l: &QLayer) -> u64 {
    let out: usize = q.values[l.output].shape.iter().product();
    match &l.op {
        QOp::Conv2d { layer, .. } => (out * layer.shape[1] * layer.shape[2] * layer.shape[3]) as u64,
        QOp::Dense { layer } => (layer.shape[0] * layer.shape[1]) as u64,
        _ => 0,
    }
}

/// A dense HWC block of rows: `rows × width` pixels of `elem` bytes, `row_stride` and
/// `pixel_stride` bytes apart at the source.
struct Rows {
    rows: usize,
    width: usize,
    elem: usize,
    row_stride: usize,
    pixel_stride: usize,
}

/// A convolution's geometry, for weighing tile shapes on a block-based MAC unit.
struct TileShape {
    kind: MacKind,
    /// Output rows and columns.
    out: (usize, usize),
    /// Stored input rows and columns.
    input: (usize, usize),
    /// The window's height and width with dilation.
    window: (usize, usize),
    /// Kernel height and width.
    kernel: (usize, usize),
    stride: [usize; 2],
    /// Padding above and left.
    pad: (usize, usize),
    /// Input channels per group.
    cin: usize,
    /// Output channels per group, and groups.
    channels: (usize, usize),
    /// Whether the input and the output stream through SRAM.
    streams: (bool, bool),
    /// SRAM burst bytes: a run of fewer bytes (a block of channels of a wider pixel)
    /// costs a whole burst.
    burst: usize,
}

impl TileShape {
    /// Tile sizes along `n` in tiles of `t` and how many of each.
    fn splits(n: usize, t: usize) -> [(usize, usize); 2] {
        [(t, n / t), (n % t, 1)]
    }

    /// Input rows read for output rows `r0..r1` along one axis.
    fn span(&self, axis: usize, r0: usize, r1: usize) -> usize {
        let (stride, window, pad, n) = if axis == 0 {
            (self.stride[0], self.window.0, self.pad.0, self.input.0)
        } else {
            (self.stride[1], self.window.1, self.pad.1, self.input.1)
        };
        let top = (r0 * stride) as isize - pad as isize;
        let bot = ((r1 - 1) * stride + window) as isize - pad as isize;
        (bot.min(n as isize).max(0) - top.max(0)).max(0) as usize
    }

    /// Modeled cycles of the convolution in tiles of `th × tw` outputs and blocks of `cb`
    /// channels: the block unit's cycles over every tile and block, or the SRAM traffic
    /// of the tiling (inputs with their halos, read once per block of weights unless
    /// depthwise, and outputs) at `sram_bw`, whichever is larger.
    fn cost(&self, b: &npu_hw::Blocks, th: usize, tw: usize, cb: usize, sram_bw: f64) -> f64 {
        let (oh, ow) = self.out;
        let (cout, groups) = self.channels;
        let depthwise = self.kind == MacKind::Depthwise;
        let mut cycles = 0u64;
        let mut input = 0usize;
        for (r, nr) in Self::splits(oh, th).into_iter().filter(|(r, n)| *r > 0 && *n > 0) {
            for (c, nc) in Self::splits(ow, tw).into_iter().filter(|(c, n)| *c > 0 && *n > 0) {
                for (nb, nn) in Self::splits(cout, cb).into_iter().filter(|(b, n)| *b > 0 && *n > 0) {
                    let shape = MacShape {
                        kind: self.kind,
                        oh: r as u64,
                        ow: c as u64,
                        cout: nb as u64,
                        cin: if depthwise { nb } else { self.cin } as u64,
                        kh: self.kernel.0 as u64,
                        kw: self.kernel.1 as u64,
                        sy: self.stride[0] as u64,
                        sx: self.stride[1] as u64,
                    };
                    cycles += (nr * nc * nn * groups) as u64 * blocked_cycles(b, &shape);
                }
            }
        }
        // A block of channels narrower than the pixel moves in runs of its own bytes.
        let runs = |nb: usize, of: usize| if nb < of { nb.div_ceil(self.burst) * self.burst } else { nb };
        let blocks = Self::splits(cout, cb).into_iter().filter(|(b, n)| *b > 0 && *n > 0);
        let per_pixel_out: usize = blocks.clone().map(|(nb, n)| n * runs(nb, cout * groups)).sum::<usize>() * groups;
        if self.streams.0 {
            let mut pixels = 0;
            for r0 in (0..oh).step_by(th) {
                for x0 in (0..ow).step_by(tw) {
                    let cols = if tw >= ow { self.input.1 } else { self.span(1, x0, (x0 + tw).min(ow)) };
                    pixels += self.span(0, r0, (r0 + th).min(oh)) * cols;
                }
            }
            input = if depthwise {
                pixels * blocks.clone().map(|(nb, n)| n * runs(nb, self.cin)).sum::<usize>()
            } else {
                pixels * runs(self.cin, self.cin * groups) * groups * cout.div_ceil(cb)
            };
        }
        let output = if self.streams.1 { oh * ow * per_pixel_out } else { 0 };
        (cycles as f64).max((input + output) as f64 / sram_bw.max(f64::MIN_POSITIVE))
    }
}

/// A tile of output rows `r0..r1` and columns `x0..x1`.
type Tile = (usize, usize, usize, usize);

/// What every tile of a convolution shares.
#[derive(Clone, Copy)]
struct ConvPlan<'n> {
    name: &'n str,
    mode: MacMode,
    at: IsaAct,
    ot: OutType,
    rqm: RqMode,
    depthwise: bool,
    groups: usize,
    cin_g: usize,
    c: usize,
    h: usize,
    w: usize,
    co: usize,
    oh: usize,
    ow: usize,
    kh: usize,
    kw: usize,
    stride: [usize; 2],
    dilation: [usize; 2],
    pad: [usize; 4],
    eff: usize,
    eff_w: usize,
    pv: i32,
    hin: Place,
    hout: Place,
    zo: i32,
    clamp: (i32, i32),
    /// The first input row a resident input (`Place::Act`) holds: 0, or in a cascade
    /// the first row of the stripe its producer computed.
    in_row0: usize,
    /// The first output row a resident output holds (as `in_row0`).
    out_row0: usize,
    /// In a cascade, where a resident output's rows from the given row on are written a
    /// second time (the next stripe's copy of the rows both stripes read): the address
    /// of that row, which must be in the tile. `None` elsewhere.
    also: Option<(u32, usize)>,
}

/// One stripe of a cascade, per layer of the chain: the output rows the stripe needs
/// (the next layer's window; the last layer's own rows) and those it computes.
struct Stripe {
    need: Vec<(usize, usize)>,
    new: Vec<(usize, usize)>,
}

/// A convolution ready to lower: its plan, weight bytes per output channel (`k`), the
/// channel block the buffers allow, output channels per group and the weights' packing.
struct ConvSetup<'n> {
    cv: ConvPlan<'n>,
    k: usize,
    cb: usize,
    cout_g: usize,
    packing: Option<Packing>,
    unpack: Unpack,
}

impl ConvPlan<'_> {
    /// The stored input a tile reads: first row, rows, first column, columns.
    fn window(&self, t: Tile) -> Result<(usize, usize, usize, usize)> {
        let (r0, r1, x0, x1) = t;
        let (s_top, in_rows, _, _) = tile_rows(r0, r1, self.stride[0], self.eff, self.pad[0], self.h, self.name)?;
        if x1 - x0 == self.ow {
            return Ok((s_top, in_rows, 0, self.w));
        }
        let (s_left, in_cols, _, _) = tile_rows(x0, x1, self.stride[1], self.eff_w, self.pad[1], self.w, self.name)?;
        Ok((s_top, in_rows, s_left, in_cols))
    }

    /// Input bytes loaded for one pass over the output in tiles of `th` rows × `tw`
    /// columns, every input channel of a group.
    fn input_bytes(&self, th: usize, tw: usize) -> Result<usize> {
        let mut n = 0;
        for r0 in (0..self.oh).step_by(th) {
            for x0 in (0..self.ow).step_by(tw) {
                let (_, rows, _, cols) = self.window((r0, (r0 + th).min(self.oh), x0, (x0 + tw).min(self.ow)))?;
                n += rows * cols * self.cin_g;
            }
        }
        Ok(n)
    }
}

/// A block of weights in the local buffers: weights, requantization records, weight
/// zero points.
#[derive(Debug, Clone, Copy)]
struct ConvWeights {
    wgt: u32,
    par: u32,
    zp: Option<u32>,
}

impl Lowerer<'_> {
    /// The tile alignment (rows, columns) of the MAC unit: a block-based unit's
    /// micro-block (columns in pairs of its width, which a one-row block takes), else 1.
    fn block_align(&self) -> (usize, usize) {
        match (&self.hw.mac.dataflow, &self.hw.mac.blocks) {
            (npu_hw::Dataflow::Blocked, Some(b)) => (b.ublock.0 as usize, 2 * b.ublock.1 as usize),
            _ => (1, 1),
        }
    }

    fn op(&mut self, op: Op) {
        self.ops.push(op);
        self.owner.push(self.layer);
    }

    /// Appends bytes to the off-chip image, 4-byte aligned; returns their address.
    fn constant(&mut self, bytes: &[u8]) -> u32 {
        while !self.dram.len().is_multiple_of(4) {
            self.dram.push(0);
        }
        let at = self.dram.len() as u32;
        self.dram.extend_from_slice(bytes);
        at
    }

    /// Places `bytes` off-chip and loads them into `loc` at a fresh ring address.
    fn load_constant(
        &mut self,
        bytes: &[u8],
        elems: usize,
        loc: LocalSpace,
        unpack: Unpack,
        what: &str,
        layer: &str,
    ) -> Result<u32> {
        if loc == LocalSpace::Wgt {
            return self.load_weights(bytes, elems, unpack, what, layer);
        }
        let src = self.constant(bytes);
        let ring = match loc {
            LocalSpace::Wgt => &mut self.wgt,
            LocalSpace::Par => &mut self.par,
            LocalSpace::Acc => &mut self.acc,
            LocalSpace::Act => &mut self.stg,
        };
        let dst = ring.alloc(elems, 4, layer, what)?;
        self.load_flat(src, loc, dst, elems, unpack, what, layer)?;
        Ok(dst)
    }

    /// A DMA-in (`ldw` on hardware with a weight queue, else `ld`) of `elems` contiguous off-chip values at `src` into `dst` of `loc`.
    #[allow(clippy::too_many_arguments)]
    fn load_flat(
        &mut self,
        src: u32,
        loc: LocalSpace,
        dst: u32,
        elems: usize,
        unpack: Unpack,
        what: &str,
        layer: &str,
    ) -> Result<()> {
        let ld = Ld {
            ext: ExtSpace::Dram,
            src,
            loc,
            dst,
            n2: 1,
            n1: 1,
            n0: 1,
            elem: field(elems, (1 << 20) - 1, layer, what)?,
            s2: 0,
            s1: 0,
            s0: 0,
            pt: 0,
            pb: 0,
            pl: 0,
            pr: 0,
            pv: 0,
            unpack,
        };
        // Constants (weights, records, tables) take the weight queue where there is one.
        self.op(if self.hw.dma.weight_queue { Op::Ldw(ld.into()) } else { Op::Ld(ld) });
        Ok(())
    }

    /// Places a weight block off-chip in its smallest allowed encoding — packed (loaded
    /// by `ld`, unpacking) or a compressed stream (loaded by `ldz` through the
    /// decompressor) — and loads it into the weight buffer; records the choice.
    fn load_weights(&mut self, bytes: &[u8], elems: usize, unpack: Unpack, what: &str, layer: &str) -> Result<u32> {
        let values: Vec<i8> = match unpack_packing(unpack) {
            None => bytes.iter().map(|b| *b as i8).collect(),
            Some(p) => npu_isa::arith::unpack(bytes, elems, p).map_err(|e| err(layer, e))?,
        };
        let candidates: Vec<npu_isa::Codec> = match self.coding {
            WeightCoding::Packed => Vec::new(),
            WeightCoding::Only(c) => vec![c],
            WeightCoding::Smallest => npu_isa::Codec::ALL.to_vec(),
        };
        let mut best: Option<(npu_isa::Codec, Vec<u8>)> = None;
        for c in candidates {
            let e = npu_isa::codec::encode(&values, c);
            let forced = matches!(self.coding, WeightCoding::Only(_));
            if (forced || e.len() < bytes.len()) && best.as_ref().is_none_or(|(_, b)| e.len() < b.len()) {
                best = Some((c, e));
            }
        }
        let name = layer.to_string();
        let stored = best.as_ref().map_or(bytes.len(), |(_, e)| e.len());
        let encoding = best.as_ref().map_or("packed".to_string(), |(c, _)| c.name().to_string());
        match self.stats.iter_mut().find(|s| s.layer == name) {
            Some(s) => {
                s.values += elems as u64;
                s.packed_bytes += bytes.len() as u64;
                s.stored_bytes += stored as u64;
                if !s.encodings.contains(&encoding) {
                    s.encodings.push(encoding);
                }
            }
            None => self.stats.push(LayerCoding {
                layer: name,
                values: elems as u64,
                packed_bytes: bytes.len() as u64,
                stored_bytes: stored as u64,
                encodings: vec![encoding],
            }),
        }
        let Some((codec, stream)) = best else {
            let src = self.constant(bytes);
            let dst = self.wgt.alloc(elems, 4, layer, what)?;
            self.load_flat(src, LocalSpace::Wgt, dst, elems, unpack, what, layer)?;
            return Ok(dst);
        };
        let src = self.constant(&stream);
        let dst = self.wgt.alloc(elems, 4, layer, what)?;
        self.op(Op::Ldz(npu_isa::Ldz {
            ext: ExtSpace::Dram,
            src,
            loc: LocalSpace::Wgt,
            dst,
            len: field(stream.len(), lim().ldz.len, layer, "compressed weight bytes")?,
            n: field(elems, lim().ldz.n, layer, what)?,
            codec,
        }));
        Ok(dst)
    }

    /// Loads rows from SRAM into a fresh staging slot; returns the slot.
    fn load_rows(&mut self, src: usize, r: &Rows, layer: &str) -> Result<u32> {
        let dst = self.stg.alloc(r.rows * r.width * r.elem, 1, layer, "an input tile")?;
        let dims = [1, r.rows, r.width];
        self.ld_sram(src, dst, dims, r.elem, [0, r.row_stride, r.pixel_stride], NO_PAD, layer)?;
        Ok(dst)
    }

    /// One strided DMA load from SRAM into `act`: `n = [planes, rows, elements]` of
    /// `elem` bytes with source strides `s` (bytes), `pad = ([top, left, bottom, right],
    /// fill)` inserted by the DMA; every count, stride and padding checked against the
    /// instruction's fields.
    #[allow(clippy::too_many_arguments)]
    fn ld_sram(
        &mut self,
        src: usize,
        dst: u32,
        n: [usize; 3],
        elem: usize,
        s: [usize; 3],
        pad: ([usize; 4], i32),
        layer: &str,
    ) -> Result<()> {
        let (p, pv) = pad;
        let l = &lim().ld;
        let (ext, src) = ext_address(src, layer, "source address")?;
        self.op(Op::Ld(Ld {
            ext,
            src,
            loc: LocalSpace::Act,
            dst,
            n2: field(n[0], l.n2, layer, "planes per load")?,
            n1: field(n[1], l.n1, layer, "rows per load")?,
            n0: field(n[2], l.n0, layer, "elements per row")?,
            elem: field(elem, l.elem, layer, "bytes per element")?,
            s2: field(s[0], u32::MAX, layer, "plane stride")?,
            s1: field(s[1], u32::MAX, layer, "row stride")?,
            s0: field(s[2], l.s0, layer, "element stride")?,
            pt: field(p[0], l.pt, layer, "top padding")?,
            pl: field(p[1], l.pl, layer, "left padding")?,
            pb: field(p[2], l.pb, layer, "bottom padding")?,
            pr: field(p[3], l.pr, layer, "right padding")?,
            pv,
            unpack: Unpack::None,
        }));
        Ok(())
    }

    /// Stores a dense staging block to SRAM rows.
    fn store_rows(&mut self, src: u32, dst: usize, r: &Rows, layer: &str) -> Result<()> {
        let (ext, dst) = ext_address(dst, layer, "destination address")?;
        self.op(Op::St(St {
            loc: StoreSpace::Act,
            src,
            ext,
            dst,
            n2: 1,
            n1: field(r.rows, lim().st.n1, layer, "rows per tile")?,
            n0: field(r.width, lim().st.n0, layer, "tile width")?,
            elem: field(r.elem, lim().st.elem, layer, "bytes per pixel")?,
            s2: 0,
            s1: r.row_stride as u32,
            s0: field(r.pixel_stride, lim().st.s0, layer, "pixel stride")?,
        }));
        Ok(())
    }

    /// A flat span of `len` bytes of `home` at `offset`, in the activation buffer:
    /// resident values are read in place, SRAM ones loaded into staging.
    fn operand(&mut self, home: Place, offset: usize, len: usize, layer: &str) -> Result<u32> {
        match home {
            Place::Act(a) => Ok(a + offset as u32),
            Place::Ext(a) => {
                let r = Rows { rows: 1, width: 1, elem: len, row_stride: 0, pixel_stride: 0 };
                self.load_rows(a as usize + offset, &r, layer)
            }
        }
    }

    /// Where a flat output span goes: in place for resident values, a staging slot
    /// (stored by [`Lowerer::flush`]) for SRAM ones.
    fn result(&mut self, home: Place, offset: usize, len: usize, layer: &str) -> Result<u32> {
        match home {
            Place::Act(a) => Ok(a + offset as u32),
            Place::Ext(_) => self.stg.alloc(len, 1, layer, "an output tile"),
        }
    }

    fn flush(&mut self, home: Place, slot: u32, offset: usize, len: usize, layer: &str) -> Result<()> {
        if let Place::Ext(a) = home {
            let r = Rows { rows: 1, width: 1, elem: len, row_stride: 0, pixel_stride: 0 };
            self.store_rows(slot, a as usize + offset, &r, layer)?;
        }
        Ok(())
    }

    /// Layer `k` as a call of the host CPU: its inputs and output are in SRAM (memory
    /// plan), where the host's runtime reads and writes them.
    fn host_call(&mut self, l: &QLayer, k: usize) -> Result<()> {
        let name = l.name.as_str();
        let q = self.q;
        let at = |v: usize| -> Result<(u32, u32)> {
            let a = match self.homes[v] {
                Place::Ext(a) if a < DRAM_BASE => a as u32,
                _ => return Err(err(name, "a layer on the host CPU must have its values in SRAM (memory plan)")),
            };
            let n = q.values[v].shape.iter().product::<usize>();
            let n = u32::try_from(n).map_err(|_| err(name, format!("value `{}` is too large", q.values[v].name)))?;
            Ok((a, n))
        };
        let (src, sn) = at(l.inputs[0])?;
        let (b, bn) = match l.inputs.get(1) {
            Some(&v) => at(v)?,
            None => (0, 0),
        };
        if l.inputs.len() > 2 {
            return Err(err(name, "a host call takes at most two inputs"));
        }
        let (dst, dn) = at(l.output)?;
        let field = |what: &str, v: u64| {
            u32::try_from(v).map_err(|_| err(name, format!("{what} ({v}) exceed the `host` instruction's field")))
        };
        let macs = field("the multiply-accumulates", layer_macs(q, l))?;
        let weights = match &l.op {
            QOp::Conv2d { layer, .. } | QOp::Dense { layer } => layer.weights.len() + 12 * layer.shape[0],
            QOp::Lut { .. } => LUT_BYTES as usize,
            _ => 0,
        };
        let wn = field("the weight bytes", weights as u64)?;
        let id = field("the layer index", k as u64)?;
        self.ops.push(Op::Host(Host { id, src, sn, b, bn, dst, dn, macs, wn }));
        self.owner.push(self.layer);
        Ok(())
    }

    fn lower_layer(&mut self, l: &QLayer) -> Result<()> {
        match &l.op {
            QOp::Conv2d { stride, pad, dilation, groups, layer } => {
                self.conv(l, *stride, *pad, *dilation, *groups, layer)
            }
            QOp::Dense { layer } => self.dense(l, layer),
            QOp::Add { left_shift, ma, mb, mo } | QOp::Sub { left_shift, ma, mb, mo } => {
                let q = self.q;
                let (a, b, o) = (&q.values[l.inputs[0]], &q.values[l.inputs[1]], &q.values[l.output]);
                let rec = EwRecord {
                    za: a.q.zero_point,
                    zb: b.q.zero_point,
                    zo: o.q.zero_point,
                    left_shift: *left_shift as i32,
                    ma: *ma,
                    mb: *mb,
                    mo: *mo,
                }
                .encode();
                let par = self.load_constant(
                    &rec,
                    EwRecord::BYTES as usize,
                    LocalSpace::Par,
                    Unpack::None,
                    "the add record",
                    &l.name,
                )?;
                let (ty, _) = isa_types(o.q.dtype);
                let (lo, hi) = l.clamp;
                let sub = matches!(l.op, QOp::Sub { .. });
                let vop = move |a: u32, b: u32, dst: u32, n: u32| {
                    if sub {
                        Op::Vsub(Vsub { ty, a, b, dst, n, par, lo, hi })
                    } else {
                        Op::Vadd(Vadd { ty, a, b, dst, n, par, lo, hi })
                    }
                };
                self.binary(l, vop)
            }
            QOp::MaxPool { kernel, stride, pad } => self.pool(l, PoolKind::Max, *kernel, *stride, *pad),
            QOp::AvgPool { kernel, stride, pad } => self.pool(l, PoolKind::Avg, *kernel, *stride, *pad),
            QOp::Concat => self.concat(l),
            QOp::GlobalAvgPool => {
                let s = &self.q.values[l.inputs[0]].shape;
                let k = [s[1], s[2]];
                self.pool(l, PoolKind::Avg, k, [1, 1], [0; 4])
            }
            QOp::Reshape if super::memory::needs_relayout(self.q, l) => self.relayout(l),
            QOp::Reshape => {
                // Not an alias: a standalone ReLU or clip, a lookup table that clamps.
                let out = &self.q.values[l.output];
                let (lo, hi) = l.clamp;
                let table: Vec<i32> = (0..LUT_BYTES as i32)
                    .map(|i| {
                        let v = match out.q.dtype {
                            ActType::U8 => i,
                            ActType::I8 | ActType::I4 => i - 128,
                        };
                        v.clamp(lo, hi)
                    })
                    .collect();
                self.lut(l, &table, "the clamp table")
            }
            QOp::Lut { table } => self.lut(l, table, "the lookup table"),
            QOp::Mul { mo } => self.mul(l, *mo),
            QOp::Gather { map } => self.gather(l, map),
            QOp::Pad { pads, value } => self.pad(l, *pads, *value),
            QOp::ResizeNearest { rows, cols } => self.resize_nearest(l, rows, cols),
            QOp::ResizeLinear { .. } => {
                Err(err(&l.name, "the NPU has no bilinear interpolation (it runs on the host CPU)"))
            }
            QOp::Transpose { .. } => Err(err(
                &l.name,
                "transposes of [C, H, W] axes are not lowered to the NPU's DMA (it runs on the host CPU)",
            )),
            QOp::Dilate { stride } => self.dilate(l, *stride),
            QOp::Softmax { multiplier, left_shift, diff_min } => self.softmax(l, [*multiplier, *left_shift, *diff_min]),
        }
    }

    /// Channels picked from an input in SRAM (memory plan) by the DMA, a tile of pixels
    /// per `ld`: a strided range of channels (a slice or split) reads each pixel's run
    /// with stride `step`; a channel shuffle is a transpose of each pixel's `[g, C/g]`
    /// channels, which the 3-D `ld` does with strides `(C, 1, C/g)`.
    fn gather(&mut self, l: &QLayer, map: &[usize]) -> Result<()> {
        let name = l.name.as_str();
        let xin = &self.q.values[l.inputs[0]];
        let c = xin.shape.first().copied().unwrap_or(1);
        let pixels: usize = xin.shape.iter().skip(1).product();
        let len = map.len();
        let Place::Ext(src) = self.homes[l.inputs[0]] else {
            return Err(err(name, "the input of a channel selection must be in SRAM (memory plan)"));
        };
        let step = if len > 1 { map[1] as isize - map[0] as isize } else { 1 };
        let affine =
            step > 0 && map.iter().enumerate().all(|(i, &m)| m as isize == map[0] as isize + i as isize * step);
        let groups = (2..=c).find(|g| {
            c.is_multiple_of(*g) && len == c && map.iter().enumerate().all(|(i, &m)| m == (i % g) * (c / g) + i / g)
        });
        if !affine && groups.is_none() {
            return Err(err(name, "a channel selection that is neither a strided range nor a shuffle"));
        }
        let ho = self.homes[l.output];
        let budget = match ho {
            Place::Act(_) => usize::MAX,
            Place::Ext(_) => self.stg.size / 8 / len.max(1),
        };
        let per = pixels.min(budget).min(lim().ld.n1 as usize).min(lim().ld.n2 as usize);
        if per == 0 {
            return Err(err(name, "the staging zone of the activation buffer is too small for one pixel"));
        }
        for p0 in (0..pixels).step_by(per) {
            let np = per.min(pixels - p0);
            let dst = self.result(ho, p0 * len, np * len, name)?;
            let base = src as usize + p0 * c;
            let (src, n2, n1, n0, elem, s2, s1, s0) = match groups {
                Some(g) if !affine => (base, np, c / g, g, 1, c, 1, c / g),
                _ if step == 1 => (base + map[0], 1, np, 1, len, 0, c, 0),
                _ => (base + map[0], 1, np, len, 1, 0, c, step as usize),
            };
            self.ld_sram(src, dst, [n2, n1, n0], elem, [s2, s1, s0], NO_PAD, name)?;
            self.flush(ho, dst, p0 * len, np * len, name)?;
        }
        Ok(())
    }

    /// Constant padding: row chunks of the SRAM-resident input loaded with the DMA's own
    /// padding (the fill byte around each chunk; the top rows with the first chunk, the
    /// bottom rows with the last), each chunk a run of whole output rows.
    fn pad(&mut self, l: &QLayer, pads: [usize; 4], value: i32) -> Result<()> {
        let name = l.name.as_str();
        let xin = &self.q.values[l.inputs[0]];
        let (c, h, w) = (xin.shape[0], xin.shape[1], xin.shape[2]);
        let ow = pads[1] + w + pads[3];
        let Place::Ext(src) = self.homes[l.inputs[0]] else {
            return Err(err(name, "the input of a padding must be in SRAM (memory plan)"));
        };
        let ho = self.homes[l.output];
        let row = ow * c;
        let rows = match ho {
            Place::Act(_) => h,
            Place::Ext(_) => (self.stg.size / 8 / row.max(1)).saturating_sub(pads[0] + pads[2]),
        }
        .min(lim().ld.n1 as usize)
        .min(h);
        if rows == 0 {
            return Err(err(name, "the staging zone of the activation buffer is too small for one padded row"));
        }
        for y0 in (0..h).step_by(rows) {
            let y1 = (y0 + rows).min(h);
            let (pt, pb) = (if y0 == 0 { pads[0] } else { 0 }, if y1 == h { pads[2] } else { 0 });
            let first = if y0 == 0 { 0 } else { pads[0] + y0 };
            let len = (pt + (y1 - y0) + pb) * row;
            let dst = self.result(ho, first * row, len, name)?;
            let fill = ([pt, pads[1], pb, pads[3]], value);
            self.ld_sram(src as usize + y0 * w * c, dst, [1, y1 - y0, w], c, [0, w * c, c], fill, name)?;
            self.flush(ho, dst, first * row, len, name)?;
        }
        Ok(())
    }

    /// Nearest-neighbour resampling from the SRAM-resident input: per output row, one
    /// `ld` per run of the column map — input pixels at a constant step, each repeated the
    /// same number of times (a source stride of 0 repeats an element) — so an integer
    /// upsampling is one load per output row.
    fn resize_nearest(&mut self, l: &QLayer, rows: &[usize], cols: &[usize]) -> Result<()> {
        let name = l.name.as_str();
        let xin = &self.q.values[l.inputs[0]];
        let (c, w) = (xin.shape[0], xin.shape[2]);
        let Place::Ext(src) = self.homes[l.inputs[0]] else {
            return Err(err(name, "the input of a resize must be in SRAM (memory plan)"));
        };
        let ho = self.homes[l.output];
        let row = cols.len() * c;
        let runs = column_runs(cols);
        let per = match ho {
            Place::Act(_) => rows.len(),
            Place::Ext(_) => self.stg.size / 8 / row.max(1),
        }
        .min(rows.len());
        if per == 0 {
            return Err(err(name, "the staging zone of the activation buffer is too small for one resized row"));
        }
        for y0 in (0..rows.len()).step_by(per) {
            let y1 = (y0 + per).min(rows.len());
            let len = (y1 - y0) * row;
            let dst = self.result(ho, y0 * row, len, name)?;
            for (y, &r) in rows.iter().enumerate().take(y1).skip(y0) {
                let mut at = dst as usize + (y - y0) * row;
                for &(x0, count, step, repeat) in &runs {
                    let from = src as usize + (r * w + x0) * c;
                    self.ld_sram(from, at as u32, [count, 1, repeat], c, [step * c, 0, 0], NO_PAD, name)?;
                    at += count * repeat * c;
                }
            }
            self.flush(ho, dst, y0 * row, len, name)?;
        }
        Ok(())
    }

    /// Zero-point insertion from the SRAM-resident input: a row holding input row `y/sy`
    /// is one `ld` of its pixels as planes, each padded on the right by `sx − 1` fill
    /// pixels, and one of its last pixel; a row between is an `ld` of a constant row of
    /// the zero point placed off-chip once.
    fn dilate(&mut self, l: &QLayer, stride: [usize; 2]) -> Result<()> {
        let name = l.name.as_str();
        let xin = &self.q.values[l.inputs[0]];
        let (c, h, w) = (xin.shape[0], xin.shape[1], xin.shape[2]);
        let Place::Ext(src) = self.homes[l.inputs[0]] else {
            return Err(err(name, "the input of a dilation must be in SRAM (memory plan)"));
        };
        let [sy, sx] = stride;
        if sx - 1 > lim().ld.pr as usize {
            return Err(err(name, format!("a horizontal stride of {sx} is beyond the DMA's padding field")));
        }
        let (oh, ow) = ((h - 1) * sy + 1, (w - 1) * sx + 1);
        let ho = self.homes[l.output];
        let row = ow * c;
        let zp = xin.q.zero_point;
        let fill = if sy > 1 { Some(self.constant(&vec![zp as u8; row])) } else { None };
        let per = match ho {
            Place::Act(_) => oh,
            Place::Ext(_) => self.stg.size / 8 / row.max(1),
        }
        .min(oh);
        if per == 0 {
            return Err(err(name, "the staging zone of the activation buffer is too small for one dilated row"));
        }
        let pv = i32::from(zp as u8);
        for y0 in (0..oh).step_by(per) {
            let y1 = (y0 + per).min(oh);
            let len = (y1 - y0) * row;
            let dst = self.result(ho, y0 * row, len, name)?;
            for y in y0..y1 {
                let at = dst + ((y - y0) * row) as u32;
                match fill {
                    Some(f) if y % sy != 0 => {
                        self.load_flat(f, LocalSpace::Act, at, row, Unpack::None, "a row of the zero point", name)?
                    }
                    _ => {
                        let from = src as usize + (y / sy) * w * c;
                        if w > 1 {
                            let pad = ([0, 0, 0, sx - 1], pv);
                            self.ld_sram(from, at, [w - 1, 1, 1], c, [c, 0, 0], pad, name)?;
                        }
                        let last = at + ((w - 1) * sx * c) as u32;
                        self.ld_sram(from + (w - 1) * c, last, [1, 1, 1], c, [0, 0, 0], NO_PAD, name)?;
                    }
                }
            }
            self.flush(ho, dst, y0 * row, len, name)?;
        }
        Ok(())
    }

    /// A reshape whose stored orders differ — a `[C, H, W]` read as channels-last
    /// `[H, W, C]` data and back, or a flattening read by more than dense layers: the
    /// transpose between "channel-major" and "pixel-major" bytes as one strided DMA load
    /// per chunk from the SRAM-resident input.
    fn relayout(&mut self, l: &QLayer) -> Result<()> {
        let name = l.name.as_str();
        let (from, to) = (&self.q.values[l.inputs[0]].shape, &self.q.values[l.output].shape);
        if l.clamp != self.q.values[l.output].q.dtype.range() {
            return Err(err(name, "a reshape that both clamps and reorders the stored bytes"));
        }
        let Place::Ext(src) = self.homes[l.inputs[0]] else {
            return Err(err(name, "the input of a reordering reshape must be in SRAM (memory plan)"));
        };
        let total: usize = to.iter().product();
        // (rows, row length, source stride of a row, source stride of an element): the
        // output in stored order is `rows × len` bytes read with these strides.
        let (rows, len, s1, s0) = if !chw_ordered(to) && chw_ordered(from) {
            // Input stored in CHW order, output HWC: out[p·C + c] = in[c·HW + p].
            let (c, hw) = (to[0], to[1] * to[2]);
            (hw, c, 1, hw)
        } else if !chw_ordered(from) {
            if !chw_ordered(to) {
                return Err(err(
                    name,
                    "a reshape between two multi-channel images reorders bytes beyond one transpose",
                ));
            }
            // Input HWC, output stored in CHW order: out[c·HW + p] = in[p·C + c].
            let (c, hw) = (from[0], from[1] * from[2]);
            (c, hw, 1, c)
        } else {
            return Err(err(name, "an unsupported reordering reshape"));
        };
        let ho = self.homes[l.output];
        let budget = match ho {
            Place::Act(_) => usize::MAX,
            Place::Ext(_) => self.stg.size / 8,
        };
        let per = (budget / len.max(1)).min(lim().ld.n1 as usize).min(rows);
        if per == 0 {
            return Err(err(name, "the staging zone of the activation buffer is too small for one row"));
        }
        for r0 in (0..rows).step_by(per) {
            let n = per.min(rows - r0);
            let dst = self.result(ho, r0 * len, n * len, name)?;
            self.ld_sram(src as usize + r0 * s1, dst, [1, n, len], 1, [0, s1, s0], NO_PAD, name)?;
            self.flush(ho, dst, r0 * len, n * len, name)?;
        }
        debug_assert_eq!(rows * len, total);
        Ok(())
    }

    /// TFLite MUL on the vector unit's `vmul`. Equal shapes multiply flat; a second input
    /// that broadcasts (`[C, 1, 1]`, `[1, H, W]`, a scalar…) lives in SRAM (memory plan) and
    /// is replicated to the first input's HWC layout by the DMA itself — an `ld` whose
    /// strides are 0 along the broadcast dimensions — one tile of rows at a time.
    fn mul(&mut self, l: &QLayer, mo: (i32, i32)) -> Result<()> {
        let q = self.q;
        let (a, b, o) = (&q.values[l.inputs[0]], &q.values[l.inputs[1]], &q.values[l.output]);
        let rec = EwRecord {
            za: a.q.zero_point,
            zb: b.q.zero_point,
            zo: o.q.zero_point,
            left_shift: 0,
            ma: (0, 0),
            mb: (0, 0),
            mo,
        }
        .encode();
        let par = self.load_constant(
            &rec,
            EwRecord::BYTES as usize,
            LocalSpace::Par,
            Unpack::None,
            "the mul record",
            &l.name,
        )?;
        let (ty, _) = isa_types(o.q.dtype);
        let (lo, hi) = l.clamp;
        self.binary(l, move |x: u32, y: u32, dst: u32, n: u32| {
            Op::Vmul(npu_isa::Vmul { ty, a: x, b: y, dst, n, par, lo, hi })
        })
    }

    /// A two-input vector operation (`vadd`, `vsub`, `vmul` as `vop(a, b, dst, n)`), tile by
    /// tile; a second operand that broadcasts over the first (a `[C, 1, 1]` squeeze-excite
    /// vector, a `[1, H, W]` map) is replicated from SRAM by strided loads.
    fn binary(&mut self, l: &QLayer, vop: impl Fn(u32, u32, u32, u32) -> Op) -> Result<()> {
        let q = self.q;
        let (a, b) = (&q.values[l.inputs[0]], &q.values[l.inputs[1]]);
        if a.shape == b.shape {
            return self.elementwise(l, &[l.inputs[0], l.inputs[1]], 1, |x, dst, n| vop(x[0], x[1], dst, n));
        }
        let name = l.name.as_str();
        // Both as [C, H, W], right-aligned as NumPy broadcasts (a [W] operand runs along
        // the width); a vector model value [F] is F channels of one pixel.
        let vector = a.shape.len() == 1;
        let chw = |s: &[usize]| -> Option<[usize; 3]> {
            let lead = 3usize.checked_sub(s.len())?;
            let pad: Vec<usize> = if vector { vec![s[0], 1, 1] } else { [vec![1; lead], s.to_vec()].concat() };
            Some([pad[0], pad[1], pad[2]])
        };
        let (Some([c, h, w]), Some([cb, hb, wb])) = (chw(&a.shape), chw(&b.shape)) else {
            return Err(err(name, format!("operands of shapes {:?} and {:?}", a.shape, b.shape)));
        };
        let Place::Ext(b_at) = self.homes[l.inputs[1]] else {
            return Err(err(name, "a broadcast operand must be in SRAM (memory plan)"));
        };
        // Per output pixel: the channels whole (elem = C) or one value repeated C times.
        let (n0, elem) = if cb == c { (1, c) } else { (c, 1) };
        let s2 = if hb == h { wb * cb } else { 0 };
        let s1 = if wb == w { cb } else { 0 };
        let row = w * c;
        let rows_per = (self.stg.size / 8 / row.max(1)).min(h).min(lim().ld.n2 as usize);
        if rows_per == 0 {
            return Err(err(name, "the staging zone of the activation buffer is too small for one row"));
        }
        let (ha, ho) = (self.homes[l.inputs[0]], self.homes[l.output]);
        for y0 in (0..h).step_by(rows_per) {
            let rows = rows_per.min(h - y0);
            let len = rows * row;
            let x = self.operand(ha, y0 * row, len, name)?;
            let y = self.stg.alloc(len, 1, name, "a broadcast tile")?;
            let at = b_at as usize + if hb == h { y0 * wb * cb } else { 0 };
            self.ld_sram(at, y, [rows, w, n0], elem, [s2, s1, 0], NO_PAD, name)?;
            let dst = self.result(ho, y0 * row, len, name)?;
            self.op(vop(x, y, dst, field(len, (1 << 20) - 1, name, "elements")?));
            self.flush(ho, dst, y0 * row, len, name)?;
        }
        Ok(())
    }

    /// An elementwise lookup through the vector unit's `lut`: the 256 output integers
    /// (one per input integer, from the type's minimum), stored as bytes of the output
    /// type, loaded into the parameter buffer, applied tile by tile.
    fn lut(&mut self, l: &QLayer, table: &[i32], what: &str) -> Result<()> {
        let out = &self.q.values[l.output];
        let bytes: Vec<u8> = table.iter().map(|v| *v as u8).collect();
        let tab = self.load_constant(&bytes, LUT_BYTES as usize, LocalSpace::Par, Unpack::None, what, &l.name)?;
        let (ty, _) = isa_types(out.q.dtype);
        self.elementwise(l, &[l.inputs[0]], 1, |x, dst, n| Op::Lut(Lut { ty, src: x[0], dst, n, table: tab }))
    }

    /// Softmax over each pixel's channels (rows of `d` contiguous bytes in HWC), or over
    /// a whole vector.
    fn softmax(&mut self, l: &QLayer, p: [i32; 3]) -> Result<()> {
        let shape = &self.q.values[l.output].shape;
        let d = shape.first().copied().unwrap_or(1);
        field(d, Softmax::limits().d, &l.name, "softmax row length")?;
        let rec: Vec<u8> = p.iter().flat_map(|v| v.to_le_bytes()).collect();
        let par =
            self.load_constant(&rec, rec.len(), LocalSpace::Par, Unpack::None, "the softmax parameters", &l.name)?;
        let (ty, _) = isa_types(self.q.values[l.output].q.dtype);
        let dd = d as u32;
        self.elementwise(l, &[l.inputs[0]], d, |x, dst, n| {
            Op::Softmax(Softmax { ty, src: x[0], dst, n: n / dd, d: dd, par })
        })
    }

    /// Channel concatenation into an SRAM-homed output: each input's HWC pixels stored
    /// with the output's pixel stride at its channel offset, read in place when resident
    /// or through staging in row chunks.
    fn concat(&mut self, l: &QLayer) -> Result<()> {
        let out = &self.q.values[l.output].shape;
        let ct = out[0];
        let (h, w) = (out.get(1).copied().unwrap_or(1), out.get(2).copied().unwrap_or(1));
        let Place::Ext(dst) = self.homes[l.output] else {
            return Err(err(&l.name, "a concatenation's output must be in SRAM (memory plan)"));
        };
        let mut off = 0usize;
        for &i in &l.inputs {
            let ci = self.q.values[i].shape[0];
            let to = |rows: usize| Rows { rows, width: w, elem: ci, row_stride: w * ct, pixel_stride: ct };
            match self.homes[i] {
                Place::Act(a) => self.store_rows(a, dst as usize + off, &to(h), &l.name)?,
                Place::Ext(a) => {
                    let per_row = w * ci;
                    let rows = (self.stg.size / 2 / per_row.max(1)).clamp(1, h);
                    if rows * per_row > self.stg.size {
                        return Err(err(&l.name, "the staging zone is too small for one row of an input"));
                    }
                    for y0 in (0..h).step_by(rows) {
                        let r = rows.min(h - y0);
                        let from = Rows { rows: r, width: w, elem: ci, row_stride: per_row, pixel_stride: ci };
                        let slot = self.load_rows(a as usize + y0 * per_row, &from, &l.name)?;
                        self.store_rows(slot, dst as usize + y0 * w * ct + off, &to(r), &l.name)?;
                    }
                }
            }
            off += ci;
        }
        Ok(())
    }

    /// An elementwise operation over flat inputs of the output's size, in chunks (of a
    /// multiple of `granule` elements) when any operand is in SRAM.
    fn elementwise(
        &mut self,
        l: &QLayer,
        inputs: &[usize],
        granule: usize,
        make: impl Fn(&[u32], u32, u32) -> Op,
    ) -> Result<()> {
        let n: usize = self.q.values[l.output].shape.iter().product();
        let homes: Vec<Place> = inputs.iter().map(|&i| self.homes[i]).collect();
        let out = self.homes[l.output];
        let all_resident = homes.iter().chain([&out]).all(|h| matches!(h, Place::Act(_)));
        let chunk = if all_resident { n.min((1 << 20) - 1) } else { (self.stg.size / 8).min((1 << 20) - 1) };
        let chunk = chunk / granule.max(1) * granule.max(1);
        if chunk == 0 {
            return Err(err(&l.name, "the staging zone of the activation buffer is too small for a chunk"));
        }
        for s in (0..n).step_by(chunk) {
            let len = chunk.min(n - s);
            let mut srcs = Vec::with_capacity(homes.len());
            for h in &homes {
                srcs.push(self.operand(*h, s, len, &l.name)?);
            }
            let dst = self.result(out, s, len, &l.name)?;
            self.op(make(&srcs, dst, len as u32));
            self.flush(out, dst, s, len, &l.name)?;
        }
        Ok(())
    }

    fn pool(
        &mut self,
        l: &QLayer,
        kind: PoolKind,
        kernel: [usize; 2],
        stride: [usize; 2],
        pad: [usize; 4],
    ) -> Result<()> {
        let name = l.name.as_str();
        let (xin, out) = (&self.q.values[l.inputs[0]], &self.q.values[l.output]);
        let (c, h, w) = (xin.shape[0], xin.shape[1], xin.shape[2]);
        let (oh, ow) = if out.shape.len() == 3 { (out.shape[1], out.shape[2]) } else { (1, 1) };
        let p = &lim().pool;
        // Along a dimension with one output the stride only has to be larger than the
        // room the window leaves (a 25×5 average over a 25×5 input with stride 25×5):
        // the field's largest stride then computes the same single output.
        let one_out = |s: usize, extent: usize, k: usize, outs: usize, max: usize| {
            if outs == 1 && s > max && extent.saturating_sub(k) < max {
                max
            } else {
                s
            }
        };
        let stride = [
            one_out(stride[0], pad[0] + h + pad[2], kernel[0], oh, p.sy as usize),
            one_out(stride[1], pad[1] + w + pad[3], kernel[1], ow, p.sx as usize),
        ];
        if kernel[0] > p.kh as usize
            || kernel[1] > p.kw as usize
            || stride.iter().any(|s| *s > p.sy as usize)
            || pad.iter().any(|x| *x > p.pt as usize)
        {
            return Err(err(name, "pooling window, stride or padding beyond the ISA's fields"));
        }
        field(w, p.iw, name, "width")?;
        let (hin, hout) = (self.homes[l.inputs[0]], self.homes[l.output]);
        let (in_sram, out_sram) = (matches!(hin, Place::Ext(_)), matches!(hout, Place::Ext(_)));
        let room = self.stg.size / 4;
        let rows_for = |th: usize| ((th - 1) * stride[0] + kernel[0]).min(h);
        let fits = |th: usize, cb: usize| {
            rows_for(th) <= p.ih as usize
                && (!in_sram || rows_for(th) * w * cb <= room)
                && (!out_sram || th * ow * cb <= room)
                && th <= lim().st.n1 as usize
        };
        // Row tiles first; channel blocks only where the input is gathered from SRAM and
        // the output can be written back strided (SRAM) or is one pixel (global pooling).
        let mut cb = c.min(p.c as usize);
        let mut th = oh;
        while th > 1 && !fits(th, cb) {
            th -= 1;
        }
        let can_split = in_sram && (out_sram || oh * ow == 1);
        while cb > 1 && !fits(th, cb) && can_split {
            cb = cb.div_ceil(2);
        }
        if !fits(th, cb) || (cb < c && !can_split) {
            return Err(err(
                name,
                format!(
                    "a tile of this pooling ({} input bytes per row) does not fit the {}-byte staging zone of the activation buffer",
                    w * c,
                    self.stg.size
                ),
            ));
        }
        let th = oh.div_ceil(oh.div_ceil(th));
        let (ty, _) = isa_types(xin.q.dtype);
        for c0 in (0..c).step_by(cb) {
            let nb = cb.min(c - c0);
            for r0 in (0..oh).step_by(th) {
                let r1 = (r0 + th).min(oh);
                let rows = r1 - r0;
                let (s_top, in_rows, pt, pb) = tile_rows(r0, r1, stride[0], kernel[0], pad[0], h, name)?;
                let src = match hin {
                    Place::Act(a) => a + (s_top * w * c) as u32,
                    Place::Ext(a) => {
                        let r = Rows { rows: in_rows, width: w, elem: nb, row_stride: w * c, pixel_stride: c };
                        self.load_rows(a as usize + s_top * w * c + c0, &r, name)?
                    }
                };
                let offset = r0 * ow * c + c0;
                let dst = match hout {
                    Place::Act(a) => a + offset as u32,
                    Place::Ext(_) => self.stg.alloc(rows * ow * nb, 1, name, "an output tile")?,
                };
                self.op(Op::Pool(Pool {
                    kind,
                    ty,
                    src,
                    ih: field(in_rows, lim().pool.ih, name, "tile height")?,
                    iw: w as u32,
                    c: nb as u32,
                    kh: kernel[0] as u32,
                    kw: kernel[1] as u32,
                    sy: stride[0] as u32,
                    sx: stride[1] as u32,
                    pt: field(pt, lim().pool.pt, name, "top padding")?,
                    pb: field(pb, lim().pool.pb, name, "bottom padding")?,
                    pl: pad[1] as u32,
                    pr: pad[3] as u32,
                    dst,
                }));
                if let Place::Ext(a) = hout {
                    let r = Rows { rows, width: ow, elem: nb, row_stride: ow * c, pixel_stride: c };
                    self.store_rows(dst, a as usize + offset, &r, name)?;
                }
            }
        }
        Ok(())
    }

    /// Loads the requantization records (and weight zero points) of channels `c0..c1`;
    /// returns the address of the records and of the zero points.
    fn tables(&mut self, layer: &WeightedLayer, c0: usize, c1: usize, name: &str) -> Result<(u32, Option<u32>)> {
        let nb = c1 - c0;
        let rec = rq_records(layer, c0, c1);
        let par = self.load_constant(
            &rec,
            nb * RqRecord::BYTES as usize,
            LocalSpace::Par,
            Unpack::None,
            "the requantization records",
            name,
        )?;
        let zp = if layer.w_zero.iter().any(|z| *z != 0) {
            let zb: Vec<u8> = layer.w_zero[c0..c1].iter().flat_map(|z| z.to_le_bytes()).collect();
            Some(self.load_constant(&zb, nb * 4, LocalSpace::Par, Unpack::None, "the weight zero points", name)?)
        } else {
            None
        };
        Ok((par, zp))
    }

    /// Output channels per block: weights in half the weight buffer (all of it when one
    /// channel needs more), records and zero points in half the parameter buffer; a
    /// convolution's (`conv`) in whole micro-blocks on a block-based unit where they fit.
    fn channel_block(&self, co: usize, k: usize, conv: bool, name: &str) -> Result<usize> {
        let wgt = self.wgt.size;
        let par = self.par.size;
        let wbudget = if k <= wgt / 2 { wgt / 2 } else { wgt };
        let pbudget = if 16 <= par / 2 { par / 2 } else { par };
        let mut cb = co.min(lim().conv.cout as usize).min(lim().rq.c as usize).min(lim().mm.n as usize);
        // A block-based unit streams a layer's weights in at least four parts (in whole
        // 16-channel slices), so the next part loads while the previous one computes.
        if let Some(b) = self.hw.mac.blocks.as_ref().filter(|_| self.block_align() != (1, 1)) {
            cb = cb.min(co.div_ceil(4).next_multiple_of(16));
            // A convolution's blocks whole micro-blocks deep where the budgets allow one:
            // halving 80 channels to 10 would leave 6 of every 16 MAC lanes idle.
            let depth = b.ublock.2.max(1) as usize;
            let fit = (wbudget / k.max(1)).min(pbudget / 16);
            if conv && cb * k > wbudget && fit >= depth {
                cb = fit / depth * depth;
            }
        }
        while cb > 1 && (cb * k > wbudget || cb * 16 > pbudget) {
            cb = cb.div_ceil(2);
        }
        if cb * k > wgt {
            return Err(err(name, format!("one output channel needs {k} weight bytes; the weight buffer has {wgt}")));
        }
        if cb * 16 > par {
            return Err(err(
                name,
                format!("one output channel's records need 16 bytes; the parameter buffer has {par}"),
            ));
        }
        Ok(cb)
    }

    #[allow(clippy::too_many_arguments)]
    fn requant(
        &mut self,
        name: &str,
        rqm: RqMode,
        ot: OutType,
        acc: u32,
        pixels: usize,
        nb: usize,
        par: u32,
        dst: u32,
        ps: usize,
        zo: i32,
        clamp: (i32, i32),
    ) -> Result<()> {
        self.op(Op::Rq(Rq {
            mode: rqm,
            pc: 1,
            ot,
            src: acc / 4,
            n: field(pixels, lim().rq.n, name, "pixels per tile")?,
            c: field(nb, lim().rq.c, name, "channels")?,
            par,
            dst,
            ps: field(ps, lim().rq.ps, name, "pixel stride")?,
            zo,
            lo: clamp.0,
            hi: clamp.1,
        }));
        Ok(())
    }

    /// What a convolution's lowering needs, checked against the ISA and the hardware;
    /// `None` for a global depthwise window beyond the `conv` fields (lowered apart).
    fn conv_setup<'l>(
        &self,
        l: &'l QLayer,
        stride: [usize; 2],
        pad: [usize; 4],
        dilation: [usize; 2],
        groups: usize,
        layer: &WeightedLayer,
    ) -> Result<Option<ConvSetup<'l>>> {
        let name = l.name.as_str();
        let q = self.q;
        let (xin, out) = (&q.values[l.inputs[0]], &q.values[l.output]);
        let (at, _) = isa_types(xin.q.dtype);
        let (_, ot) = isa_types(out.q.dtype);
        let (c, h, w) = (xin.shape[0], xin.shape[1], xin.shape[2]);
        let (co, oh, ow) = (out.shape[0], out.shape[1], out.shape[2]);
        let (kh, kw) = (layer.shape[2], layer.shape[3]);
        let depthwise = groups > 1 && groups == c && co == c && layer.shape[1] == 1;
        // Grouped convolution (other than depthwise) runs group by group: each block of
        // output channels lies in one group and reads that group's input channels in
        // place, through the pixel stride.
        let groups = if depthwise { 1 } else { groups.max(1) };
        if !depthwise && (c % groups != 0 || co % groups != 0 || layer.shape[1] * groups != c) {
            return Err(err(
                name,
                format!("weights {:?} in {groups} groups do not fit {c} input channels", layer.shape),
            ));
        }
        let (cin_g, cout_g) = (c / groups, co / groups);
        let cl = &lim().conv;
        let global = depthwise && [oh, ow, kh, kw] == [1, 1, h, w] && pad == [0; 4] && dilation == [1, 1];
        if global && (kh > cl.kh as usize || kw > cl.kw as usize) {
            return Ok(None);
        }
        if pad.iter().any(|p| *p > cl.pt as usize)
            || kh > cl.kh as usize
            || kw > cl.kw as usize
            || stride.iter().any(|s| *s > cl.sy as usize)
            || dilation.iter().any(|d| *d > cl.dy as usize)
        {
            return Err(err(name, "kernel, stride, dilation or padding beyond the ISA's fields"));
        }
        if let Some(m) = self.hw.mac.max_padded_stride {
            let s = stride[0].max(stride[1]);
            if s > m as usize && pad.iter().any(|p| *p > 0) {
                return Err(err(
                    name,
                    format!("stride {s} with padding: {} runs padded convolutions up to stride {m}", self.hw.name),
                ));
            }
        }
        let (mode, packing, unpack, rqm) = check_weighted(self.hw, name, layer, q.scheme.rounding)?;
        let k = if depthwise { kh * kw } else { kh * kw * cin_g };
        let cb = self.channel_block(cout_g, k, true, name)?;
        let (hin, hout) = (self.homes[l.inputs[0]], self.homes[l.output]);
        let eff = dilation[0] * (kh - 1) + 1;
        let eff_w = dilation[1] * (kw - 1) + 1;
        let pv = i32::from(xin.q.zero_point as u8);
        let cv = ConvPlan {
            name,
            mode,
            at,
            ot,
            rqm,
            depthwise,
            groups,
            cin_g,
            c,
            h,
            w,
            co,
            oh,
            ow,
            kh,
            kw,
            stride,
            dilation,
            pad,
            eff,
            eff_w,
            pv,
            hin,
            hout,
            zo: out.q.zero_point,
            clamp: l.clamp,
            in_row0: 0,
            out_row0: 0,
            also: None,
        };
        Ok(Some(ConvSetup { cv, k, cb, cout_g, packing, unpack }))
    }

    #[allow(clippy::too_many_arguments)]
    fn conv(
        &mut self,
        l: &QLayer,
        stride: [usize; 2],
        pad: [usize; 4],
        dilation: [usize; 2],
        groups: usize,
        layer: &WeightedLayer,
    ) -> Result<()> {
        let Some(setup) = self.conv_setup(l, stride, pad, dilation, groups, layer)? else {
            return self.global_depthwise(l, layer);
        };
        let ConvSetup { cv, k, cb, cout_g, packing, unpack } = setup;
        let (depthwise, groups) = (cv.depthwise, cv.groups);
        let (c, h, w, co, oh, ow) = (cv.c, cv.h, cv.w, cv.co, cv.oh, cv.ow);
        let (eff, eff_w, hin, hout) = (cv.eff, cv.eff_w, cv.hin, cv.hout);
        let (th, tw, cb, _) = self.conv_tiling(&cv, k, cb, cout_g)?;
        let (acc_room, stg_room) = (self.acc.size / 2, self.stg.size / 4);
        let blocks: Vec<(usize, usize, usize)> = (0..groups)
            .flat_map(|g| {
                (g * cout_g..(g + 1) * cout_g).step_by(cb).map(move |c0| (g, c0, (c0 + cb).min((g + 1) * cout_g)))
            })
            .collect();
        // Loop order. Weights outer (each block of weights loaded once, every input tile
        // loaded once per block) suits resident inputs and small weight blocks; an input
        // streamed from SRAM through several blocks is read again for each of them. Tiles
        // outer loads each input tile once into a pinned half of the staging area and
        // runs every block of weights over it — reloading the weights for every tile,
        // unless all of the layer's weights fit half the weight buffer, where they stay.
        // The cheaper of the two in memory cycles is taken (weights outer always in a
        // per-layer schedule, as Vela orders them).
        // Off-chip bytes of the weights (packed), and what the blocks take in the local
        // buffers (unpacked, every allocation 4-byte aligned): blocks of at most half a
        // ring never overwrite one another, wherever the ring stands.
        let wbits = packing.map_or(8, |p| p.bits());
        let wtotal = (co * k * wbits).div_ceil(8);
        let zp_bytes = if layer.w_zero.iter().any(|z| *z != 0) { 4 } else { 0 };
        let held = |per_channel: usize| -> usize {
            blocks.iter().map(|&(_, c0, c1)| ((c1 - c0) * per_channel).next_multiple_of(4) + 3).sum()
        };
        let resident_w =
            held(k) <= self.wgt.size / 2 && held(RqRecord::BYTES as usize) + held(zp_bytes) <= self.par.size / 2;
        let dram_bw = self.hw.memories.dram.bytes_per_cycle.max(f64::MIN_POSITIVE);
        let sram_bw = self.hw.memories.sram.bytes_per_cycle.max(f64::MIN_POSITIVE);
        let mut tiles_outer = None;
        if self.schedule == Schedule::Overlapped
            && !depthwise
            && groups == 1
            && blocks.len() > 1
            && matches!(hin, Place::Ext(_))
        {
            let pin_room = self.stg.size / 2;
            let fits_pinned = |th: usize, tw: usize| {
                let rows = ((th - 1) * stride[0] + eff).min(h);
                let cols = if tw == ow { w } else { ((tw - 1) * stride[1] + eff_w).min(w) };
                th * tw * cb * 4 <= acc_room
                    && th * tw <= lim().rq.n as usize
                    && rows * cols * c <= pin_room
                    && (matches!(hout, Place::Act(_)) || th * tw * cb <= stg_room)
            };
            let mut tb = oh;
            while tb > 1 && !fits_pinned(tb, tw) {
                tb -= 1;
            }
            if fits_pinned(tb, tw) {
                let tb = align_tile(oh, tb, self.block_align().0);
                let a_in = cv.input_bytes(th, tw)? * blocks.len();
                let b_in = cv.input_bytes(tb, tw)?;
                let b_tiles = oh.div_ceil(tb) * ow.div_ceil(tw);
                let b_w = if resident_w { wtotal } else { wtotal * b_tiles };
                let cost_a = wtotal as f64 / dram_bw + a_in as f64 / sram_bw;
                let cost_b = b_w as f64 / dram_bw + b_in as f64 / sram_bw;
                if cost_b < cost_a {
                    tiles_outer = Some(tb);
                }
            }
        }
        let col_tiles: Vec<(usize, usize)> = (0..ow).step_by(tw).map(|x0| (x0, (x0 + tw).min(ow))).collect();
        let tiles = |th: usize| -> Vec<(usize, usize, usize, usize)> {
            (0..oh)
                .step_by(th)
                .flat_map(|r0| col_tiles.iter().map(move |&(x0, x1)| (r0, (r0 + th).min(oh), x0, x1)))
                .collect()
        };
        match tiles_outer {
            None => {
                for &(grp, c0, c1) in &blocks {
                    let wts = self.conv_weights(&cv, layer, c0, c1, packing, unpack)?;
                    for &t in &tiles(th) {
                        let ifm = self.conv_input(&cv, t, grp, c0, c1)?;
                        self.conv_tile(&cv, t, ifm, (grp, c0, c1), wts)?;
                    }
                }
            }
            Some(tb) => {
                let (base, size) = (self.stg.base, self.stg.size);
                let half = size / 2;
                let mut pinned = Ring::new(base, half);
                let mut outputs = Ring::new(base + half, size - half);
                let mut kept: Vec<Option<ConvWeights>> = vec![None; blocks.len()];
                for &t in &tiles(tb) {
                    std::mem::swap(&mut self.stg, &mut pinned);
                    let ifm = self.conv_input(&cv, t, 0, 0, co);
                    std::mem::swap(&mut self.stg, &mut pinned);
                    let ifm = ifm?;
                    std::mem::swap(&mut self.stg, &mut outputs);
                    let done = (|| -> Result<()> {
                        for (b, &(grp, c0, c1)) in blocks.iter().enumerate() {
                            let keep = if resident_w { Some(&mut kept[b]) } else { None };
                            let wts = self.kept_weights(keep, &cv, layer, c0, c1, packing, unpack)?;
                            self.conv_tile(&cv, t, ifm, (grp, c0, c1), wts)?;
                        }
                        Ok(())
                    })();
                    std::mem::swap(&mut self.stg, &mut outputs);
                    done?;
                }
                self.stg = Ring { base, size, next: outputs.next };
            }
        }
        Ok(())
    }

    /// The geometry of convolution `cv` for weighing its tiles; `streams`: whether its
    /// input and output go through SRAM.
    fn tile_shape(&self, cv: &ConvPlan, cout_g: usize, streams: (bool, bool)) -> TileShape {
        TileShape {
            kind: if cv.depthwise { MacKind::Depthwise } else { MacKind::Conv },
            out: (cv.oh, cv.ow),
            input: (cv.h, cv.w),
            window: (cv.eff, cv.eff_w),
            kernel: (cv.kh, cv.kw),
            stride: cv.stride,
            pad: (cv.pad[0], cv.pad[1]),
            cin: cv.cin_g,
            channels: (cout_g, cv.groups),
            streams,
            burst: self.hw.memories.sram.burst.max(1) as usize,
        }
    }

    /// A convolution's tiles: output rows and columns per tile and output channels per
    /// block (`cb` the block the buffers allow), and on a block-based unit the modeled
    /// cycles of that tiling (`TileShape::cost`).
    fn conv_tiling(
        &self,
        cv: &ConvPlan,
        k: usize,
        cb: usize,
        cout_g: usize,
    ) -> Result<(usize, usize, usize, Option<f64>)> {
        let name = cv.name;
        let (depthwise, cin_g) = (cv.depthwise, cv.cin_g);
        let (h, w, oh, ow) = (cv.h, cv.w, cv.oh, cv.ow);
        let (eff, eff_w, hin, hout, stride) = (cv.eff, cv.eff_w, cv.hin, cv.hout, cv.stride);
        let acc_room = self.acc.size / 2;
        let stg_room = self.stg.size / 4;
        // Output rows × columns per tile.
        let fits = |th: usize, tw: usize, cb: usize| {
            let rows = ((th - 1) * stride[0] + eff).min(h);
            let cols = if tw == ow { w } else { ((tw - 1) * stride[1] + eff_w).min(w) };
            let loaded_ch = if depthwise { cb } else { cin_g };
            th * tw * cb * 4 <= acc_room
                && th * tw <= lim().rq.n as usize
                && (matches!(hin, Place::Act(_)) || rows * cols * loaded_ch <= stg_room)
                && (matches!(hout, Place::Act(_)) || th * tw * cb <= stg_room)
        };
        let cb0 = cb;
        let mut cb = cb;
        let mut tw = ow;
        while cb > 1 && !fits(1, tw, cb) {
            cb = cb.div_ceil(2);
        }
        // A row too wide for the buffers is striped into column tiles: from SRAM a strided
        // load gathers the tile's columns and a strided store scatters its results; in the
        // activation buffer only a single row (a sequence, `h = 1`) is contiguous in its
        // columns. The channel block stays whole where it can.
        let col_tiles_ok = (matches!(hin, Place::Ext(_)) || h == 1) && (matches!(hout, Place::Ext(_)) || oh == 1);
        if !fits(1, tw, cb) && col_tiles_ok {
            cb = cb0;
            loop {
                if let Some(t) = (1..=ow).rev().find(|&t| fits(1, t, cb)) {
                    tw = align_tile(ow, t, self.block_align().1);
                    break;
                }
                if cb == 1 {
                    break;
                }
                cb = cb.div_ceil(2);
            }
        }
        let mut th = oh;
        while th > 1 && !fits(th, tw, cb) {
            th -= 1;
        }
        if !fits(th, tw, cb) {
            return Err(err(name, "one output row does not fit the local buffers"));
        }
        let (ah, aw) = self.block_align();
        let mut th = align_tile(oh, th, ah);
        let mut estimate = None;
        // A block-based unit computes whole micro-blocks and pays per block: the tile
        // shape matters, not only its size. Among tiles of whole micro-block rows — full
        // width, or column tiles where a row may be split — the one with the fewest
        // modeled cycles (the unit's own block formulas over every tile and block of
        // channels, against the SRAM traffic the tiling causes) is taken; the first found
        // (the tallest full-width tile) on ties.
        if let (npu_hw::Dataflow::Blocked, Some(b)) = (self.hw.mac.dataflow, &self.hw.mac.blocks) {
            let shape = self.tile_shape(cv, cout_g, (matches!(hin, Place::Ext(_)), matches!(hout, Place::Ext(_))));
            let sram_bw = self.hw.memories.sram.bytes_per_cycle;
            let depth = (b.ublock.2 as usize).max(1);
            let mut best = (shape.cost(b, th, tw, cb, sram_bw), th, tw, cb);
            // Channel blocks from the weight buffer's block (deeper than full-width rows
            // may allow, in narrower tiles) down to one micro-block deep (shallower, in
            // taller tiles).
            // (A depthwise layer's weights are a few bytes per channel: it need not stream
            // them in parts, so its blocks may be as deep as the buffers allow.)
            let mut c = cb0;
            if depthwise {
                c = cout_g.min(lim().conv.cout as usize).min(lim().rq.c as usize);
                while c > cb0 && (c * k > self.wgt.size / 2 || c * 16 > self.par.size / 2) {
                    c = c.div_ceil(2);
                }
                c = c.max(cb0);
            }
            loop {
                for t in (ah..=oh).step_by(ah.max(1)).take(32) {
                    let widest = if fits(t, ow, c) {
                        Some(ow)
                    } else if col_tiles_ok {
                        (aw.max(1)..ow).rev().find(|&x| fits(t, x, c)).map(|x| align_tile(ow, x, aw))
                    } else {
                        None
                    };
                    if let Some(x) = widest.filter(|&x| fits(t, x, c)) {
                        let cost = shape.cost(b, t, x, c, sram_bw);
                        if cost < best.0 {
                            best = (cost, t, x, c);
                        }
                    }
                }
                if c <= depth {
                    break;
                }
                c = (c / 2 / depth * depth).max(depth);
            }
            (th, tw, cb) = (best.1, best.2, best.3);
            estimate = Some(best.0);
        }
        Ok((th, tw, cb, estimate))
    }

    /// A block's weights from `kept` when an earlier tile loaded them, else loaded (by
    /// [`Lowerer::conv_weights`]) and, with `kept`, kept for the tiles after.
    #[allow(clippy::too_many_arguments)]
    fn kept_weights(
        &mut self,
        kept: Option<&mut Option<ConvWeights>>,
        cv: &ConvPlan,
        layer: &WeightedLayer,
        c0: usize,
        c1: usize,
        packing: Option<Packing>,
        unpack: Unpack,
    ) -> Result<ConvWeights> {
        if let Some(w) = kept.as_ref().and_then(|k| **k) {
            return Ok(w);
        }
        let w = self.conv_weights(cv, layer, c0, c1, packing, unpack)?;
        if let Some(k) = kept {
            *k = Some(w);
        }
        Ok(w)
    }

    /// The weights, requantization records and weight zero points of output channels
    /// `c0..c1`, in the ISA's layout, loaded into the weight and parameter buffers.
    fn conv_weights(
        &mut self,
        cv: &ConvPlan,
        layer: &WeightedLayer,
        c0: usize,
        c1: usize,
        packing: Option<Packing>,
        unpack: Unpack,
    ) -> Result<ConvWeights> {
        let (kh, kw, cin_g, name) = (cv.kh, cv.kw, cv.cin_g, cv.name);
        // ISA weight layout: [co][ky][kx][ci], depthwise [ky][kx][c].
        let mut wv = Vec::with_capacity((c1 - c0) * kh * kw * if cv.depthwise { 1 } else { cin_g });
        if cv.depthwise {
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
                        for ci in 0..cin_g {
                            wv.push(layer.weights[((o * cin_g + ci) * kh + ky) * kw + kx]);
                        }
                    }
                }
            }
        }
        let wbytes = weight_bytes(&wv, packing, name)?;
        let wgt = self.load_constant(&wbytes, wv.len(), LocalSpace::Wgt, unpack, "a block of weights", name)?;
        let (par, zp) = self.tables(layer, c0, c1, name)?;
        Ok(ConvWeights { wgt, par, zp })
    }

    /// The input of tile `t` for the block `c0..c1` of group `grp`: its address in the
    /// activation buffer — in place for a resident input, else loaded from SRAM into a
    /// staging slot (all of the group's channels, or the block's own for depthwise) —
    /// and its pixel stride.
    fn conv_input(&mut self, cv: &ConvPlan, t: Tile, grp: usize, c0: usize, c1: usize) -> Result<(u32, usize)> {
        let (s_top, in_rows, s_left, in_cols) = cv.window(t)?;
        let (w, c) = (cv.w, cv.c);
        let ch_off = if cv.depthwise { c0 } else { grp * cv.cin_g };
        Ok(match cv.hin {
            Place::Act(a) => (
                a + (((s_top - cv.in_row0) * w + s_left) * c + ch_off) as u32,
                if cv.depthwise || cv.groups > 1 { c } else { 0 },
            ),
            Place::Ext(a) => {
                let r = Rows {
                    rows: in_rows,
                    width: in_cols,
                    elem: if cv.depthwise { c1 - c0 } else { cv.cin_g },
                    row_stride: w * c,
                    pixel_stride: c,
                };
                (self.load_rows(a as usize + (s_top * w + s_left) * c + ch_off, &r, cv.name)?, 0)
            }
        })
    }

    /// One tile of one block of output channels: `conv` (and `wzp`) into the
    /// accumulators, requantization, and the store of an SRAM output.
    fn conv_tile(
        &mut self,
        cv: &ConvPlan,
        t: Tile,
        ifm: (u32, usize),
        block: (usize, usize, usize),
        wts: ConvWeights,
    ) -> Result<()> {
        let name = cv.name;
        let cl = &lim().conv;
        let (r0, r1, x0, x1) = t;
        let (_, c0, c1) = block;
        let nb = c1 - c0;
        let (rows, cols) = (r1 - r0, x1 - x0);
        let (_, in_rows, _, in_cols) = cv.window(t)?;
        let (_, _, pt, pb) = tile_rows(r0, r1, cv.stride[0], cv.eff, cv.pad[0], cv.h, name)?;
        let (pl, pr) = if cols == cv.ow {
            (cv.pad[1], cv.pad[3])
        } else {
            let (_, _, pl, pr) = tile_rows(x0, x1, cv.stride[1], cv.eff_w, cv.pad[1], cv.w, name)?;
            (pl, pr)
        };
        let acc = self.acc.alloc(rows * cols * nb * 4, 4, name, "the accumulators of a tile")?;
        let conv = Conv {
            mode: cv.mode,
            accum: 0,
            at: cv.at,
            dw: u32::from(cv.depthwise),
            ifm: ifm.0,
            ih: field(in_rows, cl.ih, name, "tile height")?,
            iw: field(in_cols, cl.iw, name, "tile width")?,
            cin: field(if cv.depthwise { nb } else { cv.cin_g }, cl.cin, name, "channels")?,
            ps: field(ifm.1, cl.ps, name, "pixel stride")?,
            wgt: wts.wgt,
            kh: cv.kh as u32,
            kw: cv.kw as u32,
            sy: cv.stride[0] as u32,
            sx: cv.stride[1] as u32,
            dy: cv.dilation[0] as u32,
            dx: cv.dilation[1] as u32,
            pt: field(pt, lim().pool.pt, name, "top padding")?,
            pb: field(pb, lim().pool.pb, name, "bottom padding")?,
            pl: field(pl, lim().pool.pl, name, "left padding")?,
            pr: field(pr, lim().pool.pr, name, "right padding")?,
            pv: cv.pv,
            cout: field(nb, cl.cout, name, "output channels")?,
            dst: acc / 4,
        };
        self.op(Op::Conv(conv));
        if let Some(zp) = wts.zp {
            self.op(Op::Wzp(Wzp {
                at: cv.at,
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
                pt: conv.pt,
                pb: conv.pb,
                pl: conv.pl,
                pr: conv.pr,
                pv: conv.pv,
                cout: conv.cout,
                zp,
                dst: conv.dst,
            }));
        }
        let co = cv.co;
        let offset = (r0 * cv.ow + x0) * co + c0;
        let (dst, ops) = match cv.hout {
            Place::Act(a) => (a + (offset - cv.out_row0 * cv.ow * co) as u32, if nb == co { 0 } else { co }),
            Place::Ext(_) => (self.stg.alloc(rows * cols * nb, 1, name, "an output tile")?, 0),
        };
        self.requant(name, cv.rqm, cv.ot, acc, rows * cols, nb, wts.par, dst, ops, cv.zo, cv.clamp)?;
        if let (Place::Act(_), Some((a2, row0))) = (cv.hout, cv.also) {
            // The accumulators of the rows from `row0` on, requantized again into the
            // next stripe's rows (whole rows: cascaded tiles are as wide as the output).
            let first = r0.max(row0);
            if first < r1 && cols == cv.ow {
                let skip = ((first - r0) * cols * nb * 4) as u32;
                let dst2 = a2 + (((first - row0) * cv.ow) * co + c0) as u32;
                let pixels = (r1 - first) * cols;
                self.requant(name, cv.rqm, cv.ot, acc + skip, pixels, nb, wts.par, dst2, ops, cv.zo, cv.clamp)?;
            }
        }
        if let Place::Ext(a) = cv.hout {
            let r = Rows { rows, width: cols, elem: nb, row_stride: cv.ow * co, pixel_stride: co };
            self.store_rows(dst, a as usize + offset, &r, name)?;
        }
        Ok(())
    }

    /// Convolutions `chain` — each after the first the only reader of the one before's
    /// output (`memory::cascade_target`) — over stripes of the last one's output rows.
    /// For each stripe every layer computes the rows of its output that the next one's
    /// window needs (rows two stripes share are computed for each: no state crosses a
    /// stripe) into a pinned half of the staging zone, the first reading its input and the
    /// last writing its output at their homes; every layer's weights stay resident.
    /// Returns the modeled cycles the stripes save against the layers alone (on a
    /// block-based unit; elsewhere 1), having emitted them only with `emit`; `None`, with
    /// nothing emitted, where the chain does not fit or, on a block-based unit, where its
    /// stripes would cost more modeled cycles than the layers alone. On other units only a
    /// pair into a 1×1 convolution of stride 1 (nothing recomputed) cascades.
    fn cascade(&mut self, chain: &[&QLayer], at: usize, emit: bool) -> Result<Option<f64>> {
        let q = self.q;
        let n = chain.len();
        // The intermediates must live in SRAM (else they stay on chip anyway), on npu's
        // own schedule.
        if self.schedule != Schedule::Overlapped
            || n < 2
            || chain[..n - 1].iter().any(|l| !matches!(self.homes[l.output], Place::Ext(_)))
        {
            return Ok(None);
        }
        // The memory plan keeps the first input live through the last layer (`plan` with
        // cascades); a plan made without may have given the last output its bytes, which
        // the stripes still read.
        let span = |v: usize| -> (bool, u64, u64) {
            let n = q.values[v].shape.iter().product::<usize>() as u64;
            match self.homes[v] {
                Place::Act(a) => (true, u64::from(a), u64::from(a) + n),
                Place::Ext(a) => (false, a, a + n),
            }
        };
        let (a, b) = (span(chain[0].inputs[0]), span(chain[n - 1].output));
        if a.0 == b.0 && a.1 < b.2 && b.1 < a.2 {
            return Ok(None);
        }
        let hw = self.hw;
        let blocked = match (hw.mac.dataflow, &hw.mac.blocks) {
            (npu_hw::Dataflow::Blocked, Some(b)) => Some(b),
            _ => None,
        };
        let pointwise = |l: &QLayer| {
            matches!(&l.op, QOp::Conv2d { stride, pad, groups, layer, .. }
                if *stride == [1, 1] && *pad == [0; 4] && *groups == 1 && layer.shape[2..] == [1, 1])
        };
        if blocked.is_none() && (n > 2 || !pointwise(chain[1])) {
            return Ok(None);
        }
        let mut setups = Vec::with_capacity(n);
        let mut weights = Vec::with_capacity(n);
        for l in chain {
            let QOp::Conv2d { stride, pad, dilation, groups, layer } = &l.op else { return Ok(None) };
            let Some(s) = self.conv_setup(l, *stride, *pad, *dilation, *groups, layer)? else { return Ok(None) };
            if s.cv.groups != 1 {
                return Ok(None);
            }
            setups.push(s);
            weights.push(layer);
        }
        // Every layer's weights and records stay in half their buffers (narrower channel
        // blocks below hold no fewer bytes).
        let held = |s: &ConvSetup, per: usize| -> usize {
            (0..s.cout_g).step_by(s.cb.max(1)).map(|c0| ((s.cb.min(s.cout_g - c0)) * per).next_multiple_of(4) + 3).sum()
        };
        let zp = |l: &WeightedLayer| if l.w_zero.iter().any(|z| *z != 0) { 4 } else { 0 };
        let rec = RqRecord::BYTES as usize;
        let wgt: usize = setups.iter().map(|s| held(s, s.k)).sum();
        let par: usize = setups.iter().zip(&weights).map(|(s, w)| held(s, rec) + held(s, zp(w))).sum();
        if wgt > self.wgt.size / 2 || par > self.par.size / 2 {
            return Ok(None);
        }
        // The output rows of every layer that rows `r0..r1` of the last one read.
        let rows_for = |r0: usize, r1: usize| -> Option<Vec<(usize, usize)>> {
            let mut rows = vec![(r0, r1); n];
            for i in (1..n).rev() {
                let cv = &setups[i].cv;
                let (s_top, in_rows, _, _) = cv.window((rows[i].0, rows[i].1, 0, cv.ow)).ok()?;
                rows[i - 1] = (s_top, s_top + in_rows);
            }
            Some(rows)
        };
        let vh = setups[n - 1].cv.oh;
        // For stripes of `th` rows of the last output: every layer's rows each stripe needs
        // (its window in the next layer) and the rows it computes — those no stripe before
        // did. Rows two consecutive stripes share are computed once and requantized into
        // both stripes' buffers, which needs them among the rows the earlier one computes.
        let plan = |th: usize| -> Option<Vec<Stripe>> {
            let mut out: Vec<Stripe> = Vec::new();
            for r0 in (0..vh).step_by(th) {
                let need = rows_for(r0, (r0 + th).min(vh))?;
                let new: Vec<(usize, usize)> = (0..n)
                    .map(|i| match out.last() {
                        Some(prev) if i + 1 < n => (need[i].0.max(prev.need[i].1), need[i].1),
                        _ => need[i],
                    })
                    .collect();
                if let Some(prev) = out.last() {
                    let ordered = (0..n - 1).all(|i| {
                        need[i].0 >= prev.need[i].0
                            && need[i].1 >= prev.need[i].1
                            && (need[i].0 >= prev.need[i].1 || need[i].0 >= prev.new[i].0)
                    });
                    if !ordered {
                        return None;
                    }
                }
                out.push(Stripe { need, new });
            }
            Some(out)
        };
        // Every layer's rows of one stripe: its accumulators in half their buffer (on a
        // block-based unit its channel block narrowed, down to one micro-block, for taller
        // stripes); the first layer's input rows and the last layer's output rows in a
        // quarter of the staging zone each, the intermediates' rows of a stripe in a
        // quarter (two stripes in the pinned half: one computed while the other is read).
        let (stg, acc) = (self.stg.size, self.acc.size);
        let depth = blocked.map_or(0, |b| (b.ublock.2 as usize).max(1));
        let fits = |th: usize| -> Option<(Vec<Stripe>, Vec<usize>)> {
            let stripes = plan(th)?;
            let (first, last) = (&setups[0], &setups[n - 1]);
            let peak = |i: usize| stripes.iter().map(|st| st.new[i].1 - st.new[i].0).max().unwrap_or(0);
            let mut cbs = Vec::with_capacity(n);
            for (i, s) in setups.iter().enumerate() {
                let px = peak(i) * s.cv.ow;
                if px > lim().rq.n as usize {
                    return None;
                }
                let room = (acc / 2) / (px * 4).max(1);
                let cb = if room >= s.cb {
                    s.cb
                } else if depth > 0 && room >= depth {
                    room / depth * depth
                } else {
                    return None;
                };
                cbs.push(cb);
            }
            let in_rows = ((peak(0).max(1) - 1) * first.cv.stride[0] + first.cv.eff).min(first.cv.h);
            let loaded = if first.cv.depthwise { cbs[0] } else { first.cv.cin_g };
            let between = |st: &Stripe| -> usize {
                (0..n - 1).map(|i| (st.need[i].1 - st.need[i].0) * setups[i].cv.ow * setups[i].cv.co).sum()
            };
            let ok = (matches!(first.cv.hin, Place::Act(_)) || in_rows * first.cv.w * loaded <= stg / 4)
                && stripes.iter().all(|st| between(st) <= stg / 4)
                && (matches!(last.cv.hout, Place::Act(_)) || peak(n - 1) * last.cv.ow * cbs[n - 1] <= stg / 4);
            ok.then_some((stripes, cbs))
        };
        // The modeled cycles of the stripes on a block-based unit: the block formulas of
        // every layer's rows, the first input's and the last output's SRAM traffic, and
        // each intermediate's rows requantized before the next layer reads them (the MAC
        // unit waits that long), the rows two stripes share a second time.
        let striped_cost = |b: &npu_hw::Blocks, stripes: &[Stripe], cbs: &[usize]| -> f64 {
            let bw = hw.memories.sram.bytes_per_cycle;
            let ext = |p: Place| matches!(p, Place::Ext(_));
            let lanes = hw.requant.lanes.max(1) as usize;
            let mut cycles = 0.0;
            for (j, st) in stripes.iter().enumerate() {
                for (i, s) in setups.iter().enumerate() {
                    let nr = st.new[i].1 - st.new[i].0;
                    if nr == 0 {
                        continue;
                    }
                    let streams = (i == 0 && ext(s.cv.hin), i == n - 1 && ext(s.cv.hout));
                    let mut shape = self.tile_shape(&s.cv, s.cout_g, streams);
                    shape.out.0 = nr;
                    let shared = match stripes.get(j + 1) {
                        Some(next) if i + 1 < n => st.need[i].1.saturating_sub(next.need[i].0),
                        _ => 0,
                    };
                    // The requantization of every row computed (the shared ones twice) runs
                    // beside the MAC unit, which it can hold up.
                    let rq = ((nr + shared) * s.cv.ow * s.cv.co).div_ceil(lanes) as f64;
                    cycles += shape.cost(b, nr, s.cv.ow, cbs[i], bw).max(rq);
                    if i + 1 < n {
                        cycles +=
                            ((nr + shared) * s.cv.ow * cbs[i]).div_ceil(lanes) as f64 + f64::from(hw.requant.latency);
                    }
                }
            }
            cycles
        };
        // The stripe height: the tallest that fits, or on a block-based unit the one of
        // fewest modeled cycles.
        let align = self.block_align().0;
        let mut chosen: Option<(f64, Vec<Stripe>, Vec<usize>)> = None;
        for th in (1..=vh).rev() {
            let th = align_tile(vh, th, align);
            let Some((stripes, cbs)) = fits(th) else { continue };
            let cost = blocked.map_or(0.0, |b| striped_cost(b, &stripes, &cbs));
            if chosen.as_ref().is_none_or(|c| cost < c.0) {
                chosen = Some((cost, stripes, cbs));
            }
            if blocked.is_none() {
                break;
            }
        }
        let Some((striped, stripes, cbs)) = chosen else { return Ok(None) };
        let blocks: Vec<Vec<(usize, usize, usize)>> = setups
            .iter()
            .zip(&cbs)
            .map(|(s, &cb)| (0..s.cout_g).step_by(cb.max(1)).map(|c0| (0, c0, (c0 + cb).min(s.cout_g))).collect())
            .collect();
        let held = |b: &[(usize, usize, usize)], per: usize| -> usize {
            b.iter().map(|&(_, c0, c1)| ((c1 - c0) * per).next_multiple_of(4) + 3).sum()
        };
        let wgt: usize = (0..n).map(|i| held(&blocks[i], setups[i].k)).sum();
        let par: usize = (0..n).map(|i| held(&blocks[i], rec) + held(&blocks[i], zp(weights[i]))).sum();
        if wgt > self.wgt.size / 2 || par > self.par.size / 2 {
            return Ok(None);
        }
        // On a block-based unit, only where the stripes cost fewer modeled cycles than the
        // layers tiled on their own with the intermediates through SRAM.
        // Weights and records cross off-chip memory at its bandwidth either way: a layer
        // bound by them gains nothing from stripes, and the chain's stripes take at least
        // as long as all of them.
        let saving = if blocked.is_some() {
            let offchip = |i: usize| {
                (held(&blocks[i], setups[i].k) + held(&blocks[i], rec) + held(&blocks[i], zp(weights[i]))) as f64
                    / hw.memories.dram.bytes_per_cycle.max(f64::MIN_POSITIVE)
            };
            let mut alone = 0.0;
            for (i, s) in setups.iter().enumerate() {
                let Some(c) = self.conv_tiling(&s.cv, s.k, s.cb, s.cout_g).ok().and_then(|t| t.3) else {
                    return Ok(None);
                };
                let rq = (s.cv.oh * s.cv.ow * s.cv.co).div_ceil(hw.requant.lanes.max(1) as usize) as f64;
                alone += c.max(offchip(i)).max(rq);
            }
            let striped = striped.max((0..n).map(offchip).sum());
            if striped >= alone {
                return Ok(None);
            }
            alone - striped
        } else {
            1.0
        };
        if !emit {
            return Ok(Some(saving));
        }
        // Stripe j's intermediates lie one after another in quarter j mod 2 of the staging
        // zone (its first half); the rest of the zone takes the first input's and the last
        // output's tiles.
        let (base, size) = (self.stg.base, self.stg.size);
        let quarter = size / 4;
        let regions = |j: usize| -> Vec<(u32, usize)> {
            let mut at = base + (j % 2) * quarter;
            let st = &stripes[j];
            (0..n - 1)
                .map(|i| {
                    let r = (at as u32, st.need[i].0);
                    at += (st.need[i].1 - st.need[i].0) * setups[i].cv.ow * setups[i].cv.co;
                    r
                })
                .collect()
        };
        let mut rest = Ring::new(base + 2 * quarter, size - 2 * quarter);
        std::mem::swap(&mut self.stg, &mut rest);
        let done = (|| -> Result<()> {
            let mut kept: Vec<Vec<Option<ConvWeights>>> = blocks.iter().map(|b| vec![None; b.len()]).collect();
            for (j, st) in stripes.iter().enumerate() {
                let here = regions(j);
                let next = (j + 1 < stripes.len()).then(|| regions(j + 1));
                for (i, s) in setups.iter().enumerate() {
                    let (o0, o1) = st.new[i];
                    if o0 == o1 {
                        continue;
                    }
                    let t = (o0, o1, 0, s.cv.ow);
                    let mut cv = s.cv;
                    if i > 0 {
                        (cv.hin, cv.in_row0) = (Place::Act(here[i - 1].0), here[i - 1].1);
                    }
                    if i + 1 < n {
                        (cv.hout, cv.out_row0) = (Place::Act(here[i].0), here[i].1);
                        cv.also = next.as_ref().map(|r| r[i]).filter(|&(_, row0)| row0 < o1);
                    }
                    self.layer = at + i;
                    let whole = if cv.depthwise { None } else { Some(self.conv_input(&cv, t, 0, 0, cv.co)?) };
                    for (b, &(grp, c0, c1)) in blocks[i].iter().enumerate() {
                        let keep = Some(&mut kept[i][b]);
                        let wts = self.kept_weights(keep, &cv, weights[i], c0, c1, s.packing, s.unpack)?;
                        let ifm = match whole {
                            Some(x) => x,
                            None => self.conv_input(&cv, t, grp, c0, c1)?,
                        };
                        self.conv_tile(&cv, t, ifm, (grp, c0, c1), wts)?;
                    }
                }
            }
            Ok(())
        })();
        std::mem::swap(&mut self.stg, &mut rest);
        done?;
        self.stg = Ring { base, size, next: rest.next };
        Ok(Some(saving))
    }

    /// A depthwise convolution whose window is its whole input (one output pixel; TFLite's
    /// MEAN) larger than the `conv` fields: the window's pixels, contiguous in the HWC
    /// layout, are summed in chunks — each read as a tile of at most 15×15 pixels with the
    /// matching slice of the weights — by accumulating `conv`s, then requantized once.
    fn global_depthwise(&mut self, l: &QLayer, layer: &WeightedLayer) -> Result<()> {
        let name = l.name.as_str();
        let q = self.q;
        let (xin, out) = (&q.values[l.inputs[0]], &q.values[l.output]);
        let (at, _) = isa_types(xin.q.dtype);
        let (_, ot) = isa_types(out.q.dtype);
        let (c, h, w) = (xin.shape[0], xin.shape[1], xin.shape[2]);
        let n = h * w;
        let cl = &lim().conv;
        let (tk_h, tk_w) = (cl.kh as usize, cl.kw as usize);
        // Chunks of the pixel sequence as (first pixel, tile rows, tile columns).
        let mut chunks = Vec::new();
        let mut p = 0;
        while p < n {
            let left = n - p;
            let (r, cols) = if left >= tk_w { ((left / tk_w).min(tk_h), tk_w) } else { (1, left) };
            chunks.push((p, r, cols));
            p += r * cols;
        }
        let (mode, packing, unpack, rqm) = check_weighted(self.hw, name, layer, q.scheme.rounding)?;
        let hin = self.homes[l.inputs[0]];
        let hout = self.homes[l.output];
        let stg_room = self.stg.size / 4;
        let mut cb = self.channel_block(c, tk_h * tk_w, false, name)?;
        while cb > 1 && matches!(hin, Place::Ext(_)) && tk_h * tk_w * cb > stg_room {
            cb = cb.div_ceil(2);
        }
        let pv = i32::from(xin.q.zero_point as u8);
        for c0 in (0..c).step_by(cb) {
            let c1 = (c0 + cb).min(c);
            let nb = c1 - c0;
            let (par, zp) = self.tables(layer, c0, c1, name)?;
            let acc = self.acc.alloc(nb * 4, 4, name, "the accumulators")?;
            for (i, &(p0, r, cols)) in chunks.iter().enumerate() {
                let len = r * cols;
                // Depthwise weights [c][ky][kx] (pixel order per channel) to the ISA's
                // [pixel][c] for this chunk's pixels.
                let wv: Vec<i32> =
                    (p0..p0 + len).flat_map(|px| (c0..c1).map(move |o| layer.weights[o * n + px])).collect();
                let wbytes = weight_bytes(&wv, packing, name)?;
                let wgt = self.load_constant(&wbytes, wv.len(), LocalSpace::Wgt, unpack, "a block of weights", name)?;
                let (ifm, ps) = match hin {
                    Place::Act(a) => (a as usize + p0 * c + c0, c),
                    Place::Ext(a) => {
                        let rr = Rows { rows: 1, width: len, elem: nb, row_stride: len * c, pixel_stride: c };
                        (self.load_rows(a as usize + p0 * c + c0, &rr, name)? as usize, 0)
                    }
                };
                let conv = Conv {
                    mode,
                    accum: u32::from(i > 0),
                    at,
                    dw: 1,
                    ifm: ifm as u32,
                    ih: r as u32,
                    iw: cols as u32,
                    cin: field(nb, cl.cin, name, "channels")?,
                    ps: field(ps, cl.ps, name, "pixel stride")?,
                    wgt,
                    kh: r as u32,
                    kw: cols as u32,
                    sy: 1,
                    sx: 1,
                    dy: 1,
                    dx: 1,
                    pt: 0,
                    pb: 0,
                    pl: 0,
                    pr: 0,
                    pv,
                    cout: field(nb, cl.cout, name, "output channels")?,
                    dst: acc / 4,
                };
                self.op(Op::Conv(conv));
                if let Some(zp) = zp {
                    self.op(Op::Wzp(Wzp {
                        at,
                        dw: 1,
                        ifm: conv.ifm,
                        ih: conv.ih,
                        iw: conv.iw,
                        cin: conv.cin,
                        ps: conv.ps,
                        kh: conv.kh,
                        kw: conv.kw,
                        sy: 1,
                        sx: 1,
                        dy: 1,
                        dx: 1,
                        pt: 0,
                        pb: 0,
                        pl: 0,
                        pr: 0,
                        pv,
                        cout: conv.cout,
                        zp,
                        dst: conv.dst,
                    }));
                }
            }
            let (dst, ops) = match hout {
                Place::Act(a) => (a + c0 as u32, if nb == c { 0 } else { c }),
                Place::Ext(_) => (self.stg.alloc(nb, 1, name, "an output tile")?, 0),
            };
            self.requant(name, rqm, ot, acc, 1, nb, par, dst, ops, out.q.zero_point, l.clamp)?;
            if let Place::Ext(a) = hout {
                let rr = Rows { rows: 1, width: 1, elem: nb, row_stride: c, pixel_stride: c };
                self.store_rows(dst, a as usize + c0, &rr, name)?;
            }
        }
        Ok(())
    }

    fn dense(&mut self, l: &QLayer, layer: &WeightedLayer) -> Result<()> {
        let name = l.name.as_str();
        let q = self.q;
        let (kin, n_out) = (layer.shape[1], layer.shape[0]);
        let (mode, packing, unpack, rqm) = check_weighted(self.hw, name, layer, q.scheme.rounding)?;
        // Weights are [out][in] over the CHW flattening; activations are stored HWC.
        let perm: Vec<usize> = match flattened_from(q, l.inputs[0]) {
            Some(s) if s[1] * s[2] > 1 => {
                let (c, h, w) = (s[0], s[1], s[2]);
                (0..kin).map(|i| (i % c) * h * w + i / c).collect()
            }
            _ => (0..kin).collect(),
        };
        let hin = self.homes[l.inputs[0]];
        // The reduction is split into chunks (accumulated) when the inputs must be
        // streamed from SRAM and do not fit, or exceed what one pass can address.
        // One `mm` pass reduces at most `k` values; a `wzp` correction sums `cin`.
        let mut kc = kin.min(lim().mm.k as usize).min(lim().wzp.cin as usize);
        if matches!(hin, Place::Ext(_)) {
            kc = kc.min(self.stg.size / 4);
        }
        if kc == 0 {
            return Err(err(name, "the staging zone of the activation buffer is too small for any input"));
        }
        let chunks = kin.div_ceil(kc);
        let kc = kin.div_ceil(chunks);
        let nb = self.channel_block(n_out, kc, false, name)?;
        let resident = match hin {
            Place::Act(a) => Some(a),
            Place::Ext(_) => None,
        };
        let coding = (mode, packing, unpack, rqm);
        // An input streamed from memory in one chunk is loaded once for all the blocks of
        // weights, into a pinned half of the staging zone (the outputs take the other).
        let (base, size) = (self.stg.base, self.stg.size);
        let pin = resident.is_none() && chunks == 1 && nb < n_out && kin <= size / 2 && nb <= (size - size / 2) / 2;
        let mut pinned = pin.then(|| Ring::new(base, size / 2));
        if pin {
            self.stg = Ring::new(base + size / 2, size - size / 2);
        }
        let blocks = self.dense_blocks(l, layer, (kin, kc, nb, n_out), &perm, resident, pinned.as_mut(), coding);
        if pin {
            self.stg = Ring { base, size, next: self.stg.next };
        }
        blocks
    }

    /// The blocks of output channels of dense layer `l` (see [`Lowerer::dense`]): `dims`
    /// are the inputs, the inputs per chunk, the channels per block and the outputs;
    /// `resident` is where the whole input is in the activation buffer, if it is, and
    /// `pinned` where to load it once, after the first block of weights (whose off-chip
    /// load can then move ahead into the layer before, which it cannot past the input's
    /// load on hardware with one DMA-in queue).
    #[allow(clippy::too_many_arguments)]
    fn dense_blocks(
        &mut self,
        l: &QLayer,
        layer: &WeightedLayer,
        dims: (usize, usize, usize, usize),
        perm: &[usize],
        mut resident: Option<u32>,
        mut pinned: Option<&mut Ring>,
        coding: (MacMode, Option<Packing>, Unpack, RqMode),
    ) -> Result<()> {
        let name = l.name.as_str();
        let q = self.q;
        let (kin, kc, nb, n_out) = dims;
        let (mode, packing, unpack, rqm) = coding;
        let (xin, out) = (&q.values[l.inputs[0]], &q.values[l.output]);
        let (at, _) = isa_types(xin.q.dtype);
        let (_, ot) = isa_types(out.q.dtype);
        let (hin, hout) = (self.homes[l.inputs[0]], self.homes[l.output]);
        for c0 in (0..n_out).step_by(nb) {
            let c1 = (c0 + nb).min(n_out);
            let cnt = c1 - c0;
            let (par, zp) = self.tables(layer, c0, c1, name)?;
            let acc = self.acc.alloc(cnt * 4, 4, name, "the accumulators")?;
            for k0 in (0..kin).step_by(kc) {
                let k1 = (k0 + kc).min(kin);
                let len = k1 - k0;
                // Weights first: their off-chip load can then move ahead into the layer
                // before (prefetch), which it cannot past the input's load from SRAM.
                let wv: Vec<i32> = (c0..c1)
                    .flat_map(|o| perm[k0..k1].iter().map(move |&p| (o, p)))
                    .map(|(o, p)| layer.weights[o * kin + p])
                    .collect();
                let wbytes = weight_bytes(&wv, packing, name)?;
                let wgt = self.load_constant(&wbytes, wv.len(), LocalSpace::Wgt, unpack, "a block of weights", name)?;
                let x = match (resident, pinned.as_deref_mut()) {
                    (Some(a), _) => a + k0 as u32,
                    (None, Some(ring)) => {
                        std::mem::swap(&mut self.stg, ring);
                        let x = self.operand(hin, 0, kin, name);
                        std::mem::swap(&mut self.stg, ring);
                        let a = x?;
                        resident = Some(a);
                        a
                    }
                    (None, None) => self.operand(hin, k0, len, name)?,
                };
                let accum = u32::from(k0 > 0);
                self.op(Op::Mm(Mm { mode, accum, at, a: x, b: wgt, c: acc / 4, m: 1, k: len as u32, n: cnt as u32 }));
                if let Some(zp) = zp {
                    self.op(Op::Wzp(Wzp {
                        at,
                        dw: 0,
                        ifm: x,
                        ih: 1,
                        iw: 1,
                        cin: len as u32,
                        ps: 0,
                        kh: 1,
                        kw: 1,
                        sy: 1,
                        sx: 1,
                        dy: 1,
                        dx: 1,
                        pt: 0,
                        pb: 0,
                        pl: 0,
                        pr: 0,
                        pv: 0,
                        cout: cnt as u32,
                        zp,
                        dst: acc / 4,
                    }));
                }
            }
            let dst = self.result(hout, c0, cnt, name)?;
            self.requant(name, rqm, ot, acc, 1, cnt, par, dst, 0, out.q.zero_point, l.clamp)?;
            self.flush(hout, dst, c0, cnt, name)?;
        }
        Ok(())
    }
}

/// Output rows (or columns) per tile, at most `fit` of `n`: balanced tiles (all but the
/// last as large, none much smaller) when `align` is 1; on a block-based MAC unit,
/// whole multiples of `align` (its micro-block) so no tile leaves a block part-empty.
fn align_tile(n: usize, fit: usize, align: usize) -> usize {
    if fit >= n {
        n
    } else if align > 1 && fit >= align {
        fit / align * align
    } else {
        n.div_ceil(n.div_ceil(fit))
    }
}

/// The input rows output rows `r0..r1` read through a window of height `span` (with
/// dilation) at `stride`, over an input of `h` rows padded by `pad_top` above: the first
/// stored row, how many stored rows, and the padding rows above and below the tile.
fn tile_rows(
    r0: usize,
    r1: usize,
    stride: usize,
    span: usize,
    pad_top: usize,
    h: usize,
    name: &str,
) -> Result<(usize, usize, usize, usize)> {
    let top = (r0 * stride) as isize - pad_top as isize;
    let bot = ((r1 - 1) * stride + span) as isize - pad_top as isize;
    let (s_top, s_bot) = (top.max(0) as usize, (bot.min(h as isize).max(0)) as usize);
    if s_bot <= s_top {
        return Err(err(name, "a tile of output rows reads only padding"));
    }
    Ok((s_top, s_bot - s_top, (s_top as isize - top) as usize, (bot - s_bot as isize) as usize))
}

fn err(layer: &str, msg: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("cannot compile layer `{layer}`: {msg}"))
}

/// The operand limits lowering respects: every field at its largest value, from the
/// ISA's instruction table.
struct Limits {
    ld: Ld,
    st: St,
    ldz: npu_isa::Ldz,
    conv: Conv,
    wzp: Wzp,
    mm: Mm,
    rq: Rq,
    pool: Pool,
}

/// No padding around a load.
const NO_PAD: ([usize; 4], i32) = ([0; 4], 0);

fn lim() -> &'static Limits {
    static L: std::sync::LazyLock<Limits> = std::sync::LazyLock::new(|| Limits {
        ld: Ld::limits(),
        st: St::limits(),
        ldz: npu_isa::Ldz::limits(),
        conv: Conv::limits(),
        wzp: Wzp::limits(),
        mm: Mm::limits(),
        rq: Rq::limits(),
        pool: Pool::limits(),
    });
    &L
}

fn field(v: usize, max: u32, layer: &str, what: &str) -> Result<u32> {
    if v > max as usize {
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

fn unpack_packing(u: Unpack) -> Option<Packing> {
    match u {
        Unpack::None => None,
        Unpack::I4 => Some(Packing::I4),
        Unpack::T2 => Some(Packing::T2),
        Unpack::B1 => Some(Packing::B1),
    }
}

fn isa_types(t: ActType) -> (IsaAct, OutType) {
    match t {
        // 4-bit activations are int8 bytes; the requantization clamps keep them in range.
        ActType::I8 | ActType::I4 => (IsaAct::I8, OutType::I8),
        ActType::U8 => (IsaAct::U8, OutType::U8),
    }
}

fn rq_mode(r: &Requant, rounding: RoundingMode) -> RqMode {
    match (r, rounding) {
        (Requant::Shift(_), _) => RqMode::Shift,
        (Requant::SingleRounding(_), _) => RqMode::Mul1,
        (_, RoundingMode::Double) => RqMode::Mul,
        (_, RoundingMode::Single) => RqMode::Mul1,
    }
}

/// Requantization records of channels `c0..c1`.
fn rq_records(layer: &WeightedLayer, c0: usize, c1: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity((c1 - c0) * RqRecord::BYTES as usize);
    for c in c0..c1 {
        let (multiplier, shift) = match &layer.requant {
            Requant::Multiplier(v) | Requant::SingleRounding(v) => v[c.min(v.len() - 1)],
            Requant::Shift(v) => (0, v[c.min(v.len() - 1)]),
        };
        out.extend_from_slice(&RqRecord { bias: layer.bias[c], multiplier, shift }.encode());
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

/// For a flat value made by flattening a `[C, H, W]` tensor (stored HWC) in place, the
/// CHW shape it came from.
fn flattened_from(q: &QModel, v: usize) -> Option<Vec<usize>> {
    let l = q.layers.iter().find(|l| l.output == v)?;
    if !matches!(l.op, QOp::Reshape) || super::memory::needs_relayout(q, l) {
        return None;
    }
    let src = &q.values[l.inputs[0]].shape;
    if src.len() == 3 {
        Some(src.clone())
    } else {
        flattened_from(q, l.inputs[0])
    }
}

/// A nearest-resize column map as DMA runs `(first input column, count, step, repeat)`:
/// `count` input columns `first, first + step, …`, each repeated `repeat` times.
fn column_runs(cols: &[usize]) -> Vec<(usize, usize, usize, usize)> {
    // (column, repeat) groups of equal consecutive entries.
    let mut groups: Vec<(usize, usize)> = Vec::new();
    for &x in cols {
        match groups.last_mut() {
            Some((v, n)) if *v == x => *n += 1,
            _ => groups.push((x, 1)),
        }
    }
    let mut runs: Vec<(usize, usize, usize, usize)> = Vec::new();
    for (x, rep) in groups {
        if let Some((x0, count, step, r)) = runs.last_mut() {
            let next = *x0 + *count * *step;
            let fits = *r == rep && (*count == 1 && x > *x0 || *count > 1 && x == next);
            if fits {
                if *count == 1 {
                    *step = x - *x0;
                }
                *count += 1;
                continue;
            }
        }
        runs.push((x, 1, 1, rep));
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::column_runs;

    #[test]
    fn column_maps_become_few_dma_runs() {
        // ×2: one run of every column twice; ×1.5 (0,0,1,2,2,3): alternating repeats;
        // downsampling by 2: one run with step 2; a map that goes back: separate runs.
        assert_eq!(column_runs(&[0, 0, 1, 1, 2, 2]), [(0, 3, 1, 2)]);
        assert_eq!(column_runs(&[0, 0, 1, 2, 2, 3]), [(0, 1, 1, 2), (1, 1, 1, 1), (2, 1, 1, 2), (3, 1, 1, 1)]);
        assert_eq!(column_runs(&[0, 2, 4, 6]), [(0, 4, 2, 1)]);
        assert_eq!(column_runs(&[3, 1]), [(3, 1, 1, 1), (1, 1, 1, 1)]);
    }
}
