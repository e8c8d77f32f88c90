//! The crate's error type.
use std::path::PathBuf;

/// Errors of CAP / CAT runs and evaluations.
#[derive(Debug, thiserror::Error)]
pub enum AuroraError {
    /// A setting, flag value or combination is invalid.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// A data file (stream, prompts) could not be used.
    #[error("{path}: {msg}")]
    Data {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// An output directory holds another run, or a checkpoint is damaged or from other settings.
    #[error("{dir}: {msg}")]
    Run {
        /// The directory.
        dir: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// A checkpoint could not be written or resumed.
    #[error(transparent)]
    Checkpoint(#[from] tessera_lm::checkpoint::CheckpointError),
    /// The model runtime failed.
    #[error(transparent)]
    Lm(#[from] tessera_lm::LmError),
    /// The sentence embedder failed.
    #[error(transparent)]
    Embed(#[from] tessera_embed::EmbedError),
    /// Shared core error (I/O, JSON, assets).
    #[error(transparent)]
    Core(#[from] tessera_core::Error),
}

impl From<candle_core::Error> for AuroraError {
    fn from(e: candle_core::Error) -> Self {
        AuroraError::Lm(tessera_lm::LmError::Candle(e))
    }
}

impl From<serde_json::Error> for AuroraError {
    fn from(e: serde_json::Error) -> Self {
        AuroraError::Core(tessera_core::Error::from(e))
    }
}

impl AuroraError {
    /// Builds an [`AuroraError::Invalid`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        AuroraError::Invalid(msg.into())
    }
    /// Builds an [`AuroraError::Data`].
    pub fn data(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        AuroraError::Data {
            path: path.into(),
            msg: msg.into(),
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = AuroraError> = std::result::Result<T, E>;
