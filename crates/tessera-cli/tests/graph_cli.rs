//! The graph commands' CLI contract: the JSON keys of `graph train`, `graph mog` and `bench graph`, the resume /
//! refuse protocol of `graph mog --out`, and bad input → one-line error, exit code 2. Tiny SBM graphs only.

mod common;
use common::{assert_clean_failure, run_json, tessera};

fn assert_keys(v: &serde_json::Value, keys: &[&str]) {
    for k in keys {
        assert!(v.get(k).is_some(), "missing key {k:?} in {v}");
    }
}

const TINY: &[&str] = &["--epochs", "6", "--patience", "6", "--hidden", "8"];

#[test]
fn graph_train_json_keys() {
    let v = run_json(
        tessera()
            .args([
                "graph",
                "train",
                "--dataset",
                "sbm:400:8:spread=0.5",
                "--json",
            ])
            .args(TINY),
    );
    assert_keys(
        &v,
        &[
            "dataset",
            "model",
            "nodes",
            "edges",
            "test_accuracy",
            "val_accuracy",
            "best_epoch",
            "epochs",
            "train_seconds",
            "inference_seconds",
        ],
    );
    assert_eq!(v["nodes"], 400);
    assert_eq!(v["model"], "gcn");
    assert!(v["dataset"].as_str().unwrap().contains("spread=0.5"));
}

#[test]
fn graph_mog_json_keys_resume_and_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("mog");
    let mog = |levels: &str| {
        let mut c = tessera();
        c.args(["graph", "mog", "--dataset", "sbm:400:8", "--seeds", "1"])
            .args(["--baselines", "0.5", "--curve", "none", "--no-ablation"])
            .args(["--levels", levels, "--finetune-epochs", "3", "--json"])
            .args(TINY)
            .arg("--out")
            .arg(&out);
        c
    };
    let v = run_json(&mut mog("0.7,0.5,0.3"));
    assert_keys(
        &v,
        &[
            "dataset",
            "model",
            "seeds",
            "dense_accuracy",
            "dense_accuracy_std",
            "mog_accuracy",
            "mog_accuracy_std",
            "sparsity",
            "inference_speedup",
            "baselines",
            "mog_curve",
            "max_sparsity_within_1pt",
            "accuracy_at_matched_sparsity",
            "matched_sparsity",
            "dir",
        ],
    );
    // random + 4 criteria at keep 0.5; one MoG level set.
    assert_eq!(v["baselines"].as_array().unwrap().len(), 5);
    assert_eq!(v["mog_curve"].as_array().unwrap().len(), 1);
    assert!(v["max_sparsity_within_1pt"]["mog"].is_number());
    let s = v["sparsity"].as_f64().unwrap();
    assert!(s > 0.0 && s < 1.0, "sparsity {s}");
    // Same settings: resumes, trains nothing new, same numbers.
    let again = run_json(&mut mog("0.7,0.5,0.3"));
    assert_eq!(again["mog_accuracy"], v["mog_accuracy"]);
    // Other settings into the same --out: refused.
    let refused = mog("0.5,0.3,0.2").output().unwrap();
    assert_clean_failure(&refused, "settings");
}

#[test]
fn bench_graph_json_keys_with_repetitions_and_seeds() {
    let dir = tempfile::tempdir().unwrap();
    let v = run_json(
        tessera()
            .args(["bench", "graph", "--nodes", "400", "--degree", "8"])
            .args(["--scaling", "300", "--reps", "3", "--seeds", "2", "--json"])
            .args(["--sbm", "ratio=1,label_noise=0.1"])
            .args(["--epochs", "6", "--patience", "6"])
            .arg("--out")
            .arg(dir.path().join("b")),
    );
    assert_keys(
        &v,
        &[
            "dataset",
            "nodes",
            "edges",
            "dense_accuracy",
            "mog_accuracy",
            "accuracy_delta_points",
            "sparsity",
            "dense_inference_seconds",
            "mog_inference_seconds",
            "inference_speedup",
            "speedup_median",
            "speedup_min",
            "speedup_max",
            "mog_mix_seconds",
            "dense_train_seconds",
            "mog_train_seconds",
            "per_seed",
            "scaling",
            "config",
            "dir",
        ],
    );
    let seeds = v["per_seed"].as_array().unwrap();
    assert_eq!(seeds.len(), 2);
    for s in seeds {
        assert_eq!(s["dense_times"].as_array().unwrap().len(), 3);
        assert_eq!(s["mog_times"].as_array().unwrap().len(), 3);
    }
    let (lo, med, hi) = (
        v["speedup_min"].as_f64().unwrap(),
        v["speedup_median"].as_f64().unwrap(),
        v["speedup_max"].as_f64().unwrap(),
    );
    assert!(lo > 0.0 && lo <= med && med <= hi, "{lo} {med} {hi}");
    assert_eq!(v["scaling"][0]["nodes"], 300);
    assert!((v["config"]["sbm"]["homophily"].as_f64().unwrap() - 0.5).abs() < 1e-12);
    // Same --out, one seed more: the two journaled seeds are taken as they were (their timings included), only the
    // third is benchmarked.
    let bench = |extra: &[&str]| {
        let mut c = tessera();
        c.args(["bench", "graph", "--nodes", "400", "--degree", "8"])
            .args(["--scaling", "300", "--reps", "3", "--json"])
            .args(["--sbm", "ratio=1,label_noise=0.1"])
            .args(["--epochs", "6", "--patience", "6"])
            .args(extra)
            .arg("--out")
            .arg(dir.path().join("b"));
        c
    };
    let w = run_json(&mut bench(&["--seeds", "3"]));
    let more = w["per_seed"].as_array().unwrap();
    assert_eq!(more.len(), 3);
    assert_eq!(more[0]["dense_times"], seeds[0]["dense_times"]);
    assert_eq!(more[1]["mog_times"], seeds[1]["mog_times"]);
    assert_eq!(more[2]["seed"], 2);
    // Other MoG settings in the same folder are refused with one line.
    let out = bench(&["--seeds", "2", "--criteria", "degree,agreement"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim().lines().count(),
        1
    );
}

#[test]
fn bad_graph_input_is_one_line_exit_2() {
    let out = tessera()
        .args(["graph", "train", "--dataset", "sbm:400:8:colour=3"])
        .output()
        .unwrap();
    assert_clean_failure(&out, "colour");
    let out = tessera()
        .args(["graph", "train", "--dataset", "nosuchgraph"])
        .output()
        .unwrap();
    assert_clean_failure(&out, "nosuchgraph");
}
