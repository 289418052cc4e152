//! Malformed assembly: the full diagnostic text of each case is snapshotted, and a
//! file with several errors reports every one of them.

use npu_isa::{assemble, Error};

fn diagnostics(src: &str) -> String {
    match assemble(src, "bad.s") {
        Err(Error::Assembly(d)) => d.render(),
        Err(other) => panic!("not an assembly error: {other}"),
        Ok(p) => panic!("assembled: {p:?}"),
    }
}

fn count(src: &str) -> usize {
    match assemble(src, "bad.s") {
        Err(Error::Assembly(d)) => d.items().len(),
        _ => 0,
    }
}

macro_rules! case {
    ($name:ident, $src:expr) => {
        #[test]
        fn $name() {
            insta::assert_snapshot!(stringify!($name), diagnostics($src));
        }
    };
}

case!(unknown_instruction, "    convv mode=i8\n");
case!(unknown_operand, "    mm a=0 b=0 c=0 m=1 k=1 n=1 q=3\n");
case!(missing_required_operands, "    conv ifm=0 wgt=0 dst=0\n");
case!(operand_out_of_range, "    conv ifm=0 ih=5000 iw=3 cin=1 wgt=0 cout=1 dst=0\n");
case!(kernel_size_zero, "    conv ifm=0 ih=3 iw=3 cin=1 wgt=0 kh=0 cout=1 dst=0\n");
case!(invalid_enum_value, "    mm mode=int8 a=0 b=0 c=0 m=1 k=1 n=1\n");
case!(duplicate_operand, "    mm a=0 a=1 b=0 c=0 m=1 k=1 n=1\n");
case!(undefined_symbol, "    ld src=weights dst=0\n");
case!(duplicate_label, "start:\n    nop\nstart:\n    halt\n");
case!(bad_hex_literal, "    ld src=0x12g4 dst=0\n");
case!(unexpected_character, "    ld src=1 dst=@0\n");
case!(missing_equals, "    ld src 5 dst=0\n");
case!(endloop_without_loop, "    nop\n    endloop\n");
case!(unclosed_loop, "    loop n=2\n    nop\n");
case!(tokens_on_control_instruction, "    halt wait=mac\n");
case!(invalid_unit_set, "    sync unit=mac wait=mac|dsp\n");
case!(data_outside_section, "    .byte 1, 2\n");
case!(byte_value_too_large, ".data dram 0\n    .byte 1, 256, -129\n");
case!(int4_value_out_of_range, ".data dram 0\n    .i4 1, 2, 9\n");
case!(overlapping_sections, ".data dram 0\n    .byte 1, 2, 3, 4\n.data dram 2\n    .byte 5\n");
case!(unknown_directive, ".data dram 0\n    .quad 1\n");
case!(bad_data_space, ".data flash 0\n    .byte 1\n");
case!(instruction_in_data_section, ".data sram 0\n    halt\n");
case!(unclosed_parenthesis, ".equ X, (1 + 2\n");
case!(division_by_zero, ".equ X, 4 / (2 - 2)\n");

#[test]
fn every_error_in_a_file_is_reported() {
    // Seven independent mistakes on seven lines; the clean lines between them still parse.
    let src = "\
    nop
    convv
    ld src=1 dst=0x100000
    mm a=0 b=0 c=0 m=1 k=1 n=1 mode=i9
    halt wait=ld
    ld src=nowhere dst=0
.data dram 0
    .byte 300
    endloop
";
    assert_eq!(count(src), 7, "{}", diagnostics(src));
    insta::assert_snapshot!("every_error_in_a_file_is_reported", diagnostics(src));
}

#[test]
fn diagnostics_name_file_line_and_column() {
    let text = diagnostics("nop\n\n  mm a=0 b=0 c=0 m=1 k=1 n=0\n");
    assert!(text.contains("--> bad.s:3:28"), "{text}");
    assert!(text.contains("expected 1..=4095"), "{text}");
}

#[test]
fn layout_directives_explain_forward_references() {
    let text = diagnostics(".data dram 0\n    .zero SIZE\n.equ SIZE, 4\n");
    assert!(text.contains("undefined symbol `SIZE`"), "{text}");
    assert!(text.contains("sizes may use only symbols defined above them"), "{text}");
}
