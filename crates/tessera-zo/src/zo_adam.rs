//! ZO-Adam (ZO-Bench, Zhang et al. 2024, section 3): Adam (Kingma & Ba 2015; PyTorch's `torch.optim.Adam`,
//! β = (0.9, 0.999), ε = 1e-8) fed the zeroth-order estimate `ĝ = (1/q) Σᵢ gᵢ·zᵢ (+ wd·θ)`:
//!
//! `m ← β₁ m + (1 − β₁) ĝ`, `v ← β₂ v + (1 − β₂) ĝ²`, `θ ← θ − η (m / (1 − β₁ᵗ)) / (√(v / (1 − β₂ᵗ)) + ε)`.
//!
//! Two moment buffers per tensor (2× the trainable parameters); `ĝ` is materialised one tensor at a time, as the
//! reference sets `grad = g·z` and steps one parameter at a time.
use crate::error::Result;
use crate::zo_sgd::{mask_values, projected};
use std::collections::HashMap;
use tessera_lm::perturb::{map_inplace, Param};
use tessera_lm::Perturbation;

/// ZO-Adam's state.
#[derive(Debug, Clone)]
pub struct ZoAdam {
    /// β₁.
    pub beta1: f64,
    /// β₂.
    pub beta2: f64,
    /// ε.
    pub eps: f64,
    /// Steps taken (the bias-correction count).
    pub t: u64,
    /// First moments by parameter name.
    pub m: HashMap<String, Vec<f32>>,
    /// Second moments by parameter name.
    pub v: HashMap<String, Vec<f32>>,
}

impl Default for ZoAdam {
    fn default() -> Self {
        ZoAdam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            t: 0,
            m: HashMap::new(),
            v: HashMap::new(),
        }
    }
}

impl ZoAdam {
    /// Starts a step (advances the bias-correction count once per optimizer step, also when block-wise ZO
    /// updates the tensors block by block).
    pub fn begin_step(&mut self) {
        self.t += 1;
    }

    /// Updates every tensor of `params` with the estimate of the queries `perts` / `gs`.
    pub fn update(
        &mut self,
        perts: &[Perturbation],
        gs: &[f64],
        params: &[Param],
        lr: f64,
        wd: f64,
    ) -> Result<()> {
        let t = self.t.max(1) as i32;
        let bc1 = (1.0 - self.beta1.powi(t)) as f32;
        let bc2 = (1.0 - self.beta2.powi(t)) as f32;
        let (b1, b2, eps, lr) = (
            self.beta1 as f32,
            self.beta2 as f32,
            self.eps as f32,
            lr as f32,
        );
        for p in params {
            let mut d = projected(perts, gs, p)?;
            let keep = mask_values(p)?;
            let wd = if p.decay { wd as f32 } else { 0.0 };
            let n = d.len();
            let m = self.m.entry(p.name.clone()).or_insert_with(|| vec![0.0; n]);
            let v = self.v.entry(p.name.clone()).or_insert_with(|| vec![0.0; n]);
            map_inplace(&p.var, |th| {
                for i in 0..th.len() {
                    if keep.as_ref().is_some_and(|k| k[i] == 0.0) {
                        continue;
                    }
                    d[i] += wd * th[i];
                    m[i] = b1 * m[i] + (1.0 - b1) * d[i];
                    v[i] = b2 * v[i] + (1.0 - b2) * d[i] * d[i];
                    th[i] -= lr * (m[i] / bc1) / ((v[i] / bc2).sqrt() + eps);
                }
            })?;
        }
        Ok(())
    }
}
