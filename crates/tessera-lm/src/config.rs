//! Model configuration, read from GGUF metadata or a Hugging Face `config.json`.
use crate::error::{LmError, Result};
use crate::gguf::GgufFile;
use crate::limits::{MAX_CONTEXT, MAX_HEADS, MAX_HIDDEN, MAX_INTERMEDIATE, MAX_LAYERS, MAX_VOCAB};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// A LLaMA-family decoder's hyper-parameters (field names follow HF `config.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Model width.
    pub hidden_size: usize,
    /// SwiGLU inner width.
    pub intermediate_size: usize,
    /// Number of decoder blocks.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (grouped-query attention).
    pub num_key_value_heads: usize,
    /// RMSNorm epsilon.
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    /// RoPE base.
    #[serde(default = "default_theta")]
    pub rope_theta: f64,
    /// Longest context the model was trained for.
    #[serde(default = "default_ctx")]
    pub max_position_embeddings: usize,
    /// Output head shares the embedding matrix.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Beginning-of-sequence token.
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    /// End-of-sequence token.
    #[serde(default)]
    pub eos_token_id: Option<u32>,
    /// Architecture tag (`LlamaForCausalLM`).
    #[serde(default = "default_arch")]
    pub architectures: Vec<String>,
    /// Always "llama".
    #[serde(default = "default_model_type")]
    pub model_type: String,
}

fn default_eps() -> f64 {
    1e-5
}
fn default_theta() -> f64 {
    10_000.0
}
fn default_ctx() -> usize {
    2048
}
fn default_arch() -> Vec<String> {
    vec!["LlamaForCausalLM".into()]
}
fn default_model_type() -> String {
    "llama".into()
}

impl LlamaConfig {
    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// Checks internal consistency and sane bounds (see [`crate::limits`]), before anything is allocated from
    /// these numbers: every dimension non-zero and bounded, heads dividing the width into even head widths,
    /// key/value heads dividing the query heads, a context of 1..=[`MAX_CONTEXT`] tokens, a finite RoPE base
    /// above 1, a finite RMS epsilon in (0, 1), and special token ids inside the vocabulary.
    pub fn validate(&self, path: &Path) -> Result<()> {
        self.check().map_err(|m| LmError::bad(path, m))
    }

