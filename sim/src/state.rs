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
    /// Whether the AVX-512 VNNI kernels may run (else the AVX2 ones, as on a CPU without
    /// AVX-512 VNNI).
    vnni: bool,
    /// The fast kernels' activation tile, kept between instructions so each does not
    /// allocate its own (contents meaningless between uses; not machine state).
    tile: Vec<u8>,
    /// Where ranges of the weight buffer came from, while their bytes are untouched
    /// since ([`Origin`]); cleared by any write over them and by [`Machine::reset`].
    origins: Vec<Origin>,
    /// Per machine (so per program), results of pure functions of bytes identified by
    /// their [`Origin`] rather than compared: weights by origin and offset, and
    /// decoded streams read from the program's untouched initial bytes.
    known: Known,
}

/// A range of the weight buffer written by a DMA-in (`ld` or `ldz`) from bytes of the
/// program's initial memory that no instruction or host write had touched — so its
/// bytes are a function of the instruction's operands alone, the same at every reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Origin {
    lo: usize,
    hi: usize,
    /// The instruction's kind and operands.
    source: [u32; 17],
}

/// The most [`Origin`]s kept (the newest); older ranges are then compared by bytes.
const ORIGINS: usize = 64;

/// Weights identified by origin: the load's kind and operands, the offset into what it
/// wrote, then length, mode, output channels, taps and packing.
type KnownWeights = ([u32; 17], usize, usize, u8, usize, usize, u8);

