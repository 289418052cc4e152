//! The ISA's footprints are the truth about memory: every byte an instruction's
//! execution in the simulator changes lies inside a write range of its
//! [`npu_isa::footprint`], and nothing outside its read ranges affects the result.
//!
//! Each case builds a random instruction the hardware accepts (`plan` succeeds), runs
//! it on two machines whose memories agree inside the footprint and hold different
//! random bytes everywhere else, and checks: the bytes each run changed are all inside
//! write ranges, and both runs end with the same trap or the same written bytes.

use npu_hw::HwConfig;
use npu_isa::{
    footprint, Access, ActType, Codec, Conv, EwRecord, ExtSpace, Ld, Ldz, LocalSpace, Lut, MacMode, Mm, Op, OutType,
    Pool, PoolKind, Program, Rq, RqMode, RqRecord, Space, St, StoreSpace, Unpack, Vadd, Vmul, Vsub, Wzp,
};
use npu_sim::exec::{execute, plan};
use npu_sim::Machine;
use proptest::prelude::*;

use crate::Rng;

const SPACES: [Space; 6] = [Space::Dram, Space::Sram, Space::Act, Space::Wgt, Space::Par, Space::Acc];

/// A machine small enough to fill with random bytes per case, with every MAC mode and a
/// weight decompressor.
fn small_hw() -> HwConfig {
    let mut hw = npu_hw::preset("edge-256").expect("preset");
    hw.memories.dram.bytes = 4096;
    hw.memories.sram.bytes = 4096;
    hw.buffers.act.bytes = 4096;
    hw.buffers.wgt.bytes = 4096;
    hw.buffers.par.bytes = 1024;
    hw.buffers.acc.bytes = 8192;
    hw.mac.macs_per_pe = npu_hw::PerMode { i8: 1, i4: 2, t2: 4, b1: 8, xnor: 8 };
    hw
}

/// Field values drawn from the case's seed (so failures shrink and replay).
trait Draw {
    fn range(&mut self, lo: u32, hi: u32) -> u32;
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T;
}

impl Draw for Rng {
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u32, hi: u32) -> u32 {
        lo + (self.next_u64() % u64::from(hi - lo + 1)) as u32
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[(self.next_u64() % xs.len() as u64) as usize]
    }
}

fn addr(r: &mut Rng, size: u32) -> u32 {
    // Mostly inside the memory, sometimes near its end (so some cases are refused).
    r.range(0, size - 1)
}

