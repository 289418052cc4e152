//! The engine: fetch and dispatch, dependency tokens, and the order in which
//! instructions take effect.
//!
//! Functional effects are applied in one canonical order that depends only on the
//! program: repeatedly, the earliest-dispatched instruction at the head of a unit queue
//! whose tokens are all available. Every edge that the timing model uses — program
//! order within a unit, tokens, fetch order, queue capacity — is respected by that
//! order, so when an instruction executes, the times of everything it depends on are
//! already known and its own start and end follow from them. Functional results thus
//! never depend on the timing model, and a timing-only run (which skips [`execute`])
//! produces exactly the same counters.

use std::collections::VecDeque;

use npu_hw::HwConfig;
use npu_isa::{Instr, Op, Program, Unit};

use crate::error::{Result, Trap, TrapKind};
use crate::exec::{execute, plan, Work};
use crate::host::{HostRuntime, NoHost};
use crate::report::{Counters, Report, Stall, TraceEvent};
use crate::state::Machine;
use crate::timing::cost;

/// How to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOptions {
    /// Skip the arithmetic; produce the same counters (data-dependent traps are not detected).
    pub timing_only: bool,
    /// Record one event per executed instruction, for a trace file.
    pub trace: bool,
    /// Stop with a trap after this many fetched instructions.
    pub max_instructions: u64,
    /// Stop with a trap once the simulated clock passes this many cycles.
    pub max_cycles: u64,
    /// Stop with a trap once the run has taken this long in wall-clock time (checked
    /// every [`TIME_CHECK_INTERVAL`] instructions). Unlike the other limits, where such
    /// a run stops depends on the host's speed; it is a guard, not a measurement.
    pub time_limit: Option<std::time::Duration>,
}

/// How many executed instructions pass between two checks of [`RunOptions::time_limit`].
pub const TIME_CHECK_INTERVAL: u64 = 4096;

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            timing_only: false,
            trace: false,
            max_instructions: 1_000_000_000,
            max_cycles: u64::MAX,
            time_limit: None,
        }
    }
}

/// The result of a run: the report, the trap that stopped it early (if any), the final
/// machine state and the trace.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Counters, timing and energy up to the end (or the trap).
    pub report: Report,
    /// Why the run stopped early; `None` if it ran to completion.
    pub trap: Option<Trap>,
    /// Memory contents at the end.
    pub machine: Machine,
    /// One event per executed instruction, if requested.
    pub trace: Vec<TraceEvent>,
}

struct Fetch<'p> {
    code: &'p [Instr],
    pc: usize,
    loops: Vec<(usize, usize, u32)>, // (loop instruction index, body start, iterations left)
    fetched: u64,
    limit: u64,
}

fn ctrl_trap(code: &[Instr], index: usize, kind: TrapKind) -> Trap {
    Trap { index, mnemonic: code[index].op.mnemonic(), unit: None, seq: None, kind }
}

impl Fetch<'_> {
    /// Runs control instructions up to the next unit instruction and returns its index;
    /// `None` at `halt` or the end. `ctrl` counts the control instructions fetched.
    fn next(&mut self, ctrl: &mut u64) -> Result<Option<usize>, Trap> {
        loop {
            let Some(instr) = self.code.get(self.pc) else {
                if let Some(&(at, _, _)) = self.loops.last() {
                    return Err(ctrl_trap(self.code, at, TrapKind::Control("`loop` is never closed".into())));
                }
                return Ok(None);
            };
            self.fetched += 1;
            if self.fetched > self.limit {
                return Err(ctrl_trap(self.code, self.pc, TrapKind::InstructionLimit(self.limit)));
            }
            match &instr.op {
                Op::Loop(l) => {
                    if self.loops.len() == npu_isa::asm::MAX_LOOP_DEPTH {
                        return Err(ctrl_trap(
                            self.code,
                            self.pc,
                            TrapKind::Control(format!("loops nest deeper than {}", npu_isa::asm::MAX_LOOP_DEPTH)),
                        ));
                    }
                    self.loops.push((self.pc, self.pc + 1, l.n));
                    self.pc += 1;
                }
                Op::EndLoop(_) => {
                    let Some(top) = self.loops.last_mut() else {
                        return Err(ctrl_trap(
                            self.code,
                            self.pc,
                            TrapKind::Control("`endloop` without `loop`".into()),
                        ));
                    };
                    top.2 -= 1;
                    if top.2 > 0 {
                        self.pc = top.1;
                    } else {
                        self.loops.pop();
                        self.pc += 1;
                    }
                }
                Op::Halt(_) => {
                    *ctrl += 1;
                    return Ok(None);
                }
                Op::Nop(_) => self.pc += 1,
                _ => {
                    let at = self.pc;
                    self.pc += 1;
                    return Ok(Some(at));
                }
            }
            *ctrl += 1;
        }
    }
}

