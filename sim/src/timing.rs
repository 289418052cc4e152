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

use npu_hw::{Dataflow, HwConfig};

pub use npu_hw::blocks::{blocked_cycles, choose_block, BlockConfig};

use crate::exec::{MacWork, Work};

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
