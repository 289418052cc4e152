//! Fast paths of the MAC array's arithmetic, for replaying many inputs.
//!
//! The scalar loops in [`crate::exec`] are the definition (they call only
//! `npu_isa::arith`); the kernels here compute the same wrapping int32 sums with the
//! host's integer dot-product instructions and are differential-tested against them.
//! Exactness rests on two facts: every activation value of every MAC mode lies in
//! −128..=255 and every weight value in −128..=127, so an activation plus an offset
//! (128 when the mode's activations can be negative, else 0) is a `u8` and a weight is
//! an `i8`; and `Σ (a + o)·w = Σ a·w + o·Σ w` in wrapping int32, so subtracting
//! `o·Σ w` per output channel gives the array's sum bit for bit, whatever the order.
//!
//! On x86-64 with AVX-512 VNNI (checked once at run time) a convolution or matrix
//! multiply runs as `vpdpbusd` (four u8×i8 products summed into each int32 lane, not
//! saturating) over 8 output pixels × 16 output channels at a time, reading the
//! activation tile in place (no im2col copy) and the weights packed once per weight
//! stream ([`Packed`], memoized by the machine). On x86-64 with AVX2 only
//! ([`avx2_available`]) 256-bit versions of the same kernels run (the convolution on
//! `vpmaddwd`); elsewhere the scalar loops run.

use std::sync::OnceLock;

/// Output channels per packed block (one 512-bit vector of int32 lanes).
pub const COLS: usize = 16;
/// Output pixels computed together (accumulator registers).
pub const ROWS: usize = 8;

/// True if this CPU runs the fast kernels (x86-64 with AVX-512F, BW, DQ, VL and VNNI).
pub fn available() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512dq")
                && std::arch::is_x86_feature_detected!("avx512vl")
                && std::arch::is_x86_feature_detected!("avx512vnni")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    })
}

/// Weights `[col][tap][k]` packed for the kernel: per block of [`COLS`] output
/// channels, per tap, per group of four `k`, the 16 channels' four `i8` weights
/// (64 bytes, one vector); channels and `k` beyond the real ones are zero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed {
    cols: usize,
    taps: usize,
    /// Groups of four along `k` (the reduction within one tap), `ceil(k / 4)`.
    quads: usize,
    data: Vec<i8>,
    /// `Σ w` over every tap and `k`, per output channel.
    sums: Vec<i32>,
}

impl Packed {
    /// Packs `w`, laid out `[cols][taps][k]`; `None` if a value is outside `i8`.
    pub fn new(w: &[i32], cols: usize, taps: usize, k: usize) -> Option<Packed> {
        if w.len() != cols * taps * k {
            return None;
        }
        let quads = k.div_ceil(4);
        let blocks = cols.div_ceil(COLS);
        let mut data = vec![0i8; blocks * taps * quads * COLS * 4];
        let mut sums = vec![0i32; cols];
        for (c, sum) in sums.iter_mut().enumerate() {
            let (b, lane) = (c / COLS, c % COLS);
            for t in 0..taps {
                for j in 0..k {
                    let v = i8::try_from(w[(c * taps + t) * k + j]).ok()?;
                    *sum = sum.wrapping_add(i32::from(v));
                    data[(((b * taps + t) * quads + j / 4) * COLS + lane) * 4 + j % 4] = v;
                }
            }
        }
        Some(Packed { cols, taps, quads, data, sums })
    }

    /// Output channels.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The `k` this packing holds per tap, rounded up to whole groups of four: the
    /// channel stride the activation tile must have.
    pub fn k_padded(&self) -> usize {
        self.quads * 4
    }
}

/// `out[p·cols + c] (+)= Σ_t Σ_k (a[bases[p] + taps[t] + k] − offset) · w[c][t][k]` in
/// wrapping int32, for every output pixel `p` of `bases` and channel `c` of `w`; `k`
/// runs over [`Packed::k_padded`] (the activation bytes there must meet zero weights).
/// `out` holds little-endian int32 words (the accumulator buffer's bytes); with
/// `accumulate` the sums are added to them, else they replace them.
///
/// With AVX-512 VNNI the sums run on `vpdpbusd`; on a CPU with AVX2 only, on
/// `vpmaddwd` (pairs of u8×i8 products widened to 16 bits, summed into int32 lanes:
/// exact, the largest pair is 2·255·128 < 2^31).
///
/// Panics if an index would leave `a` or `out` (the callers size them from checked
/// geometry), or if [`avx2_available`] is false.
pub fn conv(a: &[u8], bases: &[usize], taps: &[usize], offset: i32, w: &Packed, out: &mut [u8], accumulate: bool) {
    conv_on(available(), a, bases, taps, offset, w, out, accumulate)
}

/// True if this CPU runs the AVX2 kernels ([`conv`], [`depthwise`], [`requantize`],
/// [`lookup2`] on 256-bit vectors) or better: [`available`], or x86-64 with AVX2.
pub fn avx2_available() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            available() || std::arch::is_x86_feature_detected!("avx2")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    })
}

/// [`conv`] on the AVX-512 VNNI kernel (`vnni`) or the AVX2 one.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_on(
    vnni: bool,
    a: &[u8],
    bases: &[usize],
    taps: &[usize],
    offset: i32,
    w: &Packed,
    out: &mut [u8],
    accumulate: bool,
) {
    assert!(if vnni { available() } else { avx2_available() }, "the convolution kernels need AVX2 or AVX-512 VNNI");
    assert_eq!(taps.len(), w.taps, "one tap offset per packed tap");
    let span = taps.iter().max().copied().unwrap_or(0) + w.k_padded();
    assert!(bases.iter().all(|b| b + span <= a.len()), "an activation window lies outside the tile");
    assert!(out.len() >= bases.len() * w.cols * 4, "the output holds every pixel's channels");
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the kernel's features are present (asserted above) and every index it
    // forms is inside `a`, `out` and `w.data` (asserted above and by construction).
    unsafe {
        if vnni {
            x86::conv(a, bases, taps, offset, w, out, accumulate)
        } else {
            x86::conv_avx2(a, bases, taps, offset, w, out, accumulate)
        }
    }
}

/// The depthwise datapath: `out[p·c + ch] (+)= Σ_t (a[bases[p] + taps[t] + ch] − offset) ·
/// w[t·c + ch]` in wrapping int32, for every output pixel `p` of `bases` and channel
/// `ch < c` (one channel per lane, 16 at a time with AVX-512, 8 with AVX2); `out` and
/// `accumulate` as for [`conv`].
///
/// Panics if an index would leave `a`, `w` or `out`, or if [`avx2_available`] is false.
#[allow(clippy::too_many_arguments)]
pub fn depthwise(
    a: &[u8],
    bases: &[usize],
    taps: &[usize],
    c: usize,
    offset: i32,
    w: &[i32],
    out: &mut [u8],
    accumulate: bool,
) {
    depthwise_on(available(), a, bases, taps, c, offset, w, out, accumulate)
}

