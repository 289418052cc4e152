//! The model zoo: edge-NPU architectures defined in code, and the trained weights
//! committed with them (`toolchain/zoo/*.npum`).
//!
//! | name | architecture |
//! |---|---|
//! | `cnn` | plain CNN: conv–BN–ReLU blocks, max pooling, dense classifier |
//! | `mobilenet` | MobileNetV2-style: inverted residuals with depthwise convolutions, BN, ReLU6 |
//! | `resnet` | ResNet-style (in the spirit of MLPerf Tiny's ResNet-8): residual adds, projection shortcuts |

use crate::data::Preprocess;
use crate::error::{Error, Result};
use crate::ir::{Activation, GraphBuilder, Op, Tensor, ValueId};
use crate::model::Model;
use crate::modelfile;
use crate::train::rng::Prng;

/// The architectures, by name, with a one-line description.
pub const ARCHITECTURES: &[(&str, &str)] = &[
    ("cnn", "plain CNN: conv-BN-ReLU blocks, max pooling, dense classifier"),
    ("mobilenet", "MobileNetV2-style: inverted residuals, depthwise convolutions, BN, ReLU6"),
    ("resnet", "ResNet-style: basic blocks with residual adds and projection shortcuts"),
];

/// Trained weights committed with the repository, by architecture name.
const TRAINED: &[(&str, &[u8])] = &[
    ("cnn", include_bytes!("../zoo/cnn.npum")),
    ("mobilenet", include_bytes!("../zoo/mobilenet.npum")),
    ("resnet", include_bytes!("../zoo/resnet.npum")),
];

/// The trained zoo model `name`.
pub fn trained(name: &str) -> Result<Model> {
    let (_, bytes) = TRAINED.iter().find(|(n, _)| *n == name).ok_or_else(|| unknown(name))?;
    modelfile::decode(bytes, &format!("zoo:{name}"))
}

/// How the committed zoo model `name` was trained.
pub fn record(name: &str) -> Result<Option<modelfile::TrainRecord>> {
    let (_, bytes) = TRAINED.iter().find(|(n, _)| *n == name).ok_or_else(|| unknown(name))?;
    Ok(modelfile::decode_with_record(bytes, &format!("zoo:{name}"))?.1)
}

fn unknown(name: &str) -> Error {
    let names: Vec<&str> = ARCHITECTURES.iter().map(|(n, _)| *n).collect();
    Error::Graph(format!("no zoo architecture `{name}` (expected one of: {})", names.join(", ")))
}

struct Net {
    b: GraphBuilder,
    rng: Prng,
    k: usize,
}

impl Net {
    fn name(&mut self, what: &str) -> String {
        self.k += 1;
        format!("{what}{}", self.k)
    }

    /// Kaiming-normal initialized weights (fan-in).
    fn weight(&mut self, name: &str, shape: Vec<usize>, fan_in: usize) -> Result<ValueId> {
        let n: usize = shape.iter().product();
        let std = (2.0 / fan_in as f32).sqrt();
        let data = (0..n).map(|_| self.rng.normal() * std).collect();
        self.b.constant(name, Tensor::new(shape, data)?)
    }

    fn filled(&mut self, name: &str, n: usize, v: f32) -> Result<ValueId> {
        self.b.constant(name, Tensor::new(vec![n], vec![v; n])?)
    }

    #[allow(clippy::too_many_arguments)]
    fn conv(
        &mut self,
        x: ValueId,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        groups: usize,
        bn: bool,
        act: Option<Op>,
    ) -> Result<ValueId> {
        let name = self.name("conv");
        let w = self.weight(&format!("{name}.weight"), vec![cout, cin / groups, k, k], cin / groups * k * k)?;
        let p = k / 2;
        let op = Op::Conv2d { stride: [stride; 2], pad: [p; 4], dilation: [1, 1], groups, act: Activation::None };
        let mut y = if bn {
            self.b.node(&name, op, &[x, w])?
        } else {
            let b = self.filled(&format!("{name}.bias"), cout, 0.0)?;
            self.b.node(&name, op, &[x, w, b])?
        };
        if bn {
            let ps: Vec<ValueId> = [("scale", 1.0), ("shift", 0.0), ("mean", 0.0), ("var", 1.0)]
                .iter()
                .map(|(p, v)| self.filled(&format!("{name}.bn.{p}"), cout, *v))
                .collect::<Result<_>>()?;
            y = self.b.node(&format!("{name}.bn"), Op::BatchNorm { eps: 1e-5 }, &[y, ps[0], ps[1], ps[2], ps[3]])?;
        }
        if let Some(a) = act {
            let n = format!("{name}.{}", a.name().to_lowercase());
            y = self.b.node(&n, a, &[y])?;
        }
        Ok(y)
    }

