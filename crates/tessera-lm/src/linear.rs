//! The one linear layer every projection in the model uses, with the research hooks:
//! a 0/1 weight mask (pruning), a LoRA adapter (Hu et al. 2021, `y = xWᵀ + s·(xAᵀ)Bᵀ`), and an observer that
//! accumulates input statistics over calibration batches (Wanda's per-feature ‖X_j‖², SparseGPT's Gram `XᵀX`).
//!
//! A mask is either baked in ([`Linear::set_mask`]: the masked weights are zeroed and their values dropped) or kept
//! beside the dense weight ([`Linear::set_mask_keep_dense`]): the weight variable then holds `W ⊙ M` (so the default,
//! sparse forward costs nothing extra and an optimizer or a perturbation sees exact zeros) and the masked-out part
//! `W ⊙ (1 − M)` is kept aside for the [`WeightMode::Dense`] forward, the teacher inside the same model.
//!
//! The four forms of one projection (SparseLoRA, Khaki et al. 2025, and its plain-LoRA baseline):
//!
//! | form | computed | how |
//! |---|---|---|
//! | sparse (default) | `x (W ⊙ M)ᵀ` | no adapter, [`WeightMode::Sparse`] |
//! | dense | `x Wᵀ` (masks and adapters ignored) | [`WeightMode::Dense`] |
//! | LoRA | `x (W ⊙ M)ᵀ + s (x Aᵀ) Bᵀ` | adapter with [`LoraForm::Lora`] |
//! | SparseLoRA | `x ((W + s B A) ⊙ M)ᵀ` | adapter with [`LoraForm::SparseLora`] (the default) |
//!
//! [`Linear::merge_lora`] folds an adapter into the weight so that the merged layer computes exactly the function
//! that was trained: `W ← W ⊙ M + s B A` (mask dropped) for LoRA, `W ← (W + s B A) ⊙ M` (mask kept, zero pattern
//! equal to the mask bit for bit) for SparseLoRA.
use crate::error::{LmError, Result};
use crate::kernels;
use crate::weights::CompactWeights;
use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Shape, Tensor, Var};
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

/// What a forward pass differentiates: the one "LoRA mode" enum (inference, trainable base, frozen base).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grad {
    /// Inference: fused kernels, no autograd graph.
    #[default]
    Off,
    /// Every parameter (full fine-tuning); a layer with a LoRA adapter keeps its base weight frozen.
    All,
    /// Adapters and inputs only (LoRA, prefix / prompt tuning, embedding-space attacks): base weights, norms and
    /// the embedding are frozen, and frozen projections pass only the input gradient, so no weight-sized gradient
    /// is ever allocated.
    Adapters,
}

impl Grad {
    /// Whether an autograd graph is built at all.
    pub fn on(self) -> bool {
        self != Grad::Off
    }
    /// Whether base parameters (weights, norms, embedding) are trainable.
    pub fn base(self) -> bool {
        self == Grad::All
    }
    /// The mode of a training forward: base frozen ([`Grad::Adapters`]) or trainable ([`Grad::All`]).
    pub fn training(freeze_base: bool) -> Self {
        if freeze_base {
            Grad::Adapters
        } else {
            Grad::All
        }
    }
}

impl fmt::Display for Grad {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Grad::Off => "off",
            Grad::All => "trainable",
            Grad::Adapters => "frozen",
        })
    }
}

impl FromStr for Grad {
    type Err = LmError;
    /// `off`; `trainable` (or `all`, `full`): base trainable; `frozen` (or `adapters`): base frozen.
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "off" | "inference" => Ok(Grad::Off),
            "trainable" | "all" | "full" => Ok(Grad::All),
            "frozen" | "adapters" => Ok(Grad::Adapters),
            other => Err(LmError::Invalid(format!(
                "unknown gradient mode `{other}` (expected off, trainable or frozen)"
            ))),
        }
    }
}

/// How an adapter composes with a (possibly masked) weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LoraForm {
    /// Plain LoRA `W ⊙ M + s B A`: the baseline whose update breaks sparsity.
    Lora,
    /// SparseLoRA `(W + s B A) ⊙ M`: the update respects the mask (without a mask the two forms are the same).
    #[default]
    SparseLora,
}

impl fmt::Display for LoraForm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LoraForm::Lora => "lora",
            LoraForm::SparseLora => "sparse-lora",
        })
    }
}

