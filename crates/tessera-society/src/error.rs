//! Errors of the society simulator and the attacks.

/// Everything that can go wrong in `tessera-society`.
#[derive(Debug, thiserror::Error)]
pub enum SocietyError {
    /// Bad configuration or input from the caller.
    #[error("{0}")]
    Invalid(String),
    /// The runtime failed.
    #[error(transparent)]
    Lm(#[from] tessera_lm::LmError),
    /// A chat backend failed.
    #[error(transparent)]
    Llm(#[from] tessera_llm::LlmError),
    /// MiniLM failed.
    #[error(transparent)]
    Embed(#[from] tessera_embed::EmbedError),
    /// I/O, assets, journals.
    #[error(transparent)]
    Core(#[from] tessera_core::Error),
    /// A tensor operation failed.
    #[error("tensor op: {0}")]
    Candle(#[from] candle_core::Error),
}

/// Result alias of this crate.
pub type Result<T, E = SocietyError> = std::result::Result<T, E>;

/// Shorthand for an [`SocietyError::Invalid`].
pub(crate) fn invalid<T>(msg: impl Into<String>) -> Result<T> {
    Err(SocietyError::Invalid(msg.into()))
}
