//! What a run measured: counters, the report built from them, and traces.

use std::fmt::Write as _;

use npu_hw::HwConfig;
use npu_isa::{MacMode, Space, Unit};
use serde::Serialize;

use crate::exec::Work;

/// Why a unit waited before starting an instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stall {
    /// The instruction had not been dispatched yet (fetch order, full queue).
    Fetch,
    /// Waiting for a token from a DMA unit.
    Dma,
    /// Waiting for a token from a compute unit.
    Dependency,
    /// Waiting for the external memory port held by another transfer.
    Port,
}

/// Units counted: the NPU's five and the host CPU.
pub(crate) const UNITS: usize = 7;
const _: () = assert!(UNITS == Unit::ALL.len());

/// Raw counts accumulated during a run.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    /// Cycles from the start to the last completion.
    pub total_cycles: u64,
    /// Control instructions fetched.
    pub control: u64,
    instrs: [u64; UNITS],
    busy: [u64; UNITS],
    stalls: [[u64; 4]; UNITS],
    macs: [u64; 5],
    pe_cycles: f64,
    reads: [u64; 6],
    writes: [u64; 6],
    rq_mul: u64,
    rq_shift: u64,
    vec_ops: u64,
    decompressed: u64,
    gated: [u64; 5],
}

impl Counters {
    /// Adds clock-gated MACs (zero weights) of an instruction in `mode`.
    pub fn gate(&mut self, mode: MacMode, macs: u64) {
        self.gated[mode as usize] += macs;
    }

    /// Adds stall cycles of `cause` on unit `u`.
    pub fn stall(&mut self, u: usize, cause: Stall, cycles: u64) {
        self.stalls[u][cause as usize] += cycles;
    }

    /// Adds one executed instruction on unit `u` with its work and busy cycles.
    pub fn add(&mut self, u: usize, work: &Work, cycles: u64, end: u64, hw: &HwConfig) {
        self.instrs[u] += 1;
        self.busy[u] += cycles;
        self.total_cycles = self.total_cycles.max(end);
        if let Some(m) = &work.mac {
            self.macs[m.mode as usize] += m.macs;
            self.pe_cycles += m.macs as f64 / f64::from(hw.mac.macs_per_pe.get(m.mode).max(1));
        }
        if let Some((n, mul)) = work.rq {
            if mul {
                self.rq_mul += n;
            } else {
                self.rq_shift += n;
            }
        }
        self.vec_ops += work.vec_ops;
        self.decompressed += work.dma.as_ref().map_or(0, |d| d.decompressed);
        for i in 0..6 {
            self.reads[i] += work.reads[i];
            self.writes[i] += work.writes[i];
        }
    }

