//! ZO-SGD (MeZO, Malladi et al. 2023, Algorithm 1; ZO-Bench, Zhang et al. 2024, section 3) and its sign,
//! momentum and conservative variants.
//!
//! **Estimate (two-sided SPSA).** For a seed `s`, `z ~ N(0, I)` is regenerated from `s` (never stored):
//! `θ ← θ + μz`, `L₊ = L(θ)`, `θ ← θ − 2μz`, `L₋ = L(θ)`, `θ ← θ + μz` (restored within float rounding), and
//! `g = (L₊ − L₋) / 2μ` is the projected gradient, so `g·z` estimates `∇L`. With a query budget `q > 1`, `q` seeds
//! give `g₁…g_q` and the estimate is `(1/q) Σᵢ gᵢ·zᵢ`.
//!
//! **Updates** (weight decay `wd` is skipped on norms, biases, prefixes and prompts; masked weights stay zero):
//! - ZO-SGD: `θ ← θ − η (g·z + wd·θ)`, in place, regenerating `z` (per query with `η/q`).
//! - ZO-SGD-Sign: `θ ← θ − η (sign(g)·z + wd·θ)`: the sign of the projected gradient times `z`, as the reference
//!   defines it (not the element-wise `sign(g·z)`, which the reference leaves commented out).
//! - ZO-SGD-MMT: PyTorch SGD with momentum β = 0.9 fed `ĝ = (1/q) Σ gᵢ zᵢ + wd·θ`: `b ← β b + ĝ`, `θ ← θ − η b`.
//!   One buffer `b` per tensor (1× the trainable parameters); `ĝ` is materialised one tensor at a time.
//! - ZO-SGD-Cons: five forward passes: `L₀ = L(θ)`, the two of the estimate, then `L₁ = L(θ − ηgz)` and
//!   `L₂ = L(θ + ηgz)`; it keeps θ, θ − ηgz or θ + ηgz by the reference's rule (if `L₁ > L₀`: θ when `L₀ < L₂`,
//!   else θ + ηgz; otherwise θ − ηgz when `L₁ < L₂`, else θ + ηgz). `q = 1`, no weight decay.
//!
//! The reference runs its Sign and Cons sweeps with HF's AdamW (its `--optimizer` default hits neither SGD branch);
//! these implementations run the SGD updates they are named after (see the crate docs).
use crate::error::{Result, ZoError};
use std::collections::HashMap;
use tessera_lm::perturb::{map_inplace, Param};
use tessera_lm::Perturbation;

/// One two-sided SPSA query: `(L₊, L₋)` for direction `pert` with scale `mu`; `θ` is restored before returning.
pub fn spsa(
    loss: &mut dyn FnMut() -> Result<f64>,
    pert: &Perturbation,
    params: &[Param],
    mu: f32,
) -> Result<(f64, f64)> {
    pert.apply_to(params, mu)?;
    let plus = loss();
    pert.apply_to(params, -2.0 * mu)?;
    let minus = loss();
    pert.apply_to(params, mu)?;
    let (plus, minus) = (plus?, minus?);
    if !(plus.is_finite() && minus.is_finite()) {
        return Err(ZoError::invalid(format!(
            "the loss is not finite ({plus}, {minus}); lower --lr or --mu"
        )));
    }
    Ok((plus, minus))
}

/// Projected gradients `gᵢ = (L₊ − L₋)/2μ` of every query and the mean of `(L₊ + L₋)/2` (the loss estimate).
pub fn estimate(
    loss: &mut dyn FnMut() -> Result<f64>,
    perts: &[Perturbation],
    params: &[Param],
    mu: f32,
) -> Result<(Vec<f64>, f64)> {
    let mut gs = Vec::with_capacity(perts.len());
    let mut mean = 0.0;
    for p in perts {
        let (lp, lm) = spsa(loss, p, params, mu)?;
        gs.push((lp - lm) / (2.0 * mu as f64));
        mean += 0.5 * (lp + lm) / perts.len() as f64;
    }
    Ok((gs, mean))
}

/// The ZO-SGD (or, with `sign`, ZO-SGD-Sign) update from the queries' projected gradients, in place.
pub fn sgd_update(
    perts: &[Perturbation],
    gs: &[f64],
    params: &[Param],
    lr: f64,
    wd: f64,
    sign: bool,
) -> Result<()> {
    let q = perts.len() as f64;
    for (p, &g) in perts.iter().zip(gs) {
        let g = if sign { g.signum() } else { g };
        p.update_to(params, (lr / q) as f32, g as f32, wd as f32)?;
    }
    Ok(())
}

