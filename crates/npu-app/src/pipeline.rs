//! A quantized model deployed on modeled hardware: compiled once, timed by one traced
//! timing-only run (the simulator's counters do not depend on the data), and evaluated
//! by replaying that run's functional order for every input on reused machines, in
//! parallel — bit-exact, and the same for any number of threads.

use std::sync::atomic::{AtomicUsize, Ordering};

use npu_compile::{Compiled, Roofline};
use npu_data::Dataset;
use npu_hw::HwConfig;
use npu_quant::QModel;

use crate::report::{figures, layer_rows, HwFigures, LayerRow};
use crate::{argmax, Error, Progress, Result};

/// A quantized model compiled for a hardware description.
#[derive(Debug, Clone)]
pub struct Deployment {
    /// The quantized model.
    pub model: QModel,
    /// The hardware.
    pub hw: HwConfig,
    /// The program and where its input and output live.
    pub compiled: Compiled,
}

/// What one inference costs.
pub struct Timing {
    /// The whole run's counters, timing and energy.
    pub report: npu_sim::Report,
    /// Every instruction's start and end (what evaluation replays).
    pub trace: Vec<npu_sim::TraceEvent>,
    /// Per layer, with what bounds it.
    pub layers: Vec<LayerRow>,
    /// The whole run as a row.
    pub total: LayerRow,
    /// Per-frame figures.
    pub figures: HwFigures,
    /// The model's roofline floor on the hardware.
    pub roofline: Roofline,
}

/// Results of running a data set through the simulator.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Inputs run.
    pub images: usize,
    /// Of those, classified as labelled (0 when the data set has no labels).
    pub correct: usize,
    /// Predicted class of each input (argmax of its output integers).
    pub predictions: Vec<usize>,
    /// Every input's outputs, dequantized with the output's scale and zero point
    /// (`images` rows), for metrics other than top-1.
    pub outputs: Vec<f32>,
    /// Host seconds the replays took.
    pub host_seconds: f64,
}

impl Evaluation {
    /// Top-1 accuracy, a fraction.
    pub fn top1(&self) -> f64 {
        self.correct as f64 / self.images.max(1) as f64
    }

    /// The outputs scored under `metric` against `ds` (the samples run) and, for the
    /// metrics that need them, the reference model's outputs or the inputs: the score's
    /// [`Tally`](npu_data::metrics::Tally), whose `value()` is the score.
    pub fn tally(
        &self,
        metric: npu_data::metrics::Metric,
        ds: &Dataset,
        against: npu_data::metrics::Against,
    ) -> Result<npu_data::metrics::Tally> {
        Ok(npu_data::metrics::tally(metric, &self.outputs, self.images, ds, against)?)
    }
}

impl Deployment {
    /// Compiles `model` for `hw`; layers the NPU cannot run go to the host CPU
    /// ([`npu_compile::Fallback::Cpu`], listed in `compiled.host`).
    pub fn new(model: QModel, hw: HwConfig) -> Result<Deployment> {
        let opts = npu_compile::Options { fallback: npu_compile::Fallback::Cpu, ..Default::default() };
        Deployment::with_options(model, hw, &opts)
    }

    /// Compiles `model` for `hw` with `opts` (e.g. [`npu_compile::Fallback::Refuse`] to
    /// require every layer on the NPU, or layers placed on the CPU by name).
    pub fn with_options(model: QModel, hw: HwConfig, opts: &npu_compile::Options) -> Result<Deployment> {
        let compiled = npu_compile::compile_with_options(&model, &hw, opts)?;
        Ok(Deployment { model, hw, compiled })
    }

    /// A compilation read back from files (`program.bin` and its manifest): runs exactly
    /// that program. [`Compiled::from_artifact`] has checked it against `model` and `hw`.
    pub fn from_compiled(model: QModel, hw: HwConfig, compiled: Compiled) -> Deployment {
        Deployment { model, hw, compiled }
    }

    /// Values of one input sample.
    pub fn input_len(&self) -> usize {
        self.model.values[0].shape.iter().product()
    }

    /// One traced timing-only run (on a zero-point input; weights are still copied in,
    /// so a zero-gating array's gated MACs count).
    pub fn timing(&self) -> Result<Timing> {
        let input = vec![self.model.values[0].q.zero_point; self.input_len()];
        self.timing_on(&input)
    }

    /// One traced run on `input` (quantized integers, CHW): timing only, the report is
    /// the same as a full run's.
    pub fn timing_on(&self, input: &[i32]) -> Result<Timing> {
        let opts = npu_sim::RunOptions { timing_only: true, trace: true, ..Default::default() };
        let runtime = crate::LayerRuntime::new(&self.model);
        let o = npu_sim::run_hosted(&self.compiled.with_input(&self.model, input), &self.hw, &opts, &runtime)?;
        if let Some(t) = &o.trap {
            return Err(Error::Trap(t.to_string()));
        }
        let c = &self.compiled;
        let regions = npu_sim::regions(&c.program, &self.hw, &o.trace, &c.layers, &c.owner);
        let (layers, total) = layer_rows(&self.model, &regions, &o.report, &self.hw);
        Ok(Timing {
            figures: figures(&self.model, c, &self.hw, &o.report, 0.0),
            roofline: npu_compile::roofline(&self.model, &self.hw),
            report: o.report,
            trace: o.trace,
            layers,
            total,
        })
    }

