//! Stage 1: where every activation lives, by liveness.
//!
//! Each value of the quantized model gets a [`Home`]: a region of the NPU's activation
//! buffer (it stays on-chip between the layer that writes it and the last layer that
//! reads it) or of system SRAM. Regions are given first-fit over lifetime intervals, so
//! two values share bytes only when their lifetimes do not overlap. The model's input
//! and output live in SRAM (the host writes and reads them there); every other value is
//! kept in the activation buffer's resident zone (its first half) when it fits, else in
//! SRAM, else — spilled — in off-chip memory, in a region at its top (above the
//! program's constants), streamed through the same staging tiles at off-chip bandwidth.
//! Only values the host must see (the model's input and output, a host layer's operands)
//! have to be in SRAM. What the resident values leave of the activation buffer is the
//! staging zone for tiles streamed to and from SRAM and off-chip memory.

use npu_hw::{HwConfig, IoMemory};

use crate::error::{Error, Result};
use npu_quant::{QLayer, QModel, QOp};

/// Where a value lives while it is live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Home {
    /// Byte address in the NPU's activation buffer (HWC bytes).
    Act(u32),
    /// Byte address in system SRAM (HWC bytes).
    Sram(u32),
    /// Spilled: byte address in off-chip memory (HWC bytes), in the spill region at its
    /// top.
    Dram(u32),
}

/// The memory plan of a compiled model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryPlan {
    /// Home of every value (an alias shares its source's home).
    pub homes: Vec<Home>,
    /// Bytes of the activation buffer holding resident values (its first bytes).
    pub resident_bytes: u32,
    /// Staging zone of the activation buffer: `(base, bytes)`.
    pub staging: (u32, u32),
    /// Peak bytes of system SRAM in use.
    pub sram_bytes: u32,
    /// Bytes of the spill region, the last bytes of off-chip memory (0: nothing spilled);
    /// it also holds the model's input and output where the host exchanges them through
    /// off-chip memory (`memories.io`).
    pub spill_bytes: u32,
    /// The values the host exchanges: the model's input and output and their aliases
    /// ([`io_values`]).
    pub io: Vec<usize>,
}

impl MemoryPlan {
    /// The values spilled to off-chip memory, in value order: those the plan moved there
    /// for want of room, not the model's input and output placed there for the host.
    pub fn spilled(&self) -> impl Iterator<Item = usize> + '_ {
        self.homes
            .iter()
            .enumerate()
            .filter(|(v, h)| matches!(h, Home::Dram(_)) && !self.io.contains(v))
            .map(|(v, _)| v)
    }
}

/// The values the host writes or reads: the model's input and output, and the values
/// that alias them (reshapes that move no data), in value order.
pub fn io_values(q: &QModel) -> Vec<usize> {
    let mut root: Vec<usize> = (0..q.values.len()).collect();
    for l in &q.layers {
        if is_alias(q, l) {
            root[l.output] = root[l.inputs[0]];
        }
    }
    (0..q.values.len()).filter(|&v| root[v] == root[0] || root[v] == root[q.output]).collect()
}

/// A layer whose output is its input, unchanged (a reshape without a clamp): the
/// output shares the input's bytes.
pub fn is_alias(q: &QModel, l: &QLayer) -> bool {
    matches!(l.op, QOp::Reshape) && l.clamp == q.values[l.output].q.dtype.range() && !needs_relayout(q, l)
}

/// Whether the bytes of a `[C, H, W]` value stored HWC are in its CHW order (one
/// channel, one pixel, or not three-dimensional).
pub(crate) fn chw_ordered(s: &[usize]) -> bool {
    s.len() != 3 || s[0] == 1 || s[1] * s[2] == 1
}

