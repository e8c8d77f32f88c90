//! Post-training pruning of the runtime's linear layers and sparsity recovery.
//!
//! - Pruners, independent of the language model (they take a weight and the input statistics the runtime's
//!   observer gathers): [`magnitude`], [`wanda`] (Sun et al. 2023), [`sparsegpt`] (Frantar & Alistarh 2023);
//!   patterns ([`pattern`]: unstructured ratio, N:M) and per-part allocation ([`allocation`]).
//! - The sequential block-by-block calibration protocol of both reference codes ([`protocol`]) on windows of
//!   WikiText-2 ([`calib`]).
//! - `tessera prune`: [`prune::PruneConfig`] → [`prune::run`] → [`prune::PruneResult`], writing a pruned
//!   checkpoint directory ([`checkpoint_dir`]: HF safetensors with exact zeros + `masks.safetensors` +
//!   `prune.json`) that every command taking a model loads.
//! - `tessera sparselora`: [`sparselora::SparseLoraConfig`] → [`sparselora::run`] →
//!   [`sparselora::SparseLoraResult`]: SparseLoRA recovery (He et al. 2024) with distillation from the dense
//!   weights of the same model, merged so that the zero pattern is kept mask for mask.
//! - `tessera info`: [`info::info`] → [`info::SparsityInfo`].
//!
//! Deviations from the reference code are listed in each algorithm's module docs.
#![deny(missing_docs)]

pub mod allocation;
pub mod calib;
pub mod checkpoint_dir;
pub mod error;
pub mod eval;
pub mod info;
pub mod magnitude;
pub mod pattern;
pub mod protocol;
pub mod prune;
pub mod sparsegpt;
pub mod sparselora;
pub mod tour;
pub mod wanda;

pub use allocation::{Allocation, Part, Rule};
pub use calib::{CalibConfig, WindowMode};
pub use error::{PruneError, Result};
pub use eval::EvalConfig;
pub use info::{info, info_dir, SparsityInfo};
pub use pattern::{Mask, Pattern};
pub use protocol::Propagate;
pub use prune::{Method, PruneConfig, PruneResult};
pub use sparsegpt::SparseGptOptions;
pub use sparselora::{SparseLoraConfig, SparseLoraResult};

/// The largest absolute element-wise difference of two tensors of the same shape.
pub fn max_abs_diff(a: &candle_core::Tensor, b: &candle_core::Tensor) -> Result<f32> {
    if a.dims() != b.dims() {
        return Err(PruneError::Invalid(format!(
            "comparing tensors of shapes {:?} and {:?}",
            a.dims(),
            b.dims()
        )));
    }
    Ok((a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?)
}
