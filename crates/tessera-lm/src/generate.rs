//! Text generation with a KV cache: greedy, temperature, top-k / top-p (nucleus) sampling, stop strings, a streaming
//! callback that can cancel, and batches of prompts (left-padded, with per-row positions and a key padding mask).
use crate::error::{LmError, Result};
use crate::hook::{LayerHook, SequenceInfo};
use crate::model::{Cache, Forward, Input, Llama};
use candle_core::Tensor;
use rand::Rng as _;
use serde::{Deserialize, Serialize};

/// Sampling parameters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SamplingParams {
    /// Most new tokens.
    pub max_tokens: usize,
    /// 0 means greedy.
    pub temperature: f64,
    /// Keep the k most likely tokens (0 = off).
    pub top_k: usize,
    /// Keep the smallest set whose probability reaches p (1 = off).
    pub top_p: f64,
    /// Generation stops before any of these strings (they are not returned).
    pub stop: Vec<String>,
    /// Seed of the sampling stream.
    pub seed: u64,
    /// Also record the this-many most likely tokens (and their log-probabilities) at every step, at most
    /// [`MAX_TOP_LOGPROBS`] (0 = off).
    #[serde(default)]
    pub top_logprobs: usize,
}

/// Largest [`SamplingParams::top_logprobs`] accepted (the OpenAI API's limit).
pub const MAX_TOP_LOGPROBS: usize = 20;

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            max_tokens: 128,
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            stop: vec![],
            seed: 0,
            top_logprobs: 0,
        }
    }
}

impl SamplingParams {
    /// Checks ranges.
    pub fn validate(&self) -> Result<()> {
        if !(0.0..=100.0).contains(&self.temperature) || !self.temperature.is_finite() {
            return Err(LmError::Invalid(format!(
                "temperature {} out of range [0, 100]",
                self.temperature
            )));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(LmError::Invalid(format!(
                "top_p {} out of range (0, 1]",
                self.top_p
            )));
        }
        if self.top_logprobs > MAX_TOP_LOGPROBS {
            return Err(LmError::Invalid(format!(
                "top_logprobs {} out of range [0, {MAX_TOP_LOGPROBS}]",
                self.top_logprobs
            )));
        }
        Ok(())
    }
}

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// End-of-sequence token or stop string.
    Stop,
    /// `max_tokens` reached.
    Length,
    /// The callback asked to stop (e.g. the client went away).
    Cancelled,
}

/// One finished generation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Generation {
    /// Generated text (stop string excluded).
    pub text: String,
    /// Generated token ids (EOS excluded).
    pub tokens: Vec<u32>,
    /// Natural-log probability of each generated token under the model (before temperature).
    pub logprobs: Vec<f32>,
    /// Per generated token, the [`SamplingParams::top_logprobs`] most likely tokens at that step with their
    /// log-probabilities, most likely first (empty when not asked for).
    #[serde(default)]
    pub top_logprobs: Vec<Vec<(u32, f32)>>,
    /// Prompt length in tokens.
    pub prompt_tokens: usize,
    /// Why it stopped.
    pub finish_reason: FinishReason,
    /// The layer hook's [`summary`](crate::hook::LayerHook::summary) at the end (when a hook ran and has one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook: Option<serde_json::Value>,
}

/// Picks the next token from one row of logits. Returns `(token, log-probability under the raw distribution)`.
pub fn sample(logits: &[f32], p: &SamplingParams, rng: &mut tessera_core::rng::Rng) -> (u32, f32) {
    let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let lse = max + logits.iter().map(|&l| (l - max).exp()).sum::<f32>().ln();
    let argmax = logits
        .iter()
        .enumerate()
        .fold(0, |b, (i, &l)| if l > logits[b] { i } else { b });
    if p.temperature <= 0.0 {
        return (argmax as u32, logits[argmax] - lse);
    }
    let mut idx: Vec<usize> = (0..logits.len()).collect();
    idx.sort_unstable_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    if p.top_k > 0 {
        idx.truncate(p.top_k);
    }
    let t = p.temperature as f32;
    let top = logits[idx[0]];
    let mut probs: Vec<f32> = idx.iter().map(|&i| ((logits[i] - top) / t).exp()).collect();
    let z: f32 = probs.iter().sum();
    probs.iter_mut().for_each(|x| *x /= z);
    if p.top_p < 1.0 {
        let mut acc = 0.0;
        let mut keep = probs.len();
        for (i, &q) in probs.iter().enumerate() {
            acc += q;
            if acc as f64 >= p.top_p {
                keep = i + 1;
                break;
            }
        }
        probs.truncate(keep);
        let z: f32 = probs.iter().sum();
        probs.iter_mut().for_each(|x| *x /= z);
    }
    let u: f32 = rng.gen();
    let mut acc = 0.0;
    for (k, &q) in probs.iter().enumerate() {
        acc += q;
        if u < acc {
            return (idx[k] as u32, logits[idx[k]] - lse);
        }
    }
    let k = probs.len() - 1;
    (idx[k] as u32, logits[idx[k]] - lse)
}

