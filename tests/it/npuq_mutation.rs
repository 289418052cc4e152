//! Any `.npuq` the decoder accepts can be executed and compiled without a panic: seeded
//! one-byte mutations of committed quantized models (most in the first 4 KiB, where
//! names, shapes, geometry and parameters live; the rest anywhere) are either refused
//! with an error, or run on the integer executor and go through the compiler (and, for
//! some, the simulator) returning results or errors — never panicking.

use std::panic::{catch_unwind, AssertUnwindSafe};

use npu_quant::QModel;

use crate::Rng;

fn elements(q: &QModel) -> usize {
    q.values.iter().map(|v| v.shape.iter().product::<usize>()).sum()
}

/// Runs everything a user's commands would run on an accepted model.
fn exercise(q: &QModel, hw: &npu_hw::HwConfig, simulate: bool) {
    let per_in: usize = q.values[0].shape.iter().product();
    let input: Vec<i32> = (0..per_in).map(|i| (i % 7) as i32 - 3).collect();
    let _ = q.run_int(&input, 1);
    if let Ok(c) = npu_compile::compile(q, hw) {
        if simulate {
            let opts = npu_sim::RunOptions { timing_only: true, ..Default::default() };
            let _ = npu_sim::run(&c.program, hw, &opts);
        }
    }
}

fn mutate_file(file: &str, cases: usize, seed: u64) -> (usize, usize) {
    let path = crate::repo_root().join("toolchain/zoo/models").join(file);
    let bytes = std::fs::read(&path).expect("committed model");
    let original = npu_quant::npuq::decode(&bytes, file).expect("decodes");
    let budget = 4 * elements(&original);
    let hw = npu_hw::preset("edge-256").expect("preset");
    let mut r = Rng(seed);
    let (mut accepted, mut refused) = (0, 0);
    for case in 0..cases {
        let mut m = bytes.clone();
        let at = if r.next_u64() % 10 < 7 {
            (r.next_u64() % 4096) as usize
        } else {
            (r.next_u64() % m.len() as u64) as usize
        };
        let old = m[at];
        m[at] = if r.next_u64().is_multiple_of(2) { r.next_u64() as u8 } else { old ^ (1 << (r.next_u64() % 8)) };
        // The checksum refuses every such change (held below); recomputed, the change
        // reaches the decoder and the validation behind it.
        npu_quant::npuq::reseal(&mut m);
        let what = format!("{file}, case {case}: byte {at} {old:#04x} → {:#04x}", m[at]);
        let decoded =
            catch_unwind(|| npu_quant::npuq::decode(&m, file)).unwrap_or_else(|_| panic!("{what}: decoding panicked"));
        let Ok(q) = decoded else {
            refused += 1;
            continue;
        };
        accepted += 1;
        // A mutation may legitimately grow a model (a larger input is still a model);
        // the executor's time is the only reason to skip running one.
        if elements(&q) > budget {
            continue;
        }
        let simulate = case % 4 == 0;
        if catch_unwind(AssertUnwindSafe(|| exercise(&q, &hw, simulate))).is_err() {
            panic!("{what}: the decoder accepted it and running or compiling it panicked");
        }
    }
    (accepted, refused)
}

#[test]
fn mutated_npuq_files_are_refused_or_run_without_panicking() {
    let (a1, r1) = mutate_file("mobilenet-qat-w4a8.npuq", 1500, 0x5eed_0001);
    let (a2, r2) = mutate_file("mobilenet-pruned50.npuq", 1500, 0x5eed_0002);
    // Both outcomes must occur, or the test exercises only one side.
    assert!(a1 + a2 > 500 && r1 + r2 > 500, "accepted {a1}+{a2}, refused {r1}+{r2}");
}

/// The `.npuq` layout is a format of its own (`npu_quant::npuq::v2`), not a dump of the
/// quantizer's structures: every committed file re-encodes to the same bytes, so a change
/// to an internal struct that leaked into the layout would fail here.
#[test]
fn npuq_files_keep_their_layout() {
    let dir = crate::repo_root().join("toolchain/zoo/models");
    let mut files = 0;
    for e in std::fs::read_dir(&dir).expect("zoo models").flatten() {
        let path = e.path();
        if path.extension().is_none_or(|x| x != "npuq") {
            continue;
        }
        let bytes = std::fs::read(&path).expect("readable");
        let q = npu_quant::npuq::decode(&bytes, &path.display().to_string()).expect("decodes");
        assert!(npu_quant::npuq::encode(&q).expect("encodes") == bytes, "{} re-encodes differently", path.display());
        files += 1;
    }
    assert_eq!(files, npu_zoo::RETRAINED.len(), "every committed retrained model");
}

