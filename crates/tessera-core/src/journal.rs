//! Append-only JSONL journals: the checkpoint of a long run. Each finished unit of work is appended (and synced)
//! as one line at once; a rerun reads the journal back and skips what is already there.
use crate::{Error, Result};
use serde::{de::DeserializeOwned, Serialize};
use std::path::{Path, PathBuf};

/// A JSONL file of records of one type.
#[derive(Debug, Clone)]
pub struct Journal {
    path: PathBuf,
}

impl Journal {
    /// Opens (or prepares to create) the journal at `path` and returns the records already in it.
    ///
    /// A run killed mid-write can leave a torn last line: it is dropped (its unit of work runs again) and the file
    /// is rewritten, atomically, without it. Any other line that does not parse is an error naming
    /// the file and line: the journal is not silently truncated.
    pub fn open<T: DeserializeOwned>(path: impl Into<PathBuf>) -> Result<(Journal, Vec<T>)> {
        let path = path.into();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(Error::io(&path, e)),
        };
        let torn_tail = !text.is_empty() && !text.ends_with('\n');
        let lines: Vec<&str> = text.lines().collect();
        let mut records = Vec::with_capacity(lines.len());
        for (i, line) in lines.iter().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str(line) {
                Ok(r) => records.push(r),
                Err(_) if torn_tail && i + 1 == lines.len() => {}
                Err(e) => {
                    return Err(Error::invalid(format!(
                    "{}: line {} is not a valid record ({e}); move the file away to start afresh",
                    path.display(),
                    i + 1
                )))
                }
            }
        }
        if torn_tail {
            let keep = text.rfind('\n').map_or(0, |i| i + 1);
            crate::fsx::write_atomic(&path, &text.as_bytes()[..keep])?;
        }
        Ok((Journal { path }, records))
    }

    /// Appends one record as a line and syncs it to disk.
    pub fn append<T: Serialize>(&self, record: &T) -> Result<()> {
        let line = serde_json::to_string(record).map_err(|e| {
            Error::invalid(format!(
                "{}: cannot encode record: {e}",
                self.path.display()
            ))
        })?;
        crate::fsx::append_line(&self.path, &line)
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Guards a resumable run directory against being resumed with different settings: writes `settings` to `path`
/// the first time, and afterwards requires the stored settings to be identical.
pub fn check_settings<T: Serialize>(path: &Path, settings: &T) -> Result<()> {
    let now = serde_json::to_value(settings)
        .map_err(|e| Error::invalid(format!("cannot encode settings: {e}")))?;
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let before: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| Error::invalid(format!("{}: not JSON ({e})", path.display())))?;
            if before != now {
                return Err(Error::invalid(format!(
                    "{} holds a run with different settings; resume it with the same ones or choose another output folder",
                    path.display()
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            crate::fsx::write_json_atomic(path, &now)
        }
        Err(e) => Err(Error::io(path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Rec {
        k: u32,
    }

    #[test]
    fn appends_reads_back_and_heals_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("runs.jsonl");
        let (j, none) = Journal::open::<Rec>(&p).unwrap();
        assert!(none.is_empty());
        j.append(&Rec { k: 1 }).unwrap();
        j.append(&Rec { k: 2 }).unwrap();
        // Simulate a crash in the middle of writing the third record.
        let mut bytes = std::fs::read(&p).unwrap();
        bytes.extend_from_slice(b"{\"k\":");
        std::fs::write(&p, bytes).unwrap();
        let (j, got) = Journal::open::<Rec>(&p).unwrap();
        assert_eq!(got, vec![Rec { k: 1 }, Rec { k: 2 }]);
        j.append(&Rec { k: 3 }).unwrap();
        let (_, got) = Journal::open::<Rec>(&p).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[2], Rec { k: 3 });
    }

    #[test]
    fn a_corrupt_middle_line_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("runs.jsonl");
        std::fs::write(&p, "{\"k\":1}\ngarbage\n{\"k\":2}\n").unwrap();
        let err = Journal::open::<Rec>(&p).unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn settings_must_match_to_resume() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("settings.json");
        check_settings(&p, &Rec { k: 1 }).unwrap();
        check_settings(&p, &Rec { k: 1 }).unwrap();
        assert!(check_settings(&p, &Rec { k: 2 }).is_err());
    }
}
