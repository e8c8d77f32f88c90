//! The Wolf Within: covert injection of malice into (M)LLM societies via an (M)LLM operative.
//!
//! Paper: "The Wolf Within: Covert Injection of Malice into MLLM Societies via an MLLM
//! Operative", arXiv 2402.14859 (CVPR 2024 ReGenAI workshop); the reference code is
//! ChengshuaiZhao0/The-Wolf-Within (`llava_two_llms_new.py`), read to understand the chain, not copied.
//!
//! The reference chain (§3 of the paper, Fig. 2): an image `X` is given to the *wolf* with a benign prompt; the
//! wolf's logits pass through a hard Gumbel-softmax (straight-through) into one-hot tokens, which are multiplied by
//! the *sheep*'s embedding matrix and appended to the sheep's prompt ("... Is there anything else you would like
//! to add?"); the sheep's cross-entropy to the target text is minimised by signed-gradient steps on `X`:
//! `X ← clamp(X − lr·sign(∇_X L))`.
//!
//! Here, on text-only runtime models ([`Chain`]):
//! - The optimised input is a continuous block of `K` embeddings placed at the start of the wolf's user turn (the
//!   stand-in for LLaVA's image-patch embeddings), behind the [`OperativeInput`] trait so an image through a
//!   vision encoder can replace it later. It is clamped to the range of the wolf's embedding table (the
//!   reference clamps pixels to the normalised image range).
//! - **Reply positions.** The wolf's reply is `R` fixed slots. Its tokens are the wolf's own greedy decoding from
//!   the current injection (special tokens such as EOS masked out, so the message always has `R` visible tokens),
//!   re-decoded every `redecode_every` steps. The wolf is run once, teacher-forced on those tokens, and its logits
//!   at the `R` positions predicting them are what enters the Gumbel-softmax. Teacher forcing keeps the whole
//!   chain one differentiable forward pass per model (no sampling loop to differentiate through); re-decoding keeps
//!   the slots close to what the wolf would really say. The reference takes the logits of the wolf's generation
//!   call directly; with teacher forcing on the greedy tokens the logits are the same as greedy generation's.
//! - **Sheep layout.** The sheep reads the wolf's message as a neighbour's message inside its user turn: `benign
//!   prompt`, the `R` soft tokens, then the bridge "Is there anything else you would like to add?", then the
//!   assistant header and the teacher-forced target. The reference places the soft tokens after its
//!   `### Assistant:` tag and also shows the sheep the image; in a society the sheep sees only the message, which
//!   is the harder, more realistic setting, so the sheep here never sees the injected block.
//! - Wolf and sheep must share a vocabulary (the soft one-hot indexes the sheep's table); they may be two copies
//!   or the same weights.
use crate::error::{invalid, Result};
use candle_core::{DType, Device, Tensor, Var, D};
use rand::Rng as _;
use tessera_lm::{Cache, ChatMessage, Forward, Input, Llama, SamplingParams, Tokenizer};

/// The marker replaced by a slot (injected block, message) when a chat prompt is split.
const SLOT: &str = "\u{2063}\u{2063}SLOT\u{2063}\u{2063}";

/// The wolf's benign prompt (the reference's `Can you describe this image?`).
pub const WOLF_PROMPT: &str = "Can you describe this please?";
/// The sheep's benign prompt before the wolf's message.
pub const SHEEP_PROMPT: &str = "Here is a message from a fellow agent:";
/// The bridge after the wolf's message (the reference's `Is there anything else you would like to add?`).
pub const BRIDGE: &str = "Is there anything else you would like to add?";

/// Token ids of a rendered chat prompt around one slot.
#[derive(Debug, Clone, PartialEq)]
pub struct SlotPrompt {
    /// Ids before the slot.
    pub pre: Vec<u32>,
    /// Ids after the slot, through the assistant header.
    pub post: Vec<u32>,
}

impl SlotPrompt {
    /// Renders `[system?, user]` with the model's chat template (generation prompt on) and splits it at `{slot}`
    /// in `user`.
    pub fn chat(tok: &Tokenizer, system: Option<&str>, user: &str) -> Result<Self> {
        let Some((a, b)) = user.split_once("{slot}") else {
            return invalid(format!("prompt `{user}` has no {{slot}}"));
        };
        let mut msgs = Vec::new();
        if let Some(s) = system {
            msgs.push(ChatMessage::new("system", s));
        }
        msgs.push(ChatMessage::new("user", format!("{a}{SLOT}{b}")));
        let text = tok.template.render(&msgs, true);
        let Some((pre, post)) = text.split_once(SLOT) else {
            return invalid("the chat template dropped the slot marker");
        };
        Ok(SlotPrompt {
            pre: tok.encode_plain(pre)?,
            post: tok.encode_plain(post)?,
        })
    }

