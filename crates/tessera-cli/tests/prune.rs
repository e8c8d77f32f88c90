//! `tessera prune`, `tessera sparselora` and `tessera info` on a pruned directory: JSON keys of the contract,
//! and bad input → one-line error, exit code 2, nothing written.
mod common;
use common::{assert_clean_failure, run_json, tessera};
use std::path::{Path, PathBuf};

fn setup(dir: &Path) -> (PathBuf, PathBuf) {
    let p = dir.join("tiny.gguf");
    tessera_lm::testing::write_tiny_gguf(&p, 3).unwrap();
    let text = dir.join("calib.txt");
    let body: String = (0..300)
        .map(|i| format!("the hell {} then {} ", i % 13, i % 7))
        .collect();
    std::fs::write(&text, body).unwrap();
    (p, text)
}

fn prune_args(model: &Path, text: &Path, out: &Path) -> Vec<String> {
    [
        "prune",
        &model.display().to_string(),
        "--method",
        "wanda",
        "--pattern",
        "2:4",
        "--calib",
        &text.display().to_string(),
        "--nsamples",
        "4",
        "--seqlen",
        "32",
        "--calib-windows",
        "first",
        "--out",
        &out.display().to_string(),
        "--json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[test]
fn prune_sparselora_and_info_print_the_contract_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (model, text) = setup(dir.path());
    let out = dir.path().join("pruned");
    let v = run_json(tessera().args(prune_args(&model, &text, &out)));
    assert_eq!(v["method"], "wanda");
    assert_eq!(v["pattern"], "2:4");
    assert!((v["sparsity"].as_f64().unwrap() - 0.5).abs() < 1e-12);
    assert_eq!(v["matrices"].as_array().unwrap().len(), 14);
    assert!(v["matrices"][0]["sparsity"].is_number());
    assert!(v["seconds"].is_number());
    let info = run_json(tessera().arg("info").arg(&out).arg("--json"));
    assert!((info["sparsity"]["sparsity"].as_f64().unwrap() - 0.5).abs() < 1e-12);
    assert_eq!(info["sparsity"]["matrices"].as_array().unwrap().len(), 14);
    assert_eq!(info["sparsity"]["masks"], true);
    assert_eq!(info["sparsity"]["masks_violated"], 0);
    assert_eq!(info["config"]["num_hidden_layers"], 2);
    let sl = dir.path().join("recovered");
    let v = run_json(
        tessera()
            .arg("sparselora")
            .arg(&out)
            .arg("--teacher")
            .arg(&model)
            .args(["--steps", "2", "--rank", "4", "--seqlen", "32", "--data"])
            .arg(&text)
            .arg("--out")
            .arg(&sl)
            .arg("--json"),
    );
    assert_eq!(v["loss_curve"].as_array().unwrap().len(), 2);
    assert!((v["sparsity_after_merge"].as_f64().unwrap() - 0.5).abs() < 1e-12);
    assert_eq!(v["mask_kept"], true);
    let info = run_json(tessera().arg("info").arg(&sl).arg("--json"));
    assert_eq!(info["sparsity"]["nm_patterns"][0], "2:4");
}

#[test]
fn bad_prune_and_sparselora_input_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (model, text) = setup(dir.path());
    let out = dir.path().join("o");
    let with = |flag: &str, val: &str| {
        let mut a = prune_args(&model, &text, &out);
        let i = a.iter().position(|x| x == flag).unwrap();
        a[i + 1] = val.to_string();
        a
    };
    let o = tessera().args(with("--pattern", "4:4")).output().unwrap();
    assert_clean_failure(&o, "4:4");
    let mut a = prune_args(&model, &text, &out);
    let i = a.iter().position(|x| x == "--pattern").unwrap();
    a[i] = "--sparsity".into();
    a[i + 1] = "1.0".into();
    let o = tessera().args(&a).output().unwrap();
    assert_clean_failure(&o, "[0, 1)");
    let short = dir.path().join("short.txt");
    std::fs::write(&short, "the hell").unwrap();
    let o = tessera()
        .args(with("--calib", &short.display().to_string()))
        .output()
        .unwrap();
    assert_clean_failure(&o, "short.txt");
    let o = tessera().args(with("--method", "obs")).output().unwrap();
    assert_clean_failure(&o, "obs");
    assert!(!out.exists());
    // sparselora on a directory without masks.
    let plain = dir.path().join("plain");
    let m = tessera_lm::load(&model).unwrap();
    tessera_lm::export::export_hf_dir(&m, &plain).unwrap();
    let o = tessera()
        .arg("sparselora")
        .arg(&plain)
        .arg("--teacher")
        .arg(&model)
        .args(["--steps", "2", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert_clean_failure(&o, "masks");
    assert!(!out.exists());
}
