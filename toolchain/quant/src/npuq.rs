//! The quantized model file (`.npuq`), version 3 (versions 1 and 2 are still read).
//!
//! Layout: the 8-byte magic `NPUQUANT`, the format version as a little-endian `u32`
//! (`3`), then one [`v2::File`] in postcard encoding (varint integers, length-prefixed
//! sequences and strings, enum variants by index, `f32` as 4 little-endian bytes), then
//! the CRC-32 (IEEE) of every byte before it as a little-endian `u32`, and nothing after
//! it. The types in [`v2`] (and the [`v1`] types it reuses) *are* the format, written out field by field
//! (docs/quantization.md, "Files", lists them); they are not the quantizer's structures, and the
//! conversions between the two destructure every field, so changing a `QModel`,
//! `Graph` or `Scheme` field cannot change the file format without a compile error here
//! — it takes a new version, with the old one still read. A committed file is held
//! byte for byte by a test (`npuq_files_keep_their_layout`).

use crate::error::{Error, Result};
use crate::QModel;

/// Format version written: 2 added per-channel mean/std and the model's integer input
/// interface, 3 the trailing checksum (a version 3 body is a version 2 body). Versions 1
/// and 2 are read and upgraded.
pub const VERSION: u32 = 3;

/// File magic.
pub const MAGIC: &[u8; 8] = b"NPUQUANT";

/// Serializes a quantized model.
pub fn encode(q: &QModel) -> Result<Vec<u8>> {
    let body = postcard::to_stdvec(&v2::File::from(q))
        .map_err(|e| Error::File { origin: q.name.clone(), message: format!("cannot serialize: {e}") })?;
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&body);
    npu_model::modelfile::seal(&mut out);
    Ok(out)
}

/// Recomputes the checksum of a version 3 file in place (for tools that edit or mutate
/// the body on purpose, such as the fuzzer); other bytes are left alone.
pub fn reseal(bytes: &mut [u8]) {
    if bytes.len() >= 16 && bytes[8..12] == VERSION.to_le_bytes() {
        npu_model::modelfile::reseal(bytes);
    }
}

/// Reads a quantized model file, validating its checksum (version 3), graph and integer
/// parameters.
pub fn decode(bytes: &[u8], origin: &str) -> Result<QModel> {
    let err = |m: String| Error::File { origin: origin.into(), message: m };
    if bytes.len() < 12 || &bytes[..8] != MAGIC {
        return Err(err("not an npu quantized model file (missing NPUQUANT magic)".into()));
    }
    let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    let corrupt = |e: postcard::Error| err(format!("corrupt quantized model file: {e}"));
    let (file, rest): (v2::File, &[u8]) = match version {
        1 => {
            let (f, rest) = postcard::take_from_bytes::<v1::File>(&bytes[12..]).map_err(corrupt)?;
            (f.into(), rest)
        }
        2 => postcard::take_from_bytes(&bytes[12..]).map_err(corrupt)?,
        VERSION => {
            let body = npu_model::modelfile::unseal(bytes, 12)
                .map_err(|m| err(format!("corrupt quantized model file: {m}")))?;
            postcard::take_from_bytes(body).map_err(corrupt)?
        }
        v => return Err(err(format!("quantized model file version {v} is not supported (expected 1..={VERSION})"))),
    };
    if !rest.is_empty() {
        return Err(err(format!("corrupt quantized model file: trailing data after the model ({} B)", rest.len())));
    }
    let q = QModel::from(file);
    q.graph.verify().map_err(|e| err(e.to_string()))?;
    q.validate().map_err(|e| err(e.to_string()))?;
    Ok(q)
}

/// Version 1 of the format, type by type. Field order is wire order.
pub mod v1 {
    #![allow(missing_docs)]

    use serde::{Deserialize, Serialize};

    use npu_data::Layout as DLayout;
    use npu_model::ir;

    use crate as q;

