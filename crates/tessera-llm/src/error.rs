//! Errors of the chat backends and the server.

/// Everything a chat call can fail with. Messages never contain an API key.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// A spec string, URL or option is malformed.
    #[error("bad configuration: {0}")]
    Config(String),
    /// The request itself is invalid (empty conversation, parameter out of range, prompt too long...).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The backend answered with a client error (4xx other than 429): retrying will not help.
    #[error("backend refused the request (HTTP {status}): {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The backend's error message.
        message: String,
    },
    /// The backend could not be reached or kept failing (connection error, timeout, 429, 5xx) after every retry.
    #[error("backend unavailable after {attempts} attempt(s): {last}")]
    Unavailable {
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
    /// The local model's queue is full.
    #[error("model queue is full ({0} waiting); try again later")]
    Overloaded(usize),
    /// The backend's answer could not be understood.
    #[error("malformed backend response: {0}")]
    Protocol(String),
    /// A replayed transcript has no answer for this request.
    #[error("no recorded answer for this request in {0}")]
    NotRecorded(String),
    /// The local runtime failed.
    #[error(transparent)]
    Runtime(#[from] tessera_lm::LmError),
    /// Shared core error (I/O, JSON, assets).
    #[error(transparent)]
    Core(#[from] tessera_core::Error),
}

impl LlmError {
    /// True when the failure is the infrastructure's (unreachable, overloaded, crashed), not the request's.
    pub fn is_infrastructure(&self) -> bool {
        matches!(
            self,
            LlmError::Unavailable { .. } | LlmError::Overloaded(_) | LlmError::Protocol(_)
        )
    }
}

/// Result alias for this crate.
pub type Result<T, E = LlmError> = std::result::Result<T, E>;
