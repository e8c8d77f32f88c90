//! The `tessera tour` section of the VLM: a short training run continuing the cached trained model when there is
//! one (`$TESSERA_HOME/cache/vlm`, e.g. a copy of `tessera vlm train`'s `model/`), else from a fresh encoder, and an
//! evaluation on a small test slice of both datasets.
use crate::error::Result;
use crate::eval::{evaluate, EvalConfig};
use crate::train::{build_model, train_with, TrainConfig, TrainData};
use tessera_core::record::RunDir;
use tessera_core::report::{Report, TourSection};

/// Steps of the tour's training run.
pub const TOUR_STEPS: u64 = 4;

/// Runs the section into `dir`.
pub fn tour(dir: &RunDir, offline: bool) -> Result<TourSection> {
    let cached = tessera_core::assets::home().join("cache").join("vlm");
    let mut cfg = TrainConfig::new(TOUR_STEPS, dir.file("vlm"));
    cfg.settings.batch = 2;
    cfg.progress = false;
    cfg.offline = offline;
    if cached.join("config.json").is_file() {
        cfg.settings.init = Some(cached.clone());
    }
    let vlm = build_model(&cfg.settings, offline)?;
    let data = TrainData::load(cfg.settings.vision.image_size, true, offline)?;
    let r = train_with(&cfg, vlm, &data, &mut |_, _, _| {})?;
    let (vlm, _) = crate::llava::Vlm::load(&r.model, offline)?;
    let ev = EvalConfig {
        model: r.model.clone(),
        vqa_limit: Some(20),
        fashion_limit: Some(10),
        offline,
    };
    let e = evaluate(
        &vlm,
        Some(&data.vqa),
        data.fashion.as_ref(),
        &ev,
        &mut |_, _, _| {},
    )?;
    let mut rep = Report::new("Vision-language model (tessera-vision)");
    rep.para(&format!(
        "{} training steps of batch 2 ({}), loss {:.3} → {:.3}, {:.2} images/s. easy-vqa accuracy on {} test \
         questions: {:.1}%; Fashion-MNIST zero-shot on {} images: {:.1}% (a tour-sized run: see the crate README \
         for the trained model).",
        r.steps - r.resumed_from,
        if cfg.settings.init.is_some() { "continuing the cached tour model" } else { "fresh encoder" },
        r.first_loss,
        r.last_loss,
        r.images_per_s,
        e.easyvqa_questions,
        100.0 * e.easyvqa_accuracy.unwrap_or(0.0),
        e.fashion_mnist_images,
        100.0 * e.fashion_mnist_accuracy.unwrap_or(0.0)
    ));
    let json = serde_json::json!({"train": r, "eval": e});
    Ok(TourSection::new("vlm", rep, json))
}