fn random_op(r: &mut Rng, hw: &HwConfig) -> Op {
    let act = hw.buffers.act.bytes;
    let kind = r.range(0, 12);
    let at = r.pick(&[ActType::I8, ActType::U8]);
    let mode = r.pick(&[MacMode::I8, MacMode::I4, MacMode::T2, MacMode::B1, MacMode::Xnor]);
    match kind {
        0 => Op::Ld(Ld {
            ext: r.pick(&[ExtSpace::Dram, ExtSpace::Sram]),
            src: r.range(0, 2048),
            loc: r.pick(&[LocalSpace::Act, LocalSpace::Wgt, LocalSpace::Par, LocalSpace::Acc]),
            dst: 4 * r.range(0, 200),
            n2: r.range(1, 3),
            n1: r.range(1, 4),
            n0: r.range(1, 4),
            elem: r.pick(&[1, 2, 4, 8]),
            s2: r.range(0, 200),
            s1: r.range(0, 50),
            s0: r.range(0, 12),
            pt: r.range(0, 2),
            pb: r.range(0, 2),
            pl: r.range(0, 2),
            pr: r.range(0, 2),
            pv: r.range(0, 255) as i32,
            unpack: r.pick(&[Unpack::None, Unpack::I4, Unpack::T2, Unpack::B1]),
        }),
        1 => Op::St(St {
            loc: r.pick(&[StoreSpace::Act, StoreSpace::Acc]),
            src: 4 * r.range(0, 200),
            ext: r.pick(&[ExtSpace::Dram, ExtSpace::Sram]),
            dst: r.range(0, 2048),
            n2: r.range(1, 3),
            n1: r.range(1, 4),
            n0: r.range(1, 4),
            elem: r.pick(&[1, 4, 8]),
            s2: r.range(0, 200),
            s1: r.range(0, 50),
            s0: r.range(0, 12),
        }),
        2 | 3 => {
            let dw = r.range(0, 1);
            let cin = r.range(1, 5);
            Op::Conv(Conv {
                mode,
                accum: r.range(0, 1),
                at,
                dw,
                ifm: addr(r, act / 2),
                ih: r.range(1, 6),
                iw: r.range(1, 6),
                cin,
                ps: r.pick(&[0, cin, cin + 3]),
                wgt: r.range(0, 2048),
                kh: r.range(1, 3),
                kw: r.range(1, 3),
                sy: r.range(1, 2),
                sx: r.range(1, 2),
                dy: r.range(1, 2),
                dx: r.range(1, 2),
                pt: r.range(0, 1),
                pb: r.range(0, 1),
                pl: r.range(0, 1),
                pr: r.range(0, 1),
                pv: r.range(0, 255) as i32 - 128,
                cout: if dw == 1 { cin } else { r.range(1, 5) },
                dst: r.range(0, 1000),
            })
        }
        4 => Op::Mm(Mm {
            mode,
            accum: r.range(0, 1),
            at,
            a: r.range(0, 2048),
            b: r.range(0, 2048),
            c: r.range(0, 1000),
            m: r.range(1, 4),
            k: r.range(1, 24),
            n: r.range(1, 6),
        }),
        5 => {
            let dw = r.range(0, 1);
            let cin = r.range(1, 4);
            Op::Wzp(Wzp {
                at,
                dw,
                ifm: addr(r, act / 2),
                ih: r.range(1, 5),
                iw: r.range(1, 5),
                cin,
                ps: r.pick(&[0, cin + 1]),
                kh: r.range(1, 3),
                kw: r.range(1, 3),
                sy: r.range(1, 2),
                sx: r.range(1, 2),
                dy: 1,
                dx: r.range(1, 2),
                pt: r.range(0, 1),
                pb: 0,
                pl: r.range(0, 1),
                pr: r.range(0, 1),
                pv: 0,
                cout: if dw == 1 { cin } else { r.range(1, 4) },
                zp: 4 * r.range(0, 200),
                dst: r.range(0, 1000),
            })
        }
        6 => {
            let c = r.range(1, 6);
            Op::Rq(Rq {
                mode: r.pick(&[RqMode::Shift, RqMode::Mul, RqMode::Mul1]),
                pc: r.range(0, 1),
                ot: r.pick(&[OutType::I8, OutType::U8]),
                src: r.range(0, 1000),
                n: r.range(1, 8),
                c,
                par: 4 * r.range(0, 200),
                dst: r.range(0, 2048),
                ps: r.pick(&[0, c, c + 2]),
                zo: r.range(0, 20) as i32 - 10,
                lo: -256,
                hi: 255,
            })
        }
        7..=9 => {
            let (a, b, dst, n, par) =
                (r.range(0, 2048), r.range(0, 2048), r.range(0, 2048), r.range(1, 64), 4 * r.range(0, 200));
            let ty = at;
            match kind {
                7 => Op::Vadd(Vadd { ty, a, b, dst, n, par, lo: -256, hi: 255 }),
                8 => Op::Vsub(Vsub { ty, a, b, dst, n, par, lo: -256, hi: 255 }),
                _ => Op::Vmul(Vmul { ty, a, b, dst, n, par, lo: -256, hi: 255 }),
            }
        }
        10 => Op::Pool(Pool {
            kind: r.pick(&[PoolKind::Max, PoolKind::Avg]),
            ty: at,
            src: r.range(0, 2048),
            ih: r.range(1, 6),
            iw: r.range(1, 6),
            c: r.range(1, 4),
            kh: r.range(1, 3),
            kw: r.range(1, 3),
            sy: r.range(1, 2),
            sx: r.range(1, 2),
            pt: r.range(0, 1),
            pb: r.range(0, 1),
            pl: r.range(0, 1),
            pr: r.range(0, 1),
            dst: r.range(0, 2048),
        }),
        11 => Op::Lut(Lut {
            ty: at,
            src: r.range(0, 2048),
            dst: r.range(0, 2048),
            n: r.range(1, 64),
            table: r.range(0, 700),
        }),
        _ => Op::Ldz(Ldz {
            ext: r.pick(&[ExtSpace::Dram, ExtSpace::Sram]),
            src: r.range(0, 2048),
            loc: r.pick(&[LocalSpace::Wgt, LocalSpace::Act]),
            dst: r.range(0, 2048),
            len: 1, // set from the stream written below
            n: r.range(1, 64),
            codec: r.pick(Codec::ALL),
        }),
    }
}

