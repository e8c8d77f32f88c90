//! `prune::run` → pruned checkpoint directory → `sparselora::run` on the tiny model: the merged SparseLoRA model
//! computes what was trained and keeps the mask, plain LoRA loses it, resume continues exactly, and bad input is
//! a typed error that writes nothing.
use std::path::{Path, PathBuf};
use tessera_lm::LoraForm;
use tessera_prune::checkpoint_dir::{read_masks, MASKS_FILE};
use tessera_prune::prune::{self, PruneConfig};
use tessera_prune::sparselora::{self, SparseLoraConfig};
use tessera_prune::{
    Allocation, CalibConfig, Method, Pattern, Propagate, PruneError, SparseGptOptions, WindowMode,
};

struct Env {
    dir: tempfile::TempDir,
    model: PathBuf,
    text: PathBuf,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.gguf");
    tessera_lm::testing::write_tiny_gguf(&model, 11).unwrap();
    let text = dir.path().join("text.txt");
    let body: String = (0..400)
        .map(|i| format!("the hell {} well then {} ", i % 17, i % 5))
        .collect();
    std::fs::write(&text, body).unwrap();
    Env { dir, model, text }
}

fn prune_cfg(e: &Env, method: Method, pattern: Pattern, out: &str) -> PruneConfig {
    PruneConfig {
        model: e.model.clone(),
        method,
        allocation: Allocation::uniform(pattern),
        calib: CalibConfig {
            text: Some(e.text.clone()),
            nsamples: 4,
            seqlen: 32,
            windows: WindowMode::First,
            seed: 0,
        },
        propagate: Propagate::Pruned,
        sparsegpt: SparseGptOptions::default(),
        out: e.dir.path().join(out),
        eval: None,
    }
}

fn sl_cfg(e: &Env, pruned: &Path, steps: u64, out: &str) -> SparseLoraConfig {
    let mut c = SparseLoraConfig::new(
        pruned.into(),
        e.model.clone(),
        steps,
        e.dir.path().join(out),
    );
    c.seqlen = 32;
    c.rank = 4;
    c.lr = 1e-2;
    c.lr_end = 1e-3;
    c.data = Some(e.text.clone());
    c.checkpoint_every = 2;
    c
}

#[test]
fn pruned_dir_loads_with_exact_sparsity_and_masks() {
    let e = env();
    for (method, pat) in [
        (Method::Wanda, Pattern::nm(2, 4).unwrap()),
        (Method::SparseGpt, Pattern::unstructured(0.5).unwrap()),
        (Method::Magnitude, Pattern::unstructured(0.7).unwrap()),
    ] {
        let cfg = prune_cfg(&e, method, pat, &format!("p-{method}"));
        let r = prune::run(&cfg, &mut |_, _| {}).unwrap();
        assert_eq!(r.matrices.len(), 14);
        let masks = read_masks(&cfg.out).unwrap();
        assert_eq!(masks.len(), 14);
        assert!(cfg.out.join("prune.json").is_file());
        let m = tessera_lm::load(&cfg.out).unwrap();
        let info = tessera_prune::info(&m, &cfg.out).unwrap();
        assert_eq!(info.masks_violated, 0);
        for mi in &info.matrices {
            let mask = &masks[&mi.name];
            // Measured zeros equal the mask (no kept weight happens to be 0 in a random model).
            assert_eq!(mi.zeros, mask.pruned(), "{}", mi.name);
            match pat {
                Pattern::NM { .. } => mask.verify(&pat, true).unwrap(),
                _ if method == Method::Magnitude => mask.verify(&pat, false).unwrap(),
                _ => {}
            }
        }
        if let Pattern::NM { .. } = pat {
            assert!(info.nm_patterns.contains(&"2:4".to_string()));
            assert!((r.sparsity - 0.5).abs() < 1e-12);
        }
    }
}

