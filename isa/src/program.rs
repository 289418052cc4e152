//! Programs: code plus initial memory contents, and their binary file format.
//!
//! File layout (all integers little-endian):
//!
//! | offset | size | content |
//! |---|---|---|
//! | 0 | 4 | magic `NPU1` |
//! | 4 | 2 | format version (1) |
//! | 6 | 2 | reserved, zero |
//! | 8 | 4 | instruction count `n` |
//! | 12 | 4 | data segment count `m` |
//! | 16 | 32·n | instructions (see [`crate::encode`]) |
//! | … | | `m` segments: space (1 byte, [`Space`] index), 3 reserved zero bytes, address (4), length `l` (4), `l` data bytes |

use crate::encode::{decode, encode, INSTR_BYTES};
use crate::error::{Error, Result};
use crate::fields::{FieldValue, Space};
use crate::op::Instr;

/// File magic.
pub const MAGIC: &[u8; 4] = b"NPU1";
/// File format version.
pub const FORMAT_VERSION: u16 = 1;

/// Initial contents of one memory region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Memory the bytes are placed in.
    pub space: Space,
    /// Byte address of the first byte.
    pub addr: u32,
    /// The bytes.
    pub bytes: Vec<u8>,
}

impl Segment {
    /// One past the last byte address, as `u64` so it cannot overflow.
    pub fn end(&self) -> u64 {
        u64::from(self.addr) + self.bytes.len() as u64
    }
}

/// A complete program: instructions in program order and data segments.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Program {
    /// Instructions in program order.
    pub code: Vec<Instr>,
    /// Initial memory contents, in file order.
    pub data: Vec<Segment>,
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.bytes.len());
        let Some(end) = end else {
            return Err(Error::BadProgram {
                offset: self.pos,
                what: format!("file ends inside {what} (needs {n} bytes, {} left)", self.bytes.len() - self.pos),
            });
        };
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u32(&mut self, what: &str) -> Result<u32> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

impl Program {
    /// Serializes the program. Fails only if an instruction has out-of-range operands.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(16 + self.code.len() * INSTR_BYTES);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&(self.code.len() as u32).to_le_bytes());
        out.extend_from_slice(&(self.data.len() as u32).to_le_bytes());
        for (index, instr) in self.code.iter().enumerate() {
            let offset = out.len();
            let word = encode(instr).map_err(|e| Error::AtInstruction { index, offset, source: Box::new(e) })?;
            out.extend_from_slice(&word);
        }
        for seg in &self.data {
            out.push(seg.space.to_i64() as u8);
            out.extend_from_slice(&[0, 0, 0]);
            out.extend_from_slice(&seg.addr.to_le_bytes());
            out.extend_from_slice(&(seg.bytes.len() as u32).to_le_bytes());
            out.extend_from_slice(&seg.bytes);
        }
        Ok(out)
    }

    /// Parses a program file, naming the byte offset of anything malformed.
    pub fn from_bytes(bytes: &[u8]) -> Result<Program> {
        let mut r = Reader { bytes, pos: 0 };
        let magic = r.take(4, "the magic number")?;
        if magic != MAGIC {
            return Err(Error::BadProgram {
                offset: 0,
                what: format!("not an npu program (magic {magic:02x?}, expected \"NPU1\")"),
            });
        }
        let v = r.take(2, "the version")?;
        let version = u16::from_le_bytes([v[0], v[1]]);
        if version != FORMAT_VERSION {
            return Err(Error::BadProgram {
                offset: 4,
                what: format!("unsupported format version {version} (expected {FORMAT_VERSION})"),
            });
        }
        if r.take(2, "the header")? != [0, 0] {
            return Err(Error::BadProgram { offset: 6, what: "reserved header bytes are not zero".into() });
        }
        let n = r.u32("the instruction count")? as usize;
        let m = r.u32("the segment count")? as usize;
        let mut code = Vec::with_capacity(n.min(bytes.len() / INSTR_BYTES));
        for index in 0..n {
            let offset = r.pos;
            let word = r.take(INSTR_BYTES, &format!("instruction {index}"))?;
            let mut w = [0u8; INSTR_BYTES];
            w.copy_from_slice(word);
            code.push(decode(&w).map_err(|e| Error::AtInstruction { index, offset, source: Box::new(e) })?);
        }
        let mut data = Vec::with_capacity(m.min(bytes.len() / 12));
        for i in 0..m {
            let offset = r.pos;
            let head = r.take(4, &format!("segment {i} header"))?;
            let space = Space::ALL.get(usize::from(head[0])).copied().ok_or_else(|| Error::BadProgram {
                offset,
                what: format!("segment {i}: unknown memory space {}", head[0]),
            })?;
            if head[1..] != [0, 0, 0] {
                return Err(Error::BadProgram {
                    offset: offset + 1,
                    what: format!("segment {i}: reserved bytes are not zero"),
                });
            }
            let addr = r.u32(&format!("segment {i} address"))?;
            let len = r.u32(&format!("segment {i} length"))? as usize;
            let seg_bytes = r.take(len, &format!("segment {i} data"))?.to_vec();
            if u64::from(addr) + len as u64 > 1u64 << 32 {
                return Err(Error::BadProgram {
                    offset,
                    what: format!("segment {i}: {len} bytes at {addr:#x} run past the 4 GiB address space"),
                });
            }
            data.push(Segment { space, addr, bytes: seg_bytes });
        }
        if r.pos != bytes.len() {
            return Err(Error::BadProgram {
                offset: r.pos,
                what: format!("{} trailing bytes after the last segment", bytes.len() - r.pos),
            });
        }
        Ok(Program { code, data })
    }
}
