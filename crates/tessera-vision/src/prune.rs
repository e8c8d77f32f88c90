//! `tessera vlm prune`: [`VlmPruneConfig`] → [`run`] → [`VlmPruneResult`]: the modality-aware pruning of
//! "Rethinking Pruning for Vision-Language Models: Strategies for Effective Sparsity and Performance Restoration"
//! (He et al. 2024, arXiv:2404.02424; VLM-Compression `--vit_prune_spec` / `--t5_prune_spec`): the vision and
//! the language blocks get separate sparsities (a ratio, an N:M pattern, or none), uniform within each tower.
//!
//! Protocol (both reference codes' layer loop, applied to each tower in turn, vision first):
//! 1. Calibration: `calib` (128) image–question pairs drawn from the easy-vqa training split, each with its
//!    reference answer (the paper uses 128 image–caption pairs).
//! 2. Vision: the patch embeddings of the calibration images enter block 0; for each ViT block, its four
//!    linears (`qkv, proj, fc1, fc2`) observe one pass of the dense block, are pruned, and the pruned block
//!    produces the next block's inputs. The patch embedding, the norms and the projector are never pruned.
//! 3. Language: the full input embeddings of the calibration prompts (text + projected image tokens from the
//!    already pruned encoder) enter block 0; the seven projections of each block are pruned in the same way.
//!    Embeddings, norms and the head are never pruned.
//!
//! The per-matrix decision is tessera-prune's `prune_linear` (Wanda per output row, SparseGPT with OBS updates,
//! magnitude one threshold per matrix). Deviation: VLM-Compression's Wanda uses one threshold per matrix on the
//! ViT; here both towers use Wanda's per-row comparison group.
use crate::data::{patchify, EasyVqa};
use crate::error::{Result, VisionError};
use crate::llava::Vlm;
use crate::vit::BLOCK_LINEARS;
use candle_core::{Device, Tensor};
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Instant;
use tessera_lm::model::Forward;
use tessera_lm::{Grad, Proj, WeightMode};
use tessera_prune::prune::{prune_linear, Method};
use tessera_prune::{Pattern, SparseGptOptions};

/// The sparsity of one tower: none, or a pattern.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TowerSpec(pub Option<Pattern>);

impl fmt::Display for TowerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("none"),
            Some(p) => write!(f, "{p}"),
        }
    }
}

impl FromStr for TowerSpec {
    type Err = VisionError;
    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("none") || t == "0" {
            return Ok(TowerSpec(None));
        }
        Ok(TowerSpec(Some(t.parse::<Pattern>().map_err(|e| {
            VisionError::Invalid(format!(
                "tower sparsity `{s}`: {e} (a ratio such as 0.5, N:M such as 2:4, or none)"
            ))
        })?)))
    }
}

/// A pruning run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VlmPruneConfig {
    /// The dense VLM directory.
    pub model: PathBuf,
    /// Pruning method.
    pub method: Method,
    /// Sparsity of the vision blocks.
    pub vision: TowerSpec,
    /// Sparsity of the language blocks.
    pub language: TowerSpec,
    /// Output VLM directory.
    pub out: PathBuf,
    /// Calibration image–question pairs.
    pub calib: usize,
    /// Seed of the calibration draw.
    pub seed: u64,
    /// Never download.
    pub offline: bool,
}

/// Sparsity measured on one tower after pruning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TowerSparsity {
    /// Matrices pruned.
    pub matrices: usize,
    /// Zero weights / weights over the pruned matrices (measured on the weights, not the masks).
    pub sparsity: f64,
}

/// What `tessera vlm prune --json` prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VlmPruneResult {
    /// Output directory.
    pub out: PathBuf,
    /// Method.
    pub method: Method,
    /// Vision spec.
    pub vision_spec: String,
    /// Language spec.
    pub language_spec: String,
    /// Measured vision sparsity.
    pub vision: TowerSparsity,
    /// Measured language sparsity.
    pub language: TowerSparsity,
    /// Calibration pairs used.
    pub calib: usize,
    /// Wall seconds.
    pub seconds: f64,
}

