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
    /// Creates `runs/<name>-<unix seconds>` under `root`.
    pub fn fresh(root: impl AsRef<Path>, name: &str) -> Result<Self> {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Self::at(root.as_ref().join(format!("{name}-{secs}")))
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
