//! Multi-agent LLM societies and covert injection through an operative.
//!
//! - [`society`]: `N` agents (any chat backend, own system prompt and memory window) on a [`society::Topology`]
//!   (chain, star, ring, complete, seeded random), synchronous rounds, every message logged (JSONL) with its hop
//!   distance from the operative; [`society::run`] measures infection by hop and round, transfer, and
//!   [`defence::Defence`]s.
//! - [`wolf`]: the paper's attack (The Wolf Within, arXiv 2402.14859): injected input → wolf logits → hard
//!   Gumbel-softmax → × sheep embeddings → sheep target cross-entropy → signed steps.
//! - [`gcg`]: a discrete, transferable plain-text variant.
//! - [`mod@attack`]: `AttackConfig → attack → AttackResult`, checkpoints, sweeps.
//! - [`targets`]: benign canaries under the paper's 14 scenario labels, and the success test.
#![deny(missing_docs)]

pub mod attack;
pub mod defence;
mod display;
pub mod error;
pub mod gcg;
pub mod plot;
pub mod society;
pub mod targets;
pub mod testing;
pub mod tour;
pub mod wolf;

pub use attack::{
    attack, attack_with, AttackConfig, AttackResult, AttackSettings, LrSchedule, Variant,
};
pub use defence::Defence;
pub use error::{Result, SocietyError};
pub use society::{run, SocietyConfig, SocietyResult, Topology};
