//! Sentence embeddings of names: the [`TextEmbedder`] seam (MiniLM in production, anything in tests), the
//! [`TermIndex`] of every GO BP name (nearest term, percentile) and the paper's score.
//!
//! The paper embeds names with SapBERT (mean pooling); SapBERT is not obtainable here (no package ships it), so
//! all-MiniLM-L6-v2 (`tessera-embed`) stands in: cosines are on a different scale from the paper's.
use crate::error::{BioError, Result};
use crate::ontology::Ontology;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Anything that turns texts into unit-length vectors.
pub trait TextEmbedder: Send + Sync {
    /// One vector per text, in order.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>>;
    /// A short stable id (names cached embeddings).
    fn id(&self) -> String;
}

impl TextEmbedder for tessera_embed::Embedder {
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        Ok(tessera_embed::Embedder::embed(self, texts)?)
    }
    fn id(&self) -> String {
        tessera_embed::DEFAULT_MODEL.to_string()
    }
}

/// Cosine similarity (0 for a zero vector).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    tessera_embed::cosine(a, b)
}

/// Embeds texts in chunks of at most `chunk`.
pub fn embed_chunked(
    emb: &dyn TextEmbedder,
    texts: &[&str],
    chunk: usize,
) -> Result<Vec<Vec<f32>>> {
    let mut out = Vec::with_capacity(texts.len());
    for c in texts.chunks(chunk.max(1)) {
        let v = emb.embed(c)?;
        if v.len() != c.len() {
            return Err(BioError::invalid(format!(
                "embedder returned {} vectors for {} texts",
                v.len(),
                c.len()
            )));
        }
        out.extend(v);
    }
    Ok(out)
}

/// The embeddings of every term name of an ontology.
#[derive(Debug, Clone)]
pub struct TermIndex {
    dim: usize,
    vecs: Vec<f32>,
    len: usize,
}

/// FNV-1a 64 of the names (a cache key, not a checksum of anything security-relevant).
fn fingerprint(names: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for n in names {
        for b in n.bytes().chain(std::iter::once(0u8)) {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
    }
    h
}

impl TermIndex {
    /// Embeds every term name of `ont`. With `cache_dir`, the vectors are read from (or written to) a file named
    /// after the embedder and a fingerprint of the names, so a second run does not embed 28k names again.
    pub fn build(ont: &Ontology, emb: &dyn TextEmbedder, cache_dir: Option<&Path>) -> Result<Self> {
        let names: Vec<&str> = ont.terms().iter().map(|t| t.name.as_str()).collect();
        let file: Option<PathBuf> = cache_dir.map(|d| {
            d.join(format!(
                "term-names-{}-{:016x}.f32",
                emb.id().replace(['/', ':'], "_"),
                fingerprint(&names)
            ))
        });
        if let Some(f) = &file {
            if let Ok(bytes) = std::fs::read(f) {
                if !bytes.is_empty() && bytes.len() % (4 * names.len().max(1)) == 0 {
                    let vecs: Vec<f32> = bytes
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect();
                    let dim = vecs.len() / names.len();
                    return Ok(TermIndex {
                        dim,
                        vecs,
                        len: names.len(),
                    });
                }
            }
        }
        // Batches pad to their longest member: embedding names sorted by length wastes far less compute.
        let mut order: Vec<usize> = (0..names.len()).collect();
        order.sort_by_key(|&i| names[i].len());
        let sorted: Vec<&str> = order.iter().map(|&i| names[i]).collect();
        let sorted_rows = embed_chunked(emb, &sorted, 128)?;
        let mut rows = vec![Vec::new(); names.len()];
        for (k, v) in order.into_iter().zip(sorted_rows) {
            rows[k] = v;
        }
        let dim = rows.first().map(Vec::len).unwrap_or(0);
        if dim == 0 || rows.iter().any(|r| r.len() != dim) {
            return Err(BioError::invalid("embedder returned ragged vectors"));
        }
        let vecs: Vec<f32> = rows.into_iter().flatten().collect();
        if let Some(f) = &file {
            if let Some(d) = f.parent() {
                std::fs::create_dir_all(d).map_err(|e| tessera_core::Error::io(d, e))?;
            }
            let bytes: Vec<u8> = vecs.iter().flat_map(|x| x.to_le_bytes()).collect();
            tessera_core::fsx::write_atomic(f, &bytes)?;
        }
        Ok(TermIndex {
            dim,
            vecs,
            len: names.len(),
        })
    }

    /// Number of terms.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Term `i`'s vector.
    pub fn vector(&self, i: usize) -> &[f32] {
        &self.vecs[i * self.dim..(i + 1) * self.dim]
    }

    /// The cosine of `v` to every term.
    pub fn similarities(&self, v: &[f32]) -> Vec<f32> {
        (0..self.len).map(|i| cosine(v, self.vector(i))).collect()
    }

    /// The term most similar to `v` and its cosine.
    pub fn nearest(&self, v: &[f32]) -> (usize, f32) {
        self.similarities(v)
            .into_iter()
            .enumerate()
            .fold(
                (0, f32::NEG_INFINITY),
                |b, (i, s)| if s > b.1 { (i, s) } else { b },
            )
    }

    /// The fraction of terms whose similarity to `v` is below `score` (the paper's percentile).
    pub fn percentile(&self, v: &[f32], score: f32) -> f64 {
        if self.len == 0 {
            return 0.0;
        }
        let below = self.similarities(v).iter().filter(|&&s| s < score).count();
        below as f64 / self.len as f64
    }
}

/// A prediction scored against the gold name.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
pub struct Score {
    /// Cosine of the prediction's and the gold name's embeddings.
    pub cosine: f64,
    /// Fraction of GO BP names less similar to the prediction than the gold name is.
    pub percentile: f64,
}

impl Score {
    /// The score of no prediction (the paper's 0 for gene sets without enrichment).
    pub const NONE: Score = Score {
        cosine: 0.0,
        percentile: 0.0,
    };
}

/// Scores `prediction` against `gold` (an empty prediction scores [`Score::NONE`]).
pub fn score(
    emb: &dyn TextEmbedder,
    index: &TermIndex,
    prediction: &str,
    gold: &str,
) -> Result<Score> {
    if prediction.trim().is_empty() {
        return Ok(Score::NONE);
    }
    let v = emb.embed(&[prediction, gold])?;
    let c = cosine(&v[0], &v[1]);
    Ok(Score {
        cosine: c as f64,
        percentile: index.percentile(&v[0], c),
    })
}
