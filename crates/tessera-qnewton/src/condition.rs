//! Condition-number estimates for the scheduler (Q-Newton, arXiv 2405.00252: the condition-number estimate of the scheduler).
//!
//! - [`lanczos_extremes`]: Lanczos with full reorthogonalisation; the extreme Ritz values of the tridiagonal
//!   projection (eigenvalues through faer) approximate `λ_min` and `λ_max`, giving `κ ≈ λ_max/λ_min`.
//! - [`log_kappa_bound`]: the determinant/Frobenius upper bound the paper uses (Merikoski, Urpala, Virtanen &
//!   Tam 1997): `κ₂ ≤ √((1+x)/(1−x))` with `x = √(1 − t)`, `t = (n/‖A‖_F²)ⁿ·det(A)²`. Evaluated in log space:
//!   `ln t = n·(ln n − 2·ln‖A‖_F) + 2·ln|det A|` and `(1+x)/(1−x) = (1+x)²/t`, so `ln κ ≤ ln(1+x) − ½·ln t`, which
//!   neither overflows nor cancels for large `n`. The reference code writes `(1 − n/‖A‖_F)ⁿ`, a typo that makes the
//!   radicand negative; `[[1,2],[3,4]]` gives 14.933 here (exact for 2×2).
//! - [`exact_kappa`]: `σ_max/σ_min` from faer's SVD, for tests and reports.
use crate::error::{QnError, Result};
use faer::{Mat, MatRef, Side};
use rand::Rng;

/// Extreme eigenvalue estimates from Lanczos.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Extremes {
    /// Smallest Ritz value.
    pub min: f64,
    /// Largest Ritz value.
    pub max: f64,
    /// Smallest |Ritz value| (differs from `min` for indefinite matrices).
    pub min_abs: f64,
    /// Largest |Ritz value|.
    pub max_abs: f64,
    /// Lanczos steps actually taken.
    pub steps: usize,
}

impl Extremes {
    /// `λ_max/λ_min` when positive definite, else `max|θ|/min|θ|` over the Ritz values.
    pub fn kappa(&self) -> f64 {
        if self.min > 0.0 {
            self.max / self.min
        } else if self.min_abs > 0.0 {
            self.max_abs / self.min_abs
        } else {
            f64::INFINITY
        }
    }
}

/// Runs `steps` Lanczos iterations (full reorthogonalisation) on the symmetric matrix `a` from a seeded random start.
pub fn lanczos_extremes(a: MatRef<'_, f64>, steps: usize, seed: u64) -> Result<Extremes> {
    let n = a.nrows();
    if n == 0 || a.ncols() != n {
        return Err(QnError::Linalg(format!(
            "lanczos needs a non-empty square matrix, got {}×{}",
            n,
            a.ncols()
        )));
    }
    let m = steps.clamp(1, n);
    let mut rng = tessera_core::rng::derived(seed, "lanczos");
    let mut q = Mat::<f64>::zeros(n, m);
    let mut v: Vec<f64> = (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect();
    normalize(&mut v);
    let (mut alpha, mut beta) = (Vec::with_capacity(m), Vec::with_capacity(m));
    let scale = a.norm_max().max(f64::MIN_POSITIVE);
    for k in 0..m {
        for i in 0..n {
            q[(i, k)] = v[i];
        }
        let vk = Mat::from_fn(n, 1, |i, _| v[i]);
        let w_mat = a * &vk;
        let mut w: Vec<f64> = (0..n).map(|i| w_mat[(i, 0)]).collect();
        let ak: f64 = w.iter().zip(&v).map(|(x, y)| x * y).sum();
        alpha.push(ak);
        // Full reorthogonalisation (twice, "twice is enough") against every basis vector so far.
        for _ in 0..2 {
            for j in 0..=k {
                let dot: f64 = (0..n).map(|i| w[i] * q[(i, j)]).sum();
                for (i, wi) in w.iter_mut().enumerate() {
                    *wi -= dot * q[(i, j)];
                }
            }
        }
        let b = w.iter().map(|x| x * x).sum::<f64>().sqrt();
        if k + 1 == m || b <= 1e-12 * scale * (n as f64) {
            break;
        }
        beta.push(b);
        v = w.iter().map(|x| x / b).collect();
    }
    let k = alpha.len();
    let t = Mat::from_fn(k, k, |i, j| {
        if i == j {
            alpha[i]
        } else if i + 1 == j {
            beta[i]
        } else if j + 1 == i {
            beta[j]
        } else {
            0.0
        }
    });
    let ritz = t
        .self_adjoint_eigenvalues(Side::Lower)
        .map_err(|e| QnError::Linalg(format!("tridiagonal eigenvalues: {e:?}")))?;
    let min = ritz.iter().cloned().fold(f64::INFINITY, f64::min);
    let max = ritz.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let min_abs = ritz.iter().map(|x| x.abs()).fold(f64::INFINITY, f64::min);
    let max_abs = ritz.iter().map(|x| x.abs()).fold(0.0, f64::max);
    Ok(Extremes {
        min,
        max,
        min_abs,
        max_abs,
        steps: k,
    })
}

fn normalize(v: &mut [f64]) {
    let nrm = v
        .iter()
        .map(|x| x * x)
        .sum::<f64>()
        .sqrt()
        .max(f64::MIN_POSITIVE);
    v.iter_mut().for_each(|x| *x /= nrm);
}

/// `ln |det A|` from the diagonal of faer's partially pivoted LU (`-∞` when singular).
pub fn log_abs_det(a: MatRef<'_, f64>) -> f64 {
    let lu = a.partial_piv_lu();
    let u = lu.U();
    (0..u.nrows()).map(|i| u[(i, i)].abs().ln()).sum()
}

/// `ln` of the determinant/Frobenius upper bound on κ₂ given `ln|det A|` (see the module docs).
pub fn log_kappa_bound_from(n: usize, frobenius: f64, log_abs_det: f64) -> f64 {
    if !log_abs_det.is_finite() || frobenius <= 0.0 {
        return f64::INFINITY;
    }
    let nf = n as f64;
    let ln_t = nf * (nf.ln() - 2.0 * frobenius.ln()) + 2.0 * log_abs_det;
    // t ≤ 1 by the AM–GM inequality on the singular values; clamp rounding noise.
    let ln_t = ln_t.min(0.0);
    let x = (-(ln_t.exp_m1())).max(0.0).sqrt();
    (1.0 + x).ln() - 0.5 * ln_t
}

/// `ln` of the determinant/Frobenius upper bound on κ₂ of the square matrix `a`.
pub fn log_kappa_bound(a: MatRef<'_, f64>) -> f64 {
    log_kappa_bound_from(a.nrows(), a.norm_l2(), log_abs_det(a))
}

/// Exact 2-norm condition number `σ_max/σ_min` from faer's SVD.
pub fn exact_kappa(a: MatRef<'_, f64>) -> Result<f64> {
    let s = a
        .singular_values()
        .map_err(|e| QnError::Linalg(format!("svd: {e:?}")))?;
    let (hi, lo) = (
        s.first().copied().unwrap_or(0.0),
        s.last().copied().unwrap_or(0.0),
    );
    Ok(if lo > 0.0 { hi / lo } else { f64::INFINITY })
}
