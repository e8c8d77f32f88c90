//! The error type of `tessera-graph`.

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// A shared Tessera error (I/O, asset resolution, invalid input).
    #[error(transparent)]
    Core(#[from] tessera_core::Error),
    /// A tensor operation failed inside candle.
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    /// A `.npz`/`.npy` file could not be parsed.
    #[error("{path}: {msg}")]
    Npz {
        /// The archive.
        path: String,
        /// What is wrong.
        msg: String,
    },
    /// A Parquet file could not be parsed or holds unexpected columns.
    #[error("{path}: {msg}")]
    Parquet {
        /// The file.
        path: String,
        /// What is wrong.
        msg: String,
    },
    /// A user-supplied setting is out of range or malformed.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// A numerical routine (eigensolver, CG) failed.
    #[error("numerics: {0}")]
    Numerics(String),
}

/// Result alias for this crate.
pub type Result<T, E = GraphError> = std::result::Result<T, E>;

/// Returns early with [`GraphError::Invalid`].
macro_rules! invalid {
    ($($arg:tt)*) => { return Err($crate::error::GraphError::Invalid(format!($($arg)*))) };
}
pub(crate) use invalid;
