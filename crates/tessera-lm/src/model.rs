//! The LLaMA-family decoder (Touvron et al. 2023, arXiv:2302.13971): pre-norm blocks of RMSNorm → grouped-query
//! self-attention with rotary position embeddings (RoPE, neox/HF "rotate half" layout) → RMSNorm → SwiGLU MLP,
//! then a final RMSNorm and an output head (tied to the embedding or separate).
//!
//! Research hooks: every projection is a [`Linear`] (mask, LoRA, observer); [`FfnGate`] decides per layer and token
//! whether the MLP runs (FFN-SkipLLM); the forward pass takes token ids or input embeddings, optional per-layer
//! prefix keys/values, and returns logits for all positions or the last one. With `train` set, only
//! differentiable ops are used (candle's fused RMSNorm/softmax/rope have no backward).
use crate::config::LlamaConfig;
use crate::error::{LmError, Result};
use crate::linear::{param, Grad, Linear};
use crate::tokenizer::Tokenizer;
use candle_core::{DType, Device, Tensor, Var, D};

/// Decides whether layer `layer` runs its MLP for the current step. `hidden` is the residual stream entering the
/// MLP sub-block, `[batch, tokens, hidden]`.
pub trait FfnGate: Send + Sync {
    /// `true` to run the MLP, `false` to skip it (the residual passes through unchanged).
    fn run_ffn(&self, layer: usize, hidden: &Tensor) -> bool;
}

/// One decoder block's weights.
#[derive(Debug)]
pub struct Block {
    /// RMSNorm scale before attention.
    pub attn_norm: Var,
    /// Query projection.
    pub q: Linear,
    /// Key projection.
    pub k: Linear,
    /// Value projection.
    pub v: Linear,
    /// Attention output projection.
    pub o: Linear,
    /// RMSNorm scale before the MLP.
    pub ffn_norm: Var,
    /// SwiGLU gate projection.
    pub gate: Linear,
    /// SwiGLU up projection.
    pub up: Linear,
    /// SwiGLU down projection.
    pub down: Linear,
}

