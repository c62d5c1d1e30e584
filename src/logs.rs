//! Deploy logs: one append-only file per deploy under `<state_dir>/logs/<id>.log`, and
//! a live feed for followers.
//!
//! Every line is stripped of terminal control sequences
//! ([`strip_controls`](crate::core::log_text::strip_controls)) and then masked
//! ([`Masker`]) before it is written or sent. A deploy's build output is capped
//! (`max_log_size`): past the cap the log says so once and drops further output
//! lines; stagehand's own lines still go in, so the log always shows how it ended. While a deploy runs,
//! its log keeps the events sent so far in memory next to a broadcast channel, and
//! [`LogHub::follow`] takes the snapshot and the subscription under one lock: a
//! follower joining mid-deploy gets everything so far, then the rest, nothing lost or
//! doubled. Once the deploy ends the file is the record.
//!
//! Appending a line is a plain `write(2)` into the page cache (microseconds), done on
//! the calling task: cheaper than a hop to the blocking pool per line.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::broadcast;

use crate::core::deploy::DeployStatus;
use crate::core::ids::DeployId;
use crate::core::log_text::strip_controls;
use crate::core::mask::Masker;
use crate::core::size::format_size;
use crate::core::stage::StageName;
use crate::core::time::UnixMillis;

/// Where a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// stagehand's own account of what it does.
    Info,
    Stdout,
    Stderr,
}

