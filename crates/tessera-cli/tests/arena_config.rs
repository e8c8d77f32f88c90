//! `tessera arena tournament --config FILE`: TOML keys drive the run; unknown keys are a one-line error.

mod common;
use common::tessera;

#[test]
fn toml_config_drives_a_tournament_and_flags_override_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let cfg = dir.path().join("t.toml");
    std::fs::write(
        &cfg,
        format!("games = [\"nim\"]\nagents = [\"random\", \"mcts:sims=20\"]\nmatches = 2\nseed = 3\nout = {:?}\n", out),
    )
    .unwrap();
    let o = tessera()
        .args(["arena", "tournament", "--config"])
        .arg(&cfg)
        .arg("--json")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lines = std::fs::read_to_string(out.join("matches.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 2);
    // --matches on the command line wins over the file: 4 matches per pairing are other settings (the seats swap
    // at half), so resuming the 2-match run with them is refused and the records stay as they were.
    let o = tessera()
        .args(["arena", "tournament", "--matches", "4", "--config"])
        .arg(&cfg)
        .arg("--json")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("different settings"));
    assert_eq!(
        std::fs::read_to_string(out.join("matches.jsonl"))
            .unwrap()
            .lines()
            .count(),
        2
    );
    let other = dir.path().join("run4");
    let o = tessera()
        .args(["arena", "tournament", "--matches", "4", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&other)
        .arg("--json")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        std::fs::read_to_string(other.join("matches.jsonl"))
            .unwrap()
            .lines()
            .count(),
        4
    );
}

#[test]
fn unknown_config_keys_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "agentz = [\"random\"]\n").unwrap();
    let o = tessera()
        .args(["arena", "tournament", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("bad.toml:1") && err.contains("agentz"),
        "{err}"
    );
}
