//! Model configuration, read from GGUF metadata or a Hugging Face `config.json`.
use crate::error::{LmError, Result};
use crate::gguf::GgufFile;
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

    /// Checks internal consistency.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let bad = |m: String| Err(LmError::bad(path, m));
        if self.hidden_size == 0
            || self.num_attention_heads == 0
            || self.num_hidden_layers == 0
            || self.vocab_size == 0
        {
            return bad("config has a zero dimension".into());
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads)
            || !self.head_dim().is_multiple_of(2)
        {
            return bad(format!(
                "hidden size {} is not an even multiple of {} heads",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if self.num_key_value_heads == 0
            || !self
                .num_attention_heads
                .is_multiple_of(self.num_key_value_heads)
        {
            return bad(format!(
                "{} query heads are not a multiple of {} key/value heads",
                self.num_attention_heads, self.num_key_value_heads
            ));
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
        let req = |k: &str| -> Result<usize> {
            g.get(&format!("llama.{k}"))
                .and_then(|v| v.as_u64())
                .map(|v| v as usize)
                .ok_or_else(|| {
                    LmError::bad(path, format!("missing or non-integer metadata `llama.{k}`"))
                })
        };
        let hidden = req("embedding_length")?;
        let heads = req("attention.head_count")?;
        let kv = g
            .get("llama.attention.head_count_kv")
            .and_then(|v| v.as_u64())
            .map(|v| v as usize)
            .unwrap_or(heads);
        let emb = g
            .tensors
            .get("token_embd.weight")
            .ok_or_else(|| LmError::MissingTensor {
                path: path.into(),
                name: "token_embd.weight".into(),
            })?;
        let vocab = g
            .get("llama.vocab_size")
            .and_then(|v| v.as_u64())
            .map(|v| v as usize)
            .unwrap_or(emb.shape[0]);
        let cfg = LlamaConfig {
            vocab_size: vocab,
            hidden_size: hidden,
            intermediate_size: req("feed_forward_length")?,
            num_hidden_layers: req("block_count")?,
            num_attention_heads: heads,
            num_key_value_heads: kv,
            rms_norm_eps: g
                .get("llama.attention.layer_norm_rms_epsilon")
                .and_then(|v| v.as_f64())
                .unwrap_or(1e-5),
            rope_theta: g
                .get("llama.rope.freq_base")
                .and_then(|v| v.as_f64())
                .unwrap_or(10_000.0),
            max_position_embeddings: g
                .get("llama.context_length")
                .and_then(|v| v.as_u64())
                .unwrap_or(2048) as usize,
            tie_word_embeddings: !g.tensors.contains_key("output.weight"),
            bos_token_id: g
                .get("tokenizer.ggml.bos_token_id")
                .and_then(|v| v.as_u64())
                .map(|v| v as u32),
            eos_token_id: g
                .get("tokenizer.ggml.eos_token_id")
                .and_then(|v| v.as_u64())
                .map(|v| v as u32),
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
