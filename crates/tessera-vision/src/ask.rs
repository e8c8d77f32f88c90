//! `tessera vlm ask DIR --image FILE "question"`: a greedy answer, and the most likely of the 13 easy-vqa
//! answers with its probability among them.
use crate::data::{load_image, patchify};
use crate::error::Result;
use crate::llava::Vlm;
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The easy-vqa answers, for the scored answer of `ask`.
pub const EASY_VQA_ANSWERS: [&str; 13] = [
    "circle",
    "green",
    "red",
    "gray",
    "yes",
    "teal",
    "black",
    "rectangle",
    "yellow",
    "triangle",
    "brown",
    "blue",
    "no",
];

/// What `tessera vlm ask --json` prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AskResult {
    /// The image file.
    pub image: PathBuf,
    /// The question.
    pub question: String,
    /// Greedy answer (at most 16 tokens).
    pub answer: String,
    /// The most likely easy-vqa answer.
    pub best_choice: String,
    /// Its probability renormalised over the 13 answers.
    pub best_choice_prob: f64,
}

/// Answers `question` about the image file `image` with the VLM in `model`.
pub fn ask(model: &Path, image: &Path, question: &str, offline: bool) -> Result<AskResult> {
    if question.trim().is_empty() {
        return Err(crate::VisionError::Invalid("the question is empty".into()));
    }
    let (vlm, _) = Vlm::load(model, offline)?;
    let c = vlm.vit.config;
    let img = load_image(image, c.image_size)?;
    let patches = Tensor::from_vec(
        patchify(&img, &c)?,
        (1, c.patches(), c.patch_dim()),
        &Device::Cpu,
    )?;
    let answer = vlm.generate(&patches, question, 16)?;
    let (pre, post) = vlm.prompt(question)?;
    let cands: Vec<Vec<u32>> = EASY_VQA_ANSWERS
        .iter()
        .map(|a| vlm.answer_tokens(a))
        .collect::<Result<_>>()?;
    let s = vlm.score_candidates(&patches, &pre, &post, &cands)?;
    let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let z: f64 = s.iter().map(|v| (v - m).exp()).sum();
    let best = s.iter().position(|&v| v == m).unwrap_or(0);
    Ok(AskResult {
        image: image.into(),
        question: question.into(),
        answer,
        best_choice: EASY_VQA_ANSWERS[best].into(),
        best_choice_prob: 1.0 / z,
    })
}
