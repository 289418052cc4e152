//! `decode(encode(x)) == x` for every instruction over the full range of every field,
//! text round trips through the disassembler and assembler, and out-of-range operands
//! are errors rather than truncation.

use npu_isa::{assemble, decode, encode, format_instr, op_table, Error, FieldKind, Instr, Op, OpInfo, UnitSet};
use proptest::prelude::*;

fn build(info: &OpInfo, vals: &[i64], wait: u8, signal: u8) -> Instr {
    Instr {
        op: Op::from_field_values(info.opcode, vals).expect("values match the schema"),
        wait: UnitSet::from_bits(wait).expect("5-bit set"),
        signal: UnitSet::from_bits(signal).expect("5-bit set"),
    }
}

fn defaults(info: &OpInfo) -> Vec<i64> {
    info.fields.iter().map(|f| f.default.unwrap_or(f.min)).collect()
}

/// Assembles the disassembly of `instr` (closing or opening a loop around it where the
/// assembler requires balanced loops) and returns the instruction read back.
fn text_round_trip(instr: &Instr) -> Instr {
    let line = format_instr(instr);
    let (text, index) = match instr.op {
        Op::Loop(_) => (format!("{line}\nendloop\n"), 0),
        Op::EndLoop(_) => (format!("loop n=1\n{line}\n"), 1),
        _ => (line, 0),
    };
    let prog = assemble(&text, "roundtrip.s").unwrap_or_else(|e| panic!("{text}: {e}"));
    prog.code[index]
}

fn check_round_trip(instr: &Instr) {
    let bytes = encode(instr).unwrap_or_else(|e| panic!("{instr:?}: {e}"));
    assert_eq!(decode(&bytes).as_ref(), Ok(instr), "binary round trip");
    assert_eq!(&text_round_trip(instr), instr, "text round trip of `{}`", format_instr(instr));
}

#[test]
fn every_field_of_every_instruction_round_trips_at_its_extremes() {
    for info in op_table() {
        for (i, f) in info.fields.iter().enumerate() {
            for v in [f.min, f.max, f.min + (f.max - f.min) / 2] {
                let mut vals = defaults(info);
                vals[i] = v;
                let instr = build(info, &vals, 0, 0);
                check_round_trip(&instr);
                assert_eq!(instr.op.field_values()[i], v, "`{}.{}` keeps {v}", info.mnemonic, f.name);
            }
        }
        if info.executes.has_tokens() {
            check_round_trip(&build(info, &defaults(info), 31, 31));
        }
    }
}

#[test]
fn out_of_range_operands_are_errors_not_truncation() {
    for info in op_table() {
        for (i, f) in info.fields.iter().enumerate() {
            if matches!(f.kind, FieldKind::Enum(_) | FieldKind::UnitSet) {
                continue;
            }
            for bad in [f.max + 1, f.min - 1] {
                // Values the Rust types cannot hold are not reachable through the API.
                if u32::try_from(bad).is_err() && f.kind == FieldKind::Unsigned {
                    continue;
                }
                let mut vals = defaults(info);
                vals[i] = bad;
                let instr = build(info, &vals, 0, 0);
                match encode(&instr) {
                    Err(Error::FieldOutOfRange { field, value, .. }) => {
                        assert_eq!((field, value), (f.name, bad));
                    }
                    other => panic!("`{}.{}` = {bad} encoded: {other:?}", info.mnemonic, f.name),
                }
                let mut text = format_instr(&build(info, &defaults(info), 0, 0));
                text.push_str(&format!(" {}={bad}", f.name));
                // Replace any earlier occurrence of the field (required fields are printed).
                let text = dedupe_field(&text, f.name, bad);
                let err = assemble(&text, "range.s").expect_err(&text);
                let msg = err.to_string();
                assert!(msg.contains(&format!("value {bad} is out of range for `{}`", f.name)), "{text}: {msg}");
            }
        }
    }
}

fn dedupe_field(text: &str, name: &str, value: i64) -> String {
    let mut parts: Vec<String> =
        text.split(' ').filter(|p| !p.starts_with(&format!("{name}="))).map(str::to_string).collect();
    parts.push(format!("{name}={value}"));
    parts.join(" ")
}

#[test]
fn control_instructions_reject_tokens() {
    let info = op_table().iter().find(|o| o.mnemonic == "halt").expect("halt exists");
    let instr = build(info, &[], 1, 0);
    assert_eq!(encode(&instr), Err(Error::TokensOnControl { mnemonic: "halt" }));
}

#[test]
fn illegal_opcodes_and_reserved_bits_are_rejected() {
    let mut bytes = [0u8; 32];
    assert_eq!(decode(&bytes), Err(Error::IllegalOpcode { opcode: 0 }));
    bytes[0] = op_table().len() as u8 + 1;
    assert!(matches!(decode(&bytes), Err(Error::IllegalOpcode { .. })));
    let halt = op_table().iter().find(|o| o.mnemonic == "halt").expect("halt exists");
    bytes[0] = halt.opcode;
    bytes[31] = 0x80;
    // `halt` has no operands: everything after the 8-bit opcode and the two 6-bit unit
    // sets (one bit per NPU unit: ld, mac, rq, vec, st, ldw) is reserved.
    assert_eq!(decode(&bytes), Err(Error::ReservedBits { mnemonic: "halt", first_bit: 8 + 6 + 6 }));
}

fn any_instr() -> impl Strategy<Value = Instr> {
    (0..op_table().len()).prop_flat_map(|i| {
        let info = &op_table()[i];
        let fields: Vec<BoxedStrategy<i64>> =
            info.fields.iter().map(|f| prop_oneof![Just(f.min), Just(f.max), f.min..=f.max].boxed()).collect();
        let tokens = if info.executes.has_tokens() { (0u8..32, 0u8..32).boxed() } else { Just((0, 0)).boxed() };
        (fields, tokens).prop_map(move |(vals, (w, s))| build(info, &vals, w, s))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn decode_encode_round_trip(instr in any_instr()) {
        let bytes = encode(&instr).unwrap();
        prop_assert_eq!(decode(&bytes).unwrap(), instr);
        prop_assert_eq!(text_round_trip(&instr), instr);
    }

    #[test]
    fn arbitrary_bytes_decode_to_an_error_or_re_encode_identically(mut bytes in any::<[u8; 32]>(), op in 1u8..=20) {
        bytes[0] = op;
        if let Ok(instr) = decode(&bytes) {
            prop_assert_eq!(encode(&instr).unwrap(), bytes);
        }
    }
}
