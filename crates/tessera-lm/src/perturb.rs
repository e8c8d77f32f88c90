//! In-place seeded perturbation of parameters for zeroth-order optimizers (MeZO, Malladi et al. 2023):
//! `θ ← θ + c·z` with `z ~ N(0, I)` regenerated on demand from a seed, so a step perturbs `+μ`, `−2μ`, `+μ` and
//! then updates `θ ← θ − η(g·z + wd·θ)` with the same `z` without ever holding a copy of `θ` or of `z`.
//!
//! **The generator is counter-based.** Each parameter's seed is `derive_seed(seed, name)`. Its elements are cut
//! into chunks of [`Z_BLOCK`]. Chunk `j` gets the key `mix(seed ⊕ mix(j))`, and the pair of elements `(2p, 2p+1)` in
//! that chunk comes from one 64-bit word `mix(key + (p+1)·φ)`, where `mix` is the SplitMix64 finaliser and `φ`
//! the 64-bit golden ratio. Element `k` therefore depends only on `(seed, name, k)`. Chunks run in parallel
//! (rayon), and every run of the same seed reproduces the same `z` bit for bit, whatever the thread count.
//!
//! **Normals come from Box–Muller with branch-free polynomial kernels.** The word's high 24 bits give
//! `u₁ ∈ (0, 1]` and its low 24 bits `u₂ ∈ [0, 1)`. Then `r = √(−2 ln u₁)`, `θ = π(2u₂ − 1)`, and the pair is
//! `(r cos θ, r sin θ)`. `ln` is an exponent split plus an atanh series on `[√½, √2)`. `sin`/`cos` use Taylor
//! polynomials of the half angle (`|φ| ≤ π/2`) and the double-angle formulas. The absolute error against libm
//! is below 1e-6, and the loops vectorise (no libm calls), several times faster than ChaCha plus libm
//! Box–Muller, the previous generator.
//!
//! The update goes through candle's in-place op API ([`Tensor::inplace_op1`] with a CPU kernel): no
//! parameter-sized temporary is allocated. Masked weights (a [`Linear`](crate::Linear) mask) are skipped, so they
//! stay exactly zero. [`Perturbation::fraction`] perturbs only a seeded random subset of the coordinates, chosen
//! by the same counter hash under a separate selection seed.
//!
//! [`Perturbation::apply_to`] / [`Perturbation::update_to`] work on any list of [`Param`]s, e.g. prefix or
//! prompt tensors that live outside the model. [`Perturbation::direction`] materialises one tensor's `z` for
//! optimizers that keep moments (ZO-SGD with momentum, ZO-Adam), and [`map_inplace`] edits a parameter in place.
use crate::error::{LmError, Result};
use crate::linear::with_f32_slice;
use crate::model::Llama;
use candle_core::{CpuStorage, InplaceOp1, Layout, Tensor, Var};
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
    /// Writes z (0 where unselected or masked) into the buffer instead of updating θ.
    Read,
}

struct ZOp<'a> {
    z_seed: u64,
    sel_seed: u64,
    fraction: f64,
    mask: Option<&'a Tensor>,
    kind: Kind,
    perturbed: &'a AtomicUsize,
}

const PHI: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's finaliser: a bijective 64-bit mixer.
#[inline(always)]
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The key of chunk `chunk` of the stream `seed`.
#[inline]
fn chunk_key(seed: u64, chunk: usize) -> u64 {
    mix64(seed ^ mix64((chunk as u64).wrapping_add(PHI)))
}

/// The `i`-th 64-bit word of the chunk with key `key`.
#[inline(always)]
fn word(key: u64, i: usize) -> u64 {
    mix64(key.wrapping_add((i as u64).wrapping_add(1).wrapping_mul(PHI)))
}

/// `ln x` for `x ∈ (0, 1]` (exponent split, atanh series; absolute error < 1e-7).
#[inline(always)]
fn ln_fast(x: f32) -> f32 {
    let bits = x.to_bits();
    let e0 = ((bits >> 23) & 0xff) as i32 - 127;
    let m0 = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    let big = m0 > std::f32::consts::SQRT_2;
    let m = if big { m0 * 0.5 } else { m0 };
    let e = if big { e0 + 1 } else { e0 };
    let t = (m - 1.0) / (m + 1.0);
    let t2 = t * t;
    let p = t * (2.0 + t2 * (2.0 / 3.0 + t2 * (2.0 / 5.0 + t2 * (2.0 / 7.0 + t2 * (2.0 / 9.0)))));
    e as f32 * std::f32::consts::LN_2 + p
}

