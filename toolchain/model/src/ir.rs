//! The graph IR: FP32 models as the toolchain sees them.
//!
//! A [`Graph`] holds values — graph inputs, constants (weights) and node outputs — and
//! nodes in topological order. Activations are batched: a value's `shape` is the shape
//! of **one sample** (`[C, H, W]` or `[F]`); at run time every activation has a leading
//! batch dimension. Constants carry their full shape.
//!
//! Graphs are built through [`GraphBuilder`], which infers every output shape and
//! checks every input as it is added, so a graph that exists is well formed;
//! [`Graph::verify`] re-checks a graph that came from elsewhere (a file, a pass).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// If one sample of `shape` has more values than the `tensor_elements` limit
/// ([`npu_data::limits`]), the limit named for a message.
fn over_the_limit(shape: &[usize]) -> Option<String> {
    let limit = npu_data::limits::tensor_elements();
    match shape.iter().try_fold(1usize, |a, d| a.checked_mul(*d).filter(|v| *v <= limit)) {
        Some(_) => None,
        None => Some(npu_data::limits::named("tensor_elements", limit as u64)),
    }
}

/// Index of a value in [`Graph::values`].
pub type ValueId = usize;

/// A dense FP32 tensor, row-major.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tensor {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values.
    pub data: Vec<f32>,
}

impl Tensor {
    /// A tensor; errors if the data length does not match the shape.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<Tensor> {
        let n = shape.iter().try_fold(1usize, |a, d| a.checked_mul(*d));
        if n != Some(data.len()) {
            let n = n.map_or_else(|| "more than 2^64".to_string(), |n| n.to_string());
            return Err(Error::Graph(format!("tensor of shape {shape:?} needs {n} values, got {}", data.len())));
        }
        Ok(Tensor { shape, data })
    }
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }
    /// Whether it has no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// An activation fused into a convolution or dense layer (a marker for the compiler,
/// which applies it in the requantization clamp).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub enum Activation {
    /// None.
    #[default]
    None,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, lo), hi)` (ReLU6 is `Clip(0, 6)`).
    Clip {
        /// Lower bound.
        lo: f32,
        /// Upper bound.
        hi: f32,
    },
}

impl Activation {
    /// Applies the activation to one value.
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::None => x,
            Activation::Relu => x.max(0.0),
            Activation::Clip { lo, hi } => x.max(lo).min(hi),
        }
    }
}

/// One output position of a linear interpolation along an axis: `(1 − frac)·x[lo] +
/// frac·x[hi]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Lerp {
    /// Lower input position.
    pub lo: usize,
    /// Upper input position (`lo` at the edge).
    pub hi: usize,
    /// Weight of `hi`.
    pub frac: f32,
}

