//! Functional semantics: what each instruction does to the machine state.
//!
//! [`plan`] checks an instruction against the hardware without touching data — every
//! address range, every capability, every geometric constraint — and returns the
//! [`Work`] it represents, which is all the timing model and the counters need.
//! [`execute`] then performs it on the data, through `npu_isa::arith` only. Timing-only
//! runs call `plan` and skip `execute`, so they check the same things except what
//! depends on data (weight values, parameter records, packed codes).

use npu_hw::HwConfig;

pub use npu_hw::blocks::{MacKind, MacShape};
use npu_isa::arith::{self, ElementwiseParams, OutputStage, QuantizedMultiplier, Rounding};
use npu_isa::{
    footprint, Access, ActType, Conv, EwRecord, ExtSpace, Ld, MacMode, Mm, Op, OutType, Pool, PoolKind, Rq, RqMode,
    Space, St, WindowGeometry, Wzp, LUT_BYTES, SOFTMAX_RECORD_BYTES,
};

use std::sync::Arc;

use crate::error::TrapKind;
use crate::kernels;
use crate::state::{check, Machine, Packing, Weights};

/// A MAC-array pass in the terms of the systolic model (SCALE-Sim's `Sr`, `Sc`, `T`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MacWork {
    /// Precision mode.
    pub mode: MacMode,
    /// Useful multiply-accumulates.
    pub macs: u64,
    /// Spatial rows of the mapping (reduction length for weight-stationary).
    pub sr: u64,
    /// Spatial columns of the mapping (output channels).
    pub sc: u64,
    /// Temporal length (output pixels for weight-stationary).
    pub t: u64,
    /// Extra cycles after the array pass (the zero-point correction's multiply-subtract).
    pub extra: u64,
    /// The layer-shaped view a block-based MAC unit times (`Dataflow::Blocked`).
    pub shape: MacShape,
}

/// A DMA transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DmaWork {
    /// External memory.
    pub ext: npu_isa::ExtSpace,
    /// True for DMA-out (a write to external memory).
    pub write: bool,
    /// Bytes moved on the external side.
    pub ext_bytes: u64,
    /// External bytes after rounding every contiguous run up to whole bursts.
    pub burst_bytes: u64,
    /// Bytes moved on the local side.
    pub local_bytes: u64,
    /// Local buffer.
    pub local: Space,
    /// Bytes out of the weight decompressor (`ldz`; 0 otherwise).
    pub decompressed: u64,
}

/// What an instruction costs, independent of data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Work {
    /// MAC-array pass.
    pub mac: Option<MacWork>,
    /// DMA transfer.
    pub dma: Option<DmaWork>,
    /// Requantized elements and whether the multiplier is used.
    pub rq: Option<(u64, bool)>,
    /// Vector-unit element operations.
    pub vec_ops: u64,
    /// Their kind (the rates of a vector unit with per-kind costs).
    pub vec_kind: npu_hw::VectorOp,
    /// A pooling instruction's shape (a block-based MAC unit pools on its blocks).
    pub pool: Option<MacShape>,
    /// A host call: multiply-accumulates, output elements and bytes the CPU moves.
    pub host: Option<HostWork>,
    /// Bytes read per memory, indexed by [`Space`].
    pub reads: [u64; 6],
    /// Bytes written per memory, indexed by [`Space`].
    pub writes: [u64; 6],
}

/// The work of a `host` call, which the CPU cost model prices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostWork {
    /// Multiply-accumulates.
    pub macs: u64,
    /// Output elements.
    pub elements: u64,
    /// Bytes of inputs and output in system SRAM.
    pub bytes: u64,
    /// Bytes of weights and parameters, read from off-chip memory.
    pub weight_bytes: u64,
}