/// `(sin θ, cos θ)` for `θ ∈ [−π, π]` via the half angle (absolute error < 1e-6).
#[inline(always)]
fn sin_cos_fast(theta: f32) -> (f32, f32) {
    let f = 0.5 * theta;
    let f2 = f * f;
    let s = f
        * (1.0
            + f2 * (-1.0 / 6.0
                + f2 * (1.0 / 120.0
                    + f2 * (-1.0 / 5040.0 + f2 * (1.0 / 362_880.0 + f2 * (-1.0 / 39_916_800.0))))));
    let c = 1.0
        + f2 * (-0.5
            + f2 * (1.0 / 24.0
                + f2 * (-1.0 / 720.0
                    + f2 * (1.0 / 40_320.0
                        + f2 * (-1.0 / 3_628_800.0 + f2 * (1.0 / 479_001_600.0))))));
    (2.0 * s * c, c * c - s * s)
}

/// Fills `z` (even length except possibly at a chunk's end) with the normals of pairs `first_pair..` of the
/// chunk with key `key`.
#[inline]
fn normals(key: u64, first_pair: usize, z: &mut [f32]) {
    const SCALE: f32 = 1.0 / 16_777_216.0;
    let half = z.len() / 2;
    let mut pairs = z.chunks_exact_mut(2);
    for (p, pair) in (&mut pairs).enumerate() {
        let w = word(key, first_pair + p);
        let u1 = (((w >> 40) as u32) + 1) as f32 * SCALE;
        let u2 = ((w as u32) & 0x00ff_ffff) as f32 * SCALE;
        let r = (-2.0 * ln_fast(u1)).sqrt();
        let (s, c) = sin_cos_fast(std::f32::consts::PI * (2.0 * u2 - 1.0));
        pair[0] = r * c;
        pair[1] = r * s;
    }
    let rest = pairs.into_remainder();
    if let Some(last) = rest.first_mut() {
        let mut two = [0f32; 2];
        normals(key, first_pair + half, &mut two);
        *last = two[0];
    }
}

/// Fills `z` with standard normals of chunk `chunk` of the stream `seed`.
fn fill_z(seed: u64, chunk: usize, z: &mut [f32]) {
    normals(chunk_key(seed, chunk), 0, z);
}