    /// [`LlamaConfig::validate`] without a path: the problem as a message.
    pub fn check(&self) -> std::result::Result<(), String> {
        let bounds = [
            ("vocab_size", self.vocab_size, MAX_VOCAB),
            ("hidden_size", self.hidden_size, MAX_HIDDEN),
            (
                "intermediate_size",
                self.intermediate_size,
                MAX_INTERMEDIATE,
            ),
            ("num_hidden_layers", self.num_hidden_layers, MAX_LAYERS),
            ("num_attention_heads", self.num_attention_heads, MAX_HEADS),
            ("num_key_value_heads", self.num_key_value_heads, MAX_HEADS),
            (
                "max_position_embeddings",
                self.max_position_embeddings,
                MAX_CONTEXT,
            ),
        ];
        for (name, v, max) in bounds {
            if v == 0 || v > max {
                return Err(format!("{name} = {v} is out of range 1..={max}"));
            }
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads)
            || !self.head_dim().is_multiple_of(2)
        {
            return Err(format!(
                "hidden size {} is not an even multiple of {} heads",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if !self
            .num_attention_heads
            .is_multiple_of(self.num_key_value_heads)
        {
            return Err(format!(
                "{} query heads are not a multiple of {} key/value heads",
                self.num_attention_heads, self.num_key_value_heads
            ));
        }
        if !(self.rope_theta.is_finite() && self.rope_theta > 1.0) {
            return Err(format!(
                "rope base {} must be a finite number above 1",
                self.rope_theta
            ));
        }
        if !(self.rms_norm_eps.is_finite() && self.rms_norm_eps > 0.0 && self.rms_norm_eps < 1.0) {
            return Err(format!(
                "RMS norm epsilon {} must be a finite number in (0, 1)",
                self.rms_norm_eps
            ));
        }
        for (name, id) in [
            ("bos_token_id", self.bos_token_id),
            ("eos_token_id", self.eos_token_id),
        ] {
            if let Some(id) = id {
                if id as usize >= self.vocab_size {
                    return Err(format!(
                        "{name} {id} is outside the vocabulary of {}",
                        self.vocab_size
                    ));
                }
            }
        }
        Ok(())
    }

    /// Reads the configuration from GGUF metadata (`llama.*` keys).
    pub fn from_gguf(g: &GgufFile) -> Result<Self> {
        let path = g.path();
        let arch = g
            .get("general.architecture")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        if arch != "llama" {
            return Err(LmError::UnsupportedArch {
                path: path.into(),
                arch: arch.into(),
            });
        }
        let int = |v: &crate::gguf::Value| v.as_u64().and_then(|v| usize::try_from(v).ok());
        let req = |k: &str| -> Result<usize> {
            g.get(&format!("llama.{k}")).and_then(int).ok_or_else(|| {
                LmError::bad(path, format!("missing or non-integer metadata `llama.{k}`"))
            })
        };
        let hidden = req("embedding_length")?;
        let heads = req("attention.head_count")?;
        let kv = match g.get("llama.attention.head_count_kv") {
            None => heads,
            Some(v) => int(v).ok_or_else(|| {
                LmError::bad(path, "non-integer metadata `llama.attention.head_count_kv`")
            })?,
        };
        let emb = g
            .tensors
            .get("token_embd.weight")
            .ok_or_else(|| LmError::MissingTensor {
                path: path.into(),
                name: "token_embd.weight".into(),
            })?;
        let vocab = g
            .get("llama.vocab_size")
            .and_then(int)
            .unwrap_or(emb.shape.first().copied().unwrap_or(0));
        let float = |k: &str, default: f64| -> Result<f64> {
            match g.get(k) {
                None => Ok(default),
                Some(v) => v
                    .as_f64()
                    .ok_or_else(|| LmError::bad(path, format!("non-numeric metadata `{k}`"))),
            }
        };
        let context = match g.get("llama.context_length") {
            None => 2048,
            Some(v) => int(v)
                .ok_or_else(|| LmError::bad(path, "non-integer metadata `llama.context_length`"))?,
        };
        let token = |k: &str| -> Result<Option<u32>> {
            match g.get(k) {
                None => Ok(None),
                Some(v) => v
                    .as_u64()
                    .and_then(|v| u32::try_from(v).ok())
                    .map(Some)
                    .ok_or_else(|| LmError::bad(path, format!("invalid token id `{k}`"))),
            }
        };
        let cfg = LlamaConfig {
            vocab_size: vocab,
            hidden_size: hidden,
            intermediate_size: req("feed_forward_length")?,
            num_hidden_layers: req("block_count")?,
            num_attention_heads: heads,
            num_key_value_heads: kv,
            rms_norm_eps: float("llama.attention.layer_norm_rms_epsilon", 1e-5)?,
            rope_theta: float("llama.rope.freq_base", 10_000.0)?,
            max_position_embeddings: context,
            tie_word_embeddings: !g.tensors.contains_key("output.weight"),
            bos_token_id: token("tokenizer.ggml.bos_token_id")?,
            eos_token_id: token("tokenizer.ggml.eos_token_id")?,
            architectures: default_arch(),
            model_type: default_model_type(),
        };
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// Reads an HF `config.json`.
    pub fn from_json_file(path: &Path) -> Result<Self> {
        let text = tessera_core::fsx::read_to_string(path)?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| LmError::bad(path, format!("invalid JSON: {e}")))?;
        let mt = v
            .get("model_type")
            .and_then(|m| m.as_str())
            .unwrap_or("llama");
        if mt != "llama" && mt != "mistral" {
            return Err(LmError::UnsupportedArch {
                path: path.into(),
                arch: mt.into(),
            });
        }
        let mut v = v;
        // Some configs give eos_token_id as a list; take the first.
        if let Some(first) = v["eos_token_id"]
            .as_array()
            .and_then(|a| a.first())
            .cloned()
        {
            v["eos_token_id"] = first;
        }
        let cfg: LlamaConfig = serde_json::from_value(v)
            .map_err(|e| LmError::bad(path, format!("invalid config: {e}")))?;
        cfg.validate(path)?;
        Ok(cfg)
    }
}
