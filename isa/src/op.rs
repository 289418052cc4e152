//! The instruction table: every instruction of ISA v1, defined once.
//!
//! [`for_each_op!`] holds the table. It calls back a macro with every instruction:
//! its mnemonic, Rust name, executing unit, documentation and operand fields (type,
//! width in bits, optional narrower range, optional default). From that one table
//! this module derives the [`Op`] enum and one struct per instruction, and the
//! run-time schema ([`op_table`]) that the encoder, decoder, disassembler,
//! assembler and the generated `docs/isa.md` are written against, so none of
//! them can drift from another.

use std::sync::LazyLock;

use crate::fields::*;

/// The instruction table. `for_each_op!(callback)` invokes `callback!` with every
/// instruction in opcode order (opcode 1 first; opcode 0 is illegal).
#[macro_export]
macro_rules! for_each_op {
    ($m:ident) => {
        $m! {
            /// DMA-in: copies an up-to-3-D strided block from external memory into a local
            /// buffer, inserting padding around each plane and unpacking low-bit data.
            ///
            /// For `p < n2`, `y < n1`, `x < n0`, element `(p, y, x)` of `elem` values starts at
            /// external byte `src + p*s2 + y*s1 + x*s0`. The destination is dense: plane `p` is
            /// `(pt+n1+pb) × (pl+n0+pr)` elements; positions outside the source rectangle are
            /// filled with the byte `pv`. With `unpack=none` an element is `elem` bytes; otherwise
            /// it is `elem` packed values occupying `ceil(elem*bits/8)` source bytes, written as
            /// `elem` sign-extended bytes.
            ld = Ld : Ld {
                /// External memory read.
                ext: ExtSpace [1] = ExtSpace::Dram,
                /// Source byte address in `ext`.
                src: u32 [32],
                /// Local buffer written.
                loc: LocalSpace [2] = LocalSpace::Act,
                /// Destination byte address in `loc`.
                dst: u32 [20],
                /// Number of planes.
                n2: u32 [12, 1, 4095] = 1,
                /// Rows per plane.
                n1: u32 [12, 1, 4095] = 1,
                /// Elements per row.
                n0: u32 [12, 1, 4095] = 1,
                /// Values per element (bytes when not unpacking).
                elem: u32 [20, 1, 1048575] = 1,
                /// Source stride between planes, in bytes.
                s2: u32 [32] = 0,
                /// Source stride between rows, in bytes.
                s1: u32 [32] = 0,
                /// Source stride between elements, in bytes.
                s0: u32 [24] = 0,
                /// Padding rows above each plane.
                pt: u32 [4] = 0,
                /// Padding rows below each plane.
                pb: u32 [4] = 0,
                /// Padding elements left of each row.
                pl: u32 [4] = 0,
                /// Padding elements right of each row.
                pr: u32 [4] = 0,
                /// Padding byte value (an activation zero point, −128..=255).
                pv: i32 [9, -128, 255] = 0,
                /// Unpacking of packed low-bit source data.
                unpack: Unpack [2] = Unpack::None,
            }
            /// DMA-out: copies a dense local block to an up-to-3-D strided region of external memory.
            ///
            /// Element `(p, y, x)` of `elem` bytes is read densely from `loc` at
            /// `src + ((p*n1 + y)*n0 + x)*elem` and written at external byte `dst + p*s2 + y*s1 + x*s0`.
            st = St : St {
                /// Local buffer read.
                loc: StoreSpace [1] = StoreSpace::Act,
                /// Source byte address in `loc`.
                src: u32 [20],
                /// External memory written.
                ext: ExtSpace [1] = ExtSpace::Sram,
                /// Destination byte address in `ext`.
                dst: u32 [32],
                /// Number of planes.
                n2: u32 [12, 1, 4095] = 1,
                /// Rows per plane.
                n1: u32 [12, 1, 4095] = 1,
                /// Elements per row.
                n0: u32 [12, 1, 4095] = 1,
                /// Bytes per element.
                elem: u32 [20, 1, 1048575] = 1,
                /// Destination stride between planes, in bytes.
                s2: u32 [32] = 0,
                /// Destination stride between rows, in bytes.
                s1: u32 [32] = 0,
                /// Destination stride between elements, in bytes.
                s0: u32 [24] = 0,
            }
            /// Convolution tile on the MAC array: int32 accumulators `acc[dst + (oy*ow + ox)*cout + co]`
            /// receive `Σ act[ifm + (iy*iw + ix)*ps' + ci] · w[...]` over the kernel window, where
            /// `iy = oy*sy + ky*dy − pt`, `ix = ox*sx + kx*dx − pl`, `ps' = ps` or `cin` when `ps=0`,
            /// `oh = (pt + ih + pb − dy*(kh−1) − 1)/sy + 1` and likewise `ow`. Window positions outside
            /// the stored `ih × iw` tile (the `pt`/`pb`/`pl`/`pr` border) read the byte `pv` instead, so
            /// padding costs no buffer space (the array's input fetch inserts it).
            /// Normal: weights `w[wgt + ((co*kh + ky)*kw + kx)*cin + ci]`, summed over `ci < cin`.
            /// Depthwise (`dw=1`, `cout = cin`): channel `co` reads only input channel `co` and weights
            /// `w[wgt + (ky*kw + kx)*cout + co]`. `accum=0` overwrites the accumulators, `accum=1` adds.
            conv = Conv : Mac {
                /// Precision mode of the array.
                mode: MacMode [3] = MacMode::I8,
                /// 1: add to the accumulators; 0: overwrite them.
                accum: u32 [1] = 0,
                /// Activation type.
                at: ActType [1] = ActType::I8,
                /// 1: depthwise convolution.
                dw: u32 [1] = 0,
                /// Input tile byte address in `act`.
                ifm: u32 [20],
                /// Input tile height (stored rows, without `pt`/`pb`).
                ih: u32 [12, 1, 4095],
                /// Input tile width (stored columns, without `pl`/`pr`).
                iw: u32 [12, 1, 4095],
                /// Input channels.
                cin: u32 [12, 1, 4095],
                /// Bytes between input pixels; 0 means `cin` (dense).
                ps: u32 [12] = 0,
                /// Weight byte address in `wgt`.
                wgt: u32 [20],
                /// Kernel height.
                kh: u32 [4, 1, 15] = 1,
                /// Kernel width.
                kw: u32 [4, 1, 15] = 1,
                /// Vertical stride.
                sy: u32 [3, 1, 7] = 1,
                /// Horizontal stride.
                sx: u32 [3, 1, 7] = 1,
                /// Vertical dilation.
                dy: u32 [3, 1, 7] = 1,
                /// Horizontal dilation.
                dx: u32 [3, 1, 7] = 1,
                /// Padding rows above the tile.
                pt: u32 [4] = 0,
                /// Padding rows below the tile.
                pb: u32 [4] = 0,
                /// Padding columns left of the tile.
                pl: u32 [4] = 0,
                /// Padding columns right of the tile.
                pr: u32 [4] = 0,
                /// Padding value: the input zero point, as the byte it is stored as (−128..255).
                pv: i32 [9, -128, 255] = 0,
                /// Output channels.
                cout: u32 [12, 1, 4095],
                /// First accumulator (int32 word index in `acc`).
                dst: u32 [20],
            }
            /// Matrix multiply tile on the MAC array: `acc[c + i*n + j] (+)= Σ_k act[a + i*k + kk] · w[b + j*k + kk]`
            /// for `i < m`, `j < n`, `kk < k` (B is stored transposed, one row per output column).
            mm = Mm : Mac {
                /// Precision mode of the array.
                mode: MacMode [3] = MacMode::I8,
                /// 1: add to the accumulators; 0: overwrite them.
                accum: u32 [1] = 0,
                /// Activation type.
                at: ActType [1] = ActType::I8,
                /// A (m × k, row-major) byte address in `act`.
                a: u32 [20],
                /// Bᵀ (n × k, row-major) byte address in `wgt`.
                b: u32 [20],
                /// First accumulator (int32 word index in `acc`).
                c: u32 [20],
                /// Rows of A.
                m: u32 [16, 1, 65535],
                /// Reduction length.
                k: u32 [16, 1, 65535],
                /// Columns of B.
                n: u32 [12, 1, 4095],
            }
            /// Weight zero-point correction for asymmetric weights, on the MAC array: for the same
            /// window geometry as `conv`, `acc[dst + p*cout + co] −= zw[co] · Σ_window act`, with the
            /// int32 zero points `zw` read from `par` at `zp` (4 bytes per channel). This is the extra
            /// per-operand term `−z_w·Σa` that asymmetric weights cost; it is costed as a MAC pass.
            wzp = Wzp : Mac {
                /// Activation type.
                at: ActType [1] = ActType::I8,
                /// 1: depthwise window (channel `co` sums input channel `co` only).
                dw: u32 [1] = 0,
                /// Input tile byte address in `act`.
                ifm: u32 [20],
                /// Input tile height (stored rows, without `pt`/`pb`).
                ih: u32 [12, 1, 4095],
                /// Input tile width (stored columns, without `pl`/`pr`).
                iw: u32 [12, 1, 4095],
                /// Input channels.
                cin: u32 [12, 1, 4095],
                /// Bytes between input pixels; 0 means `cin`.
                ps: u32 [12] = 0,
                /// Kernel height.
                kh: u32 [4, 1, 15] = 1,
                /// Kernel width.
                kw: u32 [4, 1, 15] = 1,
                /// Vertical stride.
                sy: u32 [3, 1, 7] = 1,
                /// Horizontal stride.
                sx: u32 [3, 1, 7] = 1,
                /// Vertical dilation.
                dy: u32 [3, 1, 7] = 1,
                /// Horizontal dilation.
                dx: u32 [3, 1, 7] = 1,
                /// Padding rows above the tile.
                pt: u32 [4] = 0,
                /// Padding rows below the tile.
                pb: u32 [4] = 0,
                /// Padding columns left of the tile.
                pl: u32 [4] = 0,
                /// Padding columns right of the tile.
                pr: u32 [4] = 0,
                /// Padding value: the input zero point, as the byte it is stored as (−128..255).
                pv: i32 [9, -128, 255] = 0,
                /// Output channels.
                cout: u32 [12, 1, 4095],
                /// Byte address in `par` of `cout` little-endian int32 weight zero points.
                zp: u32 [20],
                /// First accumulator (int32 word index in `acc`).
                dst: u32 [20],
            }
            /// Requantization: for `n` pixels of `c` channels, reads int32 `acc[src + p*c + ch]`, adds the
            /// channel's int32 bias (saturating), scales by the channel's multiplier and shift (or shift
            /// only), adds `zo`, saturates to `ot` and clamps to `[lo, hi]` (fused ReLU/ReLU6), and writes
            /// one byte to `act[dst + p*ps' + ch]` (`ps' = ps`, or `c` when `ps=0`). Parameters are
            /// 12-byte records in `par` at `par` (bias i32, multiplier i32, shift i32, little-endian),
            /// one per channel (`pc=1`) or one for all (`pc=0`). Shift > 0 shifts left.
            rq = Rq : Rq {
                /// Scaling mode.
                mode: RqMode [2] = RqMode::Mul,
                /// 1: one parameter record per channel; 0: one record for the tensor.
                pc: u32 [1] = 1,
                /// Output type.
                ot: OutType [2] = OutType::I8,
                /// First accumulator (int32 word index in `acc`).
                src: u32 [20],
                /// Pixels.
                n: u32 [16, 1, 65535],
                /// Channels per pixel.
                c: u32 [12, 1, 4095],
                /// Parameter table byte address in `par`.
                par: u32 [20],
                /// Output byte address in `act`.
                dst: u32 [20],
                /// Bytes between output pixels; 0 means `c`.
                ps: u32 [12] = 0,
                /// Output zero point.
                zo: i32 [9, -256, 255] = 0,
                /// Lower clamp (after saturation to `ot`).
                lo: i32 [9, -256, 255] = -256,
                /// Upper clamp (after saturation to `ot`).
                hi: i32 [9, -256, 255] = 255,
            }
            /// Elementwise add with per-input rescale (TFLite ADD): with the 40-byte record at `par`
            /// (int32 `za, zb, zo, lshift, ma, sa, mb, sb, mo, so`), computes for `i < n`
            /// `x = MBQM((a[i]−za)<<lshift, ma, sa) + MBQM((b[i]−zb)<<lshift, mb, sb)`,
            /// `out[i] = clamp(sat(MBQM(x, mo, so) + zo), lo, hi)`. MBQM uses double rounding.
            vadd = Vadd : Vector {
                /// Type of inputs and output.
                ty: ActType [1] = ActType::I8,
                /// First input byte address in `act`.
                a: u32 [20],
                /// Second input byte address in `act`.
                b: u32 [20],
                /// Output byte address in `act`.
                dst: u32 [20],
                /// Elements.
                n: u32 [20, 1, 1048575],
                /// Parameter record byte address in `par`.
                par: u32 [20],
                /// Lower clamp.
                lo: i32 [9, -256, 255] = -256,
                /// Upper clamp.
                hi: i32 [9, -256, 255] = 255,
            }
            /// Elementwise subtract with per-input rescale: as `vadd` with the second scaled term subtracted.
            vsub = Vsub : Vector {
                /// Type of inputs and output.
                ty: ActType [1] = ActType::I8,
                /// First input byte address in `act`.
                a: u32 [20],
                /// Second input byte address in `act`.
                b: u32 [20],
                /// Output byte address in `act`.
                dst: u32 [20],
                /// Elements.
                n: u32 [20, 1, 1048575],
                /// Parameter record byte address in `par`.
                par: u32 [20],
                /// Lower clamp.
                lo: i32 [9, -256, 255] = -256,
                /// Upper clamp.
                hi: i32 [9, -256, 255] = 255,
            }
            /// Elementwise multiply (TFLite MUL): with the same 40-byte record as `vadd` (`lshift, ma, sa,
            /// mb, sb` unused), `out[i] = clamp(sat(MBQM((a[i]−za)·(b[i]−zb), mo, so) + zo), lo, hi)`.
            vmul = Vmul : Vector {
                /// Type of inputs and output.
                ty: ActType [1] = ActType::I8,
                /// First input byte address in `act`.
                a: u32 [20],
                /// Second input byte address in `act`.
                b: u32 [20],
                /// Output byte address in `act`.
                dst: u32 [20],
                /// Elements.
                n: u32 [20, 1, 1048575],
                /// Parameter record byte address in `par`.
                par: u32 [20],
                /// Lower clamp.
                lo: i32 [9, -256, 255] = -256,
                /// Upper clamp.
                hi: i32 [9, -256, 255] = 255,
            }
            /// Max or average pooling over an `ih × iw × c` tile in `act` with implicit padding
            /// (padded positions are excluded). Output `oh = (pt+ih+pb−kh)/sy + 1` (likewise `ow`) pixels
            /// of `c` bytes, dense at `dst`. Average divides the window sum by the count of in-bounds
            /// elements, rounding half away from zero (TFLite's integer AVERAGE_POOL_2D). A window of
            /// the whole tile is global pooling.
            pool = Pool : Vector {
                /// Reduction.
                kind: PoolKind [1] = PoolKind::Max,
                /// Element type.
                ty: ActType [1] = ActType::I8,
                /// Input byte address in `act`.
                src: u32 [20],
                /// Input height.
                ih: u32 [12, 1, 4095],
                /// Input width.
                iw: u32 [12, 1, 4095],
                /// Channels.
                c: u32 [12, 1, 4095],
                /// Window height.
                kh: u32 [8, 1, 255],
                /// Window width.
                kw: u32 [8, 1, 255],
                /// Vertical stride.
                sy: u32 [4, 1, 15] = 1,
                /// Horizontal stride.
                sx: u32 [4, 1, 15] = 1,
                /// Implicit padding rows above.
                pt: u32 [4] = 0,
                /// Implicit padding rows below.
                pb: u32 [4] = 0,
                /// Implicit padding columns left.
                pl: u32 [4] = 0,
                /// Implicit padding columns right.
                pr: u32 [4] = 0,
                /// Output byte address in `act`.
                dst: u32 [20],
            }
            /// Lookup-table activation: `act[dst + i] = par[table + idx]` where `idx` is the input
            /// byte as unsigned (u8) or the input plus 128 (i8), for `i < n`. The table has 256 bytes.
            lut = Lut : Vector {
                /// Input type (selects the indexing).
                ty: ActType [1] = ActType::I8,
                /// Input byte address in `act`.
                src: u32 [20],
                /// Output byte address in `act`.
                dst: u32 [20],
                /// Elements.
                n: u32 [20, 1, 1048575],
                /// Table byte address in `par`.
                table: u32 [20],
            }
            /// Synchronization only: queued on `unit`, it waits for and signals dependency tokens
            /// and does nothing else.
            sync = SyncOp : Sync {
                /// Unit whose queue the instruction enters (an NPU unit: the host has no queue).
                unit: Unit [3, 0, 5],
            }
            /// Starts a loop: the instructions up to the matching `endloop` are dispatched `n` times.
            /// Loops nest up to 8 deep. Executed by the fetch unit; carries no tokens.
            loop = Loop : Ctrl {
                /// Iterations.
                n: u32 [16, 1, 65535],
            }
            /// Ends the innermost loop. Executed by the fetch unit; carries no tokens.
            endloop = EndLoop : Ctrl {}
            /// Stops dispatch. The run ends once every unit has drained its queue. Reaching the
            /// end of the program is the same as `halt`.
            halt = Halt : Ctrl {}
            /// Does nothing. Executed by the fetch unit; carries no tokens.
            nop = Nop : Ctrl {}
            /// DMA-in through the weight decompressor: reads the `len`-byte compressed stream at
            /// external byte `src`, decodes it with `codec` into exactly `n` bytes (signed 8-bit
            /// values) and writes them densely at `dst` of `loc`. Costs `len` external bytes;
            /// the decompressor delivers `dma.decompress_bytes_per_cycle` output bytes per
            /// cycle. Traps on hardware without a decompressor and on a stream that does not
            /// decode to exactly `n` values.
            ldz = Ldz : Ld {
                /// External memory read.
                ext: ExtSpace [1] = ExtSpace::Dram,
                /// Source byte address in `ext`.
                src: u32 [32],
                /// Local buffer written.
                loc: LocalSpace [2] = LocalSpace::Wgt,
                /// Destination byte address in `loc`.
                dst: u32 [20],
                /// Compressed bytes.
                len: u32 [24, 1, 16777215],
                /// Decoded bytes.
                n: u32 [20, 1, 1048575],
                /// Compression format.
                codec: Codec [2] = Codec::Bitmask,
            }
            /// Integer softmax, TFLite's 8-bit SOFTMAX, over `n` rows of `d` elements in `act`
            /// (in the HWC layout a row is one pixel's channels): each row's differences from
            /// its maximum are rescaled, exponentiated in fixed point, summed and normalised
            /// (`arith::softmax`) with the parameters of the 12-byte record at `par`
            /// (multiplier, left shift, diff_min: little-endian int32). The output, dense at
            /// `dst`, has scale 1/256 and its zero point at the type's minimum. Traps on a
            /// record out of range.
            softmax = Softmax : Vector {
                /// Element type of input and output.
                ty: ActType [1] = ActType::I8,
                /// Input byte address in `act`.
                src: u32 [20],
                /// Output byte address in `act`.
                dst: u32 [20],
                /// Rows.
                n: u32 [20, 1, 1048575],
                /// Elements per row.
                d: u32 [12, 1, 4095],
                /// Parameter record byte address in `par`.
                par: u32 [20],
            }
            /// Host call: the host CPU runs operation `id` of its runtime (in npu, layer `id` of the
            /// quantized model, on the integer reference kernels) reading the `sn` bytes at `src`
            /// and the `bn` bytes at `b` of system SRAM and writing the `dn` bytes at `dst`. A
            /// barrier: it starts when every earlier instruction has completed, and no later
            /// instruction is dispatched before it ends. It takes
            /// `(call + macs·mac + dn·element + (sn+bn+dn)/bytes) · npu clock / cpu clock` cycles
            /// with the hardware description's `cpu` figures, plus `wn` bytes of weights at the
            /// off-chip memory's bandwidth. Traps when the run has no host attached.
            host = Host : Host {
                /// Host operation number.
                id: u32 [12],
                /// First input byte address in SRAM.
                src: u32 [28],
                /// First input bytes.
                sn: u32 [24, 1, 16777215],
                /// Second input byte address in SRAM.
                b: u32 [28] = 0,
                /// Second input bytes (0: none).
                bn: u32 [24] = 0,
                /// Output byte address in SRAM.
                dst: u32 [28],
                /// Output bytes.
                dn: u32 [24, 1, 16777215],
                /// Multiply-accumulates the operation performs.
                macs: u32 [32] = 0,
                /// Bytes of weights and parameters the CPU reads.
                wn: u32 [24] = 0,
            }
            /// Weight DMA-in: `ld` on the second DMA-in queue (`ldw` unit), for hardware with
            /// one (`dma.weight_queue`): weights and parameters stream from off-chip memory
            /// without waiting behind activation tiles in `ld`'s queue, and the other way round.
            /// The transfer is exactly `ld`'s with the same operands; both queues share the
            /// external memories' ports. Traps on hardware without the queue.
            ldw = Ldw : Ldw {
                /// External memory read.
                ext: ExtSpace [1] = ExtSpace::Dram,
                /// Source byte address in `ext`.
                src: u32 [32],
                /// Local buffer written.
                loc: LocalSpace [2] = LocalSpace::Act,
                /// Destination byte address in `loc`.
                dst: u32 [20],
                /// Number of planes.
                n2: u32 [12, 1, 4095] = 1,
                /// Rows per plane.
                n1: u32 [12, 1, 4095] = 1,
                /// Elements per row.
                n0: u32 [12, 1, 4095] = 1,
                /// Values per element (bytes when not unpacking).
                elem: u32 [20, 1, 1048575] = 1,
                /// Source stride between planes, in bytes.
                s2: u32 [32] = 0,
                /// Source stride between rows, in bytes.
                s1: u32 [32] = 0,
                /// Source stride between elements, in bytes.
                s0: u32 [24] = 0,
                /// Padding rows above each plane.
                pt: u32 [4] = 0,
                /// Padding rows below each plane.
                pb: u32 [4] = 0,
                /// Padding elements left of each row.
                pl: u32 [4] = 0,
                /// Padding elements right of each row.
                pr: u32 [4] = 0,
                /// Padding byte value (an activation zero point, −128..=255).
                pv: i32 [9, -128, 255] = 0,
                /// Unpacking of packed low-bit source data.
                unpack: Unpack [2] = Unpack::None,
            }
        }
    };
}

