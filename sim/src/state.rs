//! Architectural state: the contents of every memory.

use npu_hw::HwConfig;
use npu_isa::{ExtSpace, LocalSpace, Program, Space, StoreSpace};

use crate::error::{Error, Result, TrapKind};

/// The contents of every memory of the machine, as bytes. Accumulators are int32
/// little-endian words in the `acc` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    mem: [Vec<u8>; 6],
}

fn index(space: Space) -> usize {
    space as usize
}

/// The [`Space`] of a DMA-in destination.
pub fn local_space(s: LocalSpace) -> Space {
    match s {
        LocalSpace::Act => Space::Act,
        LocalSpace::Wgt => Space::Wgt,
        LocalSpace::Par => Space::Par,
        LocalSpace::Acc => Space::Acc,
    }
}

/// The [`Space`] of an external memory.
pub fn ext_space(s: ExtSpace) -> Space {
    match s {
        ExtSpace::Dram => Space::Dram,
        ExtSpace::Sram => Space::Sram,
    }
}

/// The [`Space`] of a DMA-out source.
pub fn store_space(s: StoreSpace) -> Space {
    match s {
        StoreSpace::Act => Space::Act,
        StoreSpace::Acc => Space::Acc,
    }
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
    /// A machine with zeroed memories sized for `hw` and the program's data loaded.
    pub fn new(hw: &HwConfig, program: &Program) -> Result<Machine> {
        let mem = [Space::Dram, Space::Sram, Space::Act, Space::Wgt, Space::Par, Space::Acc]
            .map(|s| vec![0u8; space_size(hw, s) as usize]);
        let mut m = Machine { mem };
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

    /// All bytes of `space`, writable.
    pub fn bytes_mut(&mut self, space: Space) -> &mut [u8] {
        &mut self.mem[index(space)]
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

    /// Sets the int32 accumulator at word index `word`.
    pub fn set_acc(&mut self, word: usize, v: i32) {
        self.mem[index(Space::Acc)][word * 4..word * 4 + 4].copy_from_slice(&v.to_le_bytes());
    }
}
