//! CAP / CAT training on a tiny random model: bit-identical weights after pause (kill) and resume, refusal of a
//! resume with other settings (nothing overwritten), output directories that load as models, CAT from CAP.
use std::path::{Path, PathBuf};
use tessera_aurora::cap::{self, CapConfig};
use tessera_aurora::cat::{self, CatConfig};
use tessera_aurora::redteam::{Area, HarmfulPrompt};

fn fixture(dir: &Path) -> (PathBuf, Vec<(String, PathBuf)>) {
    let model = dir.join("tiny.gguf");
    tessera_lm::testing::write_tiny_gguf(&model, 5).unwrap();
    let a = dir.join("a.txt");
    let b = dir.join("b.txt");
    std::fs::write(&a, "the cat sat on the mat.\n\nhello there, said the cat.\n\nthe end of the tale.\n\nanother short doc.\n").unwrap();
    std::fs::write(
        &b,
        "hei maailma\nhyvää huomenta\nkiitos paljon\nnäkemiin\nterve vaan\n",
    )
    .unwrap();
    (model, vec![("ua".into(), a), ("ub".into(), b)])
}

fn cap_cfg(
    model: &Path,
    streams: &[(String, PathBuf)],
    out: PathBuf,
    lora: Option<usize>,
) -> CapConfig {
    let mut c = CapConfig {
        model: model.display().to_string(),
        weights: "ua=0.6,ub=0.4".parse().unwrap(),
        window: 16,
        streams: streams.to_vec(),
        code_bytes: 0,
        out,
        checkpoint_every: 1,
        offline: true,
        ..Default::default()
    };
    c.train.steps = 4;
    c.train.batch = 2;
    c.train.grad_accum = 2;
    c.train.warmup_steps = 1;
    c.train.lr = 1e-2;
    c.train.lora = lora;
    c
}

fn bytes(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

fn resume_is_exact(lora: Option<usize>) {
    let dir = tempfile::tempdir().unwrap();
    let (model, streams) = fixture(dir.path());
    let a = cap::run(&cap_cfg(&model, &streams, dir.path().join("a"), lora)).unwrap();
    assert!(a.train.finished && a.train.steps_done == 4);
    assert!(a.train.loss_curve.iter().all(|l| l.is_finite()));
    // Interrupted after 2 steps (the checkpoint of step 2 is what a kill leaves), then resumed.
    let mut c = cap_cfg(&model, &streams, dir.path().join("b"), lora);
    c.pause_after = Some(2);
    let b1 = cap::run(&c).unwrap();
    assert!(!b1.train.finished && b1.train.steps_done == 2);
    assert!(!dir.path().join("b/model.safetensors").exists());
    c.pause_after = None;
    c.resume = true;
    let b = cap::run(&c).unwrap();
    assert_eq!(b.train.resumed_from, 2);
    assert_eq!(a.train.loss_curve, b.train.loss_curve);
    assert_eq!(a.windows_by_stream, b.windows_by_stream);
    assert_eq!(
        bytes(&dir.path().join("a/model.safetensors")),
        bytes(&dir.path().join("b/model.safetensors")),
        "weights after resume differ from the uninterrupted run"
    );
    // The output directory loads as a model and differs from the base.
    let m = tessera_lm::load(dir.path().join("a")).unwrap();
    let base = tessera_lm::load(&model).unwrap();
    let (x, y) = (&m.named_vars()[1].1, &base.named_vars()[1].1);
    assert!(
        tessera_lm::testing::max_abs_diff(x.as_tensor(), y.as_tensor()) > 0.0 || lora.is_some()
    );
}

#[test]
fn full_parameter_resume_is_bit_identical() {
    resume_is_exact(None);
}

#[test]
fn lora_resume_is_bit_identical() {
    resume_is_exact(Some(2));
}

#[test]
fn other_settings_and_missing_resume_are_refused_without_overwriting() {
    let dir = tempfile::tempdir().unwrap();
    let (model, streams) = fixture(dir.path());
    let out = dir.path().join("r");
    let mut c = cap_cfg(&model, &streams, out.clone(), None);
    c.pause_after = Some(1);
    cap::run(&c).unwrap();
    let latest = bytes(&out.join("checkpoints/LATEST"));
    let name = String::from_utf8(latest.clone()).unwrap();
    let state = bytes(
        &out.join("checkpoints")
            .join(name.trim())
            .join("model.safetensors"),
    );
    c.pause_after = None;
    c.resume = true;
    c.train.lr = 5e-3;
    let e = cap::run(&c).unwrap_err().to_string();
    assert!(e.contains("different settings") && e.contains("lr"), "{e}");
    c.train.lr = 1e-2;
    c.weights = "ua=0.5,ub=0.5".parse().unwrap();
    let e = cap::run(&c).unwrap_err().to_string();
    assert!(e.contains("different settings"), "{e}");
    c.weights = "ua=0.6,ub=0.4".parse().unwrap();
    c.resume = false;
    let e = cap::run(&c).unwrap_err().to_string();
    assert!(e.contains("--resume"), "{e}");
    assert_eq!(bytes(&out.join("checkpoints/LATEST")), latest);
    assert_eq!(
        bytes(
            &out.join("checkpoints")
                .join(name.trim())
                .join("model.safetensors")
        ),
        state
    );
    assert!(!out.join("model.safetensors").exists());
}

#[test]
fn cat_tunes_a_cap_directory_and_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (model, streams) = fixture(dir.path());
    let capd = dir.path().join("cap");
    let mut c = cap_cfg(&model, &streams, capd.clone(), None);
    c.train.steps = 2;
    cap::run(&c).unwrap();
    let harmful: Vec<HarmfulPrompt> = (0..24)
        .map(|i| HarmfulPrompt {
            text: format!("placeholder request {i}"),
            source: "test".into(),
            area: Area::ALL[i % 6],
        })
        .collect();
    let cfg = |out: PathBuf| {
        let mut t = CatConfig {
            model: capd.display().to_string(),
            train: c.train.clone(),
            max_len: 200,
            out,
            checkpoint_every: 1,
            offline: true,
            ..Default::default()
        };
        t.train.steps = 3;
        t
    };
    let a = cat::run_with(&cfg(dir.path().join("ca")), &harmful).unwrap();
    assert_eq!(a.examples["safety"], 12);
    assert_eq!(a.drawn.values().sum::<u64>(), 3 * 2 * 2);
    let mut b = cfg(dir.path().join("cb"));
    b.pause_after = Some(1);
    cat::run_with(&b, &harmful).unwrap();
    b.pause_after = None;
    b.resume = true;
    let r = cat::run_with(&b, &harmful).unwrap();
    assert_eq!(a.train.loss_curve, r.train.loss_curve);
    assert_eq!(
        bytes(&dir.path().join("ca/model.safetensors")),
        bytes(&dir.path().join("cb/model.safetensors"))
    );
    let info = cap::stage_info(&dir.path().join("ca")).unwrap();
    assert_eq!(info.stage, "cat");
    tessera_lm::load(dir.path().join("ca")).unwrap();
}
