//! Architectural state: the contents of every memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use npu_hw::HwConfig;
use npu_isa::{Program, Space};

use crate::error::{Error, Result, TrapKind};

/// The contents of every memory of the machine, as bytes. Accumulators are int32
/// little-endian words in the `acc` bytes.
#[derive(Debug, Clone)]
pub struct Machine {
    mem: [Vec<u8>; 6],
    /// Per memory, the byte range written since the data segments were loaded (by
    /// instructions or by the host), so [`Machine::reset`] restores only those bytes.
    dirty: [Option<(usize, usize)>; 6],
    /// Memos of pure functions of memory contents, each result kept with the bytes it
    /// came from and used only when they are the current bytes: decoded weight streams
    /// (`ldz`) by `(space, address, length, codec)`, and weights decoded (and, for the
    /// fast kernels, packed) by `(address, length, mode, output channels, taps)`. So
    /// replaying a program does not decode the same weights again.
    memo: WeightMemo,
    /// Whether `conv` and `mm` may use [`crate::kernels`] (when the CPU has them).
    fast: bool,
    /// The fast kernels' activation tile, kept between instructions so each does not
    /// allocate its own (contents meaningless between uses; not machine state).
    tile: Vec<u8>,
}

/// Decoded weights and weight streams (see [`Machine`]'s `memo`), shareable between the
/// machines that replay one program on several threads ([`crate::Replay::machine`]):
/// each stream is then decoded and packed once, whichever machine meets it first.
#[derive(Debug, Clone, Default)]
pub struct WeightMemo(Arc<Mutex<Memos>>);

/// Bytes and what was derived from them (of any type).
type Derived = (Vec<u8>, Arc<dyn std::any::Any + Send + Sync>);

/// A weight stream's bytes and what they decoded to.
type Seen = (Vec<u8>, Arc<Weights>);

#[derive(Debug, Default)]
struct Memos {
    streams: HashMap<StreamKey, (Vec<u8>, Arc<Vec<u8>>)>,
    weights: HashMap<WeightKey, Vec<Seen>>,
    tables: HashMap<Vec<u8>, Arc<Vec<u8>>>,
    derived: HashMap<(u8, [u32; 16], usize, u64, usize), Derived>,
}

impl WeightMemo {
    fn lock(&self) -> std::sync::MutexGuard<'_, Memos> {
        // A poisoned lock only means another thread panicked while holding it; the
        // memo itself is consistent between statements.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Tables kept by the memo (64 KiB each at most, 16 MiB in all); beyond, it starts afresh.
const TABLE_MEMO_LIMIT: usize = 256;

/// Streams kept per weight-memo key (the most recently used): bounds the memo of a
/// program whose weights change with its inputs.
const WEIGHT_MEMO_DEPTH: usize = 256;

/// A weight stream's address, length, MAC mode, shape `(cols, taps)` and packing.
type WeightKey = (u32, usize, u8, usize, usize, u8);

/// How the fast kernels want a weight stream packed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packing {
    /// Values only (the scalar loops).
    None,
    /// [`crate::kernels::Packed`], for `conv` and `mm` (values `[col][tap][k]`).
    Dense,
    /// [`crate::kernels::PackedDw`], for a depthwise `conv` (values `[tap][col]`).
    Depthwise,
}

/// Weights decoded from the weight buffer: their values and, where every value is an
/// `i8` and a packing was asked for, the fast kernels' packing.
#[derive(Debug)]
pub struct Weights {
    /// Values, as the scalar loops read them.
    pub values: Vec<i32>,
    /// The dense kernels' packing ([`Packing::Dense`], when representable).
    pub packed: Option<crate::kernels::Packed>,
    /// The depthwise kernel's packing ([`Packing::Depthwise`], when representable and
    /// the CPU runs that kernel).
    pub dw: Option<crate::kernels::PackedDw>,
}

/// A compressed stream's memory, address, length, codec and the number of values decoded.
type StreamKey = (usize, u64, u32, u8, u32);

impl PartialEq for Machine {
    fn eq(&self, other: &Machine) -> bool {
        self.mem == other.mem
    }
}

impl Eq for Machine {}

fn index(space: Space) -> usize {
    space as usize
}

