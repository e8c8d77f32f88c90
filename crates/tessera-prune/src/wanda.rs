//! Wanda, "A Simple and Effective Pruning Approach for Large Language Models" (Sun, Liu, Bair & Kolter 2023,
//! arXiv:2306.11695), §3 Eq. (1): the score of weight `W_ij` is `S_ij = |W_ij| · ‖X_j‖₂`, the weight magnitude
//! times the ℓ2 norm of input feature `j` over all calibration tokens, and weights are compared **within each
//! output row** (§3 "Comparison group"): the `⌊s·d_in⌋` lowest scores of every row are pruned (N:M: the `n`
//! lowest of every `m` consecutive inputs). No weight update.
//!
//! `‖X_j‖₂² = Σ_tokens x_j²` comes from the runtime's observer (`InputStats::sq_norm`); the reference divides it
//! by the number of samples, a constant factor that does not change any row's order.
use crate::error::{PruneError, Result};
use crate::pattern::{mask_per_row, Mask, Pattern};
use tessera_lm::linear::InputStats;

/// Wanda's scores `|W_ij| · ‖X_j‖₂` of a row-major `rows × cols` weight.
pub fn wanda_scores(
    weight: &[f32],
    rows: usize,
    cols: usize,
    stats: &InputStats,
) -> Result<Vec<f64>> {
    if stats.sq_norm.len() != cols || weight.len() != rows * cols {
        return Err(PruneError::Invalid(format!(
            "Wanda: statistics of {} features for a {rows} × {cols} weight",
            stats.sq_norm.len()
        )));
    }
    if stats.rows == 0 {
        return Err(PruneError::Invalid(
            "Wanda: no calibration tokens were observed".into(),
        ));
    }
    let norm: Vec<f64> = stats.sq_norm.iter().map(|s| s.max(0.0).sqrt()).collect();
    Ok(weight
        .iter()
        .enumerate()
        .map(|(i, w)| w.abs() as f64 * norm[i % cols])
        .collect())
}

/// The Wanda mask of a row-major `rows × cols` weight.
pub fn wanda_mask(
    weight: &[f32],
    rows: usize,
    cols: usize,
    stats: &InputStats,
    pattern: &Pattern,
) -> Result<Mask> {
    let s = wanda_scores(weight, rows, cols, stats)?;
    mask_per_row(&s, rows, cols, pattern)
}