impl FromStr for LoraForm {
    type Err = LmError;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "lora" => Ok(LoraForm::Lora),
            "sparse-lora" | "sparselora" | "sparse_lora" => Ok(LoraForm::SparseLora),
            other => Err(LmError::Invalid(format!(
                "unknown LoRA form `{other}` (expected lora or sparse-lora)"
            ))),
        }
    }
}

/// Which weights a forward pass uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightMode {
    /// Masks and adapters as attached (the student).
    #[default]
    Sparse,
    /// Masks and adapters ignored: the dense weights kept beside the masks (the teacher, in the same model).
    /// A baked mask ([`Linear::set_mask`]) has no dense copy, so its zeros stay.
    Dense,
}

impl fmt::Display for WeightMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WeightMode::Sparse => "sparse",
            WeightMode::Dense => "dense",
        })
    }
}

impl FromStr for WeightMode {
    type Err = LmError;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "sparse" => Ok(WeightMode::Sparse),
            "dense" => Ok(WeightMode::Dense),
            other => Err(LmError::Invalid(format!(
                "unknown weight mode `{other}` (expected sparse or dense)"
            ))),
        }
    }
}

/// One of the seven projections of a decoder block.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Proj {
    /// Attention query.
    Q,
    /// Attention key.
    K,
    /// Attention value.
    V,
    /// Attention output.
    O,
    /// SwiGLU gate.
    Gate,
    /// SwiGLU up.
    Up,
    /// SwiGLU down.
    Down,
}

impl Proj {
    /// All seven, in block order.
    pub const ALL: [Proj; 7] = [
        Proj::Q,
        Proj::K,
        Proj::V,
        Proj::O,
        Proj::Gate,
        Proj::Up,
        Proj::Down,
    ];
    /// The HF name relative to the block (`self_attn.q_proj`, ..., `mlp.down_proj`).
    pub fn hf_name(self) -> &'static str {
        match self {
            Proj::Q => "self_attn.q_proj",
            Proj::K => "self_attn.k_proj",
            Proj::V => "self_attn.v_proj",
            Proj::O => "self_attn.o_proj",
            Proj::Gate => "mlp.gate_proj",
            Proj::Up => "mlp.up_proj",
            Proj::Down => "mlp.down_proj",
        }
    }
    /// Index in [`Proj::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
    /// Parses a comma-separated list (`q,v`, `all`), without duplicates, in block order.
    pub fn parse_list(s: &str) -> Result<Vec<Proj>> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part.eq_ignore_ascii_case("all") {
                out.extend(Proj::ALL);
            } else {
                out.push(part.parse()?);
            }
        }
        if out.is_empty() {
            return Err(LmError::UnknownTarget { name: s.into() });
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}

impl fmt::Display for Proj {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proj::Q => "q",
            Proj::K => "k",
            Proj::V => "v",
            Proj::O => "o",
            Proj::Gate => "gate",
            Proj::Up => "up",
            Proj::Down => "down",
        })
    }
}

impl FromStr for Proj {
    type Err = LmError;
    /// `q`, `k`, `v`, `o`, `gate`, `up`, `down`, also as `q_proj` ... or the full HF name relative to the block.
    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim().to_ascii_lowercase();
        let t = t
            .strip_prefix("self_attn.")
            .or_else(|| t.strip_prefix("mlp."))
            .unwrap_or(&t);
        let t = t.strip_suffix("_proj").unwrap_or(t);
        Ok(match t {
            "q" => Proj::Q,
            "k" => Proj::K,
            "v" => Proj::V,
            "o" => Proj::O,
            "gate" => Proj::Gate,
            "up" => Proj::Up,
            "down" => Proj::Down,
            _ => return Err(LmError::UnknownTarget { name: s.into() }),
        })
    }
}

/// Per-call options of [`Linear::forward_with`].
#[derive(Debug, Clone, Copy, Default)]
pub struct LinearCtx<'a> {
    /// What to differentiate.
    pub grad: Grad,
    /// Which weights to use.
    pub weights: WeightMode,
    /// Indices (u32) of the input rows an observer counts (the non-padded tokens); `None` = all rows.
    pub keep_rows: Option<&'a Tensor>,
}
/// `x Wᵀ` for a frozen weight `W` (`out × in`): the backward returns only `∂L/∂x = g W`. Candle's matmul backward
/// also computes `∂L/∂W` for an operand that needs none, one weight-sized tensor per frozen layer, which doubles
/// the memory of adapter training (see `shared/notes/candle-notes.md`).
struct FrozenMatmul {
    w: Tensor,
}