impl Block {
    /// The block's linear layers with their HF names relative to the block.
    pub fn linears(&self) -> [(&'static str, &Linear); 7] {
        [
            ("self_attn.q_proj", &self.q),
            ("self_attn.k_proj", &self.k),
            ("self_attn.v_proj", &self.v),
            ("self_attn.o_proj", &self.o),
            ("mlp.gate_proj", &self.gate),
            ("mlp.up_proj", &self.up),
            ("mlp.down_proj", &self.down),
        ]
    }
    /// Mutable access to the block's linear layers.
    pub fn linears_mut(&mut self) -> [(&'static str, &mut Linear); 7] {
        [
            ("self_attn.q_proj", &mut self.q),
            ("self_attn.k_proj", &mut self.k),
            ("self_attn.v_proj", &mut self.v),
            ("self_attn.o_proj", &mut self.o),
            ("mlp.gate_proj", &mut self.gate),
            ("mlp.up_proj", &mut self.up),
            ("mlp.down_proj", &mut self.down),
        ]
    }
}

/// Per-layer key/value cache for incremental decoding. Keys and values are `[batch, kv_heads, seq, head_dim]`.
#[derive(Debug, Clone)]
pub struct Cache {
    kv: Vec<Option<(Tensor, Tensor)>>,
    /// Tokens already in the cache (the position of the next token).
    pub len: usize,
}

impl Cache {
    /// An empty cache for `layers` layers.
    pub fn new(layers: usize) -> Self {
        Cache {
            kv: vec![None; layers],
            len: 0,
        }
    }
    /// The cached `(k, v)` of every layer (usable as a [`Forward::prefix`]), or `None` if a layer is empty.
    pub fn layer_kv(&self) -> Option<Vec<(Tensor, Tensor)>> {
        self.kv.iter().cloned().collect()
    }
}

/// What the forward pass consumes.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// Token ids `[batch, tokens]` (u32).
    Ids(&'a Tensor),
    /// Input embeddings `[batch, tokens, hidden]` (prompt tuning, embedding-space attacks).
    Embeds(&'a Tensor),
}

/// Options of one forward pass.
#[derive(Default)]
pub struct Forward<'a> {
    /// KV cache to read and extend (decoding).
    pub cache: Option<&'a mut Cache>,
    /// Per-layer prefix `(k, v)`, each `[batch, kv_heads, prefix_len, head_dim]` (prefix tuning), always visible.
    pub prefix: Option<&'a [(Tensor, Tensor)]>,
    /// Per-layer MLP gate (FFN skipping).
    pub ffn_gate: Option<&'a dyn FfnGate>,
    /// Return logits for the last position only (`[batch, 1, vocab]`).
    pub last_only: bool,
    /// Return logits only for positions `from..tokens` (`[batch, tokens - from, vocab]`), e.g. the scored part
    /// of a perplexity window. Ignored when `last_only` is set.
    pub logits_from: Option<usize>,
    /// Use differentiable ops only (training, gradients).
    pub train: bool,
    /// With `train`: freeze every base parameter (weights, norms, embedding) so gradients reach only adapters
    /// (LoRA `Var`s) and tensor inputs (embeddings, prefixes). Frozen projections then never allocate a
    /// weight-sized gradient ([`Grad::Adapters`]).
    pub freeze_base: bool,
    /// Key padding mask `[batch, cached + tokens]` (1 keep, 0 pad) for batches of prompts of unequal length.
    pub key_mask: Option<&'a Tensor>,
    /// Explicit positions `[batch, tokens]` (u32) for left-padded batches; default `cache.len + 0..tokens`.
    pub positions: Option<&'a Tensor>,
}

/// A LLaMA-family decoder held in `Var`s (an optimizer updates it in place; no second copy).
pub struct Llama {
    /// Hyper-parameters.
    pub config: LlamaConfig,
    /// Token embedding `[vocab, hidden]`.
    pub embed: Var,
    /// Decoder blocks.
    pub blocks: Vec<Block>,
    /// Final RMSNorm scale.
    pub norm: Var,
    /// Output head `[vocab, hidden]`; shares the embedding's storage when tied.
    pub lm_head: Linear,
    /// Tokenizer, when loaded from a file that has one.
    pub tokenizer: Option<Tokenizer>,
    cos: Tensor,
    sin: Tensor,
}

fn rms_norm(x: &Tensor, w: &Var, eps: f64, g: Grad) -> Result<Tensor> {
    Ok(if g.on() {
        candle_nn::ops::rms_norm_slow(x, &param(w, g.base()), eps as f32)?
    } else {
        candle_nn::ops::rms_norm(&x.contiguous()?, &w.as_tensor().detach(), eps as f32)?
    })
}

/// Rotary embedding in the "rotate half" (neox/HF) layout: `x·cos + rotate_half(x)·sin`, with `cos`/`sin` the
/// half tables `[tokens, head_dim/2]` or `[batch, tokens, head_dim/2]`. Inference uses candle's fused kernel;
/// training composes differentiable ops (the fused kernel has no backward).
fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor, train: bool) -> Result<Tensor> {
    if !train {
        return Ok(candle_nn::rotary_emb::rope(&x.contiguous()?, cos, sin)?);
    }
    let full = |t: &Tensor| -> Result<Tensor> {
        let t = Tensor::cat(&[t, t], D::Minus1)?;
        Ok(if t.rank() == 2 {
            t.unsqueeze(0)?.unsqueeze(0)?
        } else {
            t.unsqueeze(1)?
        })
    };
    let (cos, sin) = (full(cos)?, full(sin)?);
    let hd = x.dim(D::Minus1)?;
    let x1 = x.narrow(D::Minus1, 0, hd / 2)?;
    let x2 = x.narrow(D::Minus1, hd / 2, hd / 2)?;
    let rot = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
    Ok((x.broadcast_mul(&cos)? + rot.broadcast_mul(&sin)?)?)
}

impl Llama {
    /// Assembles a model from its parts, checking every shape against the config.
    pub fn from_parts(
        config: LlamaConfig,
        embed: Var,
        blocks: Vec<Block>,
        norm: Var,
        lm_head: Option<Var>,
        tokenizer: Option<Tokenizer>,
    ) -> Result<Self> {
        let c = &config;
        let hd = c.head_dim();
        let check = |name: String, t: &Tensor, want: &[usize]| -> Result<()> {
            if t.dims() != want {
                return Err(LmError::TensorShape {
                    path: "<model>".into(),
                    name,
                    expected: want.to_vec(),
                    got: t.dims().to_vec(),
                });
            }
            Ok(())
        };
        check(
            "embed_tokens".into(),
            &embed,
            &[c.vocab_size, c.hidden_size],
        )?;
        check("norm".into(), &norm, &[c.hidden_size])?;
        if blocks.len() != c.num_hidden_layers {
            return Err(LmError::Invalid(format!(
                "{} blocks for {} layers",
                blocks.len(),
                c.num_hidden_layers
            )));
        }
        for (i, b) in blocks.iter().enumerate() {
            let (h, f, kv) = (
                c.hidden_size,
                c.intermediate_size,
                c.num_key_value_heads * hd,
            );
            let want: [(&str, [usize; 2]); 7] = [
                ("self_attn.q_proj", [c.num_attention_heads * hd, h]),
                ("self_attn.k_proj", [kv, h]),
                ("self_attn.v_proj", [kv, h]),
                ("self_attn.o_proj", [h, c.num_attention_heads * hd]),
                ("mlp.gate_proj", [f, h]),
                ("mlp.up_proj", [f, h]),
                ("mlp.down_proj", [h, f]),
            ];
            for ((name, l), (_, shape)) in b.linears().iter().zip(want.iter()) {
                check(format!("model.layers.{i}.{name}"), l.weight(), shape)?;
            }
            check(
                format!("model.layers.{i}.input_layernorm"),
                &b.attn_norm,
                &[h],
            )?;
            check(
                format!("model.layers.{i}.post_attention_layernorm"),
                &b.ffn_norm,
                &[h],
            )?;
        }
        let lm_head = match lm_head {
            Some(w) => {
                check("lm_head".into(), &w, &[c.vocab_size, c.hidden_size])?;
                Linear::new(w)
            }
            None => Linear::new(embed.clone()),
        };
        let (cos, sin) = rope_tables(c)?;
        Ok(Llama {
            config,
            embed,
            blocks,
            norm,
            lm_head,
            tokenizer,
            cos,
            sin,
        })
    }

