//! What each instruction touches, defined once: memory footprints, window geometry and
//! the parameter-record formats in `par`.
//!
//! The simulator checks every instruction's [`footprint`] against the hardware's
//! memories before running it, and the compiler's scheduler derives dependency tokens
//! from the same footprints; so a token the compiler omits can only be one the
//! footprints say is unneeded, and a byte the simulator touches outside them would be a
//! simulator bug (a property test checks that none is). The record types
//! ([`RqRecord`], [`EwRecord`], [`LUT_BYTES`]) are what the compiler writes and the
//! simulator reads.

use crate::arith::Packing;
use crate::error::{Error, Result};
use crate::fields::{ExtSpace, LocalSpace, Space, StoreSpace, Unpack};
use crate::op::{Conv, Ld, Op, Pool, Rq, Wzp};

fn u(v: u32) -> u64 {
    u64::from(v)
}

impl From<ExtSpace> for Space {
    fn from(e: ExtSpace) -> Space {
        match e {
            ExtSpace::Dram => Space::Dram,
            ExtSpace::Sram => Space::Sram,
        }
    }
}

impl From<LocalSpace> for Space {
    fn from(l: LocalSpace) -> Space {
        match l {
            LocalSpace::Act => Space::Act,
            LocalSpace::Wgt => Space::Wgt,
            LocalSpace::Par => Space::Par,
            LocalSpace::Acc => Space::Acc,
        }
    }
}

impl From<StoreSpace> for Space {
    fn from(s: StoreSpace) -> Space {
        match s {
            StoreSpace::Act => Space::Act,
            StoreSpace::Acc => Space::Acc,
        }
    }
}

impl Unpack {
    /// The packing a DMA-in unpacks, `None` for plain bytes.
    pub fn packing(self) -> Option<Packing> {
        match self {
            Unpack::None => None,
            Unpack::I4 => Some(Packing::I4),
            Unpack::T2 => Some(Packing::T2),
            Unpack::B1 => Some(Packing::B1),
        }
    }

    /// Source bytes of an element of `values` values.
    pub fn source_bytes(self, values: u64) -> u64 {
        match self.packing() {
            None => values,
            Some(p) => (values * p.bits() as u64).div_ceil(8),
        }
    }
}

/// One memory access of an instruction: memory, byte range `[lo, hi)`, direction, and
/// the operand it belongs to (for error messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    /// The operand field that addresses it.
    pub operand: &'static str,
    /// Memory.
    pub space: Space,
    /// First byte.
    pub lo: u64,
    /// One past the last byte.
    pub hi: u64,
    /// True for a write.
    pub write: bool,
}

impl Access {
    fn read(operand: &'static str, space: Space, lo: u64, len: u64) -> Access {
        Access { operand, space, lo, hi: lo + len, write: false }
    }
    fn write(operand: &'static str, space: Space, lo: u64, len: u64) -> Access {
        Access { operand, space, lo, hi: lo + len, write: true }
    }
    /// Bytes in the range.
    pub fn len(&self) -> u64 {
        self.hi - self.lo
    }
    /// True if the range is empty.
    pub fn is_empty(&self) -> bool {
        self.hi == self.lo
    }
    /// True if `self` and `other` are in the same memory, overlap, and one writes.
    pub fn conflicts(&self, other: &Access) -> bool {
        self.space == other.space && (self.write || other.write) && self.lo < other.hi && other.lo < self.hi
    }
}

/// The geometry of a sliding window (`conv`, `wzp`, `pool`) over a stored tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowGeometry {
    /// Output height.
    pub oh: u64,
    /// Output width.
    pub ow: u64,
    /// Padded input height (`pt + ih + pb`).
    pub ph: u64,
    /// Padded input width (`pl + iw + pr`).
    pub pw: u64,
    /// Bytes between stored input pixels.
    pub ps: u64,
    /// Bytes from the first input pixel's first channel to the last one's last channel.
    pub in_span: u64,
}