/// The `k` most likely tokens of one row of logits with their natural-log probabilities, most likely first
/// (ties broken by the lower token id).
pub fn top_alternatives(logits: &[f32], k: usize) -> Vec<(u32, f32)> {
    let k = k.min(logits.len());
    if k == 0 {
        return Vec::new();
    }
    let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let lse = max + logits.iter().map(|&l| (l - max).exp()).sum::<f32>().ln();
    let order = |a: &usize, b: &usize| logits[*b].total_cmp(&logits[*a]).then(a.cmp(b));
    let mut idx: Vec<usize> = (0..logits.len()).collect();
    if k < idx.len() {
        idx.select_nth_unstable_by(k - 1, order);
        idx.truncate(k);
    }
    idx.sort_unstable_by(order);
    idx.into_iter()
        .map(|i| (i as u32, logits[i] - lse))
        .collect()
}

/// Earliest byte offset at which any stop string occurs in `text`.
fn find_stop(text: &str, stops: &[String]) -> Option<usize> {
    stops
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s.as_str()))
        .min()
}

/// Length of the longest suffix of `text` that is a proper prefix of some stop string (held back while streaming).
fn partial_stop(text: &str, stops: &[String]) -> usize {
    let mut best = 0;
    for s in stops {
        for l in (1..s.len()).rev() {
            if l <= text.len()
                && text.is_char_boundary(text.len() - l)
                && s.is_char_boundary(l)
                && text.ends_with(&s[..l])
            {
                best = best.max(l);
                break;
            }
        }
    }
    best
}

/// Generates from one prompt. `on_text` receives each new piece of text as soon as it is final (never a part of a
/// stop string); returning `false` cancels.
pub fn generate(
    model: &Llama,
    prompt: &[u32],
    p: &SamplingParams,
    on_text: &mut dyn FnMut(&str) -> bool,
) -> Result<Generation> {
    generate_with(model, prompt, p, None, on_text)
}

/// One cached single-sequence step: last-position logits, with the hook told which generated token it feeds.
fn single_step(
    model: &Llama,
    tokens: &[u32],
    cache: &mut Cache,
    hook: Option<&mut dyn LayerHook>,
    generated: Option<usize>,
) -> Result<Vec<f32>> {
    let ids = Tensor::new(tokens, model.device())?.unsqueeze(0)?;
    let logits = model.forward(
        Input::Ids(&ids),
        Forward {
            cache: Some(cache),
            last_only: true,
            hook: hook.map(|h| h as &mut dyn LayerHook),
            generated,
            ..Default::default()
        },
    )?;
    Ok(logits.flatten_all()?.to_vec1()?)
}

/// [`generate`] with a [`LayerHook`] called inside every block of every step (the prompt, then one step per
/// generated token, [`StepInfo::generated`](crate::hook::StepInfo::generated) counting from 0).
pub fn generate_with(
    model: &Llama,
    prompt: &[u32],
    p: &SamplingParams,
    mut hook: Option<&mut dyn LayerHook>,
    on_text: &mut dyn FnMut(&str) -> bool,
) -> Result<Generation> {
    let mut g = generate_inner(
        model,
        prompt,
        p,
        hook.as_deref_mut().map(|h| h as _),
        on_text,
    )?;
    g.hook = hook.and_then(|h| h.summary());
    Ok(g)
}

