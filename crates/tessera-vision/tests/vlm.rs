//! The VLM on tiny random towers: shapes, gradients through the language model, checkpoint round trip, pruning
//! one tower leaves the other bit-identical, typed image errors, exact resume and refusal of other settings.
use candle_core::{Device, Tensor};
use std::path::Path;
use tessera_lm::{Grad, WeightMode};
use tessera_prune::prune::Method;
use tessera_prune::Pattern;
use tessera_vision::data::{patchify, EasyVqa, Question, RgbImage, VqaSplit};
use tessera_vision::llava::{TowerModes, Vlm};
use tessera_vision::train::{TrainConfig, TrainData};
use tessera_vision::{VisionError, VitConfig};

fn tiny_vit() -> VitConfig {
    VitConfig {
        image_size: 16,
        channels: 3,
        patch: 4,
        width: 16,
        layers: 2,
        heads: 2,
        mlp_ratio: 2,
        pool: 2,
    }
}

fn tiny_vlm(dir: &Path) -> Vlm {
    let p = dir.join("tiny.gguf");
    tessera_lm::testing::write_tiny_gguf(&p, 3).unwrap();
    Vlm::fresh(tiny_vit(), 24, tessera_lm::load(&p).unwrap(), 1).unwrap()
}

fn image(seed: u8) -> RgbImage {
    RgbImage {
        side: 16,
        bytes: (0..16 * 16 * 3)
            .map(|i| ((i * 7 + seed as usize * 31) % 256) as u8)
            .collect(),
    }
}

fn patches(vlm: &Vlm, imgs: &[RgbImage]) -> Tensor {
    let c = vlm.vit.config;
    let mut v = vec![];
    for i in imgs {
        v.extend(patchify(i, &c).unwrap());
    }
    Tensor::from_vec(v, (imgs.len(), c.patches(), c.patch_dim()), &Device::Cpu).unwrap()
}

#[test]
fn patch_embedding_and_projector_shapes() {
    let d = tempfile::tempdir().unwrap();
    let vlm = tiny_vlm(d.path());
    let x = patches(&vlm, &[image(1), image(2), image(3)]);
    assert_eq!(x.dims(), &[3, 16, 48]);
    let e = vlm
        .vit
        .embed_patches(&x, Grad::Off, WeightMode::Sparse)
        .unwrap();
    assert_eq!(e.dims(), &[3, 16, 16]);
    let t = vlm.vit.forward(&x, Grad::Off, WeightMode::Sparse).unwrap();
    assert_eq!(
        t.dims(),
        &[3, 4, 16],
        "2×2 pooling of a 4×4 patch grid gives 4 image tokens"
    );
    let y = vlm.image_embeds(&x, Grad::Off, WeightMode::Sparse).unwrap();
    assert_eq!(y.dims(), &[3, 4, vlm.lm.config.hidden_size]);
    // Wrong patch shape is a typed error, not a panic.
    let bad = Tensor::zeros((1, 5, 48), candle_core::DType::F32, &Device::Cpu).unwrap();
    assert!(vlm
        .vit
        .forward(&bad, Grad::Off, WeightMode::Sparse)
        .is_err());
}

#[test]
fn a_gradient_reaches_the_encoder_through_the_frozen_language_model() {
    let d = tempfile::tempdir().unwrap();
    let vlm = tiny_vlm(d.path());
    let x = patches(&vlm, &[image(1), image(2)]);
    let ex = vec![
        vlm.example("what shape?", "circle").unwrap(),
        vlm.example("is it red?", "no").unwrap(),
    ];
    let modes = TowerModes {
        vision: Grad::All,
        language: Grad::Adapters,
        ..Default::default()
    };
    let loss = vlm.loss(&x, &ex, modes).unwrap();
    let g = loss.backward().unwrap();
    let pe = g
        .get(vlm.vit.patch_embed.weight().as_tensor())
        .expect("patch-embedding gradient");
    let norm = pe
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(norm > 0.0 && norm.is_finite(), "gradient norm {norm}");
    assert!(g
        .get(vlm.projector.fc2.bias().unwrap().as_tensor())
        .is_some());
    // The language model is frozen: none of its weights gets a gradient.
    for (n, v) in vlm.lm.named_vars() {
        assert!(g.get(v.as_tensor()).is_none(), "{n} got a gradient");
    }
    // The loss depends on the image: another image changes it.
    let y = patches(&vlm, &[image(9), image(8)]);
    let l2 = vlm
        .loss(&y, &ex, TowerModes::default())
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert_ne!(l2, loss.to_scalar::<f32>().unwrap());
}

