//! The vision-language model, after LLaVA (Liu, Li, Wu & Lee 2023, "Visual Instruction Tuning",
//! arXiv:2304.08485, §4.1 and Fig. 1; the MLP projector of LLaVA-1.5, arXiv:2310.03744): an image encoder
//! ([`crate::vit`]), a projector ([`crate::projector`]) into the language model's embedding space, and
//! SmolLM2-135M-Instruct reading the projected image tokens through the runtime's input-embeddings path
//! ([`Input::Embeds`]), placed inside the user turn of the chat template:
//!
//! ```text
//! <|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n[image tokens]\n{question}<|im_end|>\n
//! <|im_start|>assistant\n{answer}<|im_end|>
//! ```
//!
//! Training (stage 1, LLaVA §4.2 "pre-training for feature alignment") updates the encoder and projector with
//! the language model frozen ([`Grad::Adapters`] on the language side: its projections pass only the input
//! gradient); the loss is the next-token cross-entropy on the answer tokens (and the closing `<|im_end|>`) only.
//! Stage 2 adds LoRA adapters to the language model.
//!
//! The pruning experiments follow "Rethinking Pruning for Vision-Language Models" (He et al. 2024,
//! arXiv:2404.02424, VLM-Compression): the vision blocks and the language blocks are pruned with separate
//! sparsities ([`crate::prune`]).
use crate::error::{Result, VisionError};
use crate::projector::Projector;
use crate::vit::Vit;
use candle_core::{DType, Device, Tensor, D};
use tessera_lm::model::{Cache, Forward, Input};
use tessera_lm::{ChatMessage, Grad, Llama, WeightMode};

/// Marks where the image tokens go in the rendered chat text (split out before encoding).
const IMAGE_MARK: &str = "<image>";

/// One training / scoring example: the prompt around the image and the answer tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    /// Tokens before the image (system turn and the user header).
    pub pre: Vec<u32>,
    /// Tokens after the image up to and including the assistant header.
    pub post: Vec<u32>,
    /// Answer tokens followed by `<|im_end|>` (the loss targets).
    pub answer: Vec<u32>,
}

/// The VLM: encoder, projector and language model.
pub struct Vlm {
    /// Image encoder.
    pub vit: Vit,
    /// Projector into the language model's hidden size.
    pub projector: Projector,
    /// The language model.
    pub lm: Llama,
    /// System prompt of the chat template.
    pub system: String,
}

/// Options of a VLM forward pass (per tower).
#[derive(Debug, Clone, Copy, Default)]
pub struct TowerModes {
    /// Differentiation of the vision tower (encoder + projector).
    pub vision: Grad,
    /// Weight mode of the vision tower (dense teacher or masked student).
    pub vision_weights: WeightMode,
    /// Differentiation of the language model (`Adapters`: frozen base, gradients to inputs and LoRA).
    pub language: Grad,
    /// Weight mode of the language model.
    pub language_weights: WeightMode,
}

impl Vlm {
    /// Prompt tokens around the image for `question` (the chat template's user turn holds the image).
    pub fn prompt(&self, question: &str) -> Result<(Vec<u32>, Vec<u32>)> {
        let tok = self.lm.tokenizer()?;
        let msgs = [
            ChatMessage::new("system", self.system.clone()),
            ChatMessage::new("user", format!("{IMAGE_MARK}\n{question}")),
        ];
        let text = tok.template.render(&msgs, true);
        let (a, b) = text
            .split_once(IMAGE_MARK)
            .ok_or_else(|| VisionError::Invalid("the chat template dropped the image".into()))?;
        Ok((tok.encode_plain(a)?, tok.encode_plain(b)?))
    }

    /// An example: `question` and `answer` (the answer is followed by the end-of-turn token).
    pub fn example(&self, question: &str, answer: &str) -> Result<Example> {
        let (pre, post) = self.prompt(question)?;
        let tok = self.lm.tokenizer()?;
        let mut ans = tok.encode_plain(answer)?;
        ans.push(*tok.eos_ids.first().ok_or_else(|| {
            VisionError::Invalid("the tokenizer has no end-of-turn token".into())
        })?);
        Ok(Example {
            pre,
            post,
            answer: ans,
        })
    }

