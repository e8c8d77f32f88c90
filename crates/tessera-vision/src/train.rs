//! `tessera vlm train`: [`TrainConfig`] → [`run`] → [`TrainResult`].
//!
//! Stage 1 (default): encoder + projector trained with the language model frozen. Stage 2 (`lora_rank > 0`,
//! usually with `init` = a stage-1 model): LoRA adapters on the language model's `q, v` trained together with the
//! encoder and projector. Each step draws `batch` examples, a `caption_fraction` of them Fashion-MNIST
//! image–caption pairs and the rest easy-vqa questions, from a stream derived from `(seed, step)`, so a resumed
//! run sees exactly the batches the uninterrupted run would have seen.
//!
//! Checkpoints (`<out>/checkpoints/step-N/`, `LATEST`) hold the trainable tensors, the AdamW state and the loss
//! curve; they are written to a temporary folder and renamed. Resuming checks the saved settings and refuses a
//! run with other settings (the number of steps may grow: the schedule is warm-up then constant).
use crate::data::{caption, patchify, EasyVqa, FashionMnist, RgbImage};
use crate::error::{io, Result, VisionError};
use crate::llava::{Example, TowerModes, Vlm};
use crate::vit::VitConfig;
use candle_core::{Device, Tensor};
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tessera_lm::model::LoraSpec;
use tessera_lm::optim::{Decay, Optimizer, OptimizerConfig, Param, Schedule};
use tessera_lm::{Grad, WeightMode};

/// Everything that decides the trajectory of a run (compared on resume).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSettings {
    /// Encoder sizes.
    pub vision: VitConfig,
    /// Projector hidden width.
    pub projector_hidden: usize,
    /// Language model (asset name or path).
    pub language: String,
    /// Start from this VLM directory instead of a random encoder.
    pub init: Option<PathBuf>,
    /// Examples per step.
    pub batch: usize,
    /// Peak learning rate (AdamW).
    pub lr: f64,
    /// Linear warm-up steps.
    pub warmup: u64,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    /// Gradient clipping (global norm).
    pub clip: f64,
    /// Share of Fashion-MNIST captions in a batch.
    pub caption_fraction: f64,
    /// LoRA rank on the language model (0 = stage 1, frozen language model).
    pub lora_rank: usize,
    /// Random seed (initialisation and batches).
    pub seed: u64,
}

impl Default for TrainSettings {
    fn default() -> Self {
        TrainSettings {
            vision: VitConfig::default(),
            projector_hidden: 576,
            language: "smollm2-135m".into(),
            init: None,
            batch: 8,
            lr: 1e-3,
            warmup: 20,
            weight_decay: 0.0,
            clip: 1.0,
            caption_fraction: 0.25,
            lora_rank: 0,
            seed: 0,
        }
    }
}

/// A training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// What the run computes.
    pub settings: TrainSettings,
    /// Total optimizer steps.
    pub steps: u64,
    /// Output directory (`model/`, `checkpoints/`, `train.json`, `loss.svg`).
    pub out: PathBuf,
    /// Continue the run whose output directory this is (default: `out` itself when it has checkpoints).
    pub resume: Option<PathBuf>,
    /// Steps between checkpoints.
    pub checkpoint_every: u64,
    /// Never download (assets must be cached).
    pub offline: bool,
    /// Show a progress bar.
    pub progress: bool,
}

impl TrainConfig {
    /// Defaults for `steps` steps into `out`.
    pub fn new(steps: u64, out: PathBuf) -> Self {
        TrainConfig {
            settings: TrainSettings::default(),
            steps,
            out,
            resume: None,
            checkpoint_every: 25,
            offline: false,
            progress: true,
        }
    }
    /// Checks the settings.
    pub fn validate(&self) -> Result<()> {
        let s = &self.settings;
        s.vision.validate()?;
        let bad = |m: String| Err(VisionError::Invalid(m));
        if self.steps == 0 || s.batch == 0 || self.checkpoint_every == 0 {
            return bad("steps, batch and checkpoint interval must be ≥ 1".into());
        }
        if !(s.lr.is_finite() && s.lr > 0.0 && s.clip.is_finite() && s.clip > 0.0) {
            return bad(format!(
                "learning rate {} and clip {} must be > 0",
                s.lr, s.clip
            ));
        }
        if !(0.0..=1.0).contains(&s.caption_fraction) {
            return bad(format!(
                "caption fraction {} must be in [0, 1]",
                s.caption_fraction
            ));
        }
        if s.batch > 1024 || s.lora_rank > 576 {
            return bad(format!(
                "batch {} (≤ 1024) or LoRA rank {} (≤ 576) too large",
                s.batch, s.lora_rank
            ));
        }
        if s.projector_hidden == 0 || s.projector_hidden > 16384 {
            return bad("projector width must be ≥ 1".into());
        }
        Ok(())
    }
}

