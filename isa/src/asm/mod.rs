//! The assembler: text to [`Program`], with every error in the file reported.
//!
//! # Syntax
//!
//! ```text
//! ; comment (also `#` and `//`)
//! .equ N, 16                     ; named constant (defined before use in layout directives)
//! .data dram 0x100               ; data section: memory space and start address
//! weights: .byte 1, -2, 0x7f     ; label = address in that space; also .half .word .i4 .t2 .b1 .zero .align
//! .text                          ; back to code
//! start:                         ; a code label is an instruction index
//!     ld loc=wgt src=weights dst=0 elem=N signal=mac
//!     conv mode=i8 ifm=0 ih=3 iw=3 cin=1 wgt=0 cout=1 dst=0 wait=ld
//!     halt
//! ```
//!
//! Operands are `name=value` pairs in any order, optionally separated by commas; fields
//! with a default may be omitted. Values are expressions over integers (decimal, `0x`,
//! `0b`, `0o`, `_` separators), labels and constants with `| & << >> + - * / %`, unary
//! `-` and parentheses; enumerated fields take a name (`mode=i4`) and the token sets
//! `wait`/`signal` take units joined by `|` (`wait=ld|mac`) or `none`.
//!
//! # Errors
//!
//! [`assemble`] never stops at the first problem: each line is parsed on its own, and
//! layout and operand errors are collected across the whole file. The result is either a
//! program or [`Diagnostics`] holding every error, rendered as `file:line:col`, the
//! source line, a caret under the problem and what was expected.

mod syntax;

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use codespan_reporting::diagnostic::{Diagnostic as CsDiagnostic, Label};
use codespan_reporting::files::SimpleFile;
use codespan_reporting::term::{self, Chars, Config};

use crate::arith::{pack, Packing};
use crate::encode::validate;
use crate::error::{Error, Result};
use crate::fields::{FieldKind, Space, Unit, UnitSet};
use crate::op::{op_by_mnemonic, op_table, FieldInfo, Instr, Op, OpInfo};
use crate::program::{Program, Segment};
use syntax::{lex_line, Expr, Item, Line, Operand, Parser, Span};

/// Deepest loop nesting the fetch unit supports.
pub const MAX_LOOP_DEPTH: usize = 8;

/// One problem in assembly text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Byte range in the source.
    pub span: Range<usize>,
    /// What is wrong.
    pub message: String,
    /// What was expected (shown under the caret).
    pub expected: String,
    /// Further notes.
    pub notes: Vec<String>,
}

impl Diagnostic {
    pub(crate) fn new(span: Span, message: impl Into<String>, expected: impl Into<String>) -> Self {
        Diagnostic { span, message: message.into(), expected: expected.into(), notes: Vec::new() }
    }
    fn note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }
}

/// Every error found in one assembly file, with the file to render them against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics {
    file: String,
    source: String,
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// The individual errors, in source order.
    pub fn items(&self) -> &[Diagnostic] {
        &self.items
    }

    /// Renders every error as plain text (no colour): `error: …`, `--> file:line:col`,
    /// the source line and a caret with what was expected.
    pub fn render(&self) -> String {
        let file = SimpleFile::new(self.file.as_str(), self.source.as_str());
        let config = Config { chars: Chars::ascii(), ..Config::default() };
        let mut out = String::new();
        for d in &self.items {
            let diag = CsDiagnostic::error()
                .with_message(&d.message)
                .with_labels(vec![Label::primary((), d.span.clone()).with_message(&d.expected)])
                .with_notes(d.notes.clone());
            match term::emit_into_string(&config, &file, &diag) {
                Ok(s) => out.push_str(&s),
                Err(_) => out.push_str(&format!("error: {} (at byte {})\n", d.message, d.span.start)),
            }
        }
        let n = self.items.len();
        out.push_str(&format!("{n} error{} in {}\n", if n == 1 { "" } else { "s" }, self.file));
        out
    }
}

