//! Run directories: every command that produces results writes `result.json` (and often `report.md`) into one.
use crate::{fsx, Error, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// A directory holding one run's outputs.
#[derive(Debug, Clone)]
pub struct RunDir {
    path: PathBuf,
}

impl RunDir {
    /// Uses `path` as the run directory, creating it.
    pub fn at(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        std::fs::create_dir_all(&path).map_err(|e| Error::io(&path, e))?;
        Ok(RunDir { path })
    }
    /// Creates a new `<name>-<unix seconds>` directory under `root`, or `<name>-<unix seconds>-<k>` (k = 2, 3, ...)
    /// when that one exists: the directory is created exclusively, so two runs started in the same second never
    /// share one.
    pub fn fresh(root: impl AsRef<Path>, name: &str) -> Result<Self> {
        let root = root.as_ref();
        std::fs::create_dir_all(root).map_err(|e| Error::io(root, e))?;
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut k = 1u32;
        loop {
            let leaf = if k == 1 {
                format!("{name}-{secs}")
            } else {
                format!("{name}-{secs}-{k}")
            };
            let path = root.join(leaf);
            match std::fs::create_dir(&path) {
                Ok(()) => return Ok(RunDir { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && k < 100_000 => k += 1,
                Err(e) => return Err(Error::io(&path, e)),
            }
        }
    }
    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// A file inside the directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
    /// Writes `name` as pretty JSON, atomically.
    pub fn write_json<T: Serialize + ?Sized>(&self, name: &str, value: &T) -> Result<PathBuf> {
        let p = self.file(name);
        fsx::write_json_atomic(&p, value)?;
        Ok(p)
    }
}

/// Seconds since the Unix epoch, for timestamps in records.
pub fn unix_time() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_run_directories_are_unique_within_a_second() {
        let root = tempfile::tempdir().unwrap();
        let dirs: Vec<_> = (0..5)
            .map(|_| {
                RunDir::fresh(root.path(), "arena")
                    .unwrap()
                    .path()
                    .to_path_buf()
            })
            .collect();
        let mut uniq = dirs.clone();
        uniq.sort();
        uniq.dedup();
        assert_eq!(uniq.len(), 5, "{dirs:?}");
    }
}