/// Where an instruction is executed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dispatch {
    /// On an execution unit, through its queue; the instruction may carry tokens.
    Unit(Unit),
    /// On the fetch unit (control flow); the instruction carries no tokens.
    Ctrl,
}

/// Which unit executes an instruction, as the table states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Executes {
    /// Always this unit.
    Unit(Unit),
    /// The unit named by the instruction's `unit` operand.
    UnitOperand,
    /// The fetch unit (control flow); the instruction carries no tokens.
    Fetch,
}

impl Executes {
    /// Whether instructions of this kind may wait for and signal tokens (the fetch unit's
    /// and the host's do not: a `host` instruction is a barrier).
    pub fn has_tokens(self) -> bool {
        !matches!(self, Executes::Fetch | Executes::Unit(Unit::Host))
    }
    /// Human-readable name, for docs.
    pub fn describe(self) -> String {
        match self {
            Executes::Unit(u) => format!("`{u}`"),
            Executes::UnitOperand => "`unit` operand".to_string(),
            Executes::Fetch => "fetch".to_string(),
        }
    }
}

/// Schema of one operand field, derived from the table.
#[derive(Debug, Clone)]
pub struct FieldInfo {
    /// Field name as written in assembly (`ih=28`).
    pub name: &'static str,
    /// Width in the encoding.
    pub bits: u32,
    /// Smallest accepted value.
    pub min: i64,
    /// Largest accepted value.
    pub max: i64,
    /// Value used when the field is omitted in assembly; `None` if it is required.
    pub default: Option<i64>,
    /// How the field is parsed, printed and stored.
    pub kind: FieldKind,
    /// One-line description.
    pub doc: &'static str,
}