/// The operands of a window instruction, in one form.
#[derive(Debug, Clone, Copy)]
struct Window {
    mnemonic: &'static str,
    ih: u32,
    iw: u32,
    cin: u32,
    ps: u32,
    kh: u32,
    kw: u32,
    sy: u32,
    sx: u32,
    dy: u32,
    dx: u32,
    pad: [u32; 4],
}

fn operands(mnemonic: &'static str, what: String) -> Error {
    Error::Operands { mnemonic, what }
}

impl Window {
    fn geometry(&self) -> Result<WindowGeometry> {
        let [pt, pb, pl, pr] = self.pad.map(u);
        let (eh, ew) = (u(self.dy) * (u(self.kh).max(1) - 1) + 1, u(self.dx) * (u(self.kw).max(1) - 1) + 1);
        let (ph, pw) = (pt + u(self.ih) + pb, pl + u(self.iw) + pr);
        if eh > ph || ew > pw {
            let what = if self.mnemonic == "pool" {
                format!("the {}×{} window is larger than the padded {ph}×{pw} input", self.kh, self.kw)
            } else {
                format!(
                    "the {}×{} kernel with dilation {}×{} spans {eh}×{ew}, larger than the {ph}×{pw} padded input tile",
                    self.kh, self.kw, self.dy, self.dx
                )
            };
            return Err(operands(self.mnemonic, what));
        }
        let ps = if self.ps == 0 { u(self.cin) } else { u(self.ps) };
        if ps < u(self.cin) {
            return Err(operands(
                self.mnemonic,
                format!("pixel stride {ps} is smaller than the {} input channels", self.cin),
            ));
        }
        let (sy, sx) = (u(self.sy).max(1), u(self.sx).max(1));
        let in_span = (u(self.ih) * u(self.iw)).saturating_sub(1) * ps + u(self.cin);
        Ok(WindowGeometry { oh: (ph - eh) / sy + 1, ow: (pw - ew) / sx + 1, ph, pw, ps, in_span })
    }
}

/// The window of a `conv` or `wzp` (the two share their window operands by name).
macro_rules! conv_window {
    ($op:expr, $mnemonic:literal) => {
        Window {
            mnemonic: $mnemonic,
            ih: $op.ih,
            iw: $op.iw,
            cin: $op.cin,
            ps: $op.ps,
            kh: $op.kh,
            kw: $op.kw,
            sy: $op.sy,
            sx: $op.sx,
            dy: $op.dy,
            dx: $op.dx,
            pad: [$op.pt, $op.pb, $op.pl, $op.pr],
        }
    };
}

impl Conv {
    /// Output size and input span of the convolution tile; an error if the window does
    /// not fit the padded tile or the pixel stride is below `cin`.
    pub fn geometry(&self) -> Result<WindowGeometry> {
        conv_window!(self, "conv").geometry()
    }

    /// Weight bytes the tile reads.
    pub fn weight_bytes(&self) -> u64 {
        let taps = u(self.kh) * u(self.kw);
        if self.dw == 1 {
            taps * u(self.cout)
        } else {
            taps * u(self.cin) * u(self.cout)
        }
    }
}

impl Wzp {
    /// Output size and input span of the correction's window (as [`Conv::geometry`]).
    pub fn geometry(&self) -> Result<WindowGeometry> {
        conv_window!(self, "wzp").geometry()
    }
}

impl Pool {
    /// Output size of the pooling window; an error if the window does not fit the
    /// padded tile or a padding is as large as the window (a window of only padding).
    pub fn geometry(&self) -> Result<WindowGeometry> {
        let g = Window {
            mnemonic: "pool",
            ih: self.ih,
            iw: self.iw,
            cin: self.c,
            ps: 0,
            kh: self.kh,
            kw: self.kw,
            sy: self.sy,
            sx: self.sx,
            dy: 1,
            dx: 1,
            pad: [self.pt, self.pb, self.pl, self.pr],
        }
        .geometry()?;
        if self.pt >= self.kh || self.pb >= self.kh || self.pl >= self.kw || self.pr >= self.kw {
            return Err(operands(
                "pool",
                format!(
                    "padding ({}, {}, {}, {}) must be smaller than the {}×{} window, or a window could hold only padding",
                    self.pt, self.pb, self.pl, self.pr, self.kh, self.kw
                ),
            ));
        }
        Ok(g)
    }
}

