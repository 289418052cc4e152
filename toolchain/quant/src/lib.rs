//! The quantizer: an FP32 graph to exactly the integers the NPU computes with.
//!
//! ```text
//!  Graph (optimized: BN folded, activations fused)
//!     │ calib::ranges (FP32 runs over calibration images)        Scheme (types, widths, granularity)
//!     ▼                                                              │
//!  per-value float ranges ──────────────[quantize]───────────────────┘
//!     ▼
//!  QModel: per-activation QParams (scale, zero point, type) and per-layer integer
//!          parameters (int weights, int32 biases with the input zero point folded in,
//!          Q31 multipliers and shifts or power-of-two shifts, output zero points, clamps)
//!     │── int::run   (integer reference executor, through npu_isa::arith — the oracle)
//!     └── fake::run  (float simulation of the same quantization)
//! ```

#![deny(missing_docs)]

pub mod adaround;
pub mod calib;
pub mod equalize;
pub mod error;
pub mod fake;
pub mod int;
pub mod npuq;
pub mod report;
pub mod weights;

pub use error::{Error, Result};

use serde::{Deserialize, Serialize};

use npu_data::Preprocess;
use npu_isa::arith::{self, QuantizedMultiplier, Rounding};
use npu_model::ir::{Activation, Graph, Op, Source, ValueId};

/// How scales are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    /// Scale a power of two, zero point 0: requantization is a barrel shift.
    Pow2,
    /// Zero point 0.
    Symmetric,
    /// Scale and zero point from the range.
    Asymmetric,
}

/// Activation storage type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ActType {
    /// int8, −128..=127.
    I8,
    /// uint8, 0..=255.
    U8,
    /// 4-bit signed, −8..=7, stored in an int8 byte: every layer's requantization
    /// clamps to the 4-bit range (W4A4). A network's input and output, a softmax's
    /// input and output, and what reaches them through operators that keep their
    /// input's quantization stay int8.
    I4,
}

impl ActType {
    /// Inclusive range.
    pub fn range(self) -> (i32, i32) {
        match self {
            ActType::I8 => (-128, 127),
            ActType::U8 => (0, 255),
            ActType::I4 => (-8, 7),
        }
    }

    /// The type of the byte a value is stored in (4-bit activations are int8 bytes).
    pub fn storage(self) -> ActType {
        match self {
            ActType::I4 => ActType::I8,
            t => t,
        }
    }
}

/// Weight precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WeightBits {
    /// 8 bits.
    B8,
    /// 4 bits.
    B4,
    /// Ternary {−1, 0, +1} with a scale α per channel (or tensor).
    Ternary,
    /// Binary {−1, +1} with a scale α per channel (or tensor), XNOR-Net style.
    Binary,
}

/// How one layer's weights are quantized.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WeightScheme {
    /// Scale selection (ternary and binary ignore it: α is the mean magnitude).
    pub kind: Kind,
    /// Precision.
    pub bits: WeightBits,
    /// One scale per output channel (else one per tensor).
    pub per_channel: bool,
    /// Clip weights to mean ± k·σ before choosing the range.
    pub clip_sigma: Option<f32>,
}

/// How activations are quantized.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ActScheme {
    /// Scale selection.
    pub kind: Kind,
    /// Storage type.
    pub dtype: ActType,
}

/// A complete quantization scheme.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scheme {
    /// Name (`int8-per-channel`).
    pub name: String,
    /// Activations.
    pub act: ActScheme,
    /// Weights of every layer but those pinned or overridden.
    pub weights: WeightScheme,
    /// First and last weighted layers keep 8-bit per-channel weights.
    pub pin_first_last: bool,
    /// Per-layer weight overrides, by node name.
    pub overrides: Vec<(String, WeightScheme)>,
    /// Requantization rounding.
    pub rounding: RoundingMode,
}

/// Requantization rounding (mirrors `npu_isa::arith::Rounding`, which stays serde-free).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum RoundingMode {
    /// TFLite's default: SRDHM then rounding shift.
    #[default]
    Double,
    /// `TFLITE_SINGLE_ROUNDING`.
    Single,
}

impl RoundingMode {
    /// The arithmetic module's rounding.
    pub fn arith(self) -> Rounding {
        match self {
            RoundingMode::Double => Rounding::Double,
            RoundingMode::Single => Rounding::Single,
        }
    }
}

fn ws(kind: Kind, bits: WeightBits, per_channel: bool) -> WeightScheme {
    WeightScheme { kind, bits, per_channel, clip_sigma: None }
}

/// The named schemes.
pub const SCHEMES: &[&str] = &[
    "int8-pow2",
    "int8-sym",
    "uint8-asym",
    "int8-per-channel",
    "w4a8-per-channel",
    "w4a4-per-channel",
    "ternary-weights",
    "binary-weights",
];

impl Scheme {
    /// A named scheme.
    pub fn named(name: &str) -> Result<Scheme> {
        let (act, weights, pin) = match name {
            "int8-pow2" => {
                (ActScheme { kind: Kind::Pow2, dtype: ActType::I8 }, ws(Kind::Pow2, WeightBits::B8, false), false)
            }
            "int8-sym" => (
                ActScheme { kind: Kind::Symmetric, dtype: ActType::I8 },
                ws(Kind::Symmetric, WeightBits::B8, false),
                false,
            ),
            "uint8-asym" => (
                ActScheme { kind: Kind::Asymmetric, dtype: ActType::U8 },
                ws(Kind::Asymmetric, WeightBits::B8, false),
                false,
            ),
            "int8-per-channel" => (
                ActScheme { kind: Kind::Asymmetric, dtype: ActType::I8 },
                ws(Kind::Symmetric, WeightBits::B8, true),
                false,
            ),
            "w4a8-per-channel" => (
                ActScheme { kind: Kind::Asymmetric, dtype: ActType::I8 },
                ws(Kind::Symmetric, WeightBits::B4, true),
                true,
            ),
            "w4a4-per-channel" => (
                ActScheme { kind: Kind::Asymmetric, dtype: ActType::I4 },
                ws(Kind::Symmetric, WeightBits::B4, true),
                true,
            ),
            "ternary-weights" => (
                ActScheme { kind: Kind::Asymmetric, dtype: ActType::I8 },
                ws(Kind::Symmetric, WeightBits::Ternary, true),
                true,
            ),
            "binary-weights" => (
                ActScheme { kind: Kind::Asymmetric, dtype: ActType::I8 },
                ws(Kind::Symmetric, WeightBits::Binary, true),
                true,
            ),
            "fp32" => {
                return Err(Error::Invalid(
                    "`fp32` is the unquantized model: evaluate or run the model itself (npu eval MODEL)".into(),
                ))
            }
            other => {
                return Err(Error::Invalid(format!(
                    "unknown scheme `{other}` (expected fp32 or one of: {})",
                    SCHEMES.join(", ")
                )))
            }
        };
        Ok(Scheme {
            name: name.into(),
            act,
            weights,
            pin_first_last: pin,
            overrides: Vec::new(),
            rounding: RoundingMode::Double,
        })
    }

    /// The weight scheme of the `i`-th of `count` weighted layers, named `name`.
    pub fn weights_for(&self, name: &str, i: usize, count: usize) -> WeightScheme {
        if let Some((_, w)) = self.overrides.iter().find(|(n, _)| n == name) {
            return *w;
        }
        if self.pin_first_last && (i == 0 || i + 1 == count) {
            let kind = if self.weights.kind == Kind::Pow2 { Kind::Pow2 } else { Kind::Symmetric };
            return WeightScheme { kind, bits: WeightBits::B8, per_channel: true, clip_sigma: self.weights.clip_sigma };
        }
        self.weights
    }
}

/// Quantization of one activation tensor: `real = scale · (q − zero_point)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct QParams {
    /// Scale.
    pub scale: f32,
    /// Zero point.
    pub zero_point: i32,
    /// Storage type.
    pub dtype: ActType,
}

impl QParams {
    /// Quantizes a real value (round half away from zero, saturate).
    pub fn quantize(&self, x: f32) -> i32 {
        let (lo, hi) = self.dtype.range();
        let q = (f64::from(x) / f64::from(self.scale)).round() + f64::from(self.zero_point);
        q.clamp(f64::from(lo), f64::from(hi)) as i32
    }
    /// The real value of `q`.
    pub fn dequantize(&self, q: i32) -> f32 {
        self.scale * (q - self.zero_point) as f32
    }
}

