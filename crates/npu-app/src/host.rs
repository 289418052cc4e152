//! The host CPU's runtime for a compiled model: a `host` call runs its layer of the
//! quantized model on the integer reference kernels ([`QModel::run_layer`]), reading
//! its inputs from and writing its output to the simulated system SRAM in the NPU's
//! `[H][W][C]` byte layout — what firmware on the CPU beside the NPU would do.

use npu_isa::{Host, Space};
use npu_quant::QModel;
use npu_sim::{HostRuntime, Machine};

/// Runs the layers a compiled model leaves to the host CPU.
pub struct LayerRuntime<'a> {
    model: &'a QModel,
}

impl<'a> LayerRuntime<'a> {
    /// The runtime of `model` (the model the program was compiled from).
    pub fn new(model: &'a QModel) -> LayerRuntime<'a> {
        LayerRuntime { model }
    }
}

impl HostRuntime for LayerRuntime<'_> {
    fn call(&self, call: &Host, m: &mut Machine) -> Result<(), String> {
        let q = self.model;
        let k = call.id as usize;
        let l = q.layers.get(k).ok_or_else(|| format!("the model has no layer {k}"))?;
        let regions = [(call.src, call.sn), (call.b, call.bn)];
        let mut inputs = Vec::with_capacity(l.inputs.len());
        for (j, &v) in l.inputs.iter().enumerate() {
            let &(addr, n) = regions
                .get(j)
                .ok_or_else(|| format!("layer `{}` has {} inputs; a host call passes two", l.name, l.inputs.len()))?;
            let value = &q.values[v];
            let want: usize = value.shape.iter().product();
            if n as usize != want {
                return Err(format!("input {j} of layer `{}` is {want} bytes; the call passes {n}", l.name));
            }
            let bytes = m
                .read(Space::Sram, u64::from(addr), u64::from(n))
                .ok_or_else(|| format!("input {j} of layer `{}` lies outside SRAM", l.name))?;
            let shape = npu_compile::memory::stored_shape(q, v);
            inputs.push(npu_compile::from_hwc_bytes(bytes, shape, value.q.dtype));
        }
        let refs: Vec<&[i32]> = inputs.iter().map(Vec::as_slice).collect();
        let out = q.run_layer(k, &refs).map_err(|e| e.to_string())?;
        let bytes = npu_compile::to_hwc_bytes(&out, &q.values[l.output].shape);
        if bytes.len() != call.dn as usize {
            return Err(format!("layer `{}` writes {} bytes; the call expects {}", l.name, bytes.len(), call.dn));
        }
        m.write(Space::Sram, u64::from(call.dst), &bytes).map_err(|e| e.to_string())
    }
}
