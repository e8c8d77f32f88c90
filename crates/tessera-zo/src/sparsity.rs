//! Gradient sparsity (ZO-Bench, Zhang et al. 2024, section 4): only a random subset of the coordinates is perturbed
//! (and therefore updated). With `--sparsity R` a share `1 − R` of the coordinates of every tensor is perturbed,
//! each chosen independently by a seeded counter hash (a new subset every query). The perturbed share measured
//! by the runtime ([`tessera_lm::perturb::PerturbStats::perturbed`]) equals `1 − R` up to sampling noise.
//!
//! **Deviation from the reference:** the reference zeroes `z` where `N(0,1) < ratio`, so the share it zeroes is
//! `Φ(ratio)`: 69% for 0.5, and 50% even for 0. Here the zeroed share is the `R` asked for. Only the random mode
//! is implemented. The reference's magnitude-derived per-tensor ratio (its `global` mode, whose mask is still
//! random) is not.
use crate::error::{Result, ZoError};

/// The share of coordinates perturbed for sparsity `r` (`0 ≤ r < 1`).
pub fn perturbed_fraction(r: f64) -> Result<f64> {
    if !(r.is_finite() && (0.0..1.0).contains(&r)) {
        return Err(ZoError::invalid(format!(
            "--sparsity must be in [0, 1) (the share of coordinates left unperturbed), got {r}"
        )));
    }
    Ok(1.0 - r)
}
