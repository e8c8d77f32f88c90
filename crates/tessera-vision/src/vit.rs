//! The image encoder: a Vision Transformer (Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words",
//! arXiv:2010.11929, §3.1 Eq. 1–4) at small scale.
//!
//! - Patch embedding: the image is cut into `patch × patch` squares, each flattened (channel-major, then rows,
//!   then columns) and mapped by one runtime [`Linear`] with bias (Eq. 1, `x_p E`), plus learned positions
//!   `E_pos` (no class token: every patch is kept as an image token).
//! - `layers` pre-norm blocks (Eq. 2–3): `x + MSA(LN(x))`, then `x + MLP(LN(x))` with a GELU MLP of width
//!   `mlp_ratio · width`; attention is non-causal (every patch sees every patch).
//! - A final LayerNorm (Eq. 4) and an average pooling of `pool × pool` neighbouring patches, which sets the number
//!   of image tokens the language model reads: `(image_size / patch / pool)²` (16 by default). The cost of a
//!   training step is dominated by backpropagating through the frozen 135M language model, so fewer image tokens
//!   is what makes training fit 2 CPU cores.
//!
//! Every projection (patch embedding, `qkv`, `proj`, `fc1`, `fc2`) is the runtime's [`Linear`], so masks, LoRA
//! adapters and the calibration observers work on the vision tower exactly as on the language model.
//! LayerNorm and softmax are written with composed candle ops so that they have a backward pass.
use crate::error::{Result, VisionError};
use candle_core::{DType, Device, Tensor, Var, D};
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use tessera_lm::{Grad, Linear, LinearCtx, WeightMode};

/// Size of the encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VitConfig {
    /// Input side in pixels (square images).
    pub image_size: usize,
    /// Colour channels of the input.
    pub channels: usize,
    /// Patch side in pixels.
    pub patch: usize,
    /// Residual width.
    pub width: usize,
    /// Transformer blocks.
    pub layers: usize,
    /// Attention heads.
    pub heads: usize,
    /// MLP hidden width as a multiple of `width`.
    pub mlp_ratio: usize,
    /// Average pooling of `pool × pool` patches into one image token (1 = every patch is a token).
    pub pool: usize,
}

impl Default for VitConfig {
    fn default() -> Self {
        VitConfig {
            image_size: 64,
            channels: 3,
            patch: 8,
            width: 192,
            layers: 4,
            heads: 3,
            mlp_ratio: 4,
            pool: 2,
        }
    }
}

impl VitConfig {
    /// Patches per side.
    pub fn grid(&self) -> usize {
        self.image_size / self.patch
    }
    /// Patches per image.
    pub fn patches(&self) -> usize {
        self.grid() * self.grid()
    }
    /// Image tokens handed to the language model.
    pub fn tokens(&self) -> usize {
        let g = self.grid() / self.pool;
        g * g
    }
    /// Length of one flattened patch.
    pub fn patch_dim(&self) -> usize {
        self.channels * self.patch * self.patch
    }
    /// Checks that the sizes fit together.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(VisionError::Invalid(m));
        if self.image_size > 1024
            || self.width > 4096
            || self.layers > 64
            || self.mlp_ratio > 16
            || self.channels > 4
        {
            return bad(format!(
                "encoder too large (image ≤ 1024, width ≤ 4096, layers ≤ 64, mlp ratio ≤ 16, channels ≤ 4): {self:?}"
            ));
        }
        if self.patch == 0 || self.image_size == 0 || !self.image_size.is_multiple_of(self.patch) {
            return bad(format!(
                "image size {} must be a positive multiple of the patch size {}",
                self.image_size, self.patch
            ));
        }
        if self.pool == 0 || !self.grid().is_multiple_of(self.pool) {
            return bad(format!(
                "pooling {} must divide the patch grid {}",
                self.pool,
                self.grid()
            ));
        }
        if self.heads == 0 || self.width == 0 || !self.width.is_multiple_of(self.heads) {
            return bad(format!(
                "width {} must be a positive multiple of heads {}",
                self.width, self.heads
            ));
        }
        if self.layers == 0 || self.mlp_ratio == 0 || self.channels == 0 {
            return bad("layers, mlp_ratio and channels must be ≥ 1".into());
        }
        Ok(())
    }
}

/// Draws `n` samples of N(0, std²) (Box–Muller) from `rng`.
pub(crate) fn normal(rng: &mut tessera_core::rng::Rng, n: usize, std: f32) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let (u1, u2): (f32, f32) = (rng.gen_range(1e-7..1.0), rng.gen());
            std * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos()
        })
        .collect()
}

/// A linear layer `out × in` with bias, weights N(0, 0.02²), bias 0 (the ViT initialisation).
pub(crate) fn init_linear(
    rng: &mut tessera_core::rng::Rng,
    inp: usize,
    out: usize,
    dev: &Device,
) -> Result<Linear> {
    let w = Tensor::from_vec(normal(rng, out * inp, 0.02), (out, inp), dev)?;
    let b = Var::zeros(out, DType::F32, dev)?;
    Ok(Linear::with_bias(Var::from_tensor(&w)?, Some(b))?)
}

