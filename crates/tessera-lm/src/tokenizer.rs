//! Tokenizer and chat template.
//!
//! From GGUF: `tokenizer.ggml.{tokens,merges,token_type}` become a byte-level BPE. The pre-tokenizer follows
//! `tokenizer.ggml.pre`: for `smollm` digits are split one by one, then byte-level splitting with **no** prefix space
//! (candle's GGUF tokenizer adds one and gets this model's ids wrong). Token types 3 (control) and 4 (user-defined)
//! are special tokens. From a directory: `tokenizer.json`.
use crate::error::{LmError, Result};
use crate::gguf::GgufFile;
use std::path::Path;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, PreTokenizerWrapper, Tokenizer as HfTokenizer};

pub use tessera_core::chat::ChatMessage;

/// The ChatML template (`<|im_start|>role\n...<|im_end|>\n`) with the model's default system prompt.
#[derive(Debug, Clone, Default)]
pub struct ChatTemplate {
    /// Inserted as the system message when the conversation has none.
    pub default_system: Option<String>,
}

impl ChatTemplate {
    /// Reads the default system prompt out of a Jinja ChatML template such as SmolLM2's.
    pub fn from_jinja(template: &str) -> Self {
        // The newline after the role is either a real newline or an escaped `\n` inside a Jinja string.
        let marker = "<|im_start|>system";
        let default_system = template.find(marker).and_then(|i| {
            let rest = &template[i + marker.len()..];
            let rest = rest
                .strip_prefix('\n')
                .or_else(|| rest.strip_prefix("\\n"))?;
            rest.find("<|im_end|>")
                .map(|j| rest[..j].to_string())
                .filter(|s| !s.contains("{{") && !s.is_empty())
        });
        ChatTemplate { default_system }
    }

    /// Renders messages; with `add_generation_prompt` the text ends with the assistant header.
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> String {
        let mut out = String::new();
        if let (Some(sys), true) = (
            &self.default_system,
            messages.first().is_none_or(|m| m.role != "system"),
        ) {
            out.push_str(&format!("<|im_start|>system\n{sys}<|im_end|>\n"));
        }
        for m in messages {
            out.push_str(&format!(
                "<|im_start|>{}\n{}<|im_end|>\n",
                m.role, m.content
            ));
        }
        if add_generation_prompt {
            out.push_str("<|im_start|>assistant\n");
        }
        out
    }
}

/// A tokenizer plus the model's special ids and chat template.
#[derive(Clone)]
pub struct Tokenizer {
    inner: HfTokenizer,
    /// BOS id, when the model has one.
    pub bos_id: Option<u32>,
    /// Ids that end generation.
    pub eos_ids: Vec<u32>,
    /// Whether to prepend BOS when encoding a document.
    pub add_bos: bool,
    /// The chat template.
    pub template: ChatTemplate,
}