/// Runs a hot loop compiled for AVX-512 (F, BW, DQ, VL) or AVX2 when the CPU has them
/// (checked at run time), and for the baseline target otherwise. Same source, same
/// integers: the loops call only `npu_isa::arith`, whose wrapping and saturating
/// operations vectorize exactly.
macro_rules! with_simd {
    ($f:ident($($arg:expr),*)) => {{
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
            unsafe fn avx512<R>(f: impl FnOnce() -> R) -> R {
                f()
            }
            #[target_feature(enable = "avx2")]
            unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
                f()
            }
            if simd_level() == 2 {
                // SAFETY: the CPU supports these AVX-512 subsets, checked by `simd_level`.
                unsafe { avx512(#[inline(always)] || $f($($arg),*)) }
            } else if simd_level() == 1 {
                // SAFETY: the CPU supports AVX2, checked by `simd_level`.
                unsafe { avx2(#[inline(always)] || $f($($arg),*)) }
            } else {
                $f($($arg),*)
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            $f($($arg),*)
        }
    }};
}

fn u(v: u32) -> u64 {
    u64::from(v)
}

fn invalid(msg: String) -> TrapKind {
    TrapKind::InvalidOperands(msg)
}

/// Number of contiguous runs and their length for a 3-D strided walk of
/// `n2 × n1 × n0` elements of `elem` bytes with strides `s2, s1, s0`.
fn runs(n2: u64, n1: u64, n0: u64, elem: u64, s2: u64, s1: u64, s0: u64) -> (u64, u64) {
    if !(n0 == 1 || s0 == elem) {
        return (n2 * n1 * n0, elem);
    }
    let row = n0 * elem;
    if !(n1 == 1 || s1 == row) {
        return (n2 * n1, row);
    }
    let plane = n1 * row;
    if !(n2 == 1 || s2 == plane) {
        return (n2, plane);
    }
    (1, n2 * plane)
}

fn burst_bytes(runs: (u64, u64), burst: u32) -> u64 {
    runs.0 * runs.1.next_multiple_of(u64::from(burst))
}

/// The stored input tile of a window instruction, for building its padded copy.
struct Tile {
    ih: u32,
    iw: u32,
    cin: u32,
    pt: u32,
    pl: u32,
    pv: i32,
}

impl Tile {
    fn of_conv(c: &Conv) -> Tile {
        Tile { ih: c.ih, iw: c.iw, cin: c.cin, pt: c.pt, pl: c.pl, pv: c.pv }
    }
    fn of_wzp(z: &Wzp) -> Tile {
        Tile { ih: z.ih, iw: z.iw, cin: z.cin, pt: z.pt, pl: z.pl, pv: z.pv }
    }
}

/// Window-geometry errors as traps.
fn geometry_trap(e: npu_isa::Error) -> TrapKind {
    match e {
        npu_isa::Error::Operands { what, .. } => TrapKind::InvalidOperands(what),
        other => TrapKind::InvalidOperands(other.to_string()),
    }
}

/// The input tile as a dense `[ph][pw][cin]` array of operand values, the padding
/// border filled with `pv`.
fn padded_input(m: &Machine, mode: MacMode, at: ActType, ifm: u32, t: &Tile, g: &WindowGeometry) -> Vec<i32> {
    let a = activations(m, mode, at, ifm, g.in_span);
    let (ph, pw, cin, ps) = (g.ph as usize, g.pw as usize, t.cin as usize, g.ps as usize);
    let (pt, pl, ih, iw) = (t.pt as usize, t.pl as usize, t.ih as usize, t.iw as usize);
    let fill = arith::activation_value(mode, at, t.pv as u8);
    let mut out = vec![fill; ph * pw * cin];
    for y in 0..ih {
        for x in 0..iw {
            let src = (y * iw + x) * ps;
            let dst = ((y + pt) * pw + x + pl) * cin;
            out[dst..dst + cin].copy_from_slice(&a[src..src + cin]);
        }
    }
    out
}

/// Checks that `addr` (and, for accumulator transfers, `len`) is a multiple of `align`.
fn aligned(operand: &'static str, space: Space, addr: u64, len: u64, align: u64) -> Result<(), TrapKind> {
    if !addr.is_multiple_of(align) {
        return Err(TrapKind::Misaligned { operand, space: space.name(), addr, align, what: String::new() });
    }
    if !len.is_multiple_of(align) {
        return Err(TrapKind::Misaligned {
            operand,
            space: space.name(),
            addr,
            align,
            what: format!(" (its length {len} is not a multiple of {align})"),
        });
    }
    Ok(())
}

fn mode_supported(hw: &HwConfig, mode: MacMode) -> Result<(), TrapKind> {
    if !hw.supports(mode) {
        return Err(TrapKind::Unsupported { hw: hw.name.clone(), what: format!("`{mode}` mode in its MAC array") });
    }
    Ok(())
}

fn mac_work(
    hw: &HwConfig,
    mode: MacMode,
    macs: u64,
    reduction: u64,
    cols: u64,
    pixels: u64,
    shape: MacShape,
) -> MacWork {
    let per_pe = u64::from(hw.mac.macs_per_pe.get(mode)).max(1);
    let red = reduction.div_ceil(per_pe);
    let (sr, sc, t) = match hw.mac.dataflow {
        npu_hw::Dataflow::WeightStationary | npu_hw::Dataflow::Blocked => (red, cols, pixels),
        npu_hw::Dataflow::OutputStationary => (pixels, cols, red),
    };
    MacWork { mode, macs, sr, sc, t, extra: 0, shape }
}

fn plan_conv(hw: &HwConfig, c: &Conv) -> Result<Work, TrapKind> {
    let g = c.geometry().map_err(geometry_trap)?;
    let dw = c.dw == 1;
    let taps = u(c.kh) * u(c.kw);
    let outs = g.oh * g.ow * u(c.cout);
    let red = if dw { taps } else { taps * u(c.cin) };
    let macs = outs * red;
    let shape = MacShape {
        kind: if dw { MacKind::Depthwise } else { MacKind::Conv },
        oh: g.oh,
        ow: g.ow,
        cout: u(c.cout),
        cin: u(c.cin),
        kh: u(c.kh),
        kw: u(c.kw),
        sy: u(c.sy).max(1),
        sx: u(c.sx).max(1),
    };
    let mut w = Work { mac: Some(mac_work(hw, c.mode, macs, red, u(c.cout), g.oh * g.ow, shape)), ..Work::default() };
    let col_folds = u(c.cout).div_ceil(u(hw.mac.cols));
    w.reads[Space::Act as usize] = if dw { g.oh * g.ow * red * u(c.cout) } else { col_folds * g.oh * g.ow * red };
    w.reads[Space::Wgt as usize] = c.weight_bytes();
    w.writes[Space::Acc as usize] = outs * 4;
    if c.accum == 1 {
        w.reads[Space::Acc as usize] = outs * 4;
    }
    Ok(w)
}

fn plan_mm(hw: &HwConfig, m: &Mm) -> Work {
    let (rows, k, n) = (u(m.m), u(m.k), u(m.n));
    let shape = MacShape { kind: MacKind::VectorProduct, oh: 1, ow: rows, cout: n, cin: k, kh: 1, kw: 1, sy: 1, sx: 1 };
    let mut w = Work { mac: Some(mac_work(hw, m.mode, rows * n * k, k, n, rows, shape)), ..Work::default() };
    w.reads[Space::Act as usize] = n.div_ceil(u(hw.mac.cols)) * rows * k;
    w.reads[Space::Wgt as usize] = n * k;
    w.writes[Space::Acc as usize] = rows * n * 4;
    if m.accum == 1 {
        w.reads[Space::Acc as usize] = rows * n * 4;
    }
    w
}

fn plan_wzp(hw: &HwConfig, z: &Wzp) -> Result<Work, TrapKind> {
    let g = z.geometry().map_err(geometry_trap)?;
    let dw = z.dw == 1;
    let taps = u(z.kh) * u(z.kw);
    let red = if dw { taps } else { taps * u(z.cin) };
    let pixels = g.oh * g.ow;
    let outs = pixels * u(z.cout);
    // Window sums: one array column of ones (the depthwise variant sums per channel,
    // one column per channel); then a multiply-subtract per accumulator, `cols` per cycle.
    let sums_cols = if dw { u(z.cout) } else { 1 };
    let shape = MacShape {
        kind: if dw { MacKind::Depthwise } else { MacKind::Conv },
        oh: g.oh,
        ow: g.ow,
        cout: sums_cols,
        cin: if dw { sums_cols } else { u(z.cin) },
        kh: u(z.kh),
        kw: u(z.kw),
        sy: u(z.sy).max(1),
        sx: u(z.sx).max(1),
    };
    let mut mw = mac_work(hw, MacMode::I8, pixels * red * sums_cols, red, sums_cols, pixels, shape);
    mw.macs += outs;
    mw.extra = outs.div_ceil(u(hw.mac.cols));
    let mut w = Work { mac: Some(mw), ..Work::default() };
    w.reads[Space::Act as usize] = pixels * red * sums_cols;
    w.reads[Space::Par as usize] = u(z.cout) * 4;
    w.reads[Space::Acc as usize] = outs * 4;
    w.writes[Space::Acc as usize] = outs * 4;
    Ok(w)
}

/// A DMA transfer's work, from its two accesses (external and local).
fn dma_work(
    hw: &HwConfig,
    ext: ExtSpace,
    write: bool,
    runs: (u64, u64),
    e: &Access,
    l: &Access,
    decompressed: u64,
) -> Work {
    let mem = hw.memory(ext);
    let mut w = Work {
        dma: Some(DmaWork {
            ext,
            write,
            ext_bytes: runs.0 * runs.1,
            burst_bytes: burst_bytes(runs, mem.burst),
            local_bytes: l.len(),
            local: l.space,
            decompressed,
        }),
        ..Work::default()
    };
    if write {
        w.reads[l.space as usize] = l.len();
        w.writes[e.space as usize] = runs.0 * runs.1;
    } else {
        w.reads[e.space as usize] = runs.0 * runs.1;
        w.writes[l.space as usize] = l.len();
    }
    w
}

fn plan_pool(p: &Pool) -> Result<Work, TrapKind> {
    let g = p.geometry().map_err(geometry_trap)?;
    let c = u(p.c);
    let ops = g.oh * g.ow * c * u(p.kh) * u(p.kw);
    let shape = MacShape {
        kind: MacKind::Pooling,
        oh: g.oh,
        ow: g.ow,
        cout: c,
        cin: c,
        kh: u(p.kh),
        kw: u(p.kw),
        sy: u(p.sy).max(1),
        sx: u(p.sx).max(1),
    };
    let mut w = Work { vec_ops: ops, vec_kind: npu_hw::VectorOp::Pool, pool: Some(shape), ..Work::default() };
    w.reads[Space::Act as usize] = ops;
    w.writes[Space::Act as usize] = g.oh * g.ow * c;
    Ok(w)
}

fn out_range(ot: (i32, i32), lo: i32, hi: i32, what: &str) -> Result<(i32, i32), TrapKind> {
    if lo > hi {
        return Err(invalid(format!("{what}: clamp lower bound {lo} exceeds upper bound {hi}")));
    }
    let (l, h) = (lo.max(ot.0), hi.min(ot.1));
    if l > h {
        return Err(invalid(format!("{what}: clamp [{lo}, {hi}] lies outside the output range [{}, {}]", ot.0, ot.1)));
    }
    Ok((l, h))
}

/// What `op` needs of the hardware beyond memory ranges: MAC modes, the multiplier, the
/// decompressor, and operands that are consistent with each other.
fn capabilities(hw: &HwConfig, op: &Op) -> Result<(), TrapKind> {
    match op {
        Op::Conv(c) => {
            mode_supported(hw, c.mode)?;
            if c.dw == 1 && c.cout != c.cin {
                return Err(invalid(format!(
                    "depthwise convolution needs cout = cin (got cout {} and cin {})",
                    c.cout, c.cin
                )));
            }
        }
        Op::Mm(m) => mode_supported(hw, m.mode)?,
        Op::Wzp(z) if z.dw == 1 && z.cout != z.cin => {
            return Err(invalid(format!(
                "depthwise zero-point correction needs cout = cin (got {} and {})",
                z.cout, z.cin
            )));
        }
        Op::Ldw(_) if !hw.dma.weight_queue => {
            return Err(TrapKind::Unsupported {
                hw: hw.name.clone(),
                what: "a weight DMA-in queue (`ldw`; dma.weight_queue is false): use `ld`".to_string(),
            });
        }
        Op::Ldz(_) if !hw.has_decompressor() => {
            return Err(invalid(format!(
                "the hardware `{}` has no weight decompressor (dma.decompress_bytes_per_cycle is 0)",
                hw.name
            )));
        }
        Op::Rq(r) => {
            if r.mode != RqMode::Shift && !hw.requant.multiplier {
                return Err(TrapKind::Unsupported {
                    hw: hw.name.clone(),
                    what: format!(
                        "requantization multiplier (`mode={}`); shift-only hardware supports `mode=shift`",
                        r.mode
                    ),
                });
            }
            out_range(r.ot.range(), r.lo, r.hi, "rq")?;
        }
        Op::Vadd(v) => drop(out_range(v.ty.range(), v.lo, v.hi, "vadd")?),
        Op::Vsub(v) => drop(out_range(v.ty.range(), v.lo, v.hi, "vsub")?),
        Op::Vmul(v) => drop(out_range(v.ty.range(), v.lo, v.hi, "vmul")?),
        _ => {}
    }
    Ok(())
}

/// Word alignment: accumulator transfers move whole words; records and zero points in
/// `par` are read as words.
fn alignment(op: &Op, feet: &[Access]) -> Result<(), TrapKind> {
    let acc_side =
        |a: &Access| if a.space == Space::Acc { aligned(a.operand, a.space, a.lo, a.len(), 4) } else { Ok(()) };
    match op {
        Op::Ld(_) | Op::Ldw(_) | Op::Ldz(_) => acc_side(&feet[1]),
        Op::St(_) => acc_side(&feet[0]),
        Op::Wzp(z) => aligned("zp", Space::Par, u(z.zp), 0, 4),
        Op::Rq(r) => aligned("par", Space::Par, u(r.par), 0, 4),
        Op::Vadd(_) | Op::Vsub(_) | Op::Vmul(_) => aligned("par", Space::Par, feet[2].lo, 0, 4),
        _ => Ok(()),
    }
}

/// Checks `op` against `hw` and returns its data-independent work: the hardware's
/// capabilities, then every access of the instruction's [`footprint`] against the
/// memories, then alignment.
pub fn plan(hw: &HwConfig, op: &Op) -> Result<Work, TrapKind> {
    capabilities(hw, op)?;
    let feet = footprint(op).map_err(geometry_trap)?;
    for a in &feet {
        check(hw, a.space, a.operand, a.lo, a.len())?;
    }
    alignment(op, &feet)?;
    let dma_in = |l: Ld| {
        let src_elem = l.unpack.source_bytes(u(l.elem));
        let r = runs(u(l.n2), u(l.n1), u(l.n0), src_elem, u(l.s2), u(l.s1), u(l.s0));
        Ok(dma_work(hw, l.ext, false, r, &feet[0], &feet[1], 0))
    };
    match op {
        Op::Ld(l) => dma_in(*l),
        Op::Ldw(l) => dma_in(Ld::from(*l)),
        Op::Ldz(l) => Ok(dma_work(hw, l.ext, false, (1, u(l.len)), &feet[0], &feet[1], u(l.n))),
        Op::St(s) => {
            let r = runs(u(s.n2), u(s.n1), u(s.n0), u(s.elem), u(s.s2), u(s.s1), u(s.s0));
            Ok(dma_work(hw, s.ext, true, r, &feet[1], &feet[0], 0))
        }
        Op::Conv(c) => plan_conv(hw, c),
        Op::Mm(m) => Ok(plan_mm(hw, m)),
        Op::Wzp(z) => plan_wzp(hw, z),
        Op::Rq(r) => {
            let mut w = Work { rq: Some((u(r.n) * u(r.c), r.mode != RqMode::Shift)), ..Work::default() };
            w.reads[Space::Acc as usize] = feet[0].len();
            w.reads[Space::Par as usize] = feet[1].len();
            w.writes[Space::Act as usize] = u(r.n) * u(r.c);
            Ok(w)
        }
        Op::Vadd(_) | Op::Vsub(_) | Op::Vmul(_) => {
            let n = feet[3].len();
            let kind = if matches!(op, Op::Vmul(_)) { npu_hw::VectorOp::Mul } else { npu_hw::VectorOp::Add };
            let mut w = Work { vec_ops: n, vec_kind: kind, ..Work::default() };
            w.reads[Space::Act as usize] = 2 * n;
            w.reads[Space::Par as usize] = EwRecord::BYTES;
            w.writes[Space::Act as usize] = n;
            Ok(w)
        }
        Op::Pool(p) => plan_pool(p),
        Op::Host(h) => {
            let inputs = u(h.sn) + u(h.bn);
            let mut w = Work {
                host: Some(HostWork {
                    macs: u(h.macs),
                    elements: u(h.dn),
                    bytes: inputs + u(h.dn),
                    weight_bytes: u(h.wn),
                }),
                ..Work::default()
            };
            w.reads[Space::Sram as usize] = inputs;
            w.writes[Space::Sram as usize] = u(h.dn);
            w.reads[Space::Dram as usize] = u(h.wn);
            Ok(w)
        }
        Op::Lut(l) => {
            let n = u(l.n);
            let mut w = Work { vec_ops: n, vec_kind: npu_hw::VectorOp::Lut, ..Work::default() };
            w.reads[Space::Act as usize] = n;
            w.reads[Space::Par as usize] = n;
            w.writes[Space::Act as usize] = n;
            Ok(w)
        }
        Op::Softmax(x) => {
            // Three passes over each row (maximum; exponentials and their sum; scaled
            // exponentials), each element once per pass through the vector unit.
            let n = u(x.n) * u(x.d);
            let mut w = Work { vec_ops: 3 * n, vec_kind: npu_hw::VectorOp::Softmax, ..Work::default() };
            w.reads[Space::Act as usize] = n;
            w.reads[Space::Par as usize] = SOFTMAX_RECORD_BYTES;
            w.writes[Space::Act as usize] = n;
            Ok(w)
        }
        Op::SyncOp(_) | Op::Loop(_) | Op::EndLoop(_) | Op::Halt(_) | Op::Nop(_) => Ok(Work::default()),
    }
}

// ---- execution ----------------------------------------------------------------------

fn word(b: &[u8], i: usize) -> i32 {
    i32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]])
}