/// The smallest activation scale: a narrower range (a dead ReLU's zeros, a network whose
/// activations vanish) is quantized with this step, every value at the zero point —
/// reported by [`QModel::collapsed_values`].
pub const MIN_ACT_SCALE: f32 = 1e-8;

/// Activation parameters for the real range `[lo, hi]` (widened to contain 0).
pub fn act_params(lo: f32, hi: f32, s: ActScheme) -> QParams {
    let (lo, hi) = (lo.min(0.0), hi.max(0.0));
    let (qmin, qmax) = s.dtype.range();
    let tiny = MIN_ACT_SCALE;
    match s.kind {
        Kind::Asymmetric => {
            let scale = ((hi - lo) / (qmax - qmin) as f32).max(tiny);
            let zp = (qmin as f32 - lo / scale).round().clamp(qmin as f32, qmax as f32) as i32;
            QParams { scale, zero_point: zp, dtype: s.dtype }
        }
        Kind::Symmetric | Kind::Pow2 => {
            // int8: zero point 0, ±127; uint8 (non-negative data): zero point 0, 0..255.
            let (m, q) = match s.dtype {
                ActType::I8 => (lo.abs().max(hi), 127.0),
                ActType::U8 => (hi, 255.0),
                ActType::I4 => (lo.abs().max(hi), 7.0),
            };
            let mut scale = (m / q).max(tiny);
            if s.kind == Kind::Pow2 {
                scale = 2f32.powi(scale.log2().ceil() as i32);
            }
            QParams { scale, zero_point: 0, dtype: s.dtype }
        }
    }
}

/// `q` with its scale raised to at least `min` (the zero point kept, so the range still
/// covers the original one; a power of two again under `Pow2`): an output range so narrow
/// next to its input's — typically data-free estimates, an input range from propagated
/// interval bounds and an output range from BatchNorm statistics — that the
/// requantization multiplier `s_in·s_w / s_out` would exceed what the hardware holds
/// (2³⁰) is widened until it fits, instead of making the model impossible to quantize.
/// `layer` names it in the warning that says so.
fn scale_at_least(q: QParams, min: f64, s: ActScheme, layer: &str) -> QParams {
    if f64::from(q.scale) >= min || !min.is_finite() {
        return q;
    }
    let mut scale = min as f32;
    if s.kind == Kind::Pow2 {
        scale = 2f32.powi(scale.log2().ceil() as i32);
    }
    tracing::warn!(
        "layer `{layer}`: its output scale {:e} is too fine for its inputs' scales (the requantization multiplier would pass 2^30); widened to {scale:e}",
        q.scale
    );
    QParams { scale, ..q }
}

/// The values that stay int8 under 4-bit activations ([`ActType::I4`]): the network's
/// input and output, a softmax's input and output, and whatever reaches one of them
/// through operators that keep their input's quantization (pooling, reshapes, ReLU,
/// slicing, resizing, padding) — as W4A4 networks keep their first input and their
/// logits at 8 bits.
fn int8_values(g: &Graph) -> Vec<bool> {
    let mut wide = vec![false; g.values.len()];
    for &v in g.inputs.iter().chain(&g.outputs) {
        wide[v] = true;
    }
    for n in &g.nodes {
        if matches!(n.op, Op::Softmax { .. }) {
            wide[n.output] = true;
            wide[n.inputs[0]] = true;
        }
    }
    for n in g.nodes.iter().rev() {
        let keeps = matches!(
            n.op,
            Op::MaxPool { .. }
                | Op::AvgPool { .. }
                | Op::GlobalAvgPool
                | Op::Reshape { .. }
                | Op::Flatten
                | Op::Relu
                | Op::Clip { .. }
                | Op::Transpose { .. }
                | Op::Dilate { .. }
                | Op::ResizeNearest { .. }
                | Op::ResizeLinear { .. }
                | Op::Slice { .. }
                | Op::ChannelShuffle { .. }
                | Op::Pad { .. }
        );
        if keeps && wide[n.output] {
            if let Some(&x) = n.inputs.first() {
                wide[x] = true;
            }
        }
    }
    wide
}

/// The largest real multiplier an output scale is chosen to allow, with a margin below
/// the 2³⁰ the requantization record holds.
const MAX_REAL_MULTIPLIER: f64 = (1u64 << 29) as f64;

/// How the requantization unit scales a layer's accumulators.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Requant {
    /// Per channel (or one for all): Q31 multiplier and shift.
    Multiplier(Vec<(i32, i32)>),
    /// Per channel (or one for all): a power-of-two shift only.
    Shift(Vec<i32>),
    /// Per channel (or one for all): Q31 multiplier and shift applied with single
    /// rounding whatever the scheme's rounding (TFLite's int8 FULLY_CONNECTED kernel).
    SingleRounding(Vec<(i32, i32)>),
}

impl Requant {
    /// Scales an accumulator of channel `c` (bias already added).
    pub fn apply(&self, acc: i32, c: usize, rounding: Rounding) -> i32 {
        self.channel(c, rounding).apply(acc)
    }

    /// The scaling of channel `c`, checked once so that a layer's loop over its
    /// accumulators only multiplies and shifts.
    pub fn channel(&self, c: usize, rounding: Rounding) -> ChannelRequant {
        match self {
            Requant::Multiplier(v) | Requant::SingleRounding(v) => {
                let Some(&(m, s)) = v.get(c.min(v.len().saturating_sub(1))) else {
                    return ChannelRequant::Zero;
                };
                let rounding = if matches!(self, Requant::SingleRounding(_)) { Rounding::Single } else { rounding };
                // Valid by construction and checked by `QModel::validate`.
                match QuantizedMultiplier::new(m, s) {
                    Ok(qm) => ChannelRequant::Multiplier(qm, rounding),
                    Err(_) => ChannelRequant::Zero,
                }
            }
            Requant::Shift(v) => match v.get(c.min(v.len().saturating_sub(1))) {
                Some(&s) if arith::rounding_shift(0, s).is_ok() => ChannelRequant::Shift(s),
                _ => ChannelRequant::Zero,
            },
        }
    }
}

/// One channel's requantization, prepared by [`Requant::channel`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelRequant {
    /// Q31 multiplier and shift with a rounding.
    Multiplier(QuantizedMultiplier, Rounding),
    /// A power-of-two shift.
    Shift(i32),
    /// A record `QModel::validate` refuses (no entry, an invalid multiplier or shift):
    /// scales everything to 0 rather than panicking in a model that skipped validation.
    Zero,
}

impl ChannelRequant {
    /// Scales one accumulator.
    #[inline]
    pub fn apply(self, acc: i32) -> i32 {
        match self {
            ChannelRequant::Multiplier(qm, rounding) => arith::multiply_by_quantized_multiplier(acc, qm, rounding),
            ChannelRequant::Shift(s) => arith::rounding_shift(acc, s).unwrap_or(0),
            ChannelRequant::Zero => 0,
        }
    }
}

/// A weighted layer (convolution or dense) in integers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightedLayer {
    /// Weight values, in the graph's weight layout, each within the precision's range.
    pub weights: Vec<i32>,
    /// Weight shape (`[Cout, Cin/g, kh, kw]` or `[Out, In]`).
    pub shape: Vec<usize>,
    /// Precision.
    pub bits: WeightBits,
    /// Scale per output channel (one entry if per-tensor).
    pub w_scale: Vec<f32>,
    /// Zero point per output channel (asymmetric weights; zeros otherwise).
    pub w_zero: Vec<i32>,
    /// int32 bias per output channel, with every constant zero-point term folded in:
    /// `round(b/(s_in·s_w)) − z_in·Σw + K·z_in·z_w`.
    pub bias: Vec<i32>,
    /// Requantization to the output.
    pub requant: Requant,
}

