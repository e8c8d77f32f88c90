//! The LLaMA-family decoder (Touvron et al. 2023, arXiv:2302.13971): pre-norm blocks of RMSNorm → grouped-query
//! self-attention with rotary position embeddings (RoPE, neox/HF "rotate half" layout) → RMSNorm → SwiGLU MLP,
//! then a final RMSNorm and an output head (tied to the embedding or separate).
//!
//! Research hooks: every projection is a [`Linear`] (mask, LoRA, observer); a [`LayerHook`] sees the residual
//! stream inside every block and may veto the FFN per step or per token (FFN-SkipLLM); the forward pass takes
//! token ids or input embeddings, optional per-layer prefix keys/values, and returns logits for all positions or
//! the last one, plus the residual stream after chosen layers. [`Llama::embed`], [`Llama::step_context`],
//! [`Llama::block_forward`] and [`Llama::head`] expose the same pass layer by layer (sequential calibration).
//! With `train` set, only differentiable ops are used (candle's fused RMSNorm/softmax/rope have no backward).
//!
//! Memory: in inference a prompt longer than [`Llama::prefill_chunk`] tokens is fed in chunks through the KV
//! cache, and attention over more than [`Llama::attention_block`] keys runs block by block with an online softmax,
//! so no tensor grows with the square of the prompt length. RoPE tables are built lazily, only up to the largest
//! position used.
use crate::config::LlamaConfig;
use crate::decode::RawKv;
use crate::error::{LmError, Result};
use crate::hook::{FfnDecision, LayerHook, LayerSite, StepInfo};
use crate::linear::{param, Grad, Linear, LinearCtx, LoraForm, Proj, WeightMode};
use crate::tokenizer::Tokenizer;
use candle_core::{DType, Device, Tensor, Var, D};
use std::ops::Range;
use std::sync::RwLock;

/// Default [`Llama::prefill_chunk`]: prompt tokens per forward chunk in inference.
pub const PREFILL_CHUNK: usize = 256;
/// Default [`Llama::attention_block`]: keys per attention block (online softmax beyond one block).
pub const ATTENTION_KEY_BLOCK: usize = 512;
/// Additive mask value of a hidden key (finite, so a block with no visible key stays finite).
const MASKED: f32 = -1e30;

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

/// Per-layer key/value cache for incremental decoding. Keys and values are `[batch, kv_heads, seq, head_dim]`
/// tensors on the general path; the one-token path (`src/decode.rs`) keeps a layer's keys and values in growable
/// buffers instead, and each path converts a layer the other wrote when it first reads it.
#[derive(Debug, Clone)]
pub struct Cache {
    kv: Vec<Option<(Tensor, Tensor)>>,
    raw: Vec<Option<RawKv>>,
    /// Tokens already in the cache (the position of the next token).
    pub len: usize,
}

impl Cache {
    /// An empty cache for `layers` layers.
    pub fn new(layers: usize) -> Self {
        Cache {
            kv: vec![None; layers],
            raw: vec![None; layers],
            len: 0,
        }
    }
    /// The cached `(k, v)` of every layer (usable as a [`Forward::prefix`]), or `None` if a layer is empty.
    pub fn layer_kv(&self) -> Option<Vec<(Tensor, Tensor)>> {
        (0..self.kv.len())
            .map(|l| match (&self.kv[l], &self.raw[l]) {
                (Some(kv), _) => Some(kv.clone()),
                (None, Some(r)) => r.to_tensors(&Device::Cpu).ok(),
                (None, None) => None,
            })
            .collect()
    }
    /// Keys held by layer `layer` (0 when empty or out of range).
    pub fn layer_len(&self, layer: usize) -> usize {
        if let Some(Some(r)) = self.raw.get(layer) {
            return r.len();
        }
        self.kv
            .get(layer)
            .and_then(|s| s.as_ref())
            .and_then(|(k, _)| k.dim(2).ok())
            .unwrap_or(0)
    }
    /// Marks `tokens` more tokens as cached: call once after running every block of a step with
    /// [`Llama::block_forward`] ([`Llama::forward`] does it itself).
    pub fn advance(&mut self, tokens: usize) {
        self.len += tokens;
    }
    /// Layers the cache was made for.
    pub(crate) fn layers(&self) -> usize {
        self.kv.len()
    }
    /// Layer `layer` as tensors, for the general path (converted from the one-token path's buffers if needed).
    fn tensor_slot(
        &mut self,
        layer: usize,
        device: &Device,
    ) -> Result<&mut Option<(Tensor, Tensor)>> {
        if let Some(r) = self.raw[layer].take() {
            self.kv[layer] = Some(r.to_tensors(device)?);
        }
        Ok(&mut self.kv[layer])
    }
    /// Layer `layer` as the one-token path's buffers (converted from tensors if needed).
    pub(crate) fn raw_slot(
        &mut self,
        layer: usize,
        heads: usize,
        dim: usize,
    ) -> Result<&mut RawKv> {
        if let Some((k, v)) = self.kv[layer].take() {
            self.raw[layer] = Some(RawKv::from_tensors(&k, &v)?);
        }
        let slot = self.raw[layer].get_or_insert_with(|| RawKv::empty(heads, dim));
        if slot.shape() != (heads, dim) {
            return Err(LmError::Invalid(format!(
                "cache layer {layer} holds {:?} (kv heads, head dim), the model has {:?}",
                slot.shape(),
                (heads, dim)
            )));
        }
        Ok(slot)
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
    /// Layer hook, called inside every block (FFN skipping, activation statistics).
    pub hook: Option<&'a mut dyn LayerHook>,
    /// During generation: the index of the generated token this step feeds (passed to the hook).
    pub generated: Option<usize>,
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
    /// Which weights to use: masks and adapters as attached (default) or the dense teacher.
    pub weights: WeightMode,
    /// Also return the residual stream `[batch, tokens, hidden]` after each of these layers
    /// ([`Llama::forward_output`]).
    pub residuals: Option<&'a [usize]>,
    /// Skip the final norm and head ([`ForwardOutput::logits`] is `None`).
    pub no_head: bool,
}

impl Forward<'_> {
    /// The differentiation mode these options ask for.
    pub fn grad(&self) -> Grad {
        match (self.train, self.freeze_base) {
            (false, _) => Grad::Off,
            (true, f) => Grad::training(f),
        }
    }
}