    /// Builds the report.
    pub fn report(&self, hw: &HwConfig, leftover: &[(Unit, Unit, usize)]) -> Report {
        let total = self.total_cycles;
        let seconds = total as f64 / (hw.clock_mhz * 1e6);
        let frac = |x: u64| if total == 0 { 0.0 } else { x as f64 / total as f64 };
        let units = Unit::ALL
            .iter()
            .enumerate()
            .map(|(i, u)| UnitReport {
                unit: u.name(),
                instructions: self.instrs[i],
                busy_cycles: self.busy[i],
                utilization: frac(self.busy[i]),
                stall_fetch: self.stalls[i][Stall::Fetch as usize],
                stall_dma: self.stalls[i][Stall::Dma as usize],
                stall_dependency: self.stalls[i][Stall::Dependency as usize],
                stall_port: self.stalls[i][Stall::Port as usize],
            })
            .collect();
        let pes = f64::from(hw.mac.rows) * f64::from(hw.mac.cols);
        let macs = MacReport {
            total: self.macs.iter().sum(),
            by_mode: MacMode::ALL.iter().map(|m| (m.name(), self.macs[*m as usize])).filter(|(_, n)| *n > 0).collect(),
            peak_i8_per_cycle: hw.peak_macs_per_cycle(MacMode::I8),
            gated: self.gated.iter().sum(),
            utilization: if total == 0 { 0.0 } else { self.pe_cycles / (pes * total as f64) },
        };
        let memory = Space::ALL
            .iter()
            .map(|s| MemoryReport {
                space: s.name(),
                read_bytes: self.reads[*s as usize],
                written_bytes: self.writes[*s as usize],
            })
            .collect();
        let e = &hw.energy;
        let moved = |s: Space| (self.reads[s as usize] + self.writes[s as usize]) as f64;
        let mac_pj: f64 = MacMode::ALL
            .iter()
            .map(|m| {
                (self.macs[*m as usize] - self.gated[*m as usize].min(self.macs[*m as usize])) as f64 * e.mac_pj.get(*m)
            })
            .sum();
        let local_pj =
            (moved(Space::Act) + moved(Space::Wgt) + moved(Space::Par) + moved(Space::Acc)) * e.local_byte_pj;
        let sram_pj = moved(Space::Sram) * e.sram_byte_pj;
        let dram_pj = moved(Space::Dram) * e.dram_byte_pj;
        // Requantization: bias add, zero-point add and the barrel shift for every element;
        // the 32-bit multiply only with a multiplier.
        let requant_pj =
            (self.rq_mul + self.rq_shift) as f64 * (2.0 * e.add_pj + e.shift_pj) + self.rq_mul as f64 * e.multiply_pj;
        let vector_pj = self.vec_ops as f64 * e.add_pj;
        let static_pj = e.static_mw * 1e-3 * seconds * 1e12;
        let decompress_pj = self.decompressed as f64 * e.decompress_byte_pj;
        // The host's busy NPU cycles in its own clock, at its energy per cycle.
        let host_pj = self.busy[Unit::Host as usize] as f64 * hw.cpu.clock_mhz / hw.clock_mhz * hw.cpu.pj_per_cycle;
        let total_pj =
            mac_pj + local_pj + sram_pj + dram_pj + requant_pj + vector_pj + decompress_pj + host_pj + static_pj;
        Report {
            hw: hw.name.clone(),
            clock_mhz: hw.clock_mhz,
            total_cycles: total,
            seconds,
            inferences_per_second: if total == 0 { 0.0 } else { 1.0 / seconds },
            instructions: self.instrs.iter().sum(),
            control_instructions: self.control,
            units,
            macs,
            memory,
            requant_elements: self.rq_mul + self.rq_shift,
            vector_ops: self.vec_ops,
            energy: EnergyReport {
                mac_pj,
                local_pj,
                sram_pj,
                dram_pj,
                requant_pj,
                vector_pj,
                decompress_pj,
                host_pj,
                static_pj,
                total_pj,
            },
            decompressed_bytes: self.decompressed,
            average_power_mw: if seconds == 0.0 { 0.0 } else { total_pj * 1e-12 / seconds * 1e3 },
            leftover_tokens: leftover.iter().map(|(a, b, n)| format!("{n} from {a} to {b}")).collect(),
        }
    }
}

/// One unit's activity.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnitReport {
    /// Unit name.
    pub unit: &'static str,
    /// Instructions executed.
    pub instructions: u64,
    /// Cycles spent executing.
    pub busy_cycles: u64,
    /// Busy cycles over total cycles.
    pub utilization: f64,
    /// Cycles waiting for the instruction to be dispatched.
    pub stall_fetch: u64,
    /// Cycles waiting for tokens from DMA units.
    pub stall_dma: u64,
    /// Cycles waiting for tokens from compute units.
    pub stall_dependency: u64,
    /// Cycles waiting for the shared external port.
    pub stall_port: u64,
}

/// MAC-array activity.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MacReport {
    /// Useful MACs in all modes.
    pub total: u64,
    /// Useful MACs per mode (modes with none omitted).
    pub by_mode: Vec<(&'static str, u64)>,
    /// Peak INT8 MACs per cycle.
    pub peak_i8_per_cycle: u64,
    /// Of the MACs, those clock-gated for a zero weight (functional runs on hardware
    /// with `mac.zero_gating`; 0 in timing-only runs, which read no data).
    pub gated: u64,
    /// PE-cycles of useful work over PE-cycles available in the run.
    pub utilization: f64,
}

/// Traffic of one memory.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemoryReport {
    /// Memory space.
    pub space: &'static str,
    /// Bytes read.
    pub read_bytes: u64,
    /// Bytes written.
    pub written_bytes: u64,
}

