//! Errors (the run could not start) and traps (the run stopped).

use npu_isa::Unit;
use thiserror::Error;

/// A simulation that cannot start: the program does not fit the machine, or a replay
/// is given a trace or machine that is not its own.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// A replay asked of a trace or a machine it was not made from.
    #[error("{0}")]
    Replay(String),
    /// An instruction has an operand outside its field (only possible for programs
    /// built in memory: decoding checks the same).
    #[error("instruction {index}: {source}")]
    Instruction {
        /// Index in the program.
        index: usize,
        /// What the ISA says is wrong with it.
        source: npu_isa::Error,
    },
    /// A data segment lies outside its memory.
    #[error(
        "data segment {index} ({space} {start:#x}..{end:#x}) does not fit the {size}-byte {space} memory of `{hw}`"
    )]
    SegmentOutOfRange {
        /// Segment index in the program.
        index: usize,
        /// Memory space name.
        space: &'static str,
        /// First byte.
        start: u64,
        /// One past the last byte.
        end: u64,
        /// Memory size.
        size: u64,
        /// Hardware name.
        hw: String,
    },
}

/// `Result` with this crate's [`enum@Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a run stopped early.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TrapKind {
    /// An access outside a memory.
    #[error("{operand} accesses {space} {start:#x}..{end:#x}, outside the {size}-byte memory")]
    OutOfBounds {
        /// Which operand.
        operand: &'static str,
        /// Memory space.
        space: &'static str,
        /// First byte.
        start: u64,
        /// One past the last byte.
        end: u64,
        /// Memory size in bytes.
        size: u64,
    },
    /// An access that must be aligned is not.
    #[error("{operand} at {space} {addr:#x} is not {align}-byte aligned{what}")]
    Misaligned {
        /// Which operand.
        operand: &'static str,
        /// Memory space.
        space: &'static str,
        /// The address (or length, see `what`).
        addr: u64,
        /// Required alignment.
        align: u64,
        /// Extra detail, e.g. a length that is not a multiple.
        what: String,
    },
    /// The hardware lacks what the instruction needs.
    #[error("the hardware `{hw}` has no {what}")]
    Unsupported {
        /// Hardware name.
        hw: String,
        /// The missing capability.
        what: String,
    },
    /// Operands that are each in range but impossible together.
    #[error("invalid operands: {0}")]
    InvalidOperands(String),
    /// Data in memory that the instruction cannot use (weights outside the mode's range,
    /// bad requantization parameters, invalid packed codes).
    #[error("invalid data: {0}")]
    InvalidData(String),
    /// Loops nest too deep, or `endloop` without `loop`.
    #[error("control flow: {0}")]
    Control(String),
    /// Every unit waits for a token that can never come.
    #[error("deadlock: {0}")]
    Deadlock(String),
    /// The host runtime could not run a `host` instruction's operation.
    #[error("host call: {0}")]
    Host(String),
    /// The run exceeded its dynamic instruction budget.
    #[error("instruction limit of {0} dispatched instructions reached")]
    InstructionLimit(u64),
    /// The simulated clock passed the run's cycle budget.
    #[error("cycle limit of {0} cycles reached")]
    CycleLimit(u64),
    /// The run took longer than its wall-clock budget.
    #[error("time limit of {} s reached", .0.as_secs_f64())]
    TimeLimit(std::time::Duration),
}

/// A run that stopped: where, and why.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("trap at instruction {index} (`{mnemonic}`{}{}): {kind}",
    .unit.map(|u| format!(" on {u}")).unwrap_or_default(),
    .seq.map(|s| format!(", dispatch #{s}")).unwrap_or_default())]
pub struct Trap {
    /// Index of the instruction in the program.
    pub index: usize,
    /// Its mnemonic.
    pub mnemonic: &'static str,
    /// The unit it ran on, if any.
    pub unit: Option<Unit>,
    /// Its position in the dispatched stream (loops repeat instructions), if dispatched.
    pub seq: Option<u64>,
    /// What went wrong.
    pub kind: TrapKind,
}
