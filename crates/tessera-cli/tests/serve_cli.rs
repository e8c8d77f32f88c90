//! `tessera bench serve` contract: the JSON keys of a throughput run and of an abuse run, on the tiny model.

mod common;
use common::{assert_clean_failure, run_json, tessera};

fn tiny(dir: &std::path::Path) -> std::path::PathBuf {
    let p = dir.join("tiny.gguf");
    tessera_lm::testing::write_tiny_gguf(&p, 3).unwrap();
    p
}

#[test]
fn bench_serve_json_has_one_row_per_level_and_batching_setting() {
    let dir = tempfile::tempdir().unwrap();
    let p = tiny(dir.path());
    let v = run_json(tessera().args(["bench", "serve"]).arg(&p).args([
        "--clients",
        "1,2",
        "--requests",
        "2",
        "--max-tokens",
        "2",
        "--max-batch",
        "1,2",
        "--json",
    ]));
    for k in [
        "model",
        "url",
        "workers",
        "requests",
        "max_tokens",
        "levels",
    ] {
        assert!(v.get(k).is_some(), "missing {k}: {v}");
    }
    let levels = v["levels"].as_array().unwrap();
    assert_eq!(levels.len(), 4, "{v}");
    for l in levels {
        assert!(l["max_batch"].is_u64(), "{l}");
        for k in ["clients", "requests", "errors", "requests_per_s", "p50_ms"] {
            assert!(l["result"].get(k).is_some(), "missing result.{k}: {l}");
        }
        assert_eq!(l["result"]["errors"], 0, "{l}");
    }
    let out = tessera()
        .args(["bench", "serve"])
        .arg(&p)
        .args(["--clients", "0", "--json"])
        .output()
        .unwrap();
    assert_clean_failure(&out, "clients");
}

#[test]
fn bench_serve_abuse_json_reports_statuses_and_health() {
    let dir = tempfile::tempdir().unwrap();
    let p = tiny(dir.path());
    let v = run_json(tessera().args(["bench", "serve"]).arg(&p).args([
        "--abuse",
        "--rounds",
        "1",
        "--idle-connections",
        "2",
        "--json",
    ]));
    let a = &v["abuse"];
    for k in [
        "requests",
        "statuses",
        "budget_bytes",
        "health_probes",
        "health_ok",
    ] {
        assert!(a.get(k).is_some(), "missing abuse.{k}: {v}");
    }
    assert!(a["requests"].as_u64().unwrap() > 0, "{v}");
}