/// One point of the loss curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LossPoint {
    /// Step (1-based).
    pub step: u64,
    /// Mean answer-token cross-entropy of the step's batch.
    pub loss: f64,
}

/// What `tessera vlm train --json` prints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainResult {
    /// The saved model directory (`<out>/model`).
    pub model: PathBuf,
    /// Steps completed in total.
    pub steps: u64,
    /// Step the run resumed from (0 = fresh).
    pub resumed_from: u64,
    /// Image tokens per image.
    pub image_tokens: usize,
    /// Trainable parameters.
    pub trainable_params: usize,
    /// Mean loss of the first and last 10 steps.
    pub first_loss: f64,
    /// See `first_loss`.
    pub last_loss: f64,
    /// The loss of every step.
    pub loss_curve: Vec<LossPoint>,
    /// Training images per second in this invocation.
    pub images_per_s: f64,
    /// Wall seconds of this invocation's steps.
    pub seconds: f64,
    /// The settings.
    pub settings: TrainSettings,
}

#[derive(Debug, Serialize, Deserialize)]
struct CkptState {
    settings: TrainSettings,
    step: u64,
    losses: Vec<LossPoint>,
}

/// The data a run draws from.
pub struct TrainData {
    /// easy-vqa.
    pub vqa: EasyVqa,
    /// Fashion-MNIST (absent when `caption_fraction` is 0).
    pub fashion: Option<FashionMnist>,
}

impl TrainData {
    /// Loads both datasets from the asset cache.
    pub fn load(side: usize, need_fashion: bool, offline: bool) -> Result<Self> {
        let vqa = EasyVqa::load(&crate::data::easy_vqa_root(offline)?, side, None)?;
        let fashion = if need_fashion {
            Some(FashionMnist::load(&FashionMnist::root(offline)?)?)
        } else {
            None
        };
        Ok(TrainData { vqa, fashion })
    }
}

/// The question asked of a Fashion-MNIST image.
pub const CAPTION_QUESTION: &str = "What is in the image?";

/// Draws the batch of step `step`: examples and the patches tensor `[batch, patches, patch_dim]`.
pub fn draw_batch(
    vlm: &Vlm,
    data: &TrainData,
    s: &TrainSettings,
    step: u64,
) -> Result<(Tensor, Vec<Example>)> {
    let mut rng = tessera_core::rng::derived(s.seed, &format!("batch/{step}"));
    let cfg = &vlm.vit.config;
    let mut patches = Vec::with_capacity(s.batch * cfg.patches() * cfg.patch_dim());
    let mut ex = Vec::with_capacity(s.batch);
    for _ in 0..s.batch {
        let cap = data
            .fashion
            .as_ref()
            .filter(|_| rng.gen::<f64>() < s.caption_fraction);
        let (img, e): (RgbImage, Example) = match cap {
            Some(f) => {
                let i = rng.gen_range(0..f.train.len());
                let c = f.train.labels[i] as usize;
                (
                    f.train.image(i, cfg.image_size),
                    vlm.example(CAPTION_QUESTION, &caption(c))?,
                )
            }
            None => {
                let q = &data.vqa.train.questions[rng.gen_range(0..data.vqa.train.questions.len())];
                (
                    data.vqa.train.images[q.image].clone(),
                    vlm.example(&q.text, &data.vqa.answers[q.answer])?,
                )
            }
        };
        patches.extend(patchify(&img, cfg)?);
        ex.push(e);
    }
    let t = Tensor::from_vec(
        patches,
        (s.batch, cfg.patches(), cfg.patch_dim()),
        &Device::Cpu,
    )?;
    Ok((t, ex))
}

/// Builds the model a run starts from: `init` or a fresh encoder on the language model, plus LoRA for stage 2.
pub fn build_model(s: &TrainSettings, offline: bool) -> Result<Vlm> {
    let mut vlm = match &s.init {
        Some(dir) => Vlm::load(dir, offline)?.0,
        None => {
            let p = tessera_core::assets::resolve_model(&s.language, offline)?;
            Vlm::fresh(s.vision, s.projector_hidden, tessera_lm::load(p)?, s.seed)?
        }
    };
    if s.init.is_some() && vlm.vit.config != s.vision {
        return Err(VisionError::Invalid(
            "--init model has other vision settings than asked".into(),
        ));
    }
    if s.lora_rank > 0 && vlm.lm.lora_vars().is_empty() {
        vlm.lm.add_lora(&lora_spec(s)?)?;
    }
    Ok(vlm)
}

