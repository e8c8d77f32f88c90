//! SparseLoRA, the recovery method of "Rethinking Pruning for Vision-Language Models: Strategies for Effective
//! Sparsity and Performance Restoration" (He et al., arXiv:2404.02424 v2, §4; code Shwai-He/VLM-Compression):
//! LoRA adapters on the seven projections whose update is masked like the weight, student
//! `y = x ((W + s·B·A) ⊙ M)ᵀ`, trained with `L = (1 − λ)·CE + λ·KL(teacher ‖ student)` (λ = 0.1, T = 1, KL
//! summed over tokens and vocabulary and divided by the batch size, PyTorch's `batchmean`), the teacher being
//! the same model with its dense weights (`WeightMode::Dense`: masks and adapters ignored, no second copy).
//! AdamW β = (0.9, 0.999), weight decay 0, no warm-up, cosine from 1e-4 to 1e-5, as in the reference scripts.
//! After training the adapters are merged, `W ← (W + s·BA) ⊙ M`, so the merged checkpoint keeps exactly the
//! pruned zero pattern (verified mask for mask). Plain LoRA (`W ⊙ M + s·BA`, `LoraForm::Lora`) is the
//! baseline: merged, it loses the sparsity (`sparsity_after_merge` says how much).
//!
//! Data: random windows of WikiText-2 raw validation (evaluation is on test), drawn per step from
//! `(seed, step)` so that a resumed run sees exactly the windows an uninterrupted one would.
//!
//! Deviation: the teacher's dense weights are the source model's (`--teacher`) at the pruned positions and the
//! pruned checkpoint's at the kept ones. For magnitude and Wanda these are the source weights (exact teacher);
//! SparseGPT changes the kept weights, so its teacher is approximate (`teacher_exact: false` in the result).
use crate::calib::{resolve_text, WIKITEXT_VALID};
use crate::checkpoint_dir::{self, read_masks};
use crate::error::{PruneError, Result};
use crate::eval::{self, EvalConfig};
use crate::pattern::Mask;
use candle_core::{Device, Tensor};
use rand::Rng as _;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tessera_lm::checkpoint::{self, TrainState};
use tessera_lm::loss::{kl_divergence, weighted_cross_entropy, TokenBatch};
use tessera_lm::optim::{lora_params, Decay, Optimizer, OptimizerConfig, Schedule};
use tessera_lm::perplexity::PerplexityReport;
use tessera_lm::{Forward, Input, Llama, LoraForm, LoraSpec, Proj, WeightMode};

/// Most tokens per step (`batch · seqlen`).
pub const MAX_STEP_TOKENS: usize = 8192;

/// Everything `tessera sparselora` needs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SparseLoraConfig {
    /// The pruned checkpoint directory (with `masks.safetensors`).
    pub pruned: PathBuf,
    /// The dense source model (teacher), GGUF or HF directory.
    pub teacher: PathBuf,
    /// Optimizer steps.
    pub steps: u64,
    /// LoRA rank (8).
    pub rank: usize,
    /// LoRA alpha (16): scale `alpha / rank`.
    pub alpha: f64,
    /// SparseLoRA or the plain-LoRA baseline.
    pub form: LoraForm,
    /// KL weight λ (0.1).
    pub lambda: f64,
    /// Distillation temperature T (1).
    pub temperature: f64,
    /// Peak learning rate (1e-4).
    pub lr: f64,
    /// Final learning rate of the cosine (1e-5).
    pub lr_end: f64,
    /// Tokens per sequence (512).
    pub seqlen: usize,
    /// Sequences per step (1).
    pub batch: usize,
    /// Recovery text (default WikiText-2 raw validation).
    pub data: Option<PathBuf>,
    /// Seed of the adapters' initialisation and of the windows.
    pub seed: u64,
    /// Save a checkpoint every this many steps (0: only at the end).
    pub checkpoint_every: u64,
    /// Continue from the latest checkpoint.
    pub resume: bool,
    /// The merged checkpoint directory to write.
    pub out: PathBuf,
    /// Training checkpoints (default `<out>.ckpt`).
    pub checkpoints: Option<PathBuf>,
    /// Perplexity before and after, if asked.
    pub eval: Option<EvalConfig>,
}