fn line_of(source: &str, offset: usize) -> usize {
    source[..offset.min(source.len())].matches('\n').count() + 1
}

enum DataKind {
    Bytes(i64, i64, usize),
    Packed(Packing),
}

fn data_kind(name: &str) -> Option<DataKind> {
    Some(match name {
        ".byte" => DataKind::Bytes(-128, 255, 1),
        ".half" => DataKind::Bytes(-32768, 65535, 2),
        ".word" => DataKind::Bytes(i64::from(i32::MIN), i64::from(u32::MAX), 4),
        ".i4" => DataKind::Packed(Packing::I4),
        ".t2" => DataKind::Packed(Packing::T2),
        ".b1" => DataKind::Packed(Packing::B1),
        _ => return None,
    })
}

const DIRECTIVES: &str = ".text, .data, .equ, .byte, .half, .word, .i4, .t2, .b1, .zero, .align";

struct SegBuild {
    space: Space,
    addr: u64,
    bytes: Vec<u8>,
    span: Span,
    /// Stands in for a `.data` line with errors; never emitted.
    poisoned: bool,
}

enum Pending {
    Instr { info: &'static OpInfo, span: Span, operands: Vec<Operand> },
    Data { seg: usize, offset: usize, kind: &'static str, args: Vec<Expr> },
}

struct Asm<'s> {
    source: &'s str,
    diags: Vec<Diagnostic>,
    symbols: HashMap<String, (i64, Span)>,
}

impl Asm<'_> {
    fn define(&mut self, name: &str, value: i64, span: Span) {
        if let Some((_, first)) = self.symbols.get(name) {
            let first_line = line_of(self.source, first.start);
            self.diags.push(
                Diagnostic::new(span, format!("symbol `{name}` is defined twice"), "expected a new name")
                    .note(format!("first defined on line {first_line}")),
            );
            return;
        }
        self.symbols.insert(name.to_string(), (value, span));
    }

    fn eval(&self, e: &Expr) -> std::result::Result<i64, Diagnostic> {
        let overflow =
            |s: Span| Diagnostic::new(s, "arithmetic overflow in expression", "expected a value within 64 bits");
        match e {
            Expr::Int(v, _) => Ok(*v),
            Expr::Sym(name, span) => self.symbols.get(name).map(|(v, _)| *v).ok_or_else(|| {
                Diagnostic::new(
                    span.clone(),
                    format!("undefined symbol `{name}`"),
                    "expected a label or `.equ` constant",
                )
            }),
            Expr::Neg(inner, span) => self.eval(inner)?.checked_neg().ok_or_else(|| overflow(span.clone())),
            Expr::Bin(op, a, b, span) => {
                let (x, y) = (self.eval(a)?, self.eval(b)?);
                let r = match *op {
                    "+" => x.checked_add(y),
                    "-" => x.checked_sub(y),
                    "*" => x.checked_mul(y),
                    "/" | "%" if y == 0 => {
                        return Err(Diagnostic::new(b.span(), "division by zero", "expected a non-zero divisor"))
                    }
                    "/" => x.checked_div(y),
                    "%" => x.checked_rem(y),
                    "|" => Some(x | y),
                    "&" => Some(x & y),
                    "<<" | ">>" if !(0..64).contains(&y) => {
                        return Err(Diagnostic::new(
                            b.span(),
                            format!("shift amount {y} is out of range"),
                            "expected 0..=63",
                        ))
                    }
                    "<<" => x.checked_mul(1i64 << y),
                    ">>" => Some(x >> y),
                    _ => None,
                };
                r.ok_or_else(|| overflow(span.clone()))
            }
        }
    }

