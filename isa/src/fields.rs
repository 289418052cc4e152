//! Operand field types of the instruction table.
//!
//! Every operand of every instruction has one of these types. A type knows its
//! [`FieldKind`] (how the assembler parses it and the disassembler prints it), its
//! natural value range for a given bit width, and how it converts to and from the
//! `i64` value that the generic encoder, decoder and assembler work with.

use std::fmt;

/// How a field's value is written in assembly and stored in the encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// An unsigned integer, stored as plain binary.
    Unsigned,
    /// A signed integer, stored in two's complement within the field's bits.
    Signed,
    /// One name out of a list; stored as the name's index.
    Enum(&'static [&'static str]),
    /// A set of execution units written `ld|mac`, or `none`; stored as a bit mask.
    UnitSet,
}

/// A value that can sit in an instruction field.
pub trait FieldValue: Copy {
    /// How the value is parsed, printed and stored.
    const KIND: FieldKind;
    /// The widest range of values representable in `bits` bits.
    fn natural_range(bits: u32) -> (i64, i64);
    /// The value as the table's common integer representation.
    fn to_i64(self) -> i64;
    /// Builds the value back from [`FieldValue::to_i64`]'s representation.
    ///
    /// Callers pass only values already checked to lie in the field's range;
    /// anything else yields an unspecified but valid value (never a panic).
    fn from_i64(v: i64) -> Self;
}

impl FieldValue for u32 {
    const KIND: FieldKind = FieldKind::Unsigned;
    fn natural_range(bits: u32) -> (i64, i64) {
        (0, (1i64 << bits) - 1)
    }
    fn to_i64(self) -> i64 {
        i64::from(self)
    }
    fn from_i64(v: i64) -> Self {
        u32::try_from(v).unwrap_or(0)
    }
}

impl FieldValue for i32 {
    const KIND: FieldKind = FieldKind::Signed;
    fn natural_range(bits: u32) -> (i64, i64) {
        (-(1i64 << (bits - 1)), (1i64 << (bits - 1)) - 1)
    }
    fn to_i64(self) -> i64 {
        i64::from(self)
    }
    fn from_i64(v: i64) -> Self {
        i32::try_from(v).unwrap_or(0)
    }
}

