//! The crate's one error type.

use thiserror::Error;

use crate::asm::Diagnostics;

/// Everything that can go wrong in `npu-isa`. None of these is a bug in the crate:
/// each describes bad input (an instruction, a program file, assembly text or an
/// arithmetic parameter) and says where it is.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// An operand value does not fit its field.
    #[error("`{mnemonic}`: field `{field}` = {value} is out of range (expected {range})")]
    FieldOutOfRange {
        /// Instruction mnemonic.
        mnemonic: &'static str,
        /// Field name.
        field: &'static str,
        /// The offending value.
        value: i64,
        /// The accepted values.
        range: String,
    },
    /// Operands that describe no valid access (a window larger than its tile, a pixel
    /// stride below the channel count).
    #[error("`{mnemonic}`: {what}")]
    Operands {
        /// Instruction mnemonic.
        mnemonic: &'static str,
        /// What is wrong.
        what: String,
    },
    /// A fetch-unit instruction was given dependency tokens.
    #[error("`{mnemonic}` runs on the fetch unit and cannot wait for or signal tokens")]
    TokensOnControl {
        /// Instruction mnemonic.
        mnemonic: &'static str,
    },
    /// The first byte of an encoded instruction is not an opcode.
    #[error("illegal opcode {opcode:#04x}")]
    IllegalOpcode {
        /// The byte found.
        opcode: u8,
    },
    /// Bits after the last operand field are not zero.
    #[error("`{mnemonic}`: reserved bits {first_bit}..256 are not zero")]
    ReservedBits {
        /// Instruction mnemonic.
        mnemonic: &'static str,
        /// First reserved bit.
        first_bit: u32,
    },
    /// A decoding error in the instruction at `index` of a program.
    #[error("instruction {index} (byte offset {offset}): {source}")]
    AtInstruction {
        /// Index of the instruction.
        index: usize,
        /// Byte offset of the instruction in the file.
        offset: usize,
        /// What is wrong with it.
        source: Box<Error>,
    },
    /// A program file is malformed.
    #[error("program file, byte offset {offset}: {what}")]
    BadProgram {
        /// Where in the file.
        offset: usize,
        /// What is wrong.
        what: String,
    },
    /// Assembly text has errors; the diagnostics hold every one of them.
    #[error("{}", .0.render())]
    Assembly(Diagnostics),
    /// A requantization multiplier or shift is outside what the hardware accepts.
    #[error("invalid requantization parameters: {0}")]
    Requant(String),
    /// A compressed weight stream that does not decode.
    #[error("{0}")]
    Codec(String),
    /// A value cannot be packed at the requested width.
    #[error("value {value} at index {index} does not fit {width} packing (expected {range})")]
    PackValue {
        /// Index of the value.
        index: usize,
        /// The value.
        value: i64,
        /// Packing name.
        width: &'static str,
        /// Accepted values.
        range: &'static str,
    },
    /// Packed data holds an invalid code or is too short.
    #[error("cannot unpack {width}: {what}")]
    Unpack {
        /// Packing name.
        width: &'static str,
        /// What is wrong.
        what: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
