//! Sparsity patterns and masks.
//!
//! - [`Pattern::Unstructured`]: a ratio `s ∈ [0, 1)` of the weights pruned, compared per output row (Wanda,
//!   `⌊s·d_in⌋` per row), per matrix (magnitude: one threshold) or per 128-column block (SparseGPT).
//! - [`Pattern::NM`]: in every group of `m` consecutive input weights of a row, `n` are pruned (`n < m`; the
//!   notation of Wanda and SparseGPT, where `2:4` prunes two of every four).
//!
//! A [`Mask`] is row-major, `1` = kept, `0` = pruned, as the runtime's `Linear::set_mask` takes it.
use crate::error::{PruneError, Result};
use candle_core::{DType, Device, Tensor};
use std::fmt;
use std::str::FromStr;

/// Largest group size accepted for N:M.
pub const MAX_M: usize = 64;

/// What to prune in one matrix.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pattern {
    /// Prune a ratio of the weights.
    Unstructured {
        /// Ratio pruned, in `[0, 1)`.
        sparsity: f64,
    },
    /// Prune `n` of every `m` consecutive input weights of each row.
    NM {
        /// Pruned per group (`1 ≤ n < m`).
        n: usize,
        /// Group size (`≤ MAX_M`).
        m: usize,
    },
}

impl Pattern {
    /// Unstructured at `sparsity`, checked.
    pub fn unstructured(sparsity: f64) -> Result<Self> {
        let p = Pattern::Unstructured { sparsity };
        p.validate()?;
        Ok(p)
    }
    /// `n:m`, checked.
    pub fn nm(n: usize, m: usize) -> Result<Self> {
        let p = Pattern::NM { n, m };
        p.validate()?;
        Ok(p)
    }
    /// Checks the ranges: sparsity in `[0, 1)`, `1 ≤ n < m ≤ MAX_M`.
    pub fn validate(&self) -> Result<()> {
        match *self {
            Pattern::Unstructured { sparsity } => {
                if !(sparsity.is_finite() && (0.0..1.0).contains(&sparsity)) {
                    return Err(PruneError::Sparsity(sparsity));
                }
            }
            Pattern::NM { n, m } => {
                let why = if n == 0 {
                    Some("N must be at least 1".to_string())
                } else if n >= m {
                    Some("N (weights pruned per group) must be smaller than M".to_string())
                } else if m > MAX_M {
                    Some(format!("M must be at most {MAX_M}"))
                } else {
                    None
                };
                if let Some(why) = why {
                    return Err(PruneError::Pattern { n, m, why });
                }
            }
        }
        Ok(())
    }
    /// The ratio of weights this pattern prunes.
    pub fn sparsity(&self) -> f64 {
        match *self {
            Pattern::Unstructured { sparsity } => sparsity,
            Pattern::NM { n, m } => n as f64 / m as f64,
        }
    }
    /// Checks that a matrix of `cols` input columns can take the pattern (N:M needs `cols % m == 0`).
    pub fn check_width(&self, cols: usize) -> Result<()> {
        if let Pattern::NM { n, m } = *self {
            if !cols.is_multiple_of(m) {
                return Err(PruneError::Pattern {
                    n,
                    m,
                    why: format!("input width {cols} is not a multiple of {m}"),
                });
            }
        }
        Ok(())
    }
}

impl fmt::Display for Pattern {
    /// `2:4`, or the ratio (`0.5`): what [`Pattern::from_str`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Pattern::Unstructured { sparsity } => write!(f, "{sparsity}"),
            Pattern::NM { n, m } => write!(f, "{n}:{m}"),
        }
    }
}

impl FromStr for Pattern {
    type Err = PruneError;
    /// `N:M` (`2:4`), a ratio (`0.5`) or a percentage (`50%`).
    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim();
        if let Some((a, b)) = t.split_once(':') {
            let parse = |x: &str| {
                x.trim().parse::<usize>().map_err(|_| {
                    PruneError::Invalid(format!(
                        "`{s}` is not an N:M pattern (two integers, e.g. 2:4)"
                    ))
                })
            };
            return Pattern::nm(parse(a)?, parse(b)?);
        }
        let (num, scale) = match t.strip_suffix('%') {
            Some(p) => (p, 100.0),
            None => (t, 1.0),
        };
        let v: f64 = num.trim().parse().map_err(|_| {
            PruneError::Invalid(format!(
                "`{s}` is neither a sparsity ratio (0.5, 50%) nor an N:M pattern (2:4)"
            ))
        })?;
        Pattern::unstructured(v / scale)
    }
}

impl serde::Serialize for Pattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for Pattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A 0/1 mask of a `rows × cols` weight, row-major, `1` = kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mask {
    /// Output rows.
    pub rows: usize,
    /// Input columns.
    pub cols: usize,
    /// `rows·cols` entries, 1 kept, 0 pruned.
    pub keep: Vec<u8>,
}