/// Energy by category, in picojoules.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EnergyReport {
    /// MAC array.
    pub mac_pj: f64,
    /// Local buffers.
    pub local_pj: f64,
    /// System SRAM traffic.
    pub sram_pj: f64,
    /// Off-chip traffic.
    pub dram_pj: f64,
    /// Requantization unit.
    pub requant_pj: f64,
    /// Vector unit.
    pub vector_pj: f64,
    /// Weight decompressor.
    pub decompress_pj: f64,
    /// The host CPU, for the layers it runs (`host` calls).
    pub host_pj: f64,
    /// Static power over the run.
    pub static_pj: f64,
    /// Sum of the above.
    pub total_pj: f64,
}

/// Everything a run measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Hardware name.
    pub hw: String,
    /// Clock in MHz.
    pub clock_mhz: f64,
    /// Cycles from start to the last completion.
    pub total_cycles: u64,
    /// Wall time at the clock.
    pub seconds: f64,
    /// Bytes the weight decompressor produced (`ldz`).
    pub decompressed_bytes: u64,
    /// Runs of this program per second at the clock.
    pub inferences_per_second: f64,
    /// Unit instructions executed.
    pub instructions: u64,
    /// Control instructions fetched.
    pub control_instructions: u64,
    /// Per unit.
    pub units: Vec<UnitReport>,
    /// MAC array.
    pub macs: MacReport,
    /// Per memory.
    pub memory: Vec<MemoryReport>,
    /// Elements requantized.
    pub requant_elements: u64,
    /// Vector-unit element operations.
    pub vector_ops: u64,
    /// Energy.
    pub energy: EnergyReport,
    /// Energy over time, in milliwatts.
    pub average_power_mw: f64,
    /// Tokens signalled but never waited for.
    pub leftover_tokens: Vec<String>,
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl Report {
    /// The report as a human-readable table.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} cycles on {} at {} MHz = {:.3} µs, {:.1} inferences/s",
            thousands(self.total_cycles),
            self.hw,
            self.clock_mhz,
            self.seconds * 1e6,
            self.inferences_per_second
        );
        let _ = writeln!(s, "\nunit  instrs   busy cycles   util  stalls: fetch        dma        dep       port");
        // The host's and the weight queue's rows only when they ran something.
        let optional = [Unit::Host.name(), Unit::Ldw.name()];
        for u in self.units.iter().filter(|u| !optional.contains(&u.unit) || u.instructions > 0) {
            let _ = writeln!(
                s,
                "{:<4} {:>7} {:>13} {:>5.1}% {:>13} {:>10} {:>10} {:>10}",
                u.unit,
                u.instructions,
                thousands(u.busy_cycles),
                u.utilization * 100.0,
                thousands(u.stall_fetch),
                thousands(u.stall_dma),
                thousands(u.stall_dependency),
                thousands(u.stall_port)
            );
        }
        let modes: Vec<String> = self.macs.by_mode.iter().map(|(m, n)| format!("{m} {}", thousands(*n))).collect();
        let _ = writeln!(
            s,
            "\nMACs {} ({}), {:.1}% of peak ({} INT8 MACs/cycle)",
            thousands(self.macs.total),
            if modes.is_empty() { "none".to_string() } else { modes.join(", ") },
            self.macs.utilization * 100.0,
            self.macs.peak_i8_per_cycle
        );
        if self.macs.gated > 0 {
            let _ = writeln!(
                s,
                "clock-gated for zero weights: {} MACs ({:.1}%)",
                thousands(self.macs.gated),
                self.macs.gated as f64 / self.macs.total.max(1) as f64 * 100.0
            );
        }
        let _ = writeln!(s, "\nmemory        read B     written B");
        for m in &self.memory {
            let _ = writeln!(s, "{:<6} {:>12} {:>13}", m.space, thousands(m.read_bytes), thousands(m.written_bytes));
        }
        let e = &self.energy;
        let _ = writeln!(
            s,
            "\nenergy {:.1} pJ: MAC {:.1}, local {:.1}, SRAM {:.1}, off-chip {:.1}, requant {:.1}, vector {:.1}, static {:.1}",
            e.total_pj, e.mac_pj, e.local_pj, e.sram_pj, e.dram_pj, e.requant_pj, e.vector_pj, e.static_pj
        );
        if self.decompressed_bytes > 0 {
            let _ = writeln!(
                s,
                "weight decompressor: {} bytes out, {:.1} pJ",
                thousands(self.decompressed_bytes),
                e.decompress_pj
            );
        }
        if e.host_pj > 0.0 {
            let _ = writeln!(s, "host CPU: {:.1} pJ", e.host_pj);
        }
        let _ = writeln!(s, "average power {:.3} mW", self.average_power_mw);
        if !self.leftover_tokens.is_empty() {
            let _ = writeln!(s, "tokens never taken: {}", self.leftover_tokens.join(", "));
        }
        s
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// One executed instruction, for traces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceEvent {
    /// Unit that executed it.
    pub unit: Unit,
    /// Index in the program.
    pub index: usize,
    /// Position in the dispatched stream.
    pub seq: u64,
    /// Mnemonic.
    pub mnemonic: &'static str,
    /// First busy cycle.
    pub start: u64,
    /// Cycle after the last busy cycle.
    pub end: u64,
    /// MACs clock-gated for a zero weight.
    pub gated: u64,
}

