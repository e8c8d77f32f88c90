//! Atomic file output: write to a temporary file in the target directory, then rename.
use crate::{Error, Result};
use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` atomically (temp file in the same directory, fsync, rename, fsync of the directory).
/// Parent directories are created. A crash leaves either the old file or the new one, never half of one. The file
/// gets the usual mode for new files (`0666` less the umask), not the temp file's private `0600`.
pub fn write_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    let path = path.as_ref();
    let dir = parent_dir(path);
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut tmp = temp_file_in(dir)?;
    tmp.write_all(bytes).map_err(|e| Error::io(path, e))?;
    persist(tmp, path)
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// A temporary file in `dir` created with mode `0666` less the umask (like any new file), for [`persist`].
pub fn temp_file_in(dir: &Path) -> Result<tempfile::NamedTempFile> {
    let mut b = tempfile::Builder::new();
    b.prefix(".tmp-").suffix(".part");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        b.permissions(std::fs::Permissions::from_mode(0o666));
    }
    b.tempfile_in(dir).map_err(|e| Error::io(dir, e))
}

/// Moves a finished temporary file to `path`: fsync of the file, rename, fsync of the directory, so that after a
/// crash `path` holds the old content or the complete new one.
pub fn persist(tmp: tempfile::NamedTempFile, path: &Path) -> Result<()> {
    tmp.as_file().sync_all().map_err(|e| Error::io(path, e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    sync_dir(parent_dir(path))
}

/// Renames a complete file written by someone else (e.g. a child process) onto `path` with the same guarantees
/// as [`persist`].
pub fn rename_durable(from: &Path, path: &Path) -> Result<()> {
    std::fs::File::open(from)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(from, e))?;
    std::fs::rename(from, path).map_err(|e| Error::io(path, e))?;
    sync_dir(parent_dir(path))
}

/// Flushes a directory's entries (a rename inside it) to disk. A no-op where directories cannot be opened.
pub fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let d = std::fs::File::open(dir).map_err(|e| Error::io(dir, e))?;
        d.sync_all().map_err(|e| Error::io(dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Fails unless `path` is a regular file (after following links): a directory, FIFO, socket or device is refused
/// before anyone opens it (opening a FIFO would block forever).
pub fn ensure_regular_file(path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let md = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if md.is_file() {
        return Ok(());
    }
    let what = if md.is_dir() {
        "a directory"
    } else {
        "not a regular file (FIFO, socket or device)"
    };
    Err(Error::format(
        path,
        format!("is {what}; expected a regular file"),
    ))
}

/// Serialises `value` as pretty JSON and writes it atomically.
pub fn write_json_atomic<T: serde::Serialize + ?Sized>(
    path: impl AsRef<Path>,
    value: &T,
) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value)?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// Reads a whole file, mapping the error to one that names the file.
pub fn read(path: impl AsRef<Path>) -> Result<Vec<u8>> {
    let path = path.as_ref();
    ensure_regular_file(path)?;
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

/// Reads a whole UTF-8 text file, naming the file in any error.
pub fn read_to_string(path: impl AsRef<Path>) -> Result<String> {
    let path = path.as_ref();
    let bytes = read(path)?;
    String::from_utf8(bytes).map_err(|e| {
        Error::format(
            path,
            format!(
                "not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

/// Appends one line (a JSONL record) to `path` and flushes it to disk, so a record survives a crash.
pub fn append_line(path: impl AsRef<Path>, line: &str) -> Result<()> {
    let path = path.as_ref();
    if let Some(d) = path.parent() {
        if !d.as_os_str().is_empty() {
            std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
        }
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    let mut buf = line.trim_end_matches('\n').as_bytes().to_vec();
    buf.push(b'\n');
    f.write_all(&buf).map_err(|e| Error::io(path, e))?;
    f.sync_data().map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b/out.json");
        write_json_atomic(&p, &serde_json::json!({"x": 1})).unwrap();
        write_json_atomic(&p, &serde_json::json!({"x": 2})).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&read(&p).unwrap()).unwrap();
        assert_eq!(v["x"], 2);
        assert_eq!(
            std::fs::read_dir(p.parent().unwrap()).unwrap().count(),
            1,
            "no temp files left"
        );
    }

    #[cfg(unix)]
    #[test]
    fn atomic_write_respects_the_umask_and_refuses_fifos() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.json");
        write_atomic(&p, b"{}").unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        // Whatever the umask, a new file is readable by its group/others unless the umask says otherwise; the
        // test runner's umask is 022 or 002 in practice.
        assert_ne!(mode, 0o600, "temp-file mode leaked: {mode:o}");
        assert!(mode & 0o044 != 0, "mode {mode:o}");
        let fifo = dir.path().join("fifo");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        let e = read_to_string(&fifo).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        let e = read_to_string(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("directory") && e.matches("directory").count() == 1,
            "{e}"
        );
        std::fs::write(dir.path().join("bad.txt"), [0x66, 0xff, 0x66]).unwrap();
        let e = read_to_string(dir.path().join("bad.txt"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not UTF-8") && e.contains("offset 1"), "{e}");
    }

    #[test]
    fn append_line_accumulates_records() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.jsonl");
        append_line(&p, "{\"a\":1}").unwrap();
        append_line(&p, "{\"a\":2}\n").unwrap();
        assert_eq!(read_to_string(&p).unwrap(), "{\"a\":1}\n{\"a\":2}\n");
    }
}