#[test]
fn save_and_load_round_trip() {
    let d = tempfile::tempdir().unwrap();
    let vlm = tiny_vlm(d.path());
    let base = d.path().join("tiny.gguf");
    let file = vlm.file(base.to_str().unwrap(), None, false);
    let out = d.path().join("vlm");
    vlm.save(&out, &file).unwrap();
    let (back, f2) = Vlm::load(&out, true).unwrap();
    assert_eq!(f2, file);
    let x = patches(&vlm, &[image(4)]);
    let a = vlm.image_embeds(&x, Grad::Off, WeightMode::Sparse).unwrap();
    let b = back
        .image_embeds(&x, Grad::Off, WeightMode::Sparse)
        .unwrap();
    assert_eq!(tessera_lm::testing::max_abs_diff(&a, &b), 0.0);
    let (pre, post) = vlm.prompt("what color?").unwrap();
    let c = vec![
        vlm.answer_tokens("red").unwrap(),
        vlm.answer_tokens("blue").unwrap(),
    ];
    assert_eq!(
        vlm.score_candidates(&x, &pre, &post, &c).unwrap(),
        back.score_candidates(&x, &pre, &post, &c).unwrap()
    );
    // Not a VLM directory: a clear checkpoint error.
    let err = Vlm::load(d.path(), true).err().unwrap();
    assert!(matches!(err, VisionError::Checkpoint { .. }), "{err}");
}

fn lm_bytes(vlm: &Vlm) -> Vec<(String, Vec<f32>)> {
    vlm.lm
        .named_vars()
        .into_iter()
        .map(|(n, v)| {
            (
                n,
                v.as_tensor()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap(),
            )
        })
        .collect()
}

#[test]
fn pruning_the_vision_tower_leaves_the_language_tower_bit_identical() {
    let d = tempfile::tempdir().unwrap();
    for method in [Method::Wanda, Method::SparseGpt, Method::Magnitude] {
        let mut vlm = tiny_vlm(d.path());
        let before = lm_bytes(&vlm);
        let imgs: Vec<Tensor> = (0..4).map(|i| patches(&vlm, &[image(i)])).collect();
        let n = tessera_vision::prune::prune_vision(
            &mut vlm,
            &imgs,
            method,
            &Pattern::unstructured(0.5).unwrap(),
        )
        .unwrap();
        assert_eq!(n, 8);
        let after = lm_bytes(&vlm);
        assert!(before == after, "{method}: the language tower changed");
        let (vs, ls) = tessera_vision::prune::measure(&vlm).unwrap();
        assert!((vs - 0.5).abs() < 0.02, "{method}: vision sparsity {vs}");
        assert!(ls < 0.01, "{method}: language sparsity {ls}");
    }
    // And the other way round, at 2:4: the vision tower is untouched.
    let mut vlm = tiny_vlm(d.path());
    let vbefore: Vec<Vec<f32>> = vlm
        .vit
        .named_vars()
        .iter()
        .map(|(_, v)| v.as_tensor().flatten_all().unwrap().to_vec1().unwrap())
        .collect();
    let calib: Vec<_> = (0..3)
        .map(|i| {
            (
                patches(&vlm, &[image(i)]),
                vlm.example("what shape?", "circle").unwrap(),
            )
        })
        .collect();
    tessera_vision::prune::prune_language(
        &mut vlm,
        &calib,
        Method::Wanda,
        &Pattern::nm(2, 4).unwrap(),
    )
    .unwrap();
    let vafter: Vec<Vec<f32>> = vlm
        .vit
        .named_vars()
        .iter()
        .map(|(_, v)| v.as_tensor().flatten_all().unwrap().to_vec1().unwrap())
        .collect();
    assert!(vbefore == vafter);
    let (_, ls) = tessera_vision::prune::measure(&vlm).unwrap();
    assert!((ls - 0.5).abs() < 0.01, "language sparsity {ls}");
}

