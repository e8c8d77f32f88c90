//! The one linear layer every projection in the model uses, with the research hooks:
//! a 0/1 weight mask (pruning), a LoRA adapter (Hu et al. 2021, `y = xWᵀ + s·(xAᵀ)Bᵀ`), and an observer that
//! accumulates input statistics over calibration batches (Wanda's per-feature ‖X_j‖², SparseGPT's Gram `XᵀX`).
use crate::error::{LmError, Result};
use crate::kernels;
use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Shape, Tensor, Var};
use std::sync::Mutex;

/// What a forward pass differentiates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
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
}

/// Input statistics gathered by an observer.
#[derive(Debug, Clone, Default)]
pub struct InputStats {
    /// Rows (tokens) seen.
    pub rows: usize,
    /// Per input feature j: Σ over rows of x_j² (Wanda's ‖X_j‖₂²).
    pub sq_norm: Vec<f64>,
    /// Row-major `in × in` Gram matrix Σ xᵀx, when requested (SparseGPT's Hessian 2XᵀX up to scale).
    pub gram: Option<Vec<f64>>,
}

/// A bias-free linear layer `y = x Wᵀ` with optional mask, LoRA and observer.
#[derive(Debug)]
pub struct Linear {
    weight: Var,
    mask: Option<Tensor>,
    lora: Option<Lora>,
    observer: Option<Mutex<InputStats>>,
    want_gram: bool,
}

impl Linear {
    /// Wraps a weight of shape `out × in`.
    pub fn new(weight: Var) -> Self {
        Linear {
            weight,
            mask: None,
            lora: None,
            observer: None,
            want_gram: false,
        }
    }
    /// The weight variable (shared storage: an optimizer updating it updates the model).
    pub fn weight(&self) -> &Var {
        &self.weight
    }
    /// `(out, in)`.
    pub fn dims(&self) -> (usize, usize) {
        let d = self.weight.dims();
        (d[0], d[1])
    }
    /// The mask, if any.
    pub fn mask(&self) -> Option<&Tensor> {
        self.mask.as_ref()
    }
    /// Sets a 0/1 mask of the weight's shape and zeroes the masked weights in place.
    pub fn set_mask(&mut self, mask: Tensor) -> Result<()> {
        if mask.dims() != self.weight.dims() {
            return Err(LmError::Invalid(format!(
                "mask shape {:?} != weight shape {:?}",
                mask.dims(),
                self.weight.dims()
            )));
        }
        let mask = mask.to_dtype(DType::F32)?;
        self.weight.set(&self.weight.as_tensor().mul(&mask)?)?;
        self.mask = Some(mask);
        Ok(())
    }
    /// Removes the mask (weights stay as they are).
    pub fn clear_mask(&mut self) {
        self.mask = None;
    }
    /// The LoRA adapter, if any.
    pub fn lora(&self) -> Option<&Lora> {
        self.lora.as_ref()
    }
    /// Attaches a LoRA adapter of rank `r` with `A` drawn from N(0, 1/in) and `B = 0`.
    pub fn add_lora(&mut self, r: usize, alpha: f64, seed: u64) -> Result<&Lora> {
        let (out, inp) = self.dims();
        let dev = Device::Cpu;
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
        });
        Ok(self.lora.as_ref().expect("just set"))
    }
    /// Removes the adapter.
    pub fn remove_lora(&mut self) -> Option<Lora> {
        self.lora.take()
    }
    /// Folds the adapter into the weight, `W ← (W + s·BA) ⊙ M`: the mask stays exact (SparseLoRA).
    pub fn merge_lora(&mut self) -> Result<()> {
        if let Some(l) = self.lora.take() {
            let delta =
                l.b.as_tensor()
                    .matmul(l.a.as_tensor())?
                    .affine(l.scale, 0.0)?;
            let mut w = self.weight.as_tensor().add(&delta)?;
            if let Some(m) = &self.mask {
                w = w.mul(m)?;
            }
            self.weight.set(&w)?;
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

    fn record(&self, x2d: &Tensor) -> Result<()> {
        let Some(obs) = &self.observer else {
            return Ok(());
        };
        let x = x2d.detach().to_dtype(DType::F32)?;
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

    /// `x Wᵀ` (+ LoRA) with the differentiation mode `g`.
    pub fn forward_grad(&self, x: &Tensor, g: Grad) -> Result<Tensor> {
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
        self.record(&x2)?;
        // Outside training the weight is detached, so no autograd graph keeps activations alive.
        let trainable = g.base() && self.lora.is_none();
        let w = &param(&self.weight, trainable);
        let mut y = if !g.on() && rows <= SMALL_M {
            let xs = x2.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
            let ys = with_f32_slice(w, |ws| kernels::matmul_rows_t(&xs, rows, inp, ws, out))?;
            Tensor::from_vec(ys, (rows, out), x.device())?
        } else if trainable && self.mask.is_some() {
            let m = self.mask.as_ref().expect("checked");
            x2.matmul(&w.mul(m)?.t()?)?
        } else if g.on() && !trainable {
            // Frozen base weight (adapter training, or under LoRA): input gradient only.
            frozen_matmul(&x2, w)?
        } else {
            x2.matmul(&w.t()?)?
        };
        if let Some(l) = &self.lora {
            let h = x2.matmul(&param(&l.a, g.on()).t()?)?;
            let d = h.matmul(&param(&l.b, g.on()).t()?)?;
            y = (y + d.affine(l.scale, 0.0)?)?;
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
