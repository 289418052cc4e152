//! Stage 3: from the lowered operations to instructions with dependency tokens.
//!
//! Every operation's memory footprint — the byte ranges it reads and writes in each
//! memory, as bounding intervals — is derived from its operands ([`footprint`]).
//! Two operations conflict when their footprints overlap in a memory and one of them
//! writes. Then:
//!
//! 1. **Prefetch.** Each load from off-chip memory (weights, tables) moves earlier in
//!    the program, past operations of other units it does not conflict with, until it
//!    meets one it conflicts with (typically the MAC pass that last read the ring slot
//!    it overwrites) or another load (loads keep their order, so activation tiles are
//!    not queued behind a long weight stream). Weights thus stream while earlier layers
//!    compute.
//! 2. **Tokens.** Each operation waits for the latest conflicting operation on every
//!    other unit. Tokens are FIFO per pair of units, so operation `j` on unit B waiting
//!    for `i` on unit A makes `i` signal B — unless an earlier operation of B already
//!    waited for an A-operation at or after `i`, which orders `j` after `i` already.
//!    Conflicts on the same unit need nothing: a unit runs its queue in order.
//!
//! Every dependency points backwards in program order, so the program cannot deadlock,
//! and every conflicting pair is ordered, so the result does not depend on timing.

use npu_isa::{ExtSpace, Instr, LocalSpace, Op, Space, StoreSpace, Unit, Unpack};

/// One access: memory, byte range `[lo, hi)`, and whether it writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    /// Memory.
    pub space: Space,
    /// First byte.
    pub lo: u64,
    /// One past the last byte.
    pub hi: u64,
    /// True for a write.
    pub write: bool,
}

fn u(v: u32) -> u64 {
    u64::from(v)
}

fn ext(e: ExtSpace) -> Space {
    match e {
        ExtSpace::Dram => Space::Dram,
        ExtSpace::Sram => Space::Sram,
    }
}

fn local(l: LocalSpace) -> Space {
    match l {
        LocalSpace::Act => Space::Act,
        LocalSpace::Wgt => Space::Wgt,
        LocalSpace::Par => Space::Par,
        LocalSpace::Acc => Space::Acc,
    }
}

fn packed_len(unpack: Unpack, elems: u64) -> u64 {
    let bits = match unpack {
        Unpack::None => 8,
        Unpack::I4 => 4,
        Unpack::T2 => 2,
        Unpack::B1 => 1,
    };
    (elems * bits).div_ceil(8)
}

/// The unit that runs `op` (`None` for control instructions).
pub fn unit_of(op: &Op) -> Option<Unit> {
    match op {
        Op::Ld(_) | Op::Ldz(_) => Some(Unit::Ld),
        Op::St(_) => Some(Unit::St),
        Op::Conv(_) | Op::Mm(_) | Op::Wzp(_) => Some(Unit::Mac),
        Op::Rq(_) => Some(Unit::Rq),
        Op::Vadd(_) | Op::Vsub(_) | Op::Vmul(_) | Op::Pool(_) | Op::Lut(_) => Some(Unit::Vector),
        Op::SyncOp(s) => Some(s.unit),
        _ => None,
    }
}

/// Output height and width of a window over a padded `ih × iw` tile.
#[allow(clippy::too_many_arguments)]
fn window_out(ih: u32, iw: u32, kh: u32, kw: u32, sy: u32, sx: u32, dy: u32, dx: u32, pad: [u32; 4]) -> (u64, u64) {
    let ph = u(pad[0]) + u(ih) + u(pad[1]);
    let pw = u(pad[2]) + u(iw) + u(pad[3]);
    let (eh, ew) = (u(dy) * (u(kh) - 1) + 1, u(dx) * (u(kw) - 1) + 1);
    (ph.saturating_sub(eh) / u(sy) + 1, pw.saturating_sub(ew) / u(sx) + 1)
}

