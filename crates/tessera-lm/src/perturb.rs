//! In-place seeded perturbation of parameters for zeroth-order optimizers (MeZO, Malladi et al. 2023):
//! `θ ← θ + c·z` with `z ~ N(0, I)` drawn from a seeded ChaCha stream per parameter, regenerated on demand, so a
//! step perturbs `+μ`, `−2μ`, `+μ` and then updates `θ ← θ − η(g·z + wd·θ)` with the same `z` without ever holding
//! a copy of `θ` or of `z`.
//!
//! Each parameter's stream is `derive_seed(seed, name)`; its elements are cut into blocks of [`Z_BLOCK`] and block
//! `j` reads ChaCha stream number `j` of that seed, so blocks are generated in parallel and every run of the same
//! seed reproduces the same `z` bit for bit. Normals come from Box–Muller on pairs of 24-bit uniforms.
//! The update goes through candle's in-place op API ([`Tensor::inplace_op1`] with a CPU kernel): no
//! parameter-sized temporary is allocated. Masked weights (a [`Linear`](crate::Linear) mask) are skipped, so they
//! stay exactly zero; [`Perturbation::fraction`] perturbs only a seeded random subset of the coordinates.
use crate::error::{LmError, Result};
use crate::linear::with_f32_slice;
use crate::model::Llama;
use candle_core::{CpuStorage, InplaceOp1, Layout, Tensor, Var};
use rand::{RngCore as _, SeedableRng as _};
use rayon::prelude::*;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Elements per independently seeded block of a parameter's `z` stream.
pub const Z_BLOCK: usize = 4096;

/// Which parameters a perturbation touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamSet {
    /// The model's own weights, norms and embedding (full-parameter ZO).
    #[default]
    Base,
    /// The LoRA adapters only.
    Adapters,
    /// Both.
    All,
}

impl fmt::Display for ParamSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParamSet::Base => "base",
            ParamSet::Adapters => "adapters",
            ParamSet::All => "all",
        })
    }
}

impl FromStr for ParamSet {
    type Err = LmError;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "base" | "full" => Ok(ParamSet::Base),
            "adapters" | "lora" => Ok(ParamSet::Adapters),
            "all" => Ok(ParamSet::All),
            other => Err(LmError::Invalid(format!(
                "unknown parameter set `{other}` (expected base, adapters or all)"
            ))),
        }
    }
}

/// One perturbable parameter.
#[derive(Debug, Clone)]
pub struct Param {
    /// HF name (`model.layers.3.mlp.up_proj.weight`, `...lora_a`).
    pub name: String,
    /// The variable (updated in place).
    pub var: Var,
    /// Its 0/1 mask, when it is a masked projection weight.
    pub mask: Option<Tensor>,
    /// Whether weight decay applies (false for norms, which are 1-D, as biases would be).
    pub decay: bool,
}

/// The parameters of `model` in `set`, in a fixed order (the tied head appears once, as the embedding).
pub fn params(model: &Llama, set: ParamSet) -> Vec<Param> {
    let mut out = Vec::new();
    if set != ParamSet::Adapters {
        let mut masks = std::collections::HashMap::new();
        for (i, b) in model.blocks.iter().enumerate() {
            for (name, l) in b.linears() {
                if let Some(m) = l.mask() {
                    masks.insert(format!("model.layers.{i}.{name}.weight"), m.clone());
                }
            }
        }
        if let Some(m) = model.lm_head.mask() {
            let key = if model.is_tied() {
                "model.embed_tokens.weight"
            } else {
                "lm_head.weight"
            };
            masks.insert(key.to_string(), m.clone());
        }
        for (name, var) in model.named_vars() {
            let decay = var.rank() > 1;
            out.push(Param {
                mask: masks.remove(&name),
                name,
                var,
                decay,
            });
        }
    }
    if set != ParamSet::Base {
        for (name, var) in model.named_lora_vars() {
            out.push(Param {
                name,
                var,
                mask: None,
                decay: true,
            });
        }
    }
    out
}

/// What one in-place pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PerturbStats {
    /// Parameter tensors visited.
    pub tensors: usize,
    /// Elements in them.
    pub elements: usize,
    /// Coordinates that received `z` (selected by the fraction and not masked).
    pub perturbed: usize,
}