/// Declares a field enum: its variants, their assembly names and docs.
macro_rules! field_enum {
    ($(#[doc = $doc:literal])* $Name:ident { $( $(#[doc = $vdoc:literal])* $V:ident = $text:literal ),* $(,)? }) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $Name {
            $( $(#[doc = $vdoc])* $V, )*
        }

        impl $Name {
            /// Every variant, in encoding order.
            pub const ALL: &'static [$Name] = &[$($Name::$V),*];
            /// The assembly names of the variants, in encoding order.
            pub const NAMES: &'static [&'static str] = &[$($text),*];
            /// The variant's assembly name.
            pub fn name(self) -> &'static str {
                Self::NAMES[self as usize]
            }
            /// The variant with the given assembly name.
            pub fn from_name(name: &str) -> Option<Self> {
                Self::NAMES.iter().position(|n| *n == name).map(|i| Self::ALL[i])
            }
        }

        impl FieldValue for $Name {
            const KIND: FieldKind = FieldKind::Enum(Self::NAMES);
            fn natural_range(_bits: u32) -> (i64, i64) {
                (0, Self::ALL.len() as i64 - 1)
            }
            fn to_i64(self) -> i64 {
                self as i64
            }
            fn from_i64(v: i64) -> Self {
                usize::try_from(v).ok().and_then(|i| Self::ALL.get(i).copied()).unwrap_or(Self::ALL[0])
            }
        }

        impl fmt::Display for $Name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

field_enum! {
    /// The six decoupled execution units of the NPU, each with its own instruction queue,
    /// and the host CPU, which runs what the NPU cannot (`host`) while the NPU waits.
    Unit {
        /// DMA-in: external memory to local buffers.
        Ld = "ld",
        /// The MAC array.
        Mac = "mac",
        /// The requantization unit.
        Rq = "rq",
        /// The vector unit.
        Vector = "vec",
        /// DMA-out: local buffers to external memory.
        St = "st",
        /// The weight DMA-in (`ldw`): a second DMA-in queue for weights and parameters, on
        /// hardware that has one (`dma.weight_queue`), so weight streams and activation
        /// tiles do not wait behind each other.
        Ldw = "ldw",
        /// The host CPU: never in a token set; its `host` instructions are barriers.
        Host = "cpu",
    }
}

field_enum! {
    /// External (system) memories, reached only by DMA.
    ExtSpace {
        /// Off-chip memory (flash or DRAM): weights and constants.
        Dram = "dram",
        /// On-chip system SRAM shared with the host: activations.
        Sram = "sram",
    }
}

field_enum! {
    /// Local buffers inside the NPU that DMA-in can write.
    LocalSpace {
        /// Activation buffer (bytes).
        Act = "act",
        /// Weight buffer (one unpacked weight per byte).
        Wgt = "wgt",
        /// Parameter buffer: requantization tables, zero points, lookup tables.
        Par = "par",
        /// Accumulator buffer (int32 words, little-endian; byte addressed by DMA).
        Acc = "acc",
    }
}

field_enum! {
    /// Local buffers that DMA-out can read.
    StoreSpace {
        /// Activation buffer.
        Act = "act",
        /// Accumulator buffer (int32 words; byte addressed by DMA).
        Acc = "acc",
    }
}

field_enum! {
    /// Every memory of the machine; used to place data sections.
    Space {
        /// Off-chip memory.
        Dram = "dram",
        /// System SRAM.
        Sram = "sram",
        /// Activation buffer.
        Act = "act",
        /// Weight buffer.
        Wgt = "wgt",
        /// Parameter buffer.
        Par = "par",
        /// Accumulator buffer, as bytes.
        Acc = "acc",
    }
}

field_enum! {
    /// Unpacking applied by DMA-in to packed low-bit data.
    Unpack {
        /// Bytes are copied as they are.
        None = "none",
        /// Two 4-bit two's-complement values per byte, low nibble first.
        I4 = "i4",
        /// Four 2-bit ternary codes per byte, low bits first: `00`→0, `01`→+1, `11`→−1 (`10` is invalid).
        T2 = "t2",
        /// Eight 1-bit values per byte, least significant bit first: `1`→+1, `0`→−1.
        B1 = "b1",
    }
}

field_enum! {
    /// Weight compression format decoded by the DMA-in decompressor (`ldz`); see
    /// [`crate::codec`] for the exact streams.
    Codec {
        /// A presence bit per value (LSB first), then the non-zero values.
        Bitmask = "bitmask",
        /// `(zeros before, value)` byte pairs; a pair `(r, 0)` stands for `r + 1` zeros.
        Zrl = "zrl",
        /// Zigzag Rice code with a per-stream parameter `k` (first byte): unary quotient
        /// then `k` low bits, LSB first.
        Rice = "rice",
    }
}

field_enum! {
    /// Precision mode of the MAC array: what the weights are and how products are formed.
    MacMode {
        /// 8-bit weights × 8-bit activations.
        I8 = "i8",
        /// 4-bit weights (−8..=7) × 8-bit activations.
        I4 = "i4",
        /// Ternary weights (−1, 0, +1) × 8-bit activations.
        T2 = "t2",
        /// Binary weights (sign of the weight byte: ≥0 → +1, <0 → −1) × 8-bit activations.
        B1 = "b1",
        /// Binary weights × binary activations (signs of both bytes) by XNOR and popcount.
        Xnor = "xnor",
    }
}

field_enum! {
    /// Interpretation of 8-bit activation bytes.
    ActType {
        /// Signed int8.
        I8 = "i8",
        /// Unsigned uint8.
        U8 = "u8",
    }
}

field_enum! {
    /// How the requantization unit scales.
    RqMode {
        /// Q31 multiplier then rounding shift, two roundings (TFLite's default, gemmlowp).
        Mul = "mul",
        /// Q31 multiplier and shift with a single rounding (TFLite's `TFLITE_SINGLE_ROUNDING`).
        Mul1 = "mul1",
        /// Power-of-two scale: a barrel shift only, no multiplier.
        Shift = "shift",
    }
}

field_enum! {
    /// Output type of the requantization unit (one value per byte).
    OutType {
        /// int8, −128..=127.
        I8 = "i8",
        /// uint8, 0..=255.
        U8 = "u8",
        /// int4, −8..=7, stored sign-extended in a byte.
        I4 = "i4",
    }
}

impl OutType {
    /// The inclusive range of values of this type.
    pub fn range(self) -> (i32, i32) {
        match self {
            OutType::I8 => (-128, 127),
            OutType::U8 => (0, 255),
            OutType::I4 => (-8, 7),
        }
    }
}

impl ActType {
    /// Reads a byte as this type.
    pub fn read(self, byte: u8) -> i32 {
        match self {
            ActType::I8 => i32::from(byte as i8),
            ActType::U8 => i32::from(byte),
        }
    }
    /// The inclusive range of values of this type.
    pub fn range(self) -> (i32, i32) {
        match self {
            ActType::I8 => (-128, 127),
            ActType::U8 => (0, 255),
        }
    }
}

field_enum! {
    /// Pooling reduction.
    PoolKind {
        /// Maximum over the window (padding excluded).
        Max = "max",
        /// Average over the window's in-bounds elements, rounded half away from zero.
        Avg = "avg",
    }
}

/// A set of execution units, for dependency tokens (`wait=ld|mac`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct UnitSet(u8);

impl UnitSet {
    /// The empty set.
    pub const NONE: UnitSet = UnitSet(0);
    /// Bits of the mask: one per NPU unit (the host is never in a set).
    pub const BITS: u32 = Unit::ALL.len() as u32 - 1;

    /// The set holding exactly `unit`.
    pub fn one(unit: Unit) -> UnitSet {
        UnitSet(1 << unit as u8)
    }
    /// Builds a set from its [`UnitSet::BITS`]-bit mask of NPU units; `None` if other
    /// bits are set.
    pub fn from_bits(bits: u8) -> Option<UnitSet> {
        (u32::from(bits) < 1 << Self::BITS).then_some(UnitSet(bits))
    }
    /// The mask, bit `i` for [`Unit::ALL`]`[i]`.
    pub fn bits(self) -> u8 {
        self.0
    }
    /// Whether `unit` is in the set.
    pub fn contains(self, unit: Unit) -> bool {
        self.0 & (1 << unit as u8) != 0
    }
    /// The set with `unit` added.
    pub fn with(self, unit: Unit) -> UnitSet {
        UnitSet(self.0 | (1 << unit as u8))
    }
    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// The names of the units a set can hold, in bit order (`ld, mac, rq, vec, st, ldw`).
    pub fn unit_names() -> String {
        let names: Vec<&str> = Unit::ALL.iter().filter(|u| **u != Unit::Host).map(|u| u.name()).collect();
        names.join(", ")
    }
    /// The units in the set, in [`Unit::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Unit> {
        Unit::ALL.iter().copied().filter(move |u| self.contains(*u))
    }
}

impl FieldValue for UnitSet {
    const KIND: FieldKind = FieldKind::UnitSet;
    fn natural_range(_bits: u32) -> (i64, i64) {
        (0, (1 << Self::BITS) - 1)
    }
    fn to_i64(self) -> i64 {
        i64::from(self.0)
    }
    fn from_i64(v: i64) -> Self {
        UnitSet((v & ((1 << Self::BITS) - 1)) as u8)
    }
}

impl fmt::Display for UnitSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        let names: Vec<&str> = self.iter().map(Unit::name).collect();
        f.write_str(&names.join("|"))
    }
}