impl Mask {
    /// Everything kept.
    pub fn dense(rows: usize, cols: usize) -> Self {
        Mask {
            rows,
            cols,
            keep: vec![1; rows * cols],
        }
    }
    /// Pruned entries.
    pub fn pruned(&self) -> usize {
        self.keep.iter().filter(|&&k| k == 0).count()
    }
    /// Ratio of pruned entries.
    pub fn sparsity(&self) -> f64 {
        if self.keep.is_empty() {
            0.0
        } else {
            self.pruned() as f64 / self.keep.len() as f64
        }
    }
    /// As a `rows × cols` f32 tensor (for `Linear::set_mask`).
    pub fn to_tensor(&self, dev: &Device) -> Result<Tensor> {
        let v: Vec<f32> = self.keep.iter().map(|&k| f32::from(k)).collect();
        Ok(Tensor::from_vec(v, (self.rows, self.cols), dev)?)
    }
    /// As a `rows × cols` u8 tensor (the on-disk form of `masks.safetensors`).
    pub fn to_u8_tensor(&self) -> Result<Tensor> {
        Ok(Tensor::from_vec(
            self.keep.clone(),
            (self.rows, self.cols),
            &Device::Cpu,
        )?)
    }
    /// From a 2-D tensor of 0/1 values (any dtype); anything else is an error naming `name`.
    pub fn from_tensor(name: &str, t: &Tensor) -> Result<Self> {
        let (rows, cols) = t.dims2().map_err(|_| {
            PruneError::Invalid(format!("mask `{name}` is not a matrix: {:?}", t.dims()))
        })?;
        let v: Vec<f32> = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        let mut keep = Vec::with_capacity(v.len());
        for x in v {
            keep.push(match x {
                0.0 => 0,
                1.0 => 1,
                other => {
                    return Err(PruneError::Invalid(format!(
                        "mask `{name}` holds {other}, not only 0 and 1"
                    )))
                }
            });
        }
        Ok(Mask { rows, cols, keep })
    }
    /// Checks that the mask prunes exactly what `pattern` asks: N:M group by group (exactly `n` zeros in every
    /// group of `m`), or, for a ratio, `⌊s·cols⌋` in every row (`per_row`) or `⌊s·rows·cols⌋` overall.
    pub fn verify(&self, pattern: &Pattern, per_row: bool) -> Result<()> {
        match *pattern {
            Pattern::NM { n, m } => {
                pattern.check_width(self.cols)?;
                for (r, row) in self.keep.chunks(self.cols).enumerate() {
                    for (g, grp) in row.chunks(m).enumerate() {
                        let z = grp.iter().filter(|&&k| k == 0).count();
                        if z != n {
                            return Err(PruneError::Verify(format!(
                                "row {r}, group {g}: {z} pruned, {n}:{m} needs {n}"
                            )));
                        }
                    }
                }
            }
            Pattern::Unstructured { sparsity } => {
                if per_row {
                    let k = prune_count(self.cols, sparsity);
                    for (r, row) in self.keep.chunks(self.cols).enumerate() {
                        let z = row.iter().filter(|&&k| k == 0).count();
                        if z != k {
                            return Err(PruneError::Verify(format!(
                                "row {r}: {z} pruned, expected {k}"
                            )));
                        }
                    }
                } else {
                    let k = prune_count(self.keep.len(), sparsity);
                    if self.pruned() != k {
                        return Err(PruneError::Verify(format!(
                            "{} pruned, expected {k}",
                            self.pruned()
                        )));
                    }
                }
            }
        }
        Ok(())
    }
}

/// `⌊s·n⌋`, the number of entries a ratio `s` prunes out of `n` (computed so that 0.5·576 is exactly 288).
pub fn prune_count(n: usize, sparsity: f64) -> usize {
    ((n as f64 * sparsity) + 1e-9).floor().min(n as f64) as usize
}

/// Indices of the `k` smallest `scores`, ties broken by position (a stable sort, as PyTorch's `sort(stable=True)`).
fn lowest(scores: &[f64], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

/// The mask pruning the lowest scores of every output row (`scores` row-major `rows × cols`): `⌊s·cols⌋` per
/// row for a ratio, the `n` lowest of every `m` consecutive columns for N:M.
pub fn mask_per_row(scores: &[f64], rows: usize, cols: usize, pattern: &Pattern) -> Result<Mask> {
    pattern.validate()?;
    pattern.check_width(cols)?;
    check_len(scores, rows, cols)?;
    let mut m = Mask::dense(rows, cols);
    for r in 0..rows {
        let row = &scores[r * cols..(r + 1) * cols];
        let keep = &mut m.keep[r * cols..(r + 1) * cols];
        match *pattern {
            Pattern::Unstructured { sparsity } => {
                for j in lowest(row, prune_count(cols, sparsity)) {
                    keep[j] = 0;
                }
            }
            Pattern::NM { n, m: g } => {
                for s in (0..cols).step_by(g) {
                    for j in lowest(&row[s..s + g], n) {
                        keep[s + j] = 0;
                    }
                }
            }
        }
    }
    Ok(m)
}

/// The mask pruning the `⌊s·rows·cols⌋` lowest scores of the whole matrix (one threshold per matrix, the
/// magnitude baseline); N:M is per row as in [`mask_per_row`].
pub fn mask_per_matrix(
    scores: &[f64],
    rows: usize,
    cols: usize,
    pattern: &Pattern,
) -> Result<Mask> {
    match *pattern {
        Pattern::NM { .. } => mask_per_row(scores, rows, cols, pattern),
        Pattern::Unstructured { sparsity } => {
            pattern.validate()?;
            check_len(scores, rows, cols)?;
            let mut m = Mask::dense(rows, cols);
            for j in lowest(scores, prune_count(scores.len(), sparsity)) {
                m.keep[j] = 0;
            }
            Ok(m)
        }
    }
}

fn check_len(scores: &[f64], rows: usize, cols: usize) -> Result<()> {
    if scores.len() != rows * cols {
        return Err(PruneError::Invalid(format!(
            "{} scores for a {rows} × {cols} matrix",
            scores.len()
        )));
    }
    Ok(())
}