/// One output position of an integer linear interpolation along an axis:
/// `(1024 − frac)·x[lo] + frac·x[hi]`, in 1/1024 (TFLite's 10-bit fixed point).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LerpQ {
    /// Lower input position.
    pub lo: usize,
    /// Upper input position.
    pub hi: usize,
    /// Weight of `hi`, in 1/1024 (−1024..=1024; when `lo == hi` it does not change the result).
    pub frac: i32,
}

impl LerpQ {
    /// The float interpolation `l` in 10-bit fixed point. Between distinct positions the
    /// graph holds the weight to [−1, 1] (a shape rule of `ResizeLinear`), so nothing is
    /// clamped; at an edge (`lo == hi`) the weight does not matter and is 0.
    pub fn from_lerp(l: &npu_model::ir::Lerp) -> LerpQ {
        let frac = if l.lo == l.hi { 0 } else { (l.frac * 1024.0).round() as i32 };
        LerpQ { lo: l.lo, hi: l.hi, frac }
    }
}

/// One layer of a quantized model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum QOp {
    /// Convolution (geometry as in the IR).
    Conv2d {
        /// Stride.
        stride: [usize; 2],
        /// Padding (top, left, bottom, right), filled with the input zero point.
        pad: [usize; 4],
        /// Dilation.
        dilation: [usize; 2],
        /// Groups.
        groups: usize,
        /// Integer parameters.
        layer: WeightedLayer,
    },
    /// Fully connected.
    Dense {
        /// Integer parameters.
        layer: WeightedLayer,
    },
    /// Elementwise add with per-input rescale (TFLite ADD); optional fused ReLU via the clamp.
    Add {
        /// Left shift (20).
        left_shift: u32,
        /// First input multiplier.
        ma: (i32, i32),
        /// Second input multiplier.
        mb: (i32, i32),
        /// Output multiplier.
        mo: (i32, i32),
    },
    /// Max pooling (same parameters in and out).
    MaxPool {
        /// Window.
        kernel: [usize; 2],
        /// Stride.
        stride: [usize; 2],
        /// Padding (excluded).
        pad: [usize; 4],
    },
    /// Average pooling, padding excluded (same parameters in and out).
    AvgPool {
        /// Window.
        kernel: [usize; 2],
        /// Stride.
        stride: [usize; 2],
        /// Padding (excluded).
        pad: [usize; 4],
    },
    /// Global average pooling (same parameters in and out).
    GlobalAvgPool,
    /// A reshape or flatten (data unchanged).
    Reshape,
    /// Concatenation along channels of inputs with the output's quantization (data
    /// copied; TFLite's int8 CONCATENATION).
    Concat,
    /// An elementwise function by lookup: output = `table[x − min]` over the input type's
    /// 256 values (sigmoid, tanh, hard-sigmoid, hard-swish, leaky ReLU), as Ethos-U runs
    /// them; the NPU's vector unit `lut`.
    Lut {
        /// One output integer per input integer, from the type's minimum up.
        table: Vec<i32>,
    },
    /// Elementwise product (TFLite MUL): `clamp(MBQM((a − za)·(b − zb), mo) + zo)`. The
    /// second input broadcasts over the first by NumPy's rules (squeeze-excite's channel
    /// scaling: `[C, H, W] × [C, 1, 1]`); the vector unit's `vmul`.
    Mul {
        /// Output multiplier and shift (`sa·sb/so`).
        mo: (i32, i32),
    },
    /// Channels picked from the input (same parameters in and out): output channel `i` is
    /// input channel `map[i]` — channel slices, splits and shuffles; DMA copies.
    Gather {
        /// Input channel of each output channel.
        map: Vec<usize>,
    },
    /// Constant padding of the spatial dimensions (same parameters in and out): `value`
    /// (an integer of the input's type) around each channel plane; DMA copies with fill.
    Pad {
        /// Rows above, columns left, rows below, columns right.
        pads: [usize; 4],
        /// Fill integer.
        value: i32,
    },
    /// Softmax over the channels of each pixel (the only axis of a vector), TFLite's 8-bit
    /// SOFTMAX (`arith::softmax`): output scale 1/256, zero point at the type's minimum;
    /// the vector unit's `softmax`.
    Softmax {
        /// `input_multiplier` (Q31 of `beta · input_scale · 2^26`).
        multiplier: i32,
        /// `input_left_shift`.
        left_shift: i32,
        /// `diff_min`.
        diff_min: i32,
    },
    /// Nearest-neighbour resampling (same parameters in and out): output pixel `(y, x)` is
    /// input pixel `(rows[y], cols[x])`; DMA loads that repeat and skip pixels.
    ResizeNearest {
        /// Input row of each output row.
        rows: Vec<usize>,
        /// Input column of each output column.
        cols: Vec<usize>,
    },
    /// Bilinear resampling (same parameters in and out), TFLite's integer algorithm: each
    /// output is `Σ x·(1024 − fy or fy)·(1024 − fx or fx)` over the four input pixels of
    /// `rows[y]` and `cols[x]`, divided by 2²⁰ rounding half away from zero. Runs on the
    /// host CPU.
    ResizeLinear {
        /// Rows interpolated for each output row (weights in 1/1024).
        rows: Vec<LerpQ>,
        /// Columns interpolated for each output column (weights in 1/1024).
        cols: Vec<LerpQ>,
    },
    /// A permutation of the `[C, H, W]` axes (same parameters in and out): output axis
    /// `i` is input axis `perm[i]`. Runs on the host CPU.
    Transpose {
        /// Permutation of `0..3`.
        perm: [usize; 3],
    },
    /// Zero-point insertion (same parameters in and out): input pixel `(y, x)` at
    /// `(y·sy, x·sx)`, the zero point between; before a stride-1 convolution, a transposed
    /// convolution. DMA loads that pad each pixel.
    Dilate {
        /// Stride (y, x).
        stride: [usize; 2],
    },
    /// Elementwise subtract with per-input rescale (TFLite SUB): as [`QOp::Add`] with the
    /// second rescaled term subtracted; the vector unit's `vsub`.
    Sub {
        /// Left shift (20).
        left_shift: u32,
        /// First input multiplier.
        ma: (i32, i32),
        /// Second input multiplier.
        mb: (i32, i32),
        /// Output multiplier.
        mo: (i32, i32),
    },
}

/// A layer: operator, inputs and output (indices into [`QModel::values`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QLayer {
    /// Node name in the FP32 graph.
    pub name: String,
    /// Operator and parameters.
    pub op: QOp,
    /// Input values.
    pub inputs: Vec<usize>,
    /// Output value.
    pub output: usize,
    /// Output clamp `[lo, hi]` in the output's integers (fused activation and type range).
    pub clamp: (i32, i32),
}

/// An activation of the quantized model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QValue {
    /// Name.
    pub name: String,
    /// Per-sample shape.
    pub shape: Vec<usize>,
    /// Quantization.
    pub q: QParams,
}

/// A quantized model: what the compiler lowers and the integer executor runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QModel {
    /// Model name.
    pub name: String,
    /// Scheme used.
    pub scheme: Scheme,
    /// Pixel preprocessing (the host quantizes the preprocessed input with `values[input]`).
    pub preprocess: Preprocess,
    /// Whether the model's own interface takes integers (an int8 TFLite model): integer
    /// samples of the input's type are then its input values, not raw readings.
    pub integer_input: bool,
    /// Activations; index 0 is the input.
    pub values: Vec<QValue>,
    /// Layers in order.
    pub layers: Vec<QLayer>,
    /// The output value (logits).
    pub output: usize,
    /// The FP32 graph the model was quantized from (optimized), for fake-quant runs and reports.
    pub graph: Graph,
    /// For each FP32 graph value, the quantized value it maps to (if any).
    pub value_map: Vec<Option<usize>>,
}

/// Float range of every graph value, from calibration or data-free analysis.
pub type Ranges = Vec<Option<(f32, f32)>>;

fn clamp_for(act: Activation, q: QParams) -> (i32, i32) {
    let (qmin, qmax) = q.dtype.range();
    match act {
        Activation::None => (qmin, qmax),
        Activation::Relu => (q.zero_point.max(qmin), qmax),
        Activation::Clip { lo, hi } => {
            let l = (q.zero_point as f32 + (lo / q.scale).round()).max(qmin as f32) as i32;
            let h = (q.zero_point as f32 + (hi / q.scale).round()).min(qmax as f32) as i32;
            (l.min(h), h.max(l))
        }
    }
}

