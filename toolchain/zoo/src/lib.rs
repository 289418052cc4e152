//! The model zoo: edge-NPU architectures defined in code, and the trained weights
//! committed with them (`toolchain/zoo/models/*.npum`), and the embedded Fashion-MNIST test set plus a
//! 10,000-image training subset (`toolchain/zoo/data/`).
//!
//! | name | architecture |
//! |---|---|
//! | `cnn` | plain CNN: conv–BN–ReLU blocks, max pooling, dense classifier |
//! | `mobilenet` | MobileNetV2-style: inverted residuals with depthwise convolutions, BN, ReLU6 |
//! | `resnet` | ResNet-style (in the spirit of MLPerf Tiny's ResNet-8): residual adds, projection shortcuts |

#![deny(missing_docs)]

pub mod error;

pub use error::{Error, Result};

use npu_data::{Dataset, Preprocess};
use npu_model::ir::{Activation, GraphBuilder, Op, Tensor, ValueId};
use npu_model::modelfile;
use npu_model::rng::Prng;
use npu_model::Model;

/// The architectures, by name, with a one-line description.
pub const ARCHITECTURES: &[(&str, &str)] = &[
    ("cnn", "plain CNN: conv-BN-ReLU blocks, max pooling, dense classifier"),
    ("mobilenet", "MobileNetV2-style: inverted residuals, depthwise convolutions, BN, ReLU6"),
    ("resnet", "ResNet-style: basic blocks with residual adds and projection shortcuts"),
];

/// Full-size architectures with seeded random weights, for timing and memory studies
/// (`zoo:NAME` loads them like the trained ones; they classify nothing).
pub const BENCHMARKS: &[(&str, &str)] = &[(
    "mobilenetv2-224",
    "MobileNetV2 1.0 at 224x224x3, 1000 classes (Sandler et al. 2018), random weights: a full-size timing benchmark",
)];

/// Trained weights committed with the repository, by architecture name.
const TRAINED: &[(&str, &[u8])] = &[
    ("cnn", include_bytes!("../models/cnn.npum")),
    ("mobilenet", include_bytes!("../models/mobilenet.npum")),
    ("resnet", include_bytes!("../models/resnet.npum")),
];

/// Retrained quantized models committed with the repository: architecture, key,
/// description, `.npuq` bytes, and the command that made them.
pub const RETRAINED: &[(&str, &str, &str, &[u8], &str)] = &[
    (
        "mobilenet",
        "qat-w4a8-per-channel",
        "W4A8, per-channel, QAT",
        include_bytes!("../models/mobilenet-qat-w4a8.npuq"),
        "npu qat zoo:mobilenet --scheme w4a8-per-channel --data ../shared/datasets/fashion-mnist --epochs 2 --lr 2e-4",
    ),
    (
        "mobilenet",
        "qat-binary-weights",
        "binary weights, QAT",
        include_bytes!("../models/mobilenet-qat-binary.npuq"),
        "npu qat zoo:mobilenet --scheme binary-weights --data ../shared/datasets/fashion-mnist --epochs 8 --lr 1e-3 \\
         --recalibrate",
    ),
    (
        "mobilenet",
        "qat-binary-pointwise",
        "binary pointwise (INT8 depthwise), QAT, LSQ",
        include_bytes!("../models/mobilenet-qat-binary-pointwise.npuq"),
        "npu qat zoo:mobilenet --recipe docs/recipes/binary-pointwise.ron --data ../shared/datasets/fashion-mnist \
         --epochs 8 --lr 2e-3 --lsq",
    ),
    (
        "mobilenet",
        "pruned50-finetuned",
        "INT8, per-channel, 50% pruned, fine-tuned",
        include_bytes!("../models/mobilenet-pruned50.npuq"),
        "npu prune zoo:mobilenet --scope layer --sparsity 0.5 --finetune 2 --data ../shared/datasets/fashion-mnist \\
         --lr 5e-4 -o mn-p50.npum && npu quantize mn-p50.npum --scheme int8-per-channel",
    ),
    (
        "cnn",
        "scratch-binary-weights",
        "binary weights, trained from scratch",
        include_bytes!("../models/cnn-scratch-binary.npuq"),
        "npu train cnn --quantized binary-weights --data ../shared/datasets/fashion-mnist --epochs 6 --lr 2e-3 \\
         -o cnn-bin.npum && npu quantize cnn-bin.npum --scheme binary-weights",
    ),
];

/// Mixed-precision recipes found by `npu mixed` for the zoo models: architecture, key,
/// description, RON recipe.
pub const RECIPES: &[(&str, &str, &str, &str)] =
    &[("cnn", "mixed-precision", "mixed precision, searched (npu mixed)", include_str!("../models/cnn-mixed.ron"))];