/// `forward_with` of a vision linear (every row observed).
pub(crate) fn lin(l: &Linear, x: &Tensor, g: Grad, w: WeightMode) -> Result<Tensor> {
    Ok(l.forward_with(
        x,
        &LinearCtx {
            grad: g,
            weights: w,
            keep_rows: None,
        },
    )?)
}

/// LayerNorm over the last dimension with a learned scale and shift.
#[derive(Debug)]
pub struct LayerNorm {
    /// Scale γ.
    pub weight: Var,
    /// Shift β.
    pub bias: Var,
    /// ε.
    pub eps: f64,
}

impl LayerNorm {
    fn new(width: usize, dev: &Device) -> Result<Self> {
        Ok(LayerNorm {
            weight: Var::ones(width, DType::F32, dev)?,
            bias: Var::zeros(width, DType::F32, dev)?,
            eps: 1e-6,
        })
    }
    /// `(x − mean) / sqrt(var + ε) · γ + β`; γ, β trainable when `g` trains the base.
    pub fn forward(&self, x: &Tensor, g: Grad) -> Result<Tensor> {
        let mean = x.mean_keepdim(D::Minus1)?;
        let xc = x.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
        let xn = xc.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        let w = tessera_lm::linear::param(&self.weight, g.base());
        let b = tessera_lm::linear::param(&self.bias, g.base());
        Ok(xn.broadcast_mul(&w)?.broadcast_add(&b)?)
    }
}

/// One pre-norm transformer block.
#[derive(Debug)]
pub struct VitBlock {
    /// Norm before attention.
    pub ln1: LayerNorm,
    /// Fused query/key/value projection `width → 3·width`.
    pub qkv: Linear,
    /// Attention output projection.
    pub proj: Linear,
    /// Norm before the MLP.
    pub ln2: LayerNorm,
    /// MLP up projection.
    pub fc1: Linear,
    /// MLP down projection.
    pub fc2: Linear,
}

/// Names of a block's linears, in [`VitBlock::linears_mut`] order (the names VLM-Compression prunes).
pub const BLOCK_LINEARS: [&str; 4] = ["qkv", "proj", "fc1", "fc2"];

