//! `npu-sim`: a cycle-approximate, bit-exact simulator of the npu NPU.
//!
//! The split follows moa and gem5: [`state`] holds the memories, [`exec`] defines what
//! each instruction does (through `npu_isa::arith` only), [`timing`] is a pure cost
//! function from an instruction to cycles, and [`engine`] fetches, dispatches, passes
//! dependency tokens and applies effects in a canonical order that does not depend on
//! timing; [`host`] hands `host` instructions to the host CPU's runtime; [`replay`]
//! re-applies that order to many inputs without the timing model, and [`kernels`] are
//! its fast paths (AVX-512 VNNI, differential-tested against the scalar loops of
//! [`exec`]). [`report`] turns counters into cycles, utilization, stalls, traffic and
//! energy, and writes Chrome/Perfetto traces.
//!
//! Problems found while running are [`Trap`] values carrying the instruction and a
//! message, never panics; [`Error`] is only for programs that cannot be loaded.

#![deny(missing_docs)]

pub mod engine;
pub mod error;
pub mod exec;
pub mod host;
pub mod kernels;
pub mod replay;
pub mod report;
pub mod state;
pub mod timing;

pub use engine::{run, run_hosted, Outcome, RunOptions, TIME_CHECK_INTERVAL};
pub use error::{Error, Result, Trap, TrapKind};
pub use host::{HostRuntime, NoHost};
pub use replay::Replay;
pub use report::{chrome_trace, regions, RegionReport, Report, TraceEvent};
pub use state::{Machine, Packing, WeightMemo};
