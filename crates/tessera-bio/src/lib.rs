//! Gene-set naming over the Gene Ontology (the Thought Graph paper, arXiv 2403.07144).
//!
//! - [`ontology`]: GO BP terms and relations (`GO.sqlite`, OBO) and gene annotations (`org.Hs.eg.sqlite`, GAF).
//! - [`enrichment`]: hypergeometric over-representation with Benjamini–Hochberg (the paper's "GSEA" baseline).
//! - [`thought_graph`]: the paper's method, a breadth-first tree of thoughts with uncertainty grouping and voting,
//!   and an SVG drawing of one graph.
//! - [`baselines`]: zero-shot, few-shot and chain-of-thought naming.
//! - [`eval`]: `BioEvalConfig` → [`eval::run`] → `BioEvalResult` (the JSON of `tessera bio eval --json`),
//!   resumable per gene set.
//! - [`mod@name`]: `NameConfig` → [`name()`] → `NameResult` (`tessera bio name`).
//! - [`tour`]: the `bio` section of `tessera tour`.
//!
//! Names are compared with all-MiniLM-L6-v2 embeddings ([`semantic`]); the paper's SapBERT is not obtainable
//! here, so scores are not on the paper's scale.
#![deny(missing_docs)]
pub mod baselines;
pub mod bench;
pub mod data;
mod display;
pub mod enrichment;
pub mod error;
pub mod eval;
pub mod name;
pub mod ontology;
pub mod parse;
pub mod semantic;
pub mod thought_graph;
pub mod tour;

pub use error::{BioError, Result};
pub use eval::{BioEvalConfig, BioEvalResult, Method};
pub use name::{name, NameConfig, NameResult};
pub use thought_graph::{ThoughtGraph, ThoughtGraphConfig};
