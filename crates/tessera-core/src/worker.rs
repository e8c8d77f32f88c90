//! Measurement workers: a case runs in a fresh process (usually this binary again), so its heap and resident
//! memory are its own, and prints one JSON object that the parent reads back as a typed value.
use crate::error::{Error, Result};
use serde::de::DeserializeOwned;
use std::process::Command;

/// Runs `cmd` to completion and parses its standard output as one JSON value of type `T`.
///
/// `what` names the case in errors. A failed start, a non-zero exit (its standard error is quoted) and output
/// that is not the expected JSON are [`Error::Other`] errors.
pub fn run_json<T: DeserializeOwned>(cmd: &mut Command, what: &str) -> Result<T> {
    let out = cmd.output().map_err(|e| {
        Error::Other(format!(
            "worker {what}: {}: {e}",
            cmd.get_program().to_string_lossy()
        ))
    })?;
    if !out.status.success() {
        return Err(Error::Other(format!(
            "worker {what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    serde_json::from_slice(&out.stdout)
        .map_err(|e| Error::Other(format!("worker {what}: unreadable output: {e}")))
}

/// The path of the running executable, for respawning it as a worker.
pub fn current_exe() -> Result<std::path::PathBuf> {
    std::env::current_exe().map_err(|e| Error::Other(format!("the running executable: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_json_and_reports_failures() {
        let v: serde_json::Value =
            run_json(Command::new("sh").args(["-c", "echo '{\"a\": 1}'"]), "echo").unwrap();
        assert_eq!(v["a"], 1);
        let e = run_json::<serde_json::Value>(
            Command::new("sh").args(["-c", "echo boom >&2; exit 3"]),
            "fail",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("worker fail failed") && e.contains("boom"),
            "{e}"
        );
        let e =
            run_json::<serde_json::Value>(Command::new("sh").args(["-c", "echo not-json"]), "junk")
                .unwrap_err()
                .to_string();
        assert!(e.contains("unreadable output"), "{e}");
        let e =
            run_json::<serde_json::Value>(&mut Command::new("/nonexistent/tessera-worker"), "gone")
                .unwrap_err()
                .to_string();
        assert!(e.contains("/nonexistent/tessera-worker"), "{e}");
    }
}
