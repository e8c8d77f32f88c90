//! Graph sparsification with a Mixture of Graphs (MoG; Zhang et al., "Graph Sparsification via Mixture of Graphs",
//! ICLR 2025, arXiv 2405.14260), on GNNs trained in Rust with candle.
//!
//! - [`data`]: Cora / CiteSeer (`.npz`, or Cora from the `graphdatascience` Parquet files, [`parquet_cora`]) and a stochastic-block-model generator.
//! - [`sparse`]: the differentiable sparse × dense product all message passing uses.
//! - [`gnn`]: GCN, GraphSAGE, GIN and full-batch training.
//! - [`criteria`]: edge-pruning criteria (Jaccard, edge degree, effective resistance, gradient magnitude).
//! - [`mog`]: the paper's algorithm (§3): experts, noisy top-k router, Grassmann mixture.
//! - [`experiment`]: MoG vs baselines over seeds, and the inference benchmark.
//! - [`run`]: the typed entry points of the `tessera graph` / `tessera bench graph` commands and the tour section.
#![deny(missing_docs)]
// CSR code indexes several parallel arrays by edge id; `is_multiple_of` is newer than the workspace MSRV (1.85).
#![allow(clippy::needless_range_loop, clippy::manual_is_multiple_of)]

pub mod data;
pub mod error;
pub mod gnn;
pub mod npz;
pub mod parquet_cora;
pub mod sparse;

pub use error::{GraphError, Result};
pub mod criteria;
pub mod experiment;
pub mod mog;
pub mod report;
pub mod run;

/// Runs `f` on a rayon pool of `threads` workers (0 = all cores). Small graphs run fastest on one thread: rayon's
/// hand-offs cost more than the work, and much more when the cores are shared.
pub fn with_threads<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> Result<T> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| GraphError::Invalid(format!("thread pool: {e}")))?;
    Ok(pool.install(f))
}
