//! The arena's CLI contract: the JSON keys of every `tessera arena` command (and `bench arena`), self-play, and
//! resume integrity (a rerun with other settings is refused with one error line and exit code 2).

mod common;
use common::{assert_clean_failure, run_json, tessera};

fn assert_keys(v: &serde_json::Value, keys: &[&str]) {
    let obj = v.as_object().expect("a JSON object");
    let mut got: Vec<&str> = obj.keys().map(|k| k.as_str()).collect();
    got.sort_unstable();
    let mut want = keys.to_vec();
    want.sort_unstable();
    assert_eq!(got, want, "{v}");
}

const RUN_KEYS: &[&str] = &[
    "out",
    "run",
    "matches",
    "completion_rate",
    "overall",
    "games",
    "error_profile",
];

#[test]
fn match_allows_self_play_with_distinct_labels() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m");
    let v = run_json(
        tessera()
            .args([
                "arena",
                "match",
                "--agents",
                "random,random",
                "--games",
                "nim",
                "--json",
                "--out",
            ])
            .arg(&out),
    );
    assert_keys(&v, RUN_KEYS);
    assert_eq!(v["matches"], 2);
    let agents: Vec<&str> = v["overall"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["agent"].as_str().unwrap())
        .collect();
    assert!(
        agents.contains(&"random#1") && agents.contains(&"random#2"),
        "{agents:?}"
    );
    assert_keys(
        &v["run"],
        &[
            "records",
            "scheduled",
            "resumed",
            "played",
            "infrastructure_failures",
            "skipped",
        ],
    );
    assert_keys(&v["games"][0], &["game", "agents"]);
}

#[test]
fn tournament_resumes_with_same_settings_and_refuses_others() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t");
    let args = |seed: &str| {
        let mut c = tessera();
        c.args([
            "arena",
            "tournament",
            "--agents",
            "random,mcts:sims=10,random",
            "--games",
            "tic_tac_toe",
            "--matches",
            "2",
            "--json",
            "--seed",
            seed,
            "--out",
        ])
        .arg(&out);
        c
    };
    let v = run_json(&mut args("0"));
    assert_keys(&v, RUN_KEYS);
    assert_eq!(v["run"]["played"], 6);
    let again = run_json(&mut args("0"));
    assert_eq!(
        (
            again["run"]["played"].as_u64(),
            again["run"]["resumed"].as_u64()
        ),
        (Some(0), Some(6))
    );
    let refused = args("1").output().unwrap();
    assert_clean_failure(&refused, "different settings");
    // The records are untouched by the refused run.
    let text = std::fs::read_to_string(out.join("matches.jsonl")).unwrap();
    assert_eq!(text.lines().count(), 6);
    assert!(text.lines().all(|l| l.contains("|seed=0\"")));
}

#[test]
fn report_recomputes_with_the_same_keys() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    run_json(
        tessera()
            .args([
                "arena",
                "match",
                "--agents",
                "mcts:sims=10,random",
                "--games",
                "kuhn_poker",
                "--json",
                "--out",
            ])
            .arg(&out),
    );
    let v = run_json(
        tessera()
            .args(["arena", "report", "--json", "--out"])
            .arg(&out),
    );
    assert_keys(&v, RUN_KEYS);
    assert_eq!(v["run"], serde_json::json!({}));
    assert_eq!(v["matches"], 2);
    assert!(out.join("report.md").exists() && out.join("metrics.json").exists());
    let missing = tessera()
        .args(["arena", "report", "--json", "--out"])
        .arg(dir.path().join("nothing"))
        .output()
        .unwrap();
    assert_clean_failure(&missing, "no scored matches");
}

#[test]
fn games_lists_every_game_and_the_agent_specs() {
    let out = tessera().args(["arena", "games"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for g in [
        "tic_tac_toe",
        "connect_four",
        "breakthrough",
        "nim",
        "kuhn_poker",
        "liars_dice",
        "blind_auction",
        "negotiation",
        "pig",
        "prisoners_dilemma",
    ] {
        assert!(text.contains(g), "{g}");
    }
    assert!(text.contains("prompt+legal"));
    // Specs are parsed once, at the argument edge: a bad one is a usage error (exit 2), not a panic.
    let bad = tessera()
        .args(["arena", "match", "--agents", "random,chess"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("unknown agent 'chess'") && !err.contains("panicked"),
        "{err}"
    );
}

#[test]
fn bench_arena_prints_its_keys() {
    let v = run_json(tessera().args([
        "bench",
        "arena",
        "--games",
        "nim",
        "--sims",
        "20",
        "--moves",
        "2",
        "--random-matches",
        "5",
        "--mcts-matches",
        "1",
        "--python",
        "/nonexistent/python",
        "--json",
    ]));
    assert_keys(&v, &["sims", "games", "openspiel"]);
    assert_keys(
        &v["games"][0],
        &[
            "game",
            "mcts",
            "openspiel_cpp_ms",
            "openspiel_python_ms",
            "random_vs_random_matches_per_s",
            "mcts_vs_random_matches_per_s",
        ],
    );
}

/// Legal-move decoding with the real model, local and served: no forfeit, whole matches.
#[test]
#[ignore = "needs assets"]
fn smollm2_plays_constrained_locally_and_served() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().unwrap();
    let local = run_json(
        tessera()
            .args([
                "arena",
                "match",
                "--agents",
                "prompt+legal:local:smollm2-135m,random",
            ])
            .args(["--games", "kuhn_poker", "--json", "--out"])
            .arg(dir.path().join("local")),
    );
    assert_eq!(local["matches"], 2);
    assert_eq!(local["completion_rate"], 1.0);
    assert_eq!(local["error_profile"], serde_json::json!({}));
    // `tessera serve` on a free port; the OpenAI client scores through /v1/completions (echo + logprobs).
    let mut server = tessera()
        .args(["serve", "smollm2-135m", "--port", "0"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(server.stderr.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("server output").unwrap();
        if let Some(rest) = line.split_once(" at ").map(|x| x.1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    let spec = format!("prompt+legal:openai:{url}#smollm2-135m,random");
    let served = tessera()
        .args([
            "arena",
            "match",
            "--agents",
            &spec,
            "--games",
            "kuhn_poker",
            "--json",
            "--out",
        ])
        .arg(dir.path().join("served"))
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        served.status.success(),
        "{}",
        String::from_utf8_lossy(&served.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&served.stdout).unwrap();
    assert_eq!(v["completion_rate"], 1.0);
    assert_eq!(v["error_profile"], serde_json::json!({}));
}
