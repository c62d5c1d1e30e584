//! Each running environment's app log, `<state_dir>/app-logs/<app>/<environment>.log`:
//! the app process's stdout and stderr, plus stagehand's own lines about starts, exits
//! and stops.
//!
//! The process writes to the file itself (opened `O_APPEND` and handed over as its
//! stdout and stderr), not through a pipe to stagehand: a pipe would die with
//! stagehand and take the app down with `SIGPIPE`. Rotation is therefore copy +
//! truncate: past [`MAX_BYTES`] the file is copied to `.log.1` and truncated; the
//! app's appends continue at the new end. Followers poll the file and start over from
//! the top when it shrank.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Size at which the log is rotated; at most twice this is kept (`.log` + `.log.1`).
pub const MAX_BYTES: u64 = 10 * 1024 * 1024;

/// Most a single read of the log returns.
pub const MAX_READ: u64 = 2 * 1024 * 1024;

pub fn path(state_dir: &Path, app: &str, environment: &str) -> PathBuf {
    state_dir
        .join("app-logs")
        .join(app)
        .join(format!("{environment}.log"))
}

/// Opens (creating) the log for appending: what a new process writes into.
pub fn open_append(path: &Path) -> std::io::Result<File> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    OpenOptions::new().create(true).append(true).open(path)
}

/// Appends one of stagehand's own lines (`--- stagehand: …`). Failures are ignored:
/// a note is never worth failing an operation for.
pub fn note(path: &Path, text: &str) {
    if let Ok(mut file) = open_append(path) {
        let _ = writeln!(file, "--- stagehand: {text}");
    }
}

/// Copy + truncate when the log has grown past `max`. Returns whether it rotated.
pub fn rotate_if_big(path: &Path, max: u64) -> std::io::Result<bool> {
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(false);
    };
    if meta.len() <= max {
        return Ok(false);
    }
    let mut rotated = path.as_os_str().to_owned();
    rotated.push(".1");
    std::fs::copy(path, PathBuf::from(rotated))?;
    OpenOptions::new().write(true).open(path)?.set_len(0)?;
    Ok(true)
}

/// What was written from `offset` on (at most [`MAX_READ`] bytes) and the offset to
/// continue from. A log that shrank below `offset` was rotated: read from the top.
pub fn read_from(path: &Path, offset: u64) -> std::io::Result<(Vec<u8>, u64)> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    let start = if len < offset { 0 } else { offset };
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.take(MAX_READ).read_to_end(&mut bytes)?;
    let next = start + bytes.len() as u64;
    Ok((bytes, next))
}

/// The last [`MAX_READ`] bytes, from a line start: what a non-following read shows.
pub fn tail(path: &Path) -> std::io::Result<(Vec<u8>, u64)> {
    let len = match std::fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e),
    };
    let (mut bytes, next) = read_from(path, len.saturating_sub(MAX_READ))?;
    if len > MAX_READ
        && let Some(newline) = bytes.iter().position(|b| *b == b'\n')
    {
        bytes.drain(..=newline);
    }
    Ok((bytes, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_keeps_one_old_file_and_followers_start_over() {
        let dir = tempfile::tempdir().unwrap();
        let log = path(dir.path(), "shop", "staging");
        let mut writer = open_append(&log).unwrap();
        writer.write_all(b"first line\nsecond line\n").unwrap();
        let (read, offset) = read_from(&log, 0).unwrap();
        assert_eq!(read, b"first line\nsecond line\n");
        assert!(!rotate_if_big(&log, 1000).unwrap());
        assert!(rotate_if_big(&log, 10).unwrap());
        // The writer keeps its descriptor and appends at the new end.
        writer.write_all(b"after\n").unwrap();
        assert_eq!(read_from(&log, offset).unwrap().0, b"after\n");
        let old = std::fs::read(dir.path().join("app-logs/shop/staging.log.1")).unwrap();
        assert_eq!(old, b"first line\nsecond line\n");
        note(&log, "stopped");
        assert_eq!(tail(&log).unwrap().0, b"after\n--- stagehand: stopped\n");
    }
}
