//! Errors of the knowledge-graph store, construction, retrieval and evaluation.
use std::path::PathBuf;

/// Everything `tessera-kg` can fail with.
#[derive(Debug, thiserror::Error)]
pub enum KgError {
    /// The SQLite database failed.
    #[error("knowledge-graph database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database was written by another (older or newer) schema.
    #[error("{path}: {msg}")]
    Schema {
        /// The database file.
        path: PathBuf,
        /// What is wrong and what to do.
        msg: String,
    },
    /// A file could not be understood as a whole (not a single malformed line, which is skipped and counted).
    #[error("{path}: {msg}")]
    Format {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// Invalid argument from the caller.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// A chat backend failed.
    #[error("chat backend: {0}")]
    Llm(#[from] tessera_llm::LlmError),
    /// The sentence embedder failed.
    #[error("embedder: {0}")]
    Embed(#[from] tessera_embed::EmbedError),
    /// Shared core error (I/O, JSON, assets).
    #[error(transparent)]
    Core(#[from] tessera_core::Error),
}

impl KgError {
    /// An [`KgError::Invalid`] from a message.
    pub fn invalid(msg: impl Into<String>) -> Self {
        KgError::Invalid(msg.into())
    }

    /// True when the failure is the backend's infrastructure (unreachable, overloaded): a run stops and can be
    /// resumed later.
    pub fn is_infrastructure(&self) -> bool {
        matches!(self, KgError::Llm(e) if e.is_infrastructure())
    }
}

/// Result alias for this crate.
pub type Result<T, E = KgError> = std::result::Result<T, E>;
