//! Lexing and per-line parsing of assembly text. Never fails: every problem becomes
//! a [`Diagnostic`] and parsing goes on with the next line.

use std::ops::Range;

use super::Diagnostic;

/// Byte range in the source.
pub type Span = Range<usize>;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Ident(String),
    Int(i64),
    Punct(&'static str),
}

#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub tok: Tok,
    pub span: Span,
}

const PUNCTS: &[&str] = &["<<", ">>", "=", ",", "|", "&", "+", "-", "*", "/", "%", "(", ")", ":"];

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == '.'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.'
}

fn parse_int(text: &str) -> Result<i64, String> {
    let clean: String = text.chars().filter(|c| *c != '_').collect();
    let lower = clean.to_ascii_lowercase();
    let (digits, radix, what) = if let Some(d) = lower.strip_prefix("0x") {
        (d, 16, "hexadecimal")
    } else if let Some(d) = lower.strip_prefix("0b") {
        (d, 2, "binary")
    } else if let Some(d) = lower.strip_prefix("0o") {
        (d, 8, "octal")
    } else {
        (lower.as_str(), 10, "decimal")
    };
    if digits.is_empty() {
        return Err(format!("{what} literal `{text}` has no digits"));
    }
    if let Some(bad) = digits.chars().find(|c| !c.is_digit(radix)) {
        return Err(format!("invalid digit `{bad}` in {what} literal `{text}`"));
    }
    u64::from_str_radix(digits, radix)
        .ok()
        .and_then(|v| i64::try_from(v).ok())
        .ok_or_else(|| format!("literal `{text}` does not fit in 63 bits"))
}

/// Splits one line (starting at byte `base` of the file) into tokens, stopping at a comment.
pub(crate) fn lex_line(line: &str, base: usize, diags: &mut Vec<Diagnostic>) -> Option<Vec<Token>> {
    let mut out = Vec::new();
    let bytes = line.as_bytes();
    let mut i = 0;
    let mut ok = true;
    while i < line.len() {
        let c = line[i..].chars().next().unwrap_or(' ');
        if c.is_whitespace() {
            i += c.len_utf8();
            continue;
        }
        if c == ';' || c == '#' || line[i..].starts_with("//") {
            break;
        }
        let start = i;
        if is_ident_start(c) {
            while i < line.len() && is_ident_char(bytes[i] as char) {
                i += 1;
            }
            out.push(Token { tok: Tok::Ident(line[start..i].to_string()), span: base + start..base + i });
            continue;
        }
        if c.is_ascii_digit() {
            while i < line.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            let text = &line[start..i];
            match parse_int(text) {
                Ok(v) => out.push(Token { tok: Tok::Int(v), span: base + start..base + i }),
                Err(msg) => {
                    diags.push(Diagnostic::new(
                        base + start..base + i,
                        msg,
                        "expected a number like 42, 0x2A or 0b101010",
                    ));
                    ok = false;
                }
            }
            continue;
        }
        if let Some(p) = PUNCTS.iter().find(|p| line[i..].starts_with(**p)) {
            i += p.len();
            out.push(Token { tok: Tok::Punct(p), span: base + start..base + i });
            continue;
        }
        i += c.len_utf8();
        diags.push(Diagnostic::new(
            base + start..base + i,
            format!("unexpected character `{c}`"),
            "expected a mnemonic, directive, label, `name=value` operand or `;` comment",
        ));
        ok = false;
    }
    ok.then_some(out)
}

/// An operand expression.
#[derive(Debug, Clone)]
pub(crate) enum Expr {
    Int(i64, Span),
    Sym(String, Span),
    Neg(Box<Expr>, Span),
    Bin(&'static str, Box<Expr>, Box<Expr>, Span),
}

impl Expr {
    pub fn span(&self) -> Span {
        match self {
            Expr::Int(_, s) | Expr::Sym(_, s) | Expr::Neg(_, s) | Expr::Bin(_, _, _, s) => s.clone(),
        }
    }
}

/// A `name=value` operand.
#[derive(Debug, Clone)]
pub(crate) struct Operand {
    pub name: String,
    pub name_span: Span,
    pub value: Expr,
}

/// What one line holds after its labels.
#[derive(Debug, Clone)]
pub(crate) enum Item {
    Directive {
        name: String,
        span: Span,
        args: Vec<Expr>,
    },
    Instr {
        mnemonic: String,
        span: Span,
        operands: Vec<Operand>,
    },
    /// A line that failed to parse; `.data` is remembered so that the data lines
    /// after it are not reported again as being outside a section.
    Broken {
        data_section: bool,
    },
}

/// One parsed line.
#[derive(Debug, Clone, Default)]
pub(crate) struct Line {
    pub labels: Vec<(String, Span)>,
    pub item: Option<Item>,
}

pub(crate) struct Parser<'a> {
    toks: &'a [Token],
    pos: usize,
    eol: usize,
    /// Parentheses and negations open around the current position.
    depth: usize,
}

/// Deepest nesting of parentheses and negations in an expression: deeper ones are an
/// error rather than a stack overflow.
pub const MAX_NESTING: usize = 64;

type PResult<T> = Result<T, Diagnostic>;

const BIN_LEVELS: &[&[&str]] = &[&["|"], &["&"], &["<<", ">>"], &["+", "-"], &["*", "/", "%"]];

impl<'a> Parser<'a> {
    pub fn new(toks: &'a [Token], eol: usize) -> Self {
        Parser { toks, pos: 0, eol, depth: 0 }
    }

