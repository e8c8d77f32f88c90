//! Errors of the pruning crate.
use std::path::PathBuf;

/// Everything that can go wrong pruning a model or recovering it.
#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    /// An N:M pattern that cannot be applied (N ≥ M, N = 0, or the width is not a multiple of M).
    #[error("unsupported N:M pattern {n}:{m}: {why}")]
    Pattern {
        /// Weights pruned per group.
        n: usize,
        /// Group size.
        m: usize,
        /// What is wrong.
        why: String,
    },
    /// A sparsity ratio outside `[0, 1)` (or not a number).
    #[error("sparsity {0} is outside [0, 1)")]
    Sparsity(f64),
    /// The calibration (or recovery) text has fewer tokens than the windows need.
    #[error("{path}: text has {tokens} tokens, fewer than {need} needed ({why})")]
    TextTooShort {
        /// The text file.
        path: PathBuf,
        /// Tokens it has.
        tokens: usize,
        /// Tokens needed.
        need: usize,
        /// For what.
        why: String,
    },
    /// A mask whose shape differs from its weight's.
    #[error("mask `{name}` has shape {got:?}, its weight {expected:?}")]
    MaskShape {
        /// HF weight name.
        name: String,
        /// The weight's shape.
        expected: Vec<usize>,
        /// The mask's shape.
        got: Vec<usize>,
    },
    /// A directory given as a pruned checkpoint has no masks.
    #[error("{dir}: not a pruned checkpoint (no masks.safetensors); run `tessera prune ... --out DIR` first")]
    NoMasks {
        /// The directory.
        dir: PathBuf,
    },
    /// A mask or pattern check failed after pruning or merging (a bug, never silently accepted).
    #[error("verification failed: {0}")]
    Verify(String),
    /// A training run was stopped on request after saving a checkpoint.
    #[error(
        "stopped after step {step}; checkpoint in {checkpoints} (rerun with --resume to continue)"
    )]
    Stopped {
        /// Steps done.
        step: u64,
        /// The checkpoint root.
        checkpoints: PathBuf,
    },
    /// Invalid argument.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// Linear algebra failure (the damped Hessian is not positive definite).
    #[error("linear algebra: {0}")]
    Linalg(String),
    /// Runtime error.
    #[error(transparent)]
    Lm(#[from] tessera_lm::LmError),
    /// Checkpoint error (settings mismatch, damaged file...).
    #[error(transparent)]
    Checkpoint(#[from] tessera_lm::checkpoint::CheckpointError),
    /// I/O, JSON or asset error.
    #[error(transparent)]
    Core(#[from] tessera_core::Error),
}

impl From<candle_core::Error> for PruneError {
    fn from(e: candle_core::Error) -> Self {
        PruneError::Lm(tessera_lm::LmError::Candle(e))
    }
}

impl From<serde_json::Error> for PruneError {
    fn from(e: serde_json::Error) -> Self {
        PruneError::Core(tessera_core::Error::Json(e))
    }
}

/// Result alias of the crate.
pub type Result<T, E = PruneError> = std::result::Result<T, E>;
