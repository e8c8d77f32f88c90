//! The sequential (block-by-block) calibration protocol of both reference codes (Wanda `prune_wanda`,
//! SparseGPT `llama_sequential`):
//!
//! 1. capture the inputs of block 0 (the embeddings of the calibration windows, [`Llama::embed`]);
//! 2. for each block, observe all seven projections in **one** pass of every window through the still-unpruned
//!    block ([`Linear::observe`](tessera_lm::Linear::observe): Σx² per input feature, and the Gram matrix for
//!    SparseGPT), so every projection of a block gets its statistics from the dense block;
//! 3. prune them;
//! 4. re-run the pruned block on the same inputs to produce the next block's inputs ([`Propagate::Pruned`], the
//!    default), or keep the outputs of the dense pass ([`Propagate::Dense`], VLM-Compression in SparseLoRA mode).
use crate::allocation::Allocation;
use crate::error::{PruneError, Result};
use crate::pattern::Pattern;
use crate::prune::{prune_linear, Method};
use crate::sparsegpt::SparseGptOptions;
use candle_core::Tensor;
use std::fmt;
use std::str::FromStr;
use tessera_lm::{Forward, Llama, Proj};

/// Which activations feed the next block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Propagate {
    /// The pruned block's outputs (Wanda, SparseGPT).
    #[default]
    Pruned,
    /// The dense block's outputs (VLM-Compression with `lora_model=True`).
    Dense,
}

impl fmt::Display for Propagate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Propagate::Pruned => "pruned",
            Propagate::Dense => "dense",
        })
    }
}

impl FromStr for Propagate {
    type Err = PruneError;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "pruned" | "sparse" => Ok(Propagate::Pruned),
            "dense" => Ok(Propagate::Dense),
            other => Err(PruneError::Invalid(format!(
                "unknown propagation `{other}` (pruned, dense)"
            ))),
        }
    }
}

/// One pruned matrix.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PrunedMatrix {
    /// HF weight name (`model.layers.3.mlp.up_proj.weight`).
    pub name: String,
    /// Layer index.
    pub layer: usize,
    /// Projection.
    pub proj: Proj,
    /// Output rows.
    pub rows: usize,
    /// Input columns.
    pub cols: usize,
    /// The pattern applied.
    pub pattern: Pattern,
    /// Pruned ratio of the mask.
    pub sparsity: f64,
}

/// HF weight name of projection `p` of layer `layer`.
pub fn weight_name(layer: usize, p: Proj) -> String {
    format!("model.layers.{layer}.{}.weight", p.hf_name())
}

/// A callback seeing `(layer, inputs)`: the residual streams block `layer` is fed.
pub type Inspect<'a> = dyn FnMut(usize, &[Tensor]) + 'a;

/// Options of [`prune_sequential`].
pub struct SequentialOptions<'a> {
    /// The pruning method (not magnitude, which needs no data: see [`crate::prune::prune_magnitude`]).
    pub method: Method,
    /// Sparsity per projection.
    pub allocation: &'a Allocation,
    /// Which outputs feed the next block.
    pub propagate: Propagate,
    /// SparseGPT settings.
    pub sparsegpt: SparseGptOptions,
    /// Called with `(layer, inputs)` before block `layer` is observed: the residual streams it is fed.
    pub inspect: Option<&'a mut Inspect<'a>>,
    /// Told `(blocks done, blocks)`.
    pub progress: &'a mut dyn FnMut(usize, usize),
}

/// Prunes `model` block by block on the calibration `windows` (each of the same length). Returns every pruned
/// matrix in block order.
pub fn prune_sequential(
    model: &mut Llama,
    windows: &[Vec<u32>],
    opts: SequentialOptions<'_>,
) -> Result<Vec<PrunedMatrix>> {
    let SequentialOptions {
        method,
        allocation,
        propagate,
        sparsegpt,
        mut inspect,
        progress,
    } = opts;
    let n_layers = model.blocks.len();
    allocation.validate(n_layers)?;
    let seqlen = windows
        .first()
        .map(Vec::len)
        .ok_or_else(|| PruneError::Invalid("no calibration windows".into()))?;
    if windows.iter().any(|w| w.len() != seqlen) {
        return Err(PruneError::Invalid(
            "calibration windows differ in length".into(),
        ));
    }
    let dev = model.device().clone();
    let mut inputs: Vec<Tensor> = windows
        .iter()
        .map(|w| {
            let ids = Tensor::new(w.as_slice(), &dev)?.unsqueeze(0)?;
            Ok(model.embed(&ids)?)
        })
        .collect::<Result<_>>()?;
    let ctx = model.step_context(1, seqlen, &Forward::default())?;
    let gram = method == Method::SparseGpt;
    let mut out = Vec::new();
    for layer in 0..n_layers {
        if let Some(f) = inspect.as_deref_mut() {
            f(layer, &inputs);
        }
        let plan: Vec<(Proj, Pattern)> = Proj::ALL
            .iter()
            .filter_map(|&p| allocation.pattern_for(layer, p).map(|pat| (p, pat)))
            .collect();
        for &(p, pat) in &plan {
            let l = model.blocks[layer].linear_mut(p);
            pat.check_width(l.dims().1)?;
            l.observe(gram);
        }
        let mut dense_out = Vec::with_capacity(inputs.len());
        for x in &inputs {
            dense_out.push(model.block_forward(layer, x, &ctx, None, None, None)?);
        }
        for &(p, pat) in &plan {
            let l = model.blocks[layer].linear_mut(p);
            let stats = l
                .take_stats()
                .ok_or_else(|| PruneError::Invalid("observer vanished".into()))?;
            let (rows, cols) = l.dims();
            let mask = prune_linear(method, l, Some(&stats), &pat, &sparsegpt)?;
            out.push(PrunedMatrix {
                name: weight_name(layer, p),
                layer,
                proj: p,
                rows,
                cols,
                pattern: pat,
                sparsity: mask.sparsity(),
            });
        }
        inputs = match propagate {
            Propagate::Dense => dense_out,
            Propagate::Pruned => {
                drop(dense_out);
                inputs
                    .iter()
                    .map(|x| Ok(model.block_forward(layer, x, &ctx, None, None, None)?))
                    .collect::<Result<_>>()?
            }
        };
        progress(layer + 1, n_layers);
    }
    Ok(out)
}
