//! Structure-aware ONNX graphs: an image input, then a chain of operators drawn from
//! what exporters emit (convolutions, pooling, the shape arithmetic of `view`, constant
//! folding fodder such as `ConstantOfShape`, `Expand` and integer `Div`), each with
//! attributes and constants that are usually sensible and sometimes extreme (`0`, `-1`,
//! `2⁶³−1`, `i64::MIN`, NaN, ∞), so that both the importer's happy paths and its
//! refusals run.

use npu_onnx::proto::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto, type_proto, AttributeProto, GraphProto,
    ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use prost::Message;

use crate::Rng;

/// Integers that break arithmetic.
const EXTREME_INTS: [i64; 10] = [0, -1, -2, 1 << 31, 1 << 40, 1 << 62, i64::MAX, i64::MIN, -(1 << 31), 65537];

/// Floats that break arithmetic.
const EXTREME_FLOATS: [f32; 8] = [0.0, -0.0, f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e30, -1e-30, f32::MAX];

struct Gen<'r> {
    r: &'r mut Rng,
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    next: usize,
}

impl Gen<'_> {
    fn name(&mut self, what: &str) -> String {
        self.next += 1;
        format!("{what}{}", self.next)
    }

    /// A small non-negative integer, or (1 in 12) an extreme one.
    fn int(&mut self, small: i64) -> i64 {
        if self.r.below(12) == 0 {
            EXTREME_INTS[self.r.below(EXTREME_INTS.len() as u64) as usize]
        } else {
            self.r.below(small as u64 + 1) as i64
        }
    }

    /// `int(small) + 1`, saturating.
    fn int1(&mut self, small: i64) -> i64 {
        self.int(small).saturating_add(1)
    }

    fn float(&mut self) -> f32 {
        if self.r.below(12) == 0 {
            EXTREME_FLOATS[self.r.below(EXTREME_FLOATS.len() as u64) as usize]
        } else {
            self.r.uniform() * 4.0 - 2.0
        }
    }

    fn ints(&mut self, n: usize, small: i64) -> Vec<i64> {
        (0..n).map(|_| self.int(small)).collect()
    }

    fn init_f32(&mut self, dims: Vec<i64>) -> String {
        let n: usize = dims.iter().map(|d| (*d).clamp(0, 64) as usize).product::<usize>().min(4096);
        let name = self.name("w");
        let data: Vec<f32> = (0..n).map(|_| self.float()).collect();
        // Sometimes the declared shape and the data disagree (a corrupt file).
        let dims = if self.r.below(20) == 0 { vec![self.int(8), self.int(8)] } else { dims };
        self.inits.push(TensorProto {
            name: Some(name.clone()),
            dims,
            data_type: Some(DataType::Float as i32),
            float_data: data,
            ..Default::default()
        });
        name
    }

    fn init_i64(&mut self, values: Vec<i64>) -> String {
        let name = self.name("k");
        self.inits.push(TensorProto {
            name: Some(name.clone()),
            dims: vec![values.len() as i64],
            data_type: Some(DataType::Int64 as i32),
            int64_data: values,
            ..Default::default()
        });
        name
    }

    fn node(&mut self, op: &str, inputs: Vec<String>, attrs: Vec<AttributeProto>) -> String {
        let out = self.name("t");
        // Exporters reuse names; sometimes many nodes share one.
        let name = if self.r.below(4) == 0 { "n".to_string() } else { self.name(op) };
        self.nodes.push(NodeProto {
            op_type: Some(op.into()),
            name: Some(name),
            input: inputs,
            output: vec![out.clone()],
            attribute: attrs,
            ..Default::default()
        });
        out
    }

    /// One operator (or a small subgraph) reading `x`; returns its output.
    fn step(&mut self, x: &str, channels: i64) -> String {
        let x = x.to_string();
        match self.r.below(22) {
            0 => {
                let (co, k) = (self.int1(4), self.int1(3));
                let ci = if self.r.below(10) == 0 { self.int(4) } else { channels };
                let w = self.init_f32(vec![co, ci, k, k]);
                let b = self.init_f32(vec![co]);
                let attrs = vec![
                    ints("strides", self.ints(2, 2)),
                    ints("pads", self.ints(4, 2)),
                    ints("dilations", vec![self.int1(1), self.int1(1)]),
                    int("group", if self.r.below(8) == 0 { self.int(4) } else { 1 }),
                ];
                self.node("Conv", vec![x, w, b], attrs)
            }
            1 => self.node("Relu", vec![x], vec![]),
            2 => {
                let (lo, hi) = (self.float(), self.float());
                let attrs = vec![float("min", lo), float("max", hi)];
                self.node("Clip", vec![x], attrs)
            }
            3 => {
                let op = if self.r.below(2) == 0 { "MaxPool" } else { "AveragePool" };
                let attrs = vec![
                    ints("kernel_shape", vec![self.int1(2), self.int1(2)]),
                    ints("strides", vec![self.int1(1), self.int1(1)]),
                    ints("pads", self.ints(4, 1)),
                    int("ceil_mode", self.int(1)),
                ];
                self.node(op, vec![x], attrs)
            }
            4 => {
                let op = ["Add", "Sub", "Mul", "Div"][self.r.below(4) as usize];
                let c = self.init_f32(vec![channels, 1, 1]);
                let ins = if self.r.below(3) == 0 { vec![x.clone(), x] } else { vec![x, c] };
                self.node(op, ins, vec![])
            }
            5 => {
                let mut shape = vec![1, -1];
                if self.r.below(3) == 0 {
                    let n = 1 + self.r.below(4) as usize;
                    shape = self.ints(n, 16);
                    shape.insert(0, 1);
                }
                let s = self.init_i64(shape);
                self.node("Reshape", vec![x, s], vec![])
            }
            6 => {
                // x.view(x.size(0), -1) as exporters write it.
                let shape = self.node("Shape", vec![x.clone()], vec![]);
                let v = vec![self.int(3)];
                let i = self.init_i64(v);
                let g = self.node("Gather", vec![shape, i], vec![int("axis", 0)]);
                let m1 = self.init_i64(vec![-1]);
                let cat = self.node("Concat", vec![g, m1], vec![int("axis", 0)]);
                self.node("Reshape", vec![x, cat], vec![])
            }
            7 => {
                let f = self.node("Flatten", vec![x], vec![int("axis", 1)]);
                let dims = vec![self.int1(8), self.int(64)];
                let w = if self.r.below(3) == 0 {
                    let s = self.init_i64(dims);
                    self.node("ConstantOfShape", vec![s], vec![])
                } else {
                    self.init_f32(dims)
                };
                self.node("Gemm", vec![f, w], vec![int("transB", 1)])
            }
            8 => {
                let n = 1 + self.r.below(4) as usize;
                let v = self.ints(n, 4);
                let s = self.init_i64(v);
                let c = self.node("ConstantOfShape", vec![s], vec![]);
                self.node("Add", vec![x, c], vec![])
            }
            9 => {
                let c = self.init_f32(vec![1]);
                let n = 1 + self.r.below(4) as usize;
                let v = self.ints(n, 4);
                let s = self.init_i64(v);
                let e = self.node("Expand", vec![c, s], vec![]);
                self.node("Mul", vec![x, e], vec![])
            }
            10 => {
                // Integer shape arithmetic: Shape / k, Shape * k.
                let shape = self.node("Shape", vec![x.clone()], vec![]);
                let v = vec![self.int(4)];
                let k = self.init_i64(v);
                let op = ["Div", "Mul", "Add", "Sub"][self.r.below(4) as usize];
                let d = self.node(op, vec![shape, k], vec![]);
                self.node("Reshape", vec![x, d], vec![])
            }
            11 => {
                let perm = self.ints(4, 3);
                self.node("Transpose", vec![x], vec![ints("perm", perm)])
            }
            12 => {
                let n = 1 + self.r.below(2) as usize;
                let v = self.ints(n, 4);
                let starts = self.init_i64(v);
                let v = self.ints(n, 8);
                let ends = self.init_i64(v);
                let v = self.ints(n, 3);
                let axes = self.init_i64(v);
                let v = (0..n).map(|_| self.int1(1)).collect();
                let steps = self.init_i64(v);
                self.node("Slice", vec![x, starts, ends, axes, steps], vec![])
            }
            13 => {
                let v = vec![1, channels, self.int(16), self.int(16)];
                let sizes = self.init_i64(v);
                let mode = if self.r.below(2) == 0 { "nearest" } else { "linear" };
                self.node("Resize", vec![x, String::new(), String::new(), sizes], vec![string("mode", mode)])
            }
            14 => {
                let v = self.ints(8, 2);
                let pads = self.init_i64(v);
                let mode = ["constant", "reflect", "edge", "wrap"][self.r.below(4) as usize];
                self.node("Pad", vec![x, pads], vec![string("mode", mode)])
            }
            15 => {
                let a = int("axis", self.int(3));
                self.node("Concat", vec![x.clone(), x], vec![a])
            }
            16 => {
                let a = int("axis", self.int(3));
                self.node("Softmax", vec![x], vec![a])
            }
            17 => self.node("GlobalAveragePool", vec![x], vec![]),
            18 => {
                let p: Vec<String> = (0..4).map(|_| self.init_f32(vec![channels])).collect();
                let mut ins = vec![x];
                ins.extend(p);
                let a = float("epsilon", self.float());
                self.node("BatchNormalization", ins, vec![a])
            }
            19 => {
                let op = ["Sigmoid", "Tanh", "HardSwish", "LeakyRelu", "Exp", "Neg"][self.r.below(6) as usize];
                let a = float("alpha", self.float());
                self.node(op, vec![x], vec![a])
            }
            20 => {
                let v = vec![self.int(4), self.int(4), self.int(4)];
                let c = self.init_f32(v);
                let a = ints("perm", self.ints(3, 3));
                let t = self.node("Transpose", vec![c], vec![a]);
                self.node("Add", vec![x, t], vec![])
            }
            _ => {
                // Concatenated and reshaped shape constants.
                let v = self.ints(2, 8);
                let a = self.init_i64(v);
                let v = self.ints(2, 8);
                let b = self.init_i64(v);
                let c = self.node("Concat", vec![a, b], vec![int("axis", 0)]);
                self.node("Reshape", vec![x, c], vec![])
            }
        }
    }
}