    /// Token ids of `answer` as scored (no end-of-turn token).
    pub fn answer_tokens(&self, answer: &str) -> Result<Vec<u32>> {
        Ok(self.lm.tokenizer()?.encode_plain(answer)?)
    }

    /// Projected image tokens `[batch, tokens, hidden]` from flattened patches `[batch, patches, patch_dim]`.
    pub fn image_embeds(&self, patches: &Tensor, g: Grad, wm: WeightMode) -> Result<Tensor> {
        let x = self.vit.forward(patches, g, wm)?;
        self.projector.forward(&x, g, wm)
    }

    fn embed_ids(&self, ids: &[u32]) -> Result<Tensor> {
        let t = Tensor::new(ids, self.lm.device())?.unsqueeze(0)?;
        Ok(self.lm.embed_tokens(&t, false)?)
    }

    /// Mean cross-entropy of the answer tokens of `examples` given their images (`patches`, one per example);
    /// right-padded into one batch, so no key mask is needed (causal attention never looks right).
    pub fn loss(
        &self,
        patches: &Tensor,
        examples: &[Example],
        modes: TowerModes,
    ) -> Result<Tensor> {
        let logits = self.answer_logits(patches, examples, modes)?;
        let (targets, weights) = &logits.1;
        Ok(tessera_lm::loss::weighted_cross_entropy(
            &logits.0, targets, weights,
        )?)
    }

    /// Logits predicting the answer region of each example `[batch, n, vocab]`, with targets and weights
    /// `[batch, n]` (weight 1 on answer tokens, 0 elsewhere). Used by [`Vlm::loss`] and by distillation.
    pub fn answer_logits(
        &self,
        patches: &Tensor,
        examples: &[Example],
        modes: TowerModes,
    ) -> Result<(Tensor, (Tensor, Tensor))> {
        let b = examples.len();
        if b == 0 || patches.dim(0)? != b {
            return Err(VisionError::Invalid(format!(
                "{} images for {b} examples",
                patches.dim(0)?
            )));
        }
        let img = self.image_embeds(patches, modes.vision, modes.vision_weights)?;
        let n_img = img.dim(1)?;
        let hidden = img.dim(2)?;
        let lens: Vec<usize> = examples
            .iter()
            .map(|e| e.pre.len() + n_img + e.post.len() + e.answer.len())
            .collect();
        let l = *lens.iter().max().expect("non-empty");
        // First input position whose next token is an answer token, over the batch.
        let from = examples
            .iter()
            .map(|e| e.pre.len() + n_img + e.post.len() - 1)
            .min()
            .expect("non-empty");
        let mut rows = Vec::with_capacity(b);
        let mut targets = vec![0u32; b * (l - 1 - from)];
        let mut weights = vec![0f32; b * (l - 1 - from)];
        let n = l - 1 - from;
        for (i, e) in examples.iter().enumerate() {
            let mut text_after = e.post.clone();
            text_after.extend(&e.answer[..e.answer.len() - 1]);
            let mut parts = vec![
                self.embed_ids(&e.pre)?,
                img.narrow(0, i, 1)?,
                self.embed_ids(&text_after)?,
            ];
            let pad = l - lens[i];
            if pad > 0 {
                parts.push(Tensor::zeros((1, pad, hidden), DType::F32, img.device())?);
            }
            // Inputs are positions 0..l-1: the final answer token is never an input.
            let row = Tensor::cat(&parts, 1)?;
            rows.push(row);
            let start = e.pre.len() + n_img + e.post.len() - 1; // predicts answer[0]
            for (k, &t) in e.answer.iter().enumerate() {
                let j = start + k - from;
                targets[i * n + j] = t;
                weights[i * n + j] = 1.0;
            }
        }
        let x = Tensor::cat(&rows, 0)?;
        let opts = Forward {
            train: modes.language.on(),
            freeze_base: modes.language != Grad::All,
            logits_from: Some(from),
            weights: modes.language_weights,
            ..Default::default()
        };
        let logits = self.lm.forward(Input::Embeds(&x), opts)?; // [b, l - 1 - from, vocab]
        let dev = logits.device().clone();
        Ok((
            logits,
            (
                Tensor::from_vec(targets, (b, n), &dev)?,
                Tensor::from_vec(weights, (b, n), &dev)?,
            ),
        ))
    }