    /// Evaluates an operand for `field` of `info`, checking its range.
    fn field_value(&self, info: &OpInfo, field: &FieldInfo, e: &Expr) -> std::result::Result<i64, Diagnostic> {
        match field.kind {
            FieldKind::Enum(names) => match e {
                Expr::Sym(s, _) if names.contains(&s.as_str()) => {
                    Ok(names.iter().position(|n| n == s).unwrap_or(0) as i64)
                }
                _ => Err(Diagnostic::new(
                    e.span(),
                    format!("invalid value for `{}` of `{}`", field.name, info.mnemonic),
                    format!("expected one of: {}", names.join(", ")),
                )),
            },
            FieldKind::UnitSet => unit_set(e).map(|s| i64::from(s.bits())).ok_or_else(|| {
                Diagnostic::new(
                    e.span(),
                    format!("invalid unit set for `{}`", field.name),
                    format!("expected `none` or units joined by `|`: {}", UnitSet::unit_names()),
                )
            }),
            FieldKind::Unsigned | FieldKind::Signed => {
                let v = self.eval(e)?;
                if v < field.min || v > field.max {
                    return Err(Diagnostic::new(
                        e.span(),
                        format!("value {v} is out of range for `{}` of `{}`", field.name, info.mnemonic),
                        format!("expected {}..={}", field.min, field.max),
                    ));
                }
                Ok(v)
            }
        }
    }

    fn instruction(&mut self, info: &'static OpInfo, span: Span, operands: &[Operand]) -> Option<Instr> {
        let mut values: Vec<Option<i64>> = vec![None; info.fields.len()];
        let mut wait = UnitSet::NONE;
        let mut signal = UnitSet::NONE;
        let mut seen: HashMap<&str, Span> = HashMap::new();
        let mut ok = true;
        let token_field =
            FieldInfo { name: "wait", bits: 5, min: 0, max: 31, default: Some(0), kind: FieldKind::UnitSet, doc: "" };
        for o in operands {
            if let Some(first) = seen.insert(o.name.as_str(), o.name_span.clone()) {
                self.diags.push(
                    Diagnostic::new(
                        o.name_span.clone(),
                        format!("operand `{}` is given twice", o.name),
                        "expected each operand once",
                    )
                    .note(format!("first given at column {}", col_of(self.source, first.start))),
                );
                ok = false;
                continue;
            }
            if o.name == "wait" || o.name == "signal" {
                if !info.executes.has_tokens() {
                    self.diags.push(Diagnostic::new(
                        o.name_span.clone(),
                        format!("`{}` runs on the fetch unit and cannot wait for or signal tokens", info.mnemonic),
                        "expected no `wait`/`signal` on control instructions",
                    ));
                    ok = false;
                    continue;
                }
                match self.field_value(
                    info,
                    &FieldInfo { name: if o.name == "wait" { "wait" } else { "signal" }, ..token_field.clone() },
                    &o.value,
                ) {
                    Ok(v) => {
                        let set = UnitSet::from_bits(v as u8).unwrap_or_default();
                        if o.name == "wait" {
                            wait = set;
                        } else {
                            signal = set;
                        }
                    }
                    Err(d) => {
                        self.diags.push(d);
                        ok = false;
                    }
                }
                continue;
            }
            let Some(idx) = info.fields.iter().position(|f| f.name == o.name) else {
                let mut names: Vec<&str> = info.fields.iter().map(|f| f.name).collect();
                if info.executes.has_tokens() {
                    names.extend(["wait", "signal"]);
                }
                let expected = if names.is_empty() {
                    format!("`{}` takes no operands", info.mnemonic)
                } else {
                    format!("expected one of: {}", names.join(", "))
                };
                self.diags.push(Diagnostic::new(
                    o.name_span.clone(),
                    format!("unknown operand `{}` for `{}`", o.name, info.mnemonic),
                    expected,
                ));
                ok = false;
                continue;
            };
            match self.field_value(info, &info.fields[idx], &o.value) {
                Ok(v) => values[idx] = Some(v),
                Err(d) => {
                    self.diags.push(d);
                    ok = false;
                }
            }
        }
        let missing: Vec<&str> = info
            .fields
            .iter()
            .zip(&values)
            .filter(|(f, v)| v.is_none() && f.default.is_none() && !seen.contains_key(f.name))
            .map(|(f, _)| f.name)
            .collect();
        if !missing.is_empty() {
            let plural = if missing.len() == 1 { "" } else { "s" };
            self.diags.push(Diagnostic::new(
                span.clone(),
                format!("`{}` is missing required operand{plural} {}", info.mnemonic, quote_list(&missing)),
                format!("expected {}", missing.iter().map(|m| format!("{m}=…")).collect::<Vec<_>>().join(" ")),
            ));
            ok = false;
        }
        if !ok {
            return None;
        }
        let vals: Vec<i64> = info.fields.iter().zip(values).map(|(f, v)| v.or(f.default).unwrap_or(0)).collect();
        let op = Op::from_field_values(info.opcode, &vals)?;
        let instr = Instr { op, wait, signal };
        if let Err(e) = validate(&instr) {
            self.diags.push(Diagnostic::new(span, e.to_string(), "expected a valid instruction"));
            return None;
        }
        Some(instr)
    }
}

