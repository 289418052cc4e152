//! The disassembler: [`Program`] to assembly text that reassembles to the same binary.

use std::fmt::Write as _;

use crate::op::{Instr, Op};
use crate::program::Program;

/// Formats one instruction: the mnemonic, every operand that differs from its default
/// (required operands always), then `wait=`/`signal=` when not empty.
pub fn format_instr(instr: &Instr) -> String {
    let info = instr.op.info();
    let mut s = info.mnemonic.to_string();
    for (f, v) in info.fields.iter().zip(instr.op.field_values()) {
        if f.default != Some(v) {
            let _ = write!(s, " {}={}", f.name, f.format_value(v));
        }
    }
    if !instr.wait.is_empty() {
        let _ = write!(s, " wait={}", instr.wait);
    }
    if !instr.signal.is_empty() {
        let _ = write!(s, " signal={}", instr.signal);
    }
    s
}

/// Disassembles a whole program: `.text` with loop bodies indented, then one `.data`
/// section per segment, sixteen bytes a line.
pub fn disassemble(program: &Program) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "; npu ISA v1 program: {} instructions, {} data segments",
        program.code.len(),
        program.data.len()
    );
    out.push_str(".text\n");
    let mut depth = 1usize;
    for instr in &program.code {
        if matches!(instr.op, Op::EndLoop(_)) {
            depth = depth.saturating_sub(1).max(1);
        }
        let _ = writeln!(out, "{}{}", "    ".repeat(depth), format_instr(instr));
        if matches!(instr.op, Op::Loop(_)) {
            depth += 1;
        }
    }
    for seg in &program.data {
        let _ = writeln!(out, ".data {} {:#x}", seg.space, seg.addr);
        for chunk in seg.bytes.chunks(16) {
            let bytes: Vec<String> = chunk.iter().map(|b| format!("{b:#04x}")).collect();
            let _ = writeln!(out, "    .byte {}", bytes.join(", "));
        }
    }
    out
}