fn multiplier(real: f64, what: &str) -> Result<(i32, i32)> {
    let q = arith::quantize_multiplier(real).map_err(|e| Error::Invalid(format!("{what}: {e}")))?;
    Ok((q.multiplier(), q.shift()))
}

/// Quantizes an optimized FP32 graph with `ranges` (one per graph value) under `scheme`.
pub fn quantize(g: &Graph, ranges: &Ranges, scheme: &Scheme, name: &str, preprocess: Preprocess) -> Result<QModel> {
    quantize_with(g, ranges, scheme, name, preprocess, None)
}

/// Bias correction: `b' = b − (deq(W_q) − W)·E[x]` per output channel, with `E[x]` the
/// per-channel mean of each layer's input (`means`, indexed by graph value), so that the
/// weight quantization error has zero mean on the output.
pub fn correct_bias(
    w: &[f32],
    shape: &[usize],
    groups: usize,
    qw: &weights::QuantWeights,
    bias: &mut [f32],
    mean: &[f32],
) {
    let co = shape[0];
    let per = w.len() / co.max(1);
    let taps = if shape.len() == 4 { shape[2] * shape[3] } else { 1 };
    let cig = per / taps.max(1);
    for c in 0..co {
        let grp = c / (co / groups.max(1)).max(1);
        let mut corr = 0f64;
        for k in 0..per {
            let ch = if shape.len() == 4 { grp * cig + k / taps } else { k };
            let dw = f64::from(qw.dequantize(c * per + k)) - f64::from(w[c * per + k]);
            corr += dw * f64::from(mean.get(ch).copied().unwrap_or(0.0));
        }
        bias[c] -= corr as f32;
    }
}

/// Ranges where every input of a channel concatenation that feeds nothing else takes the
/// concatenation's range (the union of all), so that its producer writes the output's
/// integers directly and the concatenation is a copy (TFLite's shared-scale rule).
fn shared_concat_ranges(g: &Graph, ranges: &Ranges) -> Ranges {
    let mut out = ranges.clone();
    for n in g.nodes.iter().filter(|n| matches!(n.op, Op::Concat { axis: 0 })) {
        let all = n.inputs.iter().chain([&n.output]).map(|&v| ranges.get(v).copied().flatten());
        let Some((lo, hi)) = all
            .collect::<Option<Vec<_>>>()
            .map(|r| r.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), (lo, hi)| (a.min(*lo), b.max(*hi))))
        else {
            continue;
        };
        for &v in n.inputs.iter().chain([&n.output]) {
            if g.uses(v) == 1 && is_activation(g, v) && !g.inputs.contains(&v) {
                out[v] = Some((lo, hi));
            }
        }
        out[n.output] = Some((lo, hi));
    }
    out
}

/// [`quantize`] with optional bias correction from per-value channel means.
pub fn quantize_with(
    g: &Graph,
    ranges: &Ranges,
    scheme: &Scheme,
    name: &str,
    preprocess: Preprocess,
    means: Option<&[Option<Vec<f32>>]>,
) -> Result<QModel> {
    quantize_rounded(g, ranges, scheme, name, preprocess, means, WeightRounding::Nearest)
}

/// [`quantize`] where the weights of the layers named in `given` were quantized
/// elsewhere — integers, per-channel (or per-tensor) scales and zero points learned by
/// quantization-aware training with learned step sizes — and are taken as they are;
/// the other layers are quantized as usual. Each given tensor must have the layer's
/// shape, the precision and granularity its scheme gives it, and values on its grid.
pub fn quantize_given(
    g: &Graph,
    ranges: &Ranges,
    scheme: &Scheme,
    name: &str,
    preprocess: Preprocess,
    given: &std::collections::HashMap<String, weights::QuantWeights>,
) -> Result<QModel> {
    for layer in given.keys() {
        if !g.nodes.iter().any(|n| &n.name == layer && matches!(n.op, Op::Conv2d { .. } | Op::Dense { .. })) {
            return Err(Error::Invalid(format!(
                "weights given for `{layer}`, which is not a convolution or dense layer"
            )));
        }
    }
    quantize_rounded(g, ranges, scheme, name, preprocess, None, WeightRounding::Given(given))
}

/// How [`quantize_rounded`] rounds each layer's weights.
enum WeightRounding<'a> {
    /// To the nearest level.
    Nearest,
    /// Quantized elsewhere, by layer name (the rest to the nearest level).
    Given(&'a std::collections::HashMap<String, weights::QuantWeights>),
}

/// Checks that `qw`, given for layer `layer`, fits its float weights' shape and its
/// scheme `s`: precision, one scale (and zero point) per channel or one per tensor, and
/// every integer within the precision's range.
fn check_given(layer: &str, qw: &weights::QuantWeights, shape: &[usize], s: WeightScheme) -> Result<()> {
    let bad = |what: String| Err(Error::Invalid(format!("weights given for `{layer}`: {what}")));
    if qw.shape != shape || qw.values.len() != shape.iter().product::<usize>() {
        return bad(format!("shape {:?} ({} values), the layer's is {shape:?}", qw.shape, qw.values.len()));
    }
    if qw.bits != s.bits {
        return bad(format!("{:?} weights, the scheme gives the layer {:?}", qw.bits, s.bits));
    }
    let groups = if s.per_channel { shape[0] } else { 1 };
    if qw.scale.len() != groups || qw.zero.len() != groups {
        return bad(format!(
            "{} scales and {} zero points, the scheme's granularity needs {groups}",
            qw.scale.len(),
            qw.zero.len()
        ));
    }
    if let Some(s) = qw.scale.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
        return bad(format!("scale {s} is not a positive number"));
    }
    let (lo, hi) = match s.bits {
        WeightBits::B8 => (-128, 127),
        WeightBits::B4 => (-8, 7),
        WeightBits::Ternary | WeightBits::Binary => (-1, 1),
    };
    if let Some((i, v)) = qw.values.iter().enumerate().find(|(_, v)| !(lo..=hi).contains(*v)) {
        return bad(format!("value {v} at index {i} is outside {lo}..={hi}"));
    }
    if s.bits == WeightBits::Binary && qw.values.contains(&0) {
        return bad("binary weights are −1 or +1, not 0".into());
    }
    Ok(())
}

/// AdaRound ([`adaround`]) over the weighted layers of `g` in order, on `n` inputs `x`:
/// each layer is fitted to the float network's output of that layer, reading the
/// inputs the network rounded so far gives it (earlier layers' weights as rounded,
/// the layer's own input quantized to its range). Returns every weighted layer's
/// weights, for [`quantize_rounded`]'s [`WeightRounding::Given`].
fn adaround_layers(
    g: &Graph,
    ranges: &Ranges,
    scheme: &Scheme,
    (x, n): (&[f32], usize),
    cfg: &adaround::AdaRound,
) -> Result<std::collections::HashMap<String, weights::QuantWeights>> {
    let float = calib::all_activations(g, x, n)?;
    let ranges = &shared_concat_ranges(g, ranges);
    let int8 = int8_values(g);
    let weighted: Vec<usize> =
        (0..g.nodes.len()).filter(|&i| matches!(g.nodes[i].op, Op::Conv2d { .. } | Op::Dense { .. })).collect();
    let mut rounded = g.clone();
    let mut out = std::collections::HashMap::new();
    for (idx, &ni) in weighted.iter().enumerate() {
        let node = &g.nodes[ni];
        let wsch = scheme.weights_for(&node.name, idx, weighted.len());
        let wv = node.inputs[1];
        let w = g.values[wv]
            .constant()
            .ok_or_else(|| Error::Invalid(format!("node `{}`: weights are not constant", node.name)))?;
        let mut qw = weights::quantize(&w.data, &w.shape, wsch);
        let input = node.inputs[0];
        if let (Some(grid), Some(fx)) = (adaround::grid(wsch.bits, wsch.kind), float[input].as_deref()) {
            // The rounded network up to this layer's input, then that input's quantizer.
            let mut qx = if g.inputs.contains(&input) {
                fx.to_vec()
            } else {
                let mut prefix = rounded.clone();
                prefix.nodes.truncate(ni);
                prefix.outputs = vec![input];
                npu_model::fp32::run(&prefix, &[x], n)?.swap_remove(0)
            };
            if let Some(Some((lo, hi))) = ranges.get(input) {
                let act = if scheme.act.dtype == ActType::I4 && int8[input] {
                    ActScheme { dtype: ActType::I8, ..scheme.act }
                } else {
                    scheme.act
                };
                let q = act_params(*lo, *hi, act);
                qx.iter_mut().for_each(|v| *v = q.dequantize(q.quantize(*v)));
            }
            let (conv, groups) = match node.op {
                Op::Conv2d { stride, pad, dilation, groups, .. } => (Some((stride, pad, dilation, groups)), groups),
                _ => (None, 1),
            };
            let shape = |v: ValueId| g.values[v].shape.as_slice();
            let patches = |x: &[f32]| {
                adaround::patches(x, n, shape(input), &w.shape, shape(node.output), conv, cfg.samples, ni as u64)
            };
            let (fp, qp) = (patches(fx), patches(&qx));
            let changed = adaround::refine(&w.data, &mut qw, groups, &fp, Some(&qp), grid, cfg);
            tracing::info!(layer = %node.name, changed, "AdaRound: channels with learned rounding");
        }
        let data = (0..w.data.len()).map(|i| qw.dequantize(i)).collect();
        rounded.values[wv].source = Source::Const(npu_model::ir::Tensor { shape: w.shape.clone(), data });
        out.insert(node.name.clone(), qw);
    }
    Ok(out)
}

