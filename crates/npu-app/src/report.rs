//! What a compiled model costs on modeled hardware: the per-frame figures and the
//! per-layer rows with what bounds each layer.

use serde::{Deserialize, Serialize};

use npu_compile::Compiled;
use npu_hw::HwConfig;
use npu_quant::QModel;

/// Hardware figures of one compiled model, per frame.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HwFigures {
    /// Simulated cycles of one inference.
    pub cycles: u64,
    /// Inferences per second at the clock.
    pub fps: f64,
    /// Latency of one inference, µs.
    pub latency_us: f64,
    /// Energy of one inference, µJ.
    pub energy_uj: f64,
    /// Average power, mW.
    pub power_mw: f64,
    /// Off-chip image: packed weights and tables, bytes.
    pub weight_bytes: u64,
    /// Activation-buffer bytes holding resident activations at peak.
    pub onchip_act_bytes: u64,
    /// System SRAM bytes for activations at peak.
    pub sram_act_bytes: u64,
    /// Off-chip bytes moved per inference.
    pub offchip_bytes: u64,
    /// Simulated cycles over the roofline floor.
    pub roofline_ratio: f64,
    /// Layers the host CPU runs (the NPU cannot, or they were placed there).
    pub cpu_layers: u64,
    /// Wall-clock seconds the functional runs of all images took (host speed; 0 when
    /// none ran).
    pub host_seconds: f64,
}

/// Bytes read and written in one memory space of a report.
pub(crate) fn mem_bytes(r: &npu_sim::Report, space: &str) -> u64 {
    r.memory.iter().find(|m| m.space == space).map_or(0, |m| m.read_bytes + m.written_bytes)
}

/// The hardware figures of one compiled model from a run's report.
pub fn figures(q: &QModel, c: &Compiled, hw: &HwConfig, r: &npu_sim::Report, host_seconds: f64) -> HwFigures {
    let roof = npu_compile::roofline(q, hw);
    let seconds = r.total_cycles as f64 / (hw.clock_mhz * 1e6);
    HwFigures {
        cycles: r.total_cycles,
        fps: 1.0 / seconds,
        latency_us: seconds * 1e6,
        energy_uj: r.energy.total_pj / 1e6,
        power_mw: r.average_power_mw,
        weight_bytes: c.program.data.iter().map(|s| s.bytes.len() as u64).sum(),
        onchip_act_bytes: u64::from(c.memory.resident_bytes),
        sram_act_bytes: u64::from(c.memory.sram_bytes),
        offchip_bytes: mem_bytes(r, "dram"),
        roofline_ratio: r.total_cycles as f64 / roof.floor().max(1.0),
        cpu_layers: c.host.len() as u64,
        host_seconds,
    }
}

/// One layer of a run (or, named `total`, the whole run).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerRow {
    /// Layer name (whole).
    pub layer: String,
    /// Operator and weight format (`conv w8/ch`, `add`, …).
    pub operator: String,
    /// Useful MACs.
    pub macs: u64,
    /// Cycles attributed to the layer (they sum to the run's total).
    pub cycles: u64,
    /// Share of the run's cycles, percent.
    pub share_percent: f64,
    /// Cycles from the layer's first to its last busy cycle (overlaps its neighbours).
    pub span_cycles: u64,
    /// MAC-array utilization over the span, percent.
    pub mac_utilization_percent: f64,
    /// What limits the layer: `compute`, `sram`, `off-chip`, `other` (requantization
    /// or vector unit) or `cpu` (a layer the host CPU runs).
    pub bound: &'static str,
    /// The unit busiest during the span.
    pub busiest_unit: &'static str,
    /// Off-chip bytes read and written.
    pub offchip_bytes: u64,
    /// System-SRAM bytes read and written.
    pub sram_bytes: u64,
    /// Energy, µJ.
    pub energy_uj: f64,
}

/// What bounds a stretch of a run: the busiest unit, and for DMA which memory's
/// bandwidth its bytes take longer on. Returns (bound, busiest unit).
pub fn bound_of(rep: &npu_sim::Report, hw: &HwConfig) -> (&'static str, &'static str) {
    let busiest =
        rep.units.iter().filter(|u| u.busy_cycles > 0).max_by_key(|u| u.busy_cycles).map_or("none", |u| u.unit);
    let bound = match busiest {
        "mac" => "compute",
        "cpu" => "cpu",
        "ld" | "st" => {
            let d = mem_bytes(rep, "dram") as f64 / hw.memories.dram.bytes_per_cycle;
            let s = mem_bytes(rep, "sram") as f64 / hw.memories.sram.bytes_per_cycle;
            if d >= s {
                "off-chip"
            } else {
                "sram"
            }
        }
        _ => "other",
    };
    (bound, busiest)
}

fn row(layer: String, operator: String, rep: &npu_sim::Report, cycles: u64, total: f64, hw: &HwConfig) -> LayerRow {
    let (bound, busiest_unit) = bound_of(rep, hw);
    LayerRow {
        layer,
        operator,
        macs: rep.macs.total,
        cycles,
        share_percent: cycles as f64 / total * 100.0,
        span_cycles: rep.total_cycles,
        mac_utilization_percent: rep.macs.utilization * 100.0,
        bound,
        busiest_unit,
        offchip_bytes: mem_bytes(rep, "dram"),
        sram_bytes: mem_bytes(rep, "sram"),
        energy_uj: rep.energy.total_pj * 1e-6,
    }
}

/// The per-layer rows of a traced run, and its `total` row.
pub fn layer_rows(
    q: &QModel,
    regions: &[npu_sim::RegionReport],
    run: &npu_sim::Report,
    hw: &HwConfig,
) -> (Vec<LayerRow>, LayerRow) {
    let total = run.total_cycles.max(1) as f64;
    let rows = regions
        .iter()
        .map(|r| {
            let layer = q.layers.iter().find(|l| l.name == r.name);
            let operator = layer.map_or_else(|| "—".to_string(), npu_quant::report::describe);
            let mut row = row(r.name.clone(), operator, &r.report, r.attributed, total, hw);
            if row.bound == "cpu" {
                // The host's MACs are not the array's.
                row.macs = layer.map_or(0, |l| npu_compile::lower::layer_macs(q, l));
            }
            row
        })
        .collect();
    (rows, row("total".into(), String::new(), run, run.total_cycles, total, hw))
}
