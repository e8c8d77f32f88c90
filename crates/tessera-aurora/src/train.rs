//! The training loop shared by CAP and CAT: micro-batches from an [`ExampleSource`], weighted next-token loss,
//! gradient accumulation, global-norm clipping, AdamW on a warm-up + cosine schedule, full parameters or LoRA,
//! crash-safe checkpoints ([`tessera_lm::checkpoint`]) and exact resume, loss per stream and tokens/s on a
//! progress bar; at the end LoRA is merged and the model is written into the output directory so that it loads
//! as a model everywhere (`tessera generate DIR`, `tessera aurora eval DIR`).
use crate::error::{AuroraError, Result};
use candle_core::{Tensor, D};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tessera_lm::checkpoint::{self, RngState, TrainState};
use tessera_lm::loss::{self, LossMode, TokenBatch};
use tessera_lm::optim::{self, Decay, Optimizer, OptimizerConfig, Schedule};
use tessera_lm::{Llama, LoraForm, LoraSpec};

/// One training sequence: token ids, the loss weight of each (0 = not a target), and the stream it is from.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// Stream label (`en`, `code`, `safety`, `benign`, ...).
    pub stream: String,
    /// Token ids.
    pub ids: Vec<u32>,
    /// Loss weight per token (the first token is never a target).
    pub weights: Vec<f32>,
}

/// Where training sequences come from; its position is part of every checkpoint.
pub trait ExampleSource {
    /// The next example.
    fn next_example(&mut self, rng: &mut tessera_core::rng::Rng) -> Result<Example>;
    /// The data position as JSON.
    fn position(&self) -> serde_json::Value;
    /// Restores a position saved by [`ExampleSource::position`].
    fn restore(&mut self, v: &serde_json::Value) -> Result<()>;
}

/// Optimisation settings (part of a run's identity).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSpec {
    /// Optimizer steps in total.
    pub steps: u64,
    /// Sequences per micro-batch.
    pub batch: usize,
    /// Micro-batches accumulated per optimizer step.
    pub grad_accum: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Warm-up steps (linear from 0), then cosine to `lr · min_lr_ratio` at `steps`.
    pub warmup_steps: u64,
    /// Final learning rate as a fraction of the peak.
    pub min_lr_ratio: f64,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    /// Global gradient-norm clip.
    pub clip_norm: f64,
    /// LoRA rank on every projection (None: full-parameter training).
    pub lora: Option<usize>,
    /// Seed of the sampling stream and the adapters' initialisation.
    pub seed: u64,
}

impl TrainSpec {
    /// Checks ranges.
    pub fn validate(&self) -> Result<()> {
        if self.steps == 0 {
            return Err(AuroraError::invalid("--steps must be at least 1"));
        }
        if self.batch == 0 || self.grad_accum == 0 {
            return Err(AuroraError::invalid(
                "--batch and --grad-accum must be at least 1",
            ));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(AuroraError::invalid(format!(
                "--lr must be > 0, got {}",
                self.lr
            )));
        }
        if !(0.0..=1.0).contains(&self.min_lr_ratio) {
            return Err(AuroraError::invalid("--min-lr-ratio must be in [0, 1]"));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(AuroraError::invalid("--weight-decay must be ≥ 0"));
        }
        if !(self.clip_norm.is_finite() && self.clip_norm > 0.0) {
            return Err(AuroraError::invalid("--clip-norm must be > 0"));
        }
        if self.lora == Some(0) {
            return Err(AuroraError::invalid("--lora rank must be at least 1"));
        }
        Ok(())
    }
    /// The learning-rate schedule.
    pub fn schedule(&self) -> Schedule {
        Schedule {
            lr: self.lr,
            warmup_steps: self.warmup_steps,
            decay: Decay::Cosine {
                total_steps: self.steps,
                floor: self.min_lr_ratio,
            },
        }
    }
}

/// Run controls that are not part of a run's identity.
#[derive(Debug, Clone, PartialEq)]
pub struct RunControl {
    /// Output directory (checkpoints under `checkpoints/`, the model files, `result.json`).
    pub out: PathBuf,
    /// Continue the run saved in `out`.
    pub resume: bool,
    /// Checkpoint every this many steps (0: only at the end or pause).
    pub checkpoint_every: u64,
    /// Stop after this many steps in this invocation (checkpointed; `--resume` continues). None: run to the end.
    pub pause_after: Option<u64>,
}

/// What a training loop did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainOutcome {
    /// Optimizer steps completed (over all invocations).
    pub steps_done: u64,
    /// Whether the run reached its last step (else it paused and can be resumed).
    pub finished: bool,
    /// Step this invocation started from (0 for a fresh run).
    pub resumed_from: u64,
    /// Mean training loss of every step.
    pub loss_curve: Vec<f64>,
    /// Mean loss per stream over the first and the last tenth of the run's steps: `[first, last]`.
    pub loss_by_stream: BTreeMap<String, [f64; 2]>,
    /// Target tokens trained on (over all invocations).
    pub tokens_trained: u64,
    /// Training throughput of this invocation (input tokens per second).
    pub tokens_per_second: f64,
    /// Parameters updated.
    pub trainable_parameters: usize,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Progress {
    source: serde_json::Value,
    loss_curve: Vec<f64>,
    /// Per step: stream → (nll sum, targets).
    stream_loss: Vec<BTreeMap<String, (f64, f64)>>,
    tokens_trained: u64,
}

