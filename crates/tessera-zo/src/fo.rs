//! First-order baselines through autograd (ZO-Bench's `--trainer regular`): FO-SGD `θ ← θ − η (∇L + wd·θ)` and
//! FO-Adam (PyTorch Adam, β = (0.9, 0.999), ε = 1e-8; decoupled weight decay when `wd > 0`, i.e. AdamW), both
//! with a constant learning rate, through [`tessera_lm::optim::Optimizer`] (whose state is checkpointed).
use crate::error::Result;
use candle_core::{DType, Tensor};
use tessera_lm::optim::{self, Grads, OptimizerConfig};
use tessera_lm::perturb::Param;

/// The optimizer configuration of FO-SGD (`adam = false`) or FO-Adam.
pub fn config(adam: bool, wd: f64) -> OptimizerConfig {
    if adam {
        OptimizerConfig::adamw(wd)
    } else {
        OptimizerConfig::Sgd {
            momentum: 0.0,
            weight_decay: wd,
        }
    }
}

/// A first-order optimizer over `params` (weight decay off on norms, biases, prefixes and prompts).
pub fn optimizer(adam: bool, wd: f64, params: &[Param]) -> Result<optim::Optimizer> {
    let ps = params
        .iter()
        .map(|p| optim::Param {
            name: p.name.clone(),
            var: p.var.clone(),
            decay: p.decay,
        })
        .collect();
    Ok(optim::Optimizer::new(config(adam, wd), ps)?)
}

/// One step: backward on `loss`, update with `lr`; returns the loss value.
pub fn step(opt: &mut optim::Optimizer, loss: Tensor, lr: f64) -> Result<f64> {
    let value = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
    let grads: Grads = opt.grads(&loss)?;
    drop(loss);
    opt.step(&grads, lr)?;
    Ok(value)
}