/// A Chrome/Perfetto trace (JSON object format): one track per unit whose slices are the
/// instructions (named by the layer that owns them, where `layers[i]` names the owner of
/// instruction `i`; empty names leave the mnemonic alone), dependency tokens drawn as
/// flow arrows from the instruction that signalled each token to the one that took it,
/// and counter tracks of the bandwidth each memory sees (bytes per cycle, from every
/// instruction's traffic spread over its busy cycles). Timestamps in microseconds at the
/// hardware clock. `code` is the program the trace is of.
pub fn chrome_trace(events: &[TraceEvent], hw: &HwConfig, code: &[npu_isa::Instr], layers: &[&str]) -> String {
    let us = |c: u64| c as f64 / hw.clock_mhz;
    // The host's and the weight queue's tracks only when they ran something.
    let ran = |unit: Unit| events.iter().any(|e| e.unit == unit);
    let mut list: Vec<serde_json::Value> = Unit::ALL
        .iter()
        .enumerate()
        .filter(|(_, u)| !matches!(u, Unit::Host | Unit::Ldw) || ran(**u))
        .map(|(i, u)| {
            serde_json::json!({"name": "thread_name", "ph": "M", "pid": 1, "tid": i, "args": {"name": u.name()}})
        })
        .collect();
    list.push(
        serde_json::json!({"name": "process_name", "ph": "M", "pid": 1, "args": {"name": format!("npu {}", hw.name)}}),
    );
    for e in events {
        let layer = layers.get(e.index).copied().unwrap_or("");
        let name = if layer.is_empty() { e.mnemonic.to_string() } else { format!("{layer}: {}", e.mnemonic) };
        list.push(serde_json::json!({
            "name": name,
            "cat": if layer.is_empty() { "instruction" } else { layer },
            "ph": "X",
            "pid": 1,
            "tid": e.unit as usize,
            "ts": us(e.start),
            "dur": us(e.end - e.start),
            "args": {"instruction": e.index, "mnemonic": e.mnemonic, "layer": layer, "dispatch": e.seq,
                     "start_cycle": e.start, "end_cycle": e.end},
        }));
    }
    // Tokens are counts in a FIFO per (from, to) pair: the k-th token `to` takes from
    // `from` is the k-th that `from` gave it, in completion order.
    let n_units = Unit::ALL.len();
    let mut given: Vec<Vec<&TraceEvent>> = vec![Vec::new(); n_units * n_units];
    let mut taken: Vec<Vec<&TraceEvent>> = vec![Vec::new(); n_units * n_units];
    let mut by_end: Vec<&TraceEvent> = events.iter().collect();
    by_end.sort_by_key(|e| (e.end, e.seq));
    for e in &by_end {
        let Some(i) = code.get(e.index) else { continue };
        for to in i.signal.iter() {
            given[e.unit as usize * n_units + to as usize].push(e);
        }
    }
    let mut by_start: Vec<&TraceEvent> = events.iter().collect();
    by_start.sort_by_key(|e| (e.start, e.seq));
    for e in &by_start {
        let Some(i) = code.get(e.index) else { continue };
        for from in i.wait.iter() {
            taken[from as usize * n_units + e.unit as usize].push(e);
        }
    }
    let mut id = 0u64;
    for (g, t) in given.iter().zip(&taken) {
        for (src, dst) in g.iter().zip(t) {
            id += 1;
            let name = format!("token {} → {}", src.unit.name(), dst.unit.name());
            list.push(serde_json::json!({"name": name, "cat": "token", "ph": "s", "id": id, "pid": 1,
                "tid": src.unit as usize, "ts": us(src.start)}));
            list.push(serde_json::json!({"name": name, "cat": "token", "ph": "f", "bp": "e", "id": id, "pid": 1,
                "tid": dst.unit as usize, "ts": us(dst.start)}));
        }
    }
    // Bandwidth counters: each instruction's bytes per memory spread evenly over its
    // busy cycles, summed over the instructions in flight.
    let mut changes: Vec<Vec<(u64, f64)>> = vec![Vec::new(); Space::ALL.len()];
    for e in events {
        let (Some(i), true) = (code.get(e.index), e.end > e.start) else { continue };
        let Ok(work) = crate::exec::plan(hw, &i.op) else { continue };
        for (s, ch) in changes.iter_mut().enumerate() {
            let bytes = work.reads[s] + work.writes[s];
            if bytes > 0 {
                let rate = bytes as f64 / (e.end - e.start) as f64;
                ch.push((e.start, rate));
                ch.push((e.end, -rate));
            }
        }
    }
    for (s, mut ch) in changes.into_iter().enumerate() {
        if ch.is_empty() {
            continue;
        }
        ch.sort_by_key(|c| c.0);
        let name = format!("{} bandwidth, B/cycle", Space::ALL[s].name());
        let mut level = 0.0f64;
        let mut k = 0;
        while k < ch.len() {
            let t = ch[k].0;
            while k < ch.len() && ch[k].0 == t {
                level += ch[k].1;
                k += 1;
            }
            let v = if level.abs() < 1e-9 { 0.0 } else { level };
            list.push(serde_json::json!({"name": name, "ph": "C", "pid": 1, "ts": us(t), "args": {"B/cycle": v}}));
        }
    }
    serde_json::to_string(&serde_json::json!({"traceEvents": list, "displayTimeUnit": "ns"})).unwrap_or_default()
}