    /// Log-likelihood of each candidate answer (token ids, no end-of-turn) after the prompt of `question` on
    /// one image (`patches` `[1, patches, patch_dim]`), in inference mode. The prompt runs once through a KV
    /// cache; a candidate of several tokens continues from a copy of the cache.
    pub fn score_candidates(
        &self,
        patches: &Tensor,
        pre: &[u32],
        post: &[u32],
        candidates: &[Vec<u32>],
    ) -> Result<Vec<f64>> {
        let img = self.image_embeds(patches, Grad::Off, WeightMode::Sparse)?;
        let x = Tensor::cat(&[self.embed_ids(pre)?, img, self.embed_ids(post)?], 1)?;
        let mut cache = Cache::new(self.lm.blocks.len());
        let first = self.lm.forward(
            Input::Embeds(&x),
            Forward {
                cache: Some(&mut cache),
                last_only: true,
                ..Default::default()
            },
        )?;
        let first = log_softmax_vec(&first.flatten_all()?)?;
        let mut out = Vec::with_capacity(candidates.len());
        for c in candidates {
            let Some(&c0) = c.first() else {
                return Err(VisionError::Invalid("an empty candidate answer".into()));
            };
            let mut lp = first[c0 as usize] as f64;
            if c.len() > 1 {
                let mut cc = cache.clone();
                let ids = Tensor::new(&c[..c.len() - 1], self.lm.device())?.unsqueeze(0)?;
                let logits = self.lm.forward(
                    Input::Ids(&ids),
                    Forward {
                        cache: Some(&mut cc),
                        ..Default::default()
                    },
                )?;
                let lsm = candle_nn::ops::log_softmax(&logits.squeeze(0)?, D::Minus1)?;
                let rows: Vec<Vec<f32>> = lsm.to_vec2()?;
                for (k, &t) in c[1..].iter().enumerate() {
                    lp += rows[k][t as usize] as f64;
                }
            }
            out.push(lp);
        }
        Ok(out)
    }

    /// Greedy answer to `question` on one image, at most `max_tokens` tokens.
    pub fn generate(&self, patches: &Tensor, question: &str, max_tokens: usize) -> Result<String> {
        let (pre, post) = self.prompt(question)?;
        let tok = self.lm.tokenizer()?;
        let img = self.image_embeds(patches, Grad::Off, WeightMode::Sparse)?;
        let x = Tensor::cat(&[self.embed_ids(&pre)?, img, self.embed_ids(&post)?], 1)?;
        let mut cache = Cache::new(self.lm.blocks.len());
        let mut logits = self.lm.forward(
            Input::Embeds(&x),
            Forward {
                cache: Some(&mut cache),
                last_only: true,
                ..Default::default()
            },
        )?;
        let mut out = Vec::new();
        for _ in 0..max_tokens {
            let next = logits.flatten_all()?.argmax(0)?.to_scalar::<u32>()?;
            if tok.eos_ids.contains(&next) {
                break;
            }
            out.push(next);
            logits = Tensor::new(self.lm.next_logits(&[next], &mut cache)?, &Device::Cpu)?;
        }
        Ok(tok.decode(&out, false)?.trim().to_string())
    }
}

fn log_softmax_vec(t: &Tensor) -> Result<Vec<f32>> {
    Ok(candle_nn::ops::log_softmax(t, D::Minus1)?.to_vec1()?)
}