/// [`quantize_with`], with each weighted layer's weights rounded as `rounding` says.
fn quantize_rounded(
    g: &Graph,
    ranges: &Ranges,
    scheme: &Scheme,
    name: &str,
    preprocess: Preprocess,
    means: Option<&[Option<Vec<f32>>]>,
    rounding: WeightRounding<'_>,
) -> Result<QModel> {
    if g.inputs.len() != 1 || g.outputs.len() != 1 {
        return Err(Error::Invalid("quantization needs one input and one output".into()));
    }
    let mut values: Vec<QValue> = Vec::new();
    let mut map: Vec<Option<usize>> = vec![None; g.values.len()];
    let ranges = &shared_concat_ranges(g, ranges);
    let range = |v: ValueId| -> Result<(f32, f32)> {
        ranges
            .get(v)
            .copied()
            .flatten()
            .ok_or_else(|| Error::Invalid(format!("no range for value `{}`", g.values[v].name)))
    };
    let int8 = int8_values(g);
    let act_of = |v: ValueId| {
        if scheme.act.dtype == ActType::I4 && int8.get(v).copied().unwrap_or(false) {
            ActScheme { dtype: ActType::I8, ..scheme.act }
        } else {
            scheme.act
        }
    };
    let inp = g.inputs[0];
    let (lo, hi) = range(inp)?;
    values.push(QValue {
        name: g.values[inp].name.clone(),
        shape: g.values[inp].shape.clone(),
        q: act_params(lo, hi, act_of(inp)),
    });
    map[inp] = Some(0);
    let weighted: Vec<&str> = g
        .nodes
        .iter()
        .filter(|n| matches!(n.op, Op::Conv2d { .. } | Op::Dense { .. }))
        .map(|n| n.name.as_str())
        .collect();
    let mut layers = Vec::new();
    // Relu nodes folded into the Add before them.
    let mut folded_relu: Vec<bool> = vec![false; g.nodes.len()];
    for (ni, n) in g.nodes.iter().enumerate() {
        if folded_relu[ni] {
            continue;
        }
        let input_q = |i: usize| -> Result<usize> {
            map[n.inputs[i]].ok_or_else(|| {
                Error::Invalid(format!("node `{}`: input `{}` is not quantized", n.name, g.values[n.inputs[i]].name))
            })
        };
        let new_value = |values: &mut Vec<QValue>, q: QParams| -> usize {
            values.push(QValue { name: g.values[n.output].name.clone(), shape: g.values[n.output].shape.clone(), q });
            values.len() - 1
        };
        match &n.op {
            Op::Conv2d { act, .. } | Op::Dense { act } => {
                let xi = input_q(0)?;
                let qin = values[xi].q;
                let (lo, hi) = range(n.output)?;
                let idx = weighted.iter().position(|w| *w == n.name).unwrap_or(0);
                let wsch = scheme.weights_for(&n.name, idx, weighted.len());
                let w = g.values[n.inputs[1]]
                    .constant()
                    .ok_or_else(|| Error::Invalid(format!("node `{}`: weights are not constant", n.name)))?;
                let b = n.inputs.get(2).and_then(|&i| g.values[i].constant());
                let qw = match rounding {
                    WeightRounding::Given(given) => match given.get(&n.name) {
                        Some(qw) => {
                            check_given(&n.name, qw, &w.shape, wsch)?;
                            qw.clone()
                        }
                        None => weights::quantize(&w.data, &w.shape, wsch),
                    },
                    _ => weights::quantize(&w.data, &w.shape, wsch),
                };
                let max_w = qw.scale.iter().fold(0f32, |m, s| m.max(*s));
                let min_out = f64::from(qin.scale) * f64::from(max_w) / MAX_REAL_MULTIPLIER;
                let qout = scale_at_least(act_params(lo, hi, act_of(n.output)), min_out, scheme.act, &n.name);
                let mut bias: Vec<f32> = b.map_or_else(|| vec![0.0; w.shape[0]], |t| t.data.clone());
                if let Some(Some(mean)) = means.and_then(|m| m.get(n.inputs[0])) {
                    let groups = if let Op::Conv2d { groups, .. } = n.op { groups } else { 1 };
                    correct_bias(&w.data, &w.shape, groups, &qw, &mut bias, mean);
                }
                let layer =
                    weights::integer_layer(&n.name, qw, Some(&bias), qin, qout, wsch, scheme.act.kind == Kind::Pow2)?;
                let out = new_value(&mut values, qout);
                map[n.output] = Some(out);
                let op = match &n.op {
                    Op::Conv2d { stride, pad, dilation, groups, .. } => {
                        QOp::Conv2d { stride: *stride, pad: *pad, dilation: *dilation, groups: *groups, layer }
                    }
                    _ => QOp::Dense { layer },
                };
                layers.push(QLayer {
                    name: n.name.clone(),
                    op,
                    inputs: vec![xi],
                    output: out,
                    clamp: clamp_for(*act, qout),
                });
            }
            Op::Add => {
                let (a, b) = (input_q(0)?, input_q(1)?);
                // The broadcast operand second (a [C, 1, 1] added to a [C, H, W]).
                let (a, b) = if int::broadcast_index(&values[a].shape, &values[b].shape).is_none()
                    && int::broadcast_index(&values[b].shape, &values[a].shape).is_some()
                {
                    (b, a)
                } else {
                    (a, b)
                };
                // A ReLU right after (its only consumer) becomes the clamp.
                let relu =
                    g.nodes.iter().enumerate().find(|(_, m)| matches!(m.op, Op::Relu) && m.inputs[0] == n.output);
                let fuse = relu.filter(|_| g.uses(n.output) == 1);
                let out_value = fuse.map_or(n.output, |(_, m)| m.output);
                let (lo, hi) = range(out_value)?;
                let qout = act_params(lo, hi, act_of(out_value));
                let (sa, sb) = (f64::from(values[a].q.scale), f64::from(values[b].q.scale));
                let twice = 2.0 * sa.max(sb);
                let ls = 20u32;
                let op = QOp::Add {
                    left_shift: ls,
                    ma: multiplier(sa / twice, &n.name)?,
                    mb: multiplier(sb / twice, &n.name)?,
                    mo: multiplier(twice / (f64::from(1u32 << ls) * f64::from(qout.scale)), &n.name)?,
                };
                let out = new_value(&mut values, qout);
                let act = if fuse.is_some() { Activation::Relu } else { Activation::None };
                map[out_value] = Some(out);
                map[n.output] = Some(out);
                if let Some((ri, _)) = fuse {
                    folded_relu[ri] = true;
                }
                layers.push(QLayer {
                    name: n.name.clone(),
                    op,
                    inputs: vec![a, b],
                    output: out,
                    clamp: clamp_for(act, qout),
                });
            }
            Op::MaxPool { kernel, stride, pad } | Op::AvgPool { kernel, stride, pad, count_include_pad: false } => {
                let xi = input_q(0)?;
                let q = values[xi].q;
                let out = new_value(&mut values, q);
                map[n.output] = Some(out);
                let op = if matches!(n.op, Op::MaxPool { .. }) {
                    QOp::MaxPool { kernel: *kernel, stride: *stride, pad: *pad }
                } else {
                    QOp::AvgPool { kernel: *kernel, stride: *stride, pad: *pad }
                };
                layers.push(QLayer { name: n.name.clone(), op, inputs: vec![xi], output: out, clamp: q.dtype.range() });
            }
            Op::GlobalAvgPool | Op::Reshape { .. } | Op::Flatten => {
                let xi = input_q(0)?;
                let q = values[xi].q;
                let out = new_value(&mut values, q);
                map[n.output] = Some(out);
                let op = if matches!(n.op, Op::GlobalAvgPool) { QOp::GlobalAvgPool } else { QOp::Reshape };
                layers.push(QLayer { name: n.name.clone(), op, inputs: vec![xi], output: out, clamp: q.dtype.range() });
            }
            Op::Relu | Op::Clip { .. } => {
                // A standalone activation: requantize in place through the clamp of a
                // reshape-like identity layer with the same parameters.
                let xi = input_q(0)?;
                let q = values[xi].q;
                let act = match n.op {
                    Op::Relu => Activation::Relu,
                    Op::Clip { lo, hi } => Activation::Clip { lo, hi },
                    _ => Activation::None,
                };
                let out = new_value(&mut values, q);
                map[n.output] = Some(out);
                layers.push(QLayer {
                    name: n.name.clone(),
                    op: QOp::Reshape,
                    inputs: vec![xi],
                    output: out,
                    clamp: clamp_for(act, q),
                });
            }
            Op::Sigmoid
            | Op::Tanh
            | Op::HardSigmoid { .. }
            | Op::HardSwish
            | Op::LeakyRelu { .. }
            | Op::Silu
            | Op::Function { .. } => {
                // The function tabulated over every input integer: each entry the exact
                // quantization of f at the value that integer stands for.
                let xi = input_q(0)?;
                let qin = values[xi].q;
                let (lo, hi) = match range(n.output) {
                    Ok(r) => r,
                    // Without a measured range, the function's own bounds where it has them.
                    Err(e) => match n.op {
                        Op::Sigmoid | Op::HardSigmoid { .. } => (0.0, 1.0),
                        Op::Tanh => (-1.0, 1.0),
                        _ => return Err(e),
                    },
                };
                let qout = act_params(lo, hi, act_of(n.output));
                // One entry per byte of the input's storage (a 4-bit input uses 16 of them).
                let (qmin, qmax) = qin.dtype.storage().range();
                let table = (qmin..=qmax)
                    .map(|v| {
                        let x = qin.dequantize(v);
                        qout.quantize(n.op.unary(x).unwrap_or(x))
                    })
                    .collect();
                let out = new_value(&mut values, qout);
                map[n.output] = Some(out);
                layers.push(QLayer {
                    name: n.name.clone(),
                    op: QOp::Lut { table },
                    inputs: vec![xi],
                    output: out,
                    clamp: qout.dtype.range(),
                });
            }
            Op::Mul => {
                let (a, b) = (input_q(0)?, input_q(1)?);
                // The input of the output's shape first; the other broadcasts over it.
                let (a, b) = if values[a].shape == g.values[n.output].shape { (a, b) } else { (b, a) };
                let (lo, hi) = range(n.output)?;
                let product = f64::from(values[a].q.scale) * f64::from(values[b].q.scale);
                let qout = scale_at_least(
                    act_params(lo, hi, act_of(n.output)),
                    product / MAX_REAL_MULTIPLIER,
                    scheme.act,
                    &n.name,
                );
                let real = product / f64::from(qout.scale);
                let op = QOp::Mul { mo: multiplier(real, &n.name)? };
                let out = new_value(&mut values, qout);
                map[n.output] = Some(out);
                layers.push(QLayer {
                    name: n.name.clone(),
                    op,
                    inputs: vec![a, b],
                    output: out,
                    clamp: qout.dtype.range(),
                });
            }
            Op::Transpose { perm } if perm.len() == 3 => {
                let xi = input_q(0)?;
                let q = values[xi].q;
                let out = new_value(&mut values, q);
                map[n.output] = Some(out);
                let op = QOp::Transpose { perm: [perm[0], perm[1], perm[2]] };
                layers.push(QLayer { name: n.name.clone(), op, inputs: vec![xi], output: out, clamp: q.dtype.range() });
            }
            Op::Dilate { stride } => {
                let xi = input_q(0)?;
                let q = values[xi].q;
                let out = new_value(&mut values, q);
                map[n.output] = Some(out);
                let op = QOp::Dilate { stride: *stride };
                layers.push(QLayer { name: n.name.clone(), op, inputs: vec![xi], output: out, clamp: q.dtype.range() });
            }
            Op::ResizeNearest { rows, cols } => {
                let xi = input_q(0)?;
                let q = values[xi].q;
                let out = new_value(&mut values, q);
                map[n.output] = Some(out);
                let op = QOp::ResizeNearest { rows: rows.clone(), cols: cols.clone() };
                layers.push(QLayer { name: n.name.clone(), op, inputs: vec![xi], output: out, clamp: q.dtype.range() });
            }
            Op::ResizeLinear { rows, cols } => {
                let xi = input_q(0)?;
                let q = values[xi].q;
                let out = new_value(&mut values, q);
                map[n.output] = Some(out);
                let op = QOp::ResizeLinear {
                    rows: rows.iter().map(LerpQ::from_lerp).collect(),
                    cols: cols.iter().map(LerpQ::from_lerp).collect(),
                };
                layers.push(QLayer { name: n.name.clone(), op, inputs: vec![xi], output: out, clamp: q.dtype.range() });
            }
            Op::Slice { .. } | Op::ChannelShuffle { .. } => {
                let xi = input_q(0)?;
                let picks = match n.op.gather(&values[xi].shape) {
                    Some((0, picks)) => picks,
                    _ => {
                        return Err(Error::Invalid(format!(
                            "node `{}`: {} along an axis other than the channels cannot be quantized yet",
                            n.name,
                            n.op.name()
                        )))
                    }
                };
                let q = values[xi].q;
                let out = new_value(&mut values, q);
                map[n.output] = Some(out);
                layers.push(QLayer {
                    name: n.name.clone(),
                    op: QOp::Gather { map: picks },
                    inputs: vec![xi],
                    output: out,
                    clamp: q.dtype.range(),
                });
            }
            Op::Concat { axis: 0 } => {
                // The output's parameters (over every input's range) for all; an input
                // quantized otherwise (it feeds another layer too) is rescaled first.
                let (lo, hi) = range(n.output)?;
                let qout = act_params(lo, hi, act_of(n.output));
                let mut inputs = Vec::with_capacity(n.inputs.len());
                for i in 0..n.inputs.len() {
                    let xi = input_q(i)?;
                    if values[xi].q == qout {
                        inputs.push(xi);
                        continue;
                    }
                    let qin = values[xi].q;
                    let (qmin, qmax) = qin.dtype.storage().range();
                    let table = (qmin..=qmax).map(|v| qout.quantize(qin.dequantize(v))).collect();
                    let shape = values[xi].shape.clone();
                    values.push(QValue { name: format!("{}.rescaled", values[xi].name), shape, q: qout });
                    let r = values.len() - 1;
                    layers.push(QLayer {
                        name: format!("{}.rescale{i}", n.name),
                        op: QOp::Lut { table },
                        inputs: vec![xi],
                        output: r,
                        clamp: qout.dtype.range(),
                    });
                    inputs.push(r);
                }
                let out = new_value(&mut values, qout);
                map[n.output] = Some(out);
                layers.push(QLayer {
                    name: n.name.clone(),
                    op: QOp::Concat,
                    inputs,
                    output: out,
                    clamp: qout.dtype.range(),
                });
            }
            Op::Pad { pads, value } if pads.len() == 6 && pads[0] == 0 && pads[3] == 0 => {
                // Same quantization in and out; the fill must be an integer of it.
                let xi = input_q(0)?;
                let q = values[xi].q;
                let fill = q.quantize(*value);
                if (q.dequantize(fill) - value).abs() > q.scale / 2.0 {
                    return Err(Error::Invalid(format!(
                        "node `{}`: the padding value {value} lies outside its input's range {:?}",
                        n.name,
                        (q.dequantize(q.dtype.range().0), q.dequantize(q.dtype.range().1))
                    )));
                }
                let out = new_value(&mut values, q);
                map[n.output] = Some(out);
                layers.push(QLayer {
                    name: n.name.clone(),
                    op: QOp::Pad { pads: [pads[1], pads[2], pads[4], pads[5]], value: fill },
                    inputs: vec![xi],
                    output: out,
                    clamp: q.dtype.range(),
                });
            }
            Op::Softmax { axis: 0 } => {
                // TFLite's integer softmax: the output's quantization is fixed (1/256 from
                // the type's minimum), the input's scale sets the exponent's rescale.
                let xi = input_q(0)?;
                let qin = values[xi].q;
                let p = arith::SoftmaxParams::new(1.0, f64::from(qin.scale))
                    .map_err(|e| Error::Invalid(format!("node `{}`: {e}", n.name)))?;
                let qout = QParams { scale: 1.0 / 256.0, zero_point: qin.dtype.range().0, dtype: qin.dtype };
                let out = new_value(&mut values, qout);
                map[n.output] = Some(out);
                layers.push(QLayer {
                    name: n.name.clone(),
                    op: QOp::Softmax { multiplier: p.multiplier, left_shift: p.left_shift, diff_min: p.diff_min },
                    inputs: vec![xi],
                    output: out,
                    clamp: qout.dtype.range(),
                });
            }
            other => {
                return Err(Error::Invalid(format!("node `{}`: {} cannot be quantized yet", n.name, other.name())));
            }
        }
    }
    let output = map[g.outputs[0]].ok_or_else(|| Error::Invalid("the output is not quantized".into()))?;
    let q = QModel {
        name: name.into(),
        scheme: scheme.clone(),
        preprocess,
        integer_input: false,
        values,
        layers,
        output,
        graph: g.clone(),
        value_map: map,
    };
    let collapsed = q.collapsed_values();
    if !collapsed.is_empty() {
        tracing::warn!(
            "{} activation(s) have a range narrower than the smallest scale ({MIN_ACT_SCALE:e}) and quantize to their zero point only: {}",
            collapsed.len(),
            collapsed.join(", ")
        );
    }
    Ok(q)
}

