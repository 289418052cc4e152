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
//!    it overwrites) or another load (loads keep their order, so activation tiles are
//!    not queued behind a long weight stream). Weights thus stream while earlier layers
//!    compute.
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
    matches!(op, Op::Ld(l) if l.ext == ExtSpace::Dram) || matches!(op, Op::Ldz(l) if l.ext == ExtSpace::Dram)
}

/// Moves every off-chip load as early as its conflicts and the order of loads allow,
/// but not before the operations of the layer before its own (`owner` gives each
/// operation's layer): a load hoisted further would sit in the DMA queue ahead of
/// work that is needed sooner, and a full queue stops instruction fetch. Returns the
/// new order as indices into `ops`.
pub fn prefetch(ops: &[Op], owner: &[usize]) -> Result<Vec<usize>> {
    let feet = footprints(ops)?;
    let mut order: Vec<usize> = Vec::with_capacity(ops.len());
    for (i, op) in ops.iter().enumerate() {
        let mut at = order.len();
        if is_offchip_load(op) {
            while at > 0 {
                let prev = order[at - 1];
                if matches!(ops[prev], Op::Ld(_) | Op::Ldz(_))
                    || matches!(ops[prev].unit(), None | Some(Unit::Host))
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
    Ok(order)
}

struct Entry {
    acc: Access,
    index: usize,
    unit: Unit,
}

/// Instructions for `ops` (already in program order) with the tokens their conflicts need.
pub fn tokens(ops: &[Op]) -> Result<Vec<Instr>> {
    let feet = footprints(ops)?;
    const UNITS: usize = 5;
    let slot = |s: Space| s as usize;
    let mut live: [Vec<Entry>; 6] = Default::default();
    // last_signal[a][b]: the last instruction of unit a that signals unit b.
    let mut last_signal: [[Option<usize>; UNITS]; UNITS] = [[None; UNITS]; UNITS];
    let mut code: Vec<Instr> = Vec::with_capacity(ops.len());
    for (i, op) in ops.iter().enumerate() {
        let mut instr = Instr::new(*op);
        let Some(unit) = op.unit() else {
            code.push(instr);
            continue;
        };
        if unit == Unit::Host {
            // A barrier: everything before it completes before anything after it starts.
            live.iter_mut().for_each(Vec::clear);
            code.push(instr);
            continue;
        }
        let mut need: [Option<usize>; UNITS] = [None; UNITS];
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
