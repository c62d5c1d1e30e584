//! Running one deploy step (`build`, `after_release`) as a shell command.
//!
//! This module owns the whole life of the step's processes: it starts
//! `sh -c <command>` in the release directory with an environment it is given,
//! streams every line the step writes to stdout and stderr to a callback while
//! the step runs, enforces the step timeout and the cancel signal, and makes
//! sure that nothing the step started is still running once [`run`] returns
//! (with one documented exception: a process that deliberately leaves the
//! process group with `setsid`).
//!
//! It does not decide what the environment is: the caller gives the whole list in
//! [`CommandSpec::env`], made by [`env`] (the one place a command's
//! environment is built: the inherited allow-list, configured and `STAGEHAND_*`
//! variables).
//!
//! The module is split by job: [`env`] makes a command's environment (for app
//! processes too); [`group`] starts the shell as a process group and ends it
//! (signals, the grace period, the timeout clock); [`output`] turns its two pipes
//! into lines for the callback; this file ties them together in [`run`].
//!
//! # Process groups
//!
//! The shell is started as the leader of a new process group, so the step and
//! everything it forks share one group id (the shell's pid). Timeouts and
//! cancellation send SIGTERM to the whole group, wait
//! [`CommandSpec::kill_grace`], then send SIGKILL to the group. Signalling only
//! the shell would orphan its children: they keep the stdout/stderr pipes
//! open, so the log readers would never see end-of-file and the step would
//! hang for as long as they live. After the shell exits for any reason,
//! including success, the group gets a SIGKILL too, so a forgotten
//! `sleep 1000 &` does not outlive its step.
//!
//! A process that calls `setsid` leaves the group and cannot be found again
//! without tracking every pid. It may hold the pipes open forever, so once the
//! shell has exited the pipes are drained for at most [`DRAIN_LIMIT`], then
//! abandoned.
//!
//! # Security
//!
//! - No shell interpolation of payload data. The command string comes from the
//!   operator's configuration only. Anything that comes from a webhook payload
//!   (branch names, commit messages, author names) must travel as an
//!   environment variable in [`CommandSpec::env`], where the shell treats it as
//!   data (`"$BRANCH"`), never spliced into [`CommandSpec::command`].
//! - The environment is cleared. Stagehand's own environment holds the webhook
//!   secrets and the API token, and build steps run code from the repository:
//!   a pushed branch could print or exfiltrate anything it can read. [`run`]
//!   starts the child from an empty environment and sets exactly
//!   [`CommandSpec::env`]; [`env`] passes on only a short allow-list of
//!   stagehand's own variables.
//! - Process groups (above) keep a step from leaving processes behind that
//!   would keep running repository code after the deploy has finished, been
//!   cancelled, or timed out.

use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::leftovers::ProcessRegistry;
use crate::core::duration::format_limit;
use crate::core::mask::Masker;

mod group;
mod output;

use group::{GroupGuard, cancelled, outcome_of, signal_name, sleep_for, terminate};
#[cfg(test)]
use output::MAX_LINE;

/// How long the pipes are still read after the shell has exited and its group
/// has been killed. Only a process that escaped the group with `setsid` can
/// keep them open past that point, and it must not hold the deploy hostage.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// Which pipe a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One step to run.
#[derive(Debug, Clone)]
pub struct CommandSpec {
    /// Run as `sh -c <command>`. Comes from the operator's configuration,
    /// never from a webhook payload: payload values go in [`Self::env`].
    pub command: String,
    /// Working directory (the release directory).
    pub dir: PathBuf,
    /// The complete environment of the step. [`run`] clears the environment
    /// and sets exactly these variables, nothing is inherited implicitly:
    /// callers pass an [`env::CommandEnv`]'s list. A later entry with the
    /// same name wins.
    pub env: Vec<(String, String)>,
    /// How long the step may run before its process group is killed.
    pub timeout: Duration,
    /// Time between SIGTERM and SIGKILL when the group is killed.
    pub kill_grace: Duration,
    /// Where the step's process group is recorded while it may run, so that crash
    /// recovery can kill it (and only it). `None`: not recorded.
    pub groups: Option<ProcessRegistry>,
    /// The secrets the log masks: a long line is never cut through one of them, so
    /// each piece still holds it whole for the masking.
    pub secrets: Masker,
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    /// The shell exited with a non-zero code. A command inside the shell that
    /// was killed by a signal usually shows up here as `128 + signal`.
    Failed {
        code: i32,
    },
    /// The shell itself died from a signal that did not come from us.
    Signalled {
        signal: i32,
    },
    /// We killed the process group after [`CommandSpec::timeout`].
    TimedOut {
        after: Duration,
    },
    /// The cancel signal fired and we killed the process group.
    Cancelled,
}

