//! Starting an app process: `sh -c <run>` in the release directory, as the leader of
//! its own session and process group (so stopping it stops everything it started, and
//! neither a terminal's Ctrl-C or hang-up nor a signal to stagehand's group reaches
//! it), with a cleared environment plus the given variables, stdin from `/dev/null`,
//! and stdout + stderr appended straight to the app log.
//!
//! The new session comes from util-linux's `setsid` program, which calls setsid(2) and
//! execs in place (the pid stays ours): calling setsid(2) between fork and exec
//! ourselves would need `unsafe` (`pre_exec`), which this crate forbids. Where
//! `setsid` is not installed, the process still gets its own process group.
//!
//! The process is stagehand's child only for reaping: a thread waits for it so it never
//! lingers as a zombie. Nothing ties its life to stagehand's: no pipe, no
//! `kill_on_drop`, no parent-death signal. When stagehand exits it is re-parented and
//! keeps serving.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use super::app_log;
use super::procfs;

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("opening the app log {path}: {source}")]
    Log {
        path: String,
        source: std::io::Error,
    },
    #[error("starting `{command}` in {dir}: {source}")]
    Spawn {
        command: String,
        dir: String,
        source: std::io::Error,
    },
    #[error("`{command}` exited at once (see the app log)")]
    Vanished { command: String },
}

#[derive(Debug, Clone, Copy)]
pub struct Spawned {
    pub pid: i32,
    pub start_ticks: u64,
}

/// Blocking (a fork and a small file read).
pub fn spawn(
    command: &str,
    dir: &Path,
    env: &[(String, String)],
    log_path: &Path,
) -> Result<Spawned, SpawnError> {
    let log_err = |source| SpawnError::Log {
        path: log_path.display().to_string(),
        source,
    };
    let stdout = app_log::open_append(log_path).map_err(log_err)?;
    let stderr = stdout.try_clone().map_err(log_err)?;
    let mut cmd = match setsid_program() {
        Some(setsid) => {
            let mut cmd = Command::new(setsid);
            cmd.arg("sh");
            cmd
        }
        None => {
            let mut cmd = Command::new("sh");
            cmd.process_group(0);
            cmd
        }
    };
    let mut child = cmd
        .arg("-c")
        .arg(command)
        .current_dir(dir)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .map_err(|source| SpawnError::Spawn {
            command: command.to_owned(),
            dir: dir.display().to_string(),
            source,
        })?;
    let pid = child.id() as i32;
    // Not reaped yet, so even a process that already exited still has its stat line.
    let stat = procfs::stat(pid);
    std::thread::spawn(move || {
        let _ = child.wait();
    });
    match stat {
        Some(stat) => Ok(Spawned {
            pid,
            start_ticks: stat.start_ticks,
        }),
        None => Err(SpawnError::Vanished {
            command: command.to_owned(),
        }),
    }
}

/// util-linux's `setsid`, looked up where Debian, Fedora and Alpine put it (not on
/// `$PATH`: the app's `PATH` comes from the config, stagehand's own is not trusted to
/// be set under systemd).
fn setsid_program() -> Option<&'static str> {
    ["/usr/bin/setsid", "/bin/setsid"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
}
