//! Hybrid ZO/FO (ZO-Bench, Zhang et al. 2024, section 4): first-order SGD on a chosen set of transformer layers,
//! ZO on every other trainable tensor. A step runs the ZO estimate and update on the non-FO tensors (two
//! inference passes), then one differentiable pass in which only the chosen layers track gradients, then an SGD
//! update of those layers with their own learning rate.
//!
//! The reference code does not include this enhancement; its layer split is unverified, so the layers are a
//! parameter (`--hybrid-fo 0-3`, `--hybrid-fo 28,29`).
//!
//! The differentiable pass is mixed layer by layer: layers before the first FO layer run in inference mode (fused
//! kernels, no graph), the FO layers with trainable weights ([`Grad::All`]), and later layers and the head
//! differentiably with frozen weights ([`Grad::Adapters`]: the input gradient only, no weight gradient). The
//! gradient memory is therefore that of the FO layers plus the activations above the first of them.
use crate::error::{Result, ZoError};
use crate::scheme::Rows;
use candle_core::Tensor;
use tessera_lm::{Forward, Grad, Llama};

/// Parses `0-3`, `28,29` or `0-1,5` into sorted distinct layer indices below `layers`.
pub fn parse_layers(s: &str, layers: usize) -> Result<Vec<usize>> {
    let bad = |m: String| ZoError::invalid(format!("--hybrid-fo `{s}`: {m}"));
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let a: usize = a
            .parse()
            .map_err(|_| bad(format!("`{part}` is not a layer or range")))?;
        let b: usize = b
            .parse()
            .map_err(|_| bad(format!("`{part}` is not a layer or range")))?;
        if a > b || b >= layers {
            return Err(bad(format!("`{part}` is not a range within 0..{layers}")));
        }
        out.extend(a..=b);
    }
    out.sort_unstable();
    out.dedup();
    if out.is_empty() {
        return Err(bad("no layer given".into()));
    }
    if out.len() == layers {
        return Err(bad(
            "every layer is first-order; use --optimizer fo-sgd".into()
        ));
    }
    Ok(out)
}

/// Whether parameter `name` belongs to one of `layers`.
pub fn in_layers(name: &str, layers: &[usize]) -> bool {
    name.strip_prefix("model.layers.")
        .and_then(|r| r.split('.').next())
        .and_then(|i| i.parse::<usize>().ok())
        .is_some_and(|i| layers.contains(&i))
}

/// Logits `[rows, tail, vocab]` of the mixed pass (see the module docs).
pub fn logits(model: &Llama, rows: &Rows, tail: usize, layers: &[usize]) -> Result<Tensor> {
    let (b, t) = rows.ids.dims2()?;
    let first = *layers
        .first()
        .ok_or_else(|| ZoError::invalid("hybrid ZO/FO needs at least one FO layer"))?;
    let opts = |g: Grad| {
        let mut f = Forward::with_grad(g);
        f.key_mask = Some(&rows.key_mask);
        f.positions = Some(&rows.positions);
        f
    };
    let off = model.step_context(b, t, &opts(Grad::Off))?;
    let all = model.step_context(b, t, &opts(Grad::All))?;
    let frozen = model.step_context(b, t, &opts(Grad::Adapters))?;
    let mut x = model.embed_tokens(&rows.ids, false)?;
    for li in 0..model.blocks.len() {
        let ctx = if layers.contains(&li) {
            &all
        } else if li < first {
            &off
        } else {
            &frozen
        };
        x = model.block_forward(li, &x, ctx, None, None, None)?;
    }
    Ok(model.head_grad(&x.narrow(1, t - tail, tail)?, Grad::Adapters)?)
}