fn store_byte(ot_signed: bool, v: i32) -> u8 {
    if ot_signed {
        (v as i8) as u8
    } else {
        v as u8
    }
}

/// What the machine memoizes with [`Machine::derived`]: requantization records.
const DERIVED_RQ: u8 = 0;
/// What the machine memoizes with [`Machine::derived`]: a DMA-in that unpacks.
const DERIVED_UNPACK: u8 = 1;

fn exec_ld(m: &mut Machine, l: &Ld) -> Result<(), TrapKind> {
    let d = l.dst as usize;
    let (n2, n1) = (l.n2 as usize, l.n1 as usize);
    let plain = l.unpack.packing().is_none() && (l.pt, l.pb, l.pl, l.pr) == (0, 0, 0, 0) && l.s0 == l.elem;
    let written = if plain {
        // Dense rows, no padding: memory to memory, row by row (`ld_bytes` without its
        // intermediate copy).
        let row = l.n0 as usize * l.elem as usize;
        for p in 0..n2 {
            for y in 0..n1 {
                let s = l.src as usize + p * l.s2 as usize + y * l.s1 as usize;
                m.copy_between(l.ext.into(), s, l.loc.into(), d + (p * n1 + y) * row, row);
            }
        }
        n2 * n1 * row
    } else {
        let out = ld_built(m, l)?;
        m.region_mut(l.loc.into(), d, out.len()).copy_from_slice(&out);
        out.len()
    };
    if Space::from(l.loc) == Space::Wgt && m.pristine(l.ext.into(), l.src as usize, l.src as usize + ld_span(l)) {
        // Weights from the program's untouched initial bytes: identified by this load.
        let mut source = [0u32; 17];
        source[..3].copy_from_slice(&[1, l.ext as u32, l.src]);
        source[3..16].copy_from_slice(&ld_shape(l));
        m.set_origin(d, d + written, source);
    }
    Ok(())
}

/// An `ld`'s operands besides its memories and addresses, in field order: what its
/// bytes depend on besides the source bytes.
fn ld_shape(l: &Ld) -> [u32; 13] {
    [l.n2, l.n1, l.n0, l.elem, l.s2, l.s1, l.s0, l.pt, l.pb, l.pl, l.pr, l.pv as u32, l.unpack as u32]
}

/// The bytes an `ld` reads from `src` on: to the end of its last (packed) element.
fn ld_span(l: &Ld) -> usize {
    let elem = l.unpack.packing().map_or(l.elem as usize, |pk| pk.packed_len(l.elem as usize));
    (l.n2 as usize - 1) * l.s2 as usize
        + (l.n1 as usize - 1) * l.s1 as usize
        + (l.n0 as usize - 1) * l.s0 as usize
        + elem
}

/// The bytes an `ld` writes, built apart (padding, strided elements, unpacking).
fn ld_built(m: &mut Machine, l: &Ld) -> Result<Vec<u8>, TrapKind> {
    Ok(match l.unpack.packing() {
        // Unpacking depends only on the bytes read and the operands: once per bytes.
        Some(_) if m.any_kernels() => {
            let mut f = [0u32; 16];
            f[..13].copy_from_slice(&ld_shape(l));
            let src = u64::from(l.src);
            Arc::unwrap_or_clone(m.derived(DERIVED_UNPACK, f, l.ext.into(), src, ld_span(l), |b| ld_bytes(l, b, 0))?)
        }
        _ => ld_bytes(l, m.bytes(l.ext.into()), l.src as usize)?,
    })
}

/// The bytes `l` writes to its local buffer, `ext` holding its source from index `base`
/// (`l.src` itself, or 0 when `ext` is the source span alone).
fn ld_bytes(l: &Ld, ext: &[u8], base: usize) -> Result<Vec<u8>, TrapKind> {
    let (n2, n1, n0, elem) = (l.n2 as usize, l.n1 as usize, l.n0 as usize, l.elem as usize);
    let (pt, pb, pl, pr) = (l.pt as usize, l.pb as usize, l.pl as usize, l.pr as usize);
    let (rows, cols) = (pt + n1 + pb, pl + n0 + pr);
    let pack = l.unpack.packing();
    let src_elem = pack.map_or(elem, |p| p.packed_len(elem));
    let pad = (l.pv & 0xff) as u8;
    let mut out = vec![pad; n2 * rows * cols * elem];
    for p in 0..n2 {
        for y in 0..n1 {
            if pack.is_none() && l.s0 as usize == elem {
                // A contiguous row: one copy.
                let s = base + p * l.s2 as usize + y * l.s1 as usize;
                let d = ((p * rows + y + pt) * cols + pl) * elem;
                out[d..d + n0 * elem].copy_from_slice(&ext[s..s + n0 * elem]);
                continue;
            }
            for x in 0..n0 {
                let s = base + p * l.s2 as usize + y * l.s1 as usize + x * l.s0 as usize;
                let d = ((p * rows + y + pt) * cols + x + pl) * elem;
                let src = &ext[s..s + src_elem];
                match pack {
                    None => out[d..d + elem].copy_from_slice(src),
                    Some(pk) => {
                        let vals = arith::unpack(src, elem, pk).map_err(|e| {
                            let at = l.src as usize + s - base;
                            TrapKind::InvalidData(format!("{e} (element at {} {at:#x})", l.ext))
                        })?;
                        for (o, v) in out[d..d + elem].iter_mut().zip(vals) {
                            *o = v as u8;
                        }
                    }
                }
            }
        }
    }
    Ok(out)
}

