//! Sentence embeddings with all-MiniLM-L6-v2 (Reimers & Gurevych 2019, Sentence-BERT; Wang et al. 2020, MiniLM).
//!
//! The BERT encoder is candle-transformers' `BertModel` on the weights of the `all-minilm-l6-v2` asset. A
//! sentence's vector is the mean of its last hidden states over the attention mask, L2-normalised, so the cosine
//! of two sentences is their dot product. Batches are padded to their longest member (the asset's
//! `tokenizer.json` asks for a fixed 128, which costs ~10× on short sentences), and a small cache returns
//! repeated strings without running the model.
//!
//! Entry points: [`Embedder::load`] / [`Embedder::from_asset`], [`Embedder::embed`], [`cosine`], and the
//! typed [`run`] (`EmbedConfig` → [`EmbedReport`], the JSON of `tessera embed --json`).
#![deny(missing_docs)]

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config as BertConfig};
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Everything that can go wrong embedding text.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// A model file is missing or malformed.
    #[error("{path}: {msg}")]
    BadFile {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// Invalid argument from the caller.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// Tokenizer failure.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// Tensor-library failure.
    #[error("tensor op: {0}")]
    Candle(#[from] candle_core::Error),
    /// Asset or I/O error.
    #[error(transparent)]
    Core(#[from] tessera_core::Error),
}

/// Result alias for this crate.
pub type Result<T, E = EmbedError> = std::result::Result<T, E>;

/// The asset name of the default model.
pub const DEFAULT_MODEL: &str = "all-minilm-l6-v2";

/// Longest input in tokens (sentence-transformers' `max_seq_length` for all-MiniLM-L6-v2); longer texts are
/// truncated.
pub const MAX_TOKENS: usize = 256;

/// Strings kept in the cache by default.
pub const DEFAULT_CACHE: usize = 1024;

/// A loaded sentence embedder.
pub struct Embedder {
    model: BertModel,
    tokenizer: tokenizers::Tokenizer,
    dim: usize,
    cache: Mutex<Cache>,
}

struct Cache {
    cap: usize,
    map: HashMap<String, Vec<f32>>,
    order: VecDeque<String>,
    hits: u64,
}

impl Cache {
    fn get(&mut self, s: &str) -> Option<Vec<f32>> {
        let v = self.map.get(s).cloned();
        if v.is_some() {
            self.hits += 1;
        }
        v
    }
    fn put(&mut self, s: &str, v: Vec<f32>) {
        if self.cap == 0 || self.map.contains_key(s) {
            return;
        }
        while self.map.len() >= self.cap {
            match self.order.pop_front() {
                Some(old) => {
                    self.map.remove(&old);
                }
                None => break,
            }
        }
        self.order.push_back(s.to_string());
        self.map.insert(s.to_string(), v);
    }
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder").field("dim", &self.dim).finish()
    }
}

impl Embedder {
    /// Loads a BERT sentence embedder from a directory holding `config.json`, `model.safetensors` and
    /// `tokenizer.json`.
    pub fn load(dir: &Path) -> Result<Self> {
        let need = |name: &str| -> Result<PathBuf> {
            let p = dir.join(name);
            if p.is_file() {
                Ok(p)
            } else {
                Err(EmbedError::BadFile {
                    path: p,
                    msg: "missing (expected config.json, model.safetensors and tokenizer.json)"
                        .into(),
                })
            }
        };
        let (cfg_p, w_p, tok_p) = (
            need("config.json")?,
            need("model.safetensors")?,
            need("tokenizer.json")?,
        );
        let cfg: BertConfig = serde_json::from_str(&tessera_core::fsx::read_to_string(&cfg_p)?)
            .map_err(|e| EmbedError::BadFile {
                path: cfg_p.clone(),
                msg: format!("not a BERT config: {e}"),
            })?;
        let dim =
            serde_json::from_str::<serde_json::Value>(&tessera_core::fsx::read_to_string(&cfg_p)?)
                .ok()
                .and_then(|v| v["hidden_size"].as_u64())
                .ok_or_else(|| EmbedError::BadFile {
                    path: cfg_p.clone(),
                    msg: "no hidden_size".into(),
                })? as usize;
        let tensors = candle_core::safetensors::load(&w_p, &Device::Cpu).map_err(|e| {
            EmbedError::BadFile {
                path: w_p.clone(),
                msg: format!("not a valid safetensors file: {e}"),
            }
        })?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
        let model = BertModel::load(vb, &cfg).map_err(|e| EmbedError::BadFile {
            path: w_p.clone(),
            msg: format!("weights do not fit the BERT config: {e}"),
        })?;
        let mut tokenizer =
            tokenizers::Tokenizer::from_file(&tok_p).map_err(|e| EmbedError::BadFile {
                path: tok_p.clone(),
                msg: format!("not a tokenizer: {e}"),
            })?;
        let pad_id = tokenizer.get_padding().map(|p| p.pad_id).unwrap_or(0);
        let pad_token = tokenizer
            .get_padding()
            .map(|p| p.pad_token.clone())
            .unwrap_or_else(|| "[PAD]".into());
        tokenizer.with_padding(Some(tokenizers::PaddingParams {
            strategy: tokenizers::PaddingStrategy::BatchLongest,
            pad_id,
            pad_token,
            ..Default::default()
        }));
        tokenizer
            .with_truncation(Some(tokenizers::TruncationParams {
                max_length: MAX_TOKENS,
                ..Default::default()
            }))
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        Ok(Embedder {
            model,
            tokenizer,
            dim,
            cache: Mutex::new(Cache {
                cap: DEFAULT_CACHE,
                map: HashMap::new(),
                order: VecDeque::new(),
                hits: 0,
            }),
        })
    }

    /// Loads the `all-minilm-l6-v2` asset, fetching it unless `offline`.
    pub fn from_asset(offline: bool) -> Result<Self> {
        let a = tessera_core::assets::find_model(DEFAULT_MODEL)
            .ok_or_else(|| EmbedError::Invalid(format!("no asset named {DEFAULT_MODEL}")))?;
        let main = tessera_core::assets::resolve_model(a.name, offline)?;
        let dir = main
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| a.main_dir());
        Self::load(&dir)
    }

    /// Vector width (384 for MiniLM-L6).
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Sets how many strings the cache keeps (0 disables it) and empties it.
    pub fn set_cache_capacity(&self, cap: usize) {
        let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        c.cap = cap;
        c.map.clear();
        c.order.clear();
    }

    /// How many strings were served from the cache so far.
    pub fn cache_hits(&self) -> u64 {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).hits
    }

    /// Embeds every text: unit-length vectors of [`Embedder::dim`] floats, in input order. Texts already in the
    /// cache are not recomputed; the rest run as one batch padded to its longest member.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let mut out: Vec<Option<Vec<f32>>> = vec![None; texts.len()];
        let mut todo: Vec<&str> = Vec::new();
        {
            let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            for (i, t) in texts.iter().enumerate() {
                if let Some(v) = c.get(t) {
                    out[i] = Some(v);
                } else if !todo.contains(t) {
                    todo.push(t);
                }
            }
        }
        if !todo.is_empty() {
            let fresh = self.embed_uncached(&todo)?;
            let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            for (t, v) in todo.iter().zip(&fresh) {
                c.put(t, v.clone());
            }
            for (i, t) in texts.iter().enumerate() {
                if out[i].is_none() {
                    let k = todo.iter().position(|x| x == t).expect("queued above");
                    out[i] = Some(fresh[k].clone());
                }
            }
        }
        Ok(out.into_iter().map(|v| v.expect("filled")).collect())
    }

    /// Embeds one batch without the cache.
    fn embed_uncached(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let enc = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        let b = enc.len();
        let t = enc.iter().map(|e| e.get_ids().len()).max().unwrap_or(0);
        if t == 0 {
            return Err(EmbedError::Invalid(
                "the tokenizer produced no tokens".into(),
            ));
        }
        let mut ids = Vec::with_capacity(b * t);
        let mut mask = Vec::with_capacity(b * t);
        let mut types = Vec::with_capacity(b * t);
        for e in &enc {
            ids.extend_from_slice(e.get_ids());
            mask.extend_from_slice(e.get_attention_mask());
            types.extend_from_slice(e.get_type_ids());
        }
        let dev = Device::Cpu;
        let ids = Tensor::from_vec(ids, (b, t), &dev)?;
        let types = Tensor::from_vec(types, (b, t), &dev)?;
        let mask = Tensor::from_vec(mask, (b, t), &dev)?;
        let h = self.model.forward(&ids, &types, Some(&mask))?; // [b, t, dim]
        let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?; // [b, t, 1]
        let sum = h.broadcast_mul(&m)?.sum(1)?; // [b, dim]
        let count = m.sum(1)?.clamp(1e-9, f64::MAX)?; // [b, 1]
        let mean = sum.broadcast_div(&count)?;
        let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
        Ok(mean.broadcast_div(&norm)?.to_vec2::<f32>()?)
    }
}