/// The batched values of a graph computed by a float run, by value id (helper for
/// calibration and reports).
pub fn is_activation(g: &Graph, v: ValueId) -> bool {
    !matches!(g.values[v].source, Source::Const(_))
}

/// Calibration images AdaRound reconstructs layer outputs on, at most.
pub const ADAROUND_IMAGES: usize = 512;

/// Where activation ranges come from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum RangeSource {
    /// Calibration: this many images of the data set, and a selection method.
    Calibration {
        /// Images.
        images: usize,
        /// Range selection.
        method: calib::Method,
    },
    /// No data: BatchNorm statistics (β ± 6γ through the activation) where a layer had
    /// BatchNorm, interval bounds propagated from the input range elsewhere.
    DataFree,
}

/// Bias correction flavour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BiasCorrection {
    /// `E[x]` measured on the calibration images.
    Empirical,
    /// `E[x]` modelled from BatchNorm statistics (no data).
    Analytical,
}

/// Accuracy fixes applied while quantizing.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Fixes {
    /// Cross-layer equalization (with high-bias absorption), before anything else.
    pub cle: bool,
    /// Bias correction.
    pub bias_correction: Option<BiasCorrection>,
    /// Learned rounding of weights ([`adaround`]) on the calibration (or synthesised)
    /// inputs.
    #[serde(default)]
    pub adaround: Option<adaround::AdaRound>,
}