/// Whether reshape layer `l` must move bytes: its input's stored (HWC) order differs
/// from the CHW order its output is stored in — except a flattening read only by dense
/// layers, which stays in place (the dense layer takes the HWC order through its
/// permuted weight columns).
pub fn needs_relayout(q: &QModel, l: &QLayer) -> bool {
    let (from, to) = (&q.values[l.inputs[0]].shape, &q.values[l.output].shape);
    if !matches!(l.op, QOp::Reshape) || from == to || (chw_ordered(from) && chw_ordered(to)) {
        return false;
    }
    if to.len() == 3 {
        return true;
    }
    let dense_only = q
        .layers
        .iter()
        .filter(|m| m.inputs.contains(&l.output))
        .all(|m| matches!(m.op, QOp::Dense { .. }) && m.inputs.first() == Some(&l.output));
    !dense_only || l.output == q.output
}

struct Block {
    def: usize,
    last: usize,
    addr: usize,
    size: usize,
}

/// The shape in whose `[H][W][C]` order the bytes of value `v` are stored: its own, or
/// for the output of an alias (a flattening left in place), its source's.
pub fn stored_shape(q: &QModel, v: usize) -> &[usize] {
    let mut v = v;
    while let Some(l) = q.layers.iter().find(|l| l.output == v && is_alias(q, l)) {
        v = l.inputs[0];
    }
    &q.values[v].shape
}

/// Lowest 16-byte-aligned address where `size` bytes live during `[def, last]`
/// without touching a placed block that is live at the same time.
fn first_fit(placed: &[Block], def: usize, last: usize, size: usize, cap: usize) -> Option<usize> {
    let live: Vec<&Block> = placed.iter().filter(|b| b.def <= last && def <= b.last).collect();
    let mut candidates: Vec<usize> =
        std::iter::once(0).chain(live.iter().map(|b| (b.addr + b.size).next_multiple_of(16))).collect();
    candidates.sort_unstable();
    candidates.into_iter().find(|&a| a + size <= cap && live.iter().all(|b| a + size <= b.addr || b.addr + b.size <= a))
}

/// The most layers one cascade chains (see [`cascade_target`]).
pub const CASCADE_MAX: usize = 4;

/// The layer that convolution `k` may cascade into (see `lower`): the next layer that
/// is not an alias, a convolution (one group, or depthwise) whose only input is `k`'s
/// output, which no other layer reads and which is not the model's output; `k` itself
/// ungrouped or depthwise. Structure only: the lowering decides whether the stripes fit
/// and pay (on units other than block-based ones, only a 1×1 convolution of stride 1
/// without padding, which needs no rows computed twice).
pub fn cascade_target(q: &QModel, k: usize) -> Option<usize> {
    let depthwise_or_one = |l: &QLayer| {
        let QOp::Conv2d { groups, layer, .. } = &l.op else { return false };
        let (c_in, c_out) = (q.values[l.inputs[0]].shape[0], q.values[l.output].shape[0]);
        *groups == 1 || (*groups == c_in && c_out == c_in && layer.shape[1] == 1)
    };
    let p = &q.layers[k];
    if !depthwise_or_one(p) {
        return None;
    }
    let k2 = (k + 1..q.layers.len()).find(|&j| !is_alias(q, &q.layers[j]))?;
    let c = &q.layers[k2];
    let v = p.output;
    let only_reader = q.layers.iter().filter(|l| l.inputs.contains(&v)).count() == 1 && q.output != v;
    (depthwise_or_one(c) && c.inputs == [v] && only_reader).then_some(k2)
}

