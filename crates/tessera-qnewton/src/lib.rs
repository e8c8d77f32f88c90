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
//! - [`data`], [`mlp`]: datasets and the network.
#![warn(missing_docs)]

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
pub mod scheduler;
pub mod sparsify;
pub mod train;

pub use error::{QnError, Result};