impl Rq {
    /// Bytes between output pixels (`ps`, or `c` when `ps` is 0); an error if smaller than `c`.
    pub fn pixel_stride(&self) -> Result<u64> {
        let ps = if self.ps == 0 { u(self.c) } else { u(self.ps) };
        if ps < u(self.c) {
            return Err(operands("rq", format!("output pixel stride {ps} is smaller than the {} channels", self.c)));
        }
        Ok(ps)
    }

    /// Requantization records read: one per channel, or one for all.
    pub fn records(&self) -> u64 {
        if self.pc == 1 {
            u(self.c)
        } else {
            1
        }
    }
}

/// The byte ranges `op` reads and writes, as bounding intervals of its strided
/// accesses, in operand order; empty for control instructions. An error if the
/// operands describe no valid access (a window larger than its tile, a pixel stride
/// below the channel count). Range checks against a particular machine's memories are
/// the simulator's.
pub fn footprint(op: &Op) -> Result<Vec<Access>> {
    use Access as A;
    let span = |n2: u32, n1: u32, n0: u32, s2: u32, s1: u32, s0: u32, elem: u64| {
        u(n2).saturating_sub(1) * u(s2) + u(n1).saturating_sub(1) * u(s1) + u(n0).saturating_sub(1) * u(s0) + elem
    };
    let dma_in = |l: Ld| {
        let src = span(l.n2, l.n1, l.n0, l.s2, l.s1, l.s0, l.unpack.source_bytes(u(l.elem)));
        let dst = u(l.n2) * (u(l.pt) + u(l.n1) + u(l.pb)) * (u(l.pl) + u(l.n0) + u(l.pr)) * u(l.elem);
        vec![A::read("src", l.ext.into(), u(l.src), src), A::write("dst", l.loc.into(), u(l.dst), dst)]
    };
    Ok(match op {
        Op::Ld(l) => dma_in(*l),
        Op::Ldw(l) => dma_in(Ld::from(*l)),
        Op::Ldz(l) => {
            vec![A::read("src", l.ext.into(), u(l.src), u(l.len)), A::write("dst", l.loc.into(), u(l.dst), u(l.n))]
        }
        Op::St(s) => {
            let dense = u(s.n2) * u(s.n1) * u(s.n0) * u(s.elem);
            let dst = span(s.n2, s.n1, s.n0, s.s2, s.s1, s.s0, u(s.elem));
            vec![A::read("src", s.loc.into(), u(s.src), dense), A::write("dst", s.ext.into(), u(s.dst), dst)]
        }
        Op::Conv(c) => {
            let g = c.geometry()?;
            let outs = g.oh * g.ow * u(c.cout) * 4;
            let mut v = vec![
                A::read("ifm", Space::Act, u(c.ifm), g.in_span),
                A::read("wgt", Space::Wgt, u(c.wgt), c.weight_bytes()),
                A::write("dst", Space::Acc, u(c.dst) * 4, outs),
            ];
            if c.accum == 1 {
                v.push(A::read("dst", Space::Acc, u(c.dst) * 4, outs));
            }
            v
        }
        Op::Mm(m) => {
            let mut v = vec![
                A::read("a", Space::Act, u(m.a), u(m.m) * u(m.k)),
                A::read("b", Space::Wgt, u(m.b), u(m.n) * u(m.k)),
                A::write("c", Space::Acc, u(m.c) * 4, u(m.m) * u(m.n) * 4),
            ];
            if m.accum == 1 {
                v.push(A::read("c", Space::Acc, u(m.c) * 4, u(m.m) * u(m.n) * 4));
            }
            v
        }
        Op::Wzp(z) => {
            let g = z.geometry()?;
            let outs = g.oh * g.ow * u(z.cout) * 4;
            vec![
                A::read("ifm", Space::Act, u(z.ifm), g.in_span),
                A::read("zp", Space::Par, u(z.zp), u(z.cout) * 4),
                A::read("dst", Space::Acc, u(z.dst) * 4, outs),
                A::write("dst", Space::Acc, u(z.dst) * 4, outs),
            ]
        }
        Op::Rq(q) => {
            let ps = q.pixel_stride()?;
            vec![
                A::read("src", Space::Acc, u(q.src) * 4, u(q.n) * u(q.c) * 4),
                A::read("par", Space::Par, u(q.par), q.records() * RqRecord::BYTES),
                A::write("dst", Space::Act, u(q.dst), u(q.n).saturating_sub(1) * ps + u(q.c)),
            ]
        }
        Op::Vadd(v) => elementwise(v.a, v.b, v.dst, v.n, v.par),
        Op::Vsub(v) => elementwise(v.a, v.b, v.dst, v.n, v.par),
        Op::Vmul(v) => elementwise(v.a, v.b, v.dst, v.n, v.par),
        Op::Pool(p) => {
            let g = p.geometry()?;
            vec![
                A::read("src", Space::Act, u(p.src), u(p.ih) * u(p.iw) * u(p.c)),
                A::write("dst", Space::Act, u(p.dst), g.oh * g.ow * u(p.c)),
            ]
        }
        Op::Host(h) => {
            let mut v = vec![A::read("src", Space::Sram, u(h.src), u(h.sn))];
            if h.bn > 0 {
                v.push(A::read("b", Space::Sram, u(h.b), u(h.bn)));
            }
            v.push(A::write("dst", Space::Sram, u(h.dst), u(h.dn)));
            v
        }
        Op::Lut(l) => vec![
            A::read("src", Space::Act, u(l.src), u(l.n)),
            A::read("table", Space::Par, u(l.table), LUT_BYTES),
            A::write("dst", Space::Act, u(l.dst), u(l.n)),
        ],
        Op::Softmax(x) => vec![
            A::read("src", Space::Act, u(x.src), u(x.n) * u(x.d)),
            A::read("par", Space::Par, u(x.par), SOFTMAX_RECORD_BYTES),
            A::write("dst", Space::Act, u(x.dst), u(x.n) * u(x.d)),
        ],
        Op::SyncOp(_) | Op::Loop(_) | Op::EndLoop(_) | Op::Halt(_) | Op::Nop(_) => Vec::new(),
    })
}