/// The language LoRA of stage 2.
pub fn lora_spec(s: &TrainSettings) -> Result<LoraSpec> {
    let mut spec = LoraSpec::new("q,v", s.lora_rank.max(1))?;
    spec.seed = s.seed;
    Ok(spec)
}

/// Trainable parameters: encoder and projector (and language LoRA), named as in the checkpoint.
pub fn trainable(vlm: &Vlm) -> Vec<Param> {
    let mut p: Vec<Param> = vlm
        .vit
        .named_vars()
        .into_iter()
        .map(|(n, v)| Param::new(format!("vision.{n}"), v))
        .collect();
    p.extend(
        vlm.projector
            .named_vars()
            .into_iter()
            .map(|(n, v)| Param::new(format!("projector.{n}"), v)),
    );
    p.extend(
        vlm.lm
            .named_lora_vars()
            .into_iter()
            .map(|(n, v)| Param::new(format!("language.{n}"), v)),
    );
    p
}

fn latest(root: &Path) -> Result<Option<PathBuf>> {
    let l = root.join("LATEST");
    if !l.exists() {
        return Ok(None);
    }
    let name = std::fs::read_to_string(&l).map_err(|e| io(&l, e))?;
    Ok(Some(root.join(name.trim())))
}

fn save_ckpt(root: &Path, params: &[Param], opt: &Optimizer, st: &CkptState) -> Result<()> {
    std::fs::create_dir_all(root).map_err(|e| io(root, e))?;
    let tmp = tempfile::Builder::new()
        .prefix(".tmp-step-")
        .tempdir_in(root)
        .map_err(|e| io(root, e))?;
    let t: HashMap<String, Tensor> = params
        .iter()
        .map(|p| (p.name.clone(), p.var.as_tensor().detach()))
        .collect();
    candle_core::safetensors::save(&t, tmp.path().join("params.safetensors"))?;
    let o: HashMap<String, Tensor> = opt.state_tensors().into_iter().collect();
    if !o.is_empty() {
        candle_core::safetensors::save(&o, tmp.path().join("optimizer.safetensors"))?;
    }
    tessera_core::fsx::write_json_atomic(tmp.path().join("state.json"), st)?;
    let name = format!("step-{}", st.step);
    let dest = root.join(&name);
    if dest.exists() {
        std::fs::remove_dir_all(&dest).map_err(|e| io(&dest, e))?;
    }
    let kept = tmp.keep();
    std::fs::rename(&kept, &dest).map_err(|e| io(&dest, e))?;
    let prev = latest(root)?;
    tessera_core::fsx::write_atomic(root.join("LATEST"), name.as_bytes())?;
    if let Some(p) = prev.filter(|p| *p != dest) {
        let _ = std::fs::remove_dir_all(p);
    }
    Ok(())
}

fn resume(
    root: &Path,
    s: &TrainSettings,
    params: &[Param],
    opt: &mut Optimizer,
) -> Result<Option<CkptState>> {
    let Some(dir) = latest(root)? else {
        return Ok(None);
    };
    let bad = |msg: String| VisionError::Checkpoint {
        path: dir.clone(),
        msg,
    };
    let sp = dir.join("state.json");
    let text = std::fs::read_to_string(&sp).map_err(|e| bad(format!("state.json: {e}")))?;
    let st: CkptState = serde_json::from_str(&text).map_err(|e| bad(format!("state.json: {e}")))?;
    if st.settings != *s {
        return Err(bad(format!(
            "written with other settings; refusing to resume (saved {}, asked {})",
            serde_json::to_string(&st.settings)?,
            serde_json::to_string(s)?
        )));
    }
    let t = candle_core::safetensors::load(dir.join("params.safetensors"), &Device::Cpu)
        .map_err(|e| bad(format!("params: {e}")))?;
    for p in params {
        let v = t
            .get(&p.name)
            .ok_or_else(|| bad(format!("lacks `{}`", p.name)))?;
        p.var.set(v)?;
    }
    let op = dir.join("optimizer.safetensors");
    let state = if op.exists() {
        candle_core::safetensors::load(&op, &Device::Cpu)
            .map_err(|e| bad(format!("optimizer: {e}")))?
    } else {
        HashMap::new()
    };
    opt.load_state(state, st.step)?;
    Ok(Some(st))
}

/// Trains the VLM. `progress` is told `(step, steps, loss)` after every step.
pub fn run(cfg: &TrainConfig, progress: &mut dyn FnMut(u64, u64, f64)) -> Result<TrainResult> {
    cfg.validate()?;
    let s = &cfg.settings;
    let vlm = build_model(s, cfg.offline)?;
    let data = TrainData::load(s.vision.image_size, s.caption_fraction > 0.0, cfg.offline)?;
    train_with(cfg, vlm, &data, progress)
}

