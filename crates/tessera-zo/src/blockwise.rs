//! Block-wise ZO (ZO-Bench, Zhang et al. 2024, section 4, `--module_wise_perturbation`): the trainable tensors are
//! split into blocks (the embedding, each transformer layer, the final norm; for LoRA each layer's adapters; for
//! prefix tuning each layer's prefix; the prompt is one block). Each block is perturbed, estimated (`±μ`, two
//! forward passes) and updated on its own, in order, before the next block is perturbed (the reference's default
//! `coordinate_perturbation = True`). A step costs `2 × blocks` forward passes.
//!
//! **Deviation from the reference:** the reference re-seeds every block with the same step seed, so blocks of the
//! same shape get the same `z`. Here block `b` of query seed `s` uses `derive_seed(s, "block/<b>")`
//! ([`block_seed`]), so every block has its own direction.
use tessera_lm::perturb::Param;

/// A block of tensors updated together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// Block name (`embed`, `layer.3`, `final_norm`, `prompt`, ...).
    pub name: String,
    /// Parameter names in it.
    pub params: Vec<String>,
}

/// The block a parameter belongs to.
pub fn block_of(name: &str) -> String {
    let layer = |rest: &str| rest.split('.').next().unwrap_or("").to_string();
    if let Some(rest) = name.strip_prefix("model.layers.") {
        format!("layer.{}", layer(rest))
    } else if let Some(rest) = name.strip_prefix("prefix.") {
        format!("layer.{}", layer(rest))
    } else if name.starts_with("model.embed_tokens") {
        "embed".into()
    } else if name.starts_with("model.norm") {
        "final_norm".into()
    } else if name.starts_with("lm_head") {
        "lm_head".into()
    } else if name.starts_with("prompt") {
        "prompt".into()
    } else {
        name.to_string()
    }
}

/// `params` grouped into blocks, in first-appearance order.
pub fn blocks(params: &[Param]) -> Vec<Block> {
    let mut out: Vec<Block> = Vec::new();
    for p in params {
        let b = block_of(&p.name);
        match out.iter_mut().find(|x| x.name == b) {
            Some(x) => x.params.push(p.name.clone()),
            None => out.push(Block {
                name: b,
                params: vec![p.name.clone()],
            }),
        }
    }
    out
}

/// The seed of block `block` under query seed `seed`: distinct per block.
pub fn block_seed(seed: u64, block: &str) -> u64 {
    tessera_core::rng::derive_seed(seed, &format!("block/{block}"))
}