/// Operators of edge CNNs. Input conventions are in each variant's docs; "x" is an
/// activation, other inputs are constants unless stated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// 2-D convolution: x `[Cin, H, W]`, weight `[Cout, Cin/groups, kh, kw]`, optional bias `[Cout]`.
    Conv2d {
        /// Stride (y, x).
        stride: [usize; 2],
        /// Padding (top, left, bottom, right).
        pad: [usize; 4],
        /// Dilation (y, x).
        dilation: [usize; 2],
        /// Groups (`Cin` for depthwise).
        groups: usize,
        /// Fused activation.
        act: Activation,
    },
    /// Fully connected: x `[F]`, weight `[Out, F]`, optional bias `[Out]`.
    Dense {
        /// Fused activation.
        act: Activation,
    },
    /// Batch normalization (inference): x `[C, ...]`, scale, bias, mean, variance `[C]`.
    BatchNorm {
        /// Epsilon.
        eps: f32,
    },
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, lo), hi)`.
    Clip {
        /// Lower bound.
        lo: f32,
        /// Upper bound.
        hi: f32,
    },
    /// `x` if positive, else `alpha·x`.
    LeakyRelu {
        /// Negative slope.
        alpha: f32,
    },
    /// `x · relu6(x + 3) / 6`.
    HardSwish,
    /// `1 / (1 + e^−x)`.
    Sigmoid,
    /// Max pooling over `[C, H, W]`; padding is excluded.
    MaxPool {
        /// Window (h, w).
        kernel: [usize; 2],
        /// Stride (y, x).
        stride: [usize; 2],
        /// Padding (top, left, bottom, right).
        pad: [usize; 4],
    },
    /// Average pooling over `[C, H, W]`.
    AvgPool {
        /// Window (h, w).
        kernel: [usize; 2],
        /// Stride (y, x).
        stride: [usize; 2],
        /// Padding (top, left, bottom, right).
        pad: [usize; 4],
        /// Whether padded positions count in the divisor.
        count_include_pad: bool,
    },
    /// Mean over H and W: `[C, H, W]` → `[C, 1, 1]`.
    GlobalAvgPool,
    /// Elementwise sum of two inputs (activations or constants), numpy broadcasting.
    Add,
    /// Elementwise product of two inputs, numpy broadcasting.
    Mul,
    /// Concatenation of activations along a per-sample axis.
    Concat {
        /// Per-sample axis.
        axis: usize,
    },
    /// Constant padding: `pads` = begins then ends, one per per-sample dimension.
    Pad {
        /// Begins then ends.
        pads: Vec<usize>,
        /// Fill value.
        value: f32,
    },
    /// Reshape to a per-sample shape with the same number of elements.
    Reshape {
        /// Target per-sample shape.
        shape: Vec<usize>,
    },
    /// Flatten each sample to one dimension.
    Flatten,
    /// Permute the per-sample dimensions: output dimension `i` is input dimension `perm[i]`.
    Transpose {
        /// Permutation of `0..rank`.
        perm: Vec<usize>,
    },
    /// Softmax along a per-sample axis.
    Softmax {
        /// Per-sample axis.
        axis: usize,
    },
    // New variants go last: `.npum` files hold the IR in postcard, variants by index.
    /// `tanh x`.
    Tanh,
    /// `clamp(alpha · x + beta, 0, 1)` (ONNX HardSigmoid; PyTorch's is alpha 1/6, beta 1/2).
    HardSigmoid {
        /// Slope.
        alpha: f32,
        /// Offset.
        beta: f32,
    },
    /// `x · sigmoid(x)` (SiLU, Swish; PyTorch exports it as `Mul(x, Sigmoid(x))`).
    Silu,
    /// Positions `start, start + step, …` below `end` of a per-sample axis (ONNX Slice and
    /// Split, TFLite STRIDED_SLICE; ShuffleNet's channel split).
    Slice {
        /// Per-sample axis.
        axis: usize,
        /// First position.
        start: usize,
        /// One past the last position.
        end: usize,
        /// Step (at least 1).
        step: usize,
    },
    /// Channel shuffle: the channels `[C, …]` seen as `[groups, C/groups]` and transposed
    /// (ShuffleNet's Reshape–Transpose–Reshape).
    ChannelShuffle {
        /// Groups.
        groups: usize,
    },
    /// An elementwise function of one activation written as a program of [`Step`]s: GELU
    /// (erf and tanh forms), Mish, or any chain of exporters' elementwise operators whose
    /// only activation input is `x` (`passes::fuse_functions`). Quantized as one lookup
    /// table, like the named activations.
    Function {
        /// Name in reports (`Gelu`, `Erf`, or `Function`).
        name: String,
        /// The program (stack machine; [`Step::eval`]).
        steps: Vec<Step>,
    },
    /// Nearest-neighbour resampling of `[C, H, W]`: output pixel `(y, x)` is input pixel
    /// `(rows[y], cols[x])`. Importers compute the maps from their framework's coordinate
    /// rules (ONNX Resize's transformation and rounding modes, TFLite's `align_corners` and
    /// `half_pixel_centers`), so every framework's nearest resize is one exact gather.
    ResizeNearest {
        /// Input row of each output row.
        rows: Vec<usize>,
        /// Input column of each output column.
        cols: Vec<usize>,
    },
    /// Zero insertion: `[C, H, W]` → `[C, (H−1)·sy + 1, (W−1)·sx + 1]`, input pixel `(y, x)`
    /// at `(y·sy, x·sx)` and zeros between — with a stride-1 convolution of the flipped
    /// kernel after it, a transposed convolution (ONNX ConvTranspose, TFLite TRANSPOSE_CONV).
    Dilate {
        /// Stride (y, x).
        stride: [usize; 2],
    },
    /// Bilinear resampling of `[C, H, W]`: output row `y` is `(1 − f)·row lo + f·row hi`
    /// with `(lo, hi, f) = rows[y]`, and likewise columns — four input pixels weighted by
    /// the products. Importers compute the maps from their framework's coordinate rules
    /// (ONNX Resize `linear`'s transformation modes, TFLite's `align_corners` and
    /// `half_pixel_centers`). Runs on the host CPU (the NPU has no interpolation).
    ResizeLinear {
        /// Rows interpolated for each output row.
        rows: Vec<Lerp>,
        /// Columns interpolated for each output column.
        cols: Vec<Lerp>,
    },
    /// Int8 quantize-dequantize of each sample from its own range, as TFLite's hybrid
    /// (dynamic-range) kernels quantize a float input before multiplying it by int8
    /// weights: asymmetric — scale `(max(0, hi) − min(0, lo)) / 255` and a nudged zero
    /// point in `[−128, 127]` — or symmetric, scale `max|x| / 127`; a sample of zeros stays
    /// zeros. Imported before the layers of hybrid models, so the float engine computes
    /// what the interpreter computes; quantizing to integers removes it (the integer model
    /// has its own activation scales).
    DynamicQuantize {
        /// Asymmetric (zero point), or symmetric.
        asymmetric: bool,
    },
}

/// One step of an [`Op::Function`] program: a stack machine over `f32` whose `X` pushes
/// the input; binary steps pop the right operand, then the left.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Step {
    /// Push the input.
    X,
    /// Push a constant.
    Const(f32),
    /// `a + b`.
    Add,
    /// `a − b`.
    Sub,
    /// `a · b`.
    Mul,
    /// `a / b`.
    Div,
    /// `a^b`.
    Pow,
    /// `−a`.
    Neg,
    /// The error function.
    Erf,
    /// `e^a`.
    Exp,
    /// Natural logarithm.
    Log,
    /// Square root.
    Sqrt,
    /// `|a|`.
    Abs,
    /// A named elementwise operator ([`Op::unary`]) applied to the top.
    Apply(Box<Op>),
}

impl Step {
    /// Runs a program at `x`; `None` if it is malformed (a step without its operands, or
    /// not exactly one value left).
    pub fn eval(steps: &[Step], x: f32) -> Option<f32> {
        let mut st: Vec<f32> = Vec::with_capacity(8);
        for s in steps {
            match s {
                Step::X => st.push(x),
                Step::Const(c) => st.push(*c),
                Step::Add | Step::Sub | Step::Mul | Step::Div | Step::Pow => {
                    let b = st.pop()?;
                    let a = st.pop()?;
                    st.push(match s {
                        Step::Add => a + b,
                        Step::Sub => a - b,
                        Step::Mul => a * b,
                        Step::Div => a / b,
                        _ => a.powf(b),
                    });
                }
                unary => {
                    let a = st.pop()?;
                    st.push(match unary {
                        Step::Neg => -a,
                        Step::Erf => erf(a),
                        Step::Exp => a.exp(),
                        Step::Log => a.ln(),
                        Step::Sqrt => a.sqrt(),
                        Step::Abs => a.abs(),
                        Step::Apply(op) => op.unary(a)?,
                        _ => return None,
                    });
                }
            }
        }
        (st.len() == 1).then(|| st[0])
    }

    /// Whether a program is well formed: every step has its operands, one value is left,
    /// and every applied operator is elementwise.
    pub fn valid(steps: &[Step]) -> bool {
        let mut depth = 0usize;
        for s in steps {
            match s {
                Step::X | Step::Const(_) => depth += 1,
                Step::Add | Step::Sub | Step::Mul | Step::Div | Step::Pow => {
                    if depth < 2 {
                        return false;
                    }
                    depth -= 1;
                }
                Step::Apply(op) if op.unary(0.0).is_none() => return false,
                _ => {
                    if depth < 1 {
                        return false;
                    }
                }
            }
        }
        depth == 1
    }
}

/// The error function (libm's, in double precision, rounded to single).
pub fn erf(x: f32) -> f32 {
    libm::erf(f64::from(x)) as f32
}

impl Op {
    /// A float parameter no model can mean (NaN, an infinite slope or fill, a clip whose
    /// bounds are reversed), described; `None` when every parameter is usable.
    pub fn bad_parameter(&self) -> Option<String> {
        let finite = |name: &str, v: f32| (!v.is_finite()).then(|| format!("{name} is {v}, not a finite number"));
        match self {
            Op::BatchNorm { eps, .. } if !(eps.is_finite() && *eps >= 0.0) => {
                Some(format!("epsilon is {eps}, not a finite non-negative number"))
            }
            Op::Clip { lo, hi } if lo.is_nan() || hi.is_nan() || lo > hi => {
                Some(format!("clip bounds {lo} and {hi} are not an interval"))
            }
            Op::LeakyRelu { alpha } => finite("alpha", *alpha),
            Op::Pad { value, .. } => finite("the padding value", *value),
            Op::HardSigmoid { alpha, beta } => finite("alpha", *alpha).or_else(|| finite("beta", *beta)),
            Op::Function { steps, .. } => steps.iter().find_map(|s| match s {
                Step::Const(c) => finite("a constant", *c),
                Step::Apply(op) => op.bad_parameter(),
                _ => None,
            }),
            _ => None,
        }
    }

    /// The function of an elementwise activation at `x` (`None` for other operators): the
    /// one definition the FP32 executor and the quantizer's lookup tables share.
    pub fn unary(&self, x: f32) -> Option<f32> {
        Some(match self {
            Op::Relu => x.max(0.0),
            Op::Clip { lo, hi } => x.max(*lo).min(*hi),
            Op::LeakyRelu { alpha } => {
                if x >= 0.0 {
                    x
                } else {
                    alpha * x
                }
            }
            Op::HardSwish => x * (x + 3.0).clamp(0.0, 6.0) / 6.0,
            Op::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Op::Tanh => x.tanh(),
            Op::HardSigmoid { alpha, beta } => (alpha * x + beta).clamp(0.0, 1.0),
            Op::Silu => x / (1.0 + (-x).exp()),
            Op::Function { steps, .. } => return Step::eval(steps, x),
            _ => return None,
        })
    }

    /// For operators that pick positions along one axis (slices, channel shuffles): the
    /// axis and, for each output position along it, the input position it copies. The one
    /// definition the FP32 executor, the quantizer and the compiler share.
    pub fn gather(&self, input: &[usize]) -> Option<(usize, Vec<usize>)> {
        match *self {
            Op::Slice { axis, start, end, step } if step > 0 => Some((axis, (start..end).step_by(step).collect())),
            Op::ChannelShuffle { groups } if groups > 0 => {
                let c = *input.first()?;
                let per = c / groups;
                Some((0, (0..c).map(|i| (i % groups) * per + i / groups).collect()))
            }
            _ => None,
        }
    }

    /// Short name for reports.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Conv2d { groups, .. } if *groups > 1 => "DepthwiseConv2d",
            Op::Conv2d { .. } => "Conv2d",
            Op::Dense { .. } => "Dense",
            Op::BatchNorm { .. } => "BatchNorm",
            Op::Relu => "Relu",
            Op::Clip { .. } => "Clip",
            Op::LeakyRelu { .. } => "LeakyRelu",
            Op::HardSwish => "HardSwish",
            Op::Sigmoid => "Sigmoid",
            Op::Tanh => "Tanh",
            Op::HardSigmoid { .. } => "HardSigmoid",
            Op::Silu => "Silu",
            Op::Slice { .. } => "Slice",
            Op::ChannelShuffle { .. } => "ChannelShuffle",
            Op::ResizeNearest { .. } => "ResizeNearest",
            Op::ResizeLinear { .. } => "ResizeLinear",
            Op::Dilate { .. } => "Dilate",
            Op::Function { name, .. } => match name.as_str() {
                "Gelu" => "Gelu",
                "Erf" => "Erf",
                "Mish" => "Mish",
                _ => "Function",
            },
            Op::MaxPool { .. } => "MaxPool",
            Op::AvgPool { .. } => "AvgPool",
            Op::GlobalAvgPool => "GlobalAvgPool",
            Op::Add => "Add",
            Op::Mul => "Mul",
            Op::Concat { .. } => "Concat",
            Op::Pad { .. } => "Pad",
            Op::Reshape { .. } => "Reshape",
            Op::Flatten => "Flatten",
            Op::Transpose { .. } => "Transpose",
            Op::Softmax { .. } => "Softmax",
            Op::DynamicQuantize { .. } => "DynamicQuantize",
        }
    }
}

/// Where a value comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Source {
    /// A graph input (batched activation).
    Input,
    /// A constant.
    Const(Tensor),
    /// The output of the node at this index.
    Node(usize),
}

/// A value: a named tensor with a shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Value {
    /// Name (unique in the graph).
    pub name: String,
    /// Per-sample shape for activations, full shape for constants.
    pub shape: Vec<usize>,
    /// Where it comes from.
    pub source: Source,
}

impl Value {
    /// The constant's data, if it is one.
    pub fn constant(&self) -> Option<&Tensor> {
        match &self.source {
            Source::Const(t) => Some(t),
            _ => None,
        }
    }
    /// Whether this is a batched activation (an input or a node output).
    pub fn is_activation(&self) -> bool {
        !matches!(self.source, Source::Const(_))
    }
}

/// An operator applied to values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Name (unique in the graph), e.g. the ONNX node name.
    pub name: String,
    /// The operator.
    pub op: Op,
    /// Input values.
    pub inputs: Vec<ValueId>,
    /// Output value.
    pub output: ValueId,
}

/// A model graph. Nodes are in topological order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Graph {
    /// Every value.
    pub values: Vec<Value>,
    /// Every node, producers before consumers.
    pub nodes: Vec<Node>,
    /// Graph inputs.
    pub inputs: Vec<ValueId>,
    /// Graph outputs.
    pub outputs: Vec<ValueId>,
}

fn node_err(node: &str, op: &Op, msg: impl std::fmt::Display) -> Error {
    Error::Graph(format!("node `{node}` ({}): {msg}", op.name()))
}

/// Output size of a sliding window: `⌊(in + pads − dilation·(k − 1) − 1) / stride⌋ + 1`.
pub fn window_out(input: usize, pad: usize, k: usize, stride: usize, dilation: usize) -> Option<usize> {
    let span = dilation * (k.checked_sub(1)?) + 1;
    let padded = input + pad;
    if span > padded || stride == 0 {
        return None;
    }
    Some((padded - span) / stride + 1)
}

/// Numpy broadcasting of two shapes.
pub fn broadcast(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let da = if i + a.len() >= n { a[i + a.len() - n] } else { 1 };
        let db = if i + b.len() >= n { b[i + b.len() - n] } else { 1 };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
    }
    Some(out)
}

/// Infers the output (per-sample) shape of `op` applied to `inputs`, checking them.
pub fn infer_shape(name: &str, op: &Op, inputs: &[&Value]) -> Result<Vec<usize>> {
    let err = |m: String| node_err(name, op, m);
    if let Some(m) = op.bad_parameter() {
        return Err(err(m));
    }
    let arity = |lo: usize, hi: usize| -> Result<()> {
        if inputs.len() < lo || inputs.len() > hi {
            return Err(err(format!("takes {lo}..={hi} inputs, got {}", inputs.len())));
        }
        Ok(())
    };
    // Data inputs may be activations or constants (a node of constants only computes a
    // constant, which `passes::constant_fold` replaces).
    let act = |i: usize| -> Result<&Vec<usize>> { Ok(&inputs[i].shape) };
    let constant = |i: usize| -> Result<&Tensor> {
        inputs[i].constant().ok_or_else(|| err(format!("input {i} (`{}`) must be a constant", inputs[i].name)))
    };
    let chw = |i: usize| -> Result<[usize; 3]> {
        let s = act(i)?;
        match s.as_slice() {
            [c, h, w] => Ok([*c, *h, *w]),
            _ => Err(err(format!("expects a [C, H, W] input, got {s:?}"))),
        }
    };
    match op {
        Op::Conv2d { stride, pad, dilation, groups, .. } => {
            arity(2, 3)?;
            let [c, h, w] = chw(0)?;
            let wt = constant(1)?;
            let [co, ci, kh, kw] = match wt.shape.as_slice() {
                [a, b, c2, d] => [*a, *b, *c2, *d],
                s => return Err(err(format!("weight must be [Cout, Cin/groups, kh, kw], got {s:?}"))),
            };
            if *groups == 0 || c % groups != 0 || co % groups != 0 {
                return Err(err(format!("{groups} groups do not divide {c} input and {co} output channels")));
            }
            if ci != c / groups {
                return Err(err(format!("weight has {ci} input channels per group, the input has {c}/{groups}")));
            }
            if inputs.len() == 3 && constant(2)?.shape != vec![co] {
                return Err(err(format!("bias must be [{co}], got {:?}", constant(2)?.shape)));
            }
            let oh = window_out(h, pad[0] + pad[2], kh, stride[0], dilation[0]);
            let ow = window_out(w, pad[1] + pad[3], kw, stride[1], dilation[1]);
            match (oh, ow) {
                (Some(oh), Some(ow)) => Ok(vec![co, oh, ow]),
                _ => Err(err(format!("the {kh}×{kw} kernel does not fit the padded {h}×{w} input"))),
            }
        }
        Op::Dense { .. } => {
            arity(2, 3)?;
            let x = act(0)?;
            let wt = constant(1)?;
            let f = match x.as_slice() {
                [f] => *f,
                s => return Err(err(format!("expects a flat [F] input, got {s:?}"))),
            };
            match wt.shape.as_slice() {
                [o, k] if *k == f => {
                    if inputs.len() == 3 && constant(2)?.shape != vec![*o] {
                        return Err(err(format!("bias must be [{o}], got {:?}", constant(2)?.shape)));
                    }
                    Ok(vec![*o])
                }
                s => Err(err(format!("weight must be [Out, {f}], got {s:?}"))),
            }
        }
        Op::BatchNorm { .. } => {
            arity(5, 5)?;
            let x = act(0)?;
            let c = *x.first().ok_or_else(|| err("input has no channel dimension".into()))?;
            for i in 1..5 {
                if constant(i)?.shape != vec![c] {
                    return Err(err(format!("parameter {i} must be [{c}], got {:?}", constant(i)?.shape)));
                }
            }
            Ok(x.clone())
        }
        Op::Relu
        | Op::Clip { .. }
        | Op::LeakyRelu { .. }
        | Op::HardSwish
        | Op::Sigmoid
        | Op::Tanh
        | Op::HardSigmoid { .. }
        | Op::Silu => {
            arity(1, 1)?;
            Ok(act(0)?.clone())
        }
        Op::DynamicQuantize { .. } => {
            arity(1, 1)?;
            Ok(act(0)?.clone())
        }
        Op::Function { steps, .. } => {
            arity(1, 1)?;
            if !Step::valid(steps) {
                return Err(err("the function's program is malformed".into()));
            }
            Ok(act(0)?.clone())
        }
        Op::MaxPool { kernel, stride, pad } | Op::AvgPool { kernel, stride, pad, .. } => {
            arity(1, 1)?;
            let [c, h, w] = chw(0)?;
            if pad[0] >= kernel[0] || pad[2] >= kernel[0] || pad[1] >= kernel[1] || pad[3] >= kernel[1] {
                return Err(err(format!("padding {pad:?} must be smaller than the {kernel:?} window")));
            }
            match (
                window_out(h, pad[0] + pad[2], kernel[0], stride[0], 1),
                window_out(w, pad[1] + pad[3], kernel[1], stride[1], 1),
            ) {
                (Some(oh), Some(ow)) => Ok(vec![c, oh, ow]),
                _ => Err(err(format!("the {kernel:?} window does not fit the {h}×{w} input"))),
            }
        }
        Op::GlobalAvgPool => {
            arity(1, 1)?;
            let [c, _, _] = chw(0)?;
            Ok(vec![c, 1, 1])
        }
        Op::Slice { axis, start, end, step } => {
            arity(1, 1)?;
            let x = act(0)?;
            let n = *x.get(*axis).ok_or_else(|| err(format!("axis {axis} is out of range for {x:?}")))?;
            if *step == 0 || start >= end || *end > n {
                return Err(err(format!("slice {start}..{end} step {step} of a dimension of {n}")));
            }
            let mut out = x.clone();
            out[*axis] = (end - start).div_ceil(*step);
            Ok(out)
        }
        Op::ResizeNearest { rows, cols } => {
            arity(1, 1)?;
            let [c, h, w] = chw(0)?;
            if rows.is_empty() || cols.is_empty() || rows.iter().any(|r| *r >= h) || cols.iter().any(|x| *x >= w) {
                return Err(err(format!(
                    "a resize to {}×{} must pick rows below {h} and columns below {w}",
                    rows.len(),
                    cols.len()
                )));
            }
            Ok(vec![c, rows.len(), cols.len()])
        }
        Op::ResizeLinear { rows, cols } => {
            arity(1, 1)?;
            let [c, h, w] = chw(0)?;
            let bad = |m: &[Lerp], n: usize| {
                m.is_empty()
                    || m.iter().any(|l| {
                        l.lo >= n
                            || l.hi >= n
                            || !l.frac.is_finite()
                            || (l.lo != l.hi && !(-1.0..=1.0).contains(&l.frac))
                    })
            };
            if bad(rows, h) || bad(cols, w) {
                return Err(err(format!(
                    "a bilinear resize to {}×{} must interpolate rows below {h} and columns below {w} with finite weights",
                    rows.len(),
                    cols.len()
                )));
            }
            Ok(vec![c, rows.len(), cols.len()])
        }
        Op::Dilate { stride } => {
            arity(1, 1)?;
            let [c, h, w] = chw(0)?;
            let dim = |n: usize, s: usize| n.saturating_sub(1).checked_mul(s).and_then(|v| v.checked_add(1));
            match (dim(h, stride[0]), dim(w, stride[1])) {
                (Some(oh), Some(ow)) if stride[0] > 0 && stride[1] > 0 => Ok(vec![c, oh, ow]),
                _ => Err(err(format!("stride {stride:?} must be positive and keep the output's size finite"))),
            }
        }
        Op::ChannelShuffle { groups } => {
            arity(1, 1)?;
            let x = act(0)?;
            let c = x.first().copied().unwrap_or(0);
            if *groups == 0 || c % groups != 0 {
                return Err(err(format!("{c} channels do not split into {groups} groups")));
            }
            Ok(x.clone())
        }
        Op::Add | Op::Mul => {
            arity(2, 2)?;
            let (a, b) = (&inputs[0].shape, &inputs[1].shape);
            broadcast(a, b).ok_or_else(|| err(format!("shapes {a:?} and {b:?} do not broadcast")))
        }
        Op::Concat { axis } => {
            if inputs.is_empty() {
                return Err(err("needs at least one input".into()));
            }
            let first = act(0)?.clone();
            if *axis >= first.len() {
                return Err(err(format!("axis {axis} is out of range for rank {}", first.len())));
            }
            let mut out = first.clone();
            for i in 1..inputs.len() {
                let s = act(i)?;
                let same_rest = s.len() == first.len() && (0..s.len()).all(|d| d == *axis || s[d] == first[d]);
                if !same_rest {
                    return Err(err(format!(
                        "input {i} has shape {s:?}, incompatible with {first:?} along axis {axis}"
                    )));
                }
                out[*axis] += s[*axis];
            }
            Ok(out)
        }
        Op::Pad { pads, .. } => {
            arity(1, 1)?;
            let x = act(0)?;
            if pads.len() != 2 * x.len() {
                return Err(err(format!(
                    "needs {} pads for a rank-{} input, got {}",
                    2 * x.len(),
                    x.len(),
                    pads.len()
                )));
            }
            Ok(x.iter().enumerate().map(|(i, d)| d + pads[i] + pads[i + x.len()]).collect())
        }
        Op::Reshape { shape } => {
            arity(1, 1)?;
            let x = act(0)?;
            let (a, b): (usize, usize) = (x.iter().product(), shape.iter().product());
            if a != b {
                return Err(err(format!("cannot reshape {x:?} ({a} elements) to {shape:?} ({b} elements)")));
            }
            Ok(shape.clone())
        }
        Op::Flatten => {
            arity(1, 1)?;
            Ok(vec![act(0)?.iter().product()])
        }
        Op::Transpose { perm } => {
            arity(1, 1)?;
            let x = act(0)?;
            let mut seen = vec![false; x.len()];
            if perm.len() != x.len() || perm.iter().any(|&p| p >= x.len() || std::mem::replace(&mut seen[p], true)) {
                return Err(err(format!("{perm:?} is not a permutation of the {} dimensions of {x:?}", x.len())));
            }
            Ok(perm.iter().map(|&p| x[p]).collect())
        }
        Op::Softmax { axis } => {
            arity(1, 1)?;
            let x = act(0)?;
            if *axis >= x.len() {
                return Err(err(format!("axis {axis} is out of range for rank {}", x.len())));
            }
            Ok(x.clone())
        }
    }
}

/// Builds a graph, checking every node as it is added.
#[derive(Debug, Default)]
pub struct GraphBuilder {
    graph: Graph,
    names: HashMap<String, ValueId>,
}

impl GraphBuilder {
    /// An empty graph.
    pub fn new() -> Self {
        Self::default()
    }

    fn push_value(&mut self, v: Value) -> Result<ValueId> {
        if self.names.contains_key(&v.name) {
            return Err(Error::Graph(format!("value name `{}` is used twice", v.name)));
        }
        let id = self.graph.values.len();
        self.names.insert(v.name.clone(), id);
        self.graph.values.push(v);
        Ok(id)
    }

    /// Adds a graph input with a per-sample shape.
    pub fn input(&mut self, name: &str, shape: Vec<usize>) -> Result<ValueId> {
        if shape.contains(&0) {
            return Err(Error::Graph(format!("input `{name}` has an empty dimension: {shape:?}")));
        }
        if let Some(limit) = over_the_limit(&shape) {
            return Err(Error::Graph(format!(
                "input `{name}` of shape {shape:?} has more values per sample than {limit}"
            )));
        }
        let id = self.push_value(Value { name: name.into(), shape, source: Source::Input })?;
        self.graph.inputs.push(id);
        Ok(id)
    }

    /// Adds a constant.
    pub fn constant(&mut self, name: &str, t: Tensor) -> Result<ValueId> {
        if let Some((i, v)) = t.data.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(Error::Graph(format!(
                "constant `{name}` holds {v} at index {i}: weights must be finite numbers"
            )));
        }
        self.push_value(Value { name: name.into(), shape: t.shape.clone(), source: Source::Const(t) })
    }

    /// Adds a node; its output value is named after the node.
    pub fn node(&mut self, name: &str, op: Op, inputs: &[ValueId]) -> Result<ValueId> {
        for &i in inputs {
            if i >= self.graph.values.len() {
                return Err(node_err(name, &op, format!("input value {i} does not exist")));
            }
        }
        let ins: Vec<&Value> = inputs.iter().map(|&i| &self.graph.values[i]).collect();
        let shape = infer_shape(name, &op, &ins)?;
        if shape.contains(&0) {
            return Err(node_err(name, &op, format!("output {shape:?} is empty")));
        }
        if let Some(limit) = over_the_limit(&shape) {
            return Err(node_err(name, &op, format!("output {shape:?} has more values per sample than {limit}")));
        }
        let node_index = self.graph.nodes.len();
        let out = self.push_value(Value { name: name.into(), shape, source: Source::Node(node_index) })?;
        self.graph.nodes.push(Node { name: name.into(), op, inputs: inputs.to_vec(), output: out });
        Ok(out)
    }

    /// Marks a value as a graph output.
    pub fn output(&mut self, v: ValueId) -> Result<()> {
        if v >= self.graph.values.len() || !self.graph.values[v].is_activation() {
            return Err(Error::Graph(format!("output value {v} is not an activation of the graph")));
        }
        self.graph.outputs.push(v);
        Ok(())
    }

    /// The value with this name.
    pub fn lookup(&self, name: &str) -> Option<ValueId> {
        self.names.get(name).copied()
    }

    /// The value with this id.
    pub fn value(&self, id: ValueId) -> &Value {
        &self.graph.values[id]
    }

    /// Finishes the graph; it must have an input and an output.
    pub fn finish(self) -> Result<Graph> {
        if self.graph.inputs.is_empty() || self.graph.outputs.is_empty() {
            return Err(Error::Graph("a graph needs at least one input and one output".into()));
        }
        Ok(self.graph)
    }
}

impl Graph {
    /// Re-checks everything [`GraphBuilder`] checks: unique names, topological order,
    /// sources consistent with positions, constant sizes, and every inferred shape.
    pub fn verify(&self) -> Result<()> {
        let mut names = HashMap::new();
        for (i, v) in self.values.iter().enumerate() {
            if names.insert(v.name.as_str(), i).is_some() {
                return Err(Error::Graph(format!("value name `{}` is used twice", v.name)));
            }
            if let Source::Const(t) = &v.source {
                if t.shape != v.shape || t.data.len() != t.shape.iter().product::<usize>() {
                    return Err(Error::Graph(format!("constant `{}` does not match its shape {:?}", v.name, v.shape)));
                }
            }
        }
        let mut defined: Vec<bool> = self.values.iter().map(|v| !matches!(v.source, Source::Node(_))).collect();
        for (ni, n) in self.nodes.iter().enumerate() {
            for &i in &n.inputs {
                if i >= self.values.len() || !defined[i] {
                    return Err(node_err(&n.name, &n.op, format!("uses value {i} before it is defined")));
                }
            }
            if n.output >= self.values.len() || self.values[n.output].source != Source::Node(ni) {
                return Err(node_err(&n.name, &n.op, "its output value does not point back to it"));
            }
            let ins: Vec<&Value> = n.inputs.iter().map(|&i| &self.values[i]).collect();
            let shape = infer_shape(&n.name, &n.op, &ins)?;
            if shape != self.values[n.output].shape {
                return Err(node_err(
                    &n.name,
                    &n.op,
                    format!("output shape {:?} should be {shape:?}", self.values[n.output].shape),
                ));
            }
            defined[n.output] = true;
        }
        if self.inputs.is_empty() || self.outputs.is_empty() {
            return Err(Error::Graph("a graph needs at least one input and one output".into()));
        }
        let batched = self.batched();
        for &o in &self.outputs {
            if o >= self.values.len() || !defined[o] || !batched[o] {
                return Err(Error::Graph(format!("output value {o} is not computed from the graph's inputs")));
            }
        }
        Ok(())
    }

    /// The node producing `v`, if any.
    pub fn producer(&self, v: ValueId) -> Option<&Node> {
        match self.values[v].source {
            Source::Node(i) => self.nodes.get(i),
            _ => None,
        }
    }

    /// How many nodes use `v` (plus one if it is a graph output).
    pub fn uses(&self, v: ValueId) -> usize {
        self.nodes.iter().flat_map(|n| &n.inputs).filter(|&&i| i == v).count()
            + self.outputs.iter().filter(|&&o| o == v).count()
    }

    /// For every value, whether it is batched: a graph input, or computed from one.
    /// Constants and nodes of constants only are not.
    pub fn batched(&self) -> Vec<bool> {
        let mut b: Vec<bool> = self.values.iter().map(|v| matches!(v.source, Source::Input)).collect();
        for n in &self.nodes {
            b[n.output] = n.inputs.iter().any(|&i| b[i]);
        }
        b
    }

    /// Multiply-accumulates of one node for one sample.
    pub fn macs(&self, n: &Node) -> u64 {
        let out: u64 = self.values[n.output].shape.iter().product::<usize>() as u64;
        match &n.op {
            Op::Conv2d { .. } | Op::Dense { .. } => {
                let w = &self.values[n.inputs[1]].shape;
                out * w[1..].iter().product::<usize>() as u64
            }
            _ => 0,
        }
    }

    /// Number of constant parameters a node reads.
    pub fn params(&self, n: &Node) -> u64 {
        n.inputs.iter().filter_map(|&i| self.values[i].constant()).map(|t| t.len() as u64).sum()
    }
}

#[cfg(test)]
mod function_tests {
    use super::*;

    #[test]
    fn erf_matches_tabulated_values() {
        // Abramowitz & Stegun, table 7.1.
        for (x, want) in
            [(0.0f32, 0.0f32), (0.5, 0.520_499_9), (1.0, 0.842_700_8), (-2.0, -0.995_322_3), (3.0, 0.999_977_9)]
        {
            assert!((erf(x) - want).abs() < 1e-6, "erf({x}) = {}", erf(x));
        }
    }

    #[test]
    fn a_dilation_whose_size_overflows_is_an_error() {
        let mut b = GraphBuilder::new();
        let x = b.input("x", vec![2, 3, 3]).unwrap();
        let e = b.node("d", Op::Dilate { stride: [usize::MAX, 1] }, &[x]).unwrap_err();
        assert!(e.to_string().contains("finite"), "{e}");
        let d = b.node("d2", Op::Dilate { stride: [2, 3] }, &[x]).unwrap();
        assert_eq!(b.value(d).shape, [2, 5, 7]); // (3 − 1)·2 + 1, (3 − 1)·3 + 1
    }

    #[test]
    fn programs_evaluate_on_a_stack_and_malformed_ones_are_refused() {
        // (x + 2) · x at 3 = 15; 1 − x at 0.25 = 0.75; relu(−x) at 2 = 0.
        let p = [Step::X, Step::Const(2.0), Step::Add, Step::X, Step::Mul];
        assert_eq!(Step::eval(&p, 3.0), Some(15.0));
        assert_eq!(Step::eval(&[Step::Const(1.0), Step::X, Step::Sub], 0.25), Some(0.75));
        assert_eq!(Step::eval(&[Step::X, Step::Neg, Step::Apply(Box::new(Op::Relu))], 2.0), Some(0.0));
        assert!(Step::valid(&p));
        for bad in [vec![Step::Add], vec![Step::X, Step::X], vec![], vec![Step::X, Step::Apply(Box::new(Op::Add))]] {
            assert!(!Step::valid(&bad), "{bad:?}");
        }
        assert_eq!(Step::eval(&[Step::X, Step::Add], 1.0), None);
    }
}
