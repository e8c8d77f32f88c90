//! Text encoders for entity linking and alias merging: MiniLM sentence embeddings (the default, DALK used
//! all-mpnet-base-v2) or a lexical character-trigram hashing encoder (no model files; tests and quick runs).
use crate::error::{KgError, Result};
use serde::{Deserialize, Serialize};

/// Turns texts into vectors compared by cosine.
pub trait TextEncoder: Send + Sync {
    /// One vector per text, in order, all of one width.
    fn encode(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>>;
    /// A name stored with the embeddings, so a database is never searched with another encoder's vectors.
    fn name(&self) -> String;
}

/// Which encoder to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum EncoderKind {
    /// all-MiniLM-L6-v2 through `tessera-embed`.
    #[default]
    Minilm,
    /// Hashed character trigrams (lexical similarity only).
    Hash,
}

impl std::str::FromStr for EncoderKind {
    type Err = KgError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "minilm" => Ok(EncoderKind::Minilm),
            "hash" => Ok(EncoderKind::Hash),
            _ => Err(KgError::invalid(format!(
                "encoder `{s}`: expected minilm or hash"
            ))),
        }
    }
}

impl std::fmt::Display for EncoderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EncoderKind::Minilm => "minilm",
            EncoderKind::Hash => "hash",
        })
    }
}

/// Opens an encoder (`offline`: never download the MiniLM asset).
pub fn open_encoder(kind: EncoderKind, offline: bool) -> Result<Box<dyn TextEncoder>> {
    Ok(match kind {
        EncoderKind::Minilm => Box::new(MiniLm(tessera_embed::Embedder::from_asset(offline)?)),
        EncoderKind::Hash => Box::new(HashEncoder::default()),
    })
}

/// Entities embedded per MiniLM batch (short strings; padding is to the longest in the batch).
pub const MINILM_BATCH: usize = 64;

/// all-MiniLM-L6-v2 sentence embeddings.
pub struct MiniLm(pub tessera_embed::Embedder);

impl TextEncoder for MiniLm {
    fn encode(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(MINILM_BATCH) {
            out.extend(self.0.embed(chunk)?);
        }
        Ok(out)
    }
    fn name(&self) -> String {
        "minilm".into()
    }
}

/// Character trigrams of the normalised text hashed (FNV-1a) into `dim` buckets, L2-normalised.
#[derive(Debug, Clone, Copy)]
pub struct HashEncoder {
    /// Vector width.
    pub dim: usize,
}

impl Default for HashEncoder {
    fn default() -> Self {
        HashEncoder { dim: 256 }
    }
}

fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

impl TextEncoder for HashEncoder {
    fn encode(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let dim = self.dim.max(1);
        Ok(texts
            .iter()
            .map(|t| {
                let s: Vec<char> = format!(" {} ", crate::store::normalize(t))
                    .chars()
                    .collect();
                let mut v = vec![0f32; dim];
                for w in s.windows(3) {
                    let g: String = w.iter().collect();
                    v[(fnv(g.as_bytes()) % dim as u64) as usize] += 1.0;
                }
                let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                if n > 0.0 {
                    v.iter_mut().for_each(|x| *x /= n);
                }
                v
            })
            .collect())
    }
    fn name(&self) -> String {
        format!("hash{}", self.dim)
    }
}
