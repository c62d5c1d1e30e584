//! One server per state dir. Before anything reads or repairs the state (recovery
//! marks deploys `interrupted`, kills their builds, removes releases and git locks), the
//! server takes an exclusive `flock` on `<state_dir>/stagehand.lock` and keeps it for
//! its lifetime. A second server on the same state dir stops before touching anything,
//! naming the holder. The lock is a `flock`, not a pid file: it dies with the process
//! that held it, even under SIGKILL, so a stale file never blocks a restart.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StateLockError {
    #[error(
        "another stagehand ({holder}) is serving state_dir {}: stop it first, or give this one its own server.state_dir",
        .state_dir.display()
    )]
    Held { state_dir: PathBuf, holder: String },
    #[error("cannot lock {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Held for as long as the server runs; dropping it (or the process dying) releases it.
#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

impl StateLock {
    /// Takes the lock without waiting, and records `pid` and `listen` in the file for the
    /// error message a second server prints.
    pub fn acquire(state_dir: &Path, listen: &str) -> Result<StateLock, StateLockError> {
        let path = state_dir.join("stagehand.lock");
        let io = |source| StateLockError::Io {
            path: path.clone(),
            source,
        };
        // Not truncated on open: until the lock is ours, the holder's details are in it.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(StateLockError::Held {
                    state_dir: state_dir.to_owned(),
                    holder: if holder.is_empty() {
                        "a process that has not written its pid yet".into()
                    } else {
                        holder.to_owned()
                    },
                });
            }
            Err(e) => return Err(io(e.into())),
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        write!(file, "pid {}, listening on {listen}", std::process::id()).map_err(io)?;
        Ok(StateLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_names_the_first_holder_until_it_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = StateLock::acquire(dir.path(), "http://127.0.0.1:9000").unwrap();
        let err = StateLock::acquire(dir.path(), "http://127.0.0.1:9001").unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains(&format!(
                "pid {}, listening on http://127.0.0.1:9000",
                std::process::id()
            )),
            "{message}"
        );
        drop(first);
        let _again = StateLock::acquire(dir.path(), "http://127.0.0.1:9001").unwrap();
        let content = std::fs::read_to_string(dir.path().join("stagehand.lock")).unwrap();
        assert!(
            content.ends_with("listening on http://127.0.0.1:9001"),
            "{content}"
        );
    }
}
