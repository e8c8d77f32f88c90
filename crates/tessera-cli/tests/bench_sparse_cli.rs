//! `tessera bench sparse`: the JSON contract on a magnitude-pruned tiny model, and clean failures.
mod common;
use common::{assert_clean_failure, run_json, tessera};

#[test]
fn bench_sparse_json_has_the_contract_keys() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("tiny.gguf");
    tessera_lm::testing::write_tiny_gguf(&p, 3).unwrap();
    let out = dir.path().join("pruned");
    let v = run_json(
        tessera()
            .env("TESSERA_HOME", dir.path())
            .args(["bench", "sparse"])
            .arg(&p)
            .args(["--magnitude", "2:4", "--out"])
            .arg(&out)
            .args(["--steps", "3", "--threads", "1", "--reps", "2", "--json"]),
    );
    for k in [
        "dense_tokens_per_s",
        "sparse_tokens_per_s",
        "speedup",
        "dense_peak_rss_mb",
        "sparse_peak_rss_mb",
        "logits_max_abs_diff",
        "logits_match",
        "sparsity",
        "formats",
    ] {
        assert!(v.get(k).is_some(), "missing {k}: {v}");
    }
    assert!(v["dense_tokens_per_s"].as_f64().unwrap() > 0.0, "{v}");
    assert!(v["sparse_tokens_per_s"].as_f64().unwrap() > 0.0, "{v}");
    assert_eq!(v["logits_match"], true, "{v}");
    assert_eq!(v["formats"]["2:4"], 14, "{v}");
    assert!((v["sparsity"].as_f64().unwrap() - 0.5).abs() < 1e-9, "{v}");
    assert_eq!(v["dense"]["runs"].as_array().unwrap().len(), 2, "{v}");
    // The pruned directory is reusable as it is.
    assert!(out.join("masks.safetensors").is_file());
}

#[test]
fn bench_sparse_fails_cleanly_on_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("tiny.gguf");
    tessera_lm::testing::write_tiny_gguf(&p, 3).unwrap();
    // Not a pruned directory.
    assert_clean_failure(
        &tessera()
            .args(["bench", "sparse"])
            .arg(&p)
            .output()
            .unwrap(),
        "pruned",
    );
    // A bad pattern.
    assert_clean_failure(
        &tessera()
            .args(["bench", "sparse"])
            .arg(&p)
            .args(["--magnitude", "4:4"])
            .output()
            .unwrap(),
        "4:4",
    );
}