impl SparseLoraConfig {
    /// The paper's settings for `pruned` → `out` with `steps` steps.
    pub fn new(pruned: PathBuf, teacher: PathBuf, steps: u64, out: PathBuf) -> Self {
        SparseLoraConfig {
            pruned,
            teacher,
            steps,
            rank: 8,
            alpha: 16.0,
            form: LoraForm::SparseLora,
            lambda: 0.1,
            temperature: 1.0,
            lr: 1e-4,
            lr_end: 1e-5,
            seqlen: 512,
            batch: 1,
            data: None,
            seed: 0,
            checkpoint_every: 25,
            resume: false,
            out,
            checkpoints: None,
            eval: None,
        }
    }
    /// The checkpoint root.
    pub fn checkpoint_root(&self) -> PathBuf {
        self.checkpoints.clone().unwrap_or_else(|| {
            let mut s = self.out.clone().into_os_string();
            s.push(".ckpt");
            PathBuf::from(s)
        })
    }
    fn schedule(&self) -> Schedule {
        Schedule {
            lr: self.lr,
            warmup_steps: 0,
            decay: Decay::Cosine {
                total_steps: self.steps,
                floor: self.lr_end / self.lr,
            },
        }
    }
    /// Checks every number (no file is read).
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(PruneError::Invalid(m));
        if self.steps == 0 {
            return bad("--steps must be at least 1".into());
        }
        if self.rank == 0 {
            return bad("--rank must be at least 1".into());
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return bad(format!("LoRA alpha must be > 0, got {}", self.alpha));
        }
        if !(0.0..=1.0).contains(&self.lambda) {
            return bad(format!(
                "λ (KL weight) must be in [0, 1], got {}",
                self.lambda
            ));
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return bad(format!("temperature must be > 0, got {}", self.temperature));
        }
        let lr_ok = self.lr.is_finite() && self.lr > 0.0 && self.lr_end.is_finite();
        if !(lr_ok && (0.0..=self.lr).contains(&self.lr_end)) {
            return bad(format!(
                "need 0 < lr and 0 ≤ lr_end ≤ lr (got {}, {})",
                self.lr, self.lr_end
            ));
        }
        if self.seqlen < 2 || self.batch == 0 {
            return bad("need --seqlen ≥ 2 and --batch ≥ 1".into());
        }
        match self.seqlen.checked_mul(self.batch) {
            Some(t) if t <= MAX_STEP_TOKENS => {}
            _ => {
                return bad(format!(
                    "{} × {} tokens per step exceed {MAX_STEP_TOKENS}",
                    self.batch, self.seqlen
                ))
            }
        }
        tessera_lm::optim::validate_schedule(&self.schedule())?;
        Ok(())
    }
}

/// One point of the loss curve.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LossPoint {
    /// Step (1-based: after this many updates).
    pub step: u64,
    /// Total loss.
    pub loss: f64,
    /// Cross-entropy part.
    pub ce: f64,
    /// KL part (before the λ weight).
    pub kl: f64,
    /// Learning rate used.
    pub lr: f64,
}

/// What `tessera sparselora --json` prints (and `sparselora.json` in the output directory holds).
#[derive(Debug, Clone, serde::Serialize)]
pub struct SparseLoraResult {
    /// The pruned checkpoint.
    pub pruned: PathBuf,
    /// The teacher.
    pub teacher: PathBuf,
    /// SparseLoRA or LoRA.
    pub form: LoraForm,
    /// Rank.
    pub rank: usize,
    /// Alpha.
    pub alpha: f64,
    /// λ.
    pub lambda: f64,
    /// Steps trained in total.
    pub steps: u64,
    /// Step the run resumed from (None: fresh).
    pub resumed_from: Option<u64>,
    /// Tokens per step.
    pub tokens_per_step: usize,
    /// Loss after every step.
    pub loss_curve: Vec<LossPoint>,
    /// Training seconds of this invocation.
    pub seconds: f64,
    /// Whether the teacher equals the source model exactly (false after SparseGPT, see the module docs).
    pub teacher_exact: bool,
    /// Pruned ratio of the masks over the masked matrices, before training.
    pub sparsity_before: f64,
    /// Exact zeros / weights over the same matrices after merging.
    pub sparsity_after_merge: f64,
    /// Whether every merged weight is zero wherever its mask is 0 (always for SparseLoRA).
    pub mask_kept: bool,
    /// Largest |logit| difference between the trained (unmerged) and the merged model on a probe window.
    pub merge_max_abs_diff: f64,
    /// Perplexity of the pruned model before training, when asked.
    pub perplexity_before: Option<PerplexityReport>,
    /// Perplexity of the merged model, when asked.
    pub perplexity_after: Option<PerplexityReport>,
    /// The merged checkpoint written.
    pub out: PathBuf,
}

