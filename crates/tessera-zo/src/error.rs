//! The crate's error type.
use std::path::PathBuf;

/// Errors of zeroth-order fine-tuning runs.
#[derive(Debug, thiserror::Error)]
pub enum ZoError {
    /// A setting, flag value or combination is invalid (the crate's one invalid-input variant).
    #[error("invalid input: {0}")]
    Invalid(String),
    /// A task file could not be read or holds no usable example.
    #[error("{path}: {msg}")]
    Data {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// A checkpoint or output directory belongs to a run with other settings, or is damaged.
    #[error("{dir}: {msg}")]
    Checkpoint {
        /// The directory.
        dir: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// The model runtime failed.
    #[error(transparent)]
    Lm(#[from] tessera_lm::LmError),
    /// Shared core error (I/O, JSON, assets).
    #[error(transparent)]
    Core(#[from] tessera_core::Error),
}

impl From<candle_core::Error> for ZoError {
    fn from(e: candle_core::Error) -> Self {
        ZoError::Lm(tessera_lm::LmError::Candle(e))
    }
}

impl ZoError {
    /// Builds a [`ZoError::Invalid`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        ZoError::Invalid(msg.into())
    }
}

/// Result alias for this crate.
pub type Result<T, E = ZoError> = std::result::Result<T, E>;
