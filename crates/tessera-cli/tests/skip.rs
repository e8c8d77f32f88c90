//! `tessera skip eval`, `tessera bench skip` and `tessera generate --ffn-skip`: JSON keys on a tiny random model,
//! and bad input → one-line error, exit 2.
mod common;
use common::{assert_clean_failure, run_json, tessera};

fn tiny(dir: &std::path::Path) -> std::path::PathBuf {
    let p = dir.join("tiny.gguf");
    tessera_lm::testing::write_tiny_gguf(&p, 3).unwrap();
    p
}

fn questions(dir: &std::path::Path) -> std::path::PathBuf {
    let q = dir.join("q.jsonl");
    std::fs::write(
        &q,
        "{\"question\": \"Capital of Peru?\", \"answers\": [\"Lima\"]}\n\
         {\"question\": \"Hello?\", \"answers\": [\"hello\", \"he\"]}\n",
    )
    .unwrap();
    q
}

#[test]
fn skip_eval_prints_the_contract_keys_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let (m, q) = (tiny(dir.path()), questions(dir.path()));
    let out = dir.path().join("run");
    let args = |t: &str| {
        let mut c = tessera();
        c.args(["skip", "eval"]).arg(&m).arg("--questions").arg(&q);
        c.args(["--max-tokens", "6", "--threshold", t, "--budget", "all,1"]);
        c.args(["--random-baseline", "--json", "--out"]).arg(&out);
        c
    };
    let v = run_json(&mut args("-1"));
    for k in [
        "skipped_fraction",
        "factoid_accuracy_full",
        "factoid_accuracy_skip",
        "decode_speedup",
        "exact_match",
        "rouge_l",
        "continuation_perplexity",
    ] {
        assert!(v[k].is_number(), "{k}: {v}");
    }
    assert_eq!(v["questions"], 2);
    // 2 budgets × 1 threshold + 2 random-span baselines.
    assert_eq!(v["variants"].as_array().unwrap().len(), 4);
    assert!(v["skipped_fraction"].as_f64().unwrap() > 0.0);
    assert!(out.join("result.json").is_file() && out.join("quality_vs_skipped.svg").is_file());
    // Resuming with the same settings reads the journal back; different settings are refused.
    let again = run_json(&mut args("-1"));
    assert_eq!(again["exact_match"], v["exact_match"]);
    let o = args("0.5").output().unwrap();
    assert_clean_failure(&o, "different settings");
}

#[test]
fn bench_skip_and_generate_ffn_skip_print_json() {
    let dir = tempfile::tempdir().unwrap();
    let m = tiny(dir.path());
    let v = run_json(tessera().args(["bench", "skip"]).arg(&m).args([
        "--steps",
        "4",
        "--reps",
        "1",
        "--prompts",
        "1",
        "--threads",
        "1",
        "--json",
    ]));
    for k in [
        "full_tokens_per_s",
        "skip_tokens_per_s",
        "speedup",
        "skipped_fraction",
    ] {
        assert!(v[k].is_number(), "{k}: {v}");
    }
    let v = run_json(tessera().arg("generate").arg(&m).args([
        "--prompt",
        "hello",
        "--max-tokens",
        "6",
        "--ffn-skip",
        "--threshold",
        "-1",
        "--json",
    ]));
    assert!(
        v["generation"]["hook"]["skipped_fraction"].is_number(),
        "{v}"
    );
}

#[test]
fn bad_skip_input_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let m = tiny(dir.path());
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"question\": \"Capital of Peru?\", \"answers\": [\"Lima\"]}\n{\"question\": \"x\"}\n",
    )
    .unwrap();
    let o = tessera()
        .args(["skip", "eval"])
        .arg(&m)
        .arg("--questions")
        .arg(&bad)
        .output()
        .unwrap();
    assert_clean_failure(&o, "bad.jsonl: line 2");
    let o = tessera()
        .args(["skip", "eval"])
        .arg(&m)
        .args(["--budget", "lots"])
        .output()
        .unwrap();
    assert_clean_failure(&o, "lots");
    let o = tessera()
        .args(["skip", "eval"])
        .arg(&m)
        .args(["--threshold", "NaN"])
        .output()
        .unwrap();
    assert_clean_failure(&o, "NaN");
    let o = tessera()
        .args(["skip", "eval"])
        .arg(&m)
        .args(["--cold-first", "2", "--cold-last", "1"])
        .output()
        .unwrap();
    assert_clean_failure(&o, "cold regions");
    let o = tessera()
        .args(["bench", "skip"])
        .arg(&m)
        .args(["--mode", "sometimes"])
        .output()
        .unwrap();
    assert_clean_failure(&o, "sometimes");
}

/// One HTTP/1.1 POST to `addr`, returning the response body.
fn post(addr: &str, path: &str, body: &str) -> String {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split_once("\r\n\r\n")
        .map_or(out.clone(), |(_, b)| b.to_string())
}

#[test]
fn serve_ffn_skip_reports_the_skipped_fraction_in_usage() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().unwrap();
    let m = tiny(dir.path());
    let mut child = tessera()
        .arg("serve")
        .arg(&m)
        .args(["--port", "0", "--ffn-skip", "--threshold", "-1"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let addr = loop {
        line.clear();
        assert!(err.read_line(&mut line).unwrap() > 0, "server exited");
        if let Some(rest) = line.split("http://").nth(1) {
            break rest.split('/').next().unwrap().to_string();
        }
    };
    let chat =
        r#"{"model": "tiny", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 8}"#;
    let v: serde_json::Value =
        serde_json::from_str(&post(&addr, "/v1/chat/completions", chat)).unwrap();
    let comp = r#"{"model": "tiny", "prompt": "hello", "max_tokens": 8}"#;
    let c: serde_json::Value = serde_json::from_str(&post(&addr, "/v1/completions", comp)).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    for r in [&v, &c] {
        let f = r["usage"]["ffn_skipped_fraction"].as_f64();
        assert!(f.is_some_and(|f| f > 0.0 && f < 1.0), "{r}");
    }
}