/// The committed mixed-precision recipes of architecture `arch`: (key, description, scheme).
pub fn recipes(arch: &str) -> Result<Vec<(String, String, npu_quant::Scheme)>> {
    RECIPES
        .iter()
        .filter(|r| r.0 == arch)
        .map(|(a, key, label, text)| {
            let s: npu_quant::Scheme = ron::from_str(text)
                .map_err(|e| Error::Invalid(format!("zoo:{a} recipe `{key}` is not a valid recipe: {e}")))?;
            Ok((key.to_string(), label.to_string(), s))
        })
        .collect()
}

/// The committed retrained quantized models of architecture `arch`: (key, description, model).
pub fn retrained(arch: &str) -> Result<Vec<(String, String, npu_quant::QModel)>> {
    RETRAINED
        .iter()
        .filter(|r| r.0 == arch)
        .map(|(a, key, label, bytes, _)| {
            let q = npu_quant::npuq::decode(bytes, &format!("zoo:{a} ({key})"))?;
            Ok((key.to_string(), label.to_string(), q))
        })
        .collect()
}

/// The trained zoo model `name`.
pub fn trained(name: &str) -> Result<Model> {
    if BENCHMARKS.iter().any(|(n, _)| *n == name) {
        return build(name, 0);
    }
    let (_, bytes) = TRAINED.iter().find(|(n, _)| *n == name).ok_or_else(|| unknown(name))?;
    Ok(modelfile::decode(bytes, &format!("zoo:{name}"))?)
}

/// How the committed zoo model `name` was trained.
pub fn record(name: &str) -> Result<Option<modelfile::TrainRecord>> {
    if BENCHMARKS.iter().any(|(n, _)| *n == name) {
        return Ok(None);
    }
    let (_, bytes) = TRAINED.iter().find(|(n, _)| *n == name).ok_or_else(|| unknown(name))?;
    Ok(modelfile::decode_with_record(bytes, &format!("zoo:{name}"))?.1)
}

fn unknown(name: &str) -> Error {
    let names: Vec<&str> = ARCHITECTURES.iter().chain(BENCHMARKS).map(|(n, _)| *n).collect();
    Error::Invalid(format!("no zoo architecture `{name}` (expected one of: {})", names.join(", ")))
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
        Ok(self.b.constant(name, Tensor::new(shape, data)?)?)
    }

    fn filled(&mut self, name: &str, n: usize, v: f32) -> Result<ValueId> {
        Ok(self.b.constant(name, Tensor::new(vec![n], vec![v; n])?)?)
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
        Ok(self.b.node(&name, Op::Dense { act: Activation::None }, &[x, w, b])?)
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
    if name == "mobilenetv2-224" {
        return mobilenet_v2_224(Net { b: GraphBuilder::new(), rng: Prng::new(seed), k: 0 });
    }
    build_for(name, seed, &[1, 28, 28], 10)
}

/// Architectures [`build_for`] makes beside [`ARCHITECTURES`]: networks for inputs
/// that are not images.
pub const FEATURE_ARCHITECTURES: &[(&str, &str)] =
    &[("mlp", "multilayer perceptron: dense 128, ReLU, dense 64, ReLU, dense classifier (any input shape)")];

