//! `npu-isa`: the instruction set of the npu NPU, and the one definition of its
//! integer arithmetic.
//!
//! Everything here derives from one table, [`for_each_op!`] in [`op`]: the [`Op`] enum
//! and its per-instruction structs, the run-time schema ([`op::op_table`]), the
//! fixed-width 256-bit [`encode`]r and decoder, the [`disas`]sembler, the [`asm`]
//! assembler's operand checking and the generated instruction reference in
//! `docs/isa.md` ([`doc`]). Adding an instruction is one row in that table.
//!
//! [`effects`] defines what each instruction touches — memory footprints, window
//! geometry, parameter-record formats — for the simulator and the compiler alike.
//!
//! [`arith`] holds the bit-exact fixed-point arithmetic (TFLite/gemmlowp semantics)
//! that the simulator and the toolchain's integer reference executor both call.
//!
//! This crate depends on no other workspace crate and does no I/O.

#![deny(missing_docs)]

pub mod arith;
pub mod asm;
pub mod codec;
pub mod disas;
pub mod doc;
pub mod effects;
pub mod encode;
pub mod error;
pub mod fields;
pub mod op;
pub mod program;

pub use asm::{assemble, assemble_with_symbols, Diagnostic, Diagnostics};
pub use disas::{disassemble, format_instr};
pub use effects::{footprint, Access, EwRecord, RqRecord, WindowGeometry, LUT_BYTES, SOFTMAX_RECORD_BYTES};
pub use encode::{decode, encode, validate, INSTR_BYTES};
pub use error::{Error, Result};
pub use fields::*;
pub use op::*;
pub use program::{Program, Segment};
