//! The runtime's CLI contract: JSON output, and bad input → one-line error naming the file, exit code 2.

mod common;
use common::{assert_clean_failure, run_json, tessera};

fn tiny(dir: &std::path::Path) -> std::path::PathBuf {
    let p = dir.join("tiny.gguf");
    tessera_lm::testing::write_tiny_gguf(&p, 3).unwrap();
    p
}

#[test]
fn generate_and_info_print_one_json_object() {
    let dir = tempfile::tempdir().unwrap();
    let p = tiny(dir.path());
    let v = run_json(tessera().args(["generate"]).arg(&p).args([
        "--prompt",
        "hello",
        "--max-tokens",
        "5",
        "--json",
    ]));
    assert!(v["text"].is_string() && v["generation"]["tokens"].as_array().unwrap().len() <= 5);
    let out = tessera()
        .args(["info"])
        .arg(&p)
        .arg("--json")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["config"]["num_hidden_layers"], 2);
}

#[test]
fn perplexity_json_has_the_contract_key() {
    let dir = tempfile::tempdir().unwrap();
    let p = tiny(dir.path());
    let text = dir.path().join("t.txt");
    std::fs::write(&text, "hello there\r\nthe hell 123\r\n".repeat(20)).unwrap();
    let v = run_json(
        tessera()
            .arg("perplexity")
            .arg(&p)
            .arg("--text")
            .arg(&text)
            .args(["--window", "32", "--stride", "16", "--json"]),
    );
    assert!(v["perplexity"].as_f64().unwrap() > 1.0);
}

#[test]
fn bad_inputs_exit_2_with_one_line_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let p = tiny(dir.path());
    let bytes = std::fs::read(&p).unwrap();
    let cut = dir.path().join("cut.gguf");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    let out = tessera().arg("info").arg(&cut).output().unwrap();
    assert_clean_failure(&out, "cut.gguf");
    let noise = dir.path().join("noise.gguf");
    std::fs::write(&noise, vec![0xabu8; 1000]).unwrap();
    assert_clean_failure(
        &tessera()
            .arg("generate")
            .arg(&noise)
            .args(["--prompt", "x"])
            .output()
            .unwrap(),
        "noise.gguf",
    );
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    assert_clean_failure(
        &tessera()
            .arg("perplexity")
            .arg(&p)
            .arg("--text")
            .arg(&empty)
            .output()
            .unwrap(),
        "empty.txt",
    );
    assert_clean_failure(
        &tessera()
            .args(["--offline", "info", "no-such-model"])
            .output()
            .unwrap(),
        "no-such-model",
    );
}

#[test]
fn bench_decode_json_has_the_contract_keys() {
    let dir = tempfile::tempdir().unwrap();
    let p = tiny(dir.path());
    // No llama-cpp-python behind this interpreter: its rows are "skipped" and the ratios null.
    let v = run_json(
        tessera()
            .env("TESSERA_HOME", dir.path())
            .args(["bench", "decode"])
            .arg(&p)
            .args([
                "--steps",
                "3",
                "--threads",
                "1",
                "--python",
                "/nonexistent/python",
                "--json",
            ]),
    );
    for k in [
        "model",
        "threads",
        "prompt_tokens",
        "steps",
        "engines",
        "decode_ratio_vs_llama_cpp_f32",
        "prompt_ratio_vs_llama_cpp_f32",
    ] {
        assert!(v.get(k).is_some(), "missing {k}: {v}");
    }
    let ours = &v["engines"]["tessera f32"];
    assert!(ours["decode_tokens_per_s"].as_f64().unwrap() > 0.0, "{v}");
    assert!(ours["prompt_tokens_per_s"].as_f64().unwrap() > 0.0, "{v}");
    assert!(ours.get("prompt_ids").is_none(), "{v}");
    assert!(v["engines"]["llama.cpp f32"]["skipped"].is_string(), "{v}");
    assert!(v["decode_ratio_vs_llama_cpp_f32"].is_null());
    assert_eq!(v["steps"], 3);
    assert!(v["prompt_tokens"].as_u64().unwrap() > 0);
}
