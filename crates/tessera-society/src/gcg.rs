//! The discrete variant: GCG-style greedy coordinate search over the tokens of a plain-text injection.
//!
//! After Zou et al., "Universal and Transferable Adversarial Attacks on Aligned Language Models" (arXiv
//! 2307.15043, Algorithm 1): the injection is `L` token ids in the sheep's message slot; the gradient of the
//! sheep's target cross-entropy w.r.t. their one-hot rows (`∂L/∂e_i = ∇_{emb} L · Eᵀ`) ranks, per position, the
//! `top_k` substitutions with the most negative gradient; `candidates` single-token substitutions (uniform random
//! position, uniform random token from that position's top-k) are scored exactly in one batched forward and the
//! best replaces the current injection when it lowers the loss (greedy: the loss never rises). Special tokens are
//! never proposed. The result is plain text, so it can be sent to any backend (the transfer setting); decoding and
//! re-encoding the text may give slightly different ids, which is why transfer success is measured on the text.
use crate::error::{invalid, Result};
use crate::wolf::Chain;
use candle_core::{Tensor, Var};
use rand::Rng as _;

/// One GCG step's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GcgOpts {
    /// Substitutions kept per position.
    pub top_k: usize,
    /// Candidates scored per step.
    pub candidates: usize,
}

/// The gradient of the sheep's loss w.r.t. the one-hot rows of `ids` in its message slot: `[L, vocab]` and the
/// loss.
pub fn onehot_grad(chain: &Chain<'_>, ids: &[u32]) -> Result<(Vec<Vec<f32>>, f64)> {
    let v = chain.sheep.config.vocab_size;
    let mut oh = vec![0f32; ids.len() * v];
    for (i, &id) in ids.iter().enumerate() {
        oh[i * v + id as usize] = 1.0;
    }
    let var = Var::from_tensor(&Tensor::from_vec(oh, (ids.len(), v), chain.device())?)?;
    let emb = var.as_tensor().matmul(chain.sheep_table())?.unsqueeze(0)?;
    let loss = chain.sheep_loss_embeds(&emb)?;
    let value = loss.to_scalar::<f32>()? as f64;
    let grads = loss.backward()?;
    let Some(g) = grads.get(var.as_tensor()) else {
        return invalid("no gradient reached the one-hot injection");
    };
    Ok((g.to_vec2()?, value))
}

/// The `k` allowed ids with the smallest gradient in `row`.
pub fn top_k(chain: &Chain<'_>, row: &[f32], k: usize) -> Vec<u32> {
    let mut ids: Vec<u32> = (0..row.len() as u32)
        .filter(|&i| !chain.is_special(i))
        .collect();
    let k = k.min(ids.len());
    if k == 0 {
        return vec![];
    }
    ids.select_nth_unstable_by(k - 1, |&a, &b| row[a as usize].total_cmp(&row[b as usize]));
    ids.truncate(k);
    ids.sort_by(|&a, &b| row[a as usize].total_cmp(&row[b as usize]).then(a.cmp(&b)));
    ids
}

/// One step from `ids` (current loss `cur`): returns the new ids and loss (unchanged when no candidate helps).
pub fn step(
    chain: &Chain<'_>,
    ids: &[u32],
    cur: f64,
    opts: GcgOpts,
    rng: &mut tessera_core::rng::Rng,
) -> Result<(Vec<u32>, f64)> {
    if opts.top_k == 0 || opts.candidates == 0 {
        return invalid("GCG needs top_k > 0 and candidates > 0");
    }
    let (grad, _) = onehot_grad(chain, ids)?;
    let tops: Vec<Vec<u32>> = grad.iter().map(|r| top_k(chain, r, opts.top_k)).collect();
    let mut cands = Vec::with_capacity(opts.candidates);
    for _ in 0..opts.candidates {
        let pos = rng.gen_range(0..ids.len());
        let mut c = ids.to_vec();
        if !tops[pos].is_empty() {
            c[pos] = tops[pos][rng.gen_range(0..tops[pos].len())];
        }
        cands.push(c);
    }
    let mut losses = Vec::with_capacity(cands.len());
    for chunk in cands.chunks(8) {
        losses.extend(chain.sheep_losses(chunk)?);
    }
    let (bi, bl) = losses
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, &l)| (i, l))
        .unwrap_or((0, f64::INFINITY));
    Ok(if bl < cur {
        (cands.swap_remove(bi), bl)
    } else {
        (ids.to_vec(), cur)
    })
}