    fn dense(&mut self, x: ValueId, fin: usize, fout: usize) -> Result<ValueId> {
        let name = self.name("fc");
        let w = self.weight(&format!("{name}.weight"), vec![fout, fin], fin)?;
        let b = self.filled(&format!("{name}.bias"), fout, 0.0)?;
        self.b.node(&name, Op::Dense { act: Activation::None }, &[x, w, b])
    }
}

fn relu() -> Option<Op> {
    Some(Op::Relu)
}

fn relu6() -> Option<Op> {
    Some(Op::Clip { lo: 0.0, hi: 6.0 })
}

/// A freshly initialized model of architecture `name` (weights from `seed`).
pub fn build(name: &str, seed: u64) -> Result<Model> {
    let mut n = Net { b: GraphBuilder::new(), rng: Prng::new(seed), k: 0 };
    let x = n.b.input("image", vec![1, 28, 28])?;
    let logits = match name {
        "cnn" => {
            let y = n.conv(x, 1, 32, 3, 1, 1, true, relu())?;
            let y = n.b.node("pool1", Op::MaxPool { kernel: [2, 2], stride: [2, 2], pad: [0; 4] }, &[y])?;
            let y = n.conv(y, 32, 64, 3, 1, 1, true, relu())?;
            let y = n.b.node("pool2", Op::MaxPool { kernel: [2, 2], stride: [2, 2], pad: [0; 4] }, &[y])?;
            let y = n.conv(y, 64, 64, 3, 1, 1, true, relu())?;
            let y = n.b.node("flatten", Op::Flatten, &[y])?;
            let y = n.dense(y, 64 * 7 * 7, 128)?;
            let y = n.b.node("fc.relu", Op::Relu, &[y])?;
            n.dense(y, 128, 10)?
        }
        "mobilenet" => {
            let mut y = n.conv(x, 1, 16, 3, 1, 1, true, relu6())?;
            let mut c = 16;
            for (out, stride, expand) in [(24, 2, 4), (24, 1, 4), (32, 2, 4), (32, 1, 4), (48, 1, 4)] {
                let mid = c * expand;
                let h = n.conv(y, c, mid, 1, 1, 1, true, relu6())?;
                let h = n.conv(h, mid, mid, 3, stride, mid, true, relu6())?;
                let h = n.conv(h, mid, out, 1, 1, 1, true, None)?;
                y = if stride == 1 && c == out {
                    let name = n.name("add");
                    n.b.node(&name, Op::Add, &[y, h])?
                } else {
                    h
                };
                c = out;
            }
            let y = n.conv(y, c, 128, 1, 1, 1, true, relu6())?;
            let y = n.b.node("gap", Op::GlobalAvgPool, &[y])?;
            let y = n.b.node("flatten", Op::Flatten, &[y])?;
            n.dense(y, 128, 10)?
        }
        "resnet" => {
            let y = n.conv(x, 1, 24, 3, 1, 1, true, relu())?;
            let mut y = n.b.node("pool", Op::MaxPool { kernel: [2, 2], stride: [2, 2], pad: [0; 4] }, &[y])?;
            let mut c = 24;
            for (out, stride) in [(24, 1), (48, 2), (96, 2)] {
                let h = n.conv(y, c, out, 3, stride, 1, true, relu())?;
                let h = n.conv(h, out, out, 3, 1, 1, true, None)?;
                let short = if stride == 1 && c == out { y } else { n.conv(y, c, out, 1, stride, 1, true, None)? };
                let name = n.name("add");
                let s = n.b.node(&name, Op::Add, &[h, short])?;
                let name = format!("{name}.relu");
                y = n.b.node(&name, Op::Relu, &[s])?;
                c = out;
            }
            let y = n.b.node("gap", Op::GlobalAvgPool, &[y])?;
            let y = n.b.node("flatten", Op::Flatten, &[y])?;
            n.dense(y, c, 10)?
        }
        other => return Err(unknown(other)),
    };
    n.b.output(logits)?;
    let graph = n.b.finish()?;
    Ok(Model { name: name.to_string(), graph, preprocess: Preprocess::default(), has_preprocess: true })
}
