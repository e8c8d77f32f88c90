//! Zeroth-order fine-tuning benchmark: "Revisiting Zeroth-Order Optimization for Memory-Efficient LLM
//! Fine-Tuning: A Benchmark" (Zhang et al., ICML 2024, arXiv 2402.11592; ZO-Bench) and MeZO (Malladi et al.,
//! NeurIPS 2023), on Tessera's LLaMA runtime.
//!
//! - Optimizers, one file per family with its update formula: [`zo_sgd`] (ZO-SGD, -Sign, -MMT, -Cons),
//!   [`zo_adam`], [`forward_grad`], [`fo`] (FO-SGD, FO-Adam). A query budget `q` averages `q` estimates.
//! - The paper's enhancements: [`blockwise`] ZO, [`hybrid`] ZO/FO, gradient [`sparsity`].
//! - Tuning [`scheme`]s (full, LoRA q/v r8 α16, prefix, prompt) and prompt-based [`task`]s (SST-2, COPA) scored by
//!   label-word log-likelihood ([`batch`]).
//! - [`run::run`]: [`ZoConfig`] → [`ZoResult`] (accuracy before/after, loss curve, step time, peak heap), with
//!   crash-safe checkpoints and exact resume ([`ckpt`]); [`memory::memory`]: peak heap of one step per optimizer
//!   against inference, each in its own process.
//!
//! Zeroth-order steps never copy θ or z: `z` is regenerated from a seed by the runtime's counter-based generator
//! ([`tessera_lm::perturb`]) and applied in place (`+μ`, `−2μ`, `+μ`, then the update).
//!
//! # Deviations from the reference code (ZO-LLM, `zo-bench/`)
//!
//! 1. **Block-wise seeds.** The reference re-seeds every block with the same step seed, so blocks of equal shape
//!    get identical `z`. Here every block has its own seed, `derive_seed(query seed, "block/<name>")`
//!    ([`blockwise::block_seed`]).
//! 2. **Optimizers run what they are named.** The reference's ZO-SGD-Sign and ZO-SGD-Cons sweeps pass no
//!    `--optimizer`, and the default `adamw` matches neither override branch. They therefore step with HF's
//!    AdamW, not SGD. Ours apply the SGD updates documented in [`zo_sgd`].
//! 3. **Sparsity.** The reference zeroes `z` where `N(0,1) < ratio`, a share of Φ(ratio) (69% for 0.5). Here
//!    `--sparsity R` leaves exactly a share `R` unperturbed ([`sparsity`]), in each tensor. Its `magnitude` mode
//!    selects the largest `|w|` of every tensor, once, from the initial weights. The reference's `global` mode
//!    uses magnitude only to set per-tensor ratios and keeps a random mask.
//! 4. **Forward gradient.** The directional derivative is computed exactly but through a backward pass, not a
//!    JVP (candle has no forward mode), so its memory is that of a backward pass ([`forward_grad`]).
//! 5. **Precision.** f32 throughout (the reference uses fp16/bf16). `+μ, −2μ, +μ` restores θ within f32
//!    rounding, which MeZO #42 reports fails in fp16.
#![deny(missing_docs)]

pub mod batch;
pub mod blockwise;
pub mod ckpt;
pub mod error;
pub mod fo;
pub mod forward_grad;
pub mod hybrid;
pub mod memory;
pub mod optimizer;
pub mod plot;
pub mod run;
pub mod scheme;
pub mod sparsity;
pub mod task;
pub mod tour;
pub mod zo_adam;
pub mod zo_sgd;

pub use error::{Result, ZoError};
pub use memory::{MemoryConfig, MemoryEntry, MemoryReport};
pub use optimizer::Optimizer;
pub use run::{run, train, Settings, Trainer, ZoConfig, ZoResult};
pub use scheme::{Scheme, Tunable};
pub use sparsity::SparsityMode;
pub use task::{Task, TaskData};