impl<'a> Forward<'a> {
    /// Options for a pass with differentiation mode `g` (everything else default).
    pub fn with_grad(g: Grad) -> Self {
        Forward {
            train: g.on(),
            freeze_base: g == Grad::Adapters,
            ..Default::default()
        }
    }
}

/// What [`Llama::forward_output`] returns.
#[derive(Debug, Clone)]
pub struct ForwardOutput {
    /// Logits (`None` with [`Forward::no_head`]).
    pub logits: Option<Tensor>,
    /// `(layer, residual after that layer)` for each layer asked for in [`Forward::residuals`], in that order.
    pub residuals: Vec<(usize, Tensor)>,
}

/// Everything the blocks of one forward step share: positions, rotary tables at those positions, the key padding
/// mask and the differentiation mode. Built by [`Llama::step_context`].
#[derive(Debug, Clone)]
pub struct StepContext {
    /// Batch, tokens, cached tokens, positions and generated-token index of the step.
    pub info: StepInfo,
    /// Prefix key/value length seen by every query.
    pub prefix_len: usize,
    /// Differentiation mode.
    pub grad: Grad,
    /// Weight mode.
    pub weights: WeightMode,
    cos: Tensor,
    sin: Tensor,
    /// Additive padding mask over all keys `[batch, prefix + past + tokens]`.
    key_add: Option<Tensor>,
    /// Indices (u32) of the step's non-padded query rows, when some are padded.
    keep_rows: Option<Tensor>,
    /// The whole-step mask, when attention runs in one block.
    full_mask: Option<Tensor>,
}

/// Rotary tables built up to `len` positions.
#[derive(Debug)]
struct RopeTables {
    len: usize,
    cos: Option<Tensor>,
    sin: Option<Tensor>,
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
    /// Inference forwards over more tokens than this run in chunks of this many through the KV cache
    /// (0 = never chunk). Default [`PREFILL_CHUNK`].
    pub prefill_chunk: usize,
    /// Inference attention over more keys than this runs in key blocks of this size with an online softmax
    /// (0 = never). Default [`ATTENTION_KEY_BLOCK`].
    pub attention_block: usize,
    /// Whether single-token decode steps take the slice-based path of `src/decode.rs` when they can (default
    /// on; off runs every step on the general path, for differential tests).
    pub fast_decode: bool,
    device: Device,
    rope: RwLock<RopeTables>,
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

/// Which layer range a [`LoraSpec`] covers.
fn layer_range(r: &Option<Range<usize>>, n: usize) -> Result<Range<usize>> {
    let r = r.clone().unwrap_or(0..n);
    if r.start >= r.end || r.end > n {
        return Err(LmError::Invalid(format!(
            "layer range {}..{} is empty or beyond the model's {n} layers",
            r.start, r.end
        )));
    }
    Ok(r)
}

/// Where and how [`Llama::add_lora`] attaches adapters.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LoraSpec {
    /// Projections that get an adapter.
    pub targets: Vec<Proj>,
    /// Layers (default: all).
    pub layers: Option<Range<usize>>,
    /// Rank.
    pub rank: usize,
    /// Scale numerator (`scale = alpha / rank`).
    pub alpha: f64,
    /// Composition with masks.
    pub form: LoraForm,
    /// Initialisation seed (each adapter draws from its own derived stream).
    pub seed: u64,
}

impl LoraSpec {
    /// Rank `rank`, alpha `2·rank`, SparseLoRA form, seed 0, on the named targets (`"q,v"`, `"all"`; unknown
    /// names are [`LmError::UnknownTarget`]).
    pub fn new(targets: &str, rank: usize) -> Result<Self> {
        Ok(LoraSpec {
            targets: Proj::parse_list(targets)?,
            layers: None,
            rank,
            alpha: 2.0 * rank as f64,
            form: LoraForm::SparseLora,
            seed: 0,
        })
    }
}