/// Draws `n` calibration examples (question, answer, image) from the easy-vqa training split.
pub fn calibration(
    vlm: &Vlm,
    vqa: &EasyVqa,
    n: usize,
    seed: u64,
) -> Result<Vec<(Tensor, crate::llava::Example)>> {
    let mut rng = tessera_core::rng::derived(seed, "vlm-calibration");
    let c = vlm.vit.config;
    (0..n)
        .map(|_| {
            let q = &vqa.train.questions[rng.gen_range(0..vqa.train.questions.len())];
            let p = patchify(&vqa.train.images[q.image], &c)?;
            let t = Tensor::from_vec(p, (1, c.patches(), c.patch_dim()), &Device::Cpu)?;
            Ok((t, vlm.example(&q.text, &vqa.answers[q.answer])?))
        })
        .collect()
}

/// Prunes the vision blocks of `vlm` with `pattern` on the calibration images (`[1, patches, patch_dim]` each).
pub fn prune_vision(
    vlm: &mut Vlm,
    images: &[Tensor],
    method: Method,
    pattern: &Pattern,
) -> Result<usize> {
    let sg = SparseGptOptions::default();
    let gram = method == Method::SparseGpt;
    let heads = vlm.vit.config.heads;
    let mut x = if images.is_empty() {
        None
    } else {
        Some(
            vlm.vit
                .embed_patches(&Tensor::cat(images, 0)?, Grad::Off, WeightMode::Sparse)?,
        )
    };
    if method.needs_data() && x.is_none() {
        return Err(VisionError::Invalid(format!(
            "{method} needs calibration images"
        )));
    }
    let mut n = 0;
    for bi in 0..vlm.vit.blocks.len() {
        let block = &mut vlm.vit.blocks[bi];
        for (_, l) in block.linears_mut() {
            pattern.check_width(l.dims().1)?;
            if method.needs_data() {
                l.observe(gram);
            }
        }
        if method.needs_data() {
            let xi = x.as_ref().expect("checked");
            block.forward(xi, heads, Grad::Off, WeightMode::Sparse)?;
        }
        for (_, l) in block.linears_mut() {
            let stats = l.take_stats();
            prune_linear(method, l, stats.as_ref(), pattern, &sg)?;
            n += 1;
        }
        if let Some(xi) = x.take() {
            x = Some(block.forward(&xi, heads, Grad::Off, WeightMode::Sparse)?);
        }
    }
    debug_assert_eq!(n, vlm.vit.blocks.len() * BLOCK_LINEARS.len());
    Ok(n)
}

/// Prunes the language blocks of `vlm` with `pattern` on the calibration prompts (image tokens from the current
/// encoder).
pub fn prune_language(
    vlm: &mut Vlm,
    calib: &[(Tensor, crate::llava::Example)],
    method: Method,
    pattern: &Pattern,
) -> Result<usize> {
    let sg = SparseGptOptions::default();
    let gram = method == Method::SparseGpt;
    let mut inputs = Vec::with_capacity(calib.len());
    if method.needs_data() {
        if calib.is_empty() {
            return Err(VisionError::Invalid(format!(
                "{method} needs calibration pairs"
            )));
        }
        for (img, e) in calib {
            let emb = vlm.image_embeds(img, Grad::Off, WeightMode::Sparse)?;
            let mut after = e.post.clone();
            after.extend(&e.answer);
            let dev = vlm.lm.device().clone();
            let ids = |v: &[u32]| -> Result<Tensor> {
                Ok(vlm
                    .lm
                    .embed_tokens(&Tensor::new(v, &dev)?.unsqueeze(0)?, false)?)
            };
            inputs.push(Tensor::cat(&[ids(&e.pre)?, emb, ids(&after)?], 1)?);
        }
    }
    let mut n = 0;
    for layer in 0..vlm.lm.blocks.len() {
        for &p in Proj::ALL.iter() {
            let l = vlm.lm.blocks[layer].linear_mut(p);
            pattern.check_width(l.dims().1)?;
            if method.needs_data() {
                l.observe(gram);
            }
        }
        let run = |vlm: &Vlm, xs: &[Tensor]| -> Result<Vec<Tensor>> {
            xs.iter()
                .map(|x| {
                    let ctx = vlm.lm.step_context(1, x.dim(1)?, &Forward::default())?;
                    Ok(vlm.lm.block_forward(layer, x, &ctx, None, None, None)?)
                })
                .collect()
        };
        if method.needs_data() {
            run(vlm, &inputs)?;
        }
        for &p in Proj::ALL.iter() {
            let l = vlm.lm.blocks[layer].linear_mut(p);
            let stats = l.take_stats();
            prune_linear(method, l, stats.as_ref(), pattern, &sg)?;
            n += 1;
        }
        if method.needs_data() {
            inputs = run(vlm, &inputs)?;
        }
    }
    Ok(n)
}

