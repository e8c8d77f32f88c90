//! `tessera zo train` / `tessera zo memory` contract: JSON keys, malformed task lines counted, exact resume,
//! clean one-line failures.
mod common;
use common::{assert_clean_failure, run_json, tessera};
use std::path::Path;

fn fixture(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let model = dir.join("tiny.gguf");
    tessera_lm::testing::write_tiny_gguf(&model, 7).unwrap();
    let data = dir.join("sst2");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("train.tsv"),
        "a gripping , funny film\t1\nflat and dull\t0\nmissing its label\nwarm and wise\t1\nbad\tlabel\ttoo many\n\
         a tedious mess\t0\nthe best of the year\t1\nnever again\t0",
    )
    .unwrap();
    std::fs::write(
        data.join("dev.tsv"),
        "lovely\t1\nawful\t0\nmoving and smart\t1\nboring\t0\n",
    )
    .unwrap();
    (model, data)
}

fn train_args(model: &Path, data: &Path, out: &Path, steps: &str) -> Vec<std::ffi::OsString> {
    let mut v: Vec<std::ffi::OsString> =
        vec!["zo".into(), "train".into(), model.into(), "--data".into()];
    v.extend([
        data.as_os_str().to_owned(),
        "--out".into(),
        out.as_os_str().to_owned(),
    ]);
    for a in [
        "--optimizer",
        "zo-sgd-mmt",
        "--lr",
        "1e-3",
        "--batch",
        "4",
        "--steps",
        steps,
        "--json",
        "--offline",
        "--checkpoint-every",
        "1",
    ] {
        v.push(a.into());
    }
    v
}

#[test]
fn train_reports_accuracy_loss_curve_and_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (model, data) = fixture(dir.path());
    let a = dir.path().join("a");
    let j = run_json(tessera().args(train_args(&model, &data, &a, "3")));
    for k in [
        "accuracy_before",
        "accuracy_after",
        "zero_shot_accuracy",
        "loss_curve",
        "evals",
        "step_seconds",
        "step_vs_forward",
        "peak_heap_bytes",
        "settings",
        "perturbed_share",
    ] {
        assert!(j.get(k).is_some(), "missing `{k}` in {j}");
    }
    assert_eq!(j["loss_curve"].as_array().unwrap().len(), 3);
    assert_eq!(
        j["skipped_lines"], 2,
        "the two malformed training lines are counted"
    );
    assert_eq!(j["train_examples"], 6);
    assert!(
        j["peak_heap_bytes"].as_u64().unwrap() > 0,
        "the binary counts the heap"
    );
    // 2 steps, then resume to 3: the same loss curve as the uninterrupted run.
    let b = dir.path().join("b");
    run_json(tessera().args(train_args(&model, &data, &b, "2")));
    let r = run_json(
        tessera()
            .args(train_args(&model, &data, &b, "3"))
            .arg("--resume")
            .arg(&b),
    );
    assert_eq!(r["resumed_from"], 2);
    assert_eq!(r["loss_curve"], j["loss_curve"]);
    // The accuracy-vs-steps plot of both runs.
    let svg = dir.path().join("acc.svg");
    let p = tessera()
        .args(["zo", "plot"])
        .arg(&a)
        .arg(&b)
        .arg("--out")
        .arg(&svg)
        .output()
        .unwrap();
    assert!(p.status.success(), "{}", String::from_utf8_lossy(&p.stderr));
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
    assert_clean_failure(
        &tessera()
            .args(["zo", "plot"])
            .arg(dir.path().join("nope"))
            .arg("--out")
            .arg(&svg)
            .output()
            .unwrap(),
        "nope",
    );
    // A rerun into `a` with other settings is refused and leaves it alone.
    let before = std::fs::read(a.join("settings.json")).unwrap();
    let out = tessera()
        .args(train_args(&model, &data, &a, "3"))
        .args(["--seed", "9"])
        .output()
        .unwrap();
    assert_clean_failure(&out, "other settings");
    assert_eq!(std::fs::read(a.join("settings.json")).unwrap(), before);
}

#[test]
fn magnitude_sparsity_perturbs_the_share_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let (model, data) = fixture(dir.path());
    let out = dir.path().join("m");
    let mut args = train_args(&model, &data, &out, "1");
    args.extend(["--sparsity", "0.75", "--sparsity-mode", "magnitude"].map(Into::into));
    let j = run_json(tessera().args(&args));
    assert_eq!(j["settings"]["sparsity_mode"], "magnitude");
    let share = j["perturbed_share"].as_f64().unwrap();
    assert!((share - 0.25).abs() < 0.01, "{share}");
    let plain = run_json(tessera().args(train_args(&model, &data, &dir.path().join("r"), "1")));
    assert_eq!(plain["settings"]["sparsity_mode"], "random");
}

#[test]
fn memory_reports_every_case_against_inference() {
    let dir = tempfile::tempdir().unwrap();
    let (model, data) = fixture(dir.path());
    let j = run_json(
        tessera()
            .args(["zo", "memory"])
            .arg(&model)
            .arg("--data")
            .arg(&data)
            .args([
                "--optimizers",
                "zo-sgd,zo-adam,fo-adam",
                "--batch",
                "4",
                "--json",
                "--offline",
            ]),
    );
    for k in ["inference", "zo_sgd", "zo_adam", "fo_adam"] {
        assert!(j[k]["peak_heap_bytes"].as_u64().unwrap() > 0, "{k}: {j}");
        assert!(j["heap_vs_inference"][k].as_f64().unwrap() > 0.0);
    }
    assert!(j["step_vs_forward"]["zo_sgd"].as_f64().is_some());
}

#[test]
fn bad_input_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (model, data) = fixture(dir.path());
    let out = dir.path().join("o");
    let base = |extra: &[&str]| {
        let mut c = tessera();
        c.args(["zo", "train"])
            .arg(&model)
            .arg("--data")
            .arg(&data)
            .arg("--out")
            .arg(&out);
        c.args(["--steps", "1", "--offline"]).args(extra);
        c.output().unwrap()
    };
    assert_clean_failure(&base(&["--optimizer", "zo-bogus"]), "zo-bogus");
    assert_clean_failure(&base(&["--scheme", "half"]), "half");
    assert_clean_failure(
        &base(&["--optimizer", "forward-grad", "--block-wise"]),
        "block-wise",
    );
    assert_clean_failure(
        &base(&["--optimizer", "fo-adam", "--sparsity", "0.5"]),
        "sparsity",
    );
    assert_clean_failure(&base(&["--sparsity", "1.5"]), "sparsity");
    assert_clean_failure(&base(&["--sparsity-mode", "largest"]), "largest");
    assert_clean_failure(
        &base(&[
            "--scheme",
            "lora",
            "--sparsity",
            "0.5",
            "--sparsity-mode",
            "magnitude",
        ]),
        "magnitude",
    );
    assert_clean_failure(&base(&["--hybrid-fo", "0-9"]), "hybrid-fo");
    assert_clean_failure(&base(&["--resume", "/nonexistent/run"]), "no run to resume");
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(empty.join("train.tsv"), "no tabs\nat all\n").unwrap();
    std::fs::write(empty.join("dev.tsv"), "x\t1\n").unwrap();
    let mut c = tessera();
    c.args(["zo", "train"])
        .arg(&model)
        .arg("--data")
        .arg(&empty)
        .arg("--out")
        .arg(&out);
    assert_clean_failure(
        &c.args(["--offline"]).output().unwrap(),
        "no usable sst2 example",
    );
    assert!(
        !out.join("settings.json").exists(),
        "nothing written by a failed run"
    );
}