/// The byte ranges `op` reads and writes (bounding intervals of strided accesses).
pub fn footprint(op: &Op) -> Vec<Access> {
    let r = |space, lo: u64, len: u64| Access { space, lo, hi: lo + len, write: false };
    let w = |space, lo: u64, len: u64| Access { space, lo, hi: lo + len, write: true };
    let span = |n2: u32, n1: u32, n0: u32, s2: u32, s1: u32, s0: u32, elem: u64| {
        (u(n2) - 1) * u(s2) + (u(n1) - 1) * u(s1) + (u(n0) - 1) * u(s0) + elem
    };
    match op {
        Op::Ld(l) => {
            let src = span(l.n2, l.n1, l.n0, l.s2, l.s1, l.s0, packed_len(l.unpack, u(l.elem)));
            let dst = u(l.n2) * (u(l.pt) + u(l.n1) + u(l.pb)) * (u(l.pl) + u(l.n0) + u(l.pr)) * u(l.elem);
            vec![r(ext(l.ext), u(l.src), src), w(local(l.loc), u(l.dst), dst)]
        }
        Op::Ldz(l) => vec![r(ext(l.ext), u(l.src), u(l.len)), w(local(l.loc), u(l.dst), u(l.n))],
        Op::St(s) => {
            let loc = match s.loc {
                StoreSpace::Act => Space::Act,
                StoreSpace::Acc => Space::Acc,
            };
            let dense = u(s.n2) * u(s.n1) * u(s.n0) * u(s.elem);
            let dst = span(s.n2, s.n1, s.n0, s.s2, s.s1, s.s0, u(s.elem));
            vec![r(loc, u(s.src), dense), w(ext(s.ext), u(s.dst), dst)]
        }
        Op::Conv(c) => {
            let ps = if c.ps == 0 { u(c.cin) } else { u(c.ps) };
            let (oh, ow) = window_out(c.ih, c.iw, c.kh, c.kw, c.sy, c.sx, c.dy, c.dx, [c.pt, c.pb, c.pl, c.pr]);
            let taps = u(c.kh) * u(c.kw);
            let wbytes = if c.dw == 1 { taps * u(c.cout) } else { taps * u(c.cin) * u(c.cout) };
            let outs = oh * ow * u(c.cout) * 4;
            let mut v = vec![
                r(Space::Act, u(c.ifm), (u(c.ih) * u(c.iw) - 1) * ps + u(c.cin)),
                r(Space::Wgt, u(c.wgt), wbytes),
                w(Space::Acc, u(c.dst) * 4, outs),
            ];
            if c.accum == 1 {
                v.push(r(Space::Acc, u(c.dst) * 4, outs));
            }
            v
        }
        Op::Mm(m) => {
            let mut v = vec![
                r(Space::Act, u(m.a), u(m.m) * u(m.k)),
                r(Space::Wgt, u(m.b), u(m.n) * u(m.k)),
                w(Space::Acc, u(m.c) * 4, u(m.m) * u(m.n) * 4),
            ];
            if m.accum == 1 {
                v.push(r(Space::Acc, u(m.c) * 4, u(m.m) * u(m.n) * 4));
            }
            v
        }
        Op::Wzp(z) => {
            let ps = if z.ps == 0 { u(z.cin) } else { u(z.ps) };
            let (oh, ow) = window_out(z.ih, z.iw, z.kh, z.kw, z.sy, z.sx, z.dy, z.dx, [z.pt, z.pb, z.pl, z.pr]);
            let outs = oh * ow * u(z.cout) * 4;
            vec![
                r(Space::Act, u(z.ifm), (u(z.ih) * u(z.iw) - 1) * ps + u(z.cin)),
                r(Space::Par, u(z.zp), u(z.cout) * 4),
                r(Space::Acc, u(z.dst) * 4, outs),
                w(Space::Acc, u(z.dst) * 4, outs),
            ]
        }
        Op::Rq(q) => {
            let ps = if q.ps == 0 { u(q.c) } else { u(q.ps) };
            let records = if q.pc == 1 { u(q.c) } else { 1 };
            vec![
                r(Space::Acc, u(q.src) * 4, u(q.n) * u(q.c) * 4),
                r(Space::Par, u(q.par), records * 12),
                w(Space::Act, u(q.dst), (u(q.n) - 1) * ps + u(q.c)),
            ]
        }
        Op::Vadd(v) => elementwise(v.a, v.b, v.dst, v.n, v.par),
        Op::Vsub(v) => elementwise(v.a, v.b, v.dst, v.n, v.par),
        Op::Vmul(v) => elementwise(v.a, v.b, v.dst, v.n, v.par),
        Op::Pool(p) => {
            let (oh, ow) = window_out(p.ih, p.iw, p.kh, p.kw, p.sy, p.sx, 1, 1, [p.pt, p.pb, p.pl, p.pr]);
            vec![r(Space::Act, u(p.src), u(p.ih) * u(p.iw) * u(p.c)), w(Space::Act, u(p.dst), oh * ow * u(p.c))]
        }
        Op::Lut(l) => {
            vec![r(Space::Act, u(l.src), u(l.n)), r(Space::Par, u(l.table), 256), w(Space::Act, u(l.dst), u(l.n))]
        }
        _ => Vec::new(),
    }
}

