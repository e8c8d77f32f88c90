//! The error type of this crate.
use std::path::PathBuf;

/// Everything that can go wrong reading the ontology, annotations or gene sets, or running a method.
#[derive(Debug, thiserror::Error)]
pub enum BioError {
    /// A SQLite file could not be opened or queried.
    #[error("{path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// The driver's error.
        source: rusqlite::Error,
    },
    /// A text file (OBO, GAF, CSV) is malformed.
    #[error("{path}: line {line}: {msg}")]
    Parse {
        /// The file at fault.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        msg: String,
    },
    /// Invalid argument from the caller.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// A chat backend failed.
    #[error(transparent)]
    Llm(#[from] tessera_llm::LlmError),
    /// The sentence embedder failed.
    #[error(transparent)]
    Embed(#[from] tessera_embed::EmbedError),
    /// Assets, I/O, journals.
    #[error(transparent)]
    Core(#[from] tessera_core::Error),
}

impl BioError {
    /// An [`BioError::Invalid`] from anything printable.
    pub fn invalid(msg: impl Into<String>) -> Self {
        BioError::Invalid(msg.into())
    }

    /// A SQLite error on `path`.
    pub fn sqlite(path: impl Into<PathBuf>, source: rusqlite::Error) -> Self {
        BioError::Sqlite {
            path: path.into(),
            source,
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = BioError> = std::result::Result<T, E>;
