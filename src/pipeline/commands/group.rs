//! The step's process group: `sh -c` started as the leader of a new group, and
//! everything that ends it (the timeout clock, the cancel flag, SIGTERM, the grace
//! period, SIGKILL to the whole group, the kill when `run`'s future is dropped).
//! Why a group and not the shell alone: see the parent module's doc.

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use rustix::process::{Pid, Signal};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until};

use super::output::LineSink;
use super::{CommandError, CommandSpec, Outcome, Stream};

/// Starts `sh -c <spec.command>` in `spec.dir` as the leader of a new process group,
/// from an empty environment plus exactly `spec.env`, stdin from `/dev/null`, stdout
/// and stderr piped. Returns the child and its group id.
pub(super) fn spawn(spec: &CommandSpec) -> Result<(Child, Pid), CommandError> {
    let child = Command::new("sh")
        .arg("-c")
        .arg(&spec.command)
        .current_dir(&spec.dir)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Belt and braces with `GroupGuard`: tokio then also reaps the shell.
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| CommandError::Spawn {
            command: spec.command.clone(),
            dir: spec.dir.clone(),
            source,
        })?;
    // `process_group(0)` makes the group id equal to the shell's pid. The pid
    // is only missing once the child has been reaped, which cannot have
    // happened yet; treat it as a failure to wait rather than panic.
    let Some(pgid) = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .and_then(Pid::from_raw)
    else {
        return Err(CommandError::Wait {
            command: spec.command.clone(),
            source: io::Error::other("started shell has no pid"),
        });
    };
    Ok((child, pgid))
}

/// SIGTERM to the group, then SIGKILL if the shell is still there after
/// `grace`. Output keeps flowing meanwhile: what a step prints while shutting
/// down is often the most useful part of its log.
pub(super) async fn terminate<F: FnMut(Stream, &str)>(
    child: &mut Child,
    sink: &mut LineSink<F>,
    pgid: Pid,
    grace: Duration,
) -> io::Result<ExitStatus> {
    signal_group(pgid, Signal::TERM);
    let grace_over = sleep_for(grace);
    tokio::pin!(grace_over);
    loop {
        tokio::select! {
            status = child.wait() => return status,
            () = sink.deliver_or_park() => {}
            () = &mut grace_over => break,
        }
    }
    signal_group(pgid, Signal::KILL);
    loop {
        tokio::select! {
            status = child.wait() => return status,
            () = sink.deliver_or_park() => {}
        }
    }
}

/// `sleep`, except that a duration too large for the clock (an operator
/// writing a huge `step_timeout` to mean "no limit") waits forever instead of
/// panicking on the addition.
pub(super) async fn sleep_for(duration: Duration) {
    match Instant::now().checked_add(duration) {
        Some(deadline) => sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

pub(super) fn outcome_of(status: ExitStatus) -> Outcome {
    match (status.code(), status.signal()) {
        (Some(0), _) => Outcome::Succeeded,
        (Some(code), _) => Outcome::Failed { code },
        (None, Some(signal)) => Outcome::Signalled { signal },
        // `wait` only reports terminated children, which have a code or a
        // signal; a status with neither is not a success either way.
        (None, None) => Outcome::Failed {
            code: status.into_raw(),
        },
    }
}

/// Errors are ignored on purpose: ESRCH means the group is already empty,
/// which is the goal, and there is no better fallback for EPERM than the
/// SIGKILL that follows or the outcome we report anyway.
fn signal_group(pgid: Pid, signal: Signal) {
    let _ = rustix::process::kill_process_group(pgid, signal);
}

/// Resolves when the cancel flag is true. A dropped sender can never cancel,
/// so it must not count as a cancellation.
pub(super) async fn cancelled(cancel: &mut watch::Receiver<bool>) {
    if cancel.wait_for(|cancelled| *cancelled).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Kills the process group when dropped, so that a caller dropping the `run`
/// future (its own timeout, shutdown) cannot leave the step running.
pub(super) struct GroupGuard {
    pub(super) pgid: Option<Pid>,
}

impl GroupGuard {
    /// Once the shell has been reaped its pid may in principle be reused; the
    /// group is killed once, right after, and never again.
    pub(super) fn kill_now(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            signal_group(pgid, Signal::KILL);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill_now();
    }
}

pub(super) fn signal_name(signal: i32) -> Option<&'static str> {
    const NAMES: &[(Signal, &str)] = &[
        (Signal::HUP, "SIGHUP"),
        (Signal::INT, "SIGINT"),
        (Signal::QUIT, "SIGQUIT"),
        (Signal::ILL, "SIGILL"),
        (Signal::TRAP, "SIGTRAP"),
        (Signal::ABORT, "SIGABRT"),
        (Signal::BUS, "SIGBUS"),
        (Signal::FPE, "SIGFPE"),
        (Signal::KILL, "SIGKILL"),
        (Signal::USR1, "SIGUSR1"),
        (Signal::SEGV, "SIGSEGV"),
        (Signal::USR2, "SIGUSR2"),
        (Signal::PIPE, "SIGPIPE"),
        (Signal::ALARM, "SIGALRM"),
        (Signal::TERM, "SIGTERM"),
        (Signal::XCPU, "SIGXCPU"),
        (Signal::XFSZ, "SIGXFSZ"),
    ];
    let signal = Signal::from_named_raw(signal)?;
    NAMES
        .iter()
        .find(|(known, _)| *known == signal)
        .map(|(_, name)| *name)
}
