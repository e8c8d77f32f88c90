//! The projector from image tokens into the language model's embedding space: LLaVA-1.5's two-layer MLP
//! (Liu et al. 2023, "Improved Baselines with Visual Instruction Tuning", §3.2: `Linear → GELU → Linear`),
//! both layers runtime [`Linear`]s with bias.
use crate::error::Result;
use crate::vit::{init_linear, lin, push_linear};
use candle_core::{Device, Tensor, Var};
use serde::{Deserialize, Serialize};
use tessera_lm::{Grad, Linear, WeightMode};

/// Sizes of the projector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectorConfig {
    /// Input width (the encoder's).
    pub input: usize,
    /// Hidden width.
    pub hidden: usize,
    /// Output width (the language model's hidden size).
    pub output: usize,
}

/// `fc2(GELU(fc1(x)))`.
#[derive(Debug)]
pub struct Projector {
    /// Sizes.
    pub config: ProjectorConfig,
    /// `input → hidden`.
    pub fc1: Linear,
    /// `hidden → output`.
    pub fc2: Linear,
}

impl Projector {
    /// A randomly initialised projector, reproducible from `seed`.
    pub fn new(config: ProjectorConfig, seed: u64, dev: &Device) -> Result<Self> {
        let mut rng = tessera_core::rng::derived(seed, "projector");
        Ok(Projector {
            config,
            fc1: init_linear(&mut rng, config.input, config.hidden, dev)?,
            fc2: init_linear(&mut rng, config.hidden, config.output, dev)?,
        })
    }
    /// `[batch, tokens, input]` → `[batch, tokens, output]`.
    pub fn forward(&self, x: &Tensor, g: Grad, wm: WeightMode) -> Result<Tensor> {
        let h = lin(&self.fc1, x, g, wm)?.gelu_erf()?;
        lin(&self.fc2, &h, g, wm)
    }
    /// Tensors by checkpoint name.
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        let mut out = vec![];
        push_linear(&mut out, "fc1", &self.fc1);
        push_linear(&mut out, "fc2", &self.fc2);
        out
    }
}
