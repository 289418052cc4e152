//! `docs/isa.md` carries the instruction reference generated from the op table.
//! Run with `UPDATE_DOCS=1` to regenerate it after changing the table.

use npu_isa::doc::{instruction_reference, BEGIN_MARKER, END_MARKER};

use crate::repo_root;

#[test]
fn isa_md_matches_the_op_table() {
    let path = repo_root().join("docs/isa.md");
    let text = std::fs::read_to_string(&path).expect("docs/isa.md exists");
    let (Some(b), Some(e)) = (text.find(BEGIN_MARKER), text.find(END_MARKER)) else {
        panic!("docs/isa.md lacks the generated-section markers");
    };
    let generated = format!("{BEGIN_MARKER}\n{}{END_MARKER}", instruction_reference());
    let current = &text[b..e + END_MARKER.len()];
    if current != generated {
        if std::env::var_os("UPDATE_DOCS").is_some() {
            let updated = format!("{}{generated}{}", &text[..b], &text[e + END_MARKER.len()..]);
            std::fs::write(&path, updated).expect("writable");
        } else {
            panic!("docs/isa.md is out of date with the op table; rerun with UPDATE_DOCS=1");
        }
    }
    for info in npu_isa::op_table() {
        assert!(text.contains(&format!("\n### {}\n", info.mnemonic)), "{} documented", info.mnemonic);
    }
}
