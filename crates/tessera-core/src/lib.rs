//! Shared plumbing for every Tessera system.
//!
//! - [`Error`] / [`Result`]: the one error type library crates return (or wrap).
//! - [`fsx`]: atomic writes, so an interrupted run never leaves a half-written result.
//! - [`rng`]: seeded, reproducible random streams derived from one run seed.
//! - [`progress`]: progress bars that stay quiet when stderr is not a terminal.
//! - [`report`]: Markdown reports with tables and SVG plots, and the [`report::TourSection`] every tour returns.
//! - [`record`]: run directories holding JSON results plus the report.
//! - [`mem`]: resident-memory readings (current and resettable peak) for memory benchmarks.
//! - [`alloc`]: a counting global allocator (live and peak heap bytes) and a scope guard for one step's peak.
//! - [`journal`]: append-only JSONL checkpoints that let long runs resume.
//! - [`chat`]: the chat message shared by the runtime, the backends and LLM agents.
//! - [`text`]: prefixes that never split a UTF-8 character.
//! - [`worker`]: run a measured case in a fresh process and read its JSON back.
//! - [`assets`]: the model cache (`$TESSERA_HOME`) and dataset resolution.
#![deny(missing_docs)]

pub mod alloc;
pub mod assets;
pub mod chat;
pub mod error;
pub mod fsx;
pub mod journal;
pub mod mem;
pub mod progress;
pub mod record;
pub mod report;
pub mod rng;
pub mod text;
pub mod worker;

pub use error::{Error, Result};