impl Tokenizer {
    /// Builds the tokenizer described by a GGUF file's metadata.
    pub fn from_gguf(g: &GgufFile) -> Result<Self> {
        let path = g.path();
        let bad = |m: &str| LmError::bad(path, m.to_string());
        let model = g
            .get("tokenizer.ggml.model")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        if model != "gpt2" {
            return Err(bad(&format!(
                "tokenizer model `{model}` is not supported (byte-level BPE `gpt2` only)"
            )));
        }
        let tokens: Vec<String> = g
            .get("tokenizer.ggml.tokens")
            .and_then(|v| v.as_array())
            .ok_or_else(|| bad("missing tokenizer.ggml.tokens"))?
            .iter()
            .map(|t| {
                t.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| bad("non-string token"))
            })
            .collect::<Result<_>>()?;
        let merges: Vec<(String, String)> = g
            .get("tokenizer.ggml.merges")
            .and_then(|v| v.as_array())
            .ok_or_else(|| bad("missing tokenizer.ggml.merges"))?
            .iter()
            .map(|m| {
                let s = m.as_str().ok_or_else(|| bad("non-string merge"))?;
                let (a, b) = s
                    .split_once(' ')
                    .ok_or_else(|| bad("merge without a space"))?;
                Ok((a.to_string(), b.to_string()))
            })
            .collect::<Result<_>>()?;
        let types: Vec<u64> = g
            .get("tokenizer.ggml.token_type")
            .and_then(|v| v.as_array())
            .map(|a| a.iter().map(|t| t.as_u64().unwrap_or(1)).collect())
            .unwrap_or_default();
        let vocab: Vocab = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|e| LmError::Tokenizer(format!("{}: {e}", path.display())))?;
        let mut inner = HfTokenizer::new(bpe);
        let pre = g
            .get("tokenizer.ggml.pre")
            .and_then(|v| v.as_str())
            .unwrap_or("default");
        let byte_level = ByteLevel::new(false, true, true);
        let pre_tok: PreTokenizerWrapper = if pre == "smollm" {
            Sequence::new(vec![Digits::new(true).into(), byte_level.into()]).into()
        } else {
            byte_level.into()
        };
        inner.with_pre_tokenizer(Some(pre_tok));
        inner.with_decoder(Some(ByteLevel::default()));
        let specials: Vec<AddedToken> = tokens
            .iter()
            .zip(types.iter())
            .filter(|(_, &t)| t == 3 || t == 4)
            .map(|(tok, _)| AddedToken::from(tok.clone(), true))
            .collect();
        inner
            .add_special_tokens(specials)
            .map_err(|e| LmError::Tokenizer(format!("{}: {e}", path.display())))?;
        let bos_id = g
            .get("tokenizer.ggml.bos_token_id")
            .and_then(|v| v.as_u64())
            .map(|v| v as u32);
        let eos_id = g
            .get("tokenizer.ggml.eos_token_id")
            .and_then(|v| v.as_u64())
            .map(|v| v as u32);
        let add_bos = g
            .get("tokenizer.ggml.add_bos_token")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        let template = g
            .get("tokenizer.chat_template")
            .and_then(|v| v.as_str())
            .map(ChatTemplate::from_jinja)
            .unwrap_or_default();
        let mut eos_ids: Vec<u32> = eos_id.into_iter().collect();
        if let Some(i) = tokens.iter().position(|t| t == "<|im_end|>") {
            if !eos_ids.contains(&(i as u32)) {
                eos_ids.push(i as u32);
            }
        }
        Ok(Tokenizer {
            inner,
            bos_id,
            eos_ids,
            add_bos,
            template,
        })
    }

    /// Loads `tokenizer.json` (and `tokenizer_config.json`'s template when present) from a directory.
    pub fn from_dir(dir: &Path, bos_id: Option<u32>, eos_id: Option<u32>) -> Result<Self> {
        let p = dir.join("tokenizer.json");
        let inner = HfTokenizer::from_file(&p)
            .map_err(|e| LmError::Tokenizer(format!("{}: {e}", p.display())))?;
        let mut template = ChatTemplate::default();
        let mut add_bos = false;
        if let Ok(text) = std::fs::read_to_string(dir.join("tokenizer_config.json")) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
                if let Some(t) = v["chat_template"].as_str() {
                    template = ChatTemplate::from_jinja(t);
                }
                add_bos = v["add_bos_token"].as_bool().unwrap_or(false);
            }
        }
        let mut eos_ids: Vec<u32> = eos_id.into_iter().collect();
        if let Some(i) = inner.token_to_id("<|im_end|>") {
            if !eos_ids.contains(&i) {
                eos_ids.push(i);
            }
        }
        Ok(Tokenizer {
            inner,
            bos_id,
            eos_ids,
            add_bos,
            template,
        })
    }

    /// Saves `tokenizer.json` and a `tokenizer_config.json` holding the template and BOS flag.
    pub fn save_dir(&self, dir: &Path) -> Result<()> {
        let json = self
            .inner
            .to_string(false)
            .map_err(|e| LmError::Tokenizer(e.to_string()))?;
        tessera_core::fsx::write_atomic(dir.join("tokenizer.json"), json.as_bytes())?;
        let mut cfg = serde_json::json!({ "add_bos_token": self.add_bos });
        if let Some(sys) = &self.template.default_system {
            cfg["chat_template"] = serde_json::Value::String(format!(
                "{{% if messages[0]['role'] != 'system' %}}<|im_start|>system\\n{sys}<|im_end|>\\n{{% endif %}}"
            ));
        }
        tessera_core::fsx::write_json_atomic(dir.join("tokenizer_config.json"), &cfg)?;
        Ok(())
    }

    /// Encodes text; special-token strings in `text` are recognised. BOS is added when `add_bos` is set and the
    /// model has one.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| LmError::Tokenizer(e.to_string()))?;
        let mut ids = Vec::with_capacity(enc.len() + 1);
        if self.add_bos {
            ids.extend(self.bos_id);
        }
        ids.extend_from_slice(enc.get_ids());
        Ok(ids)
    }

    /// Encodes text without BOS.
    pub fn encode_plain(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| LmError::Tokenizer(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Decodes ids; special tokens are kept only when `keep_special`.
    pub fn decode(&self, ids: &[u32], keep_special: bool) -> Result<String> {
        self.inner
            .decode(ids, !keep_special)
            .map_err(|e| LmError::Tokenizer(e.to_string()))
    }

    /// The token string for an id.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Renders a conversation with the chat template and encodes it.
    pub fn encode_chat(&self, messages: &[ChatMessage]) -> Result<Vec<u32>> {
        self.encode_plain(&self.template.render(messages, true))
    }
}