/// The instruction indices `program` dispatches to the units, in dispatch order (the
/// trace's `seq` numbers), up to `limit` of them (a longer stream is cut there).
pub(crate) fn dispatch_stream(program: &Program, limit: u64) -> Result<Vec<usize>, Trap> {
    let max = RunOptions::default().max_instructions;
    let mut f = Fetch { code: &program.code, pc: 0, loops: Vec::new(), fetched: 0, limit: max };
    let mut out = Vec::new();
    let mut ctrl = 0;
    while (out.len() as u64) < limit {
        match f.next(&mut ctrl)? {
            Some(i) => out.push(i),
            None => break,
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy)]
struct Dyn {
    seq: u64,
    index: usize,
    dispatch: u64,
}

/// One external memory port: busy intervals, kept sorted.
#[derive(Default)]
struct Port {
    busy: Vec<(u64, u64)>,
}

impl Port {
    /// Earliest start at or after `ready` for a `len`-cycle transfer; reserves it.
    fn reserve(&mut self, ready: u64, len: u64) -> u64 {
        if len == 0 {
            return ready;
        }
        let mut at = ready;
        for &(s, e) in &self.busy {
            if e <= at {
                continue;
            }
            if s >= at + len {
                break;
            }
            at = at.max(e);
        }
        let pos = self.busy.partition_point(|&(s, _)| s < at);
        self.busy.insert(pos, (at, at + len));
        at
    }
    /// Forgets intervals that end before `horizon` (no request can start earlier).
    fn prune(&mut self, horizon: u64) {
        self.busy.retain(|&(_, e)| e > horizon);
    }
}

use crate::report::UNITS;

/// Runs `program` on `hw`, without a host runtime (a `host` instruction traps).
///
/// Returns an error only if the program's data does not fit the machine; everything
/// that goes wrong while running is a [`Trap`] in the [`Outcome`].
pub fn run(program: &Program, hw: &HwConfig, opts: &RunOptions) -> Result<Outcome> {
    run_hosted(program, hw, opts, &NoHost)
}

/// [`run`] with `host` running the operations of `host` instructions.
pub fn run_hosted(program: &Program, hw: &HwConfig, opts: &RunOptions, host: &dyn HostRuntime) -> Result<Outcome> {
    let machine = Machine::new(hw, program)?;
    let mut e = Engine::new(program, hw, opts, machine, host);
    let trap = e.run().err();
    if let Some(t) = &trap {
        tracing::info!(%t, "run trapped");
    }
    e.counters.total_cycles = e.counters.total_cycles.max(e.fetch_clock);
    let report = e.counters.report(hw, &e.leftover_tokens());
    Ok(Outcome { report, trap, machine: e.machine, trace: e.trace })
}

struct Engine<'a> {
    code: &'a [Instr],
    hw: &'a HwConfig,
    opts: &'a RunOptions,
    host: &'a dyn HostRuntime,
    machine: Machine,
    fetch: Fetch<'a>,
    pending: Option<usize>,
    fetch_clock: u64,
    seq: u64,
    queues: [VecDeque<Dyn>; UNITS],
    dispatched: [u64; UNITS],
    starts: [VecDeque<u64>; UNITS],
    starts_base: [u64; UNITS],
    unit_free: [u64; UNITS],
    last_end: [u64; UNITS],
    inflight: [VecDeque<u64>; UNITS],
    tokens: [[VecDeque<u64>; UNITS]; UNITS],
    ports: [Port; 2],
    counters: Counters,
    trace: Vec<TraceEvent>,
    works: Vec<Option<Work>>,
    executed: u64,
    started: std::time::Instant,
}