/// Per-row (nll sum, target count) of detached logits.
fn row_nll(logits: &Tensor, batch: &TokenBatch) -> Result<Vec<(f64, f64)>> {
    let (b, t, v) = logits.dims3()?;
    let pred = logits
        .detach()
        .narrow(1, 0, t - 1)?
        .reshape((b * (t - 1), v))?;
    let lp = candle_nn::ops::log_softmax(&pred, D::Minus1)?;
    let tg = batch.targets()?.reshape((b * (t - 1), 1))?;
    let picked: Vec<f32> = lp.gather(&tg, 1)?.reshape((b * (t - 1),))?.to_vec1()?;
    let w: Vec<f32> = batch.target_weights()?.reshape((b * (t - 1),))?.to_vec1()?;
    Ok((0..b)
        .map(|i| {
            let r = i * (t - 1)..(i + 1) * (t - 1);
            let nll: f64 = r.clone().map(|j| -(picked[j] * w[j]) as f64).sum();
            let n: f64 = r.map(|j| w[j] as f64).sum();
            (nll, n)
        })
        .collect())
}

fn ckpt_root(out: &Path) -> PathBuf {
    out.join("checkpoints")
}

/// Attaches LoRA (rank `r`, α = 2r, plain form) to every projection of every layer.
pub fn attach_lora(model: &mut Llama, r: usize, seed: u64) -> Result<()> {
    let mut spec = LoraSpec::new("all", r)?;
    spec.form = LoraForm::Lora;
    spec.seed = seed;
    model.add_lora(&spec)?;
    Ok(())
}

