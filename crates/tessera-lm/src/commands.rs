//! Typed entry points behind `tessera info|generate|perplexity`: each returns a result that serialises to the
//! command's documented `--json` object, so the CLI only parses arguments and prints.
use crate::error::Result;
use crate::generate::{generate, generate_batch, Generation, SamplingParams};
use crate::model::Llama;
use crate::perplexity::{perplexity, tokenize_document, PerplexityReport};
use crate::tokenizer::ChatMessage;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What `tessera info --json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    /// The model file or directory.
    pub path: PathBuf,
    /// Its configuration.
    pub config: crate::LlamaConfig,
    /// Parameter count.
    pub parameters: usize,
    /// True when the output projection shares the embedding.
    pub tied_embeddings: bool,
    /// Bytes of the parameters in f32.
    pub f32_bytes: usize,
    /// Tokenizer vocabulary size (when the model carries a tokenizer).
    pub tokenizer_vocab: Option<usize>,
    /// End-of-sequence token ids.
    pub eos_ids: Option<Vec<u32>>,
    /// The chat template's default system prompt.
    pub default_system_prompt: Option<String>,
}

/// The facts `tessera info` shows about `m`, loaded from `path`.
pub fn model_info(path: &Path, m: &Llama) -> ModelInfo {
    ModelInfo {
        path: path.to_path_buf(),
        config: m.config.clone(),
        parameters: m.num_params(),
        tied_embeddings: m.is_tied(),
        f32_bytes: m.num_params() * 4,
        tokenizer_vocab: m.tokenizer.as_ref().map(|t| t.vocab_size()),
        eos_ids: m.tokenizer.as_ref().map(|t| t.eos_ids.clone()),
        default_system_prompt: m
            .tokenizer
            .as_ref()
            .and_then(|t| t.template.default_system.clone()),
    }
}

/// Token ids of `text`: plain, or as one user message (after `system`, if given) in the model's chat template.
pub fn prompt_ids(m: &Llama, text: &str, chat: bool, system: Option<&str>) -> Result<Vec<u32>> {
    let tok = m.tokenizer()?;
    if !chat {
        return tok.encode(text);
    }
    let mut msgs = vec![];
    if let Some(s) = system {
        msgs.push(ChatMessage::new("system", s));
    }
    msgs.push(ChatMessage::new("user", text));
    tok.encode_chat(&msgs)
}

/// What `tessera generate --json` prints: one generation, or a batch.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum GenerateOutput {
    /// One prompt.
    Single {
        /// The generated text.
        text: String,
        /// The whole generation (tokens, log-probabilities, finish reason).
        generation: Generation,
        /// Wall time, seconds.
        seconds: f64,
        /// Generated tokens per second.
        tokens_per_s: f64,
    },
    /// Several prompts, decoded as one batch.
    Batch {
        /// One generation per prompt, in order.
        generations: Vec<Generation>,
        /// Wall time, seconds.
        seconds: f64,
        /// Generated tokens per second over the batch.
        tokens_per_s: f64,
    },
}

/// Generates from every prompt: one prompt streams its text through `on_text`; several are decoded as one batch.
pub fn generate_prompts(
    m: &Llama,
    prompts: &[Vec<u32>],
    p: &SamplingParams,
    on_text: &mut dyn FnMut(&str) -> bool,
) -> Result<GenerateOutput> {
    crate::limits::check_sampling(p)?;
    for q in prompts {
        crate::limits::check_generation(m.config.max_position_embeddings, q.len(), p)?;
    }
    let t0 = Instant::now();
    if let [one] = prompts {
        let g = generate(m, one, p, on_text)?;
        let seconds = t0.elapsed().as_secs_f64();
        return Ok(GenerateOutput::Single {
            text: g.text.clone(),
            tokens_per_s: g.tokens.len() as f64 / seconds,
            generation: g,
            seconds,
        });
    }
    let generations = generate_batch(m, prompts, p)?;
    let seconds = t0.elapsed().as_secs_f64();
    let n: usize = generations.iter().map(|g| g.tokens.len()).sum();
    Ok(GenerateOutput::Batch {
        generations,
        seconds,
        tokens_per_s: n as f64 / seconds,
    })
}

/// What `tessera perplexity --json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct PerplexityRun {
    /// The perplexity and its windows.
    #[serde(flatten)]
    pub report: PerplexityReport,
    /// The text file.
    pub text: PathBuf,
    /// Wall time, seconds.
    pub seconds: f64,
}

/// Sliding-window perplexity of the text file at `path` (see [`perplexity`]); errors name the file.
/// `progress` is told `(windows done, windows)`.
pub fn perplexity_file(
    m: &Llama,
    path: &Path,
    window: usize,
    stride: usize,
    max_tokens: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<PerplexityRun> {
    let t0 = Instant::now();
    let named = |e: crate::LmError| crate::LmError::BadFile {
        path: path.to_path_buf(),
        msg: e.to_string(),
    };
    let text = tessera_core::fsx::read_to_string(path)?;
    let ids = tokenize_document(m, &text).map_err(named)?;
    crate::limits::check_perplexity(m.config.max_position_embeddings, window, stride)?;
    let report = perplexity(m, &ids, window, stride, max_tokens, progress).map_err(named)?;
    Ok(PerplexityRun {
        report,
        text: path.to_path_buf(),
        seconds: t0.elapsed().as_secs_f64(),
    })
}

impl std::fmt::Display for PerplexityRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = &self.report;
        write!(
            f,
            "perplexity {:.4} over {} scored tokens ({} windows of {}, stride {})",
            r.perplexity, r.scored_tokens, r.windows, r.window, r.stride
        )
    }
}
