//! The hybrid quantum/classical linear-solver scheduler — the paper's contribution (Q-Newton, Li, Liu, Wang & Chen,
//! arXiv 2405.00252; the reference code has no scheduler, so the rule follows the abstracts).
//!
//! For every layer block and step: estimate κ of the regularised, pruned block (Lanczos, [`crate::condition`]),
//! read its row sparsity `d` ([`crate::sparsify`]), model the quantum time `T_Q = gate_time × queries(d, κ, ε)`
//! ([`crate::cost`]), measure the classical time `T_C` of the dense LU solve, and route the block to the cheaper
//! solver. Blocks whose κ exceeds `kappa_limit` (10⁴ in the paper) always go classical: the QLSA's cost grows
//! linearly in κ and its accuracy guarantee degrades.
use crate::cost;
use serde::Serialize;

/// Where a block's linear system is solved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Route {
    /// Quantum linear-system algorithm (time modelled, solution computed classically).
    Quantum,
    /// Classical dense LU (time measured).
    Classical,
}

/// Scheduler settings.
#[derive(Debug, Clone, Serialize)]
pub struct SchedulerConfig {
    /// Seconds per block-encoding query (1e-7 today, 1e-18 in the paper's "attosecond" scenario).
    pub gate_time: f64,
    /// Blocks with κ above this go classical regardless of cost.
    pub kappa_limit: f64,
    /// Target accuracy ε of the quantum solver.
    pub qlsa_eps: f64,
    /// Lanczos steps for the κ estimate.
    pub lanczos_steps: usize,
}

/// Today's gate time scale, seconds per query (the default).
pub const TODAY_GATE_TIME: f64 = 1e-7;
/// The paper's "attosecond" future gate time, seconds per query.
pub const FUTURE_GATE_TIME: f64 = 1e-18;
/// Default κ above which a block always goes classical (the paper's 10⁴).
pub const DEFAULT_KAPPA_LIMIT: f64 = 1e4;
/// Default QLSA target accuracy ε.
pub const DEFAULT_QLSA_EPS: f64 = 1e-2;
/// Default Lanczos steps for the κ estimate.
pub const DEFAULT_LANCZOS_STEPS: usize = 30;

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            gate_time: TODAY_GATE_TIME,
            kappa_limit: DEFAULT_KAPPA_LIMIT,
            qlsa_eps: DEFAULT_QLSA_EPS,
            lanczos_steps: DEFAULT_LANCZOS_STEPS,
        }
    }
}

/// One routing decision with the numbers behind it.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Decision {
    /// Chosen solver.
    pub route: Route,
    /// Modelled quantum time, seconds.
    pub t_quantum: f64,
    /// Classical time (measured), seconds.
    pub t_classical: f64,
    /// True when the κ limit forced the classical route.
    pub kappa_limited: bool,
}

impl Decision {
    /// The time charged for this block: `T_Q` (modelled) or `T_C` (measured).
    pub fn charged(&self) -> f64 {
        match self.route {
            Route::Quantum => self.t_quantum,
            Route::Classical => self.t_classical,
        }
    }
}

/// Routes one block given its κ estimate, row sparsity `d` and classical solve time.
pub fn decide(cfg: &SchedulerConfig, kappa: f64, d: usize, t_classical: f64) -> Decision {
    let t_quantum = cost::quantum_time(cfg.gate_time, d, kappa, cfg.qlsa_eps);
    // NaN κ counts as over the limit.
    let kappa_limited = kappa.is_nan() || kappa > cfg.kappa_limit;
    let route = if !kappa_limited && t_quantum < t_classical {
        Route::Quantum
    } else {
        Route::Classical
    };
    Decision {
        route,
        t_quantum,
        t_classical,
        kappa_limited,
    }
}

/// The gate time at which the two cost curves cross for this block (`T_Q = T_C`).
pub fn crossover_gate_time(cfg: &SchedulerConfig, kappa: f64, d: usize, t_classical: f64) -> f64 {
    t_classical / cost::qlsa_queries(d, kappa, cfg.qlsa_eps)
}