/// Trains `model` on `source` with `spec`; `identity` (any JSON) is stored with every checkpoint and a resume
/// with a different one is refused. `on_step` sees (step, loss, tokens/s) for progress display.
pub fn train(
    model: &mut Llama,
    spec: &TrainSpec,
    identity: &serde_json::Value,
    source: &mut dyn ExampleSource,
    ctl: &RunControl,
    label: &str,
) -> Result<TrainOutcome> {
    spec.validate()?;
    let root = ckpt_root(&ctl.out);
    let existing = checkpoint::latest_dir(&root)?;
    if existing.is_some() && !ctl.resume {
        return Err(AuroraError::Run {
            dir: ctl.out.clone(),
            msg: "already holds a run; pass --resume to continue it, or choose a fresh --out"
                .into(),
        });
    }
    if let Some(r) = spec.lora {
        attach_lora(model, r, spec.seed)?;
    }
    let params = if spec.lora.is_some() {
        optim::lora_params(model)
    } else {
        optim::base_params(model)
    };
    let trainable: usize = params.iter().map(|p| p.var.elem_count()).sum();
    let mut opt = Optimizer::new(OptimizerConfig::adamw(spec.weight_decay), params)?;
    let mut rng = tessera_core::rng::derived(spec.seed, "aurora/train");
    let mut prog = Progress::default();
    let mut step = 0u64;
    if ctl.resume {
        if let Some(st) = checkpoint::resume(&root, identity, model, Some(&mut opt))? {
            let p: Progress =
                serde_json::from_value(st.cursor.clone()).map_err(|e| AuroraError::Run {
                    dir: root.clone(),
                    msg: format!("checkpoint data position is malformed: {e}"),
                })?;
            source.restore(&p.source)?;
            rng = st
                .rng
                .as_ref()
                .ok_or_else(|| AuroraError::Run {
                    dir: root.clone(),
                    msg: "checkpoint has no RNG position".into(),
                })?
                .restore()?;
            step = st.step;
            prog = p;
        }
    }
    let resumed_from = step;
    let schedule = spec.schedule();
    let mode = LossMode::Train {
        freeze_base: spec.lora.is_some(),
    };
    let pad = model.config.eos_token_id.unwrap_or(0);
    let end = match ctl.pause_after {
        Some(n) => step.saturating_add(n).min(spec.steps),
        None => spec.steps,
    };
    let bar = tessera_core::progress::bar(spec.steps, label.to_string());
    bar.set_position(step);
    let t0 = Instant::now();
    let mut tokens_now = 0u64;
    let save = |model: &Llama,
                opt: &Optimizer,
                step: u64,
                prog: &Progress,
                rng: &tessera_core::rng::Rng| {
        let ts = TrainState {
            step,
            rng: Some(RngState::capture(rng)),
            cursor: serde_json::to_value(prog).unwrap_or_default(),
        };
        checkpoint::save(&root, identity, model, Some(opt), &ts, 1)
    };
    while step < end {
        let mut grads: Option<optim::Grads> = None;
        let mut step_loss = 0.0;
        let mut per_stream: BTreeMap<String, (f64, f64)> = BTreeMap::new();
        for _ in 0..spec.grad_accum {
            let ex: Vec<Example> = (0..spec.batch)
                .map(|_| source.next_example(&mut rng))
                .collect::<Result<_>>()?;
            let seqs: Vec<Vec<u32>> = ex.iter().map(|e| e.ids.clone()).collect();
            let ws: Vec<Vec<f32>> = ex.iter().map(|e| e.weights.clone()).collect();
            let batch = TokenBatch::weighted(&seqs, &ws, pad)?;
            let logits = loss::batch_logits(model, &batch, mode)?;
            let (_, t, _) = logits.dims3()?;
            let l = loss::weighted_cross_entropy(
                &logits.narrow(1, 0, t - 1)?,
                &batch.targets()?,
                &batch.target_weights()?,
            )?;
            for (e, (nll, n)) in ex.iter().zip(row_nll(&logits, &batch)?) {
                let s = per_stream.entry(e.stream.clone()).or_insert((0.0, 0.0));
                s.0 += nll;
                s.1 += n;
                prog.tokens_trained += n as u64;
            }
            tokens_now += seqs.iter().map(|s| s.len() as u64).sum::<u64>();
            step_loss += l.to_scalar::<f32>()? as f64 / spec.grad_accum as f64;
            let g = opt.grads(&l)?;
            match grads.as_mut() {
                Some(acc) => acc.accumulate(&g)?,
                None => grads = Some(g),
            }
        }
        let mut g = grads.expect("grad_accum ≥ 1");
        if spec.grad_accum > 1 {
            g.scale(1.0 / spec.grad_accum as f64)?;
        }
        g.clip_global_norm(spec.clip_norm)?;
        opt.step(&g, schedule.lr_at(step))?;
        step += 1;
        if !step_loss.is_finite() {
            return Err(AuroraError::invalid(format!(
                "the training loss became {step_loss} at step {step}; lower --lr"
            )));
        }
        prog.loss_curve.push(step_loss);
        prog.stream_loss.push(per_stream);
        prog.source = source.position();
        let tps = tokens_now as f64 / t0.elapsed().as_secs_f64().max(1e-9);
        let langs: Vec<String> = prog
            .stream_loss
            .last()
            .map(|m| {
                m.iter()
                    .map(|(k, (s, n))| format!("{k} {:.2}", s / n.max(1.0)))
                    .collect()
            })
            .unwrap_or_default();
        bar.set_message(format!(
            "{label} loss {step_loss:.3} {tps:.0} tok/s {}",
            langs.join(" ")
        ));
        bar.set_position(step);
        if ctl.checkpoint_every > 0 && step.is_multiple_of(ctl.checkpoint_every) && step < end {
            save(model, &opt, step, &prog, &rng)?;
        }
    }
    bar.finish_and_clear();
    if step > resumed_from || existing.is_none() {
        save(model, &opt, step, &prog, &rng)?;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let n = prog.stream_loss.len();
    let tenth = (n / 10).max(1);
    let mean_over = |r: std::ops::Range<usize>| {
        let mut m: BTreeMap<String, (f64, f64)> = BTreeMap::new();
        for s in &prog.stream_loss[r] {
            for (k, (a, b)) in s {
                let e = m.entry(k.clone()).or_insert((0.0, 0.0));
                e.0 += a;
                e.1 += b;
            }
        }
        m
    };
    let first = mean_over(0..tenth.min(n));
    let last = mean_over(n.saturating_sub(tenth)..n);
    let mut loss_by_stream = BTreeMap::new();
    for (k, (a, b)) in &last {
        let f = first
            .get(k)
            .map(|(x, y)| x / y.max(1.0))
            .unwrap_or(f64::NAN);
        loss_by_stream.insert(k.clone(), [f, a / b.max(1.0)]);
    }
    Ok(TrainOutcome {
        steps_done: step,
        finished: step >= spec.steps,
        resumed_from,
        loss_curve: prog.loss_curve,
        loss_by_stream,
        tokens_trained: prog.tokens_trained,
        tokens_per_second: if elapsed > 0.0 {
            tokens_now as f64 / elapsed
        } else {
            0.0
        },
        trainable_parameters: trainable,
    })
}

/// Writes `model` (LoRA merged) into `out` as a loadable model directory (`model.safetensors`, `config.json`,
/// tokenizer files) beside the checkpoints: the files are saved into a temporary folder and renamed in one by one.
pub fn save_model_into(model: &mut Llama, out: &Path) -> Result<()> {
    model.merge_lora()?;
    std::fs::create_dir_all(out).map_err(|e| tessera_core::Error::io(out, e))?;
    let tmp = tempfile::Builder::new()
        .prefix(".model-")
        .tempdir_in(out)
        .map_err(|e| tessera_core::Error::io(out, e))?;
    let d = tmp.path().join("m");
    tessera_lm::save_safetensors_dir(model, &d)?;
    for e in std::fs::read_dir(&d).map_err(|e| tessera_core::Error::io(&d, e))? {
        let e = e.map_err(|e| tessera_core::Error::io(&d, e))?;
        tessera_core::fsx::rename_durable(&e.path(), &out.join(e.file_name()))?;
    }
    Ok(())
}
