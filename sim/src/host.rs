//! The host CPU's side of a `host` instruction.
//!
//! The simulator models when a host call runs and what it costs (a barrier, costed by
//! the hardware description's `cpu` figures in [`crate::timing`]); *what* it computes
//! belongs to the host's runtime, which the simulator does not know. A run is given a
//! [`HostRuntime`]; the instruction's operation number, SRAM operands and the machine
//! are handed to it, and it reads its inputs from and writes its output to system SRAM
//! as a CPU sharing that memory would. Runs without one trap at the first `host`.

use npu_isa::Host;

use crate::state::Machine;

/// Runs the operations of `host` instructions.
pub trait HostRuntime: Sync {
    /// Runs `call.id` reading `call.sn` bytes at `call.src` (and `call.bn` at `call.b`)
    /// of system SRAM and writing `call.dn` bytes at `call.dst`. The operands are
    /// checked to lie in SRAM before this is called. An error stops the run with a
    /// trap carrying its message.
    fn call(&self, call: &Host, m: &mut Machine) -> Result<(), String>;
}

/// The runtime of runs that have none: every call is an error.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHost;

impl HostRuntime for NoHost {
    fn call(&self, call: &Host, _m: &mut Machine) -> Result<(), String> {
        Err(format!(
            "no host runtime is attached to run host operation {} (a program with layers on the CPU runs under `npu simulate DIR`, which has their model)",
            call.id
        ))
    }
}
