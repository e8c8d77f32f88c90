//! A small vision-language model built and trained here, and modality-aware pruning of it.
//!
//! - Model, LLaVA-style ([`llava`]): a ViT encoder ([`vit`]), an MLP projector ([`projector`]) and
//!   SmolLM2-135M-Instruct reading the image tokens through the runtime's input-embeddings path. Every vision
//!   projection is the runtime's `Linear` (with a bias), so masks, LoRA and the calibration observers work on
//!   both towers. Checkpoints: [`ckpt`].
//! - Data ([`data`]): easy-vqa (PyPI) and Fashion-MNIST (Debian), both fetched by the asset step.
//! - `tessera vlm train`: [`train::TrainConfig`] → [`train::run`] → [`train::TrainResult`].
//! - `tessera vlm eval`: [`eval::EvalConfig`] → [`eval::run`] → [`eval::EvalResult`] (easy-vqa exact match over
//!   the 13 answers, Fashion-MNIST zero-shot accuracy).
//! - `tessera vlm prune`: [`prune::VlmPruneConfig`] → [`prune::run`] → [`prune::VlmPruneResult`] (Wanda,
//!   SparseGPT or magnitude with separate vision / language sparsities, "Rethinking Pruning for VLMs").
//! - `tessera vlm restore`: [`restore::RestoreConfig`] → [`restore::run`] → [`restore::RestoreResult`]
//!   (SparseLoRA vs plain LoRA on both towers, distilled from the dense VLM).
//! - `tessera vlm ask`: [`ask`].
//!
//! Deviations from the reference code are listed in each module's docs and in the README.
#![deny(missing_docs)]

pub mod ask;
pub mod ckpt;
pub mod data;
mod display;
pub mod error;
pub mod eval;
pub mod llava;
pub mod projector;
pub mod prune;
pub mod restore;
pub mod study;
pub mod tour;
pub mod train;
pub mod vit;

pub use error::{Result, VisionError};
pub use llava::{Example, TowerModes, Vlm};
pub use vit::{Vit, VitConfig};