    /// The user text of this layout with `msg` in the slot (what a chat backend is sent).
    pub fn user_text(user: &str, msg: &str) -> String {
        user.replacen("{slot}", msg, 1)
    }
}

/// The wolf's user turn: the injected block, then the benign prompt.
pub fn wolf_user() -> String {
    format!("{{slot}}{WOLF_PROMPT}")
}

/// The sheep's user turn: benign prompt, the wolf's message, the bridge.
pub fn sheep_user() -> String {
    format!("{SHEEP_PROMPT}\n{{slot}}\n{BRIDGE}")
}

/// The dense token-embedding table `[vocab, hidden]` of a model (detached; the head's weight when tied and the
/// embedding is stored only there).
pub fn embedding_matrix(m: &Llama) -> Result<Tensor> {
    if m.embed.dims()[0] > 0 {
        Ok(m.embed.as_tensor().detach())
    } else {
        Ok(m.lm_head.dense_weight()?.detach())
    }
}

/// Ids that never go into a message: EOS/BOS and `<|...|>` control tokens.
pub fn special_ids(tok: &Tokenizer, vocab: usize) -> Vec<u32> {
    (0..vocab as u32)
        .filter(|&i| {
            tok.eos_ids.contains(&i)
                || tok.bos_id == Some(i)
                || tok
                    .id_to_token(i)
                    .is_none_or(|s| s.is_empty() || (s.starts_with("<|") && s.ends_with("|>")))
        })
        .collect()
}

/// The optimised input of the operative: anything that yields the embeddings placed in the wolf's prompt and
/// takes a signed-gradient step. [`EmbedBlock`] is the text-only stand-in; an image through a VLM's vision encoder
/// implements the same trait.
pub trait OperativeInput {
    /// The embeddings `[1, k, hidden]` placed in the wolf's prompt, tracked by autograd back to [`Self::var`].
    fn embeds(&self) -> Result<Tensor>;
    /// The optimised parameter.
    fn var(&self) -> &Var;
    /// `x ← clamp(x − lr·sign(grad))`.
    fn signed_step(&self, grad: &Tensor, lr: f64) -> Result<()>;
    /// The parameter's values, flattened (checkpoints).
    fn values(&self) -> Result<Vec<f32>>;
    /// Restores values written by [`Self::values`].
    fn set_values(&self, v: &[f32]) -> Result<()>;
}

/// A continuous block of `k` input embeddings (the stand-in for image-patch embeddings).
pub struct EmbedBlock {
    var: Var,
    lo: f32,
    hi: f32,
}

impl EmbedBlock {
    /// A block initialised to the embeddings of `ids`, clamped to the range `[lo, hi]` of `table`'s entries.
    pub fn from_ids(table: &Tensor, ids: &[u32]) -> Result<Self> {
        if ids.is_empty() {
            return invalid("the injected block needs at least one embedding");
        }
        let idx = Tensor::new(ids, table.device())?;
        let init = table.index_select(&idx, 0)?.unsqueeze(0)?.contiguous()?;
        let lo = table.flatten_all()?.min(0)?.to_scalar::<f32>()?;
        let hi = table.flatten_all()?.max(0)?.to_scalar::<f32>()?;
        Ok(EmbedBlock {
            var: Var::from_tensor(&init)?,
            lo,
            hi,
        })
    }

    /// The clamp range.
    pub fn range(&self) -> (f32, f32) {
        (self.lo, self.hi)
    }
}

