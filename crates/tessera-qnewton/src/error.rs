//! The crate's error type.

/// Errors from Q-Newton training, the scheduler and the HHL simulator.
#[derive(Debug, thiserror::Error)]
pub enum QnError {
    /// An error from the shared core (IO, assets, bad input).
    #[error(transparent)]
    Core(#[from] tessera_core::Error),
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
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

/// Result alias for this crate.
pub type Result<T, E = QnError> = std::result::Result<T, E>;
