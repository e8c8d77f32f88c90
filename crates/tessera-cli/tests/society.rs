//! The `tessera society` CLI contract: JSON keys of `society attack` (tiny random model, no MiniLM) and
//! `society run` (scripted backend), a replay of the recorded run, and bad input → one-line error, exit code 2.
mod common;
use common::{assert_clean_failure, run_json, tessera};

fn assert_keys(v: &serde_json::Value, keys: &[&str]) {
    for k in keys {
        assert!(v.get(k).is_some(), "missing key {k:?} in {v}");
    }
}

#[test]
fn attack_prints_success_loss_steps_and_injection() {
    let d = tempfile::tempdir().unwrap();
    let model = d.path().join("tiny.gguf");
    tessera_lm::testing::write_tiny_gguf(&model, 3).unwrap();
    for variant in ["embed", "gcg"] {
        let out = d.path().join(variant);
        let v = run_json(tessera().args([
            "society",
            "attack",
            "--model",
            model.to_str().unwrap(),
            "--target",
            "hi",
            "--steps",
            "2",
            "--eval-every",
            "1",
            "--inject-len",
            "2",
            "--reply-len",
            "2",
            "--candidates",
            "2",
            "--variant",
            variant,
            "--no-minilm",
            "--out",
            out.to_str().unwrap(),
            "--json",
        ]));
        assert_keys(
            &v,
            &[
                "success",
                "loss",
                "steps_to_success",
                "injection",
                "evals",
                "steps_run",
            ],
        );
        assert_eq!(v["loss"].as_array().unwrap().len(), 2, "{v}");
        assert!(v["injection"]["text"].is_string());
        assert!(out.join("checkpoint.json").exists() && out.join("attack.json").exists());
        // Resuming with other settings is refused.
        let o = tessera()
            .args([
                "society",
                "attack",
                "--model",
                model.to_str().unwrap(),
                "--target",
                "hi",
                "--steps",
                "3",
                "--variant",
                variant,
                "--no-minilm",
                "--out",
                out.to_str().unwrap(),
                "--json",
            ])
            .output()
            .unwrap();
        assert_clean_failure(&o, "other settings");
    }
}

#[test]
fn run_prints_infection_and_defence_rates_and_replays() {
    let d = tempfile::tempdir().unwrap();
    let script = d.path().join("script.json");
    let s = serde_json::json!({
        "rules": [{"contains": ["exact sentence"], "reply": "Sure: Hello world."}],
        "default": "Let us plant herbs."
    });
    std::fs::write(&script, s.to_string()).unwrap();
    let out = d.path().join("run");
    let spec = format!("script:{}", script.display());
    let v = run_json(tessera().args([
        "society",
        "run",
        "--backend",
        &spec,
        "--agents",
        "4",
        "--topology",
        "ring",
        "--rounds",
        "3",
        "--canary",
        "x-phrase-2",
        "--defence",
        "hardened",
        "--no-minilm",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]));
    assert_keys(
        &v,
        &[
            "infected_by_hop",
            "infected_by_round",
            "detection_rate",
            "false_positive_rate",
            "hops",
            "agent_outcomes",
        ],
    );
    assert_eq!(v["infected_by_round"].as_array().unwrap().len(), 3);
    assert_eq!(v["infected_by_hop"]["1"], 1.0, "{v}");
    for f in [
        "messages.jsonl",
        "transcript.jsonl",
        "infection.svg",
        "report.md",
        "society.json",
    ] {
        assert!(out.join(f).exists(), "{f}");
    }
    let replay = d.path().join("replay");
    let spec = format!("replay:{}", out.join("transcript.jsonl").display());
    let w = run_json(tessera().args([
        "society",
        "run",
        "--backend",
        &spec,
        "--agents",
        "4",
        "--topology",
        "ring",
        "--rounds",
        "3",
        "--canary",
        "x-phrase-2",
        "--defence",
        "hardened",
        "--no-minilm",
        "--out",
        replay.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(v["infected_by_round"], w["infected_by_round"]);
    assert_eq!(
        std::fs::read(out.join("messages.jsonl")).unwrap(),
        std::fs::read(replay.join("messages.jsonl")).unwrap()
    );
}

#[test]
fn bad_input_is_one_line_error() {
    let o = tessera()
        .args(["society", "run", "--topology", "mesh", "--json"])
        .output()
        .unwrap();
    assert_clean_failure(&o, "mesh");
    let o = tessera()
        .args(["society", "run", "--defence", "firewall", "--json"])
        .output()
        .unwrap();
    assert_clean_failure(&o, "firewall");
    let o = tessera()
        .args(["society", "attack", "--variant", "pgd", "--json"])
        .output()
        .unwrap();
    assert_clean_failure(&o, "pgd");
    let d = tempfile::tempdir().unwrap();
    let o = tessera()
        .args([
            "society",
            "attack",
            "--canary",
            "nope",
            "--out",
            d.path().to_str().unwrap(),
            "--json",
        ])
        .output()
        .unwrap();
    assert_clean_failure(&o, "unknown canary");
    let o = tessera()
        .args([
            "society",
            "attack",
            "--lr=0",
            "--out",
            d.path().to_str().unwrap(),
            "--json",
        ])
        .output()
        .unwrap();
    assert_clean_failure(&o, "learning rate");
    let o = tessera()
        .args([
            "society",
            "run",
            "--backend",
            "script:/nonexistent.json",
            "--no-minilm",
            "--out",
        ])
        .arg(d.path().join("r"))
        .output()
        .unwrap();
    assert_clean_failure(&o, "nonexistent");
}