    /// The tokenizer, or an error when the model was loaded without one.
    pub fn tokenizer(&self) -> Result<&Tokenizer> {
        self.tokenizer
            .as_ref()
            .ok_or_else(|| LmError::Invalid("this model has no tokenizer".into()))
    }

    /// Whether the output head shares the embedding matrix.
    pub fn is_tied(&self) -> bool {
        self.lm_head.weight().as_tensor().id() == self.embed.as_tensor().id()
    }

    /// Total parameter count.
    pub fn num_params(&self) -> usize {
        let mut n = self.embed.elem_count() + self.norm.elem_count();
        for b in &self.blocks {
            n += b.attn_norm.elem_count() + b.ffn_norm.elem_count();
            n += b
                .linears()
                .iter()
                .map(|(_, l)| l.weight().elem_count())
                .sum::<usize>();
        }
        if !self.is_tied() {
            n += self.lm_head.weight().elem_count();
        }
        n
    }

    /// Every trainable tensor with its HF name (the tied head is listed once, as the embedding).
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        let mut v = vec![("model.embed_tokens.weight".to_string(), self.embed.clone())];
        for (i, b) in self.blocks.iter().enumerate() {
            v.push((
                format!("model.layers.{i}.input_layernorm.weight"),
                b.attn_norm.clone(),
            ));
            for (name, l) in b.linears() {
                v.push((
                    format!("model.layers.{i}.{name}.weight"),
                    l.weight().clone(),
                ));
            }
            v.push((
                format!("model.layers.{i}.post_attention_layernorm.weight"),
                b.ffn_norm.clone(),
            ));
        }
        v.push(("model.norm.weight".into(), self.norm.clone()));
        if !self.is_tied() {
            v.push(("lm_head.weight".into(), self.lm_head.weight().clone()));
        }
        v
    }

