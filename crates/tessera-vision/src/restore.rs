//! `tessera vlm restore`: [`RestoreConfig`] → [`run`] → [`RestoreResult`]: SparseLoRA restoration of a pruned
//! VLM (He et al. 2024, arXiv:2404.02424, §4 "SparseLoRA"; VLM-Compression `lora.py` and
//! `image_text_retrain.py`) against the plain-LoRA baseline.
//!
//! - Adapters on both towers, as in the reference scripts: the ViT blocks' `qkv, proj, fc1, fc2` at rank 4 and
//!   every language projection (`q, k, v, o, gate, up, down`) at rank 8, `alpha = 16`; norms, embeddings,
//!   the patch embedding and the projector stay frozen.
//! - SparseLoRA (`LoraForm::SparseLora`, the runtime's masked adapter): `y = x ((W + s B A) ⊙ M)ᵀ + b`, merged as
//!   `W ← (W + sBA) ⊙ M`, so the zero pattern survives the merge bit for bit. Plain LoRA (`LoraForm::Lora`):
//!   `y = x (W ⊙ M + s B A)ᵀ + b`, whose merge fills the pruned weights back in.
//! - Loss `L = (1 − λ)·CE + λ·KL(teacher ‖ student)` on the answer tokens with λ = 0.1 and T = 1 (the reference
//!   values); the KL is summed over tokens and vocabulary and divided by the batch size ("batchmean").
//! - Deviation: the teacher is the dense VLM loaded beside the student (the reference reads the dense weights of
//!   the same tensors, which SparseGPT's weight update would not allow here); AdamW with a constant learning rate
//!   instead of the reference's cosine schedule.
use crate::data::EasyVqa;
use crate::error::{Result, VisionError};
use crate::eval::{evaluate, EvalConfig};
use crate::llava::{TowerModes, Vlm};
use crate::train::{draw_batch, TrainData, TrainSettings};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Instant;
use tessera_lm::optim::{Optimizer, OptimizerConfig, Param};
use tessera_lm::{Grad, Linear, LoraForm, WeightMode};

/// A restoration run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestoreConfig {
    /// The pruned VLM (student).
    pub pruned: PathBuf,
    /// The dense VLM it was pruned from (teacher).
    pub dense: PathBuf,
    /// SparseLoRA or the plain-LoRA baseline.
    pub form: LoraForm,
    /// Optimizer steps.
    pub steps: u64,
    /// Examples per step.
    pub batch: usize,
    /// Learning rate (AdamW, constant).
    pub lr: f64,
    /// Weight λ of the distillation term.
    pub lambda: f64,
    /// Seed (adapters and batches).
    pub seed: u64,
    /// Output VLM directory (merged).
    pub out: PathBuf,
    /// easy-vqa test questions scored after the merge (0 = none).
    pub eval_questions: usize,
    /// Never download.
    pub offline: bool,
}

/// What `tessera vlm restore --json` prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestoreResult {
    /// Output directory.
    pub out: PathBuf,
    /// The adapter form.
    pub form: LoraForm,
    /// Steps run.
    pub steps: u64,
    /// Mean loss of the first and last 5 steps.
    pub first_loss: f64,
    /// See `first_loss`.
    pub last_loss: f64,
    /// Vision sparsity before and after the merge.
    pub vision_sparsity: (f64, f64),
    /// Language sparsity before and after the merge.
    pub language_sparsity: (f64, f64),
    /// Whether every weight pruned before restoration is still exactly zero after the merge (both towers).
    pub mask_kept: bool,
    /// easy-vqa accuracy on the slice before restoration.
    pub accuracy_before: Option<f64>,
    /// easy-vqa accuracy on the slice after the merge.
    pub accuracy_after: Option<f64>,
    /// Questions in the slice.
    pub eval_questions: usize,
    /// Wall seconds.
    pub seconds: f64,
}

fn linears_mut(vlm: &mut Vlm) -> Vec<(bool, &mut Linear)> {
    let mut out: Vec<(bool, &mut Linear)> = vec![];
    for b in vlm.vit.blocks.iter_mut() {
        for (_, l) in b.linears_mut() {
            out.push((true, l));
        }
    }
    for b in vlm.lm.blocks.iter_mut() {
        for (_, l) in b.linears_mut() {
            out.push((false, l));
        }
    }
    out
}

/// Whether every weight that `mask` prunes is exactly zero in `l` (no mask: nothing to keep).
fn mask_holds(l: &Linear, mask: Option<&candle_core::Tensor>) -> Result<bool> {
    let Some(m) = mask else {
        return Ok(true);
    };
    let off = l
        .weight()
        .as_tensor()
        .mul(&(1.0 - m)?)?
        .abs()?
        .sum_all()?
        .to_scalar::<f32>()?;
    Ok(off == 0.0)
}

