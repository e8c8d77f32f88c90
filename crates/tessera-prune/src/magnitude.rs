//! Magnitude pruning, the baseline of Wanda (Sun et al. 2023, arXiv:2306.11695, §4 "Baselines") and of
//! SparseGPT (Frantar & Alistarh 2023, arXiv:2301.00774): score `S_ij = |W_ij|`, with **one threshold over the
//! whole matrix** for unstructured sparsity (as in the Wanda reference code), and the `n` smallest of every `m`
//! consecutive input weights of a row for N:M. No calibration data, no weight update.
use crate::error::Result;
use crate::pattern::{mask_per_matrix, Mask, Pattern};

/// The magnitude mask of a row-major `rows × cols` weight.
pub fn magnitude_mask(weight: &[f32], rows: usize, cols: usize, pattern: &Pattern) -> Result<Mask> {
    let scores: Vec<f64> = weight.iter().map(|w| w.abs() as f64).collect();
    mask_per_matrix(&scores, rows, cols, pattern)
}
