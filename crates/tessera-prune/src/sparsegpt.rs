//! SparseGPT, "Massive Language Models Can Be Accurately Pruned in One-Shot" (Frantar & Alistarh 2023,
//! arXiv:2301.00774), Algorithm 1 (§3.4–3.5): prune column by column with Optimal Brain Surgeon updates of the
//! remaining weights of each row, `δ = −(w_q / [H⁻¹]_qq) · H⁻¹_{:,q}` (Eq. 3), using the upper Cholesky factor
//! `U` of `H⁻¹` (`H⁻¹ = UᵀU`, §3.3 "Hessian synchronisation" via the sequential elimination).
//!
//! As in the reference `fasterprune` (IST-DASLab/sparsegpt):
//! - `H = (2/N) Σ xᵀx` over the `N` observed calibration tokens, accumulated in f64 (the runtime's observer
//!   gives the Gram matrix); dead inputs (`H_dd = 0`) get `H_dd = 1` and their weights are zeroed;
//! - damping `H += λ·mean(diag H)·I` with `λ = 0.01`;
//! - `U` = upper Cholesky factor of `H⁻¹` (faer Cholesky, inverse, Cholesky again);
//! - blocks of 128 columns; unstructured: **one threshold over each block's scores** `w²/U_qq²` (adaptive mask
//!   selection, §3.4); N:M: at every group start the `n` lowest scores of the next `m` columns of each row,
//!   computed on the **updated** weights;
//! - each column: `q = w ⊙ (1 − mask)`, `err = (w − q)/U_ii`, `W[:, i+1..block] −= err ⊗ U[i, i+1..block]`;
//!   after the block the lazy batch update `W[:, block end..] −= Err · U[block, block end..]` (one matmul).
//!
//! Deviations: a block prunes exactly `⌊s·rows·block⌋` weights (the reference's `score ≤ threshold` prunes one
//! more, and more on ties); for N:M the block size is rounded down to a multiple of `m` so that no group spans two
//! blocks (128 for every `m` dividing 128).
use crate::error::{PruneError, Result};
use crate::pattern::{prune_count, Mask, Pattern};
use faer::linalg::solvers::DenseSolveCore as _;
use faer::{Accum, Mat, Par, Side};
use tessera_lm::linear::InputStats;

/// SparseGPT's settings.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SparseGptOptions {
    /// Columns per block (128 in the reference).
    pub block_size: usize,
    /// Damping as a fraction of the mean diagonal of `H` (0.01).
    pub percdamp: f64,
}

impl Default for SparseGptOptions {
    fn default() -> Self {
        SparseGptOptions {
            block_size: 128,
            percdamp: 0.01,
        }
    }
}

/// What SparseGPT returns for one matrix.
#[derive(Debug, Clone)]
pub struct SparseGptOutput {
    /// The updated weight, row-major, exact zeros where the mask is 0.
    pub weight: Vec<f32>,
    /// The mask chosen.
    pub mask: Mask,
    /// The reference's reconstruction "error": `Σ (w − q)² / U_qq² / 2` over pruned weights.
    pub error: f64,
}

