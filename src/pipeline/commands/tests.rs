//! `run`'s tests: real `sh` processes in temporary directories.

use std::collections::HashMap;
use std::time::Instant as StdInstant;

use rustix::process::{Pid, Signal};
use tokio::sync::mpsc;

use super::output::read_lines;
use super::*;
use crate::command_env::inherited;

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
    s.env = inherited(&process_env);
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