/// [`depthwise`] on the AVX-512 kernel (`wide`) or the AVX2 one.
#[allow(clippy::too_many_arguments)]
pub(crate) fn depthwise_on(
    wide: bool,
    a: &[u8],
    bases: &[usize],
    taps: &[usize],
    c: usize,
    offset: i32,
    w: &[i32],
    out: &mut [u8],
    accumulate: bool,
) {
    assert!(if wide { available() } else { avx2_available() }, "the kernels need AVX2 or AVX-512 VNNI");
    assert_eq!(w.len(), taps.len() * c, "one weight per tap and channel");
    let span = taps.iter().max().copied().unwrap_or(0) + c;
    assert!(bases.iter().all(|b| b + span <= a.len()), "an activation window lies outside the tile");
    assert!(out.len() >= bases.len() * c * 4, "the output holds every pixel's channels");
    #[cfg(target_arch = "x86_64")]
    // SAFETY: as for `conv`: the features are present and every index is checked above.
    unsafe {
        if wide {
            x86::depthwise(a, bases, taps, c, offset, w, out, accumulate)
        } else {
            x86::depthwise_avx2(a, bases, taps, c, offset, w, out, accumulate)
        }
    }
}

/// Per-channel parameters of the requantization unit: bias, Q31 multiplier (≥ 0) and
/// right shift (0..=31) of each channel.
#[derive(Debug, Clone, Copy)]
pub struct RqChannels<'a> {
    /// Added to the accumulator, saturating.
    pub bias: &'a [i32],
    /// The fixed-point multiplier.
    pub multiplier: &'a [i32],
    /// The rounding right shift after the high multiply.
    pub right: &'a [i32],
}

/// One block of 16 channels' requantization constants, as [`requantize`] loads them:
/// bias and multiplier per lane, and per 64-bit half-lane (even channels, then odd ones)
/// the addend, the drop for negative products and the shift of the one-shift rounding
/// (see the kernel).
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
struct RqBlock {
    bias: [i32; COLS],
    multiplier: [i32; COLS],
    add: [[i64; COLS / 2]; 2],
    drop: [[i64; COLS / 2]; 2],
    shift: [[i64; COLS / 2]; 2],
}

/// [`RqChannels`] laid out for [`requantize`], once per parameter record set (the
/// machine memoizes it with the records).
#[derive(Debug, Clone)]
pub struct RqPlan {
    c: usize,
    blocks: Vec<RqBlock>,
}

impl RqPlan {
    /// The plan of `ch`; `None` if the three slices differ in length, a multiplier is
    /// negative or a shift is outside 0..=31.
    pub fn new(ch: RqChannels) -> Option<RqPlan> {
        let c = ch.bias.len();
        let ok = ch.multiplier.len() == c
            && ch.right.len() == c
            && ch.multiplier.iter().all(|m| *m >= 0)
            && ch.right.iter().all(|r| (0..=31).contains(r));
        if !ok {
            return None;
        }
        let blocks = (0..c.div_ceil(COLS))
            .map(|b| {
                let at = |v: &[i32], l: usize| v.get(b * COLS + l).copied().unwrap_or(0);
                // The one-shift rounding's constants of lane `l` (see `x86::round_shift`).
                let lane = |l: usize| {
                    let r = i64::from(at(ch.right, l));
                    let half = if r > 0 { 1i64 << (r - 1) } else { 0 };
                    ((1i64 << 30) + (half << 31), if r > 0 { 1i64 << 31 } else { 0 }, 31 + r)
                };
                let halves = |f: fn((i64, i64, i64)) -> i64| -> [[i64; COLS / 2]; 2] {
                    std::array::from_fn(|odd| std::array::from_fn(|i| f(lane(2 * i + odd))))
                };
                RqBlock {
                    bias: std::array::from_fn(|l| at(ch.bias, l)),
                    multiplier: std::array::from_fn(|l| at(ch.multiplier, l)),
                    add: halves(|l| l.0),
                    drop: halves(|l| l.1),
                    shift: halves(|l| l.2),
                }
            })
            .collect();
        Some(RqPlan { c, blocks })
    }

    /// Channels.
    pub fn channels(&self) -> usize {
        self.c
    }
}

/// The requantization unit with double rounding for channels that only shift right:
/// for pixel `p < n` and channel `ch < c` (the plan's channels), the int32 accumulator
/// at word `p·c + ch` of `accs` (little-endian) becomes byte `dst + p·ps + ch` of `act`:
/// `clamp(RDBP(SRDHM(acc + bias, multiplier), right) + zero_point, lo, hi)`, the integers
/// of `npu_isa::arith::requantize` (tested against it). `lo − zero_point` and
/// `hi − zero_point` must be int32.
///
/// Panics if an index would leave `accs` or `act`, if the bounds leave int32, or if
/// [`avx2_available`] is false.
pub fn requantize(
    accs: &[u8],
    n: usize,
    plan: &RqPlan,
    (zero_point, lo, hi): (i32, i32, i32),
    act: &mut [u8],
    dst: usize,
    ps: usize,
) {
    requantize_on(available(), accs, n, plan, (zero_point, lo, hi), act, dst, ps)
}

/// [`requantize`] on the AVX-512 kernel (`wide`) or the AVX2 one.
#[allow(clippy::too_many_arguments)]
pub(crate) fn requantize_on(
    wide: bool,
    accs: &[u8],
    n: usize,
    plan: &RqPlan,
    (zero_point, lo, hi): (i32, i32, i32),
    act: &mut [u8],
    dst: usize,
    ps: usize,
) {
    assert!(if wide { available() } else { avx2_available() }, "the kernels need AVX2 or AVX-512 VNNI");
    let c = plan.c;
    let (l, h) = (lo.checked_sub(zero_point), hi.checked_sub(zero_point));
    let (Some(l), Some(h)) = (l, h) else { panic!("the clamp bounds minus the zero point leave int32") };
    assert!(accs.len() >= n * c * 4, "the accumulators hold every pixel");
    assert!(n == 0 || dst + (n - 1) * ps + c <= act.len(), "the output rows lie inside the buffer");
    #[cfg(target_arch = "x86_64")]
    // SAFETY: as for `conv`: the features are present and every index is checked above.
    unsafe {
        if wide {
            x86::requantize(accs, n, plan, (zero_point, l, h), act, dst, ps)
        } else {
            x86::requantize_avx2(accs, n, plan, (zero_point, l, h), act, dst, ps)
        }
    }
}

/// True if this CPU runs [`depthwise_packed`]: [`available`] and AVX-512 VBMI.
pub fn depthwise_packed_available() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            available() && std::arch::is_x86_feature_detected!("avx512vbmi")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    })
}

/// Taps of a depthwise convolution per multiply-accumulate instruction of
/// [`depthwise_packed`] (the four products each int32 lane of `vpdpbusd` sums).
pub const DW_GROUP: usize = 4;

/// Depthwise weights `[tap][col]` packed for [`depthwise_packed`]: per block of
/// [`COLS`] channels, per group of [`DW_GROUP`] taps, each channel's four `i8` weights
/// side by side (64 bytes, one vector); taps beyond the last and channels beyond the
/// real ones are zero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedDw {
    cols: usize,
    taps: usize,
    data: Vec<i8>,
    /// `Σ w` over the taps, per channel.
    sums: Vec<i32>,
}

