//! Symmetric magnitude sparsification of a Hessian block (Q-Newton, arXiv 2405.00252, §3.2 "sparsity").
//!
//! Each row keeps its `⌊r·N⌋` largest-magnitude entries (at least one). The reference code stops there, which breaks
//! symmetry (entry `(i,j)` may survive in row `i` but not in row `j`); here the kept set is the union `M ∨ Mᵀ` and
//! the diagonal is always kept, so the pruned block stays symmetric and a Hermitian solver (HHL) applies. The
//! quantum oracle's sparsity `d` is then the largest number of non-zeros in any row of the pruned block.
use faer::Mat;

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

/// Keeps the top `⌊ratio·N⌋` entries per row by magnitude, symmetrised; `ratio ≥ 1` keeps everything.
pub fn sparsify_symmetric(h: &Mat<f64>, ratio: f64) -> Sparsified {
    let n = h.nrows();
    let mut keep = vec![false; n * n];
    if ratio >= 1.0 {
        keep.iter_mut().for_each(|k| *k = true);
    } else {
        let k = ((ratio * n as f64).floor() as usize).clamp(1, n);
        let mut idx: Vec<usize> = Vec::with_capacity(n);
        for i in 0..n {
            idx.clear();
            idx.extend(0..n);
            idx.select_nth_unstable_by(k - 1, |&a, &b| h[(i, b)].abs().total_cmp(&h[(i, a)].abs()));
            for &j in &idx[..k] {
                keep[i * n + j] = true;
                keep[j * n + i] = true;
            }
            keep[i * n + i] = true;
        }
    }
    let matrix = Mat::from_fn(n, n, |i, j| if keep[i * n + j] { h[(i, j)] } else { 0.0 });
    let row_sparsity = (0..n)
        .map(|i| (0..n).filter(|&j| matrix[(i, j)] != 0.0).count())
        .max()
        .unwrap_or(0);
    let nnz = (0..n)
        .map(|i| (0..n).filter(|&j| matrix[(i, j)] != 0.0).count())
        .sum::<usize>();
    Sparsified {
        matrix,
        row_sparsity: row_sparsity.max(1),
        density: nnz as f64 / (n * n).max(1) as f64,
    }
}