fn elementwise(a: u32, b: u32, dst: u32, n: u32, par: u32) -> Vec<Access> {
    vec![
        Access::read("a", Space::Act, u(a), u(n)),
        Access::read("b", Space::Act, u(b), u(n)),
        Access::read("par", Space::Par, u(par), EwRecord::BYTES),
        Access::write("dst", Space::Act, u(dst), u(n)),
    ]
}

/// Bytes of a `softmax` parameter record: multiplier, left shift and diff_min (int32 each).
pub const SOFTMAX_RECORD_BYTES: u64 = 12;

/// Bytes of a `lut` table: one output byte per input byte value.
pub const LUT_BYTES: u64 = 256;

fn word(b: &[u8], i: usize) -> i32 {
    i32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]])
}

/// A requantization record in `par`, one per channel (or one for all): three
/// little-endian `i32` words, bias, multiplier and shift. Shift-only requantization
/// (`mode=shift`) ignores the multiplier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RqRecord {
    /// Added to the accumulator before scaling.
    pub bias: i32,
    /// Q31 multiplier (ignored by `mode=shift`).
    pub multiplier: i32,
    /// Shift (TFLite convention: positive is left).
    pub shift: i32,
}

impl RqRecord {
    /// Bytes per record.
    pub const BYTES: u64 = 12;

