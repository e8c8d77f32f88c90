//! Errors of the runtime.
use std::path::PathBuf;

/// Everything that can go wrong loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum LmError {
    /// A model or tokenizer file is malformed. The message names the file and the problem.
    #[error("{path}: {msg}")]
    BadFile {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// The file describes an architecture this runtime does not implement.
    #[error("{path}: unsupported architecture `{arch}` (supported: llama-family decoders)")]
    UnsupportedArch {
        /// The file at fault.
        path: PathBuf,
        /// The architecture it names.
        arch: String,
    },
    /// A tensor has the wrong shape.
    #[error("{path}: tensor `{name}` has shape {got:?}, expected {expected:?}")]
    TensorShape {
        /// The file at fault.
        path: PathBuf,
        /// Tensor name.
        name: String,
        /// Expected shape.
        expected: Vec<usize>,
        /// Shape found.
        got: Vec<usize>,
    },
    /// A tensor the architecture needs is missing.
    #[error("{path}: missing tensor `{name}`")]
    MissingTensor {
        /// The file at fault.
        path: PathBuf,
        /// Tensor name.
        name: String,
    },
    /// Invalid argument from the caller (empty text, bad sampling parameter...).
    #[error("invalid input: {0}")]
    Invalid(String),
    /// A LoRA target (projection name) that does not exist.
    #[error("unknown LoRA target `{name}` (expected one of q, k, v, o, gate, up, down)")]
    UnknownTarget {
        /// The name given.
        name: String,
    },
    /// A mask whose shape differs from its weight's.
    #[error("mask shape {got:?} does not match weight shape {expected:?}")]
    MaskShape {
        /// The weight's shape.
        expected: Vec<usize>,
        /// The mask's shape.
        got: Vec<usize>,
    },
    /// A prompt plus `max_tokens` does not fit the model's context.
    #[error(
        "prompt of {prompt_tokens} tokens plus max_tokens {max_tokens} exceeds the model's context of {context} tokens"
    )]
    ContextLength {
        /// Prompt tokens.
        prompt_tokens: usize,
        /// Requested new tokens.
        max_tokens: usize,
        /// The model's context length.
        context: usize,
    },
    /// A request needs more memory than the configured budget can ever give it.
    #[error("request needs about {needed} bytes of memory, more than the budget of {budget} bytes leaves ({why})")]
    OverBudget {
        /// Estimated bytes.
        needed: u64,
        /// Bytes available to requests.
        budget: u64,
        /// What to change.
        why: String,
    },
    /// Tokenizer failure.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// Tensor-library failure.
    #[error("tensor op: {0}")]
    Candle(#[from] candle_core::Error),
    /// Shared core error (I/O, JSON, assets).
    #[error(transparent)]
    Core(#[from] tessera_core::Error),
}

/// Result alias for the runtime.
pub type Result<T, E = LmError> = std::result::Result<T, E>;

impl LmError {
    pub(crate) fn bad(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        LmError::BadFile {
            path: path.into(),
            msg: msg.into(),
        }
    }
}