/// `ĝ = (1/q) Σᵢ gᵢ·zᵢ` of one tensor (zeros on unselected and masked coordinates).
pub fn projected(perts: &[Perturbation], gs: &[f64], p: &Param) -> Result<Vec<f32>> {
    let q = perts.len() as f32;
    let mut acc: Option<Vec<f32>> = None;
    for (pert, &g) in perts.iter().zip(gs) {
        let z = pert.direction(p)?;
        let c = g as f32 / q;
        match acc.as_mut() {
            None => acc = Some(z.into_iter().map(|x| c * x).collect()),
            Some(a) => a.iter_mut().zip(z).for_each(|(a, x)| *a += c * x),
        }
    }
    acc.ok_or_else(|| ZoError::invalid("a ZO step needs at least one query"))
}

/// ZO-SGD-MMT's state: one momentum buffer per tensor (PyTorch SGD, no dampening, no Nesterov).
#[derive(Debug, Clone, Default)]
pub struct Momentum {
    /// Momentum β.
    pub beta: f32,
    /// Buffer per parameter name.
    pub buffers: HashMap<String, Vec<f32>>,
}

impl Momentum {
    /// A fresh state with momentum `beta`.
    pub fn new(beta: f32) -> Self {
        Momentum {
            beta,
            buffers: HashMap::new(),
        }
    }

    /// `b ← β b + ĝ (+ wd θ)`, `θ ← θ − η b` for every tensor of `params`. Masked weights stay zero.
    pub fn update(
        &mut self,
        perts: &[Perturbation],
        gs: &[f64],
        params: &[Param],
        lr: f64,
        wd: f64,
    ) -> Result<()> {
        for p in params {
            let mut d = projected(perts, gs, p)?;
            let keep = mask_values(p)?;
            let wd = if p.decay { wd as f32 } else { 0.0 };
            let (beta, lr) = (self.beta, lr as f32);
            let buf = self.buffers.entry(p.name.clone());
            let fresh = matches!(buf, std::collections::hash_map::Entry::Vacant(_));
            let b = buf.or_insert_with(|| vec![0.0; d.len()]);
            map_inplace(&p.var, |th| {
                for i in 0..th.len() {
                    if keep.as_ref().is_some_and(|k| k[i] == 0.0) {
                        continue;
                    }
                    d[i] += wd * th[i];
                    // PyTorch initialises the buffer with the first gradient (b₁ = ĝ₁).
                    b[i] = if fresh { d[i] } else { beta * b[i] + d[i] };
                    th[i] -= lr * b[i];
                }
            })?;
        }
        Ok(())
    }
}

/// The 0/1 mask of a masked weight, as numbers.
pub fn mask_values(p: &Param) -> Result<Option<Vec<f32>>> {
    Ok(match &p.mask {
        Some(m) => Some(m.flatten_all()?.to_vec1()?),
        None => None,
    })
}

/// Which point ZO-SGD-Cons kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsChoice {
    /// θ unchanged.
    Stay,
    /// θ − ηgz (the SGD step).
    Minus,
    /// θ + ηgz.
    Plus,
}

/// The reference's selection rule among `L₀ = L(θ)`, `L₁ = L(θ − ηgz)`, `L₂ = L(θ + ηgz)`.
pub fn cons_choice(l0: f64, l1: f64, l2: f64) -> ConsChoice {
    if l1 > l0 {
        if l0 < l2 {
            ConsChoice::Stay
        } else {
            ConsChoice::Plus
        }
    } else if l1 < l2 {
        ConsChoice::Minus
    } else {
        ConsChoice::Plus
    }
}

/// One ZO-SGD-Cons step (five forward passes); returns `L₀` and the choice.
pub fn cons_step(
    loss: &mut dyn FnMut() -> Result<f64>,
    pert: &Perturbation,
    params: &[Param],
    mu: f32,
    lr: f64,
) -> Result<(f64, ConsChoice)> {
    let l0 = loss()?;
    let (g, _) = estimate(loss, std::slice::from_ref(pert), params, mu)?;
    let step = (lr * g[0]) as f32;
    pert.apply_to(params, -step)?;
    let l1 = loss();
    pert.apply_to(params, 2.0 * step)?;
    let l2 = loss();
    let (l1, l2) = match (l1, l2) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            pert.apply_to(params, -step)?;
            return Err(e);
        }
    };
    let choice = cons_choice(l0, l1, l2);
    match choice {
        ConsChoice::Stay => pert.apply_to(params, -step)?,
        ConsChoice::Minus => pert.apply_to(params, -2.0 * step)?,
        ConsChoice::Plus => Default::default(),
    };
    Ok((l0, choice))
}