/// [`run`] on a model and data already loaded (the tour and tests reuse them).
pub fn train_with(
    cfg: &TrainConfig,
    vlm: Vlm,
    data: &TrainData,
    progress: &mut dyn FnMut(u64, u64, f64),
) -> Result<TrainResult> {
    cfg.validate()?;
    let s = &cfg.settings;
    let params = trainable(&vlm);
    let n_params: usize = params.iter().map(|p| p.var.elem_count()).sum();
    let mut opt = Optimizer::new(OptimizerConfig::adamw(s.weight_decay), params.clone())?;
    let sched = Schedule {
        lr: s.lr,
        warmup_steps: s.warmup,
        decay: Decay::Constant,
    };
    let root = cfg.resume.as_ref().unwrap_or(&cfg.out).join("checkpoints");
    let mut losses = vec![];
    let mut start = 0;
    if let Some(st) = resume(&root, s, &params, &mut opt)? {
        start = st.step;
        losses = st.losses;
    }
    let out_root = cfg.out.join("checkpoints");
    let modes = TowerModes {
        vision: Grad::All,
        vision_weights: WeightMode::Sparse,
        language: Grad::Adapters,
        language_weights: WeightMode::Sparse,
    };
    let t0 = Instant::now();
    for step in start..cfg.steps {
        let (patches, ex) = draw_batch(&vlm, data, s, step)?;
        let loss = vlm.loss(&patches, &ex, modes)?;
        let lv = loss.to_scalar::<f32>()? as f64;
        if !lv.is_finite() {
            return Err(VisionError::Invalid(format!(
                "loss became {lv} at step {}",
                step + 1
            )));
        }
        let mut grads = opt.grads(&loss)?;
        grads.clip_global_norm(s.clip)?;
        opt.step(&grads, sched.lr_at(step))?;
        losses.push(LossPoint {
            step: step + 1,
            loss: lv,
        });
        progress(step + 1, cfg.steps, lv);
        if (step + 1) % cfg.checkpoint_every == 0 || step + 1 == cfg.steps {
            let st = CkptState {
                settings: s.clone(),
                step: step + 1,
                losses: losses.clone(),
            };
            save_ckpt(&out_root, &params, &opt, &st)?;
        }
    }
    let seconds = t0.elapsed().as_secs_f64();
    let done = cfg.steps.saturating_sub(start);
    let model_dir = cfg.out.join("model");
    let lora = (s.lora_rank > 0).then(|| lora_spec(s)).transpose()?;
    let base = match &s.init {
        Some(d) => Vlm::load_file(d)?.language.base,
        None => s.language.clone(),
    };
    vlm.save(&model_dir, &vlm.file(&base, lora, false))?;
    let mean = |xs: &[LossPoint]| xs.iter().map(|p| p.loss).sum::<f64>() / xs.len().max(1) as f64;
    let k = losses.len().min(10);
    let res = TrainResult {
        model: model_dir,
        steps: cfg.steps.max(start),
        resumed_from: start,
        image_tokens: s.vision.tokens(),
        trainable_params: n_params,
        first_loss: mean(&losses[..k]),
        last_loss: mean(&losses[losses.len() - k..]),
        images_per_s: (done as f64 * s.batch as f64) / seconds.max(1e-9),
        seconds,
        loss_curve: losses,
        settings: s.clone(),
    };
    write_curve(&cfg.out, &res)?;
    tessera_core::fsx::write_json_atomic(cfg.out.join("train.json"), &res)?;
    Ok(res)
}

fn write_curve(out: &Path, r: &TrainResult) -> Result<()> {
    let pts: Vec<(f64, f64)> = r
        .loss_curve
        .iter()
        .map(|p| (p.step as f64, p.loss))
        .collect();
    if pts.len() < 2 {
        return Ok(());
    }
    tessera_core::report::line_plot_svg(
        out.join("loss.svg"),
        "VLM training loss (answer tokens)",
        "step",
        "cross-entropy",
        &[tessera_core::report::Series::new("train", pts)],
    )?;
    Ok(())
}

impl Vlm {
    /// Reads only the configuration file of a VLM directory.
    pub fn load_file(dir: &Path) -> Result<crate::ckpt::VlmFile> {
        let p = dir.join("config.json");
        let text = std::fs::read_to_string(&p).map_err(|e| VisionError::Checkpoint {
            path: dir.into(),
            msg: format!("no readable config.json ({e})"),
        })?;
        Ok(serde_json::from_str(&text)?)
    }
}