impl FieldInfo {
    /// Formats a value of this field as assembly text.
    pub fn format_value(&self, v: i64) -> String {
        match self.kind {
            FieldKind::Unsigned if v >= 4096 => format!("{v:#x}"),
            FieldKind::Unsigned | FieldKind::Signed => v.to_string(),
            FieldKind::Enum(names) => {
                usize::try_from(v).ok().and_then(|i| names.get(i)).map_or_else(|| v.to_string(), |n| (*n).to_string())
            }
            FieldKind::UnitSet => UnitSet::from_i64(v).to_string(),
        }
    }

    /// The accepted values as text, for diagnostics and docs.
    pub fn range_text(&self) -> String {
        match self.kind {
            FieldKind::Enum(names) => {
                let (lo, hi) =
                    (self.min.max(0) as usize, (self.max.max(0) as usize).min(names.len().saturating_sub(1)));
                names.get(lo..=hi).unwrap_or(names).join(", ")
            }
            FieldKind::UnitSet => format!("none, or units joined by `|`: {}", UnitSet::unit_names()),
            _ => format!("{}..={}", self.min, self.max),
        }
    }
}

/// Schema of one instruction, derived from the table.
#[derive(Debug, Clone)]
pub struct OpInfo {
    /// Opcode (first byte of the encoding); never 0.
    pub opcode: u8,
    /// Assembly mnemonic.
    pub mnemonic: &'static str,
    /// Which unit executes it.
    pub executes: Executes,
    /// Full description (Markdown).
    pub doc: String,
    /// Operand fields in encoding order.
    pub fields: Vec<FieldInfo>,
}

