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
//! It does not decide what the environment is: [`base_env`] is the allow-list
//! of inherited variables, and the caller composes the final list (base plus
//! its own variables) into [`CommandSpec::env`].
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
//!   [`CommandSpec::env`]; [`base_env`] passes on only a short allow-list of
//!   harmless variables.
//! - Process groups (above) keep a step from leaving processes behind that
//!   would keep running repository code after the deploy has finished, been
//!   cancelled, or timed out.

use std::collections::HashMap;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use rustix::process::{Pid, Signal};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};

use super::leftovers::ProcessRegistry;
use crate::core::line_split::LineSplitter;
use crate::core::mask::Masker;

/// The longest piece of a line handed to the callback. A step that writes
/// megabytes without a newline would otherwise grow one buffer without bound.
pub const MAX_LINE: usize = 16 * 1024;

/// How long a partial line (no newline yet) waits before it is shown anyway: long
/// enough that a line written in several `write`s arrives whole, short enough that a
/// prompt or a progress bar is seen while it is current.
pub const PARTIAL_LINE_IDLE: Duration = Duration::from_millis(250);

/// How long the pipes are still read after the shell has exited and its group
/// has been killed. Only a process that escaped the group with `setsid` can
/// keep them open past that point, and it must not hold the deploy hostage.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// Lines in flight between the pipe readers and the callback. Bounded so that
/// a slow callback pushes back on the step (its writes block) instead of
/// buffering its output in memory.
const LINE_QUEUE: usize = 256;

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
    /// callers pass [`base_env`] followed by their own variables. A later
    /// entry with the same name wins.
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
                    format_duration(*after)
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

/// The variables every step inherits from stagehand's own environment:
/// `PATH`, `HOME`, `USER`, `LOGNAME`, `SHELL`, `LANG`, `LC_*`, `TZ`, `TMPDIR`
/// and `TERM`, each only if set.
///
/// Everything else is dropped on purpose: stagehand's environment holds the
/// webhook secrets and the API token, and a step runs code from the
/// repository, so a pushed branch could print them into the deploy log. The
/// environment is a parameter (pass `std::env::vars().collect()`) so that
/// tests control it. The result is sorted by name, so the child environment
/// does not depend on hash order.
///
/// This is only the base: [`run`] does not add it by itself. Callers append
/// their own variables and put the whole list in [`CommandSpec::env`].
pub fn base_env(process_env: &HashMap<String, String>) -> Vec<(String, String)> {
    const KEEP: &[&str] = &[
        "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "TZ", "TMPDIR", "TERM",
    ];
    let mut env: Vec<(String, String)> = process_env
        .iter()
        .filter(|(name, _)| KEEP.contains(&name.as_str()) || name.starts_with("LC_"))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    env.sort();
    env
}

/// Runs `sh -c <spec.command>` in `spec.dir` and waits for it.
///
/// The child starts from an empty environment plus exactly `spec.env` (see
/// [`base_env`]; nothing else is inherited). Stdin is `/dev/null`.
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

    let mut child = Command::new("sh")
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

    let wait_error = |source| CommandError::Wait {
        command: spec.command.clone(),
        source,
    };

    // `process_group(0)` makes the group id equal to the shell's pid. The pid
    // is only missing once the child has been reaped, which cannot have
    // happened yet; treat it as a failure to wait rather than panic.
    let Some(pgid) = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .and_then(Pid::from_raw)
    else {
        return Err(wait_error(io::Error::other("started shell has no pid")));
    };
    let mut group = GroupGuard { pgid: Some(pgid) };
    let recorded = match &spec.groups {
        Some(groups) => groups.record(pgid.as_raw_nonzero().get()).await,
        None => None,
    };

    let (tx, rx) = mpsc::channel(LINE_QUEUE);
    let mut readers = Readers(Vec::with_capacity(2));
    if let Some(out) = child.stdout.take() {
        readers.0.push(tokio::spawn(read_lines(
            Stream::Stdout,
            out,
            spec.secrets.clone(),
            tx.clone(),
        )));
    }
    if let Some(err) = child.stderr.take() {
        readers.0.push(tokio::spawn(read_lines(
            Stream::Stderr,
            err,
            spec.secrets.clone(),
            tx.clone(),
        )));
    }
    // Only the readers may hold senders, so the channel closes exactly when
    // both pipes have reached end-of-file.
    drop(tx);
    let mut sink = LineSink {
        rx,
        open: true,
        on_line,
    };

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
    let outcome = result.map_err(wait_error)?;

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