impl<'a> Engine<'a> {
    fn new(
        program: &'a Program,
        hw: &'a HwConfig,
        opts: &'a RunOptions,
        machine: Machine,
        host: &'a dyn HostRuntime,
    ) -> Self {
        Engine {
            code: &program.code,
            hw,
            opts,
            host,
            machine,
            fetch: Fetch { code: &program.code, pc: 0, loops: Vec::new(), fetched: 0, limit: opts.max_instructions },
            pending: None,
            fetch_clock: 0,
            seq: 0,
            queues: Default::default(),
            dispatched: [0; UNITS],
            starts: Default::default(),
            starts_base: [0; UNITS],
            unit_free: [0; UNITS],
            last_end: [0; UNITS],
            inflight: Default::default(),
            tokens: Default::default(),
            ports: Default::default(),
            counters: Counters::default(),
            trace: Vec::new(),
            works: vec![None; program.code.len()],
            executed: 0,
            started: std::time::Instant::now(),
        }
    }

    fn trap(&self, d: &Dyn, kind: TrapKind) -> Trap {
        let instr = &self.code[d.index];
        Trap { index: d.index, mnemonic: instr.op.mnemonic(), unit: instr.op.unit(), seq: Some(d.seq), kind }
    }

    fn run(&mut self) -> Result<(), Trap> {
        let depth = self.hw.queue_depth as usize;
        loop {
            // Dispatch in program order while the next instruction's queue has room.
            loop {
                if self.pending.is_none() {
                    let mut ctrl = 0;
                    self.pending = self.fetch.next(&mut ctrl)?;
                    self.fetch_clock += ctrl;
                    self.counters.control += ctrl;
                }
                let Some(index) = self.pending else { break };
                let Some(unit) = self.code[index].op.unit() else { break };
                if unit == Unit::Host {
                    // A barrier: everything dispatched before it completes first.
                    if self.queues.iter().any(|q| !q.is_empty()) {
                        break;
                    }
                    let d = Dyn { seq: self.seq, index, dispatch: self.fetch_clock };
                    self.seq += 1;
                    self.pending = None;
                    self.host_step(d)?;
                    self.check_budget(&d)?;
                    continue;
                }
                let u = unit as usize;
                if self.queues[u].len() >= depth {
                    break;
                }
                let k = self.dispatched[u];
                // The slot frees when instruction k − depth of this unit starts; it has
                // (the queue has room), and its start time is kept (see below).
                let slot = match k.checked_sub(depth as u64) {
                    Some(j) => j
                        .checked_sub(self.starts_base[u])
                        .and_then(|i| self.starts[u].get(i as usize).copied())
                        .unwrap_or(self.fetch_clock),
                    None => 0,
                };
                let t = self.fetch_clock.max(slot);
                self.fetch_clock = t + 1;
                self.queues[u].push_back(Dyn { seq: self.seq, index, dispatch: t });
                self.seq += 1;
                self.dispatched[u] += 1;
                self.pending = None;
                // Keep only the start times a later dispatch can still need: the next
                // dispatch of this unit needs instruction `dispatched − depth`.
                let keep_from = self.dispatched[u].saturating_sub(depth as u64);
                while self.starts_base[u] < keep_from && !self.starts[u].is_empty() {
                    self.starts[u].pop_front();
                    self.starts_base[u] += 1;
                }
            }
            // Execute the earliest-dispatched ready head.
            let mut best: Option<(u64, usize)> = None;
            for u in 0..UNITS {
                if let Some(h) = self.queues[u].front() {
                    let wait = self.code[h.index].wait;
                    let ready = wait.iter().all(|s| !self.tokens[s as usize][u].is_empty());
                    if ready && best.is_none_or(|(seq, _)| h.seq < seq) {
                        best = Some((h.seq, u));
                    }
                }
            }
            match best {
                Some((_, u)) => {
                    let d = self.queues[u].pop_front().unwrap_or(Dyn { seq: 0, index: 0, dispatch: 0 });
                    self.step(u, d)?;
                    self.check_budget(&d)?;
                }
                None => {
                    if self.queues.iter().all(VecDeque::is_empty) {
                        return Ok(());
                    }
                    return Err(self.deadlock());
                }
            }
        }
    }