/// A zoo architecture (or `mlp`) with seeded random weights for inputs of per-sample
/// shape `input` (`[C, H, W]` for the image networks, at least 4×4; any shape for `mlp`)
/// and `classes` outputs. `build(name, seed)` is `build_for(name, seed, &[1, 28, 28], 10)`.
pub fn build_for(name: &str, seed: u64, input: &[usize], classes: usize) -> Result<Model> {
    let mut n = Net { b: GraphBuilder::new(), rng: Prng::new(seed), k: 0 };
    if classes == 0 {
        return Err(Error::Invalid("a classifier needs at least one class".into()));
    }
    if name == "mlp" {
        let features: usize = input.iter().product();
        if features == 0 {
            return Err(Error::Invalid(format!("input shape {input:?} has no values")));
        }
        let x = n.b.input("features", input.to_vec())?;
        let y = if input.len() == 1 { x } else { n.b.node("flatten", Op::Flatten, &[x])? };
        let y = n.dense(y, features, 128)?;
        let y = n.b.node("fc1.relu", Op::Relu, &[y])?;
        let y = n.dense(y, 128, 64)?;
        let y = n.b.node("fc2.relu", Op::Relu, &[y])?;
        let logits = n.dense(y, 64, classes)?;
        n.b.output(logits)?;
        let graph = n.b.finish()?;
        return Ok(Model { name: name.to_string(), graph, preprocess: Preprocess::default(), has_preprocess: true });
    }
    let [cin, h, w] = input[..] else {
        return Err(Error::Invalid(format!(
            "`{name}` is an image network; it takes [C, H, W] inputs, not {input:?} (the `mlp` architecture takes any shape)"
        )));
    };
    if h < 4 || w < 4 || cin == 0 {
        return Err(Error::Invalid(format!("`{name}` needs images of at least 4×4 pixels, not {input:?}")));
    }
    let x = n.b.input("image", vec![cin, h, w])?;
    let logits = match name {
        "cnn" => {
            let y = n.conv(x, cin, 32, 3, 1, 1, true, relu())?;
            let y = n.b.node("pool1", Op::MaxPool { kernel: [2, 2], stride: [2, 2], pad: [0; 4] }, &[y])?;
            let y = n.conv(y, 32, 64, 3, 1, 1, true, relu())?;
            let y = n.b.node("pool2", Op::MaxPool { kernel: [2, 2], stride: [2, 2], pad: [0; 4] }, &[y])?;
            let y = n.conv(y, 64, 64, 3, 1, 1, true, relu())?;
            let y = n.b.node("flatten", Op::Flatten, &[y])?;
            let y = n.dense(y, 64 * (h / 2 / 2) * (w / 2 / 2), 128)?;
            let y = n.b.node("fc.relu", Op::Relu, &[y])?;
            n.dense(y, 128, classes)?
        }
        "mobilenet" => {
            let mut y = n.conv(x, cin, 16, 3, 1, 1, true, relu6())?;
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
            n.dense(y, 128, classes)?
        }
        "resnet" => {
            let y = n.conv(x, cin, 24, 3, 1, 1, true, relu())?;
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
            n.dense(y, c, classes)?
        }
        other => return Err(unknown(other)),
    };
    n.b.output(logits)?;
    let graph = n.b.finish()?;
    Ok(Model { name: name.to_string(), graph, preprocess: Preprocess::default(), has_preprocess: true })
}

/// MobileNetV2 1.0 at 224×224 (Sandler et al., "MobileNetV2: Inverted Residuals and
/// Linear Bottlenecks", CVPR 2018, table 2): 32-channel stem, seventeen bottlenecks
/// `(expansion t, channels c, repeats n, stride s)`, a 1280-channel 1×1 convolution,
/// global pooling and a 1000-way classifier.
fn mobilenet_v2_224(mut n: Net) -> Result<Model> {
    let x = n.b.input("image", vec![3, 224, 224])?;
    let mut y = n.conv(x, 3, 32, 3, 2, 1, true, relu6())?;
    let mut c = 32;
    for (t, out, repeats, stride) in
        [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
    {
        for r in 0..repeats {
            let s = if r == 0 { stride } else { 1 };
            let mid = c * t;
            let h = if t == 1 { y } else { n.conv(y, c, mid, 1, 1, 1, true, relu6())? };
            let h = n.conv(h, mid, mid, 3, s, mid, true, relu6())?;
            let h = n.conv(h, mid, out, 1, 1, 1, true, None)?;
            y = if s == 1 && c == out {
                let name = n.name("add");
                n.b.node(&name, Op::Add, &[y, h])?
            } else {
                h
            };
            c = out;
        }
    }
    let y = n.conv(y, c, 1280, 1, 1, 1, true, relu6())?;
    let y = n.b.node("gap", Op::GlobalAvgPool, &[y])?;
    let y = n.b.node("flatten", Op::Flatten, &[y])?;
    let logits = n.dense(y, 1280, 1000)?;
    n.b.output(logits)?;
    let graph = n.b.finish()?;
    Ok(Model { name: "mobilenetv2-224".to_string(), graph, preprocess: Preprocess::default(), has_preprocess: true })
}

/// The Fashion-MNIST test set (10,000 images), embedded.
pub fn fashion_mnist_test() -> Result<Dataset> {
    Ok(Dataset::from_idx(
        include_bytes!("../data/fashion-mnist/t10k-images-idx3-ubyte.gz"),
        include_bytes!("../data/fashion-mnist/t10k-labels-idx1-ubyte.gz"),
        "embedded Fashion-MNIST test set",
    )?)
}

/// The first 10,000 images of the Fashion-MNIST training set, embedded.
pub fn fashion_mnist_train_subset() -> Result<Dataset> {
    Ok(Dataset::from_idx(
        include_bytes!("../data/fashion-mnist/train-10k-images-idx3-ubyte.gz"),
        include_bytes!("../data/fashion-mnist/train-10k-labels-idx1-ubyte.gz"),
        "embedded Fashion-MNIST training subset",
    )?)
}

/// Class names of Fashion-MNIST, by label.
pub const FASHION_MNIST_CLASSES: [&str; 10] =
    ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];