/// SIGTERM to the group, then SIGKILL if the shell is still there after
/// `grace`. Output keeps flowing meanwhile: what a step prints while shutting
/// down is often the most useful part of its log.
async fn terminate<F: FnMut(Stream, &str)>(
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
async fn sleep_for(duration: Duration) {
    match Instant::now().checked_add(duration) {
        Some(deadline) => sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

fn outcome_of(status: ExitStatus) -> Outcome {
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
async fn cancelled(cancel: &mut watch::Receiver<bool>) {
    if cancel.wait_for(|cancelled| *cancelled).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Kills the process group when dropped, so that a caller dropping the `run`
/// future (its own timeout, shutdown) cannot leave the step running.
struct GroupGuard {
    pgid: Option<Pid>,
}

impl GroupGuard {
    /// Once the shell has been reaped its pid may in principle be reused; the
    /// group is killed once, right after, and never again.
    fn kill_now(&mut self) {
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

/// Aborts the pipe readers when dropped: a reader blocked on a pipe held open
/// by an escaped process would otherwise live forever.
struct Readers(Vec<JoinHandle<()>>);

impl Readers {
    fn abort(&self) {
        for reader in &self.0 {
            reader.abort();
        }
    }
}

impl Drop for Readers {
    fn drop(&mut self) {
        self.abort();
    }
}

/// The single place `on_line` is called from, so calls never overlap and the
/// reader tasks never run caller code.
struct LineSink<F> {
    rx: mpsc::Receiver<(Stream, String)>,
    open: bool,
    on_line: F,
}

impl<F: FnMut(Stream, &str)> LineSink<F> {
    /// Delivers the next line; false once both pipes are closed.
    async fn deliver_next(&mut self) -> bool {
        if !self.open {
            return false;
        }
        match self.rx.recv().await {
            Some((stream, line)) => {
                (self.on_line)(stream, &line);
                true
            }
            None => {
                self.open = false;
                false
            }
        }
    }

    /// [`Self::deliver_next`] that never resolves once the pipes are closed,
    /// so it can sit in a `select!` next to the events that end the step.
    async fn deliver_or_park(&mut self) {
        if !self.deliver_next().await {
            std::future::pending::<()>().await;
        }
    }

    /// Delivers lines until both pipes are closed or `deadline` passes.
    async fn drain(&mut self, deadline: Instant) {
        let expired = sleep_until(deadline);
        tokio::pin!(expired);
        loop {
            tokio::select! {
                // Lines that are already queued are delivered before the
                // deadline is looked at.
                biased;
                delivered = self.deliver_next() => if !delivered { return },
                () = &mut expired => return,
            }
        }
    }

    fn deliver_queued(&mut self) {
        while let Ok((stream, line)) = self.rx.try_recv() {
            (self.on_line)(stream, &line);
        }
    }
}

/// Splits one pipe into lines ([`LineSplitter`]: pieces of at most [`MAX_LINE`]
/// bytes never cut through a secret, `\r` redraws) and queues them; a partial line
/// is queued once the pipe has been quiet for [`PARTIAL_LINE_IDLE`]. Stops at
/// end-of-file, on a read error (the step's output is then cut short, but its
/// outcome still counts), or when nobody listens any more.
async fn read_lines<R: AsyncRead + Unpin>(
    stream: Stream,
    mut pipe: R,
    secrets: Masker,
    tx: mpsc::Sender<(Stream, String)>,
) {
    let mut splitter = LineSplitter::new(MAX_LINE, &secrets);
    let mut chunk = vec![0u8; 8192];
    let mut lines = Vec::new();
    let mut partial = false;
    loop {
        // Reading a pipe is cancel-safe: a read the idle timer abandons took nothing.
        let read = if partial {
            match tokio::time::timeout(PARTIAL_LINE_IDLE, pipe.read(&mut chunk)).await {
                Ok(read) => read,
                Err(_) => {
                    partial = false;
                    if let Some(piece) = splitter.flush_partial()
                        && tx.send((stream, piece)).await.is_err()
                    {
                        return;
                    }
                    continue;
                }
            }
        } else {
            pipe.read(&mut chunk).await
        };
        let n = match read {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        splitter.push(&chunk[..n], &mut lines);
        partial = splitter.has_partial();
        for line in lines.drain(..) {
            if tx.send((stream, line)).await.is_err() {
                return;
            }
        }
    }
    splitter.finish(&mut lines);
    for line in lines {
        if tx.send((stream, line)).await.is_err() {
            return;
        }
    }
}

fn signal_name(signal: i32) -> Option<&'static str> {
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

fn format_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant as StdInstant;

    fn spec(dir: &std::path::Path, command: &str) -> CommandSpec {
        CommandSpec {
            command: command.to_owned(),
            dir: dir.to_path_buf(),
            env: vec![("PATH".to_owned(), "/usr/local/bin:/usr/bin:/bin".to_owned())],
            timeout: Duration::from_secs(30),
            kill_grace: Duration::from_millis(500),
            groups: None,
            secrets: Masker::default(),
        }
    }

    fn never() -> watch::Receiver<bool> {
        // Dropping the sender must not count as a cancellation.
        watch::channel(false).1
    }

    async fn run_collect(spec: &CommandSpec) -> (Outcome, Vec<(Stream, String)>) {
        let mut lines = Vec::new();
        // A broken kill path shows up as a hang: make it a failure instead.
        let outcome = tokio::time::timeout(
            Duration::from_secs(30),
            run(spec, |s, l| lines.push((s, l.to_owned())), never()),
        )
        .await
        .expect("run did not return within 30 s")
        .expect("run");
        (outcome, lines)
    }

    fn read_pid(path: &std::path::Path) -> i32 {
        std::fs::read_to_string(path)
            .expect("pid file")
            .trim()
            .parse()
            .expect("pid")
    }

    /// Running means: /proc/<pid> exists and its state is not 'Z' (zombie;
    /// an orphan is reaped by init or the test runner's subreaper, in its own
    /// time).
    fn is_running(pid: i32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => false,
            Ok(stat) => {
                let state = stat
                    .rsplit_once(')')
                    .and_then(|(_, rest)| rest.trim_start().chars().next());
                state != Some('Z')
            }
        }
    }

    async fn assert_gone(pid: i32) {
        for _ in 0..40 {
            if !is_running(pid) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("process {pid} is still running");
    }

    #[test]
    fn run_future_is_send() {
        fn assert_send<T: Send>(_: &T) {}
        let dir = tempfile::tempdir().expect("tempdir");
        let spec = spec(dir.path(), "true");
        let fut = run(&spec, |_, _| {}, never());
        assert_send(&fut);
    }

    #[tokio::test]
    async fn stdout_and_stderr_lines_arrive_tagged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (outcome, lines) =
            run_collect(&spec(dir.path(), "echo a; echo b >&2; printf 'no newline'")).await;
        assert_eq!(outcome, Outcome::Succeeded);
        assert_eq!(lines.len(), 3, "{lines:?}");
        let of = |want: Stream| -> Vec<&str> {
            lines
                .iter()
                .filter(|(s, _)| *s == want)
                .map(|(_, l)| l.as_str())
                .collect()
        };
        assert_eq!(of(Stream::Stdout), ["a", "no newline"]);
        assert_eq!(of(Stream::Stderr), ["b"]);
    }

    #[tokio::test]
    async fn crlf_is_trimmed_and_invalid_utf8_is_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_, lines) = run_collect(&spec(dir.path(), r"printf 'dos\r\nbad \377 byte\n\n'")).await;
        let lines: Vec<&str> = lines.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(lines, ["dos", "bad \u{FFFD} byte", ""]);
    }

    #[test]
    fn base_env_keeps_the_allow_list_and_drops_secrets() {
        let process_env: HashMap<String, String> = [
            ("PATH", "/usr/bin:/bin"),
            ("HOME", "/home/deploy"),
            ("LANG", "C.UTF-8"),
            ("LC_ALL", "C"),
            ("TERM", "xterm"),
            ("STAGEHAND_API_TOKEN", "tok"),
            ("SHOP_WEBHOOK_SECRET", "hush"),
            ("SECRET_TOKEN", "x"),
            ("LD_PRELOAD", "/tmp/evil.so"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let env = base_env(&process_env);
        let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["HOME", "LANG", "LC_ALL", "PATH", "TERM"]);
        assert!(env.contains(&("PATH".to_owned(), "/usr/bin:/bin".to_owned())));
    }

    #[tokio::test]
    async fn child_sees_exactly_spec_env() {
        let dir = tempfile::tempdir().expect("tempdir");
        let process_env: HashMap<String, String> = [
            ("PATH", "/usr/local/bin:/usr/bin:/bin"),
            ("SECRET_TOKEN", "x"),
            ("STAGEHAND_API_TOKEN", "tok"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let mut s = spec(
            dir.path(),
            r#"echo "$FOO"; echo "secret=${SECRET_TOKEN-unset}"; env | cut -d= -f1 | sort"#,
        );
        s.env = base_env(&process_env);
        s.env.push(("FOO".to_owned(), "bar".to_owned()));
        let (outcome, lines) = run_collect(&s).await;
        assert_eq!(outcome, Outcome::Succeeded);
        let lines: Vec<&str> = lines.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(lines[..2], ["bar", "secret=unset"]);
        // The test runner's own environment (CARGO_*, RUST_*, …) must not leak
        // in either; only what sh sets for itself may appear besides spec.env.
        for name in &lines[2..] {
            assert!(
                ["FOO", "PATH", "PWD", "OLDPWD", "SHLVL", "_"].contains(name),
                "unexpected variable {name} in the child environment"
            );
        }
    }

    #[tokio::test]
    async fn payload_values_in_env_are_never_evaluated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let hostile = [
            "x$(touch pwned)",
            "'; touch pwned2; '",
            "`touch pwned3`",
            "\"; touch pwned4; \"",
            "$HOME && touch pwned5 | ; & > pwned6",
            "feature/-n -e \\n",
        ];
        for value in hostile {
            let mut s = spec(dir.path(), r#"printf '%s\n' "$BRANCH""#);
            s.env.push(("BRANCH".to_owned(), value.to_owned()));
            let (outcome, lines) = run_collect(&s).await;
            assert_eq!(outcome, Outcome::Succeeded);
            assert_eq!(lines, [(Stream::Stdout, value.to_owned())]);
        }
        let created: Vec<_> = std::fs::read_dir(dir.path()).expect("read_dir").collect();
        assert!(created.is_empty(), "files were created: {created:?}");
    }

    #[tokio::test]
    async fn exit_code_and_foreign_signal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (outcome, _) = run_collect(&spec(dir.path(), "exit 3")).await;
        assert_eq!(outcome, Outcome::Failed { code: 3 });
        assert!(!outcome.is_success());
        assert_eq!(outcome.describe(), "exit code 3");

        let (outcome, _) = run_collect(&spec(dir.path(), "kill -9 $$")).await;
        assert_eq!(outcome, Outcome::Signalled { signal: 9 });
        assert_eq!(outcome.describe(), "killed by signal 9 (SIGKILL)");
    }

    #[test]
    fn describe_texts() {
        assert!(Outcome::Succeeded.is_success());
        let timed_out = Outcome::TimedOut {
            after: Duration::from_secs(90),
        };
        assert_eq!(
            timed_out.describe(),
            "timed out after 90s: process group killed"
        );
        assert_eq!(
            Outcome::TimedOut {
                after: Duration::from_millis(1500)
            }
            .describe(),
            "timed out after 1500ms: process group killed"
        );
        assert_eq!(
            Outcome::Cancelled.describe(),
            "cancelled: process group killed"
        );
        assert_eq!(
            Outcome::Signalled { signal: 15 }.describe(),
            "killed by signal 15 (SIGTERM)"
        );
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_group() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = spec(
            dir.path(),
            "sleep 1000 & echo $! > pid; echo started; sleep 1000",
        );
        s.timeout = Duration::from_secs(1);
        s.kill_grace = Duration::from_millis(200);
        let start = StdInstant::now();
        let (outcome, lines) = run_collect(&s).await;
        let elapsed = start.elapsed();
        assert_eq!(
            outcome,
            Outcome::TimedOut {
                after: Duration::from_secs(1)
            }
        );
        assert!(elapsed >= Duration::from_secs(1), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
        assert_eq!(lines, [(Stream::Stdout, "started".to_owned())]);
        assert_gone(read_pid(&dir.path().join("pid"))).await;
    }

    #[tokio::test]
    async fn sigterm_ignored_gets_sigkill_after_grace() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = spec(
            dir.path(),
            "trap '' TERM; sleep 1000 & echo $! > pid; sleep 1000",
        );
        s.timeout = Duration::from_millis(500);
        s.kill_grace = Duration::from_millis(300);
        let start = StdInstant::now();
        let (outcome, _) = run_collect(&s).await;
        let elapsed = start.elapsed();
        assert_eq!(
            outcome,
            Outcome::TimedOut {
                after: Duration::from_millis(500)
            }
        );
        // SIGTERM was ignored, so the grace period had to run out.
        assert!(elapsed >= Duration::from_millis(800), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
        assert_gone(read_pid(&dir.path().join("pid"))).await;
    }

    #[tokio::test]
    async fn output_during_grace_period_is_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = spec(
            dir.path(),
            "trap 'echo cleaning up; exit 0' TERM; echo started; while :; do sleep 0.05; done",
        );
        s.timeout = Duration::from_millis(300);
        s.kill_grace = Duration::from_secs(3);
        let (outcome, lines) = run_collect(&s).await;
        // It exited 0 on SIGTERM, but it was stopped by us.
        assert!(matches!(outcome, Outcome::TimedOut { .. }), "{outcome:?}");
        // Only stdout: dash reports the killed `sleep` on stderr.
        let stdout: Vec<&str> = lines
            .iter()
            .filter(|(s, _)| *s == Stream::Stdout)
            .map(|(_, l)| l.as_str())
            .collect();
        assert_eq!(stdout, ["started", "cleaning up"]);
    }

    #[tokio::test]
    async fn huge_timeout_means_no_limit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = spec(dir.path(), "echo ok");
        s.timeout = Duration::MAX;
        s.kill_grace = Duration::MAX;
        let (outcome, _) = run_collect(&s).await;
        assert_eq!(outcome, Outcome::Succeeded);
    }

    #[tokio::test]
    async fn cancel_kills_the_group() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = spec(dir.path(), "sleep 1000 & echo $! > pid; sleep 1000");
        let (tx, rx) = watch::channel(false);
        let flip = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            tx.send_replace(true);
            // Keep the sender alive until run has seen the flag.
            tokio::time::sleep(Duration::from_secs(10)).await;
        });
        let start = StdInstant::now();
        let outcome = tokio::time::timeout(Duration::from_secs(30), run(&s, |_, _| {}, rx))
            .await
            .expect("run did not return within 30 s")
            .expect("run");
        let elapsed = start.elapsed();
        flip.abort();
        assert_eq!(outcome, Outcome::Cancelled);
        assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
        assert_gone(read_pid(&dir.path().join("pid"))).await;
    }

    #[tokio::test]
    async fn already_cancelled_starts_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = spec(dir.path(), "touch ran");
        let (_tx, rx) = watch::channel(true);
        let outcome = run(&s, |_, _| {}, rx).await.expect("run");
        assert_eq!(outcome, Outcome::Cancelled);
        assert!(!dir.path().join("ran").exists());
    }

    #[tokio::test]
    async fn lines_stream_while_the_command_runs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = spec(dir.path(), "echo first; sleep 2; echo second");
        let mut seen: Vec<(String, StdInstant)> = Vec::new();
        let outcome = run(
            &s,
            |_, line| seen.push((line.to_owned(), StdInstant::now())),
            never(),
        )
        .await
        .expect("run");
        assert_eq!(outcome, Outcome::Succeeded);
        assert_eq!(seen.len(), 2);
        assert_eq!(
            (seen[0].0.as_str(), seen[1].0.as_str()),
            ("first", "second")
        );
        let gap = seen[1].1 - seen[0].1;
        assert!(gap >= Duration::from_millis(1500), "gap {gap:?}");
    }

    #[tokio::test]
    async fn background_leftovers_are_killed_after_success() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = spec(dir.path(), "sleep 1000 & echo $! > pid; echo done");
        let start = StdInstant::now();
        let (outcome, lines) = run_collect(&s).await;
        let elapsed = start.elapsed();
        assert_eq!(outcome, Outcome::Succeeded);
        assert_eq!(lines, [(Stream::Stdout, "done".to_owned())]);
        // Under the drain bound: the sleeper was killed as soon as the shell
        // exited, it did not hold the pipes until the drain gave up.
        assert!(elapsed < DRAIN_LIMIT, "{elapsed:?}");
        assert_gone(read_pid(&dir.path().join("pid"))).await;
    }

    /// Once both pipes are closed, `run` must return at once, not after the
    /// drain bound. Whether the end of the pipes or the exit of the shell is
    /// seen first varies from run to run, so try several times.
    #[tokio::test]
    async fn normal_exit_does_not_wait_for_the_drain_bound() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = spec(dir.path(), "echo a; echo b >&2");
        for _ in 0..10 {
            let start = StdInstant::now();
            let (outcome, lines) = run_collect(&s).await;
            let elapsed = start.elapsed();
            assert_eq!(outcome, Outcome::Succeeded);
            assert_eq!(lines.len(), 2);
            assert!(elapsed < DRAIN_LIMIT / 2, "{elapsed:?}");
        }
    }

    #[tokio::test]
    async fn escaped_session_cannot_hold_the_pipes_forever() {
        let dir = tempfile::tempdir().expect("tempdir");
        // The inner shell writes its pid only after setsid has run, so the
        // outer shell exits only once the sleeper has really left the group.
        let s = spec(
            dir.path(),
            "setsid sh -c 'echo $$ > pid; exec sleep 1000' & \
             while [ ! -s pid ]; do sleep 0.05; done; echo launched",
        );
        let start = StdInstant::now();
        let result = tokio::time::timeout(Duration::from_secs(10), run_collect(&s)).await;
        let elapsed = start.elapsed();
        let pid = read_pid(&dir.path().join("pid"));
        let escaped_alive = is_running(pid);
        if let Some(pid) = Pid::from_raw(pid) {
            let _ = rustix::process::kill_process(pid, Signal::KILL);
        }
        let (outcome, lines) = result.expect("run did not return within 10 s");
        assert_eq!(outcome, Outcome::Succeeded);
        assert_eq!(lines, [(Stream::Stdout, "launched".to_owned())]);
        assert!(
            escaped_alive,
            "the setsid process should have escaped the group"
        );
        // It held the pipes, so run waited for the drain bound, and no longer.
        assert!(elapsed >= DRAIN_LIMIT, "{elapsed:?}");
        assert!(
            elapsed < DRAIN_LIMIT + Duration::from_secs(3),
            "{elapsed:?}"
        );
    }

    #[tokio::test]
    async fn long_line_arrives_in_bounded_pieces() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = spec(dir.path(), "head -c 102400 /dev/zero | tr '\\0' x");
        let (outcome, lines) = run_collect(&s).await;
        assert_eq!(outcome, Outcome::Succeeded);
        assert!(lines.len() >= 7, "{} pieces", lines.len());
        assert!(lines.iter().all(|(_, l)| l.len() <= MAX_LINE));
        assert!(lines.iter().all(|(_, l)| l.bytes().all(|b| b == b'x')));
        let total: usize = lines.iter().map(|(_, l)| l.len()).sum();
        assert_eq!(total, 102_400);
    }

    async fn split(input: &[u8]) -> Vec<String> {
        let (tx, mut rx) = mpsc::channel(1024);
        read_lines(Stream::Stdout, input, Masker::default(), tx).await;
        let mut out = Vec::new();
        while let Ok((_, line)) = rx.try_recv() {
            out.push(line);
        }
        out
    }

    /// Issue 11 item 11: a prompt without a newline stayed invisible until its
    /// newline. Here the step waits for someone to see the prompt: without the idle
    /// flush it would wait until `run_collect`'s bound and fail.
    #[tokio::test]
    async fn a_partial_line_arrives_while_the_step_waits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = spec(
            dir.path(),
            "printf 'Continue? [y/n] '; while [ ! -f seen ]; do sleep 0.05; done; echo; echo answered",
        );
        let seen = dir.path().join("seen");
        let mut lines = Vec::new();
        let outcome = tokio::time::timeout(
            Duration::from_secs(30),
            run(
                &s,
                |_, line| {
                    if line == "Continue? [y/n] " {
                        std::fs::write(&seen, "").expect("write");
                    }
                    lines.push(line.to_owned());
                },
                never(),
            ),
        )
        .await
        .expect("the prompt never arrived")
        .expect("run");
        assert_eq!(outcome, Outcome::Succeeded);
        assert_eq!(lines, ["Continue? [y/n] ", "answered"]);
    }

    #[tokio::test]
    async fn carriage_returns_keep_a_progress_line_s_final_state() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = spec(
            dir.path(),
            "printf 'fetching 10%%\rfetching 50%%\rfetching 100%%\r\n'; \
             i=0; while [ $i -lt 5000 ]; do printf '\r%05d' $i; i=$((i+1)); done; echo",
        );
        let (outcome, lines) = run_collect(&s).await;
        assert_eq!(outcome, Outcome::Succeeded);
        let lines: Vec<&str> = lines.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(lines.first(), Some(&"fetching 100%"));
        // 30,000 bytes of redraws, never one 16 KiB line; the last state comes last.
        assert!(
            lines.iter().all(|l| l.len() < 100),
            "{:?}",
            lines.iter().map(|l| l.len()).max()
        );
        assert_eq!(lines.last(), Some(&"04999"));
    }

    #[tokio::test]
    async fn line_of_exactly_the_limit_is_one_line() {
        let mut input = vec![b'a'; MAX_LINE];
        input.extend_from_slice(b"\nnext\n");
        let lines = split(&input).await;
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].len(), MAX_LINE);
        assert_eq!(lines[1], "next");

        // One byte more: a full piece, then a one-byte rest, no empty line.
        let mut input = vec![b'a'; MAX_LINE + 1];
        input.push(b'\n');
        let lines = split(&input).await;
        assert_eq!(
            lines.iter().map(String::len).collect::<Vec<_>>(),
            [MAX_LINE, 1]
        );
    }

    #[tokio::test]
    async fn pieces_do_not_split_utf8_characters() {
        // 'é' is two bytes; an odd prefix puts one across the 16 KiB mark.
        let mut text = String::from("a");
        while text.len() < 3 * MAX_LINE {
            text.push('é');
        }
        let lines = split(text.as_bytes()).await;
        assert!(lines.iter().all(|l| l.len() <= MAX_LINE));
        assert!(lines.iter().all(|l| !l.contains('\u{FFFD}')));
        assert_eq!(lines.concat(), text);
    }

    #[tokio::test]
    async fn missing_dir_is_a_spawn_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("no-such-release");
        let err = run(&spec(&missing, "true"), |_, _| {}, never())
            .await
            .expect_err("spawn should fail");
        match &err {
            CommandError::Spawn { dir, .. } => assert_eq!(dir, &missing),
            other => panic!("expected Spawn, got {other:?}"),
        }
        assert!(
            err.to_string().contains(&missing.display().to_string()),
            "{err}"
        );
    }

    /// A caller that gives up on `run` (drops the future) must not leave the
    /// step running.
    #[tokio::test]
    async fn dropping_the_future_kills_the_group() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = spec(
            dir.path(),
            "sleep 1000 & echo $! > pid; echo started; sleep 1000",
        );
        let (tx, mut rx) = mpsc::unbounded_channel();
        // Boxed, not `pin!`ned on the stack, so that `drop` really drops it.
        let mut result = Box::pin(tokio::time::timeout(
            Duration::from_secs(5),
            run(
                &s,
                move |_, line| {
                    let _ = tx.send(line.to_owned());
                },
                never(),
            ),
        ));
        tokio::select! {
            _ = &mut result => panic!("run returned early"),
            line = rx.recv() => assert_eq!(line.as_deref(), Some("started")),
        }
        drop(result);
        assert_gone(read_pid(&dir.path().join("pid"))).await;
    }
}