impl PackedDw {
    /// Packs `w`, laid out `[taps][cols]`; `None` if a value is outside `i8`.
    pub fn new(w: &[i32], taps: usize, cols: usize) -> Option<PackedDw> {
        if w.len() != taps * cols {
            return None;
        }
        let groups = taps.div_ceil(DW_GROUP);
        let mut data = vec![0i8; cols.div_ceil(COLS) * groups * COLS * DW_GROUP];
        let mut sums = vec![0i32; cols];
        for t in 0..taps {
            for (c, sum) in sums.iter_mut().enumerate() {
                let v = i8::try_from(w[t * cols + c]).ok()?;
                *sum = sum.wrapping_add(i32::from(v));
                let (b, lane, g) = (c / COLS, c % COLS, t / DW_GROUP);
                data[((b * groups + g) * COLS + lane) * DW_GROUP + t % DW_GROUP] = v;
                // Fewer channels than lanes, a divisor of them: the lanes beyond repeat
                // the channels, for vectors that hold several pixels.
                if cols < COLS && COLS.is_multiple_of(cols) {
                    for copy in (lane + cols..COLS).step_by(cols) {
                        data[(g * COLS + copy) * DW_GROUP + t % DW_GROUP] = v;
                    }
                }
            }
        }
        Some(PackedDw { cols, taps, data, sums })
    }
}

/// [`depthwise`] on `vpdpbusd`: four taps of 16 channels per instruction, the tap rows'
/// bytes interleaved by one byte permutation (`vpermb`). With fewer channels than 16, a
/// divisor of 16, consecutive pixels whose windows lie `c` bytes apart (stride 1 in a
/// dense tile) share one vector. Same sums, bit for bit.
///
/// Panics if an index would leave `a` or `out`, or if [`depthwise_packed_available`]
/// is false.
pub fn depthwise_packed(
    a: &[u8],
    bases: &[usize],
    taps: &[usize],
    offset: i32,
    w: &PackedDw,
    out: &mut [u8],
    accumulate: bool,
) {
    assert!(depthwise_packed_available(), "the packed depthwise kernel needs AVX-512 VNNI and VBMI");
    assert_eq!(taps.len(), w.taps, "one tap offset per packed tap");
    let span = taps.iter().max().copied().unwrap_or(0) + w.cols;
    assert!(bases.iter().all(|b| b + span <= a.len()), "an activation window lies outside the tile");
    assert!(out.len() >= bases.len() * w.cols * 4, "the output holds every pixel's channels");
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the features are present (asserted above); every load reads the channels
    // below `w.cols` of a window checked above (masked beyond), every store the output
    // checked above.
    unsafe {
        x86::depthwise_packed(a, bases, taps, offset, w, out, accumulate)
    }
}

/// Bytes of a table [`lookup2`] reads: 256 × 256 entries and three more the vector
/// loads may touch (their values are never used).
pub const TABLE2_BYTES: usize = 256 * 256 + 3;

/// `out[i] = table[xs[i]·256 + ys[i]]` for every `i`: a binary operation on bytes by its
/// table of [`TABLE2_BYTES`] bytes, 16 lookups per gather instruction (8 with AVX2).
///
/// Panics if `table` is shorter than [`TABLE2_BYTES`], if `xs`, `ys` and `out` differ in
/// length, or if [`avx2_available`] is false.
pub fn lookup2(table: &[u8], xs: &[u8], ys: &[u8], out: &mut [u8]) {
    lookup2_on(available(), table, xs, ys, out)
}

