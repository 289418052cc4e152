//! The timing of a block-based MAC unit (`Dataflow::Blocked`: Arm Ethos-U as Vela's
//! performance model times it): which output block the unit uses for a computation
//! ([`choose_block`], Vela's `find_block_config`) and how many cycles it takes
//! ([`blocked_cycles`], the compute part of Vela's `_estimate_conv_cycles`).
//!
//! These formulas belong to the hardware description: the simulator's timing model
//! charges every MAC instruction with them, and the compiler cuts tiles by them. They
//! read only the description and the computation's shape, never data.

use crate::Blocks;

/// What a MAC instruction computes, in layer terms: its output tile, input channels and
/// kernel window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MacShape {
    /// Kind of computation.
    pub kind: MacKind,
    /// Output rows.
    pub oh: u64,
    /// Output columns.
    pub ow: u64,
    /// Output channels.
    pub cout: u64,
    /// Input channels (per output channel's reduction; depthwise: the channels).
    pub cin: u64,
    /// Kernel rows.
    pub kh: u64,
    /// Kernel columns.
    pub kw: u64,
    /// Vertical stride.
    pub sy: u64,
    /// Horizontal stride.
    pub sx: u64,
}

/// The kind of a MAC instruction's computation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MacKind {
    /// A convolution reducing over input channels and the window.
    #[default]
    Conv,
    /// A depthwise convolution (each channel its own window).
    Depthwise,
    /// A matrix product (a fully connected layer; each row one output pixel).
    VectorProduct,
    /// A pooling window (no weights; each channel its own window).
    Pooling,
}

/// An output block (`h × w × c` outputs) and the input block feeding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockConfig {
    /// Output block: height, width, channels.
    pub ofm: (u64, u64, u64),
    /// Input block: height, width, channels.
    pub ifm: (u64, u64, u64),
    /// Whether a convolution steps through 4 kernel elements × 8 channels ("part-kernel")
    /// instead of one kernel element × all the block's channels.
    pub part_kernel: bool,
}

fn up(v: u64, m: u64) -> u64 {
    v.div_ceil(m) * m
}

fn u(v: u32) -> u64 {
    u64::from(v)
}

/// A count that divides or steps: validation keeps it at least 1; a description built
/// without validation cannot make the block formulas divide by zero.
fn nz(v: u32) -> u64 {
    u64::from(v.max(1))
}

/// Part-kernel when the input has at most 8 channels or it uses the MACs better than
/// depth-first (Vela's `_choose_kernel_method`, 8-bit data).
fn part_kernel(s: &MacShape) -> bool {
    if s.kind != MacKind::Conv {
        return false;
    }
    if s.cin <= 8 {
        return true;
    }
    let elems = s.kh * s.kw;
    // depth = cin / up(cin, 32) < part = cin·elems / (up(cin, 8)·up(elems, 4)), cross-multiplied.
    elems * up(s.cin, 32) > up(s.cin, 8) * up(elems, 4)
}

/// The output block the unit uses for `s`: among blocks of whole micro-blocks up to
/// `max_block` whose input block (double-buffered) and 32-bit accumulators
/// (double-buffered) fit the shared buffer's banks, the one that fetches the fewest input
/// and weight elements per output (ties: the larger input coverage among small blocks),
/// as Vela's `find_block_config` chooses. `None` if no block fits.
pub fn choose_block(b: &Blocks, s: &MacShape) -> Option<BlockConfig> {
    if s.oh * s.ow * s.cout == 0 || s.sy == 0 || s.sx == 0 {
        return None;
    }
    let (uh, uw, ud) = (nz(b.ublock.0), nz(b.ublock.1), nz(b.ublock.2));
    let (ih, iw) = ((s.oh - 1) * s.sy + s.kh, (s.ow - 1) * s.sx + s.kw);
    let pk = part_kernel(s);
    let equal_depth = matches!(s.kind, MacKind::Depthwise | MacKind::Pooling);
    let conv = matches!(s.kind, MacKind::Conv | MacKind::Depthwise);
    let ifm_depth = up(s.cin.min(if pk { 16 } else { u(b.ifm_block_depth) }), nz(b.ifm_depth));
    let (sub_h, sub_w) = (nz(b.sub_kernel.0), nz(b.sub_kernel.1));
    let repeats = s.kh.div_ceil(sub_h) * s.kw.div_ceil(sub_w);
    let weight_wh = if conv { s.kh * s.kw } else { 0 };
    let search =
        (up(s.oh.min(u(b.max_block.0)), uh), up(s.ow.min(u(b.max_block.1)), uw), up(s.cout.min(u(b.max_block.2)), ud));
    let banks = u(b.shram_banks).saturating_sub(u(b.reserved_banks));
    let bank = nz(b.bank_bytes);
    let (g_ifm, g_acc) = (nz(b.granules.0), nz(b.granules.1));
    let split = 16;
    let ofm_elems = (s.oh * s.ow * s.cout) as f64;
    let mut best: Option<(f64, f64, BlockConfig)> = None;
    let mut depth = ud.max(search.2.min(split));
    if depth < s.cout {
        depth = up(depth, split);
    }
    while depth <= search.2 {
        // Vela skips a block whose transpose did not fit at this depth.
        let mut wont_fit = std::collections::HashSet::new();
        for height in (uh..=search.0).step_by(uh as usize) {
            for width in (uw..=search.1).step_by(uw as usize) {
                if wont_fit.contains(&(height, width)) {
                    continue;
                }
                let ifm_h = up((height - 1) * s.sy + s.kh.min(sub_h), uh);
                let ifm_w = up((width - 1) * s.sx + s.kw.min(sub_w), uw);
                let ifm_c = if equal_depth { depth } else { ifm_depth };
                // Sequences: a block one row high when the unit pairs rows (Ethos-U's
                // 1-D optimisation).
                let oh_blk = if s.oh == 1 && s.kh == 1 && uh == 2 { 1 } else { height };
                let ifm_bytes = ifm_h * ifm_w * up(ifm_c, 8);
                let ifm_banks = up(ifm_bytes.div_ceil(bank) * 2, g_ifm);
                let acc_bytes = oh_blk * width * up(depth, 8) * 4;
                let acc_banks = up(acc_bytes.div_ceil(bank) * 2, g_acc);
                if ifm_banks + acc_banks > banks {
                    wont_fit.insert((width, height));
                    continue;
                }
                let full = (s.oh.div_ceil(oh_blk), s.ow.div_ceil(width), s.cout.div_ceil(depth));
                let frac = (s.oh as f64 / oh_blk as f64, s.ow as f64 / width as f64, s.cout as f64 / depth as f64);
                let mut weight_fetch = (weight_wh * s.cin * full.0 * full.1) as f64;
                if !equal_depth {
                    weight_fetch *= depth as f64 * frac.2;
                }
                let mut ifm_fetch = (ifm_h * ifm_w * s.cin * repeats) as f64 * (frac.0 * frac.1);
                if !equal_depth {
                    ifm_fetch *= full.2 as f64;
                }
                let mut cost = (ifm_fetch + weight_fetch) / ofm_elems;
                if ((ih * iw * s.cin) as f64) < (ifm_h * ifm_w * ifm_c * 2) as f64 {
                    cost /= 2.0;
                }
                let coverage = (ih * iw) as f64 / (ih.min(ifm_h) * iw.min(ifm_w)) as f64;
                let choose = match &best {
                    None => true,
                    Some((c, _, _)) if cost < *c => true,
                    Some((c, cov, _)) => cost == *c && coverage <= *cov && height <= 4 && width <= 4,
                };
                if choose {
                    let cov = if best.as_ref().is_some_and(|(c, _, _)| *c == cost) { coverage } else { f64::INFINITY };
                    let cfg = BlockConfig { ofm: (height, width, depth), ifm: (ifm_h, ifm_w, ifm_c), part_kernel: pk };
                    best = Some((cost, cov, cfg));
                }
            }
        }
        depth += ud;
        if depth < s.cout {
            depth = up(depth, split);
        }
    }
    best.map(|(_, _, c)| c)
}