/// How one layer was quantized, for the report ([`provenance`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Provenance {
    /// Layer name.
    pub layer: String,
    /// Where its output range came from: `calibration`, or data-free `BatchNorm`,
    /// `synthesised`, `propagated` ([`calib::Origin`]); `input's` for a layer that keeps
    /// its input's parameters (pooling, reshapes); `—` for a layer the float graph has no
    /// value for.
    pub range: &'static str,
    /// How its weights were rounded: `nearest`, `AdaRound`, `nearest (over budget)` (a
    /// layer too large for AdaRound's budget), `sign` (binary weights); `—` without
    /// weights.
    pub rounding: &'static str,
}

/// What each layer of `q` — quantized from `m` with `source` and `fixes`;
/// `synthesized`: whether data-free ranges had synthesised inputs — got, by the
/// quantizer's own rules: where its output range came from and how its weights were
/// rounded.
pub fn provenance(
    m: &npu_model::Model,
    q: &QModel,
    source: RangeSource,
    fixes: &Fixes,
    synthesized: bool,
) -> Vec<Provenance> {
    let origins = match source {
        RangeSource::DataFree => Some(calib::data_free_origins(&m.graph, &q.graph, synthesized)),
        RangeSource::Calibration { .. } => None,
    };
    let weighted: Vec<&str> = q
        .graph
        .nodes
        .iter()
        .filter(|n| matches!(n.op, Op::Conv2d { .. } | Op::Dense { .. }))
        .map(|n| n.name.as_str())
        .collect();
    let rounding = |name: &str, layer: &WeightedLayer| -> &'static str {
        if layer.bits == WeightBits::Binary {
            return "sign";
        }
        let Some(cfg) = fixes.adaround else { return "nearest" };
        let idx = weighted.iter().position(|w| *w == name).unwrap_or(0);
        let ws = q.scheme.weights_for(name, idx, weighted.len());
        let channels = layer.shape.first().copied().unwrap_or(1).max(1);
        let k = layer.weights.len() / channels;
        match (adaround::grid(layer.bits, ws.kind), adaround::steps_within_budget(channels, k, cfg.iterations)) {
            (Some(_), Some(_)) => "AdaRound",
            (Some(_), None) => "nearest (over budget)",
            (None, _) => "nearest",
        }
    };
    q.layers
        .iter()
        .map(|l| {
            let value = q.value_map.iter().position(|v| *v == Some(l.output));
            let weights = matches!(l.op, QOp::Conv2d { .. } | QOp::Dense { .. });
            // Pooling, reshapes, standalone activations keep their input's parameters.
            let inherited = !weights
                && l.inputs.len() == 1
                && q.values.get(l.inputs[0]).map(|v| v.q) == q.values.get(l.output).map(|v| v.q);
            let range = match (&origins, value) {
                _ if inherited => "input's",
                (None, _) => "calibration",
                (Some(o), Some(v)) => o.get(v).copied().flatten().map_or("—", calib::Origin::name),
                (Some(_), None) => "—",
            };
            let rounding = match &l.op {
                QOp::Conv2d { layer, .. } | QOp::Dense { layer } => rounding(&l.name, layer),
                _ => "—",
            };
            Provenance { layer: l.name.clone(), range, rounding }
        })
        .collect()
}

/// Quantizes a model: optimizes its graph, finds activation ranges, and computes
/// every integer parameter under `scheme`.
pub fn quantize_model(
    m: &npu_model::Model,
    scheme: &Scheme,
    ds: &npu_data::Dataset,
    source: RangeSource,
) -> Result<QModel> {
    quantize_model_with(m, scheme, ds, source, Fixes::default())
}

/// [`quantize_model`] with accuracy fixes.
pub fn quantize_model_with(
    m: &npu_model::Model,
    scheme: &Scheme,
    ds: &npu_data::Dataset,
    source: RangeSource,
    fixes: Fixes,
) -> Result<QModel> {
    quantize_model_synthesized(m, scheme, ds, source, fixes, None)
}

