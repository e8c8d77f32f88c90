//! Tessera's LLaMA-family runtime on candle.
//!
//! - [`load`](load::load) a `.gguf` file (every quantized tensor dequantized to f32) or an HF safetensors directory;
//!   [`save_safetensors_dir`] writes one back bit-exactly.
//! - [`Llama::forward`](model::Llama::forward): token ids or embeddings in, logits out; KV cache, prefix key/values,
//!   per-layer FFN gate, differentiable `train` mode.
//! - [`Linear`]: mask, LoRA and activation-statistics hooks on every projection.
//! - [`generate`](generate::generate) / [`generate_batch`] and
//!   [`perplexity`](perplexity::perplexity).
#![warn(missing_docs)]

pub mod commands;
pub mod config;
pub mod error;
pub mod export;
pub mod generate;
pub mod gguf;
mod kernels;
pub mod linear;
pub mod load;
pub mod model;
pub mod perplexity;
pub mod speed;
pub mod testing;
pub mod tokenizer;
pub mod tour;

pub use config::LlamaConfig;
pub use error::{LmError, Result};
pub use generate::{
    generate, generate_batch, top_alternatives, FinishReason, Generation, SamplingParams,
};
pub use linear::{Grad, Linear};
pub use load::{load, save_safetensors_dir};
pub use model::{Cache, FfnGate, Forward, Input, Llama};
pub use tokenizer::{ChatMessage, Tokenizer};