impl OpInfo {
    /// Total operand bits, excluding the header.
    pub fn operand_bits(&self) -> u32 {
        self.fields.iter().map(|f| f.bits).sum()
    }
    /// The field named `name`.
    pub fn field(&self, name: &str) -> Option<&FieldInfo> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// One decoded instruction with its dependency tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instr {
    /// The operation and its operands.
    pub op: Op,
    /// Units from each of which one token is taken before the instruction starts.
    pub wait: UnitSet,
    /// Units to each of which one token is given when the instruction completes.
    pub signal: UnitSet,
}

impl Instr {
    /// An instruction without tokens.
    pub fn new(op: Op) -> Instr {
        Instr { op, wait: UnitSet::NONE, signal: UnitSet::NONE }
    }
}

macro_rules! unit_of {
    (Ctrl, $op:expr) => {
        Dispatch::Ctrl
    };
    (Sync, $op:expr) => {
        Dispatch::Unit($op.unit)
    };
    ($u:ident, $op:expr) => {
        Dispatch::Unit(Unit::$u)
    };
}

macro_rules! table_executes {
    (Ctrl) => {
        Executes::Fetch
    };
    (Sync) => {
        Executes::UnitOperand
    };
    ($u:ident) => {
        Executes::Unit(Unit::$u)
    };
}