/// Cosine similarity of two vectors (0 when either is zero).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut d, mut na, mut nb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        d += x as f64 * y as f64;
        na += x as f64 * x as f64;
        nb += y as f64 * y as f64;
    }
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    (d / (na.sqrt() * nb.sqrt())) as f32
}

/// What [`run`] embeds.
#[derive(Debug, Clone, Default)]
pub struct EmbedConfig {
    /// The texts (at least one).
    pub texts: Vec<String>,
    /// A model directory; `None` uses the `all-minilm-l6-v2` asset.
    pub model_dir: Option<PathBuf>,
    /// Never download the asset.
    pub offline: bool,
}

/// The result of [`run`] (the JSON of `tessera embed --json`).
#[derive(Debug, Clone, Serialize)]
pub struct EmbedReport {
    /// Model directory or asset name.
    pub model: String,
    /// Vector width.
    pub dim: usize,
    /// The texts, in order.
    pub texts: Vec<String>,
    /// One unit vector per text.
    pub vectors: Vec<Vec<f32>>,
    /// `cosines[i][j]` = cosine of texts `i` and `j`.
    pub cosines: Vec<Vec<f32>>,
}

/// Loads the embedder, embeds the texts and computes all pairwise cosines.
pub fn run(cfg: &EmbedConfig) -> Result<EmbedReport> {
    if cfg.texts.is_empty() {
        return Err(EmbedError::Invalid(
            "give at least one text to embed".into(),
        ));
    }
    let (emb, model) = match &cfg.model_dir {
        Some(d) => (Embedder::load(d)?, d.display().to_string()),
        None => (
            Embedder::from_asset(cfg.offline)?,
            DEFAULT_MODEL.to_string(),
        ),
    };
    let refs: Vec<&str> = cfg.texts.iter().map(String::as_str).collect();
    let vectors = emb.embed(&refs)?;
    let cosines = vectors
        .iter()
        .map(|a| vectors.iter().map(|b| cosine(a, b)).collect())
        .collect();
    Ok(EmbedReport {
        model,
        dim: emb.dim(),
        texts: cfg.texts.clone(),
        vectors,
        cosines,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_of_known_vectors() {
        assert!((cosine(&[1.0, 0.0], &[0.0, 2.0])).abs() < 1e-7);
        assert!((cosine(&[1.0, 1.0], &[2.0, 2.0]) - 1.0).abs() < 1e-6);
        assert!((cosine(&[1.0, 0.0], &[-1.0, 0.0]) + 1.0).abs() < 1e-6);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
    }

    #[test]
    fn cache_evicts_oldest() {
        let mut c = Cache {
            cap: 2,
            map: HashMap::new(),
            order: VecDeque::new(),
            hits: 0,
        };
        c.put("a", vec![1.0]);
        c.put("b", vec![2.0]);
        c.put("c", vec![3.0]);
        assert!(c.get("a").is_none());
        assert_eq!(c.get("c"), Some(vec![3.0]));
        assert_eq!(c.hits, 1);
    }

    #[test]
    fn missing_model_dir_is_a_typed_error() {
        let d = std::env::temp_dir().join("tessera-embed-no-such-dir");
        let e = Embedder::load(&d).unwrap_err();
        assert!(matches!(e, EmbedError::BadFile { .. }), "{e}");
        assert!(run(&EmbedConfig::default()).is_err());
    }
}
