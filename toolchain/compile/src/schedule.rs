//! Stage 3: from the lowered operations to instructions with dependency tokens.
//!
//! Every operation's memory footprint — the byte ranges it reads and writes in each
//! memory, as bounding intervals — is the ISA's one definition ([`npu_isa::footprint`]),
//! the same the simulator checks every instruction against.
//! Two operations conflict when their footprints overlap in a memory and one of them
//! writes. Then:
//!
//! 1. **Prefetch.** Each load from off-chip memory (weights, tables) moves earlier in
//!    the program, past operations of other units it does not conflict with, until it
//!    meets one it conflicts with (typically the MAC pass that last read the ring slot
//!    it overwrites) or another load of its queue (loads of one queue keep their order,
//!    so activation tiles are not queued behind a long weight stream). On hardware with
//!    a weight queue (`ldw`) weight loads pass the activation tiles of `ld`'s queue.
//!    Weights thus stream while earlier layers compute.
//! 2. **Tokens.** Each operation waits for the latest conflicting operation on every
//!    other unit. Tokens are FIFO per pair of units, so operation `j` on unit B waiting
//!    for `i` on unit A makes `i` signal B — unless an earlier operation of B already
//!    waited for an A-operation at or after `i`, which orders `j` after `i` already.
//!    Conflicts on the same unit need nothing: a unit runs its queue in order.
//!
//! A `host` call is a barrier (the host CPU runs while the NPU waits): loads are not
//! hoisted past it and nothing after it needs a token from anything before it.
//!
//! Every dependency points backwards in program order, so the program cannot deadlock,
//! and every conflicting pair is ordered, so the result does not depend on timing.

use npu_isa::{footprint, Access, ExtSpace, Instr, Op, Space, Unit};

use crate::error::{Error, Result};

/// The footprint of every operation, from the ISA's one definition.
fn footprints(ops: &[Op]) -> Result<Vec<Vec<Access>>> {
    ops.iter()
        .enumerate()
        .map(|(i, op)| {
            footprint(op).map_err(|e| Error::Invalid(format!("lowered operation {i} has no valid footprint: {e}")))
        })
        .collect()
}

fn conflicts(a: &[Access], b: &[Access]) -> bool {
    a.iter().any(|x| b.iter().any(|y| x.conflicts(y)))
}

fn is_offchip_load(op: &Op) -> bool {
    op.dma_in().is_some_and(|l| l.ext == ExtSpace::Dram) || matches!(op, Op::Ldz(l) if l.ext == ExtSpace::Dram)
}

/// Whether `op` is a DMA-in (`ld`, `ldz`, `ldw`).
fn is_load(op: &Op) -> bool {
    matches!(op.unit(), Some(Unit::Ld | Unit::Ldw))
}

/// The program order [`prefetch`] chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// Indices into the lowered operations, in program order.
    pub order: Vec<usize>,
    /// With layer barriers: for each operation of a layer's prologue (the off-chip loads
    /// before its first other operation), the operation of the layer before that it
    /// waits for — the first of that layer's last block of weights (its tail), or its
    /// first operation if it loads no weights. Indexed like the lowered operations; each
    /// anchor precedes its load in `order`.
    pub anchor: Vec<Option<usize>>,
}

/// Moves every off-chip load as early as its conflicts and the order of loads allow,
/// but not before the operations of the layer before its own (`owner` gives each
/// operation's layer): a load hoisted further would sit in the DMA queue ahead of
/// work that is needed sooner, and a full queue stops instruction fetch.
///
/// With `per_layer` (layers run one after another, [`tokens`] with barriers), only a
/// layer's prologue — the loads before its first other operation, its first block of
/// weights — leaves the layer, and only into the tail of the layer before (its last
/// block of weights): Vela's prebuffering of the next operation's first weights during
/// the last depth slice of the current one. Later loads stay in their layer.
pub fn prefetch(ops: &[Op], owner: &[usize], per_layer: bool) -> Result<Order> {
    let feet = footprints(ops)?;
    let layers = owner.iter().copied().max().map_or(0, |m| m + 1);
    // Each layer's tail: its first operation after its last off-chip load (or its first
    // operation, when it loads nothing) other than a load.
    let mut tail: Vec<Option<usize>> = vec![None; layers];
    if per_layer {
        for (i, op) in ops.iter().enumerate() {
            if is_offchip_load(op) {
                tail[owner[i]] = None;
            } else if !is_load(op) && op.unit().is_some_and(|u| u != Unit::Host) && tail[owner[i]].is_none() {
                tail[owner[i]] = Some(i);
            }
        }
    }
    let mut order: Vec<usize> = Vec::with_capacity(ops.len());
    let mut anchor = vec![None; ops.len()];
    let mut working = usize::MAX; // the last layer one of whose operations was not a load
    for (i, op) in ops.iter().enumerate() {
        let mut at = order.len();
        let prologue = working != owner[i];
        let reach = usize::from(!per_layer || prologue);
        let stop = if per_layer && prologue { owner[i].checked_sub(1).and_then(|k| tail[k]) } else { None };
        if is_offchip_load(op) {
            anchor[i] = stop;
            while at > 0 {
                let prev = order[at - 1];
                if (is_load(&ops[prev]) && ops[prev].unit() == op.unit())
                    || matches!(ops[prev].unit(), None | Some(Unit::Host))
                    || owner[prev] + reach < owner[i]
                    || conflicts(&feet[prev], &feet[i])
                    || Some(prev) == stop
                {
                    break;
                }
                at -= 1;
            }
        } else if !is_load(op) {
            working = owner[i];
        }
        order.insert(at, i);
    }
    Ok(Order { order, anchor })
}

