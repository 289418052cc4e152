//! Optimizers and learning-rate schedules.

use serde::{Deserialize, Serialize};

/// Which optimizer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum OptimizerKind {
    /// SGD with (heavy-ball) momentum 0.9; weight decay added to the gradient.
    SgdMomentum,
    /// AdamW (β₁ 0.9, β₂ 0.999, ε 1e-8) with decoupled weight decay.
    AdamW,
}

/// Learning-rate schedule over the whole run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Schedule {
    /// Linear warm-up, then cosine decay to zero.
    Cosine {
        /// Steps of linear warm-up.
        warmup_steps: usize,
    },
    /// One cycle: linear rise to the peak over the first 30% of steps, cosine decay to
    /// 1/1000 of it afterwards.
    OneCycle,
    /// Constant.
    Constant,
}

impl Schedule {
    /// The learning rate at `step` of `total` for peak `lr`.
    pub fn lr(&self, lr: f32, step: usize, total: usize) -> f32 {
        let total = total.max(1) as f32;
        let t = step as f32;
        match *self {
            Schedule::Constant => lr,
            Schedule::Cosine { warmup_steps } => {
                if step < warmup_steps {
                    lr * (t + 1.0) / warmup_steps as f32
                } else {
                    let p = ((t - warmup_steps as f32) / (total - warmup_steps as f32).max(1.0)).min(1.0);
                    0.5 * lr * (1.0 + (std::f32::consts::PI * p).cos())
                }
            }
            Schedule::OneCycle => {
                let up = 0.3 * total;
                if t < up {
                    lr * (0.04 + 0.96 * t / up)
                } else {
                    let p = ((t - up) / (total - up).max(1.0)).min(1.0);
                    let lo = lr / 1000.0;
                    lo + 0.5 * (lr - lo) * (1.0 + (std::f32::consts::PI * p).cos())
                }
            }
        }
    }
}

/// Optimizer state for a list of parameter tensors.
#[derive(Debug, Clone)]
pub struct Optimizer {
    kind: OptimizerKind,
    m: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    t: i32,
}

impl Optimizer {
    /// State for parameters of the given sizes.
    pub fn new(kind: OptimizerKind, sizes: &[usize]) -> Self {
        let zeros = || sizes.iter().map(|s| vec![0f32; *s]).collect::<Vec<_>>();
        Optimizer { kind, m: zeros(), v: if kind == OptimizerKind::AdamW { zeros() } else { Vec::new() }, t: 1 }
    }

    /// Updates parameter `k` in place from its gradient.
    pub fn step(&mut self, k: usize, p: &mut [f32], g: &[f32], lr: f32, wd: f32) {
        match self.kind {
            OptimizerKind::SgdMomentum => {
                for ((pv, gv), mv) in p.iter_mut().zip(g).zip(self.m[k].iter_mut()) {
                    *mv = 0.9 * *mv + gv + wd * *pv;
                    *pv -= lr * *mv;
                }
            }
            OptimizerKind::AdamW => {
                let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
                let c1 = 1.0 - b1.powi(self.t);
                let c2 = 1.0 - b2.powi(self.t);
                for (((pv, gv), mv), vv) in p.iter_mut().zip(g).zip(self.m[k].iter_mut()).zip(self.v[k].iter_mut()) {
                    *mv = b1 * *mv + (1.0 - b1) * gv;
                    *vv = b2 * *vv + (1.0 - b2) * gv * gv;
                    let update = (*mv / c1) / ((*vv / c2).sqrt() + eps);
                    *pv -= lr * (update + wd * *pv);
                }
            }
        }
    }

    /// Ends a step (advances Adam's bias correction).
    pub fn advance(&mut self) {
        self.t = self.t.saturating_add(1);
    }
}
