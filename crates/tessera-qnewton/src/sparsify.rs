//! Symmetric magnitude sparsification of a Hessian block (Q-Newton, arXiv 2405.00252, §3.2 "sparsity").
//!
//! Each row keeps its `⌊r·N⌋` largest-magnitude entries (at least one). The reference code stops there, which breaks
//! symmetry (entry `(i,j)` may survive in row `i` but not in row `j`); here the row masks `M` are symmetrised and the
//! diagonal is always kept, so the pruned block stays symmetric and a Hermitian solver (HHL) applies. Two ways:
//! the intersection `M ∧ Mᵀ` (default) guarantees the oracle sparsity `d ≤ ⌊r·N⌋ + 1`; the union `M ∨ Mᵀ` keeps
//! every top entry but on our Hessian blocks pushed `d` from 260 to 877 of 1040 (a few columns, such as the bias,
//! are in almost every row's top set). `d` is the largest number of non-zeros in any row of the pruned block.
//!
//! Pruning a positive semi-definite (Gauss–Newton) block can make it indefinite, and a Newton step through an
//! indefinite matrix can point uphill; in our runs plain pruning at r ≤ 0.5 made training diverge. With
//! `compensate`, every dropped entry `e_ij` adds `|e_ij|` to the diagonal entries `i` and `j`: the correction
//! `diag(Σ_j|E_ij|) − E` is diagonally dominant, hence PSD (Gershgorin), so the pruned block dominates the original
//! one (`H_pruned ⪰ H ⪰ 0`) and the step stays a descent direction. This is our addition, not the paper's.
use faer::Mat;

/// How the per-row keep masks are made symmetric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Symmetrize {
    /// Keep `(i, j)` when it is in the top set of row `i` and of row `j` (`d ≤ ⌊r·N⌋ + 1`).
    Intersection,
    /// Keep `(i, j)` when it is in the top set of row `i` or of row `j`.
    Union,
}

/// A pruned block and its row sparsity.
#[derive(Debug, Clone)]
pub struct Sparsified {
    /// The symmetric pruned matrix (dense storage).
    pub matrix: Mat<f64>,
    /// Largest number of non-zeros in a row.
    pub row_sparsity: usize,
    /// Fraction of entries kept.
    pub density: f64,
}

/// `h` must be symmetric (rows are read as columns).
///
/// Keeps the top `⌊ratio·N⌋` entries per row by magnitude (ties at the threshold are kept too), symmetrised;
/// `ratio ≥ 1` keeps everything. With `compensate`, dropped magnitudes move to the diagonal (module docs).
pub fn sparsify_symmetric(
    h: &Mat<f64>,
    ratio: f64,
    mode: Symmetrize,
    compensate: bool,
) -> Sparsified {
    let n = h.nrows();
    let mut keep = vec![false; n * n];
    if ratio >= 1.0 {
        keep.iter_mut().for_each(|k| *k = true);
    } else {
        let k = ((ratio * n as f64).floor() as usize).clamp(1, n);
        let mut mags: Vec<f64> = Vec::with_capacity(n);
        for i in 0..n {
            // Row i of a symmetric matrix is its column i: contiguous in faer's column-major storage.
            let row = h.col_as_slice(i);
            mags.clear();
            mags.extend(row.iter().map(|v| v.abs()));
            let (_, &mut threshold, _) = mags.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
            for (j, v) in row.iter().enumerate() {
                if v.abs() >= threshold {
                    keep[i * n + j] = true;
                }
            }
        }
        // `keep[i·n + j]`: j is in row i's top set. Symmetrise, then always keep the diagonal.
        for i in 0..n {
            for j in i + 1..n {
                let (a, b) = (keep[i * n + j], keep[j * n + i]);
                let both = match mode {
                    Symmetrize::Intersection => a && b,
                    Symmetrize::Union => a || b,
                };
                keep[i * n + j] = both;
                keep[j * n + i] = both;
            }
            keep[i * n + i] = true;
        }
    }
    // `keep` is symmetric, so `keep[j·n + i]` walks column j contiguously.
    let mut matrix = Mat::from_fn(n, n, |i, j| if keep[j * n + i] { h[(i, j)] } else { 0.0 });
    let mut row_sparsity = 0;
    let mut nnz = 0;
    for i in 0..n {
        let flags = &keep[i * n..(i + 1) * n];
        let col = h.col_as_slice(i);
        let count = flags
            .iter()
            .zip(col)
            .filter(|(k, v)| **k && **v != 0.0)
            .count();
        row_sparsity = row_sparsity.max(count);
        nnz += count;
        if compensate {
            let dropped: f64 = flags
                .iter()
                .zip(col)
                .filter(|(k, _)| !**k)
                .map(|(_, v)| v.abs())
                .sum();
            matrix[(i, i)] += dropped;
        }
    }
    Sparsified {
        matrix,
        row_sparsity: row_sparsity.max(1),
        density: nnz as f64 / (n * n).max(1) as f64,
    }
}