struct Entry {
    acc: Access,
    index: usize,
    unit: Unit,
}

/// Instructions for `ops` (already in program order) with the tokens their conflicts need.
/// With `barriers` — each operation's layer, and the anchor of each prologue load
/// (indices into `ops`, see [`Order::anchor`]) — every operation also waits for the
/// whole previous layer: the first operation of each unit in a layer waits for the last
/// operation of every other unit before the layer (its own unit runs in order). A
/// layer's prologue loads wait for their anchor instead.
pub fn tokens(ops: &[Op], barriers: Option<(&[usize], &[Option<usize>])>) -> Result<Vec<Instr>> {
    let feet = footprints(ops)?;
    // Every NPU unit (the host has no queue and no tokens).
    const UNITS: usize = Unit::ALL.len() - 1;
    let slot = |s: Space| s as usize;
    let mut live: [Vec<Entry>; 6] = Default::default();
    // last_signal[a][b]: the last instruction of unit a that signals unit b.
    let mut last_signal: [[Option<usize>; UNITS]; UNITS] = [[None; UNITS]; UNITS];
    let mut code: Vec<Instr> = Vec::with_capacity(ops.len());
    // For the barriers: the last operation of each unit so far and before the current
    // layer, and which units have started the layer. Off-chip loads ahead of their layer
    // take no part: they stream its first weights during the layer before.
    let mut last: [Option<usize>; UNITS] = [None; UNITS];
    let mut before_layer: [Option<usize>; UNITS] = [None; UNITS];
    let mut started = [false; UNITS];
    let mut layer: Option<usize> = None;
    for (i, op) in ops.iter().enumerate() {
        let mut instr = Instr::new(*op);
        let Some(unit) = op.unit() else {
            code.push(instr);
            continue;
        };
        if unit == Unit::Host {
            // A barrier: everything before it completes before anything after it starts.
            live.iter_mut().for_each(Vec::clear);
            last = [None; UNITS];
            before_layer = [None; UNITS];
            code.push(instr);
            continue;
        }
        let mut need: [Option<usize>; UNITS] = [None; UNITS];
        let prologue = barriers.and_then(|(_, anchor)| anchor[i].filter(|_| is_offchip_load(op)));
        if let Some(a) = prologue {
            if let Some(u) = ops[a].unit().filter(|u| *u != unit && a < i) {
                need[u as usize] = Some(a);
            }
        }
        let prologue = prologue.is_some()
            || barriers.is_some_and(|(owner, _)| is_offchip_load(op) && layer.is_none_or(|l| owner[i] > l));
        if let Some((owner, _)) = barriers.filter(|_| !prologue) {
            if layer != Some(owner[i]) {
                layer = Some(owner[i]);
                before_layer = last;
                started = [false; UNITS];
            }
            if !std::mem::replace(&mut started[unit as usize], true) {
                for (from, b) in before_layer.iter().enumerate() {
                    if from != unit as usize {
                        need[from] = *b;
                    }
                }
            }
            last[unit as usize] = Some(i);
        }
        for a in &feet[i] {
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
            instr.wait = instr.wait.with(src.op.unit().unwrap_or(unit));
            last_signal[from][unit as usize] = Some(needed);
        }
        for &a in &feet[i] {
            let list = &mut live[slot(a.space)];
            // Accesses this one covers are ordered before it; it stands for them from now on.
            list.retain(|e| !(e.acc.lo >= a.lo && e.acc.hi <= a.hi && (a.write || (!e.acc.write && e.unit == unit))));
            list.push(Entry { acc: a, index: i, unit });
        }
        code.push(instr);
    }
    Ok(code)
}