/// See [`Machine`]'s `known`.
#[derive(Debug, Default, Clone)]
struct Known {
    /// The program's initial data, by address, to tell a reset to another program.
    program: usize,
    weights: HashMap<KnownWeights, Arc<Weights>>,
    streams: HashMap<StreamKey, Arc<Vec<u8>>>,
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
        // Untouched initial bytes are the same at every reset: known without comparing.
        let pristine = self.pristine(space, addr as usize, addr as usize + len as usize);
        if pristine {
            if let Some(d) = self.known.streams.get(&key) {
                return Ok(d.clone());
            }
        }
        let src = &self.mem[index(space)][addr as usize..addr as usize + len as usize];
        let mut memo = self.memo.lock();
        let out = match memo.streams.get(&key) {
            Some((s, d)) if s.as_slice() == src => d.clone(),
            _ => {
                let out = Arc::new(decode(src)?);
                memo.streams.insert(key, (src.to_vec(), out.clone()));
                out
            }
        };
        drop(memo);
        if pristine {
            self.known.streams.insert(key, out.clone());
        }
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
        // Bytes whose origin is known are identified by it, not compared.
        let (a, b) = (addr as usize, addr as usize + len);
        let known = self
            .origins
            .iter()
            .find(|o| o.lo <= a && b <= o.hi)
            .map(|o| (o.source, a - o.lo, len, mode as u8, cols, taps, pack as u8));
        if let Some(w) = known.and_then(|id| self.known.weights.get(&id)) {
            return Ok(w.clone());
        }
        let w = self.weights_by_bytes(k, pack, decode)?;
        if let Some(id) = known {
            self.known.weights.insert(id, w.clone());
        }
        Ok(w)
    }

    /// [`Machine::weights`] from the memo shared by machines, by comparing bytes.
    fn weights_by_bytes<E>(
        &mut self,
        k: WeightKey,
        pack: Packing,
        decode: impl FnOnce(&[u8]) -> Result<Vec<i32>, E>,
    ) -> Result<Arc<Weights>, E> {
        let (addr, len, _, cols, taps, _) = k;
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

    /// True if bytes `lo..hi` of `space` are as the program's load left them (no
    /// instruction or host write since, as far as the written span tells).
    pub(crate) fn pristine(&self, space: Space, lo: usize, hi: usize) -> bool {
        self.dirty[index(space)].is_none_or(|(a, b)| hi <= a || b <= lo)
    }

    /// Records that weight-buffer bytes `lo..hi`, just written, are the result of the
    /// DMA-in `source` (kind and operands) from untouched initial bytes.
    pub(crate) fn set_origin(&mut self, lo: usize, hi: usize, source: [u32; 17]) {
        if self.origins.len() >= ORIGINS {
            self.origins.remove(0);
        }
        self.origins.push(Origin { lo, hi, source });
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

    /// Lets this machine use the AVX-512 VNNI kernels (`true`, the default) or only the
    /// AVX2 ones, as a CPU without AVX-512 VNNI would (`false`; the differential tests
    /// run all three ways).
    pub fn set_vnni_kernels(&mut self, on: bool) {
        self.vnni = on;
    }

    /// True if this machine runs the AVX-512 VNNI kernels (all of [`crate::kernels`]).
    pub fn fast_kernels(&self) -> bool {
        self.fast && self.vnni && crate::kernels::available()
    }

    /// True if this machine runs the kernels of [`crate::kernels`] at all: the AVX-512
    /// VNNI ones ([`Machine::fast_kernels`]) or the AVX2 ones.
    pub fn any_kernels(&self) -> bool {
        self.fast && crate::kernels::avx2_available()
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
        let mut m = Machine {
            mem,
            dirty: [None; 6],
            memo: WeightMemo::default(),
            fast: true,
            vnni: true,
            tile: Vec::new(),
            origins: Vec::new(),
            known: Known { program: program.data.as_ptr() as usize, ..Known::default() },
        };
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

    /// Copies bytes `src..src+len` of `from` to `dst..dst+len` of `to` (another memory),
    /// marking them written. The ranges must be inside the memories.
    pub(crate) fn copy_between(&mut self, from: Space, src: usize, to: Space, dst: usize, len: usize) {
        self.touch(to, dst, len);
        let (f, t) = (index(from), index(to));
        assert_ne!(f, t, "a copy between two memories");
        let (a, b) = if f < t {
            let (lo, hi) = self.mem.split_at_mut(t);
            (&lo[f], &mut hi[0])
        } else {
            let (lo, hi) = self.mem.split_at_mut(f);
            (&hi[0], &mut lo[t])
        };
        b[dst..dst + len].copy_from_slice(&a[src..src + len]);
    }

    /// Marks `start..start+len` of `space` as written.
    pub fn touch(&mut self, space: Space, start: usize, len: usize) {
        if len == 0 {
            return;
        }
        if space == Space::Wgt && !self.origins.is_empty() {
            self.origins.retain(|o| o.hi <= start || o.lo >= start + len);
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
        self.origins.clear();
        if program.data.as_ptr() as usize != self.known.program {
            self.known = Known { program: program.data.as_ptr() as usize, ..Known::default() };
        }
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

    /// Weights identified by the origin of their bytes are served without comparing
    /// them — and only while no write has touched those bytes since.
    #[test]
    fn weights_known_by_origin_are_forgotten_when_their_bytes_are_written() {
        let hw = npu_hw::preset("edge-256").expect("preset");
        let p = npu_isa::assemble("halt", "t.s").expect("assembles");
        let mut m = Machine::new(&hw, &p).expect("loads");
        let decode = |b: &[u8]| Ok::<_, String>(b.iter().map(|x| i32::from(*x)).collect());
        let key = (16, 4, npu_isa::MacMode::I8, 1, 1);
        m.region_mut(Space::Wgt, 16, 4).copy_from_slice(&[1, 2, 3, 4]);
        m.set_origin(12, 24, [7; 17]);
        let first = m.weights(key, Packing::None, decode).expect("decodes");
        assert_eq!(first.values, vec![1, 2, 3, 4]);
        // Known by origin: no decoding (and no comparison) needed.
        let again = m.weights(key, Packing::None, |_| Err("decoded again".to_string())).expect("known");
        assert!(Arc::ptr_eq(&first, &again));
        // A write beside the range keeps it; one inside forgets it.
        m.region_mut(Space::Wgt, 24, 1)[0] = 9;
        assert!(m.weights(key, Packing::None, |_| Err("decoded again".to_string())).is_ok());
        m.region_mut(Space::Wgt, 18, 1)[0] = 99;
        let changed = m.weights(key, Packing::None, decode).expect("decodes");
        assert_eq!(changed.values, vec![1, 2, 99, 4]);
        // A reset forgets every origin.
        m.set_origin(16, 20, [8; 17]);
        m.reset(&p);
        assert!(m.origins.is_empty());
    }

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
