//! The `npu` command line, run in-process through `npu::run`.

use std::path::Path;

use crate::repo_root;

/// Runs `npu ARGS…` and returns (exit status, stdout, stderr).
pub fn npu(args: &[&str]) -> (i32, String, String) {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let argv = std::iter::once("npu").chain(args.iter().copied());
    let code = npu::run(argv, &mut out, &mut err);
    (code, String::from_utf8_lossy(&out).into_owned(), String::from_utf8_lossy(&err).into_owned())
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn asm_then_disasm_then_asm_gives_identical_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = repo_root().join("programs/conv_relu.s");
    let bin = dir.path().join("a.bin");
    let (code, out, err) = npu(&["asm", s(&src), "-o", s(&bin)]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("7 instructions"), "{out}");
    let (code, listing, err) = npu(&["disasm", s(&bin)]);
    assert_eq!(code, 0, "{err}");
    let re = dir.path().join("re.s");
    std::fs::write(&re, listing).expect("write");
    let bin2 = dir.path().join("b.bin");
    assert_eq!(npu(&["asm", s(&re), "-o", s(&bin2)]).0, 0);
    assert_eq!(std::fs::read(&bin).expect("read"), std::fs::read(&bin2).expect("read"));
}

#[test]
fn malformed_assembly_exits_non_zero_with_located_diagnostics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("bad.s");
    std::fs::write(&src, "    nop\n    mm a=0\n").expect("write");
    let (code, _, err) = npu(&["asm", s(&src)]);
    assert_eq!(code, 1);
    assert!(err.contains("bad.s:2:5"), "{err}");
    assert!(err.contains("missing required operands"), "{err}");
    assert!(!dir.path().join("bad.bin").exists(), "no output on error");
}

#[test]
fn bad_files_are_errors_naming_the_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, _, err) = npu(&["disasm", s(&dir.path().join("missing.bin"))]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot read"), "{err}");

    let not_prog = dir.path().join("text.bin");
    std::fs::write(&not_prog, "hello world, not a program").expect("write");
    let (code, _, err) = npu(&["disasm", s(&not_prog)]);
    assert_eq!(code, 1);
    assert!(err.contains("not an npu program"), "{err}");

    // A valid program cut short in its second instruction.
    let good = dir.path().join("good.bin");
    assert_eq!(npu(&["asm", s(&repo_root().join("programs/dot.s")), "-o", s(&good)]).0, 0);
    let bytes = std::fs::read(&good).expect("read");
    let cut = dir.path().join("cut.bin");
    std::fs::write(&cut, &bytes[..16 + 32 + 10]).expect("write");
    let (code, _, err) = npu(&["disasm", s(&cut)]);
    assert_eq!(code, 1);
    assert!(err.contains("byte offset 48: file ends inside instruction 1"), "{err}");
}

#[test]
fn help_shows_an_example_for_each_subcommand() {
    for sub in ["asm", "disasm"] {
        let (code, out, _) = npu(&[sub, "--help"]);
        assert_eq!(code, 0);
        assert!(out.contains("Example:"), "{sub}: {out}");
    }
    let (code, _, err) = npu(&["frobnicate"]);
    assert_eq!(code, 2);
    assert!(err.contains("unrecognized subcommand"), "{err}");
}