impl CustomOp1 for FrozenMatmul {
    fn name(&self) -> &'static str {
        "frozen-matmul"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (a, b) = layout.contiguous_offsets().ok_or_else(|| {
            candle_core::Error::Msg("frozen matmul: input is not contiguous".into())
        })?;
        let (rows, inp) = layout.shape().dims2()?;
        let x = Tensor::from_slice(&storage.as_slice::<f32>()?[a..b], (rows, inp), &Device::Cpu)?;
        let y = x.matmul(&self.w.t()?)?;
        let out = y.dim(1)?;
        Ok((
            CpuStorage::F32(y.flatten_all()?.to_vec1::<f32>()?),
            Shape::from((rows, out)),
        ))
    }

    fn bwd(&self, _x: &Tensor, _y: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad.matmul(&self.w)?))
    }
}

/// `x Wᵀ` with `W` frozen: gradients reach `x` but none is computed for `W` (`FrozenMatmul`, f32 on CPU).
/// Other dtypes and devices fall back to a matmul with a detached `W` (same gradients, more memory).
pub fn frozen_matmul(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    if x.dtype() != DType::F32 || w.dtype() != DType::F32 || !x.device().is_cpu() {
        return Ok(x.matmul(&w.detach().t()?)?);
    }
    Ok(x.contiguous()?.apply_op1(FrozenMatmul {
        w: w.detach().contiguous()?,
    })?)
}

/// `x ((s·B A) ⊙ M)ᵀ`, the SparseLoRA update term, without keeping a weight-sized tensor in the autograd graph:
/// the forward builds `(s·BA) ⊙ M` transiently and frees it, and the backward recomputes it for
/// `∂L/∂x = g ((s·BA) ⊙ M)` and forms `∂L/∂Δ = (gᵀx) ⊙ M` transiently for `∂L/∂A = s·Bᵀ ∂L/∂Δ` and
/// `∂L/∂B = s·∂L/∂Δ Aᵀ`. The composed-ops version keeps several weight-sized tensors per layer alive until the
/// backward (about 30× the heap of plain LoRA on SmolLM2, measured by `tessera bench lora`).
struct MaskedLora {
    mask: Tensor,
    scale: f64,
}

fn cpu_tensor(s: &CpuStorage, l: &Layout) -> candle_core::Result<Tensor> {
    let (a, b) = l
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg("masked LoRA: input is not contiguous".into()))?;
    Tensor::from_slice(&s.as_slice::<f32>()?[a..b], l.shape(), &Device::Cpu)
}

impl MaskedLora {
    fn delta(&self, a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
        b.matmul(a)?.affine(self.scale, 0.0)?.mul(&self.mask)
    }
}

impl candle_core::CustomOp3 for MaskedLora {
    fn name(&self) -> &'static str {
        "masked-lora"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, a, b) = (
            cpu_tensor(s1, l1)?,
            cpu_tensor(s2, l2)?,
            cpu_tensor(s3, l3)?,
        );
        let y = x.matmul(&self.delta(&a, &b)?.t()?)?;
        let shape = y.shape().clone();
        Ok((CpuStorage::F32(y.flatten_all()?.to_vec1::<f32>()?), shape))
    }

    fn bwd(
        &self,
        x: &Tensor,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (x, a, b, g) = (x.detach(), a.detach(), b.detach(), g.detach());
        let dx = g.matmul(&self.delta(&a, &b)?)?;
        let dd = g.t()?.matmul(&x)?.mul(&self.mask)?;
        let da = b.t()?.matmul(&dd)?.affine(self.scale, 0.0)?;
        let db = dd.matmul(&a.t()?)?.affine(self.scale, 0.0)?;
        Ok((Some(dx), Some(da), Some(db)))
    }
}

/// Row count up to which the hand-written decode kernel is used instead of the general matmul.
const SMALL_M: usize = 8;

/// A low-rank adapter `ΔW = scale · B A`, with `A: r × in` and `B: out × r`.
#[derive(Debug, Clone)]
pub struct Lora {
    /// Down projection (`r × in`), trainable.
    pub a: Var,
    /// Up projection (`out × r`), trainable; starts at zero so the adapter starts as the identity.
    pub b: Var,
    /// Scale `alpha / r`.
    pub scale: f64,
    /// How the adapter composes with the layer's mask.
    pub form: LoraForm,
}

/// Input statistics gathered by an observer.
#[derive(Debug, Clone, Default)]
pub struct InputStats {
    /// Rows (tokens) seen; padded rows of a batch are not counted.
    pub rows: usize,
    /// Per input feature j: Σ over rows of x_j² (Wanda's ‖X_j‖₂²).
    pub sq_norm: Vec<f64>,
    /// Row-major `in × in` Gram matrix Σ xᵀx, when requested (SparseGPT's Hessian 2XᵀX up to scale).
    pub gram: Option<Vec<f64>>,
}