/// Plans the homes of every value of `q` on `hw`. With `cascades`, the input of every
/// convolution that may cascade into the next ([`cascade_target`]) stays live through
/// the last layer of the chain it may start (up to [`CASCADE_MAX`] layers), whose output
/// the stripes write while they still read the input.
pub fn plan(q: &QModel, hw: &HwConfig, on_host: &[bool], cascades: bool) -> Result<MemoryPlan> {
    let n = q.values.len();
    // Root of every value (aliases point at the value whose bytes they share).
    let mut root: Vec<usize> = (0..n).collect();
    for l in &q.layers {
        if is_alias(q, l) {
            root[l.output] = root[l.inputs[0]];
        }
    }
    // Elementwise layers work in place when an input of the output's size is read for the
    // last time: chunk by chunk, each read before the same bytes are written.
    for (k, l) in q.layers.iter().enumerate() {
        let elementwise =
            matches!(l.op, QOp::Add { .. } | QOp::Sub { .. } | QOp::Mul { .. } | QOp::Lut { .. } | QOp::Reshape);
        if !elementwise || is_alias(q, l) || l.output == q.output {
            continue;
        }
        let bytes = |v: usize| q.values[v].shape.iter().product::<usize>();
        let input = l.inputs.iter().copied().find(|&i| {
            let r = root[i];
            r != root[0]
                && bytes(i) == bytes(l.output)
                && root[q.output] != r
                && q.layers[k + 1..].iter().all(|m| m.inputs.iter().all(|&j| root[j] != r))
                && l.inputs.iter().filter(|&&j| root[j] == r).count() == 1
        });
        if let Some(i) = input {
            root[l.output] = root[i];
        }
    }
    // Lifetimes in layer positions: the input is defined at 0, layer k's output at k + 1.
    let mut def = vec![0usize; n];
    let mut last = vec![0usize; n];
    for (k, l) in q.layers.iter().enumerate() {
        if !is_alias(q, l) {
            def[l.output] = k + 1;
        }
        for &i in &l.inputs {
            last[root[i]] = last[root[i]].max(k + 1);
        }
        last[root[l.output]] = last[root[l.output]].max(k + 1);
    }
    let host = |k: usize| on_host.get(k).copied().unwrap_or(false);
    for k in (0..q.layers.len()).filter(|&k| cascades && !host(k)) {
        // The first input of a chain is read until its last layer's output is written.
        let (i, mut j) = (root[q.layers[k].inputs[0]], k);
        for _ in 1..CASCADE_MAX {
            match cascade_target(q, j).filter(|&j2| !host(j2)) {
                Some(j2) => j = j2,
                None => break,
            }
        }
        last[i] = last[i].max(j + 1);
    }
    last[root[q.output]] = usize::MAX;
    last[root[0]] = last[root[0]].max(1);
    let size = |v: usize| q.values[v].shape.iter().product::<usize>();
    let act = hw.buffers.act.bytes as usize;
    // A buffer that only stages tiles holds no values between layers.
    let resident_cap = if hw.buffers.act_staging_only { 0 } else { (act / 2) & !15 };
    let sram_cap = hw.memories.sram.bytes as usize;
    let dram_cap = (hw.memories.dram.bytes as usize) & !15;
    let mut homes = vec![Home::Sram(0); n];
    let (mut in_act, mut in_sram, mut in_dram) = (Vec::<Block>::new(), Vec::<Block>::new(), Vec::<Block>::new());
    let mut order: Vec<usize> = (0..n).filter(|&v| root[v] == v).collect();
    order.sort_by_key(|&v| (def[v], v));
    for v in order {
        let (d, la, s) = (def[v], last[v], size(v));
        // Concatenations are gathered in SRAM by strided stores; a product's broadcast
        // operand is replicated from SRAM by strided loads.
        let concat = q.layers.iter().any(|l| l.output == v && matches!(l.op, QOp::Concat));
        let broadcast = q.layers.iter().any(|l| {
            matches!(l.op, QOp::Mul { .. } | QOp::Add { .. } | QOp::Sub { .. })
                && l.inputs.get(1).is_some_and(|&b| root[b] == v)
                && q.values[l.inputs[0]].shape != q.values[l.inputs[1]].shape
        });
        // A channel selection's, a padding's, a resize's, a dilation's or a relayout's input
        // is read by strided loads.
        let gathered = q.layers.iter().any(|l| {
            let strided =
                matches!(l.op, QOp::Gather { .. } | QOp::Pad { .. } | QOp::ResizeNearest { .. } | QOp::Dilate { .. })
                    || needs_relayout(q, l);
            strided && root[l.inputs[0]] == v
        });
        // The host CPU reads and writes its layers' values in system SRAM.
        let hosted = q.layers.iter().enumerate().any(|(k, l)| {
            on_host.get(k).copied().unwrap_or(false) && (root[l.output] == v || l.inputs.iter().any(|&i| root[i] == v))
        });
        let io = v == root[0] || v == root[q.output];
        let seen_by_host = io || hosted;
        // On hardware whose SRAM is the NPU's own, the host exchanges the network's input
        // and output through off-chip memory (unless a host layer needs them in SRAM).
        let io_off_chip = io && !hosted && hw.memories.io == IoMemory::Dram;
        let pinned = seen_by_host || concat || broadcast || gathered;
        if io_off_chip {
            let a = first_fit(&in_dram, d, la, s, dram_cap).ok_or_else(|| {
                Error::Invalid(format!(
                    "the model's input or output `{}` ({s} bytes) does not fit the {dram_cap} bytes of off-chip \
                     memory of `{}` (where `memories.io` puts it) beside the values live with it",
                    q.values[v].name, hw.name
                ))
            })?;
            homes[v] = Home::Dram(a as u32);
            in_dram.push(Block { def: d, last: la, addr: a, size: s });
            continue;
        }
        if !pinned {
            if let Some(a) = first_fit(&in_act, d, la, s, resident_cap) {
                homes[v] = Home::Act(a as u32);
                in_act.push(Block { def: d, last: la, addr: a, size: s });
                continue;
            }
        }
        if let Some(a) = first_fit(&in_sram, d, la, s, sram_cap) {
            homes[v] = Home::Sram(a as u32);
            in_sram.push(Block { def: d, last: la, addr: a, size: s });
            continue;
        }
        if seen_by_host {
            let why = if hosted { "a host layer's operand" } else { "the model's input or output (`memories.io`)" };
            return Err(Error::Invalid(format!(
                "activation `{}` ({s} bytes) does not fit the {sram_cap} bytes of system SRAM of `{}` beside the values \
                 live with it, and as {why} it must be in SRAM",
                q.values[v].name, hw.name
            )));
        }
        // Spilled: an address in the spill region, placed once its size is known.
        let a = first_fit(&in_dram, d, la, s, dram_cap).ok_or_else(|| {
            Error::Invalid(format!(
                "activation `{}` ({s} bytes) fits neither the {sram_cap} bytes of system SRAM nor the {dram_cap} bytes \
                 of off-chip memory of `{}` beside the values live with it",
                q.values[v].name, hw.name
            ))
        })?;
        tracing::info!(value = %q.values[v].name, bytes = s, "activation spilled to off-chip memory");
        homes[v] = Home::Dram(a as u32);
        in_dram.push(Block { def: d, last: la, addr: a, size: s });
    }
    let spill = in_dram.iter().map(|b| b.addr + b.size).max().unwrap_or(0).next_multiple_of(16);
    let spill_base = (dram_cap - spill.min(dram_cap)) & !15;
    for h in &mut homes {
        if let Home::Dram(a) = h {
            *a += spill_base as u32;
        }
    }
    for v in 0..n {
        homes[v] = homes[root[v]];
    }
    let resident = in_act.iter().map(|b| b.addr + b.size).max().unwrap_or(0).next_multiple_of(16);
    let sram_bytes = in_sram.iter().map(|b| b.addr + b.size).max().unwrap_or(0);
    tracing::debug!(resident, sram_bytes, spill, "memory plan");
    Ok(MemoryPlan {
        homes,
        resident_bytes: resident as u32,
        staging: (resident as u32, (act - resident) as u32),
        sram_bytes: sram_bytes as u32,
        spill_bytes: hw.memories.dram.bytes - spill_base as u32,
        io: io_values(q),
    })
}
