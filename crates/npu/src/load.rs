//! Reading programs from disk.

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use npu_isa::{assemble, Error, Program};

/// An error already rendered in full (assembler diagnostics); printed as it is.
#[derive(Debug)]
pub struct Reported(pub String);

impl std::fmt::Display for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Reported {}

/// Assembles a `.s` file; on errors, the message is every diagnostic rendered.
pub fn assemble_file(path: &Path) -> Result<Program> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    assemble(&text, &path.display().to_string()).map_err(|e| match e {
        Error::Assembly(d) => anyhow::Error::new(Reported(d.render())),
        other => anyhow!(other),
    })
}

/// Reads a program binary.
pub fn read_binary(path: &Path) -> Result<Program> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Program::from_bytes(&bytes).with_context(|| format!("{} is not a valid program", path.display()))
}

/// Reads a program from assembly (`.s`/`.asm`) or binary (anything else).
#[allow(dead_code)]
pub fn read_program(path: &Path) -> Result<Program> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("s" | "asm") => assemble_file(path),
        _ => read_binary(path),
    }
}