/// A linear layer `y = x Wᵀ (+ b)` with optional bias (none in the language model; the vision tower has one),
/// optional mask (baked or kept beside a dense copy), LoRA and observer. The bias is never masked or adapted.
#[derive(Debug)]
pub struct Linear {
    weight: Var,
    bias: Option<Var>,
    mask: Option<Tensor>,
    dense_rest: Option<Tensor>,
    lora: Option<Lora>,
    observer: Option<Mutex<InputStats>>,
    want_gram: bool,
    /// An inference-only representation ([`crate::weights`]); when set, `weight` is an empty placeholder unless
    /// it is a tied embedding kept beside the compact copy.
    compact: Option<CompactWeights>,
}

/// `w ⊙ m` with every masked entry `+0.0` (a plain product leaves `-0.0` for negative weights).
fn apply_mask(w: &Tensor, m: &Tensor) -> Result<Tensor> {
    Ok(w.mul(m)?.affine(1.0, 0.0)?)
}

impl Linear {
    /// Wraps a weight of shape `out × in`.
    pub fn new(weight: Var) -> Self {
        Linear {
            weight,
            bias: None,
            mask: None,
            dense_rest: None,
            lora: None,
            observer: None,
            want_gram: false,
            compact: None,
        }
    }
    /// Wraps a weight of shape `out × in` and an optional bias of shape `out` (trainable with the weight: it
    /// takes part in autograd exactly when the weight does).
    pub fn with_bias(weight: Var, bias: Option<Var>) -> Result<Self> {
        if let Some(b) = &bias {
            let out = weight.dims().first().copied().unwrap_or(0);
            if b.dims() != [out] {
                return Err(LmError::MaskShape {
                    expected: vec![out],
                    got: b.dims().to_vec(),
                });
            }
        }
        let mut l = Linear::new(weight);
        l.bias = bias;
        Ok(l)
    }
    /// The bias variable, if the layer has one.
    pub fn bias(&self) -> Option<&Var> {
        self.bias.as_ref()
    }
    /// A layer held in a compact, inference-only form ([`crate::weights`]). `keep` is a `Var` of the same
    /// weight kept beside it (a tied embedding); `None` leaves an empty `0 × in` placeholder as [`Linear::weight`].
    pub fn from_compact(c: CompactWeights, keep: Option<Var>) -> Result<Self> {
        let (out, inp) = c.dims();
        let weight = match keep {
            Some(v) if v.dims() == [out, inp] || v.dims() == [0, inp] => v,
            Some(v) => {
                return Err(LmError::MaskShape {
                    expected: vec![out, inp],
                    got: v.dims().to_vec(),
                })
            }
            None => Var::zeros((0, inp), DType::F32, &Device::Cpu)?,
        };
        let mut l = Linear::new(weight);
        l.compact = Some(c);
        Ok(l)
    }
    /// Rows `ids` of the weight in f32, `[ids.len(), in]` (an embedding lookup in a tied head; dequantized from
    /// the compact form when there is one). Ids must be below `out`.
    pub fn lookup_rows(&self, ids: &[u32]) -> Result<Tensor> {
        let (out, inp) = self.dims();
        if let Some(&bad) = ids.iter().find(|&&i| i as usize >= out) {
            return Err(LmError::Invalid(format!("row {bad} >= {out}")));
        }
        match &self.compact {
            Some(c) if self.weight.dims()[0] != out => {
                let mut v = vec![0f32; ids.len() * inp];
                for (o, &i) in v.chunks_exact_mut(inp).zip(ids) {
                    c.decode_row(i as usize, o);
                }
                Ok(Tensor::from_vec(v, (ids.len(), inp), &Device::Cpu)?)
            }
            _ => {
                let idx = Tensor::from_slice(ids, ids.len(), self.weight.device())?;
                Ok(self.weight.as_tensor().detach().index_select(&idx, 0)?)
            }
        }
    }
    /// The compact inference representation, when the layer has one.
    pub fn compact(&self) -> Option<&CompactWeights> {
        self.compact.as_ref()
    }
    fn refuse_compact(&self, what: &str) -> Result<()> {
        match &self.compact {
            Some(c) => Err(LmError::Invalid(format!(
                "{what} needs f32 weights, but this layer is held as {} for inference (load with --dtype f32 / \
                 LoadOptions::default())",
                c.format_name()
            ))),
            None => Ok(()),
        }
    }
    fn check_plain(&self, what: &str) -> Result<()> {
        if self.lora.is_some() || self.observer.is_some() {
            return Err(LmError::Invalid(format!(
                "{what}: merge or remove the adapter / observer first"
            )));
        }
        Ok(())
    }
    /// Replaces the weight by its Q8_0 blocks (inference only). `keep` keeps that `Var` as [`Linear::weight`]
    /// (a tied embedding); otherwise the f32 weight is dropped. A mask stays baked in the values (zeros quantize
    /// to exact zeros) and is dropped.
    pub fn compress_q8_0(&mut self, keep: Option<&Var>) -> Result<()> {
        self.check_plain("quantizing")?;
        if let Some(CompactWeights::Quantized(q)) = &self.compact {
            if q.format() == crate::quant::QFormat::Q8_0 {
                return Ok(());
            }
        }
        let (out, inp) = self.dims();
        let w: Vec<f32> = self.dense_weight()?.flatten_all()?.to_vec1()?;
        let q = crate::quant::QMatrix::quantize_q8_0(&w, out, inp)?;
        *self = Linear::from_compact(CompactWeights::Quantized(q), keep.cloned())?;
        Ok(())
    }
    /// Replaces a masked weight by its compressed sparse form (inference only; [`crate::sparse`]): exactly the
    /// entries the mask keeps, bit for bit. Errors without a mask.
    pub fn compress_sparse(&mut self) -> Result<()> {
        self.check_plain("compressing")?;
        self.refuse_compact("compressing")?;
        let m = self
            .mask
            .as_ref()
            .ok_or_else(|| LmError::Invalid("sparse compression needs a masked layer".into()))?;
        let (out, inp) = self.dims();
        let keep: Vec<f32> = m.flatten_all()?.to_vec1()?;
        let w: Vec<f32> = self.weight.as_tensor().flatten_all()?.to_vec1()?;
        let s = crate::sparse::SparseMatrix::from_masked(&w, &keep, out, inp)?;
        *self = Linear::from_compact(CompactWeights::Sparse(s), None)?;
        Ok(())
    }
    /// Turns a compact layer back into a dense f32 one (dequantized / expanded); a no-op on an f32 layer.
    pub fn decompress(&mut self) -> Result<()> {
        if self.compact.is_some() {
            let w = self.dense_weight()?;
            *self = Linear::new(Var::from_tensor(&w)?);
        }
        Ok(())
    }
    /// The weight variable (shared storage: an optimizer updating it updates the model). With a mask it holds
    /// `W ⊙ M`. On a compact inference-only layer ([`Linear::compact`]) it is an empty `0 × in` placeholder
    /// (or the tied embedding); use [`Linear::dense_weight`] to read the weight.
    pub fn weight(&self) -> &Var {
        &self.weight
    }
    /// `(out, in)`.
    pub fn dims(&self) -> (usize, usize) {
        if let Some(c) = &self.compact {
            return c.dims();
        }
        let d = self.weight.dims();
        (d[0], d[1])
    }
    /// The mask, if any.
    pub fn mask(&self) -> Option<&Tensor> {
        self.mask.as_ref()
    }
    /// The masked-out dense values `W ⊙ (1 − M)` kept by [`Linear::set_mask_keep_dense`].
    pub fn dense_rest(&self) -> Option<&Tensor> {
        self.dense_rest.as_ref()
    }
    /// The dense weight: `W ⊙ M + W ⊙ (1 − M)` when a dense copy is kept, else the weight as stored.
    pub fn dense_weight(&self) -> Result<Tensor> {
        if let Some(c) = &self.compact {
            let (out, inp) = c.dims();
            if self.weight.dims() == [out, inp] {
                return Ok(self.weight.as_tensor().detach());
            }
            return Ok(Tensor::from_vec(c.to_dense(), (out, inp), &Device::Cpu)?);
        }
        let w = self.weight.as_tensor().detach();
        Ok(match &self.dense_rest {
            Some(r) => (w + r)?,
            None => w,
        })
    }