/// An `ints` attribute.
pub fn ints(name: &str, v: Vec<i64>) -> AttributeProto {
    AttributeProto { name: Some(name.into()), r#type: Some(AttributeType::Ints as i32), ints: v, ..Default::default() }
}

/// An `int` attribute.
pub fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(v),
        ..Default::default()
    }
}

/// A `float` attribute.
pub fn float(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Float as i32),
        f: Some(v),
        ..Default::default()
    }
}

/// A `string` attribute.
pub fn string(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::String as i32),
        s: Some(v.as_bytes().to_vec()),
        ..Default::default()
    }
}

/// A float32 tensor's name and fixed shape (a graph input or output).
pub fn tensor_info(name: &str, dims: &[i64]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| tensor_shape_proto::Dimension {
            value: Some(tensor_shape_proto::dimension::Value::DimValue(*d)),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(DataType::Float as i32),
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A random ONNX model's bytes.
pub fn model(r: &mut Rng) -> Vec<u8> {
    let mut g = Gen { r, nodes: vec![], inits: vec![], next: 0 };
    let channels = 1 + g.r.below(3) as i64;
    let (h, w) = (g.int1(7), g.int1(7));
    let input = tensor_info("x", &[1, channels, h, w]);
    let mut cur = "x".to_string();
    for _ in 0..1 + g.r.below(6) {
        cur = g.step(&cur, channels);
    }
    // Many nodes sharing one name: the importer's name uniquing must stay linear.
    if g.r.below(50) == 0 {
        for _ in 0..2000 {
            let out = g.name("t");
            g.nodes.push(NodeProto {
                op_type: Some("Relu".into()),
                name: Some("same".into()),
                input: vec![cur.clone()],
                output: vec![out.clone()],
                ..Default::default()
            });
            cur = out;
        }
    }
    let graph = GraphProto {
        node: g.nodes,
        name: Some("fuzz".into()),
        initializer: g.inits,
        input: vec![input],
        output: vec![tensor_info(&cur, &[1, 10])],
        ..Default::default()
    };
    let opset = [11, 13, 17][g.r.below(3) as usize];
    ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(opset) }],
        graph: Some(graph),
        ..Default::default()
    }
    .encode_to_vec()
}