/// The settings a checkpoint is tied to (a resume with others is refused).
#[derive(Debug, serde::Serialize)]
struct Settings<'a> {
    masks_sha256: String,
    weights_sha256: String,
    teacher: &'a Path,
    rank: usize,
    alpha: f64,
    form: LoraForm,
    lambda: f64,
    temperature: f64,
    lr: f64,
    lr_end: f64,
    seqlen: usize,
    batch: usize,
    data: &'a Path,
    seed: u64,
    steps: u64,
}

/// Loads the teacher, applies the pruned checkpoint's masks (keeping the dense weights beside them) and its
/// kept weights. Returns the model, the masks and whether the teacher is exact.
pub fn load_student(cfg: &SparseLoraConfig) -> Result<(Llama, BTreeMap<String, Mask>, bool)> {
    let masks = read_masks(&cfg.pruned)?;
    let pruned_w =
        candle_core::safetensors::load(cfg.pruned.join("model.safetensors"), &Device::Cpu)
            .map_err(|e| {
                tessera_core::Error::format(
                    cfg.pruned.join("model.safetensors"),
                    format!("not a valid safetensors file: {e}"),
                )
            })?;
    let mut model = tessera_lm::load(&cfg.teacher)?;
    let dev = model.device().clone();
    // Check every mask before changing anything.
    let mut plan = vec![];
    for (name, m) in &masks {
        let (layer, p) = parse_name(name)?;
        let l = model
            .blocks
            .get(layer)
            .ok_or_else(|| PruneError::Invalid(format!("mask `{name}`: no layer {layer}")))?
            .linear(p);
        let (rows, cols) = l.dims();
        let pw = pruned_w.get(name).ok_or_else(|| {
            PruneError::Invalid(format!("{}: no weight `{name}`", cfg.pruned.display()))
        })?;
        if (m.rows, m.cols) != (rows, cols) || pw.dims() != [rows, cols] {
            return Err(PruneError::MaskShape {
                name: name.clone(),
                expected: vec![rows, cols],
                got: vec![m.rows, m.cols],
            });
        }
        plan.push((layer, p, m, pw));
    }
    let mut exact = true;
    for (layer, p, m, pw) in plan {
        let l = model.blocks[layer].linear_mut(p);
        l.set_mask_keep_dense(m.to_tensor(&dev)?)?;
        let pw = pw.to_dtype(candle_core::DType::F32)?.to_device(&dev)?;
        let diff = crate::max_abs_diff(&pw, l.weight().as_tensor())?;
        if diff != 0.0 {
            exact = false;
            l.weight()
                .set(&pw.mul(&m.to_tensor(&dev)?)?.affine(1.0, 0.0)?)?;
        }
    }
    Ok((model, masks, exact))
}

fn parse_name(name: &str) -> Result<(usize, Proj)> {
    let bad = || PruneError::Invalid(format!("mask `{name}` does not name a block projection"));
    let rest = name.strip_prefix("model.layers.").ok_or_else(bad)?;
    let (layer, proj) = rest.split_once('.').ok_or_else(bad)?;
    let layer: usize = layer.parse().map_err(|_| bad())?;
    let proj = proj.strip_suffix(".weight").ok_or_else(bad)?;
    Ok((layer, proj.parse().map_err(|_| bad())?))
}

/// Zeros / weights over the masked matrices, and whether every weight is zero where its mask is 0.
fn measure(model: &Llama, masks: &BTreeMap<String, Mask>) -> Result<(f64, bool)> {
    let (mut z, mut n, mut kept) = (0usize, 0usize, true);
    for (name, m) in masks {
        let (layer, p) = parse_name(name)?;
        let (w, _, _) = crate::prune::weight_rows(model.blocks[layer].linear(p))?;
        z += w.iter().filter(|&&x| x == 0.0).count();
        n += w.len();
        kept &= m.keep.iter().zip(&w).all(|(&k, &x)| k == 1 || x == 0.0);
    }
    Ok((z as f64 / n.max(1) as f64, kept))
}

/// The recovery windows of step `step` (random starts from `(seed, step)`).
fn step_batch(ids: &[u32], cfg: &SparseLoraConfig, step: u64) -> Result<TokenBatch> {
    let mut rng = tessera_core::rng::derived(cfg.seed, &format!("recovery/{step}"));
    let seqs: Vec<Vec<u32>> = (0..cfg.batch)
        .map(|_| {
            let s = rng.gen_range(0..=ids.len() - cfg.seqlen);
            ids[s..s + cfg.seqlen].to_vec()
        })
        .collect();
    Ok(TokenBatch::new(&seqs, 0)?)
}

