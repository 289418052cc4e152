//! Every program in `programs/` assembles, carries a header comment, and survives
//! disassembly and reassembly to the identical binary.

use npu_isa::{assemble, disassemble, Program};

use crate::program_paths;

#[test]
fn there_are_at_least_six_programs_and_each_has_a_header() {
    let paths = program_paths();
    assert!(paths.len() >= 6, "{paths:?}");
    for p in &paths {
        let text = std::fs::read_to_string(p).expect("readable");
        let first = text.lines().next().unwrap_or("");
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        assert!(first.starts_with(&format!("; {name} — ")), "{name}: header must start `; {name} — what it computes`");
    }
}

#[test]
fn every_program_reassembles_to_the_identical_binary() {
    for p in program_paths() {
        let text = std::fs::read_to_string(&p).expect("readable");
        let name = p.display().to_string();
        let prog = assemble(&text, &name).unwrap_or_else(|e| panic!("{e}"));
        assert!(!prog.code.is_empty(), "{name} has code");
        let bin = prog.to_bytes().expect("encodes");
        assert_eq!(Program::from_bytes(&bin).as_ref(), Ok(&prog), "{name}: binary round trip");
        let again = assemble(&disassemble(&prog), "disassembly.s").unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(again.to_bytes().expect("encodes"), bin, "{name}: asm(disasm(bin)) == bin");
    }
}

#[test]
fn data_directives_lay_out_bytes_as_documented() {
    // Hand-derived: .half and .word are little-endian; .i4 packs low nibble first;
    // .align pads with zeros; labels are addresses in their section.
    let src = "\
.data dram 0x10
a:  .byte 1, -1, 0xff
    .align 4
b:  .half -2
    .word 0x01020304
    .i4 1, -1, 7
    .zero 2
.text
    ld src=b dst=a elem=1
";
    let p = assemble(src, "layout.s").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.data.len(), 1);
    assert_eq!(p.data[0].addr, 0x10);
    assert_eq!(p.data[0].bytes, vec![1, 0xff, 0xff, 0, 0xfe, 0xff, 4, 3, 2, 1, 0xf1, 0x07, 0, 0]);
    let npu_isa::Op::Ld(ld) = p.code[0].op else { panic!("ld expected") };
    assert_eq!((ld.src, ld.dst), (0x14, 0x10));
}
