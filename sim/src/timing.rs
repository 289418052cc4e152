//! The timing model: a pure cost function from an instruction's [`Work`] to cycles.
//!
//! Formulas (also in `docs/hardware.md`):
//!
//! * MAC array, SCALE-Sim's analytical model for an `R × C` array: a layer mapped as
//!   `Sr` spatial rows, `Sc` spatial columns and `T` temporal steps takes `⌈Sr/R⌉ · ⌈Sc/C⌉`
//!   folds of `2R + C + T − 2` cycles when weight-stationary (`R` cycles to load the
//!   weights, `R + C − 2` of skew, `T` steps; `Sr` = reduction length, `Sc` = output
//!   channels, `T` = output pixels) and of `R + C + T − 2` cycles when output-stationary
//!   (`Sr` = output pixels, `Sc` = output channels, `T` = reduction length). A mode with
//!   `m` MACs per PE divides the reduction length by `m` (rounded up).
//! * DMA: `latency + max(⌈burst_bytes / memory bandwidth⌉, ⌈local_bytes / buffer bandwidth⌉)`;
//!   the external port is held for `⌈burst_bytes / bandwidth⌉` cycles, and with several
//!   channels the next transfer may start once this one's data has moved (during its
//!   latency).
//! * Block-based MAC unit (`Dataflow::Blocked`, Arm Ethos-U as Vela's performance model
//!   times it): the output tile is covered by output blocks chosen to fit the shared
//!   buffer ([`choose_block`]); each block of `X × Y × Z` micro-blocks takes, per kernel
//!   element (per sub-kernel of at most 8×8), `max(weight_cycles, ublock_cycles · X·Y) ·
//!   Z` cycles (a convolution of input-channel depth ≤ 8, or where it uses the MACs better,
//!   reads 4 kernel elements × 8 channels per step instead: "part-kernel"), a depthwise
//!   convolution `max(weight_cycles, ublock_cycles · X·Y) · ⌈elements/4⌉ · Z`, plus a
//!   pipeline delay when a block is one micro-block; a convolution repeats it for every
//!   `ifm_block_depth` input channels; cores share the cycles ([`blocked_cycles`]).
//!   Pooling on such a unit takes `max(4, window elements) · X·Y · Z` cycles per block.
//! * Requantization: `⌈elements / lanes⌉ + latency`. Vector unit: the same, or with
//!   per-kind rates ([`npu_hw::Vector::cycles`]: elementwise, pooling per window element,
//!   table lookup, softmax passes).
//! * Host calls: the CPU's cycles (`npu_hw::Cpu::cycles` of its MACs, output elements
//!   and SRAM bytes) in NPU cycles, plus its weights at the off-chip memory's bandwidth:
//!   `⌈cpu cycles · NPU clock / CPU clock + weight bytes / off-chip bytes per cycle⌉`.
//!
//! Nothing here reads data: timing depends only on the instruction and the hardware.

use npu_hw::{Blocks, Dataflow, HwConfig};

use crate::exec::{MacKind, MacShape, MacWork, Work};

/// Cycles of a MAC-array pass of `Sr × Sc × T` on an `rows × cols` array.
pub fn systolic_cycles(dataflow: Dataflow, rows: u64, cols: u64, sr: u64, sc: u64, t: u64) -> u64 {
    let fill = match dataflow {
        Dataflow::WeightStationary | Dataflow::Blocked => rows,
        Dataflow::OutputStationary => 0,
    };
    sr.div_ceil(rows) * sc.div_ceil(cols) * (fill + rows + cols + t - 2)
}