impl VitBlock {
    /// The block's linears with their names.
    pub fn linears(&self) -> [(&'static str, &Linear); 4] {
        [
            ("qkv", &self.qkv),
            ("proj", &self.proj),
            ("fc1", &self.fc1),
            ("fc2", &self.fc2),
        ]
    }
    /// The block's linears, mutable.
    pub fn linears_mut(&mut self) -> [(&'static str, &mut Linear); 4] {
        [
            ("qkv", &mut self.qkv),
            ("proj", &mut self.proj),
            ("fc1", &mut self.fc1),
            ("fc2", &mut self.fc2),
        ]
    }

    /// The block on `x` `[batch, patches, width]`.
    pub fn forward(&self, x: &Tensor, heads: usize, g: Grad, wm: WeightMode) -> Result<Tensor> {
        let (b, n, w) = x.dims3()?;
        let d = w / heads;
        let h = self.ln1.forward(x, g)?;
        let qkv = lin(&self.qkv, &h, g, wm)?;
        let split = |i: usize| -> Result<Tensor> {
            Ok(qkv
                .narrow(2, i * w, w)?
                .reshape((b, n, heads, d))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let (q, k, v) = (split(0)?, split(1)?, split(2)?);
        let att = (q.matmul(&k.t()?.contiguous()?)? / (d as f64).sqrt())?;
        let att = candle_nn::ops::softmax(&att, D::Minus1)?;
        let o = att
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b, n, w))?;
        let x = (x + lin(&self.proj, &o, g, wm)?)?;
        let h = self.ln2.forward(&x, g)?;
        let h = lin(&self.fc1, &h, g, wm)?.gelu_erf()?;
        Ok((x + lin(&self.fc2, &h, g, wm)?)?)
    }
}

/// The encoder.
#[derive(Debug)]
pub struct Vit {
    /// Sizes.
    pub config: VitConfig,
    /// Patch embedding `patch_dim → width` (with bias).
    pub patch_embed: Linear,
    /// Learned positions `[patches, width]`.
    pub pos: Var,
    /// Transformer blocks.
    pub blocks: Vec<VitBlock>,
    /// Final norm.
    pub ln_post: LayerNorm,
}

impl Vit {
    /// A randomly initialised encoder (weights N(0, 0.02²), biases 0, norms identity), reproducible from `seed`.
    pub fn new(config: VitConfig, seed: u64, dev: &Device) -> Result<Self> {
        config.validate()?;
        let mut rng = tessera_core::rng::derived(seed, "vit");
        let w = config.width;
        let patch_embed = init_linear(&mut rng, config.patch_dim(), w, dev)?;
        let pos = Var::from_tensor(&Tensor::from_vec(
            normal(&mut rng, config.patches() * w, 0.02),
            (config.patches(), w),
            dev,
        )?)?;
        let mut blocks = Vec::with_capacity(config.layers);
        for _ in 0..config.layers {
            blocks.push(VitBlock {
                ln1: LayerNorm::new(w, dev)?,
                qkv: init_linear(&mut rng, w, 3 * w, dev)?,
                proj: init_linear(&mut rng, w, w, dev)?,
                ln2: LayerNorm::new(w, dev)?,
                fc1: init_linear(&mut rng, w, config.mlp_ratio * w, dev)?,
                fc2: init_linear(&mut rng, config.mlp_ratio * w, w, dev)?,
            });
        }
        Ok(Vit {
            config,
            patch_embed,
            pos,
            blocks,
            ln_post: LayerNorm::new(w, dev)?,
        })
    }

    /// Patch embeddings plus positions, `[batch, patches, width]`, from flattened patches
    /// `[batch, patches, patch_dim]` ([`crate::data::patchify`]).
    pub fn embed_patches(&self, patches: &Tensor, g: Grad, wm: WeightMode) -> Result<Tensor> {
        let c = &self.config;
        let (_, n, pd) = patches.dims3()?;
        if n != c.patches() || pd != c.patch_dim() {
            return Err(VisionError::Invalid(format!(
                "patches must be [batch, {}, {}], got {:?}",
                c.patches(),
                c.patch_dim(),
                patches.dims()
            )));
        }
        let x = lin(&self.patch_embed, patches, g, wm)?;
        Ok(x.broadcast_add(&tessera_lm::linear::param(&self.pos, g.base()))?)
    }

    /// Image tokens `[batch, tokens, width]`: embedding, blocks, final norm, pooling.
    pub fn forward(&self, patches: &Tensor, g: Grad, wm: WeightMode) -> Result<Tensor> {
        let mut x = self.embed_patches(patches, g, wm)?;
        for b in &self.blocks {
            x = b.forward(&x, self.config.heads, g, wm)?;
        }
        let x = self.ln_post.forward(&x, g)?;
        self.pool(&x)
    }

    /// Averages `pool × pool` neighbouring patches of `x` `[batch, patches, width]` (row-major grid).
    pub fn pool(&self, x: &Tensor) -> Result<Tensor> {
        let c = &self.config;
        let p = c.pool;
        if p == 1 {
            return Ok(x.clone());
        }
        let (b, _, w) = x.dims3()?;
        let (gr, go) = (c.grid(), c.grid() / p);
        let x = x.reshape((b, go, p, gr, w))?.sum(2)?; // rows pooled: [b, go, gr, w]
        let x = x.reshape((b, go, go, p, w))?.sum(3)?; // columns pooled: [b, go, go, w]
        Ok((x.reshape((b, go * go, w))? / (p * p) as f64)?)
    }

    /// Every tensor by checkpoint name (`patch_embed.weight`, `blocks.0.qkv.bias`, `blocks.0.ln1.weight`, ...).
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        let mut out = vec![];
        push_linear(&mut out, "patch_embed", &self.patch_embed);
        out.push(("pos".into(), self.pos.clone()));
        for (i, b) in self.blocks.iter().enumerate() {
            for (n, l) in b.linears() {
                push_linear(&mut out, &format!("blocks.{i}.{n}"), l);
            }
            push_norm(&mut out, &format!("blocks.{i}.ln1"), &b.ln1);
            push_norm(&mut out, &format!("blocks.{i}.ln2"), &b.ln2);
        }
        push_norm(&mut out, "ln_post", &self.ln_post);
        out
    }

    /// Every prunable linear (the blocks' `qkv, proj, fc1, fc2`; not the patch embedding), with its name.
    pub fn block_linears_mut(&mut self) -> Vec<(String, &mut Linear)> {
        let mut out = vec![];
        for (i, b) in self.blocks.iter_mut().enumerate() {
            for (n, l) in b.linears_mut() {
                out.push((format!("blocks.{i}.{n}"), l));
            }
        }
        out
    }
}

pub(crate) fn push_linear(out: &mut Vec<(String, Var)>, name: &str, l: &Linear) {
    out.push((format!("{name}.weight"), l.weight().clone()));
    if let Some(b) = l.bias() {
        out.push((format!("{name}.bias"), b.clone()));
    }
}

fn push_norm(out: &mut Vec<(String, Var)>, name: &str, n: &LayerNorm) {
    out.push((format!("{name}.weight"), n.weight.clone()));
    out.push((format!("{name}.bias"), n.bias.clone()));
}

/// Copies saved tensors into `vars` (every var must be present with its shape).
pub(crate) fn load_vars(
    vars: &[(String, Var)],
    saved: &HashMap<String, Tensor>,
    prefix: &str,
) -> Result<()> {
    for (n, v) in vars {
        let key = format!("{prefix}{n}");
        let t = saved
            .get(&key)
            .ok_or_else(|| VisionError::Invalid(format!("checkpoint lacks tensor `{key}`")))?;
        if t.dims() != v.dims() {
            return Err(VisionError::Invalid(format!(
                "checkpoint tensor `{key}` has shape {:?}, model {:?}",
                t.dims(),
                v.dims()
            )));
        }
        v.set(&t.to_dtype(DType::F32)?)?;
    }
    Ok(())
}