/// Trains adapters on the pruned VLM with distillation from the dense one, merges them and measures.
pub fn run(cfg: &RestoreConfig, progress: &mut dyn FnMut(u64, u64, f64)) -> Result<RestoreResult> {
    if cfg.steps == 0
        || cfg.batch == 0
        || cfg.batch > 1024
        || cfg.lr.is_nan()
        || cfg.lr <= 0.0
        || !(0.0..=1.0).contains(&cfg.lambda)
    {
        return Err(VisionError::Invalid(
            "restore needs steps ≥ 1, 1 ≤ batch ≤ 1024, lr > 0 and λ in [0, 1]".into(),
        ));
    }
    let t0 = Instant::now();
    let (mut student, file) = Vlm::load(&cfg.pruned, cfg.offline)?;
    let (teacher, _) = Vlm::load(&cfg.dense, cfg.offline)?;
    let side = student.vit.config.image_size;
    let vqa = EasyVqa::load(&crate::data::easy_vqa_root(cfg.offline)?, side, None)?;
    let ev = EvalConfig {
        model: cfg.pruned.clone(),
        vqa_limit: Some(cfg.eval_questions),
        fashion_limit: Some(0),
        offline: cfg.offline,
    };
    let before = if cfg.eval_questions > 0 {
        evaluate(&student, Some(&vqa), None, &ev, &mut |_, _, _| {})?.easyvqa_accuracy
    } else {
        None
    };
    let sp_before = crate::prune::measure(&student)?;
    let mut params = vec![];
    for (k, (vision, l)) in linears_mut(&mut student).into_iter().enumerate() {
        let r = if vision { 4 } else { 8 };
        let seed = tessera_core::rng::derive_seed(cfg.seed, &format!("restore/{k}"));
        let lora = l.add_lora_form(r, 16.0, seed, cfg.form)?;
        params.push(Param::new(format!("lora.{k}.a"), lora.a.clone()));
        params.push(Param::new(format!("lora.{k}.b"), lora.b.clone()));
    }
    let mut opt = Optimizer::new(OptimizerConfig::adamw(0.0), params)?;
    let settings = TrainSettings {
        batch: cfg.batch,
        caption_fraction: 0.0,
        seed: cfg.seed,
        ..TrainSettings::default()
    };
    let data = TrainData { vqa, fashion: None };
    let s_modes = TowerModes {
        vision: Grad::Adapters,
        vision_weights: WeightMode::Sparse,
        language: Grad::Adapters,
        language_weights: WeightMode::Sparse,
    };
    let mut losses = vec![];
    for step in 0..cfg.steps {
        let (patches, ex) = draw_batch(&student, &data, &settings, 1_000_000 + step)?;
        let (zs, (targets, weights)) = student.answer_logits(&patches, &ex, s_modes)?;
        let (zt, _) = teacher.answer_logits(&patches, &ex, TowerModes::default())?;
        let ce = tessera_lm::loss::weighted_cross_entropy(&zs, &targets, &weights)?;
        let kl = tessera_lm::loss::kl_divergence(&zt, &zs, 1.0, Some(&weights))?;
        let loss = ((ce * (1.0 - cfg.lambda))? + (kl * cfg.lambda)?)?;
        let lv = loss.to_scalar::<f32>()? as f64;
        let mut g = opt.grads(&loss)?;
        g.clip_global_norm(1.0)?;
        opt.step(&g, cfg.lr)?;
        losses.push(lv);
        progress(step + 1, cfg.steps, lv);
    }
    let mut kept = true;
    for (_, l) in linears_mut(&mut student) {
        // The pruning mask as it was before the merge (a plain-LoRA merge drops it).
        let mask = l.mask().cloned();
        l.merge_lora()?;
        kept &= mask_holds(l, mask.as_ref())?;
    }
    let sp_after = crate::prune::measure(&student)?;
    let after = if cfg.eval_questions > 0 {
        evaluate(&student, Some(&data.vqa), None, &ev, &mut |_, _, _| {})?.easyvqa_accuracy
    } else {
        None
    };
    let mut f = file.clone();
    f.language.modified = true;
    student.save(&cfg.out, &f)?;
    let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len().max(1) as f64;
    let k = losses.len().min(5);
    let res = RestoreResult {
        out: cfg.out.clone(),
        form: cfg.form,
        steps: cfg.steps,
        first_loss: mean(&losses[..k]),
        last_loss: mean(&losses[losses.len() - k..]),
        vision_sparsity: (sp_before.0, sp_after.0),
        language_sparsity: (sp_before.1, sp_after.1),
        mask_kept: kept,
        accuracy_before: before,
        accuracy_after: after,
        eval_questions: cfg.eval_questions,
        seconds: t0.elapsed().as_secs_f64(),
    };
    tessera_core::fsx::write_json_atomic(cfg.out.join("restore.json"), &res)?;
    Ok(res)
}
