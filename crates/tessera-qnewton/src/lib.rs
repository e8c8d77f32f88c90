//! Q-Newton: Newton training of small MLPs on layer-wise Hessian blocks, with a scheduler that routes each block's
//! linear system to a (modelled) quantum linear-system solver or a (measured) classical LU solve.
//!
//! Paper: Pingzhi Li, Junyu Liu, Hanrui Wang, Tianlong Chen, "Hybrid Quantum-Classical Scheduling for Accelerating
//! Neural Network Training with Newton's Gradient Descent" (Q-Newton), arXiv 2405.00252.
//!
//! Where to find each piece of the paper:
//! - [`scheduler`]: the routing rule (the paper's contribution);
//! - [`cost`]: the QLSA query-count model (Jennings et al. 2023) and classical flop counts;
//! - [`condition`]: κ by Lanczos and the determinant/Frobenius bound (fixed typo, log space);
//! - [`sparsify`]: symmetric magnitude pruning and the row sparsity `d`;
//! - [`newton`]: `Δθ = (H + λI)⁻¹g` followed by SGD-momentum or Adam;
//! - [`hessian`]: exact layer-wise Hessian blocks (second-order backprop) and Gauss–Newton;
//! - [`train`]: the training loops (SGD, Adam, Newton, Q-Newton) and time accounting;
//! - [`hhl`]: an exact statevector HHL simulation for blocks of order ≤ 16;
//! - [`experiment`]: the optimiser comparison and HHL sweeps with their reports;
//! - [`run`]: the typed entry points behind `tessera qnewton train|hhl` (`RunConfig` → [`run::run`] → [`run::RunOutput`]);
//! - [`tour`]: the section of `tessera tour`;
//! - [`data`], [`mlp`]: datasets and the network.
#![deny(missing_docs)]

/// Implements `Display` (the canonical name) and case-insensitive `FromStr` (name or alias) for a fieldless enum,
/// so that names are parsed once at the edge and printed the same way everywhere.
macro_rules! named_enum {
    ($ty:ty, $what:literal, { $($v:path => $name:literal $(| $alias:literal)*),+ $(,)? }) => {
        impl $ty {
            /// Every accepted canonical name, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($name),+];
            /// The canonical name.
            pub fn name(&self) -> &'static str {
                match self { $($v => $name),+ }
            }
        }
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
        impl std::str::FromStr for $ty {
            type Err = crate::QnError;
            fn from_str(s: &str) -> crate::Result<Self> {
                match s.to_ascii_lowercase().as_str() {
                    $($name $(| $alias)* => Ok($v),)+
                    o => Err(crate::QnError::invalid(format!(
                        concat!("unknown ", $what, " {:?} ({})"),
                        o,
                        Self::NAMES.join("|")
                    ))),
                }
            }
        }
    };
}

pub mod clock;
pub mod condition;
pub mod cost;
pub mod data;
pub mod error;
pub mod experiment;
pub mod hessian;
pub mod hhl;
pub mod mlp;
pub mod newton;
pub mod run;
pub mod scheduler;
pub mod sparsify;
pub mod tour;
pub mod train;

pub use error::{QnError, Result};
pub use run::{DatasetKind, OptimizerChoice, RunConfig, RunOutput, RunSummary};
pub use train::Optimizer;