impl Outcome {
    #[cfg(test)]
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Succeeded)
    }

    /// A short human description for deploy logs and status pages, e.g.
    /// `exit code 2` or `killed by signal 9 (SIGKILL)`.
    pub fn describe(&self) -> String {
        match self {
            Outcome::Succeeded => "succeeded".to_owned(),
            Outcome::Failed { code } => format!("exit code {code}"),
            Outcome::Signalled { signal } => match signal_name(*signal) {
                Some(name) => format!("killed by signal {signal} ({name})"),
                None => format!("killed by signal {signal}"),
            },
            Outcome::TimedOut { after } => {
                format!(
                    "timed out after {}: process group killed",
                    format_limit(*after)
                )
            }
            Outcome::Cancelled => "cancelled: process group killed".to_owned(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("cannot start `sh -c {command}` in {dir}: {source}", dir = .dir.display())]
    Spawn {
        command: String,
        dir: PathBuf,
        source: io::Error,
    },
    #[error("waiting for `{command}`: {source}")]
    Wait { command: String, source: io::Error },
}

/// Runs `sh -c <spec.command>` in `spec.dir` and waits for it.
///
/// The child starts from an empty environment plus exactly `spec.env` (nothing
/// else is inherited). Stdin is `/dev/null`.
///
/// Every line the step writes to stdout or stderr is passed to `on_line` as
/// soon as it is read: lines are split on `\n` with a trailing `\r` removed,
/// a lone `\r` redraws the line (only its final state arrives), invalid UTF-8 is
/// replaced lossily, a line longer than [`MAX_LINE`] bytes arrives in pieces of at
/// most [`MAX_LINE`] bytes (never cut through one of `spec.secrets`), and a partial
/// line arrives after [`PARTIAL_LINE_IDLE`] of quiet. Calls never overlap and
/// follow the order in which lines were read; lines of one stream keep their
/// order, but the interleaving of stdout and stderr is only as exact as two
/// separate pipes allow. `on_line` runs on the task that awaits `run`, so it
/// should be quick (hand slow work to a channel).
///
/// When `cancel` becomes true (or already is), the step's process group is
/// killed and the outcome is [`Outcome::Cancelled`]; if it is true before the
/// step starts, nothing is started. A dropped sender means "never cancelled".
///
/// When `spec.timeout` passes, the group gets SIGTERM, then SIGKILL after
/// `spec.kill_grace`, and the outcome is [`Outcome::TimedOut`] whatever the
/// exit status. After the shell exits for any reason, whatever is left of its
/// group gets SIGKILL; output is then drained for at most [`DRAIN_LIMIT`].
///
/// If the returned future is dropped before it completes, the group is killed
/// with SIGKILL.
pub async fn run(
    spec: &CommandSpec,
    on_line: impl FnMut(Stream, &str) + Send,
    mut cancel: watch::Receiver<bool>,
) -> Result<Outcome, CommandError> {
    if *cancel.borrow_and_update() {
        return Ok(Outcome::Cancelled);
    }

    let (mut child, pgid) = group::spawn(spec)?;
    let mut group = GroupGuard { pgid: Some(pgid) };
    let recorded = match &spec.groups {
        Some(groups) => groups.record(pgid.as_raw_nonzero().get()).await,
        None => None,
    };
    let (readers, mut sink) = output::start(&mut child, &spec.secrets, on_line);

    let stop = {
        let deadline = sleep_for(spec.timeout);
        tokio::pin!(deadline);
        let cancelled = cancelled(&mut cancel);
        tokio::pin!(cancelled);
        loop {
            tokio::select! {
                status = child.wait() => break Ended::Exited(status),
                () = sink.deliver_or_park() => {}
                () = &mut deadline => break Ended::Stopped(Outcome::TimedOut { after: spec.timeout }),
                () = &mut cancelled => break Ended::Stopped(Outcome::Cancelled),
            }
        }
    };

    let result = match stop {
        Ended::Exited(status) => status.map(outcome_of),
        Ended::Stopped(outcome) => terminate(&mut child, &mut sink, pgid, spec.kill_grace)
            .await
            .map(|_| outcome),
    };
    // The shell is gone (or waiting failed); whatever it left in its group
    // goes now, before draining, so that their pipe ends close.
    group.kill_now();
    if let (Some(groups), Some(start_time)) = (&spec.groups, recorded) {
        groups.forget(pgid.as_raw_nonzero().get(), start_time).await;
    }
    let outcome = result.map_err(|source| CommandError::Wait {
        command: spec.command.clone(),
        source,
    })?;

    sink.drain(Instant::now() + DRAIN_LIMIT).await;
    readers.abort();
    // Lines the readers had already queued were read before we stopped.
    sink.deliver_queued();
    Ok(outcome)
}

enum Ended {
    Exited(io::Result<ExitStatus>),
    Stopped(Outcome),
}

#[cfg(test)]
mod tests;
