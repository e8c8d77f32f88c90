//! Tuning schemes: which tensors a run trains.
//!
//! - **Full**: every base parameter (weights, norms, the tied embedding once).
//! - **LoRA**: adapters on the query and value projections of every layer, rank 8, α 16 (B starts at zero).
//! - **Prefix**: 5 key/value vectors per layer, always attended to (the runtime's [`Forward::prefix`]). They are
//!   initialised from real activations: the keys and values the model itself computes for the first 5 tokens of
//!   a training prompt (MeZO / ZO-Bench's "init by real activations", no reparameterisation).
//! - **Prompt**: 10 virtual tokens prepended in embedding space (the runtime's [`Input::Embeds`]), initialised
//!   from the embeddings of 10 real vocabulary tokens drawn by seed from ids 1000–4999 (ZO-Bench draws real
//!   tokens too).
use crate::error::{Result, ZoError};
use candle_core::{DType, Device, Tensor, Var};
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use tessera_lm::perturb::{self, Param};
use tessera_lm::{Cache, Forward, Grad, Input, Llama, LoraSpec, ParamSet};

/// Prefix tokens per layer.
pub const PREFIX_TOKENS: usize = 5;
/// Virtual prompt tokens.
pub const PROMPT_TOKENS: usize = 10;
/// LoRA rank and alpha (q and v projections).
pub const LORA_RANK: usize = 8;
/// LoRA alpha.
pub const LORA_ALPHA: f64 = 16.0;

/// A tuning scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scheme {
    /// Full fine-tuning.
    Full,
    /// LoRA on q and v.
    Lora,
    /// Prefix tuning.
    Prefix,
    /// Prompt tuning.
    Prompt,
}

impl Scheme {
    /// Every scheme.
    pub const ALL: [Scheme; 4] = [Scheme::Full, Scheme::Lora, Scheme::Prefix, Scheme::Prompt];
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scheme::Full => "full",
            Scheme::Lora => "lora",
            Scheme::Prefix => "prefix",
            Scheme::Prompt => "prompt",
        })
    }
}

impl FromStr for Scheme {
    type Err = ZoError;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "full" | "ft" => Ok(Scheme::Full),
            "lora" => Ok(Scheme::Lora),
            "prefix" => Ok(Scheme::Prefix),
            "prompt" => Ok(Scheme::Prompt),
            o => Err(ZoError::invalid(format!(
                "unknown scheme `{o}` (expected full, lora, prefix or prompt)"
            ))),
        }
    }
}

/// The kind of forward pass.
#[derive(Debug, Clone, Copy)]
pub enum Pass<'a> {
    /// Inference (no graph): what zeroth-order methods evaluate.
    Infer,
    /// Differentiable in the scheme's trainable tensors.
    Train,
    /// Hybrid ZO/FO: differentiable in the base weights of these layers only.
    Hybrid(&'a [usize]),
}

/// The trainable state a scheme adds to the model.
pub enum Tunable {
    /// Base parameters.
    Full,
    /// Adapters attached to the model.
    Lora,
    /// Per-layer prefix `(key, value)`, each `[1, kv_heads, PREFIX_TOKENS, head_dim]`.
    Prefix(Vec<(Var, Var)>),
    /// Virtual token embeddings `[PROMPT_TOKENS, hidden]`.
    Prompt(Var),
}