impl Block {
    /// The projection `p`.
    pub fn linear(&self, p: Proj) -> &Linear {
        match p {
            Proj::Q => &self.q,
            Proj::K => &self.k,
            Proj::V => &self.v,
            Proj::O => &self.o,
            Proj::Gate => &self.gate,
            Proj::Up => &self.up,
            Proj::Down => &self.down,
        }
    }
    /// Mutable access to the projection `p`.
    pub fn linear_mut(&mut self, p: Proj) -> &mut Linear {
        match p {
            Proj::Q => &mut self.q,
            Proj::K => &mut self.k,
            Proj::V => &mut self.v,
            Proj::O => &mut self.o,
            Proj::Gate => &mut self.gate,
            Proj::Up => &mut self.up,
            Proj::Down => &mut self.down,
        }
    }
}

impl Llama {
    /// Assembles a model from its parts, checking every shape against the config. The model lives on the
    /// embedding's device.
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
        // An empty `0 × hidden` embedding is the placeholder of an inference-only model whose token rows are
        // read from its (tied) compact head (`crate::weights`).
        if embed.dims() != [0, c.hidden_size] {
            check(
                "embed_tokens".into(),
                &embed,
                &[c.vocab_size, c.hidden_size],
            )?;
        }
        check("norm".into(), &norm, &[c.hidden_size])?;
        if blocks.len() != c.num_hidden_layers {
            return Err(LmError::Invalid(format!(
                "{} blocks for {} layers",
                blocks.len(),
                c.num_hidden_layers
            )));
        }
        if !hd.is_multiple_of(2) {
            return Err(LmError::Invalid(format!("head dimension {hd} is odd")));
        }
        let device = embed.device().clone();
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
                let (o, n) = l.dims();
                if [o, n] != *shape {
                    return Err(LmError::TensorShape {
                        path: "<model>".into(),
                        name: format!("model.layers.{i}.{name}"),
                        expected: shape.to_vec(),
                        got: vec![o, n],
                    });
                }
                if l.compact().is_none() && !l.weight().device().same_device(&device) {
                    return Err(LmError::Invalid(format!(
                        "model.layers.{i}.{name} is on another device than the embedding"
                    )));
                }
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
        Ok(Llama {
            config,
            embed,
            blocks,
            norm,
            lm_head,
            tokenizer,
            prefill_chunk: PREFILL_CHUNK,
            attention_block: ATTENTION_KEY_BLOCK,
            fast_decode: true,
            device,
            rope: RwLock::new(RopeTables {
                len: 0,
                cos: None,
                sin: None,
            }),
        })
    }

    /// The device every tensor of the model lives on.
    pub fn device(&self) -> &Device {
        &self.device
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
        let mut n = self.config.vocab_size * self.config.hidden_size + self.norm.elem_count();
        for b in &self.blocks {
            n += b.attn_norm.elem_count() + b.ffn_norm.elem_count();
            n += b
                .linears()
                .iter()
                .map(|(_, l)| l.dims().0 * l.dims().1)
                .sum::<usize>();
        }
        if !self.is_tied() {
            n += self.lm_head.dims().0 * self.lm_head.dims().1;
        }
        n
    }

    /// Most positions a forward may reach (4 × the configured context, as HF rope scaling allows).
    pub fn max_positions(&self) -> usize {
        self.config.max_position_embeddings.max(1).saturating_mul(4)
    }

    /// Positions the lazily built RoPE tables cover now.
    pub fn rope_len(&self) -> usize {
        self.rope.read().map(|r| r.len).unwrap_or(0)
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

    /// Every LoRA parameter with a name: `model.layers.{i}.{proj}.lora_a` / `.lora_b`.
    pub fn named_lora_vars(&self) -> Vec<(String, Var)> {
        let mut out = Vec::new();
        for (i, b) in self.blocks.iter().enumerate() {
            for (name, l) in b.linears() {
                if let Some(lo) = l.lora() {
                    out.push((format!("model.layers.{i}.{name}.lora_a"), lo.a.clone()));
                    out.push((format!("model.layers.{i}.{name}.lora_b"), lo.b.clone()));
                }
            }
        }
        out
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

    /// Attaches adapters to the projections and layers `spec` names; the adapter of layer `i`, projection `p`
    /// is initialised from the stream `layer/{i}/{p}` of `spec.seed`. Returns how many were attached. Nothing is
    /// attached when the spec is invalid.
    pub fn add_lora(&mut self, spec: &LoraSpec) -> Result<usize> {
        let layers = layer_range(&spec.layers, self.blocks.len())?;
        if spec.targets.is_empty() {
            return Err(LmError::UnknownTarget {
                name: String::new(),
            });
        }
        for b in &self.blocks[layers.clone()] {
            for &p in &spec.targets {
                let (o, i) = b.linear(p).dims();
                if spec.rank == 0 || spec.rank > o.min(i) {
                    return Err(LmError::Invalid(format!(
                        "LoRA rank {} out of range [1, {}] for {p}",
                        spec.rank,
                        o.min(i)
                    )));
                }
            }
        }
        let mut n = 0;
        for i in layers {
            for &p in &spec.targets {
                let seed = tessera_core::rng::derive_seed(spec.seed, &format!("layer/{i}/{p}"));
                self.blocks[i]
                    .linear_mut(p)
                    .add_lora_form(spec.rank, spec.alpha, seed, spec.form)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Folds every adapter into its weight ([`Linear::merge_lora`]): the merged model computes what was trained.
    pub fn merge_lora(&mut self) -> Result<()> {
        for b in &mut self.blocks {
            for (_, l) in b.linears_mut() {
                l.merge_lora()?;
            }
        }
        Ok(())
    }

    /// Mean next-token cross-entropy of one sequence (`tokens[1..]` predicted from `tokens[..n-1]`) in training
    /// mode; with `freeze_base` only adapters and inputs are differentiated ([`Grad::Adapters`]).
    pub fn next_token_loss(&self, tokens: &[u32], freeze_base: bool) -> Result<Tensor> {
        self.next_token_loss_with(tokens, Grad::training(freeze_base))
    }

    /// Mean next-token cross-entropy of one sequence with differentiation mode `g` ([`Grad::Off`]: no graph).
    pub fn next_token_loss_with(&self, tokens: &[u32], g: Grad) -> Result<Tensor> {
        if tokens.len() < 2 {
            return Err(LmError::Invalid(
                "a next-token loss needs at least 2 tokens".into(),
            ));
        }
        let x = Tensor::new(&tokens[..tokens.len() - 1], &self.device)?.unsqueeze(0)?;
        let y = Tensor::new(&tokens[1..], &self.device)?;
        let logits = self
            .forward(Input::Ids(&x), Forward::with_grad(g))?
            .squeeze(0)?;
        Ok(candle_nn::loss::cross_entropy(&logits, &y)?)
    }

    /// Every LoRA parameter currently attached (for an optimizer).
    pub fn lora_vars(&self) -> Vec<Var> {
        self.named_lora_vars().into_iter().map(|(_, v)| v).collect()
    }

    /// Embeds token ids `[batch, tokens]` into `[batch, tokens, hidden]` (inference; same as [`Llama::embed`]).
    pub fn embed_ids(&self, ids: &Tensor) -> Result<Tensor> {
        self.embed_tokens(ids, false)
    }

    /// Embeds token ids `[batch, tokens]` into the residual stream `[batch, tokens, hidden]`.
    pub fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        self.embed_tokens(ids, false)
    }

    /// Embeds token ids, tracked by autograd when `train`.
    pub fn embed_tokens(&self, ids: &Tensor, train: bool) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        if t == 0 {
            return Err(LmError::Invalid("no tokens to embed".into()));
        }
        let flat = ids.flatten_all()?.to_dtype(DType::U32)?;
        let max = flat.max(0)?.to_scalar::<u32>()? as usize;
        if max >= self.config.vocab_size {
            return Err(LmError::Invalid(format!(
                "token id {max} >= vocabulary size {}",
                self.config.vocab_size
            )));
        }
        if self.embed.dims()[0] == 0 {
            let rows: Vec<u32> = flat.to_vec1()?;
            return Ok(self.lm_head.lookup_rows(&rows)?.reshape((
                b,
                t,
                self.config.hidden_size,
            ))?);
        }
        Ok(param(&self.embed, train).index_select(&flat, 0)?.reshape((
            b,
            t,
            self.config.hidden_size,
        ))?)
    }

    /// The final RMSNorm and output head over a residual stream `[batch, tokens, hidden]` (inference).
    pub fn head(&self, x: &Tensor) -> Result<Tensor> {
        self.head_grad(x, Grad::Off)
    }

    /// The final RMSNorm and output head with differentiation mode `g`.
    pub fn head_grad(&self, x: &Tensor, g: Grad) -> Result<Tensor> {
        let x = rms_norm(x, &self.norm, self.config.rms_norm_eps, g)?;
        self.lm_head.forward_grad(&x, g)
    }

    /// Feeds `tokens` (one sequence) through the model, extending `cache`, and returns the logits of the last
    /// position: the step function of incremental decoding.
    pub fn next_logits(&self, tokens: &[u32], cache: &mut Cache) -> Result<Vec<f32>> {
        let ids = Tensor::new(tokens, &self.device)?.unsqueeze(0)?;
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
    pub fn forward(&self, input: Input<'_>, opts: Forward<'_>) -> Result<Tensor> {
        if opts.no_head {
            return Err(LmError::Invalid(
                "forward returns logits: use forward_output with no_head".into(),
            ));
        }
        self.forward_output(input, opts)?
            .logits
            .ok_or_else(|| LmError::Invalid("no logits".into()))
    }

    /// Runs the model and returns the logits and the residual streams asked for in [`Forward::residuals`].
    pub fn forward_output(&self, input: Input<'_>, mut opts: Forward<'_>) -> Result<ForwardOutput> {
        if let Input::Ids(ids) = input {
            if self.fast_decode_applies(ids, &opts) {
                let id = ids.flatten_all()?.to_dtype(DType::U32)?.to_vec1::<u32>()?[0];
                let cache = opts.cache.take().expect("checked by fast_decode_applies");
                let logits = self.decode_token(id, cache)?;
                let vocab = logits.len();
                return Ok(ForwardOutput {
                    logits: Some(Tensor::from_vec(logits, (1, 1, vocab), &self.device)?),
                    residuals: Vec::new(),
                });
            }
        }
        let c = &self.config;
        let g = opts.grad();
        let x = match input {
            Input::Ids(ids) => self.embed_tokens(ids, g.base())?,
            Input::Embeds(e) => {
                if e.rank() != 3 || e.dim(D::Minus1)? != c.hidden_size || e.dim(1)? == 0 {
                    return Err(LmError::Invalid(format!(
                        "input embeddings must be [batch, tokens > 0, {}], got {:?}",
                        c.hidden_size,
                        e.dims()
                    )));
                }
                e.clone()
            }
        };
        if let Some(ls) = opts.residuals {
            if let Some(&l) = ls.iter().find(|&&l| l >= self.blocks.len()) {
                return Err(LmError::Invalid(format!(
                    "residual after layer {l} asked for, the model has {} layers",
                    self.blocks.len()
                )));
            }
        }
        let t = x.dim(1)?;
        if let Some(from) = opts.logits_from {
            if from >= t && !opts.last_only {
                return Err(LmError::Invalid(format!(
                    "logits_from {from} >= {t} tokens"
                )));
            }
        }
        let head_from = if opts.no_head {
            None
        } else if opts.last_only {
            Some(t - 1)
        } else {
            Some(opts.logits_from.unwrap_or(0))
        };
        let chunk = self.prefill_chunk;
        if g.on() || chunk == 0 || t <= chunk {
            return self.run_step(&x, &mut opts, head_from);
        }
        // Chunked prefill: feed `chunk` tokens at a time through a KV cache (the caller's, or a local one).
        let mut local = Cache::new(self.blocks.len());
        let mut outer_cache = opts.cache.take();
        let past0 = outer_cache.as_ref().map(|c| c.len).unwrap_or(0);
        let (positions, key_mask) = (opts.positions, opts.key_mask);
        let mut logits = Vec::new();
        let mut residuals: Vec<Vec<Tensor>> =
            vec![Vec::new(); opts.residuals.map_or(0, |r| r.len())];
        let mut s = 0;
        while s < t {
            let n = chunk.min(t - s);
            let pos = positions.map(|p| p.narrow(1, s, n)).transpose()?;
            let km = key_mask
                .map(|k| {
                    if k.dims2()? != (x.dim(0)?, past0 + t) {
                        return Err(LmError::Invalid(format!(
                            "key mask {:?} does not match batch {} × {} keys",
                            k.dims(),
                            x.dim(0)?,
                            past0 + t
                        )));
                    }
                    Ok(k.narrow(1, 0, past0 + s + n)?)
                })
                .transpose()?;
            let cache: &mut Cache = match outer_cache.as_deref_mut() {
                Some(c) => c,
                None => &mut local,
            };
            let mut sub = Forward {
                cache: Some(cache),
                prefix: opts.prefix,
                hook: opts.hook.as_deref_mut().map(|h| h as &mut dyn LayerHook),
                generated: opts.generated,
                key_mask: km.as_ref(),
                positions: pos.as_ref(),
                weights: opts.weights,
                residuals: opts.residuals,
                ..Default::default()
            };
            let hf = head_from.and_then(|f| (f < s + n).then(|| f.saturating_sub(s)));
            let out = self.run_step(&x.narrow(1, s, n)?, &mut sub, hf)?;
            if let Some(l) = out.logits {
                logits.push(l);
            }
            for (slot, (_, r)) in residuals.iter_mut().zip(out.residuals) {
                slot.push(r);
            }
            s += n;
        }
        let logits = match logits.len() {
            0 => None,
            1 => logits.pop(),
            _ => Some(Tensor::cat(&logits, 1)?),
        };
        let residuals = opts
            .residuals
            .unwrap_or(&[])
            .iter()
            .zip(residuals)
            .map(|(&l, parts)| Ok((l, Tensor::cat(&parts, 1)?)))
            .collect::<Result<_>>()?;
        Ok(ForwardOutput { logits, residuals })
    }

    /// One forward step over all blocks (no chunking); logits for rows `head_from..` when asked.
    fn run_step(
        &self,
        x: &Tensor,
        opts: &mut Forward<'_>,
        head_from: Option<usize>,
    ) -> Result<ForwardOutput> {
        let (b, t, _) = x.dims3()?;
        let ctx = self.step_context(b, t, opts)?;
        if let Some(h) = opts.hook.as_deref_mut() {
            h.begin_step(&ctx.info);
        }
        let mut x = x.clone();
        let mut residuals = Vec::new();
        for li in 0..self.blocks.len() {
            let prefix = opts.prefix.map(|p| &p[li]);
            let hook = opts.hook.as_deref_mut().map(|h| h as &mut dyn LayerHook);
            x = self.block_forward(li, &x, &ctx, opts.cache.as_deref_mut(), prefix, hook)?;
            if let Some(ls) = opts.residuals {
                for &l in ls.iter().filter(|&&l| l == li) {
                    residuals.push((l, x.clone()));
                }
            }
        }
        if let Some(cache) = opts.cache.as_deref_mut() {
            cache.advance(t);
        }
        if let Some(h) = opts.hook.as_deref_mut() {
            h.end_step(&ctx.info);
        }
        if let Some(ls) = opts.residuals {
            residuals.sort_by_key(|(l, _)| ls.iter().position(|x| x == l));
        }
        let logits = match head_from {
            Some(f) if f < t => Some(self.head_grad(&x.narrow(1, f, t - f)?, ctx.grad)?),
            _ => None,
        };
        Ok(ForwardOutput { logits, residuals })
    }

    /// Builds the shared context of one forward step of `batch × tokens` new tokens: reads the cache length, the
    /// prefix, positions, key mask, differentiation and weight modes and the generated-token index from `opts`.
    pub fn step_context(
        &self,
        batch: usize,
        tokens: usize,
        opts: &Forward<'_>,
    ) -> Result<StepContext> {
        let c = &self.config;
        let (b, t) = (batch, tokens);
        if b == 0 || t == 0 {
            return Err(LmError::Invalid("a forward step needs tokens".into()));
        }
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
        let limit = self.max_positions();
        if past.saturating_add(t) > limit {
            return Err(LmError::Invalid(format!(
                "sequence of {} tokens is too long (at most {limit})",
                past.saturating_add(t)
            )));
        }
        let positions: Vec<u32> = match opts.positions {
            None => (0..b)
                .flat_map(|_| (past..past + t).map(|p| p as u32))
                .collect(),
            Some(p) => {
                if p.dims() != [b, t] {
                    return Err(LmError::Invalid(format!(
                        "positions {:?} must be [{b}, {t}]",
                        p.dims()
                    )));
                }
                p.flatten_all()?.to_dtype(DType::U32)?.to_vec1()?
            }
        };
        let max_pos = positions.iter().copied().max().unwrap_or(0) as usize;
        if max_pos >= limit {
            return Err(LmError::Invalid(format!(
                "position {max_pos} is beyond the model's {limit} positions"
            )));
        }
        let (cos_t, sin_t) = self.rope_tables(max_pos + 1)?;
        let (cos, sin) = match opts.positions {
            None => (cos_t.narrow(0, past, t)?, sin_t.narrow(0, past, t)?),
            Some(_) => {
                let half = c.head_dim() / 2;
                let idx = Tensor::from_slice(&positions, b * t, &self.device)?;
                (
                    cos_t.index_select(&idx, 0)?.reshape((b, t, half))?,
                    sin_t.index_select(&idx, 0)?.reshape((b, t, half))?,
                )
            }
        };
        let (key_add, keep_rows) = match opts.key_mask {
            None => (None, None),
            Some(km) => {
                let (kb, ks) = km.dims2()?;
                if kb != b || ks != past + t {
                    return Err(LmError::Invalid(format!(
                        "key mask {:?} does not match batch {b} × {} keys",
                        km.dims(),
                        past + t
                    )));
                }
                let km = km.to_dtype(DType::F32)?.to_device(&self.device)?;
                // 1 → 0, 0 → -1e9 (finite, so fully masked rows stay finite).
                let add = km.affine(1e9, -1e9)?;
                let add = if plen > 0 {
                    Tensor::cat(
                        &[&Tensor::zeros((b, plen), DType::F32, &self.device)?, &add],
                        1,
                    )?
                } else {
                    add
                };
                let keep: Vec<f32> = km.narrow(1, past, t)?.flatten_all()?.to_vec1()?;
                let idx: Vec<u32> = keep
                    .iter()
                    .enumerate()
                    .filter(|(_, &k)| k != 0.0)
                    .map(|(i, _)| i as u32)
                    .collect();
                let rows = if idx.len() == b * t {
                    None
                } else {
                    let n = idx.len();
                    Some(Tensor::from_vec(idx, n, &self.device)?)
                };
                (Some(add), rows)
            }
        };
        let mut ctx = StepContext {
            info: StepInfo {
                batch: b,
                tokens: t,
                past,
                positions,
                generated: opts.generated,
            },
            prefix_len: plen,
            grad: opts.grad(),
            weights: opts.weights,
            cos,
            sin,
            key_add,
            keep_rows,
            full_mask: None,
        };
        let s = plen + past + t;
        if ctx.grad.on() || self.attention_block == 0 || s <= self.attention_block {
            let rep = c.num_attention_heads / c.num_key_value_heads;
            ctx.full_mask = self.mask_block(&ctx, rep, 0, s)?;
        }
        Ok(ctx)
    }

    /// Runs block `layer` on the residual stream `x` `[batch, tokens, hidden]` of the step `ctx`: attention (reading
    /// and writing `cache`'s slot for this layer, after the `prefix`), then the FFN unless the hook vetoes it.
    /// The cache's length is not advanced: call [`Cache::advance`] once the step's last block has run.
    pub fn block_forward(
        &self,
        layer: usize,
        x: &Tensor,
        ctx: &StepContext,
        cache: Option<&mut Cache>,
        prefix: Option<&(Tensor, Tensor)>,
        mut hook: Option<&mut dyn LayerHook>,
    ) -> Result<Tensor> {
        let c = &self.config;
        let blk = self.blocks.get(layer).ok_or_else(|| {
            LmError::Invalid(format!(
                "layer {layer} out of range (the model has {})",
                self.blocks.len()
            ))
        })?;
        let (b, t) = (ctx.info.batch, ctx.info.tokens);
        if x.dims() != [b, t, c.hidden_size] {
            return Err(LmError::Invalid(format!(
                "block input {:?} must be [{b}, {t}, {}]",
                x.dims(),
                c.hidden_size
            )));
        }
        let g = ctx.grad;
        let lc = LinearCtx {
            grad: g,
            weights: ctx.weights,
            keep_rows: ctx.keep_rows.as_ref(),
        };
        if let Some(h) = hook.as_deref_mut() {
            h.before_attention(&LayerSite {
                layer,
                step: &ctx.info,
                residual: x,
            })?;
        }
        let hn = rms_norm(x, &blk.attn_norm, c.rms_norm_eps, g)?;
        let slot = match cache {
            Some(cache) => {
                if cache.kv.len() != self.blocks.len() {
                    return Err(LmError::Invalid(format!(
                        "cache has {} layers, model has {}",
                        cache.kv.len(),
                        self.blocks.len()
                    )));
                }
                Some(cache.tensor_slot(layer, &self.device)?)
            }
            None => None,
        };
        let a = self.attention(blk, &hn, ctx, slot, prefix, &lc)?;
        let x = (x + a)?;
        let decision = match hook.as_deref_mut() {
            Some(h) => h.after_attention(&LayerSite {
                layer,
                step: &ctx.info,
                residual: &x,
            })?,
            None => FfnDecision::Run,
        };
        let keep: Option<Vec<f32>> = match &decision {
            FfnDecision::Run => Some(vec![]),
            FfnDecision::Skip => None,
            FfnDecision::PerToken(v) => {
                if v.len() != b * t {
                    return Err(LmError::Invalid(format!(
                        "per-token FFN decision has {} entries for {} tokens",
                        v.len(),
                        b * t
                    )));
                }
                if v.iter().all(|&k| k) {
                    Some(vec![])
                } else if v.iter().all(|&k| !k) {
                    None
                } else {
                    Some(v.iter().map(|&k| f32::from(u8::from(k))).collect())
                }
            }
        };
        let x = match keep {
            None => x,
            Some(rows) => {
                let h = rms_norm(&x, &blk.ffn_norm, c.rms_norm_eps, g)?;
                let gate = blk.gate.forward_with(&h, &lc)?;
                let up = blk.up.forward_with(&h, &lc)?;
                let act = (candle_nn::ops::silu(&gate)? * up)?;
                let d = blk.down.forward_with(&act, &lc)?;
                if rows.is_empty() {
                    (x + d)?
                } else {
                    let m = Tensor::from_vec(rows, (b, t, 1), &self.device)?.to_dtype(d.dtype())?;
                    (x + d.broadcast_mul(&m)?)?
                }
            }
        };
        if let Some(h) = hook {
            h.after_ffn(
                &LayerSite {
                    layer,
                    step: &ctx.info,
                    residual: &x,
                },
                &decision,
            )?;
        }
        Ok(x)
    }

    /// The RoPE tables covering at least `need` positions (grown lazily, in powers of two, never beyond
    /// [`Llama::max_positions`]).
    pub(crate) fn rope_tables(&self, need: usize) -> Result<(Tensor, Tensor)> {
        {
            let r = self.rope.read().unwrap_or_else(|e| e.into_inner());
            if r.len >= need {
                if let (Some(c), Some(s)) = (&r.cos, &r.sin) {
                    return Ok((c.clone(), s.clone()));
                }
            }
        }
        let mut r = self.rope.write().unwrap_or_else(|e| e.into_inner());
        if r.len < need || r.cos.is_none() {
            let n = need
                .next_power_of_two()
                .max(64)
                .min(self.max_positions())
                .max(need);
            let hd = self.config.head_dim();
            let inv: Vec<f32> = (0..hd / 2)
                .map(|i| 1.0 / (self.config.rope_theta as f32).powf(2.0 * i as f32 / hd as f32))
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
            r.cos = Some(Tensor::from_vec(cos, (n, hd / 2), &self.device)?);
            r.sin = Some(Tensor::from_vec(sin, (n, hd / 2), &self.device)?);
            r.len = n;
        }
        Ok((r.cos.clone().expect("built"), r.sin.clone().expect("built")))
    }

    /// Additive mask for the keys `k0..k0 + kn` of the step, laid out `[batch or 1, 1, rep·t, kn]` to match the
    /// stacked grouped-query heads: causal over the sequence, prefix always visible, padded keys hidden.
    /// `None` when nothing in the block is masked.
    fn mask_block(
        &self,
        ctx: &StepContext,
        rep: usize,
        k0: usize,
        kn: usize,
    ) -> Result<Option<Tensor>> {
        let t = ctx.info.tokens;
        let first_new = ctx.prefix_len + ctx.info.past;
        // Query i sees keys j <= first_new + i.
        let causal = if k0 + kn > first_new + 1 {
            let mut m = vec![0f32; t * kn];
            let mut any = false;
            for i in 0..t {
                for j in k0..k0 + kn {
                    if j > first_new + i {
                        m[i * kn + (j - k0)] = MASKED;
                        any = true;
                    }
                }
            }
            if any {
                let m = if rep > 1 { m.repeat(rep) } else { m };
                Some(Tensor::from_vec(m, (1, 1, rep * t, kn), &self.device)?)
            } else {
                None
            }
        } else {
            None
        };
        let pad = match &ctx.key_add {
            None => None,
            Some(add) => {
                let b = add.dim(0)?;
                Some(add.narrow(1, k0, kn)?.reshape((b, 1, 1, kn))?)
            }
        };
        Ok(match (causal, pad) {
            (None, None) => None,
            (Some(c), None) => Some(c),
            (None, Some(p)) => Some(p),
            (Some(c), Some(p)) => Some(c.broadcast_add(&p)?),
        })
    }

    fn attention(
        &self,
        blk: &Block,
        h: &Tensor,
        ctx: &StepContext,
        cache: Option<&mut Option<(Tensor, Tensor)>>,
        prefix: Option<&(Tensor, Tensor)>,
        lc: &LinearCtx<'_>,
    ) -> Result<Tensor> {
        let train = ctx.grad.on();
        let c = &self.config;
        let (b, t, _) = h.dims3()?;
        let (nh, nkv, hd) = (c.num_attention_heads, c.num_key_value_heads, c.head_dim());
        let q = blk
            .q
            .forward_with(h, lc)?
            .reshape((b, t, nh, hd))?
            .transpose(1, 2)?;
        let k = blk
            .k
            .forward_with(h, lc)?
            .reshape((b, t, nkv, hd))?
            .transpose(1, 2)?;
        let v = blk
            .v
            .forward_with(h, lc)?
            .reshape((b, t, nkv, hd))?
            .transpose(1, 2)?
            .contiguous()?;
        let q = rope(&q, &ctx.cos, &ctx.sin, train)?;
        let k = rope(&k, &ctx.cos, &ctx.sin, train)?;
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
        let s = k.dim(2)?;
        if s != ctx.prefix_len + ctx.info.past + t {
            return Err(LmError::Invalid(format!(
                "attention sees {s} keys, the step expects {}",
                ctx.prefix_len + ctx.info.past + t
            )));
        }
        // Grouped-query attention without copying K/V per query head: the `rep` query heads that share a KV head
        // are stacked along the query axis, [b, nh, t, hd] → [b, nkv, rep·t, hd] (the mask is laid out to match).
        let rep = nh / nkv;
        let q = q.reshape((b, nkv, rep * t, hd))?;
        let scale = 1.0 / (hd as f64).sqrt();
        let kb = self.attention_block;
        let y = if train || kb == 0 || s <= kb {
            let mut att = q.matmul(&k.t()?)?.affine(scale, 0.0)?;
            if let Some(m) = &ctx.full_mask {
                att = att.broadcast_add(m)?;
            }
            let att = if train {
                candle_nn::ops::softmax(&att, D::Minus1)?
            } else {
                candle_nn::ops::softmax_last_dim(&att)?
            };
            att.matmul(&v)?
        } else {
            // Online softmax over key blocks (Milakov & Gimelshein 2018): running max m, normaliser l and
            // weighted sum acc, rescaled whenever the max grows. Memory is rep·t × kb per head, not rep·t × s.
            let mut state: Option<(Tensor, Tensor, Tensor)> = None;
            let mut k0 = 0;
            while k0 < s {
                let kn = kb.min(s - k0);
                let kblk = k.narrow(2, k0, kn)?.contiguous()?;
                let vblk = v.narrow(2, k0, kn)?.contiguous()?;
                let mut sc = q.matmul(&kblk.t()?)?.affine(scale, 0.0)?;
                if let Some(m) = self.mask_block(ctx, rep, k0, kn)? {
                    sc = sc.broadcast_add(&m)?;
                }
                let bm = sc.max_keepdim(D::Minus1)?;
                state = Some(match state {
                    None => {
                        let p = sc.broadcast_sub(&bm)?.exp()?;
                        let l = p.sum_keepdim(D::Minus1)?;
                        (bm, l, p.matmul(&vblk)?)
                    }
                    Some((m, l, acc)) => {
                        let mn = m.maximum(&bm)?;
                        let p = sc.broadcast_sub(&mn)?.exp()?;
                        let corr = (m - &mn)?.exp()?;
                        let l = ((l * &corr)? + p.sum_keepdim(D::Minus1)?)?;
                        let acc = (acc.broadcast_mul(&corr)? + p.matmul(&vblk)?)?;
                        (mn, l, acc)
                    }
                });
                k0 += kn;
            }
            let (_, l, acc) = state.expect("at least one key block");
            acc.broadcast_div(&l)?
        };
        let y = y
            .reshape((b, nh, t, hd))?
            .transpose(1, 2)?
            .reshape((b, t, nh * hd))?;
        blk.o.forward_with(&y, lc)
    }
}
