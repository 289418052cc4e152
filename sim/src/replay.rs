//! Functional replay: one program, many inputs, without the timing model.
//!
//! The canonical order in which the engine applies effects depends only on the
//! program (program order per unit, tokens, fetch order, queue capacity), never on
//! data or timing. So after one traced run — which gives the cycles, since timing does
//! not depend on the data either — every further input only needs the instructions'
//! effects in that same order. [`Replay`] records the order from a trace and applies
//! it to a [`Machine`] that is reset between inputs, touching only the bytes the
//! previous input wrote. The outputs are those [`crate::run`] would produce, bit for
//! bit (tested on every compiled model).

use npu_hw::HwConfig;
use npu_isa::{Program, Segment};

use crate::error::{Result, Trap};
use crate::exec::execute;
use crate::report::TraceEvent;
use crate::state::Machine;

/// A program's functional execution order, for running many inputs.
#[derive(Debug, Clone)]
pub struct Replay<'p> {
    program: &'p Program,
    /// `(instruction index, dispatch number)` in the order effects are applied.
    order: Vec<(usize, u64)>,
}

impl<'p> Replay<'p> {
    /// The order of `trace`, a complete traced run of `program` (timing-only is
    /// enough: it executes the same instructions in the same order).
    pub fn new(program: &'p Program, trace: &[TraceEvent]) -> Replay<'p> {
        Replay { program, order: trace.iter().map(|e| (e.index, e.seq)).collect() }
    }

    /// A machine for this program on `hw`, with its data loaded.
    pub fn machine(&self, hw: &HwConfig) -> Result<Machine> {
        Machine::new(hw, self.program)
    }

    /// Resets `m` to the program's initial state, writes `inputs` and applies every
    /// instruction's effect in the recorded order. Data-dependent problems are traps,
    /// as in a full run.
    pub fn run(&self, m: &mut Machine, inputs: &[Segment]) -> Result<Option<Trap>> {
        m.reset(self.program);
        for seg in inputs {
            m.write(seg.space, u64::from(seg.addr), &seg.bytes)?;
        }
        for &(index, seq) in &self.order {
            let instr = &self.program.code[index];
            if let Err(kind) = execute(m, &instr.op) {
                return Ok(Some(Trap {
                    index,
                    mnemonic: instr.op.mnemonic(),
                    unit: instr.op.unit(),
                    seq: Some(seq),
                    kind,
                }));
            }
        }
        Ok(None)
    }
}