    /// The cycle and wall-clock budgets, after instruction `d` has run.
    fn check_budget(&mut self, d: &Dyn) -> Result<(), Trap> {
        let now = self.last_end.iter().copied().max().unwrap_or(0).max(self.fetch_clock);
        if now > self.opts.max_cycles {
            return Err(self.trap(d, TrapKind::CycleLimit(self.opts.max_cycles)));
        }
        self.executed += 1;
        if let Some(limit) = self.opts.time_limit {
            if self.executed.is_multiple_of(TIME_CHECK_INTERVAL) && self.started.elapsed() > limit {
                return Err(self.trap(d, TrapKind::TimeLimit(limit)));
            }
        }
        Ok(())
    }

    fn deadlock(&self) -> Trap {
        let mut heads: Vec<Dyn> = self.queues.iter().filter_map(|q| q.front().copied()).collect();
        heads.sort_by_key(|d| d.seq);
        let parts: Vec<String> = heads
            .iter()
            .map(|d| {
                let instr = &self.code[d.index];
                let missing: Vec<&str> = instr
                    .wait
                    .iter()
                    .filter(|s| self.tokens[*s as usize][instr.op.unit().map_or(0, |u| u as usize)].is_empty())
                    .map(Unit::name)
                    .collect();
                format!(
                    "instruction {} (`{}` on {}) waits for a token from {}",
                    d.index,
                    instr.op.mnemonic(),
                    instr.op.unit().map_or("?", Unit::name),
                    missing.join(" and ")
                )
            })
            .collect();
        let first = heads[0];
        self.trap(&first, TrapKind::Deadlock(format!("no unit can proceed: {}", parts.join("; "))))
    }

