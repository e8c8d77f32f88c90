//! The crate's error type.

/// Errors from Q-Newton training, the scheduler and the HHL simulator.
#[derive(Debug, thiserror::Error)]
pub enum QnError {
    /// An error from the shared core (IO, assets, bad input).
    #[error(transparent)]
    Core(#[from] tessera_core::Error),
    /// A user-supplied argument, name or configuration value is invalid (the crate's one invalid-input variant).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A dataset file could not be parsed.
    #[error("dataset {name}: {msg}")]
    Data {
        /// Which dataset.
        name: String,
        /// What is wrong.
        msg: String,
    },
    /// A linear-algebra routine failed (singular or non-finite matrix).
    #[error("linear algebra: {0}")]
    Linalg(String),
}

impl QnError {
    /// Builds a [`QnError::InvalidInput`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        QnError::InvalidInput(msg.into())
    }
}

/// Result alias for this crate.
pub type Result<T, E = QnError> = std::result::Result<T, E>;