impl OperativeInput for EmbedBlock {
    fn embeds(&self) -> Result<Tensor> {
        Ok(self.var.as_tensor().clone())
    }
    fn var(&self) -> &Var {
        &self.var
    }
    fn signed_step(&self, grad: &Tensor, lr: f64) -> Result<()> {
        let g: Vec<f32> = grad.flatten_all()?.to_vec1()?;
        let x: Vec<f32> = self.var.as_tensor().flatten_all()?.to_vec1()?;
        let lr = lr as f32;
        let y: Vec<f32> = x
            .iter()
            .zip(&g)
            .map(|(&x, &g)| {
                let s = if g > 0.0 {
                    1.0
                } else if g < 0.0 {
                    -1.0
                } else {
                    0.0
                };
                (x - lr * s).clamp(self.lo, self.hi)
            })
            .collect();
        self.set_values(&y)
    }
    fn values(&self) -> Result<Vec<f32>> {
        Ok(self.var.as_tensor().flatten_all()?.to_vec1()?)
    }
    fn set_values(&self, v: &[f32]) -> Result<()> {
        let shape = self.var.as_tensor().shape().clone();
        if v.len() != shape.elem_count() {
            return invalid(format!(
                "{} values for an injected block of shape {shape:?}",
                v.len()
            ));
        }
        let t = Tensor::from_vec(v.to_vec(), shape, self.var.device())?;
        self.var.set(&t)?;
        Ok(())
    }
}

/// How the wolf's logits become tokens for the sheep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GumbelOpts {
    /// Softmax temperature.
    pub tau: f64,
    /// Hard (straight-through one-hot, the paper's `hard=True`) or soft (plain Gumbel-softmax; differentiable
    /// everywhere, used by the finite-difference test).
    pub hard: bool,
}

impl Default for GumbelOpts {
    fn default() -> Self {
        GumbelOpts {
            tau: 1.0,
            hard: true,
        }
    }
}

/// The wolf → sheep chain of one attack: prompts, target and the constant embeddings around the slots.
pub struct Chain<'a> {
    /// The wolf (receives the injected input).
    pub wolf: &'a Llama,
    /// The sheep (reads the wolf's message).
    pub sheep: &'a Llama,
    /// The wolf's prompt around the injected block.
    pub wolf_prompt: SlotPrompt,
    /// The sheep's prompt around the wolf's message.
    pub sheep_prompt: SlotPrompt,
    /// Target token ids.
    pub target: Vec<u32>,
    /// Number of reply slots `R`.
    pub reply_len: usize,
    /// Gumbel-softmax options.
    pub gumbel: GumbelOpts,
    sheep_table: Tensor,
    wolf_mask: Tensor,
    wolf_mask_vec: Vec<bool>,
    wolf_pre: Option<Tensor>,
    wolf_post: Option<Tensor>,
    sheep_pre: Option<Tensor>,
    sheep_post: Option<Tensor>,
    sheep_target: Option<Tensor>,
}

fn embed_opt(m: &Llama, ids: &[u32]) -> Result<Option<Tensor>> {
    if ids.is_empty() {
        return Ok(None);
    }
    let t = Tensor::new(ids, m.device())?.unsqueeze(0)?;
    Ok(Some(m.embed_tokens(&t, false)?.detach()))
}

fn cat(parts: &[Option<&Tensor>]) -> Result<Tensor> {
    let v: Vec<&Tensor> = parts.iter().flatten().copied().collect();
    Ok(Tensor::cat(&v, 1)?)
}

fn argmax(row: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in row.iter().enumerate() {
        if x > row[best] {
            best = i;
        }
    }
    best as u32
}

impl<'a> Chain<'a> {
    /// Builds the chain for `target` with the default prompts ([`wolf_user`], [`sheep_user`]).
    pub fn new(
        wolf: &'a Llama,
        sheep: &'a Llama,
        target: &str,
        reply_len: usize,
        gumbel: GumbelOpts,
    ) -> Result<Self> {
        let (wv, sv) = (wolf.config.vocab_size, sheep.config.vocab_size);
        if wv != sv {
            return invalid(format!(
                "wolf and sheep must share a vocabulary ({wv} vs {sv} tokens)"
            ));
        }
        if reply_len == 0 {
            return invalid("the wolf's reply needs at least one slot");
        }
        if !(gumbel.tau > 0.0 && gumbel.tau.is_finite()) {
            return invalid(format!("Gumbel temperature {} must be > 0", gumbel.tau));
        }
        let wt = wolf.tokenizer()?;
        let st = sheep.tokenizer()?;
        let wolf_prompt = SlotPrompt::chat(wt, None, &wolf_user())?;
        let sheep_prompt = SlotPrompt::chat(st, None, &sheep_user())?;
        let target_ids = st.encode_plain(target)?;
        if target_ids.is_empty() {
            return invalid("the target text is empty");
        }
        let special = special_ids(wt, wv);
        let mut mask_vec = vec![false; wv];
        for &i in &special {
            mask_vec[i as usize] = true;
        }
        let mask: Vec<f32> = mask_vec
            .iter()
            .map(|&m| if m { -1e4 } else { 0.0 })
            .collect();
        let t = target_ids.len();
        Ok(Chain {
            wolf,
            sheep,
            sheep_table: embedding_matrix(sheep)?,
            wolf_mask: Tensor::from_vec(mask, wv, wolf.device())?,
            wolf_mask_vec: mask_vec,
            wolf_pre: embed_opt(wolf, &wolf_prompt.pre)?,
            wolf_post: embed_opt(wolf, &wolf_prompt.post)?,
            sheep_pre: embed_opt(sheep, &sheep_prompt.pre)?,
            sheep_post: embed_opt(sheep, &sheep_prompt.post)?,
            sheep_target: embed_opt(sheep, &target_ids[..t - 1])?,
            wolf_prompt,
            sheep_prompt,
            target: target_ids,
            reply_len,
            gumbel,
        })
    }