    /// The record's bytes.
    pub fn encode(&self) -> [u8; 12] {
        let mut out = [0u8; 12];
        for (chunk, v) in out.chunks_exact_mut(4).zip([self.bias, self.multiplier, self.shift]) {
            chunk.copy_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// The record at the start of `bytes`; `None` if fewer than 12 bytes.
    pub fn decode(bytes: &[u8]) -> Option<RqRecord> {
        let b = bytes.get(..12)?;
        Some(RqRecord { bias: word(b, 0), multiplier: word(b, 1), shift: word(b, 2) })
    }
}

/// The parameter record of `vadd`, `vsub` and `vmul`: ten little-endian `i32` words —
/// zero points of a, b and the output; the left shift applied to both inputs; then
/// (multiplier, shift) pairs for a, b and the output (TFLite's ADD/MUL rescaling).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EwRecord {
    /// Zero point of input a.
    pub za: i32,
    /// Zero point of input b.
    pub zb: i32,
    /// Zero point of the output.
    pub zo: i32,
    /// Left shift applied to both inputs before rescaling.
    pub left_shift: i32,
    /// Input a's multiplier and shift.
    pub ma: (i32, i32),
    /// Input b's multiplier and shift.
    pub mb: (i32, i32),
    /// The output's multiplier and shift.
    pub mo: (i32, i32),
}

impl EwRecord {
    /// Bytes per record.
    pub const BYTES: u64 = 40;

    /// The record's bytes.
    pub fn encode(&self) -> [u8; 40] {
        let words = [
            self.za,
            self.zb,
            self.zo,
            self.left_shift,
            self.ma.0,
            self.ma.1,
            self.mb.0,
            self.mb.1,
            self.mo.0,
            self.mo.1,
        ];
        let mut out = [0u8; 40];
        for (chunk, v) in out.chunks_exact_mut(4).zip(words) {
            chunk.copy_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// The record at the start of `bytes`; `None` if fewer than 40 bytes.
    pub fn decode(bytes: &[u8]) -> Option<EwRecord> {
        let b = bytes.get(..40)?;
        Some(EwRecord {
            za: word(b, 0),
            zb: word(b, 1),
            zo: word(b, 2),
            left_shift: word(b, 3),
            ma: (word(b, 4), word(b, 5)),
            mb: (word(b, 6), word(b, 7)),
            mo: (word(b, 8), word(b, 9)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_have_their_documented_layout() {
        let r = RqRecord { bias: -5, multiplier: 1 << 30, shift: -3 };
        let b = r.encode();
        assert_eq!(&b[..4], &(-5i32).to_le_bytes());
        assert_eq!(&b[8..], &(-3i32).to_le_bytes());
        assert_eq!(RqRecord::decode(&b), Some(r));
        assert_eq!(RqRecord::decode(&b[..11]), None);
        let e = EwRecord { za: 1, zb: 2, zo: 3, left_shift: 20, ma: (4, 5), mb: (6, 7), mo: (8, -9) };
        let b = e.encode();
        assert_eq!(&b[12..16], &20i32.to_le_bytes());
        assert_eq!(&b[36..], &(-9i32).to_le_bytes());
        assert_eq!(EwRecord::decode(&b), Some(e));
    }

    #[test]
    fn conv_geometry_follows_the_documented_formula() {
        // oh = (pt + ih + pb − dy·(kh−1) − 1)/sy + 1: (1 + 10 + 1 − 2·2 − 1)/2 + 1 = 4.
        let mut c = Conv {
            mode: crate::MacMode::I8,
            accum: 0,
            at: crate::ActType::I8,
            dw: 0,
            ifm: 0,
            ih: 10,
            iw: 10,
            cin: 3,
            ps: 0,
            wgt: 0,
            kh: 3,
            kw: 3,
            sy: 2,
            sx: 2,
            dy: 2,
            dx: 2,
            pt: 1,
            pb: 1,
            pl: 1,
            pr: 1,
            pv: 0,
            cout: 8,
            dst: 0,
        };
        let g = c.geometry().unwrap();
        assert_eq!((g.oh, g.ow, g.ps, g.in_span), (4, 4, 3, 99 * 3 + 3));
        c.kh = 7; // spans 13 > 12 rows
        assert!(c.geometry().is_err());
    }
}