    fn peek(&self) -> Option<&'a Token> {
        self.toks.get(self.pos)
    }

    fn here(&self) -> Span {
        self.peek().map_or(self.eol..self.eol, |t| t.span.clone())
    }

    fn describe(&self) -> String {
        match self.peek().map(|t| &t.tok) {
            None => "end of line".to_string(),
            Some(Tok::Ident(s)) => format!("`{s}`"),
            Some(Tok::Int(v)) => format!("`{v}`"),
            Some(Tok::Punct(p)) => format!("`{p}`"),
        }
    }

    fn eat_punct(&mut self, p: &str) -> bool {
        if matches!(self.peek(), Some(Token { tok: Tok::Punct(q), .. }) if *q == p) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    pub fn expr(&mut self) -> PResult<Expr> {
        self.binary(0)
    }

    fn binary(&mut self, level: usize) -> PResult<Expr> {
        if level == BIN_LEVELS.len() {
            return self.unary();
        }
        let mut lhs = self.binary(level + 1)?;
        loop {
            let op = match self.peek() {
                Some(Token { tok: Tok::Punct(p), .. }) if BIN_LEVELS[level].contains(p) => *p,
                _ => return Ok(lhs),
            };
            self.pos += 1;
            let rhs = self.binary(level + 1)?;
            let span = lhs.span().start..rhs.span().end;
            lhs = Expr::Bin(op, Box::new(lhs), Box::new(rhs), span);
        }
    }

    fn unary(&mut self) -> PResult<Expr> {
        if self.depth >= MAX_NESTING {
            return Err(Diagnostic::new(
                self.here(),
                format!("expression nested more than {MAX_NESTING} deep"),
                "simplify the expression",
            ));
        }
        self.depth += 1;
        let e = self.unary_inner();
        self.depth -= 1;
        e
    }

    fn unary_inner(&mut self) -> PResult<Expr> {
        let start = self.here().start;
        if self.eat_punct("-") {
            let inner = self.unary()?;
            let span = start..inner.span().end;
            return Ok(Expr::Neg(Box::new(inner), span));
        }
        if self.eat_punct("(") {
            let inner = self.expr()?;
            if !self.eat_punct(")") {
                return Err(Diagnostic::new(
                    self.here(),
                    format!("unclosed `(`: found {}", self.describe()),
                    "expected `)`",
                ));
            }
            return Ok(inner);
        }
        match self.peek() {
            Some(Token { tok: Tok::Int(v), span }) => {
                self.pos += 1;
                Ok(Expr::Int(*v, span.clone()))
            }
            Some(Token { tok: Tok::Ident(s), span }) => {
                self.pos += 1;
                Ok(Expr::Sym(s.clone(), span.clone()))
            }
            _ => Err(Diagnostic::new(
                self.here(),
                format!("expected a value, found {}", self.describe()),
                "expected a number, a name or `(`",
            )),
        }
    }

    /// Parses a whole line.
    pub fn line(&mut self) -> PResult<Line> {
        let mut line = Line::default();
        // Labels: `name:` (possibly several).
        while let (Some(Token { tok: Tok::Ident(name), span }), Some(Token { tok: Tok::Punct(":"), .. })) =
            (self.toks.get(self.pos), self.toks.get(self.pos + 1))
        {
            if name.starts_with('.') {
                return Err(Diagnostic::new(
                    span.clone(),
                    format!("label `{name}` cannot start with `.`"),
                    "expected a label name like `weights:`",
                ));
            }
            line.labels.push((name.clone(), span.clone()));
            self.pos += 2;
        }
        let Some(first) = self.peek() else { return Ok(line) };
        let Tok::Ident(head) = &first.tok else {
            return Err(Diagnostic::new(
                first.span.clone(),
                format!("expected an instruction or directive, found {}", self.describe()),
                "expected a mnemonic, a `.directive` or a `label:`",
            ));
        };
        let head_span = first.span.clone();
        self.pos += 1;
        if head.starts_with('.') {
            let mut args = Vec::new();
            if self.peek().is_some() {
                loop {
                    args.push(self.expr()?);
                    if self.peek().is_none() {
                        break;
                    }
                    let separated = self.eat_punct(",") || (head == ".data" && args.len() == 1);
                    if !separated {
                        return Err(Diagnostic::new(
                            self.here(),
                            format!("unexpected {} in directive arguments", self.describe()),
                            "expected `,` or end of line",
                        ));
                    }
                }
            }
            line.item = Some(Item::Directive { name: head.clone(), span: head_span, args });
            return Ok(line);
        }
        let mut operands = Vec::new();
        while let Some(t) = self.peek() {
            let Tok::Ident(name) = &t.tok else {
                return Err(Diagnostic::new(
                    t.span.clone(),
                    format!("expected an operand name, found {}", self.describe()),
                    "expected `name=value`",
                ));
            };
            let name_span = t.span.clone();
            self.pos += 1;
            if !self.eat_punct("=") {
                return Err(Diagnostic::new(
                    self.here(),
                    format!("expected `=` after operand name `{name}`, found {}", self.describe()),
                    "expected `=`",
                ));
            }
            let value = self.expr()?;
            operands.push(Operand { name: name.clone(), name_span, value });
            self.eat_punct(",");
        }
        line.item = Some(Item::Instr { mnemonic: head.clone(), span: head_span, operands });
        Ok(line)
    }
}