/// Size in bytes of `space` on `hw`.
pub fn space_size(hw: &HwConfig, space: Space) -> u64 {
    u64::from(match space {
        Space::Dram => hw.memories.dram.bytes,
        Space::Sram => hw.memories.sram.bytes,
        Space::Act => hw.buffers.act.bytes,
        Space::Wgt => hw.buffers.wgt.bytes,
        Space::Par => hw.buffers.par.bytes,
        Space::Acc => hw.buffers.acc.bytes,
    })
}

/// Checks that `start..start+len` lies in `space`.
pub fn check(hw: &HwConfig, space: Space, operand: &'static str, start: u64, len: u64) -> Result<(), TrapKind> {
    let size = space_size(hw, space);
    let end = start.saturating_add(len);
    if end > size {
        return Err(TrapKind::OutOfBounds { operand, space: space.name(), start, end, size });
    }
    Ok(())
}

impl Machine {
    /// The `values` decoded bytes of the stream `(space, addr, len)` under `codec`, from
    /// the memo when the stream's bytes are the ones decoded before; `decode` otherwise.
    pub fn decoded(
        &mut self,
        space: Space,
        (addr, len): (u64, u32),
        codec: npu_isa::Codec,
        values: u32,
        decode: impl FnOnce(&[u8]) -> Result<Vec<u8>, String>,
    ) -> Result<Arc<Vec<u8>>, String> {
        let key = (index(space), addr, len, codec as u8, values);
        let src = &self.mem[index(space)][addr as usize..addr as usize + len as usize];
        let mut memo = self.memo.lock();
        if let Some((s, d)) = memo.streams.get(&key) {
            if s.as_slice() == src {
                return Ok(d.clone());
            }
        }
        let out = Arc::new(decode(src)?);
        memo.streams.insert(key, (src.to_vec(), out.clone()));
        Ok(out)
    }

    /// The weights `len` bytes at `addr` of the weight buffer decode to in `mode`, shaped
    /// `[cols][taps][len / (cols·taps)]`: from the memo when those bytes are the ones
    /// decoded before, else `decode(bytes)` (packed too when `pack`).
    pub(crate) fn weights<E>(
        &mut self,
        key: (u32, usize, npu_isa::MacMode, usize, usize),
        pack: Packing,
        decode: impl FnOnce(&[u8]) -> Result<Vec<i32>, E>,
    ) -> Result<Arc<Weights>, E> {
        let (addr, len, mode, cols, taps) = key;
        let k = (addr, len, mode as u8, cols, taps, pack as u8);
        let src = &self.mem[index(Space::Wgt)][addr as usize..addr as usize + len];
        let mut memo = self.memo.lock();
        // Several streams share an address when a program loads layer after layer (or
        // tile after tile) into one part of the buffer: keep each, the newest first.
        let seen = memo.weights.entry(k).or_default();
        if let Some(i) = seen.iter().position(|(s, _)| s.as_slice() == src) {
            let hit = seen.remove(i);
            let w = hit.1.clone();
            seen.insert(0, hit);
            return Ok(w);
        }
        let values = decode(src)?;
        let packed = match pack {
            Packing::Dense if cols * taps > 0 => crate::kernels::Packed::new(&values, cols, taps, len / (cols * taps)),
            _ => None,
        };
        let dw = match pack {
            Packing::Depthwise if crate::kernels::depthwise_packed_available() => {
                crate::kernels::PackedDw::new(&values, taps, cols)
            }
            _ => None,
        };
        let w = Arc::new(Weights { values, packed, dw });
        seen.truncate(WEIGHT_MEMO_DEPTH - 1);
        seen.insert(0, (src.to_vec(), w.clone()));
        Ok(w)
    }

    /// The table `build` makes from the parameters `key` (an instruction's operands and
    /// the parameter bytes it reads, which determine the table entirely), from the memo
    /// when built before.
    pub(crate) fn table(&mut self, key: Vec<u8>, build: impl FnOnce() -> Vec<u8>) -> Arc<Vec<u8>> {
        let mut memo = self.memo.lock();
        if let Some(t) = memo.tables.get(&key) {
            return t.clone();
        }
        if memo.tables.len() >= TABLE_MEMO_LIMIT {
            memo.tables.clear();
        }
        let t = Arc::new(build());
        memo.tables.insert(key, t.clone());
        t
    }