/// Prunes a row-major `rows × cols` weight with SparseGPT, given the observed Gram matrix (`stats.gram`).
pub fn sparsegpt(
    weight: &[f32],
    rows: usize,
    cols: usize,
    stats: &InputStats,
    pattern: &Pattern,
    opts: &SparseGptOptions,
) -> Result<SparseGptOutput> {
    pattern.validate()?;
    pattern.check_width(cols)?;
    let gram = stats.gram.as_ref().ok_or_else(|| {
        PruneError::Invalid("SparseGPT needs the Gram matrix (observe with gram = true)".into())
    })?;
    if gram.len() != cols * cols || weight.len() != rows * cols {
        return Err(PruneError::Invalid(format!(
            "SparseGPT: a {}-entry Gram matrix for a {rows} × {cols} weight",
            gram.len()
        )));
    }
    if stats.rows == 0 {
        return Err(PruneError::Invalid(
            "SparseGPT: no calibration tokens were observed".into(),
        ));
    }
    if !(opts.percdamp.is_finite() && opts.percdamp > 0.0) || opts.block_size == 0 {
        return Err(PruneError::Invalid(format!(
            "SparseGPT needs damping > 0 and block size ≥ 1 (got {}, {})",
            opts.percdamp, opts.block_size
        )));
    }
    let bs = match *pattern {
        Pattern::NM { m, .. } => (opts.block_size / m).max(1) * m,
        Pattern::Unstructured { .. } => opts.block_size,
    };
    let scale = 2.0 / stats.rows as f64;
    let mut h = Mat::<f64>::from_fn(cols, cols, |i, j| scale * gram[i * cols + j]);
    let mut w = Mat::<f64>::from_fn(rows, cols, |r, c| weight[r * cols + c] as f64);
    for d in 0..cols {
        if h[(d, d)] == 0.0 {
            h[(d, d)] = 1.0;
            for r in 0..rows {
                w[(r, d)] = 0.0;
            }
        }
    }
    let mean_diag = (0..cols).map(|d| h[(d, d)]).sum::<f64>() / cols as f64;
    let damp = opts.percdamp * mean_diag;
    for d in 0..cols {
        h[(d, d)] += damp;
    }
    let not_pd = |what: &str| {
        PruneError::Linalg(format!(
            "{what} is not positive definite (Cholesky failed); more calibration data or more damping"
        ))
    };
    let hinv = h
        .llt(Side::Lower)
        .map_err(|_| not_pd("the damped Hessian"))?
        .inverse();
    let l = hinv
        .llt(Side::Lower)
        .map_err(|_| not_pd("the inverse Hessian"))?;
    let u: Mat<f64> = l.L().transpose().to_owned();
    let mut mask = Mask::dense(rows, cols);
    let mut error = 0f64;
    let mut i1 = 0;
    while i1 < cols {
        let i2 = (i1 + bs).min(cols);
        let count = i2 - i1;
        // Block columns, column-major: w1[j][r].
        let mut w1: Vec<Vec<f64>> = (0..count)
            .map(|j| (0..rows).map(|r| w[(r, i1 + j)]).collect())
            .collect();
        let mut err1 = Mat::<f64>::zeros(rows, count);
        let mut pruned = vec![false; rows * count]; // [r * count + j]
        let diag = |j: usize| u[(i1 + j, i1 + j)];
        if let Pattern::Unstructured { sparsity } = *pattern {
            let mut scores = Vec::with_capacity(rows * count);
            for r in 0..rows {
                for (j, col) in w1.iter().enumerate() {
                    scores.push(col[r] * col[r] / (diag(j) * diag(j)));
                }
            }
            let mut idx: Vec<usize> = (0..scores.len()).collect();
            idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(a.cmp(&b)));
            for &i in &idx[..prune_count(scores.len(), sparsity)] {
                pruned[i] = true;
            }
        }
        for j in 0..count {
            if let Pattern::NM { n, m } = *pattern {
                if j % m == 0 {
                    for r in 0..rows {
                        let mut g: Vec<(f64, usize)> = (j..j + m)
                            .map(|jj| (w1[jj][r] * w1[jj][r] / (diag(jj) * diag(jj)), jj))
                            .collect();
                        g.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                        for &(_, jj) in &g[..n] {
                            pruned[r * count + jj] = true;
                        }
                    }
                }
            }
            let d = diag(j);
            let mut e = vec![0f64; rows];
            for (r, er) in e.iter_mut().enumerate() {
                let wv = w1[j][r];
                let q = if pruned[r * count + j] { 0.0 } else { wv };
                *er = (wv - q) / d;
                error += (wv - q) * (wv - q) / (d * d) / 2.0;
                err1[(r, j)] = *er;
                w1[j][r] = q;
            }
            for (jj, col) in w1.iter_mut().enumerate().skip(j + 1) {
                let uij = u[(i1 + j, i1 + jj)];
                if uij != 0.0 {
                    for (x, er) in col.iter_mut().zip(&e) {
                        *x -= er * uij;
                    }
                }
            }
        }
        for (j, col) in w1.iter().enumerate() {
            for (r, &x) in col.iter().enumerate() {
                w[(r, i1 + j)] = x;
            }
        }
        for r in 0..rows {
            for j in 0..count {
                if pruned[r * count + j] {
                    mask.keep[r * cols + i1 + j] = 0;
                }
            }
        }
        let got = pruned.iter().filter(|&&p| p).count();
        let want = match *pattern {
            Pattern::Unstructured { sparsity } => prune_count(rows * count, sparsity),
            Pattern::NM { n, m } => rows * count / m * n,
        };
        if got != want {
            return Err(PruneError::Verify(format!(
                "SparseGPT block at column {i1}: {got} pruned, expected {want}"
            )));
        }
        if i2 < cols {
            faer::linalg::matmul::matmul(
                w.as_mut().submatrix_mut(0, i2, rows, cols - i2),
                Accum::Add,
                err1.as_ref(),
                u.as_ref().submatrix(i1, i2, count, cols - i2),
                -1.0,
                Par::Seq,
            );
        }
        i1 = i2;
    }
    let mut out = Vec::with_capacity(rows * cols);
    for r in 0..rows {
        for c in 0..cols {
            out.push(if mask.keep[r * cols + c] == 0 {
                0.0
            } else {
                w[(r, c)] as f32
            });
        }
    }
    Ok(SparseGptOutput {
        weight: out,
        mask,
        error,
    })
}
