//! The Newton step on one layer block and the first-order step rules (Q-Newton, arXiv 2405.00252, and its reference code).
//!
//! `Δθ = (H + λI)⁻¹·g` with `λ = ε·max|H_ij| + damping` (the reference's `normalization_epsilon`), clipped to
//! `±clip` as the reference's JAX path does; `Δθ` is then fed to SGD with momentum or Adam in place of the gradient.
use crate::error::{QnError, Result};
use faer::linalg::solvers::Solve;
use faer::Mat;
use serde::Serialize;

/// How a (preconditioned) direction becomes a parameter update.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "rule", rename_all = "lowercase")]
pub enum StepRule {
    /// `θ ← θ − lr·v`, `v ← μ·v + Δ`.
    Sgd {
        /// Learning rate.
        lr: f64,
        /// Heavy-ball momentum.
        momentum: f64,
    },
    /// Adam (β₁ = 0.9, β₂ = 0.999, ε = 1e-8) on Δ.
    Adam {
        /// Learning rate.
        lr: f64,
    },
}

/// Which step rule, without its hyper-parameters (what `--newton-rule` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleKind {
    /// SGD with heavy-ball momentum.
    Sgd,
    /// Adam.
    Adam,
}

named_enum!(RuleKind, "step rule", {
    RuleKind::Sgd => "sgd",
    RuleKind::Adam => "adam",
});

impl StepRule {
    /// The rule of `kind` with learning rate `lr` (SGD gets [`crate::train::DEFAULT_MOMENTUM`]).
    pub fn new(kind: RuleKind, lr: f64) -> Self {
        match kind {
            RuleKind::Sgd => StepRule::Sgd {
                lr,
                momentum: crate::train::DEFAULT_MOMENTUM,
            },
            RuleKind::Adam => StepRule::Adam { lr },
        }
    }
    /// The learning rate.
    pub fn lr(&self) -> f64 {
        match self {
            StepRule::Sgd { lr, .. } | StepRule::Adam { lr } => *lr,
        }
    }
    /// The same rule with another learning rate.
    pub fn with_lr(self, lr: f64) -> Self {
        match self {
            StepRule::Sgd { momentum, .. } => StepRule::Sgd { lr, momentum },
            StepRule::Adam { .. } => StepRule::Adam { lr },
        }
    }
}

/// Default ε in `λ = ε·max|H_ij| + damping`.
pub const DEFAULT_REG_EPS: f64 = 0.1;
/// Default fraction `r` of entries kept per row when Q-Newton prunes a block. 0.5, not 0.25: with compensated
/// pruning every dropped magnitude lands on the diagonal, and at r = 0.25 that extra damping cost 4–9 points of test
/// accuracy after 40 steps on digits, while r = 0.5 matched Newton on 3 seeds (crate README, "Pruning sweep").
pub const DEFAULT_SPARSITY: f64 = 0.5;

/// Optimiser state for one parameter block.
#[derive(Debug, Clone)]
pub struct StepState {
    m: Vec<f64>,
    v: Vec<f64>,
    t: u32,
}

impl StepState {
    /// Zero state for `n` parameters.
    pub fn new(n: usize) -> Self {
        StepState {
            m: vec![0.0; n],
            v: vec![0.0; n],
            t: 0,
        }
    }

    /// Turns a direction into the update to subtract from the parameters.
    pub fn update(&mut self, rule: StepRule, dir: &[f64]) -> Vec<f64> {
        self.t += 1;
        match rule {
            StepRule::Sgd { lr, momentum } => self
                .m
                .iter_mut()
                .zip(dir)
                .map(|(m, d)| {
                    *m = momentum * *m + d;
                    lr * *m
                })
                .collect(),
            StepRule::Adam { lr } => {
                let (b1, b2) = (0.9f64, 0.999f64);
                let c1 = 1.0 - b1.powi(self.t as i32);
                let c2 = 1.0 - b2.powi(self.t as i32);
                self.m
                    .iter_mut()
                    .zip(self.v.iter_mut())
                    .zip(dir)
                    .map(|((m, v), d)| {
                        *m = b1 * *m + (1.0 - b1) * d;
                        *v = b2 * *v + (1.0 - b2) * d * d;
                        lr * (*m / c1) / ((*v / c2).sqrt() + 1e-8)
                    })
                    .collect()
            }
        }
    }
}

/// Newton-step settings.
#[derive(Debug, Clone, Serialize)]
pub struct NewtonConfig {
    /// ε in `λ = ε·max|H_ij| + damping`.
    pub reg_eps: f64,
    /// Absolute damping added to λ.
    pub damping: f64,
    /// Fraction `r` of entries kept per row (Q-Newton only; 1 = dense).
    pub sparsity_ratio: f64,
    /// How pruning masks are symmetrised.
    pub symmetrize: crate::sparsify::Symmetrize,
    /// Move pruned magnitudes onto the diagonal so the pruned block stays PSD (see [`crate::sparsify`]).
    pub compensate: bool,
    /// Clip each component of Δθ to `±clip`.
    pub clip: f64,
}

impl Default for NewtonConfig {
    fn default() -> Self {
        NewtonConfig {
            reg_eps: DEFAULT_REG_EPS,
            damping: 1e-6,
            sparsity_ratio: DEFAULT_SPARSITY,
            symmetrize: crate::sparsify::Symmetrize::Intersection,
            compensate: true,
            clip: 100.0,
        }
    }
}

/// `H + λI` with `λ = ε·max|H_ij| + damping`, in place; returns λ.
pub fn regularize_in_place(a: &mut Mat<f64>, cfg: &NewtonConfig) -> f64 {
    let lambda = cfg.reg_eps * a.norm_max() + cfg.damping;
    for i in 0..a.nrows() {
        a[(i, i)] += lambda;
    }
    lambda
}

/// `H + λI` with `λ = ε·max|H_ij| + damping`; returns the matrix and λ.
pub fn regularize(h: &Mat<f64>, cfg: &NewtonConfig) -> (Mat<f64>, f64) {
    let lambda = cfg.reg_eps * h.norm_max() + cfg.damping;
    let mut a = h.clone();
    for i in 0..a.nrows() {
        a[(i, i)] += lambda;
    }
    (a, lambda)
}

/// Solves `A·x = g` with faer's partially pivoted LU; also returns `ln|det A|` from the same factorisation.
pub fn solve_lu(a: &Mat<f64>, g: &[f64]) -> Result<(Vec<f64>, f64)> {
    let n = a.nrows();
    if g.len() != n {
        return Err(QnError::Linalg(format!(
            "right-hand side has {} entries for a {n}×{n} block",
            g.len()
        )));
    }
    let lu = a.partial_piv_lu();
    let rhs = Mat::from_fn(n, 1, |i, _| g[i]);
    let x = lu.solve(&rhs);
    let sol: Vec<f64> = (0..n).map(|i| x[(i, 0)]).collect();
    if sol.iter().any(|v| !v.is_finite()) {
        return Err(QnError::Linalg(
            "LU solve produced non-finite values (singular block?)".into(),
        ));
    }
    let u = lu.U();
    let log_det = (0..n).map(|i| u[(i, i)].abs().ln()).sum();
    Ok((sol, log_det))
}

/// Clips every component to `±clip`.
pub fn clip(dir: &mut [f64], clip: f64) {
    dir.iter_mut().for_each(|d| *d = d.clamp(-clip, clip));
}