fn zero_share(ls: &[&tessera_lm::Linear]) -> Result<f64> {
    let (mut z, mut t) = (0usize, 0usize);
    for l in ls {
        let w: Vec<f32> = l.weight().as_tensor().flatten_all()?.to_vec1()?;
        z += w.iter().filter(|v| **v == 0.0).count();
        t += w.len();
    }
    Ok(z as f64 / t.max(1) as f64)
}

/// Measured sparsity of the vision blocks and of the language blocks (zeros / weights).
pub fn measure(vlm: &Vlm) -> Result<(f64, f64)> {
    let v: Vec<&tessera_lm::Linear> = vlm
        .vit
        .blocks
        .iter()
        .flat_map(|b| b.linears().map(|(_, l)| l))
        .collect();
    let l: Vec<&tessera_lm::Linear> = vlm
        .lm
        .blocks
        .iter()
        .flat_map(|b| b.linears().map(|(_, l)| l).to_vec())
        .collect();
    Ok((zero_share(&v)?, zero_share(&l)?))
}

/// Prunes an already loaded VLM in place (the study reuses the dense model).
pub fn prune_loaded(
    vlm: &mut Vlm,
    vqa: &EasyVqa,
    method: Method,
    vision: TowerSpec,
    language: TowerSpec,
    calib: usize,
    seed: u64,
) -> Result<(usize, usize)> {
    let pairs = if method.needs_data() {
        calibration(vlm, vqa, calib, seed)?
    } else {
        vec![]
    };
    let mut nv = 0;
    if let Some(p) = vision.0 {
        let imgs: Vec<Tensor> = pairs.iter().map(|(t, _)| t.clone()).collect();
        nv = prune_vision(vlm, &imgs, method, &p)?;
    }
    let mut nl = 0;
    if let Some(p) = language.0 {
        // Calibration prompts carry the image tokens of the (already pruned) encoder.
        nl = prune_language(vlm, &pairs, method, &p)?;
    }
    Ok((nv, nl))
}

/// Loads, prunes and saves.
pub fn run(cfg: &VlmPruneConfig) -> Result<VlmPruneResult> {
    if cfg.vision.0.is_none() && cfg.language.0.is_none() {
        return Err(VisionError::Invalid(
            "nothing to prune: both towers are `none`".into(),
        ));
    }
    if cfg.calib > 4096 {
        return Err(VisionError::Invalid(format!(
            "--calib {} is more than 4096 pairs",
            cfg.calib
        )));
    }
    if cfg.method.needs_data() && cfg.calib == 0 {
        return Err(VisionError::Invalid(format!(
            "{} needs --calib ≥ 1",
            cfg.method
        )));
    }
    let t0 = Instant::now();
    let (mut vlm, file) = Vlm::load(&cfg.model, cfg.offline)?;
    let vqa = EasyVqa::load(
        &crate::data::easy_vqa_root(cfg.offline)?,
        vlm.vit.config.image_size,
        None,
    )?;
    let (nv, nl) = prune_loaded(
        &mut vlm,
        &vqa,
        cfg.method,
        cfg.vision,
        cfg.language,
        cfg.calib,
        cfg.seed,
    )?;
    let (sv, sl) = measure(&vlm)?;
    let mut f = file.clone();
    f.language.modified = file.language.modified || nl > 0;
    vlm.save(&cfg.out, &f)?;
    let res = VlmPruneResult {
        out: cfg.out.clone(),
        method: cfg.method,
        vision_spec: cfg.vision.to_string(),
        language_spec: cfg.language.to_string(),
        vision: TowerSparsity {
            matrices: nv,
            sparsity: sv,
        },
        language: TowerSparsity {
            matrices: nl,
            sparsity: sl,
        },
        calib: if cfg.method.needs_data() {
            cfg.calib
        } else {
            0
        },
        seconds: t0.elapsed().as_secs_f64(),
    };
    tessera_core::fsx::write_json_atomic(cfg.out.join("vlm_prune.json"), &res)?;
    Ok(res)
}