impl Source {
    fn tag(self) -> &'static str {
        match self {
            Source::Info => "info",
            Source::Stdout => "out",
            Source::Stderr => "err",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEvent {
    /// `seq` is the line's number in the file, from 1.
    Line { seq: u64, text: String },
    Stage {
        name: StageName,
        status: DeployStatus,
        duration_ms: Option<i64>,
    },
    Status {
        status: DeployStatus,
        reason: Option<String>,
    },
}

struct Live {
    file: Option<File>,
    lines: u64,
    /// Bytes in the file, counted against `cap`.
    written: u64,
    cap: u64,
    truncated: bool,
    /// The most recent events, for followers joining mid-deploy; older lines are read
    /// from the file, so a chatty build cannot grow this without bound.
    history: VecDeque<LogEvent>,
    tx: broadcast::Sender<LogEvent>,
}

/// Events kept in memory per running deploy.
const HISTORY_LIMIT: usize = 4096;

impl Live {
    fn remember(&mut self, event: LogEvent) {
        if self.history.len() == HISTORY_LIMIT {
            self.history.pop_front();
        }
        self.history.push_back(event);
    }
}

pub struct LogHub {
    dir: PathBuf,
    live: Mutex<HashMap<DeployId, Arc<Mutex<Live>>>>,
    /// Ticks whenever a deploy's log opens, so a follower waiting for a queued deploy
    /// attaches the moment it starts instead of at its next poll.
    opened: tokio::sync::watch::Sender<u64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Appending a line cannot leave the state half-changed, so a poisoned lock is usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl LogHub {
    pub fn new(dir: &Path) -> std::io::Result<LogHub> {
        std::fs::create_dir_all(dir)?;
        Ok(LogHub {
            dir: dir.to_owned(),
            live: Mutex::new(HashMap::new()),
            opened: tokio::sync::watch::Sender::new(0),
        })
    }

    pub fn path(&self, id: DeployId) -> PathBuf {
        self.dir.join(format!("{id}.log"))
    }

    /// Starts (or resumes, appending) the log of deploy `id`; build output past
    /// `max_bytes` in the file is dropped.
    pub fn open(self: &Arc<Self>, id: DeployId, masker: Masker, max_bytes: u64) -> DeployLog {
        let path = self.path(id);
        let file = OpenOptions::new().create(true).append(true).open(&path);
        let (lines, written) = std::fs::read(&path)
            .map(|b| {
                (
                    b.iter().filter(|c| **c == b'\n').count() as u64,
                    b.len() as u64,
                )
            })
            .unwrap_or((0, 0));
        if let Err(e) = &file {
            tracing::error!(path = %path.display(), error = %e, "cannot open deploy log: lines go to followers only");
        }
        let (tx, _) = broadcast::channel(1024);
        let live = Arc::new(Mutex::new(Live {
            file: file.ok(),
            lines,
            written,
            cap: max_bytes,
            truncated: false,
            history: VecDeque::new(),
            tx,
        }));
        lock(&self.live).insert(id, live.clone());
        self.opened.send_modify(|n| *n += 1);
        DeployLog {
            hub: self.clone(),
            id,
            live,
            masker,
        }
    }

    /// For a running deploy: the recent events (lines before them are in the file)
    /// and a receiver for the rest.
    /// `None` when the deploy is not running here (read the file instead).
    pub fn follow(&self, id: DeployId) -> Option<(Vec<LogEvent>, broadcast::Receiver<LogEvent>)> {
        let live = lock(&self.live).get(&id)?.clone();
        let live = lock(&live);
        Some((live.history.iter().cloned().collect(), live.tx.subscribe()))
    }

    /// Changes whenever a log opens: subscribe, then check [`LogHub::follow`], then wait.
    pub fn opened(&self) -> tokio::sync::watch::Receiver<u64> {
        self.opened.subscribe()
    }

    /// Deletes log files older than `cutoff`; returns how many. Blocking.
    pub fn prune(&self, cutoff: std::time::SystemTime) -> std::io::Result<usize> {
        let mut removed = 0;
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t < cutoff);
            if old && entry.path().extension().is_some_and(|e| e == "log") {
                std::fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// The writer side of one deploy's log. Dropping it ends the live feed.
pub struct DeployLog {
    hub: Arc<LogHub>,
    id: DeployId,
    live: Arc<Mutex<Live>>,
    masker: Masker,
}

impl DeployLog {
    pub fn id(&self) -> DeployId {
        self.id
    }

    /// What this log masks.
    pub fn masker(&self) -> &Masker {
        &self.masker
    }

    pub fn line(&self, now: UnixMillis, stage: StageName, source: Source, text: &str) {
        // Stripped before masking: a secret with escape codes inside it is whole after.
        let clean = strip_controls(text);
        let text = format!(
            "{} {stage:<7} {:<4} {}",
            now.rfc3339(),
            source.tag(),
            self.masker.mask(&clean)
        );
        let mut live = lock(&self.live);
        if source != Source::Info {
            if live.truncated {
                return;
            }
            if live.written + text.len() as u64 + 1 > live.cap {
                live.truncated = true;
                let notice = format!(
                    "{} {stage:<7} {:<4} log truncated at {}: further lines dropped",
                    now.rfc3339(),
                    Source::Info.tag(),
                    format_size(live.cap)
                );
                Self::append(&mut live, self.id, notice);
                return;
            }
        }
        Self::append(&mut live, self.id, text);
    }

    fn append(live: &mut Live, id: DeployId, text: String) {
        if let Some(file) = live.file.as_mut()
            && let Err(e) = writeln!(file, "{text}")
        {
            tracing::error!(deploy = %id, error = %e, "writing the deploy log failed");
            live.file = None;
        }
        live.written += text.len() as u64 + 1;
        live.lines += 1;
        let event = LogEvent::Line {
            seq: live.lines,
            text,
        };
        live.remember(event.clone());
        let _ = live.tx.send(event);
    }

    pub fn info(&self, now: UnixMillis, stage: StageName, text: &str) {
        self.line(now, stage, Source::Info, text);
    }

    pub fn event(&self, event: LogEvent) {
        let mut live = lock(&self.live);
        live.remember(event.clone());
        let _ = live.tx.send(event);
    }
}

impl Drop for DeployLog {
    fn drop(&mut self) {
        lock(&self.hub.live).remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_masked_written_and_followed_without_gaps() {
        let dir = tempfile::tempdir().unwrap();
        let hub = Arc::new(LogHub::new(dir.path()).unwrap());
        let log = hub.open(DeployId(1), Masker::new(["hunter2".to_string()]), u64::MAX);
        log.line(
            UnixMillis(0),
            StageName::Build,
            Source::Stdout,
            "password hunter2",
        );
        let (history, mut rx) = hub.follow(DeployId(1)).unwrap();
        log.line(UnixMillis(1), StageName::Build, Source::Stderr, "second");
        assert_eq!(history.len(), 1);
        let LogEvent::Line { seq, text } = rx.try_recv().unwrap() else {
            panic!("not a line")
        };
        assert_eq!(
            (seq, text.as_str()),
            (2, "1970-01-01T00:00:00.001Z build   err  second")
        );
        drop(log);
        assert!(hub.follow(DeployId(1)).is_none());
        let file = std::fs::read_to_string(hub.path(DeployId(1))).unwrap();
        assert_eq!(
            file,
            "1970-01-01T00:00:00.000Z build   out  password ***\n1970-01-01T00:00:00.001Z build   err  second\n"
        );
        // Reopening appends and keeps counting.
        let log = hub.open(DeployId(1), Masker::default(), u64::MAX);
        log.info(UnixMillis(2), StageName::Fetch, "third");
        let (history, _) = hub.follow(DeployId(1)).unwrap();
        assert!(matches!(&history[0], LogEvent::Line { seq: 3, .. }));
    }

    #[test]
    fn output_past_the_cap_is_dropped_after_one_notice_and_controls_are_stripped() {
        let dir = tempfile::tempdir().unwrap();
        let hub = Arc::new(LogHub::new(dir.path()).unwrap());
        let log = hub.open(DeployId(3), Masker::new(["hunter2".to_string()]), 200);
        log.line(
            UnixMillis(0),
            StageName::Build,
            Source::Stdout,
            "\u{1b}[31mhun\u{1b}[0mter2",
        );
        for i in 0..10 {
            log.line(
                UnixMillis(0),
                StageName::Build,
                Source::Stdout,
                &format!("line {i}"),
            );
        }
        log.info(UnixMillis(0), StageName::Deploy, "succeeded");
        let file = std::fs::read_to_string(hub.path(DeployId(3))).unwrap();
        let lines: Vec<&str> = file.lines().collect();
        assert_eq!(lines[0], "1970-01-01T00:00:00.000Z build   out  ***");
        assert_eq!(
            lines[lines.len() - 2],
            "1970-01-01T00:00:00.000Z build   info log truncated at 200 B: further lines dropped"
        );
        assert!(lines[lines.len() - 1].ends_with("info succeeded"));
        assert_eq!(file.matches("truncated").count(), 1);
        assert!(!file.contains("line 9"));
    }

    #[test]
    fn prune_removes_only_old_log_files() {
        let dir = tempfile::tempdir().unwrap();
        let hub = LogHub::new(dir.path()).unwrap();
        std::fs::write(hub.path(DeployId(1)), "old\n").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a log").unwrap();
        let future = std::time::SystemTime::now() + std::time::Duration::from_secs(60);
        assert_eq!(hub.prune(std::time::SystemTime::UNIX_EPOCH).unwrap(), 0);
        assert_eq!(hub.prune(future).unwrap(), 1);
        assert!(!hub.path(DeployId(1)).exists());
        assert!(dir.path().join("notes.txt").exists());
    }

    #[test]
    fn history_is_bounded_and_counts_on() {
        let dir = tempfile::tempdir().unwrap();
        let hub = Arc::new(LogHub::new(dir.path()).unwrap());
        let log = hub.open(DeployId(2), Masker::default(), u64::MAX);
        for i in 0..(HISTORY_LIMIT + 10) {
            log.info(UnixMillis(0), StageName::Build, &format!("line {i}"));
        }
        let (history, _) = hub.follow(DeployId(2)).unwrap();
        assert_eq!(history.len(), HISTORY_LIMIT);
        assert!(
            matches!(&history[0], LogEvent::Line { seq: 11, .. }),
            "{:?}",
            history[0]
        );
        let file = std::fs::read_to_string(hub.path(DeployId(2))).unwrap();
        assert_eq!(file.lines().count(), HISTORY_LIMIT + 10);
    }
}