    fn step(&mut self, u: usize, d: Dyn) -> Result<(), Trap> {
        let instr = self.code[d.index];
        let work = match &self.works[d.index] {
            Some(w) => w.clone(),
            None => {
                let w = plan(self.hw, &instr.op).map_err(|k| self.trap(&d, k))?;
                self.works[d.index] = Some(w.clone());
                w
            }
        };
        // Timing-only runs skip the arithmetic but still copy data in (DMA-in), so the
        // weight buffer holds the weights a zero-gating array's energy depends on.
        let mut gated = 0;
        if !self.opts.timing_only || matches!(instr.op, Op::Ld(_) | Op::Ldw(_) | Op::Ldz(_)) {
            execute(&mut self.machine, &instr.op).map_err(|k| self.trap(&d, k))?;
        }
        if let Some(m) = &work.mac {
            gated = crate::exec::gated_macs(&self.machine, self.hw, &instr.op);
            self.counters.gate(m.mode, gated);
        }
        let c = cost(self.hw, &work);
        // A vector unit in the MAC unit's pipeline waits for it, and it for the vector unit.
        let partner = match Unit::ALL[u] {
            Unit::Mac if self.hw.vector.shares_mac_pipeline => Some(Unit::Vector as usize),
            Unit::Vector if self.hw.vector.shares_mac_pipeline => Some(Unit::Mac as usize),
            _ => None,
        };
        let free = partner.map_or(self.unit_free[u], |p| self.unit_free[u].max(self.unit_free[p]));
        let mut ready = free.max(d.dispatch);
        let mut cause = (d.dispatch > free).then_some(Stall::Fetch);
        for s in instr.wait.iter() {
            let t = self.tokens[s as usize][u].pop_front().unwrap_or(0);
            if t > ready {
                ready = t;
                cause = Some(if matches!(s, Unit::Ld | Unit::Ldw | Unit::St) { Stall::Dma } else { Stall::Dependency });
            }
        }
        let mut start = ready;
        if let Some(dma) = &work.dma {
            // A free channel, then the port.
            let channels = match Unit::ALL[u] {
                Unit::Ld | Unit::Ldw => self.hw.dma.in_channels,
                _ => self.hw.dma.out_channels,
            } as usize;
            while self.inflight[u].len() >= channels {
                // The channel that frees first: the oldest transfer, or with concurrent
                // channels (which complete out of order) the earliest to end.
                let k = if self.hw.dma.concurrent {
                    (0..self.inflight[u].len()).min_by_key(|&i| self.inflight[u][i]).unwrap_or(0)
                } else {
                    0
                };
                start = start.max(self.inflight[u].remove(k).unwrap_or(0));
            }
            let p = dma.ext as usize;
            start = self.ports[p].reserve(start, c.port_cycles);
        }
        // Units complete in order, even when DMA channels overlap — except concurrent DMA
        // channels, each of which completes (and signals its token) when its transfer does.
        let concurrent = self.hw.dma.concurrent && work.dma.is_some();
        let end = if concurrent { start + c.cycles } else { (start + c.cycles).max(self.last_end[u]) };
        if let Some(cause) = cause {
            self.counters.stall(u, cause, ready - free);
        }
        self.counters.stall(u, Stall::Port, start - ready);
        let busy = end.saturating_sub(start.max(self.last_end[u]));
        self.last_end[u] = self.last_end[u].max(end);
        self.unit_free[u] = if work.dma.is_some() {
            self.inflight[u].push_back(end);
            let channels = match Unit::ALL[u] {
                Unit::Ld | Unit::Ldw => self.hw.dma.in_channels,
                _ => self.hw.dma.out_channels,
            } as usize;
            // One transfer at a time (channels hide latency), or concurrent channels that
            // only the ports and the channel count hold back.
            let issued = if self.hw.dma.concurrent { start + 1 } else { start + c.cycles - c.latency };
            if self.inflight[u].len() >= channels {
                let first_free = if self.hw.dma.concurrent {
                    self.inflight[u].iter().copied().min()
                } else {
                    self.inflight[u].front().copied()
                };
                issued.max(first_free.unwrap_or(0))
            } else {
                issued
            }
        } else {
            end
        };
        if let Some(p) = partner {
            self.unit_free[p] = self.unit_free[p].max(end);
        }
        if work.dma.is_some() {
            let horizon = self.port_horizon();
            for port in &mut self.ports {
                port.prune(horizon);
            }
        }
        self.starts[u].push_back(start);
        for t in instr.signal.iter() {
            self.tokens[u][t as usize].push_back(end);
        }
        self.counters.add(u, &work, busy, end.max(self.fetch_clock), self.hw);
        if self.opts.trace {
            self.trace.push(TraceEvent {
                unit: Unit::ALL[u],
                index: d.index,
                seq: d.seq,
                mnemonic: instr.op.mnemonic(),
                start,
                end,
                gated,
            });
        }
        Ok(())
    }