macro_rules! define_ops {
    ( $(
        $(#[doc = $doc:literal])*
        $mn:ident = $Name:ident : $unit:ident {
            $(
                $(#[doc = $fdoc:literal])*
                $f:ident : $ty:ty [ $bits:literal $(, $min:expr, $max:expr)? ] $(= $def:expr)?
            ),* $(,)?
        }
    )* ) => {
        $(
            $(#[doc = $doc])*
            #[derive(Debug, Clone, Copy, PartialEq, Eq)]
            pub struct $Name {
                $( $(#[doc = $fdoc])* pub $f: $ty, )*
            }
        )*

        /// Every instruction of ISA v1; one variant per row of the table.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Op {
            $( $(#[doc = $doc])* $Name($Name), )*
        }

        #[allow(dead_code)]
        #[repr(u8)]
        enum Opcode { Illegal = 0, $( $Name, )* }

        impl Op {
            /// The opcode, the first byte of the encoding.
            pub fn opcode(&self) -> u8 {
                match self { $( Op::$Name(_) => Opcode::$Name as u8, )* }
            }
            /// The assembly mnemonic.
            pub fn mnemonic(&self) -> &'static str {
                match self { $( Op::$Name(_) => stringify!($mn), )* }
            }
            /// Where the instruction executes.
            pub fn dispatch(&self) -> Dispatch {
                match self { $( Op::$Name(_op) => unit_of!($unit, _op), )* }
            }
            /// The unit that runs this instruction; `None` for the fetch unit's control
            /// instructions.
            pub fn unit(&self) -> Option<Unit> {
                match self.dispatch() {
                    Dispatch::Unit(u) => Some(u),
                    Dispatch::Ctrl => None,
                }
            }
            /// The table schema of this instruction.
            pub fn info(&self) -> &'static OpInfo {
                &op_table()[usize::from(self.opcode()) - 1]
            }
            /// Operand values in field order, in the table's `i64` representation.
            pub fn field_values(&self) -> Vec<i64> {
                match self {
                    $( Op::$Name(_op) => vec![ $( FieldValue::to_i64(_op.$f), )* ], )*
                }
            }
            /// Builds an instruction from its opcode and operand values in field order.
            ///
            /// Returns `None` for an unknown opcode or a wrong number of values. Values must
            /// already be within their fields' ranges (see [`OpInfo`]).
            pub fn from_field_values(opcode: u8, values: &[i64]) -> Option<Op> {
                $(
                    if opcode == Opcode::$Name as u8 {
                        let mut _it = values.iter().copied();
                        let op = $Name { $( $f: <$ty as FieldValue>::from_i64(_it.next()?), )* };
                        if _it.next().is_some() { return None; }
                        return Some(Op::$Name(op));
                    }
                )*
                None
            }
        }

        $(
            impl $Name {
                /// Every operand at the largest value its field accepts, from the
                /// instruction table (so `Conv::limits().cout` is the most output
                /// channels one `conv` can compute).
                pub fn limits() -> $Name {
                    let info = &op_table()[usize::from(Opcode::$Name as u8) - 1];
                    let mut _it = info.fields.iter();
                    $Name { $( $f: <$ty as FieldValue>::from_i64(_it.next().map_or(0, |f| f.max)), )* }
                }
            }

            impl From<$Name> for Op {
                fn from(op: $Name) -> Op { Op::$Name(op) }
            }
        )*

        fn build_table() -> Vec<OpInfo> {
            vec![ $(
                OpInfo {
                    opcode: Opcode::$Name as u8,
                    mnemonic: stringify!($mn),
                    executes: table_executes!($unit),
                    doc: join_doc(&[$($doc),*]),
                    fields: vec![ $(
                        {
                            #[allow(unused_variables)]
                            let (min, max) = <$ty as FieldValue>::natural_range($bits);
                            $( let (min, max): (i64, i64) = ($min, $max); )?
                            #[allow(unused_mut, unused_assignments)]
                            let mut default: Option<i64> = None;
                            $( default = Some(FieldValue::to_i64({ let d: $ty = $def; d })); )?
                            FieldInfo {
                                name: stringify!($f),
                                bits: $bits,
                                min,
                                max,
                                default,
                                kind: <$ty as FieldValue>::KIND,
                                doc: join_line(&[$($fdoc),*]),
                            }
                        },
                    )* ],
                },
            )* ]
        }
    };
}

for_each_op!(define_ops);

macro_rules! same_transfer {
    ($From:ident => $To:ident) => {
        impl From<$From> for $To {
            fn from(l: $From) -> $To {
                $To {
                    ext: l.ext,
                    src: l.src,
                    loc: l.loc,
                    dst: l.dst,
                    n2: l.n2,
                    n1: l.n1,
                    n0: l.n0,
                    elem: l.elem,
                    s2: l.s2,
                    s1: l.s1,
                    s0: l.s0,
                    pt: l.pt,
                    pb: l.pb,
                    pl: l.pl,
                    pr: l.pr,
                    pv: l.pv,
                    unpack: l.unpack,
                }
            }
        }
    };
}
// `ld` and `ldw` are one transfer on two queues.
same_transfer!(Ld => Ldw);
same_transfer!(Ldw => Ld);

impl Op {
    /// The strided DMA-in transfer of an `ld` or `ldw` (which differ only in their queue).
    pub fn dma_in(&self) -> Option<Ld> {
        match self {
            Op::Ld(l) => Some(*l),
            Op::Ldw(l) => Some(Ld::from(*l)),
            _ => None,
        }
    }
}

fn join_doc(lines: &[&str]) -> String {
    let mut out = String::new();
    for l in lines {
        out.push_str(l.strip_prefix(' ').unwrap_or(l));
        out.push('\n');
    }
    out.trim_end().to_string()
}

fn join_line(lines: &[&'static str]) -> &'static str {
    // Field docs are one line by convention; take the first.
    lines.first().map_or("", |l| l.trim())
}

static TABLE: LazyLock<Vec<OpInfo>> = LazyLock::new(build_table);

/// The schema of every instruction, indexed by `opcode - 1`.
pub fn op_table() -> &'static [OpInfo] {
    &TABLE
}

/// The schema of the instruction with the given mnemonic.
pub fn op_by_mnemonic(mnemonic: &str) -> Option<&'static OpInfo> {
    op_table().iter().find(|o| o.mnemonic == mnemonic)
}

/// The schema of the instruction with the given opcode.
pub fn op_by_opcode(opcode: u8) -> Option<&'static OpInfo> {
    usize::from(opcode).checked_sub(1).and_then(|i| op_table().get(i))
}
