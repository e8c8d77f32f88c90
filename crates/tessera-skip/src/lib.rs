//! FFN-SkipLLM for Tessera: input-adaptive skipping of feed-forward blocks during decoding
//! ([`ffn_skip`], the paper's rule as a runtime layer hook, and its random-span baseline), its evaluation against
//! the full model ([`eval`]: factoid QA on the project's question set, token exact match, ROUGE-L, teacher-forced
//! continuation perplexity, skipped fractions, in-run decode speedup), the side-by-side speed benchmark
//! ([`mod@bench`]) and plots ([`plots`]).
#![deny(missing_docs)]

pub mod bench;
pub mod commands;
pub mod error;
pub mod eval;
pub mod ffn_skip;
pub mod metrics;
pub mod plots;
pub mod questions;
pub mod tour;

pub use error::{Result, SkipError};
pub use eval::{SkipEvalConfig, SkipEvalResult, VariantResult};
pub use ffn_skip::{
    Budget, FfnSkipConfig, FfnSkipHook, SkipMode, SkipPlan, SkipStats, SkipSummary,
};