/// [`lookup2`] on the AVX-512 kernel (`wide`) or the AVX2 one.
pub(crate) fn lookup2_on(wide: bool, table: &[u8], xs: &[u8], ys: &[u8], out: &mut [u8]) {
    assert!(if wide { available() } else { avx2_available() }, "the kernels need AVX2 or AVX-512 VNNI");
    assert!(table.len() >= TABLE2_BYTES, "the table holds every pair of bytes and its padding");
    assert!(xs.len() == out.len() && ys.len() == out.len(), "one output byte per pair of inputs");
    #[cfg(target_arch = "x86_64")]
    // SAFETY: as for `conv`: the features are present; every gathered index is below
    // 65,536 and reads four bytes, inside the table (checked above).
    unsafe {
        if wide {
            x86::lookup2(table, xs, ys, out)
        } else {
            x86::lookup2_avx2(table, xs, ys, out)
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Packed, PackedDw, RqPlan, COLS, DW_GROUP, ROWS};
    use std::arch::x86_64::*;

    /// The low byte of each int32 lane, in order, in a register. LLVM would fold the
    /// narrowing and the masked store after it into the store form of `vpmovdb`, which
    /// some CPUs (AMD Zen 4 among them) run many times slower than the register form and
    /// a byte store; the empty `asm!` (no instructions) keeps the two apart.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
    unsafe fn low_bytes(v: __m512i) -> __m128i {
        let mut b = _mm512_cvtepi32_epi8(v);
        std::arch::asm!("/* {0} */", inout(xmm_reg) b, options(pure, nomem, nostack, preserves_flags));
        b
    }

    /// The requantization in 64-bit lanes, both roundings in one shift. gemmlowp's
    /// doubling high multiply `h` of `x·m` (its nudge: 2^30 for a non-negative product,
    /// 1 − 2^30 for a negative one, then division by 2^31 truncating toward zero) is
    /// `h = ⌊(x·m + 2^30) / 2^31⌋`: for a negative product t = x·m + 1 − 2^30 < 0 and
    /// trunc(t / 2^31) = ⌊(t + 2^31 − 1) / 2^31⌋ = ⌊(x·m + 2^30) / 2^31⌋. The rounding
    /// right shift by r ≥ 1, half away from zero, is `⌊(h + 2^(r−1) − [h < 0]) / 2^r⌋`
    /// (and `h` itself for r = 0), and `⌊(⌊S / 2^31⌋ + c) / 2^r⌋ = ⌊(S + c·2^31) / 2^(31+r)⌋`
    /// for integers S and c; `h < 0` exactly when `x·m + 2^30 < 0`. So per lane:
    /// `q = (x·m + add − [x·m < −2^30]·drop) >> (31 + r)` with `add = 2^30 + 2^(r−1)·2^31`
    /// and `drop = 2^31` (both without the 2^(r−1) terms for r = 0). |x·m| < 2^62 and
    /// `add < 2^62`: no overflow.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
    unsafe fn round_shift(prod: __m512i, add: __m512i, drop: __m512i, shift: __m512i) -> __m512i {
        let t = _mm512_add_epi64(prod, add);
        let neg = _mm512_cmplt_epi64_mask(prod, _mm512_set1_epi64(-(1 << 30)));
        _mm512_srav_epi64(_mm512_mask_sub_epi64(t, neg, t, drop), shift)
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
    pub(super) unsafe fn requantize(
        accs: &[u8],
        n: usize,
        plan: &RqPlan,
        (zp, lo, hi): (i32, i32, i32),
        act: &mut [u8],
        dst: usize,
        ps: usize,
    ) {
        let c = plan.c;
        let (vzp, vlo, vhi) = (_mm512_set1_epi32(zp), _mm512_set1_epi32(lo), _mm512_set1_epi32(hi));
        let max = _mm512_set1_epi32(i32::MAX);
        // Dwords 0, 16, 2, 18, …: the low halves of the even and odd lanes' results.
        let interleave = _mm512_setr_epi32(0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30);
        let ap = accs.as_ptr() as *const i32;
        let op = act.as_mut_ptr();
        for (b, blk) in plan.blocks.iter().enumerate() {
            let c0 = b * COLS;
            let k = COLS.min(c - c0);
            let mask: __mmask16 = if k == COLS { 0xffff } else { (1u16 << k) - 1 };
            let load = |p: *const i64| _mm512_load_si512(p as *const _);
            let bias = load(blk.bias.as_ptr() as *const i64);
            let mult = load(blk.multiplier.as_ptr() as *const i64);
            let mult_odd = _mm512_srli_epi64(mult, 32);
            let (add_e, add_o) = (load(blk.add[0].as_ptr()), load(blk.add[1].as_ptr()));
            let (drop_e, drop_o) = (load(blk.drop[0].as_ptr()), load(blk.drop[1].as_ptr()));
            let (shift_e, shift_o) = (load(blk.shift[0].as_ptr()), load(blk.shift[1].as_ptr()));
            for p in 0..n {
                let a = _mm512_maskz_loadu_epi32(mask, ap.add(p * c + c0));
                // Saturating add: on overflow (both operands' signs differ from the sum's,
                // bit 31 of (a ^ s) & (bias ^ s)), the bound on the side of `a`'s sign.
                let s = _mm512_add_epi32(a, bias);
                let ovf = _mm512_movepi32_mask(_mm512_ternarylogic_epi32::<0x42>(a, bias, s));
                let x = if ovf == 0 {
                    s
                } else {
                    _mm512_mask_blend_epi32(ovf, s, _mm512_xor_si512(_mm512_srai_epi32(a, 31), max))
                };
                // The multiplier is ≥ 0, so gemmlowp's saturating case MIN·MIN cannot occur.
                let even = round_shift(_mm512_mul_epi32(x, mult), add_e, drop_e, shift_e);
                let odd = round_shift(_mm512_mul_epi32(_mm512_srli_epi64(x, 32), mult_odd), add_o, drop_o, shift_o);
                let q = _mm512_permutex2var_epi32(even, interleave, odd);
                let y = _mm512_add_epi32(_mm512_min_epi32(_mm512_max_epi32(q, vlo), vhi), vzp);
                _mm_mask_storeu_epi8(op.add(dst + p * ps + c0) as *mut i8, mask, low_bytes(y));
            }
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx512vbmi")]
    pub(super) unsafe fn depthwise_packed(
        a: &[u8],
        bases: &[usize],
        taps: &[usize],
        offset: i32,
        w: &PackedDw,
        out: &mut [u8],
        accumulate: bool,
    ) {
        let (c, ap, op) = (w.cols, a.as_ptr(), out.as_mut_ptr() as *mut i32);
        let groups = w.taps.div_ceil(DW_GROUP);
        // Byte 4·ch + t of the interleaved vector is byte 16·t + ch of the four tap rows.
        let order: [u8; 64] = std::array::from_fn(|j| ((j % DW_GROUP) * COLS + j / DW_GROUP) as u8);
        let order = _mm512_loadu_si512(order.as_ptr() as *const _);
        // Missing taps of the last group read the last tap again (their weights are 0).
        let last = taps.last().copied().unwrap_or(0);
        let toff: Vec<usize> = (0..groups * DW_GROUP).map(|t| taps.get(t).copied().unwrap_or(last)).collect();
        let mut wv = Vec::with_capacity(groups);
        for c0 in (0..c).step_by(COLS) {
            let n = COLS.min(c - c0);
            let mask: __mmask16 = if n == COLS { 0xffff } else { (1u16 << n) - 1 };
            wv.clear();
            let b = c0 / COLS;
            for g in 0..groups {
                wv.push(_mm512_loadu_si512(w.data.as_ptr().add((b * groups + g) * COLS * DW_GROUP) as *const _));
            }
            let sums = _mm512_maskz_loadu_epi32(mask, w.sums.as_ptr().add(c0));
            let fix = _mm512_mullo_epi32(sums, _mm512_set1_epi32(offset));
            // Pixels per vector: 16 / c where the packing repeats the channels.
            let per = if c < COLS && COLS.is_multiple_of(c) { COLS / c } else { 1 };
            let repeated: [i32; COLS] = std::array::from_fn(|l| offset.wrapping_mul(w.sums[l % c]));
            let fix_all = _mm512_loadu_si512(repeated.as_ptr() as *const _);
            let mut p = 0;
            while p < bases.len() {
                let base = bases[p];
                let joint = per > 1 && p + per <= bases.len() && (1..per).all(|i| bases[p + i] == base + i * c);
                let (k, fix, step) = if joint { (0xffff, fix_all, per) } else { (mask, fix, 1) };
                let at = ap.add(base + c0);
                let mut acc = _mm512_setzero_si512();
                for (g, wg) in wv.iter().enumerate() {
                    let t = &toff[g * DW_GROUP..g * DW_GROUP + DW_GROUP];
                    let row = |i: usize| _mm_maskz_loadu_epi8(k, at.add(t[i]) as *const i8);
                    let v = _mm512_inserti32x4::<1>(_mm512_castsi128_si512(row(0)), row(1));
                    let v = _mm512_inserti32x4::<3>(_mm512_inserti32x4::<2>(v, row(2)), row(3));
                    acc = _mm512_dpbusd_epi32(acc, _mm512_permutexvar_epi8(order, v), *wg);
                }
                let o = op.add(p * c + c0);
                let mut v = _mm512_sub_epi32(acc, fix);
                if accumulate {
                    v = _mm512_add_epi32(v, _mm512_maskz_loadu_epi32(k, o));
                }
                _mm512_mask_storeu_epi32(o, k, v);
                p += step;
            }
        }
    }

    /// Arithmetic right shift of 64-bit lanes by per-lane amounts (AVX2 has only the
    /// logical one): shift `t + 2^63` logically and take `2^63 >> s` back off.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn srav64(t: __m256i, shift: __m256i, top: __m256i) -> __m256i {
        let sign = _mm256_set1_epi64x(i64::MIN);
        _mm256_sub_epi64(_mm256_srlv_epi64(_mm256_xor_si256(t, sign), shift), top)
    }

    /// [`round_shift`] on four 64-bit lanes (`top` is `2^63 >> shift` per lane).
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn round_shift_avx2(prod: __m256i, add: __m256i, drop: __m256i, shift: __m256i, top: __m256i) -> __m256i {
        let t = _mm256_add_epi64(prod, add);
        let neg = _mm256_cmpgt_epi64(_mm256_set1_epi64x(-(1 << 30)), prod);
        srav64(_mm256_sub_epi64(t, _mm256_and_si256(neg, drop)), shift, top)
    }

    /// The low byte of each of eight int32 lanes, in order, in the low 8 bytes.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn low_bytes_avx2(v: __m256i) -> __m128i {
        // Per 128-bit lane, bytes 0, 4, 8, 12 into its first dword; then those two dwords.
        let order = _mm256_setr_epi8(
            0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1,
            -1, -1, -1, -1,
        );
        let b = _mm256_shuffle_epi8(v, order);
        _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 1, 1, 1, 1, 1)))
    }

    /// Lanes `0..k` of eight set (all bits), the rest clear.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn lanes_avx2(k: usize) -> __m256i {
        _mm256_cmpgt_epi32(_mm256_set1_epi32(k as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
    }

    /// [`requantize`] on eight channels at a time with AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn requantize_avx2(
        accs: &[u8],
        n: usize,
        plan: &RqPlan,
        (zp, lo, hi): (i32, i32, i32),
        act: &mut [u8],
        dst: usize,
        ps: usize,
    ) {
        let c = plan.c;
        let (vzp, vlo, vhi) = (_mm256_set1_epi32(zp), _mm256_set1_epi32(lo), _mm256_set1_epi32(hi));
        let max = _mm256_set1_epi32(i32::MAX);
        let sign = _mm256_set1_epi64x(i64::MIN);
        let ap = accs.as_ptr() as *const i32;
        let op = act.as_mut_ptr();
        for (b, blk) in plan.blocks.iter().enumerate() {
            for h in 0..2 {
                let c0 = b * COLS + 8 * h;
                if c0 >= c {
                    break;
                }
                let k = 8.min(c - c0);
                let lanes = lanes_avx2(k);
                let ld = |p: *const i64| _mm256_loadu_si256(p as *const _);
                let bias = ld(blk.bias[8 * h..].as_ptr() as *const i64);
                let mult = ld(blk.multiplier[8 * h..].as_ptr() as *const i64);
                let mult_odd = _mm256_srli_epi64(mult, 32);
                let (add_e, add_o) = (ld(blk.add[0][4 * h..].as_ptr()), ld(blk.add[1][4 * h..].as_ptr()));
                let (drop_e, drop_o) = (ld(blk.drop[0][4 * h..].as_ptr()), ld(blk.drop[1][4 * h..].as_ptr()));
                let (shift_e, shift_o) = (ld(blk.shift[0][4 * h..].as_ptr()), ld(blk.shift[1][4 * h..].as_ptr()));
                let (top_e, top_o) = (_mm256_srlv_epi64(sign, shift_e), _mm256_srlv_epi64(sign, shift_o));
                for p in 0..n {
                    let a = _mm256_maskload_epi32(ap.add(p * c + c0), lanes);
                    let s = _mm256_add_epi32(a, bias);
                    // Saturating add, as in the AVX-512 kernel.
                    let ovf = _mm256_and_si256(_mm256_xor_si256(a, s), _mm256_xor_si256(bias, s));
                    let x = if _mm256_movemask_ps(_mm256_castsi256_ps(ovf)) == 0 {
                        s
                    } else {
                        let sat = _mm256_xor_si256(_mm256_srai_epi32(a, 31), max);
                        _mm256_castps_si256(_mm256_blendv_ps(
                            _mm256_castsi256_ps(s),
                            _mm256_castsi256_ps(sat),
                            _mm256_castsi256_ps(ovf),
                        ))
                    };
                    let even = round_shift_avx2(_mm256_mul_epi32(x, mult), add_e, drop_e, shift_e, top_e);
                    let odd_x = _mm256_srli_epi64(x, 32);
                    let odd = round_shift_avx2(_mm256_mul_epi32(odd_x, mult_odd), add_o, drop_o, shift_o, top_o);
                    let q = _mm256_blend_epi32::<0b1010_1010>(even, _mm256_slli_epi64(odd, 32));
                    let y = _mm256_add_epi32(_mm256_min_epi32(_mm256_max_epi32(q, vlo), vhi), vzp);
                    let bytes = _mm_cvtsi128_si64(low_bytes_avx2(y)).to_le_bytes();
                    std::ptr::copy_nonoverlapping(bytes.as_ptr(), op.add(dst + p * ps + c0), k);
                }
            }
        }
    }

    /// [`super::depthwise`] with AVX2: eight channels per vector.
    #[target_feature(enable = "avx2")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn depthwise_avx2(
        a: &[u8],
        bases: &[usize],
        taps: &[usize],
        c: usize,
        offset: i32,
        w: &[i32],
        out: &mut [u8],
        accumulate: bool,
    ) {
        let ap = a.as_ptr();
        let op = out.as_mut_ptr() as *mut i32;
        let mut wv = Vec::with_capacity(taps.len());
        for c0 in (0..c).step_by(8) {
            let k = 8.min(c - c0);
            let lanes = lanes_avx2(k);
            wv.clear();
            let mut sum = _mm256_setzero_si256();
            for t in 0..taps.len() {
                let v = _mm256_maskload_epi32(w.as_ptr().add(t * c + c0), lanes);
                sum = _mm256_add_epi32(sum, v);
                wv.push(v);
            }
            let fix = _mm256_mullo_epi32(sum, _mm256_set1_epi32(offset));
            for (p, &base) in bases.iter().enumerate() {
                let mut acc = _mm256_setzero_si256();
                for (v, &toff) in wv.iter().zip(taps) {
                    // Eight bytes (fewer at the end of the channels: the rest read as 0).
                    let at = ap.add(base + toff + c0);
                    let x = if k == 8 {
                        _mm_loadl_epi64(at as *const _)
                    } else {
                        let mut b = [0u8; 8];
                        std::ptr::copy_nonoverlapping(at, b.as_mut_ptr(), k);
                        _mm_loadl_epi64(b.as_ptr() as *const _)
                    };
                    acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(x), *v));
                }
                let o = op.add(p * c + c0);
                let mut v = _mm256_sub_epi32(acc, fix);
                if accumulate {
                    v = _mm256_add_epi32(v, _mm256_maskload_epi32(o, lanes));
                }
                _mm256_maskstore_epi32(o, lanes, v);
            }
        }
    }

    /// [`super::lookup2`] with AVX2: eight lookups per gather.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn lookup2_avx2(table: &[u8], xs: &[u8], ys: &[u8], out: &mut [u8]) {
        let t = table.as_ptr() as *const i32;
        let full = out.len() / 8 * 8;
        for i in (0..full).step_by(8) {
            let x = _mm256_cvtepu8_epi32(_mm_loadl_epi64(xs.as_ptr().add(i) as *const _));
            let y = _mm256_cvtepu8_epi32(_mm_loadl_epi64(ys.as_ptr().add(i) as *const _));
            let v = _mm256_i32gather_epi32::<1>(t, _mm256_or_si256(_mm256_slli_epi32(x, 8), y));
            _mm_storel_epi64(out.as_mut_ptr().add(i) as *mut _, low_bytes_avx2(v));
        }
        for i in full..out.len() {
            out[i] = table[(usize::from(xs[i]) << 8) | usize::from(ys[i])];
        }
    }

    /// [`super::conv`] with AVX2: per group of four `k`, the even bytes' and odd bytes'
    /// products as two `vpmaddwd` (16-bit pairs, activations zero-extended, weights
    /// sign-extended), over 4 pixels × 16 channels (two vectors of 8) at a time.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn conv_avx2(
        a: &[u8],
        bases: &[usize],
        taps: &[usize],
        offset: i32,
        w: &Packed,
        out: &mut [u8],
        accumulate: bool,
    ) {
        const R: usize = 4;
        let (cols, quads) = (w.cols, w.quads);
        let (ap, wp, op) = (a.as_ptr(), w.data.as_ptr(), out.as_mut_ptr() as *mut i32);
        let low = _mm256_set1_epi32(0x00ff_00ff);
        for b in 0..cols.div_ceil(COLS) {
            let c0 = b * COLS;
            let n = COLS.min(cols - c0);
            // Per half of the block: `offset · Σ w` and which lanes are channels.
            let fix: [__m256i; 2] = std::array::from_fn(|h| {
                let f: [i32; 8] =
                    std::array::from_fn(|l| w.sums.get(c0 + 8 * h + l).map_or(0, |s| offset.wrapping_mul(*s)));
                _mm256_loadu_si256(f.as_ptr() as *const _)
            });
            let lanes: [__m256i; 2] = std::array::from_fn(|h| {
                let m: [i32; 8] = std::array::from_fn(|l| if 8 * h + l < n { -1 } else { 0 });
                _mm256_loadu_si256(m.as_ptr() as *const _)
            });
            for p0 in (0..bases.len()).step_by(R) {
                let rows = R.min(bases.len() - p0);
                let base: [usize; R] = std::array::from_fn(|r| bases[p0 + r.min(rows - 1)]);
                let mut acc = [[_mm256_setzero_si256(); R]; 2];
                for (t, &toff) in taps.iter().enumerate() {
                    let mut wq = wp.add((b * w.taps + t) * quads * COLS * 4);
                    for q in 0..quads {
                        // Each lane's four weights: bytes 0 and 2 as one pair of i16, 1 and
                        // 3 as another (sign-extended).
                        let wv: [[__m256i; 2]; 2] = std::array::from_fn(|h| {
                            let v = _mm256_loadu_si256(wq.add(32 * h) as *const _);
                            [_mm256_srai_epi16(_mm256_slli_epi16(v, 8), 8), _mm256_srai_epi16(v, 8)]
                        });
                        let at = toff + 4 * q;
                        for r in 0..R {
                            let x = _mm256_set1_epi32(std::ptr::read_unaligned(ap.add(base[r] + at) as *const i32));
                            let (even, odd) =
                                (_mm256_and_si256(x, low), _mm256_and_si256(_mm256_srli_epi16(x, 8), low));
                            for h in 0..2 {
                                let s = _mm256_add_epi32(
                                    _mm256_madd_epi16(even, wv[h][0]),
                                    _mm256_madd_epi16(odd, wv[h][1]),
                                );
                                acc[h][r] = _mm256_add_epi32(acc[h][r], s);
                            }
                        }
                        wq = wq.add(COLS * 4);
                    }
                }
                for h in 0..2 {
                    if 8 * h >= n {
                        continue;
                    }
                    for (r, acc) in acc[h].iter().enumerate().take(rows) {
                        let o = op.add((p0 + r) * cols + c0 + 8 * h);
                        let mut v = _mm256_sub_epi32(*acc, fix[h]);
                        if accumulate {
                            v = _mm256_add_epi32(v, _mm256_maskload_epi32(o, lanes[h]));
                        }
                        _mm256_maskstore_epi32(o, lanes[h], v);
                    }
                }
            }
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
    pub(super) unsafe fn lookup2(table: &[u8], xs: &[u8], ys: &[u8], out: &mut [u8]) {
        let t = table.as_ptr();
        for i in (0..out.len()).step_by(COLS) {
            let n = COLS.min(out.len() - i);
            let mask: __mmask16 = if n == COLS { 0xffff } else { (1u16 << n) - 1 };
            let x = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(mask, xs.as_ptr().add(i) as *const i8));
            let y = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(mask, ys.as_ptr().add(i) as *const i8));
            let idx = _mm512_or_si512(_mm512_slli_epi32(x, 8), y);
            let v = _mm512_mask_i32gather_epi32::<1>(_mm512_setzero_si512(), mask, idx, t as *const _);
            _mm_mask_storeu_epi8(out.as_mut_ptr().add(i) as *mut i8, mask, low_bytes(v));
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn depthwise(
        a: &[u8],
        bases: &[usize],
        taps: &[usize],
        c: usize,
        offset: i32,
        w: &[i32],
        out: &mut [u8],
        accumulate: bool,
    ) {
        let ap = a.as_ptr();
        let op = out.as_mut_ptr() as *mut i32;
        let mut wv = Vec::with_capacity(taps.len());
        for c0 in (0..c).step_by(COLS) {
            let n = COLS.min(c - c0);
            let mask: __mmask16 = if n == COLS { 0xffff } else { (1u16 << n) - 1 };
            wv.clear();
            let mut sum = _mm512_setzero_si512();
            for t in 0..taps.len() {
                let v = _mm512_maskz_loadu_epi32(mask, w.as_ptr().add(t * c + c0));
                sum = _mm512_add_epi32(sum, v);
                wv.push(v);
            }
            let fix = _mm512_mullo_epi32(sum, _mm512_set1_epi32(offset));
            for (p, &base) in bases.iter().enumerate() {
                let mut acc = _mm512_setzero_si512();
                for (v, &toff) in wv.iter().zip(taps) {
                    let x = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(mask, ap.add(base + toff + c0) as *const i8));
                    acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(x, *v));
                }
                let o = op.add(p * c + c0);
                let mut v = _mm512_sub_epi32(acc, fix);
                if accumulate {
                    v = _mm512_add_epi32(v, _mm512_maskz_loadu_epi32(mask, o));
                }
                _mm512_mask_storeu_epi32(o, mask, v);
            }
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
    pub(super) unsafe fn conv(
        a: &[u8],
        bases: &[usize],
        taps: &[usize],
        offset: i32,
        w: &Packed,
        out: &mut [u8],
        accumulate: bool,
    ) {
        let blocks = w.cols.div_ceil(COLS);
        let ap = a.as_ptr();
        let op = out.as_mut_ptr() as *mut i32;
        // `offset · Σ w` per channel, once per call (channels beyond the last: 0).
        let fix: Vec<i32> = (0..blocks * COLS).map(|c| w.sums.get(c).map_or(0, |s| offset.wrapping_mul(*s))).collect();
        for p0 in (0..bases.len()).step_by(ROWS) {
            let rows = ROWS.min(bases.len() - p0);
            // Short blocks repeat their last pixel (computed, not stored).
            let base: [usize; ROWS] = std::array::from_fn(|r| bases[p0 + r.min(rows - 1)]);
            let mut b = 0;
            while b < blocks {
                // Two blocks of channels at a time where there are two: each activation
                // broadcast then feeds two multiply-accumulates.
                if b + 1 < blocks {
                    block::<2>(ap, &base, taps, &fix, w, op, p0, rows, b, accumulate);
                    b += 2;
                } else {
                    block::<1>(ap, &base, taps, &fix, w, op, p0, rows, b, accumulate);
                    b += 1;
                }
            }
        }
    }

    /// `NB` blocks of 16 channels from block `b`, for the `ROWS` pixels at `base` (the
    /// first `rows` of them stored, from pixel `p0`).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn block<const NB: usize>(
        ap: *const u8,
        base: &[usize; ROWS],
        taps: &[usize],
        fix: &[i32],
        w: &Packed,
        op: *mut i32,
        p0: usize,
        rows: usize,
        b: usize,
        accumulate: bool,
    ) {
        let (cols, quads) = (w.cols, w.quads);
        let wp = w.data.as_ptr();
        let stride = w.taps * quads * COLS * 4;
        let mut acc = [[_mm512_setzero_si512(); ROWS]; NB];
        for (t, &toff) in taps.iter().enumerate() {
            let mut wq = wp.add((b * w.taps + t) * quads * COLS * 4);
            for q in 0..quads {
                let wv: [__m512i; NB] = std::array::from_fn(|j| _mm512_loadu_si512(wq.add(j * stride) as *const _));
                let at = toff + 4 * q;
                for r in 0..ROWS {
                    let x = _mm512_set1_epi32(std::ptr::read_unaligned(ap.add(base[r] + at) as *const i32));
                    for j in 0..NB {
                        acc[j][r] = _mm512_dpbusd_epi32(acc[j][r], x, wv[j]);
                    }
                }
                wq = wq.add(COLS * 4);
            }
        }
        for (j, acc) in acc.iter().enumerate() {
            let c0 = (b + j) * COLS;
            let n = COLS.min(cols - c0);
            let fix = _mm512_loadu_si512(fix.as_ptr().add(c0) as *const _);
            let mask: __mmask16 = if n == COLS { 0xffff } else { (1u16 << n) - 1 };
            for (r, acc) in acc.iter().enumerate().take(rows) {
                let o = op.add((p0 + r) * cols + c0);
                let mut v = _mm512_sub_epi32(*acc, fix);
                if accumulate {
                    v = _mm512_add_epi32(v, _mm512_maskz_loadu_epi32(mask, o));
                }
                _mm512_mask_storeu_epi32(o, mask, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (xorshift), so the tests need no crate.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn range(&mut self, lo: i32, hi: i32) -> i32 {
            lo + (self.next() % (hi - lo + 1) as u64) as i32
        }
    }

    /// Little-endian int32 words, as the accumulator buffer holds them.
    fn words(v: &[i32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    /// The definition: the sum over taps and `k` of (byte − offset)·w, wrapping.
    fn reference(a: &[u8], bases: &[usize], taps: &[usize], k: usize, offset: i32, w: &[i32], cols: usize) -> Vec<i32> {
        let mut out = vec![0i32; bases.len() * cols];
        for (p, &b) in bases.iter().enumerate() {
            for c in 0..cols {
                let mut s = 0i32;
                for (t, &toff) in taps.iter().enumerate() {
                    for j in 0..k {
                        let x = i32::from(a[b + toff + j]) - offset;
                        s = s.wrapping_add(x.wrapping_mul(w[(c * taps.len() + t) * k + j]));
                    }
                }
                out[p * cols + c] = s;
            }
        }
        out
    }

    #[test]
    fn packed_kernels_equal_the_wrapping_sum_on_random_shapes_and_extremes() {
        if !avx2_available() {
            return;
        }
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for case in 0..300 {
            let cols = 1 + rng.below(40);
            let ntaps = 1 + rng.below(9);
            let k = 1 + rng.below(37);
            let kp = k.div_ceil(4) * 4;
            let pixels = 1 + rng.below(21);
            let offset = if case % 2 == 0 { 128 } else { 0 };
            // Extremes every third case: every weight −128 and every byte 255 (the
            // largest products; sums wrap for long reductions).
            let extreme = case % 3 == 0;
            let w: Vec<i32> =
                (0..cols * ntaps * kp).map(|_| if extreme { -128 } else { rng.range(-128, 127) }).collect();
            // Zero weights where k is padding, as the callers' tiles require.
            let w: Vec<i32> = w.iter().enumerate().map(|(i, v)| if i % kp < k { *v } else { 0 }).collect();
            let taps: Vec<usize> = (0..ntaps).map(|t| t * (kp + rng.below(3) * 4)).collect();
            let span = taps.iter().max().unwrap() + kp;
            let bases: Vec<usize> = (0..pixels).map(|_| rng.below(50)).collect();
            let a: Vec<u8> = (0..50 + span).map(|_| if extreme { 255 } else { rng.below(256) as u8 }).collect();
            let packed = Packed::new(&w, cols, ntaps, kp).unwrap();
            let start: Vec<i32> = (0..pixels * cols).map(|_| rng.next() as i32).collect();
            let want = reference(&a, &bases, &taps, kp, offset, &w, cols);
            for (accumulate, vnni) in [(true, true), (false, true), (true, false), (false, false)] {
                if vnni && !available() {
                    continue;
                }
                let mut got = words(&start);
                conv_on(vnni, &a, &bases, &taps, offset, &packed, &mut got, accumulate);
                for (i, g) in got.chunks_exact(4).enumerate() {
                    let base = if accumulate { start[i] } else { 0 };
                    let g = i32::from_le_bytes([g[0], g[1], g[2], g[3]]);
                    assert_eq!(
                        g,
                        base.wrapping_add(want[i]),
                        "case {case} (vnni {vnni}): element {i}, accumulate {accumulate}"
                    );
                }
            }
        }
    }

    #[test]
    fn depthwise_kernels_equal_the_wrapping_sum_on_random_shapes_and_extremes() {
        if !avx2_available() {
            return;
        }
        let mut rng = Rng(0x5851_f42d_4c95_7f2d);
        for case in 0..300 {
            // Every fourth case: a divisor of 16 channels and windows `c` bytes apart, so
            // the packed kernel puts several pixels in one vector.
            let joint = case % 4 == 1;
            let c = if joint { [1, 2, 4, 8][rng.below(4)] } else { 1 + rng.below(50) };
            let ntaps = 1 + rng.below(10);
            let pixels = 1 + rng.below(13);
            let offset = if case % 2 == 0 { 128 } else { 0 };
            let extreme = case % 3 == 0;
            let w: Vec<i32> = (0..ntaps * c).map(|_| if extreme { -128 } else { rng.range(-128, 127) }).collect();
            let taps: Vec<usize> = (0..ntaps).map(|t| t * (c + rng.below(5))).collect();
            let span = taps.iter().max().unwrap() + c;
            let bases: Vec<usize> = match joint {
                true => (0..pixels).map(|p| 3 + p * c + if p == 5 { 1 } else { 0 }).collect(),
                false => (0..pixels).map(|_| rng.below(40)).collect(),
            };
            let end = bases.iter().max().unwrap() + span;
            let a: Vec<u8> = (0..end).map(|_| if extreme { 255 } else { rng.below(256) as u8 }).collect();
            let start: Vec<i32> = (0..pixels * c).map(|_| rng.next() as i32).collect();
            let packed = PackedDw::new(&w, ntaps, c).expect("i8 weights");
            // Kernel 0: AVX-512 lanes, 1: `vpdpbusd` (VBMI), 2: AVX2.
            for (accumulate, kernel) in (0..6).map(|i| (i % 2 == 0, i / 2)) {
                let runs = [available(), depthwise_packed_available(), avx2_available()];
                if !runs[kernel] {
                    continue;
                }
                let vnni = kernel == 1;
                let mut got = words(&start);
                match kernel {
                    0 => depthwise_on(true, &a, &bases, &taps, c, offset, &w, &mut got, accumulate),
                    1 => depthwise_packed(&a, &bases, &taps, offset, &packed, &mut got, accumulate),
                    _ => depthwise_on(false, &a, &bases, &taps, c, offset, &w, &mut got, accumulate),
                }
                for (p, &b) in bases.iter().enumerate() {
                    for ch in 0..c {
                        let mut want = if accumulate { start[p * c + ch] } else { 0 };
                        for (t, &toff) in taps.iter().enumerate() {
                            let x = i32::from(a[b + toff + ch]) - offset;
                            want = want.wrapping_add(x.wrapping_mul(w[t * c + ch]));
                        }
                        let g = &got[(p * c + ch) * 4..(p * c + ch + 1) * 4];
                        assert_eq!(
                            i32::from_le_bytes([g[0], g[1], g[2], g[3]]),
                            want,
                            "case {case} (kernel {kernel}, vpdpbusd {vnni}): pixel {p} channel {ch}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn requantization_kernels_equal_the_scalar_requantizer() {
        use npu_isa::arith::{self, OutputStage, QuantizedMultiplier, Rounding};
        if !avx2_available() {
            return;
        }
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        for case in 0..400 {
            let c = 1 + rng.below(40);
            let n = 1 + rng.below(9);
            let ps = c + rng.below(4);
            let extreme = case % 4 == 0;
            let bias: Vec<i32> = (0..c)
                .map(|_| match (extreme, case % 4 == 1) {
                    (true, _) => [i32::MIN, i32::MAX, -1, 0][rng.below(4)],
                    (_, true) => rng.range(-3, 3),
                    _ => rng.range(-70000, 70000),
                })
                .collect();
            // Every fourth case rounds ties: a multiplier of one half (2^30) makes the high
            // multiply of an odd sum a tie, and small sums with small shifts tie again.
            let ties = case % 4 == 1;
            let multiplier: Vec<i32> = (0..c)
                .map(|_| match (extreme, ties, rng.below(2)) {
                    (true, _, 0) => i32::MAX,
                    // 2^30 + 1 puts −1·m + 2^30 one below zero: the nudge decides h.
                    (_, true, _) => [1 << 30, (1 << 30) + 1][rng.below(2)],
                    _ => rng.range(1 << 30, i32::MAX),
                })
                .collect();
            let right: Vec<i32> = (0..c).map(|_| if ties { rng.range(0, 3) } else { rng.range(0, 31) }).collect();
            let accs: Vec<i32> = (0..n * c)
                .map(|_| match (extreme, ties, rng.below(4)) {
                    (true, _, 0) => i32::MIN,
                    (true, _, 1) => i32::MAX,
                    // With the multiplier i32::MAX, −(2^30 − 1) makes x·m + 2^30 one below a
                    // multiple of 2^31: the first rounding's nudge to the unit.
                    (true, _, 2) => [-(1 << 30) + 1, (1 << 30) - 1][rng.below(2)],
                    (_, true, _) => rng.range(-9, 9),
                    _ => rng.next() as i32 >> rng.below(32),
                })
                .collect();
            let bytes: Vec<u8> = accs.iter().flat_map(|a| a.to_le_bytes()).collect();
            let signed = case % 2 == 0;
            let (tlo, thi) = if signed { (-128, 127) } else { (0, 255) };
            let zp = rng.range(tlo, thi);
            let (lo, hi) = (tlo + rng.range(0, 30), thi - rng.range(0, 30));
            let dst = rng.below(5);
            let mut act = vec![0xa5u8; dst + n * ps + 3];
            let before = act.clone();
            let plan = RqPlan::new(RqChannels { bias: &bias, multiplier: &multiplier, right: &right }).unwrap();
            let wide = case % 2 == 1 && available();
            requantize_on(wide, &bytes, n, &plan, (zp, lo, hi), &mut act, dst, ps);
            let out = OutputStage::new(zp, lo, hi).unwrap();
            for (i, (got, old)) in act.iter().zip(&before).enumerate() {
                let inside = i >= dst && (i - dst) % ps < c && (i - dst) / ps < n;
                if !inside {
                    assert_eq!(got, old, "case {case}: byte {i} outside the rows was written");
                    continue;
                }
                let (p, k) = ((i - dst) / ps, (i - dst) % ps);
                let qm = QuantizedMultiplier::new(multiplier[k], -right[k]).unwrap();
                let want = arith::requantize(arith::add_bias(accs[p * c + k], bias[k]), qm, Rounding::Double, out);
                assert_eq!(i32::from(*got), want & 0xff, "case {case} (AVX-512: {wide}): pixel {p} channel {k}");
            }
        }
    }

    #[test]
    fn table_lookup_kernels_read_the_entry_of_each_pair_of_bytes() {
        if !avx2_available() {
            return;
        }
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        // Entries unrelated to their index, and padding bytes that must never appear.
        let mut table: Vec<u8> = (0..256 * 256).map(|_| rng.next() as u8).collect();
        table.extend([0xee; 3]);
        for n in [0, 1, 15, 16, 17, 100, 1000] {
            let xs: Vec<u8> = (0..n).map(|i| if i % 7 == 0 { 255 } else { rng.next() as u8 }).collect();
            let ys: Vec<u8> = (0..n).map(|i| if i % 5 == 0 { 255 } else { rng.next() as u8 }).collect();
            for wide in [false, available()] {
                let mut out = vec![0u8; n];
                lookup2_on(wide, &table, &xs, &ys, &mut out);
                for i in 0..n {
                    let want = table[usize::from(xs[i]) * 256 + usize::from(ys[i])];
                    assert_eq!(out[i], want, "n {n} (AVX-512: {wide}): pair {i} ({}, {})", xs[i], ys[i]);
                }
            }
        }
    }

    #[test]
    fn packing_refuses_values_outside_i8() {
        assert!(Packed::new(&[1, 128], 1, 1, 2).is_none());
        assert!(Packed::new(&[1, -129], 2, 1, 1).is_none());
        assert!(Packed::new(&[1, 2, 3], 1, 1, 2).is_none());
        let p = Packed::new(&[1, -128, 127, 5, 6, 7], 2, 1, 3).unwrap();
        assert_eq!((p.cols(), p.k_padded()), (2, 4));
        assert_eq!(p.sums, vec![0, 18]);
    }
}
