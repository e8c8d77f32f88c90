//! First-order optimizers whose state can be saved and restored (candle's `AdamW` keeps its moments private):
//! SGD with momentum and AdamW (Loshchilov & Hutter 2019: decoupled weight decay, bias-corrected moments), over
//! named `Var`s; learning-rate schedules; gradient accumulation and global-norm clipping.
//!
//! Conventions follow PyTorch so that results can be compared with the reference implementations:
//! - SGD: `g ← g + wd·θ` (coupled L2), `buf ← μ·buf + g`, `θ ← θ − lr·buf` (no dampening, no Nesterov).
//! - AdamW: `θ ← θ·(1 − lr·wd)`, `m ← β1·m + (1−β1)·g`, `v ← β2·v + (1−β2)·g²`,
//!   `θ ← θ − lr·(m / (1−β1ᵗ)) / (√(v / (1−β2ᵗ)) + ε)`.
//! - Weight decay never applies to norms and biases (rank-1 tensors, or names containing `norm` / `bias`).
use crate::error::{LmError, Result};
use crate::model::Llama;
use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// A trainable tensor with its name (the key of its optimizer state in a checkpoint).
#[derive(Debug, Clone)]
pub struct Param {
    /// Unique name, e.g. `model.layers.0.self_attn.q_proj.weight` or `...q_proj.lora_a`.
    pub name: String,
    /// The variable (shared storage with the model).
    pub var: Var,
    /// Whether weight decay applies.
    pub decay: bool,
}

impl Param {
    /// A parameter; decay is off for rank-1 tensors and names with `norm` or `bias`.
    pub fn new(name: impl Into<String>, var: Var) -> Self {
        let name = name.into();
        let decay = var.rank() > 1 && !name.contains("norm") && !name.contains("bias");
        Param { name, var, decay }
    }
}

/// Every base parameter of `model` (weights, norms, embedding; the tied head once), for full fine-tuning.
pub fn base_params(model: &Llama) -> Vec<Param> {
    model
        .named_vars()
        .into_iter()
        .map(|(n, v)| Param::new(n, v))
        .collect()
}

/// Every attached LoRA adapter of `model`, named `<linear>.lora_a` / `<linear>.lora_b`.
pub fn lora_params(model: &Llama) -> Vec<Param> {
    let mut out = Vec::new();
    for (i, b) in model.blocks.iter().enumerate() {
        for (name, l) in b.linears() {
            if let Some(lo) = l.lora() {
                out.push(Param::new(
                    format!("model.layers.{i}.{name}.lora_a"),
                    lo.a.clone(),
                ));
                out.push(Param::new(
                    format!("model.layers.{i}.{name}.lora_b"),
                    lo.b.clone(),
                ));
            }
        }
    }
    out
}

/// Gradients aligned with a parameter list (`None` where autograd produced none).
#[derive(Debug, Clone)]
pub struct Grads(pub Vec<Option<Tensor>>);

impl Grads {
    /// Picks the gradients of `params` out of a backward pass.
    pub fn from_store(params: &[Param], store: &GradStore) -> Self {
        Grads(
            params
                .iter()
                .map(|p| store.get(p.var.as_tensor()).cloned())
                .collect(),
        )
    }

    /// Adds another micro-batch's gradients (gradient accumulation).
    pub fn accumulate(&mut self, other: &Grads) -> Result<()> {
        if other.0.len() != self.0.len() {
            return Err(LmError::Invalid(format!(
                "accumulating {} gradients into {}",
                other.0.len(),
                self.0.len()
            )));
        }
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a = match (a.take(), b) {
                (Some(x), Some(y)) => Some((x + y)?),
                (None, Some(y)) => Some(y.clone()),
                (x, None) => x,
            };
        }
        Ok(())
    }

    /// Multiplies every gradient by `s` (e.g. `1 / micro_batches` after accumulation).
    pub fn scale(&mut self, s: f64) -> Result<()> {
        for g in self.0.iter_mut().flatten() {
            *g = g.affine(s, 0.0)?;
        }
        Ok(())
    }

    /// `‖g‖₂` over all gradients together.
    pub fn global_norm(&self) -> Result<f64> {
        let mut sq = 0f64;
        for g in self.0.iter().flatten() {
            sq += g
                .sqr()?
                .sum_all()?
                .to_dtype(candle_core::DType::F64)?
                .to_scalar::<f64>()?;
        }
        Ok(sq.sqrt())
    }

    /// Scales all gradients so that their global norm is at most `max_norm` (PyTorch's `clip_grad_norm_`,
    /// factor `max_norm / (norm + 1e-6)` when the norm exceeds it). Returns the norm before clipping.
    pub fn clip_global_norm(&mut self, max_norm: f64) -> Result<f64> {
        if !(max_norm.is_finite() && max_norm > 0.0) {
            return Err(LmError::Invalid(format!(
                "gradient clipping norm must be > 0, got {max_norm}"
            )));
        }
        let n = self.global_norm()?;
        if n > max_norm {
            self.scale(max_norm / (n + 1e-6))?;
        }
        Ok(n)
    }
}

