//! Tessera's LLaMA-family runtime on candle.
//!
//! - [`load`](load::load) a `.gguf` file (every quantized tensor dequantized to f32) or an HF safetensors directory;
//!   [`load::save_safetensors_dir`] writes one back bit-exactly.
//! - [`Llama::forward`](model::Llama::forward): token ids or embeddings in, logits out; KV cache, prefix key/values,
//!   a [`hook::LayerHook`] inside every block, residual streams after chosen layers, differentiable
//!   `train` mode; chunked prefill and blocked attention bound inference memory. The same pass layer by layer:
//!   [`Llama::embed`](model::Llama::embed), [`Llama::block_forward`](model::Llama::block_forward),
//!   [`Llama::head`](model::Llama::head).
//! - [`linear::Linear`]: masks (baked, or kept beside a dense copy), LoRA / SparseLoRA and
//!   activation-statistics hooks on every projection.
//! - [`perturb`]: in-place seeded perturbation and update of parameters (zeroth-order optimizers).
//! - [`generate::generate`] / [`generate::generate_batch`] (and their `_with` forms taking a hook) and
//!   [`perplexity::perplexity`].
#![deny(missing_docs)]

pub mod bench_sparse;
pub mod bench_train;
pub mod checkpoint;
pub mod commands;
pub mod config;
mod decode;
pub mod error;
pub mod export;
pub mod generate;
pub mod gguf;
pub mod hook;
pub mod hugepages;
mod kernels;
pub mod limits;
pub mod linear;
pub mod load;
pub mod loss;
pub mod model;
pub mod optim;
pub mod perplexity;
pub mod perturb;
mod pool;
pub mod quant;
pub mod sparse;
pub mod speed;
pub mod testing;
pub mod tokenizer;
pub mod tour;
pub mod weights;

pub use config::LlamaConfig;
pub use error::{LmError, Result};
pub use generate::{
    generate, generate_batch, generate_batch_with, generate_with, top_alternatives, FinishReason,
    Generation, SamplingParams,
};
pub use hook::{
    FfnDecision, LayerHook, LayerHookFactory, LayerSite, SequenceInfo, SkipAllFfn, StepInfo,
};
pub use limits::{check_generation, MemoryModel};
pub use linear::{Grad, Linear, LinearCtx, LoraForm, Proj, WeightMode};
pub use load::{load, load_with, save_safetensors_dir};
pub use model::{
    Cache, Forward, ForwardOutput, Input, Llama, LoraSpec, StepContext, ATTENTION_KEY_BLOCK,
    PREFILL_CHUNK,
};
pub use perturb::{ParamSet, Perturbation};
pub use tokenizer::{ChatMessage, Tokenizer};
pub use weights::{CompactWeights, LoadOptions, WeightDtype};