/// Cycles of a MAC instruction on a block-based unit: the compute ("DPU") cycles of each
/// output block, times the blocks (the output stage is the requantization unit's).
pub fn blocked_cycles(b: &Blocks, s: &MacShape) -> u64 {
    if s.oh * s.ow * s.cout == 0 {
        return 0;
    }
    let (uh, uw, ud) = (nz(b.ublock.0), nz(b.ublock.1), nz(b.ublock.2));
    // Without a block that fits, the smallest: one micro-block, one input block deep.
    let cfg = choose_block(b, s).unwrap_or(BlockConfig {
        ofm: (uh, uw, ud),
        ifm: (uh, uw, u(b.ifm_block_depth)),
        part_kernel: part_kernel(s),
    });
    let one_row = uh == 2 && s.oh == 1 && s.ow.is_multiple_of(2) && s.kh == 1;
    let (uh, uw) = if one_row { (1, 4) } else { (uh, uw) };
    let ofm = (s.oh.min(cfg.ofm.0), s.ow.min(cfg.ofm.1), s.cout.min(cfg.ofm.2));
    let ofm = if one_row { (1, ofm.1, ofm.2) } else { ofm };
    let ifm_depth = s.cin.min(cfg.ifm.2);
    let (x, y, z) = (ofm.1.div_ceil(uw), ofm.0.div_ceil(uh), ofm.2.div_ceil(ud));
    let xy = x * y;
    let per = u(b.ublock_cycles);
    let wb = u(b.weight_cycles) * ud / 8;
    let delay = u(b.delay);
    let (sub_h, sub_w) = match s.kind {
        MacKind::VectorProduct => (1, 1),
        _ => (nz(b.sub_kernel.0), nz(b.sub_kernel.1)),
    };
    let mut dpu = 0;
    for ky in 0..s.kh.div_ceil(sub_h) {
        for kx in 0..s.kw.div_ceil(sub_w) {
            let elems = (s.kh - ky * sub_h).min(sub_h) * (s.kw - kx * sub_w).min(sub_w);
            let (steps, cycles) = match s.kind {
                MacKind::Pooling => (1, elems.max(per) * xy * z),
                MacKind::Depthwise => {
                    let steps = elems.div_ceil(per);
                    (steps, wb.max(per * xy) * steps * z)
                }
                MacKind::Conv if cfg.part_kernel => {
                    let steps = elems.div_ceil(per);
                    (steps, wb.max(per * xy) * steps * ifm_depth.div_ceil(8) * z)
                }
                _ => (elems, wb.max(per * xy) * elems * z),
            };
            let mut d = if xy == 1 {
                if z == 1 {
                    delay * steps
                } else if steps > 1 {
                    delay * (steps - 1) * z
                } else {
                    0
                }
            } else {
                0
            };
            if s.kind == MacKind::Conv && cfg.part_kernel {
                d *= ifm_depth.div_ceil(8);
            }
            dpu += cycles + d;
        }
    }
    if matches!(s.kind, MacKind::Conv | MacKind::VectorProduct) {
        dpu *= s.cin.div_ceil(ifm_depth.max(1));
    }
    let blocks = s.oh.div_ceil(ofm.0) * s.ow.div_ceil(ofm.1) * s.cout.div_ceil(ofm.2);
    dpu.saturating_mul(blocks) / nz(b.cores)
}