/// Version 1 files (one mean, one std, no integer-input flag) are still read: the
/// committed v1 copy of a zoo model decodes to the v2 file's model, its mean and std as
/// one-element lists.
#[test]
fn npuq_version_1_files_are_read() {
    let root = crate::repo_root();
    let v1 = std::fs::read(root.join("tests/fixtures/npuq/mobilenet-qat-w4a8.v1.npuq")).expect("fixture");
    assert_eq!(&v1[8..12], &[1, 0, 0, 0], "the fixture is version 1");
    let v2 = std::fs::read(root.join("toolchain/zoo/models/mobilenet-qat-w4a8.npuq")).expect("zoo");
    let old = npu_quant::npuq::decode(&v1, "v1").expect("v1 decodes");
    let new = npu_quant::npuq::decode(&v2, "v2").expect("v2 decodes");
    assert_eq!(old, new);
    assert_eq!(
        (old.preprocess.mean.clone(), old.preprocess.std.clone(), old.integer_input),
        (vec![0.286], vec![0.353], false)
    );
}

/// The header and the first fields, by the documented layout (docs/quantization.md, "Files"): magic,
/// version 3 as a little-endian u32, then the model name as a varint length and UTF-8
/// bytes, the scheme name likewise; the CRC-32 of everything before it last (zlib's
/// polynomial: `crc32(b"123456789") = 0xCBF43926`); trailing bytes are refused.
#[test]
fn npuq_header_and_first_fields_follow_the_documented_layout() {
    let mut q = npu_zoo::retrained("mobilenet").expect("zoo").swap_remove(0).2;
    q.name = "m".repeat(200);
    let bytes = npu_quant::npuq::encode(&q).expect("encodes");
    assert_eq!(&bytes[..8], b"NPUQUANT");
    assert_eq!(&bytes[8..12], &[3, 0, 0, 0]);
    // 200 = 0b1_1001000: varint bytes 0xC8 0x01.
    assert_eq!(&bytes[12..14], &[0xC8, 0x01]);
    assert_eq!(&bytes[14..214], "m".repeat(200).as_bytes());
    let scheme = q.scheme.name.as_bytes();
    assert_eq!(usize::from(bytes[214]), scheme.len());
    assert_eq!(&bytes[215..215 + scheme.len()], scheme);
    // The checksum, by the CRC-32 definition.
    let crc32 = crate::crc32_reference;
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    let n = bytes.len() - 4;
    assert_eq!(bytes[n..], crc32(&bytes[..n]).to_le_bytes());
    // A byte after the checksum is trailing data (resealed, past the checksum too).
    let mut longer = bytes[..n].to_vec();
    longer.push(0);
    longer.extend_from_slice(&crc32(&longer).to_le_bytes());
    let e = npu_quant::npuq::decode(&longer, "x.npuq").expect_err("trailing byte");
    assert!(e.to_string().contains("x.npuq") && e.to_string().contains("trailing data after the model (1 B)"), "{e}");
    // Version 2 (no checksum) is still read.
    let mut v2 = bytes[..n].to_vec();
    v2[8] = 2;
    assert_eq!(npu_quant::npuq::decode(&v2, "v2.npuq").expect("version 2"), q);
    let mut v4 = bytes;
    v4[8] = 4;
    let e = npu_quant::npuq::decode(&v4, "x.npuq").expect_err("version 4");
    assert!(e.to_string().contains("version 4 is not supported (expected 1..=3)"), "{e}");
}

/// A flipped bit anywhere in a file — a weight, a scale, a name — is an error naming the
/// checksum, not a different model.
#[test]
fn a_flipped_byte_in_an_npuq_file_is_refused_by_its_checksum() {
    let path = crate::repo_root().join("toolchain/zoo/models/mobilenet-pruned50.npuq");
    let bytes = std::fs::read(&path).expect("committed model");
    let mut r = Rng(0xf11b);
    for _ in 0..200 {
        let mut m = bytes.clone();
        let at = (r.next_u64() % (m.len() as u64 - 12)) as usize + 12;
        m[at] ^= 1 << (r.next_u64() % 8);
        let e = npu_quant::npuq::decode(&m, "m.npuq").expect_err("flipped");
        assert!(e.to_string().contains("does not match the stored"), "byte {at}: {e}");
    }
}