/// [`quantize_model_with`] where data-free ranges of layers without BatchNorm
/// statistics come from `synthesized` inputs (`(input, samples)`, preprocessed,
/// channel-first) instead of propagated moments; see [`calib::data_free_stats`]. Without
/// them, those layers are named in a warning: their ranges are loose estimates.
pub fn quantize_model_synthesized(
    m: &npu_model::Model,
    scheme: &Scheme,
    ds: &npu_data::Dataset,
    source: RangeSource,
    fixes: Fixes,
    synthesized: Option<(&[f32], usize)>,
) -> Result<QModel> {
    let mut g = npu_model::passes::for_quantization(&m.graph)?;
    if fixes.cle {
        g = equalize::equalize(&m.graph, &g)?;
    }
    let calib_input = |images: usize| -> Result<(Vec<f32>, usize)> {
        let n = images.min(ds.len());
        if n == 0 {
            return Err(Error::Invalid(format!("calibration needs samples; {} has none", ds.origin)));
        }
        Ok((m.inputs(ds, 0..n)?, n))
    };
    let (ranges, model_means) = match source {
        RangeSource::Calibration { images, method } => {
            let (x, n) = calib_input(images)?;
            (calib::ranges(&g, &x, n, method, scheme.act)?, None)
        }
        RangeSource::DataFree => {
            let loose = calib::without_batchnorm(&m.graph, &g);
            if synthesized.is_none() && !loose.is_empty() {
                tracing::warn!(
                    "{}: data-free ranges of {} ({}) are moments propagated without BatchNorm statistics, \
                     loose bounds that can collapse int8 accuracy; synthesise inputs or give calibration data",
                    m.name,
                    if loose.len() == 1 { "layer" } else { "layers" },
                    crate::report::name_list(&loose)
                );
            }
            let (r, means) = calib::data_free_stats(&m.graph, &g, &m.preprocess, synthesized)?;
            (r, Some(means))
        }
    };
    let means = match fixes.bias_correction {
        None => None,
        Some(BiasCorrection::Empirical) => {
            let images = match source {
                RangeSource::Calibration { images, .. } => images,
                RangeSource::DataFree => {
                    return Err(Error::Invalid(
                        "empirical bias correction needs calibration images (not --calib none)".into(),
                    ))
                }
            };
            let (x, n) = calib_input(images)?;
            Some(calib::channel_means(&g, &x, n)?)
        }
        Some(BiasCorrection::Analytical) => match model_means {
            Some(mm) => Some(mm),
            None => Some(calib::data_free_stats(&m.graph, &g, &m.preprocess, synthesized)?.1),
        },
    };
    let q = match fixes.adaround {
        None => quantize_with(&g, &ranges, scheme, &m.name, m.preprocess.clone(), means.as_deref())?,
        Some(cfg) => {
            // The inputs to reconstruct: the calibration images, or synthesised ones.
            let (x, n) = match (source, synthesized) {
                (RangeSource::Calibration { images, .. }, _) => calib_input(images.min(ADAROUND_IMAGES))?,
                (RangeSource::DataFree, Some((x, n))) => (x.to_vec(), n),
                (RangeSource::DataFree, None) => {
                    return Err(Error::Invalid(
                        "AdaRound needs calibration inputs (calibration images, or inputs synthesised for data-free ranges)"
                            .into(),
                    ))
                }
            };
            let given = adaround_layers(&g, &ranges, scheme, (&x, n), &cfg)?;
            let rounding = WeightRounding::Given(&given);
            quantize_rounded(&g, &ranges, scheme, &m.name, m.preprocess.clone(), means.as_deref(), rounding)?
        }
    };
    q.validate()?;
    Ok(q)
}

impl QModel {
    /// Names of the activations quantized with the smallest scale ([`MIN_ACT_SCALE`]):
    /// their measured range was (nearly) zero, so every value is the zero point.
    pub fn collapsed_values(&self) -> Vec<String> {
        // Twice the floor: a power-of-two scheme rounds the floor up to 2^-26.
        self.values.iter().filter(|v| v.q.scale < 2.0 * MIN_ACT_SCALE).map(|v| v.name.clone()).collect()
    }

    /// Per-sample shape of the model's input (channel-first).
    pub fn input_shape(&self) -> &[usize] {
        &self.values[0].shape
    }

    /// For samples that are this model's own integer inputs ([`QModel::takes_as_integers`]):
    /// the float values they stand for (`(v − zero point) · scale`, order unchanged), which
    /// is what its float graph and a requantization of it take. Other samples are left as
    /// they are.
    pub fn dequantize_samples(&self, ds: &mut npu_data::Dataset) {
        if !self.takes_as_integers(ds) {
            return;
        }
        let p = self.values[0].q;
        let n = ds.elements.len();
        let v: Vec<f32> = (0..n).filter_map(|i| ds.elements.int(i)).map(|v| p.dequantize(v)).collect();
        ds.elements = npu_data::Elements::F32(v);
        ds.dtype = format!("{} (dequantized)", ds.dtype);
    }

    /// Whether samples of `ds` are this model's own integer input values: the model takes
    /// integers ([`QModel::integer_input`]) and the samples have its input's type.
    pub fn takes_as_integers(&self, ds: &npu_data::Dataset) -> bool {
        use npu_data::Elements;
        self.integer_input
            && matches!(
                (&ds.elements, self.values[0].q.dtype),
                (Elements::I8(_), ActType::I8) | (Elements::U8(_), ActType::U8)
            )
    }

    /// The integer input of samples `range` of `ds`: the samples themselves when they
    /// are the model's own integer inputs ([`QModel::takes_as_integers`]), else the
    /// preprocessed samples quantized with the input's parameters.
    pub fn int_inputs(&self, ds: &npu_data::Dataset, range: std::ops::Range<usize>) -> Result<Vec<i32>> {
        let map = ds.fit(self.input_shape(), &self.preprocess)?;
        if self.takes_as_integers(ds) {
            if range.end > ds.len() {
                return Err(Error::Invalid(format!("samples {range:?} are beyond the {} there are", ds.len())));
            }
            if let Some(v) = ds.integers(&map, range.clone()) {
                return Ok(v);
            }
        }
        Ok(self.quantize_input(&ds.inputs_with(&map, self.input_shape(), &self.preprocess, range)?))
    }

    /// The float input of samples `range` of `ds` (what the FP32 graph takes): integer
    /// inputs of a model that takes integers dequantized, other samples preprocessed.
    pub fn float_inputs(&self, ds: &npu_data::Dataset, range: std::ops::Range<usize>) -> Result<Vec<f32>> {
        if self.takes_as_integers(ds) {
            let q = self.values[0].q;
            return Ok(self.int_inputs(ds, range)?.iter().map(|v| q.dequantize(*v)).collect());
        }
        Ok(ds.inputs(self.input_shape(), &self.preprocess, range)?)
    }

    /// Outputs (integers) of the integer model for samples `start..start+n` of `ds`.
    pub fn outputs_int(&self, ds: &npu_data::Dataset, start: usize, n: usize) -> Result<Vec<i32>> {
        self.run_int(&self.int_inputs(ds, start..start + n)?, n)
    }

    /// Top-1 predictions of the integer model for samples `start..start+n` of `ds`.
    pub fn predict_int(&self, ds: &npu_data::Dataset, start: usize, n: usize) -> Result<Vec<usize>> {
        let out = self.outputs_int(ds, start, n)?;
        let per = out.len() / n.max(1);
        Ok(out.chunks(per.max(1)).map(npu_model::argmax).collect())
    }

    /// Top-1 accuracy of the integer model on the first `limit` images.
    pub fn evaluate_int(
        &self,
        ds: &npu_data::Dataset,
        limit: usize,
        progress: &mut dyn FnMut(usize),
    ) -> Result<(npu_model::Accuracy, Vec<usize>)> {
        let total = limit.min(ds.len());
        let mut preds = Vec::with_capacity(total);
        let mut start = 0;
        while start < total {
            let n = 500.min(total - start);
            preds.extend(self.predict_int(ds, start, n)?);
            start += n;
            progress(start);
        }
        let labels = ds.labels().ok_or_else(|| {
            Error::Invalid(format!(
                "{} has no class labels; top-1 accuracy needs them (choose another --metric)",
                ds.origin
            ))
        })?;
        let correct = preds.iter().zip(labels).filter(|(p, l)| **p == **l as usize).count();
        Ok((npu_model::Accuracy { correct, total }, preds))
    }
}