/// A seeded direction `z` over a set of parameters, applied in place.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Perturbation {
    /// Seed of `z` (e.g. one per optimizer step).
    pub seed: u64,
    /// Which parameters.
    pub set: ParamSet,
    /// Restrict to these parameter names (exact HF names); `None` = all of `set`.
    pub only: Option<Vec<String>>,
    /// Fraction of coordinates perturbed (1 = all), chosen per coordinate by a seeded uniform draw.
    pub fraction: f64,
    /// Seed of the coordinate selection (default: `seed`, so each step picks a new subset; fix it to keep one).
    pub selection_seed: Option<u64>,
}

#[derive(Clone, Copy)]
enum Kind {
    /// θ += c z
    Add(f32),
    /// θ ← θ − lr (g z + wd θ)
    Update { lr: f32, g: f32, wd: f32 },
}

struct ZOp<'a> {
    z_seed: u64,
    sel_seed: u64,
    fraction: f64,
    mask: Option<&'a Tensor>,
    kind: Kind,
    perturbed: &'a AtomicUsize,
}

/// A uniform in (0, 1] from 24 random bits.
#[inline]
fn unit(r: &mut tessera_core::rng::Rng) -> f32 {
    ((r.next_u32() >> 8) + 1) as f32 * (1.0 / 16_777_216.0)
}

/// Fills `z` with standard normals of block `block` of the stream `seed`.
fn fill_z(seed: u64, block: usize, z: &mut [f32]) {
    let mut r = tessera_core::rng::Rng::seed_from_u64(seed);
    r.set_stream(block as u64);
    for pair in z.chunks_mut(2) {
        let (u1, u2) = (unit(&mut r), unit(&mut r));
        let rad = (-2.0 * u1.ln()).sqrt();
        let (s, c) = (2.0 * std::f32::consts::PI * u2).sin_cos();
        pair[0] = rad * c;
        if pair.len() > 1 {
            pair[1] = rad * s;
        }
    }
}

impl ZOp<'_> {
    fn run_block(&self, block: usize, theta: &mut [f32], mask: Option<&[f32]>) -> usize {
        let mut z = [0f32; 256];
        let mut sel = (self.fraction < 1.0).then(|| {
            let mut r = tessera_core::rng::Rng::seed_from_u64(self.sel_seed);
            r.set_stream(block as u64);
            r
        });
        let mut count = 0;
        // z for the block is generated 256 at a time from one stream position onwards.
        let mut zr = tessera_core::rng::Rng::seed_from_u64(self.z_seed);
        zr.set_stream(block as u64);
        for (ci, th) in theta.chunks_mut(256).enumerate() {
            for pair in z[..th.len()].chunks_mut(2) {
                let (u1, u2) = (unit(&mut zr), unit(&mut zr));
                let rad = (-2.0 * u1.ln()).sqrt();
                let (s, c) = (2.0 * std::f32::consts::PI * u2).sin_cos();
                pair[0] = rad * c;
                if pair.len() > 1 {
                    pair[1] = rad * s;
                }
            }
            for (k, t) in th.iter_mut().enumerate() {
                let i = ci * 256 + k;
                let chosen = match sel.as_mut() {
                    Some(r) => (r.next_u32() as f64) < self.fraction * 4_294_967_296.0,
                    None => true,
                };
                if mask.is_some_and(|m| m[i] == 0.0) {
                    continue;
                }
                let zi = if chosen { z[k] } else { 0.0 };
                match self.kind {
                    Kind::Add(c) => {
                        if chosen {
                            *t += c * zi;
                        }
                    }
                    Kind::Update { lr, g, wd } => *t -= lr * (g * zi + wd * *t),
                }
                count += usize::from(chosen);
            }
        }
        count
    }
}

impl InplaceOp1 for ZOp<'_> {
    fn name(&self) -> &'static str {
        "seeded-perturbation"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        let (a, b) = layout.contiguous_offsets().ok_or_else(|| {
            candle_core::Error::Msg("perturbation: parameter is not contiguous".into())
        })?;
        let theta = match storage {
            CpuStorage::F32(v) => &mut v[a..b],
            _ => {
                return Err(candle_core::Error::Msg(
                    "perturbation: only f32 parameters are supported".into(),
                ))
            }
        };
        let mut body = |mask: Option<&[f32]>| -> usize {
            theta
                .par_chunks_mut(Z_BLOCK)
                .enumerate()
                .map(|(j, th)| {
                    let m = mask.map(|m| &m[j * Z_BLOCK..j * Z_BLOCK + th.len()]);
                    self.run_block(j, th, m)
                })
                .sum()
        };
        let n = match self.mask {
            None => body(None),
            Some(m) => with_f32_slice(m, |ms| body(Some(ms)))
                .map_err(|e| candle_core::Error::Msg(e.to_string()))?,
        };
        self.perturbed.fetch_add(n, Ordering::Relaxed);
        Ok(())
    }
}

