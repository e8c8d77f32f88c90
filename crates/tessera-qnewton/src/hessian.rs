//! Layer-wise Hessian blocks of the MLP loss, computed exactly by second-order backpropagation.
//!
//! Q-Newton (Li et al., arXiv 2405.00252) solves one linear system per layer with that layer's diagonal Hessian
//! block `H_ll = ∂²L/∂θ_l²`. Because a layer's pre-activations `z = W·ã` are linear in its parameters, the block is
//! exactly a sum of per-sample Kronecker products
//!
//! `H_ll[(a,i),(b,j)] = Σ_n G_n[a,b] · ã_n[i] · ã_n[j]`,
//!
//! where `ã_n` is sample `n`'s layer input (with a trailing 1 for the bias) and `G_n = ∂²ℓ_n/∂z∂z` is the exact
//! per-sample Hessian with respect to the layer's pre-activations. `G_n` is propagated backwards layer by layer:
//! for softmax cross-entropy `G_L = diag(p) − p·pᵀ`, and through `z' = W̄·tanh(z) + b`
//!
//! `G = D·W̄ᵀ·G'·W̄·D + diag(tanh''(z) ⊙ W̄ᵀ·δ')`,   `D = diag(tanh'(z))`.
//!
//! This is exact (no finite differences, no Kronecker factorisation); the Gauss–Newton option drops the second
//! term, which makes every block positive semi-definite. A test checks the exact blocks against central finite
//! differences of the gradient.
use crate::mlp::{Deltas, ForwardCache, Mlp};
use faer::Mat;

/// Which curvature matrix to use for the Newton blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Curvature {
    /// The exact diagonal Hessian block (may be indefinite).
    Exact,
    /// The generalised Gauss–Newton block (positive semi-definite).
    GaussNewton,
}

named_enum!(Curvature, "curvature", {
    Curvature::Exact => "exact",
    Curvature::GaussNewton => "gauss-newton" | "gn",
});

/// Per-sample pre-activation Hessians for every layer: `g[l][n]` is `out_l × out_l`, row-major.
fn preactivation_hessians(
    mlp: &Mlp,
    cache: &ForwardCache,
    deltas: &Deltas,
    curvature: Curvature,
) -> Vec<Vec<Vec<f64>>> {
    let nl = mlp.layers.len();
    let batch = cache.probs.nrows();
    let inv_b = 1.0 / batch as f64;
    let mut out: Vec<Vec<Vec<f64>>> = vec![Vec::new(); nl];
    let k = cache.probs.ncols();
    out[nl - 1] = (0..batch)
        .map(|n| {
            let p = |i: usize| cache.probs[(n, i)];
            let mut g = vec![0.0; k * k];
            for a in 0..k {
                for b in 0..k {
                    g[a * k + b] = inv_b * (if a == b { p(a) } else { 0.0 } - p(a) * p(b));
                }
            }
            g
        })
        .collect();
    for l in (0..nl - 1).rev() {
        let w = &mlp.layers[l + 1];
        let (wo, wi) = (w.nrows(), w.ncols() - 1);
        let h = &cache.hidden[l];
        let d_next = &deltas[l + 1];
        let mut gl = Vec::with_capacity(batch);
        for n in 0..batch {
            let gn = &out[l + 1][n];
            // T = G' · W̄  (wo × wi)
            let mut t = vec![0.0; wo * wi];
            for a in 0..wo {
                for c in 0..wo {
                    let gac = gn[a * wo + c];
                    if gac != 0.0 {
                        for j in 0..wi {
                            t[a * wi + j] += gac * w[(c, j)];
                        }
                    }
                }
            }
            let dprime: Vec<f64> = (0..wi).map(|i| 1.0 - h[(n, i)] * h[(n, i)]).collect();
            let mut g = vec![0.0; wi * wi];
            for i in 0..wi {
                for j in 0..wi {
                    let mut s = 0.0;
                    for a in 0..wo {
                        s += w[(a, i)] * t[a * wi + j];
                    }
                    g[i * wi + j] = dprime[i] * s * dprime[j];
                }
            }
            if curvature == Curvature::Exact {
                for i in 0..wi {
                    // W̄ᵀδ' for sample n, times tanh''(z) = −2·tanh(z)·(1 − tanh²(z)).
                    let back: f64 = (0..wo).map(|a| w[(a, i)] * d_next[(n, a)]).sum();
                    g[i * wi + i] += -2.0 * h[(n, i)] * dprime[i] * back;
                }
            }
            gl.push(g);
        }
        out[l] = gl;
    }
    out
}

/// The Hessian (or Gauss–Newton) block of every layer, each `(out·(in+1))²`, in the flattening of [`crate::mlp`].
pub fn layer_blocks(
    mlp: &Mlp,
    cache: &ForwardCache,
    deltas: &Deltas,
    curvature: Curvature,
) -> Vec<Mat<f64>> {
    let gs = preactivation_hessians(mlp, cache, deltas, curvature);
    (0..mlp.layers.len())
        .map(|l| kron_sum(&cache.inputs[l], &gs[l], mlp.layers[l].nrows()))
        .collect()
}

/// `Σ_n G_n ⊗ (ã_n ã_nᵀ)` with one `ÃᵀdiagÃ` product per pair `(a, b)` of output units.
fn kron_sum(aug: &Mat<f64>, g: &[Vec<f64>], out: usize) -> Mat<f64> {
    let (batch, cols) = (aug.nrows(), aug.ncols());
    let size = out * cols;
    let mut h = Mat::zeros(size, size);
    let mut scaled = Mat::<f64>::zeros(batch, cols);
    for a in 0..out {
        for b in a..out {
            let weights: Vec<f64> = (0..batch).map(|n| g[n][a * out + b]).collect();
            if weights.iter().all(|w| *w == 0.0) {
                continue;
            }
            for i in 0..cols {
                let (src, dst) = (aug.col_as_slice(i), scaled.col_as_slice_mut(i));
                for ((d, s), w) in dst.iter_mut().zip(src).zip(&weights) {
                    *d = w * s;
                }
            }
            let m = aug.transpose() * &scaled;
            for j in 0..cols {
                for i in 0..cols {
                    // M_ab is symmetric, so both writes walk a column contiguously.
                    let v = m[(i, j)];
                    h[(a * cols + i, b * cols + j)] = v;
                    h[(b * cols + i, a * cols + j)] = v;
                }
            }
        }
    }
    h
}