    /// The sheep's embedding table `[vocab, hidden]`.
    pub fn sheep_table(&self) -> &Tensor {
        &self.sheep_table
    }

    /// Whether token `id` is masked out of messages.
    pub fn is_special(&self, id: u32) -> bool {
        self.wolf_mask_vec.get(id as usize).copied().unwrap_or(true)
    }

    /// The wolf's greedy reply (`R` tokens, special tokens masked) to its prompt with `inj` `[1, k, hidden]`.
    pub fn wolf_reply(&self, inj: &Tensor) -> Result<Vec<u32>> {
        let x = cat(&[
            self.wolf_pre.as_ref(),
            Some(&inj.detach()),
            self.wolf_post.as_ref(),
        ])?;
        let mut cache = Cache::new(self.wolf.config.num_hidden_layers);
        let mut logits: Vec<f32> = self
            .wolf
            .forward(
                Input::Embeds(&x),
                Forward {
                    cache: Some(&mut cache),
                    last_only: true,
                    ..Default::default()
                },
            )?
            .flatten_all()?
            .to_vec1()?;
        let mut out = Vec::with_capacity(self.reply_len);
        loop {
            for (l, &m) in logits.iter_mut().zip(&self.wolf_mask_vec) {
                if m {
                    *l = f32::NEG_INFINITY;
                }
            }
            let id = argmax(&logits);
            out.push(id);
            if out.len() == self.reply_len {
                return Ok(out);
            }
            logits = self.wolf.next_logits(&[id], &mut cache)?;
        }
    }

    /// The wolf's logits `[1, R, vocab]` (special tokens masked) at the positions predicting `reply`, teacher
    /// forced, differentiable w.r.t. `inj`.
    pub fn wolf_logits(&self, inj: &Tensor, reply: &[u32]) -> Result<Tensor> {
        if reply.len() != self.reply_len {
            return invalid(format!(
                "reply has {} tokens, expected {}",
                reply.len(),
                self.reply_len
            ));
        }
        let forced = embed_opt(self.wolf, &reply[..reply.len() - 1])?;
        let x = cat(&[
            self.wolf_pre.as_ref(),
            Some(inj),
            self.wolf_post.as_ref(),
            forced.as_ref(),
        ])?;
        let from = self.wolf_prompt.pre.len() + inj.dim(1)? + self.wolf_prompt.post.len() - 1;
        let logits = self.wolf.forward(
            Input::Embeds(&x),
            Forward {
                train: true,
                freeze_base: true,
                logits_from: Some(from),
                ..Default::default()
            },
        )?;
        Ok(logits.broadcast_add(&self.wolf_mask)?)
    }

    /// Gumbel-softmax of `logits` `[1, R, vocab]` with noise from `rng`: the (straight-through) one-hot rows
    /// `[R, vocab]` and the sampled ids.
    pub fn gumbel(
        &self,
        logits: &Tensor,
        rng: &mut tessera_core::rng::Rng,
    ) -> Result<(Tensor, Vec<u32>)> {
        let l = logits.squeeze(0)?;
        let (r, v) = l.dims2()?;
        let noise: Vec<f32> = (0..r * v)
            .map(|_| {
                let u: f32 = rng.gen::<f32>().clamp(1e-10, 1.0 - 1e-7);
                -(-u.ln()).ln()
            })
            .collect();
        let g = Tensor::from_vec(noise, (r, v), l.device())?;
        let soft = candle_nn::ops::softmax(&((&l + g)? / self.gumbel.tau)?, D::Minus1)?;
        let rows: Vec<Vec<f32>> = soft.to_vec2()?;
        let ids: Vec<u32> = rows.iter().map(|row| argmax(row)).collect();
        if !self.gumbel.hard {
            return Ok((soft, ids));
        }
        let mut hard = vec![0f32; r * v];
        for (i, &id) in ids.iter().enumerate() {
            hard[i * v + id as usize] = 1.0;
        }
        let hard = Tensor::from_vec(hard, (r, v), l.device())?;
        let st = (soft.sub(&soft.detach())? + hard)?;
        Ok((st, ids))
    }

