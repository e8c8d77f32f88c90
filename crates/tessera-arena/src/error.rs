//! The arena's error type.

/// Errors returned by the arena library.
#[derive(Debug, thiserror::Error)]
pub enum ArenaError {
    /// Invalid input: an unknown game or agent spec, an invalid combination, a run directory holding another
    /// run's settings. The one variant for every user error.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// An LLM backend could not be reached (network, server down); the match is recorded as an infrastructure failure.
    #[error("infrastructure failure: {0}")]
    Infrastructure(String),
    /// Shared-core error (I/O, JSON, ...).
    #[error(transparent)]
    Core(#[from] tessera_core::Error),
}

impl From<serde_json::Error> for ArenaError {
    fn from(e: serde_json::Error) -> Self {
        ArenaError::Core(tessera_core::Error::Json(e))
    }
}

/// Result alias for the arena.
pub type Result<T, E = ArenaError> = std::result::Result<T, E>;
