//! Fixed-width binary encoding: every instruction is 256 bits (32 bytes).
//!
//! Layout, least significant bit first (bit `i` is bit `i % 8` of byte `i / 8`):
//!
//! | bits | content |
//! |---|---|
//! | 0..8 | opcode (0 is illegal) |
//! | 8..14 | `wait` unit set |
//! | 14..20 | `signal` unit set |
//! | 20.. | operand fields in table order, each in its width; signed fields in two's complement |
//! | rest | reserved, zero |
//!
//! Encoding and decoding are generic over the schema in [`crate::op`]; neither knows
//! any instruction by name.

use bitvec::prelude::*;

use crate::error::{Error, Result};
use crate::fields::{FieldKind, UnitSet};
use crate::op::{op_by_opcode, FieldInfo, Instr, Op};

/// Bytes per encoded instruction.
pub const INSTR_BYTES: usize = 32;
/// Bits of the header (opcode, wait, signal) before the first operand.
pub const HEADER_BITS: u32 = 8 + 2 * UnitSet::BITS;

type Word = BitArray<[u8; INSTR_BYTES], Lsb0>;

/// Bits of one unit set in the header.
const SET: usize = UnitSet::BITS as usize;

fn check_range(mnemonic: &'static str, f: &FieldInfo, v: i64) -> Result<()> {
    if v < f.min || v > f.max {
        return Err(Error::FieldOutOfRange { mnemonic, field: f.name, value: v, range: f.range_text() });
    }
    Ok(())
}

fn to_raw(f: &FieldInfo, v: i64) -> u64 {
    let mask = if f.bits == 64 { u64::MAX } else { (1u64 << f.bits) - 1 };
    (v as u64) & mask
}

fn from_raw(f: &FieldInfo, raw: u64) -> i64 {
    match f.kind {
        FieldKind::Signed => {
            let shift = 64 - f.bits;
            ((raw << shift) as i64) >> shift
        }
        _ => raw as i64,
    }
}

/// Checks every operand of `instr` against its field's range and the token rules.
pub fn validate(instr: &Instr) -> Result<()> {
    let info = instr.op.info();
    let has_tokens = !(instr.wait.is_empty() && instr.signal.is_empty());
    if has_tokens && !info.executes.has_tokens() {
        return Err(Error::TokensOnControl { mnemonic: info.mnemonic });
    }
    for (f, v) in info.fields.iter().zip(instr.op.field_values()) {
        check_range(info.mnemonic, f, v)?;
    }

    Ok(())
}

/// Encodes one instruction. Out-of-range operands are an error, never truncated.
pub fn encode(instr: &Instr) -> Result<[u8; INSTR_BYTES]> {
    validate(instr)?;
    let info = instr.op.info();
    let mut w = Word::ZERO;
    w[0..8].store_le::<u8>(info.opcode);
    let (wait, signal) = (8..8 + SET, 8 + SET..8 + 2 * SET);
    w[wait].store_le::<u8>(instr.wait.bits());
    w[signal].store_le::<u8>(instr.signal.bits());
    let mut pos = HEADER_BITS as usize;
    for (f, v) in info.fields.iter().zip(instr.op.field_values()) {
        let end = pos + f.bits as usize;
        w[pos..end].store_le::<u64>(to_raw(f, v));
        pos = end;
    }
    Ok(w.into_inner())
}

/// Decodes one instruction, rejecting illegal opcodes, out-of-range fields and
/// non-zero reserved bits, so that `encode(decode(b)) == b` for every accepted `b`.
pub fn decode(bytes: &[u8; INSTR_BYTES]) -> Result<Instr> {
    let w = Word::new(*bytes);
    let opcode: u8 = w[0..8].load_le();
    let info = op_by_opcode(opcode).ok_or(Error::IllegalOpcode { opcode })?;
    let wait = UnitSet::from_bits(w[8..8 + SET].load_le()).unwrap_or_default();
    let signal = UnitSet::from_bits(w[8 + SET..8 + 2 * SET].load_le()).unwrap_or_default();
    let mut pos = HEADER_BITS as usize;
    let mut values = Vec::with_capacity(info.fields.len());
    for f in &info.fields {
        let end = pos + f.bits as usize;
        let v = from_raw(f, w[pos..end].load_le::<u64>());
        check_range(info.mnemonic, f, v)?;
        values.push(v);
        pos = end;
    }
    if w[pos..].any() {
        return Err(Error::ReservedBits { mnemonic: info.mnemonic, first_bit: pos as u32 });
    }
    let op = Op::from_field_values(opcode, &values).ok_or(Error::IllegalOpcode { opcode })?;
    let instr = Instr { op, wait, signal };
    validate(&instr)?;
    Ok(instr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op::op_table;

    #[test]
    fn every_instruction_fits_in_256_bits() {
        for op in op_table() {
            assert!(
                HEADER_BITS + op.operand_bits() <= 256,
                "`{}` needs {} bits",
                op.mnemonic,
                HEADER_BITS + op.operand_bits()
            );
        }
    }

    #[test]
    fn opcodes_are_dense_from_one() {
        for (i, op) in op_table().iter().enumerate() {
            assert_eq!(usize::from(op.opcode), i + 1);
        }
    }
}