#[test]
fn an_unreadable_image_is_a_typed_error() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("not-an-image.png");
    std::fs::write(&p, b"this is text").unwrap();
    let e = tessera_vision::data::load_image(&p, 64).unwrap_err();
    assert!(matches!(e, VisionError::Image { .. }), "{e}");
    assert!(e.to_string().contains("not-an-image.png"), "{e}");
    let e = tessera_vision::data::load_image(&d.path().join("missing.png"), 64).unwrap_err();
    assert!(matches!(e, VisionError::Image { .. }), "{e}");
    // A real PNG decodes (and is resized to the encoder's side).
    let png = d.path().join("ok.png");
    tessera_vision::data::save_png(&image(5), &png).unwrap();
    let back = tessera_vision::data::load_image(&png, 16).unwrap();
    assert_eq!(back, image(5));
    assert_eq!(
        tessera_vision::data::load_image(&png, 8)
            .unwrap()
            .bytes
            .len(),
        8 * 8 * 3
    );
}

fn synthetic_data() -> TrainData {
    let split = VqaSplit {
        images: (0..4).map(image).collect(),
        questions: (0..8)
            .map(|i| Question {
                text: if i % 2 == 0 {
                    "what shape?".into()
                } else {
                    "is it red?".into()
                },
                answer: i % 2,
                image: i % 4,
            })
            .collect(),
    };
    TrainData {
        vqa: EasyVqa {
            answers: vec!["circle".into(), "no".into()],
            train: split.clone(),
            test: split,
        },
        fashion: None,
    }
}

fn params(vlm_dir: &Path) -> Vec<f32> {
    let (v, _) = Vlm::load(vlm_dir, true).unwrap();
    v.vision_tensors()
        .into_iter()
        .collect::<std::collections::BTreeMap<_, _>>()
        .values()
        .flat_map(|t| t.flatten_all().unwrap().to_vec1::<f32>().unwrap())
        .collect()
}

#[test]
fn training_resumes_exactly_and_refuses_other_settings() {
    let d = tempfile::tempdir().unwrap();
    let base = d.path().join("tiny.gguf");
    tessera_lm::testing::write_tiny_gguf(&base, 3).unwrap();
    let data = synthetic_data();
    let mk = |steps: u64, out: &Path| {
        let mut c = TrainConfig::new(steps, out.to_path_buf());
        c.settings.vision = tiny_vit();
        c.settings.projector_hidden = 24;
        c.settings.language = base.to_str().unwrap().into();
        c.settings.batch = 2;
        c.settings.caption_fraction = 0.0;
        c.settings.warmup = 0;
        c.checkpoint_every = 1;
        c.offline = true;
        c
    };
    let run = |c: &TrainConfig| {
        let vlm = tessera_vision::train::build_model(&c.settings, true).unwrap();
        tessera_vision::train::train_with(c, vlm, &data, &mut |_, _, _| {})
    };
    let straight = d.path().join("straight");
    let r = run(&mk(3, &straight)).unwrap();
    assert_eq!(r.loss_curve.len(), 3);
    assert!(r.loss_curve.iter().all(|p| p.loss.is_finite()));
    let split = d.path().join("split");
    run(&mk(2, &split)).unwrap();
    let r2 = run(&mk(3, &split)).unwrap();
    assert_eq!(r2.resumed_from, 2);
    assert_eq!(
        params(&straight.join("model")),
        params(&split.join("model"))
    );
    // Other settings: refused.
    let mut other = mk(4, &split);
    other.settings.lr = 5e-4;
    let e = run(&other).err().unwrap();
    assert!(e.to_string().contains("other settings"), "{e}");
}