fn generate_inner(
    model: &Llama,
    prompt: &[u32],
    p: &SamplingParams,
    mut hook: Option<&mut dyn LayerHook>,
    on_text: &mut dyn FnMut(&str) -> bool,
) -> Result<Generation> {
    p.validate()?;
    if prompt.is_empty() {
        return Err(LmError::Invalid("empty prompt".into()));
    }
    let tok = model.tokenizer()?;
    let mut rng = tessera_core::rng::seeded(p.seed);
    let mut cache = Cache::new(model.config.num_hidden_layers);
    if let Some(h) = hook.as_deref_mut() {
        h.begin_sequence(&SequenceInfo::new(&[prompt], p.max_tokens));
    }
    let mut row = single_step(
        model,
        prompt,
        &mut cache,
        hook.as_deref_mut().map(|h| h as _),
        None,
    )?;
    let (mut tokens, mut logprobs, mut top_logprobs) = (Vec::new(), Vec::new(), Vec::new());
    let mut emitted = 0usize;
    let mut finish = FinishReason::Length;
    let mut text = String::new();
    for _ in 0..p.max_tokens {
        let (next, lp) = sample(&row, p, &mut rng);
        if tok.eos_ids.contains(&next) {
            finish = FinishReason::Stop;
            break;
        }
        tokens.push(next);
        logprobs.push(lp);
        if p.top_logprobs > 0 {
            top_logprobs.push(top_alternatives(&row, p.top_logprobs));
        }
        text = tok.decode(&tokens, false)?;
        if let Some(cut) = find_stop(&text, &p.stop) {
            text.truncate(cut);
            if cut > emitted && !on_text(&text[emitted..]) {
                return Ok(Generation {
                    text,
                    tokens,
                    logprobs,
                    top_logprobs,
                    prompt_tokens: prompt.len(),
                    finish_reason: FinishReason::Cancelled,
                    hook: None,
                });
            }
            emitted = text.len();
            finish = FinishReason::Stop;
            break;
        }
        // Hold back an incomplete UTF-8 tail (decoded as U+FFFD) and any possible start of a stop string.
        let stable = text.trim_end_matches('\u{FFFD}').len()
            - partial_stop(text.trim_end_matches('\u{FFFD}'), &p.stop);
        if stable > emitted && text.is_char_boundary(stable) {
            if !on_text(&text[emitted..stable]) {
                text.truncate(stable);
                return Ok(Generation {
                    text,
                    tokens,
                    logprobs,
                    top_logprobs,
                    prompt_tokens: prompt.len(),
                    finish_reason: FinishReason::Cancelled,
                    hook: None,
                });
            }
            emitted = stable;
        }
        if tokens.len() == p.max_tokens {
            break;
        }
        row = single_step(
            model,
            &[next],
            &mut cache,
            hook.as_deref_mut().map(|h| h as _),
            Some(tokens.len() - 1),
        )?;
    }
    if text.len() > emitted {
        on_text(&text[emitted..]);
    }
    Ok(Generation {
        text,
        tokens,
        logprobs,
        top_logprobs,
        prompt_tokens: prompt.len(),
        finish_reason: finish,
        hook: None,
    })
}

/// One cached forward of a left-padded batch: last-position logits `[b, 1, vocab]`.
fn batch_step(
    model: &Llama,
    ids: &Tensor,
    cache: &mut Cache,
    key_mask: &Tensor,
    positions: &Tensor,
    hook: Option<&mut dyn LayerHook>,
    generated: Option<usize>,
) -> Result<Tensor> {
    model.forward(
        Input::Ids(ids),
        Forward {
            cache: Some(cache),
            last_only: true,
            key_mask: Some(key_mask),
            positions: Some(positions),
            hook: hook.map(|h| h as &mut dyn LayerHook),
            generated,
            ..Default::default()
        },
    )
}

/// Generates for several prompts at once (left-padded batch, one forward per step for all rows).
pub fn generate_batch(
    model: &Llama,
    prompts: &[Vec<u32>],
    p: &SamplingParams,
) -> Result<Vec<Generation>> {
    generate_batch_with(model, prompts, p, None)
}

/// [`generate_batch`] with a [`LayerHook`] (one hook for the whole batch; a decoding step feeds one token per
/// row, and the hook may decide per row with [`FfnDecision::PerToken`](crate::hook::FfnDecision::PerToken)).
/// The hook's summary is stored in every row's generation.
pub fn generate_batch_with(
    model: &Llama,
    prompts: &[Vec<u32>],
    p: &SamplingParams,
    mut hook: Option<&mut dyn LayerHook>,
) -> Result<Vec<Generation>> {
    let mut gens = generate_batch_inner(model, prompts, p, hook.as_deref_mut().map(|h| h as _))?;
    if let Some(s) = hook.and_then(|h| h.summary()) {
        for g in &mut gens {
            g.hook = Some(s.clone());
        }
    }
    Ok(gens)
}

