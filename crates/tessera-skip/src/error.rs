//! The crate's error type.
use std::path::PathBuf;

/// Errors of FFN skipping, its evaluation and its benchmark.
#[derive(Debug, thiserror::Error)]
pub enum SkipError {
    /// An error from the shared core (IO, assets, bad input).
    #[error(transparent)]
    Core(#[from] tessera_core::Error),
    /// An error from the model runtime.
    #[error(transparent)]
    Lm(#[from] tessera_lm::LmError),
    /// A user-supplied argument or configuration value is invalid.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// A line of a questions file is malformed.
    #[error("{path}: line {line}: {msg}")]
    Questions {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        msg: String,
    },
}

impl SkipError {
    /// Builds a [`SkipError::Invalid`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        SkipError::Invalid(msg.into())
    }
}

impl From<candle_core::Error> for SkipError {
    fn from(e: candle_core::Error) -> Self {
        SkipError::Lm(e.into())
    }
}

/// Result alias for this crate.
pub type Result<T, E = SkipError> = std::result::Result<T, E>;