fn col_of(source: &str, offset: usize) -> usize {
    let start = source[..offset].rfind('\n').map_or(0, |i| i + 1);
    source[start..offset].chars().count() + 1
}

fn quote_list(names: &[&str]) -> String {
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

fn unit_set(e: &Expr) -> Option<UnitSet> {
    match e {
        Expr::Sym(s, _) if s == "none" => Some(UnitSet::NONE),
        // The host takes no tokens: its `host` instructions are barriers.
        Expr::Sym(s, _) => Unit::from_name(s).filter(|u| *u != Unit::Host).map(UnitSet::one),
        Expr::Bin("|", a, b, _) => {
            let (a, b) = (unit_set(a)?, unit_set(b)?);
            if a.is_empty() || b.is_empty() {
                return None;
            }
            UnitSet::from_bits(a.bits() | b.bits())
        }
        _ => None,
    }
}

/// Assembles `source` (named `file` in diagnostics) into a program.
///
/// Returns [`Error::Assembly`] holding every error in the file.
pub fn assemble(source: &str, file: &str) -> Result<Program> {
    assemble_with_symbols(source, file).map(|(p, _)| p)
}

/// Like [`assemble`], and also returns the value of every label and constant.
pub fn assemble_with_symbols(source: &str, file: &str) -> Result<(Program, BTreeMap<String, i64>)> {
    let mut asm = Asm { source, diags: Vec::new(), symbols: HashMap::new() };

    // Pass 1: parse every line on its own.
    let mut lines: Vec<Line> = Vec::new();
    let mut base = 0;
    for raw in source.split_inclusive('\n') {
        let text = raw.trim_end_matches(['\n', '\r']);
        let broken = || Line {
            labels: Vec::new(),
            item: Some(Item::Broken { data_section: text.trim_start().starts_with(".data") }),
        };
        match lex_line(text, base, &mut asm.diags) {
            Some(toks) => match Parser::new(&toks, base + text.len()).line() {
                Ok(line) => lines.push(line),
                Err(d) => {
                    asm.diags.push(d);
                    lines.push(broken());
                }
            },
            None => lines.push(broken()),
        }
        base += raw.len();
    }

    // Pass 2: layout. Labels get addresses; constants and sizes are evaluated now.
    let mut segs: Vec<SegBuild> = Vec::new();
    let mut current: Option<usize> = None; // data segment being filled; None = .text
    let mut pending: Vec<Pending> = Vec::new();
    let mut instr_count: i64 = 0;
    let mut loops: Vec<Span> = Vec::new();
    for line in lines {
        let here = match current {
            Some(s) => segs[s].addr as i64 + segs[s].bytes.len() as i64,
            None => instr_count,
        };
        for (name, span) in &line.labels {
            asm.define(name, here, span.clone());
        }
        let Some(item) = line.item else { continue };
        match item {
            Item::Broken { data_section } => {
                // Keep going in a section whose bytes are discarded, so that one bad
                // `.data` line is reported once, not once per data line after it.
                if data_section {
                    poison(&mut segs, &mut current);
                }
            }
            Item::Instr { mnemonic, span, operands } => {
                let Some(info) = op_by_mnemonic(&mnemonic) else {
                    let names: Vec<&str> = op_table().iter().map(|o| o.mnemonic).collect();
                    asm.diags.push(Diagnostic::new(
                        span,
                        format!("unknown instruction `{mnemonic}`"),
                        format!("expected one of: {}", names.join(", ")),
                    ));
                    continue;
                };
                if current.is_some() {
                    asm.diags.push(Diagnostic::new(
                        span,
                        format!("instruction `{mnemonic}` inside a `.data` section"),
                        "expected `.text` before instructions",
                    ));
                    continue;
                }
                match mnemonic.as_str() {
                    "loop" => {
                        if loops.len() == MAX_LOOP_DEPTH {
                            asm.diags.push(Diagnostic::new(
                                span.clone(),
                                format!("loops nest deeper than {MAX_LOOP_DEPTH}"),
                                format!("expected at most {MAX_LOOP_DEPTH} nested loops"),
                            ));
                        }
                        loops.push(span.clone());
                    }
                    "endloop" if loops.pop().is_none() => {
                        asm.diags.push(Diagnostic::new(
                            span.clone(),
                            "`endloop` without a matching `loop`",
                            "expected a `loop` before",
                        ));
                    }
                    _ => {}
                }
                instr_count += 1;
                pending.push(Pending::Instr { info, span, operands });
            }
            Item::Directive { name, span, args } => {
                let nargs = args.len();
                let arity = |want: &str, ok: bool, asm: &mut Asm| {
                    if !ok {
                        asm.diags.push(Diagnostic::new(
                            span.clone(),
                            format!(
                                "`{name}` takes {want}, found {nargs} argument{}",
                                if nargs == 1 { "" } else { "s" }
                            ),
                            format!("expected {name} {}", directive_usage(&name)),
                        ));
                    }
                    ok
                };
                match name.as_str() {
                    ".text" => {
                        if arity("no arguments", nargs == 0, &mut asm) {
                            current = None;
                        }
                    }
                    ".equ" => {
                        if !arity("a name and a value", nargs == 2, &mut asm) {
                            continue;
                        }
                        let Expr::Sym(cname, cspan) = &args[0] else {
                            asm.diags.push(Diagnostic::new(
                                args[0].span(),
                                "`.equ` needs a name first",
                                "expected a name",
                            ));
                            continue;
                        };
                        match asm.eval(&args[1]) {
                            Ok(v) => asm.define(cname, v, cspan.clone()),
                            Err(d) => {
                                asm.diags.push(early_note(d, "`.equ` values may use only symbols defined above them"))
                            }
                        }
                    }
                    ".data" => {
                        if !arity("a memory space and an optional address", nargs == 1 || nargs == 2, &mut asm) {
                            poison(&mut segs, &mut current);
                            continue;
                        }
                        let space = match &args[0] {
                            Expr::Sym(s, _) => Space::from_name(s),
                            _ => None,
                        };
                        let Some(space) = space else {
                            asm.diags.push(Diagnostic::new(
                                args[0].span(),
                                "invalid memory space for `.data`",
                                format!("expected one of: {}", Space::NAMES.join(", ")),
                            ));
                            poison(&mut segs, &mut current);
                            continue;
                        };
                        let addr = match args.get(1) {
                            None => segs
                                .iter()
                                .filter(|s| s.space == space)
                                .map(|s| s.addr + s.bytes.len() as u64)
                                .max()
                                .unwrap_or(0),
                            Some(e) => match asm.eval(e) {
                                Ok(v) if (0..=i64::from(u32::MAX)).contains(&v) => v as u64,
                                Ok(v) => {
                                    asm.diags.push(Diagnostic::new(
                                        e.span(),
                                        format!("address {v} is out of range"),
                                        "expected 0..=0xffffffff",
                                    ));
                                    poison(&mut segs, &mut current);
                                    continue;
                                }
                                Err(d) => {
                                    asm.diags.push(early_note(
                                        d,
                                        "section addresses may use only symbols defined above them",
                                    ));
                                    poison(&mut segs, &mut current);
                                    continue;
                                }
                            },
                        };
                        segs.push(SegBuild { space, addr, bytes: Vec::new(), span: span.clone(), poisoned: false });
                        current = Some(segs.len() - 1);
                    }
                    ".zero" | ".align" => {
                        if !arity("one argument", nargs == 1, &mut asm) {
                            continue;
                        }
                        let Some(seg) = current else {
                            asm.diags.push(Diagnostic::new(
                                span,
                                format!("`{name}` outside a `.data` section"),
                                "expected `.data SPACE ADDR` before",
                            ));
                            continue;
                        };
                        let v = match asm.eval(&args[0]) {
                            Ok(v) => v,
                            Err(d) => {
                                asm.diags.push(early_note(d, "sizes may use only symbols defined above them"));
                                continue;
                            }
                        };
                        let fill = if name == ".zero" {
                            if !(0..=1 << 24).contains(&v) {
                                asm.diags.push(Diagnostic::new(
                                    args[0].span(),
                                    format!("`.zero {v}` is out of range"),
                                    "expected 0..=16777216 bytes",
                                ));
                                continue;
                            }
                            v as usize
                        } else {
                            if v <= 0 || v & (v - 1) != 0 || v > 1 << 20 {
                                asm.diags.push(Diagnostic::new(
                                    args[0].span(),
                                    format!("`.align {v}` is not a power of two"),
                                    "expected a power of two up to 1048576",
                                ));
                                continue;
                            }
                            let at = segs[seg].addr + segs[seg].bytes.len() as u64;
                            (at.next_multiple_of(v as u64) - at) as usize
                        };
                        let b = &mut segs[seg].bytes;
                        b.resize(b.len() + fill, 0);
                    }
                    _ => {
                        let Some(kind) = data_kind(&name) else {
                            asm.diags.push(Diagnostic::new(
                                span,
                                format!("unknown directive `{name}`"),
                                format!("expected one of: {DIRECTIVES}"),
                            ));
                            continue;
                        };
                        let Some(seg) = current else {
                            asm.diags.push(Diagnostic::new(
                                span,
                                format!("`{name}` outside a `.data` section"),
                                "expected `.data SPACE ADDR` before",
                            ));
                            continue;
                        };
                        if !arity("one or more values", nargs > 0, &mut asm) {
                            continue;
                        }
                        let size = match kind {
                            DataKind::Bytes(_, _, w) => w * nargs,
                            DataKind::Packed(p) => p.packed_len(nargs),
                        };
                        let offset = segs[seg].bytes.len();
                        segs[seg].bytes.resize(offset + size, 0);
                        let kind_name: &'static str = [".byte", ".half", ".word", ".i4", ".t2", ".b1"]
                            .into_iter()
                            .find(|k| *k == name)
                            .unwrap_or(".byte");
                        pending.push(Pending::Data { seg, offset, kind: kind_name, args });
                    }
                }
            }
        }
    }
    for span in loops {
        asm.diags.push(Diagnostic::new(span, "`loop` is never closed", "expected a matching `endloop` later"));
    }

    // Pass 3: operands and data values, with every symbol known.
    let mut code = Vec::new();
    for p in pending {
        match p {
            Pending::Instr { info, span, operands } => {
                if let Some(i) = asm.instruction(info, span, &operands) {
                    code.push(i);
                }
            }
            Pending::Data { seg, offset, kind, args } => {
                let mut vals = Vec::with_capacity(args.len());
                for a in &args {
                    match asm.eval(a) {
                        Ok(v) => vals.push((v, a.span())),
                        Err(d) => asm.diags.push(d),
                    }
                }
                if vals.len() != args.len() {
                    continue;
                }
                match data_kind(kind) {
                    Some(DataKind::Bytes(lo, hi, w)) => {
                        for (i, (v, s)) in vals.iter().enumerate() {
                            if *v < lo || *v > hi {
                                asm.diags.push(Diagnostic::new(
                                    s.clone(),
                                    format!("value {v} does not fit `{kind}`"),
                                    format!("expected {lo}..={hi}"),
                                ));
                                continue;
                            }
                            let bytes = (*v as u64).to_le_bytes();
                            segs[seg].bytes[offset + i * w..offset + (i + 1) * w].copy_from_slice(&bytes[..w]);
                        }
                    }
                    Some(DataKind::Packed(p)) => {
                        let raw: Vec<i64> = vals.iter().map(|(v, _)| *v).collect();
                        match pack(&raw, p) {
                            Ok(bytes) => segs[seg].bytes[offset..offset + bytes.len()].copy_from_slice(&bytes),
                            Err(Error::PackValue { index, value, range, .. }) => asm.diags.push(Diagnostic::new(
                                vals[index].1.clone(),
                                format!("value {value} does not fit `{kind}`"),
                                format!("expected {range}"),
                            )),
                            Err(e) => asm.diags.push(Diagnostic::new(
                                args[0].span(),
                                e.to_string(),
                                "expected packable values",
                            )),
                        }
                    }
                    None => {}
                }
            }
        }
    }

    // Segments: within the 32-bit address space and not overlapping.
    let mut data: Vec<Segment> = Vec::new();
    let mut placed: Vec<(Space, u64, u64, usize)> = Vec::new();
    for s in segs.into_iter().filter(|s| !s.bytes.is_empty() && !s.poisoned) {
        let end = s.addr + s.bytes.len() as u64;
        if end > 1 << 32 {
            asm.diags.push(Diagnostic::new(
                s.span.clone(),
                format!("data at {} {:#x} runs past the end of the 32-bit address space", s.space, s.addr),
                "expected data to end at or below 0x100000000",
            ));
            continue;
        }
        if let Some((_, a, b, line)) = placed.iter().find(|(sp, a, b, _)| *sp == s.space && s.addr < *b && *a < end) {
            asm.diags.push(Diagnostic::new(
                s.span.clone(),
                format!(
                    "data at {} {:#x}..{end:#x} overlaps the section on line {line} ({a:#x}..{b:#x})",
                    s.space, s.addr
                ),
                "expected sections that do not overlap",
            ));
            continue;
        }
        placed.push((s.space, s.addr, end, line_of(source, s.span.start)));
        data.push(Segment { space: s.space, addr: s.addr as u32, bytes: s.bytes });
    }

    if asm.diags.is_empty() {
        tracing::debug!(file, instructions = code.len(), segments = data.len(), "assembled");
        let symbols = asm.symbols.into_iter().map(|(k, (v, _))| (k, v)).collect();
        return Ok((Program { code, data }, symbols));
    }
    asm.diags.sort_by_key(|d| d.span.start);
    Err(Error::Assembly(Diagnostics { file: file.to_string(), source: source.to_string(), items: asm.diags }))
}

/// Explains, on an undefined symbol in a layout directive, that such symbols must
/// be defined above their use (layout is decided in one pass).
fn early_note(d: Diagnostic, note: &str) -> Diagnostic {
    if d.message.starts_with("undefined symbol") {
        d.note(note)
    } else {
        d
    }
}

/// Enters a data section whose bytes are discarded (after an erroneous `.data`).
fn poison(segs: &mut Vec<SegBuild>, current: &mut Option<usize>) {
    segs.push(SegBuild { space: Space::Dram, addr: 0, bytes: Vec::new(), span: 0..0, poisoned: true });
    *current = Some(segs.len() - 1);
}

fn directive_usage(name: &str) -> &'static str {
    match name {
        ".text" => "",
        ".equ" => "NAME, VALUE",
        ".data" => "SPACE[, ADDRESS]",
        ".zero" => "BYTES",
        ".align" => "POWER_OF_TWO",
        _ => "VALUE[, VALUE…]",
    }
}
