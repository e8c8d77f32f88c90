//! The crate's typed error.
use std::path::PathBuf;

/// Everything that can go wrong in the vision-language model.
#[derive(Debug, thiserror::Error)]
pub enum VisionError {
    /// An image file could not be read or decoded.
    #[error("cannot read image {path}: {msg}")]
    Image {
        /// The file.
        path: PathBuf,
        /// Why.
        msg: String,
    },
    /// A dataset file is missing or malformed.
    #[error("dataset {name}: {msg}")]
    Data {
        /// Which dataset / file.
        name: String,
        /// Why.
        msg: String,
    },
    /// A checkpoint is missing, damaged or of another run.
    #[error("checkpoint {path}: {msg}")]
    Checkpoint {
        /// The directory.
        path: PathBuf,
        /// Why.
        msg: String,
    },
    /// Bad configuration or argument.
    #[error("{0}")]
    Invalid(String),
    /// From the runtime.
    #[error(transparent)]
    Lm(#[from] tessera_lm::LmError),
    /// From the pruners.
    #[error(transparent)]
    Prune(#[from] tessera_prune::PruneError),
    /// From tessera-core (assets, files).
    #[error(transparent)]
    Core(#[from] tessera_core::Error),
    /// From candle.
    #[error("tensor: {0}")]
    Candle(#[from] candle_core::Error),
    /// I/O.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// JSON.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, VisionError>;

/// Wraps an I/O error with its path.
pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> VisionError {
    VisionError::Io {
        path: path.into(),
        source,
    }
}
