//! The optimizers of the benchmark, their names and default hyper-parameters.
//!
//! Defaults are constant learning rates from the middle of the reference grids (ZO-Bench, section 3 of the paper
//! notes: ZO full `lr ∈ {1e-4…1e-8}` × `μ ∈ {1e-2, 1e-3, 1e-4}`, ZO LoRA `lr ∈ {5e-3…1e-5}` × `μ ∈ {1e-2, 1e-3}`;
//! MeZO's recommended `μ` per scheme: 1e-3 full, 1e-2 LoRA, 1e-1 prefix). They were not tuned on this model.
use crate::error::{Result, ZoError};
use crate::scheme::Scheme;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// An optimizer of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Optimizer {
    /// MeZO's two-sided SPSA with an SGD update ([`crate::zo_sgd`]).
    ZoSgd,
    /// ZO-SGD updating with `sign(g)·z` ([`crate::zo_sgd`]).
    ZoSgdSign,
    /// ZO-SGD with heavy-ball momentum 0.9 ([`crate::zo_sgd`]).
    ZoSgdMmt,
    /// Conservative ZO-SGD: keeps the best of θ, θ − ηgz, θ + ηgz ([`crate::zo_sgd`]).
    ZoSgdCons,
    /// Adam fed the ZO estimate `g·z` ([`crate::zo_adam`]).
    ZoAdam,
    /// Forward gradient `(∇L·v) v` ([`crate::forward_grad`]).
    ForwardGrad,
    /// First-order SGD through autograd ([`crate::fo`]).
    FoSgd,
    /// First-order Adam through autograd ([`crate::fo`]).
    FoAdam,
}

impl Optimizer {
    /// Every optimizer, in table order.
    pub const ALL: [Optimizer; 8] = [
        Optimizer::ZoSgd,
        Optimizer::ZoSgdSign,
        Optimizer::ZoSgdMmt,
        Optimizer::ZoSgdCons,
        Optimizer::ZoAdam,
        Optimizer::ForwardGrad,
        Optimizer::FoSgd,
        Optimizer::FoAdam,
    ];

    /// The CLI name (`zo-sgd`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Optimizer::ZoSgd => "zo-sgd",
            Optimizer::ZoSgdSign => "zo-sgd-sign",
            Optimizer::ZoSgdMmt => "zo-sgd-mmt",
            Optimizer::ZoSgdCons => "zo-sgd-cons",
            Optimizer::ZoAdam => "zo-adam",
            Optimizer::ForwardGrad => "forward-grad",
            Optimizer::FoSgd => "fo-sgd",
            Optimizer::FoAdam => "fo-adam",
        }
    }

    /// The JSON key (`zo_sgd`, ...).
    pub fn key(self) -> String {
        self.name().replace('-', "_")
    }

    /// Whether it estimates gradients from loss values only (two-point SPSA).
    pub fn is_zo(self) -> bool {
        matches!(
            self,
            Optimizer::ZoSgd
                | Optimizer::ZoSgdSign
                | Optimizer::ZoSgdMmt
                | Optimizer::ZoSgdCons
                | Optimizer::ZoAdam
        )
    }

    /// Whether it runs a backward pass (first-order baselines, and our forward gradient; see
    /// [`crate::forward_grad`]).
    pub fn uses_autograd(self) -> bool {
        !self.is_zo()
    }

    /// Default constant learning rate for `scheme`.
    pub fn default_lr(self, scheme: Scheme) -> f64 {
        use Optimizer::*;
        use Scheme::*;
        match (self, scheme) {
            (ZoSgd | ZoSgdMmt | ZoSgdCons | ForwardGrad, Full) => 1e-6,
            (ZoSgd | ZoSgdMmt | ZoSgdCons | ForwardGrad, Lora) => 1e-4,
            (ZoSgd | ZoSgdMmt | ZoSgdCons | ForwardGrad, Prefix | Prompt) => 1e-3,
            // sign(g)·z drops |g| (typically ≫ 1), so it takes a smaller step per unit of lr: one decade up.
            (ZoSgdSign, Full) => 1e-5,
            (ZoSgdSign, Lora) => 1e-4,
            (ZoSgdSign, Prefix | Prompt) => 1e-3,
            (ZoAdam, Full) => 1e-5,
            (ZoAdam, Lora) => 1e-4,
            (ZoAdam, Prefix | Prompt) => 1e-3,
            (FoSgd, Full) => 1e-4,
            (FoSgd, Lora) => 1e-2,
            (FoSgd, Prefix | Prompt) => 1e-2,
            (FoAdam, Full) => 1e-5,
            (FoAdam, Lora) => 1e-4,
            (FoAdam, Prefix | Prompt) => 1e-3,
        }
    }

    /// Default perturbation scale μ for `scheme` (MeZO's per-scheme recommendation; prompt as LoRA).
    pub fn default_mu(self, scheme: Scheme) -> f64 {
        match scheme {
            Scheme::Full => 1e-3,
            Scheme::Lora | Scheme::Prompt => 1e-2,
            Scheme::Prefix => 1e-1,
        }
    }
}

impl fmt::Display for Optimizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Optimizer {
    type Err = ZoError;
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim().to_ascii_lowercase().replace('_', "-");
        Optimizer::ALL
            .into_iter()
            .find(|o| o.name() == s)
            .ok_or_else(|| {
                ZoError::invalid(format!(
                    "unknown optimizer `{s}` (expected one of {})",
                    Optimizer::ALL.map(|o| o.name()).join(", ")
                ))
            })
    }
}