/// Cycles of a MAC-array instruction.
pub fn mac_cycles(hw: &HwConfig, w: &MacWork) -> u64 {
    if let (Dataflow::Blocked, Some(b)) = (hw.mac.dataflow, &hw.mac.blocks) {
        return blocked_cycles(b, &w.shape) + w.extra;
    }
    systolic_cycles(hw.mac.dataflow, u64::from(hw.mac.rows), u64::from(hw.mac.cols), w.sr, w.sc, w.t) + w.extra
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

/// `⌈bytes / per_cycle⌉` for a fractional bandwidth.
pub fn transfer_cycles(bytes: u64, per_cycle: f64) -> u64 {
    if bytes == 0 {
        return 0;
    }
    (bytes as f64 / per_cycle).ceil() as u64
}

/// The cost of one instruction on its unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cost {
    /// Cycles the unit is busy.
    pub cycles: u64,
    /// Cycles the external memory port is held (DMA only), from the start.
    pub port_cycles: u64,
    /// Of `cycles`, the memory latency at the end (DMA only); another channel may
    /// start its transfer during it.
    pub latency: u64,
}

/// The cost of `work` on `hw`.
pub fn cost(hw: &HwConfig, work: &Work) -> Cost {
    if let Some(m) = &work.mac {
        return Cost { cycles: mac_cycles(hw, m), ..Cost::default() };
    }
    if let Some(d) = &work.dma {
        let mem = hw.memory(d.ext);
        let latency = u64::from(if d.write { mem.write_latency } else { mem.read_latency });
        let port = transfer_cycles(d.burst_bytes, mem.bytes_per_cycle);
        let local_bw = match d.local {
            npu_isa::Space::Act => hw.buffers.act.bytes_per_cycle,
            npu_isa::Space::Wgt => hw.buffers.wgt.bytes_per_cycle,
            npu_isa::Space::Par => hw.buffers.par.bytes_per_cycle,
            _ => hw.buffers.acc.bytes_per_cycle,
        };
        let local = transfer_cycles(d.local_bytes, local_bw);
        // The decompressor streams between the port and the buffer.
        let decode =
            if d.decompressed > 0 { transfer_cycles(d.decompressed, hw.dma.decompress_bytes_per_cycle) } else { 0 };
        return Cost { cycles: latency + port.max(local).max(decode), port_cycles: port, latency };
    }
    if let Some((elems, _)) = work.rq {
        return Cost {
            cycles: elems.div_ceil(u64::from(hw.requant.lanes)) + u64::from(hw.requant.latency),
            ..Cost::default()
        };
    }
    if let Some(h) = &work.host {
        let cpu = hw.cpu.cycles(h.macs, h.elements, h.bytes);
        let weights = h.weight_bytes as f64 / hw.memories.dram.bytes_per_cycle;
        let npu = (cpu * hw.clock_mhz / hw.cpu.clock_mhz + weights).ceil();
        // Validated clocks and rates keep this finite; a call longer than u64 cycles saturates.
        return Cost { cycles: if npu >= u64::MAX as f64 { u64::MAX } else { npu as u64 }, ..Cost::default() };
    }
    if work.vec_ops > 0 {
        // A block-based unit pools on its MAC array's blocks.
        if let (Some(shape), Dataflow::Blocked, Some(b)) = (&work.pool, hw.mac.dataflow, &hw.mac.blocks) {
            return Cost { cycles: blocked_cycles(b, shape), ..Cost::default() };
        }
        return Cost { cycles: hw.vector.cycles(work.vec_kind, work.vec_ops), ..Cost::default() };
    }
    Cost::default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SCALE-Sim's published compute cycles (its reports count from 0, one less than the
    /// formula): AlexNet conv1 on a 32×32 weight-stationary array is the repository's
    /// golden test (112,283 cycles).
    #[test]
    fn systolic_formula_reproduces_scale_sim_golden_run() {
        // 224×224×3, 11×11, stride 4, 96 filters: SCALE-Sim's ofmap is ⌈(224−11+4)/4⌉ = 55.
        let cycles = systolic_cycles(Dataflow::WeightStationary, 32, 32, 11 * 11 * 3, 96, 55 * 55);
        assert_eq!(cycles - 1, 112_283);
    }
}