impl ZOp<'_> {
    fn run_block(&self, block: usize, theta: &mut [f32], mask: Option<&[f32]>) -> usize {
        let mut z = [0f32; 256];
        let zkey = chunk_key(self.z_seed, block);
        let skey = chunk_key(self.sel_seed, block);
        let thr =
            (self.fraction < 1.0).then_some((self.fraction * 18_446_744_073_709_551_616.0) as u64);
        let mut count = 0;
        for (ci, th) in theta.chunks_mut(256).enumerate() {
            normals(zkey, ci * 128, &mut z[..th.len()]);
            for (k, t) in th.iter_mut().enumerate() {
                let i = ci * 256 + k;
                let chosen = match thr {
                    Some(thr) => word(skey, i) < thr,
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
                    Kind::Read => *t = zi,
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
        self.select_from(params(model, self.set))
    }

    /// The members of `all` this perturbation touches (all of them unless [`Perturbation::only`] names some);
    /// checks the fraction.
    pub fn select_from(&self, all: Vec<Param>) -> Result<Vec<Param>> {
        if !(self.fraction > 0.0 && self.fraction <= 1.0) {
            return Err(LmError::Invalid(format!(
                "perturbation fraction {} out of range (0, 1]",
                self.fraction
            )));
        }
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

    fn sel_seed(&self, name: &str) -> u64 {
        tessera_core::rng::derive_seed(
            self.selection_seed.unwrap_or(self.seed),
            &format!("select/{name}"),
        )
    }

    /// `z` of parameter `name` with `len` elements, materialised (for tests and small parameters; the in-place
    /// passes never build it). Masks and the fraction are not applied.
    pub fn z_values(&self, name: &str, len: usize) -> Vec<f32> {
        let seed = self.z_seed(name);
        let mut z = vec![0f32; len];
        z.par_chunks_mut(Z_BLOCK)
            .enumerate()
            .for_each(|(j, blk)| fill_z(seed, j, blk));
        z
    }

    fn op<'a>(&self, p: &'a Param, kind: Kind, perturbed: &'a AtomicUsize) -> ZOp<'a> {
        let kind = match kind {
            Kind::Update { lr, g, .. } if !p.decay => Kind::Update { lr, g, wd: 0.0 },
            k => k,
        };
        ZOp {
            z_seed: self.z_seed(&p.name),
            sel_seed: self.sel_seed(&p.name),
            fraction: self.fraction,
            mask: p.mask.as_ref(),
            kind,
            perturbed,
        }
    }

    fn pass(&self, ps: &[Param], kind: Kind) -> Result<PerturbStats> {
        let perturbed = AtomicUsize::new(0);
        let mut stats = PerturbStats::default();
        for p in ps {
            p.var
                .as_tensor()
                .inplace_op1(&self.op(p, kind, &perturbed))?;
            stats.tensors += 1;
            stats.elements += p.var.elem_count();
        }
        stats.perturbed = perturbed.into_inner();
        Ok(stats)
    }

    /// `θ ← θ + c·z` in place on the model's parameters ([`Perturbation::set`], [`Perturbation::only`]).
    pub fn apply(&self, model: &Llama, c: f32) -> Result<PerturbStats> {
        self.apply_to(&params(model, self.set), c)
    }

    /// `θ ← θ + c·z` in place on those of `params` this perturbation selects (any tensors: prefixes, prompts).
    pub fn apply_to(&self, params: &[Param], c: f32) -> Result<PerturbStats> {
        if !c.is_finite() {
            return Err(LmError::Invalid(format!(
                "perturbation scale {c} is not finite"
            )));
        }
        self.pass(&self.select_from(params.to_vec())?, Kind::Add(c))
    }

    /// The update `θ ← θ − lr·(g·z + wd·θ)` in place with the same `z` (weight decay skipped on norms; pass
    /// `wd = 0` for none). Unselected coordinates (the fraction) get only the decay; masked ones stay zero.
    pub fn update(&self, model: &Llama, lr: f32, g: f32, wd: f32) -> Result<PerturbStats> {
        self.update_to(&params(model, self.set), lr, g, wd)
    }

    /// [`Perturbation::update`] on those of `params` this perturbation selects.
    pub fn update_to(&self, params: &[Param], lr: f32, g: f32, wd: f32) -> Result<PerturbStats> {
        if !(lr.is_finite() && g.is_finite() && wd.is_finite()) {
            return Err(LmError::Invalid(format!(
                "update lr {lr}, projected gradient {g}, weight decay {wd} must be finite"
            )));
        }
        self.pass(
            &self.select_from(params.to_vec())?,
            Kind::Update { lr, g, wd },
        )
    }

    /// The direction this perturbation moves `p` along, materialised: `z` with zeros on coordinates the fraction
    /// leaves out and on masked weights (exactly what [`Perturbation::apply_to`] adds, per unit of `c`). One
    /// tensor at a time, for optimizers that keep moments.
    pub fn direction(&self, p: &Param) -> Result<Vec<f32>> {
        if !(self.fraction > 0.0 && self.fraction <= 1.0) {
            return Err(LmError::Invalid(format!(
                "perturbation fraction {} out of range (0, 1]",
                self.fraction
            )));
        }
        let mut z = vec![0f32; p.var.elem_count()];
        let perturbed = AtomicUsize::new(0);
        let op = self.op(p, Kind::Read, &perturbed);
        let mut body = |mask: Option<&[f32]>| {
            z.par_chunks_mut(Z_BLOCK).enumerate().for_each(|(j, th)| {
                let m = mask.map(|m| &m[j * Z_BLOCK..j * Z_BLOCK + th.len()]);
                op.run_block(j, th, m);
            })
        };
        match &p.mask {
            None => body(None),
            Some(m) => with_f32_slice(m, |ms| body(Some(ms)))?,
        }
        Ok(z)
    }
}

/// Runs `f` on the f32 storage of `var` in place (contiguous CPU f32 tensors only): the element-wise updates of
/// optimizers that keep their own state, without a parameter-sized temporary.
pub fn map_inplace(var: &Var, f: impl FnMut(&mut [f32]) + Send) -> Result<()> {
    struct Op<F>(std::sync::Mutex<F>);
    impl<F: FnMut(&mut [f32]) + Send> InplaceOp1 for Op<F> {
        fn name(&self) -> &'static str {
            "map-inplace"
        }
        fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
            let (a, b) = layout
                .contiguous_offsets()
                .ok_or_else(|| candle_core::Error::Msg("parameter is not contiguous".into()))?;
            match storage {
                CpuStorage::F32(v) => {
                    let mut f = self.0.lock().unwrap_or_else(|e| e.into_inner());
                    f(&mut v[a..b]);
                    Ok(())
                }
                _ => Err(candle_core::Error::Msg(
                    "only f32 parameters are supported".into(),
                )),
            }
        }
    }
    var.as_tensor().inplace_op1(&Op(std::sync::Mutex::new(f)))?;
    Ok(())
}
