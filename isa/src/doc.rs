//! Generates the instruction reference of `docs/isa.md` from the table.

use std::fmt::Write as _;

use crate::encode::{HEADER_BITS, INSTR_BYTES};
use crate::fields::FieldKind;
use crate::op::op_table;

/// Marker before the generated part of `docs/isa.md`.
pub const BEGIN_MARKER: &str = "<!-- BEGIN GENERATED: npu_isa::doc::instruction_reference -->";
/// Marker after the generated part of `docs/isa.md`.
pub const END_MARKER: &str = "<!-- END GENERATED -->";

/// The instruction reference in Markdown: a summary table, then one section per
/// instruction with its encoding layout and operand table.
pub fn instruction_reference() -> String {
    let mut s = String::new();
    let _ = writeln!(s, "### Summary\n");
    let _ = writeln!(s, "| opcode | mnemonic | unit | operand bits | summary |");
    let _ = writeln!(s, "|---|---|---|---|---|");
    for op in op_table() {
        let para: Vec<&str> = op.doc.lines().take_while(|l| !l.trim().is_empty()).collect();
        let para = para.join(" ");
        let cut = [para.find(": "), para.find(". ")].into_iter().flatten().min().unwrap_or(para.len());
        let summary = &para[..cut];
        let _ = writeln!(
            s,
            "| `{:#04x}` | [`{}`](#{}) | {} | {} | {} |",
            op.opcode,
            op.mnemonic,
            op.mnemonic,
            op.executes.describe(),
            op.operand_bits(),
            summary.trim_end_matches(['.', ','])
        );
    }
    for op in op_table() {
        let _ = writeln!(s, "\n### {}\n", op.mnemonic);
        let _ = writeln!(
            s,
            "Opcode `{:#04x}`, executed by {}{}.\n",
            op.opcode,
            op.executes.describe(),
            if op.executes.has_tokens() { "; takes `wait=` and `signal=` token sets" } else { "; carries no tokens" }
        );
        let _ = writeln!(s, "{}\n", op.doc);
        if op.fields.is_empty() {
            let _ = writeln!(s, "No operands.");
            continue;
        }
        let _ = writeln!(s, "| operand | bits | at bit | values | default | meaning |");
        let _ = writeln!(s, "|---|---|---|---|---|---|");
        let mut pos = HEADER_BITS;
        for f in &op.fields {
            let values = match f.kind {
                FieldKind::Enum(names) => names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(" "),
                FieldKind::Signed => format!("{}..={} (signed)", f.min, f.max),
                _ => format!("{}..={}", f.min, f.max),
            };
            let default = f.default.map_or("required".to_string(), |d| format!("`{}`", f.format_value(d)));
            let _ = writeln!(s, "| `{}` | {} | {} | {} | {} | {} |", f.name, f.bits, pos, values, default, f.doc);
            pos += f.bits;
        }
        let _ = writeln!(s, "\nReserved bits {pos}..{} are zero.", INSTR_BYTES * 8);
    }
    s
}