impl Perturbation {
    /// A direction over every parameter of `set`, every coordinate.
    pub fn new(seed: u64, set: ParamSet) -> Self {
        Perturbation {
            seed,
            set,
            only: None,
            fraction: 1.0,
            selection_seed: None,
        }
    }

    /// The parameters this perturbation touches; unknown names in [`Perturbation::only`] are an error.
    pub fn selected(&self, model: &Llama) -> Result<Vec<Param>> {
        if !(self.fraction > 0.0 && self.fraction <= 1.0) {
            return Err(LmError::Invalid(format!(
                "perturbation fraction {} out of range (0, 1]",
                self.fraction
            )));
        }
        let all = params(model, self.set);
        match &self.only {
            None => Ok(all),
            Some(names) => {
                if let Some(bad) = names.iter().find(|n| !all.iter().any(|p| &p.name == *n)) {
                    return Err(LmError::Invalid(format!(
                        "no parameter named `{bad}` in the {} set",
                        self.set
                    )));
                }
                Ok(all
                    .into_iter()
                    .filter(|p| names.contains(&p.name))
                    .collect())
            }
        }
    }

    /// The `z` seed of parameter `name`.
    pub fn z_seed(&self, name: &str) -> u64 {
        tessera_core::rng::derive_seed(self.seed, name)
    }

    /// `z` of parameter `name` with `len` elements, materialised (for tests and small parameters; the in-place
    /// passes never build it). Masks and the fraction are not applied.
    pub fn z_values(&self, name: &str, len: usize) -> Vec<f32> {
        let seed = self.z_seed(name);
        let mut z = vec![0f32; len];
        for (j, blk) in z.chunks_mut(Z_BLOCK).enumerate() {
            fill_z(seed, j, blk);
        }
        z
    }

    fn pass(&self, model: &Llama, kind: Kind) -> Result<PerturbStats> {
        let ps = self.selected(model)?;
        let perturbed = AtomicUsize::new(0);
        let mut stats = PerturbStats::default();
        for p in &ps {
            let decay = p.decay;
            let kind = match kind {
                Kind::Update { lr, g, .. } if !decay => Kind::Update { lr, g, wd: 0.0 },
                k => k,
            };
            let op = ZOp {
                z_seed: self.z_seed(&p.name),
                sel_seed: tessera_core::rng::derive_seed(
                    self.selection_seed.unwrap_or(self.seed),
                    &format!("select/{}", p.name),
                ),
                fraction: self.fraction,
                mask: p.mask.as_ref(),
                kind,
                perturbed: &perturbed,
            };
            p.var.as_tensor().inplace_op1(&op)?;
            stats.tensors += 1;
            stats.elements += p.var.elem_count();
        }
        stats.perturbed = perturbed.into_inner();
        Ok(stats)
    }

    /// `θ ← θ + c·z` in place.
    pub fn apply(&self, model: &Llama, c: f32) -> Result<PerturbStats> {
        if !c.is_finite() {
            return Err(LmError::Invalid(format!(
                "perturbation scale {c} is not finite"
            )));
        }
        self.pass(model, Kind::Add(c))
    }

    /// The update `θ ← θ − lr·(g·z + wd·θ)` in place with the same `z` (weight decay skipped on norms; pass
    /// `wd = 0` for none). Unselected coordinates (the fraction) get only the decay; masked ones stay zero.
    pub fn update(&self, model: &Llama, lr: f32, g: f32, wd: f32) -> Result<PerturbStats> {
        if !(lr.is_finite() && g.is_finite() && wd.is_finite()) {
            return Err(LmError::Invalid(format!(
                "update lr {lr}, projected gradient {g}, weight decay {wd} must be finite"
            )));
        }
        self.pass(model, Kind::Update { lr, g, wd })
    }
}