    /// The output integers of every quantized input in `qin` (each [`Self::input_len`]
    /// values, CHW), in input order, from the simulator: `timing`'s run replayed on
    /// `jobs` threads (0: the current rayon pool's). `progress` hears of the inputs done
    /// under `label`.
    pub fn outputs(
        &self,
        timing: &Timing,
        qin: &[i32],
        jobs: usize,
        label: &str,
        progress: &dyn Progress,
    ) -> Result<Vec<Vec<i32>>> {
        let per = self.input_len();
        if per == 0 || !qin.len().is_multiple_of(per) {
            return Err(Error::Invalid(format!("{} input values are not whole samples of {per}", qin.len())));
        }
        let input = |r: std::ops::Range<usize>| Ok(std::borrow::Cow::Borrowed(&qin[r.start * per..r.end * per]));
        self.outputs_with(timing, qin.len() / per, &input, jobs, label, progress)
    }

    /// [`Self::outputs`] of every sample of `ds`, converted to the model's integer inputs
    /// ([`QModel::int_inputs`]) by the worker threads, a chunk each, as they replay them.
    pub fn outputs_of(
        &self,
        timing: &Timing,
        ds: &Dataset,
        jobs: usize,
        label: &str,
        progress: &dyn Progress,
    ) -> Result<Vec<Vec<i32>>> {
        // Checked once here: a data set that does not fit fails before any thread starts.
        ds.fit(self.model.input_shape(), &self.model.preprocess)?;
        let input = |r: std::ops::Range<usize>| Ok(std::borrow::Cow::Owned(self.model.int_inputs(ds, r)?));
        self.outputs_with(timing, ds.len(), &input, jobs, label, progress)
    }

    /// The replay of `n` samples whose integer inputs `input` gives a range at a time.
    #[allow(clippy::type_complexity)]
    fn outputs_with<'a>(
        &self,
        timing: &Timing,
        n: usize,
        input: &(dyn Fn(std::ops::Range<usize>) -> Result<std::borrow::Cow<'a, [i32]>> + Sync),
        jobs: usize,
        label: &str,
        progress: &dyn Progress,
    ) -> Result<Vec<Vec<i32>>> {
        let per = self.input_len();
        let c = &self.compiled;
        let out = &self.model.values[self.model.output];
        let replay = npu_sim::Replay::new(&c.program, &self.hw, &timing.trace)?;
        let runtime = crate::LayerRuntime::new(&self.model);
        let done = AtomicUsize::new(0);
        let threads = if jobs == 0 { rayon::current_num_threads() } else { jobs };
        let chunk = n.div_ceil(threads * 8).max(1);
        progress.begin(label, n);
        let work = || {
            use rayon::prelude::*;
            (0..n.div_ceil(chunk))
                .into_par_iter()
                .map(|k| {
                    let mut machine = replay.machine()?;
                    let mut part = Vec::with_capacity(chunk);
                    let first = k * chunk;
                    let qin = input(first..((k + 1) * chunk).min(n))?;
                    for i in first..((k + 1) * chunk).min(n) {
                        let seg = c.input_segment(&self.model, &qin[(i - first) * per..(i - first + 1) * per]);
                        if let Some(t) = replay.run_hosted(&mut machine, &[seg], &runtime)? {
                            return Err(Error::Trap(format!("input {i}: {t}")));
                        }
                        let b = machine
                            .read(c.output.space(), u64::from(c.output.addr), u64::from(c.output.len))
                            .ok_or_else(|| Error::Invalid("the compiled output lies outside its memory".into()))?;
                        part.push(npu_compile::from_hwc_bytes(b, &out.shape, out.q.dtype));
                        let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                        if d.is_multiple_of(32) || d == n {
                            progress.advance(label, d);
                        }
                    }
                    Ok(part)
                })
                .collect::<Vec<Result<Vec<Vec<i32>>>>>()
        };
        // `jobs == 0`: the rayon pool this runs in (a sweep's points share one).
        let parts = if jobs == 0 {
            work()
        } else {
            rayon::ThreadPoolBuilder::new()
                .num_threads(jobs)
                .build()
                .map_err(|e| Error::Invalid(format!("cannot start {jobs} threads: {e}")))?
                .install(work)
        };
        progress.end(label);
        let mut outputs = Vec::with_capacity(n);
        for p in parts {
            outputs.extend(p?);
        }
        Ok(outputs)
    }

    /// Runs every sample of `ds` (checked and converted by [`QModel::int_inputs`]) through
    /// the simulator on `jobs` threads: outputs, predictions and — with labels — top-1.
    pub fn evaluate(&self, timing: &Timing, ds: &Dataset, jobs: usize, progress: &dyn Progress) -> Result<Evaluation> {
        self.evaluate_labelled(timing, ds, jobs, "simulating", progress)
    }

    /// [`Self::evaluate`] with the progress task named `label`.
    pub fn evaluate_labelled(
        &self,
        timing: &Timing,
        ds: &Dataset,
        jobs: usize,
        label: &str,
        progress: &dyn Progress,
    ) -> Result<Evaluation> {
        // The inputs first: `host_seconds` is the replay's time alone (what `npu compare
        // --bench` reports), not the samples' conversion.
        let qin = self.model.int_inputs(ds, 0..ds.len())?;
        let start = std::time::Instant::now();
        let outputs = self.outputs(timing, &qin, jobs, label, progress)?;
        let host_seconds = start.elapsed().as_secs_f64();
        let predictions: Vec<usize> = outputs.iter().map(|o| argmax(o)).collect();
        let correct = match ds.labels() {
            Some(l) => predictions.iter().zip(l).filter(|(p, l)| **p == **l as usize).count(),
            None => 0,
        };
        let q = self.model.values[self.model.output].q;
        let outputs = outputs.iter().flatten().map(|v| q.dequantize(*v)).collect();
        Ok(Evaluation { images: predictions.len(), correct, predictions, outputs, host_seconds })
    }
}