    /// `build` applied to bytes `addr..addr+len` of `space` (which must lie inside it),
    /// from the memo when those bytes are the ones it was applied to before. `kind` and
    /// `fields` (the instruction's operands that `build` depends on) tell apart the uses
    /// of one address.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn derived<T: std::any::Any + Send + Sync, E>(
        &mut self,
        kind: u8,
        fields: [u32; 16],
        space: Space,
        addr: u64,
        len: usize,
        build: impl FnOnce(&[u8]) -> Result<T, E>,
    ) -> Result<Arc<T>, E> {
        let key = (kind, fields, index(space), addr, len);
        let src = &self.mem[index(space)][addr as usize..addr as usize + len];
        let mut memo = self.memo.lock();
        if let Some((s, v)) = memo.derived.get(&key) {
            if s.as_slice() == src {
                if let Ok(t) = v.clone().downcast::<T>() {
                    return Ok(t);
                }
            }
        }
        let t = Arc::new(build(src)?);
        memo.derived.insert(key, (src.to_vec(), t.clone()));
        Ok(t)
    }

    /// Makes this machine use `memo` for decoded weights (shared with the machines
    /// given the same memo).
    pub fn share_weights(&mut self, memo: &WeightMemo) {
        self.memo = memo.clone();
    }

    /// Turns the fast kernels ([`crate::kernels`]) on or off for this machine (on by
    /// default; they run only where the CPU has them). Results are the same either
    /// way — the differential tests compare the two.
    pub fn set_fast_kernels(&mut self, on: bool) {
        self.fast = on;
    }

    /// The scratch buffer for an activation tile (empty or holding a previous tile);
    /// give it back with [`Machine::put_tile`].
    pub(crate) fn take_tile(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.tile)
    }

    /// Keeps `tile`'s allocation for the next instruction.
    pub(crate) fn put_tile(&mut self, tile: Vec<u8>) {
        self.tile = tile;
    }

    /// True if `conv` and `mm` run the fast kernels on this machine and CPU.
    pub fn fast_kernels(&self) -> bool {
        self.fast && crate::kernels::available()
    }

    /// True if the memories are sized as `hw`'s.
    pub fn is_of(&self, hw: &HwConfig) -> bool {
        [Space::Dram, Space::Sram, Space::Act, Space::Wgt, Space::Par, Space::Acc]
            .iter()
            .all(|s| self.mem[index(*s)].len() as u64 == space_size(hw, *s))
    }

    /// A machine with zeroed memories sized for `hw` and the program's data loaded.
    /// Every instruction's operands are checked against their fields first, so a
    /// program built in memory is held to what the decoder enforces on files.
    pub fn new(hw: &HwConfig, program: &Program) -> Result<Machine> {
        for (index, instr) in program.code.iter().enumerate() {
            npu_isa::validate(instr).map_err(|source| Error::Instruction { index, source })?;
        }
        let mem = [Space::Dram, Space::Sram, Space::Act, Space::Wgt, Space::Par, Space::Acc]
            .map(|s| vec![0u8; space_size(hw, s) as usize]);
        let mut m = Machine { mem, dirty: [None; 6], memo: WeightMemo::default(), fast: true, tile: Vec::new() };
        for (i, seg) in program.data.iter().enumerate() {
            let size = space_size(hw, seg.space);
            if seg.end() > size {
                return Err(Error::SegmentOutOfRange {
                    index: i,
                    space: seg.space.name(),
                    start: u64::from(seg.addr),
                    end: seg.end(),
                    size,
                    hw: hw.name.clone(),
                });
            }
            let a = seg.addr as usize;
            m.mem[index(seg.space)][a..a + seg.bytes.len()].copy_from_slice(&seg.bytes);
        }
        Ok(m)
    }

    /// All bytes of `space`.
    pub fn bytes(&self, space: Space) -> &[u8] {
        &self.mem[index(space)]
    }

    /// All bytes of `space`, writable (all marked as written).
    pub fn bytes_mut(&mut self, space: Space) -> &mut [u8] {
        let len = self.mem[index(space)].len();
        self.touch(space, 0, len);
        &mut self.mem[index(space)]
    }

    /// Bytes `start..start+len` of `space`, writable and marked as written. The range
    /// must be inside the memory (instructions check their operands first).
    pub fn region_mut(&mut self, space: Space, start: usize, len: usize) -> &mut [u8] {
        self.touch(space, start, len);
        &mut self.mem[index(space)][start..start + len]
    }

    /// Marks `start..start+len` of `space` as written.
    pub fn touch(&mut self, space: Space, start: usize, len: usize) {
        if len == 0 {
            return;
        }
        let d = &mut self.dirty[index(space)];
        *d = Some(d.map_or((start, start + len), |(a, b)| (a.min(start), b.max(start + len))));
    }

    /// Host write of `bytes` at `addr` of `space` (an input), bounds-checked.
    pub fn write(&mut self, space: Space, addr: u64, bytes: &[u8]) -> Result<()> {
        let size = self.mem[index(space)].len() as u64;
        let end = addr.saturating_add(bytes.len() as u64);
        if end > size {
            return Err(Error::SegmentOutOfRange {
                index: 0,
                space: space.name(),
                start: addr,
                end,
                size,
                hw: String::from("this machine"),
            });
        }
        self.region_mut(space, addr as usize, bytes.len()).copy_from_slice(bytes);
        Ok(())
    }

    /// Restores the state [`Machine::new`] creates for `program` (the one this machine
    /// was made for): bytes written since are zeroed and the program's data segments
    /// copied back where they overlap them. Costs the bytes written, not the memories.
    pub fn reset(&mut self, program: &Program) {
        for (i, d) in self.dirty.iter_mut().enumerate() {
            let Some((a, b)) = d.take() else { continue };
            self.mem[i][a..b].fill(0);
            for seg in program.data.iter().filter(|s| index(s.space) == i) {
                let (s0, s1) = (seg.addr as usize, seg.addr as usize + seg.bytes.len());
                let (lo, hi) = (s0.max(a), s1.min(b));
                if lo < hi {
                    self.mem[i][lo..hi].copy_from_slice(&seg.bytes[lo - s0..hi - s0]);
                }
            }
        }
    }

    /// Bytes `start..start+len` of `space`, if inside.
    pub fn read(&self, space: Space, start: u64, len: u64) -> Option<&[u8]> {
        let m = &self.mem[index(space)];
        let s = usize::try_from(start).ok()?;
        let e = s.checked_add(usize::try_from(len).ok()?)?;
        m.get(s..e)
    }

    /// The int32 accumulator at word index `word`.
    pub fn acc(&self, word: usize) -> i32 {
        let b = &self.mem[index(Space::Acc)][word * 4..word * 4 + 4];
        i32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }

    /// The accumulator bytes and the activation bytes, the second writable (the
    /// requantization unit reads one and writes the other).
    pub fn acc_and_act_mut(&mut self, act_start: usize, act_len: usize) -> (&[u8], &mut [u8]) {
        self.touch(Space::Act, act_start, act_len);
        let (low, high) = self.mem.split_at_mut(index(Space::Acc));
        (&high[0], &mut low[index(Space::Act)])
    }

    /// Sets the int32 accumulator at word index `word`.
    pub fn set_acc(&mut self, word: usize, v: i32) {
        self.touch(Space::Acc, word * 4, 4);
        self.mem[index(Space::Acc)][word * 4..word * 4 + 4].copy_from_slice(&v.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The regression guarded: the memo of decoded streams was keyed without the number
    /// of values, so two `ldz` reading one stream for different counts got the first
    /// one's bytes.
    #[test]
    fn decoded_streams_are_memoized_per_value_count() {
        let hw = npu_hw::preset("edge-256").expect("preset");
        let p = npu_isa::assemble("halt", "t.s").expect("assembles");
        let mut m = Machine::new(&hw, &p).expect("loads");
        let codec = npu_isa::Codec::Rice;
        let four = m.decoded(Space::Dram, (0, 8), codec, 4, |_| Ok(vec![1; 4])).expect("decodes");
        let eight = m.decoded(Space::Dram, (0, 8), codec, 8, |_| Ok(vec![2; 8])).expect("decodes");
        assert_eq!((four.len(), eight.len()), (4, 8));
        let again = m.decoded(Space::Dram, (0, 8), codec, 4, |_| Err("not memoized".into())).expect("memo");
        assert_eq!(*again, vec![1; 4]);
    }
}