/// Optimizer choice and hyper-parameters (the learning rate comes from the [`Schedule`] at every step).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OptimizerConfig {
    /// SGD with (heavy-ball) momentum.
    Sgd {
        /// Momentum μ (0 for plain SGD).
        momentum: f64,
        /// Coupled L2 weight decay.
        weight_decay: f64,
    },
    /// AdamW.
    AdamW {
        /// β1.
        beta1: f64,
        /// β2.
        beta2: f64,
        /// ε.
        eps: f64,
        /// Decoupled weight decay.
        weight_decay: f64,
    },
}

impl OptimizerConfig {
    /// AdamW with PyTorch's defaults (β = (0.9, 0.999), ε = 1e-8) and weight decay `wd`.
    pub fn adamw(weight_decay: f64) -> Self {
        OptimizerConfig::AdamW {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
        }
    }
    fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(LmError::Invalid(m));
        let nonneg = |x: f64| x.is_finite() && x >= 0.0;
        let positive = |x: f64| x.is_finite() && x > 0.0;
        match *self {
            OptimizerConfig::Sgd {
                momentum,
                weight_decay,
            } => {
                if !(0.0..1.0).contains(&momentum) || !nonneg(weight_decay) {
                    return bad(format!(
                        "SGD needs 0 ≤ momentum < 1 and weight decay ≥ 0 (got {momentum}, {weight_decay})"
                    ));
                }
            }
            OptimizerConfig::AdamW {
                beta1,
                beta2,
                eps,
                weight_decay,
            } => {
                if !(0.0..1.0).contains(&beta1)
                    || !(0.0..1.0).contains(&beta2)
                    || !positive(eps)
                    || !nonneg(weight_decay)
                {
                    return bad(format!(
                        "AdamW needs betas in [0, 1), eps > 0, weight decay ≥ 0 (got {beta1}, {beta2}, {eps}, {weight_decay})"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Learning-rate schedule: linear warm-up from 0 over `warmup_steps`, then constant or cosine decay.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// Peak learning rate.
    pub lr: f64,
    /// Steps of linear warm-up (step `s < warmup` gets `lr·(s+1)/warmup`).
    pub warmup_steps: u64,
    /// What follows the warm-up.
    pub decay: Decay,
}

/// The post-warm-up part of a [`Schedule`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Decay {
    /// Constant at the peak.
    Constant,
    /// Cosine from the peak to `floor · lr` at `total_steps`, then flat.
    Cosine {
        /// Step at which the floor is reached (warm-up included).
        total_steps: u64,
        /// Final learning rate as a fraction of the peak.
        floor: f64,
    },
}

impl Schedule {
    /// A constant learning rate.
    pub fn constant(lr: f64) -> Self {
        Schedule {
            lr,
            warmup_steps: 0,
            decay: Decay::Constant,
        }
    }
    /// The learning rate of step `step` (0-based).
    pub fn lr_at(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            return self.lr * (step + 1) as f64 / self.warmup_steps as f64;
        }
        match self.decay {
            Decay::Constant => self.lr,
            Decay::Cosine { total_steps, floor } => {
                let span = total_steps.saturating_sub(self.warmup_steps).max(1);
                let done = (step - self.warmup_steps).min(span) as f64 / span as f64;
                let f = floor + (1.0 - floor) * 0.5 * (1.0 + (std::f64::consts::PI * done).cos());
                self.lr * f
            }
        }
    }
    fn validate(&self) -> Result<()> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(LmError::Invalid(format!(
                "learning rate must be > 0, got {}",
                self.lr
            )));
        }
        if let Decay::Cosine { floor, .. } = self.decay {
            if !(0.0..=1.0).contains(&floor) {
                return Err(LmError::Invalid(format!(
                    "cosine floor must be in [0, 1], got {floor}"
                )));
            }
        }
        Ok(())
    }
}

/// An optimizer over a fixed list of named parameters. State tensors are named `<param>.m` / `<param>.v`
/// (AdamW) or `<param>.momentum` (SGD).
#[derive(Debug)]
pub struct Optimizer {
    config: OptimizerConfig,
    params: Vec<Param>,
    /// First moment / momentum buffer per parameter (lazily created).
    m: Vec<Option<Tensor>>,
    /// Second moment per parameter (AdamW).
    v: Vec<Option<Tensor>>,
    steps: u64,
}

impl Optimizer {
    /// An optimizer for `params` (names must be unique).
    pub fn new(config: OptimizerConfig, params: Vec<Param>) -> Result<Self> {
        config.validate()?;
        let mut seen = std::collections::HashSet::new();
        for p in &params {
            if !seen.insert(p.name.as_str()) {
                return Err(LmError::Invalid(format!(
                    "parameter `{}` is listed twice",
                    p.name
                )));
            }
        }
        let n = params.len();
        Ok(Optimizer {
            config,
            params,
            m: vec![None; n],
            v: vec![None; n],
            steps: 0,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }
    /// The parameters, in order.
    pub fn params(&self) -> &[Param] {
        &self.params
    }
    /// Updates taken so far (AdamW's bias-correction step count).
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Runs backward on `loss` and returns the gradients of the parameters.
    pub fn grads(&self, loss: &Tensor) -> Result<Grads> {
        let store = loss.backward()?;
        Ok(Grads::from_store(&self.params, &store))
    }

    /// One update with learning rate `lr`. Parameters without a gradient are left alone (and their state too).
    pub fn step(&mut self, grads: &Grads, lr: f64) -> Result<()> {
        if grads.0.len() != self.params.len() {
            return Err(LmError::Invalid(format!(
                "{} gradients for {} parameters",
                grads.0.len(),
                self.params.len()
            )));
        }
        self.steps += 1;
        let t = self.steps as i32;
        for (i, (p, g)) in self.params.iter().zip(&grads.0).enumerate() {
            let Some(g) = g else { continue };
            let theta = p.var.as_tensor().detach();
            let g = g.detach();
            if g.dims() != theta.dims() {
                return Err(LmError::Invalid(format!(
                    "gradient of `{}` has shape {:?}, parameter {:?}",
                    p.name,
                    g.dims(),
                    theta.dims()
                )));
            }
            match self.config {
                OptimizerConfig::Sgd {
                    momentum,
                    weight_decay,
                } => {
                    let g = if p.decay && weight_decay > 0.0 {
                        (g + theta.affine(weight_decay, 0.0)?)?
                    } else {
                        g
                    };
                    let d = if momentum > 0.0 {
                        let buf = match self.m[i].take() {
                            Some(b) => (b.affine(momentum, 0.0)? + g)?,
                            None => g,
                        };
                        self.m[i] = Some(buf.clone());
                        buf
                    } else {
                        g
                    };
                    p.var.set(&(theta - d.affine(lr, 0.0)?)?)?;
                }
                OptimizerConfig::AdamW {
                    beta1,
                    beta2,
                    eps,
                    weight_decay,
                } => {
                    let theta = if p.decay && weight_decay > 0.0 {
                        theta.affine(1.0 - lr * weight_decay, 0.0)?
                    } else {
                        theta
                    };
                    let m = match self.m[i].take() {
                        Some(m) => (m.affine(beta1, 0.0)? + g.affine(1.0 - beta1, 0.0)?)?,
                        None => g.affine(1.0 - beta1, 0.0)?,
                    };
                    let v = match self.v[i].take() {
                        Some(v) => (v.affine(beta2, 0.0)? + g.sqr()?.affine(1.0 - beta2, 0.0)?)?,
                        None => g.sqr()?.affine(1.0 - beta2, 0.0)?,
                    };
                    let bc1 = 1.0 - beta1.powi(t);
                    let bc2 = 1.0 - beta2.powi(t);
                    let denom = v.affine(1.0 / bc2, 0.0)?.sqrt()?.affine(1.0, eps)?;
                    let upd = m.affine(lr / bc1, 0.0)?.div(&denom)?;
                    p.var.set(&(theta - upd)?)?;
                    self.m[i] = Some(m);
                    self.v[i] = Some(v);
                }
            }
        }
        Ok(())
    }

    /// The optimizer's state tensors by name (for a checkpoint).
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        let first = match self.config {
            OptimizerConfig::Sgd { .. } => "momentum",
            OptimizerConfig::AdamW { .. } => "m",
        };
        for (i, p) in self.params.iter().enumerate() {
            if let Some(m) = &self.m[i] {
                out.push((format!("{}.{first}", p.name), m.clone()));
            }
            if let Some(v) = &self.v[i] {
                out.push((format!("{}.v", p.name), v.clone()));
            }
        }
        out
    }

    /// Restores state saved by [`Optimizer::state_tensors`] after `steps` updates. Every tensor must belong to
    /// a known parameter and match its shape.
    pub fn load_state(&mut self, mut state: HashMap<String, Tensor>, steps: u64) -> Result<()> {
        let first = match self.config {
            OptimizerConfig::Sgd { .. } => "momentum",
            OptimizerConfig::AdamW { .. } => "m",
        };
        let mut m = vec![None; self.params.len()];
        let mut v = vec![None; self.params.len()];
        for (i, p) in self.params.iter().enumerate() {
            for (slot, suffix) in [(&mut m[i], first), (&mut v[i], "v")] {
                if let Some(t) = state.remove(&format!("{}.{suffix}", p.name)) {
                    if t.dims() != p.var.dims() {
                        return Err(LmError::Invalid(format!(
                            "optimizer state `{}.{suffix}` has shape {:?}, parameter {:?}",
                            p.name,
                            t.dims(),
                            p.var.dims()
                        )));
                    }
                    *slot = Some(t);
                }
            }
        }
        if let Some(k) = state.keys().next() {
            return Err(LmError::Invalid(format!(
                "optimizer state `{k}` belongs to no parameter"
            )));
        }
        self.m = m;
        self.v = v;
        self.steps = steps;
        Ok(())
    }
}

/// Checks a schedule (public so that run configurations can validate before starting).
pub fn validate_schedule(s: &Schedule) -> Result<()> {
    s.validate()
}