/// One loss evaluation: `(loss tensor, ce, kl)`.
fn loss(model: &Llama, b: &TokenBatch, cfg: &SparseLoraConfig) -> Result<(Tensor, f64, f64)> {
    let teacher = model.forward(
        Input::Ids(&b.ids),
        Forward {
            weights: WeightMode::Dense,
            key_mask: Some(&b.key_mask),
            ..Default::default()
        },
    )?;
    let student = model.forward(
        Input::Ids(&b.ids),
        Forward {
            train: true,
            freeze_base: true,
            key_mask: Some(&b.key_mask),
            ..Default::default()
        },
    )?;
    let t = student.dim(1)?;
    let ce = weighted_cross_entropy(
        &student.narrow(1, 0, t - 1)?,
        &b.targets()?,
        &b.target_weights()?,
    )?;
    let kl = kl_divergence(&teacher, &student, cfg.temperature, Some(&b.key_mask))?;
    let total = ((&ce * (1.0 - cfg.lambda))? + (&kl * cfg.lambda)?)?;
    Ok((
        total,
        ce.to_scalar::<f32>()? as f64,
        kl.to_scalar::<f32>()? as f64,
    ))
}

/// Runs SparseLoRA (or plain LoRA) recovery on a pruned checkpoint and writes the merged checkpoint.
/// `progress` is told `(step, steps, loss)` after every step; when it returns `false` the run saves a
/// checkpoint and stops with [`PruneError::Stopped`] (continue it with `resume`). Arguments are checked and the inputs loaded before
/// anything is written; an existing checkpoint is continued only with `resume` and the same settings.
pub fn run(
    cfg: &SparseLoraConfig,
    progress: &mut dyn FnMut(u64, u64, f64) -> bool,
) -> Result<SparseLoraResult> {
    cfg.validate()?;
    checkpoint_dir::check_replaceable(&cfg.out)?;
    let root = cfg.checkpoint_root();
    let existing = checkpoint::latest_dir(&root)?;
    if existing.is_some() && !cfg.resume {
        return Err(PruneError::Invalid(format!(
            "{}: checkpoints of an earlier run exist; pass --resume to continue it, or remove them",
            root.display()
        )));
    }
    let data = resolve_text(cfg.data.as_ref(), WIKITEXT_VALID)?;
    let (mut model, masks, teacher_exact) = load_student(cfg)?;
    if cfg.seqlen > model.max_positions() {
        return Err(PruneError::Invalid(format!(
            "--seqlen {} exceeds the model's {} positions",
            cfg.seqlen,
            model.max_positions()
        )));
    }
    if let Some(e) = &cfg.eval {
        e.validate(model.max_positions())?;
    }
    let text = tessera_core::fsx::read_to_string(&data)?;
    let ids = tessera_lm::perplexity::tokenize_document(&model, &text)?;
    if ids.len() < cfg.seqlen {
        return Err(PruneError::TextTooShort {
            path: data,
            tokens: ids.len(),
            need: cfg.seqlen,
            why: "one recovery window".into(),
        });
    }
    let settings = Settings {
        masks_sha256: tessera_core::assets::sha256_file(
            &cfg.pruned.join(checkpoint_dir::MASKS_FILE),
        )?,
        weights_sha256: tessera_core::assets::sha256_file(&cfg.pruned.join("model.safetensors"))?,
        teacher: &cfg.teacher,
        rank: cfg.rank,
        alpha: cfg.alpha,
        form: cfg.form,
        lambda: cfg.lambda,
        temperature: cfg.temperature,
        lr: cfg.lr,
        lr_end: cfg.lr_end,
        seqlen: cfg.seqlen,
        batch: cfg.batch,
        data: &data,
        seed: cfg.seed,
        steps: cfg.steps,
    };
    let (sparsity_before, _) = measure(&model, &masks)?;
    let perplexity_before = match &cfg.eval {
        Some(e) if existing.is_none() => Some(eval::perplexity(&model, e)?),
        _ => None,
    };
    model.add_lora(&LoraSpec {
        targets: Proj::ALL.to_vec(),
        layers: None,
        rank: cfg.rank,
        alpha: cfg.alpha,
        form: cfg.form,
        seed: cfg.seed,
    })?;
    let mut opt = Optimizer::new(OptimizerConfig::adamw(0.0), lora_params(&model))?;
    let mut start = 0u64;
    let mut curve: Vec<LossPoint> = vec![];
    let mut resumed_from = None;
    if existing.is_some() {
        // `restore_model_state` rebuilds each dense weight as `saved W⊙M + saved W⊙(1−M)` and then splits it by
        // the mask with `set_mask_keep_dense`, which adds the layer's current dense copy once more: drop the copies
        // first (the checkpoint holds them), or the teacher would count the pruned weights twice.
        for b in &mut model.blocks {
            for (_, l) in b.linears_mut() {
                l.clear_mask();
            }
        }
        if let Some(st) = checkpoint::resume(&root, &settings, &mut model, Some(&mut opt))? {
            start = st.step;
            resumed_from = Some(st.step);
            curve = serde_json::from_value(st.cursor["loss_curve"].clone()).unwrap_or_default();
            // The checkpoint's masks must be the pruned checkpoint's, mask for mask.
            for (name, m) in &masks {
                let (layer, p) = parse_name(name)?;
                let l = model.blocks[layer].linear(p);
                let got = l.mask().map(|t| Mask::from_tensor(name, t)).transpose()?;
                if got.as_ref() != Some(m) {
                    return Err(PruneError::Invalid(format!(
                        "{}: the checkpoint's mask of `{name}` differs from the pruned checkpoint's",
                        root.display()
                    )));
                }
            }
        }
    }
    let schedule = cfg.schedule();
    let t0 = Instant::now();
    let save = |model: &Llama, opt: &Optimizer, step: u64, curve: &[LossPoint]| -> Result<()> {
        checkpoint::save(
            &root,
            &settings,
            model,
            Some(opt),
            &TrainState {
                step,
                rng: None,
                cursor: serde_json::json!({ "loss_curve": curve }),
            },
            1,
        )?;
        Ok(())
    };
    for step in start..cfg.steps {
        let b = step_batch(&ids, cfg, step)?;
        let (l, ce, kl) = loss(&model, &b, cfg)?;
        let lr = schedule.lr_at(step);
        let g = opt.grads(&l)?;
        opt.step(&g, lr)?;
        let v = l.to_scalar::<f32>()? as f64;
        if !v.is_finite() {
            return Err(PruneError::Invalid(format!(
                "the loss became {v} at step {}; lower the learning rate",
                step + 1
            )));
        }
        curve.push(LossPoint {
            step: step + 1,
            loss: v,
            ce,
            kl,
            lr,
        });
        let go_on = progress(step + 1, cfg.steps, v);
        let done = step + 1;
        if (cfg.checkpoint_every > 0 && done % cfg.checkpoint_every == 0)
            || done == cfg.steps
            || !go_on
        {
            save(&model, &opt, done, &curve)?;
        }
        if !go_on && done < cfg.steps {
            return Err(PruneError::Stopped {
                step: done,
                checkpoints: root.clone(),
            });
        }
    }
    let seconds = t0.elapsed().as_secs_f64();
    // Merge and check that the merged model computes what was trained.
    let probe = step_batch(&ids, cfg, u64::MAX)?;
    let n = probe.ids.dim(1)?.min(128);
    let probe = probe.ids.narrow(1, 0, n)?;
    let before = model.forward(Input::Ids(&probe), Forward::default())?;
    model.merge_lora()?;
    let after = model.forward(Input::Ids(&probe), Forward::default())?;
    let merge_max_abs_diff = crate::max_abs_diff(&before, &after)? as f64;
    // Drop the dense copies (the teacher's) so that only the merged weights remain.
    for b in &mut model.blocks {
        for (_, l) in b.linears_mut() {
            if let Some(m) = l.mask().cloned() {
                l.set_mask(m)?;
            }
        }
    }
    let (sparsity_after_merge, mask_kept) = measure(&model, &masks)?;
    if cfg.form == LoraForm::SparseLora && !mask_kept {
        return Err(PruneError::Verify(
            "a merged SparseLoRA weight is non-zero where its mask is 0".into(),
        ));
    }
    let perplexity_after = match &cfg.eval {
        Some(e) => Some(eval::perplexity(&model, e)?),
        None => None,
    };
    let result = SparseLoraResult {
        pruned: cfg.pruned.clone(),
        teacher: cfg.teacher.clone(),
        form: cfg.form,
        rank: cfg.rank,
        alpha: cfg.alpha,
        lambda: cfg.lambda,
        steps: cfg.steps,
        resumed_from,
        tokens_per_step: cfg.batch * cfg.seqlen,
        loss_curve: curve,
        seconds,
        teacher_exact,
        sparsity_before,
        sparsity_after_merge,
        mask_kept,
        merge_max_abs_diff,
        perplexity_before,
        perplexity_after,
        out: cfg.out.clone(),
    };
    checkpoint_dir::write(
        &model,
        &cfg.out,
        "sparselora.json",
        &serde_json::to_value(&result)?,
    )?;
    Ok(result)
}