    /// Attaches a rank-`r` LoRA adapter (scale `alpha / r`) to every query and value projection, the placement of
    /// Hu et al. 2021; layer `i` draws its initialisation from seeds `2i` (q) and `2i + 1` (v).
    pub fn add_lora_qv(&mut self, r: usize, alpha: f64) -> Result<()> {
        for (i, b) in self.blocks.iter_mut().enumerate() {
            b.q.add_lora(r, alpha, 2 * i as u64)?;
            b.v.add_lora(r, alpha, 2 * i as u64 + 1)?;
        }
        Ok(())
    }

    /// Mean next-token cross-entropy of one sequence (`tokens[1..]` predicted from `tokens[..n-1]`) in training
    /// mode; with `freeze_base` only adapters and inputs are differentiated ([`Grad::Adapters`]).
    pub fn next_token_loss(&self, tokens: &[u32], freeze_base: bool) -> Result<Tensor> {
        if tokens.len() < 2 {
            return Err(LmError::Invalid(
                "a next-token loss needs at least 2 tokens".into(),
            ));
        }
        let x = Tensor::new(&tokens[..tokens.len() - 1], &Device::Cpu)?.unsqueeze(0)?;
        let y = Tensor::new(&tokens[1..], &Device::Cpu)?;
        let logits = self
            .forward(
                Input::Ids(&x),
                Forward {
                    train: true,
                    freeze_base,
                    ..Default::default()
                },
            )?
            .squeeze(0)?;
        Ok(candle_nn::loss::cross_entropy(&logits, &y)?)
    }

    /// Every LoRA parameter currently attached (for an optimizer).
    pub fn lora_vars(&self) -> Vec<Var> {
        let mut out = Vec::new();
        for b in &self.blocks {
            for (_, l) in b.linears() {
                if let Some(lo) = l.lora() {
                    out.push(lo.a.clone());
                    out.push(lo.b.clone());
                }
            }
        }
        out
    }

    /// Embeds token ids `[batch, tokens]` into `[batch, tokens, hidden]`.
    pub fn embed_ids(&self, ids: &Tensor) -> Result<Tensor> {
        self.embed(ids, false)
    }