    /// The whole file body.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct File {
        pub name: String,
        pub scheme: Scheme,
        pub preprocess: Preprocess,
        pub values: Vec<QValue>,
        pub layers: Vec<QLayer>,
        pub output: usize,
        pub graph: Graph,
        pub value_map: Vec<Option<usize>>,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Scheme {
        pub name: String,
        pub act: ActScheme,
        pub weights: WeightScheme,
        pub pin_first_last: bool,
        pub overrides: Vec<(String, WeightScheme)>,
        pub rounding: RoundingMode,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
    pub struct ActScheme {
        pub kind: Kind,
        pub dtype: ActType,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
    pub struct WeightScheme {
        pub kind: Kind,
        pub bits: WeightBits,
        pub per_channel: bool,
        pub clip_sigma: Option<f32>,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
    pub enum Kind {
        Pow2,
        Symmetric,
        Asymmetric,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
    pub enum ActType {
        I8,
        U8,
        I4,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
    pub enum WeightBits {
        B8,
        B4,
        Ternary,
        Binary,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
    pub enum RoundingMode {
        Double,
        Single,
    }

    /// Input preprocessing: `(pixel · scale − mean) / std`, in `layout` (version 1).
    #[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
    pub struct Preprocess {
        pub scale: f32,
        pub mean: f32,
        pub std: f32,
        pub layout: Layout,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
    pub enum Layout {
        Nchw,
        Nhwc,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct QValue {
        pub name: String,
        pub shape: Vec<usize>,
        pub q: QParams,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
    pub struct QParams {
        pub scale: f32,
        pub zero_point: i32,
        pub dtype: ActType,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct QLayer {
        pub name: String,
        pub op: QOp,
        pub inputs: Vec<usize>,
        pub output: usize,
        pub clamp: (i32, i32),
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub enum QOp {
        Conv2d {
            stride: [usize; 2],
            pad: [usize; 4],
            dilation: [usize; 2],
            groups: usize,
            layer: WeightedLayer,
        },
        Dense {
            layer: WeightedLayer,
        },
        Add {
            left_shift: u32,
            ma: (i32, i32),
            mb: (i32, i32),
            mo: (i32, i32),
        },
        MaxPool {
            kernel: [usize; 2],
            stride: [usize; 2],
            pad: [usize; 4],
        },
        AvgPool {
            kernel: [usize; 2],
            stride: [usize; 2],
            pad: [usize; 4],
        },
        GlobalAvgPool,
        Reshape,
        Concat,
        /// Version 2 files only.
        Lut {
            table: Vec<i32>,
        },
        /// Version 2 files only.
        Mul {
            mo: (i32, i32),
        },
        /// Version 2 files only.
        Gather {
            map: Vec<usize>,
        },
        /// Version 2 files only.
        Softmax {
            multiplier: i32,
            left_shift: i32,
            diff_min: i32,
        },
        /// Version 2 files only.
        Pad {
            pads: [usize; 4],
            value: i32,
        },
        /// Version 2 files only.
        ResizeNearest {
            rows: Vec<usize>,
            cols: Vec<usize>,
        },
        /// Version 2 files only.
        Dilate {
            stride: [usize; 2],
        },
        /// Version 2 files only.
        Sub {
            left_shift: u32,
            ma: (i32, i32),
            mb: (i32, i32),
            mo: (i32, i32),
        },
        /// Version 2 files only: `(lo, hi, frac in 1/1024)` per output row and column.
        ResizeLinear {
            rows: Vec<(usize, usize, i32)>,
            cols: Vec<(usize, usize, i32)>,
        },
        /// Version 2 files only.
        Transpose {
            perm: [usize; 3],
        },
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct WeightedLayer {
        pub weights: Vec<i32>,
        pub shape: Vec<usize>,
        pub bits: WeightBits,
        pub w_scale: Vec<f32>,
        pub w_zero: Vec<i32>,
        pub bias: Vec<i32>,
        pub requant: Requant,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub enum Requant {
        Multiplier(Vec<(i32, i32)>),
        Shift(Vec<i32>),
        SingleRounding(Vec<(i32, i32)>),
    }

    /// The FP32 graph the model was quantized from.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Graph {
        pub values: Vec<Value>,
        pub nodes: Vec<Node>,
        pub inputs: Vec<usize>,
        pub outputs: Vec<usize>,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Value {
        pub name: String,
        pub shape: Vec<usize>,
        pub source: Source,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub enum Source {
        Input,
        Const(Tensor),
        Node(usize),
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Tensor {
        pub shape: Vec<usize>,
        pub data: Vec<f32>,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Node {
        pub name: String,
        pub op: Op,
        pub inputs: Vec<usize>,
        pub output: usize,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
    pub enum Activation {
        None,
        Relu,
        Clip { lo: f32, hi: f32 },
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub enum Op {
        Conv2d {
            stride: [usize; 2],
            pad: [usize; 4],
            dilation: [usize; 2],
            groups: usize,
            act: Activation,
        },
        Dense {
            act: Activation,
        },
        BatchNorm {
            eps: f32,
        },
        Relu,
        Clip {
            lo: f32,
            hi: f32,
        },
        LeakyRelu {
            alpha: f32,
        },
        HardSwish,
        Sigmoid,
        MaxPool {
            kernel: [usize; 2],
            stride: [usize; 2],
            pad: [usize; 4],
        },
        AvgPool {
            kernel: [usize; 2],
            stride: [usize; 2],
            pad: [usize; 4],
            count_include_pad: bool,
        },
        GlobalAvgPool,
        Add,
        Mul,
        Concat {
            axis: usize,
        },
        Pad {
            pads: Vec<usize>,
            value: f32,
        },
        Reshape {
            shape: Vec<usize>,
        },
        Flatten,
        Transpose {
            perm: Vec<usize>,
        },
        Softmax {
            axis: usize,
        },
        /// Version 2 files only.
        Tanh,
        /// Version 2 files only.
        HardSigmoid {
            alpha: f32,
            beta: f32,
        },
        /// Version 2 files only.
        Silu,
        /// Version 2 files only.
        Slice {
            axis: usize,
            start: usize,
            end: usize,
            step: usize,
        },
        /// Version 2 files only.
        ChannelShuffle {
            groups: usize,
        },
        /// Version 2 files only.
        Function {
            name: String,
            steps: Vec<Step>,
        },
        /// Version 2 files only.
        ResizeNearest {
            rows: Vec<usize>,
            cols: Vec<usize>,
        },
        /// Version 2 files only.
        Dilate {
            stride: [usize; 2],
        },
        /// Version 2 files only: `(lo, hi, frac)` per output row and column.
        ResizeLinear {
            rows: Vec<(usize, usize, f32)>,
            cols: Vec<(usize, usize, f32)>,
        },
        /// Newer files only (hybrid TFLite imports; never in a quantized model's graph).
        DynamicQuantize {
            asymmetric: bool,
        },
    }

    /// `ir::Step` on the wire.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub enum Step {
        X,
        Const(f32),
        Add,
        Sub,
        Mul,
        Div,
        Pow,
        Neg,
        Erf,
        Exp,
        Log,
        Sqrt,
        Abs,
        Apply(Box<Op>),
    }

    impl From<ir::Step> for Step {
        fn from(s: ir::Step) -> Step {
            use ir::Step as I;
            match s {
                I::X => Step::X,
                I::Const(c) => Step::Const(c),
                I::Add => Step::Add,
                I::Sub => Step::Sub,
                I::Mul => Step::Mul,
                I::Div => Step::Div,
                I::Pow => Step::Pow,
                I::Neg => Step::Neg,
                I::Erf => Step::Erf,
                I::Exp => Step::Exp,
                I::Log => Step::Log,
                I::Sqrt => Step::Sqrt,
                I::Abs => Step::Abs,
                I::Apply(op) => Step::Apply(Box::new(Op::from(&*op))),
            }
        }
    }

    impl From<Step> for ir::Step {
        fn from(s: Step) -> ir::Step {
            use ir::Step as I;
            match s {
                Step::X => I::X,
                Step::Const(c) => I::Const(c),
                Step::Add => I::Add,
                Step::Sub => I::Sub,
                Step::Mul => I::Mul,
                Step::Div => I::Div,
                Step::Pow => I::Pow,
                Step::Neg => I::Neg,
                Step::Erf => I::Erf,
                Step::Exp => I::Exp,
                Step::Log => I::Log,
                Step::Sqrt => I::Sqrt,
                Step::Abs => I::Abs,
                Step::Apply(op) => I::Apply(Box::new(ir::Op::from(*op))),
            }
        }
    }

    /// A pair of conversions written once: `$a` (ours) ⇄ `$b` (the format), over
    /// C-like enums whose variants have the same names.
    macro_rules! same_variants {
        ($a:ty, $b:ty, [$($v:ident),*]) => {
            impl From<$a> for $b {
                fn from(x: $a) -> $b {
                    match x { $(<$a>::$v => <$b>::$v),* }
                }
            }
            impl From<$b> for $a {
                fn from(x: $b) -> $a {
                    match x { $(<$b>::$v => <$a>::$v),* }
                }
            }
        };
    }
    same_variants!(q::Kind, Kind, [Pow2, Symmetric, Asymmetric]);
    same_variants!(q::ActType, ActType, [I8, U8, I4]);
    same_variants!(q::WeightBits, WeightBits, [B8, B4, Ternary, Binary]);
    same_variants!(q::RoundingMode, RoundingMode, [Double, Single]);
    same_variants!(DLayout, Layout, [Nchw, Nhwc]);

    impl From<File> for super::v2::File {
        fn from(f: File) -> super::v2::File {
            let File { name, scheme, preprocess, values, layers, output, graph, value_map } = f;
            let Preprocess { scale, mean, std, layout } = preprocess;
            super::v2::File {
                name,
                scheme,
                preprocess: super::v2::Preprocess { scale, mean: vec![mean], std: vec![std], layout },
                integer_input: false,
                values,
                layers,
                output,
                graph,
                value_map,
            }
        }
    }

    impl From<&q::Scheme> for Scheme {
        fn from(s: &q::Scheme) -> Scheme {
            let q::Scheme { name, act, weights, pin_first_last, overrides, rounding } = s;
            Scheme {
                name: name.clone(),
                act: (*act).into(),
                weights: (*weights).into(),
                pin_first_last: *pin_first_last,
                overrides: overrides.iter().map(|(n, w)| (n.clone(), (*w).into())).collect(),
                rounding: (*rounding).into(),
            }
        }
    }

    impl From<Scheme> for q::Scheme {
        fn from(s: Scheme) -> q::Scheme {
            let Scheme { name, act, weights, pin_first_last, overrides, rounding } = s;
            q::Scheme {
                name,
                act: act.into(),
                weights: weights.into(),
                pin_first_last,
                overrides: overrides.into_iter().map(|(n, w)| (n, w.into())).collect(),
                rounding: rounding.into(),
            }
        }
    }

    impl From<q::ActScheme> for ActScheme {
        fn from(a: q::ActScheme) -> ActScheme {
            let q::ActScheme { kind, dtype } = a;
            ActScheme { kind: kind.into(), dtype: dtype.into() }
        }
    }

    impl From<ActScheme> for q::ActScheme {
        fn from(a: ActScheme) -> q::ActScheme {
            let ActScheme { kind, dtype } = a;
            q::ActScheme { kind: kind.into(), dtype: dtype.into() }
        }
    }

    impl From<q::WeightScheme> for WeightScheme {
        fn from(w: q::WeightScheme) -> WeightScheme {
            let q::WeightScheme { kind, bits, per_channel, clip_sigma } = w;
            WeightScheme { kind: kind.into(), bits: bits.into(), per_channel, clip_sigma }
        }
    }

    impl From<WeightScheme> for q::WeightScheme {
        fn from(w: WeightScheme) -> q::WeightScheme {
            let WeightScheme { kind, bits, per_channel, clip_sigma } = w;
            q::WeightScheme { kind: kind.into(), bits: bits.into(), per_channel, clip_sigma }
        }
    }

    impl From<&q::QValue> for QValue {
        fn from(v: &q::QValue) -> QValue {
            let q::QValue { name, shape, q } = v;
            QValue { name: name.clone(), shape: shape.clone(), q: (*q).into() }
        }
    }

    impl From<QValue> for q::QValue {
        fn from(v: QValue) -> q::QValue {
            let QValue { name, shape, q } = v;
            q::QValue { name, shape, q: q.into() }
        }
    }

    impl From<q::QParams> for QParams {
        fn from(p: q::QParams) -> QParams {
            let q::QParams { scale, zero_point, dtype } = p;
            QParams { scale, zero_point, dtype: dtype.into() }
        }
    }

    impl From<QParams> for q::QParams {
        fn from(p: QParams) -> q::QParams {
            let QParams { scale, zero_point, dtype } = p;
            q::QParams { scale, zero_point, dtype: dtype.into() }
        }
    }

    impl From<&q::QLayer> for QLayer {
        fn from(l: &q::QLayer) -> QLayer {
            let q::QLayer { name, op, inputs, output, clamp } = l;
            QLayer { name: name.clone(), op: op.into(), inputs: inputs.clone(), output: *output, clamp: *clamp }
        }
    }

    impl From<QLayer> for q::QLayer {
        fn from(l: QLayer) -> q::QLayer {
            let QLayer { name, op, inputs, output, clamp } = l;
            q::QLayer { name, op: op.into(), inputs, output, clamp }
        }
    }

    impl From<&q::QOp> for QOp {
        fn from(o: &q::QOp) -> QOp {
            match o {
                q::QOp::Conv2d { stride, pad, dilation, groups, layer } => QOp::Conv2d {
                    stride: *stride,
                    pad: *pad,
                    dilation: *dilation,
                    groups: *groups,
                    layer: layer.into(),
                },
                q::QOp::Dense { layer } => QOp::Dense { layer: layer.into() },
                q::QOp::Add { left_shift, ma, mb, mo } => {
                    QOp::Add { left_shift: *left_shift, ma: *ma, mb: *mb, mo: *mo }
                }
                q::QOp::MaxPool { kernel, stride, pad } => QOp::MaxPool { kernel: *kernel, stride: *stride, pad: *pad },
                q::QOp::AvgPool { kernel, stride, pad } => QOp::AvgPool { kernel: *kernel, stride: *stride, pad: *pad },
                q::QOp::GlobalAvgPool => QOp::GlobalAvgPool,
                q::QOp::Reshape => QOp::Reshape,
                q::QOp::Concat => QOp::Concat,
                q::QOp::Lut { table } => QOp::Lut { table: table.clone() },
                q::QOp::Mul { mo } => QOp::Mul { mo: *mo },
                q::QOp::Gather { map } => QOp::Gather { map: map.clone() },
                q::QOp::Softmax { multiplier, left_shift, diff_min } => {
                    QOp::Softmax { multiplier: *multiplier, left_shift: *left_shift, diff_min: *diff_min }
                }
                q::QOp::Pad { pads, value } => QOp::Pad { pads: *pads, value: *value },
                q::QOp::ResizeNearest { rows, cols } => QOp::ResizeNearest { rows: rows.clone(), cols: cols.clone() },
                q::QOp::Dilate { stride } => QOp::Dilate { stride: *stride },
                q::QOp::ResizeLinear { rows, cols } => {
                    let w = |m: &[q::LerpQ]| m.iter().map(|l| (l.lo, l.hi, l.frac)).collect();
                    QOp::ResizeLinear { rows: w(rows), cols: w(cols) }
                }
                q::QOp::Transpose { perm } => QOp::Transpose { perm: *perm },
                q::QOp::Sub { left_shift, ma, mb, mo } => {
                    QOp::Sub { left_shift: *left_shift, ma: *ma, mb: *mb, mo: *mo }
                }
            }
        }
    }

    impl From<QOp> for q::QOp {
        fn from(o: QOp) -> q::QOp {
            match o {
                QOp::Conv2d { stride, pad, dilation, groups, layer } => {
                    q::QOp::Conv2d { stride, pad, dilation, groups, layer: layer.into() }
                }
                QOp::Dense { layer } => q::QOp::Dense { layer: layer.into() },
                QOp::Add { left_shift, ma, mb, mo } => q::QOp::Add { left_shift, ma, mb, mo },
                QOp::MaxPool { kernel, stride, pad } => q::QOp::MaxPool { kernel, stride, pad },
                QOp::AvgPool { kernel, stride, pad } => q::QOp::AvgPool { kernel, stride, pad },
                QOp::GlobalAvgPool => q::QOp::GlobalAvgPool,
                QOp::Reshape => q::QOp::Reshape,
                QOp::Concat => q::QOp::Concat,
                QOp::Lut { table } => q::QOp::Lut { table },
                QOp::Mul { mo } => q::QOp::Mul { mo },
                QOp::Gather { map } => q::QOp::Gather { map },
                QOp::Softmax { multiplier, left_shift, diff_min } => {
                    q::QOp::Softmax { multiplier, left_shift, diff_min }
                }
                QOp::Pad { pads, value } => q::QOp::Pad { pads, value },
                QOp::ResizeNearest { rows, cols } => q::QOp::ResizeNearest { rows, cols },
                QOp::Dilate { stride } => q::QOp::Dilate { stride },
                QOp::ResizeLinear { rows, cols } => {
                    let r = |m: Vec<(usize, usize, i32)>| {
                        m.into_iter().map(|(lo, hi, frac)| q::LerpQ { lo, hi, frac }).collect()
                    };
                    q::QOp::ResizeLinear { rows: r(rows), cols: r(cols) }
                }
                QOp::Transpose { perm } => q::QOp::Transpose { perm },
                QOp::Sub { left_shift, ma, mb, mo } => q::QOp::Sub { left_shift, ma, mb, mo },
            }
        }
    }

    impl From<&q::WeightedLayer> for WeightedLayer {
        fn from(w: &q::WeightedLayer) -> WeightedLayer {
            let q::WeightedLayer { weights, shape, bits, w_scale, w_zero, bias, requant } = w;
            WeightedLayer {
                weights: weights.clone(),
                shape: shape.clone(),
                bits: (*bits).into(),
                w_scale: w_scale.clone(),
                w_zero: w_zero.clone(),
                bias: bias.clone(),
                requant: match requant {
                    q::Requant::Multiplier(v) => Requant::Multiplier(v.clone()),
                    q::Requant::Shift(v) => Requant::Shift(v.clone()),
                    q::Requant::SingleRounding(v) => Requant::SingleRounding(v.clone()),
                },
            }
        }
    }

    impl From<WeightedLayer> for q::WeightedLayer {
        fn from(w: WeightedLayer) -> q::WeightedLayer {
            let WeightedLayer { weights, shape, bits, w_scale, w_zero, bias, requant } = w;
            q::WeightedLayer {
                weights,
                shape,
                bits: bits.into(),
                w_scale,
                w_zero,
                bias,
                requant: match requant {
                    Requant::Multiplier(v) => q::Requant::Multiplier(v),
                    Requant::Shift(v) => q::Requant::Shift(v),
                    Requant::SingleRounding(v) => q::Requant::SingleRounding(v),
                },
            }
        }
    }

    impl From<&ir::Graph> for Graph {
        fn from(g: &ir::Graph) -> Graph {
            let ir::Graph { values, nodes, inputs, outputs } = g;
            Graph {
                values: values
                    .iter()
                    .map(|v| {
                        let ir::Value { name, shape, source } = v;
                        Value {
                            name: name.clone(),
                            shape: shape.clone(),
                            source: match source {
                                ir::Source::Input => Source::Input,
                                ir::Source::Const(ir::Tensor { shape, data }) => {
                                    Source::Const(Tensor { shape: shape.clone(), data: data.clone() })
                                }
                                ir::Source::Node(n) => Source::Node(*n),
                            },
                        }
                    })
                    .collect(),
                nodes: nodes
                    .iter()
                    .map(|n| {
                        let ir::Node { name, op, inputs, output } = n;
                        Node { name: name.clone(), op: op.into(), inputs: inputs.clone(), output: *output }
                    })
                    .collect(),
                inputs: inputs.clone(),
                outputs: outputs.clone(),
            }
        }
    }

    impl From<Graph> for ir::Graph {
        fn from(g: Graph) -> ir::Graph {
            let Graph { values, nodes, inputs, outputs } = g;
            ir::Graph {
                values: values
                    .into_iter()
                    .map(|Value { name, shape, source }| ir::Value {
                        name,
                        shape,
                        source: match source {
                            Source::Input => ir::Source::Input,
                            Source::Const(Tensor { shape, data }) => ir::Source::Const(ir::Tensor { shape, data }),
                            Source::Node(n) => ir::Source::Node(n),
                        },
                    })
                    .collect(),
                nodes: nodes
                    .into_iter()
                    .map(|Node { name, op, inputs, output }| ir::Node { name, op: op.into(), inputs, output })
                    .collect(),
                inputs,
                outputs,
            }
        }
    }

    impl From<ir::Activation> for Activation {
        fn from(a: ir::Activation) -> Activation {
            match a {
                ir::Activation::None => Activation::None,
                ir::Activation::Relu => Activation::Relu,
                ir::Activation::Clip { lo, hi } => Activation::Clip { lo, hi },
            }
        }
    }

    impl From<Activation> for ir::Activation {
        fn from(a: Activation) -> ir::Activation {
            match a {
                Activation::None => ir::Activation::None,
                Activation::Relu => ir::Activation::Relu,
                Activation::Clip { lo, hi } => ir::Activation::Clip { lo, hi },
            }
        }
    }

    impl From<&ir::Op> for Op {
        fn from(o: &ir::Op) -> Op {
            use ir::Op as I;
            match o.clone() {
                I::Conv2d { stride, pad, dilation, groups, act } => {
                    Op::Conv2d { stride, pad, dilation, groups, act: act.into() }
                }
                I::Dense { act } => Op::Dense { act: act.into() },
                I::BatchNorm { eps } => Op::BatchNorm { eps },
                I::Relu => Op::Relu,
                I::Clip { lo, hi } => Op::Clip { lo, hi },
                I::LeakyRelu { alpha } => Op::LeakyRelu { alpha },
                I::HardSwish => Op::HardSwish,
                I::Sigmoid => Op::Sigmoid,
                I::MaxPool { kernel, stride, pad } => Op::MaxPool { kernel, stride, pad },
                I::AvgPool { kernel, stride, pad, count_include_pad } => {
                    Op::AvgPool { kernel, stride, pad, count_include_pad }
                }
                I::GlobalAvgPool => Op::GlobalAvgPool,
                I::Add => Op::Add,
                I::Mul => Op::Mul,
                I::Concat { axis } => Op::Concat { axis },
                I::Pad { pads, value } => Op::Pad { pads, value },
                I::Reshape { shape } => Op::Reshape { shape },
                I::Flatten => Op::Flatten,
                I::Transpose { perm } => Op::Transpose { perm },
                I::Softmax { axis } => Op::Softmax { axis },
                I::Tanh => Op::Tanh,
                I::HardSigmoid { alpha, beta } => Op::HardSigmoid { alpha, beta },
                I::Silu => Op::Silu,
                I::Slice { axis, start, end, step } => Op::Slice { axis, start, end, step },
                I::ChannelShuffle { groups } => Op::ChannelShuffle { groups },
                I::Function { name, steps } => {
                    Op::Function { name, steps: steps.into_iter().map(Step::from).collect() }
                }
                I::ResizeNearest { rows, cols } => Op::ResizeNearest { rows, cols },
                I::Dilate { stride } => Op::Dilate { stride },
                I::ResizeLinear { rows, cols } => {
                    let w = |m: Vec<ir::Lerp>| m.into_iter().map(|l| (l.lo, l.hi, l.frac)).collect();
                    Op::ResizeLinear { rows: w(rows), cols: w(cols) }
                }
                I::DynamicQuantize { asymmetric } => Op::DynamicQuantize { asymmetric },
            }
        }
    }

    impl From<Op> for ir::Op {
        fn from(o: Op) -> ir::Op {
            use ir::Op as I;
            match o {
                Op::Conv2d { stride, pad, dilation, groups, act } => {
                    I::Conv2d { stride, pad, dilation, groups, act: act.into() }
                }
                Op::Dense { act } => I::Dense { act: act.into() },
                Op::BatchNorm { eps } => I::BatchNorm { eps },
                Op::Relu => I::Relu,
                Op::Clip { lo, hi } => I::Clip { lo, hi },
                Op::LeakyRelu { alpha } => I::LeakyRelu { alpha },
                Op::HardSwish => I::HardSwish,
                Op::Sigmoid => I::Sigmoid,
                Op::MaxPool { kernel, stride, pad } => I::MaxPool { kernel, stride, pad },
                Op::AvgPool { kernel, stride, pad, count_include_pad } => {
                    I::AvgPool { kernel, stride, pad, count_include_pad }
                }
                Op::GlobalAvgPool => I::GlobalAvgPool,
                Op::Add => I::Add,
                Op::Mul => I::Mul,
                Op::Concat { axis } => I::Concat { axis },
                Op::Pad { pads, value } => I::Pad { pads, value },
                Op::Reshape { shape } => I::Reshape { shape },
                Op::Flatten => I::Flatten,
                Op::Transpose { perm } => I::Transpose { perm },
                Op::Softmax { axis } => I::Softmax { axis },
                Op::Tanh => I::Tanh,
                Op::HardSigmoid { alpha, beta } => I::HardSigmoid { alpha, beta },
                Op::Silu => I::Silu,
                Op::Slice { axis, start, end, step } => I::Slice { axis, start, end, step },
                Op::ChannelShuffle { groups } => I::ChannelShuffle { groups },
                Op::Function { name, steps } => {
                    I::Function { name, steps: steps.into_iter().map(ir::Step::from).collect() }
                }
                Op::ResizeNearest { rows, cols } => I::ResizeNearest { rows, cols },
                Op::Dilate { stride } => I::Dilate { stride },
                Op::ResizeLinear { rows, cols } => {
                    let r = |m: Vec<(usize, usize, f32)>| {
                        m.into_iter().map(|(lo, hi, frac)| ir::Lerp { lo, hi, frac }).collect()
                    };
                    I::ResizeLinear { rows: r(rows), cols: r(cols) }
                }
                Op::DynamicQuantize { asymmetric } => I::DynamicQuantize { asymmetric },
            }
        }
    }
}

/// Version 2 of the format: version 1's types but for the file body and its
/// preprocessing. Field order is wire order.
pub mod v2 {
    #![allow(missing_docs)]

    use serde::{Deserialize, Serialize};

    use super::v1::{Graph, Layout, QLayer, QValue, Scheme};
    use crate as q;

    /// The whole file body.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct File {
        pub name: String,
        pub scheme: Scheme,
        pub preprocess: Preprocess,
        /// Whether the model's own interface takes integers (an int8 TFLite model).
        pub integer_input: bool,
        pub values: Vec<QValue>,
        pub layers: Vec<QLayer>,
        pub output: usize,
        pub graph: Graph,
        pub value_map: Vec<Option<usize>>,
    }

    /// Input preprocessing: `(v · scale − mean[c]) / std[c]`, samples in `layout`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Preprocess {
        pub scale: f32,
        pub mean: Vec<f32>,
        pub std: Vec<f32>,
        pub layout: Layout,
    }

    impl From<&q::QModel> for File {
        fn from(m: &q::QModel) -> File {
            let q::QModel { name, scheme, preprocess, integer_input, values, layers, output, graph, value_map } = m;
            File {
                name: name.clone(),
                scheme: scheme.into(),
                preprocess: preprocess.into(),
                integer_input: *integer_input,
                values: values.iter().map(Into::into).collect(),
                layers: layers.iter().map(Into::into).collect(),
                output: *output,
                graph: graph.into(),
                value_map: value_map.clone(),
            }
        }
    }

    impl From<File> for q::QModel {
        fn from(f: File) -> q::QModel {
            let File { name, scheme, preprocess, integer_input, values, layers, output, graph, value_map } = f;
            q::QModel {
                name,
                scheme: scheme.into(),
                preprocess: preprocess.into(),
                integer_input,
                values: values.into_iter().map(Into::into).collect(),
                layers: layers.into_iter().map(Into::into).collect(),
                output,
                graph: graph.into(),
                value_map,
            }
        }
    }

    impl From<&npu_data::Preprocess> for Preprocess {
        fn from(p: &npu_data::Preprocess) -> Preprocess {
            let npu_data::Preprocess { scale, mean, std, layout } = p;
            Preprocess { scale: *scale, mean: mean.clone(), std: std.clone(), layout: (*layout).into() }
        }
    }

    impl From<Preprocess> for npu_data::Preprocess {
        fn from(p: Preprocess) -> npu_data::Preprocess {
            let Preprocess { scale, mean, std, layout } = p;
            npu_data::Preprocess { scale, mean, std, layout: layout.into() }
        }
    }
}