    /// The sheep's mean cross-entropy to the target (teacher forced) when its message slot holds `msg`
    /// `[1, m, hidden]` (differentiable w.r.t. `msg`).
    pub fn sheep_loss_embeds(&self, msg: &Tensor) -> Result<Tensor> {
        let x = cat(&[
            self.sheep_pre.as_ref(),
            Some(msg),
            self.sheep_post.as_ref(),
            self.sheep_target.as_ref(),
        ])?;
        let from = self.sheep_prompt.pre.len() + msg.dim(1)? + self.sheep_prompt.post.len() - 1;
        let logits = self.sheep.forward(
            Input::Embeds(&x),
            Forward {
                train: true,
                freeze_base: true,
                logits_from: Some(from),
                ..Default::default()
            },
        )?;
        let y = Tensor::new(self.target.as_slice(), self.sheep.device())?;
        Ok(candle_nn::loss::cross_entropy(&logits.squeeze(0)?, &y)?)
    }

    /// The whole chain: injected embeddings → wolf logits at the reply slots → Gumbel-softmax → × the sheep's
    /// table → the sheep's target cross-entropy. Returns the loss (a scalar tensor) and the sampled ids.
    pub fn loss(
        &self,
        inj: &Tensor,
        reply: &[u32],
        rng: &mut tessera_core::rng::Rng,
    ) -> Result<(Tensor, Vec<u32>)> {
        let logits = self.wolf_logits(inj, reply)?;
        let (onehot, ids) = self.gumbel(&logits, rng)?;
        let msg = onehot.matmul(&self.sheep_table)?.unsqueeze(0)?;
        Ok((self.sheep_loss_embeds(&msg)?, ids))
    }

    /// The sheep's ids with `msg` in its message slot.
    pub fn sheep_ids(&self, msg: &[u32]) -> Vec<u32> {
        let p = &self.sheep_prompt;
        [p.pre.as_slice(), msg, p.post.as_slice()].concat()
    }

    /// The sheep's target cross-entropy (no graph) for each message of `msgs` (all of one length), one batch.
    pub fn sheep_losses(&self, msgs: &[Vec<u32>]) -> Result<Vec<f64>> {
        let Some(first) = msgs.first() else {
            return Ok(vec![]);
        };
        if msgs.iter().any(|m| m.len() != first.len() || m.is_empty()) {
            return invalid("batched messages must be non-empty and of one length");
        }
        let t = self.target.len();
        let rows: Vec<u32> = msgs
            .iter()
            .flat_map(|m| {
                let mut ids = self.sheep_ids(m);
                ids.extend_from_slice(&self.target[..t - 1]);
                ids
            })
            .collect();
        let b = msgs.len();
        let len = rows.len() / b;
        let x = Tensor::from_vec(rows, (b, len), self.sheep.device())?;
        let from = len - t;
        let logits = self.sheep.forward(
            Input::Ids(&x),
            Forward {
                logits_from: Some(from),
                ..Default::default()
            },
        )?;
        let lp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
        let y = Tensor::new(self.target.as_slice(), self.sheep.device())?
            .unsqueeze(0)?
            .repeat((b, 1))?
            .unsqueeze(2)?;
        let picked = lp.gather(&y, 2)?.squeeze(2)?.to_dtype(DType::F32)?;
        let rows: Vec<Vec<f32>> = picked.to_vec2()?;
        Ok(rows
            .iter()
            .map(|r| -(r.iter().map(|&x| x as f64).sum::<f64>()) / t as f64)
            .collect())
    }

    /// The sheep's greedy reply (at most `max_tokens`) with `msg` in its message slot.
    pub fn sheep_reply(&self, msg: &[u32], max_tokens: usize) -> Result<String> {
        let p = SamplingParams {
            max_tokens,
            ..Default::default()
        };
        Ok(tessera_lm::generate(self.sheep, &self.sheep_ids(msg), &p, &mut |_| true)?.text)
    }

    /// The device of the models.
    pub fn device(&self) -> &Device {
        self.wolf.device()
    }
}