impl Tunable {
    /// Prepares `scheme` on `model`: attaches adapters (seeded by `seed`) or builds the prefix / prompt from
    /// `init_tokens` (real tokens of a training prompt, for the prefix) and `seed` (the prompt's vocabulary draw).
    pub fn prepare(
        model: &mut Llama,
        scheme: Scheme,
        seed: u64,
        init_tokens: &[u32],
    ) -> Result<Self> {
        match scheme {
            Scheme::Full => Ok(Tunable::Full),
            Scheme::Lora => {
                let mut spec = LoraSpec::new("q,v", LORA_RANK)?;
                spec.alpha = LORA_ALPHA;
                spec.seed = seed;
                model.add_lora(&spec)?;
                Ok(Tunable::Lora)
            }
            Scheme::Prefix => {
                if init_tokens.len() < PREFIX_TOKENS {
                    return Err(ZoError::invalid(format!(
                        "prefix initialisation needs {PREFIX_TOKENS} real tokens, got {}",
                        init_tokens.len()
                    )));
                }
                let ids =
                    Tensor::new(&init_tokens[..PREFIX_TOKENS], model.device())?.unsqueeze(0)?;
                let mut cache = Cache::new(model.blocks.len());
                model.forward(
                    Input::Ids(&ids),
                    Forward {
                        cache: Some(&mut cache),
                        last_only: true,
                        ..Default::default()
                    },
                )?;
                let kv = cache
                    .layer_kv()
                    .ok_or_else(|| ZoError::invalid("prefix initialisation left a layer empty"))?;
                let vars = kv
                    .into_iter()
                    .map(|(k, v)| {
                        Ok((Var::from_tensor(&k.copy()?)?, Var::from_tensor(&v.copy()?)?))
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(Tunable::Prefix(vars))
            }
            Scheme::Prompt => {
                let vocab = model.config.vocab_size;
                let (lo, hi) = (1000.min(vocab - 1), 5000.min(vocab));
                let mut rng = tessera_core::rng::derived(seed, "zo/prompt-init");
                let ids: Vec<u32> = (0..PROMPT_TOKENS)
                    .map(|_| rng.gen_range(lo..hi.max(lo + 1)) as u32)
                    .collect();
                let ids = Tensor::new(ids.as_slice(), model.device())?.unsqueeze(0)?;
                let e = model.embed_ids(&ids)?.squeeze(0)?.copy()?;
                Ok(Tunable::Prompt(Var::from_tensor(&e)?))
            }
        }
    }

    /// The scheme.
    pub fn scheme(&self) -> Scheme {
        match self {
            Tunable::Full => Scheme::Full,
            Tunable::Lora => Scheme::Lora,
            Tunable::Prefix(_) => Scheme::Prefix,
            Tunable::Prompt(_) => Scheme::Prompt,
        }
    }

    /// The trainable tensors, in a fixed order, as perturbable parameters (decay only on rank ≥ 2 model
    /// weights and adapters; never on prefixes and prompts).
    pub fn params(&self, model: &Llama) -> Vec<Param> {
        let plain = |name: String, var: &Var| Param {
            name,
            var: var.clone(),
            mask: None,
            decay: false,
        };
        match self {
            Tunable::Full => perturb::params(model, ParamSet::Base),
            Tunable::Lora => perturb::params(model, ParamSet::Adapters),
            Tunable::Prefix(kv) => kv
                .iter()
                .enumerate()
                .flat_map(|(i, (k, v))| {
                    [
                        plain(format!("prefix.{i}.key"), k),
                        plain(format!("prefix.{i}.value"), v),
                    ]
                })
                .collect(),
            Tunable::Prompt(p) => vec![plain("prompt.embeddings".into(), p)],
        }
    }

    /// The gradient mode of a first-order pass over this scheme.
    pub fn train_grad(&self) -> Grad {
        match self {
            Tunable::Full => Grad::All,
            _ => Grad::Adapters,
        }
    }

    /// Logits `[rows, tail, vocab]` of the last `tail` positions of `rows` for a pass of kind `pass`.
    pub fn logits(
        &self,
        model: &Llama,
        rows: &Rows,
        tail: usize,
        pass: Pass<'_>,
    ) -> Result<Tensor> {
        let grad = match pass {
            Pass::Infer => Grad::Off,
            Pass::Train => self.train_grad(),
            Pass::Hybrid(layers) => {
                if !matches!(self, Tunable::Full) {
                    return Err(ZoError::invalid(
                        "hybrid ZO/FO runs with the full scheme only",
                    ));
                }
                return crate::hybrid::logits(model, rows, tail, layers);
            }
        };
        let (b, t) = rows.ids.dims2()?;
        if tail == 0 || tail > t {
            return Err(ZoError::invalid(format!(
                "cannot score the last {tail} of {t} positions"
            )));
        }
        let track = |v: &Var| {
            if grad.on() {
                v.as_tensor().clone()
            } else {
                v.as_tensor().detach()
            }
        };
        let base = Forward {
            train: grad.on(),
            freeze_base: grad == Grad::Adapters,
            key_mask: Some(&rows.key_mask),
            positions: Some(&rows.positions),
            logits_from: Some(t - tail),
            ..Default::default()
        };
        Ok(match self {
            Tunable::Full | Tunable::Lora => model.forward(Input::Ids(&rows.ids), base)?,
            Tunable::Prefix(kv) => {
                let prefix = kv
                    .iter()
                    .map(|(k, v)| {
                        let (_, h, p, d) = k.dims4()?;
                        Ok((
                            track(k).broadcast_as((b, h, p, d))?.contiguous()?,
                            track(v).broadcast_as((b, h, p, d))?.contiguous()?,
                        ))
                    })
                    .collect::<Result<Vec<_>>>()?;
                model.forward(
                    Input::Ids(&rows.ids),
                    Forward {
                        prefix: Some(&prefix),
                        ..base
                    },
                )?
            }
            Tunable::Prompt(p) => {
                let (n, h) = p.dims2()?;
                let virt = track(p).unsqueeze(0)?.broadcast_as((b, n, h))?;
                let emb = model.embed_tokens(&rows.ids, false)?;
                let x = Tensor::cat(&[&virt, &emb], 1)?;
                let dev = model.device();
                let km = Tensor::cat(
                    &[&Tensor::ones((b, n), DType::F32, dev)?, &rows.key_mask],
                    1,
                )?;
                let vpos: Vec<u32> = (0..b).flat_map(|_| 0..n as u32).collect();
                let vpos = Tensor::from_vec(vpos, (b, n), dev)?;
                let shifted: Vec<u32> = rows.raw_positions.iter().map(|&q| q + n as u32).collect();
                let shifted = Tensor::from_vec(shifted, (b, t), dev)?;
                let pos = Tensor::cat(&[&vpos, &shifted], 1)?;
                model.forward(
                    Input::Embeds(&x),
                    Forward {
                        key_mask: Some(&km),
                        positions: Some(&pos),
                        logits_from: Some(n + t - tail),
                        ..base
                    },
                )?
            }
        })
    }
}

/// Left-padded rows: every sequence ends at the last column, so the scored tokens sit in the last columns.
#[derive(Debug, Clone)]
pub struct Rows {
    /// Token ids `[rows, tokens]` (u32; padding 0).
    pub ids: Tensor,
    /// Key mask `[rows, tokens]` (1 real, 0 padding).
    pub key_mask: Tensor,
    /// Positions `[rows, tokens]` (u32; real tokens count from 0, padding 0).
    pub positions: Tensor,
    /// The positions as numbers, row-major.
    pub raw_positions: Vec<u32>,
}

impl Rows {
    /// Left-pads `seqs` (each non-empty).
    pub fn new(seqs: &[Vec<u32>], dev: &Device) -> Result<Self> {
        let t = seqs.iter().map(Vec::len).max().unwrap_or(0);
        if seqs.is_empty() || seqs.iter().any(Vec::is_empty) {
            return Err(ZoError::invalid("every row needs at least one token"));
        }
        let b = seqs.len();
        let (mut ids, mut km, mut pos) = (vec![0u32; b * t], vec![0f32; b * t], vec![0u32; b * t]);
        for (i, s) in seqs.iter().enumerate() {
            let pad = t - s.len();
            for (j, &id) in s.iter().enumerate() {
                ids[i * t + pad + j] = id;
                km[i * t + pad + j] = 1.0;
                pos[i * t + pad + j] = j as u32;
            }
        }
        Ok(Rows {
            ids: Tensor::from_vec(ids, (b, t), dev)?,
            key_mask: Tensor::from_vec(km, (b, t), dev)?,
            positions: Tensor::from_vec(pos.clone(), (b, t), dev)?,
            raw_positions: pos,
        })
    }
}
