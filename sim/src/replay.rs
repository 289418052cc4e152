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
use npu_isa::{Op, Program, Segment};

use crate::engine::dispatch_stream;
use crate::error::{Error, Result, Trap, TrapKind};
use crate::exec::execute;
use crate::host::{HostRuntime, NoHost};
use crate::report::TraceEvent;
use crate::state::Machine;

/// A program's functional execution order on one hardware description, for running
/// many inputs.
#[derive(Debug, Clone)]
pub struct Replay<'p> {
    program: &'p Program,
    hw: HwConfig,
    /// `(instruction index, dispatch number)` in the order effects are applied.
    order: Vec<(usize, u64)>,
    /// Decoded weights, shared by every machine this replay makes.
    weights: crate::state::WeightMemo,
}

impl<'p> Replay<'p> {
    /// The order of `trace`, a complete traced run of `program` on `hw` (timing-only is
    /// enough: it executes the same instructions in the same order). Refuses a trace
    /// that is not one: every dispatched instruction of the program must appear exactly
    /// once, at its dispatch number, and nothing else.
    pub fn new(program: &'p Program, hw: &HwConfig, trace: &[TraceEvent]) -> Result<Replay<'p>> {
        let foreign = |what: String| Error::Replay(format!("the trace is not a complete run of this program: {what}"));
        let stream = dispatch_stream(program, trace.len() as u64 + 1)
            .map_err(|t| foreign(format!("the program itself stops with {t}")))?;
        if stream.len() != trace.len() {
            let more = if stream.len() > trace.len() { "more than " } else { "" };
            return Err(foreign(format!(
                "the program dispatches {more}{} instructions, the trace holds {}",
                stream.len().min(trace.len()),
                trace.len()
            )));
        }
        let mut seen = vec![false; trace.len()];
        for e in trace {
            let ok = usize::try_from(e.seq).ok().filter(|s| *s < stream.len() && !seen[*s] && stream[*s] == e.index);
            let Some(s) = ok else {
                return Err(foreign(format!(
                    "event `{}` (instruction {}, dispatch #{}) does not match",
                    e.mnemonic, e.index, e.seq
                )));
            };
            seen[s] = true;
        }
        Ok(Replay {
            program,
            hw: hw.clone(),
            order: trace.iter().map(|e| (e.index, e.seq)).collect(),
            weights: Default::default(),
        })
    }

    /// A machine for this program on the replay's hardware, with its data loaded. The
    /// machines of one replay share their memo of decoded weights (so threads replaying
    /// inputs decode and pack each weight stream once between them).
    pub fn machine(&self) -> Result<Machine> {
        let mut m = Machine::new(&self.hw, self.program)?;
        m.share_weights(&self.weights);
        Ok(m)
    }

    /// Resets `m` to the program's initial state, writes `inputs` and applies every
    /// instruction's effect in the recorded order. Data-dependent problems are traps,
    /// as in a full run.
    /// `m` must be a machine of the replay's hardware ([`Self::machine`]).
    pub fn run(&self, m: &mut Machine, inputs: &[Segment]) -> Result<Option<Trap>> {
        self.run_hosted(m, inputs, &NoHost)
    }

    /// [`Self::run`] with `host` running the operations of `host` instructions.
    pub fn run_hosted(&self, m: &mut Machine, inputs: &[Segment], host: &dyn HostRuntime) -> Result<Option<Trap>> {
        if !m.is_of(&self.hw) {
            return Err(Error::Replay(format!(
                "the machine's memories are not those of `{}`, the hardware the replay was made for",
                self.hw.name
            )));
        }
        m.reset(self.program);
        for seg in inputs {
            m.write(seg.space, u64::from(seg.addr), &seg.bytes)?;
        }
        for &(index, seq) in &self.order {
            let instr = &self.program.code[index];
            let done = match &instr.op {
                Op::Host(h) => host.call(h, m).map_err(TrapKind::Host),
                op => execute(m, op),
            };
            if let Err(kind) = done {
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
