//! Helpers shared by the CLI contract tests: run the `tessera` binary, parse its one JSON object, check a clean
//! failure (exit code 2, one `tessera: error` line naming the problem, no panic).
#![allow(dead_code)] // each test file uses a subset
use std::process::{Command, Output};

/// The `tessera` binary under test, with progress output off.
pub fn tessera() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tessera"));
    c.env("TESSERA_QUIET", "1");
    c
}

/// Runs a command that must succeed and print one JSON object; returns it.
pub fn run_json(cmd: &mut Command) -> serde_json::Value {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Exit code 2 with exactly one `tessera: error` line that contains `needle`, and no panic.
pub fn assert_clean_failure(out: &Output, needle: &str) {
    assert_eq!(
        out.status.code(),
        Some(2),
        "exit code; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("tessera: error"))
        .collect();
    assert_eq!(lines.len(), 1, "one error line: {err}");
    assert!(lines[0].contains(needle), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
