//! `tessera info` for sparsity: measured zeros per projection matrix and overall, the masks of a pruned
//! checkpoint and whether the weights are zero wherever their mask is, and the N:M patterns every matrix obeys.
use crate::checkpoint_dir::{read_masks, MASKS_FILE};
use crate::error::Result;
use crate::prune::weight_rows;
use std::path::{Path, PathBuf};
use tessera_lm::Llama;

/// Sparsity of one matrix.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MatrixInfo {
    /// HF weight name.
    pub name: String,
    /// `(rows, cols)`.
    pub shape: [usize; 2],
    /// Exact zeros in the weight.
    pub zeros: usize,
    /// `zeros / (rows·cols)`.
    pub sparsity: f64,
    /// Pruned ratio of its mask, when the directory has one for it.
    pub mask_sparsity: Option<f64>,
    /// Whether the weight is zero wherever the mask is 0.
    pub mask_respected: Option<bool>,
}

/// What `tessera info --json` adds under `sparsity`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SparsityInfo {
    /// The model path.
    pub path: PathBuf,
    /// Zeros / weights over the seven projections of every block (embeddings, norms, head excluded).
    pub sparsity: f64,
    /// Exact zeros in those matrices.
    pub zeros: usize,
    /// Weights in those matrices.
    pub weights: usize,
    /// Per matrix.
    pub matrices: Vec<MatrixInfo>,
    /// Whether the directory has `masks.safetensors`.
    pub masks: bool,
    /// Number of masks that are not respected by their weight (0 for a valid pruned checkpoint).
    pub masks_violated: usize,
    /// N:M patterns (of 2:4, 4:8) that every projection satisfies (at least N zeros in every group of M).
    pub nm_patterns: Vec<String>,
    /// The directory's `prune.json` / `sparselora.json` record, if any.
    pub record: Option<serde_json::Value>,
}

fn satisfies_nm(w: &[f32], cols: usize, n: usize, m: usize) -> bool {
    cols.is_multiple_of(m)
        && w.chunks(m)
            .all(|g| g.iter().filter(|&&x| x == 0.0).count() >= n)
}

/// Sparsity facts of `model`, loaded from `path` (masks and records are read from `path` when it is a directory).
pub fn info(model: &Llama, path: &Path) -> Result<SparsityInfo> {
    let masks = if path.is_dir() && path.join(MASKS_FILE).is_file() {
        Some(read_masks(path)?)
    } else {
        None
    };
    let mut matrices = vec![];
    let (mut zeros, mut weights) = (0usize, 0usize);
    let mut nm = vec![(2usize, 4usize, true), (4, 8, true)];
    let mut violated = 0;
    for (i, b) in model.blocks.iter().enumerate() {
        for (n, l) in b.linears() {
            let name = format!("model.layers.{i}.{n}.weight");
            let (w, rows, cols) = weight_rows(l)?;
            let z = w.iter().filter(|&&x| x == 0.0).count();
            for e in nm.iter_mut() {
                e.2 = e.2 && satisfies_nm(&w, cols, e.0, e.1);
            }
            let mask = masks.as_ref().and_then(|m| m.get(&name));
            let respected = mask.map(|m| {
                m.keep.len() == w.len() && m.keep.iter().zip(&w).all(|(&k, &x)| k == 1 || x == 0.0)
            });
            if respected == Some(false) {
                violated += 1;
            }
            zeros += z;
            weights += w.len();
            matrices.push(MatrixInfo {
                name,
                shape: [rows, cols],
                zeros: z,
                sparsity: z as f64 / w.len().max(1) as f64,
                mask_sparsity: mask.map(|m| m.sparsity()),
                mask_respected: respected,
            });
        }
    }
    let record = ["prune.json", "sparselora.json"]
        .iter()
        .map(|f| path.join(f))
        .find(|p| path.is_dir() && p.is_file())
        .map(|p| -> Result<serde_json::Value> {
            let s = tessera_core::fsx::read_to_string(&p)?;
            Ok(serde_json::from_str(&s)
                .map_err(|e| tessera_core::Error::format(&p, format!("not valid JSON: {e}")))?)
        })
        .transpose()?;
    Ok(SparsityInfo {
        path: path.into(),
        sparsity: zeros as f64 / weights.max(1) as f64,
        zeros,
        weights,
        matrices,
        masks: masks.is_some(),
        masks_violated: violated,
        nm_patterns: nm
            .into_iter()
            .filter(|e| e.2 && zeros > 0)
            .map(|e| format!("{}:{}", e.0, e.1))
            .collect(),
        record,
    })
}

/// Loads the model at `path` (GGUF file or HF directory, masks baked in) and returns its [`SparsityInfo`].
pub fn info_dir(path: &Path) -> Result<SparsityInfo> {
    info(&tessera_lm::load(path)?, path)
}