/// The counters of one region of a program (a compiled layer), from a trace.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegionReport {
    /// Region name (layer).
    pub name: String,
    /// First busy cycle of any of its instructions.
    pub start: u64,
    /// Last busy cycle, exclusive.
    pub end: u64,
    /// Cycles from the end of the regions before it to its own end (0 when it ends
    /// earlier): its share of the run when regions overlap. These sum to the run's
    /// last busy cycle.
    pub attributed: u64,
    /// Its counters, timing and energy, as if it were a run of `end − start` cycles.
    pub report: Report,
}

/// Splits a traced run into regions: `owner[j]` is the index in `names` of the region
/// instruction `j` belongs to (instructions beyond `owner` belong to none).
pub fn regions(
    program: &npu_isa::Program,
    hw: &HwConfig,
    trace: &[TraceEvent],
    names: &[String],
    owner: &[usize],
) -> Vec<RegionReport> {
    let mut counters: Vec<(Counters, u64, u64)> = vec![(Counters::default(), u64::MAX, 0); names.len()];
    for ev in trace {
        let Some(slot) = owner.get(ev.index).and_then(|&r| counters.get_mut(r)) else { continue };
        let Ok(work) = crate::exec::plan(hw, &program.code[ev.index].op) else { continue };
        slot.1 = slot.1.min(ev.start);
        slot.2 = slot.2.max(ev.end);
        slot.0.add(ev.unit as usize, &work, ev.end - ev.start, 0, hw);
        if let Some(m) = &work.mac {
            slot.0.gate(m.mode, ev.gated);
        }
    }
    let mut done = 0u64;
    names
        .iter()
        .zip(counters)
        .map(|(name, (mut c, start, end))| {
            let start = if start == u64::MAX { 0 } else { start };
            c.total_cycles = end.saturating_sub(start);
            let attributed = end.saturating_sub(done);
            done = done.max(end);
            RegionReport { name: name.clone(), start, end, attributed, report: c.report(hw, &[]) }
        })
        .collect()
}
