//! Forward gradient (Baydin et al. 2022; ZO-Bench's "Forward-Grad", Zhang et al. 2024, section 3):
//! `v ~ N(0, I)`, `d = ∇L(θ)·v` (the directional derivative), `θ ← θ − η (d·v + wd·θ)`, weight decay skipped on
//! norms and biases. With a query budget `q`, `θ ← θ − (η/q) Σᵢ (dᵢ vᵢ + wd θ)`.
//!
//! **How `d` is computed here (honestly):** candle has no forward-mode autodiff (no JVP, no dual numbers), so
//! `d` is not computed in one forward pass. We run one reverse-mode backward pass for `∇L(θ)` and take its
//! inner product with `v`, tensor by tensor, `v` regenerated from its seed. The value is the exact
//! directional derivative, the same number `torch.func.jvp` returns (up to float rounding), and the update is
//! the forward-gradient update. The **cost is not**. A true forward-mode pass holds `v` and the dual
//! activations, about 1× parameters plus 2× activations. This one holds a full gradient and the backward graph,
//! like FO-SGD. So our memory and time figures for `forward_grad` are those of a backward pass. They are an
//! upper bound on a JVP implementation, and the README marks them as such.
use crate::error::{Result, ZoError};
use candle_core::{DType, Tensor};
use tessera_lm::perturb::Param;
use tessera_lm::Perturbation;

/// One forward-gradient step from the loss tensor `loss` (built with autograd over `params`); returns the loss.
pub fn step(
    loss: Tensor,
    perts: &[Perturbation],
    params: &[Param],
    lr: f64,
    wd: f64,
) -> Result<f64> {
    let value = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
    let store = loss.backward()?;
    let mut ds = vec![0f64; perts.len()];
    for p in params {
        let Some(g) = store.get(p.var.as_tensor()) else {
            continue;
        };
        let g: Vec<f32> = g.flatten_all()?.to_vec1()?;
        for (d, pert) in ds.iter_mut().zip(perts) {
            let v = pert.direction(p)?;
            *d += g
                .iter()
                .zip(&v)
                .map(|(&a, &b)| a as f64 * b as f64)
                .sum::<f64>();
        }
    }
    drop(store);
    if !ds.iter().all(|d| d.is_finite()) || !value.is_finite() {
        return Err(ZoError::invalid(format!(
            "forward gradient is not finite (loss {value}); lower --lr"
        )));
    }
    let q = perts.len() as f64;
    for (pert, &d) in perts.iter().zip(&ds) {
        pert.update_to(params, (lr / q) as f32, d as f32, wd as f32)?;
    }
    Ok(value)
}

/// The directional derivative of a differentiable scalar along `v`: `Σₚ ⟨∂L/∂p, vₚ⟩` (exposed for tests).
pub fn directional_derivative(loss: &Tensor, v: &Perturbation, params: &[Param]) -> Result<f64> {
    let store = loss.backward()?;
    let mut d = 0f64;
    for p in params {
        if let Some(g) = store.get(p.var.as_tensor()) {
            let g: Vec<f32> = g.flatten_all()?.to_vec1()?;
            let z = v.direction(p)?;
            d += g
                .iter()
                .zip(&z)
                .map(|(&a, &b)| a as f64 * b as f64)
                .sum::<f64>();
        }
    }
    Ok(d)
}