    fn check_mask(&self, mask: &Tensor) -> Result<Tensor> {
        self.refuse_compact("a mask")?;
        if mask.dims() != self.weight.dims() {
            return Err(LmError::MaskShape {
                expected: self.weight.dims().to_vec(),
                got: mask.dims().to_vec(),
            });
        }
        let mask = mask.to_dtype(DType::F32)?.to_device(self.weight.device())?;
        let off = mask
            .mul(&(1.0 - &mask)?)?
            .abs()?
            .sum_all()?
            .to_scalar::<f32>()?;
        if off != 0.0 {
            return Err(LmError::Invalid("a mask must hold only 0 and 1".into()));
        }
        Ok(mask)
    }

    /// Sets a 0/1 mask of the weight's shape and bakes it in: the masked weights are zeroed in place and their
    /// values dropped (no dense copy; [`WeightMode::Dense`] then sees the zeros).
    pub fn set_mask(&mut self, mask: Tensor) -> Result<()> {
        let mask = self.check_mask(&mask)?;
        let full = self.dense_weight()?;
        self.weight.set(&apply_mask(&full, &mask)?)?;
        self.mask = Some(mask);
        self.dense_rest = None;
        Ok(())
    }
    /// Sets a 0/1 mask and keeps the dense weight: the weight variable holds `W ⊙ M` and `W ⊙ (1 − M)` is kept
    /// aside for the [`WeightMode::Dense`] forward (one weight-sized tensor more per masked layer).
    pub fn set_mask_keep_dense(&mut self, mask: Tensor) -> Result<()> {
        let mask = self.check_mask(&mask)?;
        let full = self.dense_weight()?;
        let sparse = apply_mask(&full, &mask)?;
        self.dense_rest = Some((&full - &sparse)?);
        self.weight.set(&sparse)?;
        self.mask = Some(mask);
        Ok(())
    }
    /// Removes the mask; the weights stay as they are (masked entries zero) and a kept dense copy is dropped.
    pub fn clear_mask(&mut self) {
        self.mask = None;
        self.dense_rest = None;
    }
    /// Removes the mask and restores the dense weight kept beside it (a no-op on the values of a baked mask).
    pub fn restore_dense(&mut self) -> Result<()> {
        let full = self.dense_weight()?;
        self.weight.set(&full)?;
        self.clear_mask();
        Ok(())
    }
    /// Whether the one-token decode path ([`crate::decode`]) can compute this layer: no adapter or observer, and
    /// the weight compact or dense f32 on the CPU.
    pub(crate) fn fast_decode_ok(&self) -> bool {
        self.lora.is_none()
            && self.observer.is_none()
            && (self.compact.is_some()
                || (self.weight.dtype() == DType::F32 && self.weight.device().is_cpu()))
    }
    /// The LoRA adapter, if any.
    pub fn lora(&self) -> Option<&Lora> {
        self.lora.as_ref()
    }
    /// Attaches a SparseLoRA-form adapter (see [`Linear::add_lora_form`]); without a mask it is plain LoRA.
    pub fn add_lora(&mut self, r: usize, alpha: f64, seed: u64) -> Result<&Lora> {
        self.add_lora_form(r, alpha, seed, LoraForm::SparseLora)
    }
    /// Attaches a LoRA adapter of rank `r` with `A` drawn from N(0, 1/in) and `B = 0` (so it starts as the
    /// identity), composing with the mask as `form` says.
    pub fn add_lora_form(
        &mut self,
        r: usize,
        alpha: f64,
        seed: u64,
        form: LoraForm,
    ) -> Result<&Lora> {
        self.refuse_compact("a LoRA adapter")?;
        let (out, inp) = self.dims();
        if r == 0 || r > out.min(inp) {
            return Err(LmError::Invalid(format!(
                "LoRA rank {r} out of range [1, {}]",
                out.min(inp)
            )));
        }
        if !alpha.is_finite() {
            return Err(LmError::Invalid(format!(
                "LoRA alpha {alpha} is not finite"
            )));
        }
        let dev = self.weight.device().clone();
        use rand::Rng as _;
        let mut rng = tessera_core::rng::seeded(seed);
        let std = (1.0 / inp as f64).sqrt() as f32;
        let a: Vec<f32> = (0..r * inp)
            .map(|_| {
                // Box–Muller normal sample.
                let (u1, u2): (f32, f32) = (rng.gen_range(1e-7..1.0), rng.gen());
                std * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos()
            })
            .collect();
        let a = Var::from_tensor(&Tensor::from_vec(a, (r, inp), &dev)?)?;
        let b = Var::from_tensor(&Tensor::zeros((out, r), DType::F32, &dev)?)?;
        self.lora = Some(Lora {
            a,
            b,
            scale: alpha / r as f64,
            form,
        });
        Ok(self.lora.as_ref().expect("just set"))
    }
    /// Removes the adapter.
    pub fn remove_lora(&mut self) -> Option<Lora> {
        self.lora.take()
    }
    /// Folds the adapter into the weight so that the layer computes exactly what was trained:
    /// [`LoraForm::SparseLora`]: `W ← (W + s·BA) ⊙ M`, mask kept, every masked entry `+0.0`;
    /// [`LoraForm::Lora`]: `W ← W ⊙ M + s·BA`, mask (and dense copy) dropped, since the update is dense.
    pub fn merge_lora(&mut self) -> Result<()> {
        if let Some(l) = self.lora.take() {
            let delta =
                l.b.as_tensor()
                    .matmul(l.a.as_tensor())?
                    .affine(l.scale, 0.0)?;
            let w = self.weight.as_tensor().detach().add(&delta)?;
            match (&self.mask, l.form) {
                (Some(m), LoraForm::SparseLora) => self.weight.set(&apply_mask(&w, m)?)?,
                (Some(_), LoraForm::Lora) => {
                    self.weight.set(&w)?;
                    self.clear_mask();
                }
                (None, _) => self.weight.set(&w)?,
            }
        }
        Ok(())
    }
    /// Starts accumulating input statistics (and the Gram matrix when `gram`).
    pub fn observe(&mut self, gram: bool) {
        let inp = self.dims().1;
        self.want_gram = gram;
        self.observer = Some(Mutex::new(InputStats {
            rows: 0,
            sq_norm: vec![0.0; inp],
            gram: gram.then(|| vec![0.0; inp * inp]),
        }));
    }
    /// Stops observing and returns what was gathered.
    pub fn take_stats(&mut self) -> Option<InputStats> {
        self.observer
            .take()
            .map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))
    }

    fn record(&self, x2d: &Tensor, keep: Option<&Tensor>) -> Result<()> {
        let Some(obs) = &self.observer else {
            return Ok(());
        };
        let x = x2d.detach().to_dtype(DType::F32)?;
        let x = match keep {
            Some(idx) if idx.dim(0)? == 0 => return Ok(()),
            Some(idx) => x.index_select(idx, 0)?,
            None => x,
        };
        let sq: Vec<f32> = x.sqr()?.sum(0)?.to_vec1()?;
        let gram: Option<Vec<f32>> = if self.want_gram {
            Some(x.t()?.matmul(&x)?.flatten_all()?.to_vec1()?)
        } else {
            None
        };
        let mut st = obs.lock().unwrap_or_else(|e| e.into_inner());
        st.rows += x.dim(0)?;
        for (a, b) in st.sq_norm.iter_mut().zip(sq) {
            *a += b as f64;
        }
        if let (Some(g), Some(new)) = (st.gram.as_mut(), gram) {
            for (a, b) in g.iter_mut().zip(new) {
                *a += b as f64;
            }
        }
        Ok(())
    }

    /// Applies the layer to `x` of shape `[..., in]`. With `train` the weight takes part in autograd through the
    /// mask (`W ⊙ M`), so masked entries get zero gradient.
    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_grad(x, if train { Grad::All } else { Grad::Off })
    }

    /// `x Wᵀ` (+ LoRA) with the differentiation mode `g` (sparse weights, every row observed).
    pub fn forward_grad(&self, x: &Tensor, g: Grad) -> Result<Tensor> {
        self.forward_with(
            x,
            &LinearCtx {
                grad: g,
                ..Default::default()
            },
        )
    }

    /// `x W'ᵀ` for the base weight `w` (`out × in`): the decode kernel for a few rows in inference, a masked
    /// product when the weight is trainable under a mask, the frozen-weight product when only the input needs a
    /// gradient, else a plain matmul.
    fn base_product(&self, x2: &Tensor, w: &Tensor, g: Grad, trainable: bool) -> Result<Tensor> {
        let (rows, inp) = x2.dims2()?;
        let out = w.dim(0)?;
        Ok(
            if !g.on() && rows <= SMALL_M && x2.device().is_cpu() && w.dtype() == DType::F32 {
                let xs = x2
                    .contiguous()?
                    .flatten_all()?
                    .to_dtype(DType::F32)?
                    .to_vec1::<f32>()?;
                let w = w.contiguous()?;
                let ys = with_f32_slice(&w, |ws| kernels::matmul_rows_t(&xs, rows, inp, ws, out))?;
                Tensor::from_vec(ys, (rows, out), x2.device())?
            } else if trainable && self.mask.is_some() {
                let m = self.mask.as_ref().expect("checked");
                x2.matmul(&w.mul(m)?.t()?)?
            } else if g.on() && !trainable {
                // Frozen base weight (adapter training, or under LoRA): input gradient only.
                frozen_matmul(x2, w)?
            } else {
                x2.matmul(&w.t()?)?
            },
        )
    }

    /// The layer with explicit options: differentiation mode, weight mode and the rows an observer counts.
    pub fn forward_with(&self, x: &Tensor, ctx: &LinearCtx<'_>) -> Result<Tensor> {
        let g = ctx.grad;
        let dims = x.dims().to_vec();
        let inp = *dims
            .last()
            .ok_or_else(|| LmError::Invalid("linear input has no dimensions".into()))?;
        let (out, w_in) = self.dims();
        if inp != w_in {
            return Err(LmError::Invalid(format!(
                "linear input width {inp} != weight input width {w_in}"
            )));
        }
        let rows = x.elem_count() / inp;
        let x2 = x.reshape((rows, inp))?;
        self.record(&x2, ctx.keep_rows)?;
        if let Some(c) = &self.compact {
            if g.on() {
                self.refuse_compact("training")?;
            }
            let xs = x2
                .to_dtype(DType::F32)?
                .contiguous()?
                .flatten_all()?
                .to_vec1::<f32>()?;
            let mut y = Tensor::from_vec(c.matmul_t(&xs, rows), (rows, out), x.device())?;
            if let Some(b) = &self.bias {
                y = y.broadcast_add(&b.as_tensor().detach())?;
            }
            let mut out_dims = dims;
            *out_dims.last_mut().expect("non-empty") = out;
            return Ok(y.reshape(out_dims)?);
        }
        let dense = ctx.weights == WeightMode::Dense;
        let lora = if dense { None } else { self.lora.as_ref() };
        // Outside training the weight is detached, so no autograd graph keeps activations alive.
        let trainable = g.base() && lora.is_none();
        let w = param(&self.weight, trainable);
        let mut y = match (&self.dense_rest, dense) {
            (Some(rest), true) => {
                let full = (&w + rest)?;
                if trainable {
                    x2.matmul(&full.t()?)?
                } else {
                    self.base_product(&x2, &full, g, false)?
                }
            }
            _ if dense && trainable => x2.matmul(&w.t()?)?,
            _ => self.base_product(&x2, &w, g, trainable)?,
        };
        if let Some(l) = lora {
            let (a, b) = (param(&l.a, g.on()), param(&l.b, g.on()));
            match (&self.mask, l.form) {
                (Some(m), LoraForm::SparseLora) => {
                    // (W + sBA) ⊙ M = W ⊙ M + (sBA) ⊙ M, with W ⊙ M already in the weight.
                    let f32_cpu = [&x2, &a, &b, m]
                        .iter()
                        .all(|t| t.dtype() == DType::F32 && t.device().is_cpu());
                    let d = if g.on() && f32_cpu {
                        x2.contiguous()?.apply_op3(
                            &a.contiguous()?,
                            &b.contiguous()?,
                            MaskedLora {
                                mask: m.clone(),
                                scale: l.scale,
                            },
                        )?
                    } else {
                        let delta = b.matmul(&a)?.affine(l.scale, 0.0)?.mul(m)?;
                        x2.matmul(&delta.t()?)?
                    };
                    y = (y + d)?;
                }
                _ => {
                    let h = x2.matmul(&a.t()?)?;
                    let d = h.matmul(&b.t()?)?;
                    y = (y + d.affine(l.scale, 0.0)?)?;
                }
            }
        }
        if let Some(b) = &self.bias {
            y = y.broadcast_add(&param(b, trainable))?;
        }
        let mut out_dims = dims;
        *out_dims.last_mut().expect("non-empty") = out;
        Ok(y.reshape(out_dims)?)
    }
}

/// A parameter as a tensor: tracked by autograd in training, detached (no graph, same storage) otherwise.
pub fn param(v: &Var, train: bool) -> Tensor {
    if train {
        v.as_tensor().clone()
    } else {
        v.as_tensor().detach()
    }
}

/// Runs `f` on the contiguous f32 data of a CPU tensor.
pub(crate) fn with_f32_slice<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let (storage, layout) = t.storage_and_layout();
    let cpu = match &*storage {
        candle_core::Storage::Cpu(c) => c,
        _ => {
            return Err(LmError::Invalid(
                "the decode kernel runs on CPU tensors only".into(),
            ))
        }
    };
    let s = cpu.as_slice::<f32>()?;
    let (a, b) = layout
        .contiguous_offsets()
        .ok_or_else(|| LmError::Invalid("weight is not contiguous".into()))?;
    Ok(f(&s[a..b]))
}