fn generate_batch_inner(
    model: &Llama,
    prompts: &[Vec<u32>],
    p: &SamplingParams,
    mut hook: Option<&mut dyn LayerHook>,
) -> Result<Vec<Generation>> {
    p.validate()?;
    if prompts.is_empty() {
        return Ok(vec![]);
    }
    if prompts.iter().any(|q| q.is_empty()) {
        return Err(LmError::Invalid("empty prompt in batch".into()));
    }
    let tok = model.tokenizer()?;
    let b = prompts.len();
    let len = prompts.iter().map(Vec::len).max().expect("non-empty");
    let pad_id = tok.eos_ids.first().copied().unwrap_or(0);
    let (mut ids, mut keep, mut pos) = (Vec::new(), Vec::new(), Vec::new());
    for q in prompts {
        let pad = len - q.len();
        ids.extend(std::iter::repeat_n(pad_id, pad).chain(q.iter().copied()));
        keep.extend(std::iter::repeat_n(0u8, pad).chain(std::iter::repeat_n(1u8, q.len())));
        pos.extend((0..len).map(|i| i.saturating_sub(pad) as u32));
    }
    let dev = model.device().clone();
    if let Some(h) = hook.as_deref_mut() {
        h.begin_sequence(&SequenceInfo::new(prompts, p.max_tokens));
    }
    let mut key_mask = Tensor::from_vec(keep, (b, len), &dev)?;
    let mut cache = Cache::new(model.config.num_hidden_layers);
    let ids_t = Tensor::from_vec(ids, (b, len), &dev)?;
    let pos_t = Tensor::from_vec(pos, (b, len), &dev)?;
    let mut logits = batch_step(
        model,
        &ids_t,
        &mut cache,
        &key_mask,
        &pos_t,
        hook.as_deref_mut().map(|h| h as _),
        None,
    )?;
    let mut rngs: Vec<_> = (0..b)
        .map(|i| tessera_core::rng::derived(p.seed, &format!("row/{i}")))
        .collect();
    let mut next_pos: Vec<u32> = prompts.iter().map(|q| q.len() as u32).collect();
    let mut out: Vec<Generation> = prompts
        .iter()
        .map(|q| Generation {
            text: String::new(),
            tokens: vec![],
            logprobs: vec![],
            top_logprobs: vec![],
            prompt_tokens: q.len(),
            finish_reason: FinishReason::Length,
            hook: None,
        })
        .collect();
    let mut done = vec![false; b];
    for step_index in 0..p.max_tokens {
        let rows: Vec<Vec<f32>> = logits.squeeze(1)?.to_vec2()?;
        let mut step = Vec::with_capacity(b);
        for i in 0..b {
            if done[i] {
                step.push(pad_id);
                continue;
            }
            let (next, lp) = sample(&rows[i], p, &mut rngs[i]);
            step.push(next);
            if tok.eos_ids.contains(&next) {
                done[i] = true;
                out[i].finish_reason = FinishReason::Stop;
                continue;
            }
            out[i].tokens.push(next);
            out[i].logprobs.push(lp);
            if p.top_logprobs > 0 {
                out[i]
                    .top_logprobs
                    .push(top_alternatives(&rows[i], p.top_logprobs));
            }
            let text = tok.decode(&out[i].tokens, false)?;
            if let Some(cut) = find_stop(&text, &p.stop) {
                out[i].text = text[..cut].to_string();
                done[i] = true;
                out[i].finish_reason = FinishReason::Stop;
            } else {
                out[i].text = text;
            }
        }
        if done.iter().all(|&d| d)
            || out.iter().any(|g| g.tokens.len() >= p.max_tokens)
                && done
                    .iter()
                    .zip(&out)
                    .all(|(&d, g)| d || g.tokens.len() >= p.max_tokens)
        {
            break;
        }
        let step_t = Tensor::from_vec(step, (b, 1), &dev)?;
        let pos_t = Tensor::from_vec(next_pos.clone(), (b, 1), &dev)?;
        next_pos.iter_mut().for_each(|x| *x += 1);
        let new_keep = Tensor::from_vec(
            done.iter().map(|&d| u8::from(!d)).collect::<Vec<u8>>(),
            (b, 1),
            &dev,
        )?;
        key_mask = Tensor::cat(&[&key_mask, &new_keep], 1)?;
        logits = batch_step(
            model,
            &step_t,
            &mut cache,
            &key_mask,
            &pos_t,
            hook.as_deref_mut().map(|h| h as _),
            Some(step_index),
        )?;
    }
    Ok(out)
}