    fn embed(&self, ids: &Tensor, train: bool) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let flat = ids.flatten_all()?;
        let max = flat.max(0)?.to_scalar::<u32>()? as usize;
        if max >= self.config.vocab_size {
            return Err(LmError::Invalid(format!(
                "token id {max} >= vocabulary size {}",
                self.config.vocab_size
            )));
        }
        Ok(param(&self.embed, train).index_select(&flat, 0)?.reshape((
            b,
            t,
            self.config.hidden_size,
        ))?)
    }

    /// Feeds `tokens` (one sequence) through the model, extending `cache`, and returns the logits of the last
    /// position: the step function of incremental decoding.
    pub fn next_logits(&self, tokens: &[u32], cache: &mut Cache) -> Result<Vec<f32>> {
        let ids = Tensor::new(tokens, &Device::Cpu)?.unsqueeze(0)?;
        let logits = self.forward(
            Input::Ids(&ids),
            Forward {
                cache: Some(cache),
                last_only: true,
                ..Default::default()
            },
        )?;
        Ok(logits.flatten_all()?.to_vec1()?)
    }

    /// Runs the model. Returns logits `[batch, tokens, vocab]` (or `[batch, 1, vocab]` with `last_only`).
    pub fn forward(&self, input: Input<'_>, mut opts: Forward<'_>) -> Result<Tensor> {
        let c = &self.config;
        let g = match (opts.train, opts.freeze_base) {
            (false, _) => Grad::Off,
            (true, false) => Grad::All,
            (true, true) => Grad::Adapters,
        };
        let mut x = match input {
            Input::Ids(ids) => self.embed(ids, g.base())?,
            Input::Embeds(e) => {
                if e.dim(D::Minus1)? != c.hidden_size || e.rank() != 3 {
                    return Err(LmError::Invalid(format!(
                        "input embeddings must be [batch, tokens, {}], got {:?}",
                        c.hidden_size,
                        e.dims()
                    )));
                }
                e.clone()
            }
        };
        let (b, t, _) = x.dims3()?;
        let past = opts.cache.as_ref().map(|c| c.len).unwrap_or(0);
        let plen = match opts.prefix {
            Some(p) => {
                if p.len() != c.num_hidden_layers {
                    return Err(LmError::Invalid(format!(
                        "prefix has {} layers, model has {}",
                        p.len(),
                        c.num_hidden_layers
                    )));
                }
                p[0].0.dim(2)?
            }
            None => 0,
        };
        if past + t > c.max_position_embeddings.max(1) * 4 {
            return Err(LmError::Invalid(format!(
                "sequence of {} tokens is too long",
                past + t
            )));
        }
        let (cos, sin) = self.rope_for(b, t, past, opts.positions)?;
        let rep = c.num_attention_heads / c.num_key_value_heads;
        let mask = match self.attention_mask(b, t, past, plen, opts.key_mask)? {
            Some(m) if rep > 1 => Some(m.repeat((1, 1, rep, 1))?),
            other => other,
        };
        for (li, blk) in self.blocks.iter().enumerate() {
            let h = rms_norm(&x, &blk.attn_norm, c.rms_norm_eps, g)?;
            let kv_cache = opts.cache.as_deref_mut().map(|c| &mut c.kv[li]);
            let prefix = opts.prefix.map(|p| &p[li]);
            let a = self.attention(blk, &h, &cos, &sin, mask.as_ref(), kv_cache, prefix, g)?;
            x = (x + a)?;
            let run = opts.ffn_gate.is_none_or(|g| g.run_ffn(li, &x));
            if run {
                let h = rms_norm(&x, &blk.ffn_norm, c.rms_norm_eps, g)?;
                let gate = blk.gate.forward_grad(&h, g)?;
                let up = blk.up.forward_grad(&h, g)?;
                let act = (candle_nn::ops::silu(&gate)? * up)?;
                x = (x + blk.down.forward_grad(&act, g)?)?;
            }
        }
        if let Some(cache) = opts.cache.as_deref_mut() {
            cache.len += t;
        }
        if opts.last_only {
            x = x.narrow(1, t - 1, 1)?;
        } else if let Some(from) = opts.logits_from {
            if from >= t {
                return Err(LmError::Invalid(format!(
                    "logits_from {from} >= {t} tokens"
                )));
            }
            x = x.narrow(1, from, t - from)?;
        }
        let x = rms_norm(&x, &self.norm, c.rms_norm_eps, g)?;
        self.lm_head.forward_grad(&x, g)
    }

    fn rope_for(
        &self,
        b: usize,
        t: usize,
        past: usize,
        positions: Option<&Tensor>,
    ) -> Result<(Tensor, Tensor)> {
        match positions {
            None => Ok((self.cos.narrow(0, past, t)?, self.sin.narrow(0, past, t)?)),
            Some(p) => {
                if p.dims() != [b, t] {
                    return Err(LmError::Invalid(format!(
                        "positions {:?} must be [{b}, {t}]",
                        p.dims()
                    )));
                }
                let half = self.config.head_dim() / 2;
                let flat = p.flatten_all()?;
                let cos = self.cos.index_select(&flat, 0)?.reshape((b, t, half))?;
                let sin = self.sin.index_select(&flat, 0)?.reshape((b, t, half))?;
                Ok((cos, sin))
            }
        }
    }

    /// Additive mask `[batch or 1, 1, t, prefix + past + t]`: causal over the sequence, prefix always visible,
    /// padded keys hidden. `None` when nothing needs masking (a single query with no padding).
    fn attention_mask(
        &self,
        b: usize,
        t: usize,
        past: usize,
        plen: usize,
        key_mask: Option<&Tensor>,
    ) -> Result<Option<Tensor>> {
        let s = plen + past + t;
        let causal = if t > 1 {
            let mut m = vec![0f32; t * s];
            for i in 0..t {
                for j in (plen + past + i + 1)..s {
                    m[i * s + j] = f32::NEG_INFINITY;
                }
            }
            Some(Tensor::from_vec(m, (1, 1, t, s), &Device::Cpu)?)
        } else {
            None
        };
        let pad = match key_mask {
            None => None,
            Some(km) => {
                let (kb, ks) = km.dims2()?;
                if kb != b || ks != past + t {
                    return Err(LmError::Invalid(format!(
                        "key mask {:?} does not match batch {b} × {} keys",
                        km.dims(),
                        past + t
                    )));
                }
                let km = km.to_dtype(DType::F32)?;
                // 1 → 0, 0 → -inf (use a large negative number so fully masked rows stay finite).
                let add = km.affine(1e9, -1e9)?;
                let add = if plen > 0 {
                    Tensor::cat(
                        &[&Tensor::zeros((b, plen), DType::F32, &Device::Cpu)?, &add],
                        1,
                    )?
                } else {
                    add
                };
                Some(add.reshape((b, 1, 1, s))?)
            }
        };
        Ok(match (causal, pad) {
            (None, None) => None,
            (Some(c), None) => Some(c),
            (None, Some(p)) => Some(p),
            (Some(c), Some(p)) => Some(c.broadcast_add(&p)?),
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn attention(
        &self,
        blk: &Block,
        h: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        mask: Option<&Tensor>,
        cache: Option<&mut Option<(Tensor, Tensor)>>,
        prefix: Option<&(Tensor, Tensor)>,
        g: Grad,
    ) -> Result<Tensor> {
        let train = g.on();
        let c = &self.config;
        let (b, t, _) = h.dims3()?;
        let (nh, nkv, hd) = (c.num_attention_heads, c.num_key_value_heads, c.head_dim());
        let q = blk
            .q
            .forward_grad(h, g)?
            .reshape((b, t, nh, hd))?
            .transpose(1, 2)?;
        let k = blk
            .k
            .forward_grad(h, g)?
            .reshape((b, t, nkv, hd))?
            .transpose(1, 2)?;
        let v = blk
            .v
            .forward_grad(h, g)?
            .reshape((b, t, nkv, hd))?
            .transpose(1, 2)?
            .contiguous()?;
        let q = rope(&q, cos, sin, train)?;
        let k = rope(&k, cos, sin, train)?;
        let (k, v) = match cache {
            Some(slot) => {
                let kv = match slot.take() {
                    Some((pk, pv)) => (Tensor::cat(&[&pk, &k], 2)?, Tensor::cat(&[&pv, &v], 2)?),
                    None => (k, v),
                };
                *slot = Some(kv.clone());
                kv
            }
            None => (k, v),
        };
        let (k, v) = match prefix {
            Some((pk, pv)) => (Tensor::cat(&[pk, &k], 2)?, Tensor::cat(&[pv, &v], 2)?),
            None => (k, v),
        };
        // Grouped-query attention without copying K/V per query head: the `rep` query heads that share a KV head
        // are stacked along the query axis, [b, nh, t, hd] → [b, nkv, rep·t, hd] (the mask was tiled to match).
        let rep = nh / nkv;
        let q = q.reshape((b, nkv, rep * t, hd))?;
        let scale = 1.0 / (hd as f64).sqrt();
        let mut att = q.matmul(&k.t()?)?.affine(scale, 0.0)?;
        if let Some(m) = mask {
            att = att.broadcast_add(m)?;
        }
        let att = if train {
            candle_nn::ops::softmax(&att, D::Minus1)?
        } else {
            candle_nn::ops::softmax_last_dim(&att)?
        };
        let y = att
            .matmul(&v)?
            .reshape((b, nh, t, hd))?
            .transpose(1, 2)?
            .reshape((b, t, nh * hd))?;
        blk.o.forward_grad(&y, g)
    }
}

fn rope_tables(c: &LlamaConfig) -> Result<(Tensor, Tensor)> {
    let hd = c.head_dim();
    let n = c.max_position_embeddings.max(1) * 4;
    let inv: Vec<f32> = (0..hd / 2)
        .map(|i| 1.0 / (c.rope_theta as f32).powf(2.0 * i as f32 / hd as f32))
        .collect();
    let mut cos = Vec::with_capacity(n * hd / 2);
    let mut sin = Vec::with_capacity(n * hd / 2);
    for p in 0..n {
        for &f in &inv {
            let a = p as f32 * f;
            cos.push(a.cos());
            sin.push(a.sin());
        }
    }
    Ok((
        Tensor::from_vec(cos, (n, hd / 2), &Device::Cpu)?,
        Tensor::from_vec(sin, (n, hd / 2), &Device::Cpu)?,
    ))
}