fn exec_st(m: &mut Machine, s: &St) -> Result<(), TrapKind> {
    let (n2, n1, n0, elem) = (s.n2 as usize, s.n1 as usize, s.n0 as usize, s.elem as usize);
    let src = s.src as usize;
    let data = m.bytes(s.loc.into())[src..src + n2 * n1 * n0 * elem].to_vec();
    let span = (n2 - 1) * s.s2 as usize + (n1 - 1) * s.s1 as usize + (n0 - 1) * s.s0 as usize + elem;
    let ext = m.region_mut(s.ext.into(), s.dst as usize, span);
    let mut i = 0;
    for p in 0..n2 {
        for y in 0..n1 {
            for x in 0..n0 {
                let d = p * s.s2 as usize + y * s.s1 as usize + x * s.s0 as usize;
                ext[d..d + elem].copy_from_slice(&data[i..i + elem]);
                i += elem;
            }
        }
    }
    Ok(())
}

/// Decodes the weight bytes `bytes`, read at `wgt`, for `mode`, trapping on a value
/// outside its range.
fn decode_weights(mode: MacMode, wgt: u32, bytes: &[u8]) -> Result<Vec<i32>, TrapKind> {
    let table: [Option<i32>; 256] = std::array::from_fn(|b| arith::weight_value(mode, b as u8));
    bytes
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            table[b as usize].ok_or_else(|| {
                TrapKind::InvalidData(format!(
                    "weight {} at wgt {:#x} is outside the range of `{mode}` mode",
                    b as i8,
                    wgt as usize + i
                ))
            })
        })
        .collect()
}

/// The `len` weights at `wgt` in `mode`, shaped `[cols][taps][…]` (memoized by the
/// machine; packed for the fast kernels when `pack`).
fn weights(
    m: &mut Machine,
    mode: MacMode,
    wgt: u32,
    len: usize,
    shape: (usize, usize),
    pack: Packing,
) -> Result<Arc<Weights>, TrapKind> {
    m.weights((wgt, len, mode, shape.0, shape.1), pack, |b| decode_weights(mode, wgt, b))
}

/// For the kernels, in a dense tile `iw` pixels wide of `kp` bytes per pixel: where each
/// output pixel's window starts (row-major over `out`) and where each tap lies within a
/// window (row-major over `kernel`), as byte offsets.
fn windows(
    out: (usize, usize),
    kernel: (usize, usize),
    (sy, sx): (usize, usize),
    (dy, dx): (usize, usize),
    iw: usize,
    kp: usize,
) -> (Vec<usize>, Vec<usize>) {
    let grid = |(rows, cols): (usize, usize), (ry, rx): (usize, usize)| {
        let mut v = Vec::with_capacity(rows * cols);
        for y in 0..rows {
            v.extend((0..cols).map(|x| (y * ry * iw + x * rx) * kp));
        }
        v
    };
    (grid(out, (sy, sx)), grid(kernel, (dy, dx)))
}

/// The fast kernels' view of activation bytes in `mode`: a table from byte to `u8`
/// (the value plus the offset) and the offset (128 if values can be negative, else 0).
fn byte_table(mode: MacMode, at: ActType) -> ([u8; 256], i32) {
    let values: [i32; 256] = std::array::from_fn(|b| arith::activation_value(mode, at, b as u8));
    let offset = if values.iter().any(|v| *v < 0) { 128 } else { 0 };
    (std::array::from_fn(|b| (values[b] + offset) as u8), offset)
}

/// [`padded_input`] for the fast kernels, into `out`: the tile as bytes of
/// [`byte_table`], pixels `cin` bytes apart; returns the offset.
fn padded_bytes(
    m: &Machine,
    mode: MacMode,
    at: ActType,
    ifm: u32,
    t: &Tile,
    g: &WindowGeometry,
    out: &mut Vec<u8>,
) -> i32 {
    let (table, offset) = byte_table(mode, at);
    let src = &m.bytes(Space::Act)[ifm as usize..ifm as usize + g.in_span as usize];
    let (ph, pw, cin, ps) = (g.ph as usize, g.pw as usize, t.cin as usize, g.ps as usize);
    let (pt, pl, ih, iw) = (t.pt as usize, t.pl as usize, t.ih as usize, t.iw as usize);
    // Outside `xnor` mode the table flips the sign bit (int8 values plus 128) or is the
    // identity (uint8): a lane-wise XOR, one row at a time where pixels are dense.
    let xor = (mode != MacMode::Xnor).then_some(table[0]).filter(|_| ps == cin);
    if let Some(k) = xor {
        if (ph, pw) == (ih, iw) && src.len() >= ih * iw * cin {
            // No padding: the tile is the bytes in order, every byte written below.
            out.resize(ih * iw * cin, 0);
            with_simd!(xor_bytes(&src[..ih * iw * cin], k, out));
            return offset;
        }
    }
    out.clear();
    out.resize(ph * pw * cin, table[t.pv as u8 as usize]);
    for y in 0..ih {
        match xor {
            Some(k) => {
                let (s, d) = (y * iw * cin, ((y + pt) * pw + pl) * cin);
                for (o, b) in out[d..d + iw * cin].iter_mut().zip(&src[s..s + iw * cin]) {
                    *o = b ^ k;
                }
            }
            None => {
                for x in 0..iw {
                    let s = (y * iw + x) * ps;
                    let d = ((y + pt) * pw + x + pl) * cin;
                    for (o, b) in out[d..d + cin].iter_mut().zip(&src[s..s + cin]) {
                        *o = table[*b as usize];
                    }
                }
            }
        }
    }
    offset
}

#[inline(always)]
fn xor_bytes(src: &[u8], k: u8, out: &mut [u8]) {
    for (o, b) in out.iter_mut().zip(src) {
        *o = b ^ k;
    }
}

fn activations(m: &Machine, mode: MacMode, at: ActType, start: u32, len: u64) -> Vec<i32> {
    let s = start as usize;
    let table: [i32; 256] = std::array::from_fn(|b| arith::activation_value(mode, at, b as u8));
    m.bytes(Space::Act)[s..s + len as usize].iter().map(|&b| table[b as usize]).collect()
}