/// Writes data the instruction needs to be valid inside its read ranges (records,
/// weights, a compressed stream), so most cases run rather than trap on data.
fn valid_data(r: &mut Rng, op: &mut Op, m: &mut Machine) {
    let put = |m: &mut Machine, space: Space, at: u32, bytes: &[u8]| {
        let mem = m.bytes_mut(space);
        let at = at as usize;
        if at + bytes.len() <= mem.len() {
            mem[at..at + bytes.len()].copy_from_slice(bytes);
        }
    };
    let weights = |r: &mut Rng, n: u64| -> Vec<u8> { (0..n).map(|_| r.pick(&[1u8, 0xff, 0])).collect() };
    match op {
        Op::Rq(q) => {
            let n = if q.pc == 1 { q.c } else { 1 };
            for ch in 0..n {
                let rec = RqRecord {
                    bias: r.range(0, 200) as i32 - 100,
                    multiplier: 1 << 30,
                    shift: -(r.range(0, 3) as i32),
                };
                put(m, Space::Par, q.par + ch * RqRecord::BYTES as u32, &rec.encode());
            }
        }
        Op::Vadd(Vadd { par, .. }) | Op::Vsub(Vsub { par, .. }) | Op::Vmul(Vmul { par, .. }) => {
            let rec = EwRecord {
                za: 3,
                zb: -2,
                zo: 1,
                left_shift: 20,
                ma: (1 << 30, -1),
                mb: (1 << 30, -1),
                mo: (1 << 30, -18),
            };
            put(m, Space::Par, *par, &rec.encode());
        }
        Op::Conv(c) => {
            let w = weights(r, c.weight_bytes());
            put(m, Space::Wgt, c.wgt, &w);
        }
        Op::Mm(x) => {
            let w = weights(r, u64::from(x.n) * u64::from(x.k));
            put(m, Space::Wgt, x.b, &w);
        }
        Op::Ldz(l) => {
            let values: Vec<i8> = (0..l.n).map(|_| r.pick(&[0i8, 0, 1, -1, 5])).collect();
            let stream = npu_isa::codec::encode(&values, l.codec);
            l.len = stream.len() as u32;
            put(m, l.ext.into(), l.src, &stream);
        }
        _ => {}
    }
}

fn inside(feet: &[Access], space: Space, byte: u64, write: bool) -> bool {
    feet.iter().any(|a| a.space == space && a.write == write && a.lo <= byte && byte < a.hi)
}

/// One case; returns whether it ran (plan accepted it).
fn check_case(seed: u64) -> Result<bool, TestCaseError> {
    let hw = small_hw();
    let mut r = Rng(seed | 1);
    let mut op = random_op(&mut r, &hw);
    let mut m1 = Machine::new(&hw, &Program::default()).expect("machine");
    for s in SPACES {
        for b in m1.bytes_mut(s) {
            *b = r.next_u64() as u8;
        }
    }
    valid_data(&mut r, &mut op, &mut m1);
    if plan(&hw, &op).is_err() {
        return Ok(false);
    }
    let feet = footprint(&op).expect("plan accepted the operands");
    // The second machine: the same bytes inside the footprint (the write ranges are
    // bounding intervals, so they may hold bytes the instruction leaves alone), others
    // different.
    let mut m2 = m1.clone();
    for s in SPACES {
        for (i, b) in m2.bytes_mut(s).iter_mut().enumerate() {
            if !inside(&feet, s, i as u64, false) && !inside(&feet, s, i as u64, true) {
                *b = r.next_u64() as u8;
            }
        }
    }
    let (before1, before2) = (m1.clone(), m2.clone());
    let (r1, r2) = (execute(&mut m1, &op), execute(&mut m2, &op));
    prop_assert_eq!(&r1, &r2, "{:?}: the result depends on bytes outside the read footprint", op);
    for s in SPACES {
        for (m, before) in [(&m1, &before1), (&m2, &before2)] {
            for (i, (a, b)) in m.bytes(s).iter().zip(before.bytes(s)).enumerate() {
                prop_assert!(
                    a == b || inside(&feet, s, i as u64, true),
                    "{:?} changed {} byte {:#x}, outside its write footprint {:?}",
                    op,
                    s.name(),
                    i,
                    feet
                );
            }
        }
        if r1.is_ok() {
            for (i, (a, b)) in m1.bytes(s).iter().zip(m2.bytes(s)).enumerate() {
                if inside(&feet, s, i as u64, true) {
                    prop_assert_eq!(a, b, "{:?}: {} byte {:#x} depends on bytes it does not read", op, s.name(), i);
                }
            }
        }
    }
    Ok(true)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn every_byte_the_simulator_touches_is_inside_the_footprint(seed in any::<u64>()) {
        check_case(seed)?;
    }
}

/// The property above is only as strong as the share of cases that run: most random
/// instructions of every kind must pass `plan` (the rest are refused, which is fine).
#[test]
fn footprint_cases_mostly_run() {
    let mut ran = [0u32; 13];
    let mut total = [0u32; 13];
    let hw = small_hw();
    for seed in 1..=2000u64 {
        let mut r = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let op = random_op(&mut r, &hw);
        let k = usize::from(op.opcode()) % 13;
        total[k] += 1;
        if check_case(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)).expect("property holds") {
            ran[k] += 1;
        }
    }
    for (k, (r, t)) in ran.iter().zip(&total).enumerate() {
        if *t > 0 {
            assert!(r * 4 >= *t, "opcode class {k}: only {r} of {t} random instructions ran");
        }
    }
}