fn elementwise(a: u32, b: u32, dst: u32, n: u32, par: u32) -> Vec<Access> {
    let r = |space, lo: u32, len: u64| Access { space, lo: u(lo), hi: u(lo) + len, write: false };
    vec![
        r(Space::Act, a, u(n)),
        r(Space::Act, b, u(n)),
        r(Space::Par, par, 40),
        Access { space: Space::Act, lo: u(dst), hi: u(dst) + u(n), write: true },
    ]
}

fn conflicts(a: &[Access], b: &[Access]) -> bool {
    a.iter().any(|x| b.iter().any(|y| x.space == y.space && (x.write || y.write) && x.lo < y.hi && y.lo < x.hi))
}

fn is_offchip_load(op: &Op) -> bool {
    matches!(op, Op::Ld(l) if l.ext == ExtSpace::Dram) || matches!(op, Op::Ldz(l) if l.ext == ExtSpace::Dram)
}

/// Moves every off-chip load as early as its conflicts and the order of loads allow,
/// but not before the operations of the layer before its own (`owner` gives each
/// operation's layer): a load hoisted further would sit in the DMA queue ahead of
/// work that is needed sooner, and a full queue stops instruction fetch. Returns the
/// new order as indices into `ops`.
pub fn prefetch(ops: &[Op], owner: &[usize]) -> Vec<usize> {
    let feet: Vec<Vec<Access>> = ops.iter().map(footprint).collect();
    let mut order: Vec<usize> = Vec::with_capacity(ops.len());
    for (i, op) in ops.iter().enumerate() {
        let mut at = order.len();
        if is_offchip_load(op) {
            while at > 0 {
                let prev = order[at - 1];
                if matches!(ops[prev], Op::Ld(_) | Op::Ldz(_))
                    || unit_of(&ops[prev]).is_none()
                    || owner[prev] + 1 < owner[i]
                    || conflicts(&feet[prev], &feet[i])
                {
                    break;
                }
                at -= 1;
            }
        }
        order.insert(at, i);
    }
    order
}

struct Entry {
    acc: Access,
    index: usize,
    unit: Unit,
}

/// Instructions for `ops` (already in program order) with the tokens their conflicts need.
pub fn tokens(ops: &[Op]) -> Vec<Instr> {
    const UNITS: usize = 5;
    let slot = |s: Space| s as usize;
    let mut live: [Vec<Entry>; 6] = Default::default();
    // last_signal[a][b]: the last instruction of unit a that signals unit b.
    let mut last_signal: [[Option<usize>; UNITS]; UNITS] = [[None; UNITS]; UNITS];
    let mut code: Vec<Instr> = Vec::with_capacity(ops.len());
    for (i, op) in ops.iter().enumerate() {
        let mut instr = Instr::new(*op);
        let Some(unit) = unit_of(op) else {
            code.push(instr);
            continue;
        };
        let feet = footprint(op);
        let mut need: [Option<usize>; UNITS] = [None; UNITS];
        for a in &feet {
            for e in &live[slot(a.space)] {
                if e.unit != unit && (a.write || e.acc.write) && a.lo < e.acc.hi && e.acc.lo < a.hi {
                    let n = &mut need[e.unit as usize];
                    *n = Some(n.map_or(e.index, |x| x.max(e.index)));
                }
            }
        }
        for (from, needed) in need.iter().enumerate() {
            let Some(needed) = *needed else { continue };
            let covered = last_signal[from][unit as usize].is_some_and(|s| s >= needed);
            if covered {
                continue;
            }
            let src = &mut code[needed];
            src.signal = src.signal.with(unit);
            instr.wait = instr.wait.with(unit_of(&src.op).unwrap_or(unit));
            last_signal[from][unit as usize] = Some(needed);
        }
        for a in feet {
            let list = &mut live[slot(a.space)];
            // Accesses this one covers are ordered before it; it stands for them from now on.
            list.retain(|e| !(e.acc.lo >= a.lo && e.acc.hi <= a.hi && (a.write || (!e.acc.write && e.unit == unit))));
            list.push(Entry { acc: a, index: i, unit });
        }
        code.push(instr);
    }
    code
}