/// The accumulators `dst..dst+n` (words), or zeros when not accumulating.
fn acc_in(m: &Machine, dst: usize, n: usize, accum: bool) -> Vec<i32> {
    if !accum {
        return vec![0; n];
    }
    m.bytes(Space::Acc)[dst * 4..(dst + n) * 4]
        .chunks_exact(4)
        .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn acc_out(m: &mut Machine, dst: usize, v: &[i32]) {
    let bytes = m.region_mut(Space::Acc, dst * 4, v.len() * 4);
    for (b, x) in bytes.chunks_exact_mut(4).zip(v) {
        b.copy_from_slice(&x.to_le_bytes());
    }
}

/// 2 with AVX-512 F/BW/DQ/VL, 1 with AVX2, else 0 (detected once).
#[cfg(target_arch = "x86_64")]
fn simd_level() -> u8 {
    static LEVEL: std::sync::OnceLock<u8> = std::sync::OnceLock::new();
    *LEVEL.get_or_init(|| {
        use std::arch::is_x86_feature_detected as has;
        if has!("avx512f") && has!("avx512bw") && has!("avx512dq") && has!("avx512vl") {
            2
        } else if has!("avx2") {
            1
        } else {
            0
        }
    })
}

struct ConvLoops {
    oh: usize,
    ow: usize,
    kh: usize,
    kw: usize,
    cin: usize,
    cout: usize,
    iw: usize,
    sy: usize,
    sx: usize,
    dy: usize,
    dx: usize,
    dw: bool,
}

#[inline(always)]
fn conv_loops(g: &ConvLoops, a: &[i32], w: &[i32], out: &mut [i32]) {
    let (kh, kw, cin, cout) = (g.kh, g.kw, g.cin, g.cout);
    for oy in 0..g.oh {
        for ox in 0..g.ow {
            let o = &mut out[(oy * g.ow + ox) * cout..(oy * g.ow + ox + 1) * cout];
            for ky in 0..kh {
                let row = (oy * g.sy + ky * g.dy) * g.iw;
                for kx in 0..kw {
                    let pix = (row + ox * g.sx + kx * g.dx) * cin;
                    let tap = ky * kw + kx;
                    if g.dw {
                        arith::mac_lanes(o, &a[pix..pix + cout], &w[tap * cout..(tap + 1) * cout]);
                    } else {
                        let x = &a[pix..pix + cin];
                        for (co, s) in o.iter_mut().enumerate() {
                            let wrow = (co * kh * kw + tap) * cin;
                            *s = arith::dot(*s, x, &w[wrow..wrow + cin]);
                        }
                    }
                }
            }
        }
    }
}

fn exec_conv(m: &mut Machine, c: &Conv) -> Result<(), TrapKind> {
    let g = c.geometry().map_err(geometry_trap)?;
    let (kh, kw, cin, cout) = (c.kh as usize, c.kw as usize, c.cin as usize, c.cout as usize);
    let iw = g.pw as usize;
    let (sy, sx, dy, dx) = (c.sy as usize, c.sx as usize, c.dy as usize, c.dx as usize);
    let dw = c.dw == 1;
    let wlen = if dw { kh * kw * cout } else { kh * kw * cin * cout };
    let (wide, any) = (m.fast_kernels(), m.any_kernels());
    let pack = match dw {
        true if wide => Packing::Depthwise,
        false if any => Packing::Dense,
        _ => Packing::None,
    };
    let w = weights(m, c.mode, c.wgt, wlen, (cout, kh * kw), pack)?;
    let (oh, ow) = (g.oh as usize, g.ow as usize);
    let accumulate = c.accum == 1;
    if any && dw {
        let mut a = m.take_tile();
        let offset = padded_bytes(m, c.mode, c.at, c.ifm, &Tile::of_conv(c), &g, &mut a);
        let (bases, taps) = windows((oh, ow), (kh, kw), (sy, sx), (dy, dx), iw, cin);
        let out = m.region_mut(Space::Acc, c.dst as usize * 4, oh * ow * cout * 4);
        match &w.dw {
            Some(p) => kernels::depthwise_packed(&a, &bases, &taps, offset, p, out, accumulate),
            None => kernels::depthwise_on(wide, &a, &bases, &taps, cout, offset, &w.values, out, accumulate),
        }
        m.put_tile(a);
    } else if let (true, Some(p)) = (any, &w.packed) {
        // Pixels `cin` bytes apart; the kernel reads each tap's channels rounded up to
        // whole groups of four, the bytes past them meeting zero weights (and, past the
        // last pixel, slack bytes).
        let mut a = m.take_tile();
        let offset = padded_bytes(m, c.mode, c.at, c.ifm, &Tile::of_conv(c), &g, &mut a);
        a.resize(a.len() + (p.k_padded() - cin), 0);
        let (bases, taps) = windows((oh, ow), (kh, kw), (sy, sx), (dy, dx), iw, cin);
        let out = m.region_mut(Space::Acc, c.dst as usize * 4, oh * ow * cout * 4);
        kernels::conv_on(wide, &a, &bases, &taps, offset, p, out, accumulate);
        m.put_tile(a);
    } else {
        let mut out = acc_in(m, c.dst as usize, oh * ow * cout, accumulate);
        // The padded tile, dense: pixel (y, x) at `(y*iw + x)*cin`.
        let a = padded_input(m, c.mode, c.at, c.ifm, &Tile::of_conv(c), &g);
        let geo = ConvLoops { oh, ow, kh, kw, cin, cout, iw, sy, sx, dy, dx, dw };
        with_simd!(conv_loops(&geo, &a, &w.values, &mut out));
        acc_out(m, c.dst as usize, &out);
    }
    Ok(())
}

#[inline(always)]
fn mm_loops(rows: usize, k: usize, n: usize, a: &[i32], w: &[i32], out: &mut [i32]) {
    for i in 0..rows {
        for j in 0..n {
            let s = &mut out[i * n + j];
            *s = arith::dot(*s, &a[i * k..(i + 1) * k], &w[j * k..(j + 1) * k]);
        }
    }
}

fn exec_mm(m: &mut Machine, op: &Mm) -> Result<(), TrapKind> {
    let (rows, k, n) = (op.m as usize, op.k as usize, op.n as usize);
    let (fast, vnni) = (m.any_kernels(), m.fast_kernels());
    let w = weights(m, op.mode, op.b, n * k, (n, 1), if fast { Packing::Dense } else { Packing::None })?;
    let accumulate = op.accum == 1;
    if let (true, Some(p)) = (fast, &w.packed) {
        let kp = p.k_padded();
        let (table, offset) = byte_table(op.mode, op.at);
        let src = &m.bytes(Space::Act)[op.a as usize..op.a as usize + rows * k];
        let mut a = vec![0u8; rows * kp];
        for (dst, row) in a.chunks_exact_mut(kp).zip(src.chunks_exact(k)) {
            for (d, b) in dst.iter_mut().zip(row) {
                *d = table[*b as usize];
            }
        }
        let bases: Vec<usize> = (0..rows).map(|r| r * kp).collect();
        let out = m.region_mut(Space::Acc, op.c as usize * 4, rows * n * 4);
        kernels::conv_on(vnni, &a, &bases, &[0], offset, p, out, accumulate);
    } else {
        let mut out = acc_in(m, op.c as usize, rows * n, accumulate);
        let a = activations(m, op.mode, op.at, op.a, (rows * k) as u64);
        with_simd!(mm_loops(rows, k, n, &a, &w.values, &mut out));
        acc_out(m, op.c as usize, &out);
    }
    Ok(())
}

fn exec_wzp(m: &mut Machine, z: &Wzp) -> Result<(), TrapKind> {
    let g = z.geometry().map_err(geometry_trap)?;
    let (kh, kw, cin, cout) = (z.kh as usize, z.kw as usize, z.cin as usize, z.cout as usize);
    let (iw, ps) = (g.pw as usize, cin);
    let par = m.bytes(Space::Par);
    let zps: Vec<i32> = (0..cout).map(|c| word(&par[z.zp as usize..], c)).collect();
    let dw = z.dw == 1;
    let vnni = m.fast_kernels();
    if m.any_kernels() {
        // The window sums are a convolution with weights of one (one output channel, or
        // one per channel for depthwise) on the kernels; then acc −= sum·zw, wrapping.
        let (sy, sx, dy, dx) = (z.sy as usize, z.sx as usize, z.dy as usize, z.dx as usize);
        let (oh, ow) = (g.oh as usize, g.ow as usize);
        // As for `conv`: pixels `cin` bytes apart, slack for the last one's group of four.
        let mut a = m.take_tile();
        let offset = padded_bytes(m, MacMode::I8, z.at, z.ifm, &Tile::of_wzp(z), &g, &mut a);
        a.resize(a.len() + (cin.div_ceil(4) * 4 - cin), 0);
        let (bases, taps) = windows((oh, ow), (kh, kw), (sy, sx), (dy, dx), iw, cin);
        let mut sums = vec![0u8; bases.len() * if dw { cout } else { 1 } * 4];
        if dw {
            kernels::depthwise_on(vnni, &a, &bases, &taps, cin, offset, &vec![1; taps.len() * cin], &mut sums, false);
        } else {
            let ones = kernels::Packed::new(&vec![1; taps.len() * cin], 1, taps.len(), cin)
                .ok_or_else(|| invalid("wzp: window too large for the kernels".into()))?;
            kernels::conv_on(vnni, &a, &bases, &taps, offset, &ones, &mut sums, false);
        }
        m.put_tile(a);
        let sums: Vec<i32> = sums.chunks_exact(4).map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        let negated: Vec<i32> = zps.iter().map(|z| z.wrapping_neg()).collect();
        let acc = m.region_mut(Space::Acc, z.dst as usize * 4, bases.len() * cout * 4);
        with_simd!(wzp_rows(acc, &sums, &negated, dw));
        return Ok(());
    }
    let a = padded_input(m, MacMode::I8, z.at, z.ifm, &Tile::of_wzp(z), &g);
    for oy in 0..g.oh as usize {
        for ox in 0..g.ow as usize {
            let o = z.dst as usize + (oy * g.ow as usize + ox) * cout;
            let mut total = 0i32;
            let mut per_ch = vec![0i32; if dw { cout } else { 0 }];
            for ky in 0..kh {
                for kx in 0..kw {
                    let pix =
                        ((oy * z.sy as usize + ky * z.dy as usize) * iw + ox * z.sx as usize + kx * z.dx as usize) * ps;
                    if dw {
                        for (co, s) in per_ch.iter_mut().enumerate() {
                            *s = arith::mac(*s, a[pix + co], 1);
                        }
                    } else {
                        for ci in 0..cin {
                            total = arith::mac(total, a[pix + ci], 1);
                        }
                    }
                }
            }
            for (co, &zw) in zps.iter().enumerate() {
                let sum = if dw { per_ch[co] } else { total };
                let acc = m.acc(o + co);
                m.set_acc(o + co, arith::mac(acc, sum, zw.wrapping_neg()));
            }
        }
    }
    Ok(())
}

/// The greatest common divisor.
fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Elements the requantization lanes take at a time (whole pixels).
const RQ_BLOCK: usize = 2048;

/// `acc[p][co] += sum·(−zw[co])` in wrapping int32 over little-endian accumulator rows
/// of `negated.len()` words, `sum` per pixel (`sums[p]`) or per pixel and channel
/// (`sums[p·c + co]`, depthwise).
#[inline(always)]
fn wzp_rows(acc: &mut [u8], sums: &[i32], negated: &[i32], dw: bool) {
    let c = negated.len();
    let mut vals = vec![0i32; c];
    for (p, out) in acc.chunks_exact_mut(c * 4).enumerate() {
        for (v, b) in vals.iter_mut().zip(out.chunks_exact(4)) {
            *v = i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
        if dw {
            for ((v, s), z) in vals.iter_mut().zip(&sums[p * c..(p + 1) * c]).zip(negated) {
                *v = arith::mac(*v, *s, *z);
            }
        } else {
            let s = sums[p];
            for (v, z) in vals.iter_mut().zip(negated) {
                *v = arith::mac(*v, s, *z);
            }
        }
        for (b, v) in out.chunks_exact_mut(4).zip(&vals) {
            b.copy_from_slice(&v.to_le_bytes());
        }
    }
}

struct RqRows {
    /// Whether a kernel may run ([`Machine::any_kernels`]).
    fast: bool,
    /// Whether it is the AVX-512 one ([`Machine::fast_kernels`]).
    wide: bool,
    n: usize,
    c: usize,
    ps: usize,
    dst: usize,
    signed: bool,
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn rq_rows(
    g: &RqRows,
    accs: &[u8],
    act: &mut [u8],
    params: &RqParams,
    multiplier: bool,
    rounding: Rounding,
    out: OutputStage,
) -> Result<(), TrapKind> {
    let bounds = out.lo.checked_sub(out.zero_point).and(out.hi.checked_sub(out.zero_point));
    if let (true, Some(plans), Some(_)) = (g.fast, &params.plans, bounds) {
        let stage = (out.zero_point, out.lo, out.hi);
        match &plans.wide {
            // Dense rows whose channel count is not a multiple of the 16 lanes: as rows
            // of lcm(c, 16) channels (the records repeated), so that no lane idles; the
            // pixels left over as they are.
            Some(wide) if g.ps == g.c && g.n >= wide.channels() / g.c => {
                let group = wide.channels() / g.c;
                let rows = g.n / group;
                kernels::requantize_on(g.wide, accs, rows, wide, stage, act, g.dst, wide.channels());
                let done = rows * group;
                let rest = &accs[done * g.c * 4..];
                kernels::requantize_on(g.wide, rest, g.n - done, &plans.plain, stage, act, g.dst + done * g.c, g.c);
            }
            _ => kernels::requantize_on(g.wide, accs, g.n, &plans.plain, stage, act, g.dst, g.ps),
        }
        return Ok(());
    }
    let per_ch: Vec<&RqRecord> =
        (0..g.c).map(|ch| &params.records[if params.records.len() == 1 { 0 } else { ch }]).collect();
    let lanes_mul = multiplier && rounding == Rounding::Double && per_ch.iter().all(|r| r.qm.is_some());
    if lanes_mul || !multiplier {
        // The lanes paths: the same integers, vectorized. Shift-only records were
        // checked when decoded (`rq_record`), so every shift is in range.
        // Whole blocks of pixels at a time (the channels' parameters repeated over the
        // block), so that the lanes are long whatever the channel count.
        let block = (RQ_BLOCK / g.c).max(1).min(g.n);
        let bias: Vec<i32> = per_ch.iter().map(|r| r.bias).collect::<Vec<_>>().repeat(block);
        let qms: Vec<QuantizedMultiplier> = per_ch.iter().filter_map(|r| r.qm).collect::<Vec<_>>().repeat(block);
        let shifts: Vec<i32> = per_ch.iter().map(|r| r.shift).collect::<Vec<_>>().repeat(block);
        let (mut x, mut y) = (vec![0i32; block * g.c], vec![0i32; block * g.c]);
        for p0 in (0..g.n).step_by(block) {
            let len = block.min(g.n - p0) * g.c;
            let (x, y) = (&mut x[..len], &mut y[..len]);
            for (v, word) in x.iter_mut().zip(accs[p0 * g.c * 4..].chunks_exact(4)) {
                *v = i32::from_le_bytes([word[0], word[1], word[2], word[3]]);
            }
            if lanes_mul {
                arith::requantize_double_lanes(x, &bias[..len], &qms[..len], out, y);
            } else {
                arith::shift_requantize_lanes(x, &bias[..len], &shifts[..len], out, y);
            }
            for (i, row) in y.chunks_exact(g.c).enumerate() {
                let d = g.dst + (p0 + i) * g.ps;
                for (byte, v) in act[d..d + g.c].iter_mut().zip(row) {
                    *byte = store_byte(g.signed, *v);
                }
            }
        }
        return Ok(());
    }
    for p in 0..g.n {
        let d = g.dst + p * g.ps;
        let row = &mut act[d..d + g.c];
        let words = accs[p * g.c * 4..(p + 1) * g.c * 4].chunks_exact(4);
        for ((byte, word), rec) in row.iter_mut().zip(words).zip(per_ch.iter().copied()) {
            let acc = arith::add_bias(i32::from_le_bytes([word[0], word[1], word[2], word[3]]), rec.bias);
            let v = match (multiplier, rec.qm) {
                (true, Some(qm)) => arith::requantize(acc, qm, rounding, out),
                _ => arith::shift_requantize(acc, rec.shift, out).map_err(|e| TrapKind::InvalidData(e.to_string()))?,
            };
            *byte = store_byte(g.signed, v);
        }
    }
    Ok(())
}

/// One decoded requantization record.
struct RqRecord {
    bias: i32,
    qm: Option<QuantizedMultiplier>,
    shift: i32,
}

/// An `rq`'s parameter records (one, or one per channel) and, where the kernel applies
/// (multiplier mode with double rounding, every shift a right shift), its plans:
/// memoized together per parameter bytes.
struct RqParams {
    records: Vec<RqRecord>,
    plans: Option<RqPlans>,
}

/// [`kernels::RqPlan`]s of one `rq`: its `c` channels, and for `c` not a multiple of 16
/// lanes, lcm(c, 16) channels (the records repeated) for rows of dense pixels.
struct RqPlans {
    plain: kernels::RqPlan,
    wide: Option<kernels::RqPlan>,
}

impl RqPlans {
    /// The plans of `records` over `c` channels (`None` where the kernel does not apply).
    fn new(records: &[RqRecord], c: usize, double: bool) -> Option<RqPlans> {
        let rec = |ch: usize| &records[if records.len() == 1 { 0 } else { ch }];
        let qms: Vec<QuantizedMultiplier> = (0..c).map(|ch| rec(ch).qm).collect::<Option<_>>()?;
        if !double || !qms.iter().all(|q| (-31..=0).contains(&q.shift())) {
            return None;
        }
        let bias: Vec<i32> = (0..c).map(|ch| rec(ch).bias).collect();
        let multiplier: Vec<i32> = qms.iter().map(|q| q.multiplier()).collect();
        let right: Vec<i32> = qms.iter().map(|q| -q.shift()).collect();
        let plan = |k: usize| {
            let (b, m, r) = (bias.repeat(k), multiplier.repeat(k), right.repeat(k));
            kernels::RqPlan::new(kernels::RqChannels { bias: &b, multiplier: &m, right: &r })
        };
        let wide = c / gcd(c, kernels::COLS) * kernels::COLS;
        let wide = (c > 0 && !c.is_multiple_of(kernels::COLS) && wide <= RQ_BLOCK).then(|| plan(wide / c)).flatten();
        Some(RqPlans { plain: plan(1)?, wide })
    }
}

fn rq_record(par: &[u8], mode: RqMode, channel: usize) -> Result<RqRecord, TrapKind> {
    let at = channel * npu_isa::RqRecord::BYTES as usize;
    let rec = par.get(at..).and_then(npu_isa::RqRecord::decode).ok_or_else(|| {
        TrapKind::InvalidData(format!("requantization record of channel {channel} lies beyond the parameter buffer"))
    })?;
    let (bias, mult, shift) = (rec.bias, rec.multiplier, rec.shift);
    let bad = |e: npu_isa::Error| TrapKind::InvalidData(format!("requantization record of channel {channel}: {e}"));
    let qm = match mode {
        RqMode::Shift => {
            arith::rounding_shift(0, shift).map_err(bad)?;
            None
        }
        _ => Some(QuantizedMultiplier::new(mult, shift).map_err(bad)?),
    };
    Ok(RqRecord { bias, qm, shift })
}

fn exec_rq(m: &mut Machine, r: &Rq) -> Result<(), TrapKind> {
    let (n, c) = (r.n as usize, r.c as usize);
    let ps = if r.ps == 0 { c } else { r.ps as usize };
    let (lo, hi) = out_range(r.ot.range(), r.lo, r.hi, "rq")?;
    let out = OutputStage::new(r.zo, lo, hi).map_err(|e| invalid(e.to_string()))?;
    let rounding = if r.mode == RqMode::Mul1 { Rounding::Single } else { Rounding::Double };
    let multiplier = matches!(r.mode, RqMode::Mul | RqMode::Mul1);
    let nrec = if r.pc == 1 { c } else { 1 };
    let decode = |par: &[u8]| -> Result<RqParams, TrapKind> {
        let records = (0..nrec).map(|ch| rq_record(par, r.mode, ch)).collect::<Result<Vec<_>, _>>()?;
        let plans = RqPlans::new(&records, c, multiplier && rounding == Rounding::Double);
        Ok(RqParams { records, plans })
    };
    let len = nrec * npu_isa::RqRecord::BYTES as usize;
    let params = if r.par as usize + len <= m.bytes(Space::Par).len() {
        // Decoded once per parameter bytes (replays meet the same records every input).
        m.derived(
            DERIVED_RQ,
            [r.mode as u32, r.pc, r.c, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            Space::Par,
            u64::from(r.par),
            len,
            decode,
        )?
    } else {
        // Runs off the buffer: `rq_record` says where.
        Arc::new(decode(&m.bytes(Space::Par)[r.par as usize..])?)
    };
    let signed = r.ot != OutType::U8;
    let src = r.src as usize * 4;
    let (fast, wide) = (m.any_kernels(), m.fast_kernels());
    let (acc_bytes, act) = m.acc_and_act_mut(r.dst as usize, (n - 1) * ps + c);
    let accs = &acc_bytes[src..src + n * c * 4];
    let geo = RqRows { fast, wide, n, c, ps, dst: r.dst as usize, signed };
    with_simd!(rq_rows(&geo, accs, act, &params, multiplier, rounding, out))
}

fn ew_params(m: &Machine, par: u32, ty: ActType, lo: i32, hi: i32, what: &str) -> Result<ElementwiseParams, TrapKind> {
    let rec = m.bytes(Space::Par).get(par as usize..).and_then(EwRecord::decode).ok_or_else(|| {
        TrapKind::InvalidData(format!("{what} parameter record at par {par:#x} lies beyond the parameter buffer"))
    })?;
    let bad = |e: npu_isa::Error| TrapKind::InvalidData(format!("{what} parameter record at par {par:#x}: {e}"));
    let (l, h) = out_range(ty.range(), lo, hi, what)?;
    let lshift =
        u32::try_from(rec.left_shift).ok().filter(|s| *s <= arith::MAX_ELEMENTWISE_LEFT_SHIFT).ok_or_else(|| {
            TrapKind::InvalidData(format!(
                "{what} parameter record at par {par:#x}: left shift {} is outside 0..={}",
                rec.left_shift,
                arith::MAX_ELEMENTWISE_LEFT_SHIFT
            ))
        })?;
    Ok(ElementwiseParams {
        za: rec.za,
        zb: rec.zb,
        zo: rec.zo,
        left_shift: lshift,
        ma: QuantizedMultiplier::new(rec.ma.0, rec.ma.1).map_err(bad)?,
        mb: QuantizedMultiplier::new(rec.mb.0, rec.mb.1).map_err(bad)?,
        mo: QuantizedMultiplier::new(rec.mo.0, rec.mo.1).map_err(bad)?,
        out: OutputStage::new(rec.zo, l, h).map_err(bad)?,
    })
}

#[derive(Clone, Copy)]
enum Ew {
    Add,
    Sub,
    Mul,
}

#[allow(clippy::too_many_arguments)]
fn exec_elementwise(
    m: &mut Machine,
    kind: Ew,
    ty: ActType,
    a: u32,
    b: u32,
    dst: u32,
    n: u32,
    par: u32,
    lo: i32,
    hi: i32,
) -> Result<(), TrapKind> {
    let what = match kind {
        Ew::Add => "vadd",
        Ew::Sub => "vsub",
        Ew::Mul => "vmul",
    };
    let p = ew_params(m, par, ty, lo, hi, what)?;
    let act = m.bytes(Space::Act);
    let n = n as usize;
    let wide = m.fast_kernels();
    if m.any_kernels() {
        // The output byte depends only on the two input bytes: a 256×256 table, built
        // once per parameter record (by the same functions as below) and memoized.
        let rec = &m.bytes(Space::Par)[par as usize..par as usize + EwRecord::BYTES as usize];
        let mut key = vec![kind as u8, ty as u8];
        key.extend(lo.to_le_bytes().iter().chain(&hi.to_le_bytes()).chain(rec));
        let table = m.table(key, || {
            let xs: Vec<u8> = (0..=255u8).flat_map(|x| std::iter::repeat_n(x, 256)).collect();
            let ys: Vec<u8> = (0..256).flat_map(|_| 0..=255u8).collect();
            let mut t = add_lanes(kind, ty, &xs, &ys, &p).unwrap_or_else(|| ew_scalar(kind, ty, &xs, &ys, &p));
            t.resize(kernels::TABLE2_BYTES, 0);
            t
        });
        let act = m.bytes(Space::Act);
        let (xs, ys) = (&act[a as usize..a as usize + n], &act[b as usize..b as usize + n]);
        let mut out = vec![0u8; n];
        kernels::lookup2_on(wide, &table, xs, ys, &mut out);
        m.region_mut(Space::Act, dst as usize, n).copy_from_slice(&out);
        return Ok(());
    }
    let (xs, ys) = (&act[a as usize..a as usize + n], &act[b as usize..b as usize + n]);
    if let Some(out) = add_lanes(kind, ty, xs, ys, &p) {
        m.region_mut(Space::Act, dst as usize, n).copy_from_slice(&out);
        return Ok(());
    }
    let out = ew_scalar(kind, ty, xs, ys, &p);
    m.region_mut(Space::Act, dst as usize, n).copy_from_slice(&out);
    Ok(())
}

/// The elementwise operation on each pair of bytes, by `npu_isa::arith`'s scalar functions.
fn ew_scalar(kind: Ew, ty: ActType, xs: &[u8], ys: &[u8], p: &ElementwiseParams) -> Vec<u8> {
    xs.iter()
        .zip(ys)
        .map(|(x, y)| {
            let (x, y) = (ty.read(*x), ty.read(*y));
            let v = match kind {
                Ew::Add => arith::add_rescaled(x, y, p, false),
                Ew::Sub => arith::add_rescaled(x, y, p, true),
                Ew::Mul => arith::mul_rescaled(x, y, p),
            };
            store_byte(ty == ActType::I8, v)
        })
        .collect()
}

/// `vadd`/`vsub` lane-wise: each input's rescaled term depends on its byte only, so it
/// comes from a 256-entry table of [`arith::add_rescaled`]'s own steps, and the sum's
/// saturation and output rescaling are [`arith::requantize_double_lanes`] (the same
/// integers as `add_rescaled`, tested on every pair of bytes). `None` for `vmul`, and
/// for a `vsub` whose second term can be `i32::MIN` (its negation would overflow).
fn add_lanes(kind: Ew, ty: ActType, xs: &[u8], ys: &[u8], p: &ElementwiseParams) -> Option<Vec<u8>> {
    let negate = match kind {
        Ew::Add => false,
        Ew::Sub => true,
        Ew::Mul => return None,
    };
    let shift = p.left_shift.min(arith::MAX_ELEMENTWISE_LEFT_SHIFT);
    let term = |byte: usize, z: i32, qm: QuantizedMultiplier| {
        let v = i64::from(ty.read(byte as u8) - z) << shift;
        arith::multiply_by_quantized_multiplier(
            v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32,
            qm,
            Rounding::Double,
        )
    };
    let ta: [i32; 256] = std::array::from_fn(|x| term(x, p.za, p.ma));
    let tb: [i32; 256] = std::array::from_fn(|y| term(y, p.zb, p.mb));
    if negate && tb.contains(&i32::MIN) {
        return None;
    }
    let tb = tb.map(|v| if negate { -v } else { v });
    let x: Vec<i32> = xs.iter().map(|b| ta[*b as usize]).collect();
    let y: Vec<i32> = ys.iter().map(|b| tb[*b as usize]).collect();
    let qm = vec![p.mo; xs.len()];
    let mut out = vec![0i32; xs.len()];
    with_simd!(requantize_lanes(&x, &y, &qm, p.out, &mut out));
    let signed = ty == ActType::I8;
    Some(out.iter().map(|v| store_byte(signed, *v)).collect())
}

#[inline(always)]
fn requantize_lanes(x: &[i32], y: &[i32], qm: &[QuantizedMultiplier], out: OutputStage, dst: &mut [i32]) {
    arith::requantize_double_lanes(x, y, qm, out, dst);
}

fn exec_pool(m: &mut Machine, p: &Pool) -> Result<(), TrapKind> {
    let g = p.geometry().map_err(geometry_trap)?;
    let c = p.c as usize;
    let mut out = vec![0u8; g.oh as usize * g.ow as usize * c];
    with_simd!(pool_pixels(p, (g.oh as usize, g.ow as usize), m.bytes(Space::Act), &mut out));
    m.region_mut(Space::Act, p.dst as usize, out.len()).copy_from_slice(&out);
    Ok(())
}

/// Every output pixel of `p` into `out`: per output pixel, the window's pixels in turn,
/// every channel of each at once. Maxima are taken on the bytes themselves (the
/// largest value's byte, compared as the type's integers; an empty window gives 0, the
/// byte of `i32::MIN`), averages from int32 sums by [`arith::average`].
#[inline(always)]
fn pool_pixels(p: &Pool, (oh, ow): (usize, usize), act: &[u8], out: &mut [u8]) {
    let (ih, iw, c) = (p.ih as i64, p.iw as i64, p.c as usize);
    let signed = p.ty == ActType::I8;
    let mut sum = vec![0i32; c];
    for (i, px) in out.chunks_exact_mut(c.max(1)).enumerate().take(oh * ow) {
        let (oy, ox) = ((i / ow) as i64, (i % ow) as i64);
        let y0 = oy * p.sy as i64 - p.pt as i64;
        let x0 = ox * p.sx as i64 - p.pl as i64;
        sum.fill(0);
        let mut count = 0i32;
        for y in y0.max(0)..(y0 + p.kh as i64).min(ih) {
            for x in x0.max(0)..(x0 + p.kw as i64).min(iw) {
                let at = p.src as usize + ((y * iw + x) as usize) * c;
                let row = &act[at..at + c];
                match (p.kind, signed, count) {
                    (PoolKind::Max, _, 0) => px.copy_from_slice(row),
                    (PoolKind::Max, true, _) => {
                        for (o, x) in px.iter_mut().zip(row) {
                            *o = (*o as i8).max(*x as i8) as u8;
                        }
                    }
                    (PoolKind::Max, false, _) => {
                        for (o, x) in px.iter_mut().zip(row) {
                            *o = (*o).max(*x);
                        }
                    }
                    (PoolKind::Avg, true, _) => {
                        for (s, x) in sum.iter_mut().zip(row) {
                            *s += i32::from(*x as i8);
                        }
                    }
                    (PoolKind::Avg, false, _) => {
                        for (s, x) in sum.iter_mut().zip(row) {
                            *s += i32::from(*x);
                        }
                    }
                }
                count += 1;
            }
        }
        if p.kind == PoolKind::Avg {
            for (o, s) in px.iter_mut().zip(&sum) {
                *o = store_byte(signed, arith::average(*s, count));
            }
        }
    }
}

/// Performs `op` on the machine. `op` must have passed [`plan`] on the same hardware.
/// Multiply-accumulates of a `conv` or `mm` whose weight is zero — what a MAC array
/// with `zero_gating` clock-gates — read from the weights in the weight buffer
/// (0 for other instructions and without gating). Each weight meets every output pixel
/// (`conv`) or row (`mm`) once.
pub fn gated_macs(m: &Machine, hw: &HwConfig, op: &Op) -> u64 {
    if !hw.mac.zero_gating {
        return 0;
    }
    let zeros = |mode: MacMode, at: u32, len: u64| -> u64 {
        let b = m.bytes(Space::Wgt);
        let (s, e) = (at as usize, (u64::from(at) + len) as usize);
        b.get(s..e).map_or(0, |w| w.iter().filter(|x| arith::weight_value(mode, **x) == Some(0)).count() as u64)
    };
    match op {
        Op::Conv(c) => {
            let Ok(g) = c.geometry() else { return 0 };
            zeros(c.mode, c.wgt, c.weight_bytes()) * g.oh * g.ow
        }
        Op::Mm(x) => zeros(x.mode, x.b, u(x.n) * u(x.k)) * u(x.m),
        _ => 0,
    }
}

/// Executes one instruction's function on the machine.
pub fn execute(m: &mut Machine, op: &Op) -> Result<(), TrapKind> {
    match op {
        Op::Ld(l) => exec_ld(m, l),
        Op::Ldw(l) => exec_ld(m, &Ld::from(*l)),
        Op::Ldz(l) => {
            let out = m
                .decoded(l.ext.into(), (u64::from(l.src), l.len), l.codec, l.n, |src| {
                    npu_isa::codec::decode(src, l.n as usize, l.codec)
                        .map(|v| v.iter().map(|x| *x as u8).collect())
                        .map_err(|e| e.to_string())
                })
                .map_err(|e| TrapKind::InvalidData(format!("{e} (stream at {} {:#x})", l.ext, l.src)))?;
            let d = l.dst as usize;
            m.region_mut(l.loc.into(), d, out.len()).copy_from_slice(&out);
            if Space::from(l.loc) == Space::Wgt
                && m.pristine(l.ext.into(), l.src as usize, l.src as usize + l.len as usize)
            {
                // Decoded from the program's untouched initial bytes: identified by this load.
                let source = [2, l.ext as u32, l.src, l.len, l.n, l.codec as u32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
                m.set_origin(d, d + out.len(), source);
            }
            Ok(())
        }
        Op::St(s) => exec_st(m, s),
        Op::Conv(c) => exec_conv(m, c),
        Op::Mm(x) => exec_mm(m, x),
        Op::Wzp(z) => exec_wzp(m, z),
        Op::Rq(r) => exec_rq(m, r),
        Op::Vadd(v) => exec_elementwise(m, Ew::Add, v.ty, v.a, v.b, v.dst, v.n, v.par, v.lo, v.hi),
        Op::Vsub(v) => exec_elementwise(m, Ew::Sub, v.ty, v.a, v.b, v.dst, v.n, v.par, v.lo, v.hi),
        Op::Vmul(v) => exec_elementwise(m, Ew::Mul, v.ty, v.a, v.b, v.dst, v.n, v.par, v.lo, v.hi),
        Op::Pool(p) => exec_pool(m, p),
        Op::Lut(l) => {
            let table: Vec<u8> = m.bytes(Space::Par)[l.table as usize..l.table as usize + LUT_BYTES as usize].to_vec();
            let src: Vec<u8> = m.bytes(Space::Act)[l.src as usize..(l.src + l.n) as usize].to_vec();
            let act = m.region_mut(Space::Act, l.dst as usize, l.n as usize);
            for (b, o) in src.into_iter().zip(act.iter_mut()) {
                let idx = match l.ty {
                    ActType::U8 => b as usize,
                    ActType::I8 => (i32::from(b as i8) + 128) as usize,
                };
                *o = table[idx];
            }
            Ok(())
        }
        Op::Softmax(x) => exec_softmax(m, x),
        Op::Host(h) => crate::host::HostRuntime::call(&crate::host::NoHost, h, m).map_err(TrapKind::Host),
        Op::SyncOp(_) | Op::Loop(_) | Op::EndLoop(_) | Op::Halt(_) | Op::Nop(_) => Ok(()),
    }
}

fn exec_softmax(m: &mut Machine, x: &npu_isa::Softmax) -> Result<(), TrapKind> {
    let rec = &m.bytes(Space::Par)[x.par as usize..x.par as usize + SOFTMAX_RECORD_BYTES as usize];
    let p = arith::SoftmaxParams::from_raw(word(rec, 0), word(rec, 1), word(rec, 2))
        .map_err(|e| TrapKind::InvalidData(format!("{e} (record at par {:#x})", x.par)))?;
    let (n, d) = (x.n as usize, x.d as usize);
    let signed = x.ty == ActType::I8;
    let (lo, hi) = if signed { (-128, 127) } else { (0, 255) };
    let src: Vec<i32> = m.bytes(Space::Act)[x.src as usize..x.src as usize + n * d]
        .iter()
        .map(|&b| if signed { i32::from(b as i8) } else { i32::from(b) })
        .collect();
    let mut out = vec![0i32; d];
    let act = m.region_mut(Space::Act, x.dst as usize, n * d);
    for (row, dst) in src.chunks_exact(d).zip(act.chunks_exact_mut(d)) {
        arith::softmax(row, p, lo, hi, &mut out);
        for (o, v) in dst.iter_mut().zip(&out) {
            *o = store_byte(signed, *v);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_kernel_byte_tables_are_xor_with_their_first_entry_outside_xnor_mode() {
        for mode in [MacMode::I8, MacMode::I4, MacMode::T2, MacMode::B1, MacMode::Xnor] {
            for at in [ActType::I8, ActType::U8] {
                let (table, offset) = byte_table(mode, at);
                for b in 0..=255u8 {
                    let v = arith::activation_value(mode, at, b);
                    assert_eq!(i32::from(table[b as usize]), v + offset, "{mode} {at:?} {b}");
                    if mode != MacMode::Xnor {
                        assert_eq!(table[b as usize], b ^ table[0], "{mode} {at:?} {b}");
                    }
                }
            }
        }
    }

    #[test]
    fn lane_wise_add_and_sub_equal_add_rescaled_on_every_pair_of_bytes() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let xs: Vec<u8> = (0..=255u8).flat_map(|x| std::iter::repeat_n(x, 256)).collect();
        let ys: Vec<u8> = (0..256).flat_map(|_| 0..=255u8).collect();
        for case in 0..24 {
            let ty = if case % 2 == 0 { ActType::I8 } else { ActType::U8 };
            let (tlo, thi) = ty.range();
            // Multipliers in [2^30, 2^31) and shifts from −20 to +10; the largest now and then.
            let qm = |k: u64, r: u64, s: u64| {
                let m = (1i32 << 30) + (r % (1u64 << 30)) as i32;
                QuantizedMultiplier::new(if k == 0 { i32::MAX } else { m }, (s % 31) as i32 - 20).unwrap()
            };
            let ma = qm(next() % 5, next(), next());
            let mb = qm(next() % 5, next(), next());
            let mo = qm(next() % 5, next(), next());
            let zo = tlo + (next() % 256) as i32;
            let lo = tlo + (next() % 40) as i32;
            let hi = thi - (next() % 40) as i32;
            let p = ElementwiseParams {
                za: tlo + (next() % 256) as i32,
                zb: tlo + (next() % 256) as i32,
                zo,
                left_shift: [0, 20, 24][case % 3],
                ma,
                mb,
                mo,
                out: OutputStage::new(zo, lo, hi).unwrap(),
            };
            for (kind, subtract) in [(Ew::Add, false), (Ew::Sub, true)] {
                let Some(got) = add_lanes(kind, ty, &xs, &ys, &p) else { continue };
                for (i, (x, y)) in xs.iter().zip(&ys).enumerate() {
                    let want = arith::add_rescaled(ty.read(*x), ty.read(*y), &p, subtract);
                    assert_eq!(got[i], store_byte(ty == ActType::I8, want), "case {case}: {x} ∘ {y}");
                }
            }
        }
    }

    #[test]
    fn contiguous_runs_merge_across_dimensions() {
        // Dense 2×3×4 of 2-byte elements: one run of 48 bytes.
        assert_eq!(runs(2, 3, 4, 2, 24, 8, 2), (1, 48));
        // Rows of 8 bytes every 16: 6 runs of 8.
        assert_eq!(runs(2, 3, 4, 2, 48, 16, 2), (6, 8));
        // Elements of 2 bytes every 4: 24 runs of 2.
        assert_eq!(runs(2, 3, 4, 2, 48, 16, 4), (24, 2));
        // Planes of 24 bytes every 100: 2 runs of 24.
        assert_eq!(runs(2, 3, 4, 2, 100, 8, 2), (2, 24));
        assert_eq!(runs(1, 1, 1, 36, 0, 0, 0), (1, 36));
        // Bursts of 32: 6 runs of 8 → 6 × 32.
        assert_eq!(burst_bytes((6, 8), 32), 192);
    }
}
