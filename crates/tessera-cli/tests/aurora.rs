//! `tessera aurora cap / cat / eval` contract: JSON keys, output directories that load as models, clean one-line
//! failures on bad input (empty or non-UTF-8 stream, weights not summing positive, resume with other settings).
mod common;
use common::{assert_clean_failure, run_json, tessera};
use std::path::Path;

fn fixture(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let model = dir.join("tiny.gguf");
    tessera_lm::testing::write_tiny_gguf(&model, 3).unwrap();
    let s = dir.join("s.txt");
    std::fs::write(
        &s,
        "the cat sat.\n\nhello there.\n\nthe end of it.\n\none more.\n",
    )
    .unwrap();
    (model, s)
}

fn cap_args(model: &Path, stream: &Path, out: &Path, extra: &[&str]) -> Vec<std::ffi::OsString> {
    let mut v: Vec<std::ffi::OsString> = vec!["aurora".into(), "cap".into(), model.into()];
    v.push("--stream".into());
    v.push(format!("u={}", stream.display()).into());
    for a in [
        "--weights",
        "u=1",
        "--steps",
        "2",
        "--window",
        "16",
        "--batch",
        "2",
        "--code-bytes",
        "0",
        "--json",
        "--offline",
    ] {
        v.push(a.into());
    }
    v.extend(extra.iter().map(|s| s.into()));
    v.push("--out".into());
    v.push(out.into());
    v
}

#[test]
fn cap_and_eval_report_their_keys_and_the_output_loads() {
    let dir = tempfile::tempdir().unwrap();
    let (model, s) = fixture(dir.path());
    let out = dir.path().join("cap");
    let j = run_json(tessera().args(cap_args(&model, &s, &out, &[])));
    for k in [
        "config",
        "stream_tokens",
        "probabilities",
        "windows_by_stream",
        "train",
        "out",
    ] {
        assert!(j.get(k).is_some(), "missing {k}: {j}");
    }
    for k in [
        "loss_curve",
        "loss_by_stream",
        "tokens_per_second",
        "steps_done",
    ] {
        assert!(j["train"].get(k).is_some(), "missing train.{k}");
    }
    assert_eq!(j["train"]["steps_done"], 2);
    let g = tessera()
        .args([
            "generate",
            "--max-tokens",
            "3",
            "--offline",
            "--prompt",
            "hello",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(g.status.success(), "{}", String::from_utf8_lossy(&g.stderr));
    let e = run_json(
        tessera()
            .args([
                "aurora",
                "eval",
                "--per-area",
                "0",
                "--benign",
                "0",
                "--ppl-tokens",
                "64",
            ])
            .args(["--window", "32", "--json", "--offline", "--text"])
            .arg(&s)
            .arg(&out),
    );
    for k in [
        "perplexity",
        "perplexity_by_language",
        "refusal_rate",
        "refusal_by_category",
        "over_refusal_rate",
    ] {
        assert!(e.get(k).is_some(), "missing {k}: {e}");
    }
    assert!(e["perplexity"].as_f64().unwrap() > 1.0);
    for l in ["en", "fi", "hi", "ja", "vi", "u", "en-wikitext-test"] {
        assert!(
            e["perplexity_by_language"][l].as_f64().is_some(),
            "no {l}: {e}"
        );
    }
}

#[test]
fn bad_input_fails_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let (model, s) = fixture(dir.path());
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    let o = tessera()
        .args(cap_args(&model, &empty, &dir.path().join("x"), &[]))
        .output()
        .unwrap();
    assert_clean_failure(&o, "empty.txt");
    let bin = dir.path().join("bin.txt");
    std::fs::write(&bin, b"\xff\xfe junk\n\nmore\n").unwrap();
    let o = tessera()
        .args(cap_args(&model, &bin, &dir.path().join("y"), &[]))
        .output()
        .unwrap();
    assert_clean_failure(&o, "UTF-8");
    let o = tessera()
        .args([
            "aurora",
            "cap",
            "--steps",
            "1",
            "--weights",
            "en=0,fi=0",
            "--out",
            "z",
        ])
        .arg(&model)
        .output()
        .unwrap();
    assert_clean_failure(&o, "positive");
    // Resume with other settings: refused, checkpoint untouched.
    let out = dir.path().join("r");
    run_json(tessera().args(cap_args(&model, &s, &out, &["--pause-after", "1"])));
    let latest = std::fs::read(out.join("checkpoints/LATEST")).unwrap();
    let o = tessera()
        .args(cap_args(&model, &s, &out, &["--resume", "--lr", "0.5"]))
        .output()
        .unwrap();
    assert_clean_failure(&o, "different settings");
    let o = tessera()
        .args(cap_args(&model, &s, &out, &[]))
        .output()
        .unwrap();
    assert_clean_failure(&o, "--resume");
    assert_eq!(
        std::fs::read(out.join("checkpoints/LATEST")).unwrap(),
        latest
    );
    let o = tessera()
        .args(["aurora", "eval", "--offline", "--json"])
        .arg(dir.path().join("nope"))
        .output()
        .unwrap();
    assert_clean_failure(&o, "nope");
}