#[test]
fn sparselora_merge_equals_trained_forward_and_keeps_the_mask() {
    let e = env();
    let cfg = prune_cfg(&e, Method::Wanda, Pattern::nm(2, 4).unwrap(), "pruned");
    prune::run(&cfg, &mut |_, _| {}).unwrap();
    let masks = read_masks(&cfg.out).unwrap();
    let sl = sl_cfg(&e, &cfg.out, 3, "sl");
    let r = sparselora::run(&sl, &mut |_, _, _| true).unwrap();
    assert_eq!(r.loss_curve.len(), 3);
    assert!(r.teacher_exact);
    assert!(r.mask_kept);
    assert!(r.merge_max_abs_diff < 1e-4, "{}", r.merge_max_abs_diff);
    assert!((r.sparsity_after_merge - 0.5).abs() < 1e-12);
    // The adapters did change the weights (B ≠ 0 after training), inside the mask only.
    let merged = read_masks(&sl.out).unwrap();
    assert_eq!(merged, masks);
    let info = tessera_prune::info_dir(&sl.out).unwrap();
    assert_eq!(info.masks_violated, 0);
    assert!(info.nm_patterns.contains(&"2:4".to_string()));
    assert_eq!(
        info.zeros,
        masks.values().map(|m| m.pruned()).sum::<usize>()
    );
    let a = candle_core::safetensors::load(
        cfg.out.join("model.safetensors"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let b =
        candle_core::safetensors::load(sl.out.join("model.safetensors"), &candle_core::Device::Cpu)
            .unwrap();
    let name = "model.layers.0.mlp.up_proj.weight";
    assert!(tessera_lm::testing::max_abs_diff(&a[name], &b[name]) > 0.0);
    // Plain LoRA: merged, the update is dense and the sparsity is lost.
    let mut pl = sl_cfg(&e, &cfg.out, 3, "plain");
    pl.form = LoraForm::Lora;
    let r = sparselora::run(&pl, &mut |_, _, _| true).unwrap();
    assert!(!r.mask_kept);
    assert!(r.sparsity_after_merge < 0.1, "{}", r.sparsity_after_merge);
    assert!(r.merge_max_abs_diff < 1e-4);
    assert!(!pl.out.join(MASKS_FILE).exists());
}

#[test]
fn resume_continues_exactly_and_refuses_other_settings() {
    let e = env();
    let cfg = prune_cfg(
        &e,
        Method::Wanda,
        Pattern::unstructured(0.5).unwrap(),
        "pruned",
    );
    prune::run(&cfg, &mut |_, _| {}).unwrap();
    let full = sparselora::run(&sl_cfg(&e, &cfg.out, 4, "full"), &mut |_, _, _| true).unwrap();
    let part = sl_cfg(&e, &cfg.out, 4, "part");
    let err = sparselora::run(&part, &mut |s, _, _| s < 3).unwrap_err();
    assert!(matches!(err, PruneError::Stopped { step: 3, .. }), "{err}");
    assert!(!part.out.exists());
    // Without --resume an existing checkpoint is refused.
    assert!(matches!(
        sparselora::run(&part, &mut |_, _, _| true),
        Err(PruneError::Invalid(_))
    ));
    // Other settings are refused.
    let mut other = part.clone();
    other.resume = true;
    other.lambda = 0.5;
    assert!(matches!(
        sparselora::run(&other, &mut |_, _, _| true),
        Err(PruneError::Checkpoint(_))
    ));
    let mut resumed = part.clone();
    resumed.resume = true;
    let r = sparselora::run(&resumed, &mut |_, _, _| true).unwrap();
    assert_eq!(r.resumed_from, Some(3));
    assert_eq!(r.loss_curve.len(), 4);
    for (a, b) in r.loss_curve.iter().zip(&full.loss_curve) {
        assert!(
            (a.loss - b.loss).abs() < 1e-4 * b.loss.abs().max(1.0),
            "{a:?} vs {b:?}"
        );
    }
    // A different pruned checkpoint under the same checkpoints is refused (its masks differ).
    let cfg2 = prune_cfg(
        &e,
        Method::Magnitude,
        Pattern::unstructured(0.5).unwrap(),
        "pruned2",
    );
    prune::run(&cfg2, &mut |_, _| {}).unwrap();
    let mut wrong = resumed.clone();
    wrong.pruned = cfg2.out.clone();
    assert!(matches!(
        sparselora::run(&wrong, &mut |_, _, _| true),
        Err(PruneError::Checkpoint(_))
    ));
}

#[test]
fn bad_input_is_a_typed_error_and_writes_nothing() {
    let e = env();
    // Sparsity outside [0, 1).
    let mut c = prune_cfg(&e, Method::Wanda, Pattern::unstructured(0.5).unwrap(), "o1");
    c.allocation = Allocation::uniform(Pattern::Unstructured { sparsity: 1.0 });
    assert!(matches!(
        prune::run(&c, &mut |_, _| {}),
        Err(PruneError::Sparsity(_))
    ));
    assert!(!c.out.exists());
    // N ≥ M.
    c.allocation = Allocation::uniform(Pattern::NM { n: 4, m: 4 });
    assert!(matches!(
        prune::run(&c, &mut |_, _| {}),
        Err(PruneError::Pattern { .. })
    ));
    assert!(!c.out.exists());
    // Calibration text shorter than one window.
    let short = e.dir.path().join("short.txt");
    std::fs::write(&short, "the hell").unwrap();
    let mut c = prune_cfg(&e, Method::Wanda, Pattern::nm(2, 4).unwrap(), "o2");
    c.calib.text = Some(short.clone());
    let err = prune::run(&c, &mut |_, _| {}).unwrap_err();
    assert!(matches!(err, PruneError::TextTooShort { .. }), "{err}");
    assert!(err.to_string().contains("short.txt"), "{err}");
    assert!(!c.out.exists());
    // An unrelated non-empty --out is never replaced.
    let keep = e.dir.path().join("keep");
    std::fs::create_dir(&keep).unwrap();
    std::fs::write(keep.join("notes.txt"), "mine").unwrap();
    let mut c = prune_cfg(&e, Method::Magnitude, Pattern::nm(2, 4).unwrap(), "keep");
    c.out = keep.clone();
    assert!(matches!(
        prune::run(&c, &mut |_, _| {}),
        Err(PruneError::Invalid(_))
    ));
    assert_eq!(
        std::fs::read_to_string(keep.join("notes.txt")).unwrap(),
        "mine"
    );
    // A directory without masks given to sparselora.
    let plain = e.dir.path().join("plain");
    let m = tessera_lm::load(&e.model).unwrap();
    tessera_lm::export::export_hf_dir(&m, &plain).unwrap();
    let s = sl_cfg(&e, &plain, 2, "o3");
    assert!(matches!(
        sparselora::run(&s, &mut |_, _, _| true),
        Err(PruneError::NoMasks { .. })
    ));
    assert!(!s.out.exists());
    // A mask whose shape does not match its weight.
    let c = prune_cfg(&e, Method::Magnitude, Pattern::nm(2, 4).unwrap(), "pruned");
    prune::run(&c, &mut |_, _| {}).unwrap();
    let mp = c.out.join(MASKS_FILE);
    let mut t = candle_core::safetensors::load(&mp, &candle_core::Device::Cpu).unwrap();
    let name = "model.layers.1.self_attn.k_proj.weight";
    t.insert(
        name.to_string(),
        candle_core::Tensor::ones((3, 5), candle_core::DType::U8, &candle_core::Device::Cpu)
            .unwrap(),
    );
    candle_core::safetensors::save(&t, &mp).unwrap();
    let s = sl_cfg(&e, &c.out, 2, "o4");
    let err = sparselora::run(&s, &mut |_, _, _| true).unwrap_err();
    assert!(matches!(err, PruneError::MaskShape { .. }), "{err}");
    assert!(!s.out.exists());
    assert!(!s.checkpoint_root().exists());
    // Bad training numbers.
    let mut s = sl_cfg(&e, &c.out, 0, "o5");
    assert!(sparselora::run(&s, &mut |_, _, _| true).is_err());
    s.steps = 2;
    s.lambda = 1.5;
    assert!(sparselora::run(&s, &mut |_, _, _| true).is_err());
    assert!(!s.out.exists());
}