    /// No port request from now on can start before this cycle: a DMA unit's next
    /// transfer starts at or after the unit frees, and one not yet dispatched also at or
    /// after the fetch clock (dispatch times never decrease). A unit that has nothing
    /// queued is bounded by both — without the fetch clock, a run of loads and no store
    /// would keep every load's interval (the store unit frees at cycle 0) and reserving
    /// a port would be quadratic in the run's length.
    fn port_horizon(&self) -> u64 {
        [Unit::Ld, Unit::Ldw, Unit::St]
            .into_iter()
            .map(|unit| {
                let u = unit as usize;
                let queued = self.queues[u].front().map(|d| d.dispatch);
                let next = queued.unwrap_or(self.fetch_clock);
                self.unit_free[u].max(next)
            })
            .min()
            .unwrap_or(0)
    }

    /// A `host` call, once every earlier instruction has completed: the host runtime
    /// runs it (unless timing only) and the NPU fetches nothing until it ends.
    fn host_step(&mut self, d: Dyn) -> Result<(), Trap> {
        let instr = self.code[d.index];
        let work = plan(self.hw, &instr.op).map_err(|k| self.trap(&d, k))?;
        if !self.opts.timing_only {
            if let Op::Host(h) = &instr.op {
                self.host.call(h, &mut self.machine).map_err(|m| self.trap(&d, TrapKind::Host(m)))?;
            }
        }
        let c = cost(self.hw, &work);
        let u = Unit::Host as usize;
        let drained = self.last_end.iter().chain(&self.unit_free).copied().max().unwrap_or(0);
        let start = d.dispatch.max(drained);
        let end = start.saturating_add(c.cycles);
        self.counters.stall(u, Stall::Dependency, start - d.dispatch);
        self.unit_free[u] = end;
        self.last_end[u] = end;
        self.fetch_clock = self.fetch_clock.max(end);
        self.counters.add(u, &work, c.cycles, end, self.hw);
        if self.opts.trace {
            self.trace.push(TraceEvent {
                unit: Unit::Host,
                index: d.index,
                seq: d.seq,
                mnemonic: instr.op.mnemonic(),
                start,
                end,
                gated: 0,
            });
        }
        Ok(())
    }

    fn leftover_tokens(&self) -> Vec<(Unit, Unit, usize)> {
        let mut v = Vec::new();
        for (s, row) in self.tokens.iter().enumerate() {
            for (t, q) in row.iter().enumerate() {
                if !q.is_empty() {
                    v.push((Unit::ALL[s], Unit::ALL[t], q.len()));
                }
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run of `n` one-word loads, with no store.
    fn loads(n: u32) -> Program {
        let src = format!(
            ".data dram 0x0\nx:\n    .byte 1, 2, 3, 4\n.text\n    loop n={n}\n    ld ext=dram src=x loc=act dst=0 elem=4\n    endloop\n    halt\n"
        );
        npu_isa::asm::assemble(&src, "loads.s").expect("assembles")
    }

    #[test]
    fn port_intervals_of_loads_without_a_store_are_pruned() {
        // Regression (#22): the store unit, never used, frees at cycle 0, and the prune
        // horizon was the earlier of the two DMA units' free times — so every load's
        // port interval was kept and each reservation scanned them all (80,000 loads:
        // 3 s; 320,000: 95 s). The fetch clock bounds an idle unit's next transfer.
        let hw = npu_hw::preset("edge-256").expect("preset");
        let program = loads(20_000);
        let opts = RunOptions::default();
        let machine = Machine::new(&hw, &program).expect("fits");
        let mut e = Engine::new(&program, &hw, &opts, machine, &NoHost);
        e.run().expect("runs");
        let kept: usize = e.ports.iter().map(|p| p.busy.len()).sum();
        // At most the transfers still in the queues and channels can overlap the future.
        let bound = (hw.queue_depth + hw.dma.in_channels + hw.dma.out_channels) as usize + 2;
        assert!(kept <= bound, "{kept} port intervals kept after 20,000 loads (bound {bound})");
        assert_eq!(e.counters.report(&hw, &[]).units[Unit::Ld as usize].instructions, 20_000);
    }
}
